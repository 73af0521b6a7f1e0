//! The checker's entry point: splits a history into independent partitions, searches each,
//! and turns a failure into a small witness.
//!
//! Partitioning (P-compositionality, Herlihy & Wing's locality): operations are grouped by the
//! keys they touch, merging groups that a multi-key transaction spans (union-find). The model's
//! state is the product of the partitions' states and no operation touches two partitions, so
//! the history is linearizable exactly when every partition is.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use crate::history::{History, OpId, Operation, Outcome};
use crate::model::{Key, State, Value};
use crate::precheck::precheck;
use crate::search::{search, Budget, SearchResult};

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A linearization exists for every partition.
    Linearizable,
    /// Some partition has no linearization; the witness shows why.
    NotLinearizable(Box<Witness>),
    /// The budget ran out before a verdict was reached (no partition was found to fail).
    Unknown {
        /// How many partitions were left undecided.
        undecided_partitions: usize,
    },
}

impl Verdict {
    /// True for [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// Why a history is not linearizable: a set of operations that cannot be ordered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    /// The keys of the partition that failed.
    pub keys: Vec<Key>,
    /// Operations that admit no linearization on their own, sorted by invocation. When
    /// `minimal` is true, removing any one of them (other than a write whose value some
    /// remaining operation observed, which would only turn the witness into "read of a value
    /// never written") makes the rest linearizable.
    pub operations: Vec<Operation>,
    /// Whether the shrinking pass completed within its budget.
    pub minimal: bool,
    /// The longest valid order of operations the search found in the full partition.
    pub longest_linearization: Vec<OpId>,
    /// The operation that could not be placed after that order before its return.
    pub stuck: OpId,
}

impl fmt::Display for Witness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "not linearizable: {} operation(s) on keys {:?} cannot be ordered{}:",
            self.operations.len(),
            self.keys,
            if self.minimal { " (minimal)" } else { "" }
        )?;
        for op in &self.operations {
            let end = match &op.outcome {
                Outcome::Ok { output, time } => format!("-> {output:?} at {time}"),
                Outcome::Fail => "-> failed".to_string(),
                Outcome::Unknown => "-> unknown outcome".to_string(),
            };
            writeln!(
                f,
                "  op {} (process {}) at {}: {:?} {end}",
                op.id, op.process, op.call, op.input
            )?;
        }
        write!(
            f,
            "longest linearization found: {:?}; then op {} could not be placed",
            self.longest_linearization, self.stuck
        )
    }
}

/// Checks histories against the key-value model.
#[derive(Clone, Debug)]
pub struct Checker {
    /// Work limits for the main search.
    pub budget: Budget,
    /// Values present before the history starts (absent keys start absent).
    pub initial: State,
    /// Largest failing partition the witness shrinker works on (bigger ones are first cut at
    /// the failure point; if still bigger, reported unshrunk).
    pub max_shrink_ops: usize,
    /// Step limit for each re-check during shrinking.
    pub shrink_steps_per_check: u64,
    /// Step limit for all of shrinking.
    pub shrink_total_steps: u64,
    /// Run the linear-time pre-checks (read of a value never written, read of a value whose
    /// every writer was invoked after the read returned) before the search. They only ever
    /// reject, so turning them off changes the witness and the running time, never whether a
    /// history is accepted (except that the search may run out of budget).
    pub prechecks: bool,
}

impl Default for Checker {
    fn default() -> Self {
        Checker {
            budget: Budget::default(),
            initial: State::new(),
            max_shrink_ops: 400,
            shrink_steps_per_check: 200_000,
            shrink_total_steps: 5_000_000,
            prechecks: true,
        }
    }
}

/// Whether an operation can matter to the search: a failed operation never took effect, and an
/// unacknowledged read changes nothing and observed nothing.
fn relevant(op: &Operation) -> bool {
    match op.outcome {
        Outcome::Ok { .. } => true,
        Outcome::Fail => false,
        Outcome::Unknown => !op.input.is_read_only(),
    }
}

