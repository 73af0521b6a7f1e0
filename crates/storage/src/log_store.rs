//! [`LogStore`]: the WAL plus an in-memory copy of the live log, serving Raft's [`Storage`]
//! reads from memory.

use crate::error::{io_err, Error, Identity, Result};
use crate::fs::{FileSystem, FsFile, RealFs};
use crate::log_state::LogState;
use crate::options::WalOptions;
use crate::record::{self, Record};
use crate::recovery::{self, Recovered};
use crate::segment::{self, SegmentInfo};
use crate::sync::{self, Shared, SyncHandle, SyncState, WriteTicket};
use quorum_raft::{ConfState, Entry, HardState, RaftState, Snapshot, Storage, StorageError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The durable Raft log of one member: segmented WAL files in one directory, and the live log
/// (entries after the compaction point, hard state, configuration) in memory.
///
/// Writes ([`append`](Self::append), [`apply_snapshot`](Self::apply_snapshot),
/// [`set_conf_state`](Self::set_conf_state)) go to the file at once but are durable only after
/// [`sync`](Self::sync) (or a [`SyncHandle::sync`] on another thread): one `fdatasync` covers
/// everything written before it, which is how a whole Ready becomes durable at once.
/// Reads through [`Storage`] see writes immediately.
///
/// After any IO failure the store is poisoned ([`Error::Poisoned`]): restart and recover.
pub struct LogStore<F: FileSystem = RealFs> {
    fs: F,
    dir: PathBuf,
    identity: Identity,
    opts: WalOptions,
    state: LogState,
    segments: Vec<SegmentInfo>,
    active: F::File,
    /// Where the next record goes in the active segment.
    offset: u64,
    /// Offset where this process started writing in the active segment: a segment is only
    /// rolled once something was written to it, so one oversized write cannot create empty
    /// segments.
    active_start: u64,
    buf: Vec<u8>,
    shared: Shared<F::File>,
    snapshot: Snapshot,
}

impl<F: FileSystem> std::fmt::Debug for LogStore<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.dir)
            .field("first_index", &self.state.first_index())
            .field("last_index", &self.state.last_index())
            .field("hard_state", &self.state.hard_state)
            .field("segments", &self.segments.len())
            .finish()
    }
}

/// Maximum number of entries in one entries record (bounds decode work per record).
const MAX_ENTRIES_PER_RECORD: usize = 1 << 20;

impl<F: FileSystem> LogStore<F> {
    /// Opens the WAL in `dir`: initialises a new (or empty) directory for `identity`, or
    /// recovers an existing one, verifying every checksum. A torn tail is cut (and reported in
    /// [`Recovered::torn_tail`]); any other damage, a missing segment, or another member's data
    /// is an error naming the file and offset.
    pub fn open(
        fs: F,
        dir: impl AsRef<Path>,
        identity: Identity,
        options: WalOptions,
    ) -> Result<(Self, Recovered)> {
        options.validate().map_err(Error::Invalid)?;
        let dir = dir.as_ref().to_path_buf();
        let rec = recovery::recover(&fs, &dir, identity, &options)?;
        let path = rec
            .segments
            .last()
            .map(|s| s.path.clone())
            .unwrap_or_default();
        let shared = Arc::new(Mutex::new(SyncState {
            file: rec.active.clone(),
            path,
            written: 0,
            synced: 0,
            poisoned: false,
        }));
        let store = LogStore {
            fs,
            dir,
            identity,
            opts: options,
            state: rec.state,
            segments: rec.segments,
            active: rec.active,
            offset: rec.offset,
            active_start: rec.offset,
            buf: Vec::new(),
            shared,
            snapshot: Snapshot::default(),
        };
        Ok((store, rec.report))
    }

    /// The identity the directory belongs to.
    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last written hard state.
    pub fn hard_state(&self) -> HardState {
        self.state.hard_state
    }

    /// The last written configuration.
    pub fn conf_state(&self) -> &ConfState {
        &self.state.conf_state
    }

    /// Index of the first live entry (compaction point + 1).
    pub fn first_index(&self) -> u64 {
        self.state.first_index()
    }

    /// Index of the last entry (the compaction point if there is none after it).
    pub fn last_index(&self) -> u64 {
        self.state.last_index()
    }

    /// The entry at `index`, if live.
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        self.state.entry(index)
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// A handle to make writes durable from another thread.
    pub fn sync_handle(&self) -> SyncHandle<F::File> {
        SyncHandle {
            shared: Arc::clone(&self.shared),
            metrics: self.opts.metrics.clone(),
        }
    }

