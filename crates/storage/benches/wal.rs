//! WAL append throughput against the raw write + fdatasync rate of the same disk.
//!
//! For batches of 1, 10, 100 and 1000 entries of 256 bytes, each batch written and synced
//! (one Ready), measures entries/s and payload MB/s of `LogStore::save`, next to `pwrite` +
//! `fdatasync` of the same payload bytes (no framing) on a file preallocated the same way,
//! measured in the same run, interleaved. Run with
//! `cargo bench -p quorum-storage --bench wal` (set `WAL_BENCH_DIR` to pick the disk and
//! `WAL_BENCH_SECS` to change the time per measurement).

use bytes::Bytes;
use quorum_raft::{Entry, HardState};
use quorum_storage::{FileSystem, FsFile, Identity, LogStore, RealFs, WalOptions};
use std::path::Path;
use std::time::{Duration, Instant};

const ENTRY_SIZE: usize = 256;
const ROUNDS: usize = 10;

struct Sample {
    batches: u64,
    elapsed: Duration,
}

fn raw(dir: &Path, batch: usize, budget: Duration) -> Sample {
    let path = dir.join("raw.dat");
    let fresh = || {
        let _ = std::fs::remove_file(&path);
        let file = RealFs.create(&path).unwrap();
        file.preallocate(quorum_storage::DEFAULT_SEGMENT_SIZE)
            .unwrap();
        file.sync_all().unwrap();
        file
    };
    let mut file = fresh();
    let payload = vec![0x5au8; batch * ENTRY_SIZE];
    let mut offset = 0u64;
    let mut batches = 0;
    let start = Instant::now();
    while start.elapsed() < budget {
        if offset + payload.len() as u64 > quorum_storage::DEFAULT_SEGMENT_SIZE {
            // Like the WAL, continue in a new preallocated file rather than overwrite.
            file = fresh();
            offset = 0;
        }
        file.write_at(offset, &payload).unwrap();
        file.sync_data().unwrap();
        offset += payload.len() as u64;
        batches += 1;
    }
    Sample {
        batches,
        elapsed: start.elapsed(),
    }
}

fn wal(dir: &Path, batch: usize, budget: Duration) -> Sample {
    let wal_dir = dir.join("wal");
    let _ = std::fs::remove_dir_all(&wal_dir);
    let id = Identity {
        cluster_id: 1,
        member_id: 1,
    };
    let (mut log, _) = LogStore::open(RealFs, &wal_dir, id, WalOptions::default()).unwrap();
    let data = Bytes::from(vec![0x5au8; ENTRY_SIZE]);
    let mut next = 1u64;
    let mut batches = 0;
    let start = Instant::now();
    while start.elapsed() < budget {
        let entries: Vec<Entry> = (next..next + batch as u64)
            .map(|index| Entry {
                index,
                term: 1,
                data: data.clone(),
                ..Entry::default()
            })
            .collect();
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: next - 1,
        };
        log.save(Some(hs), &entries).unwrap();
        next += batch as u64;
        batches += 1;
        if batches % 64 == 0 && next > 200_000 {
            log.compact(next - batch as u64 - 1).unwrap();
        }
    }
    Sample {
        batches,
        elapsed: start.elapsed(),
    }
}

fn rate(samples: &[Sample], batch: usize) -> (f64, f64) {
    let batches: u64 = samples.iter().map(|s| s.batches).sum();
    let secs: f64 = samples.iter().map(|s| s.elapsed.as_secs_f64()).sum();
    let entries = batches as f64 * batch as f64 / secs;
    (entries, entries * ENTRY_SIZE as f64 / 1e6)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing special: keep the
    // run short there.
    let quick = !std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("WAL_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 0.05 } else { 1.0 });
    let budget = Duration::from_secs_f64(secs);
    let base = std::env::var("WAL_BENCH_DIR")
        .unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    let tmp = tempfile::tempdir_in(base).unwrap();
    println!(
        "{:>6} | {:>14} {:>9} | {:>14} {:>9} | {:>7}",
        "batch", "raw entries/s", "raw MB/s", "wal entries/s", "wal MB/s", "wal/raw"
    );
    for batch in [1usize, 10, 100, 1000] {
        let mut raws = Vec::new();
        let mut wals = Vec::new();
        for _ in 0..ROUNDS {
            raws.push(raw(tmp.path(), batch, budget));
            wals.push(wal(tmp.path(), batch, budget));
        }
        let (re, rm) = rate(&raws, batch);
        let (we, wm) = rate(&wals, batch);
        println!(
            "{batch:>6} | {re:>14.0} {rm:>9.2} | {we:>14.0} {wm:>9.2} | {:>6.1}%",
            100.0 * we / re
        );
    }
}
