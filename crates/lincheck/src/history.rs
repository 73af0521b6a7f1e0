//! Histories: the operations clients performed, with their real-time intervals and outcomes,
//! and the JSON-lines format they are exchanged in.
//!
//! # JSON-lines format
//!
//! One JSON object per line; blank lines are ignored. Each line is an *event*:
//!
//! ```text
//! {"type":"invoke","id":7,"process":2,"time":1000,"op":{"f":"put","key":"x","value":"1"}}
//! {"type":"ok","id":7,"time":1250,"result":{"f":"put"}}
//! {"type":"invoke","id":8,"process":3,"time":1100,"op":{"f":"get","key":"x"}}
//! {"type":"info","id":8,"time":5000}
//! {"type":"invoke","id":9,"process":1,"time":1300,"op":{"f":"cas","key":"x","expected":"1","new":"2"}}
//! {"type":"fail","id":9,"time":1400}
//! ```
//!
//! - `id` (required) names the operation; it is unique within the history. `process`
//!   (optional, default 0) names the client that issued it, for reports only.
//! - `time` is a timestamp from one clock shared by every recorder (e.g. `CLOCK_MONOTONIC` in
//!   nanoseconds, for processes on one machine). It is optional, but then it must be absent from
//!   every event, and the order of the lines is the real-time order.
//! - `invoke` carries `op`, one of (`null` means "absent"):
//!   `{"f":"get","key":K}`, `{"f":"put","key":K,"value":V}`,
//!   `{"f":"cas","key":K,"expected":V|null,"new":V}`, `{"f":"delete","key":K}`,
//!   `{"f":"txn","compares":[{"key":K,"value":V|null}],"success":[TXOP],"failure":[TXOP]}`
//!   where `TXOP` is `{"f":"get","key":K}`, `{"f":"put","key":K,"value":V}` or
//!   `{"f":"delete","key":K}`.
//! - `ok` completes it with `result`, of the same `f`: `{"f":"get","value":V|null}`,
//!   `{"f":"put"}`, `{"f":"cas","succeeded":B}`, `{"f":"delete","existed":B}` (`existed`
//!   optional), `{"f":"txn","succeeded":B,"reads":[V|null]}` (`reads`: the values of the `get`s
//!   of the branch that ran, in order).
//! - `fail` says the operation certainly did not take effect; `info` says the outcome is
//!   unknown (timeout, lost connection). An `invoke` never completed is treated as `info`:
//!   the operation may have taken effect at any time after its invocation, or never.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::model::{Input, Output, MAX_TXN_OPS};

/// The largest history accepted, in operations.
pub const MAX_OPERATIONS: usize = 4_000_000;
/// The longest line accepted in the JSON-lines format, in bytes.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Identifies an operation within a history.
pub type OpId = u64;

/// A timestamp: any unit, from one clock shared by all recorders.
pub type Time = u64;

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// It completed with `output` at `time`.
    Ok {
        /// The system's answer.
        output: Output,
        /// When the answer arrived.
        time: Time,
    },
    /// It certainly did not take effect.
    Fail,
    /// It may have taken effect at any point after its invocation, or never.
    Unknown,
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Operation {
    /// Unique within the history.
    pub id: OpId,
    /// The client that issued it.
    pub process: u64,
    /// What was asked.
    pub input: Input,
    /// When it was invoked.
    pub call: Time,
    /// How it ended.
    pub outcome: Outcome,
}

impl Operation {
    /// The completion time, or `None` when the operation never completed with an answer.
    pub fn return_time(&self) -> Option<Time> {
        match &self.outcome {
            Outcome::Ok { time, .. } => Some(*time),
            Outcome::Fail | Outcome::Unknown => None,
        }
    }

    /// The answer, if one arrived.
    pub fn output(&self) -> Option<&Output> {
        match &self.outcome {
            Outcome::Ok { output, .. } => Some(output),
            Outcome::Fail | Outcome::Unknown => None,
        }
    }
}

/// One line of the JSON-lines format (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A client invoked an operation.
    Invoke {
        /// The operation's id.
        id: OpId,
        /// The client.
        #[serde(default)]
        process: u64,
        /// When.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time: Option<Time>,
        /// What was asked.
        op: Input,
    },
    /// The operation completed with an answer.
    Ok {
        /// The operation's id.
        id: OpId,
        /// When.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time: Option<Time>,
        /// The answer.
        result: Output,
    },
    /// The operation certainly did not take effect.
    Fail {
        /// The operation's id.
        id: OpId,
        /// When.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time: Option<Time>,
    },
    /// The operation's outcome is unknown.
    Info {
        /// The operation's id.
        id: OpId,
        /// When.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time: Option<Time>,
    },
}