    /// Writes `entries` (which may replace the log from `entries[0].index` on: a follower
    /// truncating a conflicting suffix) and then `hard_state`, not yet durable. Entries at or
    /// before the compaction point are skipped. Returns the write's ticket.
    ///
    /// Refused ([`Error::Invalid`]) if the entries are not contiguous, leave a gap, overwrite a
    /// committed entry, or the hard state goes back in term, vote or commit, or commits beyond
    /// the log; [`Error::TooLarge`] if one entry exceeds the record limit or the whole write
    /// exceeds the batch limit. Nothing is written when refused.
    pub fn append(
        &mut self,
        hard_state: Option<HardState>,
        entries: &[Entry],
    ) -> Result<WriteTicket> {
        let skip = self.state.check_append(entries).map_err(Error::Invalid)?;
        let live = &entries[skip..];
        if let Some(hs) = &hard_state {
            self.state.check_hard_state(hs).map_err(Error::Invalid)?;
            let last = live.last().map_or(self.state.last_index(), |e| e.index);
            self.state
                .check_commit_in_log(hs.commit, last)
                .map_err(Error::Invalid)?;
        }
        let max_entry = self
            .opts
            .max_record_size
            .saturating_sub(crate::codec::ENTRIES_HEADER as u64);
        if let Some(big) = live.iter().find(|e| record::entry_size(e) > max_entry) {
            return Err(Error::TooLarge {
                size: record::entry_size(big),
                limit: max_entry,
            });
        }
        let total: u64 = live.iter().map(record::entry_size).sum();
        if total > self.opts.max_batch_size {
            return Err(Error::TooLarge {
                size: total,
                limit: self.opts.max_batch_size,
            });
        }
        if live.is_empty() && hard_state.is_none() {
            return Ok(sync::lock(&self.shared).written);
        }
        self.buf.clear();
        let mut rest = live;
        while !rest.is_empty() {
            let mut size = crate::codec::ENTRIES_HEADER as u64;
            let mut n = 0;
            while n < rest.len() && n < MAX_ENTRIES_PER_RECORD {
                let s = record::entry_size(&rest[n]);
                if n > 0 && size + s > self.opts.max_record_size {
                    break;
                }
                size += s;
                n += 1;
            }
            debug_assert!(n > 0 && size <= self.opts.max_record_size);
            record::encode_entries(&mut self.buf, &rest[..n]);
            rest = &rest[n..];
        }
        if let Some(hs) = &hard_state {
            record::encode(&mut self.buf, &Record::HardState(*hs));
        }
        let ticket = self.write_buf()?;
        self.state.apply_append(entries, skip);
        if let Some(hs) = hard_state {
            self.state.hard_state = hs;
        }
        Ok(ticket)
    }

    /// Makes everything written so far durable with one `fdatasync`; returns the highest
    /// durable ticket.
    pub fn sync(&mut self) -> Result<WriteTicket> {
        sync::sync_shared(&self.shared, self.opts.metrics.as_ref())
    }

    /// [`append`](Self::append) then [`sync`](Self::sync): one Ready's worth of state, durable
    /// on return.
    pub fn save(&mut self, hard_state: Option<HardState>, entries: &[Entry]) -> Result<()> {
        self.append(hard_state, entries)?;
        self.sync()?;
        Ok(())
    }

    /// Records that `snapshot` was installed: the whole log is replaced by the snapshot point
    /// (its index, term and configuration) and the commit index moves to it. Not yet durable.
    /// The snapshot's image must already be durable (see [`crate::SnapshotStore`]) when this
    /// record is synced. The snapshot is kept for [`Storage::snapshot`].
    pub fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<WriteTicket> {
        let meta = &snapshot.metadata;
        self.state.check_snapshot(meta).map_err(Error::Invalid)?;
        self.buf.clear();
        record::encode(&mut self.buf, &Record::Snapshot(meta.clone()));
        let ticket = self.write_buf()?;
        self.state.apply_snapshot(meta);
        self.snapshot = snapshot.clone();
        Ok(ticket)
    }

    /// Records the configuration in force (after applying a configuration change). Not yet
    /// durable.
    pub fn set_conf_state(&mut self, conf_state: ConfState) -> Result<WriteTicket> {
        self.buf.clear();
        record::encode(&mut self.buf, &Record::ConfState(conf_state.clone()));
        let ticket = self.write_buf()?;
        self.state.set_conf_state(conf_state);
        Ok(ticket)
    }

    /// Sets the snapshot [`Storage::snapshot`] hands to Raft: after the server made one of its
    /// own state machine, or after a restart (memory only: the image's durable copy is in the
    /// snapshot store).
    pub fn set_snapshot(&mut self, snapshot: Snapshot) {
        self.snapshot = snapshot;
    }

