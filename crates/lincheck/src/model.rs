//! The sequential specification the checker linearizes against: a key-value store with
//! single-key operations (get, put, compare-and-swap, delete) and multi-key transactions
//! (compare all, then run one of two branches), as in etcd's `Txn`.
//!
//! Every key starts absent unless the checker is given an initial state. The model is
//! deterministic: given a state and an input there is exactly one next state, so an operation
//! whose outcome is unknown has exactly one effect if it takes effect at all.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A key. Keys and values are strings; byte keys should be hex- or base64-encoded by the
/// recorder.
pub type Key = String;
/// A value.
pub type Value = String;

/// The model state of the keys one partition covers: absent keys are not in the map.
pub type State = BTreeMap<Key, Value>;

/// The upper bound on operations inside one transaction branch and on compares of one
/// transaction (etcd's default `--max-txn-ops` is 128).
pub const MAX_TXN_OPS: usize = 128;

/// One condition of a transaction: the key currently holds `value` (`None`: the key is absent).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Compare {
    /// The key compared.
    pub key: Key,
    /// The expected value, or `None` for "absent".
    pub value: Option<Value>,
}

/// One operation inside a transaction branch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum TxnOp {
    /// Read a key; its value is reported in [`Output::Txn::reads`].
    Get {
        /// The key read.
        key: Key,
    },
    /// Write a key.
    Put {
        /// The key written.
        key: Key,
        /// The value written.
        value: Value,
    },
    /// Remove a key.
    Delete {
        /// The key removed.
        key: Key,
    },
}

impl TxnOp {
    fn key(&self) -> &Key {
        match self {
            TxnOp::Get { key } | TxnOp::Put { key, .. } | TxnOp::Delete { key } => key,
        }
    }
}

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Input {
    /// Read one key.
    Get {
        /// The key read.
        key: Key,
    },
    /// Write one key unconditionally.
    Put {
        /// The key written.
        key: Key,
        /// The value written.
        value: Value,
    },
    /// Write `new` if the key currently holds `expected` (`None`: the key is absent).
    Cas {
        /// The key.
        key: Key,
        /// The value the key must hold for the swap to happen.
        expected: Option<Value>,
        /// The value written when it does.
        new: Value,
    },
    /// Remove one key.
    Delete {
        /// The key removed.
        key: Key,
    },
    /// If every compare holds run `success`, else run `failure`, atomically.
    Txn {
        /// The conditions, all of which must hold.
        #[serde(default)]
        compares: Vec<Compare>,
        /// The branch run when all compares hold.
        #[serde(default)]
        success: Vec<TxnOp>,
        /// The branch run otherwise.
        #[serde(default)]
        failure: Vec<TxnOp>,
    },
}

/// What the system answered to an [`Input`] of the same kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Output {
    /// Answer to [`Input::Get`]: the value read (`None`: absent).
    Get {
        /// The value read.
        value: Option<Value>,
    },
    /// Answer to [`Input::Put`].
    Put,
    /// Answer to [`Input::Cas`].
    Cas {
        /// Whether the swap happened.
        succeeded: bool,
    },
    /// Answer to [`Input::Delete`].
    Delete {
        /// Whether the key existed, when the system reports it.
        #[serde(default)]
        existed: Option<bool>,
    },
    /// Answer to [`Input::Txn`].
    Txn {
        /// Whether all compares held (the success branch ran).
        succeeded: bool,
        /// The values read by the `Get`s of the branch that ran, in order.
        #[serde(default)]
        reads: Vec<Option<Value>>,
    },
}

impl Input {
    /// Every key the operation may touch (compares and both branches included), sorted and
    /// deduplicated.
    pub fn keys(&self) -> Vec<&Key> {
        let mut keys: Vec<&Key> = match self {
            Input::Get { key }
            | Input::Put { key, .. }
            | Input::Cas { key, .. }
            | Input::Delete { key } => vec![key],
            Input::Txn {
                compares,
                success,
                failure,
            } => compares
                .iter()
                .map(|c| &c.key)
                .chain(success.iter().map(TxnOp::key))
                .chain(failure.iter().map(TxnOp::key))
                .collect(),
        };
        keys.sort();
        keys.dedup();
        keys
    }

