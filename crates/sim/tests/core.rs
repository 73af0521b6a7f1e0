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

/// The lease check is not vacuous: members that acknowledge keep-alives without renewing
/// let the lease expire under a holder that kept it alive, which the lease safety check
/// reports; the same seed passes with the real keep-alive path.
#[test]
fn core_fake_keepalives_are_caught() {
    use quorum_sim::core_member::CoreMember;
    use quorum_sim::run_with;
    let configure = |seed: u64| {
        let mut cfg = SimConfig::core_from_seed(seed);
        cfg.members = 3;
        cfg.faults = FaultMix::none();
        cfg
    };
    let mut caught = None;
    for seed in 400..408u64 {
        let cfg = configure(seed);
        let result = run_with(&cfg, |id, params| {
            CoreMember::new(id, params, seed ^ id, false).map(CoreMember::with_fake_keepalives)
        });
        if let Err(f) = result {
            assert_eq!(f.check, "lease safety", "{f}");
            caught = Some(seed);
            break;
        }
    }
    let seed = caught.expect("fake keep-alives were not caught within 8 seeds");
    run(&configure(seed)).unwrap_or_else(|f| panic!("without the bug: {f}"));
}

/// One core member driven by hand: it elects itself, applies writes, answers a read through
/// ReadIndex, and its checked watcher sees every write and progress notifications; a crash
/// and restart resumes the watch without a gap.
#[test]
fn single_core_member_by_hand() {
    use quorum_lincheck::{Input, Output};
    use quorum_sim::core_member::CoreMember;
    use quorum_sim::member::{ClientRequest, Member, MemberOutput, MemberParams, Reply};
    let params = MemberParams {
        voters: vec![1],
        initial: Default::default(),
        tweak: None,
        seed: 5,
        max_msg_bytes: 64 * 1024,
    };
    let mut m = CoreMember::new(1, params, 9, true).unwrap();
    let mut out = MemberOutput::default();
    let step = |m: &mut CoreMember, out: &mut MemberOutput, ticks: usize| {
        for _ in 0..ticks {
            m.tick();
            m.drive(out);
        }
    };
    step(&mut m, &mut out, 30);
    assert_eq!(m.status().leader, 1, "a single member elects itself");
    let put = |op_id: u64, v: &str| ClientRequest {
        client: 1,
        seq: op_id,
        op_id,
        input: Input::Put {
            key: "k".into(),
            value: v.into(),
        },
    };
    for (i, v) in ["a", "b", "c"].iter().enumerate() {
        m.submit(put(i as u64, v));
        step(&mut m, &mut out, 1);
    }
    m.submit(ClientRequest {
        client: 1,
        seq: 9,
        op_id: 9,
        input: Input::Get { key: "k".into() },
    });
    step(&mut m, &mut out, 10);
    let done: Vec<(u64, Output)> = out
        .replies
        .iter()
        .filter_map(|(_, r)| match r {
            Reply::Done { op_id, output } => Some((*op_id, output.clone())),
            Reply::Refused { .. } => None,
        })
        .collect();
    assert_eq!(
        done,
        vec![
            (0, Output::Put),
            (1, Output::Put),
            (2, Output::Put),
            (
                9,
                Output::Get {
                    value: Some("c".into())
                }
            ),
        ]
    );
    assert_eq!(m.data().get("k").map(String::as_str), Some("c"));
    assert!(m.durable_last_index() >= 4, "no-op + 3 puts in the WAL");
    let w = m.watch_checker().unwrap();
    assert_eq!(w.events(), 3);
    assert!(w.progress_notifications() > 0);
    m.crash_restart();
    step(&mut m, &mut out, 30);
    m.submit(put(10, "d"));
    step(&mut m, &mut out, 5);
    assert_eq!(m.watch_checker().unwrap().events(), 4);
    m.final_check().unwrap();
}

/// The bank workload and the lease holder on the core, with crashes and partitions and
/// snapshots every 16 entries: the bank total holds in every read and every store, histories
/// are linearizable, the leased key survives while kept alive and is gone after expiry.
#[test]
fn core_bank_and_leases_under_faults() {
    let configure = |seed: u64| {
        let mut cfg = SimConfig::core_from_seed(seed);
        cfg.members = 3;
        cfg.workload = quorum_sim::workload::Workload::Bank;
        cfg.faults = FaultMix {
            crashes: true,
            partitions: true,
            clock_skew: true,
            ..FaultMix::none()
        };
        cfg.core_snapshots = Some((16, 2));
        cfg
    };
    let mut renewed = 0;
    let mut expiry_checked = 0;
    let mut snapshots = 0;
    for seed in 2000..2006 {
        let r = run(&configure(seed)).unwrap_or_else(|f| panic!("{f}"));
        assert!(r.ok_ops > 20, "{r:?}");
        renewed += r.lease_renewed;
        expiry_checked += u64::from(r.lease_expiry_checked);
        snapshots += r.snapshots_received;
    }
    assert!(renewed >= 6, "keep-alives answered: {renewed}");
    assert!(expiry_checked >= 1, "no run checked the lease's expiry");
    // Members that were down or cut off while the log was compacted catch up from a
    // snapshot sent over the simulated network.
    assert!(snapshots >= 1, "no snapshot was ever transferred");
}