/// Groups operations into independent partitions. Returns (keys, operations) pairs in a
/// deterministic order (by smallest key; keyless operations first).
fn partition(ops: &[Operation]) -> Vec<(Vec<Key>, Vec<&Operation>)> {
    let mut key_ids: HashMap<&Key, usize> = HashMap::new();
    let mut parent: Vec<usize> = Vec::new();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for op in ops {
        let keys = op.input.keys();
        let mut first_root = None;
        for key in keys {
            let id = *key_ids.entry(key).or_insert_with(|| {
                parent.push(parent.len());
                parent.len() - 1
            });
            let root = find(&mut parent, id);
            match first_root {
                None => first_root = Some(root),
                Some(r) if r != root => parent[root] = r,
                Some(_) => {}
            }
        }
    }
    let mut groups: BTreeMap<Option<Key>, (Vec<Key>, Vec<&Operation>)> = BTreeMap::new();
    let mut root_name: HashMap<usize, Key> = HashMap::new();
    let mut sorted_keys: Vec<(&Key, usize)> = key_ids.iter().map(|(k, i)| (*k, *i)).collect();
    sorted_keys.sort();
    for (key, id) in &sorted_keys {
        let root = find(&mut parent, *id);
        let name = root_name
            .entry(root)
            .or_insert_with(|| (*key).clone())
            .clone();
        groups.entry(Some(name)).or_default().0.push((*key).clone());
    }
    for op in ops {
        let name = op
            .input
            .keys()
            .first()
            .and_then(|k| key_ids.get(k))
            .map(|id| find(&mut parent, *id))
            .and_then(|root| root_name.get(&root).cloned());
        groups.entry(name).or_default().1.push(op);
    }
    groups.into_values().filter(|g| !g.1.is_empty()).collect()
}

impl Checker {
    /// A checker with the default budget and an empty initial state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `history`. Deterministic for a given budget without deadline.
    pub fn check(&self, history: &History) -> Verdict {
        let relevant_ops: Vec<Operation> = history
            .operations()
            .iter()
            .filter(|o| relevant(o))
            .cloned()
            .collect();
        if self.prechecks {
            if let Some(witness) = self.precheck_witness(&relevant_ops) {
                return Verdict::NotLinearizable(Box::new(witness));
            }
        }
        let mut steps = 0u64;
        let mut undecided = 0usize;
        for (keys, ops) in partition(&relevant_ops) {
            let initial = self.initial_for(&keys);
            match search(&ops, &initial, &self.budget, &mut steps) {
                SearchResult::Linearizable => {}
                SearchResult::Exhausted => undecided += 1,
                SearchResult::NotLinearizable { longest, stuck } => {
                    let stuck_op = ops[stuck];
                    let longest_linearization = longest.iter().map(|i| ops[*i].id).collect();
                    let (operations, minimal) = self.shrink(&ops, stuck_op, &initial);
                    return Verdict::NotLinearizable(Box::new(Witness {
                        keys,
                        operations,
                        minimal,
                        longest_linearization,
                        stuck: stuck_op.id,
                    }));
                }
            }
        }
        if undecided == 0 {
            Verdict::Linearizable
        } else {
            Verdict::Unknown {
                undecided_partitions: undecided,
            }
        }
    }

    /// The witness of a pre-check violation: the observer and its late writers, if any.
    fn precheck_witness(&self, ops: &[Operation]) -> Option<Witness> {
        let violation = precheck(ops, &self.initial)?;
        let observer = &ops[violation.observer];
        let writers: Vec<&Operation> = violation.late_writers.iter().map(|&w| &ops[w]).collect();
        // 1-minimal when the writers alone can be ordered (dropping the observer then fixes
        // it); the writers themselves may not be dropped (see `Witness::operations`).
        let minimal =
            writers.is_empty() || self.fails(&writers, &self.initial, &mut 0) == Some(false);
        let mut operations: Vec<Operation> =
            std::iter::once(observer).chain(writers).cloned().collect();
        operations.sort_by_key(|o| (o.call, o.id));
        Some(Witness {
            keys: vec![violation.key],
            operations,
            minimal,
            longest_linearization: Vec::new(),
            stuck: observer.id,
        })
    }

    fn initial_for(&self, keys: &[Key]) -> State {
        keys.iter()
            .filter_map(|k| self.initial.get(k).map(|v| (k.clone(), v.clone())))
            .collect()
    }

    /// Whether `ops` provably admit no linearization, within the per-check step limit
    /// (charged to `spent`). `None` when the limit ran out.
    fn fails(&self, ops: &[&Operation], initial: &State, spent: &mut u64) -> Option<bool> {
        let budget = Budget {
            max_steps: self.shrink_steps_per_check,
            deadline: self.budget.deadline,
            ..self.budget.clone()
        };
        let mut steps = 0;
        let result = search(ops, initial, &budget, &mut steps);
        *spent += steps;
        match result {
            SearchResult::NotLinearizable { .. } => Some(true),
            SearchResult::Linearizable => Some(false),
            SearchResult::Exhausted => None,
        }
    }

