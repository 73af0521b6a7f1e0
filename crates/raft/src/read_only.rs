//! Linearizable reads without writing the log (ReadIndex, Raft thesis 6.4), batched in
//! heartbeat rounds: every read pending when a round is sent is confirmed by that round.
//!
//! Rounds are numbered 1, 2, ... within one leadership. A heartbeat carries the number of
//! the latest round sent; a response to round `r` proves this member was still leader when
//! round `r` was sent, hence confirms every read registered before it. The confirmed round is
//! the quorum "commit index" over the highest round each voter answered.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::quorum::JointConfig;
use crate::types::NodeId;

/// Upper bound on reads waiting for confirmation at the leader.
pub const MAX_PENDING_READS: usize = 64 * 1024;

/// One read waiting for its round to be confirmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PendingRead {
    /// The commit index when the read arrived.
    pub index: u64,
    /// The requester's context.
    pub ctx: Bytes,
    /// Who asked (this member or a follower).
    pub from: NodeId,
    /// The round that confirms it.
    pub round: u64,
}

/// The leader's read-index bookkeeping. Invariant: `queue` is ordered by round, and every
/// round in it is `sent_round` or `sent_round + 1` (the next, not yet sent).
#[derive(Debug, Default)]
pub(crate) struct ReadOnly {
    queue: VecDeque<PendingRead>,
    /// Latest round sent in heartbeats.
    sent_round: u64,
    /// Highest round each voter has answered.
    acked: BTreeMap<NodeId, u64>,
}

impl ReadOnly {
    pub fn reset(&mut self) {
        self.queue.clear();
        self.sent_round = 0;
        self.acked.clear();
    }

    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Registers a read confirmed by the next round. Returns false if the queue is full.
    pub fn add(&mut self, index: u64, ctx: Bytes, from: NodeId) -> bool {
        if self.queue.len() >= MAX_PENDING_READS {
            return false;
        }
        self.queue.push_back(PendingRead {
            index,
            ctx,
            from,
            round: self.sent_round + 1,
        });
        true
    }

    /// True if some read waits for a round not yet sent.
    pub fn needs_round(&self) -> bool {
        self.queue.back().is_some_and(|r| r.round > self.sent_round)
    }

    /// True if a sent round is still unconfirmed.
    pub fn round_in_flight(&self) -> bool {
        self.queue
            .front()
            .is_some_and(|r| r.round <= self.sent_round)
    }

    /// Starts the next round if a read waits for one; returns the round number to put in
    /// heartbeats (the latest sent; 0 if none).
    pub fn start_round(&mut self) -> u64 {
        if self.needs_round() {
            self.sent_round += 1;
        }
        self.sent_round
    }

    /// Records that `from` answered round `round` (ignores rounds never sent) and returns
    /// the reads this confirms, in order.
    pub fn ack(
        &mut self,
        from: NodeId,
        round: u64,
        me: NodeId,
        voters: &JointConfig,
    ) -> Vec<PendingRead> {
        if round == 0 || round > self.sent_round {
            return Vec::new();
        }
        let e = self.acked.entry(from).or_insert(0);
        *e = (*e).max(round);
        let sent = self.sent_round;
        let confirmed = voters.committed_index(|id| {
            if id == me {
                Some(sent)
            } else {
                self.acked.get(&id).copied()
            }
        });
        let mut out = Vec::new();
        while self.queue.front().is_some_and(|r| r.round <= confirmed) {
            if let Some(r) = self.queue.pop_front() {
                out.push(r);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::MajorityConfig;

    #[test]
    fn one_round_confirms_all_reads_registered_before_it() {
        let voters = JointConfig {
            incoming: MajorityConfig::new([1, 2, 3]),
            outgoing: MajorityConfig::default(),
        };
        let mut ro = ReadOnly::default();
        assert!(ro.add(5, Bytes::from_static(b"a"), 1));
        assert!(ro.add(5, Bytes::from_static(b"b"), 2));
        assert_eq!(ro.start_round(), 1);
        assert!(ro.add(6, Bytes::from_static(b"c"), 1)); // waits for round 2
        assert!(ro.round_in_flight());
        assert!(ro.ack(2, 2, 1, &voters).is_empty()); // round 2 never sent
        let done = ro.ack(2, 1, 1, &voters);
        assert_eq!(done.len(), 2);
        assert_eq!(ro.pending(), 1);
        assert_eq!(ro.start_round(), 2);
        assert!(ro.ack(2, 1, 1, &voters).is_empty()); // an old round confirms nothing new
        assert_eq!(ro.ack(3, 2, 1, &voters).len(), 1);
    }
}
