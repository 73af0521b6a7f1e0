//! Little-endian encoding of the Raft boundary types into record payloads, and a bounds-checked
//! cursor to decode them. Decoding never panics and never allocates more than the input could
//! describe.

use bytes::Bytes;
use quorum_raft::{ConfState, Entry, EntryKind, HardState, SnapshotMetadata};

/// Why a payload could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// The largest log index (and segment number) accepted anywhere: far beyond any real log,
/// and low enough that `index + 1` can never overflow.
pub(crate) const MAX_INDEX: u64 = i64::MAX as u64;

/// A read cursor over a byte slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError(format!(
                "truncated: need {n} bytes, {} left",
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.bytes(4)?);
        Ok(u32::from_le_bytes(a))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.bytes(8)?);
        Ok(u64::from_le_bytes(a))
    }

    /// A log index (or segment number), at most [`MAX_INDEX`].
    pub(crate) fn index(&mut self) -> Result<u64, DecodeError> {
        let v = self.u64()?;
        if v > MAX_INDEX {
            return Err(DecodeError(format!("index {v} out of range")));
        }
        Ok(v)
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError(format!("{} trailing bytes", self.buf.len())))
        }
    }

    fn id_list(&mut self) -> Result<Vec<u64>, DecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(8) > self.remaining() {
            return Err(DecodeError(format!("list of {n} ids exceeds the payload")));
        }
        (0..n).map(|_| self.u64()).collect()
    }

    pub(crate) fn hard_state(&mut self) -> Result<HardState, DecodeError> {
        Ok(HardState {
            term: self.u64()?,
            vote: self.u64()?,
            commit: self.index()?,
        })
    }

    pub(crate) fn conf_state(&mut self) -> Result<ConfState, DecodeError> {
        let voters = self.id_list()?;
        let learners = self.id_list()?;
        let voters_outgoing = self.id_list()?;
        let learners_next = self.id_list()?;
        let auto_leave = match self.u8()? {
            0 => false,
            1 => true,
            b => return Err(DecodeError(format!("bad auto_leave flag {b}"))),
        };
        Ok(ConfState {
            voters,
            learners,
            voters_outgoing,
            learners_next,
            auto_leave,
        })
    }

    pub(crate) fn snapshot_metadata(&mut self) -> Result<SnapshotMetadata, DecodeError> {
        Ok(SnapshotMetadata {
            index: self.index()?,
            term: self.u64()?,
            conf_state: self.conf_state()?,
        })
    }

    /// A LEB128-encoded `u32` (at most 5 bytes).
    pub(crate) fn varint_u32(&mut self) -> Result<u32, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..5 {
            let b = self.u8()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return u32::try_from(value)
                    .map_err(|_| DecodeError(format!("varint {value} exceeds u32")));
            }
        }
        Err(DecodeError("varint longer than 5 bytes".into()))
    }

    /// The entries of an entries record: see [`put_entries`].
    pub(crate) fn entries(&mut self) -> Result<Vec<Entry>, DecodeError> {
        let first = self.index()?;
        let n = self.u32()? as usize;
        if n == 0 {
            return Err(DecodeError("empty entries record".into()));
        }
        if n.saturating_mul(ENTRY_MIN_SIZE) > self.remaining() {
            return Err(DecodeError(format!("{n} entries exceed the payload")));
        }
        if first.saturating_add(n as u64 - 1) > MAX_INDEX {
            return Err(DecodeError(format!(
                "{n} entries from {first} run out of range"
            )));
        }
        let mut entries = Vec::with_capacity(n);
        let mut term = 0;
        for k in 0..n as u64 {
            let flags = self.u8()?;
            if flags & !(FLAG_CONF_CHANGE | FLAG_TERM) != 0 {
                return Err(DecodeError(format!("bad entry flags {flags:#04x}")));
            }
            if flags & FLAG_TERM != 0 {
                term = self.u64()?;
            } else if k == 0 {
                return Err(DecodeError("first entry of a record without a term".into()));
            }
            let kind = if flags & FLAG_CONF_CHANGE != 0 {
                EntryKind::ConfChange
            } else {
                EntryKind::Normal
            };
            let len = self.varint_u32()? as usize;
            let data = Bytes::copy_from_slice(self.bytes(len)?);
            entries.push(Entry {
                term,
                index: first + k,
                kind,
                data,
            });
        }
        Ok(entries)
    }
}

