//! Behaviour of the WAL on the simulated file system: writes, recovery, truncation,
//! compaction, snapshots, identity, corruption, torn tails, limits, group commit.

use bytes::Bytes;
use quorum_raft::{ConfState, Entry, HardState, SnapshotMetadata, Storage, StorageError};
use quorum_storage::{Error, FileSystem, Identity, LogStore, SimFs, WalMetrics, WalOptions};
use std::path::{Path, PathBuf};

const ID: Identity = Identity {
    cluster_id: 0xc1,
    member_id: 0x1,
};

fn dir() -> PathBuf {
    PathBuf::from("/data/wal")
}

fn small() -> WalOptions {
    WalOptions {
        segment_size: 4096,
        ..WalOptions::default()
    }
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        data: Bytes::from(format!("entry {index} term {term}").repeat(3)),
        ..Entry::default()
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState { term, vote, commit }
}

fn open(fs: &SimFs, opts: WalOptions) -> (LogStore<SimFs>, quorum_storage::Recovered) {
    LogStore::open(fs.clone(), dir(), ID, opts).unwrap()
}

fn all_entries(log: &LogStore<SimFs>) -> Vec<Entry> {
    let (first, last) = (log.first_index(), log.last_index());
    log.entries(first, last + 1, u64::MAX).unwrap()
}

fn segment_files(fs: &SimFs) -> Vec<PathBuf> {
    fs.list(&dir())
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .map(|n| dir().join(n))
        .collect()
}

#[test]
fn new_directory_is_initialised_and_recovers_empty() {
    let fs = SimFs::new(1);
    let (log, rec) = open(&fs, small());
    assert!(rec.created);
    assert_eq!((log.first_index(), log.last_index()), (1, 0));
    drop(log);
    fs.crash();
    let (log, rec) = open(&fs, small());
    assert!(!rec.created);
    assert_eq!(rec.segments, 1);
    assert_eq!(log.hard_state(), HardState::default());
    assert_eq!(log.term(0), Ok(0));
}

#[test]
fn synced_writes_survive_a_crash_and_unsynced_ones_do_not() {
    let fs = SimFs::new(2);
    let (mut log, _) = open(&fs, small());
    log.save(Some(hs(1, 1, 0)), &entries(1..=5, 1)).unwrap();
    log.append(Some(hs(1, 1, 5)), &entries(6..=8, 1)).unwrap();
    assert_eq!(log.last_index(), 8, "reads see unsynced writes");
    drop(log);
    fs.crash();
    let (log, rec) = open(&fs, small());
    assert_eq!(rec.last_index, 5);
    assert_eq!(all_entries(&log), entries(1..=5, 1));
    assert_eq!(log.hard_state(), hs(1, 1, 0));
}

#[test]
fn one_fdatasync_per_ready_however_many_entries() {
    let fs = SimFs::new(3);
    let (mut log, _) = open(
        &fs,
        WalOptions {
            segment_size: 1 << 30,
            preallocate: false,
            ..WalOptions::default()
        },
    );
    let before = fs.sync_count();
    log.save(Some(hs(1, 1, 0)), &entries(1..=1000, 1)).unwrap();
    assert_eq!(fs.sync_count() - before, 1);
    let before = fs.sync_count();
    log.sync().unwrap();
    assert_eq!(fs.sync_count(), before, "nothing to sync: no fdatasync");
}

#[test]
fn truncation_of_a_conflicting_suffix_is_recovered() {
    let fs = SimFs::new(4);
    let (mut log, _) = open(&fs, small());
    log.save(Some(hs(1, 1, 2)), &entries(1..=6, 1)).unwrap();
    // A new leader in term 2 overwrites 4..: the follower's log becomes 1..=3 (t1), 4..=5 (t2).
    log.save(Some(hs(2, 2, 2)), &entries(4..=5, 2)).unwrap();
    let expected: Vec<Entry> = entries(1..=3, 1)
        .into_iter()
        .chain(entries(4..=5, 2))
        .collect();
    assert_eq!(all_entries(&log), expected);
    drop(log);
    fs.crash();
    let (log, _) = open(&fs, small());
    assert_eq!(all_entries(&log), expected);
    assert_eq!(log.term(6), Err(StorageError::Unavailable));
}

