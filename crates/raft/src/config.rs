//! Per-member configuration of the state machine, and its validation.

use crate::types::{NodeId, NO_NODE};

/// How linearizable reads (ReadIndex) are confirmed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReadOnlyOption {
    /// The leader confirms it is still leader with a heartbeat round to a quorum
    /// (Raft thesis 6.4). Safe whatever the clocks do.
    #[default]
    Safe,
    /// The leader relies on its lease (CheckQuorum): no round trip, but correct only if clock
    /// drift is bounded. Valid only together with [`Config::check_quorum`].
    LeaseBased,
}

/// Upper bound on the election timeout, so a misconfiguration cannot silence elections forever.
pub const MAX_ELECTION_TICK: usize = 1 << 20;

/// Upper bound on [`Config::max_inflight_msgs`]: the in-flight window is allocated per follower.
pub const MAX_INFLIGHT_MSGS: usize = 1 << 16;

/// Configuration of one member of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This member's id; never [`NO_NODE`].
    pub id: NodeId,
    /// T: a follower campaigns after a randomized timeout drawn from `[T, 2T)` ticks without
    /// hearing from a leader. Must exceed `heartbeat_tick`.
    pub election_tick: usize,
    /// A leader sends heartbeats every `heartbeat_tick` ticks.
    pub heartbeat_tick: usize,
    /// Last applied index when restarting (committed entries after it are handed out again).
    pub applied: u64,
    /// Byte limit of the entries in one Append (at least one entry is always sent).
    pub max_size_per_msg: u64,
    /// Pipelining window: Appends in flight to one follower in the replicate state.
    pub max_inflight_msgs: usize,
    /// Proposal flow control: bytes of uncommitted entries a leader accepts (0 = unlimited).
    pub max_uncommitted_entries_size: u64,
    /// Bound on the bytes of `committed_entries` in one Ready (0 = unlimited; at least one
    /// entry is always handed out).
    pub max_committed_size_per_ready: u64,
    /// A leader that has not heard from a quorum within an election timeout steps down, and
    /// followers that heard from a leader recently ignore vote requests.
    pub check_quorum: bool,
    /// Run a pre-election before bumping the term (Raft thesis 9.6).
    pub pre_vote: bool,
    /// How ReadIndex requests are confirmed.
    pub read_only_option: ReadOnlyOption,
    /// Seeds this member's RNG (randomized election timeouts). Give each member its own seed.
    pub seed: u64,
    /// TEST ONLY: plants a known bug (the Figure 8 bug): the leader commits an entry of an
    /// older term as soon as a majority stores it. For the simulator to prove its checkers.
    #[cfg(feature = "bug-injection")]
    pub bug_commit_old_terms_by_counting: bool,
    /// TEST ONLY: plants a known bug: votes are granted without the log up-to-date check.
    #[cfg(feature = "bug-injection")]
    pub bug_vote_without_log_check: bool,
    /// TEST ONLY: plants a known bug: ReadIndex is answered at once without confirming
    /// leadership (stale reads from a deposed leader).
    #[cfg(feature = "bug-injection")]
    pub bug_read_index_without_quorum: bool,
}

impl Config {
    /// A configuration with etcd-like defaults: election 10 ticks, heartbeat 1 tick, 1 MiB
    /// messages, 256 Appends in flight, PreVote and CheckQuorum on.
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            applied: 0,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            max_uncommitted_entries_size: 0,
            max_committed_size_per_ready: 0,
            check_quorum: true,
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            seed: id,
            #[cfg(feature = "bug-injection")]
            bug_commit_old_terms_by_counting: false,
            #[cfg(feature = "bug-injection")]
            bug_vote_without_log_check: false,
            #[cfg(feature = "bug-injection")]
            bug_read_index_without_quorum: false,
        }
    }

    /// Checks that the configuration is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == NO_NODE {
            return Err(ConfigError::InvalidId);
        }
        if self.heartbeat_tick == 0 {
            return Err(ConfigError::HeartbeatTickZero);
        }
        if self.election_tick <= self.heartbeat_tick || self.election_tick > MAX_ELECTION_TICK {
            return Err(ConfigError::ElectionTick {
                election_tick: self.election_tick,
                heartbeat_tick: self.heartbeat_tick,
            });
        }
        if self.max_inflight_msgs == 0 || self.max_inflight_msgs > MAX_INFLIGHT_MSGS {
            return Err(ConfigError::MaxInflightMsgs(self.max_inflight_msgs));
        }
        if self.read_only_option == ReadOnlyOption::LeaseBased && !self.check_quorum {
            return Err(ConfigError::LeaseWithoutCheckQuorum);
        }
        Ok(())
    }

    /// `bug_commit_old_terms_by_counting`, false unless the `bug-injection` feature sets it.
    pub(crate) fn bug_commit_old_terms(&self) -> bool {
        #[cfg(feature = "bug-injection")]
        {
            self.bug_commit_old_terms_by_counting
        }
        #[cfg(not(feature = "bug-injection"))]
        {
            false
        }
    }

    /// `bug_vote_without_log_check`, false unless the `bug-injection` feature sets it.
    pub(crate) fn bug_vote_without_log(&self) -> bool {
        #[cfg(feature = "bug-injection")]
        {
            self.bug_vote_without_log_check
        }
        #[cfg(not(feature = "bug-injection"))]
        {
            false
        }
    }

    /// `bug_read_index_without_quorum`, false unless the `bug-injection` feature sets it.
    pub(crate) fn bug_read_without_quorum(&self) -> bool {
        #[cfg(feature = "bug-injection")]
        {
            self.bug_read_index_without_quorum
        }
        #[cfg(not(feature = "bug-injection"))]
        {
            false
        }
    }
}

/// Why a [`Config`] is rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The id is [`NO_NODE`].
    #[error("node id must not be 0")]
    InvalidId,
    /// `heartbeat_tick` is zero.
    #[error("heartbeat tick must be greater than 0")]
    HeartbeatTickZero,
    /// `election_tick` is not in `(heartbeat_tick, MAX_ELECTION_TICK]`.
    #[error("election tick {election_tick} must exceed heartbeat tick {heartbeat_tick} and be at most {MAX_ELECTION_TICK}")]
    ElectionTick {
        /// The configured election tick.
        election_tick: usize,
        /// The configured heartbeat tick.
        heartbeat_tick: usize,
    },
    /// `max_inflight_msgs` is zero or above [`MAX_INFLIGHT_MSGS`].
    #[error("max inflight messages {0} must be in 1..={MAX_INFLIGHT_MSGS}")]
    MaxInflightMsgs(usize),
    /// LeaseBased reads are only safe with CheckQuorum.
    #[error("LeaseBased read-only option requires check_quorum")]
    LeaseWithoutCheckQuorum,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_rejected() {
        assert_eq!(Config::new(1).validate(), Ok(()));
        assert_eq!(Config::new(0).validate(), Err(ConfigError::InvalidId));
        let mut c = Config::new(1);
        c.election_tick = 1;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::ElectionTick { .. })
        ));
        let mut c = Config::new(1);
        c.heartbeat_tick = 0;
        assert_eq!(c.validate(), Err(ConfigError::HeartbeatTickZero));
        let mut c = Config::new(1);
        c.max_inflight_msgs = 0;
        assert_eq!(c.validate(), Err(ConfigError::MaxInflightMsgs(0)));
        let mut c = Config::new(1);
        c.check_quorum = false;
        c.read_only_option = ReadOnlyOption::LeaseBased;
        assert_eq!(c.validate(), Err(ConfigError::LeaseWithoutCheckQuorum));
    }
}
