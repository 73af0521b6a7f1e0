//! On-disk layout: redb table definitions and the encoding of stored records.
//!
//! * `history`: `(main, sub) -> key ‖ record`, every stored revision of every key, ordered by
//!   revision, so writes append at the end of the B-tree. The key index over it is kept in
//!   memory (`index.rs`) and rebuilt from this table when the store opens.
//! * `meta`: named counters (consistent index, current and compaction revisions, compaction
//!   cursor).
//! * `lease`: `id -> (granted ttl, checkpointed remaining ttl)`.
//! * `lease_keys`: `(id, key) -> ()`, the keys attached to each lease.
//! * `alarm`: `(member, alarm type) -> ()`.
//! * `auth`: `name -> record`, the users, roles, enabled flag and auth revision (`auth.rs`).

use crate::error::MvccError;
use crate::types::{AlarmType, KeyValue};
use redb::TableDefinition;

/// Every stored revision of every key: `(main, sub) -> key ‖ record` ([`encode_history`]).
pub(crate) const HISTORY: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("history");
/// The key-ordered table of the first store layout: a store holding it is refused at open.
pub(crate) const LEGACY_KV: TableDefinition<(&[u8], u64, u64), &[u8]> = TableDefinition::new("kv");
/// Named counters.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Leases.
pub(crate) const LEASE: TableDefinition<i64, (i64, i64)> = TableDefinition::new("lease");
/// Lease attachments.
pub(crate) const LEASE_KEYS: TableDefinition<(i64, &[u8]), ()> = TableDefinition::new("lease_keys");
/// Active alarms.
pub(crate) const ALARM: TableDefinition<(u64, i32), ()> = TableDefinition::new("alarm");

/// Auth state: users, roles, enabled flag and auth revision (see `auth.rs`).
pub(crate) const AUTH: TableDefinition<&[u8], &[u8]> = TableDefinition::new("auth");

/// Last Raft index whose effects are in the store.
pub(crate) const META_CONSISTENT_INDEX: &str = "consistent_index";
/// Current main revision (starts at 1, as etcd).
pub(crate) const META_CURRENT_REV: &str = "current_rev";
/// Logical compaction revision: reads below it fail.
pub(crate) const META_COMPACT_REV: &str = "compact_rev";
/// Physical compaction cursor: revisions before `(main, sub)` are processed up to
/// `META_COMPACT_DONE`.
pub(crate) const META_CURSOR_MAIN: &str = "compact_cursor_main";
/// See [`META_CURSOR_MAIN`].
pub(crate) const META_CURSOR_SUB: &str = "compact_cursor_sub";
/// Compaction revision the physical compaction has fully reached.
pub(crate) const META_COMPACT_DONE: &str = "compact_done";
/// Set while a snapshot import is in progress (a crash in the middle leaves it set).
pub(crate) const META_IMPORTING: &str = "importing";

/// Revision etcd starts at: the first write gets revision 2.
pub(crate) const INITIAL_REVISION: u64 = 1;

const TAG_PUT: u8 = 0;
const TAG_TOMBSTONE: u8 = 1;
const PUT_HEADER: usize = 1 + 8 + 8 + 8;

/// One stored revision of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// A live value.
    Put {
        /// Revision that created this generation of the key.
        create_revision: u64,
        /// Version within the generation (1 at creation).
        version: i64,
        /// Attached lease.
        lease: i64,
        /// Value.
        value: Vec<u8>,
    },
    /// A deletion, ending the key's generation.
    Tombstone,
}

impl Record {
    /// Encodes the record (the part of a `history` value after the key).
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding of the record to `out`.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Record::Tombstone => out.push(TAG_TOMBSTONE),
            Record::Put {
                create_revision,
                version,
                lease,
                value,
            } => {
                out.reserve(PUT_HEADER + value.len());
                out.push(TAG_PUT);
                out.extend_from_slice(&create_revision.to_be_bytes());
                out.extend_from_slice(&version.to_be_bytes());
                out.extend_from_slice(&lease.to_be_bytes());
                out.extend_from_slice(value);
            }
        }
    }

    /// `(create_revision, version, lease)` of an encoded put record; `None` for a tombstone.
    pub(crate) fn decode_meta(bytes: &[u8]) -> Result<Option<(u64, i64, i64)>, MvccError> {
        match Record::decode(&bytes[..bytes.len().min(PUT_HEADER)], true)? {
            Record::Tombstone => Ok(None),
            Record::Put {
                create_revision,
                version,
                lease,
                ..
            } => Ok(Some((create_revision, version, lease))),
        }
    }

    /// Decodes a record (a `history` value after its key); `keys_only` skips copying the value.
    pub(crate) fn decode(bytes: &[u8], keys_only: bool) -> Result<Record, MvccError> {
        match bytes.first() {
            Some(&TAG_TOMBSTONE) if bytes.len() == 1 => Ok(Record::Tombstone),
            Some(&TAG_PUT) if bytes.len() >= PUT_HEADER => {
                let word = |i: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&bytes[1 + 8 * i..9 + 8 * i]);
                    b
                };
                Ok(Record::Put {
                    create_revision: u64::from_be_bytes(word(0)),
                    version: i64::from_be_bytes(word(1)),
                    lease: i64::from_be_bytes(word(2)),
                    value: if keys_only {
                        Vec::new()
                    } else {
                        bytes[PUT_HEADER..].to_vec()
                    },
                })
            }
            _ => Err(MvccError::CorruptData(format!(
                "bad kv record of {} bytes",
                bytes.len()
            ))),
        }
    }

    /// True for a deletion marker.
    pub(crate) fn is_tombstone(bytes: &[u8]) -> bool {
        bytes.first() == Some(&TAG_TOMBSTONE)
    }

    /// The etcd key-value for this record at `mod_revision`; `None` for a tombstone.
    pub(crate) fn into_kv(self, key: &[u8], mod_revision: u64) -> Option<KeyValue> {
        match self {
            Record::Tombstone => None,
            Record::Put {
                create_revision,
                version,
                lease,
                value,
            } => Some(KeyValue {
                key: key.to_vec(),
                create_revision: rev_i64(create_revision),
                mod_revision: rev_i64(mod_revision),
                version,
                value,
                lease,
            }),
        }
    }
}

