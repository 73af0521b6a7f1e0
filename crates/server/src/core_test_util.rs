//! Shared by the core's unit tests: a member core over a real WAL and store in a directory.

use std::sync::Arc;

use quorum_raft::NodeId;
use quorum_storage::{Identity, LogStore, RealFs, WalOptions};

use crate::core::{Core, CoreConfig};

/// Member 1's core in `dir` (cluster 7): its WAL is bootstrapped with `voters` on first open
/// and recovered on later ones; election after 2 ticks of 10 ms.
pub fn open_core(dir: &std::path::Path, voters: &[NodeId]) -> Core<RealFs> {
    let identity = Identity {
        cluster_id: 7,
        member_id: 1,
    };
    let (mut log, _) =
        LogStore::open(RealFs, dir.join("wal"), identity, WalOptions::default()).unwrap();
    if log.conf_state().voters.is_empty() && log.last_index() == 0 {
        log.set_conf_state(quorum_raft::ConfState {
            voters: voters.to_vec(),
            ..Default::default()
        })
        .unwrap();
        log.sync().unwrap();
    }
    let store = quorum_mvcc::Store::open(dir.join("db"), Default::default()).unwrap();
    let cfg = CoreConfig {
        member_id: 1,
        group_id: 1,
        election_tick: 2,
        heartbeat_tick: 1,
        tick_ms: 10,
        snapshot_count: 1_000_000,
        snapshot_catchup_entries: 0,
        seed: 1,
        max_batch: 64,
    };
    Core::new(cfg, log, Arc::new(store)).unwrap()
}
