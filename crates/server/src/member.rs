//! [`Member`]: the handle through which the gRPC services reach the running member (its Raft
//! group, its MVCC store, its lessor). Cheap to clone; every method is safe to call from any
//! tokio task.
//!
//! Writes go through [`Member::propose`]: the request is encoded as an `InternalRaftRequest`,
//! proposed to Raft, and the call completes when this member has applied it, with the MVCC
//! store's response. Linearizable reads call [`Member::read_barrier`] first and then read the
//! store directly; serializable reads skip the barrier.

use std::sync::Arc;

use quorum_api::internal::InternalRaftRequest;
use quorum_mvcc::{Store, WriteResponse};
use quorum_raft::NodeId;

use crate::error::ServerError;

/// One member of the cluster as the Cluster API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Member id.
    pub id: NodeId,
    /// Name (`--name`); empty until the member has started and published it.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs.
    pub client_urls: Vec<String>,
    /// True for a non-voting learner.
    pub is_learner: bool,
}

/// What Maintenance.Status and the response headers report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusInfo {
    /// This member's id.
    pub member_id: NodeId,
    /// The cluster's id.
    pub cluster_id: u64,
    /// The leader this member knows of (0: none).
    pub leader: NodeId,
    /// Current Raft term.
    pub raft_term: u64,
    /// Last index in this member's Raft log.
    pub raft_index: u64,
    /// Last index this member applied.
    pub raft_applied_index: u64,
    /// True if this member is a learner.
    pub is_learner: bool,
}

/// Handle to a running member. See the module documentation.
#[derive(Clone)]
pub struct Member {
    pub(crate) inner: Arc<crate::shell::Shared>,
}

impl Member {
    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.inner.member_id
    }

    /// The cluster's id.
    pub fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }

    /// The MVCC store, for reads (ranges, watches, hashes, snapshot export). Writes must go
    /// through [`Member::propose`].
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// The member's monotonic clock in milliseconds: the time base of lease expiry.
    pub fn now_ms(&self) -> u64 {
        self.inner.now_ms()
    }

    /// Raft and member status, as of now.
    pub fn status(&self) -> StatusInfo {
        self.inner.status()
    }

    /// The members of the cluster.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.inner.members()
    }

    /// `--max-request-bytes`.
    pub fn max_request_bytes(&self) -> usize {
        self.inner.limits.max_request_bytes
    }

    /// `--max-txn-ops`.
    pub fn max_txn_ops(&self) -> usize {
        self.inner.limits.max_txn_ops
    }

    /// `--auth-token-ttl`.
    pub fn auth_token_ttl(&self) -> std::time::Duration {
        self.inner.limits.auth_token_ttl
    }

    /// `--auth-token jwt,...`: the JWT keys (`None`: simple tokens).
    pub fn jwt(&self) -> Option<std::sync::Arc<crate::jwt::JwtTokens>> {
        self.inner.jwt.clone()
    }

    /// `--client-cert-auth`: whether a verified client certificate's common name stands for
    /// the user of a call without a token.
    pub fn cert_users(&self) -> bool {
        self.inner.limits.cert_users
    }

    /// Replicates `req` through Raft and returns this member's result of applying it. The
    /// header id is assigned here. Fails with `etcdserver: no leader` at once when no leader is
    /// known, and with `etcdserver: request timed out` after the request timeout.
    pub async fn propose(&self, req: InternalRaftRequest) -> Result<WriteResponse, ServerError> {
        self.inner.propose(req).await
    }

    /// Waits until this member has applied everything committed at the moment of the call, as
    /// confirmed by the leader (ReadIndex); after it returns, reading the store is linearizable.
    pub async fn read_barrier(&self) -> Result<(), ServerError> {
        self.inner.read_barrier().await
    }

    /// Keeps lease `id` alive; returns its new TTL in seconds (0 or less: it no longer exists).
    /// Served by the leader; a follower forwards it.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<i64, ServerError> {
        self.inner.lease_keep_alive(id).await
    }

    /// Remaining TTL of lease `id` in seconds, from the leader's lessor (`None`: no such lease).
    pub async fn lease_remaining(&self, id: i64) -> Result<Option<i64>, ServerError> {
        self.inner.lease_remaining(id).await
    }

    /// The Prometheus text exposition of the member's metrics.
    pub fn metrics_text(&self) -> String {
        let st = self.status();
        let store = self.store();
        let (watchers, slow_watchers) = store.watcher_counts();
        let pending = self.inner.waiters.lock().map(|w| w.len()).unwrap_or(0);
        self.inner.metrics.encode_with(&crate::metrics::Scrape {
            member_id: st.member_id,
            term: st.raft_term,
            raft_index: st.raft_index,
            proposals_pending: pending as u64,
            is_learner: st.is_learner,
            db_size: store.db_size().unwrap_or(0),
            db_size_in_use: store.db_size_in_use(),
            quota_bytes: store.quota_bytes(),
            current_revision: store.current_revision().unwrap_or(0),
            compact_revision: store.compact_revision().unwrap_or(0),
            watchers: watchers as u64,
            slow_watchers: slow_watchers as u64,
        })
    }

    /// Adds a member (MemberAdd) with a fresh id; returns it and the members after the change.
    pub async fn member_add(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> Result<(MemberInfo, Vec<MemberInfo>), ServerError> {
        self.inner.member_add(peer_urls, is_learner).await
    }

    /// Removes a member for good (MemberRemove); returns the members after the change.
    pub async fn member_remove(&self, id: NodeId) -> Result<Vec<MemberInfo>, ServerError> {
        self.inner.member_remove(id).await
    }

    /// Replaces a member's peer URLs (MemberUpdate); returns the members after the change.
    pub async fn member_update(
        &self,
        id: NodeId,
        peer_urls: Vec<String>,
    ) -> Result<Vec<MemberInfo>, ServerError> {
        self.inner.member_update(id, peer_urls).await
    }

    /// Promotes a learner that is in sync with the leader (MemberPromote); returns the members
    /// after the change.
    pub async fn member_promote(&self, id: NodeId) -> Result<Vec<MemberInfo>, ServerError> {
        self.inner.member_promote(id).await
    }

    /// Transfers leadership to `target` (MoveLeader); only the leader accepts it.
    pub async fn move_leader(&self, target: NodeId) -> Result<(), ServerError> {
        self.inner.move_leader(target).await
    }
}
