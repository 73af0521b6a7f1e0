//! Recovery: read every segment, verify every checksum, replay the records into a
//! [`LogState`], repair a torn tail, refuse anything else that is wrong.

use crate::error::{io_err, Error, Identity, Result};
use crate::fs::{self, FileSystem, FsFile};
use crate::log_state::LogState;
use crate::options::WalOptions;
use crate::record::{self, Frame, Record, StateRecord};
use crate::segment::{self, SegmentInfo, SEGMENT_SUFFIX, TEMP_SUFFIX};
use std::path::{Path, PathBuf};

/// A torn tail that recovery cut off (the last write before a crash, never synced).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment it was in.
    pub file: PathBuf,
    /// Where the valid data ends (the torn record started here).
    pub offset: u64,
    /// How many non-zero bytes were discarded.
    pub bytes_discarded: u64,
}

/// What [`crate::LogStore::open`] found.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// True if the directory was new (or empty) and has been initialised.
    pub created: bool,
    /// Number of segment files.
    pub segments: usize,
    /// First and last index of the recovered log (`last < first` when it holds no entries).
    pub first_index: u64,
    /// Index of the last recovered entry (or of the compaction point).
    pub last_index: u64,
    /// The recovered hard state.
    pub hard_state: quorum_raft::HardState,
    /// Set if a torn tail was truncated.
    pub torn_tail: Option<TornTail>,
}

/// The recovered log, ready for appending.
pub(crate) struct RecoveredLog<F: FileSystem> {
    pub state: LogState,
    pub segments: Vec<SegmentInfo>,
    pub active: F::File,
    pub offset: u64,
    pub report: Recovered,
}

fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        file: file.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

