//! Non-durable mode gathers applied batches in one open engine transaction: every reader must
//! still see every applied write, from any thread, and watchers must catch up through it.

mod common;

use common::*;
use quorum_mvcc::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn value_of(store: &Store, key: &str) -> Option<u64> {
    let r = store
        .range(&RangeRequest {
            key: key.into(),
            ..Default::default()
        })
        .unwrap();
    r.kvs
        .first()
        .map(|kv| String::from_utf8_lossy(&kv.value).parse().unwrap())
}

#[test]
fn every_applied_write_is_visible_to_readers_on_other_threads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("db"), options()).unwrap());
    let applied = Arc::new(AtomicU64::new(0));
    const WRITES: u64 = 3_000;
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, applied) = (store.clone(), applied.clone());
            std::thread::spawn(move || {
                let mut checked = 0;
                loop {
                    let before = applied.load(Ordering::Acquire);
                    if before == 0 {
                        std::thread::yield_now();
                        continue;
                    }
                    // Read-your-applied-writes: what was applied before the read began is seen.
                    let seen = value_of(&store, "k").expect("an applied key is missing");
                    assert!(seen >= before, "read {seen} after {before} was applied");
                    assert!(store.current_revision().unwrap() as u64 > before);
                    checked += 1;
                    if before == WRITES {
                        return checked;
                    }
                }
            })
        })
        .collect();
    let mut index = 0;
    for i in 1..=WRITES {
        index += 1;
        let out = store
            .apply(&[(index, WriteRequest::Put(put("k", &i.to_string())))])
            .unwrap();
        assert!(matches!(out[0], Some(Ok(_))));
        assert_eq!(store.consistent_index().unwrap(), index);
        applied.store(i, Ordering::Release);
    }
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    // Nothing was committed by a tick here; a clean close keeps everything.
    drop(store);
    let store = Store::open(dir.path().join("db"), options()).unwrap();
    assert_eq!(store.consistent_index().unwrap(), WRITES);
    assert_eq!(value_of(&store, "k"), Some(WRITES));
}

#[test]
fn hashes_and_snapshots_include_the_open_transaction() {
    let mut deferred = Harness::new();
    let mut immediate = Harness::with_options(StoreOptions {
        durable: true,
        ..options()
    });
    for i in 0..50 {
        for h in [&mut deferred, &mut immediate] {
            h.put(&format!("key{}", i % 7), &i.to_string());
        }
    }
    assert_eq!(
        deferred.store.hash().unwrap(),
        immediate.store.hash().unwrap()
    );
    assert_eq!(
        deferred.store.hash_kv(0).unwrap(),
        immediate.store.hash_kv(0).unwrap()
    );
    let mut image = Vec::new();
    deferred.store.snapshot_export(&mut image).unwrap();
    let restored = Harness::new();
    restored.store.snapshot_import(image.as_slice()).unwrap();
    assert_eq!(
        restored.store.hash().unwrap(),
        immediate.store.hash().unwrap()
    );
    assert_eq!(restored.store.consistent_index().unwrap(), 50);
}

#[test]
fn a_watcher_from_the_past_catches_up_through_the_open_transaction() {
    let mut h = Harness::new();
    for i in 0..20 {
        h.put(&format!("w/{i}"), "v");
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    h.store
        .watch(
            &WatchCreateRequest {
                key: b"w/".to_vec(),
                range_end: b"w0".to_vec(),
                start_revision: 2,
                ..Default::default()
            },
            tx,
        )
        .unwrap();
    let mut revs = Vec::new();
    while let Ok(r) = rx.try_recv() {
        revs.extend(r.events.iter().map(|e| e.kv.mod_revision));
    }
    assert_eq!(revs, (2..22).collect::<Vec<i64>>());
    // And it is synced: the next write arrives live, once.
    h.put("w/x", "v");
    let live: Vec<i64> = std::iter::from_fn(|| rx.try_recv().ok())
        .flat_map(|r| r.events.into_iter().map(|e| e.kv.mod_revision))
        .collect();
    assert_eq!(live, vec![22]);
}

#[test]
fn alarms_and_counters_are_current_without_a_commit() {
    let mut h = Harness::with_options(StoreOptions {
        quota_bytes: 1 << 30,
        ..options()
    });
    h.put("a", "1");
    h.apply(WriteRequest::Alarm(AlarmRequest {
        action: AlarmAction::Activate,
        member_id: 7,
        alarm: AlarmType::Nospace,
    }))
    .unwrap();
    assert_eq!(h.store.alarms().unwrap().len(), 1);
    assert_eq!(
        h.store.quota_check(&WriteRequest::Put(put("b", "2"))),
        Err(MvccError::NoSpace)
    );
    assert_eq!(h.store.current_revision().unwrap(), 2);
    h.store.commit_pending().unwrap();
    assert_eq!(h.store.alarms().unwrap().len(), 1);
}
