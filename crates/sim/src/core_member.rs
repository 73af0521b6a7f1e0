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
//! - **Disk**: the core writes and fsyncs the WAL synchronously in `process`, so there is no
//!   simulated fsync delay. A crash drops the core and the store handle, loses the WAL's unsynced
//!   bytes (tearing the last write half the time), and reopens both. The store is **not** rolled
//!   back: the core applies only entries that are durable in its WAL and committed, so the store
//!   is at most ahead of the WAL's recorded commit index by committed entries, which recovery
//!   skips through the store's consistent index (a process crash; losing the store's unsynced
//!   transactions as in a power loss is not modelled).
//! - **Durable log view** for the checkers: the core does not expose its log, so after every
//!   fsync the WAL's files are copied to a scratch `SimFs` and recovered read-only there
//!   (`LogView`). Costly, which is why core runs are short.
//! - **Not simulated yet**: snapshots (the log is never compacted here, since the checkers read
//!   every applied index back), the bank workload (the store cannot be seeded with an initial
//!   state outside the log), leases.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;
use quorum_lincheck::{Compare as LCompare, Input, Output, State, TxnOp};
use quorum_mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp,
    ResponseOp, Store, StoreOptions, TargetUnion, TxnRequest, WriteRequest, WriteResponse,
};
use quorum_raft::{ConfState, Entry, Message, NodeId, Role, SoftState};
use quorum_server::core::{Core, CoreConfig, Input as CoreInput, Outbox, Output as CoreOutput};
use quorum_storage::{FileSystem, FsFile, Identity, LogStore, SimFs, WalOptions};
use tokio::sync::mpsc::Receiver;

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
/// Nominal milliseconds per tick (the simulator's nominal 10 ms tick).
const TICK_MS: u64 = 10;
/// A progress notification is requested from the checked watcher this often.
const PROGRESS_EVERY_TICKS: u64 = 7;
/// Largest key-value answer a read may produce (the workload uses a handful of keys).
const MAX_READ_KEYS: i64 = 1024;

/// What a request waiting in the core is.
#[derive(Debug)]
enum Waiting {
    /// A proposal: its answer comes from `Applied`.
    Write(ClientRequest),
    /// A read waiting for `ReadReady`.
    Read(ClientRequest),
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

/// The durable log as recovered from a copy of the WAL: `entries[i]` has index `first + i`.
#[derive(Default)]
struct LogView {
    first: u64,
    entries: Vec<Entry>,
    /// `SimFs::sync_count` when this view was taken.
    synced_at: Option<u64>,
}

impl LogView {
    fn entry(&self, index: u64) -> Option<&Entry> {
        let i = usize::try_from(index.checked_sub(self.first)?).ok()?;
        let e = self.entries.get(i)?;
        debug_assert_eq!(e.index, index);
        Some(e)
    }

    fn last_index(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.index)
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

/// Copies every file of the WAL directory into a fresh `SimFs` and recovers it there, so the
/// member's own file system is never touched.
fn read_log(fs: &SimFs, id: NodeId) -> Result<LogView, String> {
    let scratch = SimFs::new(0);
    let dir = std::path::Path::new(WAL_DIR);
    scratch.create_dir_all(dir).map_err(|e| e.to_string())?;
    for name in fs.list(dir).map_err(|e| e.to_string())? {
        let path = dir.join(&name);
        let data = fs.contents(&path).map_err(|e| e.to_string())?;
        let f = scratch.create(&path).map_err(|e| e.to_string())?;
        f.write_at(0, &data).map_err(|e| e.to_string())?;
        f.sync_all().map_err(|e| e.to_string())?;
    }
    scratch.sync_dir(dir).map_err(|e| e.to_string())?;
    let (log, _) = LogStore::open(scratch, WAL_DIR, identity(id), wal_options())
        .map_err(|e| format!("reading the WAL copy: {e}"))?;
    let first = log.first_index();
    let last = log.last_index();
    let mut entries = Vec::with_capacity(last.saturating_sub(first) as usize + 1);
    for index in first..=last {
        match log.entry(index) {
            Some(e) => entries.push(e.clone()),
            None => break,
        }
    }
    Ok(LogView {
        first,
        entries,
        synced_at: Some(fs.sync_count()),
    })
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
    notes: Vec<String>,
    log: LogView,
    reported_applied: u64,
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
    /// The first watch-guarantee violation seen.
    watch_violation: Option<String>,
}

impl CoreMember {
    /// A fresh member of the group `params` describes; `seed` drives its disk's random
    /// choices (torn writes). With `watch`, a watcher on every key is kept on this member's
    /// store and checked (see [`crate::watch_check`]).
    pub fn new(id: NodeId, params: MemberParams, seed: u64, watch: bool) -> Result<Self, String> {
        let mut rng = SimRng::new(seed);
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
            notes: Vec::new(),
            log: LogView::default(),
            reported_applied: 0,
            last_soft: (quorum_raft::NO_NODE, Role::Follower),
            data: State::new(),
            watch_rx: None,
            watch_id: None,
            watch: None,
            want_watch: watch,
            local_reads: false,
            watch_violation: None,
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
            .and_then(|_| log.sync())
            .map_err(|e| format!("bootstrapping WAL: {e}"))?;
        }
        let opts = StoreOptions {
            durable: false,
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
            // Never compact: the checkers read every applied index back (see module docs).
            snapshot_count: u64::MAX / 4,
            snapshot_catchup_entries: 0,
            seed: self
                .params
                .seed
                .wrapping_mul(31)
                .wrapping_add(self.id)
                .wrapping_add(self.incarnation << 32),
            max_batch: 64,
        };
        let core = Core::new(cfg, log, Arc::new(store)).map_err(|e| e.to_string())?;
        self.reported_applied = core.applied();
        self.core = Some(core);
        self.refresh_log();
        self.refresh_data();
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
        self.watch_id = Some(core.store().watch(&req, tx).map_err(|e| e.to_string())?);
        if self.incarnation > 0 {
            checker.resumed();
        }
        self.watch_rx = Some(rx);
        Ok(())
    }

