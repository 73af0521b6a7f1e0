//! bbolt's on-disk page layout: page header, leaf and branch elements, bucket headers, the meta
//! page and its checksum, the freelist page.
//!
//! Every multi-byte integer is little-endian (bbolt writes its Go structs straight into the
//! mmap on little-endian machines; every platform etcd ships for is little-endian). Sources:
//! `page.go`, `db.go` (`meta`), `bucket.go`, `node.go`, `freelist.go` of go.etcd.io/bbolt
//! v1.3.6 – v1.3.11 (the versions etcd 3.4 and 3.5 use); see the crate README.

use crate::error::{corrupt, Result};

/// Size of the page header: `id u64, flags u16, count u16, overflow u32`.
pub const PAGE_HEADER_SIZE: usize = 16;
/// Size of one leaf element: `flags u32, pos u32, ksize u32, vsize u32`.
pub const LEAF_ELEMENT_SIZE: usize = 16;
/// Size of one branch element: `pos u32, ksize u32, pgid u64`.
pub const BRANCH_ELEMENT_SIZE: usize = 16;
/// Size of a bucket header (`root pgid u64, sequence u64`), the value of a bucket's entry in
/// its parent (followed by the page image when the bucket is inline).
pub const BUCKET_HEADER_SIZE: usize = 16;
/// Size of the meta struct that follows the page header on pages 0 and 1.
pub const META_SIZE: usize = 64;
/// Offset of the checksum in the meta struct; the checksum covers the bytes before it.
pub const META_CHECKSUM_OFFSET: usize = 56;

/// Page flag: a branch (interior) node of a B+tree.
pub const BRANCH_PAGE_FLAG: u16 = 0x01;
/// Page flag: a leaf node of a B+tree.
pub const LEAF_PAGE_FLAG: u16 = 0x02;
/// Page flag: one of the two meta pages.
pub const META_PAGE_FLAG: u16 = 0x04;
/// Page flag: the freelist page.
pub const FREELIST_PAGE_FLAG: u16 = 0x10;

/// Leaf element flag: the value is a bucket header (a sub-bucket), not user data.
pub const BUCKET_LEAF_FLAG: u32 = 0x01;

/// bbolt's file magic (`magic` in db.go).
pub const MAGIC: u32 = 0xED0C_DAED;
/// The only data file version bbolt reads and writes (`version` in db.go).
pub const VERSION: u32 = 2;
/// Freelist pgid meaning "the freelist is not stored" (`pgidNoFreelist`, with
/// `NoFreelistSync`): readers rebuild it by scanning.
pub const PGID_NO_FREELIST: u64 = u64::MAX;
/// bbolt's `MaxKeySize`.
pub const MAX_KEY_SIZE: usize = 32768;
/// bbolt's `MaxValueSize`.
pub const MAX_VALUE_SIZE: usize = (1 << 31) - 2;
/// Page count fields are u16 and bbolt refuses to write 0xFFFF elements in a node.
pub const MAX_ELEMENTS_PER_PAGE: usize = 0xFFFE;
/// Smallest page size accepted (must hold the header, the meta, and a few elements).
pub const MIN_PAGE_SIZE: u32 = 512;
/// Largest page size accepted (bbolt takes the OS page size; 64 KiB is the largest in use).
pub const MAX_PAGE_SIZE: u32 = 1 << 20;

pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[off..off + 2]);
    u16::from_le_bytes(a)
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// The 16-byte header at the start of every page (and of an inline bucket's page image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// The page's own id (its offset in the file divided by the page size).
    pub id: u64,
    /// One of the `*_PAGE_FLAG` values.
    pub flags: u16,
    /// Number of elements (or of freelist ids; 0xFFFF means the count is the first id).
    pub count: u16,
    /// Number of further pages this page spans.
    pub overflow: u32,
}

