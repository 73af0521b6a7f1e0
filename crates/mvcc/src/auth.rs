//! etcd v3 authentication state (users, roles, key-range permissions, the enabled flag and the
//! auth revision) as part of the replicated state machine, following etcd's `server/auth/
//! store.go`.
//!
//! The state lives in the `auth` table of the store's database and, decoded, in memory
//! ([`AuthState`], shared as an `Arc` so that permission checks never touch the disk). It
//! changes only through [`AuthRequest`]s applied from the Raft log: password hashing happens
//! before proposing (the request carries the hash), so apply is deterministic.
//!
//! Invariants:
//! - every change that succeeds increments the auth revision by exactly one (etcd's
//!   `commitRevision`); a no-op (enable when enabled, disable when disabled) does not;
//! - the revision starts at 1, so a request stamped with a revision is never stamped 0 (0 means
//!   "not stamped": internal requests such as lease expiry);
//! - auth is enabled only while user `root` exists and has role `root`;
//! - a user's roles are sorted and unique; a role's permissions are sorted by `(key,
//!   range_end)` and unique on it.

use std::collections::BTreeMap;
use std::sync::Arc;

use redb::{ReadableTable, Table};

use crate::error::MvccError;

/// The user and the role etcd treats as the administrator.
pub const ROOT: &str = "root";
/// Most users the store holds.
pub const MAX_USERS: usize = 10_000;
/// Most roles the store holds.
pub const MAX_ROLES: usize = 10_000;
/// Most roles one user holds.
pub const MAX_ROLES_PER_USER: usize = 1_000;
/// Most permissions one role holds.
pub const MAX_PERMISSIONS_PER_ROLE: usize = 10_000;
/// Longest user or role name, in bytes.
pub const MAX_NAME_BYTES: usize = 4_096;

/// Auth revision of a store that never changed its auth state (etcd starts at 1 too).
pub(crate) const INITIAL_AUTH_REVISION: u64 = 1;

const KEY_ENABLED: &[u8] = b"m:enabled";
const KEY_REVISION: &[u8] = b"m:revision";
const PREFIX_USER: u8 = b'u';
const PREFIX_ROLE: u8 = b'r';
const RECORD_VERSION: u8 = 1;

/// The kind of access a permission grants (`authpb.Permission.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PermType {
    /// READ = 0.
    Read = 0,
    /// WRITE = 1.
    Write = 1,
    /// READWRITE = 2.
    ReadWrite = 2,
}

impl PermType {
    /// From the protobuf enum value; `None` for an unknown value.
    pub fn from_i32(v: i32) -> Option<PermType> {
        match v {
            0 => Some(PermType::Read),
            1 => Some(PermType::Write),
            2 => Some(PermType::ReadWrite),
            _ => None,
        }
    }

    /// Whether a permission of this kind grants access of kind `want`.
    pub fn grants(self, want: PermType) -> bool {
        self == PermType::ReadWrite || self == want
    }
}

/// A key-range permission (`authpb.Permission`). `range_end` follows etcd: empty for the
/// single key, `[0]` for every key from `key` on, else the exclusive end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    /// The kind of access.
    pub perm_type: PermType,
    /// First key.
    pub key: Vec<u8>,
    /// End of the range.
    pub range_end: Vec<u8>,
}

/// A user (`authpb.User`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Name.
    pub name: String,
    /// bcrypt hash of the password; `None` when created with `no_password` (such a user cannot
    /// authenticate with a password).
    pub password_hash: Option<String>,
    /// Granted roles, sorted and unique.
    pub roles: Vec<String>,
}

impl User {
    /// Whether the user holds role `root`.
    pub fn is_root(&self) -> bool {
        self.roles.iter().any(|r| r == ROOT)
    }
}

/// A role (`authpb.Role`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    /// Name.
    pub name: String,
    /// Permissions, sorted by `(key, range_end)` and unique on it.
    pub permissions: Vec<Permission>,
}