    fn refresh_log(&mut self) {
        if self.log.synced_at == Some(self.fs.sync_count()) {
            return;
        }
        match read_log(&self.fs, self.id) {
            Ok(view) => self.log = view,
            Err(e) => self.notes.push(format!("n{}: {e}", self.id)),
        }
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
                self.data = r
                    .kvs
                    .into_iter()
                    .map(|kv| {
                        (
                            String::from_utf8_lossy(&kv.key).into_owned(),
                            String::from_utf8_lossy(&kv.value).into_owned(),
                        )
                    })
                    .collect();
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
            CoreOutput::SendSnapshot(m) => {
                // Never happens without compaction (see module docs); report it undelivered.
                out.notes
                    .push(format!("n{}: snapshot to n{} not simulated", self.id, m.to));
                if let Some(core) = &mut self.core {
                    core.handle(
                        CoreInput::SnapshotStatus {
                            to: m.to,
                            success: false,
                        },
                        &mut self.collected,
                    );
                }
            }
            CoreOutput::LeaderChanged { .. }
            | CoreOutput::LeaseTtl { .. }
            | CoreOutput::Done { .. } => {}
        }
    }

    /// Delivers what the watcher sent (bounded per call), then lets the store catch up
    /// unsynced watchers as the shell's housekeeping does.
    fn drain_watch(&mut self) -> Result<bool, String> {
        let (Some(rx), Some(checker), Some(core)) =
            (&mut self.watch_rx, &mut self.watch, &self.core)
        else {
            return Ok(true);
        };
        let mut synced = false;
        for _ in 0..WATCH_BUFFER * 4 {
            while let Ok(resp) = rx.try_recv() {
                if let Err(e) = checker.on_response(&resp) {
                    if self.watch_violation.is_none() {
                        self.watch_violation = Some(e);
                    }
                }
            }
            synced = core.store().sync_watchers().map_err(|e| e.to_string())?;
            if synced && rx.is_empty() {
                break;
            }
        }
        Ok(synced && rx.is_empty())
    }

    /// The watch checker of this member, if it has one.
    pub fn watch_checker(&self) -> Option<&WatchChecker> {
        self.watch.as_ref()
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

    fn receive(&mut self, msg: Message) {
        if let Some(core) = &mut self.core {
            core.handle(CoreInput::Message(msg), &mut self.collected);
        }
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
        out.notes.append(&mut self.notes);
        let Some(core) = &mut self.core else { return };
        if let Err(e) = core.process(&mut self.collected) {
            out.notes
                .push(format!("n{} core stopped: {e}; restarting", self.id));
            self.crash_restart();
            return;
        }
        let applied = core.applied();
        let st = core.raft_status();
        let soft = (st.soft_state.leader, st.soft_state.role);
        let collected = std::mem::take(&mut self.collected);
        out.messages.extend(collected.messages);
        for o in collected.outputs {
            self.on_output(o, out);
        }
        if soft != self.last_soft {
            self.last_soft = soft;
            out.soft_states.push(SoftState {
                leader: soft.0,
                role: soft.1,
            });
        }
        if applied > self.reported_applied {
            self.refresh_log();
            for index in self.reported_applied + 1..=applied {
                match self.log.entry(index) {
                    Some(e) => out.applied.push(Applied {
                        index,
                        term: e.term,
                        hash: entry_hash(e),
                    }),
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
        } else {
            self.refresh_log();
        }
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
        self.log.entry(index)
    }

    fn durable_last_index(&self) -> u64 {
        self.log.last_index()
    }

    fn data(&self) -> &State {
        &self.data
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