impl PageHeader {
    /// Decodes a header from the first 16 bytes of `b` (which must be that long).
    pub(crate) fn decode(b: &[u8]) -> PageHeader {
        PageHeader {
            id: u64_at(b, 0),
            flags: u16_at(b, 8),
            count: u16_at(b, 10),
            overflow: u32_at(b, 12),
        }
    }

    /// Writes the header into the first 16 bytes of `b`.
    pub(crate) fn encode(&self, b: &mut [u8]) {
        b[0..8].copy_from_slice(&self.id.to_le_bytes());
        b[8..10].copy_from_slice(&self.flags.to_le_bytes());
        b[10..12].copy_from_slice(&self.count.to_le_bytes());
        b[12..16].copy_from_slice(&self.overflow.to_le_bytes());
    }
}

/// The contents of a meta page (pages 0 and 1): where the database's root bucket and freelist
/// are, how many pages it has, and the id of the transaction that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Must be [`MAGIC`].
    pub magic: u32,
    /// Must be [`VERSION`].
    pub version: u32,
    /// The page size the whole file uses.
    pub page_size: u32,
    /// Unused by bbolt (0).
    pub flags: u32,
    /// Root page of the root bucket (whose entries are the top-level buckets).
    pub root: u64,
    /// The root bucket's sequence (unused by etcd).
    pub sequence: u64,
    /// Page id of the freelist, or [`PGID_NO_FREELIST`].
    pub freelist: u64,
    /// High-water mark: the number of pages in use; every page id referenced is below it.
    pub pgid: u64,
    /// Id of the transaction that wrote this meta.
    pub txid: u64,
    /// FNV-1a 64 of the 56 bytes before this field.
    pub checksum: u64,
}

impl Meta {
    /// Decodes the 64-byte meta struct (no validation).
    pub(crate) fn decode(b: &[u8]) -> Meta {
        Meta {
            magic: u32_at(b, 0),
            version: u32_at(b, 4),
            page_size: u32_at(b, 8),
            flags: u32_at(b, 12),
            root: u64_at(b, 16),
            sequence: u64_at(b, 24),
            freelist: u64_at(b, 32),
            pgid: u64_at(b, 40),
            txid: u64_at(b, 48),
            checksum: u64_at(b, 56),
        }
    }

    /// Encodes the meta struct, computing the checksum over the first 56 bytes.
    pub(crate) fn encode(&self) -> [u8; META_SIZE] {
        let mut b = [0u8; META_SIZE];
        b[0..4].copy_from_slice(&self.magic.to_le_bytes());
        b[4..8].copy_from_slice(&self.version.to_le_bytes());
        b[8..12].copy_from_slice(&self.page_size.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.root.to_le_bytes());
        b[24..32].copy_from_slice(&self.sequence.to_le_bytes());
        b[32..40].copy_from_slice(&self.freelist.to_le_bytes());
        b[40..48].copy_from_slice(&self.pgid.to_le_bytes());
        b[48..56].copy_from_slice(&self.txid.to_le_bytes());
        let sum = fnv1a64(&b[..META_CHECKSUM_OFFSET]);
        b[56..64].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// bbolt's `meta.validate`: magic, version, checksum; plus the sanity checks a reader of
    /// untrusted input needs (page size in range, root and freelist below the high-water mark).
    pub(crate) fn validate(&self, raw: &[u8]) -> Result<()> {
        if self.magic != MAGIC {
            return Err(corrupt!(
                "bad magic {:#010x} (want {MAGIC:#010x})",
                self.magic
            ));
        }
        if self.version != VERSION {
            return Err(corrupt!(
                "unsupported version {} (want {VERSION})",
                self.version
            ));
        }
        let sum = fnv1a64(&raw[..META_CHECKSUM_OFFSET]);
        if sum != self.checksum {
            return Err(corrupt!(
                "meta checksum mismatch: stored {:#018x}, computed {sum:#018x}",
                self.checksum
            ));
        }
        if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(corrupt!("page size {} out of range", self.page_size));
        }
        if self.pgid < 3 {
            return Err(corrupt!("high-water mark {} below 3", self.pgid));
        }
        if self.root < 2 || self.root >= self.pgid {
            return Err(corrupt!(
                "root bucket page {} outside 2..{}",
                self.root,
                self.pgid
            ));
        }
        if self.freelist != PGID_NO_FREELIST && (self.freelist < 2 || self.freelist >= self.pgid) {
            return Err(corrupt!(
                "freelist page {} outside 2..{}",
                self.freelist,
                self.pgid
            ));
        }
        Ok(())
    }
}

