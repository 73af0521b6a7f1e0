//! Readers, applies, compactions and snapshot imports at the same time: every read sees a
//! consistent state (never a missing record or a revision above its header), and nothing
//! deadlocks (the store's lock order: hub, import gate, write, key index).

mod common;

use common::options;
use quorum_mvcc::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Puts cycle over this many keys; each value is its key (imports roll the state back to an
/// earlier image, so revisions are not predictable, but a record never belongs to another key).
const KEYS: u64 = 64;

fn put(n: u64) -> WriteRequest {
    let key = format!("key/{:02}", n % KEYS).into_bytes();
    WriteRequest::Put(PutRequest {
        value: key.clone(),
        key,
        ..Default::default()
    })
}

/// Checks one range response read at `rev` (0 = current).
fn check(resp: &RangeResponse, rev: i64) {
    let at = if rev > 0 { rev } else { resp.header_revision };
    assert!(at <= resp.header_revision, "read above the header");
    for kv in &resp.kvs {
        assert!(
            kv.mod_revision <= at,
            "revision {} read at {at}",
            kv.mod_revision
        );
        assert!(kv.create_revision <= kv.mod_revision);
        assert_eq!(kv.value, kv.key, "a record of another key");
    }
}

#[test]
fn reads_stay_consistent_under_applies_compactions_and_imports() {
    // `follower` is the store under test. As in a member, one thread applies its entries and
    // now and then replaces its state with a newer image (from `leader`, which applied the
    // same entries first), while readers and watchers use it concurrently.
    let dir = tempfile::tempdir().expect("tempdir");
    let leader = Store::open(dir.path().join("leader"), options()).expect("open");
    let follower = Arc::new(Store::open(dir.path().join("follower"), options()).expect("open"));
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel::<&'static str>();
    let mut threads = Vec::new();

    {
        let (store, stop, done) = (follower.clone(), stop.clone(), done_tx.clone());
        threads.push(std::thread::spawn(move || {
            let mut index = 0u64;
            let mut batches = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut batch = Vec::new();
                for _ in 0..8 {
                    index += 1;
                    batch.push((index, put(index)));
                }
                batches += 1;
                if batches.is_multiple_of(8) {
                    index += 1;
                    let revision = leader.current_revision().expect("rev") - 5;
                    let c = WriteRequest::Compaction(CompactionRequest {
                        revision,
                        physical: false,
                    });
                    batch.push((index, c));
                }
                leader.apply(&batch).expect("apply on the leader");
                if batches.is_multiple_of(5) {
                    // The follower lags and catches up by an image (its entries are then
                    // skipped as already applied when they arrive).
                    let mut image = Vec::new();
                    leader.snapshot_export(&mut image).expect("export");
                    store.snapshot_import(image.as_slice()).expect("import");
                }
                store.apply(&batch).expect("apply");
            }
            assert_eq!(store.hash().expect("hash"), leader.hash().expect("hash"));
            done.send("applier").expect("report");
        }));
    }
    for r in 0..2 {
        let (store, stop, done) = (follower.clone(), stop.clone(), done_tx.clone());
        threads.push(std::thread::spawn(move || {
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let cur = store.current_revision().expect("rev");
                let rev = if (i + r) % 2 == 0 {
                    0
                } else {
                    (cur - i % 7).max(1)
                };
                let req = RangeRequest {
                    key: b"key/".to_vec(),
                    range_end: b"key0".to_vec(),
                    revision: rev,
                    ..Default::default()
                };
                match store.range(&req) {
                    Ok(resp) => check(&resp, rev),
                    Err(MvccError::Compacted) => {}
                    Err(e) => panic!("range at {rev}: {e}"),
                }
            }
            done.send("reader").expect("report");
        }));
    }
    {
        // Watchers from a few revisions back (catch-up from history), synced in a loop.
        let (store, stop, done) = (follower.clone(), stop.clone(), done_tx.clone());
        threads.push(std::thread::spawn(move || {
            let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
            while !stop.load(Ordering::Relaxed) {
                let start = (store.current_revision().expect("rev") - 3).max(1);
                let req = WatchCreateRequest {
                    key: b"key/".to_vec(),
                    range_end: b"key0".to_vec(),
                    start_revision: start,
                    prev_kv: true,
                    ..Default::default()
                };
                let id = store.watch(&req, tx.clone()).expect("watch");
                store.sync_watchers().expect("sync");
                while let Ok(resp) = rx.try_recv() {
                    for ev in &resp.events {
                        assert!(ev.kv.key.starts_with(b"key/"));
                        if let Some(p) = &ev.prev_kv {
                            assert_eq!(p.key, ev.kv.key, "previous value of another key");
                            assert!(p.mod_revision < ev.kv.mod_revision);
                        }
                    }
                }
                store.cancel_watch(id);
            }
            done.send("watcher").expect("report");
        }));
    }
    drop(done_tx);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..threads.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            panic!("a thread did not stop within 60 s: deadlock (or it panicked; see above)");
        }
    }
    for t in threads {
        t.join().expect("thread panicked");
    }
    assert!(
        follower.current_revision().expect("rev") > 100,
        "applies made progress"
    );
}

#[test]
fn reads_at_the_current_revision_never_fail_as_compacted() {
    // A batch that writes and then compacts to its own newest revision raises the key
    // index's floor above the revision a concurrent reader's snapshot shows; the reader must
    // wait for the batch rather than answer `compacted` for a read at the current revision.
    let dir = tempfile::tempdir().expect("tempdir");
    // Durable: each batch holds its engine transaction through an fsync, the widest window.
    let store = Arc::new(
        Store::open(
            dir.path().join("db"),
            StoreOptions {
                durable: true,
                ..options()
            },
        )
        .expect("open"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut ok, mut compacted) = (0u64, 0u64);
            let req = RangeRequest {
                key: b"k".to_vec(),
                ..Default::default()
            };
            while !stop.load(Ordering::Relaxed) {
                match store.range(&req) {
                    Ok(_) => ok += 1,
                    Err(MvccError::Compacted) => compacted += 1,
                    Err(e) => panic!("range: {e}"),
                }
                if store.hash_kv(0).is_err() {
                    compacted += 1;
                }
            }
            (ok, compacted)
        })
    };
    let mut index = 0u64;
    for _ in 0..300 {
        let cur = store.current_revision().expect("rev");
        let batch = [
            (index + 1, put(index)),
            (
                index + 2,
                WriteRequest::Compaction(CompactionRequest {
                    revision: cur + 1,
                    physical: false,
                }),
            ),
        ];
        index += 2;
        store.apply(&batch).expect("apply");
    }
    stop.store(true, Ordering::Relaxed);
    let (ok, compacted) = reader.join().expect("reader");
    assert!(ok > 0, "the reader ran");
    assert_eq!(
        compacted, 0,
        "reads at the current revision failed as compacted"
    );
}
