//! The leader's (and candidate's) bookkeeping about the group: the active configuration,
//! each peer's replication progress, and the votes of the current election.

pub mod inflights;
pub mod progress;

use std::collections::{BTreeMap, BTreeSet};

use crate::quorum::{JointConfig, VoteResult};
use crate::types::{ConfState, NodeId};
pub use inflights::Inflights;
pub use progress::{Progress, ProgressState};

/// The membership: voters (possibly joint), learners, and the learners-to-be of a joint
/// configuration. Invariants: learners are not voters; `learners_next` are outgoing voters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackerConfig {
    /// The voters.
    pub voters: JointConfig,
    /// The learners.
    pub learners: BTreeSet<NodeId>,
    /// Outgoing voters that become learners when the joint configuration is left.
    pub learners_next: BTreeSet<NodeId>,
    /// Leave the joint configuration automatically once it is committed.
    pub auto_leave: bool,
}

impl TrackerConfig {
    /// The configuration described by `cs`.
    pub fn from_conf_state(cs: &ConfState) -> TrackerConfig {
        TrackerConfig {
            voters: JointConfig {
                incoming: crate::quorum::MajorityConfig::new(cs.voters.iter().copied()),
                outgoing: crate::quorum::MajorityConfig::new(cs.voters_outgoing.iter().copied()),
            },
            learners: cs.learners.iter().copied().collect(),
            learners_next: cs.learners_next.iter().copied().collect(),
            auto_leave: cs.auto_leave,
        }
    }

    /// This configuration as a [`ConfState`].
    pub fn to_conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.incoming.voters.iter().copied().collect(),
            learners: self.learners.iter().copied().collect(),
            voters_outgoing: self.voters.outgoing.voters.iter().copied().collect(),
            learners_next: self.learners_next.iter().copied().collect(),
            auto_leave: self.auto_leave,
        }
    }

    /// Checks the structural invariants.
    pub fn check(&self) -> Result<(), String> {
        for l in self.learners.iter().chain(&self.learners_next) {
            if self.voters.incoming.voters.contains(l) {
                return Err(format!("{l} is both learner and voter"));
            }
        }
        for l in &self.learners_next {
            if !self.voters.outgoing.voters.contains(l) {
                return Err(format!("{l} is in learners_next but not an outgoing voter"));
            }
        }
        if !self.voters.is_joint() && (!self.learners_next.is_empty() || self.auto_leave) {
            return Err("learners_next / auto_leave set outside a joint config".into());
        }
        Ok(())
    }

    /// Every member: voters and learners.
    pub fn all_ids(&self) -> BTreeSet<NodeId> {
        let mut ids = self.voters.ids();
        ids.extend(&self.learners);
        ids.extend(&self.learners_next);
        ids
    }
}

/// Configuration, progress and votes.
#[derive(Clone, Debug)]
pub struct ProgressTracker {
    /// The active configuration.
    pub config: TrackerConfig,
    /// Progress of every member (including this one), keyed by id.
    pub progress: BTreeMap<NodeId, Progress>,
    /// Votes received in the current election.
    pub votes: BTreeMap<NodeId, bool>,
    /// The inflight window of new progresses.
    pub max_inflight: usize,
}

impl ProgressTracker {
    /// An empty tracker.
    pub fn new(max_inflight: usize) -> ProgressTracker {
        ProgressTracker {
            config: TrackerConfig::default(),
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            max_inflight,
        }
    }

    /// The largest index a quorum of voters has durably matched.
    pub fn committed(&self) -> u64 {
        self.config
            .voters
            .committed_index(|id| self.progress.get(&id).map(|p| p.matched))
    }

    /// Forgets all votes.
    pub fn reset_votes(&mut self) {
        self.votes.clear();
    }

    /// Records `id`'s vote (the first answer of a voter counts).
    pub fn record_vote(&mut self, id: NodeId, granted: bool) {
        self.votes.entry(id).or_insert(granted);
    }

    /// Current outcome of the election.
    pub fn tally_votes(&self) -> VoteResult {
        self.config
            .voters
            .vote_result(|id| self.votes.get(&id).copied())
    }

    /// True if a quorum of voters was recently active (`recent_active`).
    pub fn quorum_active(&self) -> bool {
        self.config
            .voters
            .vote_result(|id| Some(self.progress.get(&id).is_some_and(|p| p.recent_active)))
            == VoteResult::Won
    }

    /// True if `id` is a voter of the current configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.config.voters.contains(id)
    }

    /// True if a single voter makes up the whole configuration, and it is `id`.
    pub fn is_singleton(&self, id: NodeId) -> bool {
        let ids = self.config.voters.ids();
        ids.len() == 1 && ids.contains(&id)
    }
}
