//! State-machine snapshot files: written atomically (temporary file, fsync, rename, fsync of
//! the directory), checksummed, streamed in both directions, the newest N retained.
//!
//! File `<index:016x>-<term:016x>.snap`:
//! `header | image bytes | trailer`, where the header is
//! `magic "QSNP" | version u16 | cluster u64 | member u64 | metadata length u32 | metadata |
//! crc32c of all of the above` and the trailer is
//! `image length u64 | crc32c of the image u32 | magic "QEND"`.

use crate::codec::{self, Reader};
use crate::error::{io_err, Error, Identity, Result};
use crate::fs::{self, FileSystem, FsFile};
use bytes::Bytes;
use quorum_raft::{Snapshot, SnapshotMetadata};
use std::io;
use std::path::{Path, PathBuf};

const MAGIC: u32 = u32::from_le_bytes(*b"QSNP");
const END_MAGIC: u32 = u32::from_le_bytes(*b"QEND");
const VERSION: u16 = 1;
const TRAILER: u64 = 16;
/// Fixed part of the header before the metadata.
const HEADER_FIXED: u64 = 4 + 2 + 8 + 8 + 4;
/// Upper bound on encoded metadata (a configuration of a few members is ~100 bytes).
const MAX_METADATA: u32 = 1 << 20;
const SUFFIX: &str = ".snap";
const TEMP_SUFFIX: &str = ".snap.tmp";

/// Options of [`SnapshotStore`].
#[derive(Clone, Debug)]
pub struct SnapshotOptions {
    /// How many snapshots to keep (the newest); at least 1.
    pub retain: usize,
    /// The writer buffers this many bytes before writing to the file.
    pub write_buffer: usize,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            retain: 5,
            write_buffer: 1 << 20,
        }
    }
}

/// A snapshot file on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Index of the last entry the snapshot covers.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// The file.
    pub path: PathBuf,
}

/// The snapshot directory of one member.
#[derive(Clone, Debug)]
pub struct SnapshotStore<F: FileSystem> {
    fs: F,
    dir: PathBuf,
    identity: Identity,
    opts: SnapshotOptions,
}

fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        file: file.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (index, term) = stem.split_once('-')?;
    if index.len() != 16 || term.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(index, 16).ok()?,
        u64::from_str_radix(term, 16).ok()?,
    ))
}

impl<F: FileSystem> SnapshotStore<F> {
    /// Opens (creating if needed) the snapshot directory, removing leftovers of interrupted
    /// writes.
    pub fn open(
        fs: F,
        dir: impl AsRef<Path>,
        identity: Identity,
        options: SnapshotOptions,
    ) -> Result<Self> {
        if options.retain == 0 {
            return Err(Error::Invalid(
                "snapshot retain count must be at least 1".into(),
            ));
        }
        let dir = dir.as_ref().to_path_buf();
        let existed = fs.exists(&dir).map_err(io_err("stat", &dir))?;
        fs.create_dir_all(&dir)
            .map_err(io_err("create directory", &dir))?;
        if !existed {
            // Make the new directory's entry in its parent durable.
            let parent = match dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            fs.sync_dir(&parent)
                .map_err(io_err("fsync directory", &parent))?;
        }
        let mut removed = false;
        for name in fs.list(&dir).map_err(io_err("list", &dir))? {
            if name.ends_with(TEMP_SUFFIX) {
                let path = fs::join(&dir, &name);
                tracing::warn!(file = %path.display(), "removing incomplete snapshot");
                fs.remove(&path).map_err(io_err("remove", &path))?;
                removed = true;
            }
        }
        if removed {
            fs.sync_dir(&dir).map_err(io_err("fsync directory", &dir))?;
        }
        Ok(SnapshotStore {
            fs,
            dir,
            identity,
            opts: options,
        })
    }

    /// The snapshots on disk, oldest first (by index). Not verified: open one to verify it.
    pub fn list(&self) -> Result<Vec<SnapshotInfo>> {
        let mut out: Vec<SnapshotInfo> = self
            .fs
            .list(&self.dir)
            .map_err(io_err("list", &self.dir))?
            .into_iter()
            .filter_map(|name| {
                let (index, term) = parse_name(&name)?;
                Some(SnapshotInfo {
                    index,
                    term,
                    path: fs::join(&self.dir, &name),
                })
            })
            .collect();
        out.sort_by_key(|s| (s.index, s.term));
        Ok(out)
    }

    /// The newest snapshot on disk, if any.
    pub fn latest(&self) -> Result<Option<SnapshotInfo>> {
        Ok(self.list()?.pop())
    }

