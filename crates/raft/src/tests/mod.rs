//! Behavioural tests of the state machine, mostly through the in-memory network harness.

mod chaos;
mod election;
mod membership;
mod read_index;
mod replication;
mod snapshot;
mod transfer;
