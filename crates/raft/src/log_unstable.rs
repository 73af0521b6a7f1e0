//! The part of the log not yet handed to (or acknowledged by) stable storage.

use crate::types::{Entry, Snapshot};

/// Entries and a snapshot that the embedder has not yet made durable. `entries[i]` has index
/// `offset + i`. Entries before `offset_in_progress` have been handed out in a `Ready` but not
/// yet acknowledged by `advance`.
#[derive(Debug, Default)]
pub(crate) struct Unstable {
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub offset: u64,
    pub offset_in_progress: u64,
    pub snapshot_in_progress: bool,
}

impl Unstable {
    pub fn new(offset: u64) -> Unstable {
        Unstable {
            offset,
            offset_in_progress: offset,
            ..Unstable::default()
        }
    }

    /// First index, if there is an unstable snapshot.
    pub fn maybe_first_index(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| s.metadata.index + 1)
    }

    /// Last index, if there are unstable entries or an unstable snapshot.
    pub fn maybe_last_index(&self) -> Option<u64> {
        match (self.entries.last(), &self.snapshot) {
            (Some(e), _) => Some(e.index),
            (None, Some(s)) => Some(s.metadata.index),
            (None, None) => None,
        }
    }

    /// Term of the entry at `index`, if this part of the log knows it.
    pub fn maybe_term(&self, index: u64) -> Option<u64> {
        if index < self.offset {
            let s = self.snapshot.as_ref()?;
            return (s.metadata.index == index).then_some(s.metadata.term);
        }
        self.entries
            .get((index - self.offset) as usize)
            .map(|e| e.term)
    }

    /// Entries handed out for persisting that are now durable up to (`index`, `term`).
    pub fn stable_to(&mut self, index: u64, term: u64) {
        // A mismatch means the entries were replaced meanwhile; the new ones are still unstable.
        if self.maybe_term(index) != Some(term) || index < self.offset {
            return;
        }
        let n = (index + 1 - self.offset) as usize;
        self.entries.drain(..n);
        self.offset = index + 1;
        self.offset_in_progress = self.offset_in_progress.max(self.offset);
        debug_assert!(self.offset_in_progress <= self.offset + self.entries.len() as u64);
    }

    /// The unstable snapshot at `index` is now durable.
    pub fn stable_snap_to(&mut self, index: u64) {
        if self
            .snapshot
            .as_ref()
            .is_some_and(|s| s.metadata.index == index)
        {
            self.snapshot = None;
            self.snapshot_in_progress = false;
        }
    }

    /// Replaces everything with `snapshot`.
    pub fn restore(&mut self, snapshot: Snapshot) {
        self.offset = snapshot.metadata.index + 1;
        self.offset_in_progress = self.offset;
        self.entries.clear();
        self.snapshot = Some(snapshot);
        self.snapshot_in_progress = false;
    }

    /// Appends `ents`, replacing any entries from `ents[0].index` on. The caller guarantees
    /// that `ents[0].index` is at most one past the last index.
    pub fn truncate_and_append(&mut self, ents: Vec<Entry>) {
        let Some(first) = ents.first() else {
            return;
        };
        let after = first.index;
        let end = self.offset + self.entries.len() as u64;
        if after == end {
            self.entries.extend(ents);
        } else if after <= self.offset {
            // Replaces everything unstable (and a stable suffix, which the embedder overwrites).
            self.offset = after;
            self.entries = ents;
        } else {
            assert!(after < end, "append at {after} leaves a gap after {end}");
            self.entries.truncate((after - self.offset) as usize);
            self.entries.extend(ents);
        }
        self.offset_in_progress = self.offset_in_progress.min(after).max(self.offset);
    }

    /// Entries in `[lo, hi)`, which must lie within the unstable entries.
    pub fn slice(&self, lo: u64, hi: u64) -> &[Entry] {
        assert!(
            self.offset <= lo && lo <= hi && hi <= self.offset + self.entries.len() as u64,
            "unstable slice [{lo},{hi}) out of [{}, {}]",
            self.offset,
            self.offset + self.entries.len() as u64
        );
        &self.entries[(lo - self.offset) as usize..(hi - self.offset) as usize]
    }

    /// Entries not yet handed out.
    pub fn next_entries(&self) -> &[Entry] {
        let start = (self.offset_in_progress - self.offset) as usize;
        self.entries.get(start..).unwrap_or(&[])
    }

    /// The snapshot, if not yet handed out.
    pub fn next_snapshot(&self) -> Option<&Snapshot> {
        if self.snapshot_in_progress {
            None
        } else {
            self.snapshot.as_ref()
        }
    }

    /// Marks everything unstable as handed out.
    pub fn accept_in_progress(&mut self) {
        self.offset_in_progress = self.offset + self.entries.len() as u64;
        self.snapshot_in_progress = self.snapshot.is_some();
    }
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
    fn truncate_resets_in_progress_and_stale_stable_is_ignored() {
        let mut u = Unstable::new(5);
        u.truncate_and_append(vec![ent(5, 1), ent(6, 1), ent(7, 1)]);
        u.accept_in_progress();
        assert!(u.next_entries().is_empty());
        u.truncate_and_append(vec![ent(6, 2)]);
        assert_eq!(u.next_entries(), &[ent(6, 2)]);
        u.stable_to(7, 1); // stale: entry 7 was replaced
        assert_eq!(u.offset, 5);
        u.stable_to(5, 1);
        assert_eq!(u.offset, 6);
        assert_eq!(u.entries, vec![ent(6, 2)]);
        u.truncate_and_append(vec![ent(3, 3)]);
        assert_eq!(u.offset, 3);
        assert_eq!(u.next_entries(), &[ent(3, 3)]);
    }
}
