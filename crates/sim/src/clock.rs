//! Member clocks: each member ticks at its own rate (skew) with random jitter.

use crate::rng::SimRng;

/// Largest skew, in per-mille of the nominal tick interval.
pub const MAX_SKEW_PERMILLE: u64 = 500;

/// One member's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeClock {
    /// The member's tick interval in microseconds (nominal interval scaled by its skew).
    pub interval_us: u64,
    /// Up to this many microseconds are added at random to each tick.
    pub jitter_us: u64,
}

impl NodeClock {
    /// A clock with the nominal interval and no jitter.
    pub fn exact(nominal_us: u64) -> Self {
        NodeClock {
            interval_us: nominal_us,
            jitter_us: 0,
        }
    }

    /// A clock running between `1 - skew` and `1 + skew` times the nominal rate (skew in
    /// per-mille, at most [`MAX_SKEW_PERMILLE`]), with jitter up to `jitter_permille` of the
    /// interval.
    pub fn skewed(
        rng: &mut SimRng,
        nominal_us: u64,
        skew_permille: u64,
        jitter_permille: u64,
    ) -> Self {
        let skew = skew_permille.min(MAX_SKEW_PERMILLE);
        let factor = rng.range(1000 - skew, 1000 + skew + 1);
        let interval_us = (nominal_us * factor / 1000).max(1);
        NodeClock {
            interval_us,
            jitter_us: interval_us * jitter_permille / 1000,
        }
    }

    /// When the tick after one at `now` happens.
    pub fn next_tick(&self, rng: &mut SimRng, now: u64) -> u64 {
        now + self.interval_us + rng.range(0, self.jitter_us + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_and_jitter_are_bounded() {
        let mut rng = SimRng::new(5);
        for _ in 0..100 {
            let c = NodeClock::skewed(&mut rng, 10_000, 200, 100);
            assert!((8_000..=12_000).contains(&c.interval_us), "{c:?}");
            let next = c.next_tick(&mut rng, 50);
            assert!(next >= 50 + c.interval_us && next <= 50 + c.interval_us + c.jitter_us);
        }
        let exact = NodeClock::exact(7);
        assert_eq!(exact.next_tick(&mut rng, 0), 7);
    }
}
