//! Coordination primitives shared by the Lock and Election services, built on the store as
//! etcd's `clientv3/concurrency` builds them on the client API: a session lease, an ownership
//! key `<name>/<lease in hex>` per contender, ordering by create revision, and waiting for the
//! deletion of every contender created before us.

use quorum_mvcc::{
    self as mvcc, Compare, CompareResult, CompareTarget, EventType, RangeRequest, RangeResponse,
    RequestOp, SortOrder, SortTarget, TargetUnion, TxnRequest, TxnResponse, WatchCreateRequest,
    WatchFilterType, WriteRequest, WriteResponse,
};
use tokio::sync::mpsc;
use tonic::Status;

use super::backend::Backend;
use super::common::{mvcc_err, prefix_end, propose_write, server_err, unexpected};
use super::lease::grant;
use super::syncer::ensure_syncer;

/// TTL of the lease created for a Lock or Campaign that names no lease (etcd's session default).
pub const DEFAULT_SESSION_TTL: i64 = 60;
/// Watch responses buffered while waiting on a key.
pub const WAIT_BUFFER: usize = 64;

/// The lease to hold ownership with: `lease`, or a new one of [`DEFAULT_SESSION_TTL`] seconds
/// when it is 0 (as etcd's lock and election services do; nobody keeps that one alive).
pub async fn session_lease<B: Backend>(b: &B, lease: i64) -> Result<i64, Status> {
    if lease != 0 {
        return Ok(lease);
    }
    Ok(grant(b, DEFAULT_SESSION_TTL, 0).await?.id)
}

/// `name` + "/": the prefix of every contender's key.
pub fn contender_prefix(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// A contender's key: the prefix and the lease id in hex as Go's `%x` prints an int64 (a
/// minus sign, then the magnitude, for a negative id).
pub fn owner_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    k.extend_from_slice(hex.as_bytes());
    k
}

/// A single-key read.
pub fn get_req(key: &[u8]) -> RangeRequest {
    RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    }
}

/// The oldest contender under `prefix` (etcd's `WithFirstCreate`).
pub fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: SortOrder::Ascend,
        sort_target: SortTarget::Create,
        ..Default::default()
    }
}

/// The newest contender under `prefix` created at or before `max_create_revision`.
pub fn last_created_before(prefix: &[u8], max_create_revision: i64) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: SortOrder::Descend,
        sort_target: SortTarget::Create,
        max_create_revision,
        ..Default::default()
    }
}

/// `create_revision(key) == rev`.
pub fn created_at(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal,
        target: CompareTarget::Create,
        key: key.to_vec(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
        range_end: Vec::new(),
    }
}

/// A linearizable range.
pub async fn read<B: Backend>(b: &B, req: &RangeRequest) -> Result<RangeResponse, Status> {
    b.read_barrier().await.map_err(server_err)?;
    b.store().range(req).map_err(|e| mvcc_err(&e))
}

/// Proposes a transaction.
pub async fn txn<B: Backend>(b: &B, t: TxnRequest) -> Result<TxnResponse, Status> {
    match propose_write(b, WriteRequest::Txn(t)).await? {
        WriteResponse::Txn(r) => Ok(r),
        _ => Err(unexpected("Txn")),
    }
}

/// The key-values of the `i`-th response of a transaction, which must be a range.
pub fn range_kvs(resp: &TxnResponse, i: usize) -> Result<&[mvcc::KeyValue], Status> {
    match resp.responses.get(i) {
        Some(mvcc::ResponseOp::Range(r)) => Ok(&r.kvs),
        _ => Err(unexpected("a range inside a transaction")),
    }
}

/// A store watcher cancelled when dropped.
pub struct WatchGuard<'a> {
    store: &'a mvcc::Store,
    id: mvcc::WatchId,
}

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        self.store.cancel_watch(self.id);
    }
}