/// A change of the auth state, applied from the Raft log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthRequest {
    /// AuthEnable.
    Enable,
    /// AuthDisable.
    Disable,
    /// UserAdd; the hash is computed before proposing.
    UserAdd {
        /// Name.
        name: String,
        /// bcrypt hash, `None` for `no_password`.
        password_hash: Option<String>,
    },
    /// UserDelete.
    UserDelete {
        /// Name.
        name: String,
    },
    /// UserChangePassword.
    UserChangePassword {
        /// Name.
        name: String,
        /// New bcrypt hash.
        password_hash: String,
    },
    /// UserGrantRole.
    UserGrantRole {
        /// User.
        user: String,
        /// Role.
        role: String,
    },
    /// UserRevokeRole.
    UserRevokeRole {
        /// User.
        name: String,
        /// Role.
        role: String,
    },
    /// RoleAdd.
    RoleAdd {
        /// Name.
        name: String,
    },
    /// RoleDelete (also revokes the role from every user).
    RoleDelete {
        /// Name.
        role: String,
    },
    /// RoleGrantPermission (replaces the kind of an existing permission on the same range).
    RoleGrantPermission {
        /// Role.
        name: String,
        /// The permission.
        perm: Permission,
    },
    /// RoleRevokePermission.
    RoleRevokePermission {
        /// Role.
        role: String,
        /// First key of the permission.
        key: Vec<u8>,
        /// End of the permission's range.
        range_end: Vec<u8>,
    },
    /// Authenticate: the proposing member verified the password and made `token`; every
    /// member records it (as etcd assigns simple tokens at apply), so a client may use it
    /// with any member. Changes no replicated state and no revision.
    Authenticate {
        /// User.
        name: String,
        /// The simple token.
        token: String,
    },
}

/// Most tokens assigned by applied `Authenticate` requests waiting to be taken by the server
/// ([`crate::Store::take_assigned_tokens`]); older ones are dropped past it.
pub const MAX_PENDING_TOKENS: usize = 10_000;

/// A token an applied `Authenticate` assigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignedToken {
    /// The token.
    pub token: String,
    /// Its user.
    pub user: String,
}

/// The response to an [`AuthRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthResponse {
    /// The store's (MVCC) revision at apply time, for the response header.
    pub header_revision: i64,
    /// The auth revision after the request.
    pub auth_revision: u64,
}

/// The auth state. Cheap to share (`Arc`), copied on write by the apply path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthState {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
}

impl Default for AuthState {
    fn default() -> Self {
        AuthState {
            enabled: false,
            revision: INITIAL_AUTH_REVISION,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
        }
    }
}

/// One interval of keys `[start, end)`; `end == None` is unbounded.
type Interval<'a> = (&'a [u8], Option<&'a [u8]>);

