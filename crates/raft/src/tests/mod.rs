//! Behavioural tests of the state machine, mostly through the in-memory network harness.

#[cfg(feature = "bug-injection")]
mod bugs;
mod chaos;
mod election;
mod fuzz;
mod membership;
mod read_index;
mod replication;
mod snapshot;
mod transfer;
