//! Randomised crash tests on the simulated file system: random appends (with truncations),
//! syncs, snapshots, compactions, configuration changes and crashes (clean power loss or torn
//! writes). After every crash the recovered log must be exactly one of the states the log
//! passed through since the last explicit sync: everything synced is there, and nothing that
//! was not written appears.

use bytes::Bytes;
use quorum_raft::{ConfState, Entry, HardState, SnapshotMetadata, Storage};
use quorum_storage::{Identity, LogStore, SimFs, WalOptions};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

const ID: Identity = Identity {
    cluster_id: 1,
    member_id: 1,
};

/// The observable state of a log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    hs: HardState,
    cs: ConfState,
    compacted: (u64, u64),
    entries: Vec<Entry>,
}

impl Model {
    fn last(&self) -> u64 {
        self.entries.last().map_or(self.compacted.0, |e| e.index)
    }

    fn term(&self, index: u64) -> u64 {
        if index == self.compacted.0 {
            return self.compacted.1;
        }
        self.entries[(index - self.compacted.0 - 1) as usize].term
    }

    fn observe(log: &LogStore<SimFs>) -> Model {
        let (first, last) = (log.first_index(), log.last_index());
        Model {
            hs: log.hard_state(),
            cs: log.conf_state().clone(),
            compacted: (first - 1, log.term(first - 1).unwrap()),
            entries: log.entries(first, last + 1, u64::MAX).unwrap(),
        }
    }

    fn append(&mut self, ents: &[Entry]) {
        if let Some(f) = ents.first() {
            self.entries
                .truncate((f.index - self.compacted.0 - 1) as usize);
            self.entries.extend_from_slice(ents);
        }
    }
}

fn open(fs: &SimFs, opts: &WalOptions) -> LogStore<SimFs> {
    LogStore::open(fs.clone(), Path::new("/wal"), ID, opts.clone())
        .unwrap()
        .0
}

fn random_conf(rng: &mut ChaCha8Rng) -> ConfState {
    let n = rng.random_range(1..=5u64);
    ConfState {
        voters: (1..=n).collect(),
        learners: if rng.random_bool(0.3) {
            vec![9]
        } else {
            vec![]
        },
        ..ConfState::default()
    }
}

/// Runs one seed; returns how many recoveries cut a torn tail.
fn run(seed: u64, steps: usize) -> usize {
    let fs = SimFs::new(seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let opts = WalOptions {
        segment_size: 4096 + rng.random_range(0..8192),
        ..WalOptions::default()
    };
    let mut log = open(&fs, &opts);
    let mut model = Model::default();
    // States the disk may hold after a crash: [0] is the state at the last sync.
    let mut history = vec![model.clone()];
    let mut crashes = 0;
    let mut torn_tails = 0;
    for step in 0..steps {
        let op = rng.random_range(0..100);
        match op {
            0..=44 => {
                // A torn write can keep entries of a new term without the hard state that
                // raised the term: the current term is the higher of the two.
                let current = model.hs.term.max(model.term(model.last()));
                let bump = current == 0 || rng.random_bool(0.1);
                let term = current + u64::from(bump);
                let bump = term != model.hs.term;
                let vote = if bump || model.hs.vote == 0 {
                    rng.random_range(0..4)
                } else {
                    model.hs.vote
                };
                let lo = model.hs.commit.max(model.compacted.0) + 1;
                let f = rng.random_range(lo..=model.last() + 1);
                let n = rng.random_range(0..5u64);
                let ents: Vec<Entry> = (f..f + n)
                    .map(|index| {
                        let len = rng.random_range(0..120);
                        let data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                        Entry {
                            index,
                            term,
                            data: Bytes::from(data),
                            ..Entry::default()
                        }
                    })
                    .collect();
                let new_last = if n > 0 { f + n - 1 } else { model.last() };
                let write_hs = bump || rng.random_bool(0.7);
                let hs = write_hs.then(|| HardState {
                    term,
                    vote,
                    commit: rng.random_range(model.hs.commit..=new_last),
                });
                log.append(hs, &ents).unwrap();
                if n > 0 {
                    model.append(&ents);
                    history.push(model.clone());
                }
                if let Some(hs) = hs {
                    model.hs = hs;
                    history.push(model.clone());
                }
            }
            45..=64 => {
                log.sync().unwrap();
                history = vec![model.clone()];
            }
            65..=71 => {
                if model.hs.commit > model.compacted.0 {
                    let idx = rng.random_range(model.compacted.0 + 1..=model.hs.commit);
                    log.compact(idx).unwrap();
                    let term = model.term(idx);
                    model.entries.drain(..(idx - model.compacted.0) as usize);
                    model.compacted = (idx, term);
                    history = vec![model.clone()];
                }
            }
            72..=76 => {
                let idx = model.hs.commit.max(model.compacted.0 + 1) + rng.random_range(0..5);
                let term = model.hs.term.max(1);
                let meta = SnapshotMetadata {
                    index: idx,
                    term,
                    conf_state: random_conf(&mut rng),
                };
                log.apply_snapshot(&quorum_raft::Snapshot {
                    metadata: meta.clone(),
                    data: Bytes::new(),
                })
                .unwrap();
                model.entries.clear();
                model.compacted = (idx, term);
                model.cs = meta.conf_state.clone();
                model.hs.commit = idx;
                if term > model.hs.term {
                    model.hs.term = term;
                    model.hs.vote = 0;
                }
                history.push(model.clone());
            }
            77..=81 => {
                let cs = random_conf(&mut rng);
                log.set_conf_state(cs.clone()).unwrap();
                model.cs = cs;
                history.push(model.clone());
            }
            _ => {
                drop(log);
                if rng.random_bool(0.5) {
                    fs.crash();
                } else {
                    fs.crash_torn();
                }
                crashes += 1;
                let (reopened, recovered) =
                    LogStore::open(fs.clone(), Path::new("/wal"), ID, opts.clone()).unwrap_or_else(
                        |e| panic!("seed {seed} step {step}: recovery failed: {e}"),
                    );
                log = reopened;
                torn_tails += usize::from(recovered.torn_tail.is_some());
                let got = Model::observe(&log);
                assert!(
                    history.contains(&got),
                    "seed {seed} step {step}: recovered state is not one that was written since \
                     the last sync\nrecovered: {got:?}\nsynced: {:?}",
                    history[0]
                );
                model = got;
                history = vec![model.clone()];
            }
        }
        if std::env::var("CRASH_DEBUG").is_ok() {
            eprintln!(
                "step {step} op {op}: hs {:?} compacted {:?} last {} segs {}",
                model.hs,
                model.compacted,
                model.last(),
                log.segment_count()
            );
        }
        assert_eq!(
            Model::observe(&log),
            model,
            "seed {seed} step {step}: live log differs from the model"
        );
    }
    assert!(crashes > 0 || steps < 50, "seed {seed}: no crash exercised");
    torn_tails
}

#[test]
fn random_operations_and_crashes_recover_exactly_what_was_synced() {
    let seeds: u64 = std::env::var("CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let first: u64 = std::env::var("CRASH_FIRST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let steps: usize = std::env::var("CRASH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let mut torn_tails = 0;
    for seed in first..first + seeds {
        torn_tails += run(seed, steps);
    }
    assert!(
        seeds < 20 || torn_tails > seeds as usize / 4,
        "only {torn_tails} torn tails cut in {seeds} seeds: the torn-write path is barely exercised"
    );
}