impl AuthState {
    /// Whether authentication is enabled.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The auth revision: incremented by every change.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// A user by name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// A role by name.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// Every user name, sorted.
    pub fn user_names(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// Every role name, sorted.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    /// etcd's `isOpPermitted`: whether `user` may access `[key, range_end)` (etcd's
    /// `range_end` conventions) with `want`. Always `Ok` when auth is disabled; `UserEmpty`
    /// without a user; `PermissionDenied` for an unknown user or a range not covered by the
    /// union of the user's roles' permissions. Root may access everything.
    pub fn check_permission(
        &self,
        user: Option<&str>,
        key: &[u8],
        range_end: &[u8],
        want: PermType,
    ) -> Result<(), MvccError> {
        if !self.enabled {
            return Ok(());
        }
        let name = match user {
            Some(n) if !n.is_empty() => n,
            _ => return Err(MvccError::UserEmpty),
        };
        let user = self.users.get(name).ok_or(MvccError::PermissionDenied)?;
        if user.is_root() || self.covers(user, key, range_end, want) {
            Ok(())
        } else {
            Err(MvccError::PermissionDenied)
        }
    }

    /// etcd's `IsAdminPermitted`: `Ok` when auth is disabled or `user` has role root.
    pub fn check_admin(&self, user: Option<&str>) -> Result<(), MvccError> {
        if !self.enabled {
            return Ok(());
        }
        let name = match user {
            Some(n) if !n.is_empty() => n,
            _ => return Err(MvccError::UserEmpty),
        };
        match self.users.get(name) {
            Some(u) if u.is_root() => Ok(()),
            _ => Err(MvccError::PermissionDenied),
        }
    }

    /// Whether the union of `user`'s permissions of kind `want` covers the range.
    fn covers(&self, user: &User, key: &[u8], range_end: &[u8], want: PermType) -> bool {
        let mut ivs: Vec<Interval<'_>> = Vec::new();
        // Single-key permissions are the interval [k, k\0); kept as owned successors.
        let mut points: Vec<Vec<u8>> = Vec::new();
        for role in user.roles.iter().filter_map(|r| self.roles.get(r)) {
            for p in role.permissions.iter().filter(|p| p.perm_type.grants(want)) {
                if p.range_end.is_empty() {
                    let mut succ = p.key.clone();
                    succ.push(0);
                    points.push(succ);
                } else if p.range_end == [0] {
                    ivs.push((&p.key, None));
                } else {
                    ivs.push((&p.key, Some(&p.range_end)));
                }
            }
        }
        for succ in &points {
            let k = &succ[..succ.len() - 1];
            ivs.push((k, Some(succ.as_slice())));
        }
        if range_end.is_empty() {
            return ivs
                .iter()
                .any(|(s, e)| key >= *s && e.is_none_or(|e| key < e));
        }
        let end: Option<&[u8]> = if range_end == [0] {
            None
        } else {
            Some(range_end)
        };
        covered(&mut ivs, key, end)
    }

    /// Applies `req`. On error the state is unchanged; on success the revision was bumped
    /// (except for the no-op enable/disable) and the changed records are listed in `changed`.
    pub(crate) fn apply(
        &mut self,
        req: &AuthRequest,
        changed: &mut Vec<Change>,
    ) -> Result<(), MvccError> {
        match req {
            AuthRequest::Authenticate { name, .. } => {
                if !self.enabled {
                    return Err(MvccError::AuthNotEnabled);
                }
                if !self.users.contains_key(name) {
                    return Err(MvccError::AuthFailed);
                }
                // Not a change of the auth state: no revision.
                return Ok(());
            }
            AuthRequest::Enable => {
                if self.enabled {
                    return Ok(());
                }
                let root = self.users.get(ROOT).ok_or(MvccError::RootUserNotExist)?;
                if !root.is_root() {
                    return Err(MvccError::RootRoleNotExist);
                }
                self.enabled = true;
            }
            AuthRequest::Disable => {
                if !self.enabled {
                    return Ok(());
                }
                self.enabled = false;
            }
            AuthRequest::UserAdd {
                name,
                password_hash,
            } => {
                check_name(name, MvccError::UserEmpty)?;
                if self.users.contains_key(name) {
                    return Err(MvccError::UserAlreadyExist);
                }
                if self.users.len() >= MAX_USERS {
                    return Err(MvccError::AuthLimit("users"));
                }
                self.users.insert(
                    name.clone(),
                    User {
                        name: name.clone(),
                        password_hash: password_hash.clone(),
                        roles: Vec::new(),
                    },
                );
                changed.push(Change::User(name.clone()));
            }
            AuthRequest::UserDelete { name } => {
                if self.enabled && name == ROOT {
                    return Err(MvccError::InvalidAuthMgmt);
                }
                if self.users.remove(name).is_none() {
                    return Err(MvccError::UserNotFound);
                }
                changed.push(Change::User(name.clone()));
            }
            AuthRequest::UserChangePassword {
                name,
                password_hash,
            } => {
                let u = self.users.get_mut(name).ok_or(MvccError::UserNotFound)?;
                u.password_hash = Some(password_hash.clone());
                changed.push(Change::User(name.clone()));
            }
            AuthRequest::UserGrantRole { user, role } => {
                if !self.users.contains_key(user) {
                    return Err(MvccError::UserNotFound);
                }
                if role != ROOT && !self.roles.contains_key(role) {
                    return Err(MvccError::RoleNotFound);
                }
                let u = self.users.get_mut(user).ok_or(MvccError::UserNotFound)?;
                match u.roles.binary_search(role) {
                    // etcd ignores a grant of a role the user already has (no revision bump).
                    Ok(_) => return Ok(()),
                    Err(pos) => {
                        if u.roles.len() >= MAX_ROLES_PER_USER {
                            return Err(MvccError::AuthLimit("roles of a user"));
                        }
                        u.roles.insert(pos, role.clone());
                    }
                }
                changed.push(Change::User(user.clone()));
            }
            AuthRequest::UserRevokeRole { name, role } => {
                if self.enabled && name == ROOT && role == ROOT {
                    return Err(MvccError::InvalidAuthMgmt);
                }
                let u = self.users.get_mut(name).ok_or(MvccError::UserNotFound)?;
                let pos = u
                    .roles
                    .binary_search(role)
                    .map_err(|_| MvccError::RoleNotGranted)?;
                u.roles.remove(pos);
                changed.push(Change::User(name.clone()));
            }
            AuthRequest::RoleAdd { name } => {
                check_name(name, MvccError::RoleEmpty)?;
                if self.roles.contains_key(name) {
                    return Err(MvccError::RoleAlreadyExist);
                }
                if self.roles.len() >= MAX_ROLES {
                    return Err(MvccError::AuthLimit("roles"));
                }
                self.roles.insert(
                    name.clone(),
                    Role {
                        name: name.clone(),
                        permissions: Vec::new(),
                    },
                );
                changed.push(Change::Role(name.clone()));
            }
            AuthRequest::RoleDelete { role } => {
                if self.enabled && role == ROOT {
                    return Err(MvccError::InvalidAuthMgmt);
                }
                if self.roles.remove(role).is_none() {
                    return Err(MvccError::RoleNotFound);
                }
                changed.push(Change::Role(role.clone()));
                for u in self.users.values_mut() {
                    if let Ok(pos) = u.roles.binary_search(role) {
                        u.roles.remove(pos);
                        changed.push(Change::User(u.name.clone()));
                    }
                }
            }
            AuthRequest::RoleGrantPermission { name, perm } => {
                if !perm.range_end.is_empty()
                    && perm.range_end != [0]
                    && perm.key.as_slice() >= perm.range_end.as_slice()
                {
                    return Err(MvccError::InvalidAuthMgmt);
                }
                let r = self.roles.get_mut(name).ok_or(MvccError::RoleNotFound)?;
                let at = r.permissions.binary_search_by(|p| {
                    (p.key.as_slice(), p.range_end.as_slice())
                        .cmp(&(perm.key.as_slice(), perm.range_end.as_slice()))
                });
                match at {
                    Ok(i) => r.permissions[i].perm_type = perm.perm_type,
                    Err(i) => {
                        if r.permissions.len() >= MAX_PERMISSIONS_PER_ROLE {
                            return Err(MvccError::AuthLimit("permissions of a role"));
                        }
                        r.permissions.insert(i, perm.clone());
                    }
                }
                changed.push(Change::Role(name.clone()));
            }
            AuthRequest::RoleRevokePermission {
                role,
                key,
                range_end,
            } => {
                let r = self.roles.get_mut(role).ok_or(MvccError::RoleNotFound)?;
                let before = r.permissions.len();
                r.permissions
                    .retain(|p| !(p.key == *key && p.range_end == *range_end));
                if r.permissions.len() == before {
                    return Err(MvccError::PermissionNotGranted);
                }
                changed.push(Change::Role(role.clone()));
            }
        }
        self.revision += 1;
        Ok(())
    }
}

/// Whether the union of `ivs` covers `[key, end)` (`end == None`: unbounded).
fn covered(ivs: &mut [Interval<'_>], key: &[u8], end: Option<&[u8]>) -> bool {
    ivs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut cur: Vec<u8> = key.to_vec();
    for (s, e) in ivs.iter() {
        if *s > cur.as_slice() {
            // A gap before this interval (intervals are sorted by start).
            return false;
        }
        match e {
            None => return true,
            Some(e) => {
                if *e > cur.as_slice() {
                    cur = e.to_vec();
                    if end.is_some_and(|end| cur.as_slice() >= end) {
                        return true;
                    }
                }
            }
        }
    }
    false
}

fn check_name(name: &str, empty: MvccError) -> Result<(), MvccError> {
    if name.is_empty() {
        return Err(empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(MvccError::AuthLimit("name length"));
    }
    Ok(())
}

impl AuthState {
    /// Builds a whole auth state from parts read elsewhere (a backup in etcd's layout):
    /// normalises as the apply path keeps it (a user's roles sorted and unique; a role's
    /// permissions sorted by `(key, range_end)`, the last one of equal ranges kept, as etcd's
    /// grant replaces the type) and checks names and limits. Untrusted input: every problem is
    /// a `CorruptData` naming it.
    pub fn from_parts(
        enabled: bool,
        revision: u64,
        users: Vec<User>,
        roles: Vec<Role>,
    ) -> Result<AuthState, MvccError> {
        let bad = |what: String| MvccError::CorruptData(format!("auth: {what}"));
        if users.len() > MAX_USERS || roles.len() > MAX_ROLES {
            return Err(bad(format!(
                "{} users and {} roles exceed the limits ({MAX_USERS} each)",
                users.len(),
                roles.len()
            )));
        }
        let name_ok = |kind: &str, name: &str| {
            if name.is_empty() || name.len() > MAX_NAME_BYTES {
                Err(bad(format!("{kind} name of {} bytes", name.len())))
            } else {
                Ok(())
            }
        };
        let mut st = AuthState {
            enabled,
            revision: revision.max(INITIAL_AUTH_REVISION),
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
        };
        for mut u in users {
            name_ok("user", &u.name)?;
            u.roles.sort();
            u.roles.dedup();
            if u.roles.len() > MAX_ROLES_PER_USER {
                return Err(bad(format!("user {:?} holds too many roles", u.name)));
            }
            for r in &u.roles {
                name_ok("role", r)?;
            }
            if st.users.contains_key(&u.name) {
                return Err(bad(format!("user {:?} listed twice", u.name)));
            }
            st.users.insert(u.name.clone(), u);
        }
        for mut r in roles {
            name_ok("role", &r.name)?;
            // Stable: of equal ranges the last listed stays last, and is the one kept.
            r.permissions
                .sort_by(|a, b| (&a.key, &a.range_end).cmp(&(&b.key, &b.range_end)));
            let mut perms: Vec<Permission> = Vec::with_capacity(r.permissions.len());
            for p in r.permissions {
                match perms.last_mut() {
                    Some(last) if last.key == p.key && last.range_end == p.range_end => *last = p,
                    _ => perms.push(p),
                }
            }
            if perms.len() > MAX_PERMISSIONS_PER_ROLE {
                return Err(bad(format!("role {:?} holds too many permissions", r.name)));
            }
            r.permissions = perms;
            if st.roles.contains_key(&r.name) {
                return Err(bad(format!("role {:?} listed twice", r.name)));
            }
            st.roles.insert(r.name.clone(), r);
        }
        Ok(st)
    }

    /// Every user, by name.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// Every role, by name.
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }
}

/// Writes the whole of `state` into an empty auth table (a restored backup).
pub(crate) fn persist_all(table: &mut AuthTable<'_>, state: &AuthState) -> Result<(), MvccError> {
    let changed: Vec<Change> = state
        .users
        .keys()
        .map(|n| Change::User(n.clone()))
        .chain(state.roles.keys().map(|n| Change::Role(n.clone())))
        .collect();
    persist(table, state, &changed)
}

/// A record the apply path must write back (or delete) after a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// The user of this name.
    User(String),
    /// The role of this name.
    Role(String),
}

/// The auth table: `m:enabled`, `m:revision` (8-byte big-endian), `u<name>` users, `r<name>`
/// roles.
pub(crate) type AuthTable<'t> = Table<'t, &'static [u8], &'static [u8]>;

/// Writes the records of `changed` plus the enabled flag and the revision.
pub(crate) fn persist(
    table: &mut AuthTable<'_>,
    state: &AuthState,
    changed: &[Change],
) -> Result<(), MvccError> {
    table.insert(KEY_ENABLED, [u8::from(state.enabled)].as_slice())?;
    table.insert(KEY_REVISION, state.revision.to_be_bytes().as_slice())?;
    for c in changed {
        match c {
            Change::User(name) => {
                let key = record_key(PREFIX_USER, name);
                match state.users.get(name) {
                    Some(u) => table.insert(key.as_slice(), encode_user(u).as_slice())?,
                    None => table.remove(key.as_slice())?,
                };
            }
            Change::Role(name) => {
                let key = record_key(PREFIX_ROLE, name);
                match state.roles.get(name) {
                    Some(r) => table.insert(key.as_slice(), encode_role(r).as_slice())?,
                    None => table.remove(key.as_slice())?,
                };
            }
        }
    }
    Ok(())
}

/// Decodes the whole state from the auth table.
pub(crate) fn load<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
) -> Result<AuthState, MvccError> {
    let mut st = AuthState::default();
    for item in table.iter()? {
        let (k, v) = item?;
        let (k, v) = (k.value(), v.value());
        if k == KEY_ENABLED {
            st.enabled = v == [1];
        } else if k == KEY_REVISION {
            let b: [u8; 8] = v
                .try_into()
                .map_err(|_| corrupt("auth revision is not 8 bytes"))?;
            st.revision = u64::from_be_bytes(b);
        } else if k.first() == Some(&PREFIX_USER) {
            let u = decode_user(&k[1..], v)?;
            st.users.insert(u.name.clone(), u);
        } else if k.first() == Some(&PREFIX_ROLE) {
            let r = decode_role(&k[1..], v)?;
            st.roles.insert(r.name.clone(), r);
        } else {
            return Err(corrupt("unknown auth record"));
        }
    }
    if st.revision < INITIAL_AUTH_REVISION {
        return Err(corrupt("auth revision 0"));
    }
    Ok(st)
}

