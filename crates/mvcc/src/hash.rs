//! `Hash` and `HashKV`: CRC-32C over the logical content, independent of how far the
//! incremental physical compaction has progressed on this member.

use crate::error::MvccError;
use crate::index::{KeyIndex, Rev};
use crate::read::{read_index, HistoryTable};
use crate::schema::{split_history, Record};
use smallvec::SmallVec;
use std::sync::RwLock;

/// Keys copied out of the index per lock hold.
const CHUNK_KEYS: usize = 4096;

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
/// `compact` (exactly what the physical compaction keeps, see `compact.rs`), in key then
/// revision order. Records come from `t`, a snapshot at revision `>= upto`.
///
/// The index is walked in chunks (applies go on in between; what they add is above `upto`).
/// `None` when a compaction beyond `compact` started meanwhile: the index may then lack
/// revisions the snapshot's view includes, so the caller retries with a newer snapshot.
pub(crate) fn hash_kv<T: HistoryTable>(
    index: &RwLock<KeyIndex>,
    t: &T,
    compact: u64,
    upto: u64,
) -> Result<Option<u32>, MvccError> {
    let mut h = 0u32;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let chunk: Vec<(Vec<u8>, SmallVec<[Rev; 1]>)> = {
            let ix = read_index(index);
            if ix.floor() > compact {
                return Ok(None);
            }
            let iter: Box<dyn Iterator<Item = (&[u8], &crate::index::KeyEntry)>> = match &after {
                None => Box::new(ix.iter()),
                Some(k) => Box::new(ix.iter_from(k).skip_while(|(key, _)| *key == k.as_slice())),
            };
            iter.take(CHUNK_KEYS)
                .map(|(k, e)| (k.to_vec(), e.revs.clone()))
                .collect()
        };
        let Some((last, _)) = chunk.last() else {
            return Ok(Some(h));
        };
        after = Some(last.clone());
        for (key, revs) in &chunk {
            // The newest revision <= compact is hashed only if it survives compaction.
            let kept_old = revs.iter().rev().find(|r| r.main <= compact);
            for r in revs {
                let keep = if r.main > compact {
                    r.main <= upto
                } else {
                    Some(r) == kept_old && r.main <= upto && !(r.tomb && r.main < compact)
                };
                if keep {
                    let guard = t.get(r.pos())?.ok_or_else(|| {
                        MvccError::CorruptData(format!(
                            "the key index points to a missing revision {:?}",
                            r.pos()
                        ))
                    })?;
                    let (_, rec) = split_history(guard.value())?;
                    debug_assert_eq!(Record::is_tombstone(rec), r.tomb);
                    h = feed(h, key, r.main, u64::from(r.sub), rec);
                }
            }
        }
    }
}
