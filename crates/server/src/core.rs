//! The deterministic member core: one Raft group (its `RawNode` over the WAL-backed log) and
//! the MVCC store it applies to. Events go in ([`Input`]), effects come out through an
//! [`Outbox`]: messages to send and results for the requests waiting in the shell.
//!
//! The core never reads a clock, never spawns, never touches a socket: the tokio shell (and the
//! simulator) feed it time through [`Input::Tick`] and carry its messages. Disk writes happen in
//! [`Core::process`]: a Ready's entries and hard state are written as one group commit, *after*
//! the leader's appends to followers have been handed to the outbox (so replication runs in
//! parallel with the leader's own fsync, Raft thesis 10.2.1); any message that depends on them
//! (votes, append responses) is released only once they are durable.
//!
//! Two persistence modes. Synchronous (the default): `process` fsyncs before it returns.
//! Asynchronous ([`Core::set_async_persist`], what the server runs): `process` only writes; the
//! shell fsyncs on another thread ([`Core::take_sync_request`], then [`Input::Synced`]), and
//! meanwhile the core keeps taking proposals, replicating and applying. Each written Ready that
//! needs an fsync waits in a FIFO with its write ticket, the messages it holds back and its last
//! entry; a sync completion releases every Ready it covers, in order, and only then tells Raft
//! that those entries are durable (so the leader counts itself and followers acknowledge only
//! durable entries). Whatever the mode, an entry is applied only once it is committed and
//! durable locally (Raft hands out no other).
//!
//! Invariants (asserted):
//! - applied index never decreases, and never passes the commit index Raft reported;
//! - an entry is applied to the store at most once (the store's consistent index makes replay
//!   after a crash a no-op);
//! - a read is released only when the applied index has reached its read index.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;
use quorum_api::internal::InternalRaftRequest;
use quorum_mvcc::{MvccError, Store, WriteRequest, WriteResponse};
use quorum_raft::{
    ConfChange, Entry, EntryKind, GroupId, Message, MessageType, NodeId, ProposeError, RawNode,
    ReadIndexError, Role, Snapshot, SnapshotMetadata, NO_NODE,
};
use quorum_storage::{FileSystem, LogStore, WriteTicket};
use tracing::{debug, info, warn};

use crate::error::ServerError;
use crate::membership::{Applied, MemberChange, Op, Registry};

/// Identifies a request waiting in the shell for a result from the core.
pub type Token = u64;

/// Static configuration of a core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// This member's id.
    pub member_id: NodeId,
    /// The Raft group this core runs.
    pub group_id: GroupId,
    /// Election timeout in ticks.
    pub election_tick: usize,
    /// Heartbeat interval in ticks.
    pub heartbeat_tick: usize,
    /// Milliseconds per tick, to turn ticks into lease time.
    pub tick_ms: u64,
    /// Applied entries between snapshots (then the log is compacted).
    pub snapshot_count: u64,
    /// Entries kept in the log behind a snapshot, so slow followers catch up without one.
    pub snapshot_catchup_entries: u64,
    /// Seed of Raft's randomized timeouts.
    pub seed: u64,
    /// Maximum proposals batched into one Raft append.
    pub max_batch: usize,
}

/// An event for the core.
#[derive(Debug)]
pub enum Input {
    /// One heartbeat interval passed; `now_ms` is the shell's monotonic clock, used only for
    /// lease expiry on the leader.
    Tick {
        /// Monotonic milliseconds.
        now_ms: u64,
    },
    /// A message from a peer of this group.
    Message(Message),
    /// A peer's snapshot message whose image was received into `path`.
    Snapshot {
        /// The Raft message (its snapshot carries only metadata).
        message: Message,
        /// Where the shell stored the received image.
        path: std::path::PathBuf,
    },
    /// Replicate an encoded `InternalRaftRequest` whose header id is `id`.
    Propose {
        /// The request id; the result is reported as [`Output::Applied`] with it.
        id: u64,
        /// The encoded request.
        data: Bytes,
    },
    /// A linearizable read wants a read index.
    ReadIndex {
        /// Completed by [`Output::ReadReady`] or [`Output::Failed`].
        token: Token,
    },
    /// Renew lease `id` (keep-alive).
    LeaseRenew {
        /// Completed by [`Output::LeaseTtl`].
        token: Token,
        /// Lease id.
        id: i64,
    },
    /// Remaining TTL of lease `id`.
    LeaseRemaining {
        /// Completed by [`Output::LeaseTtl`].
        token: Token,
        /// Lease id.
        id: i64,
    },
    /// Transfer leadership to `to`.
    TransferLeader {
        /// Completed by [`Output::Done`] once `to` leads, or [`Output::Failed`].
        token: Token,
        /// Target member.
        to: NodeId,
    },
    /// Propose a membership change; completed by [`Output::Done`] once applied (the registry
    /// then shows it) or [`Output::Failed`] with the reason it was refused.
    ProposeMemberChange {
        /// The change; its `request_id` is the token the result is reported with.
        change: MemberChange,
    },
    /// The registry a peer sent along with the snapshot image at `index`; adopted when Raft
    /// installs that snapshot, if it is newer than this member's.
    SnapshotMembership {
        /// The snapshot's index.
        index: u64,
        /// The sender's registry.
        registry: Registry,
    },
    /// A peer could not be reached.
    Unreachable(NodeId),
    /// Sending a snapshot to a peer finished.
    SnapshotStatus {
        /// The peer.
        to: NodeId,
        /// Whether it was delivered.
        success: bool,
    },
    /// Asynchronous persistence: every WAL write with a ticket up to `ticket` is durable.
    Synced {
        /// The highest durable write ticket.
        ticket: WriteTicket,
    },
}