impl Event {
    fn id(&self) -> OpId {
        match self {
            Event::Invoke { id, .. }
            | Event::Ok { id, .. }
            | Event::Fail { id, .. }
            | Event::Info { id, .. } => *id,
        }
    }

    fn time(&self) -> Option<Time> {
        match self {
            Event::Invoke { time, .. }
            | Event::Ok { time, .. }
            | Event::Fail { time, .. }
            | Event::Info { time, .. } => *time,
        }
    }
}

/// Why a history could not be read or built.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Reading the input failed.
    #[error("reading history: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not a valid event.
    #[error("line {line}: {source}")]
    Json {
        /// 1-based line number.
        line: usize,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// A line is longer than [`MAX_LINE_BYTES`].
    #[error("line {line}: longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong {
        /// 1-based line number.
        line: usize,
    },
    /// The history is larger than [`MAX_OPERATIONS`].
    #[error("more than {MAX_OPERATIONS} operations")]
    TooManyOperations,
    /// A transaction exceeds [`MAX_TXN_OPS`].
    #[error("operation {id}: transaction larger than {MAX_TXN_OPS} operations")]
    TxnTooLarge {
        /// The operation.
        id: OpId,
    },
    /// Two invocations share an id.
    #[error("operation {id} invoked twice")]
    DuplicateId {
        /// The operation.
        id: OpId,
    },
    /// A completion names no pending invocation.
    #[error("completion of operation {id}, which is not pending")]
    NotPending {
        /// The operation.
        id: OpId,
    },
    /// A result of the wrong kind for its operation.
    #[error("operation {id}: result does not match the operation's kind")]
    OutputMismatch {
        /// The operation.
        id: OpId,
    },
    /// Some events carry a time and others do not.
    #[error("event for operation {id}: either every event has a time or none has")]
    MixedTimes {
        /// The operation.
        id: OpId,
    },
    /// An operation completed before it was invoked.
    #[error("operation {id} returns before it is invoked")]
    ReturnBeforeCall {
        /// The operation.
        id: OpId,
    },
}

/// A complete history: operations with their intervals and outcomes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    ops: Vec<Operation>,
}

impl History {
    /// Builds a history from operations, validating ids, kinds, sizes and intervals.
    pub fn new(ops: Vec<Operation>) -> Result<Self, HistoryError> {
        if ops.len() > MAX_OPERATIONS {
            return Err(HistoryError::TooManyOperations);
        }
        let mut seen = std::collections::HashSet::with_capacity(ops.len());
        for op in &ops {
            if !seen.insert(op.id) {
                return Err(HistoryError::DuplicateId { id: op.id });
            }
            if op.input.txn_size() > MAX_TXN_OPS {
                return Err(HistoryError::TxnTooLarge { id: op.id });
            }
            if let Outcome::Ok { output, time } = &op.outcome {
                if !op.input.matches_output(output) {
                    return Err(HistoryError::OutputMismatch { id: op.id });
                }
                if *time < op.call {
                    return Err(HistoryError::ReturnBeforeCall { id: op.id });
                }
            }
        }
        Ok(History { ops })
    }

    /// Builds a history from events in the order they were recorded.
    pub fn from_events(events: impl IntoIterator<Item = Event>) -> Result<Self, HistoryError> {
        let mut pending: HashMap<OpId, usize> = HashMap::new();
        let mut ops: Vec<Operation> = Vec::new();
        let mut timed: Option<bool> = None;
        for (position, event) in events.into_iter().enumerate() {
            let id = event.id();
            let has_time = event.time().is_some();
            if *timed.get_or_insert(has_time) != has_time {
                return Err(HistoryError::MixedTimes { id });
            }
            let time = event.time().unwrap_or(position as Time);
            match event {
                Event::Invoke {
                    id, process, op, ..
                } => {
                    if ops.len() >= MAX_OPERATIONS {
                        return Err(HistoryError::TooManyOperations);
                    }
                    if pending.insert(id, ops.len()).is_some() {
                        return Err(HistoryError::DuplicateId { id });
                    }
                    ops.push(Operation {
                        id,
                        process,
                        input: op,
                        call: time,
                        outcome: Outcome::Unknown,
                    });
                }
                Event::Ok { id, result, .. } => {
                    let index = pending.remove(&id).ok_or(HistoryError::NotPending { id })?;
                    ops[index].outcome = Outcome::Ok {
                        output: result,
                        time,
                    };
                }
                Event::Fail { id, .. } => {
                    let index = pending.remove(&id).ok_or(HistoryError::NotPending { id })?;
                    ops[index].outcome = Outcome::Fail;
                }
                Event::Info { id, .. } => {
                    pending.remove(&id).ok_or(HistoryError::NotPending { id })?;
                }
            }
        }
        History::new(ops)
    }

