//! The Cluster service: MemberList. Membership changes arrive with the membership issue; until
//! then they answer `Unimplemented` with a message saying so.

use quorum_api::etcdserverpb as pb;
use quorum_api::etcdserverpb::cluster_server::Cluster;
use tonic::{Request, Response, Status};

use super::backend::Backend;
use super::common::{current_header, server_err};
use crate::member::MemberInfo;

/// The Cluster service over a member.
#[derive(Clone)]
pub struct ClusterService<B: Backend> {
    b: B,
}

impl<B: Backend> ClusterService<B> {
    /// The service over `b`.
    pub fn new(b: B) -> Self {
        ClusterService { b }
    }

    fn members(&self) -> Vec<pb::Member> {
        self.b.members().into_iter().map(member_to_pb).collect()
    }
}

/// A member as the Cluster API reports it.
pub fn member_to_pb(m: MemberInfo) -> pb::Member {
    pb::Member {
        id: m.id,
        name: m.name,
        peer_ur_ls: m.peer_urls,
        client_ur_ls: m.client_urls,
        is_learner: m.is_learner,
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what} is not supported by Quorum yet: membership changes are not implemented; \
         start a new cluster with the desired --initial-cluster instead"
    ))
}

#[tonic::async_trait]
impl<B: Backend> Cluster for ClusterService<B> {
    async fn member_add(
        &self,
        _request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        Err(not_yet("MemberAdd"))
    }

    async fn member_remove(
        &self,
        _request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        Err(not_yet("MemberRemove"))
    }

    async fn member_update(
        &self,
        _request: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        Err(not_yet("MemberUpdate"))
    }

    async fn member_list(
        &self,
        request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        if request.get_ref().linearizable {
            self.b.read_barrier().await.map_err(server_err)?;
        }
        Ok(Response::new(pb::MemberListResponse {
            header: Some(current_header(&self.b)?),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        _request: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        Err(not_yet("MemberPromote"))
    }
}