/// An effect of the core for the shell.
#[derive(Debug)]
pub enum Output {
    /// A proposal of this member was applied.
    Applied {
        /// The request id.
        id: u64,
        /// The store's response.
        result: Result<WriteResponse, MvccError>,
    },
    /// A read may proceed: this member applied everything up to its read index.
    ReadReady {
        /// The read.
        token: Token,
    },
    /// A lease TTL answer; `Err(NotLeader)` when this member cannot answer (forward it).
    LeaseTtl {
        /// The request.
        token: Token,
        /// TTL in seconds, `None` if the lease does not exist.
        result: Result<Option<i64>, ServerError>,
    },
    /// A request completed without a value.
    Done {
        /// The request.
        token: Token,
    },
    /// A request (proposal id or token) failed.
    Failed {
        /// The request.
        token: Token,
        /// Why.
        error: ServerError,
    },
    /// The known leader or term changed.
    LeaderChanged {
        /// New leader (`NO_NODE`: none known).
        leader: NodeId,
        /// Current term.
        term: u64,
    },
    /// A snapshot message must be sent: the shell streams the store's image with it.
    SendSnapshot(Message),
}

/// Where the core's effects go. The shell sends messages to peers at once (the leader's appends
/// travel while it fsyncs); the simulator queues them in its network.
pub trait Outbox {
    /// Messages to peers.
    fn send(&mut self, messages: Vec<Message>);
    /// Results for waiting requests, and notifications.
    fn output(&mut self, output: Output);
    /// The member registry changed (applied entries or an installed snapshot). Called before
    /// the store records the entry as applied: an embedder that persists the registry here
    /// (the shell does, atomically) never loses a change across a crash, since replay skips
    /// what the registry already reflects.
    fn membership_changed(&mut self, _registry: &Registry) {}
}

