//! Quorum's durable Raft log: a segmented write-ahead log with group commit and crash
//! recovery ([`LogStore`], which implements [`quorum_raft::Storage`]), state-machine snapshot
//! files ([`SnapshotStore`]), and the file-system interface they use ([`FileSystem`], with
//! [`RealFs`] and the simulated [`SimFs`]).
//!
//! # The Ready cycle
//! For each Ready: if it carries a snapshot, save the image with [`SnapshotStore`] and call
//! [`LogStore::apply_snapshot`]; then [`LogStore::append`] the entries and hard state; then
//! [`LogStore::sync`] (or [`SyncHandle::sync`] on another thread) — one `fdatasync` for the
//! whole Ready — and only then tell Raft the Ready is persisted.
//!
//! ```
//! use quorum_raft::{Entry, HardState, Storage};
//! use quorum_storage::{Identity, LogStore, SimFs, WalOptions};
//!
//! let fs = SimFs::new(7); // RealFs in production
//! let id = Identity { cluster_id: 1, member_id: 1 };
//! let opts = WalOptions { segment_size: 1 << 20, ..WalOptions::default() };
//! let (mut log, recovered) = LogStore::open(fs.clone(), "/data/wal", id, opts.clone())?;
//! assert!(recovered.created);
//!
//! // One Ready: entries and hard state, one fdatasync.
//! let entries: Vec<Entry> = (1..=3)
//!     .map(|index| Entry { index, term: 1, data: "put k v".into(), ..Entry::default() })
//!     .collect();
//! log.append(Some(HardState { term: 1, vote: 1, commit: 0 }), &entries)?;
//! log.sync()?; // now tell Raft the Ready is persisted
//!
//! // After a crash, exactly what was synced comes back.
//! drop(log);
//! fs.crash();
//! let (log, _) = LogStore::open(fs, "/data/wal", id, opts)?;
//! assert_eq!(log.last_index(), 3); // inherent accessors shadow the Storage methods
//! assert_eq!(log.initial_state()?.hard_state.vote, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # On disk
//! Segment files `<seq:016x>-<base:016x>.wal`, preallocated, holding records framed as
//! `len u32 | crc32c u32 | type u8 | payload` (CRC over type and payload). Each segment starts
//! with a header record (identity, seq, base index) and a state record (hard state,
//! compaction point, configuration), so segments before a compaction point can be deleted.
//! See the crate's README.md for the format, the recovery rules and the benchmark figures.

#![warn(missing_docs)]

mod codec;
mod error;
pub mod fs;
mod log_state;
mod log_store;
mod metrics;
mod options;
mod record;
mod recovery;
mod segment;
mod snapshot;
mod sync;

pub use error::{Error, Identity, Result};
pub use fs::{FileSystem, FsFile, RealFs, SimFs};
pub use log_store::LogStore;
pub use metrics::WalMetrics;
pub use options::{
    WalOptions, DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_RECORD_SIZE, DEFAULT_SEGMENT_SIZE,
    MAX_RECORD_SIZE_LIMIT,
};
#[doc(hidden)]
pub use record::decode_all;
pub use recovery::{Recovered, TornTail};
pub use snapshot::{SnapshotInfo, SnapshotOptions, SnapshotReader, SnapshotStore, SnapshotWriter};
pub use sync::{SyncHandle, WriteTicket};
