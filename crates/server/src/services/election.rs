//! The Election service (etcd's v3election): leader election on leases and revisions.
//!
//! A candidate's key is `<name>/<lease in hex>`, holding its proclaimed value and attached to
//! its lease; the leader is the candidate with the smallest create revision. `Campaign` waits
//! until every older candidate is gone and then, as `Lock` does, checks that its key and lease
//! are still alive before answering (see `services::lock`). `Proclaim` and `Resign` act only if
//! the leader key still has the create revision given in the `LeaderKey`, so that a deposed
//! leader cannot overwrite or delete its successor's key. Errors are etcd's:
//! `election: not leader` (Proclaim by a candidate that is not, or no longer, leader) and
//! `election: no leader` (Leader of an election without candidates).

use std::pin::Pin;

use futures::Stream;
use quorum_api::v3electionpb as epb;
use quorum_api::v3electionpb::election_server::Election;
use quorum_mvcc::{self as mvcc, EventType, RequestOp, TxnRequest, WatchFilterType};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::backend::Backend;
use super::common::{header, prefix_end};
use super::coord::{
    check_still_owner, contender_prefix, created_at, first_created, get_req, owner_key, range_kvs,
    read, release_txn, session_lease, txn, wait_deletes, watch, ReleaseOnDrop,
};
use crate::convert;

/// Observe responses buffered ahead of the client.
const OBSERVE_BUFFER: usize = 16;

/// etcd's `ErrElectionNotLeader`.
pub fn not_leader() -> Status {
    Status::unknown("election: not leader")
}

/// etcd's `ErrElectionNoLeader`.
pub fn no_leader() -> Status {
    Status::unknown("election: no leader")
}

fn missing_leader() -> Status {
    Status::unknown("\"leader\" field must be provided")
}

/// The Election service over a member.
#[derive(Clone)]
pub struct ElectionService<B: Backend> {
    b: B,
}

impl<B: Backend> ElectionService<B> {
    /// The service over `b`.
    pub fn new(b: B) -> Self {
        ElectionService { b }
    }
}

/// Puts `value` on the leader key if it is still ours; the revision of the write.
async fn proclaim<B: Backend>(b: &B, l: &epb::LeaderKey, value: &[u8]) -> Result<i64, Status> {
    let resp = txn(
        b,
        TxnRequest {
            compare: vec![created_at(&l.key, l.rev)],
            success: vec![RequestOp::Put(mvcc::PutRequest {
                key: l.key.to_vec(),
                value: value.to_vec(),
                lease: l.lease,
                ..Default::default()
            })],
            failure: Vec::new(),
        },
    )
    .await?;
    if !resp.succeeded {
        return Err(not_leader());
    }
    Ok(resp.header_revision)
}

/// Campaigns in election `name`; returns the leadership and the revision it was confirmed at.
pub async fn campaign<B: Backend>(
    b: &B,
    name: &[u8],
    lease: i64,
    value: &[u8],
) -> Result<(epb::LeaderKey, i64), Status> {
    let lease = session_lease(b, lease).await?;
    let prefix = contender_prefix(name);
    let key = owner_key(&prefix, lease);
    let resp = txn(
        b,
        TxnRequest {
            compare: vec![created_at(&key, 0)],
            success: vec![RequestOp::Put(mvcc::PutRequest {
                key: key.clone(),
                value: value.to_vec(),
                lease,
                ..Default::default()
            })],
            failure: vec![RequestOp::Range(get_req(&key))],
        },
    )
    .await?;
    let leader = |rev| epb::LeaderKey {
        name: name.to_vec().into(),
        key: key.clone().into(),
        rev,
        lease,
    };
    let my_rev = if resp.succeeded {
        resp.header_revision
    } else {
        let kv = range_kvs(&resp, 0)?
            .first()
            .cloned()
            .ok_or_else(not_leader)?;
        let release = ReleaseOnDrop::new(b, &key, kv.create_revision);
        if kv.value != value {
            proclaim(b, &leader(kv.create_revision), value).await?;
        }
        release.disarm();
        kv.create_revision
    };
    let release = ReleaseOnDrop::new(b, &key, my_rev);
    wait_deletes(b, &prefix, my_rev - 1).await?;
    let rev = check_still_owner(b, &key, my_rev, lease).await?;
    release.disarm();
    Ok((leader(my_rev), rev))
}

/// The current leader's key-value and the revision it was read at.
pub async fn leader<B: Backend>(b: &B, name: &[u8]) -> Result<(mvcc::KeyValue, i64), Status> {
    let prefix = contender_prefix(name);
    let resp = read(b, &first_created(&prefix)).await?;
    let rev = resp.header_revision;
    resp.kvs
        .into_iter()
        .next()
        .map(|kv| (kv, rev))
        .ok_or_else(no_leader)
}

fn leader_response<B: Backend>(b: &B, kv: mvcc::KeyValue, rev: i64) -> epb::LeaderResponse {
    epb::LeaderResponse {
        header: Some(header(b, rev)),
        kv: Some(convert::kv_to_pb(kv)),
    }
}

