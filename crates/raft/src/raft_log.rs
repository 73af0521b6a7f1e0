//! The log as the state machine sees it: stable storage plus the unstable tail, with the
//! commit and apply cursors.

use crate::log_unstable::Unstable;
use crate::storage::{limit_size, Storage, StorageError};
use crate::types::{Entry, Snapshot};

/// The combined log. Invariant: `applied <= applying <= committed <= last_index()`, and
/// entries at or before `committed` are never replaced (Raft's State Machine Safety).
pub(crate) struct RaftLog<S: Storage> {
    pub storage: S,
    pub unstable: Unstable,
    /// Highest index known to be committed on a quorum. Never decreases.
    pub committed: u64,
    /// Highest index handed out for applying (in a Ready).
    pub applying: u64,
    /// Highest index the embedder has acknowledged as applied.
    pub applied: u64,
    /// Byte bound on the committed entries handed out at once.
    pub max_apply_bytes: u64,
}

impl<S: Storage> RaftLog<S> {
    pub fn new(storage: S, max_apply_bytes: u64) -> Result<RaftLog<S>, StorageError> {
        let first = storage.first_index()?;
        let last = storage.last_index()?;
        if first == 0 || last + 1 < first {
            return Err(StorageError::Other(format!(
                "inconsistent storage bounds: first {first}, last {last}"
            )));
        }
        Ok(RaftLog {
            storage,
            unstable: Unstable::new(last + 1),
            committed: first - 1,
            applying: first - 1,
            applied: first - 1,
            max_apply_bytes: if max_apply_bytes == 0 {
                u64::MAX
            } else {
                max_apply_bytes
            },
        })
    }

    pub fn first_index(&self) -> u64 {
        match self.unstable.maybe_first_index() {
            Some(i) => i,
            // Storage errors here are reported at start-up; fall back to the unstable offset.
            None => self.storage.first_index().unwrap_or(self.unstable.offset),
        }
    }

    pub fn last_index(&self) -> u64 {
        match self.unstable.maybe_last_index() {
            Some(i) => i,
            None => self
                .storage
                .last_index()
                .unwrap_or(self.unstable.offset - 1),
        }
    }

    /// The index up to which the log is durable (in storage, not pending in the unstable part).
    pub fn persisted_index(&self) -> u64 {
        if self.unstable.snapshot.is_some() {
            self.storage
                .last_index()
                .unwrap_or(0)
                .min(self.unstable.offset - 1)
        } else {
            self.unstable.offset - 1
        }
    }