    /// Reads the JSON-lines format (see the module documentation).
    pub fn read_json_lines(reader: impl BufRead) -> Result<Self, HistoryError> {
        let mut events = Vec::new();
        for (number, line) in reader.lines().enumerate() {
            let line = line?;
            if line.len() > MAX_LINE_BYTES {
                return Err(HistoryError::LineTooLong { line: number + 1 });
            }
            if line.trim().is_empty() {
                continue;
            }
            let event = serde_json::from_str(&line).map_err(|source| HistoryError::Json {
                line: number + 1,
                source,
            })?;
            events.push(event);
        }
        History::from_events(events)
    }

    /// The events of this history in real-time order (invocations before completions at equal
    /// times), with times.
    pub fn events(&self) -> Vec<Event> {
        let mut timed: Vec<(Time, u8, usize, Event)> = Vec::with_capacity(self.ops.len() * 2);
        for (i, op) in self.ops.iter().enumerate() {
            timed.push((
                op.call,
                0,
                i,
                Event::Invoke {
                    id: op.id,
                    process: op.process,
                    time: Some(op.call),
                    op: op.input.clone(),
                },
            ));
            match &op.outcome {
                Outcome::Ok { output, time } => timed.push((
                    *time,
                    1,
                    i,
                    Event::Ok {
                        id: op.id,
                        time: Some(*time),
                        result: output.clone(),
                    },
                )),
                Outcome::Fail => timed.push((
                    op.call,
                    1,
                    i,
                    Event::Fail {
                        id: op.id,
                        time: Some(op.call),
                    },
                )),
                Outcome::Unknown => {}
            }
        }
        timed.sort_by_key(|(t, kind, i, _)| (*t, *kind, *i));
        timed.into_iter().map(|(_, _, _, e)| e).collect()
    }

    /// Writes the JSON-lines format.
    pub fn write_json_lines(&self, mut writer: impl Write) -> Result<(), HistoryError> {
        for event in self.events() {
            serde_json::to_writer(&mut writer, &event).map_err(std::io::Error::from)?;
            writer.write_all(b"\n")?;
        }
        Ok(())
    }

    /// The operations, in the order given.
    pub fn operations(&self) -> &[Operation] {
        &self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when there are no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Records a history as it happens: the simulator and test clients call it around each request.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    ops: Vec<Operation>,
    index: HashMap<OpId, usize>,
    next_id: OpId,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an invocation and returns the operation's id.
    pub fn invoke(&mut self, process: u64, input: Input, time: Time) -> OpId {
        let id = self.next_id;
        self.next_id += 1;
        self.index.insert(id, self.ops.len());
        self.ops.push(Operation {
            id,
            process,
            input,
            call: time,
            outcome: Outcome::Unknown,
        });
        id
    }

    /// Records the answer to `id`. Returns false (and records nothing) when `id` is not a
    /// pending operation or the answer's kind does not match.
    pub fn ok(&mut self, id: OpId, output: Output, time: Time) -> bool {
        match self.pending_mut(id) {
            Some(op) if op.input.matches_output(&output) && time >= op.call => {
                op.outcome = Outcome::Ok { output, time };
                true
            }
            _ => false,
        }
    }

    /// Records that `id` certainly did not take effect. Returns false if it was not pending.
    pub fn fail(&mut self, id: OpId) -> bool {
        match self.pending_mut(id) {
            Some(op) => {
                op.outcome = Outcome::Fail;
                true
            }
            None => false,
        }
    }

    /// Number of operations recorded so far.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn pending_mut(&mut self, id: OpId) -> Option<&mut Operation> {
        let index = *self.index.get(&id)?;
        let op = self.ops.get_mut(index)?;
        matches!(op.outcome, Outcome::Unknown).then_some(op)
    }

