//! The in-memory key index: for every key, the revisions of it still stored, oldest first.
//!
//! The records themselves live in the `history` table, keyed by revision, so a write appends
//! at the end of one B-tree instead of dirtying a leaf page at a random key position (etcd's
//! design: `treeIndex` over bbolt's `key` bucket). The index is rebuilt from the `history`
//! table when the store opens and after a snapshot import.
//!
//! Invariants (checked by [`KeyIndex::check`] in tests and debug builds):
//! * each key's revisions are strictly ascending and non-empty;
//! * `latest` describes the newest revision when it is live (`create_revision` of its
//!   generation, `version`, `lease`), and is zero for a tombstone;
//! * every revision in the index has a record in the `history` table of the same committed or
//!   pending engine state, and vice versa (the apply path changes both together).
//!
//! Readers take the lock only to collect revisions, never while reading the engine; the apply
//! path takes it per mutation, so reads never wait for a whole batch.

use crate::error::MvccError;
use crate::schema::RangeEnd;
use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::ops::Bound;

/// One stored revision of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rev {
    /// Main revision.
    pub main: u64,
    /// Sub-revision within the main revision (bounded by the writes of one request).
    pub sub: u32,
    /// Whether this revision deletes the key.
    pub tomb: bool,
}

impl Rev {
    /// `(main, sub)`, the `history` table key.
    pub(crate) fn pos(&self) -> (u64, u64) {
        (self.main, u64::from(self.sub))
    }
}

/// A key's stored revisions plus the metadata of its newest one, so that a put needs no
/// engine read to compute `create_revision`, `version` and the lease it replaces.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyEntry {
    /// Stored revisions, ascending.
    pub revs: SmallVec<[Rev; 1]>,
    /// Of the newest revision if live: the creation revision of its generation.
    pub create: u64,
    /// Of the newest revision if live: its version.
    pub version: i64,
    /// Of the newest revision if live: its lease.
    pub lease: i64,
}

impl KeyEntry {
    /// The newest revision `<= rev`, if any.
    pub(crate) fn at(&self, rev: u64) -> Option<Rev> {
        self.revs.iter().rev().find(|r| r.main <= rev).copied()
    }

    /// The newest revision strictly before `(main, sub)`.
    pub(crate) fn before(&self, main: u64, sub: u64) -> Option<Rev> {
        self.revs
            .iter()
            .rev()
            .find(|r| r.pos() < (main, sub))
            .copied()
    }

    /// The newest revision when it is live.
    pub(crate) fn live(&self) -> Option<Rev> {
        self.revs.last().filter(|r| !r.tomb).copied()
    }
}

/// The key index (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    keys: BTreeMap<Box<[u8]>, KeyEntry>,
    /// The highest compaction revision whose physical pruning has started: revisions older
    /// than a key's newest one `<= floor` may be gone, so reads below it must fail.
    floor: u64,
}

