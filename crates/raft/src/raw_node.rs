//! The embedder's interface: [`RawNode`] takes inputs and hands out [`Ready`] batches.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::config::Config;
use crate::errors::{ProposeError, RaftError, ReadIndexError};
use crate::raft::Raft;
use crate::storage::Storage;
use crate::tracker::ProgressState;
use crate::types::{
    ConfChange, ConfState, Entry, EntryKind, HardState, Message, NodeId, ReadState, Snapshot,
    SoftState,
};

/// Everything the state machine wants done, handed out by [`RawNode::ready`].
///
/// Process it in this order, then call [`RawNode::advance`]:
/// 1. send `messages` (may be done in parallel with the next step);
/// 2. durably install `snapshot`, then append `entries` (replacing any stored suffix from
///    `entries[0].index` on), then persist `hard_state`; `fsync` if `must_sync`;
/// 3. send `persisted_messages` (only now: they promise that step 2 is durable);
/// 4. apply the snapshot, then `committed_entries` in order; serve `read_states` once the
///    applied index reaches their index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// The role or leader changed.
    pub soft_state: Option<SoftState>,
    /// Term, vote or commit changed: persist it.
    pub hard_state: Option<HardState>,
    /// A snapshot from the leader to persist and install before `entries`.
    pub snapshot: Option<Snapshot>,
    /// Entries to append durably.
    pub entries: Vec<Entry>,
    /// Messages that may be sent at once, in parallel with persisting.
    pub messages: Vec<Message>,
    /// Messages that may only be sent once `hard_state`, `entries` and `snapshot` are durable.
    pub persisted_messages: Vec<Message>,
    /// Committed entries to apply, in order. They are already durable locally.
    pub committed_entries: Vec<Entry>,
    /// Answers to read-index requests.
    pub read_states: Vec<ReadState>,
    /// True if the persisted state must be fsynced (new entries, term or vote).
    pub must_sync: bool,
}

/// What [`RawNode::status`] reports about one peer (on the leader).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressStatus {
    /// Highest index known to match the leader's log.
    pub matched: u64,
    /// Next index to send.
    pub next: u64,
    /// Replication state.
    pub state: ProgressState,
    /// True for a learner.
    pub is_learner: bool,
    /// Heard from recently (CheckQuorum).
    pub recent_active: bool,
}

/// A snapshot of the member's state, for monitoring and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This member.
    pub id: NodeId,
    /// Term, vote, commit.
    pub hard_state: HardState,
    /// Role and leader.
    pub soft_state: SoftState,
    /// Highest applied index acknowledged by the embedder.
    pub applied: u64,
    /// Last index of the log (durable or not).
    pub last_index: u64,
    /// Per-peer progress (only on the leader; empty otherwise).
    pub progress: BTreeMap<NodeId, ProgressStatus>,
    /// Target of a leadership transfer in progress, or `NO_NODE`.
    pub lead_transferee: NodeId,
    /// The active configuration.
    pub conf_state: ConfState,
}

/// A Raft member driven by the embedder: feed it inputs, drain [`Ready`]s, call
/// [`RawNode::advance`]. Pure: no IO, no clock, no threads.
pub struct RawNode<S: Storage> {
    raft: Raft<S>,
    prev_soft: SoftState,
    prev_hard: HardState,
    /// Last entry handed out for persisting and not yet acknowledged.
    pending_stable: Option<(u64, u64)>,
    /// Snapshot handed out for persisting and not yet acknowledged.
    pending_snapshot: Option<u64>,
    /// Bytes of committed entries handed out since the last advance.
    pending_applied_bytes: u64,
}

impl<S: Storage> RawNode<S> {
    /// A member restored from `storage.initial_state()` (empty for a new member).
    pub fn new(config: &Config, storage: S) -> Result<RawNode<S>, RaftError> {
        let raft = Raft::new(config, storage)?;
        let prev_soft = raft.soft_state();
        let prev_hard = raft.hard_state();
        Ok(RawNode {
            raft,
            prev_soft,
            prev_hard,
            pending_stable: None,
            pending_snapshot: None,
            pending_applied_bytes: 0,
        })
    }