    /// Removes operations (halves, then quarters, ... then single ones, as in delta debugging)
    /// while the rest still cannot be ordered, never removing the only writer of a value that a
    /// remaining operation observed. Returns the operations left and whether the result is
    /// 1-minimal (the final single-operation pass completed within budget).
    fn shrink(
        &self,
        ops: &[&Operation],
        stuck: &Operation,
        initial: &State,
    ) -> (Vec<Operation>, bool) {
        let written: HashSet<(&Key, &Value)> = ops.iter().flat_map(|o| o.input.writes()).collect();
        let mut spent = 0u64;
        let mut current: Vec<&Operation> = ops.to_vec();
        let alone = [stuck];
        if keeps_writers(&alone, &written, initial)
            && self.fails(&alone, initial, &mut spent) == Some(true)
        {
            return (vec![stuck.clone()], true);
        }
        if let Some(cut) = stuck.return_time() {
            let truncated: Vec<&Operation> =
                ops.iter().copied().filter(|o| o.call <= cut).collect();
            if truncated.len() < current.len()
                && keeps_writers(&truncated, &written, initial)
                && self.fails(&truncated, initial, &mut spent) == Some(true)
            {
                current = truncated;
            }
        }
        let mut minimal = current.len() <= self.max_shrink_ops;
        let mut chunk = current.len().div_ceil(2).max(1);
        while minimal {
            let mut exhausted = false;
            let mut start = 0;
            while start < current.len() {
                if spent > self.shrink_total_steps {
                    exhausted = true;
                    break;
                }
                let end = (start + chunk).min(current.len());
                let candidate: Vec<&Operation> = current[..start]
                    .iter()
                    .chain(current[end..].iter())
                    .copied()
                    .collect();
                let removable = !candidate.is_empty()
                    && keeps_writers(&candidate, &written, initial)
                    && match self.fails(&candidate, initial, &mut spent) {
                        Some(f) => f,
                        None => {
                            exhausted = true;
                            false
                        }
                    };
                if removable {
                    current = candidate;
                } else {
                    start = end;
                }
            }
            if chunk == 1 {
                minimal = !exhausted;
                break;
            }
            chunk = chunk.div_ceil(2);
        }
        let mut out: Vec<Operation> = current.into_iter().cloned().collect();
        out.sort_by_key(|o| (o.call, o.id));
        (out, minimal)
    }
}

/// True when every value observed in `ops` that some original operation wrote is still written
/// by an operation in `ops` (or present initially).
fn keeps_writers(
    ops: &[&Operation],
    original_writes: &HashSet<(&Key, &Value)>,
    initial: &State,
) -> bool {
    let writes: HashSet<(&Key, &Value)> = ops.iter().flat_map(|o| o.input.writes()).collect();
    ops.iter().all(|o| {
        o.output().is_none_or(|out| {
            o.input.observations(out).into_iter().all(|(k, v)| {
                !original_writes.contains(&(k, v))
                    || writes.contains(&(k, v))
                    || initial.get(k) == Some(v)
            })
        })
    })
}

