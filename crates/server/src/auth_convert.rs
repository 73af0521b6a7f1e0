//! Auth changes ([`quorum_mvcc::AuthRequest`]) to and from the auth fields of
//! `InternalRaftRequest` (etcd's field numbers), for the Raft log.

use quorum_api::authpb;
use quorum_api::etcdserverpb as pb;
use quorum_api::internal::InternalRaftRequest;
use quorum_mvcc::{AuthRequest, PermType, Permission};

use crate::convert::{ConvertError, Result};

/// Sets the field of `req` that carries `a`.
pub fn auth_to_internal(a: &AuthRequest, req: &mut InternalRaftRequest) {
    match a {
        AuthRequest::Enable => req.auth_enable = Some(pb::AuthEnableRequest {}),
        AuthRequest::Disable => req.auth_disable = Some(pb::AuthDisableRequest {}),
        AuthRequest::UserAdd {
            name,
            password_hash,
        } => {
            req.auth_user_add = Some(pb::AuthUserAddRequest {
                name: name.clone(),
                password: String::new(),
                options: Some(authpb::UserAddOptions {
                    no_password: password_hash.is_none(),
                }),
                hashed_password: password_hash.clone().unwrap_or_default(),
            })
        }
        AuthRequest::UserDelete { name } => {
            req.auth_user_delete = Some(pb::AuthUserDeleteRequest { name: name.clone() })
        }
        AuthRequest::UserChangePassword {
            name,
            password_hash,
        } => {
            req.auth_user_change_password = Some(pb::AuthUserChangePasswordRequest {
                name: name.clone(),
                password: String::new(),
                hashed_password: password_hash.clone(),
            })
        }
        AuthRequest::UserGrantRole { user, role } => {
            req.auth_user_grant_role = Some(pb::AuthUserGrantRoleRequest {
                user: user.clone(),
                role: role.clone(),
            })
        }
        AuthRequest::UserRevokeRole { name, role } => {
            req.auth_user_revoke_role = Some(pb::AuthUserRevokeRoleRequest {
                name: name.clone(),
                role: role.clone(),
            })
        }
        AuthRequest::RoleAdd { name } => {
            req.auth_role_add = Some(pb::AuthRoleAddRequest { name: name.clone() })
        }
        AuthRequest::RoleDelete { role } => {
            req.auth_role_delete = Some(pb::AuthRoleDeleteRequest { role: role.clone() })
        }
        AuthRequest::RoleGrantPermission { name, perm } => {
            req.auth_role_grant_permission = Some(pb::AuthRoleGrantPermissionRequest {
                name: name.clone(),
                perm: Some(permission_to_pb(perm)),
            })
        }
        AuthRequest::Authenticate { name, token } => {
            req.authenticate = Some(quorum_api::internal::InternalAuthenticateRequest {
                name: name.clone(),
                password: String::new(),
                simple_token: token.clone(),
            })
        }
        AuthRequest::RoleRevokePermission {
            role,
            key,
            range_end,
        } => {
            req.auth_role_revoke_permission = Some(pb::AuthRoleRevokePermissionRequest {
                role: role.clone(),
                key: key.clone().into(),
                range_end: range_end.clone().into(),
            })
        }
    }
}