#[test]
fn invalid_writes_are_refused_and_change_nothing() {
    let fs = SimFs::new(5);
    let (mut log, _) = open(&fs, small());
    log.save(Some(hs(2, 1, 3)), &entries(1..=4, 1)).unwrap();
    let refused = [
        log.append(None, &entries(6..=7, 1)),          // gap
        log.append(None, &[entry(5, 1), entry(7, 1)]), // not contiguous
        log.append(None, &entries(3..=4, 2)),          // overwrites committed 3
        log.append(Some(hs(1, 1, 3)), &[]),            // term goes down
        log.append(Some(hs(2, 3, 3)), &[]),            // second vote in term 2
        log.append(Some(hs(2, 1, 2)), &[]),            // commit goes down
        log.append(Some(hs(2, 1, 9)), &[]),            // commit beyond the log
        log.append(None, &[entry(5, 0)]),              // term below previous entry
    ];
    for r in refused {
        assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
    }
    assert_eq!(all_entries(&log), entries(1..=4, 1));
    assert_eq!(log.hard_state(), hs(2, 1, 3));
    assert!(matches!(log.compact(9), Err(Error::Invalid(_))));
}

#[test]
fn oversized_entries_are_refused() {
    let fs = SimFs::new(6);
    let (mut log, _) = open(
        &fs,
        WalOptions {
            max_record_size: 1024,
            max_batch_size: 4096,
            ..small()
        },
    );
    let mut big = entry(1, 1);
    big.data = Bytes::from(vec![7u8; 2000]);
    assert!(matches!(
        log.append(None, &[big]),
        Err(Error::TooLarge { .. })
    ));
    let many: Vec<Entry> = (1..=40)
        .map(|i| Entry {
            data: Bytes::from(vec![1u8; 200]),
            ..entry(i, 1)
        })
        .collect();
    assert!(matches!(
        log.append(None, &many),
        Err(Error::TooLarge { .. })
    ));
    // Below the batch limit, entries are split over several records and all recovered.
    log.save(None, &many[..15]).unwrap();
    drop(log);
    fs.crash();
    let (log, _) = open(&fs, small());
    assert_eq!(all_entries(&log), many[..15].to_vec());
}

#[test]
fn segments_roll_and_compaction_deletes_old_ones() {
    let fs = SimFs::new(7);
    let (mut log, _) = open(&fs, small());
    for i in 1..=200 {
        log.save(Some(hs(1, 1, i - 1)), &[entry(i, 1)]).unwrap();
    }
    let segs = segment_files(&fs).len();
    assert!(segs > 5, "{segs} segments");
    assert_eq!(log.segment_count(), segs);
    log.compact(150).unwrap();
    let after = segment_files(&fs).len();
    assert!(after < segs, "{after} segments after compaction");
    assert_eq!(log.first_index(), 151);
    assert_eq!(log.term(150), Ok(1));
    assert_eq!(
        log.entries(149, 151, u64::MAX),
        Err(StorageError::Compacted)
    );
    drop(log);
    fs.crash();
    let (log, rec) = open(&fs, small());
    assert_eq!(rec.segments, after);
    assert_eq!((log.first_index(), log.last_index()), (151, 200));
    assert_eq!(log.term(150), Ok(1));
    assert_eq!(all_entries(&log), entries(151..=200, 1));
    assert_eq!(log.hard_state(), hs(1, 1, 199));
}

#[test]
fn installed_snapshot_replaces_the_log() {
    let fs = SimFs::new(8);
    let (mut log, _) = open(&fs, small());
    log.save(Some(hs(1, 1, 3)), &entries(1..=10, 1)).unwrap();
    let cs = ConfState {
        voters: vec![1, 2, 3],
        ..ConfState::default()
    };
    let meta = SnapshotMetadata {
        index: 20,
        term: 3,
        conf_state: cs.clone(),
    };
    let snap = quorum_raft::Snapshot {
        metadata: meta.clone(),
        data: Bytes::from_static(b"image"),
    };
    log.apply_snapshot(&snap).unwrap();
    log.append(Some(hs(3, 0, 21)), &entries(21..=22, 3))
        .unwrap();
    log.sync().unwrap();
    assert_eq!(log.snapshot(20), Ok(snap.clone()));
    assert_eq!(
        log.snapshot(21),
        Err(StorageError::SnapshotTemporarilyUnavailable)
    );
    drop(log);
    fs.crash();
    let (mut log, _) = open(&fs, small());
    assert_eq!((log.first_index(), log.last_index()), (21, 22));
    assert_eq!(log.term(20), Ok(3));
    assert_eq!(log.conf_state(), &cs);
    assert_eq!(log.hard_state(), hs(3, 0, 21));
    assert!(matches!(log.apply_snapshot(&snap), Err(Error::Invalid(_))));
    // After a restart the server hands the snapshot back from its snapshot store.
    assert_eq!(
        log.snapshot(0),
        Err(StorageError::SnapshotTemporarilyUnavailable)
    );
    log.set_snapshot(snap.clone());
    assert_eq!(log.snapshot(20), Ok(snap));
    log.compact(20).unwrap();
}

