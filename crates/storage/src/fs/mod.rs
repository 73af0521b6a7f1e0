//! The small file-system interface every byte of the crate goes through, so that the simulator
//! and the crash tests can substitute [`SimFs`] for the real disk ([`RealFs`]).
//!
//! Errors are plain [`std::io::Error`]s; the callers attach the path and operation.

mod real;
mod sim;

pub use real::{RealFile, RealFs};
pub use sim::{SimFile, SimFs};

use std::io;
use std::path::{Path, PathBuf};

/// An open file. Handles are cheap to clone and every method takes `&self`, so that one
/// thread can write while another makes earlier writes durable.
pub trait FsFile: Clone + Send + Sync + 'static {
    /// Writes all of `data` at `offset`, extending the file if needed.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at the end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// The file's current length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Reserves space so that writes below `len` need no allocation; the file reads as zeros
    /// up to `len` afterwards (its length becomes at least `len`).
    fn preallocate(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`): everything written before the call survives
    /// a crash once it returns.
    fn sync_data(&self) -> io::Result<()>;
    /// Makes the file's data and metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
}

/// A file system: directories of named files. Cheap to clone (a handle).
pub trait FileSystem: Clone + Send + Sync + 'static {
    /// The open-file handle type.
    type File: FsFile;
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates a new empty file; fails if it exists.
    fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Self::File>;
    /// The names of the regular files directly in `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Atomically renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// True if `path` names an existing file or directory.
    fn exists(&self, path: &Path) -> io::Result<bool>;
}

/// Reads the whole of `[offset, offset + buf.len())`, failing with `UnexpectedEof` if the file
/// is shorter.
pub fn read_exact_at<F: FsFile>(file: &F, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = file.read_at(offset, buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than expected",
            ));
        }
        offset += n as u64;
        buf = &mut buf[n..];
    }
    Ok(())
}

/// `dir/name` as a path.
pub(crate) fn join(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
