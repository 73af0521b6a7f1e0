//! The server's deterministic member core (`quorum_server::core::Core`) as a simulated member:
//! the same batching, group commit, apply, ReadIndex and lease code the real server runs, over
//! the real WAL (`LogStore` on `SimFs`) and the real MVCC store (redb in a temporary
//! directory; its content is deterministic).
//!
//! - **Writes** (put, delete, CAS, transactions with compares) become mvcc `WriteRequest`s,
//!   encoded as the server does (`convert::write_to_internal`, request id in the header) and
//!   proposed; the answer is the `Output::Applied` for that id. Ids are unique per member and
//!   incarnation, so an entry proposed before a crash is never taken for a newer request.
//! - **Reads** (get, read-all) take a ReadIndex round (`Input::ReadIndex`), then read the store
//!   with `store.range` once the core releases them (`Output::ReadReady`).
//! - **Disk**: half the members (drawn per member from the seed) run the core's synchronous
//!   persistence (the WAL is written and fsynced inside `process`); the other half run the
//!   asynchronous mode the server runs: `process` only writes, the fsync the core asks for
//!   ([`Core::take_sync_request`]) completes at a random later step and is fed back as
//!   `Input::Synced`, so replication, acknowledgements and apply interleave with pending
//!   fsyncs as on the server's sync thread. A crash drops the core and the store handle, loses
//!   the WAL's unsynced bytes (tearing the last write half the time), and reopens both. The store is **not** rolled
//!   back: the core applies only entries that are durable in its WAL and committed, so the store
//!   is at most ahead of the WAL's recorded commit index by committed entries, which recovery
//!   skips through the store's consistent index (a process crash; losing the store's unsynced
//!   transactions as in a power loss is not modelled).
//! - **Durable log view** for the checkers: `Core::log()` (in the synchronous mode its log is
//!   the durable one; in the asynchronous mode it may also hold written entries whose fsync is
//!   pending, which a crash then takes away again — checks made after the crash see that).
//! - **Initial state** (the bank's balances): every member's WAL is bootstrapped with the same
//!   committed entry 1 (term 1), a transaction that writes it, as etcd bootstraps its first
//!   entries; the core applies it like any entry.
//! - **Snapshots and compaction**: the core snapshots every `snapshot_count` applied entries
//!   (drawn small per run) and compacts its log, keeping `snapshot_catchup_entries` behind.
//!   `Output::SendSnapshot` is answered by exporting the store's image into the message's
//!   snapshot data (the simulated network carries it like any message); the receiver writes
//!   it to a file and hands it over as `Input::Snapshot`, as the server's transport does.
//!   Applied indexes covered by a member's snapshot are reported to the checkers as held
//!   ([`Member::compacted_through`]). Restoring a snapshot cancels the store's watchers; the
//!   checked watcher is then re-created from its next revision, as a client would, and must
//!   continue without a gap.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;
use quorum_lincheck::{Compare as LCompare, Input, Output, State, TxnOp};
use quorum_mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, LeaseGrantRequest, PutRequest,
    RangeRequest, RequestOp, ResponseOp, Store, StoreOptions, TargetUnion, TxnRequest,
    WriteRequest, WriteResponse,
};
use quorum_raft::{ConfState, Entry, HardState, Message, MessageType, NodeId, Role, SoftState};
use quorum_server::core::{Core, CoreConfig, Input as CoreInput, Outbox, Output as CoreOutput};
use quorum_storage::{Identity, LogStore, SimFs, WalOptions};
use tokio::sync::mpsc::Receiver;

use crate::lease::{LeaseOp, LeaseReply, LEASE_PREFIX, LEASE_TTL_S};
use crate::member::{
    entry_hash, Applied, ClientRequest, Member, MemberOutput, MemberParams, MemberStatus, Reply,
    MAX_PENDING_REQUESTS,
};
use crate::rng::SimRng;
use crate::watch_check::{WatchChecker, WATCH_BUFFER};

/// Where the WAL lives on the member's simulated file system.
const WAL_DIR: &str = "/wal";
/// Small segments, so runs exercise segment rollover too.
const SEGMENT_BYTES: u64 = 256 * 1024;
/// `snapshot_count` that never snapshots within a run.
const NO_SNAPSHOTS: u64 = u64::MAX / 4;
/// The store's reason when a snapshot restore cancels its watchers.
const RESTORE_CANCEL: &str = "restored from snapshot";
/// Nominal milliseconds per tick (the simulator's nominal 10 ms tick).
const TICK_MS: u64 = 10;
/// A progress notification is requested from the checked watcher this often.
const PROGRESS_EVERY_TICKS: u64 = 7;
/// Largest key-value answer a read may produce (the workload uses a handful of keys).
const MAX_READ_KEYS: i64 = 1024;
/// Largest snapshot image sent (the simulated store holds a few keys and their history).
const MAX_SNAPSHOT_BYTES: usize = 64 * 1024 * 1024;