    /// Advances logical time by one tick (elections, heartbeats, CheckQuorum).
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Feeds a message from the network. Stale, unknown or malformed messages are ignored
    /// or refused with an error; they never panic.
    pub fn step(&mut self, msg: Message) -> Result<(), RaftError> {
        self.raft.step(msg)
    }

    /// Starts an election now (with a pre-election if PreVote is on).
    pub fn campaign(&mut self) -> Result<(), RaftError> {
        self.raft.hup(false);
        Ok(())
    }

    /// Proposes `data` for the log. On a follower it is forwarded to the known leader.
    pub fn propose(&mut self, data: Bytes) -> Result<(), ProposeError> {
        self.raft.propose(vec![Entry {
            data,
            ..Entry::default()
        }])
    }

    /// Proposes several payloads at once (one batch, one Append).
    pub fn propose_batch(&mut self, data: Vec<Bytes>) -> Result<(), ProposeError> {
        self.raft.propose(
            data.into_iter()
                .map(|data| Entry {
                    data,
                    ..Entry::default()
                })
                .collect(),
        )
    }

    /// Proposes a configuration change; when its entry is committed, the embedder decodes it
    /// ([`ConfChange::decode`]) and calls [`RawNode::apply_conf_change`].
    pub fn propose_conf_change(&mut self, cc: ConfChange) -> Result<(), ProposeError> {
        let data = cc
            .encode()
            .map_err(|e| ProposeError::InvalidConfChange(e.to_string()))?;
        self.raft.propose(vec![Entry {
            kind: EntryKind::ConfChange,
            data,
            ..Entry::default()
        }])
    }

    /// Applies a committed configuration change and returns the new configuration (to
    /// persist along with the applied index).
    pub fn apply_conf_change(&mut self, cc: &ConfChange) -> Result<ConfState, RaftError> {
        self.raft.apply_conf_change(cc)
    }

    /// Requests a linearizable read; the answer arrives as a [`ReadState`] with `ctx`.
    pub fn read_index(&mut self, ctx: Bytes) -> Result<(), ReadIndexError> {
        self.raft.read_index(ctx)
    }

    /// Asks the leader (this member) to hand leadership to `to`. No-op on a non-leader.
    pub fn transfer_leadership(&mut self, to: NodeId) {
        self.raft.transfer_leadership(to);
    }

    /// The transport could not deliver to `id`: stop pipelining to it.
    pub fn report_unreachable(&mut self, id: NodeId) {
        self.raft.report_unreachable(id);
    }

    /// The outcome of sending a snapshot to `id`.
    pub fn report_snapshot(&mut self, id: NodeId, success: bool) {
        self.raft.report_snapshot(id, success);
    }