    /// Discards the entries up to `index` (which must be committed), makes that durable, and
    /// deletes the segment files that hold only discarded entries. A no-op for an index at or
    /// before the compaction point (but still deletes segments a snapshot made obsolete).
    pub fn compact(&mut self, index: u64) -> Result<()> {
        if let Some(term) = self.state.check_compact(index).map_err(Error::Invalid)? {
            self.buf.clear();
            record::encode(&mut self.buf, &Record::Compact { index, term });
            self.write_buf()?;
            self.state.apply_compact(index, term);
        }
        // The compaction (or snapshot) record must be durable before the segments it makes
        // obsolete disappear.
        self.sync()?;
        let keep_from = self
            .segments
            .windows(2)
            .take_while(|w| w[1].base <= self.state.compacted_index + 1)
            .count();
        if keep_from == 0 {
            return Ok(());
        }
        for seg in self.segments.drain(..keep_from) {
            self.fs
                .remove(&seg.path)
                .map_err(io_err("remove", &seg.path))?;
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(io_err("fsync directory", &self.dir))?;
        debug_assert!(!self.segments.is_empty());
        Ok(())
    }

    /// Writes `self.buf` at the end of the active segment, rolling to a new segment first if
    /// it would overflow the target size.
    fn write_buf(&mut self) -> Result<WriteTicket> {
        if sync::lock(&self.shared).poisoned {
            return Err(Error::Poisoned);
        }
        let len = self.buf.len() as u64;
        if self.offset + len > self.opts.segment_size && self.offset > self.active_start {
            self.roll()?;
        }
        let path = self
            .segments
            .last()
            .map(|s| s.path.clone())
            .unwrap_or_default();
        if let Err(e) = self.active.write_at(self.offset, &self.buf) {
            sync::lock(&self.shared).poisoned = true;
            return Err(io_err("write", path)(e));
        }
        self.offset += len;
        if let Some(m) = &self.opts.metrics {
            m.write_bytes.inc_by(len);
        }
        let mut st = sync::lock(&self.shared);
        st.written += 1;
        Ok(st.written)
    }

    /// Seals the active segment (synced) and starts the next one.
    fn roll(&mut self) -> Result<()> {
        self.sync()?;
        let (seq, base) = match self.segments.last() {
            Some(s) => (s.seq + 1, self.state.last_index() + 1),
            None => (0, self.state.last_index() + 1),
        };
        let created = segment::create_segment(
            &self.fs,
            &self.dir,
            self.identity,
            seq,
            base,
            &self.state.state_record(),
            &self.opts,
        );
        let (info, file, offset) = match created {
            Ok(c) => c,
            Err(e) => {
                sync::lock(&self.shared).poisoned = true;
                return Err(e);
            }
        };
        {
            let mut st = sync::lock(&self.shared);
            // Everything written so far was in the sealed segment, which is synced.
            debug_assert_eq!(st.synced, st.written);
            st.file = file.clone();
            st.path = info.path.clone();
        }
        self.segments.push(info);
        self.active = file;
        self.offset = offset;
        self.active_start = offset;
        Ok(())
    }
}

fn other(e: impl std::fmt::Display) -> StorageError {
    StorageError::Other(e.to_string())
}

impl<F: FileSystem> Storage for LogStore<F> {
    fn initial_state(&self) -> Result<RaftState, StorageError> {
        Ok(RaftState {
            hard_state: self.state.hard_state,
            conf_state: self.state.conf_state.clone(),
        })
    }

    fn entries(&self, low: u64, high: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        if low > high {
            return Err(other(format!("entries: low {low} > high {high}")));
        }
        if low <= self.state.compacted_index {
            return Err(StorageError::Compacted);
        }
        if high > self.state.last_index() + 1 {
            return Err(StorageError::Unavailable);
        }
        let mut out = Vec::new();
        let mut size = 0u64;
        for index in low..high {
            let Some(e) = self.state.entry(index) else {
                return Err(StorageError::Unavailable);
            };
            size += e.size();
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn term(&self, index: u64) -> Result<u64, StorageError> {
        if index < self.state.compacted_index {
            return Err(StorageError::Compacted);
        }
        self.state.term(index).ok_or(StorageError::Unavailable)
    }

    fn first_index(&self) -> Result<u64, StorageError> {
        Ok(self.state.first_index())
    }

    fn last_index(&self) -> Result<u64, StorageError> {
        Ok(self.state.last_index())
    }

    fn snapshot(&self, request_index: u64) -> Result<Snapshot, StorageError> {
        if self.snapshot.metadata.index == 0 || self.snapshot.metadata.index < request_index {
            return Err(StorageError::SnapshotTemporarilyUnavailable);
        }
        Ok(self.snapshot.clone())
    }
}
