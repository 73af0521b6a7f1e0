//! The tokio shell around the deterministic member core: it owns the sockets, the timers and
//! the thread the core runs on, and turns the core's outputs into completed client requests and
//! peer messages.
//!
//! Threads: the core runs on one dedicated OS thread (it fsyncs, so it must not block the async
//! runtime); everything else is tokio tasks. Requests reach the core through a bounded inbox
//! (a full inbox answers `etcdserver: too many requests` at once); results come back through
//! waiters keyed by request id or token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message as _;
use quorum_api::internal::InternalRaftRequest;
use quorum_mvcc::{Store, WriteResponse};
use quorum_raft::{GroupId, Message, NodeId, NO_NODE};
use tokio::sync::oneshot;
use tracing::error;

use crate::core::{Core, Input, Outbox, Output};
use crate::error::{mvcc_status, ServerError};
use crate::member::{MemberInfo, StatusInfo};
use crate::metrics::Metrics;
use crate::transport::Peers;

/// Request limits enforced by the services.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
    /// `--max-txn-ops`.
    pub max_txn_ops: usize,
}

/// Inputs queued for the core before new requests are refused.
pub const INBOX_CAPACITY: usize = 64 * 1024;

/// What a waiter receives.
#[derive(Debug)]
pub(crate) enum Reply {
    Write(Result<WriteResponse, tonic::Status>),
    Done(Result<(), ServerError>),
    Ttl(Result<Option<i64>, ServerError>),
}