/// What a request waiting in the core is.
#[derive(Debug)]
enum Waiting {
    /// A proposal: its answer comes from `Applied`.
    Write(ClientRequest),
    /// A read waiting for `ReadReady`.
    Read(ClientRequest),
    /// A lease holder's request (its op id): a proposal or a keep-alive.
    Lease(u64),
}

/// Collects the core's effects during one `handle`/`process`.
#[derive(Default)]
struct Collected {
    messages: Vec<Message>,
    outputs: Vec<CoreOutput>,
}

impl Outbox for Collected {
    fn send(&mut self, messages: Vec<Message>) {
        self.messages.extend(messages);
    }
    fn output(&mut self, output: CoreOutput) {
        self.outputs.push(output);
    }
}

fn wal_options() -> WalOptions {
    WalOptions {
        segment_size: SEGMENT_BYTES,
        preallocate: false,
        ..WalOptions::default()
    }
}

fn identity(id: NodeId) -> Identity {
    Identity {
        cluster_id: 1,
        member_id: id,
    }
}

/// The server's member core behind the simulator's [`Member`] trait. See the module docs.
pub struct CoreMember {
    id: NodeId,
    params: MemberParams,
    incarnation: u64,
    fs: SimFs,
    rng: SimRng,
    dir: tempfile::TempDir,
    core: Option<Core<SimFs>>,
    collected: Collected,
    ticks: u64,
    next_request: u64,
    waiting: HashMap<u64, Waiting>,
    early_replies: Vec<(u64, Reply)>,
    /// Lease answers produced outside `drive`.
    early_lease_replies: Vec<LeaseReply>,
    /// Lease-workload keys held by the store (kept out of `data`).
    lease_keys: BTreeSet<String>,
    /// Lease-workload keys lost since the last `drive`.
    lease_keys_removed: Vec<String>,
    notes: Vec<String>,
    reported_applied: u64,
    /// Snapshot images received so far (names the files they are written to).
    snapshots_received: u64,
    /// Applied entries between snapshots, and entries kept behind one.
    snapshot_every: (u64, u64),
    last_soft: (NodeId, Role),
    data: State,
    /// The checked watcher's stream (recreated after a restart) and its checker.
    watch_rx: Option<Receiver<quorum_mvcc::WatchResponse>>,
    watch_id: Option<quorum_mvcc::WatchId>,
    watch: Option<WatchChecker>,
    /// Whether this member keeps a checked watcher.
    want_watch: bool,
    /// Planted bug: serve reads from the local store without a ReadIndex round.
    local_reads: bool,
    /// Planted bug: answer keep-alives without renewing.
    fake_keepalives: bool,
    /// The first watch-guarantee violation seen.
    watch_violation: Option<String>,
    /// Asynchronous persistence, as the server runs the core: fsyncs happen later (at a
    /// random later step, as the server's sync thread), with Raft working meanwhile.
    async_persist: bool,
    /// Decides when a requested fsync completes (its own stream, so that runs of the
    /// synchronous mode draw what they drew before).
    sync_rng: SimRng,
    /// The highest WAL write ticket the core asked to make durable and not yet synced.
    sync_wanted: u64,
}

impl CoreMember {
    /// A fresh member of the group `params` describes; `seed` drives its disk's random
    /// choices (torn writes). With `watch`, a watcher on every key is kept on this member's
    /// store and checked (see [`crate::watch_check`]).
    pub fn new(id: NodeId, params: MemberParams, seed: u64, watch: bool) -> Result<Self, String> {
        Self::build(id, params, seed, watch, (NO_SNAPSHOTS, 0))
    }

    /// As [`CoreMember::new`], with a snapshot (and log compaction) every `count` applied
    /// entries, keeping `catchup` entries behind each.
    pub fn new_with_snapshots(
        id: NodeId,
        params: MemberParams,
        seed: u64,
        watch: bool,
        count: u64,
        catchup: u64,
    ) -> Result<Self, String> {
        assert!(count > 0, "snapshot count must be positive");
        Self::build(id, params, seed, watch, (count, catchup))
    }

