//! Joining a running cluster (`--initial-cluster-state existing`, after `member add`): the new
//! member asks the peers named in `--initial-cluster` for the cluster id and the current
//! membership, finds its own id there (by its advertised peer URLs) and records both. It never
//! bootstraps a cluster of its own; its log then fills from the leader (entries or a snapshot).

use std::time::{Duration, Instant};

use quorum_api::peer::peer_client::PeerClient;
use quorum_api::peer::JoinRequest;
use tracing::{info, warn};

use crate::config::Config;
use crate::membership::Registry;
use crate::server::{ClusterFile, StartError};

/// How long a joining member keeps asking its peers before giving up.
pub const JOIN_DEADLINE: Duration = Duration::from_secs(15);
/// Timeout of one attempt on one peer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks the peers of `--initial-cluster` (other than this member) for the cluster this member
/// was added to; returns the cluster file to record.
pub async fn join(cfg: &Config) -> Result<ClusterFile, StartError> {
    let own: std::collections::BTreeSet<&str> =
        cfg.advertise_peer_urls.iter().map(String::as_str).collect();
    let peers: Vec<String> = cfg
        .initial_cluster
        .iter()
        .flat_map(|m| m.peer_urls.iter())
        .filter(|u| !own.contains(u.as_str()))
        .cloned()
        .collect();
    if peers.is_empty() {
        return Err(StartError(
            "--initial-cluster-state=existing needs --initial-cluster to name the running \
             members (as `member add` prints it)"
                .into(),
        ));
    }
    let deadline = Instant::now() + JOIN_DEADLINE;
    let mut last_error = String::from("no peer answered");
    loop {
        for url in &peers {
            match ask(url, cfg).await {
                Ok(cf) => return Ok(cf),
                Err(Fatal(e)) => return Err(StartError(e)),
                Err(Retry(e)) => {
                    warn!("asking {url} for the cluster membership: {e}");
                    last_error = e;
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(StartError(format!(
                "cannot fetch the cluster membership from the peers {peers:?}: {last_error}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

enum AskError {
    Retry(String),
    Fatal(String),
}
use AskError::{Fatal, Retry};

async fn ask(url: &str, cfg: &Config) -> Result<ClusterFile, AskError> {
    let tls = match &cfg.peer_tls {
        Some(t) => Some(crate::tls::peer_client_config(t).map_err(Fatal)?),
        None => None,
    };
    let endpoint = crate::transport::peer_endpoint(url, tls.as_ref())
        .ok_or_else(|| Fatal(format!("cannot connect to peer URL {url} (see the log)")))?
        .connect_timeout(ATTEMPT_TIMEOUT)
        .timeout(ATTEMPT_TIMEOUT);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| Retry(format!("unreachable: {e}")))?;
    let mut client = PeerClient::new(channel);
    let resp = client
        .join(JoinRequest {
            peer_urls: cfg.advertise_peer_urls.clone(),
            name: cfg.name.clone(),
        })
        .await
        .map_err(|s| match s.code() {
            // The peer may not have applied the addition yet: retry until the deadline.
            tonic::Code::NotFound => Retry(format!(
                "{} (this member's --initial-advertise-peer-urls must be those given to \
                 `member add`)",
                s.message()
            )),
            tonic::Code::InvalidArgument => Fatal(s.message().to_string()),
            _ => Retry(s.message().to_string()),
        })?
        .into_inner();
    let membership = resp
        .membership
        .ok_or_else(|| Retry("answer without a membership".into()))?;
    let registry = Registry::from_proto(membership).map_err(|e| Retry(e.to_string()))?;
    let me = registry
        .member(resp.member_id)
        .ok_or_else(|| Retry("the answer does not list this member".into()))?;
    if me.peer_urls.len() != cfg.advertise_peer_urls.len() {
        return Err(Retry("the answer names another member".into()));
    }
    if registry.members().len() != cfg.initial_cluster.len() {
        warn!(
            "--initial-cluster names {} members but the cluster has {}; using the cluster's",
            cfg.initial_cluster.len(),
            registry.members().len()
        );
    }
    info!(
        "joining cluster {:x} as member {:x} ({} members)",
        resp.cluster_id,
        resp.member_id,
        registry.members().len()
    );
    let identity = ClusterFile {
        cluster_id: resp.cluster_id,
        member_id: resp.member_id,
        name: cfg.name.clone(),
        token: cfg.initial_cluster_token.clone(),
        members: Vec::new(),
        removed: Vec::new(),
        applied_index: 0,
        initial_voters: Vec::new(),
        refused_conf_changes: Vec::new(),
    };
    Ok(identity.with_registry(&registry))
}
