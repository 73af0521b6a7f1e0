//! Watches (etcd's `watchable_store.go`): synced watchers get each applied batch's events
//! pushed right after commit; a watcher that cannot keep up (its channel is full) or that
//! starts in the past is *unsynced* and catches up by reading history from the store in
//! bounded chunks ([`crate::Store::sync_watchers`]).
//!
//! Invariants, per watcher:
//! * `next_rev` is the first revision not yet delivered: every matching event with revision
//!   `< next_rev` was sent exactly once, in order, and nothing `>= next_rev` was sent.
//! * a synced watcher has `next_rev > notified_rev` (it has seen every batch the hub was told
//!   about), so the next notification continues it without a gap.
//! * a response never splits a revision's events, except into fragments when asked.
//!
//! Delivery uses bounded `tokio::sync::mpsc` channels with `try_send` only: the apply path never
//! waits for a consumer and needs no runtime.

use crate::error::MvccError;
use crate::index::KeyIndex;
use crate::read::{read_index, HistoryTable};
use crate::schema::{rev_i64, split_history, RangeEnd, Record};
use crate::types::{Event, EventType, KeyValue};
use crate::write::EventsMode;
use std::collections::BTreeMap;
use std::sync::RwLock;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;

/// Watch identifier, unique within a store.
pub type WatchId = i64;

/// `WatchCreateRequest.FilterType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum WatchFilterType {
    /// NOPUT = 0: drop put events.
    NoPut = 0,
    /// NODELETE = 1: drop delete events.
    NoDelete = 1,
}

/// `etcdserverpb.WatchCreateRequest` (the parts the store acts on).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchCreateRequest {
    /// Key or first key.
    pub key: Vec<u8>,
    /// Range end, same conventions as ranges.
    pub range_end: Vec<u8>,
    /// First revision to deliver; 0 = the next revision.
    pub start_revision: i64,
    /// Event filters.
    pub filters: Vec<WatchFilterType>,
    /// Include the previous key-value in events.
    pub prev_kv: bool,
    /// Split large responses into fragments (see [`WatchOptions::fragment_bytes`]).
    pub fragment: bool,
}

/// `etcdserverpb.WatchResponse` (the creation response is the server's business).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchResponse {
    /// Watcher this response belongs to.
    pub watch_id: WatchId,
    /// `header.revision`: for events, the store revision they were read at; for a progress
    /// notification (no events), every matching event up to it has been delivered.
    pub header_revision: i64,
    /// Events, in revision order.
    pub events: Vec<Event>,
    /// Set (with `canceled`) when the start revision was compacted.
    pub compact_revision: i64,
    /// The watcher is gone.
    pub canceled: bool,
    /// Why it was cancelled.
    pub cancel_reason: String,
    /// More fragments of the same response follow.
    pub fragment: bool,
}

/// Hub limits.
#[derive(Clone, Copy, Debug)]
pub struct WatchOptions {
    /// Maximum watchers per store.
    pub max_watchers: usize,
    /// Catch-up reads stop at the first revision boundary after this many events.
    pub max_catchup_events: usize,
    /// Fragment size for watchers created with `fragment`.
    pub fragment_bytes: usize,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            max_watchers: 100_000,
            max_catchup_events: 1_000,
            fragment_bytes: 1_536 * 1024,
        }
    }
}

#[derive(Debug)]
struct Watcher {
    key: Vec<u8>,
    range_end: Vec<u8>,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    fragment: bool,
    tx: Sender<WatchResponse>,
    next_rev: u64,
    synced: bool,
    pending_progress: bool,
}

impl Watcher {
    fn wants(&self, ev: &Event) -> bool {
        let kind_ok = match ev.kind {
            EventType::Put => !self.no_put,
            EventType::Delete => !self.no_delete,
        };
        kind_ok && RangeEnd::from_request(&self.range_end).contains(&self.key, &ev.kv.key)
    }

    fn shape(&self, ev: &Event) -> Event {
        Event {
            kind: ev.kind,
            kv: ev.kv.clone(),
            prev_kv: if self.prev_kv {
                ev.prev_kv.clone()
            } else {
                None
            },
        }
    }
}

/// Outcome of trying to hand responses to a watcher's channel.
enum Sent {
    Ok,
    Full,
    Closed,
}

fn event_bytes(e: &Event) -> usize {
    let kv = |k: &KeyValue| k.key.len() + k.value.len() + 40;
    kv(&e.kv) + e.prev_kv.as_ref().map_or(0, kv)
}

