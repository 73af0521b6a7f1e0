//! etcd's watch guarantees, checked on one watcher over every key of a member's MVCC store.
//!
//! In this store every write that changes something creates exactly one revision, and nothing
//! is compacted during a run, so a watcher on the whole key space created at revision `r` must
//! deliver revisions `r+1, r+2, ...` with no hole:
//!
//! - **ordered**: revisions never go down;
//! - **unique**: no (revision, key) twice;
//! - **atomic**: all events of one revision arrive in one response;
//! - **reliable**: no revision is skipped, and at the end (after catch-up) the last delivered
//!   revision is the store's current one;
//! - **resumable**: after a crash the watch is re-created from the next revision and the stream
//!   continues as if nothing happened;
//! - **matches the applied history**: each event is what the store holds for that key at that
//!   revision;
//! - **progress notifications** (responses without events) never claim a revision ahead of
//!   the store, and never behind what was delivered.

use std::collections::HashSet;

use quorum_mvcc::{EventType, RangeRequest, Store, WatchResponse};
use quorum_raft::NodeId;

/// Channel capacity of the checked watcher (a full channel makes the store's watcher unsynced,
/// which the catch-up path must repair).
pub const WATCH_BUFFER: usize = 64;
/// Events kept for the final comparison against the store (beyond that, only order and
/// continuity are checked).
pub const MAX_KEPT_EVENTS: usize = 100_000;

/// One delivered event, as kept for the final check.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    revision: i64,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

/// Checks one watch stream (see the module docs).
#[derive(Debug)]
pub struct WatchChecker {
    member: NodeId,
    /// Last revision delivered (the creation revision before any event).
    last: i64,
    /// Keys delivered at `last` (uniqueness within a revision).
    keys_at_last: HashSet<Vec<u8>>,
    kept: Vec<Seen>,
    events: u64,
    responses: u64,
    /// Re-creations after crashes.
    resumes: u64,
    /// Progress notifications received.
    progress_notifications: u64,
}

impl WatchChecker {
    /// A checker for a watcher created when the store was at revision `created_at`.
    pub fn new(member: NodeId, created_at: i64) -> Self {
        WatchChecker {
            member,
            last: created_at,
            keys_at_last: HashSet::new(),
            kept: Vec::new(),
            events: 0,
            responses: 0,
            resumes: 0,
            progress_notifications: 0,
        }
    }

    /// The revision a re-created watcher must start from.
    pub fn next_revision(&self) -> i64 {
        self.last + 1
    }

    /// The watcher was re-created (after a crash) from [`WatchChecker::next_revision`].
    pub fn resumed(&mut self) {
        self.resumes += 1;
    }

    /// Events delivered so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Progress notifications received so far.
    pub fn progress_notifications(&self) -> u64 {
        self.progress_notifications
    }

    /// Checks one response.
    pub fn on_response(&mut self, resp: &WatchResponse) -> Result<(), String> {
        let m = self.member;
        self.responses += 1;
        if resp.canceled {
            return Err(format!(
                "n{m}: watch cancelled: {} (compact {})",
                resp.cancel_reason, resp.compact_revision
            ));
        }
        if resp.events.is_empty() {
            // Every revision of this store is an event on the watched range, so a progress
            // notification must name exactly the last revision delivered.
            if resp.header_revision < self.last {
                return Err(format!(
                    "n{m}: progress notification at {} behind delivered revision {}",
                    resp.header_revision, self.last
                ));
            }
            if resp.header_revision > self.last {
                return Err(format!(
                    "n{m}: progress notification at {} ahead of delivered revision {} (progress)",
                    resp.header_revision, self.last
                ));
            }
            self.progress_notifications += 1;
            return Ok(());
        }
        let first_rev = resp.events[0].kv.mod_revision;
        if first_rev == self.last && self.events > 0 {
            return Err(format!(
                "n{m}: revision {first_rev} split across responses (atomicity)"
            ));
        }
        for e in &resp.events {
            let rev = e.kv.mod_revision;
            if rev < self.last {
                return Err(format!(
                    "n{m}: event at revision {rev} after revision {} (order)",
                    self.last
                ));
            }
            if rev > self.last + 1 {
                return Err(format!(
                    "n{m}: revisions {}..{} missing before {rev} (gap)",
                    self.last + 1,
                    rev - 1
                ));
            }
            if rev > self.last {
                self.last = rev;
                self.keys_at_last.clear();
            }
            if !self.keys_at_last.insert(e.kv.key.clone()) {
                return Err(format!(
                    "n{m}: key {:?} twice at revision {rev} (duplicate)",
                    String::from_utf8_lossy(&e.kv.key)
                ));
            }
            if resp.header_revision < rev {
                return Err(format!(
                    "n{m}: response header {} behind its event at {rev}",
                    resp.header_revision
                ));
            }
            self.events += 1;
            if self.kept.len() < MAX_KEPT_EVENTS {
                self.kept.push(Seen {
                    revision: rev,
                    key: e.kv.key.clone(),
                    value: (e.kind == EventType::Put).then(|| e.kv.value.clone()),
                });
            }
        }
        Ok(())
    }

