//! Auto compaction (`--auto-compaction-mode` / `--auto-compaction-retention`), as etcd does it:
//! the leader periodically proposes a compaction so that history does not grow without bound.
//!
//! - periodic: keep the history of the last `retention` (a duration); the revision is sampled
//!   every `retention / 10` (at least 1 s, at most 1 h), and the compaction goes to the newest
//!   sample that is at least `retention` old.
//! - revision: every 5 minutes (or `retention`-independent test interval), compact to
//!   `current revision - retention`.
//!
//! Only the leader proposes; a compaction is an ordinary replicated request, so every member
//! applies it at the same point of the log.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use quorum_api::etcdserverpb::CompactionRequest;
use quorum_api::internal::InternalRaftRequest;
use tracing::{debug, info};

use crate::member::Member;

/// What drives the compactor.
#[derive(Debug, Clone, Copy)]
pub enum Policy {
    /// Keep this much time of history.
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(u64),
}

/// Interval of the revision-mode compactor (etcd: 5 minutes).
pub const REVISION_MODE_INTERVAL: Duration = Duration::from_secs(300);

/// The sampling interval for `policy`.
pub fn interval(policy: Policy) -> Duration {
    match policy {
        Policy::Periodic(r) => (r / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600)),
        Policy::Revision(_) => REVISION_MODE_INTERVAL,
    }
}

/// Pure decision logic, separated from time and IO for testing.
#[derive(Debug)]
pub struct Compactor {
    policy: Policy,
    samples: VecDeque<(Instant, i64)>,
    last_compacted: i64,
}

/// Samples kept at most (one per interval; retention / interval is about 10).
const MAX_SAMPLES: usize = 64;

impl Compactor {
    /// A compactor with no history yet.
    pub fn new(policy: Policy) -> Self {
        Compactor {
            policy,
            samples: VecDeque::new(),
            last_compacted: 0,
        }
    }

    /// Records the current revision at `now`; returns the revision to compact to, if any.
    pub fn observe(&mut self, now: Instant, current: i64) -> Option<i64> {
        let target = match self.policy {
            Policy::Revision(keep) => current.saturating_sub(keep as i64),
            Policy::Periodic(retention) => {
                self.samples.push_back((now, current));
                while self.samples.len() > MAX_SAMPLES {
                    self.samples.pop_front();
                }
                let cutoff = now.checked_sub(retention)?;
                self.samples
                    .iter()
                    .filter(|(t, _)| *t <= cutoff)
                    .map(|(_, r)| *r)
                    .max()?
            }
        };
        (target > self.last_compacted && target > 0).then_some(target)
    }

    /// Records that a compaction to `rev` happened (or was already done).
    pub fn compacted(&mut self, rev: i64) {
        self.last_compacted = self.last_compacted.max(rev);
        while self.samples.len() > 1 && self.samples.front().is_some_and(|(_, r)| *r <= rev) {
            self.samples.pop_front();
        }
    }
}

/// Runs the compactor for `member` until the process ends.
pub async fn run(member: Member, policy: Policy) {
    let mut c = Compactor::new(policy);
    let mut tick = tokio::time::interval(interval(policy));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let status = member.status();
        if status.leader == 0 || status.leader != status.member_id {
            // Followers keep sampling so that a new leader can compact on time.
            if let Ok(rev) = member.store().current_revision() {
                c.observe(Instant::now(), rev);
            }
            continue;
        }
        let Ok(rev) = member.store().current_revision() else {
            continue;
        };
        let Some(target) = c.observe(Instant::now(), rev) else {
            continue;
        };
        if member.store().compact_revision().unwrap_or(0) >= target {
            c.compacted(target);
            continue;
        }
        let req = InternalRaftRequest {
            compaction: Some(CompactionRequest {
                revision: target,
                physical: false,
            }),
            ..Default::default()
        };
        match member.propose(req).await {
            Ok(_) => {
                info!("auto compaction to revision {target}");
                c.compacted(target);
            }
            Err(e) => debug!("auto compaction to revision {target} failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_mode_keeps_the_last_n_revisions() {
        let mut c = Compactor::new(Policy::Revision(100));
        let t = Instant::now();
        assert_eq!(c.observe(t, 50), None);
        assert_eq!(c.observe(t, 250), Some(150));
        c.compacted(150);
        assert_eq!(c.observe(t, 250), None);
        assert_eq!(c.observe(t, 251), Some(151));
    }

    #[test]
    fn periodic_mode_compacts_to_the_newest_sample_older_than_retention() {
        let mut c = Compactor::new(Policy::Periodic(Duration::from_secs(10)));
        let t0 = Instant::now();
        assert_eq!(c.observe(t0, 5), None);
        assert_eq!(c.observe(t0 + Duration::from_secs(5), 20), None);
        assert_eq!(c.observe(t0 + Duration::from_secs(10), 30), Some(5));
        c.compacted(5);
        assert_eq!(c.observe(t0 + Duration::from_secs(16), 40), Some(20));
    }

    #[test]
    fn intervals_are_bounded() {
        assert_eq!(
            interval(Policy::Periodic(Duration::from_secs(5))),
            Duration::from_secs(1)
        );
        assert_eq!(
            interval(Policy::Periodic(Duration::from_secs(100 * 3600))),
            Duration::from_secs(3600)
        );
    }
}
