//! Errors a member returns to clients, with the exact gRPC codes and `etcdserver: ...` messages
//! etcd uses, so that client libraries recognise (and retry) them as they do with etcd.

use tonic::{Code, Status};

/// A request-level failure of the member (not of the data model: those are
/// `quorum_mvcc::MvccError` and map through [`mvcc_status`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServerError {
    /// No leader is known: the member is partitioned from a quorum, or an election is running.
    #[error("etcdserver: no leader")]
    NoLeader,
    /// The request did not complete in time; it may or may not have taken effect.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// Leadership changed while the request waited; it may or may not have taken effect.
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    /// The member is overloaded (applies lag far behind commits, or the proposal queue is full).
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    /// The request is larger than `--max-request-bytes`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// The member is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// A leadership transfer is in progress; retry shortly.
    #[error("etcdserver: leadership transfer in progress")]
    TransferInProgress,
    /// The target of MoveLeader is not a voting member.
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    /// MoveLeader was sent to a member that is not the leader.
    #[error("etcdserver: not leader")]
    NotLeader,
    /// Membership: the member id is unknown.
    #[error("etcdserver: member not found")]
    MemberNotFound,
    /// Membership: the peer URLs are already used by a member.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// Membership: a configuration change is still pending, or the change would break the
    /// active quorum (a voter this member is not connected to).
    #[error("etcdserver: unhealthy cluster")]
    UnhealthyCluster,
    /// Membership: the member id is already a member.
    #[error("etcdserver: member ID already exist")]
    MemberExists,
    /// Membership: the change would leave too few started voters (--strict-reconfig-check).
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    /// Membership: malformed peer URLs.
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    /// Membership: promote of a voter.
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    /// Membership: promote of a learner that lags the leader.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// Membership: a second learner.
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// This member is a learner: it serves only serializable reads and Status (etcd's
    /// `isRPCSupportedForLearner`); clients retry another endpoint.
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    /// This member was removed from the cluster and no longer serves.
    #[error("etcdserver: the member has been permanently removed from the cluster")]
    Removed,
    /// An operation the member does not support (yet), named.
    #[error("{0}")]
    Unimplemented(String),
    /// A request that is malformed in a way etcd reports as invalid argument.
    #[error("{0}")]
    InvalidArgument(String),
    /// A status already in gRPC form (e.g. a data-model error from applying the request).
    #[error("{}", .0.message())]
    Status(tonic::Status),
    /// An internal failure (disk error, corrupt data); the member may stop serving.
    #[error("etcdserver: {0}")]
    Internal(String),
}

impl ServerError {
    /// The gRPC code etcd uses for this error.
    pub fn code(&self) -> Code {
        match self {
            ServerError::NoLeader
            | ServerError::Timeout
            | ServerError::LeaderChanged
            | ServerError::Stopped
            | ServerError::TransferInProgress
            | ServerError::UnhealthyCluster => Code::Unavailable,
            ServerError::TooManyRequests => Code::ResourceExhausted,
            ServerError::RequestTooLarge | ServerError::InvalidArgument(_) => Code::InvalidArgument,
            ServerError::BadLeaderTransferee | ServerError::NotLeader => Code::FailedPrecondition,
            ServerError::MemberNotFound => Code::NotFound,
            ServerError::PeerUrlExists
            | ServerError::MemberExists
            | ServerError::NotEnoughStartedMembers
            | ServerError::MemberNotLearner
            | ServerError::LearnerNotReady
            | ServerError::TooManyLearners => Code::FailedPrecondition,
            ServerError::MemberBadUrls => Code::InvalidArgument,
            ServerError::Removed | ServerError::NotSupportedForLearner => Code::Unavailable,
            ServerError::Unimplemented(_) => Code::Unimplemented,
            ServerError::Internal(_) => Code::Internal,
            ServerError::Status(s) => s.code(),
        }
    }
}

impl From<ServerError> for Status {
    fn from(e: ServerError) -> Status {
        match e {
            ServerError::Status(s) => s,
            other => Status::new(other.code(), other.to_string()),
        }
    }
}

impl From<crate::membership::MembershipError> for ServerError {
    fn from(e: crate::membership::MembershipError) -> ServerError {
        use crate::membership::MembershipError as M;
        match e {
            M::MemberExists => ServerError::MemberExists,
            M::PeerUrlExists => ServerError::PeerUrlExists,
            M::NotFound => ServerError::MemberNotFound,
            M::NotLearner => ServerError::MemberNotLearner,
            M::TooManyLearners => ServerError::TooManyLearners,
            M::BadUrls => ServerError::MemberBadUrls,
            M::TooManyMembers => ServerError::Status(Status::failed_precondition(e.to_string())),
            M::Malformed(s) => ServerError::InvalidArgument(s),
        }
    }
}

/// Maps a data-model error onto the gRPC status etcd returns for it.
pub fn mvcc_status(e: &quorum_mvcc::MvccError) -> Status {
    Status::new(Code::from_i32(e.grpc_code() as i32), e.to_string())
}