/// Registry of watchers.
#[derive(Debug)]
pub(crate) struct WatchHub {
    watchers: BTreeMap<WatchId, Watcher>,
    next_id: WatchId,
    /// Last revision whose events were handed to [`WatchHub::notify`].
    notified_rev: u64,
    opts: WatchOptions,
}

impl WatchHub {
    pub(crate) fn new(current_rev: u64, opts: WatchOptions) -> Self {
        WatchHub {
            watchers: BTreeMap::new(),
            next_id: 1,
            notified_rev: current_rev,
            opts,
        }
    }

    /// Resets after a snapshot import: every watcher is cancelled (as etcd's restore does
    /// not, but history it was built on is gone) and revisions restart at `current_rev`.
    pub(crate) fn reset(&mut self, current_rev: u64) {
        for (id, w) in std::mem::take(&mut self.watchers) {
            let _ = w.tx.try_send(WatchResponse {
                watch_id: id,
                header_revision: rev_i64(current_rev),
                canceled: true,
                cancel_reason: "mvcc: store restored from snapshot".to_string(),
                ..Default::default()
            });
        }
        self.notified_rev = current_rev;
    }

    pub(crate) fn create(
        &mut self,
        req: &WatchCreateRequest,
        tx: Sender<WatchResponse>,
    ) -> Result<WatchId, MvccError> {
        if self.watchers.len() >= self.opts.max_watchers {
            return Err(MvccError::Storage("too many watchers".to_string()));
        }
        let start = u64::try_from(req.start_revision).unwrap_or(0);
        let (next_rev, synced) = if start == 0 || start > self.notified_rev {
            (start.max(self.notified_rev + 1), true)
        } else {
            (start, false)
        };
        let id = self.next_id;
        self.next_id += 1;
        self.watchers.insert(
            id,
            Watcher {
                key: req.key.clone(),
                range_end: req.range_end.clone(),
                prev_kv: req.prev_kv,
                no_put: req.filters.contains(&WatchFilterType::NoPut),
                no_delete: req.filters.contains(&WatchFilterType::NoDelete),
                fragment: req.fragment,
                tx,
                next_rev,
                synced,
                pending_progress: false,
            },
        );
        Ok(id)
    }

    pub(crate) fn cancel(&mut self, id: WatchId) -> bool {
        self.watchers.remove(&id).is_some()
    }