    fn build(
        id: NodeId,
        params: MemberParams,
        seed: u64,
        watch: bool,
        snapshot_every: (u64, u64),
    ) -> Result<Self, String> {
        let mut rng = SimRng::new(seed);
        // Half the members persist asynchronously (as the server does), half synchronously
        // (the core's default), drawn from the seed without touching the main stream.
        let mut sync_rng = SimRng::new(seed ^ 0x5359_4e43_5359_4e43);
        let async_persist = sync_rng.chance(0.5);
        let dir = tempfile::Builder::new()
            .prefix("quorum-sim-core")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let mut m = CoreMember {
            id,
            params,
            incarnation: 0,
            fs: SimFs::new(rng.next_u64()),
            rng,
            dir,
            core: None,
            collected: Collected::default(),
            ticks: 0,
            next_request: 1,
            waiting: HashMap::new(),
            early_replies: Vec::new(),
            early_lease_replies: Vec::new(),
            lease_keys: BTreeSet::new(),
            lease_keys_removed: Vec::new(),
            notes: Vec::new(),
            reported_applied: 0,
            snapshots_received: 0,
            snapshot_every,
            last_soft: (quorum_raft::NO_NODE, Role::Follower),
            data: State::new(),
            watch_rx: None,
            watch_id: None,
            watch: None,
            want_watch: watch,
            local_reads: false,
            fake_keepalives: false,
            watch_violation: None,
            async_persist,
            sync_rng,
            sync_wanted: 0,
        };
        m.start()?;
        Ok(m)
    }

    /// Opens the WAL (bootstrapping it on first boot) and the store, and builds the core.
    fn start(&mut self) -> Result<(), String> {
        let (mut log, _) =
            LogStore::open(self.fs.clone(), WAL_DIR, identity(self.id), wal_options())
                .map_err(|e| format!("opening WAL: {e}"))?;
        if log.conf_state().voters.is_empty() && log.last_index() == 0 {
            log.set_conf_state(ConfState {
                voters: self.params.voters.clone(),
                ..Default::default()
            })
            .map_err(|e| format!("bootstrapping WAL: {e}"))?;
            if let Some(entry) = initial_entry(&self.params.initial) {
                // Every member boots with the same committed entry 1 (as etcd bootstraps its
                // first entries), so the store starts from the workload's initial state.
                let hs = HardState {
                    term: entry.term,
                    vote: quorum_raft::NO_NODE,
                    commit: entry.index,
                };
                log.append(Some(hs), &[entry])
                    .map_err(|e| format!("bootstrapping WAL: {e}"))?;
            }
            log.sync().map_err(|e| format!("bootstrapping WAL: {e}"))?;
        }
        let opts = StoreOptions {
            durable: false,
            min_lease_ttl: LEASE_TTL_S,
            ..StoreOptions::default()
        };
        let store = Store::open(self.dir.path().join("db.redb"), opts)
            .map_err(|e| format!("opening store: {e}"))?;
        let cfg = CoreConfig {
            member_id: self.id,
            group_id: 1,
            election_tick: 10,
            heartbeat_tick: 1,
            tick_ms: TICK_MS,
            snapshot_count: self.snapshot_every.0,
            snapshot_catchup_entries: self.snapshot_every.1,
            seed: self
                .params
                .seed
                .wrapping_mul(31)
                .wrapping_add(self.id)
                .wrapping_add(self.incarnation << 32),
            max_batch: 64,
        };
        let mut core = Core::new(cfg, log, Arc::new(store)).map_err(|e| e.to_string())?;
        core.set_async_persist(self.async_persist);
        self.sync_wanted = 0;
        self.reported_applied = core.applied();
        self.core = Some(core);
        // A restart is not a deletion: the lease keys start from what the store holds.
        self.lease_keys.clear();
        self.refresh_data();
        self.lease_keys_removed.clear();
        if self.want_watch {
            self.start_watch()?;
        }
        Ok(())
    }

    /// Plants a bug for the tests: reads are answered at once from this member's store
    /// (a follower's or a deposed leader's local state served as linearizable).
    pub fn with_local_reads(mut self) -> Self {
        self.local_reads = true;
        self
    }

    /// Plants a bug for the tests: keep-alives are answered with the full TTL at once, without
    /// reaching the lessor (a member that acknowledges renewals it did not make).
    pub fn with_fake_keepalives(mut self) -> Self {
        self.fake_keepalives = true;
        self
    }

