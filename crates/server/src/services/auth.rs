//! The Auth service: etcd v3 authentication and role-based access control.
//!
//! Changes (enable/disable, users, roles, permissions) are proposed through Raft as
//! `InternalRaftRequest` auth fields and applied by the store ([`quorum_mvcc::auth`]); the
//! password is hashed here with bcrypt (etcd's cost 10) before proposing, so only the hash
//! enters the log. Reads (status, get, list) are served from the local auth state after a read
//! barrier. `Authenticate` verifies the password locally, then proposes the simple token it
//! made so that every member assigns it ([`AuthGate`]).
//!
//! Every call but `Authenticate` needs root once auth is enabled, except as etcd allows a user
//! to get itself, change its own password and get a role it holds.

use std::sync::Arc;

use quorum_api::etcdserverpb as pb;
use quorum_api::etcdserverpb::auth_server::Auth;
use quorum_mvcc::{AuthRequest, AuthState, MvccError, WriteRequest, WriteResponse};
use tonic::{Request, Response, Status};

use super::authz::{authorize, caller, AuthGate, Caller};
use super::backend::Backend;
use super::common::{header, mvcc_err, propose_write, server_err, unexpected};
use crate::auth_convert::{permission_from_pb, permission_to_pb};

/// etcd's bcrypt cost (`bcrypt.DefaultCost`).
pub const BCRYPT_COST: u32 = 10;
/// bcrypt only reads the first 72 bytes of a password; longer ones are refused rather than
/// silently truncated.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// The Auth service over a member.
#[derive(Clone)]
pub struct AuthService<B: Backend> {
    b: B,
}

impl<B: Backend> AuthService<B> {
    /// The service over `b`. Tokens it assigns reach the member's [`AuthGate`] through the
    /// store.
    pub fn new(b: B) -> Self {
        AuthService { b }
    }

    /// Root check (any caller while auth is disabled); the auth revision it saw.
    fn admin(&self, c: &Caller) -> Result<u64, Status> {
        super::authz::check_admin(&self.b, c)
    }

    /// Root, or the caller itself when `allow_self` holds.
    fn admin_or(
        &self,
        c: &Caller,
        allow_self: impl Fn(&AuthState, &str) -> bool,
    ) -> Result<u64, Status> {
        let state = self.b.store().auth_state();
        if let Some(u) = c.user.as_deref() {
            if state.enabled() && allow_self(&state, u) {
                return Ok(state.revision());
            }
        }
        self.admin(c)
    }

    /// Proposes an auth change stamped with `rev`; the MVCC revision for the header.
    async fn change(
        &self,
        c: &Caller,
        rev: u64,
        r: AuthRequest,
    ) -> Result<pb::ResponseHeader, Status> {
        let w = authorize(WriteRequest::Auth(r), rev, c);
        match propose_write(&self.b, w).await? {
            WriteResponse::Auth(a) => Ok(header(&self.b, a.header_revision)),
            _ => Err(unexpected("auth change")),
        }
    }

    /// A linearizable view of the auth state and the header for a read.
    async fn read(&self) -> Result<(Arc<AuthState>, pb::ResponseHeader), Status> {
        self.b.read_barrier().await.map_err(server_err)?;
        let rev = self
            .b
            .store()
            .current_revision()
            .map_err(|e| mvcc_err(&e))?;
        Ok((self.b.store().auth_state(), header(&self.b, rev)))
    }
}

/// bcrypt hash of `password` at etcd's cost, computed off the async runtime.
async fn hash_password(password: String) -> Result<String, Status> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Status::invalid_argument(format!(
            "etcdserver: password longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    tokio::task::spawn_blocking(move || bcrypt::hash(password, BCRYPT_COST))
        .await
        .map_err(|e| Status::internal(format!("etcdserver: hashing task failed: {e}")))?
        .map_err(|e| Status::internal(format!("etcdserver: hashing the password failed: {e}")))
}

/// Whether `password` matches `hash`, off the async runtime.
async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
        .await
        .unwrap_or(false)
}

