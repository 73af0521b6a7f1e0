//! TLS with etcd's PEM files. Client listeners (`--cert-file`, `--key-file`,
//! `--trusted-ca-file`, `--client-cert-auth`): a rustls server configuration that offers
//! HTTP/2 and HTTP/1.1 (gRPC clients, and the JSON gateway's HTTP/1.1 clients such as Python's
//! `requests`, which offer only `http/1.1`). Peer listeners (the same flags with `--peer-`):
//! HTTP/2 only; and the configuration this member connects to `https://` peers with (their
//! certificate verified against `--peer-trusted-ca-file`, ours presented as the client
//! certificate, as etcd does). An accept stream runs the handshakes concurrently and bounded.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use crate::config::TlsFiles;

/// The flag names a TLS configuration came from, for error messages.
#[derive(Clone, Copy, Debug)]
pub struct TlsFlags {
    /// The certificate flag.
    pub cert: &'static str,
    /// The private key flag.
    pub key: &'static str,
    /// The CA flag.
    pub ca: &'static str,
    /// Whether HTTP/1.1 is offered besides HTTP/2 (client listeners: the JSON gateway).
    pub http1: bool,
}

/// The client port's flags.
pub const CLIENT_FLAGS: TlsFlags = TlsFlags {
    cert: "--cert-file",
    key: "--key-file",
    ca: "--trusted-ca-file",
    http1: true,
};

/// The peer port's flags.
pub const PEER_FLAGS: TlsFlags = TlsFlags {
    cert: "--peer-cert-file",
    key: "--peer-key-file",
    ca: "--peer-trusted-ca-file",
    http1: false,
};

fn read(flag: &str, path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path)
        .map_err(|e| format!("{flag} {}: {e}; give a readable PEM file", path.display()))
}

fn pem_err(flag: &str, path: &std::path::Path, e: &dyn std::fmt::Display) -> String {
    format!("{flag} {}: not a usable PEM file: {e}", path.display())
}

/// How this member connects to `https://` peers: `t`'s CA verifies them, `t`'s certificate is
/// presented as the client certificate. Files are read and checked now, so a bad one is
/// reported at start.
pub fn peer_client_config(t: &TlsFiles) -> Result<tonic::transport::ClientTlsConfig, String> {
    let f = PEER_FLAGS;
    let ca_path = t
        .trusted_ca_file
        .as_ref()
        .ok_or_else(|| format!("https:// peer URLs need {}", f.ca))?;
    let ca = read(f.ca, ca_path)?;
    let cert = read(f.cert, &t.cert_file)?;
    let key = read(f.key, &t.key_file)?;
    let config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
        .identity(tonic::transport::Identity::from_pem(cert, key));
    // tonic parses the files when an endpoint takes the configuration: do it once now.
    tonic::transport::Endpoint::from_static("https://127.0.0.1")
        .tls_config(config.clone())
        .map_err(|e| {
            format!(
                "{} {} / {} {} / {} {}: {e}",
                f.cert,
                t.cert_file.display(),
                f.key,
                t.key_file.display(),
                f.ca,
                ca_path.display()
            )
        })?;
    Ok(config)
}

/// A client that has not finished its TLS handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const READY_CONNECTIONS: usize = 128;

/// Writes a self-signed certificate for `hosts` (and `localhost`) valid `years` to `t`'s
/// files unless both exist (etcd's `--auto-tls`, which keeps them in the data dir too).
pub fn ensure_self_signed(t: &TlsFiles, hosts: &[String], years: u32) -> Result<(), String> {
    if t.cert_file.exists() && t.key_file.exists() {
        return Ok(());
    }
    let mut names: Vec<String> = hosts.to_vec();
    names.push("localhost".to_string());
    names.sort();
    names.dedup();
    let mut params = rcgen::CertificateParams::new(names)
        .map_err(|e| format!("--auto-tls: cannot make a certificate: {e}"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "quorum");
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now + Duration::from_secs(u64::from(years) * 365 * 24 * 3600)).into();
    let key =
        rcgen::KeyPair::generate().map_err(|e| format!("--auto-tls: cannot make a key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("--auto-tls: cannot sign the certificate: {e}"))?;
    if let Some(dir) = t.cert_file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("--auto-tls: cannot create {}: {e}", dir.display()))?;
    }
    let write = |path: &std::path::Path, pem: String| {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| f.write_all(pem.as_bytes()))
            .map_err(|e| format!("--auto-tls: cannot write {}: {e}", path.display()))
    };
    write(&t.key_file, key.serialize_pem())?;
    write(&t.cert_file, cert.pem())
}

/// The acceptor for `t`'s files (given with the flags `f`); errors name the flag, the file
/// and what is wrong with it.
pub fn acceptor(t: &TlsFiles, f: TlsFlags) -> Result<TlsAcceptor, String> {
    let certs = CertificateDer::pem_slice_iter(&read(f.cert, &t.cert_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(f.cert, &t.cert_file, &e))?;
    if certs.is_empty() {
        return Err(format!(
            "{} {}: no CERTIFICATE in it",
            f.cert,
            t.cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(f.key, &t.key_file)?)
        .map_err(|e| pem_err(f.key, &t.key_file, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match &t.trusted_ca_file {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&read(f.ca, ca)?) {
                let cert = cert.map_err(|e| pem_err(f.ca, ca, &e))?;
                roots.add(cert).map_err(|e| pem_err(f.ca, ca, &e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if t.client_cert_auth {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|e| pem_err(f.ca, ca, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}/{}: {e}", f.cert, f.key))?;
    config.alpn_protocols = if f.http1 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec()]
    };
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connections of `listener`, TLS-handshaken with `acceptor`; failed and timed-out
/// handshakes are dropped (logged at debug level). Each handshake runs in its own task, so
/// connections that never complete theirs (held open by anyone, unauthenticated) cost a task
/// each for at most [`HANDSHAKE_TIMEOUT`] and never hold up the others: no handshake slot can
/// be exhausted. Accepting stops when the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<TlsStream<TcpStream>>(READY_CONNECTIONS);
    tokio::spawn(async move {
        let mut tcp =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        loop {
            let conn = tokio::select! {
                _ = tx.closed() => return,
                conn = tcp.next() => conn,
            };
            let Some(conn) = conn else { return };
            let Ok(conn) = conn else { continue };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(conn)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(stream).await;
                    }
                    Ok(Err(e)) => debug!("TLS handshake failed: {e}"),
                    Err(_) => debug!("TLS handshake timed out"),
                }
            });
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|stream| (Ok(stream), rx))
    })
}
