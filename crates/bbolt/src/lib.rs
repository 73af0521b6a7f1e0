//! Reading and writing bbolt (go.etcd.io/bbolt, formerly boltdb) database files, and etcd's
//! backend layout inside them.
//!
//! etcd keeps its whole state in one bbolt file; `etcdctl snapshot save` copies that file and
//! appends a sha256; `etcdctl snapshot status` and `snapshot restore` read such files. This
//! crate lets Quorum write backups those tools accept and import etcd's own snapshots:
//!
//! * [`Writer`] builds a complete database in one pass from buckets and keys given in ascending
//!   order, with bounded memory (one pending page per tree level).
//! * [`Reader`] opens a database (checking the meta pages), lists buckets and iterates them in
//!   key order; every corruption is an [`Error::Corrupt`], never a panic.
//! * [`etcd`] has etcd's bucket and key names, revision keys, `mvccpb.KeyValue`, the snapshot
//!   sha256 trailer, and `snapshot status`.
//!
//! The format facts, and where they were read, are in the crate's README.md; the layout
//! constants are in [`page`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
pub mod etcd;
pub mod page;
mod proto;
mod reader;
mod writer;

pub use error::{Error, Result};
pub use page::Meta;
pub use reader::{Bucket, Entry, Iter, ReadAt, Reader};
pub use writer::{Summary, Writer, DEFAULT_FILL_PERCENT, DEFAULT_PAGE_SIZE};
