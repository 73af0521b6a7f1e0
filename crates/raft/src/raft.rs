//! The Raft state machine proper: roles, elections, replication, commitment, reads,
//! leadership transfer and membership. Driven by [`RawNode`](crate::RawNode).

use bytes::Bytes;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::confchange::Changer;
use crate::config::{Config, ReadOnlyOption};
use crate::errors::{ConfChangeError, ProposeError, RaftError, ReadIndexError};
use crate::quorum::VoteResult;
use crate::raft_log::RaftLog;
use crate::read_only::{PendingRead, ReadOnly};
use crate::storage::Storage;
use crate::tracker::{Progress, ProgressState, ProgressTracker, TrackerConfig};
use crate::types::{
    ConfChange, ConfState, Entry, EntryKind, HardState, Message, MessageType, NodeId, ReadState,
    Role, Snapshot, SoftState, NO_NODE,
};

/// Context of a Vote sent because of a leadership transfer: it overrides the leader lease.
pub const CAMPAIGN_TRANSFER: &[u8] = b"CampaignTransfer";

/// Upper bound on the entries of one proposal (local or forwarded).
pub const MAX_ENTRIES_PER_PROPOSAL: usize = 64 * 1024;

/// Upper bound on reads a new leader queues until it commits an entry of its term.
pub const MAX_READS_BEFORE_COMMIT: usize = 4096;

/// The state machine. Fields are public to the crate. The five properties of Raft (paper,
/// Figure 3) and where they are asserted:
/// - Election Safety: one vote per term (`handle_vote_request`), a leader holds its own vote
///   (`become_leader`); `term` never decreases (`reset`).
/// - Leader Append-Only: the leader's log only grows (`append_entries`); it never takes the
///   follower path that truncates.
/// - Log Matching: entries are appended only after a matching (index, term) and must be
///   contiguous (`RaftLog::maybe_append`, `Unstable::truncate_and_append`).
/// - Leader Completeness: a new leader's log reaches its commit index (`become_leader`);
///   votes go only to up-to-date logs (`RaftLog::is_up_to_date`); commitment by counting
///   only in the leader's own term (`RaftLog::maybe_commit`, Figure 8).
/// - State Machine Safety: committed entries are never replaced (`RaftLog::append`,
///   refused as a typed error on the network path in `maybe_append`), commit never
///   decreases (`commit_to`, `RawNode::ready`), only committed and durable entries are
///   handed out for applying (`RaftLog::next_committed_entries`, `applied_to`).
pub(crate) struct Raft<S: Storage> {
    pub id: NodeId,
    pub term: u64,
    pub vote: NodeId,
    pub raft_log: RaftLog<S>,
    pub tracker: ProgressTracker,
    pub role: Role,
    pub lead: NodeId,
    election_elapsed: usize,
    heartbeat_elapsed: usize,
    randomized_election_timeout: usize,
    election_tick: usize,
    heartbeat_tick: usize,
    check_quorum: bool,
    pre_vote: bool,
    read_only_option: ReadOnlyOption,
    max_msg_size: u64,
    max_uncommitted_size: u64,
    uncommitted_size: u64,
    /// Index of the latest conf change the leader appended (or its last index when elected):
    /// no new conf change is accepted until this is applied.
    pub pending_conf_index: u64,
    pub lead_transferee: NodeId,
    read_only: ReadOnly,
    /// Reads a new leader holds until it has committed an entry of its own term.
    reads_before_commit: Vec<(Bytes, NodeId)>,
    /// Messages that may leave at once.
    pub msgs: Vec<Message>,
    /// Messages that may leave only after the Ready's state is durable.
    pub msgs_after_persist: Vec<Message>,
    pub read_states: Vec<ReadState>,
    rng: ChaCha8Rng,
    bug_commit_old_terms: bool,
    bug_vote_without_log: bool,
    bug_read_without_quorum: bool,
}

