//! Safety invariants checked after every step of a run.
//!
//! - Election safety: at most one leader per term.
//! - Commit and applied indexes never go backwards (within one incarnation of a member).
//! - State machine safety: every member applies the same entry at each index.
//! - No member applies an entry that is not committed: when applied, the entry must be stored
//!   durably by a majority (the embedding contract counts an entry committed only once a
//!   majority persisted it, and committed entries are never truncated).
//! - Committed entries are never lost or changed: the entry a member applied at index `i` stays
//!   in the durable log of a majority (checked when logs are compared).
//! - Leader completeness: a new leader's log holds every entry committed in an earlier term
//!   (an entry counts as committed by the lowest term any member applied it in).
//! - Log matching: if two logs hold an entry with the same index and term, they are identical
//!   up to that index (checked periodically and at the end; it is quadratic).
//!
//! With snapshots, a member whose log starts after index `i` holds `i` in its state machine
//! image ([`Member::compacted_through`]) and counts as storing it. A member that applied an
//! index through a snapshot (or compacted it before reporting) reports nothing for it, so an
//! index may first be reported after a later one: such holes are filled when reported.

use std::collections::BTreeMap;

use quorum_raft::{NodeId, Role, SoftState};

use crate::member::{entry_hash, Applied, Member, MemberStatus};

/// A violated invariant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{check}: {detail}")]
pub struct Violation {
    /// Which check.
    pub check: &'static str,
    /// What was seen.
    pub detail: String,
}

/// Largest run of unreported indexes before a reported one (snapshots cover fewer).
const MAX_HOLE: usize = 1_000_000;

/// Whether `m` stores applied entry `a`: in its durable log, or covered by its snapshot.
fn holds<M: Member>(m: &M, a: &Applied) -> bool {
    a.index <= m.compacted_through()
        || m.durable_entry(a.index)
            .is_some_and(|e| entry_hash(e) == a.hash)
}

fn violation(check: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { check, detail })
}

/// What the invariant checker remembers across steps.
#[derive(Debug, Default)]
pub struct Invariants {
    /// term → leader.
    leaders: BTreeMap<u64, NodeId>,
    /// index → (term, hash) of the entry applied there (by anyone); `None`: not reported yet.
    applied: Vec<Option<Applied>>,
    /// index → the lowest term any member was in when it applied that index. The entry was
    /// committed in that term or earlier, so every leader of a later term must hold it.
    committed_by: Vec<u64>,
    /// Per member: (commit, applied) last seen in this incarnation.
    last_seen: BTreeMap<NodeId, (u64, u64)>,
}

impl Invariants {
    /// A checker with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many log indexes have been applied somewhere (and reported).
    pub fn applied_len(&self) -> u64 {
        self.applied.iter().filter(|a| a.is_some()).count() as u64
    }

    /// Forgets a member's monotonic counters (it crashed; its volatile state is gone).
    pub fn restarted(&mut self, id: NodeId) {
        self.last_seen.remove(&id);
    }