    /// Creates the checked watcher from the checker's next revision (resuming after a
    /// restart).
    fn start_watch(&mut self) -> Result<(), String> {
        let Some(core) = &self.core else {
            return Err("no core".into());
        };
        if self.watch.is_none() {
            // etcd's store starts at revision 1; the first write makes revision 2.
            let created_at = core.store().current_revision().map_err(|e| e.to_string())?;
            self.watch = Some(WatchChecker::new(self.id, created_at));
        }
        let Some(checker) = &mut self.watch else {
            return Err("no watch checker".into());
        };
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_BUFFER);
        let req = quorum_mvcc::WatchCreateRequest {
            key: vec![0],
            range_end: vec![0],
            start_revision: checker.next_revision(),
            ..Default::default()
        };
        let resuming = self.watch_rx.is_some() || self.incarnation > 0;
        self.watch_id = Some(core.store().watch(&req, tx).map_err(|e| e.to_string())?);
        if resuming {
            checker.resumed();
        }
        self.watch_rx = Some(rx);
        Ok(())
    }

    fn refresh_data(&mut self) {
        let Some(core) = &self.core else { return };
        let req = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            limit: MAX_READ_KEYS,
            ..Default::default()
        };
        match core.store().range(&req) {
            Ok(r) => {
                let (lease, data): (Vec<_>, Vec<_>) = r
                    .kvs
                    .into_iter()
                    .map(|kv| {
                        (
                            String::from_utf8_lossy(&kv.key).into_owned(),
                            String::from_utf8_lossy(&kv.value).into_owned(),
                        )
                    })
                    .partition(|(k, _)| k.starts_with(LEASE_PREFIX));
                self.data = data.into_iter().collect();
                let lease: BTreeSet<String> = lease.into_iter().map(|(k, _)| k).collect();
                self.lease_keys_removed
                    .extend(self.lease_keys.difference(&lease).cloned());
                self.lease_keys = lease;
            }
            Err(e) => self.notes.push(format!("n{} range: {e}", self.id)),
        }
    }

    fn refuse(&mut self, req: &ClientRequest, reason: String) {
        self.early_replies.push((
            req.client,
            Reply::Refused {
                op_id: req.op_id,
                reason,
            },
        ));
    }

    /// A request id unique across this member's incarnations (and members).
    fn request_id(&mut self) -> u64 {
        let n = self.next_request;
        self.next_request += 1;
        debug_assert!(n < 1 << 32, "request counter overflow");
        (self.id << 48) | ((self.incarnation & 0xffff) << 32) | n
    }

    /// Answers a read from the store (after its ReadIndex round).
    fn read(&self, input: &Input) -> Result<Output, String> {
        let core = self.core.as_ref().ok_or("no core")?;
        let get = |key: &str| -> Result<Option<String>, String> {
            let r = core
                .store()
                .range(&RangeRequest {
                    key: key.as_bytes().to_vec(),
                    ..Default::default()
                })
                .map_err(|e| e.to_string())?;
            Ok(r.kvs
                .first()
                .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
        };
        match input {
            Input::Get { key } => Ok(Output::Get { value: get(key)? }),
            Input::Txn { success, .. } => {
                let mut reads = Vec::new();
                for op in success {
                    if let TxnOp::Get { key } = op {
                        reads.push(get(key)?);
                    }
                }
                Ok(Output::Txn {
                    succeeded: true,
                    reads,
                })
            }
            other => Err(format!("not a read: {other:?}")),
        }
    }

    fn on_output(&mut self, output: CoreOutput, out: &mut MemberOutput) {
        match output {
            CoreOutput::Applied { id, result } => {
                if let Some(Waiting::Lease(op)) = self.waiting.get(&id) {
                    let op = *op;
                    self.waiting.remove(&id);
                    let result = match result {
                        Ok(WriteResponse::LeaseGrant(g)) => Ok(Some(g.ttl)),
                        Ok(_) => Ok(Some(0)),
                        Err(e) => Err(e.to_string()),
                    };
                    out.lease_replies.push(LeaseReply { op, result });
                    return;
                }
                if let Some(Waiting::Write(req)) = self.waiting.remove(&id) {
                    let reply = match result {
                        Ok(resp) => match write_output(&req.input, &resp) {
                            Some(output) => Reply::Done {
                                op_id: req.op_id,
                                output,
                            },
                            None => {
                                // An answer of the wrong shape: leave the outcome unknown and
                                // say so in the trace.
                                out.notes.push(format!(
                                    "n{} op{}: unexpected response {resp:?}",
                                    self.id, req.op_id
                                ));
                                return;
                            }
                        },
                        // A request error leaves no trace in the store (etcd semantics).
                        Err(e) => Reply::Refused {
                            op_id: req.op_id,
                            reason: e.to_string(),
                        },
                    };
                    out.replies.push((req.client, reply));
                }
            }
            CoreOutput::ReadReady { token } => {
                if let Some(Waiting::Read(req)) = self.waiting.remove(&token) {
                    let reply = match self.read(&req.input) {
                        Ok(output) => Reply::Done {
                            op_id: req.op_id,
                            output,
                        },
                        Err(reason) => Reply::Refused {
                            op_id: req.op_id,
                            reason,
                        },
                    };
                    out.replies.push((req.client, reply));
                }
            }
            CoreOutput::Failed { token, error } => {
                if let Some(w) = self.waiting.remove(&token) {
                    let req = match w {
                        Waiting::Write(r) | Waiting::Read(r) => r,
                        Waiting::Lease(op) => {
                            out.lease_replies.push(LeaseReply {
                                op,
                                result: Err(error.to_string()),
                            });
                            return;
                        }
                    };
                    out.replies.push((
                        req.client,
                        Reply::Refused {
                            op_id: req.op_id,
                            reason: error.to_string(),
                        },
                    ));
                }
            }
            CoreOutput::SendSnapshot(mut m) => {
                let Some(core) = &mut self.core else { return };
                // The image travels as the message's snapshot data (the server streams it
                // beside the message); delivery is then up to the simulated network.
                let mut image = Vec::new();
                let exported = core.store().snapshot_export(&mut image);
                let success = match (exported, m.snapshot.as_mut()) {
                    (Ok(()), Some(snap)) if image.len() <= MAX_SNAPSHOT_BYTES => {
                        snap.data = Bytes::from(image);
                        out.notes.push(format!(
                            "n{}: snapshot at index {} ({} bytes) to n{}",
                            self.id,
                            snap.metadata.index,
                            snap.data.len(),
                            m.to
                        ));
                        true
                    }
                    (Err(e), _) => {
                        out.notes
                            .push(format!("n{}: snapshot export: {e}", self.id));
                        false
                    }
                    _ => {
                        out.notes
                            .push(format!("n{}: snapshot message without image", self.id));
                        false
                    }
                };
                let to = m.to;
                if success {
                    out.messages.push(m);
                }
                core.handle(
                    CoreInput::SnapshotStatus { to, success },
                    &mut self.collected,
                );
            }
            CoreOutput::LeaseTtl { token, result } => {
                if let Some(Waiting::Lease(op)) = self.waiting.remove(&token) {
                    out.lease_replies.push(LeaseReply {
                        op,
                        result: result.map_err(|e| e.to_string()),
                    });
                }
            }
            CoreOutput::LeaderChanged { .. } | CoreOutput::Done { .. } => {}
        }
    }

    /// Delivers what the watcher sent (bounded per call), then lets the store catch up
    /// unsynced watchers as the shell's housekeeping does.
    fn drain_watch(&mut self) -> Result<bool, String> {
        let mut synced = false;
        for _ in 0..WATCH_BUFFER * 4 {
            let (Some(rx), Some(checker), Some(core)) =
                (&mut self.watch_rx, &mut self.watch, &self.core)
            else {
                return Ok(true);
            };
            let mut restored = false;
            loop {
                match rx.try_recv() {
                    Ok(resp) if resp.canceled && resp.cancel_reason.contains(RESTORE_CANCEL) => {
                        restored = true;
                    }
                    Ok(resp) => {
                        if let Err(e) = checker.on_response(&resp) {
                            if self.watch_violation.is_none() {
                                self.watch_violation = Some(e);
                            }
                        }
                    }
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                        // The store dropped the watcher (its cancel did not fit the channel).
                        restored = true;
                        break;
                    }
                }
            }
            if restored {
                // A snapshot was restored: the store cancelled its watchers. Re-create ours
                // from the next revision, as a client would; it must continue without a gap.
                self.notes.push(format!(
                    "n{}: watcher re-created after a snapshot restore",
                    self.id
                ));
                self.start_watch()?;
                continue;
            }
            synced = core.store().sync_watchers().map_err(|e| e.to_string())?;
            if synced && rx.is_empty() {
                break;
            }
        }
        Ok(synced && self.watch_rx.as_ref().is_none_or(|rx| rx.is_empty()))
    }

    /// The watch checker of this member, if it has one.
    pub fn watch_checker(&self) -> Option<&WatchChecker> {
        self.watch.as_ref()
    }
}

