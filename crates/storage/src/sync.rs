//! Durability bookkeeping shared between the writer ([`crate::LogStore`]) and any
//! [`SyncHandle`]: which writes were issued, which are known durable, and the segment file an
//! `fdatasync` must cover.

use crate::error::{io_err, Error, Result};
use crate::fs::FsFile;
use crate::metrics::WalMetrics;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Identifies a write to the log: [`crate::LogStore`]'s write methods return one, numbered
/// 1, 2, 3, ... in write order; a sync reports the highest ticket known durable. Ticket 0 means
/// "nothing written".
pub type WriteTicket = u64;

/// Invariant: every write with ticket ≤ `written` went either to `file` or to a segment that
/// was synced before `file` became the active one; `synced ≤ written`.
#[derive(Debug)]
pub(crate) struct SyncState<File> {
    pub file: File,
    pub path: PathBuf,
    pub written: WriteTicket,
    pub synced: WriteTicket,
    pub poisoned: bool,
}

pub(crate) type Shared<File> = Arc<Mutex<SyncState<File>>>;

pub(crate) fn lock<File>(shared: &Shared<File>) -> MutexGuard<'_, SyncState<File>> {
    // The lock is never held across a call that can panic; recover the guard if it ever is.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes every write issued so far durable with one `fdatasync` of the active segment; returns
/// the highest durable ticket.
pub(crate) fn sync_shared<File: FsFile>(
    shared: &Shared<File>,
    metrics: Option<&WalMetrics>,
) -> Result<WriteTicket> {
    let (file, path, target) = {
        let st = lock(shared);
        if st.poisoned {
            return Err(Error::Poisoned);
        }
        if st.synced >= st.written {
            return Ok(st.synced);
        }
        (st.file.clone(), st.path.clone(), st.written)
    };
    let start = Instant::now();
    let result = file.sync_data();
    if let Some(m) = metrics {
        m.fsync_duration.observe(start.elapsed().as_secs_f64());
    }
    let mut st = lock(shared);
    match result {
        Ok(()) => {
            st.synced = st.synced.max(target);
            debug_assert!(st.synced <= st.written);
            Ok(st.synced)
        }
        Err(e) => {
            // After a failed fdatasync the kernel may have dropped the dirty pages: nothing
            // written since the last good sync can be trusted any more.
            st.poisoned = true;
            Err(io_err("fdatasync", path)(e))
        }
    }
}

/// Makes the log's writes durable from another thread, so that the server can write a Ready,
/// send the leader's messages, and sync in parallel. Cheap to clone.
#[derive(Debug)]
pub struct SyncHandle<File> {
    pub(crate) shared: Shared<File>,
    pub(crate) metrics: Option<WalMetrics>,
}

impl<File> Clone for SyncHandle<File> {
    fn clone(&self) -> Self {
        SyncHandle {
            shared: Arc::clone(&self.shared),
            metrics: self.metrics.clone(),
        }
    }
}

impl<File: FsFile> SyncHandle<File> {
    /// Makes every write issued before the call durable (one `fdatasync`); returns the highest
    /// durable [`WriteTicket`]. Concurrent calls are safe; a write issued during the call may or
    /// may not be covered (the returned ticket says).
    pub fn sync(&self) -> Result<WriteTicket> {
        sync_shared(&self.shared, self.metrics.as_ref())
    }

    /// The highest ticket known durable, without syncing.
    pub fn durable(&self) -> WriteTicket {
        lock(&self.shared).synced
    }

    /// The highest ticket written (durable or not).
    pub fn written(&self) -> WriteTicket {
        lock(&self.shared).written
    }
}
