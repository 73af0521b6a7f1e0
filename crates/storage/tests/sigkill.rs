//! Real-disk crash test: a child process (this test binary re-run with an environment
//! variable) appends and syncs, printing each durable index; the parent kills it with SIGKILL
//! at a random moment and checks that recovery yields every entry reported durable.

use bytes::Bytes;
use quorum_raft::{Entry, HardState, Storage};
use quorum_storage::{Identity, LogStore, RealFs, WalOptions};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CHILD_ENV: &str = "QUORUM_STORAGE_SIGKILL_CHILD_DIR";
const ID: Identity = Identity {
    cluster_id: 3,
    member_id: 4,
};

fn opts() -> WalOptions {
    WalOptions {
        segment_size: 256 * 1024,
        ..WalOptions::default()
    }
}

/// The content of entry `index`: a function of the index only, so a re-written entry is
/// identical to the lost one.
fn entry(index: u64) -> Entry {
    let len = (index * 37 % 500) as usize;
    Entry {
        index,
        term: 1,
        data: Bytes::from(
            (0..len)
                .map(|i| (index as u8).wrapping_add(i as u8))
                .collect::<Vec<u8>>(),
        ),
        ..Entry::default()
    }
}

/// The child's role; does nothing unless started by the parent.
#[test]
fn sigkill_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mut log, rec) = LogStore::open(RealFs, &dir, ID, opts()).unwrap();
    let mut next = rec.last_index + 1;
    let mut out = std::io::stdout().lock();
    loop {
        let n = 1 + next % 17;
        let batch: Vec<Entry> = (next..next + n).map(entry).collect();
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: next - 1,
        };
        log.save(Some(hs), &batch).unwrap();
        next += n;
        writeln!(out, "durable {}", next - 1).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_loses_nothing_reported_durable() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let exe = std::env::current_exe().unwrap();
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut durable_before = 0;
    for round in 0..4 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "sigkill_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        let reader = std::thread::spawn(move || {
            let mut max = 0u64;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("durable ") {
                    max = max.max(n.parse().unwrap());
                    let _ = tx.send(max);
                }
            }
            max
        });
        // Start the random delay once the child is writing (process start-up takes long on a
        // loaded machine), so that the kill lands in the middle of appends.
        let first = rx.recv_timeout(Duration::from_secs(60));
        assert!(
            first.is_ok(),
            "round {round}: the child never reported progress"
        );
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 300));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let durable = reader.join().unwrap();
        assert!(
            durable > durable_before,
            "round {round}: the child made no progress"
        );
        let (log, rec) = LogStore::open(RealFs, &dir, ID, opts()).unwrap();
        assert!(
            rec.last_index >= durable,
            "round {round}: reported durable up to {durable}, recovered only {}",
            rec.last_index
        );
        let all = log.entries(1, rec.last_index + 1, u64::MAX).unwrap();
        for e in &all {
            assert_eq!(
                e,
                &entry(e.index),
                "round {round}: entry {} differs",
                e.index
            );
        }
        durable_before = durable;
    }
}
