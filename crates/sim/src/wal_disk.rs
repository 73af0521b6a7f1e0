//! The WAL disk: each member's Raft log is a `quorum_storage::LogStore` on its own simulated
//! file system (`SimFs`), which keeps written-but-unsynced data apart. A crash loses everything
//! not synced, and half the time tears the last unsynced write (a random prefix survives);
//! recovery must cut the torn tail.

use quorum_raft::{ConfState, Entry, NodeId, Ready};
use quorum_storage::{Identity, LogStore, SimFs, WalOptions};

use crate::member::{Disk, MemberParams};
use crate::rng::SimRng;

/// Where the WAL lives on each member's simulated file system.
const WAL_DIR: &str = "/wal";
/// Small segments, so runs exercise segment rollover too.
const SEGMENT_BYTES: u64 = 256 * 1024;

/// A member's simulated disk holding a WAL.
#[derive(Debug)]
pub struct WalDisk {
    fs: SimFs,
    rng: SimRng,
}

impl WalDisk {
    /// An empty disk whose random choices (torn writes) derive from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = SimRng::new(seed);
        WalDisk {
            fs: SimFs::new(rng.next_u64()),
            rng,
        }
    }
}

impl Disk for WalDisk {
    type Store = LogStore<SimFs>;

    fn open(&mut self, id: NodeId, params: &MemberParams) -> Result<Self::Store, String> {
        let options = WalOptions {
            segment_size: SEGMENT_BYTES,
            preallocate: false,
            ..WalOptions::default()
        };
        let identity = Identity {
            cluster_id: 1,
            member_id: id,
        };
        let (mut store, _recovered) = LogStore::open(self.fs.clone(), WAL_DIR, identity, options)
            .map_err(|e| format!("opening WAL: {e}"))?;
        if store.conf_state().voters.is_empty() {
            store
                .set_conf_state(ConfState {
                    voters: params.voters.clone(),
                    ..Default::default()
                })
                .and_then(|_| store.sync())
                .map_err(|e| format!("bootstrapping WAL: {e}"))?;
        }
        Ok(store)
    }

    fn write(store: &mut Self::Store, rd: &Ready) -> Result<(), String> {
        if let Some(snapshot) = &rd.snapshot {
            store.apply_snapshot(snapshot).map_err(|e| e.to_string())?;
        }
        if !rd.entries.is_empty() || rd.hard_state.is_some() {
            store
                .append(rd.hard_state, &rd.entries)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn sync(store: &mut Self::Store) -> Result<(), String> {
        store.sync().map(|_| ()).map_err(|e| e.to_string())
    }

    fn slow_sync() -> bool {
        true
    }

    fn crash(&mut self, _store: &Self::Store) {
        if self.rng.chance(0.5) {
            self.fs.crash_torn();
        } else {
            self.fs.crash();
        }
    }

    fn entry(store: &Self::Store, index: u64) -> Option<&Entry> {
        store.entry(index)
    }

    fn last_index(store: &Self::Store) -> u64 {
        store.last_index()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorum_raft::{HardState, Storage};

    fn params() -> MemberParams {
        MemberParams {
            voters: vec![1, 2, 3],
            initial: Default::default(),
            tweak: None,
            seed: 1,
            max_msg_bytes: 1024,
        }
    }

    fn entry(index: u64) -> Entry {
        Entry {
            term: 1,
            index,
            data: bytes::Bytes::from(vec![7u8; 100]),
            ..Entry::default()
        }
    }

    #[test]
    fn crash_keeps_synced_and_loses_unsynced_writes() {
        for seed in 0..20 {
            let mut disk = WalDisk::new(seed);
            let mut store = disk.open(1, &params()).unwrap();
            assert_eq!(
                store.initial_state().unwrap().conf_state.voters,
                vec![1, 2, 3]
            );
            let synced = Ready {
                entries: (1..=3).map(entry).collect(),
                hard_state: Some(HardState {
                    term: 1,
                    vote: 1,
                    commit: 2,
                }),
                ..Ready::default()
            };
            WalDisk::write(&mut store, &synced).unwrap();
            WalDisk::sync(&mut store).unwrap();
            let unsynced = Ready {
                entries: (4..=6).map(entry).collect(),
                ..Ready::default()
            };
            WalDisk::write(&mut store, &unsynced).unwrap();
            assert_eq!(WalDisk::last_index(&store), 6);
            disk.crash(&store);
            drop(store);
            let store = disk.open(1, &params()).unwrap();
            let last = WalDisk::last_index(&store);
            assert!((3..=6).contains(&last), "seed {seed}: last index {last}");
            assert_eq!(WalDisk::entry(&store, 3), Some(&entry(3)));
            assert_eq!(store.initial_state().unwrap().hard_state.commit, 2);
        }
    }
}