/// The bootstrap entry (index 1, term 1) that writes `initial` in one transaction, as the
/// server encodes a proposal (no waiter: request id 0). `None` when there is nothing to write.
fn initial_entry(initial: &State) -> Option<Entry> {
    if initial.is_empty() {
        return None;
    }
    let w = WriteRequest::Txn(TxnRequest {
        compare: Vec::new(),
        success: initial
            .iter()
            .map(|(k, v)| {
                RequestOp::Put(PutRequest {
                    key: k.as_bytes().to_vec(),
                    value: v.as_bytes().to_vec(),
                    ..Default::default()
                })
            })
            .collect(),
        failure: Vec::new(),
    });
    let internal = quorum_server::convert::write_to_internal(&w);
    Some(Entry {
        term: 1,
        index: 1,
        data: Bytes::from(internal.encode_to_vec()),
        ..Default::default()
    })
}

/// A proposal of `w` with request id `token`, encoded as the server does.
fn lease_proposal(token: u64, w: WriteRequest) -> CoreInput {
    let mut internal = quorum_server::convert::write_to_internal(&w);
    if let Some(h) = internal.header.as_mut() {
        h.id = token;
    }
    internal.id = token;
    CoreInput::Propose {
        id: token,
        data: Bytes::from(internal.encode_to_vec()),
    }
}

