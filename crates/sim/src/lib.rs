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
//! The node type sits behind the [`member::Member`] trait: today [`member::RaftMember`] (a
//! `RawNode<MemStorage>` with a key-value state machine), later the server's member core.
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
