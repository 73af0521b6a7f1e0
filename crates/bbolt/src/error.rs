//! The crate's error type.

use std::fmt;
use std::io;

/// Everything that can go wrong reading or writing a bbolt file.
///
/// Reading never panics on bad input: a damaged or hostile file yields [`Error::Corrupt`] with a
/// message naming what was wrong and where.
#[derive(Debug)]
pub enum Error {
    /// The underlying file or stream failed.
    Io(io::Error),
    /// The file is not a well-formed bbolt database (or etcd snapshot): bad magic, bad checksum,
    /// a page id out of range, an element out of bounds, a loop, keys out of order, ...
    Corrupt(String),
    /// The caller asked for something the format cannot hold or the API forbids: keys out of
    /// order, an empty key, a bucket added twice, a page size out of range, ...
    InvalidInput(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "bbolt i/o error: {e}"),
            Error::Corrupt(m) => write!(f, "corrupt bbolt file: {m}"),
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// Builds an [`Error::Corrupt`] from format arguments.
macro_rules! corrupt {
    ($($arg:tt)*) => { $crate::error::Error::Corrupt(format!($($arg)*)) };
}

/// Builds an [`Error::InvalidInput`] from format arguments.
macro_rules! invalid {
    ($($arg:tt)*) => { $crate::error::Error::InvalidInput(format!($($arg)*)) };
}

pub(crate) use {corrupt, invalid};
