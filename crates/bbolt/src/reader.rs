//! Reading a bbolt database file: meta selection, bucket lookup, in-order iteration, and a
//! consistency check like bbolt's `Tx.Check`.
//!
//! The input is untrusted. Every offset is checked before use, every page id must lie in
//! `2..high-water mark` and inside the file, a page must name itself and have a leaf or branch
//! type, each page may be visited once per walk (so loops and shared subtrees are errors, not
//! hangs), and keys must come out strictly ascending. Problems are [`Error::Corrupt`].

use std::fs::File;
use std::io;

use crate::error::{corrupt, Error, Result};
use crate::page::{
    u64_at, Meta, Node, PageHeader, BUCKET_HEADER_SIZE, BUCKET_LEAF_FLAG, FREELIST_PAGE_FLAG,
    MAX_PAGE_SIZE, META_SIZE, MIN_PAGE_SIZE, PAGE_HEADER_SIZE, PGID_NO_FREELIST,
};

/// Deepest B+tree accepted. bbolt trees are a handful of levels deep; anything deeper is a
/// corrupted chain of branch pages.
const MAX_DEPTH: usize = 64;

/// Positional reads from a source of bytes: a file (`pread`) or memory.
pub trait ReadAt {
    /// Fills `buf` from `offset`; fails if the source ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        match end {
            Some(end) if end <= self.len() as u64 => {
                buf.copy_from_slice(&self[offset as usize..end as usize]);
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the buffer",
            )),
        }
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
}

/// An open bbolt database: the chosen meta page and the source to read pages from.
#[derive(Debug)]
pub struct Reader<S> {
    src: S,
    len: u64,
    meta: Meta,
}

impl Reader<File> {
    /// Opens a database file (its whole length is the database).
    pub fn open_file(file: File) -> Result<Self> {
        let len = file.metadata()?.len();
        Reader::new(file, len)
    }
}

/// One key/value entry of a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: Vec<u8>,
    /// The value; for a nested bucket, its raw bucket header (and inline page).
    pub value: Vec<u8>,
    /// True if this entry is a nested bucket rather than a value (bbolt's `bucketLeafFlag`).
    pub is_bucket: bool,
}