    /// Number of watchers, and of those currently unsynced.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let unsynced = self.watchers.values().filter(|w| !w.synced).count();
        (self.watchers.len(), unsynced)
    }

    /// Requests a progress notification; it is queued behind everything already delivered.
    pub(crate) fn request_progress(&mut self, id: WatchId) -> Result<(), MvccError> {
        let notified = self.notified_rev;
        let w = self
            .watchers
            .get_mut(&id)
            .ok_or(MvccError::WatcherNotFound)?;
        w.pending_progress = true;
        if let Sent::Closed = Self::flush_progress(id, w, notified) {
            self.watchers.remove(&id);
        }
        Ok(())
    }

    fn flush_progress(id: WatchId, w: &mut Watcher, notified: u64) -> Sent {
        if !w.pending_progress {
            return Sent::Ok;
        }
        let rev = (w.next_rev - 1).min(notified);
        match w.tx.try_send(WatchResponse {
            watch_id: id,
            header_revision: rev_i64(rev),
            ..Default::default()
        }) {
            Ok(()) => {
                w.pending_progress = false;
                Sent::Ok
            }
            Err(TrySendError::Full(_)) => Sent::Full,
            Err(TrySendError::Closed(_)) => Sent::Closed,
        }
    }

    /// Sends `events` (already filtered, in order) as one response or, for fragmenting
    /// watchers, as fragments; all or nothing.
    fn send(id: WatchId, w: &Watcher, header: u64, events: Vec<Event>, max_bytes: usize) -> Sent {
        let mut chunks: Vec<Vec<Event>> = Vec::new();
        if w.fragment {
            let mut cur = Vec::new();
            let mut size = 0usize;
            for e in events {
                let b = event_bytes(&e);
                if !cur.is_empty() && size + b > max_bytes {
                    chunks.push(std::mem::take(&mut cur));
                    size = 0;
                }
                size += b;
                cur.push(e);
            }
            chunks.push(cur);
        } else {
            chunks.push(events);
        }
        if w.tx.is_closed() {
            return Sent::Closed;
        }
        if w.tx.capacity() < chunks.len() {
            return Sent::Full;
        }
        let n = chunks.len();
        for (i, events) in chunks.into_iter().enumerate() {
            let resp = WatchResponse {
                watch_id: id,
                header_revision: rev_i64(header),
                events,
                fragment: i + 1 < n,
                ..Default::default()
            };
            match w.tx.try_send(resp) {
                Ok(()) => {}
                Err(TrySendError::Closed(_)) => return Sent::Closed,
                // capacity was checked under the hub lock, which every sender holds
                Err(TrySendError::Full(_)) => {
                    debug_assert!(false, "channel filled despite capacity check");
                    return Sent::Full;
                }
            }
        }
        Sent::Ok
    }

    /// What the next batch must collect for the current watchers.
    pub(crate) fn events_mode(&self) -> EventsMode {
        if self.watchers.is_empty() {
            EventsMode::None
        } else if self.watchers.values().any(|w| w.prev_kv) {
            EventsMode::WithPrev
        } else {
            EventsMode::NoPrev
        }
    }

    /// Delivers one applied batch: `events` of revisions `<= upto`, in revision order,
    /// collected according to `mode`. A synced watcher the batch collected too little for
    /// (created meanwhile) becomes unsynced and catches up from the store.
    pub(crate) fn notify(&mut self, events: &[Event], upto: u64, mode: EventsMode) {
        debug_assert!(upto >= self.notified_rev);
        debug_assert!(events
            .windows(2)
            .all(|p| p[0].kv.mod_revision <= p[1].kv.mod_revision));
        let mut closed = Vec::new();
        let max_bytes = self.opts.fragment_bytes;
        for (id, w) in self.watchers.iter_mut() {
            if !w.synced {
                continue;
            }
            let covered = match mode {
                EventsMode::None => false,
                EventsMode::NoPrev => !w.prev_kv,
                EventsMode::WithPrev => true,
            };
            if !covered {
                if w.next_rev <= upto {
                    w.synced = false;
                }
                continue;
            }
            let mine: Vec<Event> = events
                .iter()
                .filter(|e| {
                    u64::try_from(e.kv.mod_revision).unwrap_or(0) >= w.next_rev && w.wants(e)
                })
                .map(|e| w.shape(e))
                .collect();
            let outcome = if mine.is_empty() {
                Sent::Ok
            } else {
                Self::send(*id, w, upto, mine, max_bytes)
            };
            match outcome {
                Sent::Ok => {
                    w.next_rev = w.next_rev.max(upto + 1);
                    if let Sent::Closed = Self::flush_progress(*id, w, upto) {
                        closed.push(*id);
                    }
                }
                Sent::Full => w.synced = false,
                Sent::Closed => closed.push(*id),
            }
        }
        for id in closed {
            self.watchers.remove(&id);
        }
        self.notified_rev = self.notified_rev.max(upto);
    }

    /// Unsynced watchers to catch up: `(id, next_rev)`.
    pub(crate) fn unsynced(&self) -> Vec<(WatchId, u64)> {
        self.watchers
            .iter()
            .filter(|(_, w)| !w.synced)
            .map(|(id, w)| (*id, w.next_rev))
            .collect()
    }

    /// Catches up watcher `id` from a store snapshot at `read_rev` with compaction point
    /// `compact`, reading at most about `max_catchup_events` events. Returns true when the
    /// watcher is synced (or gone) afterwards.
    pub(crate) fn catch_up<R: HistoryTable>(
        &mut self,
        id: WatchId,
        index: &RwLock<KeyIndex>,
        history: &R,
        read_rev: u64,
        compact: u64,
    ) -> Result<bool, MvccError> {
        let notified = self.notified_rev;
        let max_events = self.opts.max_catchup_events;
        let max_bytes = self.opts.fragment_bytes;
        let Some(w) = self.watchers.get_mut(&id) else {
            return Ok(true);
        };
        if w.synced {
            return Ok(true);
        }
        if w.next_rev < compact {
            let resp = WatchResponse {
                watch_id: id,
                header_revision: rev_i64(read_rev),
                compact_revision: rev_i64(compact),
                canceled: true,
                ..Default::default()
            };
            return match w.tx.try_send(resp) {
                Ok(()) | Err(TrySendError::Closed(_)) => {
                    self.watchers.remove(&id);
                    Ok(true)
                }
                Err(TrySendError::Full(_)) => Ok(false),
            };
        }
        if w.prev_kv && read_index(index).floor() > compact {
            // A compaction newer than the snapshot has pruned the index: previous values are
            // looked up there, so wait for a snapshot that shows the compaction.
            return Ok(false);
        }
        let mut events = Vec::new();
        let mut last_rev = w.next_rev - 1;
        if w.next_rev <= read_rev {
            let mut stopped_early = false;
            for item in history.range((w.next_rev, 0u64)..=(read_rev, u64::MAX))? {
                let (k, v) = item?;
                let (main, sub) = k.value();
                if main != last_rev && events.len() >= max_events {
                    stopped_early = true;
                    break;
                }
                last_rev = main;
                let (key, rec) = split_history(v.value())?;
                if !RangeEnd::from_request(&w.range_end).contains(&w.key, key) {
                    continue;
                }
                let ev = history_event(index, history, key, main, sub, rec, w.prev_kv)?;
                if w.wants(&ev) {
                    events.push(ev);
                }
            }
            if !stopped_early {
                last_rev = read_rev;
            }
        }
        let outcome = if events.is_empty() {
            Sent::Ok
        } else {
            Self::send(id, w, read_rev, events, max_bytes)
        };
        match outcome {
            Sent::Ok => {
                w.next_rev = w.next_rev.max(last_rev + 1);
                if w.next_rev > notified {
                    w.synced = true;
                }
                if let Sent::Closed = Self::flush_progress(id, w, notified) {
                    self.watchers.remove(&id);
                    return Ok(true);
                }
                Ok(w.synced)
            }
            Sent::Full => Ok(false),
            Sent::Closed => {
                self.watchers.remove(&id);
                Ok(true)
            }
        }
    }
}

