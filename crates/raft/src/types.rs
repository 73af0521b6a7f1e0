//! Plain data types that cross the Raft crate's boundary: log entries, persistent state,
//! configurations, snapshots and messages.
//!
//! They are deliberately free of any wire format: the storage crate frames them for the WAL
//! and the server maps them onto protobuf for the peer transport.

use bytes::Bytes;

/// Identifies a member of a Raft group. `0` ([`NO_NODE`]) means "nobody".
pub type NodeId = u64;

/// Identifies a Raft group. Quorum runs one group today, but every piece of group state is keyed
/// by this id so that Multi-Raft (a group per key range) slots in without a redesign.
pub type GroupId = u64;

/// The [`NodeId`] that means "no node" (no vote cast, no leader known).
pub const NO_NODE: NodeId = 0;

/// The state a member must persist before it answers any message that depends on it
/// (Raft paper, Figure 2: currentTerm, votedFor; plus the commit index, as etcd does, so that a
/// restarted member can apply what it knows to be committed without waiting for a leader).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HardState {
    /// The latest term this member has seen.
    pub term: u64,
    /// The member voted for in `term`, or [`NO_NODE`].
    pub vote: NodeId,
    /// The highest log index known to be committed.
    pub commit: u64,
}

impl HardState {
    /// True for the state of a member that has never persisted anything.
    pub fn is_empty(&self) -> bool {
        *self == HardState::default()
    }
}

/// What an [`Entry`]'s payload means to Raft.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Opaque application data (or empty: the no-op a new leader appends).
    #[default]
    Normal,
    /// An encoded [`ConfChange`]; Raft itself tracks it as the pending configuration change.
    ConfChange,
}

/// One slot of the replicated log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The leader's term when the entry was created.
    pub term: u64,
    /// Position in the log; the first real entry has index 1.
    pub index: u64,
    /// How to interpret `data`.
    pub kind: EntryKind,
    /// The payload; cheap to clone, since one entry goes to every follower.
    pub data: Bytes,
}

impl Entry {
    /// Bytes this entry counts for in message and batch size limits.
    pub fn size(&self) -> u64 {
        // Index, term and kind cost a few bytes each on any wire format; 24 is a fair bound.
        self.data.len() as u64 + 24
    }
}

/// The voters and learners of a group, possibly in a joint configuration
/// (`voters_outgoing` non-empty) while a membership change by joint consensus is under way.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConfState {
    /// Voters of the incoming (or only) configuration.
    pub voters: Vec<NodeId>,
    /// Learners: receive the log, never vote, never count for a quorum.
    pub learners: Vec<NodeId>,
    /// Voters of the outgoing configuration; empty unless the configuration is joint.
    pub voters_outgoing: Vec<NodeId>,
    /// Nodes that become learners when the joint configuration is left (they are voters in the
    /// outgoing configuration until then).
    pub learners_next: Vec<NodeId>,
    /// Leave the joint configuration automatically once it is committed.
    pub auto_leave: bool,
}

/// What one step of a configuration change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfChangeType {
    /// Add a voter (or promote a learner to voter).
    AddNode,
    /// Add a learner (or demote a voter to learner).
    AddLearner,
    /// Remove a voter or learner.
    RemoveNode,
}

/// One node's change within a [`ConfChange`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConfChangeSingle {
    /// What happens to the node.
    pub change_type: ConfChangeType,
    /// The node it happens to.
    pub node_id: NodeId,
}

/// How a configuration change moves through joint consensus.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConfChangeTransition {
    /// A single change that alters at most one voter is applied directly; anything larger goes
    /// through a joint configuration that is left automatically.
    #[default]
    Auto,
    /// Always use a joint configuration, left automatically once committed.
    Implicit,
    /// Always use a joint configuration, left only by an explicit empty [`ConfChange`].
    Explicit,
}