    /// Checks a member's role change.
    pub fn on_soft_state<M: Member>(
        &mut self,
        id: NodeId,
        ss: &SoftState,
        term: u64,
        members: &[M],
    ) -> Result<(), Violation> {
        if ss.role != Role::Leader {
            return Ok(());
        }
        if let Some(other) = self.leaders.insert(term, id) {
            if other != id {
                return violation(
                    "election safety",
                    format!("n{other} and n{id} are both leaders of term {term}"),
                );
            }
        }
        // Leader completeness: the new leader's log holds every entry committed in an earlier
        // term.
        let leader = members.iter().find(|m| m.id() == id);
        if let Some(leader) = leader {
            for (a, by) in self.applied.iter().zip(&self.committed_by) {
                let Some(a) = a else { continue };
                if *by >= term || a.index <= leader.compacted_through() {
                    continue;
                }
                match leader.durable_entry(a.index) {
                    Some(e) if entry_hash(e) == a.hash => {}
                    Some(e) => {
                        return violation(
                            "leader completeness",
                            format!(
                                "new leader n{id} (term {term}) has term {} at index {}, where term {} was applied (committed by term {by})",
                                e.term, a.index, a.term
                            ),
                        )
                    }
                    None => {
                        return violation(
                            "leader completeness",
                            format!(
                                "new leader n{id} (term {term}) lacks index {}, committed by term {by}",
                                a.index
                            ),
                        )
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks a member's counters after a step.
    pub fn on_status(&mut self, id: NodeId, st: &MemberStatus) -> Result<(), Violation> {
        if let Some((commit, applied)) = self.last_seen.get(&id) {
            if st.commit < *commit {
                return violation(
                    "commit monotonic",
                    format!("n{id} commit went from {commit} to {}", st.commit),
                );
            }
            if st.applied < *applied {
                return violation(
                    "applied monotonic",
                    format!("n{id} applied went from {applied} to {}", st.applied),
                );
            }
        }
        if st.applied > st.commit {
            return violation(
                "applied within commit",
                format!("n{id} applied {} beyond commit {}", st.applied, st.commit),
            );
        }
        self.last_seen.insert(id, (st.commit, st.applied));
        Ok(())
    }

    /// Checks an entry a member just applied.
    /// `term` is the member's term after the step (at least its term when it applied).
    pub fn on_applied<M: Member>(
        &mut self,
        id: NodeId,
        a: Applied,
        term: u64,
        members: &[M],
    ) -> Result<(), Violation> {
        let slot = usize::try_from(a.index.saturating_sub(1)).unwrap_or(usize::MAX);
        if let Some(by) = self.committed_by.get_mut(slot) {
            *by = (*by).min(term);
        }
        match self.applied.get(slot) {
            Some(Some(prev)) if prev.hash != a.hash => {
                return violation(
                    "state machine safety",
                    format!(
                        "n{id} applied term {} at index {}, another member applied term {}",
                        a.term, a.index, prev.term
                    ),
                )
            }
            Some(Some(_)) => {}
            Some(None) => {
                self.applied[slot] = Some(a);
            }
            None if slot > self.applied.len() + MAX_HOLE => {
                return violation(
                    "applied in order",
                    format!("n{id} applied index {} far past every other", a.index),
                )
            }
            None => {
                // Indexes before it came to the reporting members in snapshots: holes.
                while self.applied.len() < slot {
                    self.applied.push(None);
                    self.committed_by.push(term);
                }
                debug_assert_eq!(self.applied.len(), slot);
                self.applied.push(Some(a));
                self.committed_by.push(term);
            }
        }
        let holders = members.iter().filter(|m| holds(*m, &a)).count();
        if holders * 2 <= members.len() {
            return violation(
                "applied only committed",
                format!(
                    "n{id} applied index {} (term {}) stored by only {holders} of {} members",
                    a.index,
                    a.term,
                    members.len()
                ),
            );
        }
        Ok(())
    }

    /// Log matching across every pair of members, and durability of applied entries on a
    /// majority. Quadratic: call it periodically.
    pub fn check_logs<M: Member>(&self, members: &[M]) -> Result<(), Violation> {
        for a in self.applied.iter().flatten() {
            let holders = members.iter().filter(|m| holds(*m, a)).count();
            if holders * 2 <= members.len() {
                return violation(
                    "committed entry lost",
                    format!(
                        "index {} (term {}) applied earlier is now stored by only {holders} of {} members",
                        a.index,
                        a.term,
                        members.len()
                    ),
                );
            }
        }
        for (i, x) in members.iter().enumerate() {
            for y in &members[i + 1..] {
                let last = x.durable_last_index().min(y.durable_last_index());
                // Find the highest index where both hold the same term; everything before
                // must be identical.
                let mut top = None;
                for index in (1..=last).rev() {
                    if let (Some(a), Some(b)) = (x.durable_entry(index), y.durable_entry(index)) {
                        if a.term == b.term {
                            top = Some(index);
                            break;
                        }
                    }
                }
                let Some(top) = top else { continue };
                for index in 1..=top {
                    if let (Some(a), Some(b)) = (x.durable_entry(index), y.durable_entry(index)) {
                        if a != b {
                            return violation(
                                "log matching",
                                format!(
                                    "n{} and n{} agree on term at index {top} but differ at {index} (terms {} / {})",
                                    x.id(),
                                    y.id(),
                                    a.term,
                                    b.term
                                ),
                            );
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
