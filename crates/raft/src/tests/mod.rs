//! Behavioural tests of the state machine, mostly through the in-memory [`Network`].

mod election;
mod replication;
