//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Who a data directory belongs to: written into every WAL segment and snapshot, and checked
/// on every open so that a member never starts on another member's or cluster's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The cluster the member belongs to.
    pub cluster_id: u64,
    /// The member itself.
    pub member_id: u64,
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The operation (e.g. "write", "fdatasync").
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Stored data failed verification: a bad checksum, an undecodable record, an
    /// inconsistency between records. The member must not start on it.
    #[error("corrupt data in {} at offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The file holding the bad data.
        file: PathBuf,
        /// Byte offset of the bad record (or header) in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A WAL segment is missing: the sequence of segment files has a hole, or the first
    /// remaining segment does not connect to the recorded compaction point.
    #[error("missing WAL segment in {}: {reason}", dir.display())]
    MissingSegment {
        /// The WAL directory.
        dir: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The data on disk belongs to another member or cluster.
    #[error("{} belongs to cluster {:#x} member {:#x}, not cluster {:#x} member {:#x}",
        file.display(), found.cluster_id, found.member_id, expected.cluster_id, expected.member_id)]
    IdentityMismatch {
        /// The file whose header names the other owner.
        file: PathBuf,
        /// The identity this member was opened with.
        expected: Identity,
        /// The identity on disk.
        found: Identity,
    },
    /// A single record (one entry, or a snapshot chunk) exceeds the configured maximum.
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The record's size.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The caller asked for something the log cannot do (non-contiguous entries, compaction
    /// beyond the commit index, an out-of-date snapshot).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// An earlier write or sync failed; what is on disk is unknown, so the log refuses all
    /// further writes. Restart the member (recovery re-reads the disk).
    #[error("the log is unusable after an earlier IO failure")]
    Poisoned,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps an [`io::Error`] with the operation and path.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
