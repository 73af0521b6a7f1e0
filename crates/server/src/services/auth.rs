//! The Auth service. Quorum has no authentication: AuthStatus says it is disabled, AuthDisable
//! succeeds (a no-op, as in etcd when auth is off), Authenticate answers etcd's error for auth
//! not enabled, AuthEnable etcd's error for a missing root user (no user can exist), and the
//! user and role administration calls `Unimplemented`.

use quorum_api::etcdserverpb as pb;
use quorum_api::etcdserverpb::auth_server::Auth;
use tonic::{Request, Response, Status};

use super::backend::Backend;
use super::common::current_header;

/// The Auth service over a member.
#[derive(Clone)]
pub struct AuthService<B: Backend> {
    b: B,
}

impl<B: Backend> AuthService<B> {
    /// The service over `b`.
    pub fn new(b: B) -> Self {
        AuthService { b }
    }
}

/// etcd's `ErrGRPCAuthNotEnabled`.
fn auth_not_enabled() -> Status {
    Status::failed_precondition("etcdserver: authentication is not enabled")
}

fn unsupported(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what}: users and roles are not supported by Quorum (authentication is not implemented)"
    ))
}

#[tonic::async_trait]
impl<B: Backend> Auth for AuthService<B> {
    async fn auth_enable(
        &self,
        _request: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        Err(Status::failed_precondition(
            "etcdserver: root user does not exist",
        ))
    }

    async fn auth_disable(
        &self,
        _request: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        Ok(Response::new(pb::AuthDisableResponse {
            header: Some(current_header(&self.b)?),
        }))
    }

    async fn auth_status(
        &self,
        _request: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        Ok(Response::new(pb::AuthStatusResponse {
            header: Some(current_header(&self.b)?),
            enabled: false,
            auth_revision: 0,
        }))
    }

    async fn authenticate(
        &self,
        _request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        Err(auth_not_enabled())
    }

    async fn user_add(
        &self,
        _request: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        Err(unsupported("UserAdd"))
    }

    async fn user_get(
        &self,
        _request: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        Err(unsupported("UserGet"))
    }

    async fn user_list(
        &self,
        _request: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        Err(unsupported("UserList"))
    }

    async fn user_delete(
        &self,
        _request: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        Err(unsupported("UserDelete"))
    }

    async fn user_change_password(
        &self,
        _request: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        Err(unsupported("UserChangePassword"))
    }

    async fn user_grant_role(
        &self,
        _request: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        Err(unsupported("UserGrantRole"))
    }

    async fn user_revoke_role(
        &self,
        _request: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        Err(unsupported("UserRevokeRole"))
    }

    async fn role_add(
        &self,
        _request: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        Err(unsupported("RoleAdd"))
    }

    async fn role_get(
        &self,
        _request: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        Err(unsupported("RoleGet"))
    }

    async fn role_list(
        &self,
        _request: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        Err(unsupported("RoleList"))
    }

    async fn role_delete(
        &self,
        _request: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        Err(unsupported("RoleDelete"))
    }

    async fn role_grant_permission(
        &self,
        _request: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        Err(unsupported("RoleGrantPermission"))
    }

    async fn role_revoke_permission(
        &self,
        _request: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        Err(unsupported("RoleRevokePermission"))
    }
}