impl<S: ReadAt> Reader<S> {
    /// Opens the database held in the first `len` bytes of `src`. Reads both meta pages and
    /// keeps the valid one with the higher transaction id, as bbolt does; fails if neither is
    /// valid or the file is shorter than the chosen meta's page count.
    pub fn new(src: S, len: u64) -> Result<Self> {
        let meta0 = read_meta(&src, len, 0);
        // Page 1 sits one page in: use meta 0's page size if it is valid, else try the sizes
        // bbolt could have used.
        let meta1 = match &meta0 {
            Ok(m) => read_meta(&src, len, u64::from(m.page_size)),
            Err(_) => {
                // Meta 0's page size field, if plausible, else bbolt's usual 4096: its error
                // is the one reported if no page size works.
                let mut raw = [0u8; 4];
                let hint = match src.read_exact_at(&mut raw, PAGE_HEADER_SIZE as u64 + 8) {
                    Ok(()) => u32::from_le_bytes(raw),
                    Err(_) => 4096,
                };
                let hint = if (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&hint) {
                    hint
                } else {
                    4096
                };
                let mut found = read_meta(&src, len, u64::from(hint));
                let mut ps = MIN_PAGE_SIZE;
                while found.is_err() && ps <= MAX_PAGE_SIZE {
                    if let Ok(m) = read_meta(&src, len, u64::from(ps)) {
                        if m.page_size == ps {
                            found = Ok(m);
                        }
                    }
                    ps *= 2;
                }
                found
            }
        };
        let meta = match (meta0, meta1) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(_)) => a,
            (Err(_), Ok(b)) => b,
            (Err(e0), Err(e1)) => {
                return Err(corrupt!(
                    "no valid meta page: page 0: {}; page 1: {}",
                    detail(&e0),
                    detail(&e1)
                ))
            }
        };
        let need = meta.pgid.checked_mul(u64::from(meta.page_size));
        match need {
            Some(need) if need <= len => {}
            _ => {
                return Err(corrupt!(
                    "truncated: the meta counts {} pages of {} bytes but the file has {len} bytes",
                    meta.pgid,
                    meta.page_size
                ))
            }
        }
        Ok(Reader { src, len, meta })
    }

    /// The meta page in use (page size, root, freelist, high-water mark, txid).
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The page size of the file.
    pub fn page_size(&self) -> u32 {
        self.meta.page_size
    }

    /// The database size as bbolt's `Tx.Size()` reports it: high-water mark × page size.
    pub fn size(&self) -> u64 {
        self.meta.pgid * u64::from(self.meta.page_size)
    }

    /// Gives back the source.
    pub fn into_inner(self) -> S {
        self.src
    }

    /// The root bucket, whose entries are the top-level buckets.
    pub fn root(&self) -> Bucket<'_, S> {
        Bucket {
            reader: self,
            root: Root::Page(self.meta.root),
        }
    }

    /// Names of the top-level buckets, ascending.
    pub fn bucket_names(&self) -> Result<Vec<Vec<u8>>> {
        let mut names = Vec::new();
        for e in self.root().iter() {
            let e = e?;
            if e.is_bucket {
                names.push(e.key);
            }
        }
        Ok(names)
    }

    /// The top-level bucket `name`, or `None` if there is none (or the key holds a value).
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'_, S>>> {
        self.root().bucket(name)
    }

    /// Reads and checks the node at `pgid` (a leaf or branch page, with its overflow pages).
    fn node(&self, pgid: u64) -> Result<Node> {
        let h = self.page_header(pgid)?;
        let ps = u64::from(self.meta.page_size);
        let pages = u64::from(h.overflow) + 1;
        self.check_span(pgid, pages)?;
        let mut data = vec![0u8; (pages * ps) as usize];
        self.src.read_exact_at(&mut data, pgid * ps)?;
        let node = Node::parse(data, &format!("page {pgid}"))?;
        Ok(node)
    }

    /// Reads the header of page `pgid`, checking the id is in range and the page names itself.
    fn page_header(&self, pgid: u64) -> Result<PageHeader> {
        if pgid < 2 || pgid >= self.meta.pgid {
            return Err(corrupt!(
                "page id {pgid} outside 2..{} (high-water mark)",
                self.meta.pgid
            ));
        }
        let mut hb = [0u8; PAGE_HEADER_SIZE];
        self.src
            .read_exact_at(&mut hb, pgid * u64::from(self.meta.page_size))?;
        let h = PageHeader::decode(&hb);
        if h.id != pgid {
            return Err(corrupt!("page {pgid} says it is page {}", h.id));
        }
        Ok(h)
    }

    /// Checks pages `pgid..pgid+pages` lie below the high-water mark (hence inside the file).
    fn check_span(&self, pgid: u64, pages: u64) -> Result<()> {
        match pgid.checked_add(pages) {
            Some(end) if end <= self.meta.pgid => Ok(()),
            _ => Err(corrupt!(
                "page {pgid} spans {pages} pages, past the high-water mark {}",
                self.meta.pgid
            )),
        }
    }

    /// The page ids the freelist lists as free (empty if the freelist is not stored).
    pub fn free_pages(&self) -> Result<Vec<u64>> {
        if self.meta.freelist == PGID_NO_FREELIST {
            return Ok(Vec::new());
        }
        let pgid = self.meta.freelist;
        let h = self.page_header(pgid)?;
        if h.flags != FREELIST_PAGE_FLAG {
            return Err(corrupt!(
                "freelist page {pgid} has flags {:#06x}, not a freelist",
                h.flags
            ));
        }
        let pages = u64::from(h.overflow) + 1;
        self.check_span(pgid, pages)?;
        let ps = u64::from(self.meta.page_size);
        let mut data = vec![0u8; (pages * ps) as usize];
        self.src.read_exact_at(&mut data, pgid * ps)?;
        let (mut start, mut count) = (PAGE_HEADER_SIZE, u64::from(h.count));
        if h.count == 0xFFFF {
            // The real count is the first element (freelist.go).
            count = u64_at(&data, PAGE_HEADER_SIZE);
            start += 8;
        }
        let end = count
            .checked_mul(8)
            .and_then(|n| n.checked_add(start as u64));
        match end {
            Some(end) if end <= data.len() as u64 => {}
            _ => {
                return Err(corrupt!(
                    "freelist page {pgid}: {count} ids do not fit in {} bytes",
                    data.len()
                ))
            }
        }
        Ok((0..count as usize)
            .map(|i| u64_at(&data, start + i * 8))
            .collect())
    }

    /// bbolt's `Tx.Check`: no page is reachable from two places in the bucket trees, or both
    /// free and reachable; keys ascend in every bucket; and, when the freelist is stored,
    /// every page below the high-water mark is a meta page, the freelist, free, or reachable.
    /// Walks the whole file.
    pub fn check(&self) -> Result<()> {
        let n = self.meta.pgid;
        let mut seen = PageSet::new(n);
        seen.insert(0)?;
        seen.insert(1)?;
        if self.meta.freelist != PGID_NO_FREELIST {
            let h = self.page_header(self.meta.freelist)?;
            let pages = u64::from(h.overflow) + 1;
            self.check_span(self.meta.freelist, pages)?;
            for p in self.meta.freelist..self.meta.freelist + pages {
                seen.insert(p)?;
            }
        }
        for id in self.free_pages()? {
            if id < 2 || id >= n {
                return Err(corrupt!("freelist lists page {id}, outside 2..{n}"));
            }
            seen.insert(id)
                .map_err(|_| corrupt!("page {id} is freed twice or free and in use"))?;
        }
        self.check_bucket(Root::Page(self.meta.root), &mut seen, 0)?;
        // Without a stored freelist (`NoFreelistSync`, as etcd runs bbolt) bbolt rebuilds it
        // from the unreachable pages, so only a stored freelist must account for every page.
        if self.meta.freelist != PGID_NO_FREELIST {
            if let Some(p) = seen.first_missing() {
                return Err(corrupt!("page {p} is neither reachable nor free"));
            }
        }
        Ok(())
    }

    fn check_bucket(&self, root: Root, seen: &mut PageSet, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(corrupt!("buckets nested more than {MAX_DEPTH} deep"));
        }
        let mut it = Iter::new(self, root);
        it.shared_pages = Some(seen);
        let mut nested = Vec::new();
        for e in it {
            let e = e?;
            if e.is_bucket {
                nested.push(parse_bucket_value(&e.value, &e.key)?);
            }
        }
        for root in nested {
            self.check_bucket(root, seen, depth + 1)?;
        }
        Ok(())
    }
}