/// Validates one record of the auth table (snapshot import).
pub(crate) fn check_record(key: &[u8], value: &[u8]) -> Result<(), MvccError> {
    if key == KEY_ENABLED || key == KEY_REVISION {
        return Ok(());
    }
    match key.first() {
        Some(&PREFIX_USER) => decode_user(&key[1..], value).map(|_| ()),
        Some(&PREFIX_ROLE) => decode_role(&key[1..], value).map(|_| ()),
        _ => Err(corrupt("unknown auth record")),
    }
}

fn corrupt(what: &str) -> MvccError {
    MvccError::CorruptData(what.to_string())
}

fn record_key(prefix: u8, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(prefix);
    k.extend_from_slice(name.as_bytes());
    k
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Names and keys are bounded far below 4 GiB by the request size limit.
    debug_assert!(u32::try_from(b.len()).is_ok());
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

fn encode_user(u: &User) -> Vec<u8> {
    let mut out = vec![RECORD_VERSION, u8::from(u.password_hash.is_some())];
    put_bytes(
        &mut out,
        u.password_hash.as_deref().unwrap_or("").as_bytes(),
    );
    out.extend_from_slice(&(u.roles.len() as u32).to_be_bytes());
    for r in &u.roles {
        put_bytes(&mut out, r.as_bytes());
    }
    out
}

fn encode_role(r: &Role) -> Vec<u8> {
    let mut out = vec![RECORD_VERSION];
    out.extend_from_slice(&(r.permissions.len() as u32).to_be_bytes());
    for p in &r.permissions {
        out.push(p.perm_type as u8);
        put_bytes(&mut out, &p.key);
        put_bytes(&mut out, &p.range_end);
    }
    out
}

/// A cursor over a stored record; every read is bounds-checked.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MvccError> {
        if self.0.len() < n {
            return Err(corrupt("auth record truncated"));
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, MvccError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<usize, MvccError> {
        let b: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| corrupt("auth record truncated"))?;
        Ok(u32::from_be_bytes(b) as usize)
    }
    fn bytes(&mut self) -> Result<&'a [u8], MvccError> {
        let n = self.u32()?;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, MvccError> {
        utf8(self.bytes()?)
    }
    fn end(&self) -> Result<(), MvccError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(corrupt("trailing bytes in auth record"))
        }
    }
}