/// FNV-1a 64-bit, as Go's `hash/fnv.New64a` (bbolt's meta checksum).
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Encodes a leaf node (header + elements + keys/values) into `out`, which is cleared first.
/// `id` is the page id (0 for an inline bucket's page image). No padding is added.
pub(crate) fn encode_leaf<'a>(
    out: &mut Vec<u8>,
    id: u64,
    entries: impl ExactSizeIterator<Item = (u32, &'a [u8], &'a [u8])> + Clone,
) {
    out.clear();
    let n = entries.len();
    PageHeader {
        id,
        flags: LEAF_PAGE_FLAG,
        count: n as u16,
        overflow: 0,
    }
    .encode(&mut pad(out, PAGE_HEADER_SIZE)[..]);
    let elems_start = out.len();
    out.resize(elems_start + n * LEAF_ELEMENT_SIZE, 0);
    for (i, (flags, k, v)) in entries.enumerate() {
        let elem_off = elems_start + i * LEAF_ELEMENT_SIZE;
        let pos = (out.len() - elem_off) as u32;
        out[elem_off..elem_off + 4].copy_from_slice(&flags.to_le_bytes());
        out[elem_off + 4..elem_off + 8].copy_from_slice(&pos.to_le_bytes());
        out[elem_off + 8..elem_off + 12].copy_from_slice(&(k.len() as u32).to_le_bytes());
        out[elem_off + 12..elem_off + 16].copy_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(v);
    }
}

/// Encodes a branch node into `out`, which is cleared first. No padding is added.
pub(crate) fn encode_branch(out: &mut Vec<u8>, id: u64, entries: &[(Vec<u8>, u64)]) {
    out.clear();
    PageHeader {
        id,
        flags: BRANCH_PAGE_FLAG,
        count: entries.len() as u16,
        overflow: 0,
    }
    .encode(&mut pad(out, PAGE_HEADER_SIZE)[..]);
    let elems_start = out.len();
    out.resize(elems_start + entries.len() * BRANCH_ELEMENT_SIZE, 0);
    for (i, (k, child)) in entries.iter().enumerate() {
        let elem_off = elems_start + i * BRANCH_ELEMENT_SIZE;
        let pos = (out.len() - elem_off) as u32;
        out[elem_off..elem_off + 4].copy_from_slice(&pos.to_le_bytes());
        out[elem_off + 4..elem_off + 8].copy_from_slice(&(k.len() as u32).to_le_bytes());
        out[elem_off + 8..elem_off + 16].copy_from_slice(&child.to_le_bytes());
        out.extend_from_slice(k);
    }
}

/// Appends `n` zero bytes to `out` and returns the appended region.
fn pad(out: &mut Vec<u8>, n: usize) -> &mut [u8] {
    let start = out.len();
    out.resize(start + n, 0);
    &mut out[start..]
}

/// A decoded node page (leaf or branch), with its bytes, from the file or from an inline bucket.
/// Element accessors check every offset against the buffer and return errors, never panic.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Where the node came from, for error messages (page id, or 0 for inline).
    pub id: u64,
    /// Leaf (true) or branch (false).
    pub leaf: bool,
    /// Number of elements.
    pub count: usize,
    /// The page bytes, header included.
    pub data: Vec<u8>,
}