/// The message of an error without the "corrupt bbolt file" prefix, for nesting.
fn detail(e: &Error) -> String {
    match e {
        Error::Corrupt(m) | Error::InvalidInput(m) => m.clone(),
        Error::Io(e) => e.to_string(),
    }
}

/// Reads and validates the meta on the page at byte offset `page_off`.
fn read_meta<S: ReadAt>(src: &S, len: u64, page_off: u64) -> Result<Meta> {
    let off = page_off + PAGE_HEADER_SIZE as u64;
    if off + META_SIZE as u64 > len {
        return Err(corrupt!(
            "file of {len} bytes too short for a meta page at {page_off}"
        ));
    }
    let mut raw = [0u8; META_SIZE];
    src.read_exact_at(&mut raw, off)?;
    let m = Meta::decode(&raw);
    m.validate(&raw)?;
    Ok(m)
}

/// Where a bucket's tree is: a page, or an inline page image.
#[derive(Debug, Clone)]
enum Root {
    Page(u64),
    Inline(Vec<u8>),
}

/// Decodes a bucket entry's value (bucket header, then the page image if inline).
fn parse_bucket_value(v: &[u8], name: &[u8]) -> Result<Root> {
    if v.len() < BUCKET_HEADER_SIZE {
        return Err(corrupt!(
            "bucket {:?}: value of {} bytes is shorter than a bucket header",
            String::from_utf8_lossy(name),
            v.len()
        ));
    }
    let root = u64_at(v, 0);
    if root == 0 {
        Ok(Root::Inline(v[BUCKET_HEADER_SIZE..].to_vec()))
    } else {
        Ok(Root::Page(root))
    }
}

/// A bucket of an open database.
#[derive(Debug, Clone)]
pub struct Bucket<'a, S> {
    reader: &'a Reader<S>,
    root: Root,
}

impl<'a, S: ReadAt> Bucket<'a, S> {
    /// True if the bucket is stored inline in its parent's leaf.
    pub fn is_inline(&self) -> bool {
        matches!(self.root, Root::Inline(_))
    }

    /// The bucket's entries in key order.
    pub fn iter(&self) -> Iter<'a, 'a, S> {
        Iter::new(self.reader, self.root.clone())
    }

    /// The nested bucket `name`, or `None` if there is none (or the key holds a value).
    /// Scans the bucket (buckets in etcd's layout are few).
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'a, S>>> {
        for e in self.iter() {
            let e = e?;
            if e.key.as_slice() == name {
                if !e.is_bucket {
                    return Ok(None);
                }
                let root = parse_bucket_value(&e.value, name)?;
                return Ok(Some(Bucket {
                    reader: self.reader,
                    root,
                }));
            }
            if e.key.as_slice() > name {
                break;
            }
        }
        Ok(None)
    }

    /// The value stored under `key` (not a nested bucket), found by descending the tree.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut node = match &self.root {
            Root::Inline(img) => Node::parse(img.clone(), "inline bucket page")?,
            Root::Page(p) => self.reader.node(*p)?,
        };
        if matches!(self.root, Root::Inline(_)) && !node.leaf {
            return Err(corrupt!("inline bucket page is a branch"));
        }
        for _ in 0..=MAX_DEPTH {
            if node.leaf {
                for i in 0..node.count {
                    let (flags, k, v) = node.leaf_elem(i)?;
                    if k == key {
                        return Ok((flags & BUCKET_LEAF_FLAG == 0).then(|| v.to_vec()));
                    }
                }
                return Ok(None);
            }
            // The child whose key is the last one ≤ key (bbolt's Cursor.search).
            let mut child = None;
            for i in 0..node.count {
                let (k, c) = node.branch_elem(i)?;
                if i > 0 && k > key {
                    break;
                }
                child = Some(c);
            }
            let Some(child) = child else {
                return Err(corrupt!("branch page {} has no elements", node.id));
            };
            node = self.reader.node(child)?;
        }
        Err(corrupt!("tree deeper than {MAX_DEPTH} levels"))
    }
}