/// Streams successive leaders of election `name` to `tx`, as etcd's `observe`: the current
/// leader (or the first candidate to appear), then each of its new proclamations, and when its
/// key is deleted, the next leader. Returns when the client is gone or on an error.
async fn observe<B: Backend>(
    b: B,
    name: Vec<u8>,
    tx: mpsc::Sender<Result<epb::LeaderResponse, Status>>,
) -> Result<(), Status> {
    let prefix = contender_prefix(&name);
    let end = prefix_end(&prefix);
    loop {
        let resp = read(&b, &first_created(&prefix)).await?;
        let (kv, rev) = match resp.kvs.into_iter().next() {
            Some(kv) => (kv, resp.header_revision),
            None => {
                // Wait for the first candidate's put (a delete would make us spin).
                let (_guard, mut rx) = watch(
                    &b,
                    &prefix,
                    &end,
                    resp.header_revision,
                    vec![WatchFilterType::NoDelete],
                )?;
                let mut first = None;
                while let Some(w) = rx.recv().await {
                    if w.canceled {
                        break;
                    }
                    if let Some(ev) = w.events.into_iter().find(|e| e.kind == EventType::Put) {
                        let rev = ev.kv.mod_revision;
                        first = Some((ev.kv, rev));
                        break;
                    }
                }
                match first {
                    Some(found) => found,
                    None => continue, // cancelled (compaction): read again
                }
            }
        };
        let key = kv.key.clone();
        if tx.send(Ok(leader_response(&b, kv, rev))).await.is_err() {
            return Ok(());
        }
        let (_guard, mut rx) = watch(&b, &key, &[], rev + 1, Vec::new())?;
        'leader: while let Some(w) = rx.recv().await {
            if w.canceled {
                break;
            }
            for ev in w.events {
                if ev.kind == EventType::Delete {
                    break 'leader;
                }
                let r = leader_response(&b, ev.kv, w.header_revision);
                if tx.send(Ok(r)).await.is_err() {
                    return Ok(());
                }
            }
        }
        if tx.is_closed() {
            return Ok(());
        }
    }
}

#[tonic::async_trait]
impl<B: Backend> Election for ElectionService<B> {
    async fn campaign(
        &self,
        request: Request<epb::CampaignRequest>,
    ) -> Result<Response<epb::CampaignResponse>, Status> {
        let r = request.get_ref();
        super::authz::check_coordination(&self.b, &super::authz::caller(&request), &r.name)?;
        let (l, rev) = campaign(&self.b, &r.name, r.lease, &r.value).await?;
        Ok(Response::new(epb::CampaignResponse {
            header: Some(header(&self.b, rev)),
            leader: Some(l),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<epb::ProclaimRequest>,
    ) -> Result<Response<epb::ProclaimResponse>, Status> {
        let r = request.get_ref();
        let l = r.leader.as_ref().ok_or_else(missing_leader)?;
        super::authz::check_key_write(&self.b, &super::authz::caller(&request), &l.key)?;
        let rev = proclaim(&self.b, l, &r.value).await?;
        Ok(Response::new(epb::ProclaimResponse {
            header: Some(header(&self.b, rev)),
        }))
    }

    async fn leader(
        &self,
        request: Request<epb::LeaderRequest>,
    ) -> Result<Response<epb::LeaderResponse>, Status> {
        super::authz::check_prefix_read(
            &self.b,
            &super::authz::caller(&request),
            &request.get_ref().name,
        )?;
        let (kv, rev) = leader(&self.b, &request.get_ref().name).await?;
        Ok(Response::new(leader_response(&self.b, kv, rev)))
    }

    type ObserveStream = Pin<Box<dyn Stream<Item = Result<epb::LeaderResponse, Status>> + Send>>;

    async fn observe(
        &self,
        request: Request<epb::LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        super::authz::check_prefix_read(
            &self.b,
            &super::authz::caller(&request),
            &request.get_ref().name,
        )?;
        let name = request.get_ref().name.to_vec();
        let (tx, rx) = mpsc::channel(OBSERVE_BUFFER);
        let b = self.b.clone();
        tokio::spawn(async move {
            let done = tx.clone();
            tokio::select! {
                res = observe(b, name, tx) => {
                    if let Err(e) = res {
                        let _ = done.send(Err(e)).await;
                    }
                }
                _ = done.closed() => {}
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(
        &self,
        request: Request<epb::ResignRequest>,
    ) -> Result<Response<epb::ResignResponse>, Status> {
        let c = super::authz::caller(&request);
        let l = request.into_inner().leader.ok_or_else(missing_leader)?;
        super::authz::check_key_write(&self.b, &c, &l.key)?;
        // Resigning leadership that is already gone succeeds, as in etcd.
        let resp = txn(&self.b, release_txn(&l.key, l.rev)).await?;
        Ok(Response::new(epb::ResignResponse {
            header: Some(header(&self.b, resp.header_revision)),
        }))
    }
}