/// State shared between the shell's tasks and the [`crate::member::Member`] handles.
pub struct Shared {
    pub(crate) member_id: NodeId,
    pub(crate) cluster_id: u64,
    pub(crate) group_id: GroupId,
    pub(crate) name: String,
    pub(crate) store: Arc<Store>,
    pub(crate) limits: Limits,
    pub(crate) request_timeout: Duration,
    pub(crate) inbox: std_mpsc::SyncSender<Input>,
    pub(crate) waiters: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next_id: AtomicU64,
    pub(crate) status: RwLock<StatusInfo>,
    pub(crate) members: RwLock<Vec<MemberInfo>>,
    pub(crate) client_urls: Vec<String>,
    /// The origin of the member's monotonic millisecond clock (lease expiry is measured on it,
    /// by the core's ticks and by lease queries alike).
    pub(crate) epoch: Instant,
    pub(crate) stopped: AtomicBool,
    pub(crate) metrics: Metrics,
    pub(crate) peers: Peers,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        member_id: NodeId,
        cluster_id: u64,
        group_id: GroupId,
        name: String,
        store: Arc<Store>,
        limits: Limits,
        request_timeout: Duration,
        inbox: std_mpsc::SyncSender<Input>,
        members: Vec<MemberInfo>,
        metrics: Metrics,
    ) -> Self {
        let client_urls = members
            .iter()
            .find(|m| m.id == member_id)
            .map(|m| m.client_urls.clone())
            .unwrap_or_default();
        // Request ids: the member's low 16 bits, then a counter seeded from the wall clock so
        // that ids of a restarted member do not collide with its previous life's (etcd's
        // idutil does the same).
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let prefix = (member_id & 0xffff) << 48;
        let suffix = (now_ms << 8) & ((1u64 << 48) - 1);
        Shared {
            member_id,
            cluster_id,
            group_id,
            name,
            store,
            limits,
            request_timeout,
            inbox,
            waiters: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(prefix | suffix),
            status: RwLock::new(StatusInfo {
                member_id,
                cluster_id,
                ..StatusInfo::default()
            }),
            members: RwLock::new(members),
            client_urls,
            epoch: Instant::now(),
            stopped: AtomicBool::new(false),
            metrics,
            peers: Peers::default(),
        }
    }

    /// A request id unique on this member: the member's low 16 bits, then a 48-bit counter.
    /// Never 0 (0 marks entries nobody waits for).
    fn next_id(&self) -> u64 {
        let prefix = (self.member_id & 0xffff) << 48;
        loop {
            let n = self.next_id.fetch_add(1, Ordering::Relaxed) & ((1u64 << 48) - 1);
            let id = prefix | n;
            if id != 0 {
                return id;
            }
        }
    }

    /// Milliseconds since [`Shared::epoch`]: the member's monotonic clock.
    pub(crate) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Queues an input for the core; false when the inbox is full or the core stopped.
    pub(crate) fn send_input(&self, input: Input) -> bool {
        self.inbox.try_send(input).is_ok()
    }

    pub(crate) fn status(&self) -> StatusInfo {
        self.status.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub(crate) fn members(&self) -> Vec<MemberInfo> {
        self.members.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// Records what a peer told about itself (its name and client URLs) in the member list.
    pub(crate) fn learn_member(&self, id: NodeId, name: &str, client_urls: &[String]) {
        if let Ok(mut members) = self.members.write() {
            if let Some(m) = members.iter_mut().find(|m| m.id == id) {
                if !name.is_empty() {
                    m.name = name.to_string();
                }
                if !client_urls.is_empty() {
                    m.client_urls = client_urls.to_vec();
                }
            }
        }
    }

    /// Registers a waiter, sends the input built from its id, and waits for the reply with the
    /// request timeout.
    async fn call(&self, make: impl FnOnce(u64) -> Input) -> Result<Reply, ServerError> {
        if self.is_stopped() {
            return Err(ServerError::Stopped);
        }
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut w = self
                .waiters
                .lock()
                .map_err(|_| ServerError::Internal("waiter table poisoned".into()))?;
            // Ids are unique by construction; a collision would hand one request's result to
            // another, so it is checked, not assumed.
            let mut id = self.next_id();
            while w.contains_key(&id) {
                id = self.next_id();
            }
            w.insert(id, tx);
            id
        };
        if !self.send_input(make(id)) {
            self.forget(id);
            return Err(if self.is_stopped() {
                ServerError::Stopped
            } else {
                ServerError::TooManyRequests
            });
        }
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(ServerError::Stopped),
            Err(_) => {
                self.forget(id);
                Err(ServerError::Timeout)
            }
        }
    }

    fn forget(&self, id: u64) {
        if let Ok(mut w) = self.waiters.lock() {
            w.remove(&id);
        }
    }

    pub(crate) fn complete(&self, id: u64, reply: Reply) {
        let tx = self.waiters.lock().ok().and_then(|mut w| w.remove(&id));
        if let Some(tx) = tx {
            let _ = tx.send(reply);
        }
    }

    pub(crate) async fn propose(
        &self,
        mut req: InternalRaftRequest,
    ) -> Result<WriteResponse, ServerError> {
        let timer = Instant::now();
        let reply = self
            .call(|id| {
                req.id = id;
                let header = req.header.get_or_insert_with(Default::default);
                header.id = id;
                Input::Propose {
                    id,
                    data: Bytes::from(req.encode_to_vec()),
                }
            })
            .await;
        self.metrics
            .proposal_duration
            .observe(timer.elapsed().as_secs_f64());
        match reply? {
            Reply::Write(Ok(r)) => Ok(r),
            Reply::Write(Err(status)) => Err(ServerError::Status(status)),
            Reply::Done(Err(e)) | Reply::Ttl(Err(e)) => Err(e),
            other => Err(ServerError::Internal(format!("unexpected reply {other:?}"))),
        }
    }

    pub(crate) async fn read_barrier(&self) -> Result<(), ServerError> {
        match self.call(|token| Input::ReadIndex { token }).await? {
            Reply::Done(r) => r,
            other => Err(ServerError::Internal(format!("unexpected reply {other:?}"))),
        }
    }

    async fn lease_call(&self, id: i64, renew: bool) -> Result<Option<i64>, ServerError> {
        let reply = self.call(|token| lease_input(token, id, renew)).await?;
        match reply {
            Reply::Ttl(Err(ServerError::NotLeader)) => self.forward_lease(id, renew).await,
            Reply::Ttl(r) => r,
            Reply::Done(Err(e)) => Err(e),
            other => Err(ServerError::Internal(format!("unexpected reply {other:?}"))),
        }
    }

    pub(crate) async fn lease_keep_alive(&self, id: i64) -> Result<i64, ServerError> {
        Ok(self.lease_call(id, true).await?.unwrap_or(0))
    }

    pub(crate) async fn lease_remaining(&self, id: i64) -> Result<Option<i64>, ServerError> {
        self.lease_call(id, false).await
    }

    /// Sends a lease request to the leader through the peer `Forward` call.
    async fn forward_lease(&self, id: i64, renew: bool) -> Result<Option<i64>, ServerError> {
        use quorum_api::etcdserverpb::{LeaseKeepAliveRequest, LeaseTimeToLiveRequest};
        use quorum_api::peer::{forward_request, forward_response, ForwardRequest};
        let leader = self.status().leader;
        if leader == NO_NODE || leader == self.member_id {
            return Err(ServerError::NoLeader);
        }
        let urls = self
            .members()
            .into_iter()
            .find(|m| m.id == leader)
            .map(|m| m.peer_urls)
            .ok_or(ServerError::NoLeader)?;
        let request = if renew {
            forward_request::Request::LeaseKeepAlive(LeaseKeepAliveRequest { id })
        } else {
            forward_request::Request::LeaseTimeToLive(LeaseTimeToLiveRequest { id, keys: false })
        };
        let req = ForwardRequest {
            cluster_id: self.cluster_id,
            from_member: self.member_id,
            request: Some(request),
        };
        for url in urls {
            let Ok(mut client) =
                quorum_api::peer::peer_client::PeerClient::connect(url.clone()).await
            else {
                continue;
            };
            let resp = tokio::time::timeout(self.request_timeout, client.forward(req))
                .await
                .map_err(|_| ServerError::Timeout)?
                .map_err(ServerError::Status)?
                .into_inner();
            return match resp.response {
                Some(forward_response::Response::LeaseKeepAlive(r)) => {
                    Ok((r.ttl > 0).then_some(r.ttl))
                }
                Some(forward_response::Response::LeaseTimeToLive(r)) => {
                    Ok((r.ttl >= 0).then_some(r.ttl))
                }
                None => Err(ServerError::Internal("empty forward response".into())),
            };
        }
        Err(ServerError::NoLeader)
    }

    pub(crate) async fn move_leader(&self, target: NodeId) -> Result<(), ServerError> {
        match self
            .call(|token| Input::TransferLeader { token, to: target })
            .await?
        {
            Reply::Done(r) => r,
            other => Err(ServerError::Internal(format!("unexpected reply {other:?}"))),
        }
    }
}

