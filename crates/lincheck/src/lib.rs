//! Linearizability checker for histories of a key-value store.
//!
//! Given the operations clients performed (each with an invocation time, and a completion time
//! and answer when one arrived), decide whether some total order of them, consistent with real
//! time, explains every answer under the sequential key-value model of [`model`]. The search is
//! Wing & Gong's, with Lowe's memoisation of (linearized set, model state) pairs, as in
//! Porcupine and Knossos; histories are split into independent partitions per key (merged
//! where a transaction spans keys) and each partition is searched separately.
//!
//! ```
//! use quorum_lincheck::{check, History, Input, Operation, Outcome, Output, Verdict};
//!
//! let put = Operation {
//!     id: 0, process: 1, call: 0,
//!     input: Input::Put { key: "x".into(), value: "1".into() },
//!     outcome: Outcome::Ok { output: Output::Put, time: 10 },
//! };
//! let stale_get = Operation {
//!     id: 1, process: 2, call: 20,
//!     input: Input::Get { key: "x".into() },
//!     outcome: Outcome::Ok { output: Output::Get { value: None }, time: 30 },
//! };
//! let history = History::new(vec![put, stale_get]).unwrap();
//! assert!(matches!(check(&history), Verdict::NotLinearizable(_)));
//! ```
//!
//! Histories from other processes use the JSON-lines format documented in [`history`]; the
//! `lincheck` binary checks such a file.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod history;
pub mod model;
mod precheck;
mod search;

pub use check::{check, Checker, Verdict, Witness};
pub use history::{Event, History, HistoryError, OpId, Operation, Outcome, Recorder, Time};
pub use model::{Compare, Input, Key, Output, State, TxnOp, Value};
pub use search::Budget;