impl Node {
    /// Wraps page bytes (header included) after checking the type and that the element array
    /// fits. `what` names the page for errors.
    pub(crate) fn parse(data: Vec<u8>, what: &str) -> Result<Node> {
        if data.len() < PAGE_HEADER_SIZE {
            return Err(corrupt!(
                "{what}: {} bytes, shorter than a page header",
                data.len()
            ));
        }
        let h = PageHeader::decode(&data);
        let leaf = match h.flags {
            LEAF_PAGE_FLAG => true,
            BRANCH_PAGE_FLAG => false,
            f => {
                return Err(corrupt!(
                    "{what}: expected a leaf or branch page, found flags {f:#06x}"
                ))
            }
        };
        let count = usize::from(h.count);
        // Leaf and branch elements have the same size.
        if PAGE_HEADER_SIZE + count * LEAF_ELEMENT_SIZE > data.len() {
            return Err(corrupt!(
                "{what}: {count} elements do not fit in {} bytes",
                data.len()
            ));
        }
        Ok(Node {
            id: h.id,
            leaf,
            count,
            data,
        })
    }

    fn slice(&self, elem_off: usize, pos: u32, len: u64, i: usize) -> Result<&[u8]> {
        let start = elem_off as u64 + u64::from(pos);
        let end = start + len;
        if end > self.data.len() as u64 {
            return Err(corrupt!(
                "page {}: element {i} ({start}..{end}) runs past the page end ({})",
                self.id,
                self.data.len()
            ));
        }
        Ok(&self.data[start as usize..end as usize])
    }

    /// Leaf element `i`: (flags, key, value).
    pub(crate) fn leaf_elem(&self, i: usize) -> Result<(u32, &[u8], &[u8])> {
        debug_assert!(self.leaf && i < self.count);
        let off = PAGE_HEADER_SIZE + i * LEAF_ELEMENT_SIZE;
        let flags = u32_at(&self.data, off);
        let pos = u32_at(&self.data, off + 4);
        let ksize = u64::from(u32_at(&self.data, off + 8));
        let vsize = u64::from(u32_at(&self.data, off + 12));
        let kv = self.slice(off, pos, ksize + vsize, i)?;
        let (k, v) = kv.split_at(ksize as usize);
        Ok((flags, k, v))
    }

    /// Branch element `i`: (key, child pgid).
    pub(crate) fn branch_elem(&self, i: usize) -> Result<(&[u8], u64)> {
        debug_assert!(!self.leaf && i < self.count);
        let off = PAGE_HEADER_SIZE + i * BRANCH_ELEMENT_SIZE;
        let pos = u32_at(&self.data, off);
        let ksize = u64::from(u32_at(&self.data, off + 4));
        let child = u64_at(&self.data, off + 8);
        let k = self.slice(off, pos, ksize, i)?;
        Ok((k, child))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_go() {
        // Go: fnv.New64a() of "" and "a".
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn leaf_round_trip() {
        let mut buf = Vec::new();
        let entries: Vec<(u32, &[u8], &[u8])> = vec![(0, b"a", b"1"), (1, b"bb", b"")];
        encode_leaf(&mut buf, 7, entries.iter().copied());
        assert_eq!(buf.len(), 16 + 32 + 1 + 1 + 2);
        let n = Node::parse(buf, "test").unwrap();
        assert_eq!(n.id, 7);
        assert_eq!(n.leaf_elem(0).unwrap(), (0, &b"a"[..], &b"1"[..]));
        assert_eq!(n.leaf_elem(1).unwrap(), (1, &b"bb"[..], &b""[..]));
    }

    #[test]
    fn meta_round_trip() {
        let m = Meta {
            magic: MAGIC,
            version: VERSION,
            page_size: 4096,
            flags: 0,
            root: 3,
            sequence: 0,
            freelist: 2,
            pgid: 4,
            txid: 1,
            checksum: 0,
        };
        let raw = m.encode();
        let back = Meta::decode(&raw);
        back.validate(&raw).unwrap();
        assert_eq!(back.checksum, fnv1a64(&raw[..56]));
    }
}
