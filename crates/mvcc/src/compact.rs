//! Incremental physical compaction.
//!
//! A compaction request only moves the logical compaction revision `C` (reads below it fail at
//! once). The physical work walks the `rev` table from a persisted cursor up to `C`, a bounded
//! number of entries per step, and for each entry `(key, r)`:
//! * removes every older revision of `key` (they are superseded by `r <= C`);
//! * removes `r` itself when it is a tombstone below `C`.
//!
//! Invariant: after the walk reaches `C`, for every key the only revisions `<= C` left are its
//! newest one, unless that one is a tombstone below `C`. Revision `C` itself is walked again by
//! the next compaction (the cursor restarts at `(C, 0)`), so a tombstone kept at exactly `C`
//! is removed later. Reads never depend on the physical progress: every reader resolves the
//! newest revision `<= rev` with `rev >= C`, which the walk never removes.

use crate::error::MvccError;
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
    let mut cursor = (
        meta_get(&w.meta, META_CURSOR_MAIN)?.unwrap_or(0),
        meta_get(&w.meta, META_CURSOR_SUB)?.unwrap_or(0),
    );
    let mut processed = 0usize;
    let mut finished = true;
    loop {
        // Re-seek every entry: the step mutates the tables it walks.
        let next = {
            let mut it = w.rev.range(cursor..)?;
            match it.next() {
                Some(item) => {
                    let (k, v) = item?;
                    Some((k.value(), v.value().to_vec()))
                }
                None => None,
            }
        };
        let Some(((main, sub), key)) = next else {
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
        compact_entry(w, &key, main, sub, target)?;
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

fn compact_entry(
    w: &mut Writer<'_>,
    key: &[u8],
    main: u64,
    sub: u64,
    target: u64,
) -> Result<(), MvccError> {
    debug_assert!(main <= target);
    let older: Vec<(u64, u64)> = {
        let mut out = Vec::new();
        for item in w.kv.range((key, 0u64, 0u64)..(key, main, sub))? {
            let (k, _) = item?;
            let (_, m, s) = k.value();
            out.push((m, s));
        }
        out
    };
    for (m, s) in older {
        w.kv.remove((key, m, s))?;
        w.rev.remove((m, s))?;
    }
    let tomb = match w.kv.get((key, main, sub))? {
        Some(v) => Record::is_tombstone(v.value()),
        None => false,
    };
    if tomb && main < target {
        w.kv.remove((key, main, sub))?;
        w.rev.remove((main, sub))?;
    }
    Ok(())
}
