//! What the leader knows about one follower's log.

use super::inflights::Inflights;

/// How the leader currently replicates to a follower.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProgressState {
    /// Where the logs match is unknown: one Append at a time, until one is accepted.
    #[default]
    Probe,
    /// The logs match up to `matched`: Appends are pipelined within the inflight window.
    Replicate,
    /// The follower needs a snapshot, which is in flight; nothing else is sent.
    Snapshot,
}

/// The leader's view of one peer. Invariant: `matched < next`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Highest index known to match the leader's log.
    pub matched: u64,
    /// Next index to send.
    pub next: u64,
    /// Replication state.
    pub state: ProgressState,
    /// Index of the snapshot in flight (in the Snapshot state).
    pub pending_snapshot: u64,
    /// Heard from since the last CheckQuorum round.
    pub recent_active: bool,
    /// In Probe: an Append is outstanding, wait for its answer (or a heartbeat response).
    pub probe_sent: bool,
    /// Appends in flight (Replicate).
    pub inflights: Inflights,
    /// A learner: replicated to, never counted.
    pub is_learner: bool,
}

impl Progress {
    /// A fresh progress expecting `next` as the next index.
    pub fn new(next: u64, max_inflight: usize) -> Progress {
        Progress {
            matched: 0,
            next: next.max(1),
            state: ProgressState::Probe,
            pending_snapshot: 0,
            recent_active: false,
            probe_sent: false,
            inflights: Inflights::new(max_inflight),
            is_learner: false,
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.probe_sent = false;
        self.pending_snapshot = 0;
        self.state = state;
        self.inflights.reset();
    }

    /// Back to probing (after a rejection, an unreachable report or a snapshot).
    pub fn become_probe(&mut self) {
        if self.state == ProgressState::Snapshot {
            let pending = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next = (self.matched + 1).max(pending + 1);
        } else {
            self.reset_state(ProgressState::Probe);
            self.next = self.matched + 1;
        }
    }

    /// Logs match: pipeline from `matched + 1`.
    pub fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next = self.matched + 1;
    }

    /// A snapshot at `index` is being sent.
    pub fn become_snapshot(&mut self, index: u64) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = index;
    }

    /// The follower acknowledged up to `n`; returns true if that is news.
    pub fn maybe_update(&mut self, n: u64) -> bool {
        let updated = n > self.matched;
        if updated {
            self.matched = n;
            self.probe_sent = false;
        }
        self.next = self.next.max(n + 1);
        updated
    }

    /// An Append ending at `last` was sent (Replicate: optimistically advance `next`).
    pub fn sent_entries(&mut self, last: u64) {
        match self.state {
            ProgressState::Replicate => {
                if last >= self.next {
                    self.next = last + 1;
                    self.inflights.add(last);
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot => {}
        }
    }

    /// The follower rejected an Append at `rejected`; `hint` is where the logs may match.
    /// Returns false if the rejection is stale.
    pub fn maybe_decr_to(&mut self, rejected: u64, hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.matched {
                return false;
            }
            self.next = self.matched + 1;
            return true;
        }
        if self.next == 0 || self.next - 1 != rejected {
            return false;
        }
        self.next = rejected.min(hint + 1).max(self.matched + 1).max(1);
        self.probe_sent = false;
        true
    }

    /// True when nothing should be sent to this peer now.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_backs_off_to_hint_and_ignores_stale() {
        let mut p = Progress::new(10, 4);
        p.sent_entries(12);
        assert!(p.is_paused());
        assert!(!p.maybe_decr_to(5, 3)); // stale: not next-1
        assert!(p.maybe_decr_to(9, 4));
        assert_eq!(p.next, 5);
        assert!(!p.is_paused());
    }

    #[test]
    fn replicate_pipelines_within_window() {
        let mut p = Progress::new(1, 2);
        p.maybe_update(3);
        p.become_replicate();
        assert_eq!(p.next, 4);
        p.sent_entries(5);
        p.sent_entries(8);
        assert!(p.is_paused());
        assert_eq!(p.next, 9);
        p.maybe_update(5);
        p.inflights.free_le(5);
        assert!(!p.is_paused());
        assert!(p.maybe_decr_to(7, 0));
        assert_eq!(p.next, 6);
    }

    #[test]
    fn snapshot_then_probe_resumes_after_snapshot() {
        let mut p = Progress::new(1, 2);
        p.become_snapshot(20);
        assert!(p.is_paused());
        p.become_probe();
        assert_eq!(p.next, 21);
    }
}