/// The event stored at `(key, main, sub)` (record `rec`), with the previous live value when
/// asked (the key's revision before it, from the index; compaction never removes the newest
/// revision below a revision above the compaction point, except a tombstone).
fn history_event<R: HistoryTable>(
    index: &RwLock<KeyIndex>,
    history: &R,
    key: &[u8],
    main: u64,
    sub: u64,
    rec: &[u8],
    want_prev: bool,
) -> Result<Event, MvccError> {
    let rec = Record::decode(rec, false)?;
    let prev_kv = if want_prev {
        let before = read_index(index).get(key).and_then(|e| e.before(main, sub));
        match before {
            Some(r) if !r.tomb => Some(crate::read::kv_at(history, key, r, false)?),
            _ => None,
        }
    } else {
        None
    };
    Ok(match rec.into_kv(key, main) {
        Some(kv) => Event {
            kind: EventType::Put,
            kv,
            prev_kv,
        },
        None => Event {
            kind: EventType::Delete,
            kv: KeyValue {
                key: key.to_vec(),
                mod_revision: rev_i64(main),
                ..Default::default()
            },
            prev_kv,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_event(key: &[u8], rev: i64) -> Event {
        Event {
            kind: EventType::Put,
            kv: KeyValue {
                key: key.to_vec(),
                mod_revision: rev,
                create_revision: rev,
                version: 1,
                ..Default::default()
            },
            prev_kv: None,
        }
    }

    #[test]
    fn batch_collected_without_what_a_watcher_needs_makes_it_unsynced() {
        let mut hub = WatchHub::new(1, WatchOptions::default());
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let plain = hub
            .create(
                &WatchCreateRequest {
                    key: b"a".to_vec(),
                    ..Default::default()
                },
                tx.clone(),
            )
            .unwrap();
        let with_prev = hub
            .create(
                &WatchCreateRequest {
                    key: b"a".to_vec(),
                    prev_kv: true,
                    ..Default::default()
                },
                tx,
            )
            .unwrap();
        // the batch started before `with_prev` existed: no previous values collected
        hub.notify(&[put_event(b"a", 2)], 2, EventsMode::NoPrev);
        let got = rx.try_recv().unwrap();
        assert_eq!(got.watch_id, plain);
        assert!(rx.try_recv().is_err());
        assert_eq!(hub.unsynced(), vec![(with_prev, 2)]);
        // a batch collected for nobody leaves everyone to catch up
        hub.notify(&[], 3, EventsMode::None);
        assert_eq!(hub.counts(), (2, 2));
        // nothing written: nobody falls behind
        let mut idle = WatchHub::new(5, WatchOptions::default());
        let (tx, _rx) = tokio::sync::mpsc::channel(8);
        idle.create(&WatchCreateRequest::default(), tx).unwrap();
        idle.notify(&[], 5, EventsMode::None);
        assert_eq!(idle.counts(), (1, 0));
    }
}