    /// True when no outcome of this operation changes the state (it only reads). An
    /// unacknowledged read-only operation can be dropped from a history.
    pub fn is_read_only(&self) -> bool {
        match self {
            Input::Get { .. } => true,
            Input::Put { .. } | Input::Cas { .. } | Input::Delete { .. } => false,
            Input::Txn {
                success, failure, ..
            } => success
                .iter()
                .chain(failure.iter())
                .all(|op| matches!(op, TxnOp::Get { .. })),
        }
    }

    /// Whether `output` is an answer of the right kind for this input.
    pub fn matches_output(&self, output: &Output) -> bool {
        matches!(
            (self, output),
            (Input::Get { .. }, Output::Get { .. })
                | (Input::Put { .. }, Output::Put)
                | (Input::Cas { .. }, Output::Cas { .. })
                | (Input::Delete { .. }, Output::Delete { .. })
                | (Input::Txn { .. }, Output::Txn { .. })
        )
    }

    /// The number of sub-operations, checked against [`MAX_TXN_OPS`].
    pub fn txn_size(&self) -> usize {
        match self {
            Input::Txn {
                compares,
                success,
                failure,
            } => compares.len().max(success.len()).max(failure.len()),
            _ => 1,
        }
    }

    /// The (key, value) pairs this operation may write.
    pub fn writes(&self) -> Vec<(&Key, &Value)> {
        match self {
            Input::Get { .. } | Input::Delete { .. } => Vec::new(),
            Input::Put { key, value } => vec![(key, value)],
            Input::Cas { key, new, .. } => vec![(key, new)],
            Input::Txn {
                success, failure, ..
            } => success
                .iter()
                .chain(failure.iter())
                .filter_map(|op| match op {
                    TxnOp::Put { key, value } => Some((key, value)),
                    _ => None,
                })
                .collect(),
        }
    }

    /// The (key, value) pairs this operation, with this `output`, claims to have observed.
    pub fn observations<'a>(&'a self, output: &'a Output) -> Vec<(&'a Key, &'a Value)> {
        match (self, output) {
            (Input::Get { key }, Output::Get { value: Some(v) }) => vec![(key, v)],
            (
                Input::Cas {
                    key,
                    expected: Some(v),
                    ..
                },
                Output::Cas { succeeded: true },
            ) => vec![(key, v)],
            (
                Input::Txn {
                    compares,
                    success,
                    failure,
                },
                Output::Txn { succeeded, reads },
            ) => {
                let mut seen = Vec::new();
                if *succeeded {
                    seen.extend(
                        compares
                            .iter()
                            .filter_map(|c| c.value.as_ref().map(|v| (&c.key, v))),
                    );
                }
                let branch = if *succeeded { success } else { failure };
                let gets = branch.iter().filter_map(|op| match op {
                    TxnOp::Get { key } => Some(key),
                    _ => None,
                });
                seen.extend(
                    gets.zip(reads.iter())
                        .filter_map(|(k, r)| r.as_ref().map(|v| (k, v))),
                );
                seen
            }
            _ => Vec::new(),
        }
    }
}

fn holds(state: &State, key: &Key, expected: &Option<Value>) -> bool {
    state.get(key) == expected.as_ref()
}

