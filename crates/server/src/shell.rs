//! The tokio shell around the deterministic member core: it owns the sockets, the timers and
//! the thread the core runs on, and turns the core's outputs into completed client requests and
//! peer messages.
//!
//! Threads: the core runs on one dedicated OS thread (it fsyncs, so it must not block the async
//! runtime); everything else is tokio tasks. Requests reach the core through a bounded inbox
//! (a full inbox answers `etcdserver: too many requests` at once); results come back through
//! waiters keyed by request id or token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, PoisonError, RwLock};
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
use crate::membership::{MemberChange, Op, Registry};
use crate::metrics::Metrics;
use crate::transport::Peers;

/// Request limits enforced by the services.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
    /// `--max-txn-ops`.
    pub max_txn_ops: usize,
    /// `--auth-token-ttl`: how long a simple token lives after its last use.
    pub auth_token_ttl: Duration,
    /// `--client-cert-auth`: a call without a token is made as the user named by the common
    /// name of its verified client certificate (when auth is enabled), as etcd does.
    pub cert_users: bool,
}

/// Inputs queued for the core before new requests are refused.
pub const INBOX_CAPACITY: usize = 64 * 1024;

/// A peer must have been connected this long to count as active for membership checks
/// (etcd's `HealthInterval`).
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// Retry interval of publishing this member's attributes.
const PUBLISH_RETRY: Duration = Duration::from_millis(200);

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
    /// The member registry as of the core's last apply (the core owns the real one).
    pub(crate) registry: RwLock<Registry>,
    pub(crate) client_urls: Vec<String>,
    /// Where the registry is persisted (`None` in unit tests).
    pub(crate) cluster_file: Option<crate::server::ClusterFileTarget>,
    /// `--strict-reconfig-check`.
    pub(crate) strict_reconfig_check: bool,
    /// Set once this member learns it was removed from the cluster.
    pub(crate) removed: tokio::sync::watch::Sender<bool>,
    /// The origin of the member's monotonic millisecond clock (lease expiry is measured on it,
    /// by the core's ticks and by lease queries alike).
    pub(crate) epoch: Instant,
    pub(crate) stopped: AtomicBool,
    pub(crate) metrics: Metrics,
    pub(crate) peers: Peers,
    /// Channels for `Forward` calls, by peer URL: connected lazily, reconnected by tonic,
    /// shared by every forwarded request (a connection per request cost a TCP and HTTP/2
    /// handshake per lease keep-alive).
    forward_channels: Mutex<HashMap<String, tonic::transport::Channel>>,
    /// How to connect to `https://` peers (`--peer-*` TLS files); `None` without them.
    pub(crate) peer_tls: Option<tonic::transport::ClientTlsConfig>,
    /// `--auth-token jwt,...`: the keys tokens are issued and verified with.
    pub(crate) jwt: Option<Arc<crate::jwt::JwtTokens>>,
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
        registry: Registry,
        client_urls: Vec<String>,
        metrics: Metrics,
    ) -> Self {
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
            registry: RwLock::new(registry),
            client_urls,
            cluster_file: None,
            strict_reconfig_check: true,
            removed: tokio::sync::watch::channel(false).0,
            epoch: Instant::now(),
            stopped: AtomicBool::new(false),
            metrics,
            peers: Peers::default(),
            forward_channels: Mutex::new(HashMap::new()),
            peer_tls: None,
            jwt: None,
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
        self.registry
            .read()
            .map(|r| r.members())
            .unwrap_or_default()
    }

    /// A copy of the registry as of the core's last apply.
    pub(crate) fn registry(&self) -> Registry {
        self.registry.read().map(|r| r.clone()).unwrap_or_default()
    }

    /// True once this member knows it was removed from the cluster.
    pub(crate) fn is_removed(&self) -> bool {
        *self.removed.borrow()
    }

    /// Marks this member removed: it stops serving (the process exits).
    pub(crate) fn mark_removed(&self) {
        if !self.is_removed() {
            error!(
                "member {:x}: the member has been permanently removed from the cluster; the \
                 data dir used by this member must be removed",
                self.member_id
            );
        }
        self.removed.send_replace(true);
    }

    /// Registers a waiter, sends the input built from its id, and waits for the reply with the
    /// request timeout.
    async fn call(&self, make: impl FnOnce(u64) -> Input) -> Result<Reply, ServerError> {
        if self.is_removed() {
            return Err(ServerError::Removed);
        }
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
        use quorum_api::peer::{forward_request, forward_response};
        let request = if renew {
            forward_request::Request::LeaseKeepAlive(LeaseKeepAliveRequest { id })
        } else {
            forward_request::Request::LeaseTimeToLive(LeaseTimeToLiveRequest { id, keys: false })
        };
        match self.forward(request).await? {
            forward_response::Response::LeaseKeepAlive(r) => Ok((r.ttl > 0).then_some(r.ttl)),
            forward_response::Response::LeaseTimeToLive(r) => Ok((r.ttl >= 0).then_some(r.ttl)),
            _ => Err(ServerError::Internal("mismatched forward response".into())),
        }
    }

    /// Sends a request only the leader can serve to the leader (peer `Forward` call).
    async fn forward(
        &self,
        request: quorum_api::peer::forward_request::Request,
    ) -> Result<quorum_api::peer::forward_response::Response, ServerError> {
        use quorum_api::peer::ForwardRequest;
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
        let req = ForwardRequest {
            cluster_id: self.cluster_id,
            from_member: self.member_id,
            request: Some(request),
        };
        let mut last = ServerError::NoLeader;
        for url in urls {
            let Some(channel) = self.forward_channel(&url) else {
                continue;
            };
            let mut client = quorum_api::peer::peer_client::PeerClient::new(channel);
            let result = tokio::time::timeout(self.request_timeout, client.forward(req))
                .await
                .map_err(|_| ServerError::Timeout)?;
            match result {
                Ok(resp) => {
                    return resp
                        .into_inner()
                        .response
                        .ok_or_else(|| ServerError::Internal("empty forward response".into()))
                }
                // Unreachable at this URL: the leader may listen on another.
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    last = ServerError::Status(status);
                }
                Err(status) => return Err(ServerError::Status(status)),
            }
        }
        Err(last)
    }

    /// Drops the `Forward` channels of URLs no member has any more (a removed member, a
    /// peer URL update), so the map stays bounded by the membership.
    fn prune_forward_channels(&self, registry: &crate::membership::Registry) {
        let mut channels = self
            .forward_channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if channels.is_empty() {
            return;
        }
        let live: std::collections::HashSet<String> = registry
            .members()
            .into_iter()
            .flat_map(|m| m.peer_urls)
            .collect();
        channels.retain(|url, _| live.contains(url));
    }

    /// The channel for `Forward` calls to `url` (created on first use; `None`: a bad URL).
    fn forward_channel(&self, url: &str) -> Option<tonic::transport::Channel> {
        let mut channels = self
            .forward_channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = channels.get(url) {
            return Some(c.clone());
        }
        let channel = crate::transport::peer_endpoint(url, self.peer_tls.as_ref())?.connect_lazy();
        channels.insert(url.to_string(), channel.clone());
        Some(channel)
    }

    /// Proposes `change` (its request id is assigned here) and waits until it is applied.
    async fn change_membership(&self, mut change: MemberChange) -> Result<(), ServerError> {
        let reply = self
            .call(|id| {
                change.request_id = id;
                Input::ProposeMemberChange { change }
            })
            .await?;
        match reply {
            Reply::Done(r) => r,
            other => Err(ServerError::Internal(format!("unexpected reply {other:?}"))),
        }
    }

    /// Voters other than this member that it has not been connected to for the health
    /// interval (etcd's `isConnectedFullySince`).
    fn voters_connected_since(&self, registry: &Registry, since: Duration) -> (usize, usize) {
        let mut connected = 0;
        let mut voters = 0;
        for m in registry.members().iter().filter(|m| !m.is_learner) {
            voters += 1;
            if m.id == self.member_id || self.peers.connected_for(m.id) >= Some(since) {
                connected += 1;
            }
        }
        (connected, voters)
    }

    /// MemberAdd: checks as etcd does (URLs, started quorum, connectivity), picks a fresh id,
    /// replicates the change; returns the new member and the members after the change.
    pub(crate) async fn member_add(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> Result<(MemberInfo, Vec<MemberInfo>), ServerError> {
        crate::membership::validate_urls(&peer_urls)?;
        let registry = self.registry();
        let mut id = 0;
        for nonce in 0..16u64 {
            let candidate = crate::ids::new_member_id(&peer_urls, self.cluster_id, nonce);
            if registry.member(candidate).is_none() && !registry.is_removed(candidate) {
                id = candidate;
                break;
            }
        }
        if id == 0 {
            return Err(ServerError::MemberExists);
        }
        let member = MemberInfo {
            id,
            name: String::new(),
            peer_urls,
            client_urls: Vec::new(),
            is_learner,
        };
        let change = MemberChange {
            op: Op::Add,
            member: member.clone(),
            request_id: 0,
        };
        // Definite refusals (duplicate URLs, a second learner) before transient ones.
        registry.validate(&change)?;
        if self.strict_reconfig_check {
            if !is_learner && !registry.ready_to_add_voter() {
                return Err(ServerError::NotEnoughStartedMembers);
            }
            let (connected, voters) = self.voters_connected_since(&registry, HEALTH_INTERVAL);
            if connected < voters {
                return Err(ServerError::UnhealthyCluster);
            }
        }
        self.change_membership(change).await?;
        Ok((member, self.members()))
    }

    /// MemberRemove, with etcd's checks; returns the members after the change.
    pub(crate) async fn member_remove(&self, id: NodeId) -> Result<Vec<MemberInfo>, ServerError> {
        let registry = self.registry();
        let target = registry.member(id).ok_or(ServerError::MemberNotFound)?;
        if self.strict_reconfig_check && !target.is_learner {
            if !registry.ready_to_remove_voter(id) {
                return Err(ServerError::NotEnoughStartedMembers);
            }
            // A member that is down is safe to remove; otherwise the voters this member is
            // connected to, less the one removed, must still be a quorum of the rest.
            let down = id != self.member_id && self.peers.connected_for(id).is_none();
            if !down {
                let (connected, voters) = self.voters_connected_since(&registry, HEALTH_INTERVAL);
                if connected.saturating_sub(1) < 1 + voters.saturating_sub(1) / 2 {
                    return Err(ServerError::UnhealthyCluster);
                }
            }
        }
        let member = MemberInfo {
            id,
            name: String::new(),
            peer_urls: Vec::new(),
            client_urls: Vec::new(),
            is_learner: target.is_learner,
        };
        self.change_membership(MemberChange {
            op: Op::Remove,
            member,
            request_id: 0,
        })
        .await?;
        Ok(self.members())
    }

    /// MemberUpdate (new peer URLs); returns the members after the change.
    pub(crate) async fn member_update(
        &self,
        id: NodeId,
        peer_urls: Vec<String>,
    ) -> Result<Vec<MemberInfo>, ServerError> {
        let registry = self.registry();
        let target = registry.member(id).ok_or(ServerError::MemberNotFound)?;
        let member = MemberInfo {
            id,
            name: String::new(),
            peer_urls,
            client_urls: Vec::new(),
            is_learner: target.is_learner,
        };
        self.change_membership(MemberChange {
            op: Op::Update,
            member,
            request_id: 0,
        })
        .await?;
        Ok(self.members())
    }

    /// MemberPromote: only the leader knows whether the learner is in sync, so a follower
    /// forwards the request to it.
    pub(crate) async fn member_promote(&self, id: NodeId) -> Result<Vec<MemberInfo>, ServerError> {
        let leader = self.status().leader;
        if leader != self.member_id {
            return self.forward_promote(id).await;
        }
        self.member_promote_here(id).await
    }

    /// MemberPromote on the leader (a forwarded one is never forwarded again).
    pub(crate) async fn member_promote_here(
        &self,
        id: NodeId,
    ) -> Result<Vec<MemberInfo>, ServerError> {
        let registry = self.registry();
        let target = registry.member(id).ok_or(ServerError::MemberNotFound)?;
        if !target.is_learner {
            return Err(ServerError::MemberNotLearner);
        }
        if self.strict_reconfig_check && !registry.ready_to_promote() {
            return Err(ServerError::NotEnoughStartedMembers);
        }
        let member = MemberInfo {
            id,
            name: String::new(),
            peer_urls: Vec::new(),
            client_urls: Vec::new(),
            is_learner: true,
        };
        self.change_membership(MemberChange {
            op: Op::Promote,
            member,
            request_id: 0,
        })
        .await?;
        Ok(self.members())
    }

    async fn forward_promote(&self, id: NodeId) -> Result<Vec<MemberInfo>, ServerError> {
        use quorum_api::etcdserverpb::MemberPromoteRequest;
        use quorum_api::peer::{forward_request, forward_response};
        let request = forward_request::Request::MemberPromote(MemberPromoteRequest { id });
        match self.forward(request).await? {
            forward_response::Response::MemberPromote(r) => Ok(r
                .members
                .into_iter()
                .map(|m| MemberInfo {
                    id: m.id,
                    name: m.name,
                    peer_urls: m.peer_ur_ls,
                    client_urls: m.client_ur_ls,
                    is_learner: m.is_learner,
                })
                .collect()),
            _ => Err(ServerError::Internal("mismatched forward response".into())),
        }
    }

    /// Publishes this member's name and client URLs through Raft once per start, retrying
    /// until the proposal applies (etcd's `publish`): MemberList then lists them on every
    /// member.
    pub(crate) async fn publish_attributes(self: Arc<Self>) {
        use quorum_api::internal::{MemberAttrSetRequest, MemberAttributes};
        let mut interval = tokio::time::interval(PUBLISH_RETRY);
        loop {
            interval.tick().await;
            if self.is_stopped() || self.is_removed() {
                return;
            }
            let known = self
                .registry
                .read()
                .is_ok_and(|r| r.member(self.member_id).is_some());
            if !known {
                continue; // a joining member that has not applied its own addition yet
            }
            let req = InternalRaftRequest {
                member_attr_set: Some(MemberAttrSetRequest {
                    member_id: self.member_id,
                    attributes: Some(MemberAttributes {
                        name: self.name.clone(),
                        client_urls: self.client_urls.clone(),
                    }),
                }),
                ..Default::default()
            };
            match self.propose(req).await {
                Ok(_) => {
                    tracing::info!(
                        "published member {:x} attributes (name {:?}, client URLs {:?})",
                        self.member_id,
                        self.name,
                        self.client_urls
                    );
                    return;
                }
                Err(e) => tracing::debug!("publishing member attributes failed (will retry): {e}"),
            }
        }
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

impl Shared {
    /// The peer URLs of member `id`, if it is a member.
    pub(crate) fn peer_urls(&self, id: NodeId) -> Option<Vec<String>> {
        self.registry
            .read()
            .ok()
            .and_then(|r| r.member(id).map(|m| m.peer_urls.clone()))
    }

    /// Takes over the core's new registry: persists it (a member that cannot record its
    /// membership must stop, like one that cannot write its WAL), publishes it to the
    /// services, starts and stops peer senders, and notices this member's own removal.
    pub(crate) fn adopt_registry(self: &Arc<Self>, registry: &Registry) {
        if let Some(target) = &self.cluster_file {
            if let Err(e) = target.write(registry) {
                error!("fatal: cannot persist the membership: {e}");
                eprintln!("quorum: fatal: cannot persist the membership: {e}");
                std::process::exit(2);
            }
        }
        if let Ok(mut r) = self.registry.write() {
            *r = registry.clone();
        }
        let is_learner = registry
            .member(self.member_id)
            .is_some_and(|m| m.is_learner);
        if let Ok(mut s) = self.status.write() {
            s.is_learner = is_learner;
        }
        self.peers.sync(self, registry);
        self.prune_forward_channels(registry);
        if registry.is_removed(self.member_id) {
            self.mark_removed();
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
        Some(forward_request::Request::MemberPromote(r)) => {
            let members = shared.member_promote_here(r.id).await?;
            return Ok(tonic::Response::new(ForwardResponse {
                response: Some(forward_response::Response::MemberPromote(
                    quorum_api::etcdserverpb::MemberPromoteResponse {
                        header: None,
                        members: members
                            .into_iter()
                            .map(crate::services::cluster::member_to_pb)
                            .collect(),
                    },
                )),
            }));
        }
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
            Output::SendSnapshot(m) => match self.shared.peer_urls(m.to) {
                Some(urls) => crate::transport::send_snapshot(self.shared.clone(), urls, m),
                None => {
                    self.shared.send_input(Input::SnapshotStatus {
                        to: m.to,
                        success: false,
                    });
                }
            },
        }
    }

    fn membership_changed(&mut self, registry: &Registry) {
        self.shared.adopt_registry(registry);
    }
}

/// Runs the core on the current (dedicated) thread until the inbox closes or the member stops.
/// Returns an error if the core failed fatally (the process must exit).
pub(crate) fn run_core<F: quorum_storage::FileSystem>(
    mut core: Core<F>,
    inbox: std_mpsc::Receiver<Input>,
    shared: Arc<Shared>,
    tick: Duration,
) -> Result<(), crate::core::CoreError> {
    let mut next_tick = Instant::now() + tick;
    let mut out = ShellOutbox { shared: &shared };
    // The WAL's fsyncs run on their own thread so that the core keeps replicating and applying
    // while the disk works; each completion comes back as `Input::Synced`.
    core.set_async_persist(true);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let sync_requests = spawn_syncer(&core, &shared, in_flight.clone())?;
    let sync_handle = core.log().sync_handle();
    core.fast_forward_election();
    // The first turn does not wait for input: it writes the campaign fast_forward_election
    // may have started. Later, a turn that handled input it has not processed yet.
    let mut unprocessed = true;
    loop {
        if shared.is_stopped() {
            return Ok(());
        }
        let now = Instant::now();
        let wait = if std::mem::take(&mut unprocessed) {
            Duration::ZERO
        } else {
            next_tick.saturating_duration_since(now)
        };
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
            // Idle (no input queued, no fsync in flight): the core would only wait for this
            // fsync, so it syncs itself, sparing two thread hand-offs per write — what a lone
            // client waits for. Otherwise the sync thread does it while the core goes on.
            let busy = in_flight.load(Ordering::Acquire) != 0;
            let queued = if busy {
                None
            } else {
                match inbox.try_recv() {
                    Ok(input) => Some(input),
                    Err(std_mpsc::TryRecvError::Empty) => None,
                    Err(std_mpsc::TryRecvError::Disconnected) => return Ok(()),
                }
            };
            if !busy && queued.is_none() {
                let durable = sync_handle
                    .sync()
                    .unwrap_or_else(|e| fatal(&crate::core::CoreError::Wal(e)));
                debug_assert!(durable >= ticket, "a sync covers every earlier write");
                core.handle(Input::Synced { ticket: durable }, &mut out);
            } else {
                if let Some(input) = queued {
                    core.handle(input, &mut out);
                }
                in_flight.fetch_add(1, Ordering::AcqRel);
                if sync_requests.send(ticket).is_err() {
                    return Err(crate::core::CoreError::Store(
                        "the WAL sync thread ended".into(),
                    ));
                }
            }
            unprocessed = true;
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
    in_flight: Arc<AtomicUsize>,
) -> Result<std_mpsc::Sender<quorum_storage::WriteTicket>, crate::core::CoreError> {
    let handle = core.log().sync_handle();
    let inbox = shared.inbox.clone();
    let (tx, rx) = std_mpsc::channel::<quorum_storage::WriteTicket>();
    std::thread::Builder::new()
        .name(format!("wal-sync-{:x}", shared.member_id))
        .spawn(move || {
            while let Ok(mut want) = rx.recv() {
                let mut requests = 1;
                while let Ok(more) = rx.try_recv() {
                    want = want.max(more);
                    requests += 1;
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
                // After the report: the core syncs by itself only once this one is queued.
                in_flight.fetch_sub(requests, Ordering::AcqRel);
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

    fn test_shared(dir: &std::path::Path) -> Shared {
        let (tx, _rx) = std_mpsc::sync_channel(1);
        let store = Arc::new(quorum_mvcc::Store::open(dir.join("db"), Default::default()).unwrap());
        Shared::new(
            0xabcd_1234,
            1,
            1,
            "m".into(),
            store,
            Limits {
                max_request_bytes: 1024,
                auth_token_ttl: crate::services::authz::DEFAULT_TOKEN_TTL,
                max_txn_ops: 8,
                cert_users: false,
            },
            Duration::from_secs(1),
            tx,
            Registry::default(),
            Vec::new(),
            Metrics::new().unwrap(),
        )
    }

    #[test]
    fn request_ids_are_unique_and_carry_the_member_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let shared = test_shared(dir.path());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = shared.next_id();
            assert_ne!(id, 0);
            assert_eq!(id >> 48, 0x1234);
            assert!(seen.insert(id), "duplicate request id {id:x}");
        }
    }

    #[tokio::test]
    async fn forward_channels_of_departed_urls_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let shared = test_shared(dir.path());
        let (a, b) = ("http://127.0.0.1:1", "http://127.0.0.1:2");
        assert!(shared.forward_channel(a).is_some());
        assert!(shared.forward_channel(b).is_some());
        assert!(shared.forward_channel(a).is_some(), "reused, not added");
        let count = || shared.forward_channels.lock().unwrap().len();
        assert_eq!(count(), 2);
        let member = |id: NodeId, url: &str| crate::member::MemberInfo {
            id,
            name: format!("m{id}"),
            peer_urls: vec![url.to_string()],
            client_urls: Vec::new(),
            is_learner: false,
        };
        // b's member moved to another URL: its channel goes, a's stays.
        let registry = Registry::bootstrap(vec![member(1, a), member(2, "http://127.0.0.1:3")]);
        shared.prune_forward_channels(&registry);
        assert_eq!(count(), 1);
        assert!(shared.forward_channels.lock().unwrap().contains_key(a));
    }
}
