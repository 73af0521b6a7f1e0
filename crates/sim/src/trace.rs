//! The event trace: a running hash of every event (the determinism fingerprint), the most
//! recent events for failure reports, and optional echoing of everything.

use std::collections::VecDeque;
use std::fmt;

/// How many recent events a failure report shows.
pub const RECENT_EVENTS: usize = 60;

/// Records events as they happen.
#[derive(Debug)]
pub struct Trace {
    hash: u64,
    count: u64,
    recent: VecDeque<String>,
    echo: bool,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over `bytes`, continuing from `hash`: stable across platforms and releases, unlike
/// the standard library's hasher.
pub fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// FNV-1a of `bytes` from the standard offset.
pub fn fnv(bytes: &[u8]) -> u64 {
    fnv1a(FNV_OFFSET, bytes)
}

impl Trace {
    /// An empty trace; with `echo`, every event is also printed to stderr.
    pub fn new(echo: bool) -> Self {
        Trace {
            hash: FNV_OFFSET,
            count: 0,
            recent: VecDeque::with_capacity(RECENT_EVENTS),
            echo,
        }
    }

    /// Records one event at simulated time `now` (microseconds).
    pub fn record(&mut self, now: u64, event: fmt::Arguments<'_>) {
        let line = format!("{now:>10}us {event}");
        self.hash = fnv1a(self.hash, line.as_bytes());
        self.count += 1;
        if self.echo {
            eprintln!("{line}");
        }
        if self.recent.len() == RECENT_EVENTS {
            self.recent.pop_front();
        }
        self.recent.push_back(line);
    }

    /// The hash of every event so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// How many events were recorded.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The last [`RECENT_EVENTS`] events, oldest first.
    pub fn recent(&self) -> Vec<String> {
        self.recent.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_event_and_order() {
        let mut a = Trace::new(false);
        let mut b = Trace::new(false);
        a.record(1, format_args!("x"));
        a.record(2, format_args!("y"));
        b.record(2, format_args!("y"));
        b.record(1, format_args!("x"));
        assert_ne!(a.hash(), b.hash());
        let mut c = Trace::new(false);
        c.record(1, format_args!("x"));
        c.record(2, format_args!("y"));
        assert_eq!(a.hash(), c.hash());
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn keeps_only_recent_events() {
        let mut t = Trace::new(false);
        for i in 0..(RECENT_EVENTS as u64 + 5) {
            t.record(i, format_args!("e{i}"));
        }
        let r = t.recent();
        assert_eq!(r.len(), RECENT_EVENTS);
        assert!(r[0].ends_with("e5"));
    }
}
