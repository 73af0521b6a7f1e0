//! The server's member core in the simulator: determinism, a quick sweep across the fault
//! mixes (linearizability, Raft invariants and watch guarantees checked on every run), and
//! crash-heavy runs through WAL recovery and store reopening.

use quorum_sim::{run, sweep, FaultMix, SimConfig};

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn core_run_replays_identically() {
    let mut cfg = SimConfig::core_from_seed(7);
    cfg.members = 3;
    cfg.faults = FaultMix::all();
    let a = run(&cfg).unwrap_or_else(|f| panic!("{f}"));
    let b = run(&cfg).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(a, b, "core seed 7 did not replay identically");
    assert!(a.ok_ops > 10 && a.applied_entries > 10, "{a:?}");
}

#[test]
fn core_quick_sweep_passes() {
    let report = sweep(
        0,
        16,
        threads(),
        1,
        None,
        &SimConfig::core_from_seed,
        &|_, _| {},
    );
    if let Some(f) = report.failures.first() {
        panic!("{f}");
    }
    assert_eq!(report.seeds, 16);
    assert!(report.ops > 16 * 20, "too few operations: {}", report.ops);
}

#[test]
fn core_survives_crashes_and_leader_churn() {
    let configure = |seed: u64| {
        let mut cfg = SimConfig::core_from_seed(seed);
        cfg.members = cfg.members.max(3);
        cfg.faults = FaultMix {
            crashes: true,
            pauses: true,
            leader_churn: true,
            ..FaultMix::none()
        };
        cfg
    };
    let report = sweep(900, 8, threads(), 1, None, &configure, &|_, _| {});
    if let Some(f) = report.failures.first() {
        panic!("{f}");
    }
    assert_eq!(report.seeds, 8);
}

#[test]
fn failure_report_names_the_core_replay_command() {
    let cfg = SimConfig::core_from_seed(42);
    assert_eq!(
        cfg.replay_command(),
        "cargo run -p quorum-sim --release -- --seed 42 --core --trace"
    );
}

/// The checks are not vacuous on the core: serving reads from the local store without a
/// ReadIndex round is caught by the linearizability check within a bounded number of seeds,
/// and the same seed passes without the planted bug.
#[test]
fn core_local_reads_are_caught() {
    use quorum_sim::core_member::CoreMember;
    use quorum_sim::run_with;
    let configure = |seed: u64| {
        let mut cfg = SimConfig::core_from_seed(seed);
        cfg.members = 3;
        cfg.faults = FaultMix {
            partitions: true,
            pauses: true,
            flaky_network: true,
            ..FaultMix::none()
        };
        cfg
    };
    let mut caught = None;
    for seed in 300..312u64 {
        let cfg = configure(seed);
        let result = run_with(&cfg, |id, params| {
            CoreMember::new(id, params, seed ^ id, false).map(CoreMember::with_local_reads)
        });
        if let Err(f) = result {
            assert_eq!(f.check, "linearizability", "{f}");
            caught = Some(seed);
            break;
        }
    }
    let seed = caught.expect("local reads were not caught within 12 seeds");
    run(&configure(seed)).unwrap_or_else(|f| panic!("without the bug: {f}"));
}
