//! The bounded window of Appends in flight to one follower.

use std::collections::VecDeque;

/// Last indexes of the Appends sent but not yet acknowledged, oldest first.
/// Invariant: at most `capacity` entries, in increasing order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inflights {
    queue: VecDeque<u64>,
    capacity: usize,
}

impl Inflights {
    /// An empty window of `capacity` messages.
    pub fn new(capacity: usize) -> Inflights {
        assert!(capacity > 0, "inflight capacity must be positive");
        Inflights {
            queue: VecDeque::new(),
            capacity,
        }
    }

    /// Records an Append whose last entry is `index`.
    pub fn add(&mut self, index: u64) {
        assert!(!self.full(), "inflights overflow");
        debug_assert!(self.queue.back().is_none_or(|b| *b <= index));
        self.queue.push_back(index);
    }

    /// Frees every Append whose last index is `<= index` (acknowledged).
    pub fn free_le(&mut self, index: u64) {
        while self.queue.front().is_some_and(|f| *f <= index) {
            self.queue.pop_front();
        }
    }

    /// Frees the oldest Append (it was probably lost), making room for one more.
    pub fn free_first_one(&mut self) {
        self.queue.pop_front();
    }

    /// True when no further Append may be sent.
    pub fn full(&self) -> bool {
        self.queue.len() >= self.capacity
    }

    /// Appends in flight.
    pub fn count(&self) -> usize {
        self.queue.len()
    }

    /// Forgets everything in flight.
    pub fn reset(&mut self) {
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_fills_and_frees() {
        let mut w = Inflights::new(3);
        w.add(1);
        w.add(5);
        w.add(9);
        assert!(w.full());
        w.free_le(5);
        assert_eq!(w.count(), 1);
        assert!(!w.full());
        w.free_le(100);
        assert_eq!(w.count(), 0);
    }
}
