//! The KV service: Range, Put, DeleteRange, Txn, Compact.
//!
//! Ranges are served from the local store: at once when `serializable`, else after a read
//! barrier (ReadIndex), which makes them linearizable. Writes are checked as etcd checks them
//! before proposing (empty key, `ignore_*` misuse, txn size and duplicate keys, request size,
//! quota) and then proposed through Raft. Transactions, read-only ones included, go through
//! Raft: the store evaluates compares and ranges of one txn on one consistent state only at
//! apply time.
//!
//! With auth enabled every call is checked against the caller's permissions first
//! ([`super::authz`]) and writes are proposed stamped with the auth revision checked at.

use quorum_api::etcdserverpb as pb;
use quorum_api::etcdserverpb::kv_server::Kv;
use quorum_mvcc::{validate, WriteRequest, WriteResponse};
use tonic::{Request, Response, Status};

use super::authz::{self, authorize, caller};
use super::backend::Backend;
use super::common::{header, mvcc_err, propose_write, server_err, unexpected};
use crate::convert;
use crate::error::ServerError;

/// Entries of physical compaction run per step while a `physical` Compact waits; each step
/// holds the store's write lock, so it is kept short.
const PHYSICAL_COMPACTION_STEP: usize = 10_000;

/// The KV service over a member.
#[derive(Clone)]
pub struct KvService<B: Backend> {
    b: B,
}

impl<B: Backend> KvService<B> {
    /// The service over `b`.
    pub fn new(b: B) -> Self {
        KvService { b }
    }
}

#[tonic::async_trait]
impl<B: Backend> Kv for KvService<B> {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        authz::check_range(&self.b, &caller(&request), request.get_ref())?;
        let r = convert::range_from_pb(request.get_ref())?;
        validate::check_range(&r).map_err(|e| mvcc_err(&e))?;
        if !r.serializable {
            if self.b.status().is_learner {
                return Err(server_err(ServerError::NotSupportedForLearner));
            }
            self.b.read_barrier().await.map_err(server_err)?;
        }
        let resp = self.b.store().range(&r).map_err(|e| mvcc_err(&e))?;
        let rev = resp.header_revision;
        let mut out = convert::range_to_pb(resp);
        out.header = Some(header(&self.b, rev));
        Ok(Response::new(out))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let c = caller(&request);
        let auth_rev = authz::check_put(&self.b, &c, request.get_ref())?;
        let p = convert::put_from_pb(request.get_ref());
        validate::check_put(&p).map_err(|e| mvcc_err(&e))?;
        let w = authorize(WriteRequest::Put(p), auth_rev, &c);
        match propose_write(&self.b, w).await? {
            WriteResponse::Put(resp) => {
                let rev = resp.header_revision;
                let mut out = convert::put_to_pb(resp);
                out.header = Some(header(&self.b, rev));
                Ok(Response::new(out))
            }
            _ => Err(unexpected("Put")),
        }
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let c = caller(&request);
        let auth_rev = authz::check_delete(&self.b, &c, request.get_ref())?;
        let d = convert::delete_from_pb(request.get_ref());
        validate::check_delete(&d).map_err(|e| mvcc_err(&e))?;
        let w = authorize(WriteRequest::DeleteRange(d), auth_rev, &c);
        match propose_write(&self.b, w).await? {
            WriteResponse::DeleteRange(resp) => {
                let rev = resp.header_revision;
                let mut out = convert::delete_to_pb(resp);
                out.header = Some(header(&self.b, rev));
                Ok(Response::new(out))
            }
            _ => Err(unexpected("DeleteRange")),
        }
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let t = convert::txn_from_pb(request.get_ref())?;
        validate::check_txn(&t, self.b.max_txn_ops()).map_err(|e| mvcc_err(&e))?;
        let c = caller(&request);
        let auth_rev = authz::check_txn(&self.b, &c, request.get_ref())?;
        let w = authorize(WriteRequest::Txn(t), auth_rev, &c);
        match propose_write(&self.b, w).await? {
            WriteResponse::Txn(resp) => {
                let rev = resp.header_revision;
                let mut out = convert::txn_to_pb(resp);
                out.header = Some(header(&self.b, rev));
                Ok(Response::new(out))
            }
            _ => Err(unexpected("Txn")),
        }
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let c = convert::compaction_from_pb(request.get_ref());
        let physical = c.physical;
        let rev = match propose_write(&self.b, WriteRequest::Compaction(c)).await? {
            WriteResponse::Compaction(resp) => resp.header_revision,
            _ => return Err(unexpected("Compact")),
        };
        if physical {
            // etcd answers a physical compaction once the old revisions are gone from disk.
            let store = self.b.store().clone();
            tokio::task::spawn_blocking(move || loop {
                match store.run_compaction(PHYSICAL_COMPACTION_STEP) {
                    Ok(true) => return Ok(()),
                    Ok(false) => continue,
                    Err(e) => return Err(mvcc_err(&e)),
                }
            })
            .await
            .map_err(|e| Status::internal(format!("etcdserver: compaction task failed: {e}")))??;
        }
        Ok(Response::new(pb::CompactionResponse {
            header: Some(header(&self.b, rev)),
        }))
    }
}
