//! Pure, deterministic Raft: the consensus core of Quorum.
//!
//! This crate is a state machine in the style of etcd's raft package. It does no IO, spawns
//! no threads, reads no clock and keeps no global state: time advances only through
//! [`RawNode::tick`], and the only randomness (election timeouts) comes from an RNG seeded by
//! [`Config::seed`]. The embedder (the server, or the simulator) owns the network and the
//! disk and drives a [`RawNode`] through the **Ready cycle**:
//!
//! 1. feed inputs: [`RawNode::tick`] on a timer, [`RawNode::step`] for each message from a
//!    peer, and client requests ([`RawNode::propose`], [`RawNode::read_index`],
//!    [`RawNode::propose_conf_change`], [`RawNode::transfer_leadership`]);
//! 2. when [`RawNode::has_ready`], take a [`Ready`] with [`RawNode::ready`] and
//!    - send `messages` at once (the leader's Appends go out in parallel with its own write,
//!      Raft thesis 10.2.1),
//!    - durably write `snapshot`, `entries` and `hard_state` (fsync if `must_sync`),
//!    - only then send `persisted_messages` (votes, append acknowledgements),
//!    - apply `committed_entries` in order (for a [`EntryKind::ConfChange`] entry, decode
//!      it with [`ConfChange::decode`] and call [`RawNode::apply_conf_change`]) and serve
//!      `read_states` once applied;
//! 3. call [`RawNode::advance`]: everything in that Ready is durable and applied. Only now
//!    does a leader count its own copy of new entries towards commitment, so an entry is
//!    committed only once a majority has it on disk.
//!
//! ```
//! use bytes::Bytes;
//! use quorum_raft::{Config, ConfState, MemStorage, RawNode, Role};
//!
//! // A single-member group, bootstrapped with itself as the only voter.
//! let storage = MemStorage::new_with_conf_state(ConfState { voters: vec![1], ..Default::default() });
//! let mut node = RawNode::new(&Config::new(1), storage).unwrap();
//! node.campaign().unwrap();
//! assert_eq!(node.status().soft_state.role, Role::Leader);
//! node.propose(Bytes::from_static(b"hello")).unwrap();
//!
//! let mut applied = Vec::new();
//! while node.has_ready() {
//!     let rd = node.ready();
//!     // 1. messages to peers (none here: no peers).
//!     assert!(rd.messages.is_empty());
//!     // 2. persist the snapshot, the entries and the hard state.
//!     let store = node.storage_mut();
//!     if let Some(snapshot) = rd.snapshot.clone() {
//!         store.apply_snapshot(snapshot).unwrap();
//!     }
//!     store.append(&rd.entries).unwrap();
//!     if let Some(hs) = rd.hard_state {
//!         store.set_hard_state(hs);
//!     }
//!     // 3. messages that needed the persist (votes, acks) would be sent now.
//!     // 4. apply what is committed.
//!     for entry in rd.committed_entries {
//!         if !entry.data.is_empty() {
//!             applied.push(entry.data);
//!         }
//!     }
//!     node.advance();
//! }
//! assert_eq!(applied, vec![Bytes::from_static(b"hello")]);
//! ```
//!
//! Module map: [`raw_node`](RawNode) (the embedder's API), `raft` (roles, elections,
//! replication, reads, transfer), `raft_log` + `log_unstable` (the log), [`tracker`]
//! (per-peer progress and inflight windows), [`quorum`] (majority and joint quorum
//! arithmetic), `confchange` (joint consensus), `read_only` (batched ReadIndex),
//! [`storage`] (the [`Storage`] trait and [`MemStorage`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod conf_change_codec;
mod confchange;
pub mod config;
pub mod errors;
mod log_unstable;
pub mod quorum;
mod raft;
mod raft_log;
mod raw_node;
mod read_only;
pub mod storage;
pub mod tracker;
pub mod types;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use conf_change_codec::{MAX_CHANGES, MAX_CONTEXT_BYTES};
pub use config::{Config, ConfigError, ReadOnlyOption};
pub use errors::{ConfChangeError, ProposeError, RaftError, ReadIndexError};
pub use raft::{CAMPAIGN_TRANSFER, MAX_ENTRIES_PER_PROPOSAL, MAX_READS_BEFORE_COMMIT};
pub use raw_node::{ProgressStatus, RawNode, Ready, Status};
pub use read_only::MAX_PENDING_READS;
pub use storage::{MemStorage, RaftState, Storage, StorageError};
pub use types::*;