/// The core input of a lease keep-alive (`renew`) or remaining-TTL query.
fn lease_input(token: u64, id: i64, renew: bool) -> Input {
    if renew {
        Input::LeaseRenew { token, id }
    } else {
        Input::LeaseRemaining { token, id }
    }
}

/// Serves a lease request forwarded by a follower (the `Forward` peer call).
pub(crate) async fn serve_forward(
    shared: &Arc<Shared>,
    req: quorum_api::peer::ForwardRequest,
) -> Result<tonic::Response<quorum_api::peer::ForwardResponse>, tonic::Status> {
    use quorum_api::etcdserverpb::{LeaseKeepAliveResponse, LeaseTimeToLiveResponse};
    use quorum_api::peer::{forward_request, forward_response, ForwardResponse};
    let (id, renew) = match req.request {
        Some(forward_request::Request::LeaseKeepAlive(r)) => (r.id, true),
        Some(forward_request::Request::LeaseTimeToLive(r)) => (r.id, false),
        None => return Err(tonic::Status::invalid_argument("empty forward request")),
    };
    let reply = shared.call(|token| lease_input(token, id, renew)).await?;
    let ttl = match reply {
        Reply::Ttl(Ok(t)) => t,
        Reply::Ttl(Err(e)) | Reply::Done(Err(e)) => return Err(e.into()),
        other => {
            return Err(tonic::Status::internal(format!(
                "unexpected reply {other:?}"
            )))
        }
    };
    let response = if renew {
        forward_response::Response::LeaseKeepAlive(LeaseKeepAliveResponse {
            header: None,
            id,
            ttl: ttl.unwrap_or(0),
        })
    } else {
        forward_response::Response::LeaseTimeToLive(LeaseTimeToLiveResponse {
            header: None,
            id,
            ttl: ttl.unwrap_or(-1),
            granted_ttl: 0,
            keys: Vec::new(),
        })
    };
    Ok(tonic::Response::new(ForwardResponse {
        response: Some(response),
    }))
}

