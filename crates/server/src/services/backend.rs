//! [`Backend`]: what the services need from a member, as a trait so that the services run
//! unchanged over the real [`Member`] and, in unit tests, over an in-process store that applies
//! proposals at once (`services::testing`).

use std::future::Future;
use std::sync::Arc;

use quorum_api::internal::InternalRaftRequest;
use quorum_mvcc::{LeaseTimeToLiveResponse, Store, WriteResponse};

use crate::error::ServerError;
use crate::member::{Member, MemberInfo, StatusInfo};

/// The member as the services see it. Every method mirrors the [`Member`] method of the same
/// name; see there for the semantics.
pub trait Backend: Clone + Send + Sync + 'static {
    /// The MVCC store, for reads and watches.
    fn store(&self) -> &Arc<Store>;
    /// Raft and member status.
    fn status(&self) -> StatusInfo;
    /// The members of the cluster.
    fn members(&self) -> Vec<MemberInfo>;
    /// `--max-request-bytes`.
    fn max_request_bytes(&self) -> usize;
    /// `--max-txn-ops`.
    fn max_txn_ops(&self) -> usize;
    /// `--auth-token-ttl`: how long a simple token lives after its last use.
    fn auth_token_ttl(&self) -> std::time::Duration {
        super::authz::DEFAULT_TOKEN_TTL
    }
    /// `--client-cert-auth`: a call without a token is made as its client certificate's
    /// common name (etcd's `AuthInfoFromTLS`).
    fn cert_users(&self) -> bool {
        false
    }
    /// `--auth-token jwt,...`: the JWT keys; `None` for simple tokens.
    fn jwt(&self) -> Option<std::sync::Arc<crate::jwt::JwtTokens>> {
        None
    }
    /// Replicates a request and returns this member's result of applying it.
    fn propose(
        &self,
        req: InternalRaftRequest,
    ) -> impl Future<Output = Result<WriteResponse, ServerError>> + Send;
    /// Waits until reading the store is linearizable.
    fn read_barrier(&self) -> impl Future<Output = Result<(), ServerError>> + Send;
    /// Keeps a lease alive; its new TTL (0 or less: gone).
    fn lease_keep_alive(&self, id: i64) -> impl Future<Output = Result<i64, ServerError>> + Send;
    /// Remaining TTL of a lease according to the leader (`None`: no such lease).
    fn lease_remaining(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<i64>, ServerError>> + Send;
    /// Granted TTL and (when `keys`) the attached keys of a lease, from the local store
    /// (`ttl == -1`: no such lease). The `ttl` field is not authoritative: the services take
    /// the remaining TTL from [`Backend::lease_remaining`].
    fn lease_info(&self, id: i64, keys: bool) -> Result<LeaseTimeToLiveResponse, ServerError>;
    /// Transfers leadership.
    fn move_leader(&self, target: u64) -> impl Future<Output = Result<(), ServerError>> + Send;
    /// Adds a member; the new member and the members after the change.
    fn member_add(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> impl Future<Output = Result<(MemberInfo, Vec<MemberInfo>), ServerError>> + Send;
    /// Removes a member; the members after the change.
    fn member_remove(
        &self,
        id: u64,
    ) -> impl Future<Output = Result<Vec<MemberInfo>, ServerError>> + Send;
    /// Replaces a member's peer URLs; the members after the change.
    fn member_update(
        &self,
        id: u64,
        peer_urls: Vec<String>,
    ) -> impl Future<Output = Result<Vec<MemberInfo>, ServerError>> + Send;
    /// Promotes a learner; the members after the change.
    fn member_promote(
        &self,
        id: u64,
    ) -> impl Future<Output = Result<Vec<MemberInfo>, ServerError>> + Send;
}

impl Backend for Member {
    fn store(&self) -> &Arc<Store> {
        Member::store(self)
    }
    fn status(&self) -> StatusInfo {
        Member::status(self)
    }
    fn members(&self) -> Vec<MemberInfo> {
        Member::members(self)
    }
    fn max_request_bytes(&self) -> usize {
        Member::max_request_bytes(self)
    }
    fn auth_token_ttl(&self) -> std::time::Duration {
        Member::auth_token_ttl(self)
    }
    fn cert_users(&self) -> bool {
        Member::cert_users(self)
    }
    fn jwt(&self) -> Option<std::sync::Arc<crate::jwt::JwtTokens>> {
        Member::jwt(self)
    }
    fn max_txn_ops(&self) -> usize {
        Member::max_txn_ops(self)
    }
    fn propose(
        &self,
        req: InternalRaftRequest,
    ) -> impl Future<Output = Result<WriteResponse, ServerError>> + Send {
        Member::propose(self, req)
    }
    fn read_barrier(&self) -> impl Future<Output = Result<(), ServerError>> + Send {
        Member::read_barrier(self)
    }
    fn lease_keep_alive(&self, id: i64) -> impl Future<Output = Result<i64, ServerError>> + Send {
        Member::lease_keep_alive(self, id)
    }
    fn lease_remaining(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<i64>, ServerError>> + Send {
        Member::lease_remaining(self, id)
    }
    fn lease_info(&self, id: i64, keys: bool) -> Result<LeaseTimeToLiveResponse, ServerError> {
        self.store()
            .lease_time_to_live(id, keys, self.now_ms())
            .map_err(|e| ServerError::Status(crate::error::mvcc_status(&e)))
    }
    fn move_leader(&self, target: u64) -> impl Future<Output = Result<(), ServerError>> + Send {
        Member::move_leader(self, target)
    }
    fn member_add(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> impl Future<Output = Result<(MemberInfo, Vec<MemberInfo>), ServerError>> + Send {
        Member::member_add(self, peer_urls, is_learner)
    }
    fn member_remove(
        &self,
        id: u64,
    ) -> impl Future<Output = Result<Vec<MemberInfo>, ServerError>> + Send {
        Member::member_remove(self, id)
    }
    fn member_update(
        &self,
        id: u64,
        peer_urls: Vec<String>,
    ) -> impl Future<Output = Result<Vec<MemberInfo>, ServerError>> + Send {
        Member::member_update(self, id, peer_urls)
    }
    fn member_promote(
        &self,
        id: u64,
    ) -> impl Future<Output = Result<Vec<MemberInfo>, ServerError>> + Send {
        Member::member_promote(self, id)
    }
}