/// The auth change an entry carries (the caller checked that exactly one request is set and
/// that it is an auth one).
pub fn auth_from_internal(req: &InternalRaftRequest) -> Result<AuthRequest> {
    if req.auth_enable.is_some() {
        return Ok(AuthRequest::Enable);
    }
    if req.auth_disable.is_some() {
        return Ok(AuthRequest::Disable);
    }
    if let Some(r) = &req.authenticate {
        if r.simple_token.is_empty() {
            return Err(ConvertError::MissingRequest("Authenticate token"));
        }
        return Ok(AuthRequest::Authenticate {
            name: r.name.clone(),
            token: r.simple_token.clone(),
        });
    }
    if let Some(r) = &req.auth_user_add {
        let no_password = r.options.as_ref().is_some_and(|o| o.no_password);
        if !no_password && r.hashed_password.is_empty() {
            // The proposer hashes the password; a plain one never enters the log.
            return Err(ConvertError::MissingRequest("UserAdd password hash"));
        }
        return Ok(AuthRequest::UserAdd {
            name: r.name.clone(),
            password_hash: (!no_password).then(|| r.hashed_password.clone()),
        });
    }
    if let Some(r) = &req.auth_user_delete {
        return Ok(AuthRequest::UserDelete {
            name: r.name.clone(),
        });
    }
    if let Some(r) = &req.auth_user_change_password {
        if r.hashed_password.is_empty() {
            return Err(ConvertError::MissingRequest(
                "UserChangePassword password hash",
            ));
        }
        return Ok(AuthRequest::UserChangePassword {
            name: r.name.clone(),
            password_hash: r.hashed_password.clone(),
        });
    }
    if let Some(r) = &req.auth_user_grant_role {
        return Ok(AuthRequest::UserGrantRole {
            user: r.user.clone(),
            role: r.role.clone(),
        });
    }
    if let Some(r) = &req.auth_user_revoke_role {
        return Ok(AuthRequest::UserRevokeRole {
            name: r.name.clone(),
            role: r.role.clone(),
        });
    }
    if let Some(r) = &req.auth_role_add {
        return Ok(AuthRequest::RoleAdd {
            name: r.name.clone(),
        });
    }
    if let Some(r) = &req.auth_role_delete {
        return Ok(AuthRequest::RoleDelete {
            role: r.role.clone(),
        });
    }
    if let Some(r) = &req.auth_role_grant_permission {
        let perm = r.perm.as_ref().ok_or(ConvertError::MissingRequest(
            "RoleGrantPermission permission",
        ))?;
        return Ok(AuthRequest::RoleGrantPermission {
            name: r.name.clone(),
            perm: permission_from_pb(perm)?,
        });
    }
    if let Some(r) = &req.auth_role_revoke_permission {
        return Ok(AuthRequest::RoleRevokePermission {
            role: r.role.clone(),
            key: r.key.to_vec(),
            range_end: r.range_end.to_vec(),
        });
    }
    Err(ConvertError::Unsupported("this auth request"))
}

/// A permission as `authpb.Permission`.
pub fn permission_to_pb(p: &Permission) -> authpb::Permission {
    authpb::Permission {
        perm_type: p.perm_type as i32,
        key: p.key.clone().into(),
        range_end: p.range_end.clone().into(),
    }
}

/// An `authpb.Permission` as a store permission.
pub fn permission_from_pb(p: &authpb::Permission) -> Result<Permission> {
    Ok(Permission {
        perm_type: PermType::from_i32(p.perm_type).ok_or(ConvertError::UnknownEnum {
            field: "permType",
            value: p.perm_type,
        })?,
        key: p.key.to_vec(),
        range_end: p.range_end.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{internal_to_write, write_to_internal};
    use quorum_mvcc::{AuthorizedRequest, PutRequest, WriteRequest};

    #[test]
    fn auth_requests_round_trip_through_the_log_format() {
        let reqs = vec![
            AuthRequest::Enable,
            AuthRequest::Disable,
            AuthRequest::UserAdd {
                name: "u".into(),
                password_hash: Some("$2b$10$x".into()),
            },
            AuthRequest::UserAdd {
                name: "n".into(),
                password_hash: None,
            },
            AuthRequest::UserDelete { name: "u".into() },
            AuthRequest::UserChangePassword {
                name: "u".into(),
                password_hash: "h".into(),
            },
            AuthRequest::UserGrantRole {
                user: "u".into(),
                role: "r".into(),
            },
            AuthRequest::UserRevokeRole {
                name: "u".into(),
                role: "r".into(),
            },
            AuthRequest::RoleAdd { name: "r".into() },
            AuthRequest::Authenticate {
                name: "u".into(),
                token: "abc.1".into(),
            },
            AuthRequest::RoleDelete { role: "r".into() },
            AuthRequest::RoleGrantPermission {
                name: "r".into(),
                perm: Permission {
                    perm_type: PermType::ReadWrite,
                    key: b"a".to_vec(),
                    range_end: vec![0],
                },
            },
            AuthRequest::RoleRevokePermission {
                role: "r".into(),
                key: b"a".to_vec(),
                range_end: b"b".to_vec(),
            },
        ];
        for a in reqs {
            let w = WriteRequest::Auth(a);
            assert_eq!(internal_to_write(&write_to_internal(&w)).unwrap(), w);
        }
        let stamped = WriteRequest::Authorized(Box::new(AuthorizedRequest {
            auth_revision: 7,
            username: "u".into(),
            request: WriteRequest::Put(PutRequest {
                key: b"k".to_vec(),
                ..Default::default()
            }),
        }));
        let internal = write_to_internal(&stamped);
        assert_eq!(internal.header.as_ref().unwrap().auth_revision, 7);
        assert_eq!(internal_to_write(&internal).unwrap(), stamped);
    }

    #[test]
    fn a_plain_password_never_enters_the_log() {
        let req = InternalRaftRequest {
            auth_user_add: Some(pb::AuthUserAddRequest {
                name: "u".into(),
                password: "secret".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(internal_to_write(&req).is_err());
    }
}