#[test]
fn conf_state_is_recovered() {
    let fs = SimFs::new(9);
    let (mut log, _) = open(&fs, small());
    let cs = ConfState {
        voters: vec![1, 2],
        learners: vec![3],
        ..ConfState::default()
    };
    log.set_conf_state(cs.clone()).unwrap();
    log.sync().unwrap();
    drop(log);
    fs.crash();
    let (log, _) = open(&fs, small());
    assert_eq!(log.initial_state().unwrap().conf_state, cs);
}

#[test]
fn another_members_directory_is_refused() {
    let fs = SimFs::new(10);
    drop(open(&fs, small()));
    let other = Identity {
        cluster_id: 0xc1,
        member_id: 0x2,
    };
    let err = LogStore::open(fs.clone(), dir(), other, small()).unwrap_err();
    assert!(
        matches!(err, Error::IdentityMismatch { found, .. } if found == ID),
        "{err}"
    );
}

fn write_some(fs: &SimFs, n: u64) {
    let (mut log, _) = open(fs, small());
    for i in 1..=n {
        log.save(Some(hs(1, 1, i - 1)), &[entry(i, 1)]).unwrap();
    }
}

/// Offset of the `k`th record (0-based) in a segment image.
fn record_offset(data: &[u8], k: usize) -> u64 {
    let mut pos = 0usize;
    for _ in 0..k {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 8 + len;
    }
    pos as u64
}

