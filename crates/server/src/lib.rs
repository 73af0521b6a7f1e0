//! A Quorum member: the deterministic core (Raft + WAL + MVCC) inside a thin tokio shell, and the
//! etcd v3 gRPC services in front of it. See ARCHITECTURE.md for the big picture.

#![warn(missing_docs)]

pub mod config;
pub mod ids;