fn utf8(b: &[u8]) -> Result<String, MvccError> {
    String::from_utf8(b.to_vec()).map_err(|_| corrupt("auth name is not UTF-8"))
}

fn decode_user(name: &[u8], v: &[u8]) -> Result<User, MvccError> {
    let mut c = Cursor(v);
    if c.u8()? != RECORD_VERSION {
        return Err(corrupt("unknown user record version"));
    }
    let has_password = c.u8()? == 1;
    let hash = c.string()?;
    let n = c.u32()?;
    if n > MAX_ROLES_PER_USER {
        return Err(corrupt("too many roles in user record"));
    }
    let mut roles = Vec::with_capacity(n);
    for _ in 0..n {
        roles.push(c.string()?);
    }
    c.end()?;
    Ok(User {
        name: utf8(name)?,
        password_hash: has_password.then_some(hash),
        roles,
    })
}

fn decode_role(name: &[u8], v: &[u8]) -> Result<Role, MvccError> {
    let mut c = Cursor(v);
    if c.u8()? != RECORD_VERSION {
        return Err(corrupt("unknown role record version"));
    }
    let n = c.u32()?;
    if n > MAX_PERMISSIONS_PER_ROLE {
        return Err(corrupt("too many permissions in role record"));
    }
    let mut permissions = Vec::with_capacity(n);
    for _ in 0..n {
        let t = c.u8()?;
        let perm_type =
            PermType::from_i32(i32::from(t)).ok_or_else(|| corrupt("unknown permission type"))?;
        let key = c.bytes()?.to_vec();
        let range_end = c.bytes()?.to_vec();
        permissions.push(Permission {
            perm_type,
            key,
            range_end,
        });
    }
    c.end()?;
    Ok(Role {
        name: utf8(name)?,
        permissions,
    })
}

