//! The Cluster service: MemberAdd, MemberRemove, MemberUpdate, MemberPromote and MemberList,
//! with etcd's checks, messages and status codes (see `crate::membership` and
//! `crate::shell::Shared::member_add` and friends).

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

fn members_pb(members: Vec<MemberInfo>) -> Vec<pb::Member> {
    members.into_iter().map(member_to_pb).collect()
}

#[tonic::async_trait]
impl<B: Backend> Cluster for ClusterService<B> {
    async fn member_add(
        &self,
        request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let r = request.into_inner();
        let (member, members) = self
            .b
            .member_add(r.peer_ur_ls, r.is_learner)
            .await
            .map_err(server_err)?;
        Ok(Response::new(pb::MemberAddResponse {
            header: Some(current_header(&self.b)?),
            // As etcd: the new member has no name or client URLs until it starts.
            member: Some(member_to_pb(member)),
            members: members_pb(members),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let members = self
            .b
            .member_remove(request.get_ref().id)
            .await
            .map_err(server_err)?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: Some(current_header(&self.b)?),
            members: members_pb(members),
        }))
    }

    async fn member_update(
        &self,
        request: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        let r = request.into_inner();
        let members = self
            .b
            .member_update(r.id, r.peer_ur_ls)
            .await
            .map_err(server_err)?;
        Ok(Response::new(pb::MemberUpdateResponse {
            header: Some(current_header(&self.b)?),
            members: members_pb(members),
        }))
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
        request: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let members = self
            .b
            .member_promote(request.get_ref().id)
            .await
            .map_err(server_err)?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: Some(current_header(&self.b)?),
            members: members_pb(members),
        }))
    }
}
