//! Connections to the cluster: endpoint parsing, dialing with a timeout, and unary calls bounded
//! by the command timeout.

use std::future::Future;
use std::time::Duration;

use quorum_api::etcdserverpb::{
    cluster_client::ClusterClient, kv_client::KvClient, lease_client::LeaseClient,
    maintenance_client::MaintenanceClient, watch_client::WatchClient,
};
use quorum_api::v3electionpb::election_client::ElectionClient;
use quorum_api::v3lockpb::lock_client::LockClient;
use tonic::transport::{Channel, Endpoint};

use crate::args::Global;
use crate::error::{CliError, Result};

/// Largest response accepted from a server (a big range or a snapshot chunk).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;
/// Largest request sent (etcd refuses more than --max-request-bytes anyway).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;
/// Most endpoints accepted on one command line.
pub const MAX_ENDPOINTS: usize = 64;

/// Turns `host:port` into `http://host:port`; refuses what tonic cannot dial.
pub fn endpoint_url(endpoint: &str) -> Result<String> {
    let e = endpoint.trim();
    let bad = |detail: &str| CliError::BadEndpoint {
        endpoint: endpoint.to_string(),
        detail: detail.to_string(),
    };
    if e.is_empty() {
        return Err(bad("empty"));
    }
    if e.starts_with("https://") || e.starts_with("unixs://") {
        return Err(bad("TLS endpoints are not supported by quorumctl yet"));
    }
    let url = if e.contains("://") {
        e.to_string()
    } else {
        format!("http://{e}")
    };
    if !url.starts_with("http://") {
        return Err(bad("only http:// endpoints are supported"));
    }
    Endpoint::from_shared(url.clone()).map_err(|err| bad(&err.to_string()))?;
    Ok(url)
}

/// An open connection to one endpoint, with the timeouts of the command line.
#[derive(Clone)]
pub struct Conn {
    channel: Channel,
    /// All endpoints of the command line, comma-separated (for error messages).
    pub endpoints: String,
    /// The per-request timeout.
    pub command_timeout: Duration,
}

impl Conn {
    /// Connects to the first endpoint of `global` that answers within the dial timeout.
    pub async fn first(global: &Global) -> Result<Conn> {
        check_endpoint_count(&global.endpoints)?;
        let all = global.endpoints.join(",");
        let mut last = String::from("no endpoint given");
        for ep in &global.endpoints {
            match Conn::to(ep, global).await {
                Ok(c) => return Ok(c),
                Err(CliError::Connect { detail, .. }) if global.endpoints.len() == 1 => {
                    last = detail
                }
                Err(CliError::Connect { detail, .. }) => last = format!("{ep}: {detail}"),
                Err(e) => return Err(e),
            }
        }
        Err(CliError::Connect {
            endpoints: all,
            detail: last,
        })
    }

    /// Connects to one endpoint.
    pub async fn to(endpoint: &str, global: &Global) -> Result<Conn> {
        let url = endpoint_url(endpoint)?;
        let connect_err = |detail: String| CliError::Connect {
            endpoints: endpoint.to_string(),
            detail,
        };
        let ep = Endpoint::from_shared(url)
            .map_err(|e| connect_err(e.to_string()))?
            .connect_timeout(global.dial_timeout)
            .tcp_nodelay(true);
        let channel = match tokio::time::timeout(global.dial_timeout, ep.connect()).await {
            Ok(Ok(ch)) => ch,
            Ok(Err(e)) => return Err(connect_err(error_chain(&e))),
            Err(_) => {
                return Err(connect_err(format!(
                    "no answer within --dial-timeout {:?}",
                    global.dial_timeout
                )))
            }
        };
        Ok(Conn {
            channel,
            endpoints: global.endpoints.join(","),
            command_timeout: global.command_timeout,
        })
    }

    /// Runs one unary call within the command timeout and maps its errors.
    pub async fn call<T>(
        &self,
        what: &'static str,
        fut: impl Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.command_timeout, fut).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(status)) => Err(self.status(status)),
            Err(_) => Err(CliError::Timeout {
                what,
                timeout: self.command_timeout,
            }),
        }
    }

    /// Maps a gRPC status of this connection.
    pub fn status(&self, status: tonic::Status) -> CliError {
        CliError::from_status(status, &self.endpoints)
    }

    /// KV client.
    pub fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .max_encoding_message_size(MAX_REQUEST_BYTES)
    }
    /// Watch client.
    pub fn watch(&self) -> WatchClient<Channel> {
        WatchClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .max_encoding_message_size(MAX_REQUEST_BYTES)
    }
    /// Lease client.
    pub fn lease(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .max_encoding_message_size(MAX_REQUEST_BYTES)
    }
    /// Cluster client.
    pub fn cluster(&self) -> ClusterClient<Channel> {
        ClusterClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .max_encoding_message_size(MAX_REQUEST_BYTES)
    }
    /// Maintenance client.
    pub fn maintenance(&self) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .max_encoding_message_size(MAX_REQUEST_BYTES)
    }
    /// Lock client.
    pub fn lock(&self) -> LockClient<Channel> {
        LockClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .max_encoding_message_size(MAX_REQUEST_BYTES)
    }
    /// Election client.
    pub fn election(&self) -> ElectionClient<Channel> {
        ElectionClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .max_encoding_message_size(MAX_REQUEST_BYTES)
    }
}

/// Refuses an empty or absurdly long endpoint list.
pub fn check_endpoint_count(endpoints: &[String]) -> Result<()> {
    if endpoints.is_empty() {
        return Err(CliError::usage(
            "no endpoint given: use --endpoints host:port",
        ));
    }
    if endpoints.len() > MAX_ENDPOINTS {
        return Err(CliError::usage(format!(
            "too many endpoints ({}, at most {MAX_ENDPOINTS})",
            endpoints.len()
        )));
    }
    Ok(())
}

/// The messages of an error and its causes, joined (tonic's own message is terse).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        assert_eq!(
            endpoint_url("127.0.0.1:2379").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(endpoint_url("http://h:1").unwrap(), "http://h:1");
        assert!(endpoint_url("https://h:1").is_err());
        assert!(endpoint_url("").is_err());
        assert!(endpoint_url("ftp://h:1").is_err());
    }
}