/// The shared, immutable view readers get.
pub type SharedAuthState = Arc<AuthState>;

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(st: &mut AuthState, req: AuthRequest) -> Result<(), MvccError> {
        let mut ch = Vec::new();
        st.apply(&req, &mut ch)
    }

    fn user(name: &str) -> AuthRequest {
        AuthRequest::UserAdd {
            name: name.into(),
            password_hash: Some("h".into()),
        }
    }

    fn grant(role: &str, t: PermType, key: &[u8], end: &[u8]) -> AuthRequest {
        AuthRequest::RoleGrantPermission {
            name: role.into(),
            perm: Permission {
                perm_type: t,
                key: key.to_vec(),
                range_end: end.to_vec(),
            },
        }
    }

    /// root with role root, alice with role `r`, auth enabled.
    fn enabled_state(perms: &[(PermType, &[u8], &[u8])]) -> AuthState {
        let mut st = AuthState::default();
        apply(&mut st, user("root")).unwrap();
        apply(
            &mut st,
            AuthRequest::UserGrantRole {
                user: "root".into(),
                role: "root".into(),
            },
        )
        .unwrap();
        apply(&mut st, user("alice")).unwrap();
        apply(&mut st, AuthRequest::RoleAdd { name: "r".into() }).unwrap();
        for (t, k, e) in perms {
            apply(&mut st, grant("r", *t, k, e)).unwrap();
        }
        apply(
            &mut st,
            AuthRequest::UserGrantRole {
                user: "alice".into(),
                role: "r".into(),
            },
        )
        .unwrap();
        apply(&mut st, AuthRequest::Enable).unwrap();
        st
    }

    #[test]
    fn enable_requires_root_with_root_role() {
        let mut st = AuthState::default();
        assert_eq!(
            apply(&mut st, AuthRequest::Enable),
            Err(MvccError::RootUserNotExist)
        );
        apply(&mut st, user("root")).unwrap();
        assert_eq!(
            apply(&mut st, AuthRequest::Enable),
            Err(MvccError::RootRoleNotExist)
        );
        apply(
            &mut st,
            AuthRequest::UserGrantRole {
                user: "root".into(),
                role: "root".into(),
            },
        )
        .unwrap();
        let rev = st.revision();
        apply(&mut st, AuthRequest::Enable).unwrap();
        assert!(st.enabled());
        assert_eq!(st.revision(), rev + 1);
        // Enabling again is a no-op without a revision bump.
        apply(&mut st, AuthRequest::Enable).unwrap();
        assert_eq!(st.revision(), rev + 1);
        // Root cannot be removed while enabled.
        assert_eq!(
            apply(
                &mut st,
                AuthRequest::UserDelete {
                    name: "root".into()
                }
            ),
            Err(MvccError::InvalidAuthMgmt)
        );
        assert_eq!(
            apply(
                &mut st,
                AuthRequest::UserRevokeRole {
                    name: "root".into(),
                    role: "root".into()
                }
            ),
            Err(MvccError::InvalidAuthMgmt)
        );
        apply(&mut st, AuthRequest::Disable).unwrap();
        assert!(!st.enabled());
        assert_eq!(st.revision(), rev + 2);
    }

    #[test]
    fn user_and_role_errors_match_etcd() {
        let mut st = AuthState::default();
        assert_eq!(apply(&mut st, user("")), Err(MvccError::UserEmpty));
        apply(&mut st, user("a")).unwrap();
        assert_eq!(apply(&mut st, user("a")), Err(MvccError::UserAlreadyExist));
        assert_eq!(
            apply(&mut st, AuthRequest::RoleAdd { name: "".into() }),
            Err(MvccError::RoleEmpty)
        );
        assert_eq!(
            apply(
                &mut st,
                AuthRequest::UserGrantRole {
                    user: "a".into(),
                    role: "nope".into()
                }
            ),
            Err(MvccError::RoleNotFound)
        );
        assert_eq!(
            apply(
                &mut st,
                AuthRequest::UserGrantRole {
                    user: "b".into(),
                    role: "root".into()
                }
            ),
            Err(MvccError::UserNotFound)
        );
        assert_eq!(
            apply(
                &mut st,
                AuthRequest::UserRevokeRole {
                    name: "a".into(),
                    role: "x".into()
                }
            ),
            Err(MvccError::RoleNotGranted)
        );
        apply(&mut st, AuthRequest::RoleAdd { name: "x".into() }).unwrap();
        assert_eq!(
            apply(&mut st, AuthRequest::RoleAdd { name: "x".into() }),
            Err(MvccError::RoleAlreadyExist)
        );
        assert_eq!(
            apply(
                &mut st,
                AuthRequest::RoleRevokePermission {
                    role: "x".into(),
                    key: b"k".to_vec(),
                    range_end: vec![]
                }
            ),
            Err(MvccError::PermissionNotGranted)
        );
        assert_eq!(
            apply(&mut st, grant("x", PermType::Read, b"b", b"a")),
            Err(MvccError::InvalidAuthMgmt)
        );
        // A failed request leaves the revision alone.
        let rev = st.revision();
        let _ = apply(&mut st, user("a"));
        assert_eq!(st.revision(), rev);
    }

    #[test]
    fn role_delete_revokes_it_from_users_and_grant_replaces_kind() {
        let mut st = AuthState::default();
        apply(&mut st, user("a")).unwrap();
        apply(&mut st, AuthRequest::RoleAdd { name: "x".into() }).unwrap();
        apply(&mut st, grant("x", PermType::Read, b"k", b"")).unwrap();
        apply(&mut st, grant("x", PermType::Write, b"k", b"")).unwrap();
        assert_eq!(st.role("x").unwrap().permissions.len(), 1);
        assert_eq!(
            st.role("x").unwrap().permissions[0].perm_type,
            PermType::Write
        );
        apply(
            &mut st,
            AuthRequest::UserGrantRole {
                user: "a".into(),
                role: "x".into(),
            },
        )
        .unwrap();
        apply(&mut st, AuthRequest::RoleDelete { role: "x".into() }).unwrap();
        assert!(st.user("a").unwrap().roles.is_empty());
    }

    #[test]
    fn permissions_follow_etcd_range_semantics() {
        let st = enabled_state(&[
            (PermType::Read, b"a", b"c"),
            (PermType::Read, b"c", b"e"),
            (PermType::Write, b"k", b""),
            (PermType::ReadWrite, b"x", &[0]),
        ]);
        let alice = Some("alice");
        let ok = |k: &[u8], e: &[u8], t| st.check_permission(alice, k, e, t).is_ok();
        assert!(ok(b"a", b"", PermType::Read));
        assert!(ok(b"b", b"d", PermType::Read), "union of adjacent ranges");
        assert!(ok(b"a", b"e", PermType::Read));
        assert!(!ok(b"a", b"f", PermType::Read), "past the union");
        assert!(!ok(b"a", b"", PermType::Write));
        assert!(ok(b"k", b"", PermType::Write));
        assert!(!ok(b"k", b"", PermType::Read));
        assert!(!ok(b"k\0", b"", PermType::Write), "single-key permission");
        assert!(ok(b"x", &[0], PermType::Write), "open-ended range");
        assert!(ok(b"zzz", b"", PermType::Read));
        assert!(!ok(b"", &[0], PermType::Read), "every key");
        assert_eq!(
            st.check_permission(None, b"a", b"", PermType::Read),
            Err(MvccError::UserEmpty)
        );
        assert_eq!(
            st.check_permission(Some("bob"), b"a", b"", PermType::Read),
            Err(MvccError::PermissionDenied)
        );
        assert!(st
            .check_permission(Some("root"), b"", &[0], PermType::Write)
            .is_ok());
        assert_eq!(st.check_admin(alice), Err(MvccError::PermissionDenied));
        assert!(st.check_admin(Some("root")).is_ok());
        // Disabled: everything passes.
        let mut off = st.clone();
        apply(&mut off, AuthRequest::Disable).unwrap();
        assert!(off
            .check_permission(None, b"q", b"", PermType::Write)
            .is_ok());
    }

    #[test]
    fn records_round_trip() {
        let u = User {
            name: "u".into(),
            password_hash: None,
            roles: vec!["a".into(), "b".into()],
        };
        assert_eq!(decode_user(b"u", &encode_user(&u)).unwrap(), u);
        let r = Role {
            name: "r".into(),
            permissions: vec![Permission {
                perm_type: PermType::ReadWrite,
                key: b"k".to_vec(),
                range_end: vec![0],
            }],
        };
        assert_eq!(decode_role(b"r", &encode_role(&r)).unwrap(), r);
        let enc = encode_role(&r);
        assert!(decode_role(b"r", &enc[..enc.len() - 1]).is_err());
        assert!(decode_user(b"u", &[9]).is_err());
    }
}
