//! The lease workload and its checks (members that support leases: the server's core).
//!
//! One lease holder per run grants a lease (TTL [`LEASE_TTL_S`]), attaches a key to it and
//! renews it every [`RENEW_EVERY_US`] through whichever member it believes leads, until a
//! random stop time (or the end of the run). Checked:
//!
//! - **Safety**: the key never disappears (a member applies its deletion) before the lease
//!   can have expired: a successful keep-alive sent at `t` answered with TTL `s` keeps it until
//!   at least `t + s · FASTEST_CLOCK` of simulated time — the fastest member clock runs at
//!   1/0.7 of real time (`clock.rs`: intervals of 0.7–1.3 × nominal, jitter only slows), which
//!   is the skew the server's lessor, timing leases on the leader's own clock, must tolerate.
//!   The same holds from the grant.
//! - **Liveness**: once the holder stopped and the cluster healed, the key is gone from every
//!   member by the end of the run, if the run lasts long enough for the slowest clock to
//!   expire it ([`LeaseHolder::expiry_checkable`]).

use quorum_raft::NodeId;

/// Granted TTL (seconds); the sim's store allows leases this short.
pub const LEASE_TTL_S: i64 = 1;
/// Keep-alive period (simulated µs).
pub const RENEW_EVERY_US: u64 = 250_000;
/// An answer not received within this long is given up (µs).
pub const LEASE_OP_TIMEOUT_US: u64 = 200_000;
/// The lease holder's id.
pub const LEASE_ID: i64 = 0x1ea5e;
/// The key attached to the lease.
pub const LEASE_KEY: &str = "lease/held";
/// Keys with this prefix belong to the lease workload (not to the register or bank).
pub const LEASE_PREFIX: &str = "lease/";
/// Real time per unit of member-clock time at the fastest clock (permille).
pub const FASTEST_CLOCK_PERMILLE: u64 = 700;
/// Real time per unit of member-clock time at the slowest clock (1.3 × nominal, plus 20 %
/// jitter), permille.
pub const SLOWEST_CLOCK_PERMILLE: u64 = 1560;

/// A lease request from the holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseOp {
    /// Grant lease `id` with `ttl_s`.
    Grant {
        /// Request id.
        op: u64,
        /// Lease id.
        id: i64,
        /// TTL in seconds.
        ttl_s: i64,
    },
    /// Put `key` attached to lease `id`.
    Attach {
        /// Request id.
        op: u64,
        /// Lease id.
        id: i64,
        /// Key.
        key: String,
    },
    /// Keep-alive of lease `id`.
    Renew {
        /// Request id.
        op: u64,
        /// Lease id.
        id: i64,
    },
}

impl LeaseOp {
    /// The request id.
    pub fn op(&self) -> u64 {
        match self {
            LeaseOp::Grant { op, .. } | LeaseOp::Attach { op, .. } | LeaseOp::Renew { op, .. } => {
                *op
            }
        }
    }
}

/// A member's answer to a [`LeaseOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseReply {
    /// The request id.
    pub op: u64,
    /// `Ok(Some(ttl))`: granted / renewed for `ttl` seconds (attach: `Some(0)`); `Ok(None)`:
    /// the lease does not exist; `Err`: refused (not leader, no leader, ...).
    pub result: Result<Option<i64>, String>,
}

/// Where the holder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Grant,
    Attach,
    Renew,
    /// The lease is gone (reported not found); nothing more to do.
    Gone,
}

/// The lease holder and what the checks need to know about it.
#[derive(Clone, Debug)]
pub struct LeaseHolder {
    phase: Phase,
    next_op: u64,
    /// The request in flight: (op, sent at, kind).
    in_flight: Option<(u64, u64, Phase)>,
    /// When the last keep-alive was sent (paces them every [`RENEW_EVERY_US`]).
    last_renew_sent: Option<u64>,
    /// The member the holder talks to.
    pub target: NodeId,
    /// The last request timed out: talk to another member.
    pub switch_target: bool,
    /// No keep-alive is sent after this time (µs).
    pub stop_at: u64,
    /// The lease cannot have expired before this time (µs).
    pub alive_until: u64,
    /// The key was attached (its put succeeded).
    pub attached: bool,
    /// Send time of the last keep-alive answered with a TTL (or of the grant).
    pub last_renewed: Option<u64>,
    /// When a member first applied the key's deletion.
    pub removed_at: Option<u64>,
    /// Keep-alives (and the grant) answered with a TTL.
    pub renewed: u64,
}

impl LeaseHolder {
    /// A holder that talks to `target` first and stops renewing at `stop_at`.
    pub fn new(target: NodeId, stop_at: u64) -> Self {
        LeaseHolder {
            phase: Phase::Grant,
            next_op: 1,
            in_flight: None,
            last_renew_sent: None,
            target,
            switch_target: false,
            stop_at,
            alive_until: 0,
            attached: false,
            last_renewed: None,
            removed_at: None,
            renewed: 0,
        }
    }

