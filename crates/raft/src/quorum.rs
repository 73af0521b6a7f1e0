//! Quorum arithmetic: commit indexes and election outcomes for majority configurations and
//! for joint configurations (two majorities that must both agree).

use std::collections::BTreeSet;

use crate::types::NodeId;

/// Outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// Neither won nor lost yet.
    Pending,
    /// A quorum refused.
    Lost,
    /// A quorum granted.
    Won,
}

/// A set of voters deciding by simple majority.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MajorityConfig {
    /// The voters.
    pub voters: BTreeSet<NodeId>,
}

impl MajorityConfig {
    /// A majority configuration of `voters`.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> MajorityConfig {
        MajorityConfig {
            voters: voters.into_iter().collect(),
        }
    }

    /// Votes needed to win.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The largest index acknowledged by a majority, given each voter's acknowledged index
    /// (`None` counts as 0). An empty configuration returns `u64::MAX`, so that a joint
    /// configuration with an empty half is decided by the other half.
    pub fn committed_index(&self, acked: impl Fn(NodeId) -> Option<u64>) -> u64 {
        if self.voters.is_empty() {
            return u64::MAX;
        }
        let mut idx: Vec<u64> = self
            .voters
            .iter()
            .map(|id| acked(*id).unwrap_or(0))
            .collect();
        idx.sort_unstable_by(|a, b| b.cmp(a));
        // The quorum-th largest value is held by at least a quorum of voters.
        idx[self.quorum() - 1]
    }

    /// Election outcome given each voter's vote (`None` = not yet answered). An empty
    /// configuration wins (joint halves).
    pub fn vote_result(&self, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let (mut granted, mut missing) = (0, 0);
        for id in &self.voters {
            match vote(*id) {
                Some(true) => granted += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let q = self.quorum();
        if granted >= q {
            VoteResult::Won
        } else if granted + missing >= q {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }
}

/// The voter configuration of a group: `incoming` alone, or `incoming` and `outgoing` jointly
/// while a membership change is under way (every decision needs a majority of both).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JointConfig {
    /// The new (or only) voters.
    pub incoming: MajorityConfig,
    /// The old voters; empty unless joint.
    pub outgoing: MajorityConfig,
}

impl JointConfig {
    /// True while in a joint configuration.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.voters.is_empty()
    }

    /// All voters of either half.
    pub fn ids(&self) -> BTreeSet<NodeId> {
        self.incoming
            .voters
            .union(&self.outgoing.voters)
            .copied()
            .collect()
    }

    /// True if `id` votes in either half.
    pub fn contains(&self, id: NodeId) -> bool {
        self.incoming.voters.contains(&id) || self.outgoing.voters.contains(&id)
    }

    /// The largest index acknowledged by a quorum of both halves. With no voters at all, 0.
    pub fn committed_index(&self, acked: impl Fn(NodeId) -> Option<u64>) -> u64 {
        let i = self.incoming.committed_index(&acked);
        let o = self.outgoing.committed_index(&acked);
        let c = i.min(o);
        if c == u64::MAX {
            0
        } else {
            c
        }
    }

    /// Election outcome: won only if both halves won, lost if either lost.
    pub fn vote_result(&self, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        let i = self.incoming.vote_result(&vote);
        let o = self.outgoing.vote_result(&vote);
        match (i, o) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn acks(pairs: &[(NodeId, u64)]) -> BTreeMap<NodeId, u64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn majority_committed_index() {
        let c = MajorityConfig::new([1, 2, 3]);
        let a = acks(&[(1, 5), (2, 3), (3, 9)]);
        assert_eq!(c.committed_index(|id| a.get(&id).copied()), 5);
        let a = acks(&[(1, 5)]);
        assert_eq!(c.committed_index(|id| a.get(&id).copied()), 0);
        let c = MajorityConfig::new([1, 2, 3, 4]);
        let a = acks(&[(1, 5), (2, 4), (3, 3), (4, 2)]);
        assert_eq!(c.committed_index(|id| a.get(&id).copied()), 3);
        assert_eq!(
            MajorityConfig::default().committed_index(|_| None),
            u64::MAX
        );
    }

    #[test]
    fn majority_votes() {
        let c = MajorityConfig::new([1, 2, 3]);
        let v: BTreeMap<NodeId, bool> = [(1, true)].into();
        assert_eq!(c.vote_result(|id| v.get(&id).copied()), VoteResult::Pending);
        let v: BTreeMap<NodeId, bool> = [(1, true), (2, true)].into();
        assert_eq!(c.vote_result(|id| v.get(&id).copied()), VoteResult::Won);
        let v: BTreeMap<NodeId, bool> = [(1, true), (2, false), (3, false)].into();
        assert_eq!(c.vote_result(|id| v.get(&id).copied()), VoteResult::Lost);
    }

    #[test]
    fn joint_needs_both_halves() {
        let j = JointConfig {
            incoming: MajorityConfig::new([1, 2, 3]),
            outgoing: MajorityConfig::new([3, 4, 5]),
        };
        let a = acks(&[(1, 9), (2, 9), (3, 2), (4, 1), (5, 7)]);
        assert_eq!(j.committed_index(|id| a.get(&id).copied()), 2);
        let v: BTreeMap<NodeId, bool> = [(1, true), (2, true)].into();
        assert_eq!(j.vote_result(|id| v.get(&id).copied()), VoteResult::Pending);
        let v: BTreeMap<NodeId, bool> = [(1, true), (2, true), (4, false), (5, false)].into();
        assert_eq!(j.vote_result(|id| v.get(&id).copied()), VoteResult::Lost);
        let v: BTreeMap<NodeId, bool> = [(1, true), (3, true), (4, true)].into();
        assert_eq!(j.vote_result(|id| v.get(&id).copied()), VoteResult::Won);
        assert_eq!(JointConfig::default().committed_index(|_| None), 0);
    }

    proptest! {
        // The committed index is acknowledged by a quorum and nothing larger is.
        #[test]
        fn committed_index_is_the_quorum_maximum(idx in proptest::collection::vec(0u64..20, 1..8)) {
            let c = MajorityConfig::new(1..=idx.len() as u64);
            let got = c.committed_index(|id| idx.get(id as usize - 1).copied());
            let at_least = |v: u64| idx.iter().filter(|i| **i >= v).count();
            prop_assert!(at_least(got) >= c.quorum());
            prop_assert!(at_least(got + 1) < c.quorum());
        }
    }
}
