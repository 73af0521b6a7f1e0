//! Rank samples that make `count` cheap for paginated ranges.
//!
//! A paginated list (Kubernetes, `etcdctl get --prefix --limit`) asks for `[s_i, end)` at one
//! fixed revision `R` with a moving start `s_i`, and every page must report the count of the
//! rest of the range. History at a revision never changes, so the first full walk over
//! `[start, end)` at `R` records every `SAMPLE_EVERY`-th live key with its rank; a later page
//! starting at `s >= start` counts by walking only from `s` to the next sample
//! (`< SAMPLE_EVERY` keys) and adding the sampled remainder.

use std::collections::VecDeque;

/// One sample per this many live keys (memory: `n / SAMPLE_EVERY` keys per cached range).
pub(crate) const SAMPLE_EVERY: u64 = 1024;
/// Ranges smaller than this are not cached (walking them is cheap).
pub(crate) const MIN_CACHED_COUNT: u64 = 4 * SAMPLE_EVERY;
/// Cached ranges kept (least recently inserted evicted first).
pub(crate) const MAX_ENTRIES: usize = 32;

#[derive(Debug)]
struct Entry {
    start: Vec<u8>,
    end: Vec<u8>,
    rev: u64,
    total: u64,
    /// `(key, rank)`: `rank` live keys of `[start, end)` sort before `key`. Ascending.
    samples: Vec<(Vec<u8>, u64)>,
}

/// Builds the samples of one full walk.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    seen: u64,
    samples: Vec<(Vec<u8>, u64)>,
}

impl Sampler {
    /// Called for every live key in order.
    pub(crate) fn observe(&mut self, key: &[u8]) {
        if self.seen > 0 && self.seen.is_multiple_of(SAMPLE_EVERY) {
            self.samples.push((key.to_vec(), self.seen));
        }
        self.seen += 1;
    }
}

/// How to count `[s, end)` at `rev` from a cached walk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Walk live keys in `[s, stop)` (`None`: to the range end)...
    pub stop: Option<Vec<u8>>,
    /// ...and add this.
    pub add: u64,
}

/// The cache.
#[derive(Debug, Default)]
pub(crate) struct CountCache {
    entries: VecDeque<Entry>,
}

impl CountCache {
    /// A plan for counting `[s, end)` at `rev`, if a covering walk is cached. `end` is the raw
    /// request `range_end` (non-empty).
    pub(crate) fn plan(&self, s: &[u8], end: &[u8], rev: u64) -> Option<Plan> {
        let e = self
            .entries
            .iter()
            .find(|e| e.rev == rev && e.end == end && e.start.as_slice() <= s)?;
        let i = e.samples.partition_point(|(k, _)| k.as_slice() < s);
        Some(match e.samples.get(i) {
            Some((k, rank)) => {
                debug_assert!(*rank <= e.total);
                Plan {
                    stop: Some(k.clone()),
                    add: e.total - rank,
                }
            }
            None => Plan { stop: None, add: 0 },
        })
    }

    /// Records a full walk of `[start, end)` at `rev` that counted `total` live keys.
    pub(crate) fn insert(&mut self, start: &[u8], end: &[u8], rev: u64, total: u64, s: Sampler) {
        debug_assert_eq!(s.seen, total);
        if total < MIN_CACHED_COUNT {
            return;
        }
        self.entries
            .retain(|e| !(e.rev == rev && e.end == end && e.start.as_slice() >= start));
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry {
            start: start.to_vec(),
            end: end.to_vec(),
            rev,
            total,
            samples: s.samples,
        });
    }

    /// Forgets everything (the history changed wholesale: snapshot import).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_use_the_next_sample() {
        let keys: Vec<Vec<u8>> = (0..5000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut s = Sampler::default();
        for k in &keys {
            s.observe(k);
        }
        let mut c = CountCache::default();
        c.insert(&keys[0], b"\xff", 9, 5000, s);
        assert_eq!(c.plan(&keys[0], b"\xff", 8), None, "other revision");
        let p = c.plan(&keys[10], b"\xff", 9).unwrap();
        assert_eq!(p.stop.as_deref(), Some(keys[1024].as_slice()));
        assert_eq!(p.add, 5000 - 1024);
        let p = c.plan(&keys[1024], b"\xff", 9).unwrap();
        assert_eq!(p.stop.as_deref(), Some(keys[1024].as_slice()));
        let p = c.plan(&keys[4999], b"\xff", 9).unwrap();
        assert_eq!(p, Plan { stop: None, add: 0 });
        let mut small = Sampler::default();
        small.observe(b"a");
        c.insert(b"a", b"b", 1, 1, small);
        assert_eq!(c.plan(b"a", b"b", 1), None, "small ranges are not cached");
    }
}