fn err(e: MvccError) -> Status {
    mvcc_err(&e)
}

#[tonic::async_trait]
impl<B: Backend> Auth for AuthService<B> {
    async fn auth_enable(
        &self,
        request: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        let c = caller(&request);
        let rev = self.admin(&c)?;
        let header = self.change(&c, rev, AuthRequest::Enable).await?;
        Ok(Response::new(pb::AuthEnableResponse {
            header: Some(header),
        }))
    }

    async fn auth_disable(
        &self,
        request: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        let c = caller(&request);
        let rev = self.admin(&c)?;
        let header = self.change(&c, rev, AuthRequest::Disable).await?;
        Ok(Response::new(pb::AuthDisableResponse {
            header: Some(header),
        }))
    }

    async fn auth_status(
        &self,
        request: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        self.admin(&caller(&request))?;
        let (state, header) = self.read().await?;
        Ok(Response::new(pb::AuthStatusResponse {
            header: Some(header),
            enabled: state.enabled(),
            auth_revision: state.revision(),
        }))
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let r = request.into_inner();
        let (state, read_header) = self.read().await?;
        if !state.enabled() {
            return Err(err(MvccError::AuthNotEnabled));
        }
        let hash = state
            .user(&r.name)
            .and_then(|u| u.password_hash.clone())
            .ok_or_else(|| err(MvccError::AuthFailed))?;
        if !verify_password(r.password, hash).await {
            return Err(err(MvccError::AuthFailed));
        }
        // JWT: signed here, verifiable by every member with the key; nothing to replicate.
        if let Some(jwt) = self.b.jwt() {
            let token = jwt.issue(&r.name, state.revision()).map_err(err)?;
            return Ok(Response::new(pb::AuthenticateResponse {
                header: Some(read_header),
                token,
            }));
        }
        // Assigned through the log so that every member knows it (etcd does the same); only
        // the token, never the password, enters the log.
        let token = AuthGate::new_token(&state);
        let w = WriteRequest::Auth(AuthRequest::Authenticate {
            name: r.name,
            token: token.clone(),
        });
        let header = match propose_write(&self.b, w).await? {
            WriteResponse::Auth(a) => header(&self.b, a.header_revision),
            _ => return Err(unexpected("Authenticate")),
        };
        Ok(Response::new(pb::AuthenticateResponse {
            header: Some(header),
            token,
        }))
    }

    async fn user_add(
        &self,
        request: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        let c = caller(&request);
        let rev = self.admin(&c)?;
        let r = request.into_inner();
        if r.name.is_empty() {
            return Err(err(MvccError::UserEmpty));
        }
        let no_password = r.options.as_ref().is_some_and(|o| o.no_password);
        let password_hash = if no_password {
            None
        } else {
            Some(hash_password(r.password).await?)
        };
        let header = self
            .change(
                &c,
                rev,
                AuthRequest::UserAdd {
                    name: r.name,
                    password_hash,
                },
            )
            .await?;
        Ok(Response::new(pb::AuthUserAddResponse {
            header: Some(header),
        }))
    }

    async fn user_get(
        &self,
        request: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        let c = caller(&request);
        let name = request.into_inner().name;
        self.admin_or(&c, |_, u| u == name)?;
        let (state, header) = self.read().await?;
        let user = state
            .user(&name)
            .ok_or_else(|| err(MvccError::UserNotFound))?;
        Ok(Response::new(pb::AuthUserGetResponse {
            header: Some(header),
            roles: user.roles.clone(),
        }))
    }

    async fn user_list(
        &self,
        request: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        self.admin(&caller(&request))?;
        let (state, header) = self.read().await?;
        Ok(Response::new(pb::AuthUserListResponse {
            header: Some(header),
            users: state.user_names(),
        }))
    }

    async fn user_delete(
        &self,
        request: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        let c = caller(&request);
        let rev = self.admin(&c)?;
        let name = request.into_inner().name;
        let header = self
            .change(&c, rev, AuthRequest::UserDelete { name })
            .await?;
        Ok(Response::new(pb::AuthUserDeleteResponse {
            header: Some(header),
        }))
    }

