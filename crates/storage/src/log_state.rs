//! The in-memory image of the durable log: the live entries, the compaction point, hard state
//! and configuration. Both the live write path and recovery's replay change it only through
//! these methods, so a replayed log is exactly the log that was written.
//!
//! Invariants (checked by [`LogState::check_invariants`]):
//! - entries are contiguous: `entries[i].index == entries[0].index + i`, terms non-decreasing;
//! - `entries[0].index == compacted_index + 1`, or, transiently during recovery,
//!   `hole + 1` (see `hole`);
//! - every change is validated by a `check_*` method before it is applied, and the `apply_*`
//!   methods cannot fail.

use crate::codec::MAX_INDEX;
use crate::record::StateRecord;
use quorum_raft::{ConfState, Entry, HardState, SnapshotMetadata, NO_NODE};
use std::collections::VecDeque;

#[derive(Clone, Debug, Default)]
pub(crate) struct LogState {
    pub hard_state: HardState,
    pub conf_state: ConfState,
    /// Index of the last discarded entry (the snapshot point); 0 for a log never compacted.
    pub compacted_index: u64,
    /// Term of the entry at `compacted_index`.
    pub compacted_term: u64,
    pub entries: VecDeque<Entry>,
    /// Recovery only: the segments before the first remaining one were deleted, so the entries
    /// `compacted_index + 1 ..= hole` are unknown until a later compaction (or snapshot) record
    /// discards them. Entries, if any, start at `hole + 1`.
    pub hole: Option<u64>,
}

impl LogState {
    pub fn from_state(s: &StateRecord) -> Self {
        LogState {
            hard_state: s.hard_state,
            conf_state: s.conf_state.clone(),
            compacted_index: s.compacted_index,
            compacted_term: s.compacted_term,
            entries: VecDeque::new(),
            hole: None,
        }
    }

    pub fn state_record(&self) -> StateRecord {
        debug_assert!(self.hole.is_none());
        StateRecord {
            hard_state: self.hard_state,
            compacted_index: self.compacted_index,
            compacted_term: self.compacted_term,
            conf_state: self.conf_state.clone(),
        }
    }

    pub fn first_index(&self) -> u64 {
        self.compacted_index + 1
    }

    pub fn last_index(&self) -> u64 {
        self.entries
            .back()
            .map_or(self.hole.unwrap_or(self.compacted_index), |e| e.index)
    }

