//! Starting and stopping a member: the data directory, the WAL and store, the core thread, the
//! peer and client listeners, and the graceful shutdown (a leader hands leadership over first).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

use quorum_raft::{ConfState, NodeId};
use quorum_storage::{Identity, LogStore, RealFs, WalMetrics, WalOptions};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{ClusterState, Config};
use crate::core::{Core, CoreConfig};
use crate::ids;
use crate::member::Member;
use crate::membership::Registry;
use crate::metrics::Metrics;
use crate::shell::{Limits, Shared};

/// Why a member could not start; worded for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// The Raft group every member runs today (Multi-Raft will add more).
pub const DEFAULT_GROUP: u64 = 1;

/// The cluster's identity and membership as this member last applied it (written at bootstrap
/// or join, then after every applied membership change); on restart it is authoritative (the
/// `--initial-*` flags are then ignored, as etcd does).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterFile {
    /// Cluster id.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
    /// This member's name.
    pub name: String,
    /// The initial cluster token.
    pub token: String,
    /// Every member, as of `applied_index`.
    pub members: Vec<ClusterFileMember>,
    /// Members removed for good (they may not come back).
    #[serde(default)]
    pub removed: Vec<u64>,
    /// Index of the last log entry the membership reflects (0 before any change).
    #[serde(default)]
    pub applied_index: u64,
    /// The voters the cluster was bootstrapped with (empty in files written before membership
    /// changes existed: then every member is an initial voter).
    #[serde(default)]
    pub initial_voters: Vec<u64>,
    /// Recently refused ConfChange entries (see `membership::Registry`).
    #[serde(default)]
    pub refused_conf_changes: Vec<u64>,
}

impl ClusterFile {
    /// The member registry this file records.
    pub fn registry(&self) -> Result<Registry, StartError> {
        let initial_voters = if self.initial_voters.is_empty() && self.applied_index == 0 {
            self.members.iter().map(|m| m.id).collect()
        } else {
            self.initial_voters.clone()
        };
        let proto = quorum_api::internal::Membership {
            members: self
                .members
                .iter()
                .map(|m| quorum_api::internal::Member {
                    id: m.id,
                    name: m.name.clone(),
                    peer_urls: m.peer_urls.clone(),
                    client_urls: m.client_urls.clone(),
                    is_learner: m.is_learner,
                })
                .collect(),
            removed: self.removed.clone(),
            cluster_version: String::new(),
            applied_index: self.applied_index,
            initial_voters,
            refused_conf_changes: self.refused_conf_changes.clone(),
        };
        Registry::from_proto(proto)
            .map_err(|e| StartError(format!("the cluster file is inconsistent: {e}")))
    }

    /// This file with its membership replaced by `registry`'s.
    pub fn with_registry(&self, registry: &Registry) -> ClusterFile {
        let p = registry.to_proto();
        ClusterFile {
            members: p
                .members
                .into_iter()
                .map(|m| ClusterFileMember {
                    id: m.id,
                    name: m.name,
                    peer_urls: m.peer_urls,
                    client_urls: m.client_urls,
                    is_learner: m.is_learner,
                })
                .collect(),
            removed: p.removed,
            applied_index: p.applied_index,
            initial_voters: p.initial_voters,
            refused_conf_changes: p.refused_conf_changes,
            ..self.clone()
        }
    }
}

/// Where and under which identity the shell persists the registry after every change.
#[derive(Debug, Clone)]
pub struct ClusterFileTarget {
    path: PathBuf,
    identity: ClusterFile,
}

impl ClusterFileTarget {
    /// Writes `registry` atomically (temporary file, fsync, rename, fsync of the directory).
    pub fn write(&self, registry: &Registry) -> Result<(), StartError> {
        write_cluster_file(&self.path, &self.identity.with_registry(registry))
    }
}

