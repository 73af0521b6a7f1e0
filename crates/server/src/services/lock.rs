//! The Lock service (etcd's v3lock): distributed locks on leases and revisions.
//!
//! `Lock(name, lease)` puts the key `<name>/<lease in hex>` attached to the lease (a key that
//! exists already, from an earlier call with the same lease, is kept with its revision), then
//! waits until no key under `<name>/` has a smaller create revision, by watching the deletion of
//! each predecessor. Before answering it checks that the key is still there with the same create
//! revision and that the lease is still alive according to the leader: a lease that expired
//! during the wait must not produce a granted lock (the flaw Jepsen found in etcd 3.4's lock
//! service); the call then fails with `session expired`. A lease of 0 makes the service grant a
//! lease of [`DEFAULT_SESSION_TTL`] seconds that nobody keeps alive, as etcd.
//!
//! **Fencing token.** The create revision of the returned key is a fencing token: it is
//! strictly larger for every later holder of the same lock (a later holder's key is created
//! after the earlier holder's key, or recreated after it was deleted). It can be read with a
//! Range on the key, or guarded on directly in a Txn with `create_revision(key) == token`,
//! which fails as soon as the lock is lost. The response header's revision also increases
//! strictly from one holder to the next.
//!
//! If the client gives up while waiting (deadline, disconnect) or the wait fails, the key is
//! deleted again (if it still has the create revision we queued with), as etcd's client does.
//! `Unlock(key)` deletes the key.

use quorum_api::v3lockpb as lockpb;
use quorum_api::v3lockpb::lock_server::Lock;
use quorum_mvcc::{self as mvcc, RequestOp, TxnRequest, WriteRequest, WriteResponse};
use tonic::{Request, Response, Status};

pub use super::coord::DEFAULT_SESSION_TTL;

use super::backend::Backend;
use super::common::{header, propose_write, unexpected};
use super::coord::{
    check_still_owner, contender_prefix, created_at, first_created, get_req, owner_key, range_kvs,
    session_lease, txn, wait_deletes, ReleaseOnDrop,
};

/// The Lock service over a member.
#[derive(Clone)]
pub struct LockService<B: Backend> {
    b: B,
}

impl<B: Backend> LockService<B> {
    /// The service over `b`.
    pub fn new(b: B) -> Self {
        LockService { b }
    }
}

/// Acquires lock `name` for `lease`; returns the ownership key and the revision at which
/// ownership was confirmed. See the module documentation.
pub async fn acquire<B: Backend>(b: &B, name: &[u8], lease: i64) -> Result<(Vec<u8>, i64), Status> {
    let lease = session_lease(b, lease).await?;
    let prefix = contender_prefix(name);
    let key = owner_key(&prefix, lease);
    let resp = txn(
        b,
        TxnRequest {
            compare: vec![created_at(&key, 0)],
            success: vec![
                RequestOp::Put(mvcc::PutRequest {
                    key: key.clone(),
                    value: Vec::new(),
                    lease,
                    ..Default::default()
                }),
                RequestOp::Range(first_created(&prefix)),
            ],
            failure: vec![
                RequestOp::Range(get_req(&key)),
                RequestOp::Range(first_created(&prefix)),
            ],
        },
    )
    .await?;
    let my_rev = if resp.succeeded {
        resp.header_revision
    } else {
        range_kvs(&resp, 0)?
            .first()
            .map(|kv| kv.create_revision)
            .ok_or_else(|| unexpected("Lock: own key vanished inside a transaction"))?
    };
    let release = ReleaseOnDrop::new(b, &key, my_rev);
    let owner_rev = range_kvs(&resp, 1)?.first().map(|kv| kv.create_revision);
    if owner_rev != Some(my_rev) {
        wait_deletes(b, &prefix, my_rev - 1).await?;
    }
    let rev = check_still_owner(b, &key, my_rev, lease).await?;
    release.disarm();
    Ok((key, rev))
}

#[tonic::async_trait]
impl<B: Backend> Lock for LockService<B> {
    async fn lock(
        &self,
        request: Request<lockpb::LockRequest>,
    ) -> Result<Response<lockpb::LockResponse>, Status> {
        let r = request.get_ref();
        super::authz::check_coordination(&self.b, &super::authz::caller(&request), &r.name)?;
        let (key, rev) = acquire(&self.b, &r.name, r.lease).await?;
        Ok(Response::new(lockpb::LockResponse {
            header: Some(header(&self.b, rev)),
            key: key.into(),
        }))
    }

    async fn unlock(
        &self,
        request: Request<lockpb::UnlockRequest>,
    ) -> Result<Response<lockpb::UnlockResponse>, Status> {
        super::authz::check_key_write(
            &self.b,
            &super::authz::caller(&request),
            &request.get_ref().key,
        )?;
        let d = mvcc::DeleteRangeRequest {
            key: request.get_ref().key.to_vec(),
            range_end: Vec::new(),
            prev_kv: false,
        };
        quorum_mvcc::validate::check_delete(&d).map_err(|e| super::common::mvcc_err(&e))?;
        match propose_write(&self.b, WriteRequest::DeleteRange(d)).await? {
            WriteResponse::DeleteRange(r) => Ok(Response::new(lockpb::UnlockResponse {
                header: Some(header(&self.b, r.header_revision)),
            })),
            _ => Err(unexpected("Unlock")),
        }
    }
}
