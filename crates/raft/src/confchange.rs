//! Applying configuration changes to the tracker: simple changes (at most one voter), and
//! joint consensus (enter a joint configuration, later leave it).

use std::collections::BTreeMap;

use crate::errors::ConfChangeError;
use crate::tracker::{Progress, ProgressTracker, TrackerConfig};
use crate::types::{ConfChange, ConfChangeSingle, ConfChangeType, NodeId};

/// The outcome of a change: the new configuration and the progress map that goes with it.
pub(crate) type Changed = (TrackerConfig, BTreeMap<NodeId, Progress>);

/// Computes configuration changes against a tracker without modifying it.
pub(crate) struct Changer<'a> {
    pub tracker: &'a ProgressTracker,
    /// Last log index: new members start probing from here.
    pub last_index: u64,
}

impl Changer<'_> {
    /// Applies `cc` in whichever way it asks for.
    pub fn apply(&self, cc: &ConfChange) -> Result<Changed, ConfChangeError> {
        if cc.leave_joint() {
            self.leave_joint()
        } else if let Some(auto_leave) = cc.enter_joint() {
            self.enter_joint(auto_leave, &cc.changes)
        } else {
            self.simple(&cc.changes)
        }
    }

    /// Enters a joint configuration: the current voters become the outgoing half.
    pub fn enter_joint(
        &self,
        auto_leave: bool,
        changes: &[ConfChangeSingle],
    ) -> Result<Changed, ConfChangeError> {
        let (mut cfg, mut prs) = self.snapshot();
        if cfg.voters.is_joint() {
            return Err(ConfChangeError::AlreadyJoint);
        }
        if cfg.voters.incoming.voters.is_empty() {
            return Err(ConfChangeError::NoVoters);
        }
        cfg.voters.outgoing = cfg.voters.incoming.clone();
        self.apply_changes(&mut cfg, &mut prs, changes)?;
        cfg.auto_leave = auto_leave;
        self.check(&cfg, &prs)?;
        Ok((cfg, prs))
    }

    /// Leaves the joint configuration: the incoming half alone remains.
    pub fn leave_joint(&self) -> Result<Changed, ConfChangeError> {
        let (mut cfg, mut prs) = self.snapshot();
        if !cfg.voters.is_joint() {
            return Err(ConfChangeError::NotJoint);
        }
        cfg.learners.extend(std::mem::take(&mut cfg.learners_next));
        for id in &cfg.learners {
            if let Some(p) = prs.get_mut(id) {
                p.is_learner = true;
            }
        }
        let outgoing = std::mem::take(&mut cfg.voters.outgoing.voters);
        for id in outgoing {
            if !cfg.voters.incoming.voters.contains(&id) && !cfg.learners.contains(&id) {
                prs.remove(&id);
            }
        }
        cfg.auto_leave = false;
        self.check(&cfg, &prs)?;
        Ok((cfg, prs))
    }

    /// A change of at most one voter, outside joint consensus.
    pub fn simple(&self, changes: &[ConfChangeSingle]) -> Result<Changed, ConfChangeError> {
        let (mut cfg, mut prs) = self.snapshot();
        if cfg.voters.is_joint() {
            return Err(ConfChangeError::AlreadyJoint);
        }
        self.apply_changes(&mut cfg, &mut prs, changes)?;
        let before = &self.tracker.config.voters.incoming.voters;
        let after = &cfg.voters.incoming.voters;
        if before.symmetric_difference(after).count() > 1 {
            return Err(ConfChangeError::TooManyVoterChanges);
        }
        self.check(&cfg, &prs)?;
        Ok((cfg, prs))
    }

    fn snapshot(&self) -> Changed {
        (self.tracker.config.clone(), self.tracker.progress.clone())
    }

    fn apply_changes(
        &self,
        cfg: &mut TrackerConfig,
        prs: &mut BTreeMap<NodeId, Progress>,
        changes: &[ConfChangeSingle],
    ) -> Result<(), ConfChangeError> {
        if changes.len() > crate::conf_change_codec::MAX_CHANGES {
            return Err(ConfChangeError::TooManyChanges(changes.len()));
        }
        for c in changes {
            if c.node_id == crate::types::NO_NODE {
                continue;
            }
            match c.change_type {
                ConfChangeType::AddNode => self.make_voter(cfg, prs, c.node_id),
                ConfChangeType::AddLearner => self.make_learner(cfg, prs, c.node_id),
                ConfChangeType::RemoveNode => Self::remove(cfg, prs, c.node_id),
            }
        }
        if cfg.voters.incoming.voters.is_empty() {
            return Err(ConfChangeError::NoVoters);
        }
        Ok(())
    }

    fn init_progress(&self, prs: &mut BTreeMap<NodeId, Progress>, id: NodeId, learner: bool) {
        let p = prs.entry(id).or_insert_with(|| {
            let mut p = Progress::new(self.last_index, self.tracker.max_inflight);
            // A new member counts as active so CheckQuorum does not depose the leader at once.
            p.recent_active = true;
            p
        });
        p.is_learner = learner;
    }

    fn make_voter(
        &self,
        cfg: &mut TrackerConfig,
        prs: &mut BTreeMap<NodeId, Progress>,
        id: NodeId,
    ) {
        cfg.learners.remove(&id);
        cfg.learners_next.remove(&id);
        cfg.voters.incoming.voters.insert(id);
        self.init_progress(prs, id, false);
    }

    fn make_learner(
        &self,
        cfg: &mut TrackerConfig,
        prs: &mut BTreeMap<NodeId, Progress>,
        id: NodeId,
    ) {
        if cfg.learners.contains(&id) {
            return;
        }
        cfg.voters.incoming.voters.remove(&id);
        if cfg.voters.outgoing.voters.contains(&id) {
            // Still votes in the outgoing half: becomes a learner when the joint config is left.
            cfg.learners_next.insert(id);
            self.init_progress(prs, id, false);
        } else {
            cfg.learners.insert(id);
            self.init_progress(prs, id, true);
        }
    }

    fn remove(cfg: &mut TrackerConfig, prs: &mut BTreeMap<NodeId, Progress>, id: NodeId) {
        cfg.voters.incoming.voters.remove(&id);
        cfg.learners.remove(&id);
        cfg.learners_next.remove(&id);
        if !cfg.voters.outgoing.voters.contains(&id) {
            prs.remove(&id);
        }
    }

    fn check(
        &self,
        cfg: &TrackerConfig,
        prs: &BTreeMap<NodeId, Progress>,
    ) -> Result<(), ConfChangeError> {
        cfg.check().map_err(ConfChangeError::Malformed)?;
        let ids = cfg.all_ids();
        // Every member has a progress and every progress is a member.
        assert!(
            ids.iter().all(|id| prs.contains_key(id)) && prs.keys().all(|id| ids.contains(id)),
            "progress map out of sync with configuration"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ConfChangeTransition, ConfState};

    fn tracker(voters: &[NodeId], learners: &[NodeId]) -> ProgressTracker {
        let mut t = ProgressTracker::new(8);
        t.config = TrackerConfig::from_conf_state(&ConfState {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            ..ConfState::default()
        });
        for id in t.config.all_ids() {
            let mut p = Progress::new(1, 8);
            p.is_learner = learners.contains(&id);
            t.progress.insert(id, p);
        }
        t
    }

    fn single(change_type: ConfChangeType, node_id: NodeId) -> ConfChangeSingle {
        ConfChangeSingle {
            change_type,
            node_id,
        }
    }

    #[test]
    fn simple_change_allows_one_voter_only() {
        let t = tracker(&[1, 2, 3], &[]);
        let ch = Changer {
            tracker: &t,
            last_index: 5,
        };
        let (cfg, prs) = ch.simple(&[single(ConfChangeType::AddNode, 4)]).unwrap();
        assert_eq!(cfg.voters.incoming.voters.len(), 4);
        assert_eq!(prs[&4].next, 5);
        let err = ch.simple(&[
            single(ConfChangeType::AddNode, 4),
            single(ConfChangeType::AddNode, 5),
        ]);
        assert_eq!(err.unwrap_err(), ConfChangeError::TooManyVoterChanges);
        // learner changes do not count as voter changes
        let (cfg, _) = ch
            .simple(&[
                single(ConfChangeType::AddLearner, 7),
                single(ConfChangeType::AddLearner, 8),
            ])
            .unwrap();
        assert_eq!(cfg.learners.len(), 2);
        let t1 = tracker(&[1], &[]);
        let ch1 = Changer {
            tracker: &t1,
            last_index: 1,
        };
        assert_eq!(
            ch1.simple(&[single(ConfChangeType::RemoveNode, 1)])
                .unwrap_err(),
            ConfChangeError::NoVoters
        );
    }

    #[test]
    fn joint_demotion_goes_through_learners_next() {
        let mut t = tracker(&[1, 2, 3], &[]);
        let cc = ConfChange {
            transition: ConfChangeTransition::Explicit,
            changes: vec![
                single(ConfChangeType::AddLearner, 3),
                single(ConfChangeType::AddNode, 4),
            ],
            ..ConfChange::default()
        };
        let (cfg, prs) = Changer {
            tracker: &t,
            last_index: 9,
        }
        .apply(&cc)
        .unwrap();
        assert!(cfg.voters.is_joint());
        assert!(!cfg.auto_leave);
        assert!(cfg.learners_next.contains(&3));
        assert!(cfg.voters.outgoing.voters.contains(&3));
        t.config = cfg;
        t.progress = prs;
        let ch = Changer {
            tracker: &t,
            last_index: 9,
        };
        assert_eq!(
            ch.enter_joint(true, &[]).unwrap_err(),
            ConfChangeError::AlreadyJoint
        );
        let (cfg, prs) = ch.apply(&ConfChange::default()).unwrap();
        assert!(!cfg.voters.is_joint());
        assert!(cfg.learners.contains(&3));
        assert!(prs[&3].is_learner);
        assert_eq!(
            cfg.voters
                .incoming
                .voters
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            vec![1, 2, 4]
        );
    }

    #[test]
    fn removal_in_joint_keeps_progress_until_leave() {
        let t = tracker(&[1, 2, 3], &[]);
        let ch = Changer {
            tracker: &t,
            last_index: 1,
        };
        let (cfg, prs) = ch
            .enter_joint(true, &[single(ConfChangeType::RemoveNode, 3)])
            .unwrap();
        assert!(prs.contains_key(&3));
        let mut t2 = t.clone();
        t2.config = cfg;
        t2.progress = prs;
        let (_, prs) = Changer {
            tracker: &t2,
            last_index: 1,
        }
        .leave_joint()
        .unwrap();
        assert!(!prs.contains_key(&3));
    }
}
