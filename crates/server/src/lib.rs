//! A Quorum member: the deterministic core (Raft + WAL + MVCC) inside a thin tokio shell, and the
//! etcd v3 gRPC services in front of it. See ARCHITECTURE.md for the big picture.

#![warn(missing_docs)]

pub mod auth_convert;
pub mod compactor;
pub mod config;
pub mod convert;
pub mod core;
pub mod entry;
pub mod error;
pub mod gateway;
pub mod housekeeping;
pub mod http;
pub mod ids;
pub mod join;
pub mod member;
pub mod membership;
pub mod metrics;
pub mod restore;
pub mod server;
pub mod services;
pub mod shell;
pub mod tls;
pub mod transport;
pub mod wire;

#[cfg(test)]
mod core_test_util;
#[cfg(test)]
mod lease_core_tests;
#[cfg(test)]
mod membership_core_tests;
