//! The checks are not vacuous: each bug planted in the Raft core (test-only switches behind
//! `quorum-raft`'s `bug-injection` feature, enabled only by this crate's dev-dependency) must
//! be caught within a bounded number of seeds, while the same runs without the bug pass.
//!
//! Each hunt uses the fault mix that exposes its bug (as a Jepsen nemesis would be chosen).

use quorum_lincheck::{Checker, History, Verdict};
use quorum_raft::Config;
use quorum_sim::workload::Workload;
use quorum_sim::{sweep, FaultMix, SimConfig, SimFailure};

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs seeds `0..max_seeds` configured by `configure`, with the bug planted by `tweak`, and
/// returns the first failure. Panics if no seed catches it.
fn hunt(
    name: &'static str,
    max_seeds: u64,
    configure: fn(u64) -> SimConfig,
    tweak: fn(&mut Config),
) -> SimFailure {
    assert!(quorum_sim::replay::PLANTS.contains(&name), "{name}");
    let planted = |seed: u64| {
        let mut cfg = configure(seed);
        cfg.tweak = Some(tweak);
        cfg.plant = Some(name);
        cfg
    };
    let report = sweep(0, max_seeds, threads(), 1, None, &planted, &|_, _| {});
    let failure = report
        .failures
        .first()
        .unwrap_or_else(|| panic!("planted bug {name} survived {max_seeds} seeds"));
    eprintln!(
        "{name}: caught at seed {} by {}",
        failure.seed, failure.check
    );
    // The replay command plants the bug again and restores the hunt's settings.
    let text = failure.to_string();
    assert!(
        text.contains(&format!(
            "replay: cargo run -p quorum-sim --release --features bug-injection -- --seed {}",
            failure.seed
        )) && text.contains(&format!("--plant {name}")),
        "{text}"
    );
    // The same seed without the bug passes: the failure is the bug's, not the simulator's.
    let clean = configure(failure.seed);
    if let Err(f) = quorum_sim::run(&clean) {
        panic!("seed {} fails even without the bug:\n{f}", failure.seed);
    }
    failure.clone()
}

fn all_faults(seed: u64) -> SimConfig {
    let mut cfg = SimConfig::from_seed(seed);
    cfg.faults = FaultMix::all();
    cfg.members = cfg.members.max(3);
    cfg
}

/// Stale leaders: paused or cut off leaders that resume and serve queued reads.
fn stale_leaders(seed: u64) -> SimConfig {
    let mut cfg = SimConfig::from_seed(seed);
    cfg.faults = FaultMix {
        pauses: true,
        partitions: true,
        clock_skew: true,
        ..FaultMix::none()
    };
    cfg.workload = Workload::Register;
    cfg.clients = 5;
    cfg.members = cfg.members.max(3);
    cfg.fault_interval_us = (30_000, 150_000);
    cfg
}

#[test]
fn vote_without_log_check_is_caught() {
    let failure = hunt("vote-without-log-check", 40, all_faults, |c| {
        c.bug_vote_without_log_check = true
    });
    assert_eq!(failure.check, "leader completeness");
}

#[test]
fn read_index_without_quorum_is_caught() {
    let failure = hunt("read-index-without-quorum", 80, stale_leaders, |c| {
        c.bug_read_index_without_quorum = true
    });
    assert_eq!(failure.check, "linearizability");
    // The recorded history, exported in the JSON-lines format and read back as another
    // process would, is rejected by the checker on its own.
    let history = failure.history.expect("failure carries its history");
    let mut buf = Vec::new();
    history.write_json_lines(&mut buf).unwrap();
    let reread = History::read_json_lines(buf.as_slice()).unwrap();
    assert!(matches!(
        Checker::new().check(&reread),
        Verdict::NotLinearizable(_)
    ));
}

/// The scripted Figure 8 nemesis (`FaultMix::figure8`) on 3, 5 or 7 members.
fn figure8(seed: u64) -> SimConfig {
    let mut cfg = SimConfig::from_seed(seed);
    cfg.faults = FaultMix::figure8();
    cfg.members = cfg.members.max(3);
    cfg
}

#[test]
fn commit_of_old_terms_by_counting_is_caught() {
    let failure = hunt("commit-old-terms-by-counting", 40, figure8, |c| {
        c.bug_commit_old_terms_by_counting = true
    });
    assert!(
        [
            "leader completeness",
            "state machine safety",
            "committed entry lost"
        ]
        .contains(&failure.check.as_str()),
        "{failure}"
    );
    assert!(failure.to_string().contains("--faults figure8"));
}

#[test]
fn figure8_nemesis_passes_without_the_bug() {
    let report = sweep(0, 12, threads(), 12, None, &figure8, &|_, _| {});
    assert!(report.failures.is_empty(), "{}", report.failures[0]);
    assert_eq!(report.seeds, 12);
}
