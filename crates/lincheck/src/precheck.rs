//! Cheap, sound pre-checks run before the exponential search.
//!
//! Each one finds a violation that no linearization of *any* superset of its witness could
//! explain, in time linear in the history (plus a sort):
//!
//! - **Read of a value never written**: an acknowledged operation observed `(key, value)`
//!   (a get's answer, a successful CAS's expected value, a successful transaction's compares,
//!   a transaction's reads), the value is not `key`'s initial value, and no operation that may
//!   have taken effect (acknowledged or unknown; failed ones never did) writes it. Witness: that
//!   operation alone.
//! - **Read from the future**: such an observation whose every possible writer was invoked
//!   strictly after the observing operation returned (the search treats equal times as
//!   concurrent, so equality does not count). Every writer must be linearized after its call,
//!   hence after the observer. Witness: the observer and those writers.
//!
//! An operation that may itself write the value it observed (a transaction that puts and then
//! gets a key) is never reported: its own write can explain the observation.
//!
//! Both checks only ever *reject*; a history that passes them still goes through the full
//! search, so they cannot make an unsound acceptance.

use std::collections::HashMap;

use crate::history::{Operation, Outcome, Time};
use crate::model::{Key, State, Value};

/// A violation found by a pre-check: the operations that cannot be ordered on their own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    /// The key whose value was observed.
    pub key: Key,
    /// Index (into the checked slice) of the operation whose observation has no writer.
    pub observer: usize,
    /// Indexes of the writers that were all invoked after the observer returned (empty for a
    /// value never written).
    pub late_writers: Vec<usize>,
}

/// Runs the pre-checks over `ops` (only operations that may have taken effect: failed ones
/// must already be filtered out). Returns the violation of the earliest-invoked observer, if
/// any, so the result is deterministic.
pub(crate) fn precheck(ops: &[Operation], initial: &State) -> Option<Violation> {
    debug_assert!(ops.iter().all(|o| !matches!(o.outcome, Outcome::Fail)));
    // (key, value) -> indexes of every operation that may write it.
    let mut writers: HashMap<(&Key, &Value), Vec<usize>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        for kv in op.input.writes() {
            writers.entry(kv).or_default().push(i);
        }
    }
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| (ops[i].call, ops[i].id));
    for i in order {
        let op = &ops[i];
        let (Some(output), Some(returned)) = (op.output(), op.return_time()) else {
            continue;
        };
        for (key, value) in op.input.observations(output) {
            if initial.get(key) == Some(value) {
                continue;
            }
            let ws = writers.get(&(key, value)).map(Vec::as_slice).unwrap_or(&[]);
            if ws.contains(&i) {
                continue;
            }
            if ws.iter().all(|&w| invoked_after(&ops[w], returned)) {
                return Some(Violation {
                    key: key.clone(),
                    observer: i,
                    late_writers: ws.to_vec(),
                });
            }
        }
    }
    None
}

fn invoked_after(op: &Operation, time: Time) -> bool {
    op.call > time
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Input, Output, TxnOp};

    fn op(id: u64, call: Time, ret: Option<Time>, input: Input, output: Output) -> Operation {
        Operation {
            id,
            process: id,
            input,
            call,
            outcome: match ret {
                Some(time) => Outcome::Ok { output, time },
                None => Outcome::Unknown,
            },
        }
    }

    fn put(id: u64, call: Time, ret: Option<Time>, v: &str) -> Operation {
        let input = Input::Put {
            key: "x".into(),
            value: v.into(),
        };
        op(id, call, ret, input, Output::Put)
    }

    fn get(id: u64, call: Time, ret: Time, v: Option<&str>) -> Operation {
        let output = Output::Get {
            value: v.map(String::from),
        };
        op(id, call, Some(ret), Input::Get { key: "x".into() }, output)
    }

    #[test]
    fn unwritten_value_is_reported_alone() {
        let ops = vec![put(0, 0, Some(5), "1"), get(1, 10, 20, Some("9"))];
        let v = precheck(&ops, &State::new()).unwrap();
        assert_eq!((v.observer, v.late_writers), (1, vec![]));
    }

    #[test]
    fn initial_value_and_absence_are_not_reported() {
        let initial: State = [("x".to_string(), "0".to_string())].into_iter().collect();
        let ops = vec![get(0, 0, 1, Some("0")), get(1, 2, 3, None)];
        assert_eq!(precheck(&ops, &initial), None);
        assert!(precheck(&ops[..1], &State::new()).is_some());
    }

    #[test]
    fn read_from_the_future_names_the_writers() {
        let ops = vec![
            get(0, 0, 10, Some("1")),
            put(1, 11, Some(20), "1"),
            put(2, 12, None, "1"),
        ];
        let v = precheck(&ops, &State::new()).unwrap();
        assert_eq!((v.observer, v.late_writers), (0, vec![1, 2]));
        // A writer invoked exactly when the read returned is concurrent with it.
        let touching = vec![get(0, 0, 10, Some("1")), put(1, 10, None, "1")];
        assert_eq!(precheck(&touching, &State::new()), None);
        // One writer in time is enough.
        let mut with_early = ops.clone();
        with_early.push(put(3, 5, None, "1"));
        assert_eq!(precheck(&with_early, &State::new()), None);
    }

    #[test]
    fn own_write_explains_a_transaction_read() {
        let txn = Input::Txn {
            compares: vec![],
            success: vec![
                TxnOp::Put {
                    key: "x".into(),
                    value: "7".into(),
                },
                TxnOp::Get { key: "x".into() },
            ],
            failure: vec![],
        };
        let out = Output::Txn {
            succeeded: true,
            reads: vec![Some("7".into())],
        };
        assert_eq!(
            precheck(&[op(0, 0, Some(1), txn, out)], &State::new()),
            None
        );
    }

    #[test]
    fn successful_cas_observes_its_expected_value() {
        let cas = Input::Cas {
            key: "x".into(),
            expected: Some("5".into()),
            new: "6".into(),
        };
        let failed = op(0, 0, Some(1), cas.clone(), Output::Cas { succeeded: false });
        assert_eq!(precheck(&[failed], &State::new()), None);
        let succeeded = op(0, 0, Some(1), cas, Output::Cas { succeeded: true });
        assert!(precheck(&[succeeded], &State::new()).is_some());
    }
}