pub(crate) fn recover<F: FileSystem>(
    fs: &F,
    dir: &Path,
    identity: Identity,
    opts: &WalOptions,
) -> Result<RecoveredLog<F>> {
    fs.create_dir_all(dir)
        .map_err(io_err("create directory", dir))?;
    let names = fs.list(dir).map_err(io_err("list", dir))?;
    let mut segments = Vec::new();
    let mut removed_temp = false;
    for name in &names {
        if name.ends_with(TEMP_SUFFIX) {
            // A segment whose creation did not complete: never held acknowledged data.
            let path = fs::join(dir, name);
            tracing::warn!(file = %path.display(), "removing incomplete segment");
            fs.remove(&path).map_err(io_err("remove", &path))?;
            removed_temp = true;
        } else if let Some((seq, base)) = segment::parse_segment_name(name) {
            segments.push(SegmentInfo {
                seq,
                base,
                path: fs::join(dir, name),
            });
        } else if name.ends_with(SEGMENT_SUFFIX) {
            return Err(corrupt(
                &fs::join(dir, name),
                0,
                "unparseable segment file name",
            ));
        }
    }
    if removed_temp {
        fs.sync_dir(dir).map_err(io_err("fsync directory", dir))?;
    }
    if segments.is_empty() {
        // The directory itself may be new: make its entry in the parent durable too.
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs.sync_dir(&parent)
            .map_err(io_err("fsync directory", &parent))?;
        let state = LogState::default();
        let (info, file, offset) =
            segment::create_segment(fs, dir, identity, 0, 1, &state.state_record(), opts)?;
        return Ok(RecoveredLog {
            report: Recovered {
                created: true,
                segments: 1,
                first_index: 1,
                last_index: 0,
                hard_state: state.hard_state,
                torn_tail: None,
            },
            state,
            segments: vec![info],
            active: file,
            offset,
        });
    }
    segments.sort_by_key(|s| s.seq);
    for pair in segments.windows(2) {
        if pair[1].seq != pair[0].seq + 1 {
            return Err(Error::MissingSegment {
                dir: dir.to_path_buf(),
                reason: format!(
                    "segment {} follows segment {} ({} and {})",
                    pair[1].seq,
                    pair[0].seq,
                    pair[0].path.display(),
                    pair[1].path.display()
                ),
            });
        }
        if pair[1].base < pair[0].base {
            return Err(corrupt(
                &pair[1].path,
                0,
                format!(
                    "base index {} below the previous segment's {}",
                    pair[1].base, pair[0].base
                ),
            ));
        }
    }

    let mut state: Option<LogState> = None;
    let mut torn_tail = None;
    let mut active = None;
    let mut end_offset = 0;
    let last_seq = segments.last().map_or(0, |s| s.seq);
    for seg in &segments {
        let file = fs.open(&seg.path).map_err(io_err("open", &seg.path))?;
        let data = segment::read_whole(&file, &seg.path, segment::max_segment_file(opts))?;
        let is_last = seg.seq == last_seq;
        let (end, torn) = replay_segment(seg, &data, identity, is_last, &mut state, opts)?;
        if let Some(torn) = torn {
            // Cut the torn tail: zero it so the next write lands on a clean, zeroed region.
            let zeros = vec![0u8; torn.bytes_discarded as usize];
            file.write_at(torn.offset, &zeros)
                .map_err(io_err("write", &seg.path))?;
            file.sync_data().map_err(io_err("fdatasync", &seg.path))?;
            tracing::warn!(
                file = %torn.file.display(),
                offset = torn.offset,
                bytes = torn.bytes_discarded,
                "truncated a torn write at the end of the WAL"
            );
            torn_tail = Some(torn);
        }
        if is_last {
            active = Some(file);
            end_offset = end;
        }
    }
    let (Some(state), Some(active)) = (state, active) else {
        return Err(Error::MissingSegment {
            dir: dir.to_path_buf(),
            reason: "no segment could be read".into(),
        });
    };
    if let Some(hole) = state.hole {
        return Err(Error::MissingSegment {
            dir: dir.to_path_buf(),
            reason: format!(
                "entries {}..={hole} are missing: the first segment starts after the compaction point",
                state.compacted_index + 1,
            ),
        });
    }
    let last = state.last_index();
    let last_path = segments.last().map(|s| s.path.clone()).unwrap_or_default();
    if state.hard_state.commit > last {
        return Err(corrupt(
            &last_path,
            end_offset,
            format!(
                "the log ends at index {last} but the commit index is {}: committed entries are missing",
                state.hard_state.commit
            ),
        ));
    }
    Ok(RecoveredLog {
        report: Recovered {
            created: false,
            segments: segments.len(),
            first_index: state.first_index(),
            last_index: last,
            hard_state: state.hard_state,
            torn_tail,
        },
        state,
        segments,
        active,
        offset: end_offset,
    })
}

/// Replays one segment's records into `state` (initialising it from the first segment).
/// Returns where valid data ends and, for the last segment, a torn tail to cut.
fn replay_segment(
    seg: &SegmentInfo,
    data: &[u8],
    identity: Identity,
    is_last: bool,
    state: &mut Option<LogState>,
    opts: &WalOptions,
) -> Result<(u64, Option<TornTail>)> {
    let path = &seg.path;
    let mut pos = 0usize;
    let mut index_in_segment = 0usize;
    loop {
        let at = pos as u64;
        match record::read_frame(&data[pos..], opts.max_record_size) {
            Frame::Valid {
                kind,
                payload,
                size,
            } => {
                let rec = record::decode(kind, payload)
                    .map_err(|e| corrupt(path, at, format!("undecodable record: {e}")))?;
                apply_record(seg, at, index_in_segment, rec, identity, state)?;
                index_in_segment += 1;
                pos += size;
            }
            Frame::Zero if data[pos..].iter().all(|b| *b == 0) => {
                if index_in_segment < 2 {
                    return Err(corrupt(path, at, "segment header or state record missing"));
                }
                return Ok((at, None));
            }
            Frame::Zero => {
                return bad_tail(
                    seg,
                    data,
                    pos,
                    index_in_segment,
                    is_last,
                    "zeros followed by data",
                    opts,
                )
            }
            Frame::Invalid(reason) => {
                return bad_tail(seg, data, pos, index_in_segment, is_last, &reason, opts)
            }
        }
    }
}