/// Applies `input` to `state`. With `Some(output)`, returns `None` when the model could not have
/// produced that output in that state; with `None` (outcome unknown) the operation always
/// applies. Returns the next state.
pub fn step(state: &State, input: &Input, output: Option<&Output>) -> Option<State> {
    match input {
        Input::Get { key } => match output {
            None => Some(state.clone()),
            Some(Output::Get { value }) => {
                (state.get(key) == value.as_ref()).then(|| state.clone())
            }
            Some(_) => None,
        },
        Input::Put { key, value } => match output {
            None | Some(Output::Put) => {
                let mut next = state.clone();
                next.insert(key.clone(), value.clone());
                Some(next)
            }
            Some(_) => None,
        },
        Input::Cas { key, expected, new } => {
            let ok = holds(state, key, expected);
            match output {
                None => {}
                Some(Output::Cas { succeeded }) if *succeeded == ok => {}
                Some(_) => return None,
            }
            let mut next = state.clone();
            if ok {
                next.insert(key.clone(), new.clone());
            }
            Some(next)
        }
        Input::Delete { key } => {
            let existed = state.contains_key(key);
            match output {
                None | Some(Output::Delete { existed: None }) => {}
                Some(Output::Delete { existed: Some(e) }) if *e == existed => {}
                Some(_) => return None,
            }
            let mut next = state.clone();
            next.remove(key);
            Some(next)
        }
        Input::Txn {
            compares,
            success,
            failure,
        } => {
            let ok = compares.iter().all(|c| holds(state, &c.key, &c.value));
            let expected_reads = match output {
                None => None,
                Some(Output::Txn { succeeded, reads }) if *succeeded == ok => Some(reads),
                Some(_) => return None,
            };
            let branch = if ok { success } else { failure };
            let mut next = state.clone();
            let mut read_no = 0usize;
            for op in branch {
                match op {
                    TxnOp::Get { key } => {
                        if let Some(reads) = expected_reads {
                            if reads.get(read_no) != Some(&next.get(key).cloned()) {
                                return None;
                            }
                        }
                        read_no += 1;
                    }
                    TxnOp::Put { key, value } => {
                        next.insert(key.clone(), value.clone());
                    }
                    TxnOp::Delete { key } => {
                        next.remove(key);
                    }
                }
            }
            if let Some(reads) = expected_reads {
                if reads.len() != read_no {
                    return None;
                }
            }
            Some(next)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pairs: &[(&str, &str)]) -> State {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn get_put_cas_delete() {
        let empty = State::new();
        let get = Input::Get { key: "a".into() };
        assert!(step(&empty, &get, Some(&Output::Get { value: None })).is_some());
        assert!(step(
            &empty,
            &get,
            Some(&Output::Get {
                value: Some("1".into())
            })
        )
        .is_none());
        let put = Input::Put {
            key: "a".into(),
            value: "1".into(),
        };
        assert_eq!(
            step(&empty, &put, Some(&Output::Put)),
            Some(s(&[("a", "1")]))
        );
        let cas = Input::Cas {
            key: "a".into(),
            expected: Some("1".into()),
            new: "2".into(),
        };
        let one = s(&[("a", "1")]);
        assert_eq!(
            step(&one, &cas, Some(&Output::Cas { succeeded: true })),
            Some(s(&[("a", "2")]))
        );
        assert!(step(&one, &cas, Some(&Output::Cas { succeeded: false })).is_none());
        assert_eq!(step(&empty, &cas, None), Some(empty.clone()));
        let del = Input::Delete { key: "a".into() };
        assert!(step(
            &one,
            &del,
            Some(&Output::Delete {
                existed: Some(false)
            })
        )
        .is_none());
        assert_eq!(
            step(
                &one,
                &del,
                Some(&Output::Delete {
                    existed: Some(true)
                })
            ),
            Some(empty.clone())
        );
        assert!(step(&one, &get, Some(&Output::Put)).is_none());
    }

    #[test]
    fn txn_branches_and_reads() {
        let st = s(&[("a", "10"), ("b", "0")]);
        let transfer = Input::Txn {
            compares: vec![
                Compare {
                    key: "a".into(),
                    value: Some("10".into()),
                },
                Compare {
                    key: "b".into(),
                    value: Some("0".into()),
                },
            ],
            success: vec![
                TxnOp::Put {
                    key: "a".into(),
                    value: "7".into(),
                },
                TxnOp::Put {
                    key: "b".into(),
                    value: "3".into(),
                },
            ],
            failure: vec![TxnOp::Get { key: "a".into() }],
        };
        let ok = Output::Txn {
            succeeded: true,
            reads: vec![],
        };
        assert_eq!(
            step(&st, &transfer, Some(&ok)),
            Some(s(&[("a", "7"), ("b", "3")]))
        );
        let after = s(&[("a", "7"), ("b", "3")]);
        assert!(step(&after, &transfer, Some(&ok)).is_none());
        let failed = Output::Txn {
            succeeded: false,
            reads: vec![Some("7".into())],
        };
        assert_eq!(step(&after, &transfer, Some(&failed)), Some(after.clone()));
        let wrong_read = Output::Txn {
            succeeded: false,
            reads: vec![Some("10".into())],
        };
        assert!(step(&after, &transfer, Some(&wrong_read)).is_none());
        let too_many = Output::Txn {
            succeeded: false,
            reads: vec![Some("7".into()), None],
        };
        assert!(step(&after, &transfer, Some(&too_many)).is_none());
        assert_eq!(transfer.keys(), vec!["a", "b"]);
        assert!(!transfer.is_read_only());
    }
}
