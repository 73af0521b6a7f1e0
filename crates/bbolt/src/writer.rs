//! One-pass builder of a complete bbolt database file.
//!
//! Pages are written in order from page 2 on as they fill: a bucket's leaf pages as its keys
//! stream in, a branch page whenever the pending entries of a branch level would overflow a
//! page, the root bucket's pages as buckets complete, then one (empty) freelist page, and at
//! last the two meta pages at pages 0 and 1. Memory holds one pending leaf and one pending
//! branch node per tree level (plus the largest single value), whatever the database size.
//!
//! The result is what bbolt itself would accept and `Tx.Check` would pass: every page below the
//! high-water mark is reachable exactly once (nothing is free), keys are ascending, each branch
//! key is its child's first key, a node larger than a page spans `overflow` further pages, and a
//! bucket small enough (≤ page size / 4, as bbolt's `inlineable`) is stored inline in its
//! parent's leaf.

use std::io::{Seek, SeekFrom, Write};

use crate::error::{invalid, Error, Result};
use crate::page::{
    encode_branch, encode_leaf, Meta, PageHeader, BRANCH_ELEMENT_SIZE, BUCKET_HEADER_SIZE,
    BUCKET_LEAF_FLAG, FREELIST_PAGE_FLAG, LEAF_ELEMENT_SIZE, MAGIC, MAX_ELEMENTS_PER_PAGE,
    MAX_KEY_SIZE, MAX_PAGE_SIZE, MAX_VALUE_SIZE, META_PAGE_FLAG, MIN_PAGE_SIZE, PAGE_HEADER_SIZE,
    VERSION,
};

/// The page size etcd uses on every platform it ships for (`os.Getpagesize()` on amd64/arm64).
pub const DEFAULT_PAGE_SIZE: u32 = 4096;

/// Fill factor used by default: 0.9, as etcd's defragmentation (`FillPercent = 0.9`).
pub const DEFAULT_FILL_PERCENT: f64 = 0.9;

/// What [`Writer::finish`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// The page size used.
    pub page_size: u32,
    /// Number of pages (the meta's high-water mark); the file is `pages * page_size` bytes.
    pub pages: u64,
    /// Number of top-level buckets.
    pub buckets: u64,
    /// Number of key/value pairs over all buckets.
    pub keys: u64,
    /// The larger of the two meta pages' transaction ids.
    pub txid: u64,
}

impl Summary {
    /// Size of the database file in bytes.
    pub fn db_size(&self) -> u64 {
        self.pages * u64::from(self.page_size)
    }
}

/// Streams buckets and their keys, in ascending order, into a bbolt database file.
///
/// ```
/// use quorum_bbolt::{Reader, Writer};
/// let mut w = Writer::new(std::io::Cursor::new(Vec::new())).unwrap();
/// w.bucket(b"fruit").unwrap();
/// w.put(b"apple", b"red").unwrap();
/// w.put(b"banana", b"yellow").unwrap();
/// let (cursor, summary) = w.finish().unwrap();
/// let bytes = cursor.into_inner();
/// assert_eq!(bytes.len() as u64, summary.db_size());
/// let r = Reader::new(bytes.as_slice(), summary.db_size()).unwrap();
/// let b = r.bucket(b"fruit").unwrap().unwrap();
/// let kvs: Vec<_> = b.iter().map(|e| e.unwrap().key).collect();
/// assert_eq!(kvs, vec![b"apple".to_vec(), b"banana".to_vec()]);
/// ```
#[derive(Debug)]
pub struct Writer<W: Write + Seek> {
    sink: Sink<W>,
    /// The root bucket's tree: one entry per completed top-level bucket.
    root: TreeBuilder,
    /// The bucket being filled: its name and tree.
    current: Option<(Vec<u8>, TreeBuilder)>,
    buckets: u64,
    keys: u64,
    /// Set after an I/O error: the output is then unusable.
    failed: bool,
}

impl<W: Write + Seek> Writer<W> {
    /// Starts a database with the default page size (4096) in `out`, which should be empty;
    /// the file is written from offset 0.
    pub fn new(out: W) -> Result<Self> {
        Self::with_page_size(out, DEFAULT_PAGE_SIZE)
    }

