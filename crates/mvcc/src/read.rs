//! Range reads over the `kv` table, shared by read transactions and the write path.
//!
//! Reads iterate the engine: memory is proportional to the keys returned, never to the range.

use crate::count_cache::{CountCache, Sampler};
use crate::error::MvccError;
use crate::schema::{rev_i64, RangeEnd, Record};
use crate::types::{KeyValue, RangeRequest, RangeResponse, SortOrder, SortTarget};
use redb::ReadableTable;
use std::cmp::Ordering;
use std::sync::{Mutex, MutexGuard, PoisonError};

fn lock(m: &Mutex<CountCache>) -> MutexGuard<'_, CountCache> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The `kv` table as seen by readers (read-only or write transaction).
pub(crate) trait KvTable: ReadableTable<(&'static [u8], u64, u64), &'static [u8]> {}
impl<T: ReadableTable<(&'static [u8], u64, u64), &'static [u8]>> KvTable for T {}

/// What a scan visitor answers.
pub(crate) enum Visit {
    /// Keep going.
    Continue,
    /// Stop the scan.
    Stop,
}

/// Visits every key live at `rev` in `[key, end)` in key order with its mod revision and,
/// when `want_record()` says so, its stored record bytes.
pub(crate) fn scan<T: KvTable>(
    kv: &T,
    key: &[u8],
    end: &RangeEnd<'_>,
    rev: u64,
    mut want_record: impl FnMut() -> bool,
    mut visit: impl FnMut(&[u8], u64, Option<&[u8]>) -> Result<Visit, MvccError>,
) -> Result<(), MvccError> {
    let iter = match end {
        RangeEnd::Single => kv.range((key, 0u64, 0u64)..=(key, u64::MAX, u64::MAX))?,
        RangeEnd::Unbounded => kv.range((key, 0u64, 0u64)..)?,
        RangeEnd::Before(e) => {
            if *e <= key {
                return Ok(());
            }
            kv.range((key, 0u64, 0u64)..(*e, 0u64, 0u64))?
        }
    };
    // The current key group and the newest revision <= rev seen in it so far. Buffers are
    // reused across groups: no allocation per key unless a record is wanted.
    let mut group: Vec<u8> = Vec::new();
    let mut in_group = false;
    let mut best: Option<(u64, bool)> = None;
    let mut rec: Vec<u8> = Vec::new();
    let mut has_rec = false;
    macro_rules! flush {
        () => {
            if let Some((main, false)) = best.take() {
                let r = if has_rec { Some(rec.as_slice()) } else { None };
                if let Visit::Stop = visit(&group, main, r)? {
                    return Ok(());
                }
            }
        };
    }
    for item in iter {
        let (k, v) = item?;
        let (ukey, main, _sub) = k.value();
        if !in_group || group.as_slice() != ukey {
            if in_group {
                flush!();
            }
            best = None;
            group.clear();
            group.extend_from_slice(ukey);
            in_group = true;
        }
        if main <= rev {
            let bytes = v.value();
            let tomb = Record::is_tombstone(bytes);
            has_rec = !tomb && want_record();
            if has_rec {
                rec.clear();
                rec.extend_from_slice(bytes);
            }
            best = Some((main, tomb));
        }
    }
    if in_group {
        flush!();
    }
    Ok(())
}

/// The newest revision of `key` (live or tombstone) with main revision <= `rev`.
pub(crate) fn latest<T: KvTable>(
    kv: &T,
    key: &[u8],
    rev: u64,
) -> Result<Option<(u64, u64, Record)>, MvccError> {
    let mut iter = kv.range((key, 0u64, 0u64)..=(key, rev, u64::MAX))?;
    match iter.next_back() {
        None => Ok(None),
        Some(item) => {
            let (k, v) = item?;
            let (_, main, sub) = k.value();
            Ok(Some((main, sub, Record::decode(v.value(), false)?)))
        }
    }
}

/// The live key-value of `key` at `rev`, if any.
pub(crate) fn get<T: KvTable>(kv: &T, key: &[u8], rev: u64) -> Result<Option<KeyValue>, MvccError> {
    Ok(latest(kv, key, rev)?.and_then(|(main, _, rec)| rec.into_kv(key, main)))
}

/// Serves a range request at the already validated revision `rev`, as etcd's apply `Range`.
/// `header` is the store revision reported in the response (etcd reports the current
/// revision, not the one read at).
pub(crate) fn range<T: KvTable>(
    kv: &T,
    req: &RangeRequest,
    rev: u64,
    header: u64,
    cache: Option<&Mutex<CountCache>>,
) -> Result<RangeResponse, MvccError> {
    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    // etcd fetches everything when it has to sort or filter, else limit + 1 to detect `more`.
    let fetch_limit = if req.sort_order != SortOrder::None || filtered || req.limit <= 0 {
        usize::MAX
    } else {
        usize::try_from(req.limit)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
    };
    // Values are needed to sort by value even when they are not returned.
    let skip_values = req.keys_only && req.sort_target != SortTarget::Value;
    let end = RangeEnd::from_request(&req.range_end);
    let mut kvs: Vec<KeyValue> = Vec::new();
    let mut count: i64 = 0;
    let collect = !req.count_only;
    let collected = std::cell::Cell::new(0usize);
    let plan = match cache {
        Some(c) if !req.range_end.is_empty() && (fetch_limit != usize::MAX || !collect) => {
            lock(c).plan(&req.key, &req.range_end, rev)
        }
        _ => None,
    };
    if let Some(plan) = plan {
        // Pages of a cached range: fetch only what is returned, count up to the next sample.
        if collect {
            scan(
                kv,
                &req.key,
                &end,
                rev,
                || true,
                |k, main, rec| {
                    if let Some(bytes) = rec {
                        if let Some(kv) = Record::decode(bytes, skip_values)?.into_kv(k, main) {
                            kvs.push(kv);
                        }
                    }
                    Ok(if kvs.len() >= fetch_limit {
                        Visit::Stop
                    } else {
                        Visit::Continue
                    })
                },
            )?;
        }
        let stop_end = match &plan.stop {
            Some(stop) => RangeEnd::Before(stop.as_slice()),
            None => end.clone(),
        };
        scan(
            kv,
            &req.key,
            &stop_end,
            rev,
            || false,
            |_, _, _| {
                count += 1;
                Ok(Visit::Continue)
            },
        )?;
        count += i64::try_from(plan.add).unwrap_or(i64::MAX);
    } else {
        let mut sampler = Sampler::default();
        let sampling = cache.is_some() && !req.range_end.is_empty();
        scan(
            kv,
            &req.key,
            &end,
            rev,
            || collect && collected.get() < fetch_limit,
            |k, main, rec| {
                count += 1;
                if sampling {
                    sampler.observe(k);
                }
                if let Some(bytes) = rec {
                    if let Some(kv) = Record::decode(bytes, skip_values)?.into_kv(k, main) {
                        kvs.push(kv);
                        collected.set(kvs.len());
                    }
                }
                Ok(Visit::Continue)
            },
        )?;
        if let (true, Some(c)) = (sampling, cache) {
            let total = u64::try_from(count).unwrap_or(0);
            lock(c).insert(&req.key, &req.range_end, rev, total, sampler);
        }
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
