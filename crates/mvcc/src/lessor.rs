//! Lease expiry, kept in memory on the leader only (etcd's primary lessor).
//!
//! The replicated state (granted TTL, checkpointed remaining TTL, attached keys) lives in the
//! store; this component only decides *when* the leader should propose a revoke. It never reads
//! a clock: every method that needs the time takes `now_ms`, a monotonic millisecond counter
//! supplied by the caller.

use crate::types::LeaseId;
use std::collections::BTreeMap;

/// Bound on leases tracked, a safety limit against runaway grants.
pub const MAX_TRACKED_LEASES: usize = 10_000_000;

#[derive(Clone, Debug)]
struct Tracked {
    ttl_secs: i64,
    /// `None` until the first call that knows the time after the grant was applied: the
    /// lease then expires `ttl` after that instant (never earlier than etcd would).
    expiry_ms: Option<u64>,
    /// When it was last reported by [`Lessor::expired`].
    reported_ms: Option<u64>,
}

/// In-memory expiry tracking.
#[derive(Debug)]
pub struct Lessor {
    primary: bool,
    leases: BTreeMap<LeaseId, Tracked>,
    retry_ms: u64,
}

fn secs_to_ms(s: i64) -> u64 {
    u64::try_from(s).unwrap_or(0).saturating_mul(1000)
}

impl Lessor {
    /// A non-primary lessor; an expired lease is reported again after `retry_ms` if its revoke
    /// has not been applied by then (etcd: 3 s).
    pub fn new(retry_ms: u64) -> Self {
        Lessor {
            primary: false,
            leases: BTreeMap::new(),
            retry_ms,
        }
    }

    /// Whether this member tracks expiry (it is the leader).
    pub fn is_primary(&self) -> bool {
        self.primary
    }

    /// Becomes primary. `leases` yields `(id, granted ttl, checkpointed remaining ttl)` for
    /// every lease; each expires at `now + extend + remaining` (remaining = the checkpoint
    /// when non-zero, else the full TTL), so no lease expires early because of the election.
    pub fn promote(
        &mut self,
        now_ms: u64,
        extend_ms: u64,
        leases: impl IntoIterator<Item = (LeaseId, i64, i64)>,
    ) {
        self.primary = true;
        self.leases.clear();
        for (id, ttl, remaining) in leases.into_iter().take(MAX_TRACKED_LEASES) {
            let left = if remaining > 0 { remaining } else { ttl };
            self.leases.insert(
                id,
                Tracked {
                    ttl_secs: ttl,
                    expiry_ms: Some(
                        now_ms
                            .saturating_add(extend_ms)
                            .saturating_add(secs_to_ms(left)),
                    ),
                    reported_ms: None,
                },
            );
        }
    }

    /// Stops tracking expiry (lost leadership).
    pub fn demote(&mut self) {
        self.primary = false;
        self.leases.clear();
    }

    /// A grant was applied.
    pub(crate) fn granted(&mut self, id: LeaseId, ttl_secs: i64) {
        if self.primary && self.leases.len() < MAX_TRACKED_LEASES {
            self.leases.insert(
                id,
                Tracked {
                    ttl_secs,
                    expiry_ms: None,
                    reported_ms: None,
                },
            );
        }
    }

    /// A revoke was applied.
    pub(crate) fn revoked(&mut self, id: LeaseId) {
        self.leases.remove(&id);
    }

    fn settle(&mut self, now_ms: u64) {
        for t in self.leases.values_mut() {
            if t.expiry_ms.is_none() {
                t.expiry_ms = Some(now_ms.saturating_add(secs_to_ms(t.ttl_secs)));
            }
        }
    }

    /// Keep-alive: the lease expires `ttl` after `now`. Returns the TTL in seconds, `None` if
    /// the lease is unknown or already expired (etcd answers "lease not found").
    pub fn renew(&mut self, id: LeaseId, now_ms: u64) -> Option<i64> {
        self.settle(now_ms);
        let t = self.leases.get_mut(&id)?;
        if t.expiry_ms.is_some_and(|e| e <= now_ms) {
            return None;
        }
        t.expiry_ms = Some(now_ms.saturating_add(secs_to_ms(t.ttl_secs)));
        t.reported_ms = None;
        Some(t.ttl_secs)
    }

