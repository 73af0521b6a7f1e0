//! The members the simulator drives, behind the small [`Member`] trait so that the node type
//! can be swapped (today a bare `RawNode<MemStorage>` with a key-value state machine on top,
//! later the server's deterministic member core).

use std::collections::HashMap;

use bytes::Bytes;
use quorum_lincheck::{Input, OpId, Output, State};
use quorum_raft::{
    ConfState, Config, Entry, EntryKind, MemStorage, Message, NodeId, RawNode, ReadState, Ready,
    Role, SoftState, Storage, StorageError, NO_NODE,
};

use crate::kv::{Command, KvStore};
use crate::trace::fnv;

/// Largest number of client requests one member keeps waiting for an answer.
pub const MAX_PENDING_REQUESTS: usize = 1024;

/// A client's request to a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequest {
    /// The client.
    pub client: u64,
    /// The client's sequence number (for de-duplication).
    pub seq: u64,
    /// The operation's id in the history.
    pub op_id: OpId,
    /// What to do.
    pub input: Input,
}

/// A member's answer to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The operation took effect (or, for a read, was served linearizably) with this answer.
    Done {
        /// The operation.
        op_id: OpId,
        /// The answer.
        output: Output,
    },
    /// The operation certainly did not take effect (it was refused before being proposed).
    Refused {
        /// The operation.
        op_id: OpId,
        /// Why.
        reason: String,
    },
}

/// One entry a member applied, as the checkers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Applied {
    /// Log index.
    pub index: u64,
    /// Entry term.
    pub term: u64,
    /// Hash of the entry (term, kind, data).
    pub hash: u64,
}

/// The fingerprint of an entry the checkers compare.
pub fn entry_hash(e: &Entry) -> u64 {
    let mut buf = Vec::with_capacity(e.data.len() + 17);
    buf.extend_from_slice(&e.term.to_le_bytes());
    buf.extend_from_slice(&e.index.to_le_bytes());
    buf.push(matches!(e.kind, EntryKind::ConfChange) as u8);
    buf.extend_from_slice(&e.data);
    fnv(&buf)
}

/// What one [`Member::drive`] call produced.
#[derive(Clone, Debug, Default)]
pub struct MemberOutput {
    /// Messages to other members.
    pub messages: Vec<Message>,
    /// Answers to clients: (client, reply).
    pub replies: Vec<(u64, Reply)>,
    /// Entries applied, in order.
    pub applied: Vec<Applied>,
    /// Role/leader changes, in order.
    pub soft_states: Vec<SoftState>,
    /// Problems worth a trace line (malformed entries, refused messages).
    pub notes: Vec<String>,
    /// Answers to the lease holder.
    pub lease_replies: Vec<crate::lease::LeaseReply>,
    /// Lease-workload keys this member's state machine just lost (deleted by an applied
    /// entry or a restored snapshot; not by a restart).
    pub lease_keys_removed: Vec<String>,
}

/// A member's volatile state as reported to the checkers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// Current role.
    pub role: Role,
    /// Known leader.
    pub leader: NodeId,
    /// Current term.
    pub term: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
}

