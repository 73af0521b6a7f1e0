//! The Figure 8 nemesis: a scripted fault schedule that drives the group through the sequence
//! of Figure 8 of the Raft paper, randomized within that shape (which members play which
//! role, how long each phase lasts, whether the last old-term leader is cut off or crashed).
//!
//! One round, with `n` members and a majority `q`:
//! 1. **Old leader cut off.** The current leader `s1` (term `t`) and `q - 2` followers `a` are
//!    cut off from the other members `b`. `s1` keeps appending client writes (term `t`) that
//!    reach only `a`: a minority, never committed.
//! 2. **Short-lived leader.** As soon as `b` elects a leader `x` (term `t' > t`), `x` is isolated
//!    before its first Append leaves: its term-`t'` no-op stays in its log alone. Everyone else
//!    is reunited; only `s1` or a member of `a` can win (their logs are longer with the same last
//!    term), in a term `t'' > t'`. Meanwhile every Append loses the entries of its sender's
//!    term (the network cuts it before them: what remains is a valid, shorter Append; an
//!    Append left empty gets through only once per link every few milliseconds, else each
//!    draws a rejection that draws new Appends, a storm), so the new leader replicates its old
//!    term-`t` entries to a majority but never its own no-op. A correct leader cannot commit
//!    them (Raft's Figure 8 rule); a leader that commits by counting replicas does, and
//!    applies them.
//! 3. **Overwriter returns.** That leader is cut off (or crashed) and `x` comes back; the
//!    (pre-)vote requests of everyone but `x` are lost, so `x` (last log term `t'`, higher than
//!    the others' `t`) wins and overwrites the old entries. If they had been applied, leader
//!    completeness (and then state machine safety) fails.
//!
//! Then the network heals and, after a pause, the next round starts, until the fault phase ends.

use super::*;

/// Where the current Figure 8 round is.
#[derive(Clone, Debug)]
pub(super) enum Figure8 {
    /// Waiting until `at` to start a round with the current leader.
    Idle {
        /// Simulated time to try next.
        at: u64,
    },
    /// Step 1: `s1` (leader of `term`) and its minority are cut off from `b`.
    OldLeaderCut {
        /// The old leader's term.
        term: u64,
        /// The majority side, where the short-lived leader must come from.
        b: Vec<NodeId>,
        /// Give up the round at this time.
        deadline: u64,
    },
    /// Step 2: `x` (leader of `x_term`) is isolated, Appends lose their own-term entries.
    NewLeaderCut {
        /// The isolated short-lived leader.
        x: NodeId,
        /// Its term.
        x_term: u64,
        /// Highest commit index of any member when `x` was isolated.
        commit_before: u64,
        /// Once a later leader committed past `commit_before`: when to move on.
        move_at: Option<u64>,
        /// Move on at this time anyway (a correct leader never commits there).
        deadline: u64,
    },
    /// Step 3: the last leader is gone, `x` is back and is the only candidate heard.
    OverwriterBack {
        /// The overwriter.
        x: NodeId,
        /// Term of the leader that was cut off.
        l_term: u64,
        /// End of the round.
        deadline: u64,
    },
}

/// An Append left empty by the nemesis gets through at most once per link this often.
const EMPTY_PROBE_GAP_US: u64 = 5_000;

/// Longest a phase waits for its condition.
const PHASE_TIMEOUT_US: u64 = 600_000;

