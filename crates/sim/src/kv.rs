//! The replicated state machine the simulated members run: a key-value map applying client
//! commands, with per-client de-duplication so a command applied twice (a duplicated or
//! re-proposed entry) takes effect once.

use std::collections::BTreeMap;

use bytes::Bytes;
use quorum_lincheck::{Input, OpId, Output, State, TxnOp};
use serde::{Deserialize, Serialize};

/// Largest encoded command accepted from the log.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// A client command as carried in a log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The issuing client.
    pub client: u64,
    /// The client's sequence number; strictly increasing per client.
    pub seq: u64,
    /// The operation in the recorded history.
    pub op_id: OpId,
    /// What to do.
    pub input: Input,
}

/// Why an entry's payload is not a command.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Larger than [`MAX_COMMAND_BYTES`].
    #[error("command of {0} bytes is too large")]
    TooLarge(usize),
    /// Not a valid encoding.
    #[error("malformed command: {0}")]
    Malformed(#[from] serde_json::Error),
}

impl Command {
    /// The entry payload.
    pub fn encode(&self) -> Bytes {
        // Serializing plain data with string keys cannot fail.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Parses an entry payload.
    pub fn decode(data: &[u8]) -> Result<Command, CommandError> {
        if data.len() > MAX_COMMAND_BYTES {
            return Err(CommandError::TooLarge(data.len()));
        }
        Ok(serde_json::from_slice(data)?)
    }
}

/// Executes `input` on `state`, returning the answer.
pub fn execute(state: &mut State, input: &Input) -> Output {
    match input {
        Input::Get { key } => Output::Get {
            value: state.get(key).cloned(),
        },
        Input::Put { key, value } => {
            state.insert(key.clone(), value.clone());
            Output::Put
        }
        Input::Cas { key, expected, new } => {
            let ok = state.get(key) == expected.as_ref();
            if ok {
                state.insert(key.clone(), new.clone());
            }
            Output::Cas { succeeded: ok }
        }
        Input::Delete { key } => Output::Delete {
            existed: Some(state.remove(key).is_some()),
        },
        Input::Txn {
            compares,
            success,
            failure,
        } => {
            let ok = compares
                .iter()
                .all(|c| state.get(&c.key) == c.value.as_ref());
            let mut reads = Vec::new();
            for op in if ok { success } else { failure } {
                match op {
                    TxnOp::Get { key } => reads.push(state.get(key).cloned()),
                    TxnOp::Put { key, value } => {
                        state.insert(key.clone(), value.clone());
                    }
                    TxnOp::Delete { key } => {
                        state.remove(key);
                    }
                }
            }
            Output::Txn {
                succeeded: ok,
                reads,
            }
        }
    }
}

/// The key-value state machine of one member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    data: State,
    /// Per client: the last applied sequence number and its answer.
    sessions: BTreeMap<u64, (u64, Output)>,
}

impl KvStore {
    /// A store holding `initial`.
    pub fn new(initial: State) -> Self {
        KvStore {
            data: initial,
            sessions: BTreeMap::new(),
        }
    }

    /// Applies a command from the log. A command whose sequence number the client already got
    /// applied is not executed again; its original answer is returned.
    pub fn apply(&mut self, cmd: &Command) -> Output {
        if let Some((seq, output)) = self.sessions.get(&cmd.client) {
            if cmd.seq <= *seq {
                return output.clone();
            }
        }
        let output = execute(&mut self.data, &cmd.input);
        self.sessions.insert(cmd.client, (cmd.seq, output.clone()));
        output
    }

    /// Answers a read-only input from the current state.
    pub fn read(&self, input: &Input) -> Output {
        debug_assert!(input.is_read_only());
        let mut scratch = self.data.clone();
        execute(&mut scratch, input)
    }

    /// The current data.
    pub fn data(&self) -> &State {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_apply_once() {
        let mut kv = KvStore::new(State::new());
        let put = |seq, value: &str| Command {
            client: 1,
            seq,
            op_id: seq,
            input: Input::Put {
                key: "k".into(),
                value: value.into(),
            },
        };
        kv.apply(&put(1, "a"));
        kv.apply(&Command {
            client: 2,
            seq: 1,
            op_id: 9,
            input: Input::Put {
                key: "k".into(),
                value: "b".into(),
            },
        });
        kv.apply(&put(1, "a"));
        assert_eq!(kv.data().get("k"), Some(&"b".to_string()));
        let decoded = Command::decode(&put(2, "c").encode()).unwrap();
        assert_eq!(decoded, put(2, "c"));
        assert!(Command::decode(b"garbage").is_err());
    }
}
