//! [`Store`]: the replicated state machine (apply, reads, compaction, leases, watches, hashes,
//! snapshots, quota).

use crate::backup;
use crate::compact;
use crate::error::MvccError;
use crate::hash;
use crate::index::{KeyIndex, Rev};
use crate::lessor::Lessor;
use crate::read::{self, write_index};
use crate::schema::*;
use crate::snapshot;
use crate::types::*;
use crate::watch::{WatchCreateRequest, WatchHub, WatchId, WatchOptions, WatchResponse};
use crate::write::{
    lease_keys_of, list_alarms, meta_get, resolve_read_rev, txn_has_puts, ApplyLimits, LeaseChange,
    Writer,
};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableHandle, WriteTransaction,
};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use tokio::sync::mpsc::Sender;

/// Store configuration.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// `--quota-backend-bytes`: writes are refused (NOSPACE) above this many bytes in use.
    pub quota_bytes: u64,
    /// `--max-txn-ops`: compares / operations per txn level (etcd default 128).
    pub max_txn_ops: usize,
    /// Minimum lease TTL in seconds (etcd: `ceil(1.5 * election timeout)`, 2 s by default).
    pub min_lease_ttl: i64,
    /// redb page cache size in bytes.
    pub cache_bytes: usize,
    /// Compaction entries processed at the end of every applied batch (0 = only through
    /// [`Store::run_compaction`]).
    pub compaction_batch: usize,
    /// fsync every applied batch. When false, a crash may lose the latest batches; the
    /// consistent index rolls back with them, so replaying the Raft log repairs it. Also, when
    /// false, applied batches are gathered in one open engine transaction and committed
    /// together (see [`Store::commit_pending`]): readers still see every applied write.
    pub durable: bool,
    /// Interval before the lessor reports an expired lease again (etcd: 3 s).
    pub lease_retry_ms: u64,
    /// Watch limits.
    pub watch: WatchOptions,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            quota_bytes: 2 * 1024 * 1024 * 1024,
            max_txn_ops: 128,
            min_lease_ttl: 2,
            cache_bytes: 64 * 1024 * 1024,
            compaction_batch: 1_000,
            durable: true,
            lease_retry_ms: 3_000,
            watch: WatchOptions::default(),
        }
    }
}

/// The outcome of one entry given to [`Store::apply`]: `None` when the entry's index was
/// already applied (replay after a restart), else the request's response or error.
pub type ApplyOutcome = Option<Result<WriteResponse, MvccError>>;

/// Fixed per-key overhead counted by the quota (etcd counts key + value + a small header).
const QUOTA_KV_OVERHEAD: u64 = 64;

/// Applied batches gathered in one open engine transaction (non-durable mode only).
///
/// Invariant: everything applied is in the database's committed state or in this
/// transaction, and [`Store::dirty`] is true while it exists; a reader that must see every
/// applied write commits it first ([`Store::read_txn`]).
struct Pending {
    txn: WriteTransaction,
    batches: u64,
    entries: u64,
}

/// Applied batches kept in the open transaction before it is committed anyway (etcd's bbolt
/// batch limit is 10,000 writes; its interval, 100 ms, is the caller's [`Store::commit_pending`]).
const MAX_PENDING_ENTRIES: u64 = 10_000;
/// Applied batches kept in the open transaction before it is committed anyway.
const MAX_PENDING_BATCHES: u64 = 1_000;

/// etcd's v3 store on redb. `Sync`: reads run concurrently with applies on redb read
/// transactions; applies, compaction steps and imports are serialised.
///
/// In non-durable mode, applies go into one engine transaction kept open across batches
/// (one copy-on-write commit per many batches instead of one per batch, as etcd's batched
/// bbolt transactions): a reader that needs the applied state commits it first, the caller
/// commits it periodically ([`Store::commit_pending`]), and it is committed by itself once it
/// holds [`MAX_PENDING_ENTRIES`] entries.
pub struct Store {
    db: Database,
    path: PathBuf,
    opts: StoreOptions,
    /// Serialises writers; holds the open transaction of applied batches, if any.
    write: Mutex<Option<Pending>>,
    /// True while [`Store::write`] holds a [`Pending`] transaction (read without the lock).
    dirty: AtomicBool,
    /// Set when a commit failed: the applied state is then lost, every later write fails.
    failed: Mutex<Option<String>>,
    /// Revision counters and consistent index as of the last applied batch.
    current_rev: AtomicU64,
    compact_rev: AtomicU64,
    applied_index: AtomicU64,
    /// Active alarms as of the last applied batch (read by the quota check of every write).
    alarm_cache: std::sync::RwLock<std::sync::Arc<Vec<AlarmMember>>>,
    hub: Mutex<WatchHub>,
    lessor: Mutex<Lessor>,
    in_use: AtomicU64,
    commits: AtomicU64,
    /// The key index over the `history` table (see `index.rs`).
    index: RwLock<KeyIndex>,
    /// Held (shared) by readers that combine an engine snapshot with the key index, and
    /// exclusively by a snapshot import, which replaces both.
    import_gate: RwLock<()>,
    /// The auth state as last committed (replaced, never mutated, by the apply path).
    auth: std::sync::RwLock<std::sync::Arc<crate::auth::AuthState>>,
    /// Tokens assigned by applied `Authenticate` requests, until the server takes them.
    assigned_tokens: Mutex<std::collections::VecDeque<crate::auth::AssignedToken>>,
}