    /// Starts a database with the given page size (a power of two from 512 to 1 MiB). bbolt
    /// takes the page size from the meta page, so any such size opens anywhere.
    pub fn with_page_size(mut out: W, page_size: u32) -> Result<Self> {
        if !page_size.is_power_of_two() || !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(invalid!(
                "page size {page_size} is not a power of two in {MIN_PAGE_SIZE}..={MAX_PAGE_SIZE}"
            ));
        }
        // Pages 0 and 1 (the metas) are written last.
        out.seek(SeekFrom::Start(2 * u64::from(page_size)))?;
        let ps = page_size as usize;
        let threshold = (ps as f64 * DEFAULT_FILL_PERCENT) as usize;
        Ok(Writer {
            sink: Sink {
                out,
                page_size: ps,
                next_pgid: 2,
                buf: Vec::with_capacity(ps),
            },
            root: TreeBuilder::new(threshold),
            current: None,
            buckets: 0,
            keys: 0,
            failed: false,
        })
    }

    /// Sets how full (0.1 to 1.0 of a page) leaf and branch pages are packed before the next
    /// one starts; bbolt's own inserts leave pages about half full, etcd's defragmentation 0.9.
    /// Only allowed before the first bucket.
    pub fn set_fill_percent(&mut self, fill: f64) -> Result<()> {
        if self.buckets > 0 || self.current.is_some() {
            return Err(invalid!("fill percent must be set before the first bucket"));
        }
        if !(0.1..=1.0).contains(&fill) {
            return Err(invalid!("fill percent {fill} outside 0.1..=1.0"));
        }
        self.root = TreeBuilder::new((self.sink.page_size as f64 * fill) as usize);
        Ok(())
    }

    fn check_ok(&self) -> Result<()> {
        if self.failed {
            return Err(invalid!("writer is unusable after an earlier I/O error"));
        }
        Ok(())
    }

    fn io<T>(&mut self, r: Result<T>) -> Result<T> {
        if matches!(r, Err(Error::Io(_))) {
            self.failed = true;
        }
        r
    }

    /// Completes the current bucket (if any) and starts a new top-level bucket. Names must be
    /// non-empty and strictly ascending (byte order), as bbolt keeps them.
    pub fn bucket(&mut self, name: &[u8]) -> Result<()> {
        self.check_ok()?;
        if name.is_empty() {
            return Err(invalid!("bucket name must not be empty"));
        }
        if name.len() > MAX_KEY_SIZE {
            return Err(invalid!(
                "bucket name of {} bytes exceeds {MAX_KEY_SIZE}",
                name.len()
            ));
        }
        let prev = match &self.current {
            Some((n, _)) => Some(n.as_slice()),
            None => self.root.last_key.as_deref(),
        };
        if let Some(prev) = prev {
            if name <= prev {
                return Err(invalid!(
                    "bucket {:?} does not come after {:?}",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(prev)
                ));
            }
        }
        let r = self.close_bucket();
        self.io(r)?;
        self.current = Some((name.to_vec(), TreeBuilder::new(self.root.threshold)));
        Ok(())
    }

    /// Adds a key/value pair to the current bucket. Keys must be non-empty (≤ 32768 bytes) and
    /// strictly ascending within the bucket; values may be empty or span many pages.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_ok()?;
        if key.is_empty() {
            return Err(invalid!("key must not be empty"));
        }
        if key.len() > MAX_KEY_SIZE {
            return Err(invalid!(
                "key of {} bytes exceeds {MAX_KEY_SIZE}",
                key.len()
            ));
        }
        if value.len() > MAX_VALUE_SIZE {
            return Err(invalid!(
                "value of {} bytes exceeds {MAX_VALUE_SIZE}",
                value.len()
            ));
        }
        let Some((_, tree)) = self.current.as_mut() else {
            return Err(invalid!("put before any bucket was started"));
        };
        if let Some(prev) = &tree.last_key {
            if key <= prev.as_slice() {
                return Err(invalid!("keys must be strictly ascending within a bucket"));
            }
        }
        let r = tree.push(&mut self.sink, 0, key, value);
        self.io(r)?;
        self.keys += 1;
        Ok(())
    }

    /// Completes the current bucket, if any, adding its entry to the root bucket.
    fn close_bucket(&mut self) -> Result<()> {
        let Some((name, tree)) = self.current.take() else {
            return Ok(());
        };
        let value = tree.finish_bucket(&mut self.sink)?;
        self.root
            .push(&mut self.sink, BUCKET_LEAF_FLAG, &name, &value)?;
        self.buckets += 1;
        Ok(())
    }

    /// Writes the remaining pages, the freelist and both meta pages, flushes, and returns the
    /// output and a summary. The file is then a complete database of `summary.db_size()` bytes.
    pub fn finish(mut self) -> Result<(W, Summary)> {
        self.check_ok()?;
        self.close_bucket()?;
        let root = std::mem::replace(&mut self.root, TreeBuilder::new(0));
        let root_pgid = root.finish_tree(&mut self.sink)?;

        // An empty freelist: nothing in a freshly built file is free.
        let freelist = self.sink.next_pgid;
        let mut page = vec![0u8; self.sink.page_size];
        PageHeader {
            id: freelist,
            flags: FREELIST_PAGE_FLAG,
            count: 0,
            overflow: 0,
        }
        .encode(&mut page);
        self.sink.out.write_all(&page)?;
        self.sink.next_pgid += 1;
        let pages = self.sink.next_pgid;

        // Both metas describe the same tree. bbolt writes a transaction's meta to page
        // txid % 2, so page 0 gets an even txid and page 1 the next (odd) one.
        let mut meta = Meta {
            magic: MAGIC,
            version: VERSION,
            page_size: self.sink.page_size as u32,
            flags: 0,
            root: root_pgid,
            sequence: 0,
            freelist,
            pgid: pages,
            txid: 0,
            checksum: 0,
        };
        self.sink.out.seek(SeekFrom::Start(0))?;
        for id in 0..2u64 {
            meta.txid = 2 + id;
            page.fill(0);
            PageHeader {
                id,
                flags: META_PAGE_FLAG,
                count: 0,
                overflow: 0,
            }
            .encode(&mut page);
            page[PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + crate::page::META_SIZE]
                .copy_from_slice(&meta.encode());
            self.sink.out.write_all(&page)?;
        }
        self.sink
            .out
            .seek(SeekFrom::Start(pages * self.sink.page_size as u64))?;
        self.sink.out.flush()?;
        let summary = Summary {
            page_size: self.sink.page_size as u32,
            pages,
            buckets: self.buckets,
            keys: self.keys,
            txid: 3,
        };
        Ok((self.sink.out, summary))
    }
}