/// The shell's [`Outbox`]: messages go to the peer queues at once, results to the waiters.
struct ShellOutbox<'a> {
    shared: &'a Arc<Shared>,
    urls: &'a HashMap<NodeId, Vec<String>>,
}

impl Outbox for ShellOutbox<'_> {
    fn send(&mut self, messages: Vec<Message>) {
        for m in messages {
            let to = m.to;
            if !self.shared.peers.send(m) {
                self.shared.metrics.peer_dropped.inc();
                self.shared.send_input(Input::Unreachable(to));
            }
        }
    }

    fn output(&mut self, output: Output) {
        match output {
            Output::Applied { id, result } => self
                .shared
                .complete(id, Reply::Write(result.map_err(|e| mvcc_status(&e)))),
            Output::ReadReady { token } => self.shared.complete(token, Reply::Done(Ok(()))),
            Output::Done { token } => self.shared.complete(token, Reply::Done(Ok(()))),
            Output::LeaseTtl { token, result } => self.shared.complete(token, Reply::Ttl(result)),
            Output::Failed { token, error } => self.shared.complete(token, Reply::Done(Err(error))),
            Output::LeaderChanged { leader, term } => {
                let m = &self.shared.metrics;
                m.has_leader.set(i64::from(leader != NO_NODE));
                m.is_leader.set(i64::from(leader == self.shared.member_id));
                if let Ok(mut s) = self.shared.status.write() {
                    // The core also reports a new term under the same leader: only a new
                    // leader counts (etcd_server_leader_changes_seen_total).
                    if leader != NO_NODE && leader != s.leader {
                        m.leader_changes.inc();
                    }
                    s.leader = leader;
                    s.raft_term = term;
                }
            }
            Output::SendSnapshot(m) => match self.urls.get(&m.to) {
                Some(urls) => crate::transport::send_snapshot(self.shared.clone(), urls.clone(), m),
                None => {
                    self.shared.send_input(Input::SnapshotStatus {
                        to: m.to,
                        success: false,
                    });
                }
            },
        }
    }
}

