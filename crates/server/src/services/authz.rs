//! Authentication and authorization of client calls, as etcd 3.5 does them.
//!
//! * [`AuthGate`]: this member's simple tokens (etcd's default `--auth-token simple`: random,
//!   assigned on every member when the `Authenticate` request is applied, as etcd does, each
//!   member expiring them after `--auth-token-ttl` without use) and the
//!   per-call admission: [`Gated`] wraps every gRPC service, reads the `token` metadata, answers
//!   `etcdserver: invalid auth token` for an unknown one, refuses the administrator-only
//!   Cluster/Maintenance calls to non-root users, and hands the services the [`Caller`].
//! * Permission checks on request bodies ([`check_range`], [`check_put`], [`check_delete`],
//!   [`check_txn`], [`check`]) over one snapshot of the replicated auth state; what they allow
//!   is proposed with [`authorize`], stamped with the auth revision they saw, so that apply
//!   refuses it (`etcdserver: revision of auth store is old`) if permissions changed since.
//!
//! Invariants: a token maps to exactly one user and the password hash the user had when it was
//! issued (a password change or deletion invalidates it); the token table never exceeds
//! [`MAX_TOKENS`]; when auth is disabled every token is dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use quorum_api::etcdserverpb as pb;
use quorum_mvcc::{AuthState, AuthorizedRequest, MvccError, PermType, WriteRequest};
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::Status;

use super::common::mvcc_err;

/// etcd's default `--auth-token-ttl` (seconds).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(300);
/// Most live tokens a member holds; past it the oldest-expiring ones are dropped first.
pub const MAX_TOKENS: usize = 100_000;
/// Random characters in a token (etcd: 16).
const TOKEN_CHARS: usize = 16;
/// The gRPC metadata key etcd clients send the token in.
pub const TOKEN_METADATA: &str = "token";

/// Who is calling, as the gate established it; services read it from the request extensions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// The authenticated user; `None` without a token (or while auth is disabled).
    pub user: Option<String>,
}

/// The caller of a request (`Caller::default()` when the gate did not run, as in unit tests
/// of the services: the checks then behave as for a call without a token).
pub fn caller<T>(request: &tonic::Request<T>) -> Caller {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_default()
}

struct TokenEntry {
    user: String,
    /// The user's password hash when the token was issued.
    password_hash: Option<String>,
    expires: Instant,
}

/// Waits until this member has applied everything committed (a read barrier).
pub type Barrier =
    Arc<dyn Fn() -> tonic::codegen::BoxFuture<(), crate::error::ServerError> + Send + Sync>;

/// This member's simple tokens and the auth state they are checked against.
pub struct AuthGate {
    store: Arc<quorum_mvcc::Store>,
    ttl: Duration,
    tokens: Mutex<HashMap<String, TokenEntry>>,
    /// `--client-cert-auth`: a call without a token is made as the common name of its
    /// verified client certificate.
    cert_users: bool,
    /// `--auth-token jwt,...`: tokens are JWTs verified with these keys, not simple tokens.
    jwt: Option<Arc<crate::jwt::JwtTokens>>,
    /// Run before refusing an unknown token: the `Authenticate` entry that assigned it may be
    /// committed but not yet applied here (the client got it from a faster member).
    barrier: Option<Barrier>,
    /// This member's role and leader now (see [`learner_may_serve`] and [`requires_leader`]).
    status: Option<StatusProbe>,
}

/// Reports this member's status now (learner or not, the leader it knows).
pub type StatusProbe = Arc<dyn Fn() -> crate::member::StatusInfo + Send + Sync>;

/// The metadata key etcd clients set (`clientv3.WithRequireLeader`, used by Kubernetes for
/// its watches) to be refused rather than served by a member that has no leader.
pub const REQUIRE_LEADER_METADATA: &str = "hasleader";

/// True when a request's metadata asks that only a member with a leader serve it.
pub fn requires_leader(headers: &http::HeaderMap) -> bool {
    headers
        .get(REQUIRE_LEADER_METADATA)
        .is_some_and(|v| v.as_bytes() == b"true")
}

/// The calls a learner serves, as etcd's `isRPCSupportedForLearner`: Status, and Range (which
/// itself refuses a linearizable read on a learner). Everything else, streams included, is
/// answered `etcdserver: rpc not supported for learner` (Unavailable: clients try another
/// endpoint).
pub fn learner_may_serve(path: &str) -> bool {
    matches!(
        path,
        "/etcdserverpb.Maintenance/Status" | "/etcdserverpb.KV/Range"
    )
}