/// Encodes a lincheck write as the server's Raft payload.
fn write_request(input: &Input) -> Option<WriteRequest> {
    let put = |key: &str, value: &str| PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        ..Default::default()
    };
    let del = |key: &str| DeleteRangeRequest {
        key: key.as_bytes().to_vec(),
        ..Default::default()
    };
    let cmp = |key: &str, value: &Option<String>| match value {
        Some(v) => Compare {
            result: CompareResult::Equal,
            target: CompareTarget::Value,
            key: key.as_bytes().to_vec(),
            target_union: Some(TargetUnion::Value(v.as_bytes().to_vec())),
            range_end: Vec::new(),
        },
        // Absent: version 0 (etcd's idiom).
        None => Compare {
            result: CompareResult::Equal,
            target: CompareTarget::Version,
            key: key.as_bytes().to_vec(),
            target_union: Some(TargetUnion::Version(0)),
            range_end: Vec::new(),
        },
    };
    let txn_op = |op: &TxnOp| match op {
        TxnOp::Get { key } => RequestOp::Range(RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        }),
        TxnOp::Put { key, value } => RequestOp::Put(put(key, value)),
        TxnOp::Delete { key } => RequestOp::DeleteRange(del(key)),
    };
    Some(match input {
        Input::Get { .. } => return None,
        Input::Put { key, value } => WriteRequest::Put(put(key, value)),
        Input::Delete { key } => WriteRequest::DeleteRange(del(key)),
        Input::Cas { key, expected, new } => WriteRequest::Txn(TxnRequest {
            compare: vec![cmp(key, expected)],
            success: vec![RequestOp::Put(put(key, new))],
            failure: Vec::new(),
        }),
        Input::Txn {
            compares,
            success,
            failure,
        } => WriteRequest::Txn(TxnRequest {
            compare: compares
                .iter()
                .map(|LCompare { key, value }| cmp(key, value))
                .collect(),
            success: success.iter().map(txn_op).collect(),
            failure: failure.iter().map(txn_op).collect(),
        }),
    })
}

/// The lincheck answer for a write's store response (`None`: wrong shape).
fn write_output(input: &Input, resp: &WriteResponse) -> Option<Output> {
    let value = |r: &ResponseOp| match r {
        ResponseOp::Range(r) => Some(
            r.kvs
                .first()
                .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
        ),
        _ => None,
    };
    Some(match (input, resp) {
        (Input::Put { .. }, WriteResponse::Put(_)) => Output::Put,
        (Input::Delete { .. }, WriteResponse::DeleteRange(d)) => Output::Delete {
            existed: Some(d.deleted > 0),
        },
        (Input::Cas { .. }, WriteResponse::Txn(t)) => Output::Cas {
            succeeded: t.succeeded,
        },
        (Input::Txn { .. }, WriteResponse::Txn(t)) => Output::Txn {
            succeeded: t.succeeded,
            reads: t.responses.iter().filter_map(value).collect(),
        },
        _ => return None,
    })
}

/// Reads served through ReadIndex and a local store read: gets, and transactions without
/// compares whose branches only get.
fn is_index_read(input: &Input) -> bool {
    match input {
        Input::Get { .. } => true,
        Input::Txn { compares, .. } => compares.is_empty() && input.is_read_only(),
        _ => false,
    }
}

impl Member for CoreMember {
    fn id(&self) -> NodeId {
        self.id
    }

    fn tick(&mut self) {
        self.ticks += 1;
        let now_ms = self.ticks * TICK_MS;
        if self.ticks.is_multiple_of(PROGRESS_EVERY_TICKS) {
            if let (Some(core), Some(id)) = (&self.core, self.watch_id) {
                if let Err(e) = core.store().request_progress(id) {
                    self.notes
                        .push(format!("n{} progress request: {e}", self.id));
                }
            }
        }
        if let Some(core) = &mut self.core {
            core.handle(CoreInput::Tick { now_ms }, &mut self.collected);
        }
    }