    /// The history so far; operations still pending have an unknown outcome.
    pub fn into_history(self) -> Result<History, HistoryError> {
        History::new(self.ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
{"type":"invoke","id":7,"process":2,"time":1000,"op":{"f":"put","key":"x","value":"1"}}
{"type":"ok","id":7,"time":1250,"result":{"f":"put"}}
{"type":"invoke","id":8,"process":3,"time":1100,"op":{"f":"get","key":"x"}}
{"type":"info","id":8,"time":5000}
{"type":"invoke","id":9,"process":1,"time":1300,"op":{"f":"cas","key":"x","expected":"1","new":"2"}}
{"type":"fail","id":9,"time":1400}
{"type":"invoke","id":10,"time":1500,"op":{"f":"txn","compares":[{"key":"x","value":null}],"success":[{"f":"put","key":"x","value":"3"}],"failure":[{"f":"get","key":"x"}]}}
{"type":"ok","id":10,"time":1600,"result":{"f":"txn","succeeded":false,"reads":["1"]}}
"#;

    #[test]
    fn parses_documented_format() {
        let h = History::read_json_lines(SAMPLE.as_bytes()).unwrap();
        assert_eq!(h.len(), 4);
        let ops = h.operations();
        assert_eq!(ops[0].return_time(), Some(1250));
        assert_eq!(ops[1].outcome, Outcome::Unknown);
        assert_eq!(ops[2].outcome, Outcome::Fail);
        assert_eq!(
            ops[3].output(),
            Some(&Output::Txn {
                succeeded: false,
                reads: vec![Some("1".into())]
            })
        );
    }

    #[test]
    fn round_trips_through_json_lines() {
        let h = History::read_json_lines(SAMPLE.as_bytes()).unwrap();
        let mut buf = Vec::new();
        h.write_json_lines(&mut buf).unwrap();
        let again = History::read_json_lines(buf.as_slice()).unwrap();
        let mut a = h.operations().to_vec();
        let mut b = again.operations().to_vec();
        a.sort_by_key(|o| o.id);
        b.sort_by_key(|o| o.id);
        assert_eq!(a, b);
    }

    #[test]
    fn rejects_bad_histories() {
        let dup = r#"{"type":"invoke","id":1,"op":{"f":"get","key":"x"}}
{"type":"invoke","id":1,"op":{"f":"get","key":"x"}}"#;
        assert!(matches!(
            History::read_json_lines(dup.as_bytes()),
            Err(HistoryError::DuplicateId { id: 1 })
        ));
        let mismatch = r#"{"type":"invoke","id":1,"op":{"f":"get","key":"x"}}
{"type":"ok","id":1,"result":{"f":"put"}}"#;
        assert!(matches!(
            History::read_json_lines(mismatch.as_bytes()),
            Err(HistoryError::OutputMismatch { id: 1 })
        ));
        let orphan = r#"{"type":"ok","id":3,"result":{"f":"put"}}"#;
        assert!(matches!(
            History::read_json_lines(orphan.as_bytes()),
            Err(HistoryError::NotPending { id: 3 })
        ));
        let mixed = r#"{"type":"invoke","id":1,"time":5,"op":{"f":"get","key":"x"}}
{"type":"ok","id":1,"result":{"f":"get","value":null}}"#;
        assert!(matches!(
            History::read_json_lines(mixed.as_bytes()),
            Err(HistoryError::MixedTimes { id: 1 })
        ));
        let garbage = "{not json";
        assert!(matches!(
            History::read_json_lines(garbage.as_bytes()),
            Err(HistoryError::Json { line: 1, .. })
        ));
    }

    #[test]
    fn untimed_events_use_line_order() {
        let h = History::read_json_lines(
            r#"{"type":"invoke","id":1,"op":{"f":"get","key":"x"}}
{"type":"ok","id":1,"result":{"f":"get","value":null}}"#
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(h.operations()[0].call, 0);
        assert_eq!(h.operations()[0].return_time(), Some(1));
    }

    #[test]
    fn recorder_tracks_outcomes() {
        let mut r = Recorder::new();
        let a = r.invoke(1, Input::Get { key: "k".into() }, 10);
        let b = r.invoke(2, Input::Delete { key: "k".into() }, 11);
        assert!(!r.ok(a, Output::Put, 12), "kind mismatch is refused");
        assert!(r.ok(a, Output::Get { value: None }, 12));
        assert!(
            !r.ok(a, Output::Get { value: None }, 13),
            "already complete"
        );
        assert!(r.fail(b));
        let c = r.invoke(3, Input::Get { key: "k".into() }, 14);
        let h = r.into_history().unwrap();
        assert_eq!(h.operations()[c as usize].outcome, Outcome::Unknown);
        assert_eq!(h.operations()[b as usize].outcome, Outcome::Fail);
    }
}