/// A simulated member.
pub trait Member {
    /// This member's id.
    fn id(&self) -> NodeId;
    /// One clock tick.
    fn tick(&mut self);
    /// A message from another member arrives.
    fn receive(&mut self, msg: Message);
    /// A client request arrives.
    fn submit(&mut self, req: ClientRequest);
    /// Processes everything pending (persist, send, apply), appending the results to `out`.
    fn drive(&mut self, out: &mut MemberOutput);
    /// Crashes and restarts: everything not durable is lost.
    fn crash_restart(&mut self);
    /// True while a disk write waits for its sync to complete (see [`Member::complete_sync`]).
    fn sync_pending(&self) -> bool {
        false
    }
    /// The disk finished the pending sync; the next `drive` continues.
    fn complete_sync(&mut self) {}
    /// Current volatile state.
    fn status(&self) -> MemberStatus;
    /// The durable log entry at `index`, if stored.
    fn durable_entry(&self, index: u64) -> Option<&Entry>;
    /// Last index of the durable log.
    fn durable_last_index(&self) -> u64;
    /// Highest index covered by this member's snapshot (its log starts after it): entries up
    /// to it are held in the state machine image, not in the log. 0: nothing compacted.
    fn compacted_through(&self) -> u64 {
        0
    }
    /// The state machine's data.
    fn data(&self) -> &State;
    /// Snapshot images this member received from a leader (0 for members without snapshots).
    fn snapshots_received(&self) -> u64 {
        0
    }
    /// Whether this member serves the lease workload ([`Member::lease`]).
    fn supports_leases(&self) -> bool {
        false
    }
    /// A request of the lease holder (answered in [`MemberOutput::lease_replies`]).
    fn lease(&mut self, _op: crate::lease::LeaseOp) {}
    /// The lease-workload keys this member's state machine holds.
    fn lease_keys(&self) -> Vec<String> {
        Vec::new()
    }
    /// Member-specific checks at the end of a run, after healing (e.g. watch guarantees).
    fn final_check(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// Parameters shared by every member of a simulated group.
#[derive(Clone)]
pub struct MemberParams {
    /// All voters.
    pub voters: Vec<NodeId>,
    /// The state every state machine starts from.
    pub initial: State,
    /// Applied to each member's Raft config (test hooks plant bugs here).
    pub tweak: Option<fn(&mut Config)>,
    /// Seed for the members' Raft RNGs.
    pub seed: u64,
    /// Byte limit of entries in one Append (1: one entry per message).
    pub max_msg_bytes: u64,
}

/// A member's simulated disk: where its Raft log lives and what a crash does to it.
pub trait Disk {
    /// The Raft storage on this disk.
    type Store: Storage;
    /// Opens (first boot: creates with the voters `params.voters`; later: recovers) the log.
    fn open(&mut self, id: NodeId, params: &MemberParams) -> Result<Self::Store, String>;
    /// Writes a Ready's snapshot, entries and hard state (durable only after [`Disk::sync`]).
    fn write(store: &mut Self::Store, rd: &Ready) -> Result<(), String>;
    /// Makes everything written durable.
    fn sync(store: &mut Self::Store) -> Result<(), String>;
    /// Whether writes take simulated time to become durable (the simulator then schedules the
    /// sync's completion); `false` means a write is durable at once.
    fn slow_sync() -> bool;
    /// Power loss: keeps only what this disk makes survive. The store is dropped afterwards.
    fn crash(&mut self, store: &Self::Store);
    /// The stored entry at `index`.
    fn entry(store: &Self::Store, index: u64) -> Option<&Entry>;
    /// Last stored index.
    fn last_index(store: &Self::Store) -> u64;
}

/// The in-memory disk: `MemStorage` keeps everything handed to it, atomically with the Ready.
#[derive(Debug, Default)]
pub struct MemDisk {
    saved: Option<MemStorage>,
}

impl Disk for MemDisk {
    type Store = MemStorage;

    fn open(&mut self, _id: NodeId, params: &MemberParams) -> Result<MemStorage, String> {
        Ok(self.saved.take().unwrap_or_else(|| {
            MemStorage::new_with_conf_state(ConfState {
                voters: params.voters.clone(),
                ..Default::default()
            })
        }))
    }

    fn write(store: &mut MemStorage, rd: &Ready) -> Result<(), String> {
        if let Some(snapshot) = &rd.snapshot {
            store
                .apply_snapshot(snapshot.clone())
                .map_err(|e: StorageError| e.to_string())?;
        }
        if !rd.entries.is_empty() {
            store.append(&rd.entries).map_err(|e| e.to_string())?;
        }
        if let Some(hs) = rd.hard_state {
            store.set_hard_state(hs);
        }
        Ok(())
    }

    fn sync(_store: &mut MemStorage) -> Result<(), String> {
        Ok(())
    }

    fn slow_sync() -> bool {
        false
    }

    fn crash(&mut self, store: &MemStorage) {
        self.saved = Some(store.clone());
    }

    fn entry(store: &MemStorage, index: u64) -> Option<&Entry> {
        let entries = store.all_entries();
        let first = entries.first()?.index;
        let e = entries.get(usize::try_from(index.checked_sub(first)?).ok()?)?;
        debug_assert_eq!(e.index, index);
        Some(e)
    }

    fn last_index(store: &MemStorage) -> u64 {
        store.all_entries().last().map_or(0, |e| e.index)
    }
}

/// A Ready written to disk and waiting for its sync: what may happen only once it is durable.
struct AwaitingSync {
    rd: Ready,
    synced: bool,
}

/// A `RawNode` over a simulated [`Disk`] with a [`KvStore`] on top.
///
/// Each Ready is written to the disk; its `messages` leave at once, and once the disk reports
/// the write durable (at once for [`MemDisk`], after a simulated fsync for the WAL disk) the
/// `persisted_messages` leave, committed entries are applied, and `advance()` is called. A crash
/// keeps what the disk keeps; everything else (unstable entries, progress, pending reads, the
/// state machine, rebuilt by re-applying the log) is lost.
pub struct RaftMember<D: Disk = MemDisk> {
    id: NodeId,
    params: MemberParams,
    incarnation: u64,
    disk: D,
    node: RawNode<D::Store>,
    kv: KvStore,
    applied: u64,
    awaiting: Option<AwaitingSync>,
    /// Writes proposed here: op id → client.
    pending_writes: HashMap<OpId, u64>,
    /// Reads waiting for their ReadState: context → request.
    pending_reads: HashMap<Bytes, ClientRequest>,
    /// Reads with a read index, waiting for apply to reach it.
    ready_reads: Vec<(u64, ClientRequest)>,
    /// Answers produced outside `drive` (refusals), flushed by the next `drive`.
    early_replies: Vec<(u64, Reply)>,
    notes: Vec<String>,
}

impl RaftMember<MemDisk> {
    /// A fresh member on an in-memory disk.
    pub fn new(id: NodeId, params: MemberParams) -> Result<Self, String> {
        Self::with_disk(id, params, MemDisk::default())
    }
}

impl<D: Disk> RaftMember<D> {
    /// A fresh member of the group described by `params`, on `disk`.
    pub fn with_disk(id: NodeId, params: MemberParams, mut disk: D) -> Result<Self, String> {
        let store = disk.open(id, &params)?;
        let node = RawNode::new(&Self::config(id, &params, 0), store).map_err(|e| e.to_string())?;
        Ok(RaftMember {
            id,
            kv: KvStore::new(params.initial.clone()),
            params,
            incarnation: 0,
            disk,
            node,
            applied: 0,
            awaiting: None,
            pending_writes: HashMap::new(),
            pending_reads: HashMap::new(),
            ready_reads: Vec::new(),
            early_replies: Vec::new(),
            notes: Vec::new(),
        })
    }

    fn config(id: NodeId, params: &MemberParams, incarnation: u64) -> Config {
        let mut c = Config::new(id);
        c.seed = params
            .seed
            .wrapping_mul(31)
            .wrapping_add(id)
            .wrapping_add(incarnation << 32);
        c.max_size_per_msg = params.max_msg_bytes;
        c.max_inflight_msgs = 64;
        if let Some(tweak) = params.tweak {
            tweak(&mut c);
        }
        c
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

    fn apply_entry(&mut self, e: &Entry, out: &mut MemberOutput) {
        debug_assert_eq!(e.index, self.applied + 1, "entries applied out of order");
        self.applied = e.index;
        out.applied.push(Applied {
            index: e.index,
            term: e.term,
            hash: entry_hash(e),
        });
        if e.kind != EntryKind::Normal || e.data.is_empty() {
            return;
        }
        match Command::decode(&e.data) {
            Ok(cmd) => {
                let output = self.kv.apply(&cmd);
                if let Some(client) = self.pending_writes.remove(&cmd.op_id) {
                    out.replies.push((
                        client,
                        Reply::Done {
                            op_id: cmd.op_id,
                            output,
                        },
                    ));
                }
            }
            Err(err) => out
                .notes
                .push(format!("n{} entry {}: {err}", self.id, e.index)),
        }
    }

    fn serve_reads(&mut self, out: &mut MemberOutput) {
        let applied = self.applied;
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.ready_reads)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.ready_reads = later;
        for (_, req) in now {
            out.replies.push((
                req.client,
                Reply::Done {
                    op_id: req.op_id,
                    output: self.kv.read(&req.input),
                },
            ));
        }
    }

    fn take_read_state(&mut self, rs: ReadState) {
        if let Some(req) = self.pending_reads.remove(&rs.request_ctx) {
            self.ready_reads.push((rs.index, req));
        }
    }

    /// The second half of a Ready, once it is durable.
    fn finish_ready(&mut self, rd: Ready, out: &mut MemberOutput) {
        out.messages.extend(rd.persisted_messages);
        for e in &rd.committed_entries {
            self.apply_entry(e, out);
        }
        for rs in rd.read_states {
            self.take_read_state(rs);
        }
        self.node.advance();
        self.serve_reads(out);
    }
}

impl<D: Disk> Member for RaftMember<D> {
    fn id(&self) -> NodeId {
        self.id
    }

    fn tick(&mut self) {
        self.node.tick();
    }

    fn receive(&mut self, msg: Message) {
        if let Err(err) = self.node.step(msg) {
            self.notes.push(format!("n{} step: {err}", self.id));
        }
    }

    fn submit(&mut self, req: ClientRequest) {
        if self.pending_writes.len() + self.pending_reads.len() + self.ready_reads.len()
            >= MAX_PENDING_REQUESTS
        {
            self.refuse(&req, "too many pending requests".into());
            return;
        }
        if req.input.is_read_only() {
            let ctx = Bytes::from(req.op_id.to_le_bytes().to_vec());
            match self.node.read_index(ctx.clone()) {
                Ok(()) => {
                    self.pending_reads.insert(ctx, req);
                }
                Err(err) => self.refuse(&req, err.to_string()),
            }
            return;
        }
        let cmd = Command {
            client: req.client,
            seq: req.seq,
            op_id: req.op_id,
            input: req.input.clone(),
        };
        match self.node.propose(cmd.encode()) {
            Ok(()) => {
                self.pending_writes.insert(req.op_id, req.client);
            }
            Err(err) => self.refuse(&req, err.to_string()),
        }
    }

    fn drive(&mut self, out: &mut MemberOutput) {
        out.replies.append(&mut self.early_replies);
        out.notes.append(&mut self.notes);
        loop {
            match self.awaiting.take() {
                Some(AwaitingSync { rd, synced: true }) => self.finish_ready(rd, out),
                Some(waiting) => {
                    self.awaiting = Some(waiting);
                    break;
                }
                None => {}
            }
            if !self.node.has_ready() {
                break;
            }
            let rd = self.node.ready();
            if let Some(ss) = rd.soft_state {
                out.soft_states.push(ss);
            }
            out.messages.extend(rd.messages.iter().cloned());
            if let Err(err) = D::write(self.node.storage_mut(), &rd) {
                out.notes.push(format!("n{} write: {err}", self.id));
            }
            let writes = rd.must_sync || !rd.entries.is_empty() || rd.hard_state.is_some();
            self.awaiting = Some(AwaitingSync {
                rd,
                synced: !(writes && D::slow_sync()),
            });
        }
        self.serve_reads(out);
    }

    fn sync_pending(&self) -> bool {
        self.awaiting.as_ref().is_some_and(|a| !a.synced)
    }

    fn complete_sync(&mut self) {
        if let Some(a) = &mut self.awaiting {
            match D::sync(self.node.storage_mut()) {
                Ok(()) => a.synced = true,
                Err(err) => self.notes.push(format!("n{} sync: {err}", self.id)),
            }
        }
    }

    fn crash_restart(&mut self) {
        self.incarnation += 1;
        self.disk.crash(self.node.storage());
        self.awaiting = None;
        let restarted = self.disk.open(self.id, &self.params).and_then(|store| {
            RawNode::new(
                &Self::config(self.id, &self.params, self.incarnation),
                store,
            )
            .map_err(|e| e.to_string())
        });
        match restarted {
            Ok(node) => self.node = node,
            Err(err) => self
                .notes
                .push(format!("n{} restart failed: {err}", self.id)),
        }
        self.kv = KvStore::new(self.params.initial.clone());
        self.applied = 0;
        self.pending_writes.clear();
        self.pending_reads.clear();
        self.ready_reads.clear();
        self.early_replies.clear();
    }

    fn status(&self) -> MemberStatus {
        let st = self.node.status();
        MemberStatus {
            role: st.soft_state.role,
            leader: st.soft_state.leader,
            term: st.hard_state.term,
            commit: st.hard_state.commit,
            applied: self.applied,
        }
    }

    fn durable_entry(&self, index: u64) -> Option<&Entry> {
        D::entry(self.node.storage(), index)
    }

    fn durable_last_index(&self) -> u64 {
        D::last_index(self.node.storage())
    }

    fn data(&self) -> &State {
        self.kv.data()
    }
}

/// Whether `status` describes a leader that knows it leads.
pub fn is_leader(status: &MemberStatus, id: NodeId) -> bool {
    status.role == Role::Leader && (status.leader == id || status.leader == NO_NODE)
}