impl AuthGate {
    /// A gate over `store`'s auth state with tokens living `ttl` after their last use.
    pub fn new(store: Arc<quorum_mvcc::Store>, ttl: Duration) -> Self {
        AuthGate {
            store,
            ttl,
            tokens: Mutex::new(HashMap::new()),
            cert_users: false,
            jwt: None,
            barrier: None,
            status: None,
        }
    }

    /// The gate, asking `probe` for this member's status: while it is a learner, what a
    /// learner does not serve is refused; while it has no leader, calls that require one
    /// ([`requires_leader`]) are refused with `etcdserver: no leader`, as etcd does.
    pub fn with_status_probe(mut self, probe: StatusProbe) -> Self {
        self.status = Some(probe);
        self
    }

    /// The gate, taking a call without a token as made by its client certificate's common
    /// name (`--client-cert-auth`, as etcd).
    pub fn with_cert_users(mut self, on: bool) -> Self {
        self.cert_users = on;
        self
    }

    /// The gate, verifying JWT tokens with `jwt` (simple tokens when `None`).
    pub fn with_jwt(mut self, jwt: Option<Arc<crate::jwt::JwtTokens>>) -> Self {
        self.jwt = jwt;
        self
    }

    /// The gate, waiting for `barrier` before it refuses an unknown token.
    pub fn with_barrier(mut self, barrier: Barrier) -> Self {
        self.barrier = Some(barrier);
        self
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, TokenEntry>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh token to propose with `Authenticate`. Format as etcd's simple tokens: 16
    /// random letters, a dot, a number (here the auth revision).
    pub fn new_token(state: &AuthState) -> String {
        let mut bytes = [0u8; TOKEN_CHARS];
        rand::fill(&mut bytes);
        const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let random: String = bytes
            .iter()
            .map(|b| LETTERS[usize::from(*b) % LETTERS.len()] as char)
            .collect();
        format!("{random}.{}", state.revision())
    }

    /// Takes the tokens applied `Authenticate` requests assigned (on any member: tokens are
    /// assigned through the log, as etcd does, so a client may use any member) into the
    /// table, each living `ttl` from now.
    fn collect_assigned(&self, state: &AuthState, tokens: &mut HashMap<String, TokenEntry>) {
        let assigned = self.store.take_assigned_tokens();
        if assigned.is_empty() {
            return;
        }
        let now = Instant::now();
        for t in assigned {
            if tokens.len() >= MAX_TOKENS {
                tokens.retain(|_, e| e.expires > now);
                while tokens.len() >= MAX_TOKENS {
                    let oldest = tokens
                        .iter()
                        .min_by_key(|(_, e)| e.expires)
                        .map(|(k, _)| k.clone());
                    match oldest {
                        Some(k) => tokens.remove(&k),
                        None => break,
                    };
                }
            }
            tokens.insert(
                t.token,
                TokenEntry {
                    password_hash: state.user(&t.user).and_then(|u| u.password_hash.clone()),
                    user: t.user,
                    expires: now + self.ttl,
                },
            );
        }
        debug_assert!(tokens.len() <= MAX_TOKENS);
    }

    /// The user a token stands for (renewing its TTL), or `InvalidAuthToken`.
    fn resolve(&self, state: &AuthState, token: &str) -> Result<String, MvccError> {
        let now = Instant::now();
        let mut tokens = self.tokens();
        self.collect_assigned(state, &mut tokens);
        let valid = match tokens.get_mut(token) {
            Some(e) if e.expires > now => {
                let same_user = state
                    .user(&e.user)
                    .is_some_and(|u| u.password_hash == e.password_hash);
                if same_user {
                    e.expires = now + self.ttl;
                    Some(e.user.clone())
                } else {
                    None
                }
            }
            _ => None,
        };
        match valid {
            Some(u) => Ok(u),
            None => {
                tokens.remove(token);
                Err(MvccError::InvalidAuthToken)
            }
        }
    }

    /// Live tokens (for tests and metrics).
    pub fn token_count(&self) -> usize {
        self.tokens().len()
    }

    /// Admission of one call to gRPC method `path` with the request's `token` metadata value,
    /// or, without one, as `cert_user` (the common name of the verified client certificate;
    /// used only with `--client-cert-auth`).
    pub fn admit(
        &self,
        path: &str,
        token: Option<&[u8]>,
        cert_user: Option<&str>,
    ) -> Result<Caller, Status> {
        let state = self.store.auth_state();
        if !state.enabled() {
            let mut tokens = self.tokens();
            if !tokens.is_empty() {
                tokens.clear();
            }
            drop(self.store.take_assigned_tokens());
            return Ok(Caller::default());
        }
        // Authenticate needs no identity (etcd checks none there): a stale token sent along
        // with it must not make it fail as old.
        let token = if path == "/etcdserverpb.Auth/Authenticate" {
            None
        } else {
            token
        };
        let user = match token {
            None if self.cert_users => cert_user.map(str::to_string),
            None => None,
            Some(t) => {
                let t =
                    std::str::from_utf8(t).map_err(|_| mvcc_err(&MvccError::InvalidAuthToken))?;
                let user = match &self.jwt {
                    Some(jwt) => {
                        // etcd: a token from before the latest auth change is refused as old
                        // (clients then authenticate again).
                        let (user, revision) = jwt.verify(t).map_err(|e| mvcc_err(&e))?;
                        if revision < state.revision() {
                            return Err(mvcc_err(&MvccError::AuthOldRevision));
                        }
                        user
                    }
                    None => self.resolve(&state, t).map_err(|e| mvcc_err(&e))?,
                };
                Some(user)
            }
        };
        if admin_only(path) {
            state
                .check_admin(user.as_deref())
                .map_err(|e| mvcc_err(&e))?;
        }
        Ok(Caller { user })
    }
}

/// The common name of the client certificate the TLS handshake verified, if any (etcd's
/// `AuthInfoFromTLS` takes the first verified chain's leaf). A certificate without a common
/// name, or one that does not parse, names no one.
fn certificate_user<B>(req: &http::Request<B>) -> Option<String> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let certs = req
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()?
        .peer_certs()?;
    let leaf = certs.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    // The last common name, as Go's pkix.Name (etcd) keeps it.
    let cn = cert.subject().iter_common_name().last()?;
    cn.as_str().ok().map(str::to_string)
}

