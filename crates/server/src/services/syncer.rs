//! The background task that catches unsynced watchers up: a watcher whose channel was full
//! when events were applied is replayed from history, in bounded rounds, every
//! [`SYNC_INTERVAL`] (etcd: 100 ms). One task per store, started by the first watch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use quorum_mvcc::Store;

/// How often unsynced watchers are caught up.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// The stores that have a syncer, by address. An entry whose store is gone is stale: a new
/// store at the same address (tests open many) starts its own syncer, even if the old one's
/// task died with its runtime before it could remove the entry.
fn running() -> &'static Mutex<HashMap<usize, Weak<Store>>> {
    static RUNNING: OnceLock<Mutex<HashMap<usize, Weak<Store>>>> = OnceLock::new();
    RUNNING.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Starts the syncer of `store` unless it runs already. Must be called inside a tokio runtime.
pub fn ensure_syncer(store: &Arc<Store>) {
    let addr = Arc::as_ptr(store) as usize;
    {
        let mut map = running().lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(&addr).is_some_and(|w| w.strong_count() > 0) {
            return;
        }
        map.insert(addr, Arc::downgrade(store));
    }
    let weak: Weak<Store> = Arc::downgrade(store);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SYNC_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(store) = weak.upgrade() else { break };
            if store.watcher_counts().1 == 0 {
                continue;
            }
            match tokio::task::spawn_blocking(move || store.sync_watchers()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("catching up watchers failed: {e}"),
                Err(e) => tracing::warn!("watcher catch-up task failed: {e}"),
            }
        }
        // Only a stale entry: another store at this address may have its own syncer now.
        let mut map = running().lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(&addr).is_some_and(|w| w.strong_count() == 0) {
            map.remove(&addr);
        }
    });
}
