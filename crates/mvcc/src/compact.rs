//! Incremental physical compaction.
//!
//! A compaction request only moves the logical compaction revision `C` (reads below it fail at
//! once). The physical work walks the `history` table from a persisted cursor up to `C`, a
//! bounded number of entries per step, and for each entry `(key, r)`:
//! * removes every older revision of `key` (they are superseded by `r <= C`);
//! * removes `r` itself when it is a tombstone below `C`;
//!
//! from the key index and the `history` table together. Before removing anything for `C` it
//! raises the index's floor to `C`, so a reader whose engine snapshot predates the compaction
//! fails with `compacted` instead of missing revisions.
//!
//! Invariant: after the walk reaches `C`, for every key the only revisions `<= C` left are its
//! newest one, unless that one is a tombstone below `C`. Revision `C` itself is walked again by
//! the next compaction (the cursor restarts at `(C, 0)`), so a tombstone kept at exactly `C`
//! is removed later. Reads never depend on the physical progress: every reader resolves the
//! newest revision `<= rev` with `rev >= C`, which the walk never removes.

use crate::error::MvccError;
use crate::read::write_index;
use crate::schema::*;
use crate::write::{meta_get, Writer};
use redb::ReadableTable;

/// Runs at most `max_entries` compaction steps. Returns true when the compaction is complete.
pub(crate) fn step(w: &mut Writer<'_>, max_entries: usize) -> Result<bool, MvccError> {
    let target = w.compact;
    let done = meta_get(&w.meta, META_COMPACT_DONE)?.unwrap_or(0);
    if done >= target {
        return Ok(true);
    }
    write_index(w.index).raise_floor(target);
    let mut cursor = (
        meta_get(&w.meta, META_CURSOR_MAIN)?.unwrap_or(0),
        meta_get(&w.meta, META_CURSOR_SUB)?.unwrap_or(0),
    );
    let mut processed = 0usize;
    let mut finished = true;
    loop {
        // Re-seek every entry: the step mutates the table it walks.
        let next = {
            let mut it = w.history.range(cursor..)?;
            match it.next() {
                Some(item) => {
                    let (k, v) = item?;
                    let (key, rec) = split_history(v.value())?;
                    Some((k.value(), key.to_vec(), Record::is_tombstone(rec)))
                }
                None => None,
            }
        };
        let Some(((main, sub), key, tomb)) = next else {
            break;
        };
        if main > target {
            break;
        }
        if processed >= max_entries {
            finished = false;
            break;
        }
        processed += 1;
        let removed = write_index(w.index).prune(&key, main, sub, tomb && main < target);
        for r in removed {
            w.history.remove(r.pos())?;
        }
        cursor = if sub == u64::MAX {
            (main + 1, 0)
        } else {
            (main, sub + 1)
        };
    }
    if finished {
        w.meta.insert(META_COMPACT_DONE, target)?;
        w.meta.insert(META_CURSOR_MAIN, target)?;
        w.meta.insert(META_CURSOR_SUB, 0)?;
    } else {
        w.meta.insert(META_CURSOR_MAIN, cursor.0)?;
        w.meta.insert(META_CURSOR_SUB, cursor.1)?;
    }
    Ok(finished)
}