impl<S: Storage> Raft<S> {
    pub fn new(config: &Config, storage: S) -> Result<Raft<S>, RaftError> {
        config.validate()?;
        let rs = storage.initial_state()?;
        let raft_log = RaftLog::new(storage, config.max_committed_size_per_ready)?;
        let mut r = Raft {
            id: config.id,
            term: 0,
            vote: NO_NODE,
            raft_log,
            tracker: ProgressTracker::new(config.max_inflight_msgs),
            role: Role::Follower,
            lead: NO_NODE,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: config.election_tick,
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            check_quorum: config.check_quorum,
            pre_vote: config.pre_vote,
            read_only_option: config.read_only_option,
            max_msg_size: config.max_size_per_msg,
            max_uncommitted_size: config.max_uncommitted_entries_size,
            uncommitted_size: 0,
            pending_conf_index: 0,
            lead_transferee: NO_NODE,
            read_only: ReadOnly::default(),
            reads_before_commit: Vec::new(),
            msgs: Vec::new(),
            msgs_after_persist: Vec::new(),
            read_states: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            bug_commit_old_terms: config.bug_commit_old_terms(),
            bug_vote_without_log: config.bug_vote_without_log(),
            bug_read_without_quorum: config.bug_read_without_quorum(),
        };
        r.install_conf_state(&rs.conf_state)?;
        let hs = rs.hard_state;
        if !hs.is_empty() {
            if hs.commit > r.raft_log.last_index() {
                return Err(RaftError::CorruptState(format!(
                    "commit {} beyond the last index {}",
                    hs.commit,
                    r.raft_log.last_index()
                )));
            }
            // A snapshot implies its index is committed even if the hard state lags.
            r.raft_log.committed = hs.commit.max(r.raft_log.committed);
            r.term = hs.term;
            r.vote = hs.vote;
        }
        if config.applied > 0 {
            if config.applied > r.raft_log.committed {
                return Err(RaftError::CorruptState(format!(
                    "applied {} beyond commit {}",
                    config.applied, r.raft_log.committed
                )));
            }
            r.raft_log.applied_to(config.applied);
        }
        let term = r.term;
        r.become_follower(term, NO_NODE);
        Ok(r)
    }

    fn install_conf_state(&mut self, cs: &ConfState) -> Result<(), RaftError> {
        let cfg = TrackerConfig::from_conf_state(cs);
        cfg.check()
            .map_err(|e| RaftError::ConfChange(ConfChangeError::Malformed(e)))?;
        let next = self.raft_log.last_index() + 1;
        let mut progress = std::collections::BTreeMap::new();
        for id in cfg.all_ids() {
            let mut p = Progress::new(next, self.tracker.max_inflight);
            p.is_learner = cfg.learners.contains(&id);
            progress.insert(id, p);
        }
        self.tracker.config = cfg;
        self.tracker.progress = progress;
        Ok(())
    }