/// The frame at `pos` is bad. In the last segment, with nothing valid after it, it is a torn
/// write; anywhere else it is corruption.
fn bad_tail(
    seg: &SegmentInfo,
    data: &[u8],
    pos: usize,
    records: usize,
    is_last: bool,
    reason: &str,
    opts: &WalOptions,
) -> Result<(u64, Option<TornTail>)> {
    let path = &seg.path;
    let at = pos as u64;
    if records < 2 {
        return Err(corrupt(path, at, format!("bad segment header: {reason}")));
    }
    if !is_last {
        return Err(corrupt(
            path,
            at,
            format!("bad record before the last segment: {reason}"),
        ));
    }
    // If the length field is intact the torn record spans [pos, pos + 8 + len): its payload
    // is user data and may contain anything, so the search for later records starts after it.
    let claimed = u32::from_le_bytes(
        data[pos..]
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0; 4]),
    ) as u64;
    let fits = claimed > 0
        && claimed <= opts.max_record_size.saturating_add(1)
        && pos as u64 + record::FRAME_HEADER as u64 + claimed <= data.len() as u64;
    let scan_from = if fits {
        pos + record::FRAME_HEADER + claimed as usize
    } else {
        pos + 1
    };
    if let Some(later) = find_valid_frame(data, scan_from, data.len(), opts.max_record_size) {
        return Err(corrupt(
            path,
            at,
            format!("bad record ({reason}) followed by a valid record at offset {later}"),
        ));
    }
    let last_nonzero = data.iter().rposition(|b| *b != 0).map_or(pos, |p| p + 1);
    // The length field itself may be what is damaged, making the records after it look like
    // the torn record's payload: a chain of valid records running to the end of the data is
    // not the remains of one torn write.
    if let Some(later) = find_chain_to_end(data, pos + 1, last_nonzero, opts.max_record_size) {
        return Err(corrupt(
            path,
            at,
            format!(
                "bad record ({reason}) followed by valid records from offset {later} to the end"
            ),
        ));
    }
    let discarded = last_nonzero.saturating_sub(pos) as u64;
    let torn = (discarded > 0).then(|| TornTail {
        file: path.clone(),
        offset: at,
        bytes_discarded: discarded,
    });
    Ok((at, torn))
}

/// Offset of the first position in `from..to` holding a frame with a valid checksum and
/// a decodable record.
fn find_valid_frame(data: &[u8], from: usize, to: usize, max_record: u64) -> Option<usize> {
    (from..to.min(data.len())).find(|&p| {
        // Cheap filter first: a zero length can never start a record.
        data[p..].len() > record::FRAME_HEADER
            && data[p..p + 4] != [0, 0, 0, 0]
            && matches!(record::read_frame(&data[p..], max_record),
                Frame::Valid { kind, payload, .. } if record::decode(kind, payload).is_ok())
    })
}

/// Offset of the first position in `from..end` where a chain of valid frames starts and covers
/// everything up to `end` (the end of the non-zero data; only zeros follow).
fn find_chain_to_end(data: &[u8], from: usize, end: usize, max_record: u64) -> Option<usize> {
    let mut q = from;
    while q < end {
        let start = find_valid_frame(data, q, end, max_record)?;
        let mut p = start;
        while let Frame::Valid { size, .. } = record::read_frame(&data[p..], max_record) {
            p += size;
            if p >= end {
                return Some(start);
            }
        }
        q = start + 1;
    }
    None
}