/// Methods etcd reserves to root (`checkMembershipOperationPermission` and the maintenance
/// server's `isPermitted`): membership changes and the maintenance calls that expose or
/// rewrite the whole store.
fn admin_only(path: &str) -> bool {
    const ADMIN: &[&str] = &[
        "/etcdserverpb.Cluster/MemberAdd",
        "/etcdserverpb.Cluster/MemberRemove",
        "/etcdserverpb.Cluster/MemberUpdate",
        "/etcdserverpb.Cluster/MemberPromote",
        "/etcdserverpb.Maintenance/Defragment",
        "/etcdserverpb.Maintenance/Snapshot",
        "/etcdserverpb.Maintenance/Hash",
        "/etcdserverpb.Maintenance/HashKV",
        "/etcdserverpb.Maintenance/MoveLeader",
        "/etcdserverpb.Maintenance/Downgrade",
    ];
    ADMIN.contains(&path)
}

/// A gRPC service behind the [`AuthGate`].
#[derive(Clone)]
pub struct Gated<S> {
    inner: S,
    gate: Arc<AuthGate>,
}

impl<S> Gated<S> {
    /// `inner` behind `gate`.
    pub fn new(inner: S, gate: Arc<AuthGate>) -> Self {
        Gated { inner, gate }
    }
}

