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

/// An in-memory [`Storage`], for tests, the simulator and as the model of what a durable
/// implementation must do. Entries are kept contiguous after the compaction point.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    conf_state: ConfState,
    /// The latest snapshot created or installed.
    snapshot: Snapshot,
    /// Index and term of the entry just before `entries[0]` (the compaction point).
    start_index: u64,
    start_term: u64,
    entries: Vec<Entry>,
}

impl MemStorage {
    /// An empty log with no configuration (a member that joins an existing group).
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// An empty log with the given initial configuration (bootstrapping a new group).
    pub fn new_with_conf_state(conf_state: ConfState) -> MemStorage {
        MemStorage {
            conf_state,
            ..MemStorage::default()
        }
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Records the hard state.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// The persisted configuration.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Records the configuration (after applying a configuration change).
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// All entries still held (after the compaction point).
    pub fn all_entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Replaces the whole state with `snapshot` (a follower installing the leader's snapshot).
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        let index = snapshot.metadata.index;
        if index <= self.snapshot.metadata.index {
            return Err(StorageError::SnapshotOutOfDate);
        }
        self.start_index = index;
        self.start_term = snapshot.metadata.term;
        self.entries.clear();
        self.conf_state = snapshot.metadata.conf_state.clone();
        self.hard_state.term = self.hard_state.term.max(snapshot.metadata.term);
        self.hard_state.commit = self.hard_state.commit.max(index);
        self.snapshot = snapshot;
        Ok(())
    }

    /// Appends `entries`, which must be contiguous and start at most one past the last index;
    /// an existing suffix from `entries[0].index` on is replaced. Entries at or before the
    /// compaction point are skipped.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        for pair in entries.windows(2) {
            if pair[1].index != pair[0].index + 1 {
                return Err(StorageError::Other(format!(
                    "non-contiguous entries {} then {}",
                    pair[0].index, pair[1].index
                )));
            }
        }
        let last_index = self.start_index + self.entries.len() as u64;
        if first.index > last_index + 1 {
            return Err(StorageError::Other(format!(
                "gap: appending at {} after last index {}",
                first.index, last_index
            )));
        }
        let skip = (self.start_index + 1).saturating_sub(first.index) as usize;
        let entries = entries.get(skip..).unwrap_or(&[]);
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let keep = (first.index - self.start_index - 1) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    /// Discards entries up to and including `index` (which must be stored). Create a snapshot
    /// covering `index` first, or lagging followers cannot catch up.
    pub fn compact(&mut self, index: u64) -> Result<(), StorageError> {
        if index <= self.start_index {
            return Err(StorageError::Compacted);
        }
        let last_index = self.start_index + self.entries.len() as u64;
        if index > last_index {
            return Err(StorageError::Unavailable);
        }
        let n = (index - self.start_index) as usize;
        self.start_term = self.entries[n - 1].term;
        self.start_index = index;
        self.entries.drain(..n);
        Ok(())
    }