    /// The end-of-run check against the store, once the stream is drained and the store
    /// reports every watcher synced: nothing missing at the end, every event as the store
    /// recorded it.
    pub fn verify(&self, store: &Store) -> Result<(), String> {
        let m = self.member;
        let current = store.current_revision().map_err(|e| e.to_string())?;
        if self.last != current {
            return Err(format!(
                "n{m}: watch delivered up to revision {} but the store is at {current} (reliability)",
                self.last
            ));
        }
        for s in &self.kept {
            let r = store
                .range(&RangeRequest {
                    key: s.key.clone(),
                    revision: s.revision,
                    ..Default::default()
                })
                .map_err(|e| e.to_string())?;
            let value = r.kvs.first().map(|kv| kv.value.clone());
            let at_rev = r.kvs.first().map(|kv| kv.mod_revision);
            let consistent = match &s.value {
                Some(v) => value.as_ref() == Some(v) && at_rev == Some(s.revision),
                None => value.is_none(),
            };
            if !consistent {
                return Err(format!(
                    "n{m}: event on {:?} at revision {} says {:?}, the store has {:?}",
                    String::from_utf8_lossy(&s.key),
                    s.revision,
                    s.value
                        .as_ref()
                        .map(|v| String::from_utf8_lossy(v).into_owned()),
                    value.map(|v| String::from_utf8_lossy(&v).into_owned())
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorum_mvcc::{Event, KeyValue};

    fn resp(events: &[(i64, &str)]) -> WatchResponse {
        WatchResponse {
            header_revision: events.iter().map(|e| e.0).max().unwrap_or(0),
            events: events
                .iter()
                .map(|(rev, key)| Event {
                    kind: EventType::Put,
                    kv: KeyValue {
                        key: key.as_bytes().to_vec(),
                        mod_revision: *rev,
                        ..Default::default()
                    },
                    prev_kv: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn contiguous_stream_passes_and_violations_are_named() {
        let mut c = WatchChecker::new(1, 0);
        c.on_response(&resp(&[(1, "a"), (2, "a"), (2, "b")]))
            .unwrap();
        c.on_response(&resp(&[(3, "c")])).unwrap();
        assert_eq!((c.events(), c.next_revision()), (4, 4));
        let gap = c.on_response(&resp(&[(5, "a")])).unwrap_err();
        assert!(gap.contains("gap"), "{gap}");
        let mut c = WatchChecker::new(1, 0);
        c.on_response(&resp(&[(1, "a")])).unwrap();
        assert!(c
            .on_response(&resp(&[(1, "b")]))
            .unwrap_err()
            .contains("atomicity"));
        let mut c = WatchChecker::new(1, 0);
        assert!(c
            .on_response(&resp(&[(1, "a"), (1, "a")]))
            .unwrap_err()
            .contains("duplicate"));
        let mut c = WatchChecker::new(1, 5);
        assert!(c
            .on_response(&resp(&[(3, "a")]))
            .unwrap_err()
            .contains("order"));
        let mut c = WatchChecker::new(1, 5);
        let progress = |rev| WatchResponse {
            header_revision: rev,
            ..Default::default()
        };
        assert!(c.on_response(&progress(4)).unwrap_err().contains("behind"));
        assert!(c.on_response(&progress(6)).unwrap_err().contains("ahead"));
        c.on_response(&progress(5)).unwrap();
        assert_eq!(c.progress_notifications(), 1);
    }
}