/// With `durable == false`, every this many commits one is made durable anyway.
const NON_DURABLE_SYNC_EVERY: u64 = 64;

/// Poisons the store when dropped armed: held across work that changes the key index or the
/// open transaction, and disarmed only when that work succeeded, so an error return or a
/// panic in between leaves a store that refuses to serve (the member restarts and replays)
/// instead of one whose index and engine disagree.
struct PoisonGuard<'a> {
    failed: &'a Mutex<Option<String>>,
    what: &'static str,
    armed: bool,
}

impl<'a> PoisonGuard<'a> {
    fn new(failed: &'a Mutex<Option<String>>, what: &'static str) -> Self {
        PoisonGuard {
            failed,
            what,
            armed: true,
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for PoisonGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut f = lock(self.failed);
            if f.is_none() {
                *f = Some(format!("{} did not complete", self.what));
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn counters(txn: &ReadTransaction) -> Result<(u64, u64), MvccError> {
    match txn.open_table(META) {
        Ok(meta) => Ok((
            meta_get(&meta, META_CURRENT_REV)?.unwrap_or(INITIAL_REVISION),
            meta_get(&meta, META_COMPACT_REV)?.unwrap_or(0),
        )),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok((INITIAL_REVISION, 0)),
        Err(e) => Err(e.into()),
    }
}

fn load_auth(db: &Database) -> Result<crate::auth::AuthState, MvccError> {
    let txn = db.begin_read()?;
    match txn.open_table(AUTH) {
        Ok(t) => crate::auth::load(&t),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(crate::auth::AuthState::default()),
        Err(e) => Err(e.into()),
    }
}

impl Store {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Store, MvccError> {
        let path = path.as_ref().to_path_buf();
        let db = Database::builder()
            .set_cache_size(opts.cache_bytes)
            .create(&path)?;
        {
            // Create every table so readers never see a missing one.
            let txn = db.begin_write()?;
            {
                let mut meta = txn.open_table(META)?;
                if meta_get(&meta, META_IMPORTING)?.is_some() {
                    return Err(MvccError::CorruptData(
                        "an interrupted snapshot import left the store incomplete".to_string(),
                    ));
                }
                if txn.list_tables()?.any(|t| t.name() == LEGACY_KV.name()) {
                    return Err(MvccError::CorruptData(
                        "the store was written by an older Quorum build (key-ordered layout); \
                         take a snapshot with that build and restore it with this one"
                            .to_string(),
                    ));
                }
                if meta_get(&meta, META_CURRENT_REV)?.is_none() {
                    // Every snapshot carries the revision, even one of an empty store.
                    meta.insert(META_CURRENT_REV, INITIAL_REVISION)?;
                }
                txn.open_table(HISTORY)?;
                txn.open_table(LEASE)?;
                txn.open_table(LEASE_KEYS)?;
                txn.open_table(ALARM)?;
                txn.open_table(AUTH)?;
            }
            txn.commit()?;
        }
        let auth = load_auth(&db)?;
        let current = counters(&db.begin_read()?)?.0;
        let store = Store {
            db,
            path,
            hub: Mutex::new(WatchHub::new(current, opts.watch)),
            lessor: Mutex::new(Lessor::new(opts.lease_retry_ms)),
            opts,
            write: Mutex::new(None),
            dirty: AtomicBool::new(false),
            failed: Mutex::new(None),
            // Set from the committed state by `load_cached_state` below.
            current_rev: AtomicU64::new(0),
            compact_rev: AtomicU64::new(0),
            applied_index: AtomicU64::new(0),
            alarm_cache: std::sync::RwLock::new(std::sync::Arc::new(Vec::new())),
            in_use: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            index: RwLock::new(KeyIndex::default()),
            import_gate: RwLock::new(()),
            auth: std::sync::RwLock::new(std::sync::Arc::new(auth)),
            assigned_tokens: Mutex::new(std::collections::VecDeque::new()),
        };
        store.load_cached_state()?;
        store.rebuild_index()?;
        store.update_usage()?;
        Ok(store)
    }

    /// Rebuilds the key index from the committed `history` table (at open and after an
    /// import): one ordered scan, revisions arrive oldest first.
    fn rebuild_index(&self) -> Result<(), MvccError> {
        let started = std::time::Instant::now();
        let txn = self.db.begin_read()?;
        let (current, compact) = counters(&txn)?;
        let table = txn.open_table(HISTORY)?;
        let mut ix = KeyIndex::default();
        let mut revisions = 0u64;
        for item in table.iter()? {
            let (k, v) = item?;
            let (main, sub) = k.value();
            let (key, rec) = split_history(v.value())?;
            if main > current {
                return Err(MvccError::CorruptData(format!(
                    "revision {main} is stored but the store's current revision is {current}"
                )));
            }
            let live = Record::decode_meta(rec)?;
            let sub = u32::try_from(sub).map_err(|_| {
                MvccError::CorruptData(format!("sub-revision {sub} of revision {main} too large"))
            })?;
            ix.push(
                key,
                Rev {
                    main,
                    sub,
                    tomb: live.is_none(),
                },
                live,
            )?;
            revisions += 1;
        }
        ix.raise_floor(compact);
        let keys = ix.len();
        *write_index(&self.index) = ix;
        let took = started.elapsed();
        if took > std::time::Duration::from_millis(500) {
            tracing::info!(
                keys,
                revisions,
                "key index rebuilt from the store in {:.1} s",
                took.as_secs_f64()
            );
        }
        Ok(())
    }

    /// Shared hold of the import gate (see [`Store::import_gate`]).
    fn gate(&self) -> RwLockReadGuard<'_, ()> {
        self.import_gate
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reloads the in-memory copies of committed state (counters, consistent index, alarms)
    /// after open or a snapshot import.
    fn load_cached_state(&self) -> Result<(), MvccError> {
        let txn = self.db.begin_read()?;
        let (current, compact) = counters(&txn)?;
        let ci = meta_get(&txn.open_table(META)?, META_CONSISTENT_INDEX)?.unwrap_or(0);
        self.current_rev.store(current, Ordering::Release);
        self.compact_rev.store(compact, Ordering::Release);
        self.applied_index.store(ci, Ordering::Release);
        self.set_alarms(list_alarms(&txn.open_table(ALARM)?)?);
        Ok(())
    }

    fn set_alarms(&self, alarms: Vec<AlarmMember>) {
        // Called after every applied batch: the common case (unchanged) only reads.
        if **self
            .alarm_cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            == alarms
        {
            return;
        }
        let mut cache = self
            .alarm_cache
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if **cache != alarms {
            *cache = std::sync::Arc::new(alarms);
        }
    }

    /// Fails if an earlier commit failed (the applied state it held is lost: the member must
    /// restart and replay its log).
    fn check_failed(&self) -> Result<(), MvccError> {
        match &*lock(&self.failed) {
            Some(e) => Err(MvccError::Storage(format!(
                "an earlier commit of the store failed ({e}); restart to replay the log"
            ))),
            None => Ok(()),
        }
    }

    /// The open transaction of applied batches, or a new one. Call with the write lock held.
    fn write_txn(&self, slot: &mut Option<Pending>) -> Result<Pending, MvccError> {
        self.check_failed()?;
        match slot.take() {
            Some(p) => Ok(p),
            None => Ok(Pending {
                txn: self.db.begin_write()?,
                batches: 0,
                entries: 0,
            }),
        }
    }

    /// Commits `txn` (durably if the store is durable, or if `durable`, or every
    /// [`NON_DURABLE_SYNC_EVERY`] commits: redb only recycles pages freed by non-durable
    /// commits after a durable one). A failure poisons the store. Call with the write lock.
    fn commit_txn(&self, mut txn: WriteTransaction, durable: bool) -> Result<(), MvccError> {
        let commits = self.commits.fetch_add(1, Ordering::Relaxed) + 1;
        if !durable && !self.opts.durable && !commits.is_multiple_of(NON_DURABLE_SYNC_EVERY) {
            txn.set_durability(Durability::None)
                .map_err(|e| MvccError::Storage(e.to_string()))?;
        }
        let result = txn.commit();
        self.dirty.store(false, Ordering::Release);
        if let Err(e) = result {
            *lock(&self.failed) = Some(e.to_string());
            return Err(e.into());
        }
        Ok(())
    }

    /// Commits the open transaction of applied batches, if any, so that the engine's readers
    /// see them. Call with the write lock held.
    fn commit_pending_locked(&self, slot: &mut Option<Pending>) -> Result<(), MvccError> {
        match slot.take() {
            Some(p) => self.commit_txn(p.txn, false),
            None => Ok(()),
        }
    }

    /// Commits the applied batches still held in the open engine transaction (non-durable
    /// mode), without an fsync. Readers commit it themselves when they need it; call this
    /// periodically (etcd commits its batch every 100 ms) to bound the work a reader may find.
    pub fn commit_pending(&self) -> Result<(), MvccError> {
        if !self.dirty.load(Ordering::Acquire) {
            return Ok(());
        }
        self.commit_pending_locked(&mut lock(&self.write))
    }

    /// A read transaction that sees every applied write (commits the open transaction of
    /// applied batches first, if there is one).
    fn read_txn(&self) -> Result<ReadTransaction, MvccError> {
        // After a failed commit the engine lacks applied writes: never serve that state. Checked
        // again after waiting for the write lock: the batch waited for may have failed.
        self.check_failed()?;
        self.commit_pending()?;
        let txn = self.db.begin_read()?;
        self.check_failed()?;
        Ok(txn)
    }

    /// Runs `read` on a fresh snapshot; when it fails with `compacted` only because a batch
    /// still being applied has started pruning the key index past the snapshot (a compaction
    /// to a revision newer than the snapshot's), waits for that batch and tries again, so a
    /// read at the current revision never fails that way.
    fn with_snapshot<T>(
        &self,
        revision: i64,
        read: impl Fn(&ReadTransaction) -> Result<T, MvccError>,
    ) -> Result<T, MvccError> {
        let _gate = self.gate();
        let mut tries = 0;
        loop {
            let txn = self.read_txn()?;
            match read(&txn) {
                Err(MvccError::Compacted) if revision <= 0 && tries < 8 => {
                    tries += 1;
                    // The batch holds the write lock until it is in the open transaction.
                    drop(lock(&self.write));
                }
                other => return other,
            }
        }
    }

    fn limits(&self) -> ApplyLimits {
        ApplyLimits {
            max_txn_ops: self.opts.max_txn_ops,
            min_lease_ttl: self.opts.min_lease_ttl,
        }
    }

    /// Applies committed entries `(raft index, request)` in one engine transaction that also
    /// records the last index. Entries at or below the stored consistent index are skipped
    /// (`None`). Request errors (etcd's) are per entry and leave no trace; an `Err` means the
    /// engine failed and nothing of the batch was committed.
    pub fn apply(&self, entries: &[(u64, WriteRequest)]) -> Result<Vec<ApplyOutcome>, MvccError> {
        // Lock order: `hub` before `write` (a watcher's catch-up commits the open transaction
        // under the hub lock), so the hub is never locked while `write` is held here.
        let events_mode = lock(&self.hub).events_mode();
        let mut slot = lock(&self.write);
        let mut pending = self.write_txn(&mut slot)?;
        let guard = PoisonGuard::new(&self.failed, "an applied batch");
        let mut results = Vec::with_capacity(entries.len());
        let written = (|| {
            let mut w = Writer::open(&pending.txn, &self.index, self.limits())?;
            w.events_mode = events_mode;
            w.auth = self.auth_state();
            let mut ci = meta_get(&w.meta, META_CONSISTENT_INDEX)?.unwrap_or(0);
            for (index, req) in entries {
                if *index <= ci {
                    results.push(None);
                    continue;
                }
                let r = w.apply(*index, req);
                if let Err(e @ (MvccError::Storage(_) | MvccError::CorruptData(_))) = r {
                    // The transaction may hold part of this request: abort the batch.
                    return Err(e);
                }
                results.push(Some(r));
                ci = *index;
            }
            w.meta.insert(META_CONSISTENT_INDEX, ci)?;
            w.save_counters()?;
            if self.opts.compaction_batch > 0 {
                compact::step(&mut w, self.opts.compaction_batch)?;
            }
            let auth = w.auth_changed.then(|| w.auth.clone());
            let tokens = std::mem::take(&mut w.tokens);
            Ok((
                std::mem::take(&mut w.events),
                std::mem::take(&mut w.lease_changes),
                w.current,
                w.compact,
                ci,
                list_alarms(&w.alarm)?,
                auth,
                tokens,
            ))
        })();
        let (events, lease_changes, current, compact, ci, alarms, auth, tokens) = match written {
            Ok(w) => w,
            Err(e) => {
                // Dropping the transaction aborts it, and with it the earlier batches it
                // held, which were answered as applied, while the key index keeps what the
                // batch changed: only a restart (replaying the log) makes them agree again.
                *lock(&self.failed) = Some(e.to_string());
                self.dirty.store(false, Ordering::Release);
                return Err(e);
            }
        };
        pending.batches += 1;
        pending.entries += entries.len() as u64;
        if self.opts.durable
            || pending.batches >= MAX_PENDING_BATCHES
            || pending.entries >= MAX_PENDING_ENTRIES
        {
            self.commit_txn(pending.txn, false)?;
        } else {
            *slot = Some(pending);
            self.dirty.store(true, Ordering::Release);
        }
        guard.disarm();
        self.current_rev.store(current, Ordering::Release);
        self.compact_rev.store(compact, Ordering::Release);
        self.applied_index.store(ci, Ordering::Release);
        self.set_alarms(alarms);
        drop(slot);
        if let Some(auth) = auth {
            *self.auth.write().unwrap_or_else(PoisonError::into_inner) = auth;
        }
        if !tokens.is_empty() {
            let mut q = lock(&self.assigned_tokens);
            for t in tokens {
                if q.len() >= crate::auth::MAX_PENDING_TOKENS {
                    q.pop_front();
                }
                q.push_back(t);
            }
        }
        if !lease_changes.is_empty() {
            let mut l = lock(&self.lessor);
            for c in lease_changes {
                match c {
                    LeaseChange::Granted(id, ttl) => l.granted(id, ttl),
                    LeaseChange::Revoked(id) => l.revoked(id),
                }
            }
        }
        lock(&self.hub).notify(&events, current, events_mode);
        Ok(results)
    }

    /// The replicated auth state as of the last applied batch (cheap: an `Arc`). Permission
    /// checks use it; requests they allow are proposed as [`WriteRequest::Authorized`] with its
    /// revision so that apply refuses them if it moved.
    pub fn auth_state(&self) -> std::sync::Arc<crate::auth::AuthState> {
        self.auth
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes the tokens applied `Authenticate` requests assigned since the last call (at most
    /// [`crate::auth::MAX_PENDING_TOKENS`]; the server keeps them with their TTL).
    pub fn take_assigned_tokens(&self) -> Vec<crate::auth::AssignedToken> {
        let mut q = lock(&self.assigned_tokens);
        if q.is_empty() {
            return Vec::new();
        }
        q.drain(..).collect()
    }

    /// Makes everything applied so far durable (an empty durable commit); useful with
    /// `durable == false` before compacting the Raft log past [`Store::consistent_index`].
    pub fn flush(&self) -> Result<(), MvccError> {
        let mut slot = lock(&self.write);
        let pending = self.write_txn(&mut slot)?;
        self.commit_txn(pending.txn, true)
    }

    /// Serves a range read from a read snapshot (concurrent with applies).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        crate::validate::check_range(req)?;
        self.with_snapshot(req.revision, |txn| {
            let (current, compact) = counters(txn)?;
            let rev = resolve_read_rev(req.revision, current, compact)?;
            let history = txn.open_table(HISTORY)?;
            read::range(&self.index, &history, req, rev, current)
        })
    }

    /// Current revision as of the last applied batch (1 on an empty store, as etcd).
    pub fn current_revision(&self) -> Result<i64, MvccError> {
        Ok(rev_i64(self.current_rev.load(Ordering::Acquire)))
    }

    /// Compaction revision as of the last applied batch (0 if never compacted).
    pub fn compact_revision(&self) -> Result<i64, MvccError> {
        Ok(rev_i64(self.compact_rev.load(Ordering::Acquire)))
    }

    /// Last applied Raft index.
    pub fn consistent_index(&self) -> Result<u64, MvccError> {
        Ok(self.applied_index.load(Ordering::Acquire))
    }

    /// Runs up to `max_entries` steps of pending physical compaction; true when none is left.
    pub fn run_compaction(&self, max_entries: usize) -> Result<bool, MvccError> {
        let mut slot = lock(&self.write);
        let pending = self.write_txn(&mut slot)?;
        let guard = PoisonGuard::new(&self.failed, "a compaction step");
        let done = {
            let mut w = Writer::open(&pending.txn, &self.index, self.limits())?;
            compact::step(&mut w, max_entries)?
        };
        self.commit_txn(pending.txn, false)?;
        guard.disarm();
        Ok(done)
    }

    /// `HashKV`: hash of the key-value history up to `revision` (0 = current).
    pub fn hash_kv(&self, revision: i64) -> Result<HashKv, MvccError> {
        let (txn, compact, rev, hash) =
            self.hash_history(|current, compact| resolve_read_rev(revision, current, compact))?;
        drop(txn);
        Ok(HashKv {
            hash,
            compact_revision: rev_i64(compact),
            hash_revision: rev_i64(rev),
        })
    }

    /// Hashes the key-value history up to the revision `upto(current, compact)` picks, on a
    /// fresh snapshot; returns that snapshot (for more hashing), the compaction revision,
    /// the revision hashed up to and the hash. A compaction racing the hash makes it start
    /// again on a newer snapshot.
    fn hash_history(
        &self,
        upto: impl Fn(u64, u64) -> Result<u64, MvccError>,
    ) -> Result<(ReadTransaction, u64, u64, u32), MvccError> {
        let _gate = self.gate();
        for _ in 0..8 {
            let txn = self.read_txn()?;
            let (current, compact) = counters(&txn)?;
            let rev = upto(current, compact)?;
            let history = txn.open_table(HISTORY)?;
            if let Some(h) = hash::hash_kv(&self.index, &history, compact, rev)? {
                drop(history);
                return Ok((txn, compact, rev, h));
            }
            // A batch being applied compacts past this snapshot: wait for it, then retry.
            drop(lock(&self.write));
        }
        Err(MvccError::Compacted)
    }

    /// `Hash`: the key-value history, leases, attachments and revision counters.
    pub fn hash(&self) -> Result<u32, MvccError> {
        let (txn, compact, current, mut h) = self.hash_history(|current, _| Ok(current))?;
        h = crc32c::crc32c_append(h, &current.to_be_bytes());
        h = crc32c::crc32c_append(h, &compact.to_be_bytes());
        for item in txn.open_table(LEASE)?.iter()? {
            let (k, v) = item?;
            let (ttl, _) = v.value();
            h = crc32c::crc32c_append(h, &k.value().to_be_bytes());
            h = crc32c::crc32c_append(h, &ttl.to_be_bytes());
        }
        for item in txn.open_table(LEASE_KEYS)?.iter()? {
            let (k, _) = item?;
            let (id, key) = k.value();
            h = crc32c::crc32c_append(h, &id.to_be_bytes());
            h = crc32c::crc32c_append(h, key);
        }
        for item in txn.open_table(AUTH)?.iter()? {
            let (k, v) = item?;
            h = crc32c::crc32c_append(h, &(k.value().len() as u64).to_be_bytes());
            h = crc32c::crc32c_append(h, k.value());
            h = crc32c::crc32c_append(h, &(v.value().len() as u64).to_be_bytes());
            h = crc32c::crc32c_append(h, v.value());
        }
        Ok(h)
    }

    /// Streams the whole state (one consistent read snapshot) to `out`.
    pub fn snapshot_export(&self, out: impl Write) -> Result<(), MvccError> {
        // The gate: never export the half-imported state of a running import.
        let _gate = self.gate();
        snapshot::export(&self.read_txn()?, out)
    }

    /// Replaces the whole state with a snapshot streamed from `input`. Watchers are cancelled
    /// and the lessor demoted (promote again if this member leads).
    pub fn snapshot_import(&self, input: impl Read) -> Result<(), MvccError> {
        self.replace_state(|db| snapshot::import(db, input))
    }

    /// Replaces the whole state by `import` (which rewrites the engine's tables), excluding
    /// writers, readers and watchers meanwhile, then reloads every in-memory copy: counters,
    /// key index, watch hub, lessor, auth.
    fn replace_state(
        &self,
        import: impl FnOnce(&Database) -> Result<(), MvccError>,
    ) -> Result<(), MvccError> {
        // Lock order: hub, import gate, write. A reader holding the gate may still need the
        // write lock (to commit the open transaction), so the gate is taken before it.
        let mut hub = lock(&self.hub);
        let _gate = self
            .import_gate
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut slot = lock(&self.write);
        // The image replaces everything: what the open transaction holds is superseded.
        self.commit_pending_locked(&mut slot)?;
        // From here a failure leaves neither the old state nor the new one: poisoned.
        let guard = PoisonGuard::new(&self.failed, "a snapshot import");
        write_index(&self.index).clear();
        import(&self.db)?;
        self.load_cached_state()?;
        self.rebuild_index()?;
        guard.disarm();
        // The whole state was replaced: whatever an earlier failure lost is superseded too.
        *lock(&self.failed) = None;
        let current = self.current_rev.load(Ordering::Acquire);
        hub.reset(current);
        drop(hub);
        lock(&self.lessor).demote();
        *self.auth.write().unwrap_or_else(PoisonError::into_inner) =
            std::sync::Arc::new(load_auth(&self.db)?);
        drop(slot);
        self.update_usage()?;
        Ok(())
    }

    /// Writes the whole state (one consistent read snapshot) to `out` as a bbolt file in
    /// etcd 3.5's backend layout (`backup.rs`): what `etcdctl snapshot save` saves from etcd,
    /// so `etcdctl snapshot status`/`restore` and etcd itself accept it. `out` should be empty
    /// (the file is written from its offset 0). Returns the file's size in bytes.
    pub fn backup_export<W: Write + Seek>(&self, out: W) -> Result<(W, u64), MvccError> {
        let _gate = self.gate();
        backup::export(&self.read_txn()?, out)
    }

    /// Replaces the whole state with a bbolt file in etcd's backend layout (a backup of etcd
    /// or of Quorum, without its sha256 trailer: see
    /// [`quorum_bbolt::etcd::open_snapshot`]). The file is untrusted: damage is a
    /// `CorruptData` error naming it. Locking and crash safety as [`Store::snapshot_import`];
    /// watchers are cancelled and the lessor demoted.
    pub fn backup_import<S: quorum_bbolt::ReadAt>(
        &self,
        src: &quorum_bbolt::Reader<S>,
    ) -> Result<(), MvccError> {
        self.replace_state(|db| backup::import(db, src))
    }

    /// Forgets which Raft index the state was applied up to (the consistent index becomes 0)
    /// and makes the store durable: for an image restored into a *new* cluster, whose log
    /// starts again at index 1 (its entries must all be applied, none skipped as already seen).
    pub fn restart_log(&self) -> Result<(), MvccError> {
        let mut slot = lock(&self.write);
        let pending = self.write_txn(&mut slot)?;
        let guard = PoisonGuard::new(&self.failed, "resetting the consistent index");
        pending
            .txn
            .open_table(META)?
            .insert(META_CONSISTENT_INDEX, 0u64)?;
        self.commit_txn(pending.txn, true)?;
        guard.disarm();
        self.applied_index.store(0, Ordering::Release);
        Ok(())
    }

    /// The quota (`--quota-backend-bytes`) writes are checked against.
    pub fn quota_bytes(&self) -> u64 {
        self.opts.quota_bytes
    }

    /// Size of the database file in bytes.
    pub fn db_size(&self) -> Result<u64, MvccError> {
        Ok(std::fs::metadata(&self.path)?.len())
    }

    /// Bytes in use as of the last [`Store::refresh_usage`] (pages freed by compaction are
    /// reused by redb without defragmentation, so this drops after compaction).
    pub fn db_size_in_use(&self) -> u64 {
        self.in_use.load(Ordering::Relaxed)
    }

    /// Refreshes [`Store::db_size_in_use`] as cheaply as the quota allows: while the database
    /// file is below 90 % of the quota, its size (an upper bound of the bytes in use, read
    /// without any lock) is recorded, since no write can then be refused; nearer the quota the
    /// page trees are walked ([`Store::refresh_usage`]) to see what compaction freed. The walk
    /// holds the write lock for a time that grows with the store, so it only runs when needed.
    pub fn update_usage(&self) -> Result<u64, MvccError> {
        let size = self.db_size()?;
        if size < self.opts.quota_bytes / 10 * 9 {
            self.in_use.store(size, Ordering::Relaxed);
            return Ok(size);
        }
        self.refresh_usage()
    }

    /// Recomputes [`Store::db_size_in_use`] (walks the engine's page trees: call it
    /// periodically, not per request). Returns the new value.
    pub fn refresh_usage(&self) -> Result<u64, MvccError> {
        let mut slot = lock(&self.write);
        self.commit_pending_locked(&mut slot)?;
        let txn = self.db.begin_write()?;
        let stats = txn.stats()?;
        txn.abort()?;
        let used = stats
            .allocated_pages()
            .saturating_mul(stats.page_size() as u64);
        self.in_use.store(used, Ordering::Relaxed);
        Ok(used)
    }

    /// Active alarms as of the last applied batch.
    pub fn alarms(&self) -> Result<Vec<AlarmMember>, MvccError> {
        Ok(self
            .alarm_cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .to_vec())
    }

    fn alarm_active(&self, alarm: AlarmType) -> bool {
        self.alarm_cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|a| a.alarm == alarm)
    }

    /// etcd's quota check, run by the server before proposing `req`: `Err(NoSpace)` means
    /// refuse it and, unless already active, propose `Alarm{Activate, NOSPACE}`.
    pub fn quota_check(&self, req: &WriteRequest) -> Result<(), MvccError> {
        let cost = request_cost(req);
        if cost == 0 {
            return Ok(());
        }
        if self.alarm_active(AlarmType::Nospace)
            || self.db_size_in_use().saturating_add(cost) > self.opts.quota_bytes
        {
            return Err(MvccError::NoSpace);
        }
        Ok(())
    }

    /// True when a NOSPACE alarm is active but usage is back under the quota: the leader
    /// should then propose `Alarm{Deactivate, NOSPACE}` (the automatic clear etcd lacks).
    pub fn nospace_should_clear(&self) -> Result<bool, MvccError> {
        let active = self.alarm_active(AlarmType::Nospace);
        Ok(active && self.db_size_in_use() < self.opts.quota_bytes)
    }

    /// Every lease id, ascending (`LeaseLeases`).
    pub fn leases(&self) -> Result<Vec<LeaseId>, MvccError> {
        let txn = self.read_txn()?;
        let t = txn.open_table(LEASE)?;
        let mut out = Vec::with_capacity(usize::try_from(t.len()?).unwrap_or(0));
        for item in t.iter()? {
            out.push(item?.0.value());
        }
        Ok(out)
    }

    /// `LeaseTimeToLive`. The remaining TTL comes from the lessor on the leader, else from
    /// the last checkpoint (or the granted TTL). Unknown lease: `TTL == -1`, as etcd.
    pub fn lease_time_to_live(
        &self,
        id: LeaseId,
        keys: bool,
        now_ms: u64,
    ) -> Result<LeaseTimeToLiveResponse, MvccError> {
        let txn = self.read_txn()?;
        let Some((granted, remaining)) = txn.open_table(LEASE)?.get(id)?.map(|g| g.value()) else {
            return Ok(LeaseTimeToLiveResponse {
                id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            });
        };
        let ttl = {
            let mut l = lock(&self.lessor);
            if l.is_primary() {
                l.remaining(id, now_ms).unwrap_or(granted)
            } else if remaining > 0 {
                remaining
            } else {
                granted
            }
        };
        let keys = if keys {
            lease_keys_of(&txn.open_table(LEASE_KEYS)?, id)?
        } else {
            Vec::new()
        };
        Ok(LeaseTimeToLiveResponse {
            id,
            ttl,
            granted_ttl: granted,
            keys,
        })
    }

    /// Becomes the primary lessor (this member was elected leader): every lease expires
    /// `extend_ms` later than its remaining TTL from `now_ms`.
    pub fn lease_promote(&self, now_ms: u64, extend_ms: u64) -> Result<(), MvccError> {
        let mut slot = lock(&self.write);
        self.commit_pending_locked(&mut slot)?;
        let txn = self.db.begin_read()?;
        let t = txn.open_table(LEASE)?;
        let mut all = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            let (ttl, remaining) = v.value();
            all.push((k.value(), ttl, remaining));
        }
        lock(&self.lessor).promote(now_ms, extend_ms, all);
        Ok(())
    }

    /// Stops tracking lease expiry (leadership lost).
    pub fn lease_demote(&self) {
        lock(&self.lessor).demote();
    }

    /// `LeaseKeepAlive` on the leader: returns the TTL.
    pub fn lease_renew(&self, id: LeaseId, now_ms: u64) -> Result<i64, MvccError> {
        let mut l = lock(&self.lessor);
        if !l.is_primary() {
            return Err(MvccError::NotLeader);
        }
        l.renew(id, now_ms).ok_or(MvccError::LeaseNotFound)
    }

    /// Up to `max` expired leases the leader should propose `LeaseRevoke` for.
    pub fn lease_expired(&self, now_ms: u64, max: usize) -> Vec<LeaseId> {
        lock(&self.lessor).expired(now_ms, max)
    }

    /// Remaining TTLs for a `LeaseCheckpoint` proposal by the leader (up to `max`).
    pub fn lease_checkpoints(&self, now_ms: u64, max: usize) -> LeaseCheckpointRequest {
        LeaseCheckpointRequest {
            checkpoints: lock(&self.lessor)
                .checkpoints(now_ms, max)
                .into_iter()
                .map(|(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl })
                .collect(),
        }
    }

    /// Creates a watcher delivering into `tx` (which may be shared by the watchers of one
    /// gRPC stream). A start revision in the past is replayed from history; one below the
    /// compaction point is answered with `compact_revision` and cancelled.
    pub fn watch(
        &self,
        req: &WatchCreateRequest,
        tx: Sender<WatchResponse>,
    ) -> Result<WatchId, MvccError> {
        let mut hub = lock(&self.hub);
        let id = hub.create(req, tx)?;
        self.catch_up_locked(&mut hub, id)?;
        Ok(id)
    }

    /// Cancels a watcher; false if unknown.
    pub fn cancel_watch(&self, id: WatchId) -> bool {
        lock(&self.hub).cancel(id)
    }

    /// Queues a progress notification for watcher `id` (sent as soon as its channel has room).
    pub fn request_progress(&self, id: WatchId) -> Result<(), MvccError> {
        lock(&self.hub).request_progress(id)
    }

    /// `(watchers, unsynced watchers)`.
    pub fn watcher_counts(&self) -> (usize, usize) {
        lock(&self.hub).counts()
    }

    /// One round of catch-up for every unsynced watcher (bounded work each). Call it
    /// periodically (etcd: every 100 ms). Returns true when every watcher is synced.
    pub fn sync_watchers(&self) -> Result<bool, MvccError> {
        let ids = lock(&self.hub).unsynced();
        let mut all = true;
        for (id, _) in ids {
            let mut hub = lock(&self.hub);
            all &= self.catch_up_locked(&mut hub, id)?;
        }
        Ok(all)
    }

    fn catch_up_locked(&self, hub: &mut WatchHub, id: WatchId) -> Result<bool, MvccError> {
        // Opened under the hub lock after committing what was applied: it sees every
        // revision already notified (`apply` notifies after it releases `write`; an event it
        // notifies that this catch-up already sent is filtered out by the watcher's next
        // revision).
        let _gate = self.gate();
        let txn = self.read_txn()?;
        let (current, compact) = counters(&txn)?;
        let history = txn.open_table(HISTORY)?;
        hub.catch_up(id, &self.index, &history, current, compact)
    }
}

impl Drop for Store {
    /// A store closed in an orderly way keeps what it applied (a crash loses the open
    /// transaction instead, and replaying the log repairs that).
    fn drop(&mut self) {
        if let Err(e) = self.commit_pending() {
            tracing::warn!("committing the store's last applied entries on close failed: {e}");
        }
    }
}

/// Bytes a request may add (etcd's quota `Cost`); 0 for requests that never grow the store.
pub fn request_cost(req: &WriteRequest) -> u64 {
    fn put_cost(p: &PutRequest) -> u64 {
        (p.key.len() + p.value.len()) as u64 + QUOTA_KV_OVERHEAD
    }
    fn txn_cost(t: &TxnRequest) -> u64 {
        t.success
            .iter()
            .chain(t.failure.iter())
            .map(|op| match op {
                RequestOp::Put(p) => put_cost(p),
                RequestOp::Txn(inner) => txn_cost(inner),
                _ => 0,
            })
            .sum()
    }
    match req {
        WriteRequest::Authorized(a) => request_cost(&a.request),
        WriteRequest::Put(p) => put_cost(p),
        WriteRequest::Txn(t) if txn_has_puts(t) => txn_cost(t),
        WriteRequest::LeaseGrant(_) => QUOTA_KV_OVERHEAD,
        _ => 0,
    }
}
