//! Errors, with etcd's exact messages and gRPC status codes (`api/v3rpc/rpctypes/error.go`).

/// gRPC status code an error maps to (a plain mirror of `tonic::Code`, numeric values equal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum GrpcCode {
    /// INVALID_ARGUMENT = 3.
    InvalidArgument = 3,
    /// NOT_FOUND = 5.
    NotFound = 5,
    /// PERMISSION_DENIED = 7.
    PermissionDenied = 7,
    /// RESOURCE_EXHAUSTED = 8.
    ResourceExhausted = 8,
    /// FAILED_PRECONDITION = 9.
    FailedPrecondition = 9,
    /// OUT_OF_RANGE = 11.
    OutOfRange = 11,
    /// INTERNAL = 13.
    Internal = 13,
    /// UNAVAILABLE = 14.
    Unavailable = 14,
    /// DATA_LOSS = 15.
    DataLoss = 15,
    /// UNAUTHENTICATED = 16.
    Unauthenticated = 16,
}

/// Every error of this crate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MvccError {
    /// The requested revision is below the compaction point.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision is above the current revision.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// A request without a key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ignore_value`/`ignore_lease` on a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// `ignore_value` together with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` together with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// More compares or operations in one txn level than allowed.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// A key written twice (or written and deleted) in one txn.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// NOSPACE alarm active (or the request would exceed the quota).
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// CORRUPT alarm active.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// Unknown lease.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// LeaseGrant with an id already in use.
    #[error("etcdserver: lease already exists")]
    LeaseExist,
    /// LeaseGrant TTL above etcd's maximum (9,000,000,000 s).
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// Lease keep-alive or expiry asked of a member that is not the leader.
    #[error("etcdserver: not leader")]
    NotLeader,
    /// Unknown watch id.
    #[error("mvcc: watcher does not exist")]
    WatcherNotFound,
    /// AuthEnable without user root.
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    /// AuthEnable while user root lacks role root.
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    /// UserAdd of an existing user.
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    /// A user name is missing (also: a request without a user while auth is enabled).
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    /// Unknown user.
    #[error("etcdserver: user name not found")]
    UserNotFound,
    /// RoleAdd of an existing role.
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    /// Unknown role.
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    /// A role name is missing.
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    /// Wrong user name or password.
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    /// RoleGrantPermission without a permission.
    #[error("etcdserver: permission not given")]
    PermissionNotGiven,
    /// The user may not do this.
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    /// UserRevokeRole of a role the user does not have.
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    /// RoleRevokePermission of a permission the role does not have.
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    /// An auth call that needs auth enabled.
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    /// An unknown or expired token.
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    /// A change that would lock the administrator out (or an invalid permission range).
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    /// The auth state changed between the permission check and the apply.
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// An explicit limit of the auth store (Quorum's own; etcd has none).
    #[error("etcdserver: too many {0} in the auth store")]
    AuthLimit(&'static str),
    /// The storage engine failed (I/O error, full disk...). The applied batch was not committed.
    #[error("etcdserver: storage error: {0}")]
    Storage(String),
    /// Stored bytes or a snapshot stream do not decode.
    #[error("etcdserver: corrupt data: {0}")]
    CorruptData(String),
}

impl MvccError {
    /// The gRPC code etcd answers this error with.
    pub fn grpc_code(&self) -> GrpcCode {
        match self {
            MvccError::Compacted | MvccError::FutureRevision | MvccError::LeaseTtlTooLarge => {
                GrpcCode::OutOfRange
            }
            MvccError::EmptyKey
            | MvccError::KeyNotFound
            | MvccError::ValueProvided
            | MvccError::LeaseProvided
            | MvccError::TooManyOps
            | MvccError::DuplicateKey => GrpcCode::InvalidArgument,
            MvccError::NoSpace => GrpcCode::ResourceExhausted,
            MvccError::Corrupt | MvccError::CorruptData(_) => GrpcCode::DataLoss,
            MvccError::LeaseNotFound | MvccError::WatcherNotFound => GrpcCode::NotFound,
            MvccError::LeaseExist => GrpcCode::FailedPrecondition,
            MvccError::NotLeader => GrpcCode::Unavailable,
            MvccError::Storage(_) => GrpcCode::Internal,
            MvccError::RootUserNotExist
            | MvccError::RootRoleNotExist
            | MvccError::UserAlreadyExist
            | MvccError::UserNotFound
            | MvccError::RoleAlreadyExist
            | MvccError::RoleNotFound
            | MvccError::RoleNotGranted
            | MvccError::PermissionNotGranted
            | MvccError::AuthNotEnabled => GrpcCode::FailedPrecondition,
            MvccError::UserEmpty
            | MvccError::RoleEmpty
            | MvccError::AuthFailed
            | MvccError::PermissionNotGiven
            | MvccError::InvalidAuthMgmt
            | MvccError::AuthOldRevision => GrpcCode::InvalidArgument,
            MvccError::PermissionDenied => GrpcCode::PermissionDenied,
            MvccError::InvalidAuthToken => GrpcCode::Unauthenticated,
            MvccError::AuthLimit(_) => GrpcCode::ResourceExhausted,
        }
    }
}

macro_rules! storage_error {
    ($($t:ty),*) => {$(
        impl From<$t> for MvccError {
            fn from(e: $t) -> Self {
                MvccError::Storage(e.to_string())
            }
        }
    )*};
}

storage_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    std::io::Error
);