fn apply_record(
    seg: &SegmentInfo,
    at: u64,
    index_in_segment: usize,
    rec: Record,
    identity: Identity,
    state: &mut Option<LogState>,
) -> Result<()> {
    let path = &seg.path;
    match (index_in_segment, rec) {
        (0, Record::Header(h)) => {
            if h.identity != identity {
                return Err(Error::IdentityMismatch {
                    file: path.clone(),
                    expected: identity,
                    found: h.identity,
                });
            }
            if h.seq != seg.seq || h.base != seg.base {
                return Err(corrupt(
                    path,
                    at,
                    format!(
                        "header says segment {} base {}, the file name disagrees",
                        h.seq, h.base
                    ),
                ));
            }
            Ok(())
        }
        (0, _) => Err(corrupt(path, at, "first record is not a segment header")),
        (1, Record::State(s)) => {
            match state {
                None => {
                    let mut st = LogState::from_state(&s);
                    st.hole =
                        (seg.seq > 0 && seg.base > s.compacted_index + 1).then(|| seg.base - 1);
                    *state = Some(st);
                }
                Some(st) => check_state(st, &s).map_err(|r| corrupt(path, at, r))?,
            }
            Ok(())
        }
        (1, _) => Err(corrupt(path, at, "second record is not a state record")),
        (_, rec) => {
            let Some(st) = state.as_mut() else {
                return Err(corrupt(path, at, "record before the state record"));
            };
            replay(st, rec).map_err(|r| corrupt(path, at, r))
        }
    }
}

/// A later segment's state record must agree with the state replayed so far.
fn check_state(st: &LogState, s: &StateRecord) -> Result<(), String> {
    if st.hard_state != s.hard_state {
        return Err(format!(
            "segment state has hard state {:?}, replay gives {:?}",
            s.hard_state, st.hard_state
        ));
    }
    if st.conf_state != s.conf_state {
        return Err("segment state's configuration differs from the replayed one".into());
    }
    if st.hole.is_none()
        && (st.compacted_index, st.compacted_term) != (s.compacted_index, s.compacted_term)
    {
        return Err(format!(
            "segment state has compaction point {}/{}, replay gives {}/{}",
            s.compacted_index, s.compacted_term, st.compacted_index, st.compacted_term
        ));
    }
    Ok(())
}

