//! Pure, deterministic Raft.
//!
//! (The crate's top-level documentation, with a runnable example of the `Ready` cycle, is
//! written together with the state machine.)

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod storage;
pub mod types;

pub use storage::{RaftState, Storage, StorageError};
pub use types::*;