/// A fatal core failure: the member must stop (a disk that cannot be written, a corrupt log).
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The WAL failed.
    #[error("WAL: {0}")]
    Wal(#[from] quorum_storage::Error),
    /// Raft refused its own state.
    #[error("raft: {0}")]
    Raft(#[from] quorum_raft::RaftError),
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
}

/// Counters the shell exports as metrics.
#[derive(Debug, Default, Clone)]
pub struct CoreStats {
    /// Proposals that failed before entering the log.
    pub proposals_failed: u64,
    /// Proposals handed to Raft.
    pub proposals_pending: u64,
    /// Entries applied.
    pub applied_entries: u64,
    /// Leader changes seen.
    pub leader_changes: u64,
    /// Snapshots taken.
    pub snapshots: u64,
}

/// The member core. See the module documentation.
pub struct Core<F: FileSystem> {
    cfg: CoreConfig,
    raft: RawNode<LogStore<F>>,
    store: Arc<Store>,
    applied: u64,
    leader: NodeId,
    term: u64,
    is_leader: bool,
    now_ms: u64,
    /// Proposals collected since the last `process`, proposed as one batch.
    proposal_batch: Vec<(u64, Bytes)>,
    /// Reads collected since the last `process`, served by one ReadIndex round.
    read_batch: Vec<Token>,
    /// ReadIndex rounds in flight: context → reads.
    /// (Ordered: failing them on a leader change must happen in the same order on every run.)
    reads_in_flight: BTreeMap<u64, Vec<Token>>,
    /// Lease queries on the leader waiting for apply: commit index at arrival → queries.
    lease_queries_waiting: BTreeMap<u64, Vec<(Token, i64, bool)>>,
    /// Reads that have a read index, waiting for apply: index → reads.
    reads_waiting_apply: BTreeMap<u64, Vec<Token>>,
    next_read_ctx: u64,
    /// Snapshot images received from a leader, by snapshot index.
    received_snapshots: BTreeMap<u64, std::path::PathBuf>,
    pending_transfer: Option<(Token, NodeId, u64)>,
    last_snapshot_index: u64,
    /// The replicated member registry.
    registry: Registry,
    /// Registries received with snapshot images, by snapshot index (bounded like the images).
    snapshot_registries: BTreeMap<u64, Registry>,
    stats: CoreStats,
    /// Asynchronous persistence on (see the module documentation).
    async_persist: bool,
    /// Written Readies waiting for an fsync, oldest first (tickets strictly increasing).
    unsynced: VecDeque<Unsynced>,
    /// The highest ticket the shell was asked to sync.
    sync_requested: WriteTicket,
    /// The highest ticket known durable.
    synced: WriteTicket,
}

/// A written Ready waiting for its fsync (asynchronous persistence).
struct Unsynced {
    /// The write that must be durable.
    ticket: WriteTicket,
    /// Its last entry `(index, term)`, acknowledged to Raft once durable.
    last_entry: Option<(u64, u64)>,
    /// Messages that may only leave once it is durable.
    messages: Vec<Message>,
}

/// Written Readies that may wait for one fsync before new ones are refused a place: beyond it
/// the core syncs inline (a stalled sync thread must not let the queue grow without bound).
const MAX_UNSYNCED: usize = 4096;

/// Lease queries that may wait on the leader for its apply to catch up; more are refused as
/// too many requests.
const MAX_WAITING_LEASE_QUERIES: usize = 65_536;

/// Lease expiry work per tick, bounded so that a burst of expiries cannot stall the loop.
const MAX_EXPIRED_PER_TICK: usize = 64;

/// A learner may be promoted once its log matches at least this fraction of the leader's
/// (etcd's `readyPercent`).
const LEARNER_READY_FRACTION: f64 = 0.9;

impl<F: FileSystem> Core<F> {
    /// Builds the core over a recovered log and an opened store.
    pub fn new(cfg: CoreConfig, log: LogStore<F>, store: Arc<Store>) -> Result<Self, CoreError> {
        let hs = log.hard_state();
        let store_ci = store
            .consistent_index()
            .map_err(|e| CoreError::Store(e.to_string()))?;
        let applied = store_ci.min(hs.commit);
        let first = log.first_index();
        // Entries the store already applied are skipped at apply time; Raft must not hand out
        // entries older than its log start.
        let applied = applied.max(first.saturating_sub(1));
        let mut rc = quorum_raft::Config::new(cfg.member_id);
        rc.election_tick = cfg.election_tick;
        rc.heartbeat_tick = cfg.heartbeat_tick;
        rc.applied = applied;
        rc.check_quorum = true;
        rc.pre_vote = true;
        rc.seed = cfg.seed;
        rc.max_size_per_msg = 1024 * 1024;
        rc.max_inflight_msgs = 256;
        rc.max_uncommitted_entries_size = 1 << 30;
        rc.max_committed_size_per_ready = 64 * 1024 * 1024;
        let last_snapshot_index = first.saturating_sub(1);
        let mut log = log;
        if last_snapshot_index > 0 {
            // The log starts after a compaction point: that point is the snapshot Raft sends to
            // a follower that needs older entries (its image is the store, whose consistent
            // index is at or past it because the store is flushed before every compaction).
            let term = quorum_raft::Storage::term(&log, last_snapshot_index)
                .map_err(quorum_raft::RaftError::from)?;
            let conf_state = log.conf_state().clone();
            log.set_snapshot(Snapshot {
                metadata: SnapshotMetadata {
                    index: last_snapshot_index,
                    term,
                    conf_state,
                },
                data: Bytes::new(),
            });
        }
        let raft = RawNode::new(&rc, log)?;
        info!(
            member = format_args!("{:x}", cfg.member_id),
            term = hs.term,
            commit = hs.commit,
            applied,
            "raft group {} started",
            cfg.group_id
        );
        Ok(Core {
            cfg,
            raft,
            store,
            applied,
            leader: NO_NODE,
            term: hs.term,
            is_leader: false,
            now_ms: 0,
            proposal_batch: Vec::new(),
            read_batch: Vec::new(),
            reads_in_flight: BTreeMap::new(),
            lease_queries_waiting: BTreeMap::new(),
            reads_waiting_apply: BTreeMap::new(),
            next_read_ctx: 1,
            received_snapshots: BTreeMap::new(),
            pending_transfer: None,
            last_snapshot_index,
            registry: Registry::default(),
            snapshot_registries: BTreeMap::new(),
            stats: CoreStats::default(),
            async_persist: false,
            unsynced: VecDeque::new(),
            sync_requested: 0,
            synced: 0,
        })
    }

    /// Shortens the first election after a start, as etcd's `--initial-election-tick-advance`:
    /// the only voter of a one-member cluster campaigns at once (so that the first request
    /// after a start does not meet `no leader` for one to two election timeouts); a member of
    /// a larger cluster fast-forwards its election clock to two ticks before the earliest
    /// timeout, which leaves a running leader two heartbeats to reach it (and PreVote with
    /// CheckQuorum keeps a premature campaign from disrupting that leader).
    pub fn fast_forward_election(&mut self) {
        let conf = self.raft.status().conf_state;
        let me = self.cfg.member_id;
        if conf.voters == [me] && conf.voters_outgoing.is_empty() {
            if let Err(e) = self.raft.campaign() {
                warn!("campaigning at start failed: {e}");
            }
            return;
        }
        if conf.voters.contains(&me) {
            for _ in 0..self.cfg.election_tick.saturating_sub(2) {
                self.raft.tick();
            }
        }
    }

    /// Turns asynchronous persistence on or off (see the module documentation). With it on,
    /// the embedder must run the fsyncs [`Core::take_sync_request`] asks for and report them
    /// with [`Input::Synced`].
    pub fn set_async_persist(&mut self, on: bool) {
        self.async_persist = on;
    }

    /// Asynchronous persistence: the write ticket to make durable, if a written Ready waits for
    /// an fsync not yet asked for. Call after [`Core::process`]; each ticket is handed out once.
    pub fn take_sync_request(&mut self) -> Option<WriteTicket> {
        let newest = self.unsynced.back()?.ticket;
        if newest <= self.sync_requested {
            return None;
        }
        self.sync_requested = newest;
        Some(newest)
    }

    /// Starts the core with the member registry persisted next to the log (the shell's
    /// cluster file). Without it the registry starts empty and only follows the log.
    pub fn with_registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// The replicated member registry as of the applied index.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The store this core applies to.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Raft's view, for status reports.
    pub fn raft_status(&self) -> quorum_raft::Status {
        self.raft.status()
    }

    /// The WAL-backed log (read-only), for status reports and for the simulator's checkers.
    pub fn log(&self) -> &LogStore<F> {
        self.raft.storage()
    }

    /// Last index in the log.
    pub fn last_index(&self) -> u64 {
        self.raft.storage().last_index()
    }

    /// Last applied index.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The leader this member knows of.
    pub fn leader(&self) -> NodeId {
        self.leader
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Counters.
    pub fn stats(&self) -> &CoreStats {
        &self.stats
    }

    /// Feeds one event. Cheap: the work happens in [`Core::process`].
    pub fn handle(&mut self, input: Input, out: &mut dyn Outbox) {
        match input {
            Input::Tick { now_ms } => {
                self.now_ms = now_ms;
                self.raft.tick();
                self.tick_leases();
                self.check_transfer(out);
                // Applied batches wait in the store's open transaction (one engine commit per
                // many batches); commit them once a tick, as etcd commits its batch every
                // 100 ms, so that a reader rarely has to. Visibility only: the WAL is the
                // source of truth, and a failure here fails the next apply.
                if let Err(e) = self.store.commit_pending() {
                    warn!("committing applied entries to the store failed: {e}");
                }
            }
            Input::Message(m) => self.step(m),
            Input::Snapshot { message, path } => {
                if let Some(s) = &message.snapshot {
                    self.received_snapshots.insert(s.metadata.index, path);
                    // Bound what we keep: only the newest few images matter.
                    while self.received_snapshots.len() > 4 {
                        if let Some((_, p)) = self.received_snapshots.pop_first() {
                            let _ = std::fs::remove_file(p);
                        }
                    }
                }
                self.step(message);
            }
            Input::Propose { id, data } => {
                if self.leader == NO_NODE {
                    self.stats.proposals_failed += 1;
                    out.output(Output::Failed {
                        token: id,
                        error: ServerError::NoLeader,
                    });
                } else {
                    self.proposal_batch.push((id, data));
                    if self.proposal_batch.len() >= self.cfg.max_batch {
                        self.flush_proposals(out);
                    }
                }
            }
            Input::ReadIndex { token } => self.read_batch.push(token),
            Input::LeaseRenew { token, id } => self.lease_query(token, id, true, out),
            Input::LeaseRemaining { token, id } => self.lease_query(token, id, false, out),
            Input::TransferLeader { token, to } => {
                if !self.is_leader {
                    out.output(Output::Failed {
                        token,
                        error: ServerError::NotLeader,
                    });
                } else if to == self.cfg.member_id {
                    out.output(Output::Done { token });
                } else if !self.raft.status().progress.contains_key(&to) {
                    out.output(Output::Failed {
                        token,
                        error: ServerError::BadLeaderTransferee,
                    });
                } else {
                    self.raft.transfer_leadership(to);
                    let deadline = self.now_ms + 2 * self.election_ms();
                    self.pending_transfer = Some((token, to, deadline));
                }
            }
            Input::ProposeMemberChange { change } => self.propose_member_change(change, out),
            Input::SnapshotMembership { index, registry } => {
                self.snapshot_registries.insert(index, registry);
                while self.snapshot_registries.len() > 4 {
                    self.snapshot_registries.pop_first();
                }
            }
            Input::Unreachable(id) => self.raft.report_unreachable(id),
            Input::SnapshotStatus { to, success } => self.raft.report_snapshot(to, success),
            Input::Synced { ticket } => self.on_synced(ticket, out),
        }
    }

    /// Releases every written Ready that `ticket` covers, oldest first: its held-back
    /// messages leave and Raft learns its entries are durable.
    fn on_synced(&mut self, ticket: WriteTicket, out: &mut dyn Outbox) {
        self.synced = self.synced.max(ticket);
        while self
            .unsynced
            .front()
            .is_some_and(|u| u.ticket <= self.synced)
        {
            let Some(u) = self.unsynced.pop_front() else {
                break;
            };
            self.send_all(u.messages, out);
            if let Some((index, term)) = u.last_entry {
                self.raft.advance_append(index, term);
            }
        }
    }

    fn propose_member_change(&mut self, change: MemberChange, out: &mut dyn Outbox) {
        let token = change.request_id;
        let fail = |error: ServerError, out: &mut dyn Outbox| {
            out.output(Output::Failed { token, error });
        };
        if self.leader == NO_NODE {
            return fail(ServerError::NoLeader, out);
        }
        // The same checks the apply makes, answered at once instead of after a round trip.
        if let Err(e) = self.registry.validate(&change) {
            return fail(e.into(), out);
        }
        if change.op == Op::Promote {
            if !self.is_leader {
                return fail(ServerError::NotLeader, out);
            }
            if let Err(e) = self.learner_ready(change.member.id) {
                return fail(e, out);
            }
        }
        if let Err(e) = self.raft.propose_conf_change(change.to_conf_change()) {
            self.stats.proposals_failed += 1;
            fail(propose_error(e), out);
        }
    }

    /// etcd's `isLearnerReady`: the learner's match index is within 90% of the leader's.
    fn learner_ready(&self, id: NodeId) -> Result<(), ServerError> {
        let status = self.raft.status();
        let learner = status
            .progress
            .get(&id)
            .ok_or(ServerError::MemberNotFound)?
            .matched;
        let leader = status
            .progress
            .get(&self.cfg.member_id)
            .map(|p| p.matched)
            .unwrap_or(0);
        if (learner as f64) < (leader as f64) * LEARNER_READY_FRACTION {
            return Err(ServerError::LearnerNotReady);
        }
        Ok(())
    }

    /// A keep-alive (`renew`) or remaining-TTL query, answered by the leader's lessor. The
    /// leader answers only once it has applied everything committed when the query arrived:
    /// a lease granted (or revoked) by a committed entry that another member already applied
    /// and reported to its client must be seen here too (with asynchronous persistence a
    /// leader may apply after its followers).
    fn lease_query(&mut self, token: Token, id: i64, renew: bool, out: &mut dyn Outbox) {
        if !self.is_leader {
            out.output(Output::LeaseTtl {
                token,
                result: Err(ServerError::NotLeader),
            });
            return;
        }
        let commit = self.raft.commit_index();
        if self.applied < commit {
            if self.lease_queries_waiting.len() >= MAX_WAITING_LEASE_QUERIES {
                out.output(Output::LeaseTtl {
                    token,
                    result: Err(ServerError::TooManyRequests),
                });
                return;
            }
            self.lease_queries_waiting
                .entry(commit)
                .or_default()
                .push((token, id, renew));
            return;
        }
        self.answer_lease_query(token, id, renew, out);
    }

    /// Answers a lease query from the leader's lessor (or refuses it off the leadership).
    fn answer_lease_query(&mut self, token: Token, id: i64, renew: bool, out: &mut dyn Outbox) {
        if !self.is_leader {
            out.output(Output::LeaseTtl {
                token,
                result: Err(ServerError::NotLeader),
            });
            return;
        }
        let result = if renew {
            match self.store.lease_renew(id, self.now_ms) {
                Ok(ttl) => Ok(Some(ttl)),
                Err(MvccError::LeaseNotFound) => Ok(None),
                Err(MvccError::NotLeader) => Err(ServerError::NotLeader),
                Err(e) => Err(ServerError::Internal(e.to_string())),
            }
        } else {
            match self.store.lease_time_to_live(id, false, self.now_ms) {
                Ok(r) => Ok((r.ttl >= 0).then_some(r.ttl)),
                Err(e) => Err(ServerError::Internal(e.to_string())),
            }
        };
        out.output(Output::LeaseTtl { token, result });
    }

    /// Answers the lease queries whose commit index is now applied (or, off the leadership,
    /// refuses them all: the shell forwards them to the new leader).
    fn release_lease_queries(&mut self, out: &mut dyn Outbox) {
        while let Some((&index, _)) = self.lease_queries_waiting.first_key_value() {
            if self.is_leader && index > self.applied {
                break;
            }
            if let Some((_, queries)) = self.lease_queries_waiting.pop_first() {
                for (token, id, renew) in queries {
                    self.answer_lease_query(token, id, renew, out);
                }
            }
        }
    }

    fn election_ms(&self) -> u64 {
        self.cfg.election_tick as u64 * self.cfg.tick_ms
    }

    fn step(&mut self, m: Message) {
        if let Err(e) = self.raft.step(m) {
            debug!("dropped peer message: {e}");
        }
    }

    fn flush_proposals(&mut self, out: &mut dyn Outbox) {
        if self.proposal_batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.proposal_batch);
        let data: Vec<Bytes> = batch.iter().map(|(_, d)| d.clone()).collect();
        match self.raft.propose_batch(data) {
            Ok(()) => self.stats.proposals_pending += batch.len() as u64,
            Err(e) => {
                let error = propose_error(e);
                for (id, _) in batch {
                    self.stats.proposals_failed += 1;
                    out.output(Output::Failed {
                        token: id,
                        error: error.clone(),
                    });
                }
            }
        }
    }

    fn flush_reads(&mut self, out: &mut dyn Outbox) {
        if self.read_batch.is_empty() {
            return;
        }
        let reads = std::mem::take(&mut self.read_batch);
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        match self
            .raft
            .read_index(Bytes::copy_from_slice(&ctx.to_be_bytes()))
        {
            Ok(()) => {
                self.reads_in_flight.insert(ctx, reads);
            }
            Err(e) => {
                let error = match e {
                    ReadIndexError::NoLeader => ServerError::NoLeader,
                    ReadIndexError::TooManyPending => ServerError::TooManyRequests,
                    _ => ServerError::NoLeader,
                };
                for token in reads {
                    out.output(Output::Failed {
                        token,
                        error: error.clone(),
                    });
                }
            }
        }
    }

    fn tick_leases(&mut self) {
        if !self.is_leader {
            return;
        }
        for id in self.store.lease_expired(self.now_ms, MAX_EXPIRED_PER_TICK) {
            let req = InternalRaftRequest {
                lease_revoke: Some(quorum_api::etcdserverpb::LeaseRevokeRequest { id }),
                ..Default::default()
            };
            // Expiry revokes have no waiter (id 0); a lost one is proposed again after the
            // lessor's retry interval.
            self.proposal_batch
                .push((0, Bytes::from(req.encode_to_vec())));
        }
    }

    fn check_transfer(&mut self, out: &mut dyn Outbox) {
        if let Some((token, to, deadline)) = self.pending_transfer {
            if self.leader == to {
                self.pending_transfer = None;
                out.output(Output::Done { token });
            } else if self.now_ms >= deadline {
                self.pending_transfer = None;
                out.output(Output::Failed {
                    token,
                    error: ServerError::Timeout,
                });
            }
        }
    }

    /// Runs Raft's pending work: batches proposals and reads, persists (one fsync), sends,
    /// applies, releases reads. Call after a burst of [`Core::handle`] calls. An error is
    /// fatal: the member must stop.
    pub fn process(&mut self, out: &mut dyn Outbox) -> Result<(), CoreError> {
        self.flush_proposals(out);
        self.flush_reads(out);
        // A Ready can lead to another (e.g. after advance a leader may commit more); loop while
        // there is work, but boundedly so that inputs keep flowing.
        for _ in 0..4 {
            if !self.raft.has_ready() {
                break;
            }
            self.process_ready(out)?;
        }
        Ok(())
    }

    fn process_ready(&mut self, out: &mut dyn Outbox) -> Result<(), CoreError> {
        let mut rd = self.raft.ready();
        if let Some(ss) = &rd.soft_state {
            self.on_soft_state(ss.leader, ss.role, out);
        }
        if let Some(hs) = &rd.hard_state {
            if hs.term != self.term {
                self.term = hs.term;
                out.output(Output::LeaderChanged {
                    leader: self.leader,
                    term: self.term,
                });
            }
        }
        // The leader's appends and heartbeats go out before the fsync.
        self.send_all(rd.messages, out);

        let inline =
            !self.async_persist || rd.snapshot.is_some() || self.unsynced.len() >= MAX_UNSYNCED;
        if inline && !self.unsynced.is_empty() {
            // Everything written before must be durable before this Ready's state (a
            // snapshot replaces the log; the queue is full): sync now and release it all.
            let ticket = self.raft.storage_mut().sync()?;
            self.on_synced(ticket, out);
            debug_assert!(
                self.unsynced.is_empty(),
                "a sync covers every earlier write"
            );
        }
        if let Some(snap) = &rd.snapshot {
            self.install_snapshot(snap, out)?;
        }
        let log = self.raft.storage_mut();
        let mut ticket = None;
        if rd.hard_state.is_some() || !rd.entries.is_empty() {
            ticket = Some(log.append(rd.hard_state, &rd.entries)?);
        }
        let persisted_messages = std::mem::take(&mut rd.persisted_messages);
        if inline {
            if rd.must_sync || rd.snapshot.is_some() {
                let durable = log.sync()?;
                self.synced = self.synced.max(durable);
            }
            // Votes and append responses only after the state they vouch for is durable.
            self.send_all(persisted_messages, out);
        } else if rd.must_sync {
            let Some(ticket) = ticket else {
                // must_sync means entries or a new term/vote, both written above.
                return Err(CoreError::Store(
                    "a Ready that must be synced wrote nothing".into(),
                ));
            };
            debug_assert!(self.unsynced.back().is_none_or(|u| u.ticket < ticket));
            self.unsynced.push_back(Unsynced {
                ticket,
                last_entry: rd.entries.last().map(|e| (e.index, e.term)),
                messages: persisted_messages,
            });
        } else if let Some(last) = self.unsynced.back_mut() {
            // They may vouch for entries of a Ready still waiting: they leave with it.
            last.messages.extend(persisted_messages);
        } else {
            self.send_all(persisted_messages, out);
        }

        self.apply(&rd.committed_entries, out)?;

        for rs in rd.read_states {
            let ctx = ctx_id(&rs.request_ctx);
            if let Some(reads) = self.reads_in_flight.remove(&ctx) {
                self.reads_waiting_apply
                    .entry(rs.index)
                    .or_default()
                    .extend(reads);
            }
        }
        self.release_reads(out);
        self.release_lease_queries(out);
        if inline {
            self.raft.advance();
        } else {
            self.raft.advance_apply();
        }
        self.maybe_snapshot()?;
        Ok(())
    }

    fn send_all(&mut self, messages: Vec<Message>, out: &mut dyn Outbox) {
        if messages.is_empty() {
            return;
        }
        let mut plain = Vec::with_capacity(messages.len());
        for m in messages {
            if m.msg_type == MessageType::Snapshot {
                out.output(Output::SendSnapshot(m));
            } else {
                plain.push(m);
            }
        }
        if !plain.is_empty() {
            out.send(plain);
        }
    }

    fn on_soft_state(&mut self, leader: NodeId, role: Role, out: &mut dyn Outbox) {
        let was_leader = self.is_leader;
        self.is_leader = role == Role::Leader;
        if leader != self.leader {
            self.stats.leader_changes += 1;
            info!(
                member = format_args!("{:x}", self.cfg.member_id),
                term = self.term,
                "leader changed: {:x} -> {:x}",
                self.leader,
                leader
            );
            self.leader = leader;
            // ReadIndex rounds in flight may be lost with the old leader: fail them (they are
            // reads, so retrying is always safe).
            for (_, reads) in std::mem::take(&mut self.reads_in_flight) {
                for token in reads {
                    out.output(Output::Failed {
                        token,
                        error: ServerError::LeaderChanged,
                    });
                }
            }
            out.output(Output::LeaderChanged {
                leader,
                term: self.term,
            });
        }
        if self.is_leader && !was_leader {
            // No lease may expire because of the election: extend every TTL by an election
            // timeout (etcd does the same on promotion).
            if let Err(e) = self.store.lease_promote(self.now_ms, self.election_ms()) {
                warn!("promoting the lessor failed: {e}");
            }
        } else if !self.is_leader && was_leader {
            self.store.lease_demote();
            self.release_lease_queries(out);
        }
    }

    fn install_snapshot(&mut self, snap: &Snapshot, out: &mut dyn Outbox) -> Result<(), CoreError> {
        let meta = &snap.metadata;
        let path = self.received_snapshots.remove(&meta.index).ok_or_else(|| {
            CoreError::Store(format!(
                "Raft installs snapshot at index {} but its image was not received",
                meta.index
            ))
        })?;
        info!(
            member = format_args!("{:x}", self.cfg.member_id),
            "installing snapshot at index {} term {}", meta.index, meta.term
        );
        let file = std::fs::File::open(&path)
            .map_err(|e| CoreError::Store(format!("opening snapshot {}: {e}", path.display())))?;
        self.store
            .snapshot_import(std::io::BufReader::new(file))
            .map_err(|e| CoreError::Store(format!("restoring snapshot {}: {e}", path.display())))?;
        // The image must be durable before the WAL records that the log restarts after it.
        self.store
            .flush()
            .map_err(|e| CoreError::Store(e.to_string()))?;
        let _ = std::fs::remove_file(&path);
        if self.is_leader {
            let _ = self.store.lease_promote(self.now_ms, self.election_ms());
        }
        let log = self.raft.storage_mut();
        log.apply_snapshot(&Snapshot {
            metadata: meta.clone(),
            data: Bytes::new(),
        })?;
        // The image may be newer than the snapshot index: the store's consistent index says
        // where it really is; entries up to it are skipped on apply.
        let ci = self
            .store
            .consistent_index()
            .map_err(|e| CoreError::Store(e.to_string()))?;
        assert!(
            ci >= meta.index,
            "snapshot image at {ci} is older than its metadata {}",
            meta.index
        );
        self.applied = meta.index;
        self.last_snapshot_index = meta.index;
        // Registries sent with older images are useless now.
        let mut newer = self.snapshot_registries.split_off(&meta.index);
        self.snapshot_registries.clear();
        if let Some(registry) = newer.remove(&meta.index) {
            if registry.applied_index() > self.registry.applied_index() {
                info!(
                    member = format_args!("{:x}", self.cfg.member_id),
                    "adopting the membership of the snapshot (as of index {})",
                    registry.applied_index()
                );
                self.registry = registry;
                out.membership_changed(&self.registry);
            }
        }
        self.snapshot_registries = newer;
        Ok(())
    }

    fn apply(&mut self, entries: &[Entry], out: &mut dyn Outbox) -> Result<(), CoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut batch: Vec<(u64, u64, WriteRequest)> = Vec::with_capacity(entries.len());
        for e in entries {
            assert!(
                e.index == self.applied + 1 || e.index <= self.applied,
                "apply gap: applied {} next entry {}",
                self.applied,
                e.index
            );
            if e.index <= self.applied {
                continue;
            }
            self.applied = e.index;
            match e.kind {
                EntryKind::Normal => {
                    if e.data.is_empty() {
                        batch.push((e.index, 0, WriteRequest::Noop));
                        continue;
                    }
                    match InternalRaftRequest::decode(e.data.as_ref()) {
                        Ok(req) => {
                            let id = req.header.as_ref().map(|h| h.id).unwrap_or(req.id);
                            match crate::convert::internal_to_write(&req) {
                                Ok(w) => {
                                    if let Some(attr) = &req.member_attr_set {
                                        self.apply_member_attributes(e.index, attr, out);
                                    }
                                    batch.push((e.index, id, w))
                                }
                                Err(err) => {
                                    // Deterministic on every member: the entry is a no-op.
                                    warn!("entry {} is not a valid request: {err}", e.index);
                                    batch.push((e.index, 0, WriteRequest::Noop));
                                    if id != 0 {
                                        out.output(Output::Failed {
                                            token: id,
                                            error: ServerError::InvalidArgument(err.to_string()),
                                        });
                                    }
                                }
                            }
                        }
                        Err(err) => {
                            warn!("entry {} does not decode: {err}", e.index);
                            batch.push((e.index, 0, WriteRequest::Noop));
                        }
                    }
                }
                EntryKind::ConfChange => {
                    // Apply what is batched so far first: conf changes take effect in order.
                    self.apply_batch(&mut batch, out)?;
                    self.apply_conf_change(e, out)?;
                }
            }
        }
        self.apply_batch(&mut batch, out)?;
        self.stats.applied_entries += entries.len() as u64;
        Ok(())
    }

    fn apply_batch(
        &mut self,
        batch: &mut Vec<(u64, u64, WriteRequest)>,
        out: &mut dyn Outbox,
    ) -> Result<(), CoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(batch);
        let mut ids = Vec::with_capacity(items.len());
        let mut reqs = Vec::with_capacity(items.len());
        for (index, id, req) in items {
            ids.push(id);
            reqs.push((index, req));
        }
        let results = self
            .store
            .apply(&reqs)
            .map_err(|e| CoreError::Store(e.to_string()))?;
        assert_eq!(results.len(), ids.len(), "store answered a different batch");
        for (id, result) in ids.into_iter().zip(results) {
            // `None`: already applied before a restart; its waiter (if any) is long gone.
            if let (true, Some(result)) = (id != 0, result) {
                out.output(Output::Applied { id, result });
            }
        }
        Ok(())
    }

    fn apply_member_attributes(
        &mut self,
        index: u64,
        attr: &quorum_api::internal::MemberAttrSetRequest,
        out: &mut dyn Outbox,
    ) {
        let (name, urls) = attr
            .attributes
            .as_ref()
            .map(|a| (a.name.as_str(), a.client_urls.as_slice()))
            .unwrap_or(("", &[]));
        match self
            .registry
            .apply_attributes(index, attr.member_id, name, urls)
        {
            Applied::Changed => out.membership_changed(&self.registry),
            Applied::Skipped => {}
            Applied::Refused(err) => {
                debug!(
                    "attributes of member {:x} at index {index} ignored: {err}",
                    attr.member_id
                );
                // The index moved: persist it so that replay does not redo the entry.
                out.membership_changed(&self.registry);
            }
        }
    }

    /// Applies a committed ConfChange entry: the registry decides (the same way on every
    /// member) whether the change takes effect; only then does Raft's configuration change.
    /// Order: registry (persisted by the outbox), Raft's configuration, then the store's
    /// consistent index; replay after a crash in between redoes only what is missing (the
    /// registry remembers which recent changes it refused, so Raft skips them again).
    fn apply_conf_change(&mut self, e: &Entry, out: &mut dyn Outbox) -> Result<(), CoreError> {
        let cc = match ConfChange::decode(&e.data) {
            Ok(cc) => cc,
            Err(err) => {
                warn!("conf change entry {} does not decode: {err}", e.index);
                self.registry.skip_to(e.index);
                return self.record_applied(e.index);
            }
        };
        let apply_to_raft = if cc.leave_joint() {
            // Raft's own follow-up of a joint change: no member change in it.
            self.registry.skip_to(e.index);
            true
        } else {
            match MemberChange::from_conf_change(&cc) {
                Err(err) => {
                    warn!(
                        "conf change entry {} has no valid member change: {err}",
                        e.index
                    );
                    self.registry.refuse(e.index);
                    out.membership_changed(&self.registry);
                    false
                }
                Ok(change) => self.apply_member_change(e.index, &change, out),
            }
        };
        if apply_to_raft {
            match self.raft.apply_conf_change(&cc) {
                Ok(cs) => {
                    info!("configuration changed at index {}: {:?}", e.index, cs);
                    self.raft.storage_mut().set_conf_state(cs)?;
                }
                Err(err) => warn!("conf change at index {} refused: {err}", e.index),
            }
        }
        if self.registry.applied_index() == e.index {
            // The registry is not ahead of this entry (as it is while a joining member replays
            // older changes): its voters and learners are Raft's.
            debug_assert!(
                registry_matches(&self.registry, self.raft.storage().conf_state()),
                "registry {:?} disagrees with Raft's configuration {:?} at index {}",
                self.registry.members(),
                self.raft.storage().conf_state(),
                e.index
            );
        }
        self.record_applied(e.index)
    }

    /// Applies `change` to the registry; true if Raft's configuration must change too.
    fn apply_member_change(
        &mut self,
        index: u64,
        change: &MemberChange,
        out: &mut dyn Outbox,
    ) -> bool {
        let token = change.request_id;
        match self.registry.apply_change(index, change) {
            Applied::Changed => {
                info!(
                    member = format_args!("{:x}", self.cfg.member_id),
                    "membership: {:?} of member {:x} applied at index {index}",
                    change.op,
                    change.member.id
                );
                out.membership_changed(&self.registry);
                if token != 0 {
                    out.output(Output::Done { token });
                }
                change.changes_raft()
            }
            Applied::Refused(err) => {
                info!("membership change at index {index} refused: {err}");
                self.registry.refuse(index);
                out.membership_changed(&self.registry);
                if token != 0 {
                    out.output(Output::Failed {
                        token,
                        error: err.into(),
                    });
                }
                false
            }
            // Replay: the registry has it already; Raft's configuration may not (a crash
            // between the two), and re-applying a change Raft has is harmless.
            Applied::Skipped => change.changes_raft() && !self.registry.was_refused(index),
        }
    }

    /// Conf changes carry no store request; record the index so replay skips it.
    fn record_applied(&mut self, index: u64) -> Result<(), CoreError> {
        self.store
            .apply(&[(index, WriteRequest::Noop)])
            .map_err(|err| CoreError::Store(err.to_string()))?;
        Ok(())
    }

    fn release_reads(&mut self, out: &mut dyn Outbox) {
        while let Some((&index, _)) = self.reads_waiting_apply.first_key_value() {
            if index > self.applied {
                break;
            }
            if let Some((_, reads)) = self.reads_waiting_apply.pop_first() {
                for token in reads {
                    out.output(Output::ReadReady { token });
                }
            }
        }
    }

    fn maybe_snapshot(&mut self) -> Result<(), CoreError> {
        if self.applied < self.last_snapshot_index + self.cfg.snapshot_count {
            return Ok(());
        }
        // The store's state up to `applied` must be durable before the log behind it goes.
        self.store
            .flush()
            .map_err(|e| CoreError::Store(e.to_string()))?;
        let index = self.applied;
        let term = quorum_raft::Storage::term(self.raft.storage(), index)
            .map_err(|e| CoreError::Store(format!("no term for applied index {index}: {e}")))?;
        let conf_state = self.raft.storage().conf_state().clone();
        let log = self.raft.storage_mut();
        log.set_snapshot(Snapshot {
            metadata: SnapshotMetadata {
                index,
                term,
                conf_state,
            },
            data: Bytes::new(),
        });
        let compact_to = index.saturating_sub(self.cfg.snapshot_catchup_entries);
        if compact_to > log.first_index() {
            log.compact(compact_to)?;
        }
        self.last_snapshot_index = index;
        self.stats.snapshots += 1;
        info!(
            member = format_args!("{:x}", self.cfg.member_id),
            "snapshot at index {index}; log compacted to {compact_to}"
        );
        Ok(())
    }
}