/// Watches `[key, range_end)` from `start_revision` into a fresh channel.
pub fn watch<'a, B: Backend>(
    b: &'a B,
    key: &[u8],
    range_end: &[u8],
    start_revision: i64,
    filters: Vec<WatchFilterType>,
) -> Result<(WatchGuard<'a>, mpsc::Receiver<mvcc::WatchResponse>), Status> {
    ensure_syncer(b.store());
    let (tx, rx) = mpsc::channel(WAIT_BUFFER);
    let req = WatchCreateRequest {
        key: key.to_vec(),
        range_end: range_end.to_vec(),
        start_revision,
        filters,
        prev_kv: false,
        fragment: false,
    };
    let id = b.store().watch(&req, tx).map_err(|e| mvcc_err(&e))?;
    Ok((
        WatchGuard {
            store: b.store().as_ref(),
            id,
        },
        rx,
    ))
}

/// Returns once `key` is deleted at a revision >= `rev`, or once the watch is cancelled by
/// the store (compaction of `rev`, snapshot restore): the caller then reads again.
pub async fn wait_delete<B: Backend>(b: &B, key: &[u8], rev: i64) -> Result<(), Status> {
    let (_guard, mut rx) = watch(b, key, &[], rev, vec![WatchFilterType::NoPut])?;
    while let Some(resp) = rx.recv().await {
        if resp.canceled || resp.events.iter().any(|e| e.kind == EventType::Delete) {
            return Ok(());
        }
    }
    Ok(())
}

/// Waits until no key under `prefix` has a create revision <= `max_create_revision` (etcd's
/// `waitDeletes`): each time, the newest such key is watched until it is deleted.
pub async fn wait_deletes<B: Backend>(
    b: &B,
    prefix: &[u8],
    max_create_revision: i64,
) -> Result<(), Status> {
    loop {
        let resp = read(b, &last_created_before(prefix, max_create_revision)).await?;
        let Some(kv) = resp.kvs.first() else {
            return Ok(());
        };
        wait_delete(b, &kv.key, resp.header_revision).await?;
    }
}

/// Deletes `key` if it still has create revision `rev`, in the background: used when a Lock or
/// Campaign is abandoned (client gone, deadline) or fails, as etcd's client does.
pub struct ReleaseOnDrop<B: Backend> {
    b: B,
    key: Vec<u8>,
    rev: i64,
    armed: bool,
}

impl<B: Backend> ReleaseOnDrop<B> {
    /// Armed: dropping it releases `key`.
    pub fn new(b: &B, key: &[u8], rev: i64) -> Self {
        ReleaseOnDrop {
            b: b.clone(),
            key: key.to_vec(),
            rev,
            armed: true,
        }
    }

    /// Ownership was handed to the client: keep the key.
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl<B: Backend> Drop for ReleaseOnDrop<B> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let b = self.b.clone();
        let t = release_txn(&self.key, self.rev);
        rt.spawn(async move {
            if let Err(e) = txn(&b, t).await {
                tracing::warn!("releasing an abandoned lock or campaign key failed: {e}");
            }
        });
    }
}

/// Deletes `key` if its create revision is `rev` (etcd's `Resign`, and `Unlock` of a key we
/// still own).
pub fn release_txn(key: &[u8], rev: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![created_at(key, rev)],
        success: vec![RequestOp::DeleteRange(mvcc::DeleteRangeRequest {
            key: key.to_vec(),
            range_end: Vec::new(),
            prev_kv: false,
        })],
        failure: Vec::new(),
    }
}

/// The error when ownership was lost while waiting for it (etcd's `ErrSessionExpired`).
pub fn session_expired() -> Status {
    Status::unknown("session expired")
}

/// After waiting: ownership is granted only if our key still exists with the create revision
/// we queued with AND the lease is still alive according to the leader. Without the second
/// check a lease that expired while we waited would grant a lock nobody holds any more (the
/// flaw Jepsen found in etcd 3.4). Returns the revision of the read.
pub async fn check_still_owner<B: Backend>(
    b: &B,
    key: &[u8],
    rev: i64,
    lease: i64,
) -> Result<i64, Status> {
    let got = read(b, &get_req(key)).await?;
    match got.kvs.first() {
        Some(kv) if kv.create_revision == rev && kv.lease == lease => {}
        _ => return Err(session_expired()),
    }
    if !super::lease::lease_alive(b, lease).await? {
        return Err(session_expired());
    }
    Ok(got.header_revision)
}