impl<M: Member> Sim<M> {
    /// Advances the Figure 8 nemesis after an event (a no-op unless the run uses it).
    pub(super) fn figure8_step(&mut self) -> Result<(), Violation> {
        let Some(phase) = self.figure8.clone() else {
            return Ok(());
        };
        if self.heal_time.is_some() {
            self.figure8 = None;
            return Ok(());
        }
        match phase {
            Figure8::Idle { at } if self.now >= at => self.figure8_start(),
            Figure8::Idle { .. } => {}
            Figure8::OldLeaderCut { term, b, deadline } => {
                let x = b.iter().copied().find(|&id| {
                    let st = self.members[Self::idx(id)].status();
                    self.states[Self::idx(id)] == NodeState::Up
                        && st.role == quorum_raft::Role::Leader
                        && st.term > term
                });
                if let Some(x) = x {
                    let x_term = self.members[Self::idx(x)].status().term;
                    let commit_before = self
                        .members
                        .iter()
                        .map(|m| m.status().commit)
                        .max()
                        .unwrap_or(0);
                    self.net.partition(Partition::Isolated(x));
                    self.figure8_truncate = true;
                    self.trace.record(
                        self.now,
                        format_args!(
                            "figure8: short-lived leader n{x} (term {x_term}) isolated; Appends lose own-term entries"
                        ),
                    );
                    self.figure8 = Some(Figure8::NewLeaderCut {
                        x,
                        x_term,
                        commit_before,
                        move_at: None,
                        deadline: self.now + PHASE_TIMEOUT_US,
                    });
                } else if self.now >= deadline {
                    self.figure8_end("no leader emerged on the majority side");
                }
            }
            Figure8::NewLeaderCut {
                x,
                x_term,
                commit_before,
                move_at,
                deadline,
            } => {
                let leader = self.current_leader().filter(|&l| l != x).map(|l| {
                    let st = self.members[Self::idx(l)].status();
                    (l, st)
                });
                let leader = leader.filter(|(_, st)| st.term > x_term);
                match (move_at, leader) {
                    (Some(at), Some((l, st))) if self.now >= at => {
                        self.figure8_overwrite(x, l, st.term)
                    }
                    (None, Some((_, st))) if st.commit > commit_before => {
                        let at = self.now + self.rng.range(0, 30_000);
                        if let Some(Figure8::NewLeaderCut { move_at, .. }) = &mut self.figure8 {
                            *move_at = Some(at);
                        }
                    }
                    (_, Some((l, st))) if self.now >= deadline => {
                        self.figure8_overwrite(x, l, st.term)
                    }
                    (_, None) if self.now >= deadline => {
                        self.figure8_end("no later leader on the reunited side")
                    }
                    _ => {}
                }
            }
            Figure8::OverwriterBack {
                x,
                l_term,
                deadline,
            } => {
                let st = self.members[Self::idx(x)].status();
                // `l_term == u64::MAX`: `x` already won; the round ends at `deadline`.
                let won =
                    l_term != u64::MAX && st.role == quorum_raft::Role::Leader && st.term > l_term;
                if won {
                    // Let it replicate (and overwrite) for a moment before healing.
                    let end = self.now + self.rng.range(20_000, 80_000);
                    self.trace.record(
                        self.now,
                        format_args!("figure8: n{x} leads term {} after term {l_term}", st.term),
                    );
                    self.figure8 = Some(Figure8::OverwriterBack {
                        x,
                        l_term: u64::MAX,
                        deadline: end.min(deadline),
                    });
                } else if self.now >= deadline {
                    self.figure8_end("round over");
                }
            }
        }
        Ok(())
    }

    /// Step 1: cuts the current leader and `q - 2` of its followers off from the rest.
    fn figure8_start(&mut self) {
        let n = self.cfg.members as u64;
        let all_up = self.states.iter().all(|s| *s == NodeState::Up);
        let Some(s1) = self.current_leader().filter(|_| all_up && n >= 3) else {
            let at = self.now + 20_000;
            self.figure8 = Some(Figure8::Idle { at });
            return;
        };
        let term = self.members[Self::idx(s1)].status().term;
        let mut others: Vec<NodeId> = (1..=n).filter(|&id| id != s1).collect();
        for i in (1..others.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            others.swap(i, j);
        }
        let quorum = (n / 2 + 1) as usize;
        debug_assert!(quorum >= 2 && others.len() >= quorum);
        let b = others.split_off(quorum - 2);
        let mut left = vec![s1];
        left.extend(&others);
        self.trace.record(
            self.now,
            format_args!(
                "figure8: old leader n{s1} (term {term}) with {others:?} cut off from {b:?}"
            ),
        );
        self.net.partition(Partition::Halves {
            left,
            right: b.clone(),
        });
        self.figure8 = Some(Figure8::OldLeaderCut {
            term,
            b,
            deadline: self.now + PHASE_TIMEOUT_US,
        });
    }