    /// Starts writing a snapshot described by `meta`; feed the image with
    /// [`SnapshotWriter::write`] and make it durable with [`SnapshotWriter::finish`].
    pub fn create(&self, meta: &SnapshotMetadata) -> Result<SnapshotWriter<F>> {
        let name = format!("{:016x}-{:016x}{SUFFIX}", meta.index, meta.term);
        let path = fs::join(&self.dir, &name);
        let tmp = fs::join(&self.dir, &format!("{name}.tmp"));
        if self.fs.exists(&tmp).map_err(io_err("stat", &tmp))? {
            self.fs.remove(&tmp).map_err(io_err("remove", &tmp))?;
        }
        let file = self.fs.create(&tmp).map_err(io_err("create", &tmp))?;
        let mut header = Vec::with_capacity(256);
        codec::put_u32(&mut header, MAGIC);
        codec::put_u16(&mut header, VERSION);
        codec::put_u64(&mut header, self.identity.cluster_id);
        codec::put_u64(&mut header, self.identity.member_id);
        let mut m = Vec::new();
        codec::put_snapshot_metadata(&mut m, meta);
        if m.len() > MAX_METADATA as usize {
            return Err(Error::TooLarge {
                size: m.len() as u64,
                limit: MAX_METADATA.into(),
            });
        }
        codec::put_u32(&mut header, m.len() as u32);
        header.extend_from_slice(&m);
        let crc = crc32c::crc32c(&header);
        codec::put_u32(&mut header, crc);
        Ok(SnapshotWriter {
            store: self.clone(),
            file,
            tmp,
            path,
            index: meta.index,
            term: meta.term,
            offset: 0,
            buf: header,
            data_len: 0,
            data_crc: 0,
            done: false,
        })
    }

    /// Writes a whole in-memory snapshot (convenience over [`SnapshotStore::create`]).
    pub fn save(&self, snapshot: &Snapshot) -> Result<SnapshotInfo> {
        let mut w = self.create(&snapshot.metadata)?;
        w.write(&snapshot.data)?;
        w.finish()
    }

    /// Opens a snapshot for streaming, verifying its header, identity and trailer. The image's
    /// checksum is verified as it is read: a reader that reached the end without error has
    /// returned exactly the bytes written.
    pub fn open_reader(&self, info: &SnapshotInfo) -> Result<SnapshotReader<F>> {
        let path = &info.path;
        let file = self.fs.open(path).map_err(io_err("open", path))?;
        let len = file.size().map_err(io_err("stat", path))?;
        let mut fixed = [0u8; HEADER_FIXED as usize];
        if len < HEADER_FIXED + 4 + TRAILER {
            return Err(corrupt(
                path,
                0,
                format!("file of {len} bytes is too short"),
            ));
        }
        fs::read_exact_at(&file, 0, &mut fixed).map_err(io_err("read", path))?;
        let mut r = Reader::new(&fixed);
        let parse = |r: &mut Reader<'_>| -> std::result::Result<_, codec::DecodeError> {
            Ok((r.u32()?, r.u16()?, r.u64()?, r.u64()?, r.u32()?))
        };
        let (magic, version, cluster_id, member_id, meta_len) =
            parse(&mut r).map_err(|e| corrupt(path, 0, e.to_string()))?;
        if magic != MAGIC {
            return Err(corrupt(path, 0, "not a snapshot file (bad magic)"));
        }
        if version != VERSION {
            return Err(corrupt(path, 4, format!("unsupported version {version}")));
        }
        if meta_len > MAX_METADATA || HEADER_FIXED + meta_len as u64 + 4 + TRAILER > len {
            return Err(corrupt(
                path,
                HEADER_FIXED - 4,
                format!("bad metadata length {meta_len}"),
            ));
        }
        let header_len = HEADER_FIXED + meta_len as u64 + 4;
        let mut header = vec![0u8; header_len as usize];
        fs::read_exact_at(&file, 0, &mut header).map_err(io_err("read", path))?;
        let (body, crc) = header.split_at(header.len() - 4);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32c::crc32c(body) != stored {
            return Err(corrupt(path, 0, "header checksum mismatch"));
        }
        let found = Identity {
            cluster_id,
            member_id,
        };
        if found != self.identity {
            return Err(Error::IdentityMismatch {
                file: path.clone(),
                expected: self.identity,
                found,
            });
        }
        let mut mr = Reader::new(&body[HEADER_FIXED as usize..]);
        let metadata = mr
            .snapshot_metadata()
            .and_then(|m| mr.finish().map(|()| m))
            .map_err(|e| corrupt(path, HEADER_FIXED, format!("bad metadata: {e}")))?;
        if metadata.index != info.index || metadata.term != info.term {
            return Err(corrupt(
                path,
                HEADER_FIXED,
                "metadata disagrees with the file name",
            ));
        }
        let mut trailer = [0u8; TRAILER as usize];
        fs::read_exact_at(&file, len - TRAILER, &mut trailer).map_err(io_err("read", path))?;
        let mut tr = Reader::new(&trailer);
        let (data_len, data_crc, end) =
            (|| Ok::<_, codec::DecodeError>((tr.u64()?, tr.u32()?, tr.u32()?)))()
                .map_err(|e| corrupt(path, len - TRAILER, e.to_string()))?;
        if end != END_MAGIC || data_len != len - header_len - TRAILER {
            return Err(corrupt(
                path,
                len - TRAILER,
                "bad trailer (incomplete or damaged file)",
            ));
        }
        Ok(SnapshotReader {
            file,
            path: path.clone(),
            metadata,
            start: header_len,
            data_len,
            data_crc,
            pos: 0,
            crc: 0,
        })
    }

    /// Reads a whole snapshot into memory, refusing images larger than `max_size`.
    pub fn load(&self, info: &SnapshotInfo, max_size: u64) -> Result<Snapshot> {
        let mut reader = self.open_reader(info)?;
        if reader.data_len() > max_size {
            return Err(Error::TooLarge {
                size: reader.data_len(),
                limit: max_size,
            });
        }
        let mut data = Vec::with_capacity(reader.data_len() as usize);
        io::Read::read_to_end(&mut reader, &mut data).map_err(|e| read_error(&info.path, e))?;
        Ok(Snapshot {
            metadata: reader.metadata().clone(),
            data: Bytes::from(data),
        })
    }

    /// Deletes all but the newest `retain` snapshots.
    pub fn purge(&self) -> Result<()> {
        let all = self.list()?;
        let excess = all.len().saturating_sub(self.opts.retain);
        if excess == 0 {
            return Ok(());
        }
        for info in &all[..excess] {
            self.fs
                .remove(&info.path)
                .map_err(io_err("remove", &info.path))?;
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(io_err("fsync directory", &self.dir))
    }
}

