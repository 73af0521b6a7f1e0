//! Keys, values and the send timestamps carried by watch values.

use std::sync::OnceLock;
use std::time::Instant;

/// A small fast pseudo-random generator (splitmix64); the bench needs spread, not secrecy.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0; the modulo bias is negligible for bench key spaces).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
}

/// Key number `idx`: the prefix then the number zero-padded to `size` bytes in all.
/// The options check that `idx` < key space fits the digits left after the prefix.
pub fn key(prefix: &str, size: usize, idx: u64) -> Vec<u8> {
    let width = size.saturating_sub(prefix.len());
    let k = format!("{prefix}{idx:0width$}");
    debug_assert_eq!(k.len(), size, "key space checked against key size");
    k.into_bytes()
}

/// The key number of request `op` (the run-wide request number) for a client.
pub fn key_index(rng: &mut Rng, sequential: bool, space: u64, op: u64) -> u64 {
    if sequential {
        op % space
    } else {
        rng.below(space)
    }
}

/// A value of `size` printable bytes.
pub fn value(rng: &mut Rng, size: usize) -> Vec<u8> {
    (0..size)
        .map(|_| b'a' + (rng.next_u64() % 26) as u8)
        .collect()
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Nanoseconds since this process's first call (a monotonic clock shared by all tasks).
pub fn now_nanos() -> u64 {
    u64::try_from(base().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// `value` with its first 8 bytes replaced by the current time (little endian nanoseconds).
pub fn stamp(mut value: Vec<u8>) -> Vec<u8> {
    debug_assert!(value.len() >= 8, "the options keep watch values >= 8 bytes");
    if value.len() >= 8 {
        value[..8].copy_from_slice(&now_nanos().to_le_bytes());
    }
    value
}

/// The time a value was stamped, if it carries one.
pub fn read_stamp(value: &[u8]) -> Option<u64> {
    let b: [u8; 8] = value.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_padded_to_size() {
        assert_eq!(key("", 8, 42), b"00000042");
        assert_eq!(key("k/", 6, 7), b"k/0007");
    }

    #[test]
    fn key_indexes() {
        let mut r = Rng::new(1);
        assert_eq!(key_index(&mut r, true, 10, 23), 3);
        for op in 0..1000 {
            assert!(key_index(&mut r, false, 10, op) < 10);
        }
        let distinct: std::collections::HashSet<u64> = (0..1000)
            .map(|op| key_index(&mut r, false, 10, op))
            .collect();
        assert_eq!(distinct.len(), 10, "random keys cover a small space");
    }

    #[test]
    fn chance_follows_p() {
        let mut r = Rng::new(7);
        let hits = (0..10_000).filter(|_| r.chance(0.3)).count();
        assert!((2_500..3_500).contains(&hits), "{hits}");
        assert!(!(0..1000).any(|_| r.chance(0.0)));
        assert!((0..1000).all(|_| r.chance(1.0)));
    }

    #[test]
    fn stamps_round_trip() {
        let mut r = Rng::new(3);
        let before = now_nanos();
        let v = stamp(value(&mut r, 32));
        assert_eq!(v.len(), 32);
        let t = read_stamp(&v).unwrap();
        assert!(t >= before && t <= now_nanos());
        assert_eq!(read_stamp(b"short"), None);
    }
}