/// Where pages go: the output, positioned at page `next_pgid`.
#[derive(Debug)]
struct Sink<W> {
    out: W,
    page_size: usize,
    next_pgid: u64,
    /// Scratch buffer for encoding a node.
    buf: Vec<u8>,
}

impl<W: Write> Sink<W> {
    /// Writes the encoded node in `self.buf` (whose header id must be `self.next_pgid`) padded
    /// to whole pages, setting its overflow count. Returns its page id.
    fn write_node(&mut self) -> Result<u64> {
        let id = self.next_pgid;
        let n_pages = self.buf.len().div_ceil(self.page_size).max(1);
        let overflow = u32::try_from(n_pages - 1)
            .map_err(|_| invalid!("node of {} bytes spans too many pages", self.buf.len()))?;
        self.buf[12..16].copy_from_slice(&overflow.to_le_bytes());
        self.buf.resize(n_pages * self.page_size, 0);
        self.out.write_all(&self.buf)?;
        self.next_pgid += n_pages as u64;
        Ok(id)
    }
}

/// One leaf entry waiting in the pending leaf.
#[derive(Debug)]
struct LeafEntry {
    flags: u32,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// Pending entries of one branch level: (first key of child, child pgid).
#[derive(Debug, Default)]
struct Level {
    entries: Vec<(Vec<u8>, u64)>,
    size: usize,
}

/// Builds one B+tree bottom-up from ascending entries.
#[derive(Debug)]
struct TreeBuilder {
    /// Page bytes a node may use before the next one starts.
    threshold: usize,
    leaf: Vec<LeafEntry>,
    /// Encoded size of the pending leaf, header included.
    leaf_size: usize,
    /// Pending branch nodes, level 0 just above the leaves. Empty until a leaf is written.
    levels: Vec<Level>,
    last_key: Option<Vec<u8>>,
}

impl TreeBuilder {
    fn new(threshold: usize) -> Self {
        TreeBuilder {
            threshold,
            leaf: Vec::new(),
            leaf_size: PAGE_HEADER_SIZE,
            levels: Vec::new(),
            last_key: None,
        }
    }

    fn push<W: Write>(
        &mut self,
        sink: &mut Sink<W>,
        flags: u32,
        key: &[u8],
        value: &[u8],
    ) -> Result<()> {
        let size = LEAF_ELEMENT_SIZE + key.len() + value.len();
        if !self.leaf.is_empty()
            && (self.leaf_size + size > self.threshold || self.leaf.len() >= MAX_ELEMENTS_PER_PAGE)
        {
            self.flush_leaf(sink)?;
        }
        self.leaf.push(LeafEntry {
            flags,
            key: key.to_vec(),
            value: value.to_vec(),
        });
        self.leaf_size += size;
        self.last_key = Some(key.to_vec());
        Ok(())
    }