impl KeyIndex {
    /// The entry of `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&KeyEntry> {
        self.keys.get(key)
    }

    /// Number of keys with at least one stored revision.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// See [`KeyIndex::floor`].
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    /// Raises the pruning floor before compaction to `rev` removes anything.
    pub(crate) fn raise_floor(&mut self, rev: u64) {
        self.floor = self.floor.max(rev);
    }

    /// Records a new revision of `key`, which must be newer than every stored one.
    /// `live` = `(create, version, lease)` for a put, `None` for a tombstone.
    pub(crate) fn push(
        &mut self,
        key: &[u8],
        rev: Rev,
        live: Option<(u64, i64, i64)>,
    ) -> Result<(), MvccError> {
        let entry = match self.keys.get_mut(key) {
            Some(e) => e,
            None => self.keys.entry(key.into()).or_default(),
        };
        if let Some(last) = entry.revs.last() {
            if last.pos() >= rev.pos() {
                return Err(MvccError::CorruptData(format!(
                    "revision {:?} of a key is not newer than its last one {:?}",
                    rev.pos(),
                    last.pos()
                )));
            }
        }
        debug_assert_eq!(rev.tomb, live.is_none());
        entry.revs.push(rev);
        let (create, version, lease) = live.unwrap_or((0, 0, 0));
        entry.create = create;
        entry.version = version;
        entry.lease = lease;
        Ok(())
    }

    /// Removes the revisions of `key` older than `(main, sub)` and, if `drop_self`, that one
    /// too; returns what was removed. A key left without revisions leaves the index.
    pub(crate) fn prune(
        &mut self,
        key: &[u8],
        main: u64,
        sub: u64,
        drop_self: bool,
    ) -> SmallVec<[Rev; 4]> {
        let mut removed = SmallVec::new();
        let Some(entry) = self.keys.get_mut(key) else {
            return removed;
        };
        entry.revs.retain(|r| {
            let gone = r.pos() < (main, sub) || (drop_self && r.pos() == (main, sub));
            if gone {
                removed.push(*r);
            }
            !gone
        });
        // The newest revision is never pruned unless the key leaves the index (compaction keeps
        // each key's newest revision <= the floor), so `create`/`version`/`lease` stay valid.
        if entry.revs.is_empty() {
            self.keys.remove(key);
        }
        removed
    }

    /// Visits, in key order, every key in the range whose newest revision `<= rev` is live,
    /// until `visit` returns false.
    pub(crate) fn scan(
        &self,
        key: &[u8],
        end: &RangeEnd<'_>,
        rev: u64,
        mut visit: impl FnMut(&[u8], Rev, &KeyEntry) -> bool,
    ) {
        let mut each = |k: &[u8], e: &KeyEntry| -> bool {
            match e.at(rev) {
                Some(r) if !r.tomb => visit(k, r, e),
                _ => true,
            }
        };
        match end {
            RangeEnd::Single => {
                if let Some(e) = self.keys.get(key) {
                    each(key, e);
                }
            }
            RangeEnd::Unbounded => {
                for (k, e) in self
                    .keys
                    .range::<[u8], _>((Bound::Included(key), Bound::Unbounded))
                {
                    if !each(k, e) {
                        return;
                    }
                }
            }
            RangeEnd::Before(stop) => {
                if *stop <= key {
                    return;
                }
                for (k, e) in self
                    .keys
                    .range::<[u8], _>((Bound::Included(key), Bound::Excluded(*stop)))
                {
                    if !each(k, e) {
                        return;
                    }
                }
            }
        }
    }

    /// Every key with its entry, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &KeyEntry)> {
        self.keys.iter().map(|(k, e)| (&**k, e))
    }

    /// Every key with its entry from `start` (inclusive), in key order.
    pub(crate) fn iter_from<'a>(
        &'a self,
        start: &[u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a KeyEntry)> {
        self.keys
            .range::<[u8], _>((Bound::Included(start), Bound::Unbounded))
            .map(|(k, e)| (&**k, e))
    }

    /// Forgets everything (before a rebuild).
    pub(crate) fn clear(&mut self) {
        self.keys.clear();
        self.floor = 0;
    }

    /// Checks the structural invariants (tests, debug builds).
    #[cfg(test)]
    pub(crate) fn check(&self) -> Result<(), String> {
        for (k, e) in &self.keys {
            if e.revs.is_empty() {
                return Err(format!("key {k:?} without revisions"));
            }
            if e.revs.windows(2).any(|w| w[0].pos() >= w[1].pos()) {
                return Err(format!("key {k:?}: revisions not ascending"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(main: u64) -> Rev {
        Rev {
            main,
            sub: 0,
            tomb: false,
        }
    }

    #[test]
    fn push_at_scan_prune() {
        let mut ix = KeyIndex::default();
        ix.push(b"a", put(2), Some((2, 1, 0))).unwrap();
        ix.push(b"b", put(3), Some((3, 1, 0))).unwrap();
        ix.push(b"a", put(4), Some((2, 2, 0))).unwrap();
        let tomb = Rev {
            main: 5,
            sub: 0,
            tomb: true,
        };
        ix.push(b"b", tomb, None).unwrap();
        assert!(ix.push(b"a", put(4), Some((2, 3, 0))).is_err(), "not newer");
        ix.check().unwrap();
        assert_eq!(ix.get(b"a").unwrap().at(3), Some(put(2)));
        assert_eq!(ix.get(b"a").unwrap().version, 2);
        assert_eq!(ix.get(b"b").unwrap().live(), None);
        let mut seen = Vec::new();
        ix.scan(b"a", &RangeEnd::Unbounded, 4, |k, r, _| {
            seen.push((k.to_vec(), r.main));
            true
        });
        assert_eq!(seen, vec![(b"a".to_vec(), 4), (b"b".to_vec(), 3)]);
        seen.clear();
        ix.scan(b"a", &RangeEnd::Before(b"c"), 5, |k, r, _| {
            seen.push((k.to_vec(), r.main));
            true
        });
        assert_eq!(seen, vec![(b"a".to_vec(), 4)], "b deleted at 5");
        let removed = ix.prune(b"a", 4, 0, false);
        assert_eq!(removed.as_slice(), &[put(2)]);
        let removed = ix.prune(b"b", 5, 0, true);
        assert_eq!(removed.len(), 2);
        assert!(ix.get(b"b").is_none(), "a key without revisions leaves");
        assert_eq!(ix.len(), 1);
        ix.check().unwrap();
    }
}
