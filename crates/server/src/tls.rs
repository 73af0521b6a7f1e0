//! TLS of the client listeners: etcd's PEM files (`--cert-file`, `--key-file`,
//! `--trusted-ca-file`, `--client-cert-auth`) made into a rustls server configuration that
//! offers HTTP/2 and HTTP/1.1 (gRPC clients, and the JSON gateway's HTTP/1.1 clients such as
//! Python's `requests`, which offer only `http/1.1`), and an accept stream that runs the
//! handshakes concurrently and bounded.

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

use crate::config::ClientTls;

/// A client that has not finished its TLS handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once per listener; more connections wait to be handshaken.
pub const MAX_CONCURRENT_HANDSHAKES: usize = 128;

/// The acceptor for `t`'s files; errors name the file and what is wrong with it.
pub fn acceptor(t: &ClientTls) -> Result<TlsAcceptor, String> {
    let read = |flag: &str, path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| format!("{flag} {}: {e}; give a readable PEM file", path.display()))
    };
    let pem_err = |flag: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        format!("{flag} {}: not a usable PEM file: {e}", path.display())
    };
    let certs = CertificateDer::pem_slice_iter(&read("--cert-file", &t.cert_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err("--cert-file", &t.cert_file, &e))?;
    if certs.is_empty() {
        return Err(format!(
            "--cert-file {}: no CERTIFICATE in it",
            t.cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&read("--key-file", &t.key_file)?)
        .map_err(|e| pem_err("--key-file", &t.key_file, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match &t.trusted_ca_file {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&read("--trusted-ca-file", ca)?) {
                let cert = cert.map_err(|e| pem_err("--trusted-ca-file", ca, &e))?;
                roots
                    .add(cert)
                    .map_err(|e| pem_err("--trusted-ca-file", ca, &e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if t.client_cert_auth {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| pem_err("--trusted-ca-file", ca, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("--cert-file/--key-file: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connections of `listener`, TLS-handshaken with `acceptor`; failed and timed-out
/// handshakes are dropped (logged at debug level).
pub fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
    tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .filter_map(|tcp| async move { tcp.ok() })
        .map(move |tcp| {
            let acceptor = acceptor.clone();
            async move { tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await }
        })
        .buffer_unordered(MAX_CONCURRENT_HANDSHAKES)
        .filter_map(|r| async move {
            match r {
                Ok(Ok(stream)) => Some(Ok(stream)),
                Ok(Err(e)) => {
                    debug!("TLS handshake failed: {e}");
                    None
                }
                Err(_) => {
                    debug!("TLS handshake timed out");
                    None
                }
            }
        })
}