    /// Step 3: removes the leader `l` (cut off or crashed) and brings `x` back as the only
    /// candidate.
    fn figure8_overwrite(&mut self, x: NodeId, l: NodeId, l_term: u64) {
        self.figure8_truncate = false;
        self.figure8_candidate = Some(x);
        self.net.partition(Partition::Isolated(l));
        let deadline = self.now + PHASE_TIMEOUT_US;
        if self.rng.chance(0.5) {
            let i = Self::idx(l);
            self.states[i] = NodeState::Down;
            self.schedule(deadline, Event::Restart(l));
            self.trace.record(
                self.now,
                format_args!("figure8: leader n{l} (term {l_term}) crashes; n{x} is back"),
            );
        } else {
            self.trace.record(
                self.now,
                format_args!("figure8: leader n{l} (term {l_term}) isolated; n{x} is back"),
            );
        }
        self.figure8 = Some(Figure8::OverwriterBack {
            x,
            l_term,
            deadline,
        });
    }

    /// Ends the round: heals the network and schedules the next one.
    fn figure8_end(&mut self, why: &str) {
        self.trace
            .record(self.now, format_args!("figure8: {why}; network healed"));
        self.figure8_heal();
        let at = self.now + self.rng.range(100_000, 300_000);
        self.figure8 = Some(Figure8::Idle { at });
    }

    /// Lifts every Figure 8 network rule.
    pub(super) fn figure8_heal(&mut self) {
        self.net.heal();
        self.figure8_truncate = false;
        self.figure8_candidate = None;
        self.figure8_probes.clear();
    }

    /// Applies the nemesis' message rules to a message being sent: Appends lose the entries of
    /// their sender's term (what remains is a valid, shorter Append, as a smaller size limit
    /// would have made it); (pre-)vote requests of anyone but the chosen candidate are lost.
    /// `None`: the message is lost.
    pub(super) fn figure8_filter(&mut self, mut msg: Message) -> Option<Message> {
        use quorum_raft::MessageType;
        if self.figure8_truncate && msg.msg_type == MessageType::Append {
            if let Some(cut) = msg.entries.iter().position(|e| e.term == msg.term) {
                let lost = msg.entries.len() - cut;
                msg.entries.truncate(cut);
                // An Append left empty is only a probe: let one through per link every
                // `EMPTY_PROBE_GAP_US` (the leader learns where the follower's log ends), lose
                // the rest (each would draw a rejection that draws new Appends: a storm).
                let link = (msg.from, msg.to);
                if msg.entries.is_empty() {
                    let last = self.figure8_probes.get(&link).copied();
                    if last.is_some_and(|t| self.now < t + EMPTY_PROBE_GAP_US) {
                        self.trace.record(
                            self.now,
                            format_args!(
                                "figure8: Append n{}->n{} with entries of term {} lost",
                                msg.from, msg.to, msg.term
                            ),
                        );
                        return None;
                    }
                    self.figure8_probes.insert(link, self.now);
                }
                self.trace.record(
                    self.now,
                    format_args!(
                        "figure8: Append n{}->n{} loses its {lost} entries of term {}",
                        msg.from, msg.to, msg.term
                    ),
                );
            }
        }
        if let Some(x) = self.figure8_candidate {
            if matches!(msg.msg_type, MessageType::Vote | MessageType::PreVote) && msg.from != x {
                self.trace.record(
                    self.now,
                    format_args!(
                        "figure8: {:?} n{}->n{} lost",
                        msg.msg_type, msg.from, msg.to
                    ),
                );
                return None;
            }
        }
        Some(msg)
    }
}