/// One member in [`ClusterFile`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterFileMember {
    /// Member id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs (known for this member; published by the others when they start).
    pub client_urls: Vec<String>,
    /// True for a learner.
    #[serde(default)]
    pub is_learner: bool,
}

fn read_cluster_file(path: &Path) -> Result<Option<ClusterFile>, StartError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            StartError(format!(
                "{} is corrupt ({e}); restore the data directory from a backup or remove it \
                 to rejoin as a new member",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StartError(format!("reading {}: {e}", path.display()))),
    }
}

fn write_cluster_file(path: &Path, cf: &ClusterFile) -> Result<(), StartError> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(cf)
        .map_err(|e| StartError(format!("encoding cluster file: {e}")))?;
    let io = |e: std::io::Error| StartError(format!("writing {}: {e}", path.display()));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// A running member: its handle, bound addresses, and the means to stop it.
pub struct RunningMember {
    /// The handle the services use.
    pub member: Member,
    /// Bound client addresses.
    pub client_addrs: Vec<SocketAddr>,
    /// Bound peer addresses.
    pub peer_addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    core_thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    election_timeout: Duration,
    heartbeat: Duration,
    /// Held (locked) for the member's lifetime.
    _lock: std::fs::File,
}

async fn bind_all(addrs: &[String], what: &str) -> Result<Vec<TcpListener>, StartError> {
    let mut out = Vec::new();
    for a in addrs {
        let l = TcpListener::bind(a).await.map_err(|e| {
            StartError(format!(
                "cannot listen for {what} on {a}: {e} (is another member or etcd already \
                 running there? choose another port with --listen-{what}-urls)"
            ))
        })?;
        out.push(l);
    }
    Ok(out)
}

/// Serves `router` on `l` (TLS-handshaken with `tls` when given) until `shutdown` turns true.
async fn serve(
    router: tonic::transport::server::Router,
    l: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
    what: &'static str,
) {
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    let res = match tls {
        Some(acceptor) => {
            router
                .serve_with_incoming_shutdown(crate::tls::incoming(l, acceptor), stop)
                .await
        }
        None => {
            let incoming = tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true));
            router.serve_with_incoming_shutdown(incoming, stop).await
        }
    };
    if let Err(e) = res {
        warn!("{what} listener stopped: {e}");
    }
}