    fn receive(&mut self, mut msg: Message) {
        let Some(core) = &mut self.core else { return };
        if msg.msg_type == MessageType::Snapshot {
            // As the server's transport: the image goes to a file, the message (metadata
            // only) and the file's path to the core.
            let Some(snap) = msg.snapshot.as_mut() else {
                return;
            };
            self.snapshots_received += 1;
            let path = self.dir.path().join(format!(
                "snap-{}-{}.img",
                self.incarnation, self.snapshots_received
            ));
            let image = std::mem::take(&mut snap.data);
            if let Err(e) = std::fs::write(&path, &image) {
                self.notes
                    .push(format!("n{}: writing snapshot image: {e}", self.id));
                return;
            }
            core.handle(
                CoreInput::Snapshot { message: msg, path },
                &mut self.collected,
            );
            return;
        }
        core.handle(CoreInput::Message(msg), &mut self.collected);
    }

    fn submit(&mut self, req: ClientRequest) {
        if self.waiting.len() >= MAX_PENDING_REQUESTS {
            self.refuse(&req, "too many pending requests".into());
            return;
        }
        if self.core.is_none() {
            self.refuse(&req, "member is down".into());
            return;
        }
        if self.local_reads && is_index_read(&req.input) {
            let reply = match self.read(&req.input) {
                Ok(output) => Reply::Done {
                    op_id: req.op_id,
                    output,
                },
                Err(reason) => Reply::Refused {
                    op_id: req.op_id,
                    reason,
                },
            };
            self.early_replies.push((req.client, reply));
            return;
        }
        let token = self.request_id();
        let input = if is_index_read(&req.input) {
            self.waiting.insert(token, Waiting::Read(req));
            CoreInput::ReadIndex { token }
        } else {
            let Some(w) = write_request(&req.input) else {
                self.refuse(&req, "unsupported operation".into());
                return;
            };
            let mut internal = quorum_server::convert::write_to_internal(&w);
            if let Some(h) = internal.header.as_mut() {
                h.id = token;
            }
            internal.id = token;
            self.waiting.insert(token, Waiting::Write(req));
            CoreInput::Propose {
                id: token,
                data: Bytes::from(internal.encode_to_vec()),
            }
        };
        if let Some(core) = &mut self.core {
            core.handle(input, &mut self.collected);
        }
    }

    fn drive(&mut self, out: &mut MemberOutput) {
        out.replies.append(&mut self.early_replies);
        out.lease_replies.append(&mut self.early_lease_replies);
        out.notes.append(&mut self.notes);
        let Some(core) = &mut self.core else { return };
        // Asynchronous persistence: the requested fsync completes at a random later step (the
        // server's sync thread), then its completion is fed back as the server does.
        if self.sync_wanted > 0 && self.sync_rng.chance(0.5) {
            self.sync_wanted = 0;
            match core.log().sync_handle().sync() {
                Ok(ticket) => core.handle(CoreInput::Synced { ticket }, &mut self.collected),
                Err(e) => {
                    // A failed fsync is fatal in the server: the member stops.
                    out.notes
                        .push(format!("n{} WAL sync failed: {e}; restarting", self.id));
                    self.crash_restart();
                    return;
                }
            }
        }
        if let Err(e) = core.process(&mut self.collected) {
            out.notes
                .push(format!("n{} core stopped: {e}; restarting", self.id));
            self.crash_restart();
            return;
        }
        if let Some(ticket) = core.take_sync_request() {
            self.sync_wanted = self.sync_wanted.max(ticket);
        }
        let applied = core.applied();
        let st = core.raft_status();
        let soft = (st.soft_state.leader, st.soft_state.role);
        if applied > self.reported_applied {
            let log = core.log();
            // Indexes up to the log's start came in a snapshot (or were compacted right after
            // being applied): they are reported as held through `compacted_through`.
            let compacted = log.first_index().saturating_sub(1);
            for index in self.reported_applied + 1..=applied {
                match log.entry(index) {
                    Some(e) => out.applied.push(Applied {
                        index,
                        term: e.term,
                        hash: entry_hash(e),
                    }),
                    None if index <= compacted => {}
                    None => {
                        out.notes.push(format!(
                            "n{} applied index {index} that its durable log lacks",
                            self.id
                        ));
                        break;
                    }
                }
            }
            self.reported_applied = applied;
            self.refresh_data();
        }
        let collected = std::mem::take(&mut self.collected);
        out.messages.extend(collected.messages);
        // The core fails the reads in flight at a leader change by draining a `HashMap`, in
        // an order that differs between runs; answer failures in token order so a seed
        // replays identically (all outputs of one drive happen at the same instant).
        let (mut failed, outputs): (Vec<_>, Vec<_>) = collected
            .outputs
            .into_iter()
            .partition(|o| matches!(o, CoreOutput::Failed { .. }));
        failed.sort_by_key(|o| match o {
            CoreOutput::Failed { token, .. } => *token,
            _ => 0,
        });
        for o in outputs.into_iter().chain(failed) {
            self.on_output(o, out);
        }
        if soft != self.last_soft {
            self.last_soft = soft;
            out.soft_states.push(SoftState {
                leader: soft.0,
                role: soft.1,
            });
        }
        out.lease_keys_removed.append(&mut self.lease_keys_removed);
        if let Err(e) = self.drain_watch() {
            out.notes.push(format!("n{} watch: {e}", self.id));
        }
    }

