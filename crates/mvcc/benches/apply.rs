//! Benchmark (plain main): apply throughput, range latency and memory at 1M keys.
//!
//! `CARGO_TARGET_DIR=/work/target-mvcc cargo bench -p quorum-mvcc --bench apply`
//! Set `MVCC_BENCH_KEYS` to change the key count (default 1,000,000).

use quorum_mvcc::*;
use std::time::{Duration, Instant};

const VALUE_BYTES: usize = 256;

fn status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l.trim_start_matches(field).trim().to_string())
        })
        .unwrap_or_else(|| "n/a".to_string())
}

fn put(key: String, value: &[u8]) -> WriteRequest {
    WriteRequest::Put(PutRequest {
        key: key.into_bytes(),
        value: value.to_vec(),
        ..Default::default()
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn throughput(batch: usize, total: usize, durable: bool) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(
        dir.path().join("db"),
        StoreOptions {
            durable,
            ..StoreOptions::default()
        },
    )
    .expect("open");
    let value = vec![b'x'; VALUE_BYTES];
    let mut index = 0u64;
    let start = Instant::now();
    let mut done = 0;
    while done < total {
        let entries: Vec<(u64, WriteRequest)> = (0..batch)
            .map(|i| {
                index += 1;
                (
                    index,
                    put(format!("bench/{:08}", (done + i) % 100_000), &value),
                )
            })
            .collect();
        store.apply(&entries).expect("apply");
        done += batch;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let n: usize = std::env::var("MVCC_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!("# quorum-mvcc apply benchmark ({VALUE_BYTES}-byte values)");
    let skip_throughput = std::env::var("MVCC_BENCH_SKIP_THROUGHPUT").is_ok();
    for (batch, total) in [(1usize, 2_000usize), (100, 50_000), (1000, 200_000)] {
        if skip_throughput {
            break;
        }
        let durable = throughput(batch, total, true);
        let relaxed = throughput(batch, total.min(50_000), false);
        println!(
            "puts/s batch {batch:>4}: {durable:>10.0} (fsync per batch)  {relaxed:>10.0} (no fsync)"
        );
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let cache_bytes = std::env::var("MVCC_BENCH_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(StoreOptions::default().cache_bytes, |mb| mb * 1024 * 1024);
    let open = || {
        let opts = StoreOptions {
            cache_bytes,
            ..StoreOptions::default()
        };
        Store::open(dir.path().join("db"), opts).expect("open")
    };
    let store = open();
    let value = vec![b'v'; VALUE_BYTES];
    let rss_before = status("VmRSS:");
    let start = Instant::now();
    let mut index = 0u64;
    // keys key/PPPP/III: 1000 prefixes of 1000 keys at 1M
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let entries: Vec<(u64, WriteRequest)> = chunk
            .iter()
            .map(|i| {
                index += 1;
                (
                    index,
                    put(format!("key/{:04}/{:03}", i / 1000, i % 1000), &value),
                )
            })
            .collect();
        store.apply(&entries).expect("apply");
    }
    let load = start.elapsed();
    println!(
        "load {n} keys in batches of 1000: {:.1} s ({:.0} puts/s)",
        load.as_secs_f64(),
        n as f64 / load.as_secs_f64()
    );

    let mut x: u64 = 42;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as usize
    };
    let mut single = Vec::new();
    for _ in 0..20_000 {
        let i = next() % n;
        let req = RangeRequest {
            key: format!("key/{:04}/{:03}", i / 1000, i % 1000).into_bytes(),
            ..Default::default()
        };
        let t = Instant::now();
        let r = store.range(&req).expect("range");
        single.push(t.elapsed());
        assert_eq!(r.kvs.len(), 1);
    }
    single.sort();
    let prefixes = (n / 1000).max(1);
    let mut prefix = Vec::new();
    for _ in 0..500 {
        let p = next() % prefixes;
        let req = RangeRequest {
            key: format!("key/{p:04}/").into_bytes(),
            range_end: format!("key/{p:04}0").into_bytes(),
            ..Default::default()
        };
        let t = Instant::now();
        let r = store.range(&req).expect("range");
        prefix.push(t.elapsed());
        assert_eq!(r.kvs.len(), 1000.min(n));
    }
    prefix.sort();
    let mut count_only = Vec::new();
    for _ in 0..5 {
        let req = RangeRequest {
            key: b"key/".to_vec(),
            range_end: b"key0".to_vec(),
            count_only: true,
            ..Default::default()
        };
        let t = Instant::now();
        let r = store.range(&req).expect("range");
        count_only.push(t.elapsed());
        assert_eq!(r.count as usize, n);
    }
    let first_count = count_only[0];
    count_only.sort();
    // paginated list at a fixed, new revision (each page counts the rest of the range)
    index += 1;
    store
        .apply(&[(index, put("key/zzzz".to_string(), &value))])
        .expect("apply");
    let rev = store.current_revision().expect("rev");
    let mut pages = Vec::new();
    let mut start = b"key/".to_vec();
    for _ in 0..200 {
        let req = RangeRequest {
            key: start.clone(),
            range_end: b"key0".to_vec(),
            limit: 500,
            revision: rev,
            ..Default::default()
        };
        let t = Instant::now();
        let r = store.range(&req).expect("range");
        pages.push(t.elapsed());
        start = r.kvs.last().map(|kv| kv.key.clone()).unwrap_or_default();
        start.push(0);
    }
    let first_page = pages[0];
    pages.sort();
    println!(
        "single-key range at {n} keys: p50 {:?} p99 {:?}",
        percentile(&single, 0.5),
        percentile(&single, 0.99)
    );
    println!(
        "1000-key prefix range at {n} keys: p50 {:?} p99 {:?}",
        percentile(&prefix, 0.5),
        percentile(&prefix, 0.99)
    );
    println!(
        "count_only over all {n} keys (index walk): first {first_count:?}, p50 {:?}",
        percentile(&count_only, 0.5)
    );
    println!(
        "paginated list (limit 500, with count) at {n} keys: first page {first_page:?}, next pages p50 {:?} p99 {:?}",
        percentile(&pages, 0.5),
        percentile(&pages, 0.99)
    );
    println!(
        "memory: RSS before load {rss_before}, after {} (peak {}); db file {} MiB, in use {} MiB",
        status("VmRSS:"),
        status("VmHWM:"),
        store.db_size().unwrap_or(0) / (1024 * 1024),
        store.refresh_usage().unwrap_or(0) / (1024 * 1024)
    );
    drop(store);
    let t = Instant::now();
    let store = open();
    println!(
        "reopen at {n} keys (key index rebuilt from the history table): {:?}, revision {}",
        t.elapsed(),
        store.current_revision().unwrap_or(0)
    );
}