/// Applies one record, with the same checks the live write path made.
fn replay(st: &mut LogState, rec: Record) -> Result<(), String> {
    match rec {
        Record::Header(_) | Record::State(_) => {
            Err("header or state record inside a segment".into())
        }
        Record::Entries(entries) => {
            let skip = st.check_append(&entries)?;
            st.apply_append(&entries, skip);
            Ok(())
        }
        Record::HardState(hs) => {
            st.check_hard_state(&hs)?;
            if st.hole.is_none() {
                st.check_commit_in_log(hs.commit, st.last_index())?;
            }
            st.hard_state = hs;
            Ok(())
        }
        Record::ConfState(cs) => {
            st.set_conf_state(cs);
            Ok(())
        }
        Record::Snapshot(meta) => {
            st.check_snapshot(&meta)?;
            st.apply_snapshot(&meta);
            Ok(())
        }
        Record::Compact { index, term } => {
            if let Some(hole) = st.hole {
                if index < st.compacted_index {
                    return Err(format!(
                        "compaction to {index} is before the compaction point {}",
                        st.compacted_index
                    ));
                }
                if index < hole {
                    // A compaction within the deleted segments' range; a later one (the one
                    // that allowed their deletion) discards the rest of the unknown entries.
                    st.compacted_index = index;
                    st.compacted_term = term;
                    return Ok(());
                }
                if index > st.last_index() {
                    return Err(format!(
                        "compaction to {index} beyond the last index {}",
                        st.last_index()
                    ));
                }
                if let Some(t) = st.entry(index).map(|e| e.term) {
                    if t != term {
                        return Err(format!("compaction record term {term} != entry term {t}"));
                    }
                }
                st.apply_compact(index, term);
                return Ok(());
            }
            match st.check_compact(index)? {
                Some(t) if t == term => {
                    st.apply_compact(index, term);
                    Ok(())
                }
                Some(t) => Err(format!("compaction record term {term} != entry term {t}")),
                None => Err(format!(
                    "compaction to {index} is not after the compaction point {}",
                    st.compacted_index
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Structured robustness: records with valid checksums but arbitrary contents (indices up
    //! to `u64::MAX`, inconsistent states, wrong headers) must give an error or a usable log,
    //! never a panic.

    use crate::error::Identity;
    use crate::fs::{FileSystem, FsFile, SimFs};
    use crate::record::{self, Record, SegmentHeader, StateRecord};
    use crate::{LogStore, WalOptions};
    use proptest::prelude::*;
    use quorum_raft::{ConfState, Entry, HardState, SnapshotMetadata, Storage};
    use std::path::Path;

    const ID: Identity = Identity {
        cluster_id: 1,
        member_id: 1,
    };

    fn num() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..12,
            any::<u64>(),
            Just(u64::MAX),
            Just(i64::MAX as u64)
        ]
    }

    fn hard_state() -> impl Strategy<Value = HardState> {
        (num(), 0u64..4, num()).prop_map(|(term, vote, commit)| HardState { term, vote, commit })
    }

    fn conf() -> impl Strategy<Value = ConfState> {
        proptest::collection::vec(0u64..5, 0..3).prop_map(|voters| ConfState {
            voters,
            ..ConfState::default()
        })
    }

    fn body_record() -> impl Strategy<Value = Record> {
        prop_oneof![
            (num(), num(), 1u64..4).prop_map(|(index, term, n)| Record::Entries(
                (0..n)
                    .map(|k| Entry {
                        index: index.min(u64::MAX - 4) + k,
                        term,
                        ..Entry::default()
                    })
                    .collect()
            )),
            hard_state().prop_map(Record::HardState),
            conf().prop_map(Record::ConfState),
            (num(), num(), conf()).prop_map(|(index, term, conf_state)| Record::Snapshot(
                SnapshotMetadata {
                    index,
                    term,
                    conf_state
                }
            )),
            (num(), num()).prop_map(|(index, term)| Record::Compact { index, term }),
        ]
    }

    fn state() -> impl Strategy<Value = StateRecord> {
        (hard_state(), num(), num(), conf()).prop_map(|(hard_state, ci, ct, conf_state)| {
            StateRecord {
                hard_state,
                compacted_index: ci,
                compacted_term: ct,
                conf_state,
            }
        })
    }

    type SegmentSpec = (u64, StateRecord, Vec<Record>);

    fn segments() -> impl Strategy<Value = Vec<SegmentSpec>> {
        proptest::collection::vec(
            (
                num(),
                state(),
                proptest::collection::vec(body_record(), 0..8),
            ),
            1..4,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn valid_frames_with_arbitrary_contents_never_panic(segs in segments(), base_seq in 0u64..3) {
            let fs = SimFs::new(0);
            let dir = Path::new("/wal");
            fs.create_dir_all(dir).unwrap();
            for (k, (base, state, body)) in segs.iter().enumerate() {
                let seq = base_seq + k as u64;
                let base = (*base).min(crate::codec::MAX_INDEX);
                let mut buf = Vec::new();
                record::encode(&mut buf, &Record::Header(SegmentHeader { identity: ID, seq, base }));
                record::encode(&mut buf, &Record::State(state.clone()));
                for r in body {
                    record::encode(&mut buf, r);
                }
                let name = crate::segment::segment_name(seq, base);
                let f = fs.create(&dir.join(name)).unwrap();
                f.write_at(0, &buf).unwrap();
            }
            let opts = WalOptions { segment_size: 4096, ..WalOptions::default() };
            if let Ok((mut log, _)) = LogStore::open(fs.clone(), dir, ID, opts) {
                let (first, last) = (log.first_index(), log.last_index());
                let _ = log.entries(first, last.saturating_add(1), u64::MAX);
                let _ = log.term(first.saturating_sub(1));
                let _ = log.append(None, &[Entry { index: last.saturating_add(1), term: u64::MAX, ..Entry::default() }]);
                let _ = log.compact(log.hard_state().commit);
            }
        }
    }
}
