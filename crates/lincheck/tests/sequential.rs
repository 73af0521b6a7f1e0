//! Property: a history generated from a sequential execution, with each operation's interval
//! stretched around its linearization point (so overlaps are random but respect real time), is
//! always accepted, including when some outcomes are unknown or failed.

use proptest::prelude::*;
use quorum_lincheck::{
    check, Checker, Compare, History, Input, Operation, Outcome, Output, State, TxnOp, Verdict,
};

const KEYS: [&str; 3] = ["a", "b", "c"];

#[derive(Clone, Debug)]
enum Gen {
    Get(usize),
    Put(usize, u8),
    Cas(usize, Option<u8>, u8),
    Delete(usize),
    Transfer(usize, usize, u8),
    ReadAll,
}

fn gen_op() -> impl Strategy<Value = Gen> {
    prop_oneof![
        (0..3usize).prop_map(Gen::Get),
        (0..3usize, 0..4u8).prop_map(|(k, v)| Gen::Put(k, v)),
        (0..3usize, proptest::option::of(0..4u8), 0..4u8).prop_map(|(k, e, n)| Gen::Cas(k, e, n)),
        (0..3usize).prop_map(Gen::Delete),
        (0..3usize, 0..3usize, 0..3u8).prop_map(|(a, b, n)| Gen::Transfer(a, b, n)),
        Just(Gen::ReadAll),
    ]
}

/// Turns a generated op into a concrete input given the current state (transfers read the
/// balances they compare against, as a client that just read them would).
fn to_input(g: &Gen, state: &State) -> Input {
    let key = |k: &usize| KEYS[*k].to_string();
    match g {
        Gen::Get(k) => Input::Get { key: key(k) },
        Gen::Put(k, v) => Input::Put {
            key: key(k),
            value: v.to_string(),
        },
        Gen::Cas(k, e, n) => Input::Cas {
            key: key(k),
            expected: e.map(|e| e.to_string()),
            new: n.to_string(),
        },
        Gen::Delete(k) => Input::Delete { key: key(k) },
        Gen::Transfer(a, b, n) => {
            let bal = |k: &usize| state.get(&key(k)).cloned();
            let num = |v: &Option<String>| v.as_ref().and_then(|s| s.parse::<u64>().ok());
            let (from, to) = (bal(a), bal(b));
            let amount = u64::from(*n).min(num(&from).unwrap_or(0));
            Input::Txn {
                compares: vec![
                    Compare {
                        key: key(a),
                        value: from.clone(),
                    },
                    Compare {
                        key: key(b),
                        value: to.clone(),
                    },
                ],
                success: vec![
                    TxnOp::Put {
                        key: key(a),
                        value: (num(&from).unwrap_or(0) - amount).to_string(),
                    },
                    TxnOp::Put {
                        key: key(b),
                        value: (num(&to).unwrap_or(0) + amount).to_string(),
                    },
                ],
                failure: vec![TxnOp::Get { key: key(a) }],
            }
        }
        Gen::ReadAll => Input::Txn {
            compares: vec![],
            success: KEYS
                .iter()
                .map(|k| TxnOp::Get { key: k.to_string() })
                .collect(),
            failure: vec![],
        },
    }
}

/// The model's answer to `input` in `state`, and the next state.
fn run(state: &State, input: &Input) -> (Output, State) {
    let holds = |k: &String, v: &Option<String>| state.get(k) == v.as_ref();
    let mut next = state.clone();
    let out = match input {
        Input::Get { key } => Output::Get {
            value: state.get(key).cloned(),
        },
        Input::Put { key, value } => {
            next.insert(key.clone(), value.clone());
            Output::Put
        }
        Input::Cas { key, expected, new } => {
            let ok = holds(key, expected);
            if ok {
                next.insert(key.clone(), new.clone());
            }
            Output::Cas { succeeded: ok }
        }
        Input::Delete { key } => Output::Delete {
            existed: Some(next.remove(key).is_some()),
        },
        Input::Txn {
            compares,
            success,
            failure,
        } => {
            let ok = compares.iter().all(|c| holds(&c.key, &c.value));
            let mut reads = vec![];
            for op in if ok { success } else { failure } {
                match op {
                    TxnOp::Get { key } => reads.push(next.get(key).cloned()),
                    TxnOp::Put { key, value } => {
                        next.insert(key.clone(), value.clone());
                    }
                    TxnOp::Delete { key } => {
                        next.remove(key);
                    }
                }
            }
            Output::Txn {
                succeeded: ok,
                reads,
            }
        }
    };
    (out, next)
}

/// (op, call slack, return slack, fate: 0..8 ok, 8 unknown-applied, 9 unknown-not-applied,
/// 10 failed)
fn gen_history() -> impl Strategy<Value = Vec<(Gen, u64, u64, u8)>> {
    proptest::collection::vec((gen_op(), 0..40u64, 0..40u64, 0..11u8), 0..60)
}

