//! JWT auth tokens (`--auth-token jwt,pub-key=...,priv-key=...,sign-method=ES256`) on a
//! three-member cluster: etcdctl authenticates and writes; a token issued by one member is
//! accepted by another (nothing is replicated: the signature is checked); a token from before
//! an auth change is refused as old, a tampered one as invalid. Skipped, with a notice, when
//! etcdctl or curl is missing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use quorum_tests::{have_etcdctl, Cluster};

fn etcdctl(endpoint: &str, args: &[&str]) -> (bool, String) {
    quorum_tests::run_etcdctl(endpoint, &[], args)
}

/// POSTs JSON to the member's gateway with an optional token; returns the body.
fn gateway(endpoint: &str, path: &str, token: Option<&str>, body: &str) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "5", "-X", "POST"]);
    if let Some(t) = token {
        cmd.arg("-H").arg(format!("Authorization: {t}"));
    }
    let out = cmd
        .arg("-d")
        .arg(body)
        .arg(format!("http://{endpoint}{path}"))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn token_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON");
    v["token"].as_str().expect("a token").to_string()
}

#[test]
fn jwt_tokens_work_on_every_member_and_expire_with_auth_changes() {
    if !have_etcdctl() || Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIPPED: etcdctl or curl is not installed (scripts/test.sh installs etcdctl)");
        return;
    }
    let keys = tempfile::tempdir().expect("temp dir");
    let pair = rcgen::KeyPair::generate().expect("ECDSA P-256 key");
    let (private, public) = (keys.path().join("jwt.key"), keys.path().join("jwt.pub"));
    std::fs::write(&private, pair.serialize_pem()).expect("write key");
    std::fs::write(&public, pair.public_key_pem()).expect("write key");
    let flag = format!(
        "--auth-token=jwt,pub-key={},priv-key={},sign-method=ES256,ttl=5m",
        public.display(),
        private.display()
    );
    let cluster = Cluster::start(
        Path::new(env!("CARGO_BIN_EXE_quorum-test-server")),
        3,
        &[flag.as_str()],
    );
    let eps = cluster.endpoints();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !etcdctl(&eps[0], &["user", "add", "root:rootpw"]).0 {
        assert!(Instant::now() < deadline, "no user add within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    for args in [
        &["user", "grant-role", "root", "root"][..],
        &["user", "add", "bob:bobpw"],
        &["auth", "enable"],
    ] {
        let (ok, out) = etcdctl(&eps[0], args);
        assert!(ok, "{args:?}: {out}");
    }
    let (ok, out) = etcdctl(&eps[1], &["--user", "root:rootpw", "put", "k", "v"]);
    assert!(ok, "put with a JWT: {out}");

    // A token member 0 issued works on member 2, which never saw it.
    let auth = r#"{"name":"root","password":"rootpw"}"#;
    let token = token_of(&gateway(&eps[0], "/v3/auth/authenticate", None, auth));
    assert_eq!(token.matches('.').count(), 2, "a JWT: {token}");
    let range = r#"{"key":"aw=="}"#;
    let body = gateway(&eps[2], "/v3/kv/range", Some(&token), range);
    assert!(
        body.contains(r#""value":"dg==""#),
        "read with another member's token: {body}"
    );
    // Tampered: refused.
    let tampered = format!("{token}x");
    let body = gateway(&eps[2], "/v3/kv/range", Some(&tampered), range);
    assert!(body.contains("invalid auth token"), "{body}");
    // Any auth change (a new role) makes tokens issued before it old, as in etcd.
    let (ok, out) = etcdctl(
        &eps[0],
        &["--user", "root:rootpw", "role", "add", "readers"],
    );
    assert!(ok, "role add: {out}");
    let changed = Instant::now() + Duration::from_secs(10);
    loop {
        let body = gateway(&eps[2], "/v3/kv/range", Some(&token), range);
        if body.contains("revision of auth store is old") {
            break;
        }
        assert!(
            Instant::now() < changed,
            "the old token still works: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let fresh = token_of(&gateway(&eps[1], "/v3/auth/authenticate", None, auth));
    let body = gateway(&eps[2], "/v3/kv/range", Some(&fresh), range);
    assert!(
        body.contains(r#""value":"dg==""#),
        "a fresh token works: {body}"
    );
}