/// Checks `history` with the default budget and an empty initial state.
pub fn check(history: &History) -> Verdict {
    Checker::new().check(history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Compare, Input, Output, TxnOp};

    struct Builder(Vec<Operation>);

    impl Builder {
        fn op(&mut self, call: u64, ret: Option<u64>, input: Input, output: Output) -> &mut Self {
            let id = self.0.len() as u64;
            let outcome = match ret {
                Some(time) => Outcome::Ok { output, time },
                None => Outcome::Unknown,
            };
            self.0.push(Operation {
                id,
                process: id,
                input,
                call,
                outcome,
            });
            self
        }
        fn put(&mut self, call: u64, ret: Option<u64>, key: &str, value: &str) -> &mut Self {
            self.op(
                call,
                ret,
                Input::Put {
                    key: key.into(),
                    value: value.into(),
                },
                Output::Put,
            )
        }
        fn get(&mut self, call: u64, ret: u64, key: &str, value: Option<&str>) -> &mut Self {
            self.op(
                call,
                Some(ret),
                Input::Get { key: key.into() },
                Output::Get {
                    value: value.map(String::from),
                },
            )
        }
        fn failed_put(&mut self, call: u64, key: &str, value: &str) -> &mut Self {
            self.put(call, None, key, value);
            if let Some(last) = self.0.last_mut() {
                last.outcome = Outcome::Fail;
            }
            self
        }
        fn verdict(&self) -> Verdict {
            check(&History::new(self.0.clone()).unwrap())
        }
    }

    fn witness_ids(v: &Verdict) -> Vec<OpId> {
        match v {
            Verdict::NotLinearizable(w) => w.operations.iter().map(|o| o.id).collect(),
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn empty_history_is_linearizable() {
        assert_eq!(Builder(vec![]).verdict(), Verdict::Linearizable);
    }

    #[test]
    fn concurrent_read_may_see_either_value() {
        let mut b = Builder(vec![]);
        b.put(0, Some(10), "x", "1")
            .put(20, Some(40), "x", "2")
            .get(25, 30, "x", Some("1"))
            .get(26, 35, "x", Some("2"))
            .get(45, 50, "x", Some("2"));
        assert_eq!(b.verdict(), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_after_completed_write_is_caught() {
        let mut b = Builder(vec![]);
        // ops 0..2 on x, plus unrelated traffic on y that must not appear in the witness.
        b.put(0, Some(10), "x", "1")
            .put(20, Some(30), "x", "2")
            .get(40, 50, "x", Some("1"))
            .put(41, Some(45), "y", "9")
            .get(46, 47, "y", Some("9"));
        let v = b.verdict();
        assert_eq!(witness_ids(&v), vec![0, 1, 2]);
        if let Verdict::NotLinearizable(w) = &v {
            assert_eq!(w.keys, vec!["x".to_string()]);
            assert!(w.minimal);
            assert_eq!(w.stuck, 2);
            assert!(w.to_string().contains("cannot be ordered"));
        }
    }

    #[test]
    fn lost_write_is_caught() {
        let mut b = Builder(vec![]);
        b.put(0, Some(10), "x", "1")
            .put(5, Some(15), "x", "2")
            .get(20, 25, "x", Some("2"))
            .get(30, 35, "x", Some("1"))
            .get(40, 45, "x", Some("1"));
        // "2" was acknowledged and read, then "1" reappears: the write of 2 was lost.
        let v = b.verdict();
        let ids = witness_ids(&v);
        assert!(ids.contains(&2) && ids.contains(&3), "{ids:?}");
        assert!(
            !ids.contains(&4),
            "the second stale read is redundant: {ids:?}"
        );
    }

    #[test]
    fn read_of_value_never_written_is_caught() {
        let mut b = Builder(vec![]);
        b.put(0, Some(10), "x", "1").get(20, 30, "x", Some("7"));
        assert_eq!(witness_ids(&b.verdict()), vec![1]);
    }

    #[test]
    fn read_of_initial_absence_after_write_is_caught() {
        let mut b = Builder(vec![]);
        b.put(0, Some(10), "x", "1").get(20, 30, "x", None);
        assert_eq!(witness_ids(&b.verdict()), vec![0, 1]);
    }

    #[test]
    fn unknown_write_may_take_effect_late_or_never() {
        // Unknown put of 2 invoked at 5: a read at 20 may see 1 (not yet), a read at 30 may see
        // 2 (took effect), and a history where nobody ever sees 2 is also fine.
        let mut late = Builder(vec![]);
        late.put(0, Some(2), "x", "1")
            .put(5, None, "x", "2")
            .get(20, 25, "x", Some("1"))
            .get(30, 35, "x", Some("2"));
        assert_eq!(late.verdict(), Verdict::Linearizable);
        let mut never = Builder(vec![]);
        never
            .put(0, Some(2), "x", "1")
            .put(5, None, "x", "2")
            .get(20, 25, "x", Some("1"))
            .get(300, 350, "x", Some("1"));
        assert_eq!(never.verdict(), Verdict::Linearizable);
    }

    #[test]
    fn unknown_write_cannot_take_effect_before_invocation_or_twice() {
        let mut early = Builder(vec![]);
        early.get(0, 2, "x", Some("2")).put(5, None, "x", "2");
        assert_eq!(witness_ids(&early.verdict()), vec![0, 1]);
        let mut flicker = Builder(vec![]);
        flicker
            .put(0, Some(2), "x", "1")
            .put(5, None, "x", "2")
            .get(20, 25, "x", Some("2"))
            .get(30, 35, "x", Some("1"))
            .get(40, 45, "x", Some("2"));
        assert!(matches!(flicker.verdict(), Verdict::NotLinearizable(_)));
    }

    #[test]
    fn failed_write_never_takes_effect() {
        let mut b = Builder(vec![]);
        b.failed_put(0, "x", "1").get(20, 30, "x", Some("1"));
        assert!(matches!(b.verdict(), Verdict::NotLinearizable(_)));
        let mut ok = Builder(vec![]);
        ok.failed_put(0, "x", "1").get(20, 30, "x", None);
        assert_eq!(ok.verdict(), Verdict::Linearizable);
    }

    #[test]
    fn cas_and_delete() {
        let mut b = Builder(vec![]);
        b.put(0, Some(1), "x", "a")
            .op(
                2,
                Some(3),
                Input::Cas {
                    key: "x".into(),
                    expected: Some("a".into()),
                    new: "b".into(),
                },
                Output::Cas { succeeded: true },
            )
            .op(
                4,
                Some(5),
                Input::Delete { key: "x".into() },
                Output::Delete {
                    existed: Some(true),
                },
            )
            .op(
                6,
                Some(7),
                Input::Cas {
                    key: "x".into(),
                    expected: None,
                    new: "c".into(),
                },
                Output::Cas { succeeded: true },
            )
            .get(8, 9, "x", Some("c"));
        assert_eq!(b.verdict(), Verdict::Linearizable);
        // Both CASes from "a" succeeding is a double spend.
        let mut bad = Builder(vec![]);
        let cas = |new: &str| Input::Cas {
            key: "x".into(),
            expected: Some("a".into()),
            new: new.into(),
        };
        bad.put(0, Some(1), "x", "a")
            .op(2, Some(10), cas("b"), Output::Cas { succeeded: true })
            .op(3, Some(11), cas("c"), Output::Cas { succeeded: true });
        assert_eq!(witness_ids(&bad.verdict()), vec![0, 1, 2]);
    }

    fn transfer(from: (&str, u64), to: (&str, u64), amount: u64) -> Input {
        Input::Txn {
            compares: vec![
                Compare {
                    key: from.0.into(),
                    value: Some(from.1.to_string()),
                },
                Compare {
                    key: to.0.into(),
                    value: Some(to.1.to_string()),
                },
            ],
            success: vec![
                TxnOp::Put {
                    key: from.0.into(),
                    value: (from.1 - amount).to_string(),
                },
                TxnOp::Put {
                    key: to.0.into(),
                    value: (to.1 + amount).to_string(),
                },
            ],
            failure: vec![],
        }
    }

    fn read_all() -> Input {
        Input::Txn {
            compares: vec![],
            success: vec![
                TxnOp::Get { key: "a".into() },
                TxnOp::Get { key: "b".into() },
            ],
            failure: vec![],
        }
    }

    fn reads(a: u64, b: u64) -> Output {
        Output::Txn {
            succeeded: true,
            reads: vec![Some(a.to_string()), Some(b.to_string())],
        }
    }

    #[test]
    fn bank_transactions() {
        let ok = Output::Txn {
            succeeded: true,
            reads: vec![],
        };
        let mut b = Builder(vec![]);
        b.op(0, Some(1), transfer(("a", 10), ("b", 0), 3), ok.clone())
            .op(2, Some(6), read_all(), reads(7, 3))
            .op(3, Some(5), transfer(("a", 7), ("b", 3), 2), ok.clone())
            .op(7, Some(8), read_all(), reads(5, 5));
        let mut checker = Checker::new();
        checker.initial = [("a", "10"), ("b", "0")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let h = History::new(b.0.clone()).unwrap();
        assert_eq!(checker.check(&h), Verdict::Linearizable);
        // A read that sees half of a transfer (a debited, b not credited) is a violation.
        b.op(9, Some(10), read_all(), reads(5, 3));
        let h = History::new(b.0.clone()).unwrap();
        let v = checker.check(&h);
        // The read saw a=5 (after the second transfer) and b=3 (before it): the witness keeps
        // the transfers that wrote those values.
        assert_eq!(witness_ids(&v), vec![0, 2, 4]);
    }

    #[test]
    fn partitions_follow_transactions() {
        let ops = vec![
            Operation {
                id: 0,
                process: 0,
                input: Input::Get { key: "c".into() },
                call: 0,
                outcome: Outcome::Unknown,
            },
            Operation {
                id: 1,
                process: 0,
                input: transfer(("a", 1), ("b", 1), 1),
                call: 0,
                outcome: Outcome::Unknown,
            },
            Operation {
                id: 2,
                process: 0,
                input: Input::Get { key: "b".into() },
                call: 0,
                outcome: Outcome::Unknown,
            },
        ];
        let parts = partition(&ops);
        let shapes: Vec<(Vec<Key>, Vec<OpId>)> = parts
            .into_iter()
            .map(|(k, o)| (k, o.iter().map(|o| o.id).collect()))
            .collect();
        assert_eq!(
            shapes,
            vec![
                (vec!["a".to_string(), "b".to_string()], vec![1, 2]),
                (vec!["c".to_string()], vec![0]),
            ]
        );
    }

    #[test]
    fn budget_exhaustion_gives_unknown() {
        let mut b = Builder(vec![]);
        for i in 0..30u64 {
            b.put(0, Some(100), "x", &i.to_string());
        }
        b.get(101, 102, "x", Some("29"));
        let mut checker = Checker::new();
        checker.budget.max_steps = 10;
        let h = History::new(b.0.clone()).unwrap();
        assert_eq!(
            checker.check(&h),
            Verdict::Unknown {
                undecided_partitions: 1
            }
        );
        assert_eq!(Checker::new().check(&h), Verdict::Linearizable);
    }

    /// Many concurrent unknown-outcome writes make the search exponential; a corrupted read
    /// is still reported at once by the pre-check, with that read alone as witness.
    fn heavy_history(corrupt: &str) -> Vec<Operation> {
        let mut b = Builder(vec![]);
        for i in 0..120u64 {
            b.put(i, None, "x", &format!("u{i}"));
            b.put(i, Some(1_000 + i), "y", &format!("k{i}"));
        }
        for i in 0..200u64 {
            b.get(
                2_000 + 3 * i,
                2_001 + 3 * i,
                "x",
                Some(&format!("u{}", (i * 7) % 120)),
            );
        }
        b.get(5_000, 5_001, "x", Some(corrupt));
        b.0
    }

    #[test]
    fn precheck_reports_unwritten_read_without_search() {
        let ops = heavy_history("never");
        let corrupt_id = ops.len() as u64 - 1;
        let h = History::new(ops).unwrap();
        let mut checker = Checker::new();
        checker.budget.max_steps = 1_000;
        let v = checker.check(&h);
        assert_eq!(witness_ids(&v), vec![corrupt_id]);
        if let Verdict::NotLinearizable(w) = &v {
            assert!(w.minimal);
            assert_eq!(w.keys, vec!["x".to_string()]);
            assert_eq!(w.stuck, corrupt_id);
        }
        // Without the pre-check the same budget does not decide it.
        checker.prechecks = false;
        assert!(matches!(checker.check(&h), Verdict::Unknown { .. }));
    }

    #[test]
    fn precheck_reports_read_from_the_future() {
        let mut b = Builder(vec![]);
        b.put(0, Some(10), "x", "1")
            .get(20, 30, "x", Some("2"))
            .put(31, None, "x", "2")
            .put(40, Some(50), "x", "2");
        let v = b.verdict();
        assert_eq!(witness_ids(&v), vec![1, 2, 3]);
        if let Verdict::NotLinearizable(w) = &v {
            assert!(w.minimal);
        }
    }

    #[test]
    fn search_alone_still_rejects_what_prechecks_catch() {
        let mut never = Builder(vec![]);
        never.put(0, Some(10), "x", "1").get(20, 30, "x", Some("7"));
        let mut future = Builder(vec![]);
        future.get(0, 2, "x", Some("2")).put(5, None, "x", "2");
        let mut failed = Builder(vec![]);
        failed.failed_put(0, "x", "1").get(20, 30, "x", Some("1"));
        let mut checker = Checker::new();
        checker.prechecks = false;
        for b in [never, future, failed] {
            let h = History::new(b.0.clone()).unwrap();
            assert!(matches!(checker.check(&h), Verdict::NotLinearizable(_)));
            // With the pre-check, the same verdict (and a witness containing the read).
            assert!(matches!(check(&h), Verdict::NotLinearizable(_)));
        }
        // A read that pre-checks pass (the value was written in time) is left to the search.
        let mut stale = Builder(vec![]);
        stale
            .put(0, Some(10), "x", "1")
            .put(20, Some(30), "x", "2")
            .get(40, 50, "x", Some("1"));
        let h = History::new(stale.0.clone()).unwrap();
        assert!(crate::precheck::precheck(h.operations(), &State::new()).is_none());
        assert_eq!(witness_ids(&check(&h)), vec![0, 1, 2]);
    }
}