    /// The next request to send at `now`, if any is due.
    pub fn next(&mut self, now: u64) -> Option<LeaseOp> {
        if let Some((_, sent, _)) = self.in_flight {
            if now < sent + LEASE_OP_TIMEOUT_US {
                return None;
            }
            self.in_flight = None;
            self.switch_target = true;
            self.last_renew_sent = None;
        }
        let op = self.next_op;
        let req = match self.phase {
            Phase::Grant => LeaseOp::Grant {
                op,
                id: LEASE_ID,
                ttl_s: LEASE_TTL_S,
            },
            Phase::Attach => LeaseOp::Attach {
                op,
                id: LEASE_ID,
                key: LEASE_KEY.to_string(),
            },
            Phase::Renew
                if now < self.stop_at
                    && self
                        .last_renew_sent
                        .is_none_or(|t| now >= t + RENEW_EVERY_US) =>
            {
                self.last_renew_sent = Some(now);
                LeaseOp::Renew { op, id: LEASE_ID }
            }
            Phase::Renew | Phase::Gone => return None,
        };
        self.next_op += 1;
        self.in_flight = Some((op, now, self.phase));
        Some(req)
    }

    /// Records an answer; returns whether the holder should switch members.
    pub fn on_reply(&mut self, reply: &LeaseReply) -> bool {
        let Some((op, sent, phase)) = self.in_flight else {
            return false;
        };
        if op != reply.op {
            return false;
        }
        self.in_flight = None;
        match (&reply.result, phase) {
            (Ok(Some(ttl)), Phase::Grant | Phase::Renew) => {
                let ttl_us = u64::try_from(*ttl).unwrap_or(0) * 1_000_000;
                let until = sent + ttl_us * FASTEST_CLOCK_PERMILLE / 1000;
                self.alive_until = self.alive_until.max(until);
                self.last_renewed = Some(sent);
                self.renewed += 1;
                if phase == Phase::Grant {
                    self.phase = Phase::Attach;
                }
                false
            }
            (Ok(Some(_)), Phase::Attach) => {
                self.attached = true;
                self.phase = Phase::Renew;
                false
            }
            (Ok(None), _) => {
                self.phase = Phase::Gone;
                false
            }
            // A grant refused by the store (the lease exists: an earlier grant took effect
            // without its answer reaching us) moves on to the attach.
            (Err(e), Phase::Grant) if e.contains("exist") => {
                self.phase = Phase::Attach;
                false
            }
            (Err(_), _) | (Ok(Some(_)), Phase::Gone) => {
                // Try another member at once.
                self.last_renew_sent = None;
                true
            }
        }
    }

    /// Safety: a member applied the key's deletion at `now`.
    pub fn on_removed(&mut self, now: u64) -> Result<(), String> {
        if self.removed_at.is_none() {
            self.removed_at = Some(now);
        }
        if self.attached && now < self.alive_until {
            return Err(format!(
                "{LEASE_KEY} deleted at {now}us, but its lease was kept alive until at least {}us (last successful keep-alive sent at {:?}us)",
                self.alive_until, self.last_renewed
            ));
        }
        Ok(())
    }

    /// Whether a run ending at `end` (healed at `heal`) lasts long enough that the lease must
    /// have expired and its revocation applied everywhere.
    pub fn expiry_checkable(&self, heal: u64, end: u64) -> bool {
        let Some(last) = self.last_renewed else {
            return false;
        };
        if !self.attached || self.stop_at >= end {
            return false;
        }
        // The slowest clock, plus an election's lease extension on a new leader, plus time
        // for the revoke to commit and apply.
        let ttl_us = LEASE_TTL_S as u64 * 1_000_000;
        let expiry = ttl_us * SLOWEST_CLOCK_PERMILLE / 1000;
        let start = last.max(heal).max(self.stop_at);
        start + expiry + 700_000 <= end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_grants_attaches_renews_and_stops() {
        let mut h = LeaseHolder::new(1, 1_000_000);
        let g = h.next(0).unwrap();
        assert!(matches!(g, LeaseOp::Grant { .. }));
        assert_eq!(h.next(10), None, "one request at a time");
        assert!(!h.on_reply(&LeaseReply {
            op: g.op(),
            result: Ok(Some(1)),
        }));
        assert_eq!(h.alive_until, 700_000);
        let a = h.next(20).unwrap();
        assert!(matches!(a, LeaseOp::Attach { .. }));
        h.on_reply(&LeaseReply {
            op: a.op(),
            result: Ok(Some(0)),
        });
        assert!(h.attached);
        let r = h.next(500_000).unwrap();
        assert!(h.on_reply(&LeaseReply {
            op: r.op(),
            result: Err("not leader".into()),
        }));
        let r = h.next(600_000).unwrap();
        h.on_reply(&LeaseReply {
            op: r.op(),
            result: Ok(Some(1)),
        });
        assert_eq!(h.alive_until, 1_300_000);
        assert!(h.on_removed(1_200_000).is_err(), "deleted while alive");
        assert!(h.on_removed(1_300_000).is_ok());
        assert_eq!(h.next(1_000_000), None, "stopped");
        assert!(!h.expiry_checkable(0, 2_000_000));
        assert!(h.expiry_checkable(0, 3_300_000));
    }

    #[test]
    fn lost_answers_time_out() {
        let mut h = LeaseHolder::new(1, u64::MAX);
        let first = h.next(0).unwrap();
        assert_eq!(h.next(LEASE_OP_TIMEOUT_US - 1), None);
        let again = h.next(LEASE_OP_TIMEOUT_US).unwrap();
        assert_ne!(first.op(), again.op());
        assert!(h.switch_target, "a timeout moves to another member");
        // The stale answer is ignored.
        assert!(!h.on_reply(&LeaseReply {
            op: first.op(),
            result: Ok(Some(1)),
        }));
        assert_eq!(h.alive_until, 0);
    }
}