impl<S: NamedService> NamedService for Gated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tonic::codegen::Service<http::Request<B>> for Gated<S>
where
    S: tonic::codegen::Service<
            http::Request<B>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if let Some(probe) = &self.gate.status {
            let refusal = {
                let st = probe();
                if st.is_learner && !learner_may_serve(req.uri().path()) {
                    Some(crate::error::ServerError::NotSupportedForLearner)
                } else if st.leader == 0 && requires_leader(req.headers()) {
                    Some(crate::error::ServerError::NoLeader)
                } else {
                    None
                }
            };
            if let Some(e) = refusal {
                let status: Status = e.into();
                return Box::pin(async move { Ok(status.into_http()) });
            }
        }
        // etcd also takes the token from `authorization` (its gateway's header).
        let token = req
            .headers()
            .get(TOKEN_METADATA)
            .or_else(|| req.headers().get(http::header::AUTHORIZATION))
            .map(|v| v.as_bytes().to_vec());
        let cert_user = if token.is_none() && self.gate.cert_users {
            certificate_user(&req)
        } else {
            None
        };
        match self
            .gate
            .admit(req.uri().path(), token.as_deref(), cert_user.as_deref())
        {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                Box::pin(self.inner.call(req))
            }
            Err(status) => match (&self.gate.barrier, status.code()) {
                (Some(barrier), tonic::Code::Unauthenticated) => {
                    // Retry once after catching up with the log (see `AuthGate::barrier`).
                    let barrier = barrier.clone();
                    let gate = self.gate.clone();
                    let clone = self.inner.clone();
                    let mut inner = std::mem::replace(&mut self.inner, clone);
                    Box::pin(async move {
                        if barrier().await.is_ok() {
                            let path = req.uri().path();
                            if let Ok(caller) =
                                gate.admit(path, token.as_deref(), cert_user.as_deref())
                            {
                                req.extensions_mut().insert(caller);
                                return inner.call(req).await;
                            }
                        }
                        Ok(status.into_http())
                    })
                }
                _ => Box::pin(async move { Ok(status.into_http()) }),
            },
        }
    }
}

/// One access a request needs: `[key, range_end)` with etcd's `range_end` conventions.
#[derive(Clone, Copy, Debug)]
pub struct Access<'a> {
    /// First key.
    pub key: &'a [u8],
    /// End of the range.
    pub range_end: &'a [u8],
    /// Kind of access.
    pub perm: PermType,
}

/// Checks every access of a request on one snapshot of the auth state; returns the auth
/// revision of that snapshot (the stamp for [`authorize`]).
pub fn check<B: super::Backend>(
    b: &B,
    caller: &Caller,
    accesses: &[Access<'_>],
) -> Result<u64, Status> {
    let state = b.store().auth_state();
    for a in accesses {
        state
            .check_permission(caller.user.as_deref(), a.key, a.range_end, a.perm)
            .map_err(|e| mvcc_err(&e))?;
    }
    Ok(state.revision())
}

/// Checks that the caller is root (or auth is disabled); returns the auth revision seen.
pub fn check_admin<B: super::Backend>(b: &B, caller: &Caller) -> Result<u64, Status> {
    let state = b.store().auth_state();
    state
        .check_admin(caller.user.as_deref())
        .map_err(|e| mvcc_err(&e))?;
    Ok(state.revision())
}

/// A Range needs READ on its range.
pub fn check_range<B: super::Backend>(
    b: &B,
    caller: &Caller,
    r: &pb::RangeRequest,
) -> Result<u64, Status> {
    check(b, caller, &range_accesses(r))
}

/// A Put needs WRITE on its key, and READ too when it returns the previous value.
pub fn check_put<B: super::Backend>(
    b: &B,
    caller: &Caller,
    p: &pb::PutRequest,
) -> Result<u64, Status> {
    check(b, caller, &put_accesses(p))
}

/// A DeleteRange needs WRITE on its range, and READ too when it returns the previous values.
pub fn check_delete<B: super::Backend>(
    b: &B,
    caller: &Caller,
    d: &pb::DeleteRangeRequest,
) -> Result<u64, Status> {
    check(b, caller, &delete_accesses(d))
}

/// A Txn needs READ on every compared range and what each operation of both branches needs
/// (etcd's `checkTxnAuth`).
pub fn check_txn<B: super::Backend>(
    b: &B,
    caller: &Caller,
    t: &pb::TxnRequest,
) -> Result<u64, Status> {
    let mut acc = Vec::new();
    txn_accesses(t, &mut acc, 0)?;
    check(b, caller, &acc)
}

/// v3lock `Lock` and v3election `Campaign` on `name`: etcd runs them as a client of itself
/// (a txn writing `name/<lease>` and ranges over the `name/` prefix), so they need READ and
/// WRITE on that prefix.
pub fn check_coordination<B: super::Backend>(
    b: &B,
    caller: &Caller,
    name: &[u8],
) -> Result<u64, Status> {
    let prefix = coordination_prefix(name);
    let end = super::common::prefix_end(&prefix);
    check(
        b,
        caller,
        &[
            Access {
                key: &prefix,
                range_end: &end,
                perm: PermType::Read,
            },
            Access {
                key: &prefix,
                range_end: &end,
                perm: PermType::Write,
            },
        ],
    )
}

/// v3election `Leader`/`Observe` on `name`: READ on the `name/` prefix.
pub fn check_prefix_read<B: super::Backend>(
    b: &B,
    caller: &Caller,
    name: &[u8],
) -> Result<u64, Status> {
    let prefix = coordination_prefix(name);
    let end = super::common::prefix_end(&prefix);
    check(
        b,
        caller,
        &[Access {
            key: &prefix,
            range_end: &end,
            perm: PermType::Read,
        }],
    )
}

/// `Unlock`, `Proclaim`, `Resign` of a held key: WRITE on that key.
pub fn check_key_write<B: super::Backend>(
    b: &B,
    caller: &Caller,
    key: &[u8],
) -> Result<u64, Status> {
    check(
        b,
        caller,
        &[Access {
            key,
            range_end: &[],
            perm: PermType::Write,
        }],
    )
}

fn coordination_prefix(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

fn range_accesses(r: &pb::RangeRequest) -> Vec<Access<'_>> {
    vec![Access {
        key: &r.key,
        range_end: &r.range_end,
        perm: PermType::Read,
    }]
}

fn put_accesses(p: &pb::PutRequest) -> Vec<Access<'_>> {
    let mut v = vec![Access {
        key: &p.key,
        range_end: &[],
        perm: PermType::Write,
    }];
    if p.prev_kv {
        v.push(Access {
            key: &p.key,
            range_end: &[],
            perm: PermType::Read,
        });
    }
    v
}

