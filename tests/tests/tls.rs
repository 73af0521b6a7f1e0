//! TLS on the client port, configured with etcd's flags (`--cert-file`, `--key-file`,
//! `--trusted-ca-file`, `--client-cert-auth`) and driven by etcdctl (Debian's etcd-client, etcd
//! 3.4): a CA-verified server, client certificates required, refusals without them. And TLS
//! between members (`--peer-cert-file`, `--peer-key-file`, `--peer-trusted-ca-file`,
//! `--peer-client-cert-auth`): a three-member cluster over https:// peer URLs. Skipped, with a
//! notice, when etcdctl is not installed (scripts/test.sh installs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quorum_tests::{free_port, have_etcdctl, run_etcdctl as etcdctl, Cluster};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A test CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "quorum test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let leaf = |names: Vec<String>, cn: &str, usage: Vec<ExtendedKeyUsagePurpose>| {
            let mut params = CertificateParams::new(names).expect("leaf params");
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = usage;
            let key = KeyPair::generate().expect("leaf key");
            let cert = params.signed_by(&key, &ca).expect("leaf certificate");
            (cert.pem(), key.serialize_pem())
        };
        let local = || vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let (server, server_key) =
            leaf(local(), "quorum", vec![ExtendedKeyUsagePurpose::ServerAuth]);
        let client_cert =
            |cn: &str| leaf(Vec::new(), cn, vec![ExtendedKeyUsagePurpose::ClientAuth]);
        let (client, client_key) = client_cert("root");
        let (alice, alice_key) = client_cert("alice");
        // A member's peer certificate serves its peer port and is its client certificate
        // when it connects to the others.
        let (peer, peer_key) = leaf(
            local(),
            "member",
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        let pki = Pki { dir };
        for (name, pem) in [
            ("ca.pem", ca.pem()),
            ("server.pem", server),
            ("server-key.pem", server_key),
            ("client.pem", client),
            ("client-key.pem", client_key),
            ("alice.pem", alice),
            ("alice-key.pem", alice_key),
            ("peer.pem", peer),
            ("peer-key.pem", peer_key),
        ] {
            std::fs::write(pki.path(name), pem).expect("write PEM");
        }
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, flag: &str, name: &str) -> String {
        format!("--{flag}={}", self.path(name).display())
    }
}

/// A one-member Quorum with TLS on its client URL; killed on drop.
struct TlsMember {
    child: Child,
    endpoint: String,
    _data: tempfile::TempDir,
}