    fn crash_restart(&mut self) {
        self.incarnation += 1;
        // Drop the core and with it the store (redb allows one open handle per file).
        self.core = None;
        self.watch_rx = None;
        self.watch_id = None;
        if self.rng.chance(0.5) {
            self.fs.crash_torn();
        } else {
            self.fs.crash();
        }
        self.waiting.clear();
        self.early_replies.clear();
        self.early_lease_replies.clear();
        self.collected = Collected::default();
        self.last_soft = (quorum_raft::NO_NODE, Role::Follower);
        if let Err(e) = self.start() {
            self.notes.push(format!("n{} restart failed: {e}", self.id));
        }
    }

    fn status(&self) -> MemberStatus {
        match &self.core {
            Some(core) => {
                let st = core.raft_status();
                MemberStatus {
                    role: st.soft_state.role,
                    leader: st.soft_state.leader,
                    term: st.hard_state.term,
                    commit: st.hard_state.commit,
                    applied: core.applied(),
                }
            }
            None => MemberStatus {
                role: Role::Follower,
                leader: quorum_raft::NO_NODE,
                term: 0,
                commit: 0,
                applied: 0,
            },
        }
    }

    fn durable_entry(&self, index: u64) -> Option<&Entry> {
        self.core.as_ref()?.log().entry(index)
    }

    fn durable_last_index(&self) -> u64 {
        self.core.as_ref().map_or(0, |c| c.log().last_index())
    }

    fn compacted_through(&self) -> u64 {
        self.core
            .as_ref()
            .map_or(0, |c| c.log().first_index().saturating_sub(1))
    }

    fn data(&self) -> &State {
        &self.data
    }

    fn supports_leases(&self) -> bool {
        true
    }

    fn snapshots_received(&self) -> u64 {
        self.snapshots_received
    }

    fn lease(&mut self, op: LeaseOp) {
        if self.core.is_none() || self.waiting.len() >= MAX_PENDING_REQUESTS {
            self.early_lease_replies.push(LeaseReply {
                op: op.op(),
                result: Err("member is down or busy".into()),
            });
            return;
        }
        if let (true, LeaseOp::Renew { op, .. }) = (self.fake_keepalives, &op) {
            self.early_lease_replies.push(LeaseReply {
                op: *op,
                result: Ok(Some(LEASE_TTL_S)),
            });
            return;
        }
        let token = self.request_id();
        self.waiting.insert(token, Waiting::Lease(op.op()));
        let input = match op {
            LeaseOp::Renew { id, .. } => CoreInput::LeaseRenew { token, id },
            LeaseOp::Grant { id, ttl_s, .. } => lease_proposal(
                token,
                WriteRequest::LeaseGrant(LeaseGrantRequest { ttl: ttl_s, id }),
            ),
            LeaseOp::Attach { id, key, .. } => lease_proposal(
                token,
                WriteRequest::Put(PutRequest {
                    key: key.into_bytes(),
                    value: b"held".to_vec(),
                    lease: id,
                    ..Default::default()
                }),
            ),
        };
        if let Some(core) = &mut self.core {
            core.handle(input, &mut self.collected);
        }
    }

    fn lease_keys(&self) -> Vec<String> {
        self.lease_keys.iter().cloned().collect()
    }

    fn final_check(&mut self) -> Result<(), String> {
        if let Some(v) = &self.watch_violation {
            return Err(v.clone());
        }
        if self.watch.is_none() {
            return Ok(());
        }
        if !self.drain_watch()? {
            return Err(format!("n{}: watcher never caught up", self.id));
        }
        if let Some(v) = &self.watch_violation {
            return Err(v.clone());
        }
        match (&self.watch, &self.core) {
            (Some(checker), Some(core)) => checker.verify(core.store()),
            _ => Ok(()),
        }
    }
}
