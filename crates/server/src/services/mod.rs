//! The etcd v3 gRPC services (KV, Watch, Lease, Cluster, Maintenance, Auth, and the v3lock and
//! v3election services) of a member, wire-compatible with etcd v3.5, and [`routes`], which the
//! shell serves on the client port.
//!
//! Every service is generic over [`Backend`] (implemented by [`Member`]) so that unit tests run
//! them over an in-process store. Every response header carries the cluster id, the member id,
//! the revision the response reflects and the Raft term ([`common::header`]).

use quorum_api::etcdserverpb::auth_server::AuthServer;
use quorum_api::etcdserverpb::cluster_server::ClusterServer;
use quorum_api::etcdserverpb::kv_server::KvServer;
use quorum_api::etcdserverpb::lease_server::LeaseServer;
use quorum_api::etcdserverpb::maintenance_server::MaintenanceServer;
use quorum_api::etcdserverpb::watch_server::WatchServer;
use quorum_api::v3electionpb::election_server::ElectionServer;
use quorum_api::v3lockpb::lock_server::LockServer;

use std::sync::Arc;

use crate::member::Member;

pub mod auth;
pub mod authz;
pub mod backend;
pub mod cluster;
pub mod common;
pub mod coord;
pub mod election;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod syncer;
pub mod watch;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use backend::Backend;

/// Slack on top of `--max-request-bytes` for a request's gRPC framing and the fields around
/// the payload (etcd's `grpcOverheadBytes`).
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// Largest response sent (etcd: `math.MaxInt32`): big ranges must get through.
pub const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// Every client-facing gRPC service of `member`, ready to serve on the client port. Requests
/// larger than `--max-request-bytes` plus [`GRPC_OVERHEAD_BYTES`] are refused by the gRPC layer
/// (tonic answers `OutOfRange`), smaller ones that still exceed `--max-request-bytes` once encoded for
/// Raft with `etcdserver: request is too large`.
pub fn routes(member: Member) -> tonic::service::Routes {
    routes_for(member)
}

/// [`routes`] over any backend.
pub fn routes_for<B: Backend>(b: B) -> tonic::service::Routes {
    let max_in = b.max_request_bytes().saturating_add(GRPC_OVERHEAD_BYTES);
    let max_out = MAX_RESPONSE_BYTES;
    macro_rules! limits {
        ($svc:expr) => {
            $svc.max_decoding_message_size(max_in)
                .max_encoding_message_size(max_out)
        };
    }
    // One gate per member: its tokens are local, as etcd's simple tokens.
    let barrier_backend = b.clone();
    let barrier: authz::Barrier = Arc::new(move || {
        let b = barrier_backend.clone();
        Box::pin(async move { b.read_barrier().await })
    });
    let status_backend = b.clone();
    let gate = Arc::new(
        authz::AuthGate::new(b.store().clone(), b.auth_token_ttl())
            .with_cert_users(b.cert_users())
            .with_jwt(b.jwt())
            .with_barrier(barrier)
            .with_status_probe(Arc::new(move || status_backend.status())),
    );
    tonic::service::Routes::new(authz::Gated::new(
        limits!(KvServer::new(kv::KvService::new(b.clone()))),
        gate.clone(),
    ))
    .add_service(authz::Gated::new(
        limits!(WatchServer::new(watch::WatchService::new(b.clone()))),
        gate.clone(),
    ))
    .add_service(authz::Gated::new(
        limits!(LeaseServer::new(lease::LeaseService::new(b.clone()))),
        gate.clone(),
    ))
    .add_service(authz::Gated::new(
        limits!(ClusterServer::new(cluster::ClusterService::new(b.clone()))),
        gate.clone(),
    ))
    .add_service(authz::Gated::new(
        limits!(MaintenanceServer::new(
            maintenance::MaintenanceService::new(b.clone())
        )),
        gate.clone(),
    ))
    .add_service(authz::Gated::new(
        limits!(AuthServer::new(auth::AuthService::new(b.clone()))),
        gate.clone(),
    ))
    .add_service(authz::Gated::new(
        limits!(LockServer::new(lock::LockService::new(b.clone()))),
        gate.clone(),
    ))
    .add_service(authz::Gated::new(
        limits!(ElectionServer::new(election::ElectionService::new(b))),
        gate,
    ))
}