#[test]
fn a_bit_flip_in_the_middle_is_reported_with_file_and_offset() {
    let fs = SimFs::new(11);
    write_some(&fs, 10);
    let seg = segment_files(&fs)[0].clone();
    let data = fs.contents(&seg).unwrap();
    let at = record_offset(&data, 4);
    fs.flip_bit(&seg, at + 12, 3).unwrap();
    let err = LogStore::open(fs.clone(), dir(), ID, small()).unwrap_err();
    match err {
        Error::Corrupt { file, offset, .. } => {
            assert_eq!(file, seg);
            assert_eq!(offset, at);
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn a_bit_flip_in_an_earlier_segment_is_reported() {
    let fs = SimFs::new(12);
    write_some(&fs, 100);
    let segs = segment_files(&fs);
    assert!(segs.len() >= 2);
    let data = fs.contents(&segs[0]).unwrap();
    // The last record of a sealed segment: no later record in that file, still corruption.
    let mut k = 2;
    while record_offset(&data, k + 1) < data.len() as u64
        && data[record_offset(&data, k + 1) as usize] != 0
    {
        k += 1;
    }
    let at = record_offset(&data, k);
    fs.flip_bit(&segs[0], at + 20, 0).unwrap();
    let err = LogStore::open(fs.clone(), dir(), ID, small()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { file, offset, .. } if *file == segs[0] && *offset == at),
        "{err}"
    );
}

#[test]
fn garbage_in_the_middle_is_reported() {
    let fs = SimFs::new(13);
    write_some(&fs, 10);
    let seg = segment_files(&fs)[0].clone();
    let data = fs.contents(&seg).unwrap();
    let at = record_offset(&data, 5);
    fs.corrupt(&seg, at, &[0xAB; 7]).unwrap();
    assert!(matches!(
        LogStore::open(fs.clone(), dir(), ID, small()),
        Err(Error::Corrupt { offset, .. }) if offset == at
    ));
}

#[test]
fn a_torn_tail_is_cut_and_writing_continues() {
    let fs = SimFs::new(14);
    write_some(&fs, 10);
    let seg = segment_files(&fs)[0].clone();
    let data = fs.contents(&seg).unwrap();
    let last = record_offset(&data, 2 + 2 * 10 - 1);
    let end = record_offset(&data, 2 + 2 * 10);
    // Tear the last record (the hard state of entry 10): half of it is gone.
    let half = (last + end) / 2;
    fs.corrupt(&seg, half, &vec![0u8; (end - half) as usize])
        .unwrap();
    let (mut log, rec) = open(&fs, small());
    let torn = rec.torn_tail.expect("torn tail reported");
    assert_eq!((torn.file, torn.offset), (seg.clone(), last));
    assert_eq!(log.last_index(), 10);
    assert_eq!(log.hard_state(), hs(1, 1, 8));
    log.save(Some(hs(1, 1, 9)), &[entry(11, 1)]).unwrap();
    drop(log);
    fs.crash();
    let (log, rec) = open(&fs, small());
    assert!(rec.torn_tail.is_none());
    assert_eq!(all_entries(&log), entries(1..=11, 1));
}

#[test]
fn a_missing_segment_is_reported() {
    let fs = SimFs::new(15);
    write_some(&fs, 200);
    let segs = segment_files(&fs);
    assert!(segs.len() >= 3);
    fs.remove(&segs[1]).unwrap();
    assert!(matches!(
        LogStore::open(fs.clone(), dir(), ID, small()),
        Err(Error::MissingSegment { .. })
    ));
}

#[test]
fn a_missing_first_segment_is_reported() {
    let fs = SimFs::new(16);
    write_some(&fs, 200);
    let segs = segment_files(&fs);
    fs.remove(&segs[0]).unwrap();
    let err = LogStore::open(fs.clone(), dir(), ID, small()).unwrap_err();
    assert!(matches!(err, Error::MissingSegment { .. }), "{err}");
}

#[test]
fn sync_handle_syncs_from_another_thread() {
    let fs = SimFs::new(18);
    let (mut log, _) = open(&fs, small());
    let handle = log.sync_handle();
    let t1 = log.append(Some(hs(1, 1, 0)), &entries(1..=3, 1)).unwrap();
    let t2 = log.append(None, &entries(4..=6, 1)).unwrap();
    assert!(t2 > t1);
    assert_eq!(handle.durable(), 0);
    let durable = std::thread::spawn(move || handle.sync().unwrap())
        .join()
        .unwrap();
    assert_eq!(durable, t2);
    drop(log);
    fs.crash();
    let (log, _) = open(&fs, small());
    assert_eq!(log.last_index(), 6);
}

#[test]
fn metrics_count_bytes_and_fsyncs() {
    let registry = prometheus::Registry::new();
    let metrics = WalMetrics::new().unwrap();
    metrics.register(&registry).unwrap();
    let fs = SimFs::new(19);
    let (mut log, _) = open(
        &fs,
        WalOptions {
            metrics: Some(metrics.clone()),
            ..small()
        },
    );
    log.save(Some(hs(1, 1, 0)), &entries(1..=3, 1)).unwrap();
    assert!(metrics.write_bytes.get() > 3 * 30);
    assert_eq!(metrics.fsync_duration.get_sample_count(), 1);
    let names: Vec<String> = registry
        .gather()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    assert!(names.contains(&"etcd_disk_wal_fsync_duration_seconds".to_string()));
    assert!(names.contains(&"etcd_disk_wal_write_bytes_total".to_string()));
}

#[test]
fn leftover_temporary_segment_is_removed() {
    let fs = SimFs::new(20);
    write_some(&fs, 3);
    let tmp = dir().join("0000000000000001-0000000000000004.wal.tmp");
    fs.create(&tmp).unwrap();
    let (log, _) = open(&fs, small());
    assert_eq!(log.last_index(), 3);
    assert!(!fs.exists(Path::new(&tmp)).unwrap());
}

#[test]
fn a_failed_fdatasync_poisons_the_log_and_recovery_sees_only_synced_data() {
    let fs = SimFs::new(21);
    let (mut log, _) = open(&fs, small());
    log.save(Some(hs(1, 1, 0)), &entries(1..=3, 1)).unwrap();
    log.append(Some(hs(1, 1, 3)), &entries(4..=5, 1)).unwrap();
    fs.fail_next_syncs(1);
    assert!(matches!(log.sync(), Err(Error::Io { .. })));
    assert!(matches!(log.sync(), Err(Error::Poisoned)));
    assert!(matches!(
        log.append(None, &entries(6..=6, 1)),
        Err(Error::Poisoned)
    ));
    drop(log);
    fs.crash();
    let (log, _) = open(&fs, small());
    assert_eq!(all_entries(&log), entries(1..=3, 1));
}

#[test]
fn a_failed_write_poisons_the_log() {
    let fs = SimFs::new(22);
    let (mut log, _) = open(&fs, small());
    log.save(Some(hs(1, 1, 0)), &entries(1..=3, 1)).unwrap();
    fs.fail_next_writes(1);
    assert!(matches!(
        log.append(None, &entries(4..=4, 1)),
        Err(Error::Io { .. })
    ));
    assert_eq!(
        log.last_index(),
        3,
        "a failed write changes nothing in memory"
    );
    assert!(matches!(
        log.save(None, &entries(4..=4, 1)),
        Err(Error::Poisoned)
    ));
}

#[test]
fn concurrent_syncs_while_writing_and_rolling_segments() {
    let fs = SimFs::new(23);
    let (mut log, _) = open(&fs, small());
    let handle = log.sync_handle();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let syncer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut best = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let durable = handle.sync().unwrap();
                assert!(durable >= best, "durable ticket went back");
                best = durable;
            }
            best
        })
    };
    // Ticket t wrote entry t (one entry per append, no hard state).
    let mut index_of_ticket = vec![0u64];
    for i in 1..=400u64 {
        let t = log.append(None, &[entry(i, 1)]).unwrap();
        assert_eq!(t as usize, index_of_ticket.len());
        index_of_ticket.push(i);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let durable = syncer.join().unwrap();
    assert!(log.segment_count() > 3, "segments rolled during the test");
    drop(log);
    fs.crash();
    let (log, _) = open(&fs, small());
    let reported = index_of_ticket[durable as usize];
    assert!(
        log.last_index() >= reported,
        "ticket {durable} (entry {reported}) was reported durable, recovered {}",
        log.last_index()
    );
    assert_eq!(all_entries(&log), entries(1..=log.last_index(), 1));
}