    /// Remaining TTL in whole seconds (rounded up), `None` if unknown.
    pub fn remaining(&mut self, id: LeaseId, now_ms: u64) -> Option<i64> {
        self.settle(now_ms);
        let e = self.leases.get(&id)?.expiry_ms?;
        let left = e.saturating_sub(now_ms);
        Some(i64::try_from(left.div_ceil(1000)).unwrap_or(i64::MAX))
    }

    /// Up to `max` expired leases, soonest first, for the leader to propose revokes. A lease
    /// is reported again only after the retry interval.
    pub fn expired(&mut self, now_ms: u64, max: usize) -> Vec<LeaseId> {
        if !self.primary {
            return Vec::new();
        }
        self.settle(now_ms);
        let retry = self.retry_ms;
        let mut due: Vec<(u64, LeaseId)> = self
            .leases
            .iter()
            .filter_map(|(id, t)| {
                let e = t.expiry_ms?;
                let fresh = t
                    .reported_ms
                    .is_none_or(|r| now_ms >= r.saturating_add(retry));
                (e <= now_ms && fresh).then_some((e, *id))
            })
            .collect();
        due.sort_unstable();
        due.truncate(max);
        for (_, id) in &due {
            if let Some(t) = self.leases.get_mut(id) {
                t.reported_ms = Some(now_ms);
            }
        }
        due.into_iter().map(|(_, id)| id).collect()
    }

    /// Remaining TTLs (seconds) of up to `max` leases, for a LeaseCheckpoint proposal.
    pub fn checkpoints(&mut self, now_ms: u64, max: usize) -> Vec<(LeaseId, i64)> {
        if !self.primary {
            return Vec::new();
        }
        self.settle(now_ms);
        let ids: Vec<LeaseId> = self.leases.keys().copied().take(max).collect();
        ids.into_iter()
            .filter_map(|id| self.remaining(id, now_ms).map(|r| (id, r)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_follows_caller_time_only() {
        let mut l = Lessor::new(3000);
        l.promote(0, 0, [(1, 5, 0), (2, 10, 3)]);
        assert!(l.expired(2_999, 10).is_empty());
        assert_eq!(l.expired(3_000, 10), vec![2]);
        // reported once, then again after the retry interval
        assert!(l.expired(4_000, 10).is_empty());
        assert_eq!(l.expired(5_000, 10), vec![1]);
        assert_eq!(l.expired(6_000, 10), vec![2]);
        assert_eq!(l.renew(1, 6_000), None, "expired lease cannot be renewed");
        l.revoked(1);
        l.revoked(2);
        assert!(l.expired(100_000, 10).is_empty());
    }

    #[test]
    fn promote_extends_and_renew_resets() {
        let mut l = Lessor::new(3000);
        l.promote(1_000, 2_000, [(7, 4, 0)]);
        assert_eq!(l.remaining(7, 1_000), Some(6));
        assert!(l.expired(6_999, 1).is_empty());
        assert_eq!(l.renew(7, 6_000), Some(4));
        assert!(l.expired(9_999, 1).is_empty());
        assert_eq!(l.expired(10_000, 1), vec![7]);
        l.demote();
        assert!(l.expired(20_000, 1).is_empty());
        assert_eq!(l.renew(7, 20_000), None);
    }

    #[test]
    fn grant_expiry_starts_at_next_known_instant() {
        let mut l = Lessor::new(3000);
        l.promote(0, 0, []);
        l.granted(9, 2);
        assert!(l.expired(500, 5).is_empty()); // settles expiry at 2_500
        assert!(l.expired(2_499, 5).is_empty());
        assert_eq!(l.expired(2_500, 5), vec![9]);
        let mut follower = Lessor::new(3000);
        follower.granted(9, 2);
        assert!(follower.expired(1_000_000, 5).is_empty());
    }
}