fn delete_accesses(d: &pb::DeleteRangeRequest) -> Vec<Access<'_>> {
    let mut v = vec![Access {
        key: &d.key,
        range_end: &d.range_end,
        perm: PermType::Write,
    }];
    if d.prev_kv {
        v.push(Access {
            key: &d.key,
            range_end: &d.range_end,
            perm: PermType::Read,
        });
    }
    v
}

fn txn_accesses<'a>(
    t: &'a pb::TxnRequest,
    acc: &mut Vec<Access<'a>>,
    depth: usize,
) -> Result<(), Status> {
    if depth > crate::convert::MAX_TXN_DEPTH {
        return Err(crate::convert::ConvertError::TxnTooDeep.into());
    }
    for c in &t.compare {
        acc.push(Access {
            key: &c.key,
            range_end: &c.range_end,
            perm: PermType::Read,
        });
    }
    use pb::request_op::Request as R;
    for op in t.success.iter().chain(t.failure.iter()) {
        match &op.request {
            Some(R::RequestRange(r)) => acc.extend(range_accesses(r)),
            Some(R::RequestPut(p)) => acc.extend(put_accesses(p)),
            Some(R::RequestDeleteRange(d)) => acc.extend(delete_accesses(d)),
            Some(R::RequestTxn(inner)) => txn_accesses(inner, acc, depth + 1)?,
            None => {}
        }
    }
    Ok(())
}