    /// Records a snapshot of the state machine as of `index` (which must still be in the log).
    pub fn create_snapshot(
        &mut self,
        index: u64,
        conf_state: ConfState,
        data: bytes::Bytes,
    ) -> Result<Snapshot, StorageError> {
        if index <= self.snapshot.metadata.index {
            return Err(StorageError::SnapshotOutOfDate);
        }
        let term = self.term(index)?;
        self.snapshot = Snapshot {
            metadata: crate::types::SnapshotMetadata {
                index,
                term,
                conf_state,
            },
            data,
        };
        Ok(self.snapshot.clone())
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<RaftState, StorageError> {
        Ok(RaftState {
            hard_state: self.hard_state,
            conf_state: self.conf_state.clone(),
        })
    }

    fn entries(&self, low: u64, high: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        if low <= self.start_index {
            return Err(StorageError::Compacted);
        }
        let last_index = self.start_index + self.entries.len() as u64;
        if high > last_index + 1 || low > high {
            return Err(StorageError::Unavailable);
        }
        let lo = (low - self.start_index - 1) as usize;
        let hi = (high - self.start_index - 1) as usize;
        Ok(limit_size(&self.entries[lo..hi], max_bytes))
    }

    fn term(&self, index: u64) -> Result<u64, StorageError> {
        if index < self.start_index {
            return Err(StorageError::Compacted);
        }
        if index == self.start_index {
            return Ok(self.start_term);
        }
        self.entries
            .get((index - self.start_index - 1) as usize)
            .map(|e| e.term)
            .ok_or(StorageError::Unavailable)
    }

    fn first_index(&self) -> Result<u64, StorageError> {
        Ok(self.start_index + 1)
    }

    fn last_index(&self) -> Result<u64, StorageError> {
        Ok(self.start_index + self.entries.len() as u64)
    }

    fn snapshot(&self, _request_index: u64) -> Result<Snapshot, StorageError> {
        Ok(self.snapshot.clone())
    }
}

/// The longest prefix of `entries` within `max_bytes`, but at least one entry.
pub(crate) fn limit_size(entries: &[Entry], max_bytes: u64) -> Vec<Entry> {
    let mut size = 0u64;
    let mut n = 0;
    for e in entries {
        size = size.saturating_add(e.size());
        if n > 0 && size > max_bytes {
            break;
        }
        n += 1;
    }
    entries[..n].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Entry::default()
        }
    }

    #[test]
    fn append_overwrites_suffix_and_rejects_gaps() {
        let mut s = MemStorage::new();
        s.append(&[ent(1, 1), ent(2, 1), ent(3, 1)]).unwrap();
        s.append(&[ent(2, 2)]).unwrap();
        assert_eq!(s.last_index().unwrap(), 2);
        assert_eq!(s.term(2).unwrap(), 2);
        assert!(s.append(&[ent(5, 2)]).is_err());
        assert!(s.append(&[ent(3, 2), ent(5, 2)]).is_err());
    }

    #[test]
    fn compact_keeps_term_of_compaction_point() {
        let mut s = MemStorage::new();
        s.append(&[ent(1, 1), ent(2, 2), ent(3, 3)]).unwrap();
        s.create_snapshot(2, ConfState::default(), bytes::Bytes::new())
            .unwrap();
        s.compact(2).unwrap();
        assert_eq!(s.first_index().unwrap(), 3);
        assert_eq!(s.term(2).unwrap(), 2);
        assert_eq!(s.term(1), Err(StorageError::Compacted));
        assert_eq!(s.entries(2, 4, u64::MAX), Err(StorageError::Compacted));
        assert_eq!(s.entries(3, 4, u64::MAX).unwrap(), vec![ent(3, 3)]);
        assert_eq!(s.compact(2), Err(StorageError::Compacted));
        assert_eq!(s.compact(9), Err(StorageError::Unavailable));
        // appending below the compaction point skips the compacted part
        s.append(&[ent(2, 2), ent(3, 4)]).unwrap();
        assert_eq!(s.term(3).unwrap(), 4);
    }

    #[test]
    fn entries_respect_size_but_return_at_least_one() {
        let mut s = MemStorage::new();
        s.append(&[ent(1, 1), ent(2, 1), ent(3, 1)]).unwrap();
        assert_eq!(s.entries(1, 4, 0).unwrap().len(), 1);
        assert_eq!(s.entries(1, 4, 48).unwrap().len(), 2);
        assert_eq!(s.entries(1, 5, 48), Err(StorageError::Unavailable));
    }

    #[test]
    fn apply_snapshot_replaces_log() {
        let mut s = MemStorage::new();
        s.append(&[ent(1, 1)]).unwrap();
        let mut snap = Snapshot::default();
        snap.metadata.index = 10;
        snap.metadata.term = 3;
        s.apply_snapshot(snap.clone()).unwrap();
        assert_eq!(s.first_index().unwrap(), 11);
        assert_eq!(s.last_index().unwrap(), 10);
        assert_eq!(s.term(10).unwrap(), 3);
        assert_eq!(s.apply_snapshot(snap), Err(StorageError::SnapshotOutOfDate));
    }
}
