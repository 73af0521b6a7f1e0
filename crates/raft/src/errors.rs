//! Typed errors returned to the embedder instead of panics.

use crate::config::ConfigError;
use crate::storage::StorageError;
use crate::types::NodeId;

/// A failure of the state machine or of the storage it reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RaftError {
    /// The configuration is invalid.
    #[error("invalid config: {0}")]
    Config(#[from] ConfigError),
    /// Reading the stable log failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The persistent state read at start-up is inconsistent (e.g. commit beyond the log).
    #[error("corrupt persistent state: {0}")]
    CorruptState(String),
    /// A message was addressed to another member or carries no sender.
    #[error("message from {from} to {to} is not for member {me}")]
    InvalidMessage {
        /// Sender in the message.
        from: NodeId,
        /// Recipient in the message.
        to: NodeId,
        /// This member.
        me: NodeId,
    },
    /// A peer asked for something that would break a Raft safety property (for example to
    /// overwrite committed entries). The message is refused.
    #[error("refused: {0}")]
    SafetyViolation(String),
    /// A configuration change cannot be applied.
    #[error("conf change: {0}")]
    ConfChange(#[from] ConfChangeError),
}

/// Why a proposal was not accepted. A refused proposal was not appended anywhere.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// No leader is known; retry later.
    #[error("no leader known")]
    NoLeader,
    /// The leader is handing leadership over to `transferee`; retry after the transfer.
    #[error("leadership transfer to {transferee} in progress")]
    TransferInProgress {
        /// The member leadership is being transferred to.
        transferee: NodeId,
    },
    /// A configuration change is already pending (proposed but not yet applied).
    #[error("a configuration change is already pending")]
    ConfChangePending,
    /// The configuration change is not valid now (e.g. leaving a joint config that isn't).
    #[error("invalid configuration change: {0}")]
    InvalidConfChange(String),
    /// Too many bytes of uncommitted entries (`max_uncommitted_entries_size`).
    #[error("too many uncommitted entries: backpressure")]
    Backpressure,
    /// This member is no longer part of the group.
    #[error("this member was removed from the group")]
    NotMember,
    /// The proposal is larger than the configured limit.
    #[error("proposal of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The proposal's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

/// Why a read-index request was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadIndexError {
    /// No leader is known; retry later.
    #[error("no leader known")]
    NoLeader,
    /// Too many reads are waiting for confirmation.
    #[error("too many pending read-index requests")]
    TooManyPending,
    /// This member is no longer part of the group.
    #[error("this member was removed from the group")]
    NotMember,
}

/// Why a configuration change cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfChangeError {
    /// Entering a joint configuration while already in one.
    #[error("configuration is already joint")]
    AlreadyJoint,
    /// Leaving a joint configuration while not in one.
    #[error("configuration is not joint")]
    NotJoint,
    /// A simple change may alter at most one voter.
    #[error("more than one voter changed without joint consensus")]
    TooManyVoterChanges,
    /// The change would leave no voter.
    #[error("removed all voters")]
    NoVoters,
    /// The encoded change could not be decoded.
    #[error("malformed conf change: {0}")]
    Malformed(String),
    /// Too many changes at once.
    #[error("{0} changes exceed the limit")]
    TooManyChanges(usize),
}