    /// Term of the entry at `index`, if it is the compaction point or a live entry.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.compacted_index {
            return Some(self.compacted_term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub fn entry(&self, index: u64) -> Option<&Entry> {
        let front = self.entries.front()?.index;
        let offset = index.checked_sub(front)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Validates an append; returns how many leading entries are already compacted and must
    /// be skipped.
    pub fn check_append(&self, entries: &[Entry]) -> Result<usize, String> {
        if let Some(e) = entries.iter().find(|e| e.index > MAX_INDEX) {
            return Err(format!("index {} out of range", e.index));
        }
        for pair in entries.windows(2) {
            if pair[0].index.checked_add(1) != Some(pair[1].index) {
                return Err(format!(
                    "entries not contiguous: {} then {}",
                    pair[0].index, pair[1].index
                ));
            }
            if pair[1].term < pair[0].term {
                return Err(format!(
                    "term goes down from {} to {} at index {}",
                    pair[0].term, pair[1].term, pair[1].index
                ));
            }
        }
        let skip = entries
            .iter()
            .take_while(|e| e.index <= self.compacted_index)
            .count();
        let Some(first) = entries.get(skip) else {
            return Ok(skip);
        };
        let f = first.index;
        if f <= self.hard_state.commit {
            return Err(format!(
                "append at index {f} would overwrite committed entries (commit {})",
                self.hard_state.commit
            ));
        }
        let hole_restart = self.hole.is_some_and(|h| f <= h + 1);
        if !hole_restart {
            let last = self.last_index();
            if f > last + 1 {
                return Err(format!("gap: append at index {f} after last index {last}"));
            }
            if let Some(prev) = self.term(f - 1) {
                if first.term < prev {
                    return Err(format!(
                        "entry {f} has term {} below the previous entry's term {prev}",
                        first.term
                    ));
                }
            }
        }
        Ok(skip)
    }

    /// Applies an append validated by [`LogState::check_append`], `skip` as it returned.
    pub fn apply_append(&mut self, entries: &[Entry], skip: usize) {
        let entries = &entries[skip..];
        let Some(first) = entries.first() else {
            return;
        };
        if self.hole.is_some_and(|h| first.index <= h + 1) {
            self.entries.clear();
            self.hole = (first.index - 1 > self.compacted_index).then_some(first.index - 1);
        }
        let keep = match self.entries.front() {
            Some(front) if first.index > front.index => (first.index - front.index) as usize,
            _ => 0,
        };
        self.entries.truncate(keep);
        self.entries.extend(entries.iter().cloned());
        self.check_invariants();
    }

    pub fn check_hard_state(&self, hs: &HardState) -> Result<(), String> {
        let old = &self.hard_state;
        if hs.term < old.term {
            return Err(format!("term goes down from {} to {}", old.term, hs.term));
        }
        if hs.term == old.term && old.vote != NO_NODE && hs.vote != old.vote {
            return Err(format!(
                "vote changes from {} to {} within term {}",
                old.vote, hs.vote, hs.term
            ));
        }
        if hs.commit < old.commit {
            return Err(format!(
                "commit goes down from {} to {}",
                old.commit, hs.commit
            ));
        }
        Ok(())
    }

    /// Validates that the hard state's commit index is within the log (after an append).
    pub fn check_commit_in_log(&self, commit: u64, last_index: u64) -> Result<(), String> {
        if commit > last_index {
            return Err(format!(
                "commit index {commit} is beyond the last log index {last_index}"
            ));
        }
        Ok(())
    }

    /// Returns the term of the compaction point, or `None` when there is nothing to do.
    pub fn check_compact(&self, index: u64) -> Result<Option<u64>, String> {
        debug_assert!(self.hole.is_none());
        if index <= self.compacted_index {
            return Ok(None);
        }
        if index > self.last_index() {
            return Err(format!(
                "compaction to {index} beyond the last index {}",
                self.last_index()
            ));
        }
        if index > self.hard_state.commit {
            return Err(format!(
                "compaction to {index} beyond the commit index {}",
                self.hard_state.commit
            ));
        }
        match self.term(index) {
            Some(term) => Ok(Some(term)),
            None => Err(format!("no entry at compaction index {index}")),
        }
    }

    /// Discards entries up to `index`, whose term is `term`. Recovery also uses it to re-anchor
    /// a log whose earlier segments were deleted (`hole`).
    pub fn apply_compact(&mut self, index: u64, term: u64) {
        while self.entries.front().is_some_and(|e| e.index <= index) {
            self.entries.pop_front();
        }
        self.compacted_index = index;
        self.compacted_term = term;
        self.hole = None;
        self.check_invariants();
    }

    pub fn check_snapshot(&self, meta: &SnapshotMetadata) -> Result<(), String> {
        if meta.index > MAX_INDEX {
            return Err(format!("snapshot index {} out of range", meta.index));
        }
        if meta.index <= self.compacted_index {
            return Err(format!(
                "snapshot at {} is not newer than the compaction point {}",
                meta.index, self.compacted_index
            ));
        }
        if meta.index < self.hard_state.commit {
            return Err(format!(
                "snapshot at {} is older than the commit index {}",
                meta.index, self.hard_state.commit
            ));
        }
        Ok(())
    }

    /// Replaces the whole log by the snapshot point, as a follower installing a snapshot does;
    /// the commit index moves to the snapshot and the term up to the snapshot's term.
    pub fn apply_snapshot(&mut self, meta: &SnapshotMetadata) {
        self.entries.clear();
        self.compacted_index = meta.index;
        self.compacted_term = meta.term;
        self.conf_state = meta.conf_state.clone();
        self.hard_state.commit = meta.index;
        if meta.term > self.hard_state.term {
            self.hard_state.term = meta.term;
            self.hard_state.vote = NO_NODE;
        }
        self.hole = None;
        self.check_invariants();
    }

    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    fn check_invariants(&self) {
        if let Some(front) = self.entries.front() {
            debug_assert_eq!(front.index, self.hole.unwrap_or(self.compacted_index) + 1);
            debug_assert!(front.index > self.compacted_index);
        }
        debug_assert!(self
            .entries
            .iter()
            .zip(self.entries.iter().skip(1))
            .all(|(a, b)| a.index + 1 == b.index && a.term <= b.term));
    }
}
