//! Watch guarantees: ordered, unique, atomic, reliable, resumable, bookmarkable, prev_kv and
//! is-create, and a slow watcher that never blocks apply and catches up from history.

mod common;

use common::*;
use quorum_mvcc::*;
use tokio::sync::mpsc::{channel, Receiver};

fn drain(rx: &mut Receiver<WatchResponse>) -> Vec<WatchResponse> {
    let mut out = Vec::new();
    while let Ok(r) = rx.try_recv() {
        out.push(r);
    }
    out
}

fn events(resps: &[WatchResponse]) -> Vec<(i64, EventType, Vec<u8>)> {
    resps
        .iter()
        .flat_map(|r| r.events.iter())
        .map(|e| (e.kv.mod_revision, e.kind, e.kv.key.clone()))
        .collect()
}

fn watch_req(key: &str, end: &str, start: i64) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.into(),
        range_end: end.into(),
        start_revision: start,
        ..Default::default()
    }
}

#[test]
fn live_events_are_atomic_ordered_with_prev_kv() {
    let mut h = Harness::new();
    h.put("p/a", "0");
    let (tx, mut rx) = channel(16);
    let id = h
        .store
        .watch(
            &WatchCreateRequest {
                prev_kv: true,
                ..watch_req("p/", "p0", 0)
            },
            tx,
        )
        .unwrap();
    h.apply(WriteRequest::Txn(TxnRequest {
        success: vec![
            RequestOp::Put(put("p/a", "1")),
            RequestOp::Put(put("p/b", "1")),
            RequestOp::Put(put("q", "1")),
        ],
        ..Default::default()
    }))
    .unwrap();
    h.delete("p/a", "");
    let got = drain(&mut rx);
    assert_eq!(got.len(), 2, "one response per revision here, never split");
    assert!(got.iter().all(|r| r.watch_id == id));
    assert_eq!(
        events(&got),
        vec![
            (3, EventType::Put, b"p/a".to_vec()),
            (3, EventType::Put, b"p/b".to_vec()),
            (4, EventType::Delete, b"p/a".to_vec()),
        ]
    );
    let a = &got[0].events[0];
    assert_eq!(a.prev_kv.as_ref().unwrap().value, b"0");
    assert_eq!(a.kv.version, 2, "not a create");
    let b = &got[0].events[1];
    assert!(b.prev_kv.is_none());
    assert_eq!(
        (b.kv.version, b.kv.create_revision),
        (1, 3),
        "is-create: version 1"
    );
    let d = &got[1].events[0];
    assert_eq!(d.prev_kv.as_ref().unwrap().value, b"1");
    assert_eq!(d.kv.create_revision, 0);
    // progress: everything up to 4 was delivered
    h.store.request_progress(id).unwrap();
    let p = drain(&mut rx);
    assert_eq!(p.len(), 1);
    assert!(p[0].events.is_empty());
    assert_eq!(p[0].header_revision, 4);
    assert!(h.store.cancel_watch(id));
    h.put("p/c", "1");
    assert!(drain(&mut rx).is_empty(), "no event after cancel");
}

#[test]
fn history_replay_filters_and_compaction() {
    let mut h = Harness::new();
    for i in 0..10 {
        h.put(&format!("k{}", i % 3), &format!("{i}")); // revs 2..=11
    }
    h.delete("k0", "");
    let (tx, mut rx) = channel(64);
    h.store
        .watch(
            &WatchCreateRequest {
                filters: vec![WatchFilterType::NoPut],
                prev_kv: true,
                ..watch_req("k", "l", 2)
            },
            tx,
        )
        .unwrap();
    let got = drain(&mut rx);
    assert_eq!(events(&got), vec![(12, EventType::Delete, b"k0".to_vec())]);
    assert_eq!(got[0].events[0].prev_kv.as_ref().unwrap().value, b"9");
    let (tx, mut rx) = channel(64);
    h.store.watch(&watch_req("k1", "", 3), tx).unwrap();
    let revs: Vec<i64> = events(&drain(&mut rx)).iter().map(|e| e.0).collect();
    assert_eq!(revs, vec![3, 6, 9]);
    h.apply(WriteRequest::Compaction(CompactionRequest {
        revision: 8,
        physical: false,
    }))
    .unwrap();
    h.store.run_compaction(usize::MAX).unwrap();
    let (tx, mut rx) = channel(64);
    h.store.watch(&watch_req("k1", "", 5), tx).unwrap();
    let got = drain(&mut rx);
    assert_eq!(got.len(), 1);
    assert!(got[0].canceled);
    assert_eq!(got[0].compact_revision, 8);
    // at the compaction point itself history is still complete
    let (tx, mut rx) = channel(64);
    h.store.watch(&watch_req("k", "l", 8), tx).unwrap();
    let revs: Vec<i64> = events(&drain(&mut rx)).iter().map(|e| e.0).collect();
    assert_eq!(revs, vec![8, 9, 10, 11, 12]);
    assert_eq!(h.store.watcher_counts().1, 0);
}

