//! The background task that catches unsynced watchers up: a watcher whose channel was full
//! when events were applied is replayed from history, in bounded rounds, every
//! [`SYNC_INTERVAL`] (etcd: 100 ms). One task per store, started by the first watch.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use quorum_mvcc::Store;

/// How often unsynced watchers are caught up.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// Addresses of the stores that have a syncer running. A store is registered while its syncer
/// runs; the syncer unregisters it when the store is gone.
fn running() -> &'static Mutex<HashSet<usize>> {
    static RUNNING: OnceLock<Mutex<HashSet<usize>>> = OnceLock::new();
    RUNNING.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Starts the syncer of `store` unless it runs already. Must be called inside a tokio runtime.
pub fn ensure_syncer(store: &Arc<Store>) {
    let addr = Arc::as_ptr(store) as usize;
    {
        let mut set = running().lock().unwrap_or_else(PoisonError::into_inner);
        if !set.insert(addr) {
            return;
        }
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
        running()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&addr);
    });
}
