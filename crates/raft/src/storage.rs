//! The stable log as Raft sees it, through the [`Storage`] trait, and its in-memory
//! implementation [`MemStorage`].
//!
//! Raft keeps entries that are not yet persisted in its own "unstable" log; `Storage` only
//! serves what the embedder has already made durable (or, for [`MemStorage`], recorded).

use crate::types::{ConfState, Entry, HardState, Snapshot};

/// Why a [`Storage`] read failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The requested index is at or before the snapshot: the entry was compacted away.
    #[error("requested index is unavailable due to compaction")]
    Compacted,
    /// The requested index is beyond the last stored entry.
    #[error("requested entry at index is unavailable")]
    Unavailable,
    /// The requested snapshot is older than the one already held.
    #[error("requested index is older than the existing snapshot")]
    SnapshotOutOfDate,
    /// A snapshot is being produced; ask again later.
    #[error("snapshot is temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
    /// Any other failure (disk error, corruption), described for the operator.
    #[error("storage error: {0}")]
    Other(String),
}

/// The persistent state Raft starts from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftState {
    /// Term, vote and commit as last persisted.
    pub hard_state: HardState,
    /// The configuration as of the last snapshot or applied configuration change.
    pub conf_state: ConfState,
}

/// Read access to the stable log. Implemented by [`MemStorage`] and by anything the embedder
/// builds on its WAL. Indices follow Raft: entry `i` is at index `i`, and the entry just before
/// `first_index()` is described by the snapshot (its term is still served by `term`).
pub trait Storage {
    /// The hard state and configuration to start from.
    fn initial_state(&self) -> Result<RaftState, StorageError>;
    /// Entries in `[low, high)`, stopping early once `max_bytes` is exceeded (but always at
    /// least one entry when the range is non-empty).
    fn entries(&self, low: u64, high: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError>;
    /// Term of the entry at `index`, which may be `first_index() - 1` (the snapshot's index).
    fn term(&self, index: u64) -> Result<u64, StorageError>;
    /// Index of the first entry still available (snapshot index + 1).
    fn first_index(&self) -> Result<u64, StorageError>;
    /// Index of the last stored entry (snapshot index if there are none after it).
    fn last_index(&self) -> Result<u64, StorageError>;
    /// The most recent snapshot, to send to a follower that needs entries at or before
    /// `request_index`.
    fn snapshot(&self, request_index: u64) -> Result<Snapshot, StorageError>;
}