/// A membership change proposal. An empty `changes` list leaves a joint configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConfChange {
    /// How the change uses joint consensus.
    pub transition: ConfChangeTransition,
    /// The per-node changes, applied together.
    pub changes: Vec<ConfChangeSingle>,
    /// Opaque application data carried along (e.g. the new member's URLs).
    pub context: Bytes,
}

/// Describes the state-machine image a snapshot holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SnapshotMetadata {
    /// Index of the last entry the snapshot covers.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// The configuration as of `index`.
    pub conf_state: ConfState,
}

/// A state-machine snapshot: metadata plus an opaque application image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Snapshot {
    /// What the snapshot covers.
    pub metadata: SnapshotMetadata,
    /// The application's image; Raft never looks inside.
    pub data: Bytes,
}

impl Snapshot {
    /// True for the placeholder snapshot of a log that was never compacted.
    pub fn is_empty(&self) -> bool {
        self.metadata.index == 0
    }
}

/// The kinds of message Raft members exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Leader → follower: entries after (`index`, `log_term`), and the leader's commit.
    #[default]
    Append,
    /// Follower → leader: accepted up to `index`, or rejected with a conflict hint.
    AppendResponse,
    /// Candidate → all: request a vote for `term` with last log (`index`, `log_term`).
    Vote,
    /// Answer to [`MessageType::Vote`].
    VoteResponse,
    /// Like [`MessageType::Vote`] but for the term the sender *would* campaign in; changes no
    /// state on the receiver (Raft thesis 9.6).
    PreVote,
    /// Answer to [`MessageType::PreVote`].
    PreVoteResponse,
    /// Leader → follower: liveness and commit propagation; `context` carries ReadIndex rounds.
    Heartbeat,
    /// Answer to [`MessageType::Heartbeat`], echoing its `context`.
    HeartbeatResponse,
    /// Leader → follower: install `snapshot`.
    Snapshot,
    /// Leader → transfer target: campaign now, skipping the election timeout.
    TimeoutNow,
    /// Follower → leader: obtain a read index for the request identified by `context`.
    ReadIndex,
    /// Leader → follower: the read index (`index`) for `context`.
    ReadIndexResponse,
    /// Follower → leader: forwarded proposal (entries), when forwarding is enabled.
    Propose,
}

/// A message between members of one group. A flat record in the style of etcd's raftpb, so
/// that mapping it onto a wire format is mechanical. The transport wraps it with the
/// [`GroupId`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Message {
    /// What the message is.
    pub msg_type: MessageType,
    /// Recipient.
    pub to: NodeId,
    /// Sender.
    pub from: NodeId,
    /// Sender's term (0 for local messages that carry no term).
    pub term: u64,
    /// Term of the entry at `index` (the log position the message refers to).
    pub log_term: u64,
    /// A log index whose meaning depends on `msg_type`.
    pub index: u64,
    /// Entries carried by Append and Propose.
    pub entries: Vec<Entry>,
    /// The sender's commit index.
    pub commit: u64,
    /// The snapshot carried by [`MessageType::Snapshot`].
    pub snapshot: Option<Snapshot>,
    /// True when the request is refused.
    pub reject: bool,
    /// On a rejected append: the follower's hint of where the logs may match.
    pub reject_hint: u64,
    /// Opaque request context (ReadIndex request ids, transfer markers).
    pub context: Bytes,
}

/// The role a member plays in its current term.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Asks for votes in a new term.
    Candidate,
    /// Asks whether it *could* win an election, without bumping its term (PreVote).
    PreCandidate,
    /// Replicates its log to the others.
    Leader,
}

/// Volatile state worth reporting to the embedder: who leads and what this member is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SoftState {
    /// The known leader, or [`NO_NODE`].
    pub leader: NodeId,
    /// This member's role.
    pub role: Role,
}

/// The answer to a [`read_index`](crate::RawNode::read_index) request: once the local applied
/// index reaches `index`, a read identified by `request_ctx` is linearizable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReadState {
    /// The commit index the read must wait for.
    pub index: u64,
    /// The context the request was made with.
    pub request_ctx: Bytes,
}