impl Drop for TlsMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns a one-member cluster with its data in `data_dir`, an https:// client URL `client`
/// and `extra` flags.
fn spawn(data_dir: &Path, client: &str, extra: &[String]) -> Child {
    let peer = format!("http://127.0.0.1:{}", free_port());
    Command::new(Path::new(env!("CARGO_BIN_EXE_quorum-test-server")))
        .arg("--name=tls")
        .arg(format!("--data-dir={}", data_dir.display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=tls={peer}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start quorum")
}

/// A member serving TLS with the test PKI's server certificate, requiring client
/// certificates, plus `extra` flags.
fn start_with(pki: &Pki, extra: &[String]) -> TlsMember {
    let data = tempfile::tempdir().expect("data dir");
    let client = format!("https://127.0.0.1:{}", free_port());
    let mut flags = vec![
        pki.arg("cert-file", "server.pem"),
        pki.arg("key-file", "server-key.pem"),
        pki.arg("trusted-ca-file", "ca.pem"),
        "--client-cert-auth".to_string(),
    ];
    flags.extend_from_slice(extra);
    TlsMember {
        child: spawn(&data.path().join("d"), &client, &flags),
        endpoint: client,
        _data: data,
    }
}

fn start(pki: &Pki) -> TlsMember {
    start_with(pki, &[])
}

#[test]
fn etcdctl_over_tls_with_client_certificates() {
    if !have_etcdctl() {
        eprintln!("SKIPPED: etcdctl is not installed (scripts/test.sh installs it)");
        return;
    }
    let pki = Pki::new();
    let member = start(&pki);
    let full = vec![
        pki.arg("cacert", "ca.pem"),
        pki.arg("cert", "client.pem"),
        pki.arg("key", "client-key.pem"),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out) = etcdctl(&member.endpoint, &full, &["put", "secure", "yes"]);
        if ok {
            assert_eq!(out.trim(), "OK");
            break;
        }
        assert!(Instant::now() < deadline, "no TLS put within 30 s: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, out) = etcdctl(
        &member.endpoint,
        &full,
        &["get", "secure", "--print-value-only"],
    );
    assert!(ok, "{out}");
    assert_eq!(out, "yes\n");
    // --cluster dials the advertised https:// client URL.
    let (ok, out) = etcdctl(
        &member.endpoint,
        &full,
        &["endpoint", "health", "--cluster"],
    );
    assert!(ok && out.contains("is healthy"), "{out}");

    // HTTP/1.1 clients (the JSON gateway's, e.g. Python's requests) negotiate http/1.1 by ALPN.
    let curl = Command::new("curl")
        .args(["-sS", "--http1.1", "--max-time", "5", "--cacert"])
        .arg(pki.path("ca.pem"))
        .arg("--cert")
        .arg(pki.path("client.pem"))
        .arg("--key")
        .arg(pki.path("client-key.pem"))
        .arg(format!("{}/health", member.endpoint))
        .output();
    match curl {
        Ok(out) => {
            let body = String::from_utf8_lossy(&out.stdout);
            assert!(
                body.contains(r#""health":"true""#),
                "HTTP/1.1 over TLS: {body:?}"
            );
        }
        Err(e) => eprintln!("curl not run ({e}): HTTP/1.1 over TLS not checked"),
    }

    // Refused: no client certificate (--client-cert-auth), or a server the client cannot verify.
    let (ok, out) = etcdctl(
        &member.endpoint,
        &[pki.arg("cacert", "ca.pem")],
        &["get", "secure"],
    );
    assert!(!ok, "a client without a certificate was served: {out}");
    let (ok, out) = etcdctl(&member.endpoint, &[], &["get", "secure"]);
    assert!(!ok, "a client that does not trust the CA was served: {out}");
}

#[test]
fn members_talk_over_peer_tls_and_refuse_peers_without_certificates() {
    if !have_etcdctl() {
        eprintln!("SKIPPED: etcdctl is not installed (scripts/test.sh installs it)");
        return;
    }
    let pki = Pki::new();
    let files = [
        pki.arg("peer-cert-file", "peer.pem"),
        pki.arg("peer-key-file", "peer-key.pem"),
        pki.arg("peer-trusted-ca-file", "ca.pem"),
        "--peer-client-cert-auth".to_string(),
    ];
    let extra: Vec<&str> = files.iter().map(String::as_str).collect();
    let cluster = Cluster::start_with_peer_scheme(
        Path::new(env!("CARGO_BIN_EXE_quorum-test-server")),
        3,
        &extra,
        "https",
    );
    let eps = cluster.endpoints();
    // A write needs an elected leader and a majority: Raft over TLS works.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out) = etcdctl(&eps[0], &[], &["put", "over-tls", "yes"]);
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no write within 30 s: {out}\n{}",
            cluster.log(0)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every member applies it (a serializable read is the member's own state).
    for ep in &eps {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (ok, out) = etcdctl(
                ep,
                &[],
                &["get", "over-tls", "--print-value-only", "--consistency=s"],
            );
            if ok && out == "yes\n" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{ep} did not apply the write: {out}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let (ok, out) = etcdctl(&eps[0], &[], &["member", "list"]);
    assert!(
        ok && out.matches("https://127.0.0.1:").count() == 3,
        "{out}"
    );

    // The peer port refuses a client without a certificate and one that speaks plain HTTP.
    let list = cluster_peer_urls(&out);
    let peer = &list[0];
    let no_cert = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(pki.path("ca.pem"))
        .arg(format!("{peer}/"))
        .output();
    if let Ok(o) = no_cert {
        assert!(
            !o.status.success(),
            "a peer connection without a certificate was accepted"
        );
    }
    let plain = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--http2-prior-knowledge"])
        .arg(peer.replace("https://", "http://") + "/")
        .output();
    if let Ok(o) = plain {
        assert!(
            !o.status.success(),
            "a plain-text peer connection was accepted"
        );
    }
}

/// The peer URLs in `etcdctl member list` output (`id, started, name, peer URLs, ...`).
fn cluster_peer_urls(list: &str) -> Vec<String> {
    list.lines()
        .filter_map(|l| l.split(", ").nth(3).map(str::to_string))
        .collect()
}

#[test]
fn with_client_cert_auth_the_certificate_common_name_is_the_user() {
    if !have_etcdctl() {
        eprintln!("SKIPPED: etcdctl is not installed (scripts/test.sh installs it)");
        return;
    }
    let pki = Pki::new();
    let member = start(&pki);
    let as_cert = |name: &str| {
        vec![
            pki.arg("cacert", "ca.pem"),
            pki.arg("cert", &format!("{name}.pem")),
            pki.arg("key", &format!("{name}-key.pem")),
        ]
    };
    let root = as_cert("client"); // common name "root"
    let alice = as_cert("alice");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !etcdctl(&member.endpoint, &root, &["user", "add", "root:rootpw"]).0 {
        assert!(Instant::now() < deadline, "no user add within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, out) = etcdctl(
        &member.endpoint,
        &root,
        &["user", "grant-role", "root", "root"],
    );
    assert!(ok, "{out}");
    let (ok, out) = etcdctl(&member.endpoint, &root, &["auth", "enable"]);
    assert!(ok, "{out}");

    // No --user: the certificate's common name ("root") is the user, as etcd does.
    let (ok, out) = etcdctl(&member.endpoint, &root, &["put", "by-cn", "yes"]);
    assert!(ok, "root by certificate: {out}");
    // "alice" is no user: refused.
    let (ok, out) = etcdctl(&member.endpoint, &alice, &["put", "by-cn", "no"]);
    assert!(!ok, "alice (no such user) was allowed to write: {out}");
    // A token (from --user) takes precedence over the certificate.
    let (ok, out) = etcdctl(
        &member.endpoint,
        &alice,
        &[
            "--user",
            "root:rootpw",
            "get",
            "by-cn",
            "--print-value-only",
        ],
    );
    assert!(ok && out == "yes\n", "{out}");
}

#[test]
fn auto_tls_serves_a_self_signed_certificate_kept_in_the_data_dir() {
    if !have_etcdctl() {
        eprintln!("SKIPPED: etcdctl is not installed (scripts/test.sh installs it)");
        return;
    }
    let data = tempfile::tempdir().expect("data dir");
    let client = format!("https://127.0.0.1:{}", free_port());
    let dir = data.path().join("d");
    let start = || spawn(&dir, &client, &["--auto-tls".to_string()]);
    // etcdctl 3.4 needs both to skip verification (as against etcd's own --auto-tls).
    let insecure = [
        "--insecure-skip-tls-verify".to_string(),
        "--insecure-transport=false".to_string(),
    ];
    let mut member = TlsMember {
        child: start(),
        endpoint: client.clone(),
        _data: tempfile::tempdir().expect("unused"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out) = etcdctl(&member.endpoint, &insecure, &["put", "auto", "tls"]);
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no put over auto TLS within 30 s: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let cert = dir.join("fixtures").join("client").join("cert.pem");
    let first = std::fs::read(&cert).expect("the generated certificate");
    // A client that verifies certificates does not trust a self-signed one.
    let (ok, _) = etcdctl(&member.endpoint, &[], &["get", "auto"]);
    assert!(
        !ok,
        "a verifying client accepted the self-signed certificate"
    );
    // A restart keeps the certificate.
    drop(member);
    member = TlsMember {
        child: start(),
        endpoint: client,
        _data: tempfile::tempdir().expect("unused"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out) = etcdctl(
            &member.endpoint,
            &insecure,
            &["get", "auto", "--print-value-only"],
        );
        if ok {
            assert_eq!(out, "tls\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no get after restart within 30 s: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        std::fs::read(&cert).expect("certificate"),
        first,
        "regenerated"
    );
}

#[test]
fn idle_connections_do_not_block_tls_handshakes_and_metrics_urls_serve_no_api() {
    if !have_etcdctl() {
        eprintln!("SKIPPED: etcdctl is not installed (scripts/test.sh installs it)");
        return;
    }
    let pki = Pki::new();
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut member = start_with(&pki, &[format!("--listen-metrics-urls=http://{metrics}")]);
    let client = member.endpoint.clone();
    let full = vec![
        pki.arg("cacert", "ca.pem"),
        pki.arg("cert", "client.pem"),
        pki.arg("key", "client-key.pem"),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !etcdctl(&member.endpoint, &full, &["put", "k", "v"]).0 {
        assert!(Instant::now() < deadline, "no put within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Hundreds of connections that never start a handshake: a real client still gets in.
    let addr = client.trim_start_matches("https://");
    let idle: Vec<std::net::TcpStream> = (0..300)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    assert!(idle.len() > 200, "opened {} idle connections", idle.len());
    // (etcdctl gives up after --command-timeout=5s, before idle handshakes time out at 10 s.)
    let (ok, out) = etcdctl(&member.endpoint, &full, &["get", "k", "--print-value-only"]);
    assert!(ok && out == "v\n", "served past idle connections: {out}");
    drop(idle);
    // The metrics URL serves /metrics and /health, and none of the API (it is plain text,
    // outside --client-cert-auth).
    let body = quorum_tests::http_get(&metrics, "/metrics").expect("GET /metrics");
    assert!(body.contains("etcd_server_has_leader"), "{body}");
    let (ok, out) = etcdctl(&format!("http://{metrics}"), &[], &["get", "k"]);
    assert!(
        !ok,
        "the metrics URL served the KV API without a certificate: {out}"
    );
    let _ = member.child.kill();
}