    pub fn soft_state(&self) -> SoftState {
        SoftState {
            leader: self.lead,
            role: self.role,
        }
    }

    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.raft_log.committed,
        }
    }

    /// A voter of the current configuration (learners and removed members never campaign).
    pub fn promotable(&self) -> bool {
        self.tracker.is_voter(self.id)
    }

    // ---------------------------------------------------------------- sending

    fn send(&mut self, mut m: Message) {
        m.from = self.id;
        match m.msg_type {
            // These carry the term they are about, set by the caller.
            MessageType::Vote
            | MessageType::PreVote
            | MessageType::VoteResponse
            | MessageType::PreVoteResponse => {
                debug_assert!(m.term != 0, "vote messages carry a term");
            }
            // Forwarded requests are term-less, like local messages.
            MessageType::Propose | MessageType::ReadIndex => m.term = 0,
            _ => m.term = self.term,
        }
        match m.msg_type {
            // Depend on a vote, a term or log entries being durable.
            MessageType::Vote | MessageType::VoteResponse | MessageType::AppendResponse => {
                self.msgs_after_persist.push(m)
            }
            _ => self.msgs.push(m),
        }
    }

    /// Sends an Append (or a snapshot) to `to` if it is not paused. With `send_if_empty`
    /// false, nothing is sent when there are no entries.
    fn maybe_send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        let Some(pr) = self.tracker.progress.get(&to) else {
            return false;
        };
        if pr.is_paused() || to == self.id {
            return false;
        }
        let next = pr.next;
        let prev_term = self.raft_log.term(next - 1);
        let ents = self.raft_log.entries_from(next, self.max_msg_size);
        let (prev_term, ents) = match (prev_term, ents) {
            (Ok(t), Ok(e)) => (t, e),
            _ => return self.send_snapshot(to),
        };
        if ents.is_empty() && !send_if_empty {
            return false;
        }
        let last = ents.last().map_or(next - 1, |e| e.index);
        if let Some(pr) = self.tracker.progress.get_mut(&to) {
            pr.sent_entries(last);
        }
        let commit = self.raft_log.committed;
        self.send(Message {
            msg_type: MessageType::Append,
            to,
            index: next - 1,
            log_term: prev_term,
            entries: ents,
            commit,
            ..Message::default()
        });
        true
    }

    fn send_append(&mut self, to: NodeId) {
        self.maybe_send_append(to, true);
    }

    fn send_snapshot(&mut self, to: NodeId) -> bool {
        let Some(pr) = self.tracker.progress.get(&to) else {
            return false;
        };
        if !pr.recent_active {
            return false;
        }
        let snap = match self.raft_log.snapshot(pr.matched) {
            Ok(s) if !s.is_empty() => s,
            // Temporarily unavailable or no snapshot yet: try again on the next round.
            _ => return false,
        };
        let index = snap.metadata.index;
        if let Some(pr) = self.tracker.progress.get_mut(&to) {
            pr.become_snapshot(index);
        }
        self.send(Message {
            msg_type: MessageType::Snapshot,
            to,
            snapshot: Some(snap),
            ..Message::default()
        });
        true
    }

    fn bcast_append(&mut self) {
        let ids: Vec<NodeId> = self.tracker.progress.keys().copied().collect();
        for id in ids {
            if id != self.id {
                self.send_append(id);
            }
        }
    }

    fn bcast_heartbeat(&mut self) {
        let round = self.read_only.start_round();
        let ctx = if round == 0 {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(&round.to_be_bytes())
        };
        let peers: Vec<(NodeId, u64)> = self
            .tracker
            .progress
            .iter()
            .filter(|(id, _)| **id != self.id)
            .map(|(id, p)| (*id, p.matched))
            .collect();
        for (id, matched) in peers {
            let commit = matched.min(self.raft_log.committed);
            self.send(Message {
                msg_type: MessageType::Heartbeat,
                to: id,
                commit,
                context: ctx.clone(),
                ..Message::default()
            });
        }
    }

    // ---------------------------------------------------------------- role changes

    fn reset(&mut self, term: u64) {
        assert!(term >= self.term, "term must never decrease");
        if self.term != term {
            self.term = term;
            self.vote = NO_NODE;
        }
        self.lead = NO_NODE;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_election_timeout();
        self.lead_transferee = NO_NODE;
        self.tracker.reset_votes();
        let next = self.raft_log.last_index() + 1;
        let persisted = self.raft_log.persisted_index();
        let max_inflight = self.tracker.max_inflight;
        for (id, pr) in self.tracker.progress.iter_mut() {
            let learner = pr.is_learner;
            *pr = Progress::new(next, max_inflight);
            pr.is_learner = learner;
            if *id == self.id {
                pr.matched = persisted;
                pr.recent_active = true;
            }
        }
        self.pending_conf_index = 0;
        self.uncommitted_size = 0;
        self.read_only.reset();
        self.reads_before_commit.clear();
    }

    fn reset_randomized_election_timeout(&mut self) {
        self.randomized_election_timeout = self
            .rng
            .random_range(self.election_tick..2 * self.election_tick);
    }

    pub fn become_follower(&mut self, term: u64, lead: NodeId) {
        self.reset(term);
        self.lead = lead;
        self.role = Role::Follower;
    }

    fn become_pre_candidate(&mut self) {
        assert!(
            self.role != Role::Leader,
            "leader cannot become pre-candidate"
        );
        // Neither term nor vote change: a pre-election leaves no trace.
        self.tracker.reset_votes();
        self.lead = NO_NODE;
        self.role = Role::PreCandidate;
    }

    fn become_candidate(&mut self) {
        assert!(self.role != Role::Leader, "leader cannot become candidate");
        let term = self.term.saturating_add(1);
        self.reset(term);
        self.vote = self.id;
        self.role = Role::Candidate;
    }

    fn become_leader(&mut self) {
        assert!(
            self.role != Role::Follower,
            "follower cannot become leader directly"
        );
        let term = self.term;
        self.reset(term);
        self.lead = self.id;
        self.role = Role::Leader;
        // Election Safety: a leader won with its own vote in this term.
        assert_eq!(self.vote, self.id, "leader must have voted for itself");
        // Leader Completeness (local part): the log holds everything known committed.
        assert!(self.raft_log.last_index() >= self.raft_log.committed);
        if let Some(pr) = self.tracker.progress.get_mut(&self.id) {
            pr.become_replicate();
            pr.matched = self.raft_log.persisted_index();
            pr.next = self.raft_log.last_index() + 1;
        }
        // Any conf change in the log may still be unapplied: allow none until it is.
        self.pending_conf_index = self.raft_log.last_index();
        // The empty entry that lets this leader commit (and serve reads) in its own term.
        // It does not count towards the uncommitted size limit.
        self.append_entries(vec![Entry::default()]);
    }

    // ---------------------------------------------------------------- ticks and elections

    pub fn tick(&mut self) {
        match self.role {
            Role::Leader => self.tick_heartbeat(),
            _ => self.tick_election(),
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.election_elapsed = 0;
            self.hup(false);
        }
    }

    fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_tick {
            self.election_elapsed = 0;
            if self.check_quorum {
                if !self.tracker.quorum_active() {
                    let term = self.term;
                    self.become_follower(term, NO_NODE);
                    return;
                }
                let me = self.id;
                for (id, pr) in self.tracker.progress.iter_mut() {
                    pr.recent_active = *id == me;
                }
            }
            // A transfer that did not finish within an election timeout is abandoned.
            self.lead_transferee = NO_NODE;
        }
        if self.heartbeat_elapsed >= self.heartbeat_tick {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat();
        }
    }

    /// Starts an election (or pre-election) if this member may.
    pub fn hup(&mut self, transfer: bool) {
        if self.role == Role::Leader || !self.promotable() {
            return;
        }
        if self.has_unapplied_conf_change() {
            // The configuration this member would campaign in is not final yet.
            return;
        }
        if self.pre_vote && !transfer {
            self.campaign(true, false);
        } else {
            self.campaign(false, transfer);
        }
    }

    fn has_unapplied_conf_change(&self) -> bool {
        let lo = self.raft_log.applied + 1;
        let hi = self.raft_log.committed + 1;
        match self.raft_log.slice(lo, hi, u64::MAX) {
            Ok(ents) => ents.iter().any(|e| e.kind == EntryKind::ConfChange),
            Err(_) => false,
        }
    }

    fn campaign(&mut self, pre: bool, transfer: bool) {
        let (msg_type, term) = if pre {
            self.become_pre_candidate();
            (MessageType::PreVote, self.term.saturating_add(1))
        } else {
            self.become_candidate();
            (MessageType::Vote, self.term)
        };
        self.tracker.record_vote(self.id, true);
        if self.tracker.tally_votes() == VoteResult::Won {
            // A single-voter group wins at once.
            if pre {
                self.campaign(false, transfer);
            } else {
                self.become_leader();
            }
            return;
        }
        let ids = self.tracker.config.voters.ids();
        let (index, log_term) = (self.raft_log.last_index(), self.raft_log.last_term());
        for id in ids {
            if id == self.id {
                continue;
            }
            self.send(Message {
                msg_type,
                to: id,
                term,
                index,
                log_term,
                context: if transfer {
                    Bytes::from_static(CAMPAIGN_TRANSFER)
                } else {
                    Bytes::new()
                },
                ..Message::default()
            });
        }
    }

    // ---------------------------------------------------------------- step

    pub fn step(&mut self, m: Message) -> Result<(), RaftError> {
        if m.from == NO_NODE || m.to != self.id || m.from == self.id {
            return Err(RaftError::InvalidMessage {
                from: m.from,
                to: m.to,
                me: self.id,
            });
        }
        if m.term == 0 {
            // Only forwarded requests are term-less; anything else is malformed: drop it.
            if !matches!(m.msg_type, MessageType::Propose | MessageType::ReadIndex) {
                return Ok(());
            }
        } else if m.term > self.term {
            if matches!(m.msg_type, MessageType::Vote | MessageType::PreVote) {
                let force = m.context.as_ref() == CAMPAIGN_TRANSFER;
                // Disruptive-server rule (thesis 4.2.3): we heard from a live leader within
                // the minimum election timeout, so ignore this request.
                let in_lease = self.lead != NO_NODE && self.election_elapsed < self.election_tick;
                if !force && in_lease {
                    return Ok(());
                }
            }
            match m.msg_type {
                MessageType::PreVote => {}
                MessageType::PreVoteResponse if !m.reject => {}
                MessageType::Append | MessageType::Heartbeat | MessageType::Snapshot => {
                    self.become_follower(m.term, m.from)
                }
                _ => self.become_follower(m.term, NO_NODE),
            }
        } else if m.term < self.term {
            if matches!(m.msg_type, MessageType::Heartbeat | MessageType::Append) {
                // Tell a stale leader about the newer term, so it steps down. Needed because
                // members in a leader's lease ignore vote requests: without this answer a
                // member whose term ran ahead (no PreVote) could never rejoin.
                self.send(Message {
                    msg_type: MessageType::AppendResponse,
                    to: m.from,
                    ..Message::default()
                });
            } else if matches!(m.msg_type, MessageType::PreVote | MessageType::Vote) {
                // Refuse with our term, so a candidate whose term lags learns it at once
                // (otherwise a member that keeps campaigning in a stale configuration can
                // keep the terms of the others ahead of it forever: a livelock).
                let term = self.term;
                let msg_type = if m.msg_type == MessageType::Vote {
                    MessageType::VoteResponse
                } else {
                    MessageType::PreVoteResponse
                };
                self.send(Message {
                    msg_type,
                    to: m.from,
                    term,
                    reject: true,
                    ..Message::default()
                });
            }
            return Ok(());
        }

        match m.msg_type {
            MessageType::Vote | MessageType::PreVote => {
                self.handle_vote_request(m);
                Ok(())
            }
            _ => match self.role {
                Role::Leader => self.step_leader(m),
                Role::Candidate | Role::PreCandidate => self.step_candidate(m),
                Role::Follower => self.step_follower(m),
            },
        }
    }

    fn handle_vote_request(&mut self, m: Message) {
        let pre = m.msg_type == MessageType::PreVote;
        let can_vote = self.vote == m.from
            || (self.vote == NO_NODE && self.lead == NO_NODE)
            || (pre && m.term > self.term);
        let log_ok = self.bug_vote_without_log || self.raft_log.is_up_to_date(m.index, m.log_term);
        let resp_type = if pre {
            MessageType::PreVoteResponse
        } else {
            MessageType::VoteResponse
        };
        if can_vote && log_ok {
            self.send(Message {
                msg_type: resp_type,
                to: m.from,
                term: m.term,
                ..Message::default()
            });
            if !pre {
                // Election Safety: at most one vote per term.
                assert!(self.vote == NO_NODE || self.vote == m.from);
                assert_eq!(m.term, self.term);
                self.election_elapsed = 0;
                self.vote = m.from;
            }
        } else {
            let term = self.term;
            self.send(Message {
                msg_type: resp_type,
                to: m.from,
                term,
                reject: true,
                ..Message::default()
            });
        }
    }

    fn step_leader(&mut self, m: Message) -> Result<(), RaftError> {
        match m.msg_type {
            MessageType::Propose => {
                // A forwarded proposal that is refused is dropped; the follower's client
                // times out (Raft gives no delivery guarantee for forwarded proposals).
                let _ = self.propose_entries(m.entries);
            }
            MessageType::ReadIndex => {
                let _ = self.handle_read_index(m.context, m.from);
            }
            MessageType::AppendResponse => self.handle_append_response(&m),
            MessageType::HeartbeatResponse => self.handle_heartbeat_response(&m),
            _ => {}
        }
        Ok(())
    }

    fn step_candidate(&mut self, m: Message) -> Result<(), RaftError> {
        match m.msg_type {
            MessageType::Append | MessageType::Heartbeat | MessageType::Snapshot => {
                // Someone won this term.
                self.become_follower(m.term, m.from);
                self.step_follower(m)
            }
            MessageType::VoteResponse | MessageType::PreVoteResponse => {
                let expected = if self.role == Role::PreCandidate {
                    MessageType::PreVoteResponse
                } else {
                    MessageType::VoteResponse
                };
                if m.msg_type != expected {
                    return Ok(());
                }
                self.tracker.record_vote(m.from, !m.reject);
                match self.tracker.tally_votes() {
                    VoteResult::Won => {
                        if self.role == Role::PreCandidate {
                            self.campaign(false, false);
                        } else {
                            self.become_leader();
                            self.bcast_append();
                        }
                    }
                    VoteResult::Lost => {
                        let term = self.term;
                        self.become_follower(term, NO_NODE);
                    }
                    VoteResult::Pending => {}
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn step_follower(&mut self, mut m: Message) -> Result<(), RaftError> {
        match m.msg_type {
            MessageType::Propose | MessageType::ReadIndex => {
                if self.lead != NO_NODE {
                    m.to = self.lead;
                    self.send(m);
                }
                Ok(())
            }
            MessageType::Append => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_append(m)
            }
            MessageType::Heartbeat => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_heartbeat(m);
                Ok(())
            }
            MessageType::Snapshot => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_snapshot(m);
                Ok(())
            }
            MessageType::TimeoutNow => {
                self.hup(true);
                Ok(())
            }
            MessageType::ReadIndexResponse => {
                self.read_states.push(ReadState {
                    index: m.index,
                    request_ctx: m.context,
                });
                Ok(())
            }
            _ => Ok(()),
        }
    }

    // ---------------------------------------------------------------- follower handlers

    fn handle_append(&mut self, m: Message) -> Result<(), RaftError> {
        let committed = self.raft_log.committed;
        if m.index < committed {
            self.send(Message {
                msg_type: MessageType::AppendResponse,
                to: m.from,
                index: committed,
                ..Message::default()
            });
            return Ok(());
        }
        match self
            .raft_log
            .maybe_append(m.index, m.log_term, m.commit, m.entries)
        {
            Err(e) => Err(RaftError::SafetyViolation(e)),
            Ok(Some(last)) => {
                self.send(Message {
                    msg_type: MessageType::AppendResponse,
                    to: m.from,
                    index: last,
                    ..Message::default()
                });
                Ok(())
            }
            Ok(None) => {
                // Conflict hint: the last index of ours whose term is <= the leader's term at
                // m.index; the leader skips a whole term per round trip.
                let hint = m.index.min(self.raft_log.last_index());
                let (hint_index, hint_term) = self.raft_log.find_conflict_by_term(hint, m.log_term);
                self.send(Message {
                    msg_type: MessageType::AppendResponse,
                    to: m.from,
                    index: m.index,
                    reject: true,
                    reject_hint: hint_index,
                    log_term: hint_term,
                    ..Message::default()
                });
                Ok(())
            }
        }
    }

    fn handle_heartbeat(&mut self, m: Message) {
        let commit = m.commit.min(self.raft_log.last_index());
        self.raft_log.commit_to(commit);
        self.send(Message {
            msg_type: MessageType::HeartbeatResponse,
            to: m.from,
            context: m.context,
            ..Message::default()
        });
    }

    fn handle_snapshot(&mut self, m: Message) {
        let Some(snap) = m.snapshot else {
            return;
        };
        let index = if self.restore(snap) {
            self.raft_log.last_index()
        } else {
            self.raft_log.committed
        };
        self.send(Message {
            msg_type: MessageType::AppendResponse,
            to: m.from,
            index,
            ..Message::default()
        });
    }

    /// Installs `snap` if it brings news; returns true if the log was replaced.
    fn restore(&mut self, snap: Snapshot) -> bool {
        let meta = &snap.metadata;
        if meta.index <= self.raft_log.committed {
            return false;
        }
        // No membership check: the snapshot may predate this member's (re-)addition, which
        // the entries after it carry; a non-voter never campaigns anyway.
        if self.raft_log.match_term(meta.index, meta.term) {
            // We already have the snapshot's entries: just fast-forward the commit.
            self.raft_log.commit_to(meta.index);
            return false;
        }
        let cs = meta.conf_state.clone();
        if self.install_conf_state(&cs).is_err() {
            return false;
        }
        self.raft_log.restore(snap);
        true
    }

    // ---------------------------------------------------------------- leader handlers

    fn handle_append_response(&mut self, m: &Message) {
        let last_index = self.raft_log.last_index();
        let Some(pr) = self.tracker.progress.get_mut(&m.from) else {
            return;
        };
        pr.recent_active = true;
        if m.reject {
            let next_probe = if m.log_term > 0 {
                self.raft_log
                    .find_conflict_by_term(m.reject_hint, m.log_term)
                    .0
            } else {
                m.reject_hint
            };
            let Some(pr) = self.tracker.progress.get_mut(&m.from) else {
                return;
            };
            if pr.maybe_decr_to(m.index, next_probe) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(m.from);
            }
            return;
        }
        if m.index > last_index {
            // Acknowledges entries we never had: a confused peer. Ignore it.
            return;
        }
        let was_paused = pr.is_paused();
        if !(pr.maybe_update(m.index)
            || (pr.matched == m.index && pr.state == ProgressState::Probe))
        {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot => {
                if pr.matched >= pr.pending_snapshot {
                    pr.become_probe();
                    pr.become_replicate();
                }
            }
            ProgressState::Replicate => pr.inflights.free_le(m.index),
        }
        let matched = pr.matched;
        if self.maybe_commit() {
            self.bcast_append();
        } else if was_paused {
            self.send_append(m.from);
        }
        while self.maybe_send_append(m.from, false) {}
        if m.from == self.lead_transferee && matched == self.raft_log.last_index() {
            self.send_timeout_now(m.from);
        }
    }

    fn handle_heartbeat_response(&mut self, m: &Message) {
        let last_index = self.raft_log.last_index();
        let Some(pr) = self.tracker.progress.get_mut(&m.from) else {
            return;
        };
        pr.recent_active = true;
        pr.probe_sent = false;
        if pr.state == ProgressState::Replicate && pr.inflights.full() {
            // Appends may have been lost: let one more through.
            pr.inflights.free_first_one();
        }
        // Probing followers get an (maybe empty) Append so that their answer confirms the
        // match and returns them to pipelining.
        if pr.matched < last_index || pr.state == ProgressState::Probe {
            self.send_append(m.from);
        }
        if m.context.len() == 8 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&m.context);
            let round = u64::from_be_bytes(b);
            let done = self
                .read_only
                .ack(m.from, round, self.id, &self.tracker.config.voters);
            self.answer_reads(done);
        }
    }

    /// True if reads wait for a heartbeat round and none is in flight.
    pub fn read_round_due(&self) -> bool {
        self.role == Role::Leader
            && self.read_only.needs_round()
            && !self.read_only.round_in_flight()
    }

    /// Starts a heartbeat round for the reads waiting, if one is due.
    pub fn maybe_start_read_round(&mut self) {
        if self.read_round_due() {
            self.bcast_heartbeat();
        }
    }

    fn answer_reads(&mut self, reads: Vec<PendingRead>) {
        for r in reads {
            self.answer_read(r.index, r.ctx, r.from);
        }
    }

    fn answer_read(&mut self, index: u64, ctx: Bytes, from: NodeId) {
        if from == self.id || from == NO_NODE {
            self.read_states.push(ReadState {
                index,
                request_ctx: ctx,
            });
        } else {
            self.send(Message {
                msg_type: MessageType::ReadIndexResponse,
                to: from,
                index,
                context: ctx,
                ..Message::default()
            });
        }
    }

    /// Commits what a quorum has durably matched, if allowed (Figure 8 rule).
    pub fn maybe_commit(&mut self) -> bool {
        let mci = self.tracker.committed();
        let before = self.raft_log.committed;
        let advanced = if self.bug_commit_old_terms {
            // Planted bug: counts replicas for entries of any term.
            if mci > before && mci <= self.raft_log.last_index() {
                self.raft_log.commit_to(mci);
                true
            } else {
                false
            }
        } else {
            self.raft_log.maybe_commit(mci, self.term)
        };
        debug_assert!(self.raft_log.committed >= before, "commit never decreases");
        if advanced && self.committed_in_own_term() && !self.reads_before_commit.is_empty() {
            let held = std::mem::take(&mut self.reads_before_commit);
            for (ctx, from) in held {
                let _ = self.handle_read_index(ctx, from);
            }
        }
        advanced
    }

    fn committed_in_own_term(&self) -> bool {
        self.raft_log.term_or_zero(self.raft_log.committed) == self.term
    }

    fn send_timeout_now(&mut self, to: NodeId) {
        self.send(Message {
            msg_type: MessageType::TimeoutNow,
            to,
            ..Message::default()
        });
    }

    // ---------------------------------------------------------------- local requests

    /// Appends entries at the leader, assigning term and index.
    fn append_entries(&mut self, mut ents: Vec<Entry>) {
        let li = self.raft_log.last_index();
        for (i, e) in ents.iter_mut().enumerate() {
            e.term = self.term;
            e.index = li + 1 + i as u64;
        }
        let n = ents.len() as u64;
        let new_last = self.raft_log.append(ents);
        // Leader Append-Only: the log only grew.
        assert_eq!(new_last, li + n);
    }

    /// A proposal at the leader (local or forwarded).
    pub fn propose_entries(&mut self, mut ents: Vec<Entry>) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NoLeader);
        }
        if ents.is_empty() {
            return Ok(());
        }
        if ents.len() > MAX_ENTRIES_PER_PROPOSAL {
            return Err(ProposeError::TooLarge {
                size: ents.len() as u64,
                limit: MAX_ENTRIES_PER_PROPOSAL as u64,
            });
        }
        if !self.tracker.progress.contains_key(&self.id) {
            return Err(ProposeError::NotMember);
        }
        if self.lead_transferee != NO_NODE {
            return Err(ProposeError::TransferInProgress {
                transferee: self.lead_transferee,
            });
        }
        let li = self.raft_log.last_index();
        let mut pending = self.pending_conf_index;
        for (i, e) in ents.iter_mut().enumerate() {
            if e.kind != EntryKind::ConfChange {
                continue;
            }
            let cc = ConfChange::decode(&e.data)
                .map_err(|err| ProposeError::InvalidConfChange(err.to_string()))?;
            if pending > self.raft_log.applied {
                return Err(ProposeError::ConfChangePending);
            }
            let joint = self.tracker.config.voters.is_joint();
            if joint && !cc.leave_joint() {
                return Err(ProposeError::InvalidConfChange(
                    "must leave the joint configuration first".into(),
                ));
            }
            if !joint && cc.leave_joint() {
                return Err(ProposeError::InvalidConfChange(
                    "not in a joint configuration".into(),
                ));
            }
            // No conf change is pending, so the configuration it will be applied to is the
            // current one: refuse now what would fail then.
            Changer {
                tracker: &self.tracker,
                last_index: li,
            }
            .apply(&cc)
            .map_err(|err| ProposeError::InvalidConfChange(err.to_string()))?;
            pending = li + 1 + i as u64;
        }
        let size: u64 = ents.iter().map(|e| e.data.len() as u64).sum();
        if self.max_uncommitted_size > 0
            && self.uncommitted_size > 0
            && self.uncommitted_size.saturating_add(size) > self.max_uncommitted_size
        {
            return Err(ProposeError::Backpressure);
        }
        self.uncommitted_size = self.uncommitted_size.saturating_add(size);
        self.pending_conf_index = pending;
        self.append_entries(ents);
        self.bcast_append();
        Ok(())
    }

    /// A proposal made on this member.
    pub fn propose(&mut self, ents: Vec<Entry>) -> Result<(), ProposeError> {
        match self.role {
            Role::Leader => self.propose_entries(ents),
            Role::Follower if self.lead != NO_NODE => {
                if !self.tracker.progress.contains_key(&self.id) {
                    return Err(ProposeError::NotMember);
                }
                let lead = self.lead;
                self.send(Message {
                    msg_type: MessageType::Propose,
                    to: lead,
                    entries: ents,
                    ..Message::default()
                });
                Ok(())
            }
            _ => Err(ProposeError::NoLeader),
        }
    }

    fn handle_read_index(&mut self, ctx: Bytes, from: NodeId) -> Result<(), ReadIndexError> {
        if self.tracker.is_singleton(self.id) {
            let index = self.raft_log.committed;
            self.answer_read(index, ctx, from);
            return Ok(());
        }
        if !self.committed_in_own_term() {
            // Raft thesis 6.4: the leader's commit index is only known to be current once an
            // entry of its term is committed.
            if self.reads_before_commit.len() >= MAX_READS_BEFORE_COMMIT {
                return Err(ReadIndexError::TooManyPending);
            }
            self.reads_before_commit.push((ctx, from));
            return Ok(());
        }
        let index = self.raft_log.committed;
        if self.bug_read_without_quorum || self.read_only_option == ReadOnlyOption::LeaseBased {
            self.answer_read(index, ctx, from);
            return Ok(());
        }
        if !self.read_only.add(index, ctx, from) {
            return Err(ReadIndexError::TooManyPending);
        }
        // The round is started when the embedder next takes a Ready (or at the next heartbeat),
        // so every read registered until then shares it.
        Ok(())
    }

    /// A read-index request made on this member.
    pub fn read_index(&mut self, ctx: Bytes) -> Result<(), ReadIndexError> {
        match self.role {
            Role::Leader => {
                let me = self.id;
                self.handle_read_index(ctx, me)
            }
            Role::Follower if self.lead != NO_NODE => {
                let lead = self.lead;
                self.send(Message {
                    msg_type: MessageType::ReadIndex,
                    to: lead,
                    context: ctx,
                    ..Message::default()
                });
                Ok(())
            }
            _ => Err(ReadIndexError::NoLeader),
        }
    }

    pub fn transfer_leadership(&mut self, to: NodeId) {
        if self.role != Role::Leader || to == self.id || !self.tracker.is_voter(to) {
            return;
        }
        if self.lead_transferee == to {
            return;
        }
        self.lead_transferee = to;
        // The transfer must finish within an election timeout (see tick_heartbeat).
        self.election_elapsed = 0;
        let matched = self.tracker.progress.get(&to).map_or(0, |p| p.matched);
        if matched == self.raft_log.last_index() {
            self.send_timeout_now(to);
        } else {
            self.send_append(to);
        }
    }

    pub fn report_unreachable(&mut self, id: NodeId) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(pr) = self.tracker.progress.get_mut(&id) {
            if pr.state == ProgressState::Replicate {
                pr.become_probe();
            }
        }
    }

    pub fn report_snapshot(&mut self, id: NodeId, success: bool) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(pr) = self.tracker.progress.get_mut(&id) {
            if pr.state != ProgressState::Snapshot {
                return;
            }
            if !success {
                pr.pending_snapshot = 0;
            }
            // Wait for the follower's answer (or the next heartbeat) before probing.
            pr.become_probe();
            pr.probe_sent = true;
        }
    }

    /// Applies a committed configuration change (called by the embedder while applying).
    pub fn apply_conf_change(&mut self, cc: &ConfChange) -> Result<ConfState, RaftError> {
        let changer = Changer {
            tracker: &self.tracker,
            last_index: self.raft_log.last_index(),
        };
        let (cfg, prs) = changer.apply(cc)?;
        self.tracker.config = cfg;
        self.tracker.progress = prs;
        let cs = self.tracker.config.to_conf_state();
        if self.role != Role::Leader {
            return Ok(cs);
        }
        if !self.promotable() {
            // Removed or demoted: hand over by stepping down; the others elect a new leader.
            let term = self.term;
            self.become_follower(term, NO_NODE);
            return Ok(cs);
        }
        if self.lead_transferee != NO_NODE && !self.tracker.is_voter(self.lead_transferee) {
            self.lead_transferee = NO_NODE;
        }
        if self.maybe_commit() {
            self.bcast_append();
        } else {
            let ids: Vec<NodeId> = self.tracker.progress.keys().copied().collect();
            for id in ids {
                self.maybe_send_append(id, false);
            }
        }
        Ok(cs)
    }

    /// Called once the embedder has persisted and applied everything handed out. The leader
    /// now counts its own durable entries towards commitment (thesis 10.2.1).
    pub fn on_advance(&mut self, applied_bytes: u64) {
        self.on_persisted();
        self.on_applied(applied_bytes);
    }

    /// Called when more of the log became durable: the leader counts its own durable entries
    /// towards commitment (thesis 10.2.1).
    pub fn on_persisted(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let persisted = self.raft_log.persisted_index();
        let updated = self
            .tracker
            .progress
            .get_mut(&self.id)
            .is_some_and(|p| p.maybe_update(persisted));
        if updated && self.maybe_commit() {
            self.bcast_append();
        }
    }

    /// Called when committed entries handed out were applied (`applied_bytes` of entry data).
    pub fn on_applied(&mut self, applied_bytes: u64) {
        if self.role != Role::Leader {
            return;
        }
        self.uncommitted_size = self.uncommitted_size.saturating_sub(applied_bytes);
        let cfg = &self.tracker.config;
        if cfg.auto_leave
            && cfg.voters.is_joint()
            && self.raft_log.applied >= self.pending_conf_index
        {
            // Auto-leave: the joint configuration is applied, propose leaving it.
            if let Ok(data) = ConfChange::default().encode() {
                let _ = self.propose_entries(vec![Entry {
                    kind: EntryKind::ConfChange,
                    data,
                    ..Entry::default()
                }]);
            }
        }
    }
}
