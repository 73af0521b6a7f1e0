//! An in-process [`Backend`] for unit tests: one store, proposals applied at once in order,
//! this member always the leader, and a clock the test moves by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use quorum_api::internal::InternalRaftRequest;
use quorum_mvcc::{LeaseTimeToLiveResponse, MvccError, Store, StoreOptions, WriteResponse};

use super::backend::Backend;
use crate::convert::internal_to_write;
use crate::error::{mvcc_status, ServerError};
use crate::member::{MemberInfo, StatusInfo};
use crate::membership::{Applied, MemberChange, Op, Registry};

/// Member id of the test backend.
pub const MEMBER_ID: u64 = 0x1111;
/// Cluster id of the test backend.
pub const CLUSTER_ID: u64 = 0x2222;
/// Raft term of the test backend.
pub const TERM: u64 = 7;

struct Inner {
    store: Arc<Store>,
    /// Last Raft index used; held while applying so that entries reach the store in order.
    index: Mutex<u64>,
    now_ms: AtomicU64,
    /// The member knows no leader (for the require-leader tests).
    leaderless: std::sync::atomic::AtomicBool,
    max_request_bytes: usize,
    /// The membership, changed at once by the Cluster calls.
    registry: Mutex<Registry>,
    _dir: tempfile::TempDir,
}

/// See the module documentation.
#[derive(Clone)]
pub struct LocalBackend {
    inner: Arc<Inner>,
}

fn status_err(e: &MvccError) -> ServerError {
    ServerError::Status(mvcc_status(e))
}

impl LocalBackend {
    /// A fresh store in a temporary directory, with `max_request_bytes`.
    pub fn new(max_request_bytes: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            durable: false,
            min_lease_ttl: 1,
            ..StoreOptions::default()
        };
        let store = Arc::new(Store::open(dir.path().join("db"), opts).unwrap());
        store.lease_promote(1_000, 0).unwrap();
        LocalBackend {
            inner: Arc::new(Inner {
                store,
                index: Mutex::new(0),
                now_ms: AtomicU64::new(1_000),
                leaderless: std::sync::atomic::AtomicBool::new(false),
                max_request_bytes,
                registry: Mutex::new(Registry::bootstrap(vec![MemberInfo {
                    id: MEMBER_ID,
                    name: "test".to_string(),
                    peer_urls: vec!["http://127.0.0.1:2380".to_string()],
                    client_urls: vec!["http://127.0.0.1:2379".to_string()],
                    is_learner: false,
                }])),
                _dir: dir,
            }),
        }
    }

    /// Makes the member report no leader (`true`) or itself as the leader again.
    pub fn set_leaderless(&self, leaderless: bool) {
        self.inner.leaderless.store(leaderless, Ordering::SeqCst);
    }

    /// Moves the lessor's clock forward.
    pub fn advance_ms(&self, ms: u64) {
        self.inner.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    fn now(&self) -> u64 {
        self.inner.now_ms.load(Ordering::SeqCst)
    }

    /// Applies a membership change at the next index, as every member would.
    fn change(&self, op: Op, member: MemberInfo) -> Result<Vec<MemberInfo>, ServerError> {
        let mut index = self.inner.index.lock().unwrap();
        *index += 1;
        let mut registry = self.inner.registry.lock().unwrap();
        let change = MemberChange {
            op,
            member,
            request_id: 1,
        };
        match registry.apply_change(*index, &change) {
            Applied::Changed => Ok(registry.members()),
            Applied::Refused(e) => Err(e.into()),
            Applied::Skipped => Err(ServerError::Internal("entry skipped".to_string())),
        }
    }
}

impl Backend for LocalBackend {
    fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }
    fn status(&self) -> StatusInfo {
        let applied = *self.inner.index.lock().unwrap();
        StatusInfo {
            member_id: MEMBER_ID,
            cluster_id: CLUSTER_ID,
            leader: if self.inner.leaderless.load(Ordering::SeqCst) {
                0
            } else {
                MEMBER_ID
            },
            raft_term: TERM,
            raft_index: applied,
            raft_applied_index: applied,
            is_learner: false,
        }
    }
    fn members(&self) -> Vec<MemberInfo> {
        self.inner.registry.lock().unwrap().members()
    }
    fn max_request_bytes(&self) -> usize {
        self.inner.max_request_bytes
    }
    fn max_txn_ops(&self) -> usize {
        128
    }
    async fn propose(&self, req: InternalRaftRequest) -> Result<WriteResponse, ServerError> {
        let w = internal_to_write(&req).map_err(|e| ServerError::InvalidArgument(e.to_string()))?;
        let mut index = self.inner.index.lock().unwrap();
        *index += 1;
        let mut out = self
            .inner
            .store
            .apply(&[(*index, w)])
            .map_err(|e| status_err(&e))?;
        match out.pop().flatten() {
            Some(Ok(r)) => Ok(r),
            Some(Err(e)) => Err(status_err(&e)),
            None => Err(ServerError::Internal("entry skipped".to_string())),
        }
    }
    async fn read_barrier(&self) -> Result<(), ServerError> {
        Ok(())
    }
    async fn lease_keep_alive(&self, id: i64) -> Result<i64, ServerError> {
        match self.inner.store.lease_renew(id, self.now()) {
            Ok(ttl) => Ok(ttl),
            Err(MvccError::LeaseNotFound) => Ok(0),
            Err(e) => Err(status_err(&e)),
        }
    }
    async fn lease_remaining(&self, id: i64) -> Result<Option<i64>, ServerError> {
        let r = self
            .inner
            .store
            .lease_time_to_live(id, false, self.now())
            .map_err(|e| status_err(&e))?;
        Ok((r.ttl != -1).then_some(r.ttl))
    }
    fn lease_info(&self, id: i64, keys: bool) -> Result<LeaseTimeToLiveResponse, ServerError> {
        self.inner
            .store
            .lease_time_to_live(id, keys, self.now())
            .map_err(|e| status_err(&e))
    }
    async fn member_add(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> Result<(MemberInfo, Vec<MemberInfo>), ServerError> {
        crate::membership::validate_urls(&peer_urls)?;
        let member = MemberInfo {
            id: crate::ids::new_member_id(&peer_urls, CLUSTER_ID, 0),
            name: String::new(),
            peer_urls,
            client_urls: Vec::new(),
            is_learner,
        };
        let members = self.change(Op::Add, member.clone())?;
        Ok((member, members))
    }
    async fn member_remove(&self, id: u64) -> Result<Vec<MemberInfo>, ServerError> {
        self.change(Op::Remove, bare(id))
    }
    async fn member_update(
        &self,
        id: u64,
        peer_urls: Vec<String>,
    ) -> Result<Vec<MemberInfo>, ServerError> {
        let mut m = bare(id);
        m.peer_urls = peer_urls;
        self.change(Op::Update, m)
    }
    async fn member_promote(&self, id: u64) -> Result<Vec<MemberInfo>, ServerError> {
        self.change(Op::Promote, bare(id))
    }
    async fn move_leader(&self, target: u64) -> Result<(), ServerError> {
        if target == MEMBER_ID {
            Ok(())
        } else {
            Err(ServerError::BadLeaderTransferee)
        }
    }
}

fn bare(id: u64) -> MemberInfo {
    MemberInfo {
        id,
        name: String::new(),
        peer_urls: Vec::new(),
        client_urls: Vec::new(),
        is_learner: false,
    }
}