/// Bit set of page ids below the high-water mark, to visit each page at most once.
#[derive(Debug)]
struct PageSet {
    bits: Vec<u64>,
    n: u64,
}

impl PageSet {
    fn new(n: u64) -> Self {
        PageSet {
            bits: vec![0; n.div_ceil(64) as usize],
            n,
        }
    }

    /// Marks `p`; fails if it was already marked or is out of range.
    fn insert(&mut self, p: u64) -> Result<()> {
        if p >= self.n {
            return Err(corrupt!("page {p} beyond the high-water mark {}", self.n));
        }
        let (w, b) = ((p / 64) as usize, p % 64);
        if self.bits[w] & (1 << b) != 0 {
            return Err(corrupt!("page {p} is referenced more than once"));
        }
        self.bits[w] |= 1 << b;
        Ok(())
    }

    fn first_missing(&self) -> Option<u64> {
        (0..self.n).find(|&p| self.bits[(p / 64) as usize] & (1 << (p % 64)) == 0)
    }
}

/// In-order iterator over a bucket's entries. Yields at most one error, then ends.
#[derive(Debug)]
pub struct Iter<'a, 's, S> {
    reader: &'a Reader<S>,
    /// Path from the root: each node and the index of the next element to visit.
    stack: Vec<(Node, usize)>,
    /// Pages visited by this walk (created lazily), so loops and shared pages are caught.
    own_pages: Option<PageSet>,
    /// Set by `Reader::check` to share one page set across all buckets.
    shared_pages: Option<&'s mut PageSet>,
    last_key: Option<Vec<u8>>,
    /// Set once the walk ended or reported its error.
    done: bool,
    root: Option<Root>,
}

impl<'a, 's, S: ReadAt> Iter<'a, 's, S> {
    fn new(reader: &'a Reader<S>, root: Root) -> Self {
        Iter {
            reader,
            stack: Vec::new(),
            own_pages: None,
            shared_pages: None,
            last_key: None,
            done: false,
            root: Some(root),
        }
    }

    fn visit(&mut self, pgid: u64) -> Result<Node> {
        let h = self.reader.page_header(pgid)?;
        let pages = u64::from(h.overflow) + 1;
        self.reader.check_span(pgid, pages)?;
        let n = self.reader.meta.pgid;
        let set = match self.shared_pages.as_deref_mut() {
            Some(s) => s,
            None => self.own_pages.get_or_insert_with(|| PageSet::new(n)),
        };
        for p in pgid..pgid + pages {
            set.insert(p)?;
        }
        self.reader.node(pgid)
    }

    fn start(&mut self, root: Root) -> Result<()> {
        let node = match root {
            Root::Inline(img) => {
                let node = Node::parse(img, "inline bucket page")?;
                if !node.leaf {
                    return Err(corrupt!("inline bucket page is a branch page"));
                }
                node
            }
            Root::Page(p) => self.visit(p)?,
        };
        self.stack.push((node, 0));
        Ok(())
    }

    fn step(&mut self) -> Result<Option<Entry>> {
        if let Some(root) = self.root.take() {
            self.start(root)?;
        }
        loop {
            let Some((node, idx)) = self.stack.last_mut() else {
                return Ok(None);
            };
            if *idx >= node.count {
                self.stack.pop();
                continue;
            }
            let i = *idx;
            *idx += 1;
            if node.leaf {
                let (flags, k, v) = node.leaf_elem(i)?;
                if let Some(last) = &self.last_key {
                    if k <= last.as_slice() {
                        return Err(corrupt!(
                            "page {}: keys out of order at element {i}",
                            node.id
                        ));
                    }
                }
                let entry = Entry {
                    key: k.to_vec(),
                    value: v.to_vec(),
                    is_bucket: flags & BUCKET_LEAF_FLAG != 0,
                };
                self.last_key = Some(entry.key.clone());
                return Ok(Some(entry));
            }
            let (_, child) = node.branch_elem(i)?;
            if self.stack.len() >= MAX_DEPTH {
                return Err(corrupt!("tree deeper than {MAX_DEPTH} levels"));
            }
            let child = self.visit(child)?;
            self.stack.push((child, 0));
        }
    }
}

impl<S: ReadAt> Iterator for Iter<'_, '_, S> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl<S> Reader<S> {
    /// The byte length of the source given at open (may exceed [`Reader::size`]).
    pub fn source_len(&self) -> u64 {
        self.len
    }
}