#[test]
fn handles_can_move_across_threads() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<LogStore<quorum_storage::RealFs>>();
    send::<LogStore<SimFs>>();
    send_sync::<quorum_storage::SyncHandle<quorum_storage::fs::RealFile>>();
    send_sync::<SimFs>();
    send::<quorum_storage::SnapshotStore<quorum_storage::RealFs>>();
}

#[test]
fn a_damaged_length_in_the_last_segment_is_not_mistaken_for_a_torn_tail() {
    // Preallocated segment: a length pointing far ahead still "fits" in the file.
    let fs = SimFs::new(24);
    let opts = WalOptions {
        segment_size: 1 << 20,
        ..WalOptions::default()
    };
    {
        let (mut log, _) = open(&fs, opts.clone());
        for i in 1..=10 {
            log.save(Some(hs(1, 1, i - 1)), &[entry(i, 1)]).unwrap();
        }
    }
    let seg = segment_files(&fs)[0].clone();
    let data = fs.contents(&seg).unwrap();
    let at = record_offset(&data, 6);
    // Set bit 17 of the length: +128 KiB, within the 1 MiB preallocated file.
    fs.flip_bit(&seg, at + 2, 1).unwrap();
    let err = LogStore::open(fs.clone(), dir(), ID, opts).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { offset, .. } if *offset == at),
        "{err}"
    );
}

#[test]
fn default_options_on_simfs_recover_through_the_preallocated_tail() {
    // What the simulator gets with default options: 64 MiB preallocated (sparse) segments.
    let fs = SimFs::new(25);
    let (mut log, _) = LogStore::open(fs.clone(), dir(), ID, WalOptions::default()).unwrap();
    log.save(Some(hs(1, 1, 0)), &entries(1..=20, 1)).unwrap();
    log.append(Some(hs(1, 1, 20)), &entries(21..=30, 1))
        .unwrap();
    drop(log);
    fs.crash_torn();
    let (log, rec) = LogStore::open(fs.clone(), dir(), ID, WalOptions::default()).unwrap();
    assert!(rec.last_index >= 20);
    assert_eq!(all_entries(&log), entries(1..=rec.last_index, 1));
    let seg = &segment_files(&fs)[0];
    let size = quorum_storage::FsFile::size(&fs.open(seg).unwrap()).unwrap();
    assert_eq!(size, quorum_storage::DEFAULT_SEGMENT_SIZE);
}