    pub fn term(&self, index: u64) -> Result<u64, StorageError> {
        // The valid range is [first_index - 1, last_index].
        let dummy = self.first_index() - 1;
        if index < dummy {
            return Err(StorageError::Compacted);
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable);
        }
        if let Some(t) = self.unstable.maybe_term(index) {
            return Ok(t);
        }
        self.storage.term(index)
    }

    /// The term at `index`, or 0 if it is unknown (compacted or beyond the log).
    pub fn term_or_zero(&self, index: u64) -> u64 {
        self.term(index).unwrap_or(0)
    }

    pub fn last_term(&self) -> u64 {
        self.term_or_zero(self.last_index())
    }

    pub fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index).is_ok_and(|t| t == term)
    }

    /// Raft's "at least as up-to-date" comparison (paper 5.4.1).
    pub fn is_up_to_date(&self, last_index: u64, term: u64) -> bool {
        let my_term = self.last_term();
        term > my_term || (term == my_term && last_index >= self.last_index())
    }

    /// Index of the first entry of `ents` that conflicts with (or extends) the log, or 0 if
    /// all of them are already present.
    pub fn find_conflict(&self, ents: &[Entry]) -> u64 {
        ents.iter()
            .find(|e| !self.match_term(e.index, e.term))
            .map_or(0, |e| e.index)
    }

    /// The largest index `<= index` whose term is `<= term`, with that term: where a log that
    /// has `term` at some point could match this one (fast backtracking).
    pub fn find_conflict_by_term(&self, index: u64, term: u64) -> (u64, u64) {
        let mut i = index.min(self.last_index());
        loop {
            match self.term(i) {
                Ok(t) if t > term => i -= 1,
                Ok(t) => return (i, t),
                // Compacted: everything before the snapshot matches anyway.
                Err(_) => return (i, 0),
            }
        }
    }

    /// Appends `ents` after (`index`, `log_term`) if the log matches there, returning the
    /// index of the last new entry. Refuses to truncate committed entries.
    pub fn maybe_append(
        &mut self,
        index: u64,
        log_term: u64,
        committed: u64,
        mut ents: Vec<Entry>,
    ) -> Result<Option<u64>, String> {
        if !self.match_term(index, log_term) {
            return Ok(None);
        }
        let last_new = index + ents.len() as u64;
        for (i, e) in ents.iter().enumerate() {
            if e.index != index + 1 + i as u64 {
                return Err(format!("append entries not contiguous after {index}"));
            }
        }
        let conflict = self.find_conflict(&ents);
        if conflict != 0 {
            if conflict <= self.committed {
                return Err(format!(
                    "entry {conflict} conflicts with committed entry (commit {})",
                    self.committed
                ));
            }
            let start = (conflict - (index + 1)) as usize;
            self.append(ents.split_off(start));
        }
        self.commit_to(committed.min(last_new));
        Ok(Some(last_new))
    }

    /// Appends entries (possibly replacing an uncommitted suffix); returns the new last index.
    pub fn append(&mut self, ents: Vec<Entry>) -> u64 {
        let Some(first) = ents.first() else {
            return self.last_index();
        };
        // Leader Completeness / State Machine Safety: committed entries are never replaced.
        assert!(
            first.index > self.committed,
            "append at {} would overwrite committed {}",
            first.index,
            self.committed
        );
        assert!(first.index <= self.last_index() + 1, "append leaves a gap");
        self.unstable.truncate_and_append(ents);
        self.last_index()
    }

    pub fn commit_to(&mut self, index: u64) {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "commit {index} beyond last index {}",
                self.last_index()
            );
            self.committed = index;
        }
    }

    /// Commits `max_index` if it is of `term` (the leader's own term: Figure 8).
    pub fn maybe_commit(&mut self, max_index: u64, term: u64) -> bool {
        if max_index > self.committed && self.term_or_zero(max_index) == term {
            self.commit_to(max_index);
            return true;
        }
        false
    }

    pub fn applied_to(&mut self, index: u64) {
        if index == 0 || index <= self.applied {
            return;
        }
        assert!(
            index <= self.committed,
            "applied {index} beyond committed {}",
            self.committed
        );
        self.applied = index;
        self.applying = self.applying.max(index);
    }

    /// Entries in `[lo, hi)` within `max_bytes` (at least one).
    pub fn slice(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        if lo < self.first_index() {
            return Err(StorageError::Compacted);
        }
        if hi > self.last_index() + 1 {
            return Err(StorageError::Unavailable);
        }
        let off = self.unstable.offset;
        let mut out = Vec::new();
        if lo < off {
            out = self.storage.entries(lo, hi.min(off), max_bytes)?;
            let got = out.len() as u64;
            if got < hi.min(off) - lo {
                return Ok(out); // size limit reached inside storage
            }
        }
        if hi > off {
            let u = self.unstable.slice(lo.max(off), hi);
            if out.is_empty() {
                return Ok(limit_size(u, max_bytes));
            }
            out.extend_from_slice(u);
            return Ok(limit_size(&out, max_bytes));
        }
        Ok(out)
    }

    /// Entries from `index` on, within `max_bytes`.
    pub fn entries_from(&self, index: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        self.slice(index, self.last_index() + 1, max_bytes)
    }

    /// The highest index that may be handed out for applying: committed and durable, and not
    /// while a snapshot is pending.
    fn max_appliable(&self) -> Option<u64> {
        if self.unstable.snapshot.is_some() {
            return None;
        }
        Some(self.committed.min(self.persisted_index()))
    }

    pub fn has_next_committed_entries(&self) -> bool {
        self.max_appliable().is_some_and(|hi| hi > self.applying)
    }

    /// Committed entries not yet handed out for applying, within `max_apply_bytes`.
    pub fn next_committed_entries(&self) -> Result<Vec<Entry>, StorageError> {
        match self.max_appliable() {
            Some(hi) if hi > self.applying => {
                let lo = (self.applying + 1).max(self.first_index());
                self.slice(lo, hi + 1, self.max_apply_bytes)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The snapshot to send a follower that needs compacted entries.
    pub fn snapshot(&self, request_index: u64) -> Result<Snapshot, StorageError> {
        if let Some(s) = &self.unstable.snapshot {
            return Ok(s.clone());
        }
        self.storage.snapshot(request_index)
    }

    /// Replaces the log with `snapshot` (installed from the leader).
    pub fn restore(&mut self, snapshot: Snapshot) {
        assert!(
            snapshot.metadata.index >= self.committed,
            "snapshot {} below commit {}",
            snapshot.metadata.index,
            self.committed
        );
        self.committed = snapshot.metadata.index;
        self.unstable.restore(snapshot);
    }

    pub fn stable_to(&mut self, index: u64, term: u64) {
        self.unstable.stable_to(index, term);
    }

    pub fn stable_snap_to(&mut self, index: u64) {
        self.unstable.stable_snap_to(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Entry::default()
        }
    }

    fn log_with(terms: &[u64]) -> RaftLog<MemStorage> {
        let mut s = MemStorage::new();
        let ents: Vec<Entry> = terms
            .iter()
            .enumerate()
            .map(|(i, t)| ent(i as u64 + 1, *t))
            .collect();
        s.append(&ents).unwrap();
        RaftLog::new(s, 0).unwrap()
    }

    #[test]
    fn find_conflict_by_term_skips_whole_terms() {
        let log = log_with(&[1, 1, 2, 2, 2, 5, 5]);
        assert_eq!(log.find_conflict_by_term(7, 4), (5, 2));
        assert_eq!(log.find_conflict_by_term(7, 5), (7, 5));
        assert_eq!(log.find_conflict_by_term(4, 1), (2, 1));
        assert_eq!(log.find_conflict_by_term(9, 0), (0, 0));
    }

    #[test]
    fn maybe_append_truncates_uncommitted_but_refuses_committed() {
        let mut log = log_with(&[1, 1, 2]);
        log.commit_to(1);
        assert_eq!(log.maybe_append(1, 1, 1, vec![ent(2, 3)]), Ok(Some(2)));
        assert_eq!(log.last_index(), 2);
        assert_eq!(log.term(2), Ok(3));
        assert_eq!(log.maybe_append(2, 9, 1, vec![ent(3, 3)]), Ok(None));
        log.commit_to(2);
        assert!(log.maybe_append(0, 0, 2, vec![ent(1, 4)]).is_err());
        assert_eq!(log.committed, 2);
    }

    #[test]
    fn slice_spans_storage_and_unstable() {
        let mut log = log_with(&[1, 1]);
        log.append(vec![ent(3, 2), ent(4, 2)]);
        assert_eq!(log.slice(2, 5, u64::MAX).unwrap().len(), 3);
        assert_eq!(log.slice(1, 5, 24 * 2).unwrap().len(), 2);
        assert_eq!(log.persisted_index(), 2);
        log.commit_to(4);
        // only the durable part may be applied
        assert_eq!(log.next_committed_entries().unwrap().len(), 2);
    }

    #[test]
    fn commit_only_in_own_term() {
        let mut log = log_with(&[1, 2]);
        assert!(!log.maybe_commit(2, 3));
        assert!(log.maybe_commit(2, 2));
        assert!(!log.maybe_commit(1, 1)); // never decreases
        assert_eq!(log.committed, 2);
    }
}
