//! WAL record framing and the typed records.
//!
//! A record on disk is `len: u32 | crc: u32 | type: u8 | payload`, little-endian, where `len`
//! counts the type byte and the payload (so it is never 0: a zero length marks the
//! preallocated, never-written tail of a segment) and `crc` is the CRC32C of type and payload.

use crate::codec::{self, DecodeError, Reader};
use crate::error::Identity;
use quorum_raft::{ConfState, Entry, HardState, SnapshotMetadata};

/// Bytes of framing before the type byte: length and checksum.
pub(crate) const FRAME_HEADER: usize = 8;
/// Magic number at the start of every segment header record ("QWAL").
const SEGMENT_MAGIC: u32 = u32::from_le_bytes(*b"QWAL");
/// On-disk format version.
const FORMAT_VERSION: u16 = 1;

const T_HEADER: u8 = 1;
const T_STATE: u8 = 2;
const T_ENTRIES: u8 = 3;
const T_HARD_STATE: u8 = 4;
const T_CONF_STATE: u8 = 5;
const T_SNAPSHOT: u8 = 6;
const T_COMPACT: u8 = 7;

/// The first record of every segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub identity: Identity,
    /// Position of the segment in the sequence of segments (0, 1, ...).
    pub seq: u64,
    /// Index the next appended entry had when the segment was created: every entry in earlier
    /// segments has a smaller index.
    pub base: u64,
}

/// The whole persistent state apart from the entries; the second record of every segment, so
/// that a segment carries what the deleted segments before it held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct StateRecord {
    pub hard_state: HardState,
    pub compacted_index: u64,
    pub compacted_term: u64,
    pub conf_state: ConfState,
}

/// A decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    Header(SegmentHeader),
    State(StateRecord),
    /// Contiguous entries; the first one's index may be at or below the current last index,
    /// in which case the log from there on is replaced (a follower's truncation).
    Entries(Vec<Entry>),
    HardState(HardState),
    ConfState(ConfState),
    /// A snapshot was installed: the whole log is replaced by the snapshot point.
    Snapshot(SnapshotMetadata),
    /// Entries up to `index` (whose term is `term`) were discarded.
    Compact {
        index: u64,
        term: u64,
    },
}

/// What [`read_frame`] found at a position.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A record whose checksum matches, `size` bytes long including framing.
    Valid {
        kind: u8,
        payload: &'a [u8],
        size: usize,
    },
    /// Zeros: the unwritten (preallocated) part of a segment.
    Zero,
    /// Fewer bytes than a frame header, or a length/checksum that does not hold.
    Invalid(String),
}

/// Reads the frame at the start of `buf`. Records longer than `max_record` are invalid.
pub(crate) fn read_frame(buf: &[u8], max_record: u64) -> Frame<'_> {
    if buf.len() < FRAME_HEADER + 1 {
        if buf.iter().all(|b| *b == 0) {
            return Frame::Zero;
        }
        return Frame::Invalid(format!("{} bytes left, less than a record", buf.len()));
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as u64;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len == 0 {
        if crc == 0 {
            return Frame::Zero;
        }
        return Frame::Invalid("zero length with a non-zero checksum".into());
    }
    if len > max_record.saturating_add(1) {
        return Frame::Invalid(format!(
            "record length {len} exceeds the limit {max_record}"
        ));
    }
    let body_end = FRAME_HEADER as u64 + len;
    if body_end > buf.len() as u64 {
        return Frame::Invalid(format!(
            "record length {len} runs past the end of the file ({} bytes left)",
            buf.len() - FRAME_HEADER
        ));
    }
    let body = &buf[FRAME_HEADER..body_end as usize];
    let actual = crc32c::crc32c(body);
    if actual != crc {
        return Frame::Invalid(format!(
            "checksum mismatch (stored {crc:#010x}, computed {actual:#010x})"
        ));
    }
    Frame::Valid {
        kind: body[0],
        payload: &body[1..],
        size: body_end as usize,
    }
}

/// Appends a framed record of type `kind` whose payload `fill` writes; returns its size.
fn frame(out: &mut Vec<u8>, kind: u8, fill: impl FnOnce(&mut Vec<u8>)) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER]);
    out.push(kind);
    fill(out);
    let body = &out[start + FRAME_HEADER..];
    // Callers bound payload sizes by the configured record limit (< 4 GiB).
    debug_assert!(body.len() <= u32::MAX as usize);
    let len = (body.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c(body).to_le_bytes();
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + 8].copy_from_slice(&crc);
    out.len() - start
}

/// Upper bound of the size of one entry inside an entries record.
pub(crate) fn entry_size(entry: &Entry) -> u64 {
    (codec::ENTRY_MAX_OVERHEAD + entry.data.len()) as u64
}

/// Appends a framed record; returns its size in bytes.
pub(crate) fn encode(out: &mut Vec<u8>, record: &Record) -> usize {
    match record {
        Record::Header(h) => frame(out, T_HEADER, |o| {
            codec::put_u32(o, SEGMENT_MAGIC);
            codec::put_u16(o, FORMAT_VERSION);
            codec::put_u64(o, h.identity.cluster_id);
            codec::put_u64(o, h.identity.member_id);
            codec::put_u64(o, h.seq);
            codec::put_u64(o, h.base);
        }),
        Record::State(s) => frame(out, T_STATE, |o| {
            codec::put_hard_state(o, &s.hard_state);
            codec::put_u64(o, s.compacted_index);
            codec::put_u64(o, s.compacted_term);
            codec::put_conf_state(o, &s.conf_state);
        }),
        Record::Entries(entries) => encode_entries(out, entries),
        Record::HardState(hs) => frame(out, T_HARD_STATE, |o| codec::put_hard_state(o, hs)),
        Record::ConfState(cs) => frame(out, T_CONF_STATE, |o| codec::put_conf_state(o, cs)),
        Record::Snapshot(meta) => frame(out, T_SNAPSHOT, |o| codec::put_snapshot_metadata(o, meta)),
        Record::Compact { index, term } => frame(out, T_COMPACT, |o| {
            codec::put_u64(o, *index);
            codec::put_u64(o, *term);
        }),
    }
}

