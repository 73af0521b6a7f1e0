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

    pub(crate) fn entry(&mut self) -> Result<Entry, DecodeError> {
        let index = self.index()?;
        let term = self.u64()?;
        let kind = match self.u8()? {
            0 => EntryKind::Normal,
            1 => EntryKind::ConfChange,
            k => return Err(DecodeError(format!("bad entry kind {k}"))),
        };
        let len = self.u32()? as usize;
        let data = Bytes::copy_from_slice(self.bytes(len)?);
        Ok(Entry {
            term,
            index,
            kind,
            data,
        })
    }
}

/// Bytes an entry takes in a record payload: index, term, kind, length, data.
pub(crate) const ENTRY_OVERHEAD: usize = 8 + 8 + 1 + 4;

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

/// Encodes one entry. The caller guarantees `entry.data.len()` fits in a record (far below
/// `u32::MAX`).
pub(crate) fn put_entry(out: &mut Vec<u8>, entry: &Entry) {
    debug_assert!(entry.data.len() <= u32::MAX as usize);
    put_u64(out, entry.index);
    put_u64(out, entry.term);
    out.push(match entry.kind {
        EntryKind::Normal => 0,
        EntryKind::ConfChange => 1,
    });
    put_u32(out, entry.data.len() as u32);
    out.extend_from_slice(&entry.data);
}
