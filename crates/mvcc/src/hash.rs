//! `Hash` and `HashKV`: CRC-32C over the logical content, independent of how far the
//! incremental physical compaction has progressed on this member.

use crate::error::MvccError;
use crate::read::KvTable;
use crate::schema::Record;

/// Feeds `(key, main, sub, record)` into the hash.
fn feed(h: u32, key: &[u8], main: u64, sub: u64, rec: &[u8]) -> u32 {
    let mut h = crc32c::crc32c_append(h, &(key.len() as u64).to_be_bytes());
    h = crc32c::crc32c_append(h, key);
    h = crc32c::crc32c_append(h, &main.to_be_bytes());
    h = crc32c::crc32c_append(h, &sub.to_be_bytes());
    h = crc32c::crc32c_append(h, &(rec.len() as u64).to_be_bytes());
    crc32c::crc32c_append(h, rec)
}

/// Hash of every revision `<= upto` that survives compaction at `compact`: revisions above
/// `compact`, plus each key's newest revision `<= compact` unless it is a tombstone below
/// `compact` (exactly what the physical compaction keeps, see `compact.rs`).
pub(crate) fn hash_kv<T: KvTable>(kv: &T, compact: u64, upto: u64) -> Result<u32, MvccError> {
    let mut h = 0u32;
    // Newest revision <= compact of the current key group, not yet hashed.
    let mut pending: Option<(Vec<u8>, u64, u64, Vec<u8>)> = None;
    let flush = |h: u32, p: Option<(Vec<u8>, u64, u64, Vec<u8>)>| -> u32 {
        match p {
            Some((k, m, s, rec)) if m <= upto && !(Record::is_tombstone(&rec) && m < compact) => {
                feed(h, &k, m, s, &rec)
            }
            _ => h,
        }
    };
    for item in kv.range::<(&[u8], u64, u64)>(..)? {
        let (k, v) = item?;
        let (key, main, sub) = k.value();
        if pending.as_ref().is_some_and(|p| p.0.as_slice() != key) {
            h = flush(h, pending.take());
        }
        if main <= compact {
            pending = Some((key.to_vec(), main, sub, v.value().to_vec()));
        } else {
            h = flush(h, pending.take());
            if main <= upto {
                h = feed(h, key, main, sub, v.value());
            }
        }
    }
    Ok(flush(h, pending))
}