/// Starts a member as configured. Returns once it listens; it runs until [`RunningMember::stop`].
pub async fn start(cfg: Config) -> Result<RunningMember, StartError> {
    let member_dir = cfg.data_dir.join("member");
    std::fs::create_dir_all(&member_dir).map_err(|e| {
        StartError(format!(
            "cannot create data dir {}: {e}",
            member_dir.display()
        ))
    })?;
    // One process per data dir: a second member on the same files would corrupt them.
    let lock_path = member_dir.join("lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StartError(format!("cannot open {}: {e}", lock_path.display())))?;
    if let Err(e) = lock_file.try_lock() {
        return Err(StartError(format!(
            "data dir {} is in use by another process ({e}); stop it or choose another \
             --data-dir",
            cfg.data_dir.display()
        )));
    }
    let cluster_path = member_dir.join("cluster.json");
    let existing = read_cluster_file(&cluster_path)?;
    let fresh = existing.is_none();
    let mut joined = false;
    let cf = match existing {
        Some(cf) => {
            if cf.name != cfg.name {
                warn!(
                    "data dir belongs to member {:?}, started as {:?}; using the data dir's name",
                    cf.name, cfg.name
                );
            }
            if cf.token != cfg.initial_cluster_token {
                return Err(StartError(format!(
                    "data dir {} belongs to cluster token {:?}, but --initial-cluster-token is \
                     {:?}; use the right data dir or token",
                    cfg.data_dir.display(),
                    cf.token,
                    cfg.initial_cluster_token
                )));
            }
            cf
        }
        None if cfg.initial_cluster_state == ClusterState::Existing => {
            joined = true;
            crate::join::join(&cfg).await?
        }
        None => {
            let (ids, cluster_id) =
                ids::initial_ids(&cfg.initial_cluster, &cfg.initial_cluster_token);
            let member_id = ids::member_id(&cfg.advertise_peer_urls, &cfg.initial_cluster_token);
            let members = cfg
                .initial_cluster
                .iter()
                .zip(ids)
                .map(|(m, id)| ClusterFileMember {
                    id,
                    name: m.name.clone(),
                    peer_urls: m.peer_urls.clone(),
                    // Every member starts from the same registry; each publishes its client
                    // URLs through Raft once it runs.
                    client_urls: Vec::new(),
                    is_learner: false,
                })
                .collect();
            ClusterFile {
                cluster_id,
                member_id,
                name: cfg.name.clone(),
                token: cfg.initial_cluster_token.clone(),
                members,
                removed: Vec::new(),
                applied_index: 0,
                initial_voters: Vec::new(),
                refused_conf_changes: Vec::new(),
            }
        }
    };
    let registry = cf.registry()?;
    if registry.is_removed(cf.member_id) {
        return Err(StartError(format!(
            "member {:x} has been permanently removed from the cluster; remove its data dir \
             {} (and add it again with `member add` to rejoin)",
            cf.member_id,
            cfg.data_dir.display()
        )));
    }
    let metrics = Metrics::new().map_err(|e| StartError(format!("registering metrics: {e}")))?;
    let wal_metrics = WalMetrics::new()
        .and_then(|m| m.register(&metrics.registry).map(|_| m))
        .map_err(|e| StartError(format!("registering WAL metrics: {e}")))?;
    let identity = Identity {
        cluster_id: cf.cluster_id,
        member_id: cf.member_id,
    };
    let wal_opts = WalOptions {
        metrics: Some(wal_metrics),
        ..WalOptions::default()
    };
    let (mut log, recovered) =
        LogStore::open(RealFs, &cfg.wal_dir, identity, wal_opts).map_err(|e| {
            StartError(format!(
                "cannot open the WAL in {}: {e}",
                cfg.wal_dir.display()
            ))
        })?;
    if let Some(torn) = &recovered.torn_tail {
        warn!("WAL had a torn tail, repaired: {torn:?}");
    }
    let db_path = member_dir.join("db");
    let store_opts = quorum_mvcc::StoreOptions {
        quota_bytes: cfg.quota_backend_bytes,
        // The WAL is the source of truth: store commits need no fsync of their own; the store
        // is flushed before the log behind it is compacted, and replay skips what it has.
        durable: false,
        max_txn_ops: cfg.max_txn_ops as usize,
        ..quorum_mvcc::StoreOptions::default()
    };
    match (&cfg.restore_snapshot, fresh) {
        // Before the cluster file is written: a start interrupted in between restores again.
        (Some(file), true) => crate::restore::restore_store(&db_path, file, store_opts.clone())?,
        (Some(file), false) => warn!(
            "the data dir already holds member {:x}: --restore-snapshot {} is ignored",
            cf.member_id,
            file.display()
        ),
        (None, _) => {}
    }
    if fresh || log.conf_state().voters.is_empty() && log.last_index() == 0 {
        // A joining member replays the log from its first entry (or gets a snapshot): it
        // starts from the configuration the cluster was bootstrapped with.
        let voters: Vec<NodeId> = registry.initial_voters().to_vec();
        log.set_conf_state(ConfState {
            voters,
            ..ConfState::default()
        })
        .and_then(|_| log.sync().map(|_| ()))
        .map_err(|e| StartError(format!("bootstrapping the WAL: {e}")))?;
        write_cluster_file(&cluster_path, &cf)?;
        if joined {
            info!(
                "member {:x} joins cluster {:x} ({} members)",
                cf.member_id,
                cf.cluster_id,
                cf.members.len()
            );
        } else {
            info!(
                "bootstrapped member {:x} of new cluster {:x} with {} members",
                cf.member_id,
                cf.cluster_id,
                cf.members.len()
            );
        }
    }
    let store =
        Arc::new(quorum_mvcc::Store::open(&db_path, store_opts).map_err(|e| {
            StartError(format!("cannot open the store {}: {e}", db_path.display()))
        })?);

    let tick = cfg.heartbeat_interval;
    let tick_ms = tick.as_millis().max(1) as u64;
    let election_tick = (cfg.election_timeout.as_millis() as u64 / tick_ms).max(2) as usize;
    let core_cfg = CoreConfig {
        member_id: cf.member_id,
        group_id: DEFAULT_GROUP,
        election_tick,
        heartbeat_tick: 1,
        tick_ms,
        snapshot_count: cfg.snapshot_count,
        snapshot_catchup_entries: cfg.snapshot_catchup_entries,
        seed: cf.member_id ^ std::process::id() as u64,
        max_batch: 4096,
    };
    let core = Core::new(core_cfg, log, store.clone())
        .map_err(|e| StartError(format!("cannot start Raft: {e}")))?
        .with_registry(registry.clone());

    let (inbox_tx, inbox_rx) = std_mpsc::sync_channel(crate::shell::INBOX_CAPACITY);
    // etcd's request timeout: 5 s plus two election timeouts.
    let request_timeout = Duration::from_secs(5) + 2 * cfg.election_timeout;
    let snap_dir = snap_dir(&cfg.data_dir);
    let mut shared = Shared::new(
        cf.member_id,
        cf.cluster_id,
        DEFAULT_GROUP,
        cf.name.clone(),
        store.clone(),
        Limits {
            max_request_bytes: cfg.max_request_bytes as usize,
            max_txn_ops: cfg.max_txn_ops as usize,
            auth_token_ttl: cfg.auth_token_ttl,
            cert_users: cfg.client_tls.as_ref().is_some_and(|t| t.client_cert_auth),
        },
        request_timeout,
        inbox_tx,
        registry.clone(),
        cfg.advertise_client_urls.clone(),
        metrics,
    );
    shared.jwt = match &cfg.jwt {
        Some(o) => Some(Arc::new(
            crate::jwt::JwtTokens::load(o).map_err(StartError)?,
        )),
        None => None,
    };
    shared.peer_tls = match &cfg.peer_tls {
        Some(t) => Some(crate::tls::peer_client_config(t).map_err(StartError)?),
        None => None,
    };
    shared.cluster_file = Some(ClusterFileTarget {
        path: cluster_path.clone(),
        identity: cf.clone(),
    });
    shared.strict_reconfig_check = cfg.strict_reconfig_check;
    if let Ok(mut s) = shared.status.write() {
        s.is_learner = registry.member(cf.member_id).is_some_and(|m| m.is_learner);
    }
    let shared = Arc::new(shared);
    let member = Member {
        inner: shared.clone(),
    };

    // Listeners first, so that a port conflict is reported before anything runs.
    let peer_listeners = bind_all(&cfg.listen_peer, "peer").await?;
    // Read the TLS files before listening: a bad file is reported at once.
    if let (Some(years), Some(t)) = (cfg.auto_tls, &cfg.client_tls) {
        let hosts: Vec<String> = cfg
            .listen_client_tls
            .iter()
            .map(|a| {
                let host = a.rsplit_once(':').map_or(a.as_str(), |(h, _)| h);
                host.trim_matches(|c| c == '[' || c == ']').to_string()
            })
            .collect();
        crate::tls::ensure_self_signed(t, &hosts, years).map_err(StartError)?;
    }
    let client_tls = match &cfg.client_tls {
        Some(t) => Some(crate::tls::acceptor(t, crate::tls::CLIENT_FLAGS).map_err(StartError)?),
        None => None,
    };
    let peer_tls = match &cfg.peer_tls {
        Some(t) => Some(crate::tls::acceptor(t, crate::tls::PEER_FLAGS).map_err(StartError)?),
        None => None,
    };
    let client_listeners = bind_all(&cfg.listen_client, "client").await?;
    let metrics_listeners = bind_all(&cfg.listen_metrics, "metrics").await?;
    let peer_addrs: Vec<SocketAddr> = peer_listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let client_addrs: Vec<SocketAddr> = client_listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();

    shared.peers.sync(&shared, &registry);

    let core_shared = shared.clone();
    // The core thread hands snapshot streams to tokio tasks: it needs the runtime's handle.
    let runtime = tokio::runtime::Handle::current();
    let core_thread = std::thread::Builder::new()
        .name(format!("raft-{:x}", cf.member_id))
        .spawn(move || {
            let _runtime = runtime.enter();
            if let Err(e) = crate::shell::run_core(core, inbox_rx, core_shared, tick) {
                crate::shell::fatal(&e);
            }
        })
        .map_err(|e| StartError(format!("cannot start the Raft thread: {e}")))?;

    // The only voter of a cluster elects itself within one fsync of the core's start: serve
    // clients after that (bounded), so that the first request does not meet `no leader`.
    if registry.is_sole_voter(cf.member_id) {
        for _ in 0..200 {
            if shared.status.read().map(|s| s.leader != 0).unwrap_or(true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    let (shutdown, shutdown_rx) = watch::channel(false);
    // bind_all keeps the order of the addresses, so listeners pair with their URLs.
    let peer_tls_of = |addr: &String| {
        cfg.listen_peer_tls
            .contains(addr)
            .then(|| peer_tls.clone())
            .flatten()
    };
    for (l, tls) in peer_listeners
        .into_iter()
        .zip(cfg.listen_peer.iter().map(peer_tls_of))
    {
        let svc = quorum_api::peer::peer_server::PeerServer::new(
            crate::transport::PeerService::new(shared.clone(), snap_dir.clone()),
        )
        .max_decoding_message_size(crate::transport::MAX_PEER_MESSAGE)
        .max_encoding_message_size(crate::transport::MAX_PEER_MESSAGE);
        let server = tonic::transport::Server::builder().add_service(svc);
        tokio::spawn(serve(server, l, tls, shutdown_rx.clone(), "peer"));
    }
    // One set of gRPC services (one auth gate, whose tokens are this member's) for every
    // client listener and the JSON gateway.
    let grpc = crate::services::routes(member.clone());
    let tls_of = |addr: &String| {
        cfg.listen_client_tls
            .contains(addr)
            .then(|| client_tls.clone())
            .flatten()
    };
    // Metrics listeners serve /metrics, /health and /version only (as etcd's), never the API:
    // they are plain text and outside --client-cert-auth.
    let listeners = client_listeners
        .into_iter()
        .zip(cfg.listen_client.iter().map(tls_of))
        .map(|(l, tls)| (l, tls, true))
        .chain(metrics_listeners.into_iter().map(|l| (l, None, false)));
    for (l, tls, api) in listeners {
        let mut router = crate::http::router(member.clone());
        if api {
            router = grpc.clone().into_axum_router().merge(router);
        }
        if api && cfg.enable_grpc_gateway {
            router = router.merge(crate::gateway::router(
                grpc.clone(),
                usize::try_from(cfg.max_request_bytes).unwrap_or(usize::MAX),
                crate::services::GRPC_OVERHEAD_BYTES,
            ));
        }
        let routes = tonic::service::Routes::from(router);
        let server = tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(routes);
        tokio::spawn(serve(server, l, tls, shutdown_rx.clone(), "client"));
    }
    let policy = match (cfg.auto_compaction_period, cfg.auto_compaction_revisions) {
        (Some(d), _) if !d.is_zero() => Some(crate::compactor::Policy::Periodic(d)),
        (_, Some(n)) if n > 0 => Some(crate::compactor::Policy::Revision(n)),
        _ => None,
    };
    tokio::spawn(crate::housekeeping::run(member.clone()));
    tokio::spawn(shared.clone().publish_attributes());
    if let Some(policy) = policy {
        info!("auto compaction: {policy:?}");
        tokio::spawn(crate::compactor::run(member.clone(), policy));
    }
    info!(
        "member {:x} ({}) of cluster {:x} serving clients on {:?}, peers on {:?}",
        cf.member_id, cf.name, cf.cluster_id, client_addrs, peer_addrs
    );
    Ok(RunningMember {
        member,
        client_addrs,
        peer_addrs,
        shutdown,
        core_thread: Some(core_thread),
        shared,
        election_timeout: cfg.election_timeout,
        heartbeat: cfg.heartbeat_interval,
        _lock: lock_file,
    })
}

impl RunningMember {
    /// Stops the member: a leader of a multi-member cluster first hands leadership to a
    /// follower (so clients see no election timeout), then listeners close and the core thread
    /// ends. Everything acknowledged is already durable.
    pub async fn stop(mut self) {
        let status = self.member.status();
        if status.leader == status.member_id && self.member.members().len() > 1 {
            if let Some(target) = self
                .member
                .members()
                .iter()
                .filter(|m| !m.is_learner)
                .map(|m| m.id)
                .find(|id| *id != status.member_id)
            {
                info!("leader stepping down: transferring leadership to {target:x}");
                let _ = tokio::time::timeout(
                    self.election_timeout * 2,
                    self.member.move_leader(target),
                )
                .await;
            }
        }
        let _ = self.shutdown.send(true);
        self.shared
            .stopped
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.core_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        info!("member {:x} stopped", status.member_id);
    }

    /// This member's id.
    pub fn member_id(&self) -> NodeId {
        self.member.id()
    }

    /// Completes once this member learns it was removed from the cluster (it then no longer
    /// serves and should be stopped).
    pub async fn removed(&self) {
        let mut rx = self.shared.removed.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// How long a removed member waits before stopping, so that the commit of its removal
    /// reaches the others (etcd waits ten heartbeats).
    pub fn removal_grace(&self) -> Duration {
        self.heartbeat * 10
    }
}

/// Where received snapshot images are kept.
pub fn snap_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("snap")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_files_of_earlier_versions_read_as_bootstrap_registries() {
        let old = r#"{"cluster_id":7,"member_id":1,"name":"a","token":"t","members":[
            {"id":1,"name":"a","peer_urls":["http://h:1"],"client_urls":["http://h:11"]},
            {"id":2,"name":"b","peer_urls":["http://h:2"],"client_urls":[]}]}"#;
        let cf: ClusterFile = serde_json::from_str(old).unwrap();
        let r = cf.registry().unwrap();
        assert_eq!(r.initial_voters(), &[1, 2]);
        assert_eq!(r.applied_index(), 0);
        assert!(r.members().iter().all(|m| !m.is_learner));
        // Written back and read again, nothing is lost.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.json");
        let target = ClusterFileTarget {
            path: path.clone(),
            identity: cf.clone(),
        };
        target.write(&r).unwrap();
        let back = read_cluster_file(&path).unwrap().unwrap();
        assert_eq!(back.registry().unwrap(), r);
        assert_eq!((back.cluster_id, back.member_id), (7, 1));
    }

    #[test]
    fn a_corrupt_cluster_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.json");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(read_cluster_file(&path).is_err());
        let bad = ClusterFile {
            cluster_id: 1,
            member_id: 1,
            name: "a".into(),
            token: "t".into(),
            members: vec![ClusterFileMember {
                id: 1,
                name: "a".into(),
                peer_urls: vec![],
                client_urls: vec![],
                is_learner: false,
            }],
            removed: vec![1],
            applied_index: 3,
            initial_voters: vec![1],
            refused_conf_changes: vec![],
        };
        assert!(bad.registry().is_err(), "a removed id listed as a member");
    }
}