/// Runs the core on the current (dedicated) thread until the inbox closes or the member stops.
/// Returns an error if the core failed fatally (the process must exit).
pub(crate) fn run_core<F: quorum_storage::FileSystem>(
    mut core: Core<F>,
    inbox: std_mpsc::Receiver<Input>,
    shared: Arc<Shared>,
    tick: Duration,
    peer_urls: HashMap<NodeId, Vec<String>>,
) -> Result<(), crate::core::CoreError> {
    let mut next_tick = Instant::now() + tick;
    let mut out = ShellOutbox {
        shared: &shared,
        urls: &peer_urls,
    };
    // The WAL's fsyncs run on their own thread so that the core keeps replicating and applying
    // while the disk works; each completion comes back as `Input::Synced`.
    core.set_async_persist(true);
    let sync_requests = spawn_syncer(&core, &shared)?;
    loop {
        if shared.is_stopped() {
            return Ok(());
        }
        let now = Instant::now();
        let wait = next_tick.saturating_duration_since(now);
        match inbox.recv_timeout(wait) {
            Ok(input) => {
                core.handle(input, &mut out);
                // Drain what else is queued (bounded), so one Ready serves the whole burst.
                for _ in 0..8192 {
                    match inbox.try_recv() {
                        Ok(input) => core.handle(input, &mut out),
                        Err(_) => break,
                    }
                }
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        }
        let now = Instant::now();
        if now >= next_tick {
            let now_ms = now.duration_since(shared.epoch).as_millis() as u64;
            core.handle(Input::Tick { now_ms }, &mut out);
            next_tick += tick;
            if next_tick < now {
                // The loop fell behind (a long fsync or a pause): don't fire a burst of ticks,
                // which would shorten election timeouts.
                next_tick = now + tick;
            }
        }
        core.process(&mut out)?;
        if let Some(ticket) = core.take_sync_request() {
            if sync_requests.send(ticket).is_err() {
                return Err(crate::core::CoreError::Store(
                    "the WAL sync thread ended".into(),
                ));
            }
        }
        publish_status(&core, &shared);
    }
}

/// Starts the thread that fsyncs the WAL for the core: it takes the newest requested write
/// ticket (requests that pile up during one fsync are served by the next: group commit),
/// syncs, and reports the durable ticket through the core's inbox. A failed fsync is fatal
/// (the page cache state after a failed fsync is unknown: etcd panics too).
fn spawn_syncer<F: quorum_storage::FileSystem>(
    core: &Core<F>,
    shared: &Arc<Shared>,
) -> Result<std_mpsc::Sender<quorum_storage::WriteTicket>, crate::core::CoreError> {
    let handle = core.log().sync_handle();
    let inbox = shared.inbox.clone();
    let (tx, rx) = std_mpsc::channel::<quorum_storage::WriteTicket>();
    std::thread::Builder::new()
        .name(format!("wal-sync-{:x}", shared.member_id))
        .spawn(move || {
            while let Ok(mut want) = rx.recv() {
                while let Ok(more) = rx.try_recv() {
                    want = want.max(more);
                }
                let durable = if handle.durable() >= want {
                    handle.durable()
                } else {
                    match handle.sync() {
                        Ok(t) => t,
                        Err(e) => fatal(&crate::core::CoreError::Wal(e)),
                    }
                };
                // Blocking: the core drains its inbox continually; it fails once the core ended.
                if inbox.send(Input::Synced { ticket: durable }).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| {
            crate::core::CoreError::Store(format!("cannot start the WAL sync thread: {e}"))
        })?;
    Ok(tx)
}

fn publish_status<F: quorum_storage::FileSystem>(core: &Core<F>, shared: &Shared) {
    if let Ok(mut s) = shared.status.write() {
        s.leader = core.leader();
        s.raft_term = core.term();
        s.raft_index = core.last_index();
        s.raft_applied_index = core.applied();
    }
    shared
        .metrics
        .applied_index
        .set(core.applied().min(i64::MAX as u64) as i64);
}

/// Logs and ends the process after a fatal core error: a member that cannot write its WAL must
/// not keep serving (etcd panics there; we exit with a message instead).
pub(crate) fn fatal(e: &crate::core::CoreError) -> ! {
    error!("fatal: {e}; the member stops. Check the disk and the data directory, then restart.");
    eprintln!("quorum: fatal: {e}");
    std::process::exit(2);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_carry_the_member_prefix() {
        let (tx, _rx) = std_mpsc::sync_channel(1);
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(quorum_mvcc::Store::open(dir.path().join("db"), Default::default()).unwrap());
        let shared = Shared::new(
            0xabcd_1234,
            1,
            1,
            "m".into(),
            store,
            Limits {
                max_request_bytes: 1024,
                max_txn_ops: 8,
            },
            Duration::from_secs(1),
            tx,
            Vec::new(),
            Metrics::new().unwrap(),
        );
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = shared.next_id();
            assert_ne!(id, 0);
            assert_eq!(id >> 48, 0x1234);
            assert!(seen.insert(id), "duplicate request id {id:x}");
        }
    }
}