/// `w` stamped with the auth revision its check saw (see the module documentation).
pub fn authorize(w: WriteRequest, auth_revision: u64, caller: &Caller) -> WriteRequest {
    debug_assert!(auth_revision != 0, "auth revisions start at 1");
    WriteRequest::Authorized(Box::new(AuthorizedRequest {
        auth_revision,
        username: caller.user.clone().unwrap_or_default(),
        request: w,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorum_mvcc::{AuthRequest, Store};

    fn assign(store: &Store, index: u64, user: &str) -> String {
        let token = AuthGate::new_token(&store.auth_state());
        let out = store
            .apply(&[(
                index,
                WriteRequest::Auth(AuthRequest::Authenticate {
                    name: user.into(),
                    token: token.clone(),
                }),
            )])
            .unwrap();
        assert!(matches!(out[0], Some(Ok(_))), "{out:?}");
        token
    }

    fn store_with_root_enabled() -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("db"), Default::default()).unwrap());
        let reqs = [
            AuthRequest::UserAdd {
                name: "root".into(),
                password_hash: Some("h1".into()),
            },
            AuthRequest::UserGrantRole {
                user: "root".into(),
                role: "root".into(),
            },
            AuthRequest::UserAdd {
                name: "alice".into(),
                password_hash: Some("h2".into()),
            },
            AuthRequest::Enable,
        ];
        for (i, r) in reqs.into_iter().enumerate() {
            let out = store
                .apply(&[(i as u64 + 1, WriteRequest::Auth(r))])
                .unwrap();
            assert!(matches!(out[0], Some(Ok(_))), "{out:?}");
        }
        (dir, store)
    }

    #[test]
    fn tokens_resolve_expire_and_die_with_a_password_change() {
        let (_d, store) = store_with_root_enabled();
        let gate = AuthGate::new(store.clone(), Duration::from_millis(200));
        let st = store.auth_state();
        let t = assign(&store, 5, "alice");
        let (rand, seq) = t.split_once('.').unwrap();
        assert_eq!(rand.len(), TOKEN_CHARS);
        assert_eq!(seq, st.revision().to_string());
        let c = gate
            .admit("/etcdserverpb.KV/Range", Some(t.as_bytes()), None)
            .unwrap();
        assert_eq!(c.user.as_deref(), Some("alice"));
        let err = gate
            .admit("/etcdserverpb.KV/Range", Some(b"nope.1"), None)
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert_eq!(err.message(), "etcdserver: invalid auth token");
        // No token: admitted without a user (the services then answer "user name is empty").
        assert_eq!(
            gate.admit("/etcdserverpb.KV/Range", None, None)
                .unwrap()
                .user,
            None
        );
        // A client certificate's common name counts only with --client-cert-auth, and only
        // without a token.
        let cert = Some("bob");
        assert_eq!(
            gate.admit("/etcdserverpb.KV/Range", None, cert)
                .unwrap()
                .user,
            None
        );
        let cert_gate =
            AuthGate::new(store.clone(), Duration::from_millis(200)).with_cert_users(true);
        assert_eq!(
            cert_gate
                .admit("/etcdserverpb.KV/Range", None, cert)
                .unwrap()
                .user
                .as_deref(),
            Some("bob")
        );
        // Authenticate ignores whatever token comes with it (a stale one must not fail it).
        assert!(gate
            .admit("/etcdserverpb.Auth/Authenticate", Some(b"nope.1"), None)
            .is_ok());
        // A token, even one this gate does not know, is never replaced by the certificate.
        let err = cert_gate
            .admit("/etcdserverpb.KV/Range", Some(b"nope.1"), cert)
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "the token wins");
        // Admin-only paths.
        let err = gate
            .admit(
                "/etcdserverpb.Maintenance/Snapshot",
                Some(t.as_bytes()),
                None,
            )
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        let root = assign(&store, 6, "root");
        assert!(gate
            .admit(
                "/etcdserverpb.Cluster/MemberAdd",
                Some(root.as_bytes()),
                None
            )
            .is_ok());
        // A password change invalidates the user's tokens.
        store
            .apply(&[(
                10,
                WriteRequest::Auth(AuthRequest::UserChangePassword {
                    name: "alice".into(),
                    password_hash: "h3".into(),
                }),
            )])
            .unwrap();
        assert!(gate
            .admit("/etcdserverpb.KV/Range", Some(t.as_bytes()), None)
            .is_err());
        // Expiry.
        std::thread::sleep(Duration::from_millis(250));
        assert!(gate
            .admit("/etcdserverpb.KV/Range", Some(root.as_bytes()), None)
            .is_err());
    }

    #[test]
    fn txn_needs_read_on_compares_and_each_branch_op() {
        let t = pb::TxnRequest {
            compare: vec![pb::Compare {
                key: b"c".to_vec().into(),
                ..Default::default()
            }],
            success: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                    key: b"p".to_vec().into(),
                    prev_kv: true,
                    ..Default::default()
                })),
            }],
            failure: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestDeleteRange(
                    pb::DeleteRangeRequest {
                        key: b"d".to_vec().into(),
                        range_end: b"e".to_vec().into(),
                        ..Default::default()
                    },
                )),
            }],
        };
        let mut acc = Vec::new();
        txn_accesses(&t, &mut acc, 0).unwrap();
        let got: Vec<(&[u8], &[u8], PermType)> =
            acc.iter().map(|a| (a.key, a.range_end, a.perm)).collect();
        assert_eq!(
            got,
            vec![
                (&b"c"[..], &b""[..], PermType::Read),
                (&b"p"[..], &b""[..], PermType::Write),
                (&b"p"[..], &b""[..], PermType::Read),
                (&b"d"[..], &b"e"[..], PermType::Write),
            ]
        );
    }
}
