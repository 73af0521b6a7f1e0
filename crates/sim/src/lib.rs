//! Deterministic whole-cluster simulator with fault injection.
//!
//! One 64-bit seed defines a run: group size (1, 3, 5 or 7 members), workload, fault mix and
//! every random choice after that. Members, the network between them, their clocks and the
//! clients all live in one thread and advance through one event queue ordered by simulated
//! time, so a seed replays bit for bit (the hash of the full event trace is the fingerprint).
//!
//! During the fault phase the network delays (and so reorders), loses and duplicates messages,
//! partitions appear and heal (halves, an isolated member, an asymmetric link, a bridge
//! member), members crash and restart (losing everything not handed to storage) or pause and
//! resume with stale beliefs, and clocks tick at skewed, jittery rates. Then everything heals
//! and a write must commit within a bound (liveness).
//!
//! The safety invariants of [`checks`] are checked after every step; at the end the recorded
//! client history goes through the linearizability checker (`quorum-lincheck`), and the bank
//! workload's total must be conserved. A failure prints the seed, the check, the last events
//! and the command that replays it with full tracing.
//!
//! A scripted Figure 8 nemesis (`FaultMix::figure8`) drives the group through the sequence of
//! Figure 8 of the Raft paper, randomized within that shape.
//!
//! The node type sits behind the [`member::Member`] trait: [`member::RaftMember`] (a `RawNode`
//! over an in-memory or WAL disk with a key-value state machine) and
//! [`core_member::CoreMember`] (the server's member core over the WAL and the MVCC store, with
//! snapshots, the bank workload, leases ([`lease`]) and watch checks).
//!
//! ```
//! let mut cfg = quorum_sim::SimConfig::from_seed(1);
//! cfg.members = 3;
//! let report = quorum_sim::run(&cfg).expect("seed 1 passes");
//! assert!(report.ok_ops > 0);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checks;
pub mod clock;
pub mod cluster;
pub mod core_member;
pub mod kv;
pub mod lease;
pub mod member;
pub mod network;
pub mod replay;
pub mod rng;
pub mod sweep;
pub mod trace;
pub mod wal_disk;
pub mod watch_check;
pub mod workload;

pub use cluster::{run, run_with, DiskKind, FaultMix, RunReport, SimConfig, SimFailure};
pub use sweep::{sweep, SweepReport};