/// Appends one framed entries record (no copy of the entries into a `Record`).
pub(crate) fn encode_entries(out: &mut Vec<u8>, entries: &[Entry]) -> usize {
    debug_assert!(!entries.is_empty());
    frame(out, T_ENTRIES, |o| codec::put_entries(o, entries))
}

/// Decodes the payload of a record of type `kind`.
pub(crate) fn decode(kind: u8, payload: &[u8]) -> Result<Record, DecodeError> {
    let mut r = Reader::new(payload);
    let record = match kind {
        T_HEADER => {
            let magic = r.u32()?;
            if magic != SEGMENT_MAGIC {
                return Err(DecodeError(format!("bad segment magic {magic:#010x}")));
            }
            let version = r.u16()?;
            if version != FORMAT_VERSION {
                return Err(DecodeError(format!(
                    "unsupported format version {version} (this build reads {FORMAT_VERSION})"
                )));
            }
            Record::Header(SegmentHeader {
                identity: Identity {
                    cluster_id: r.u64()?,
                    member_id: r.u64()?,
                },
                seq: r.index()?,
                base: r.index()?,
            })
        }
        T_STATE => Record::State(StateRecord {
            hard_state: r.hard_state()?,
            compacted_index: r.index()?,
            compacted_term: r.u64()?,
            conf_state: r.conf_state()?,
        }),
        T_ENTRIES => Record::Entries(r.entries()?),
        T_HARD_STATE => Record::HardState(r.hard_state()?),
        T_CONF_STATE => Record::ConfState(r.conf_state()?),
        T_SNAPSHOT => Record::Snapshot(r.snapshot_metadata()?),
        T_COMPACT => Record::Compact {
            index: r.index()?,
            term: r.u64()?,
        },
        k => return Err(DecodeError(format!("unknown record type {k}"))),
    };
    r.finish()?;
    Ok(record)
}

/// Decodes every record of a byte string the way recovery does, stopping at zeros or the first
/// bad frame; returns how many records decoded. For fuzzing and robustness tests: it must
/// never panic, whatever the input.
#[doc(hidden)]
pub fn decode_all(mut buf: &[u8], max_record: u64) -> usize {
    let mut n = 0;
    loop {
        match read_frame(buf, max_record) {
            Frame::Valid {
                kind,
                payload,
                size,
            } => {
                if decode(kind, payload).is_err() {
                    return n;
                }
                n += 1;
                buf = &buf[size..];
            }
            Frame::Zero | Frame::Invalid(_) => return n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use quorum_raft::EntryKind;

    fn all_records() -> Vec<Record> {
        let cs = ConfState {
            voters: vec![1, 2, 3],
            learners: vec![4],
            voters_outgoing: vec![1, 2],
            learners_next: vec![5],
            auto_leave: true,
        };
        vec![
            Record::Header(SegmentHeader {
                identity: Identity {
                    cluster_id: 7,
                    member_id: 9,
                },
                seq: 3,
                base: 100,
            }),
            Record::State(StateRecord {
                hard_state: HardState {
                    term: 4,
                    vote: 2,
                    commit: 50,
                },
                compacted_index: 40,
                compacted_term: 3,
                conf_state: cs.clone(),
            }),
            Record::Entries(vec![
                Entry {
                    term: 1,
                    index: 5,
                    kind: EntryKind::Normal,
                    data: Bytes::from_static(b"hello"),
                },
                Entry {
                    term: 2,
                    index: 6,
                    kind: EntryKind::ConfChange,
                    data: Bytes::new(),
                },
            ]),
            Record::HardState(HardState {
                term: 1,
                vote: 0,
                commit: 3,
            }),
            Record::ConfState(cs.clone()),
            Record::Snapshot(SnapshotMetadata {
                index: 10,
                term: 2,
                conf_state: cs,
            }),
            Record::Compact { index: 8, term: 2 },
        ]
    }

    #[test]
    fn every_record_type_round_trips() {
        let mut buf = Vec::new();
        let records = all_records();
        for r in &records {
            encode(&mut buf, r);
        }
        let mut rest = &buf[..];
        for expected in &records {
            match read_frame(rest, 1 << 20) {
                Frame::Valid {
                    kind,
                    payload,
                    size,
                } => {
                    assert_eq!(&decode(kind, payload).unwrap(), expected);
                    rest = &rest[size..];
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(read_frame(rest, 1 << 20), Frame::Zero);
        assert_eq!(decode_all(&buf, 1 << 20), records.len());
    }

    #[test]
    fn any_single_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode(&mut buf, &all_records()[2]);
        for bit in 0..buf.len() * 8 {
            let mut b = buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            let ok = matches!(read_frame(&b, 1 << 20), Frame::Valid { .. });
            assert!(!ok, "flip of bit {bit} not detected");
        }
    }

    #[test]
    fn zeros_and_oversized_lengths() {
        assert_eq!(read_frame(&[0u8; 100], 1 << 20), Frame::Zero);
        assert_eq!(read_frame(&[], 1 << 20), Frame::Zero);
        let mut buf = Vec::new();
        encode(&mut buf, &Record::Compact { index: 1, term: 1 });
        assert!(matches!(read_frame(&buf, 4), Frame::Invalid(_)));
        assert!(matches!(
            read_frame(&buf[..buf.len() - 1], 1 << 20),
            Frame::Invalid(_)
        ));
    }
}
