//! The Lease service: Grant (id 0: the store picks one), Revoke, the KeepAlive stream,
//! TimeToLive (with keys) and Leases.
//!
//! Grants and revokes are replicated; keep-alives and remaining TTLs are the leader's business
//! (its lessor decides expiry), reached through the member, which forwards when needed.

use std::pin::Pin;

use futures::Stream;
use quorum_api::etcdserverpb as pb;
use quorum_api::etcdserverpb::lease_server::Lease;
use quorum_mvcc::{WriteRequest, WriteResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::backend::Backend;
use super::common::{current_header, header, mvcc_err, propose_write, server_err, unexpected};
use crate::convert;

/// Keep-alive responses buffered per stream.
const KEEPALIVE_BUFFER: usize = 16;

/// The Lease service over a member.
#[derive(Clone)]
pub struct LeaseService<B: Backend> {
    b: B,
}

impl<B: Backend> LeaseService<B> {
    /// The service over `b`.
    pub fn new(b: B) -> Self {
        LeaseService { b }
    }
}

/// Grants a lease through Raft; `id == 0` lets the store choose the id.
pub async fn grant<B: Backend>(b: &B, ttl: i64, id: i64) -> Result<pb::LeaseGrantResponse, Status> {
    let req = convert::lease_grant_from_pb(&pb::LeaseGrantRequest { ttl, id });
    match propose_write(b, WriteRequest::LeaseGrant(req)).await? {
        WriteResponse::LeaseGrant(g) => Ok(pb::LeaseGrantResponse {
            header: Some(header(b, g.header_revision)),
            id: g.id,
            ttl: g.ttl,
            error: String::new(),
        }),
        _ => Err(unexpected("LeaseGrant")),
    }
}

/// Whether lease `id` is alive according to the leader's lessor.
pub async fn lease_alive<B: Backend>(b: &B, id: i64) -> Result<bool, Status> {
    Ok(matches!(
        b.lease_remaining(id).await.map_err(server_err)?,
        Some(ttl) if ttl > 0
    ))
}

#[tonic::async_trait]
impl<B: Backend> Lease for LeaseService<B> {
    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let r = request.get_ref();
        Ok(Response::new(grant(&self.b, r.ttl, r.id).await?))
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let c = super::authz::caller(&request);
        let req = convert::lease_revoke_from_pb(request.get_ref());
        // etcd: revoking deletes the attached keys, so it needs WRITE on each of them.
        let attached = self.b.lease_info(req.id, true).map_err(server_err)?.keys;
        let auth_rev = super::authz::check(
            &self.b,
            &c,
            &key_accesses(&attached, quorum_mvcc::PermType::Write),
        )?;
        let w = super::authz::authorize(WriteRequest::LeaseRevoke(req), auth_rev, &c);
        match propose_write(&self.b, w).await? {
            WriteResponse::LeaseRevoke(r) => Ok(Response::new(pb::LeaseRevokeResponse {
                header: Some(header(&self.b, r.header_revision)),
            })),
            _ => Err(unexpected("LeaseRevoke")),
        }
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(KEEPALIVE_BUFFER);
        let b = self.b.clone();
        tokio::spawn(async move {
            loop {
                let req = tokio::select! {
                    m = inbound.message() => m,
                    _ = tx.closed() => return,
                };
                let id = match req {
                    Ok(Some(r)) => r.id,
                    Ok(None) | Err(_) => return,
                };
                // An unknown or expired lease is answered with TTL 0, not an error (as etcd);
                // a member error (no leader, timeout) ends the stream with it.
                let resp = match b.lease_keep_alive(id).await {
                    Ok(ttl) => current_header(&b).map(|h| pb::LeaseKeepAliveResponse {
                        header: Some(h),
                        id,
                        ttl: ttl.max(0),
                    }),
                    Err(e) => Err(server_err(e)),
                };
                let failed = resp.is_err();
                if tx.send(resp).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let r = request.get_ref();
        // The leader's answer first: a lease it does not know is gone, whatever this member
        // applied so far.
        let remaining = self.b.lease_remaining(r.id).await.map_err(server_err)?;
        // ... and the granted TTL and keys as of now, not as of this member's last apply.
        self.b.read_barrier().await.map_err(server_err)?;
        let info = self.b.lease_info(r.id, r.keys).map_err(server_err)?;
        if r.keys {
            // etcd 3.5: listing the keys needs READ on each of them.
            let c = super::authz::caller(&request);
            super::authz::check(
                &self.b,
                &c,
                &key_accesses(&info.keys, quorum_mvcc::PermType::Read),
            )?;
        }
        let hdr = current_header(&self.b)?;
        let resp = match remaining {
            Some(ttl) if info.ttl != -1 => pb::LeaseTimeToLiveResponse {
                header: Some(hdr),
                id: r.id,
                ttl,
                granted_ttl: info.granted_ttl,
                keys: info.keys.into_iter().map(Into::into).collect(),
            },
            _ => pb::LeaseTimeToLiveResponse {
                header: Some(hdr),
                id: r.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let leases = self.b.store().leases().map_err(|e| mvcc_err(&e))?;
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: Some(current_header(&self.b)?),
            leases: leases
                .into_iter()
                .map(|id| pb::LeaseStatus { id })
                .collect(),
        }))
    }
}

/// One access of kind `perm` to each of `keys` (the keys attached to a lease).
fn key_accesses(keys: &[Vec<u8>], perm: quorum_mvcc::PermType) -> Vec<super::authz::Access<'_>> {
    keys.iter()
        .map(|k| super::authz::Access {
            key: k,
            range_end: &[],
            perm,
        })
        .collect()
}
