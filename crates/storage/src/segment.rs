//! WAL segment files: naming, atomic creation, whole-file reads.
//!
//! A segment is named `<seq:016x>-<base:016x>.wal`: its position in the sequence and the index
//! the next entry had when it was created. It starts with a header record (identity, seq, base)
//! and a state record (hard state, compaction point, configuration), so any suffix of the
//! sequence of segments is self-describing.

use crate::codec::MAX_INDEX;
use crate::error::{io_err, Identity, Result};
use crate::fs::{self, FileSystem, FsFile};
use crate::options::WalOptions;
use crate::record::{self, Record, SegmentHeader, StateRecord};
use std::path::{Path, PathBuf};

/// Suffix of segment files.
pub(crate) const SEGMENT_SUFFIX: &str = ".wal";
/// Suffix of a segment being created (removed on recovery).
pub(crate) const TEMP_SUFFIX: &str = ".wal.tmp";

/// A segment file known to exist.
#[derive(Clone, Debug)]
pub(crate) struct SegmentInfo {
    pub seq: u64,
    pub base: u64,
    pub path: PathBuf,
}

pub(crate) fn segment_name(seq: u64, base: u64) -> String {
    format!("{seq:016x}-{base:016x}{SEGMENT_SUFFIX}")
}

/// Parses a segment file name; `None` for anything else.
pub(crate) fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    let (seq, base) = stem.split_once('-')?;
    if seq.len() != 16 || base.len() != 16 {
        return None;
    }
    let seq = u64::from_str_radix(seq, 16).ok()?;
    let base = u64::from_str_radix(base, 16).ok()?;
    (seq <= MAX_INDEX && base <= MAX_INDEX).then_some((seq, base))
}

/// Creates segment `seq` atomically (temporary file, preallocation, header and state records,
/// fsync, rename, fsync of the directory). Returns the open file and the offset after the
/// state record, where appends continue.
pub(crate) fn create_segment<F: FileSystem>(
    fs: &F,
    dir: &Path,
    identity: Identity,
    seq: u64,
    base: u64,
    state: &StateRecord,
    opts: &WalOptions,
) -> Result<(SegmentInfo, F::File, u64)> {
    let name = segment_name(seq, base);
    let path = fs::join(dir, &name);
    let tmp = fs::join(dir, &format!("{name}.tmp"));
    if fs.exists(&tmp).map_err(io_err("stat", &tmp))? {
        fs.remove(&tmp).map_err(io_err("remove", &tmp))?;
    }
    let file = fs.create(&tmp).map_err(io_err("create", &tmp))?;
    if opts.preallocate {
        file.preallocate(opts.segment_size)
            .map_err(io_err("preallocate", &tmp))?;
    }
    let mut buf = Vec::with_capacity(256);
    record::encode(
        &mut buf,
        &Record::Header(SegmentHeader {
            identity,
            seq,
            base,
        }),
    );
    record::encode(&mut buf, &Record::State(state.clone()));
    file.write_at(0, &buf).map_err(io_err("write", &tmp))?;
    file.sync_all().map_err(io_err("fsync", &tmp))?;
    fs.rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
    fs.sync_dir(dir).map_err(io_err("fsync directory", dir))?;
    Ok((SegmentInfo { seq, base, path }, file, buf.len() as u64))
}

/// Largest segment file recovery reads: a segment holds at most its target size plus one
/// write; the defaults are included so that shrinking the options does not make existing
/// segments unreadable.
pub(crate) fn max_segment_file(opts: &WalOptions) -> u64 {
    let size = opts.segment_size.max(crate::options::DEFAULT_SEGMENT_SIZE);
    let batch = opts
        .max_batch_size
        .max(crate::options::DEFAULT_MAX_BATCH_SIZE);
    size.saturating_add(batch).saturating_add(1 << 20)
}

/// Reads a whole segment into memory, refusing files larger than `limit`.
pub(crate) fn read_whole<F: FsFile>(file: &F, path: &Path, limit: u64) -> Result<Vec<u8>> {
    let len = file.size().map_err(io_err("stat", path))?;
    if len > limit {
        return Err(crate::Error::Corrupt {
            file: path.to_path_buf(),
            offset: 0,
            reason: format!("segment of {len} bytes exceeds the largest possible ({limit})"),
        });
    }
    let len = usize::try_from(len).map_err(|_| crate::Error::Corrupt {
        file: path.to_path_buf(),
        offset: 0,
        reason: format!("file of {len} bytes is too large to read"),
    })?;
    let mut buf = vec![0u8; len];
    fs::read_exact_at(file, 0, &mut buf).map_err(io_err("read", path))?;
    Ok(buf)
}
