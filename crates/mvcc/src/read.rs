//! Range reads: revisions are picked from the in-memory key index, records fetched from the
//! `history` table (a read transaction's snapshot, or the apply path's write transaction).
//!
//! The index lock is held only while picking revisions; records are read after it is released,
//! so applies never wait for a read's engine work.

use crate::error::MvccError;
use crate::index::{KeyEntry, KeyIndex, Rev};
use crate::schema::{rev_i64, split_history, RangeEnd, Record};
use crate::types::{KeyValue, RangeRequest, RangeResponse, SortOrder, SortTarget};
use redb::ReadableTable;
use std::cmp::Ordering;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Read access to the key index.
pub(crate) fn read_index(ix: &RwLock<KeyIndex>) -> RwLockReadGuard<'_, KeyIndex> {
    ix.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write access to the key index.
pub(crate) fn write_index(ix: &RwLock<KeyIndex>) -> RwLockWriteGuard<'_, KeyIndex> {
    ix.write().unwrap_or_else(PoisonError::into_inner)
}

/// The `history` table as seen by readers (read-only or write transaction).
pub(crate) trait HistoryTable: ReadableTable<(u64, u64), &'static [u8]> {}
impl<T: ReadableTable<(u64, u64), &'static [u8]>> HistoryTable for T {}

/// The record of `key` stored at `rev`; `keys_only` skips copying the value.
pub(crate) fn record<T: HistoryTable>(
    t: &T,
    key: &[u8],
    rev: Rev,
    keys_only: bool,
) -> Result<Record, MvccError> {
    let guard = t.get(rev.pos())?.ok_or_else(|| {
        MvccError::CorruptData(format!(
            "the key index points to a missing revision {:?}",
            rev.pos()
        ))
    })?;
    let (k, rec) = split_history(guard.value())?;
    if k != key {
        return Err(MvccError::CorruptData(format!(
            "revision {:?} holds another key than the key index says",
            rev.pos()
        )));
    }
    Record::decode(rec, keys_only)
}

/// The key-value of `key` at its live revision `rev`.
pub(crate) fn kv_at<T: HistoryTable>(
    t: &T,
    key: &[u8],
    rev: Rev,
    keys_only: bool,
) -> Result<KeyValue, MvccError> {
    record(t, key, rev, keys_only)?
        .into_kv(key, rev.main)
        .ok_or_else(|| MvccError::CorruptData(format!("revision {:?} is a tombstone", rev.pos())))
}

/// The key-value of a key's newest revision `rev` from the index alone, without its value.
pub(crate) fn meta_kv(key: &[u8], rev: Rev, e: &KeyEntry) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        create_revision: rev_i64(e.create),
        mod_revision: rev_i64(rev.main),
        version: e.version,
        value: Vec::new(),
        lease: e.lease,
    }
}

/// Keys picked from the index, with the revision of each to read.
pub(crate) type Picked = Vec<(Vec<u8>, Rev)>;

/// Live keys of the range at `rev` with the revision to read, at most `limit` of them, plus
/// the number of live keys in the whole range. Fails when compaction has pruned the index
/// past `rev` (a reader whose snapshot predates a compaction).
pub(crate) fn pick(
    index: &RwLock<KeyIndex>,
    key: &[u8],
    end: &RangeEnd<'_>,
    rev: u64,
    limit: usize,
) -> Result<(Picked, usize), MvccError> {
    let ix = read_index(index);
    if rev < ix.floor() {
        return Err(MvccError::Compacted);
    }
    let mut picked = Vec::new();
    let mut count = 0usize;
    ix.scan(key, end, rev, |k, r, _| {
        count += 1;
        if picked.len() < limit {
            picked.push((k.to_vec(), r));
        }
        true
    });
    Ok((picked, count))
}

/// Serves a range request at the already validated revision `rev`, as etcd's apply `Range`.
/// `header` is the store revision reported in the response (etcd reports the current
/// revision, not the one read at).
pub(crate) fn range<T: HistoryTable>(
    index: &RwLock<KeyIndex>,
    t: &T,
    req: &RangeRequest,
    rev: u64,
    header: u64,
) -> Result<RangeResponse, MvccError> {
    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    // etcd fetches everything when it has to sort or filter, else limit + 1 to detect `more`.
    let fetch_limit = if req.count_only {
        0
    } else if req.sort_order != SortOrder::None || filtered || req.limit <= 0 {
        usize::MAX
    } else {
        usize::try_from(req.limit)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
    };
    // Values are needed to sort by value even when they are not returned.
    let skip_values = req.keys_only && req.sort_target != SortTarget::Value;
    let end = RangeEnd::from_request(&req.range_end);
    let (picked, count) = pick(index, &req.key, &end, rev, fetch_limit)?;
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    let mut kvs = Vec::with_capacity(picked.len());
    for (k, r) in &picked {
        kvs.push(kv_at(t, k, *r, skip_values)?);
    }
    debug_assert!(kvs.len() as i64 <= count);
    if req.max_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision <= req.max_mod_revision);
    }
    if req.min_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision >= req.min_mod_revision);
    }
    if req.max_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision <= req.max_create_revision);
    }
    if req.min_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision >= req.min_create_revision);
    }
    let order = match (req.sort_target, req.sort_order) {
        (SortTarget::Key, SortOrder::Ascend) => SortOrder::None,
        (t, SortOrder::None) if t != SortTarget::Key => SortOrder::Ascend,
        (_, o) => o,
    };
    if order != SortOrder::None {
        sort_kvs(&mut kvs, req.sort_target, order == SortOrder::Descend);
    }
    let mut more = false;
    if req.limit > 0 {
        let limit = usize::try_from(req.limit).unwrap_or(usize::MAX);
        if kvs.len() > limit {
            kvs.truncate(limit);
            more = true;
        }
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value = Vec::new();
        }
    }
    Ok(RangeResponse {
        header_revision: rev_i64(header),
        kvs,
        more,
        count,
    })
}

/// Stable sort by `target`; ties keep key order (ascending) in both directions.
pub(crate) fn sort_kvs(kvs: &mut [KeyValue], target: SortTarget, descend: bool) {
    let cmp = |a: &KeyValue, b: &KeyValue| -> Ordering {
        match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        }
    };
    if descend {
        kvs.sort_by(|a, b| cmp(b, a));
    } else {
        kvs.sort_by(cmp);
    }
}