    /// Writes the pending leaf as a page and records it in the lowest branch level.
    fn flush_leaf<W: Write>(&mut self, sink: &mut Sink<W>) -> Result<u64> {
        let entries = self
            .leaf
            .iter()
            .map(|e| (e.flags, e.key.as_slice(), e.value.as_slice()));
        encode_leaf(&mut sink.buf, sink.next_pgid, entries);
        let pgid = sink.write_node()?;
        let mut leaf = std::mem::take(&mut self.leaf);
        self.leaf_size = PAGE_HEADER_SIZE;
        let first = std::mem::take(&mut leaf[0].key);
        self.add_branch_entry(sink, 0, first, pgid)?;
        Ok(pgid)
    }

    /// Adds (key, child) to branch level `level`, first writing that level's pending node if
    /// the entry would not fit.
    fn add_branch_entry<W: Write>(
        &mut self,
        sink: &mut Sink<W>,
        level: usize,
        key: Vec<u8>,
        child: u64,
    ) -> Result<()> {
        if self.levels.len() <= level {
            self.levels.push(Level::default());
        }
        let size = BRANCH_ELEMENT_SIZE + key.len();
        let l = &self.levels[level];
        // A branch node takes at least two children (bbolt's minKeysPerPage), so each level
        // has at most half the nodes of the one below and the tree always converges to a root.
        if l.entries.len() >= 2
            && (PAGE_HEADER_SIZE + l.size + size > self.threshold
                || l.entries.len() >= MAX_ELEMENTS_PER_PAGE)
        {
            self.flush_branch(sink, level)?;
        }
        let l = &mut self.levels[level];
        l.size += size;
        l.entries.push((key, child));
        Ok(())
    }

    /// Writes level `level`'s pending node and records it one level up.
    fn flush_branch<W: Write>(&mut self, sink: &mut Sink<W>, level: usize) -> Result<()> {
        let mut l = std::mem::take(&mut self.levels[level]);
        encode_branch(&mut sink.buf, sink.next_pgid, &l.entries);
        let pgid = sink.write_node()?;
        let first = std::mem::take(&mut l.entries[0].0);
        self.add_branch_entry(sink, level + 1, first, pgid)
    }

    /// Completes a tree that must live in pages (the root bucket): returns its root pgid.
    fn finish_tree<W: Write>(mut self, sink: &mut Sink<W>) -> Result<u64> {
        if self.levels.is_empty() {
            // Everything fits in one leaf (possibly empty, possibly spanning overflow pages).
            let entries = self
                .leaf
                .iter()
                .map(|e| (e.flags, e.key.as_slice(), e.value.as_slice()));
            encode_leaf(&mut sink.buf, sink.next_pgid, entries);
            return sink.write_node();
        }
        if !self.leaf.is_empty() {
            self.flush_leaf(sink)?;
        }
        let mut level = 0;
        loop {
            let top = level + 1 == self.levels.len();
            if top && self.levels[level].entries.len() == 1 {
                return Ok(self.levels[level].entries[0].1);
            }
            self.flush_branch(sink, level)?;
            level += 1;
        }
    }

    /// Completes a bucket's tree and returns its entry's value in the parent: the bucket
    /// header, followed by the page image when the bucket is small enough to be inline.
    fn finish_bucket<W: Write>(self, sink: &mut Sink<W>) -> Result<Vec<u8>> {
        let mut value = Vec::new();
        // bbolt's inlineable(): a single leaf whose size ≤ page size / 4.
        if self.levels.is_empty() && self.leaf_size <= sink.page_size / 4 {
            let entries = self
                .leaf
                .iter()
                .map(|e| (e.flags, e.key.as_slice(), e.value.as_slice()));
            encode_leaf(&mut sink.buf, 0, entries);
            value.extend_from_slice(&[0u8; BUCKET_HEADER_SIZE]);
            value.extend_from_slice(&sink.buf);
            return Ok(value);
        }
        let root = self.finish_tree(sink)?;
        value.extend_from_slice(&root.to_le_bytes());
        value.extend_from_slice(&0u64.to_le_bytes()); // sequence
        Ok(value)
    }
}