/// Encodes a `history` value: `u32 key length ‖ key ‖ record` into `out` (cleared first).
pub(crate) fn encode_history(key: &[u8], rec: &Record, out: &mut Vec<u8>) -> Result<(), MvccError> {
    encode_history_key(key, out)?;
    rec.encode_into(out);
    Ok(())
}

/// Starts a `history` value in `out` (cleared first): the key and its length; the encoded
/// record follows.
pub(crate) fn encode_history_key(key: &[u8], out: &mut Vec<u8>) -> Result<(), MvccError> {
    let len = u32::try_from(key.len())
        .map_err(|_| MvccError::Storage(format!("key of {} bytes is too long", key.len())))?;
    out.clear();
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(key);
    Ok(())
}

/// Splits a `history` value into `(key, record bytes)`.
pub(crate) fn split_history(bytes: &[u8]) -> Result<(&[u8], &[u8]), MvccError> {
    let bad = || MvccError::CorruptData(format!("bad history record of {} bytes", bytes.len()));
    let len: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(bad)?;
    let end = usize::try_from(u32::from_be_bytes(len))
        .ok()
        .and_then(|l| l.checked_add(4))
        .filter(|end| *end <= bytes.len())
        .ok_or_else(bad)?;
    Ok((&bytes[4..end], &bytes[end..]))
}

/// Revisions are stored unsigned; etcd exposes them as int64. Revisions never exceed
/// `i64::MAX` (one per applied request).
pub(crate) fn rev_i64(rev: u64) -> i64 {
    i64::try_from(rev).unwrap_or(i64::MAX)
}

/// Alarm type to its stored discriminant.
pub(crate) fn alarm_code(a: AlarmType) -> i32 {
    a as i32
}

/// Stored discriminant to alarm type.
pub(crate) fn alarm_from_code(c: i32) -> Result<AlarmType, MvccError> {
    match c {
        0 => Ok(AlarmType::None),
        1 => Ok(AlarmType::Nospace),
        2 => Ok(AlarmType::Corrupt),
        _ => Err(MvccError::CorruptData(format!("unknown alarm {c}"))),
    }
}

/// Where a range ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RangeEnd<'a> {
    /// Only the key itself (`range_end` empty).
    Single,
    /// Every key >= key (`range_end == [0]`).
    Unbounded,
    /// `[key, end)`.
    Before(&'a [u8]),
}

impl<'a> RangeEnd<'a> {
    /// etcd's interpretation of `range_end`.
    pub(crate) fn from_request(range_end: &'a [u8]) -> RangeEnd<'a> {
        match range_end {
            [] => RangeEnd::Single,
            [0] => RangeEnd::Unbounded,
            end => RangeEnd::Before(end),
        }
    }

    /// Whether `k` lies in the range starting at `start`.
    pub(crate) fn contains(&self, start: &[u8], k: &[u8]) -> bool {
        match self {
            RangeEnd::Single => k == start,
            RangeEnd::Unbounded => k >= start,
            RangeEnd::Before(end) => k >= start && k < *end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let r = Record::Put {
            create_revision: 7,
            version: 3,
            lease: -5,
            value: b"hello".to_vec(),
        };
        assert_eq!(Record::decode(&r.encode(), false).unwrap(), r);
        assert_eq!(
            Record::decode(&Record::Tombstone.encode(), false).unwrap(),
            Record::Tombstone
        );
        assert!(Record::decode(&[9, 9], false).is_err());
        assert!(Record::decode(&[TAG_PUT, 1, 2], false).is_err());
        assert!(Record::decode(&[], false).is_err());
        assert_eq!(Record::decode_meta(&r.encode()).unwrap(), Some((7, 3, -5)));
        assert_eq!(Record::decode_meta(&[TAG_TOMBSTONE]).unwrap(), None);
    }

    #[test]
    fn history_round_trip() {
        let mut buf = vec![1, 2, 3];
        encode_history(b"key", &Record::Tombstone, &mut buf).unwrap();
        let (k, rec) = split_history(&buf).unwrap();
        assert_eq!((k, rec), (&b"key"[..], &[TAG_TOMBSTONE][..]));
        assert!(split_history(&[0, 0, 0, 9, 1]).is_err(), "key past the end");
        assert!(split_history(&[0, 0]).is_err());
        assert!(split_history(&[0xFF, 0xFF, 0xFF, 0xFF]).is_err());
    }

    #[test]
    fn range_end_conventions() {
        assert!(RangeEnd::from_request(b"").contains(b"a", b"a"));
        assert!(!RangeEnd::from_request(b"").contains(b"a", b"ab"));
        assert!(RangeEnd::from_request(&[0]).contains(b"a", b"zzz"));
        assert!(!RangeEnd::from_request(&[0]).contains(b"b", b"a"));
        assert!(RangeEnd::from_request(b"c").contains(b"a", b"bz"));
        assert!(!RangeEnd::from_request(b"c").contains(b"a", b"c"));
    }
}