/// Entry flag: the entry is a configuration change.
const FLAG_CONF_CHANGE: u8 = 1;
/// Entry flag: a term follows (always on the first entry, then only where the term changes).
const FLAG_TERM: u8 = 2;
/// Fewest bytes an entry takes in a record: flags and a one-byte length.
const ENTRY_MIN_SIZE: usize = 2;
/// Most bytes an entry takes in a record besides its data: flags, term, 5-byte length.
pub(crate) const ENTRY_MAX_OVERHEAD: usize = 1 + 8 + 5;
/// Bytes of an entries record's payload before the entries: first index and count.
pub(crate) const ENTRIES_HEADER: usize = 8 + 4;

pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_hard_state(out: &mut Vec<u8>, hs: &HardState) {
    put_u64(out, hs.term);
    put_u64(out, hs.vote);
    put_u64(out, hs.commit);
}

fn put_id_list(out: &mut Vec<u8>, ids: &[u64]) {
    // Membership lists are tiny (a handful of members); u32 is far beyond any real size.
    debug_assert!(ids.len() <= u32::MAX as usize);
    put_u32(out, ids.len() as u32);
    for id in ids {
        put_u64(out, *id);
    }
}

pub(crate) fn put_conf_state(out: &mut Vec<u8>, cs: &ConfState) {
    put_id_list(out, &cs.voters);
    put_id_list(out, &cs.learners);
    put_id_list(out, &cs.voters_outgoing);
    put_id_list(out, &cs.learners_next);
    out.push(u8::from(cs.auto_leave));
}

pub(crate) fn put_snapshot_metadata(out: &mut Vec<u8>, meta: &SnapshotMetadata) {
    put_u64(out, meta.index);
    put_u64(out, meta.term);
    put_conf_state(out, &meta.conf_state);
}

fn put_varint_u32(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encodes contiguous entries: `first index u64 | count u32 | entry*`, each entry
/// `flags u8 | [term u64] | data length (LEB128) | data`; the term is written for the first
/// entry and wherever it changes. The caller guarantees contiguity, a non-empty slice, and
/// data lengths far below `u32::MAX` (the record limit).
pub(crate) fn put_entries(out: &mut Vec<u8>, entries: &[Entry]) {
    debug_assert!(!entries.is_empty() && entries.len() <= u32::MAX as usize);
    debug_assert!(entries.windows(2).all(|w| w[0].index + 1 == w[1].index));
    put_u64(out, entries[0].index);
    put_u32(out, entries.len() as u32);
    let mut term = None;
    for e in entries {
        debug_assert!(e.data.len() <= u32::MAX as usize);
        let mut flags = match e.kind {
            EntryKind::Normal => 0,
            EntryKind::ConfChange => FLAG_CONF_CHANGE,
        };
        if term != Some(e.term) {
            flags |= FLAG_TERM;
        }
        out.push(flags);
        if term != Some(e.term) {
            put_u64(out, e.term);
            term = Some(e.term);
        }
        put_varint_u32(out, e.data.len() as u32);
        out.extend_from_slice(&e.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_boundaries() {
        for v in [
            0u32,
            1,
            127,
            128,
            255,
            256,
            16_383,
            16_384,
            u32::MAX - 1,
            u32::MAX,
        ] {
            let mut buf = Vec::new();
            put_varint_u32(&mut buf, v);
            let mut r = Reader::new(&buf);
            assert_eq!(r.varint_u32().unwrap(), v);
            r.finish().unwrap();
        }
        // Six continuation bytes, or a fifth byte overflowing u32, are refused.
        assert!(Reader::new(&[0x80; 6]).varint_u32().is_err());
        assert!(Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x7f])
            .varint_u32()
            .is_err());
    }

    #[test]
    fn entries_carry_terms_only_where_they_change() {
        let entries: Vec<Entry> = (5..10)
            .map(|index| Entry {
                index,
                term: if index < 8 { 3 } else { 4 },
                data: Bytes::from(vec![index as u8; 300]),
                ..Entry::default()
            })
            .collect();
        let mut buf = Vec::new();
        put_entries(&mut buf, &entries);
        // header + 5 × (flags + 2-byte length + 300) + 2 terms
        assert_eq!(buf.len(), 12 + 5 * 303 + 2 * 8);
        let mut r = Reader::new(&buf);
        assert_eq!(r.entries().unwrap(), entries);
        r.finish().unwrap();
    }
}