    async fn user_change_password(
        &self,
        request: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        let c = caller(&request);
        let r = request.into_inner();
        let rev = self.admin_or(&c, |_, u| u == r.name)?;
        let password_hash = hash_password(r.password).await?;
        let header = self
            .change(
                &c,
                rev,
                AuthRequest::UserChangePassword {
                    name: r.name,
                    password_hash,
                },
            )
            .await?;
        Ok(Response::new(pb::AuthUserChangePasswordResponse {
            header: Some(header),
        }))
    }

    async fn user_grant_role(
        &self,
        request: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        let c = caller(&request);
        let rev = self.admin(&c)?;
        let r = request.into_inner();
        let header = self
            .change(
                &c,
                rev,
                AuthRequest::UserGrantRole {
                    user: r.user,
                    role: r.role,
                },
            )
            .await?;
        Ok(Response::new(pb::AuthUserGrantRoleResponse {
            header: Some(header),
        }))
    }

    async fn user_revoke_role(
        &self,
        request: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        let c = caller(&request);
        let rev = self.admin(&c)?;
        let r = request.into_inner();
        let header = self
            .change(
                &c,
                rev,
                AuthRequest::UserRevokeRole {
                    name: r.name,
                    role: r.role,
                },
            )
            .await?;
        Ok(Response::new(pb::AuthUserRevokeRoleResponse {
            header: Some(header),
        }))
    }

    async fn role_add(
        &self,
        request: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        let c = caller(&request);
        let rev = self.admin(&c)?;
        let name = request.into_inner().name;
        let header = self.change(&c, rev, AuthRequest::RoleAdd { name }).await?;
        Ok(Response::new(pb::AuthRoleAddResponse {
            header: Some(header),
        }))
    }

    async fn role_get(
        &self,
        request: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        let c = caller(&request);
        let role = request.into_inner().role;
        self.admin_or(&c, |st, u| {
            st.user(u).is_some_and(|u| u.roles.contains(&role))
        })?;
        let (state, header) = self.read().await?;
        let r = state
            .role(&role)
            .ok_or_else(|| err(MvccError::RoleNotFound))?;
        Ok(Response::new(pb::AuthRoleGetResponse {
            header: Some(header),
            perm: r.permissions.iter().map(permission_to_pb).collect(),
        }))
    }

    async fn role_list(
        &self,
        request: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        self.admin(&caller(&request))?;
        let (state, header) = self.read().await?;
        Ok(Response::new(pb::AuthRoleListResponse {
            header: Some(header),
            roles: state.role_names(),
        }))
    }

    async fn role_delete(
        &self,
        request: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        let c = caller(&request);
        let rev = self.admin(&c)?;
        let role = request.into_inner().role;
        let header = self
            .change(&c, rev, AuthRequest::RoleDelete { role })
            .await?;
        Ok(Response::new(pb::AuthRoleDeleteResponse {
            header: Some(header),
        }))
    }

    async fn role_grant_permission(
        &self,
        request: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        let c = caller(&request);
        let rev = self.admin(&c)?;
        let r = request.into_inner();
        let perm = r
            .perm
            .as_ref()
            .ok_or_else(|| err(MvccError::PermissionNotGiven))?;
        let perm = permission_from_pb(perm)?;
        let header = self
            .change(
                &c,
                rev,
                AuthRequest::RoleGrantPermission { name: r.name, perm },
            )
            .await?;
        Ok(Response::new(pb::AuthRoleGrantPermissionResponse {
            header: Some(header),
        }))
    }

    async fn role_revoke_permission(
        &self,
        request: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        let c = caller(&request);
        let rev = self.admin(&c)?;
        let r = request.into_inner();
        let header = self
            .change(
                &c,
                rev,
                AuthRequest::RoleRevokePermission {
                    role: r.role,
                    key: r.key.to_vec(),
                    range_end: r.range_end.to_vec(),
                },
            )
            .await?;
        Ok(Response::new(pb::AuthRoleRevokePermissionResponse {
            header: Some(header),
        }))
    }
}