fn build(spec: &[(Gen, u64, u64, u8)]) -> History {
    let mut state = State::new();
    let mut ops = Vec::new();
    for (i, (g, before, after, fate)) in spec.iter().enumerate() {
        let point = 100 + 10 * i as u64;
        let input = to_input(g, &state);
        let applied = *fate <= 8;
        let (output, next) = run(&state, &input);
        if applied {
            state = next;
        }
        let outcome = match fate {
            0..=7 => Outcome::Ok {
                output,
                time: point + after,
            },
            8 | 9 => Outcome::Unknown,
            _ => Outcome::Fail,
        };
        ops.push(Operation {
            id: i as u64,
            process: i as u64 % 5,
            input,
            call: point - before,
            outcome,
        });
    }
    History::new(ops).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn sequential_histories_are_accepted(spec in gen_history()) {
        let history = build(&spec);
        let verdict = check(&history);
        prop_assert_eq!(verdict, Verdict::Linearizable);
    }

    #[test]
    fn json_round_trip_keeps_the_verdict(spec in gen_history()) {
        let history = build(&spec);
        let mut buf = Vec::new();
        history.write_json_lines(&mut buf).unwrap();
        let again = History::read_json_lines(buf.as_slice()).unwrap();
        prop_assert_eq!(Checker::new().check(&again), Verdict::Linearizable);
    }

    /// Corrupting one acknowledged read to a value nobody wrote is always caught.
    #[test]
    fn corrupted_read_is_rejected(spec in gen_history(), pick in 0..1000usize) {
        let history = build(&spec);
        let mut ops = history.operations().to_vec();
        let reads: Vec<usize> = ops.iter().enumerate().filter(|(_, o)| {
            matches!(o.outcome, Outcome::Ok { output: Output::Get { .. }, .. })
        }).map(|(i, _)| i).collect();
        prop_assume!(!reads.is_empty());
        let victim = reads[pick % reads.len()];
        if let Outcome::Ok { output, .. } = &mut ops[victim].outcome {
            *output = Output::Get { value: Some("never-written".into()) };
        }
        let history = History::new(ops).unwrap();
        // The exhaustive search on its own (pre-checks off) rejects it too.
        let search_only = Checker { prechecks: false, ..Checker::new() };
        prop_assert!(matches!(search_only.check(&history), Verdict::NotLinearizable(_)));
        let verdict = check(&history);
        match verdict {
            Verdict::NotLinearizable(w) => {
                prop_assert!(w.operations.iter().any(|o| o.id == victim as u64));
                if w.minimal {
                    prop_assert_eq!(w.operations.len(), 1);
                }
            }
            other => prop_assert!(false, "accepted: {:?}", other),
        }
    }
}

/// A long history with heavy overlap still checks quickly (memoisation and partitioning work).
#[test]
fn long_history_is_checked_within_budget() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let spec: Vec<(Gen, u64, u64, u8)> = (0..3000)
        .map(|_| {
            let g = match next(6) {
                0 => Gen::Get(next(3) as usize),
                1 => Gen::Put(next(3) as usize, next(4) as u8),
                2 => Gen::Cas(next(3) as usize, Some(next(4) as u8), next(4) as u8),
                3 => Gen::Delete(next(3) as usize),
                4 => Gen::Transfer(next(3) as usize, next(3) as usize, next(3) as u8),
                _ => Gen::ReadAll,
            };
            (g, next(40), next(40), next(11) as u8)
        })
        .collect();
    let history = build(&spec);
    let start = std::time::Instant::now();
    assert_eq!(check(&history), Verdict::Linearizable);
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

/// The `lincheck` binary reads the documented format and reports through its exit status.
#[test]
fn binary_exit_status_reflects_verdict() {
    let dir = std::env::temp_dir().join(format!("lincheck-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.jsonl");
    let bad = dir.join("bad.jsonl");
    std::fs::write(
        &good,
        r#"{"type":"invoke","id":1,"time":0,"op":{"f":"put","key":"x","value":"1"}}
{"type":"ok","id":1,"time":10,"result":{"f":"put"}}
{"type":"invoke","id":2,"time":20,"op":{"f":"get","key":"x"}}
{"type":"ok","id":2,"time":30,"result":{"f":"get","value":"1"}}
"#,
    )
    .unwrap();
    std::fs::write(
        &bad,
        r#"{"type":"invoke","id":1,"time":0,"op":{"f":"put","key":"x","value":"1"}}
{"type":"ok","id":1,"time":10,"result":{"f":"put"}}
{"type":"invoke","id":2,"time":20,"op":{"f":"get","key":"x"}}
{"type":"ok","id":2,"time":30,"result":{"f":"get","value":null}}
"#,
    )
    .unwrap();
    let run = |path: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lincheck"))
            .arg(path)
            .output()
            .unwrap()
    };
    assert_eq!(run(&good).status.code(), Some(0));
    let out = run(&bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cannot be ordered"));
    assert_eq!(run(&dir.join("missing.jsonl")).status.code(), Some(3));
    std::fs::remove_dir_all(&dir).unwrap();
}
