//! etcd v3's data model as a deterministic replicated state machine on redb: MVCC revisions,
//! ranges, transactions, incremental compaction, leases, watches, hashes, snapshots and quota.
//!
//! Entry point: [`Store`]. Request and response types mirror etcd's protobuf messages field for
//! field ([`types`]); errors carry etcd's messages and gRPC codes ([`MvccError`]).
//! See `README.md` for the storage layout and the figures of `benches/apply.rs`.

#![warn(missing_docs)]

pub mod auth;
mod backup;
mod compact;
pub mod error;
mod hash;
mod index;
pub mod lessor;
mod read;
mod schema;
mod snapshot;
mod store;
pub mod types;
pub mod validate;
pub mod watch;
mod write;

pub use auth::{AuthRequest, AuthResponse, AuthState, PermType, Permission};
pub use error::{GrpcCode, MvccError};
pub use lessor::Lessor;
/// The bbolt file format and etcd's layout in it, for callers of [`Store::backup_import`].
pub use quorum_bbolt as bbolt;
pub use snapshot::MAX_FIELD_BYTES;
pub use store::{request_cost, ApplyOutcome, Store, StoreOptions};
pub use types::*;
pub use watch::{WatchCreateRequest, WatchFilterType, WatchId, WatchOptions, WatchResponse};