/// True if `registry`'s voters and learners are exactly `cs`'s (outside joint consensus).
fn registry_matches(registry: &Registry, cs: &quorum_raft::ConfState) -> bool {
    if !cs.voters_outgoing.is_empty() {
        return true;
    }
    let mut voters: Vec<NodeId> = Vec::new();
    let mut learners: Vec<NodeId> = Vec::new();
    for m in registry.members() {
        if m.is_learner {
            learners.push(m.id);
        } else {
            voters.push(m.id);
        }
    }
    let mut want_voters = cs.voters.clone();
    let mut want_learners = cs.learners.clone();
    want_voters.sort_unstable();
    want_learners.sort_unstable();
    voters == want_voters && learners == want_learners
}

fn ctx_id(ctx: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    if ctx.len() == 8 {
        b.copy_from_slice(ctx);
    }
    u64::from_be_bytes(b)
}

fn propose_error(e: ProposeError) -> ServerError {
    match e {
        ProposeError::NoLeader | ProposeError::NotMember => ServerError::NoLeader,
        ProposeError::TransferInProgress { .. } => ServerError::TransferInProgress,
        ProposeError::Backpressure => ServerError::TooManyRequests,
        ProposeError::TooLarge { .. } => ServerError::RequestTooLarge,
        ProposeError::ConfChangePending => ServerError::UnhealthyCluster,
        ProposeError::InvalidConfChange(s) => ServerError::InvalidArgument(s),
    }
}