#[test]
fn slow_watcher_never_blocks_apply_and_catches_up_exactly() {
    let mut h = Harness::with_options(StoreOptions {
        watch: WatchOptions {
            max_catchup_events: 5,
            ..WatchOptions::default()
        },
        ..options()
    });
    let (tx, mut rx) = channel(2);
    let id = h.store.watch(&watch_req("\0", "\0", 0), tx).unwrap();
    let (fast_tx, mut fast_rx) = channel(10_000);
    h.store.watch(&watch_req("\0", "\0", 0), fast_tx).unwrap();
    let mut seen = Vec::new();
    let mut last_progress = 0;
    let mut went_unsynced = false;
    let mut x: u64 = 12345;
    for round in 0..300 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // writes: plain puts, multi-key txns, range deletes
        match x % 4 {
            0 | 1 => {
                h.put(&format!("k{}", (x >> 8) % 20), "v");
            }
            2 => {
                h.apply(WriteRequest::Txn(TxnRequest {
                    success: (0..3)
                        .map(|j| RequestOp::Put(put(&format!("t{}{j}", (x >> 8) % 5), "v")))
                        .collect(),
                    ..Default::default()
                }))
                .unwrap();
            }
            _ => {
                h.delete("k1", "k3");
            }
        }
        // the consumer reads sometimes, the hub catches up sometimes
        if (x >> 20).is_multiple_of(3) {
            for r in drain(&mut rx) {
                if r.events.is_empty() {
                    let last = seen.last().map_or(0, |e: &(i64, EventType, Vec<u8>)| e.0);
                    assert!(r.header_revision >= last_progress);
                    assert!(
                        r.header_revision >= last,
                        "progress revision behind delivered events"
                    );
                    last_progress = r.header_revision;
                } else {
                    assert!(
                        r.events[0].kv.mod_revision > last_progress,
                        "event at or below a progress notification"
                    );
                    seen.extend(events(&[r]));
                }
            }
        }
        went_unsynced |= h.store.watcher_counts().1 > 0;
        if (x >> 24).is_multiple_of(4) {
            h.store.sync_watchers().unwrap();
        }
        if round % 17 == 0 {
            h.store.request_progress(id).unwrap();
        }
    }
    for _ in 0..10_000 {
        seen.extend(events(&drain(&mut rx)));
        if h.store.sync_watchers().unwrap() && rx.is_empty() {
            break;
        }
    }
    seen.extend(events(&drain(&mut rx)));
    let reference = events(&drain(&mut fast_rx));
    assert!(!reference.is_empty());
    assert!(went_unsynced, "the slow path was exercised");
    assert_eq!(seen.len(), reference.len(), "no event lost or duplicated");
    assert_eq!(seen, reference, "same order");
    assert_eq!(h.store.watcher_counts(), (2, 0));
}

#[test]
fn resume_from_last_revision_and_fragments() {
    let mut h = Harness::with_options(StoreOptions {
        watch: WatchOptions {
            fragment_bytes: 100,
            ..WatchOptions::default()
        },
        ..options()
    });
    let (tx, mut rx) = channel(64);
    let id = h.store.watch(&watch_req("a", "b", 0), tx).unwrap();
    for i in 0..5 {
        h.put(&format!("a{i}"), "v");
    }
    let first = events(&drain(&mut rx));
    h.store.cancel_watch(id);
    for i in 5..9 {
        h.put(&format!("a{i}"), "v");
    }
    let (tx, mut rx) = channel(64);
    h.store
        .watch(&watch_req("a", "b", first.last().unwrap().0 + 1), tx)
        .unwrap();
    let second = events(&drain(&mut rx));
    let revs: Vec<i64> = first.iter().chain(second.iter()).map(|e| e.0).collect();
    assert_eq!(revs, (2..=10).collect::<Vec<_>>());
    // fragments: one revision with 10 keys split over several responses
    let (tx, mut rx) = channel(64);
    h.store
        .watch(
            &WatchCreateRequest {
                fragment: true,
                ..watch_req("f", "g", 0)
            },
            tx,
        )
        .unwrap();
    h.apply(WriteRequest::Txn(TxnRequest {
        success: (0..10)
            .map(|j| RequestOp::Put(put(&format!("f{j}"), "0123456789")))
            .collect(),
        ..Default::default()
    }))
    .unwrap();
    let got = drain(&mut rx);
    assert!(got.len() > 1);
    assert!(got[..got.len() - 1].iter().all(|r| r.fragment));
    assert!(!got.last().unwrap().fragment);
    assert_eq!(events(&got).len(), 10);
}

#[test]
fn closed_receiver_removes_watcher() {
    let mut h = Harness::new();
    let (tx, rx) = channel(4);
    h.store.watch(&watch_req("a", "", 0), tx).unwrap();
    drop(rx);
    h.put("a", "1");
    assert_eq!(h.store.watcher_counts(), (0, 0));
}