fn read_error(path: &Path, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::InvalidData {
        corrupt(path, 0, e.to_string())
    } else {
        io_err("read", path)(e)
    }
}

/// Streams a snapshot image into a temporary file; [`finish`](Self::finish) makes it durable
/// and visible atomically. Dropped without `finish`, it leaves a temporary file that the next
/// [`SnapshotStore::open`] removes.
pub struct SnapshotWriter<F: FileSystem> {
    store: SnapshotStore<F>,
    file: F::File,
    tmp: PathBuf,
    path: PathBuf,
    index: u64,
    term: u64,
    offset: u64,
    buf: Vec<u8>,
    data_len: u64,
    data_crc: u32,
    done: bool,
}

impl<F: FileSystem> SnapshotWriter<F> {
    /// Appends a chunk of the image.
    pub fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.data_crc = crc32c::crc32c_append(self.data_crc, chunk);
        self.data_len += chunk.len() as u64;
        if self.buf.len() + chunk.len() > self.store.opts.write_buffer {
            self.flush()?;
        }
        if chunk.len() >= self.store.opts.write_buffer {
            self.write_out(chunk)
        } else {
            self.buf.extend_from_slice(chunk);
            Ok(())
        }
    }

    fn write_out(&mut self, data: &[u8]) -> Result<()> {
        self.file
            .write_at(self.offset, data)
            .map_err(io_err("write", &self.tmp))?;
        self.offset += data.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let r = self.write_out(&buf);
        self.buf = buf;
        self.buf.clear();
        r
    }

    /// Writes the trailer, fsyncs, renames into place, fsyncs the directory, and deletes
    /// snapshots beyond the retention count.
    pub fn finish(mut self) -> Result<SnapshotInfo> {
        codec::put_u64(&mut self.buf, self.data_len);
        codec::put_u32(&mut self.buf, self.data_crc);
        codec::put_u32(&mut self.buf, END_MAGIC);
        self.flush()?;
        let fs = &self.store.fs;
        self.file.sync_all().map_err(io_err("fsync", &self.tmp))?;
        fs.rename(&self.tmp, &self.path)
            .map_err(io_err("rename", &self.tmp))?;
        fs.sync_dir(&self.store.dir)
            .map_err(io_err("fsync directory", &self.store.dir))?;
        self.done = true;
        self.store.purge()?;
        Ok(SnapshotInfo {
            index: self.index,
            term: self.term,
            path: self.path.clone(),
        })
    }
}

impl<F: FileSystem> Drop for SnapshotWriter<F> {
    fn drop(&mut self) {
        if !self.done {
            // Best effort: the next open removes it anyway.
            let _ = self.store.fs.remove(&self.tmp);
        }
    }
}

impl<F: FileSystem> io::Write for SnapshotWriter<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        SnapshotWriter::write(self, buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Streams a snapshot image out of its file, verifying the checksum at the end: the final
/// `read` fails with [`io::ErrorKind::InvalidData`] if the image is damaged.
pub struct SnapshotReader<F: FileSystem> {
    file: F::File,
    path: PathBuf,
    metadata: SnapshotMetadata,
    start: u64,
    data_len: u64,
    data_crc: u32,
    pos: u64,
    crc: u32,
}

impl<F: FileSystem> SnapshotReader<F> {
    /// The snapshot's metadata.
    pub fn metadata(&self) -> &SnapshotMetadata {
        &self.metadata
    }

    /// Length of the image in bytes.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }
}

impl<F: FileSystem> io::Read for SnapshotReader<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.data_len - self.pos;
        if left == 0 || buf.is_empty() {
            if left == 0 && self.crc != self.data_crc {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: image checksum mismatch (stored {:#010x}, computed {:#010x})",
                        self.path.display(),
                        self.data_crc,
                        self.crc
                    ),
                ));
            }
            return Ok(0);
        }
        let n = (buf.len() as u64).min(left) as usize;
        fs::read_exact_at(&self.file, self.start + self.pos, &mut buf[..n])?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}