    /// True if [`RawNode::ready`] has something to hand out.
    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        r.soft_state() != self.prev_soft
            || r.hard_state() != self.prev_hard
            || r.raft_log.unstable.next_snapshot().is_some()
            || !r.raft_log.unstable.next_entries().is_empty()
            || !r.msgs.is_empty()
            || !r.msgs_after_persist.is_empty()
            || r.raft_log.has_next_committed_entries()
            || !r.read_states.is_empty()
            || r.read_round_due()
    }

    /// Hands out everything pending. Call [`RawNode::advance`] once it is processed.
    pub fn ready(&mut self) -> Ready {
        let r = &mut self.raft;
        r.maybe_start_read_round();
        let soft = r.soft_state();
        let soft_state = (soft != self.prev_soft).then_some(soft);
        self.prev_soft = soft;
        let hs = r.hard_state();
        debug_assert!(hs.term >= self.prev_hard.term, "term decreased");
        debug_assert!(hs.commit >= self.prev_hard.commit, "commit decreased");
        let hard_state = (hs != self.prev_hard).then_some(hs);
        let must_sync_hs = hs.term != self.prev_hard.term || hs.vote != self.prev_hard.vote;
        self.prev_hard = hs;

        let snapshot = r.raft_log.unstable.next_snapshot().cloned();
        let entries = r.raft_log.unstable.next_entries().to_vec();
        // A storage failure here leaves the entries for a later Ready.
        let committed_entries = r.raft_log.next_committed_entries().unwrap_or_default();
        if let Some(e) = committed_entries.last() {
            debug_assert!(
                e.index <= r.raft_log.committed,
                "applying uncommitted entry"
            );
            r.raft_log.applying = e.index;
        }
        self.pending_applied_bytes += committed_entries
            .iter()
            .map(|e| e.data.len() as u64)
            .sum::<u64>();
        if let Some(e) = entries.last() {
            self.pending_stable = Some((e.index, e.term));
        }
        if let Some(s) = &snapshot {
            self.pending_snapshot = Some(s.metadata.index);
        }
        r.raft_log.unstable.accept_in_progress();
        Ready {
            soft_state,
            hard_state,
            must_sync: must_sync_hs || !entries.is_empty() || snapshot.is_some(),
            snapshot,
            entries,
            messages: std::mem::take(&mut r.msgs),
            persisted_messages: std::mem::take(&mut r.msgs_after_persist),
            committed_entries,
            read_states: std::mem::take(&mut r.read_states),
        }
    }

    /// Acknowledges every Ready handed out so far: its state is durable and its committed
    /// entries (and snapshot) are applied.
    pub fn advance(&mut self) {
        let r = &mut self.raft;
        if let Some(index) = self.pending_snapshot.take() {
            r.raft_log.stable_snap_to(index);
            r.raft_log.applied_to(index);
        }
        if let Some((index, term)) = self.pending_stable.take() {
            r.raft_log.stable_to(index, term);
        }
        let applying = r.raft_log.applying;
        r.raft_log.applied_to(applying);
        let bytes = std::mem::take(&mut self.pending_applied_bytes);
        r.on_advance(bytes);
    }

    /// Asynchronous persistence, instead of [`RawNode::advance`]: the entries handed out by
    /// earlier Readies up to `(index, term)` are durable, with the hard states handed out with
    /// them. Further Readies may be taken before this is called; an acknowledgement for entries
    /// that were replaced meanwhile (their term differs now) is ignored, as they are not the
    /// entries that became durable.
    pub fn advance_append(&mut self, index: u64, term: u64) {
        let r = &mut self.raft;
        r.raft_log.stable_to(index, term);
        if self.pending_stable.is_some_and(|(i, _)| i <= index) {
            self.pending_stable = None;
        }
        r.on_persisted();
    }

    /// Asynchronous persistence: every committed entry handed out so far is applied. Use with
    /// [`RawNode::advance_append`]; snapshots are installed synchronously (a Ready carrying
    /// one is acknowledged with [`RawNode::advance`]).
    pub fn advance_apply(&mut self) {
        let r = &mut self.raft;
        let applying = r.raft_log.applying;
        r.raft_log.applied_to(applying);
        let bytes = std::mem::take(&mut self.pending_applied_bytes);
        r.on_applied(bytes);
    }

    /// The highest log index known committed (cheaper than [`RawNode::status`]).
    pub fn commit_index(&self) -> u64 {
        self.raft.raft_log.committed
    }

    /// The member's state, for monitoring and tests.
    pub fn status(&self) -> Status {
        let r = &self.raft;
        let progress = if r.role == crate::types::Role::Leader {
            r.tracker
                .progress
                .iter()
                .map(|(id, p)| {
                    (
                        *id,
                        ProgressStatus {
                            matched: p.matched,
                            next: p.next,
                            state: p.state,
                            is_learner: p.is_learner,
                            recent_active: p.recent_active,
                        },
                    )
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        Status {
            id: r.id,
            hard_state: r.hard_state(),
            soft_state: r.soft_state(),
            applied: r.raft_log.applied,
            last_index: r.raft_log.last_index(),
            progress,
            lead_transferee: r.lead_transferee,
            conf_state: r.tracker.config.to_conf_state(),
        }
    }

    /// The storage (to read what was persisted).
    pub fn storage(&self) -> &S {
        &self.raft.raft_log.storage
    }

    /// The storage, mutably: the embedder persists each Ready through it.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.raft.raft_log.storage
    }
}
