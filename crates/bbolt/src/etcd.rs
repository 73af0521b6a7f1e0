//! etcd's backend layout inside the bbolt file, and etcd's snapshot file framing.
//!
//! Facts from etcd's source (v3.4.23 and v3.5.19; see the crate README):
//!
//! * Buckets (`server/mvcc/buckets/bucket.go`, 3.4's `mvcc/kvstore.go` etc.): `key` (the MVCC
//!   key space: revision key → `mvccpb.KeyValue`), `meta` (store bookkeeping, below), `lease`
//!   (lease id as 8-byte big-endian → `leasepb.Lease`), `alarm`, `auth` (`authEnabled`,
//!   `authRevision`), `authUsers`, `authRoles`, `members`, `members_removed`, `cluster`
//!   (`clusterVersion`, `downgrade`).
//! * `key` bucket keys are revisions (`server/mvcc/revision.go`, `revToBytes`): 8-byte
//!   big-endian main revision, the byte `'_'`, 8-byte big-endian sub revision (17 bytes); a
//!   deletion's tombstone key has one more byte, `'t'` (`kvstore.go`, `markTombstone`). The
//!   value of a tombstone is a `KeyValue` holding only the key.
//! * `meta` bucket keys (`buckets/bucket.go`, `kvstore.go`, `cindex/cindex.go`):
//!   `consistent_index` and `term` are 8-byte big-endian u64 (the last applied raft index and
//!   its term; `term` since 3.5); `finishedCompactRev` and `scheduledCompactRev` are revision
//!   bytes (17 bytes, sub 0) of the last finished / scheduled compaction.
//! * `etcdctl snapshot save` writes the database (bbolt's `Tx.WriteTo`) followed by the 32-byte
//!   sha256 of those bytes; `snapshot restore` recognises the trailer by `size % 512 == 32`
//!   (`hasChecksum` in `clientv3/snapshot/v3_snapshot.go`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use sha2::{Digest, Sha256};

use crate::error::{corrupt, invalid, Result};
use crate::reader::{ReadAt, Reader};

/// The MVCC key space: revision key → `mvccpb.KeyValue`.
pub const KEY_BUCKET: &[u8] = b"key";
/// Store bookkeeping: consistent index, term, compaction revisions.
pub const META_BUCKET: &[u8] = b"meta";
/// Leases: 8-byte big-endian lease id → `leasepb.Lease` {ID=1, TTL=2, RemainingTTL=3}.
pub const LEASE_BUCKET: &[u8] = b"lease";
/// Raised alarms (NOSPACE, CORRUPT).
pub const ALARM_BUCKET: &[u8] = b"alarm";
/// Auth settings: `authEnabled` (1 byte), `authRevision` (8-byte big-endian).
pub const AUTH_BUCKET: &[u8] = b"auth";
/// Auth users: name → `authpb.User`.
pub const AUTH_USERS_BUCKET: &[u8] = b"authUsers";
/// Auth roles: name → `authpb.Role`.
pub const AUTH_ROLES_BUCKET: &[u8] = b"authRoles";
/// Cluster members (v3 store): hex member id → JSON attributes.
pub const MEMBERS_BUCKET: &[u8] = b"members";
/// Removed member ids (hex) → `"removed"`.
pub const MEMBERS_REMOVED_BUCKET: &[u8] = b"members_removed";
/// Cluster-wide settings: `clusterVersion`, `downgrade`.
pub const CLUSTER_BUCKET: &[u8] = b"cluster";

/// Every bucket a fresh etcd 3.4/3.5 backend creates, in ascending byte order (the order a
/// [`crate::Writer`] needs them in).
pub const ETCD_BUCKETS: [&[u8]; 10] = [
    ALARM_BUCKET,
    AUTH_BUCKET,
    AUTH_ROLES_BUCKET,
    AUTH_USERS_BUCKET,
    CLUSTER_BUCKET,
    KEY_BUCKET,
    LEASE_BUCKET,
    MEMBERS_BUCKET,
    MEMBERS_REMOVED_BUCKET,
    META_BUCKET,
];

/// `meta` key: the last applied raft index, 8-byte big-endian u64.
pub const CONSISTENT_INDEX_KEY: &[u8] = b"consistent_index";
/// `meta` key: the term of the last applied entry, 8-byte big-endian u64 (etcd ≥ 3.5).
pub const TERM_KEY: &[u8] = b"term";
/// `meta` key: revision bytes of the last finished compaction.
pub const FINISHED_COMPACT_KEY: &[u8] = b"finishedCompactRev";
/// `meta` key: revision bytes of the last scheduled compaction.
pub const SCHEDULED_COMPACT_KEY: &[u8] = b"scheduledCompactRev";

/// Length of a revision key (`revBytesLen`).
pub const REV_BYTES_LEN: usize = 17;
/// Length of a tombstone revision key (`markedRevBytesLen`).
pub const TOMBSTONE_REV_BYTES_LEN: usize = 18;
/// The trailing byte of a tombstone key (`markTombstone`).
pub const TOMBSTONE_MARK: u8 = b't';

/// An etcd revision: `main` is the store revision of a transaction, `sub` the change's index
/// within it. Ordered as etcd orders them (main, then sub), which is also the byte order of
/// their encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    /// The transaction's revision.
    pub main: i64,
    /// The change's index within the transaction.
    pub sub: i64,
}

impl Revision {
    /// etcd's `revToBytes`: main (big-endian), `'_'`, sub (big-endian).
    pub fn to_bytes(self) -> [u8; REV_BYTES_LEN] {
        let mut b = [0u8; REV_BYTES_LEN];
        b[..8].copy_from_slice(&(self.main as u64).to_be_bytes());
        b[8] = b'_';
        b[9..].copy_from_slice(&(self.sub as u64).to_be_bytes());
        b
    }

    /// The key of a deletion at this revision: [`Revision::to_bytes`] then `'t'`.
    pub fn to_tombstone_bytes(self) -> [u8; TOMBSTONE_REV_BYTES_LEN] {
        let mut b = [0u8; TOMBSTONE_REV_BYTES_LEN];
        b[..REV_BYTES_LEN].copy_from_slice(&self.to_bytes());
        b[REV_BYTES_LEN] = TOMBSTONE_MARK;
        b
    }

    /// Parses a `key` bucket key: returns the revision and whether it is a tombstone.
    pub fn parse_key(b: &[u8]) -> Result<(Revision, bool)> {
        let tombstone = match b.len() {
            REV_BYTES_LEN => false,
            TOMBSTONE_REV_BYTES_LEN if b[REV_BYTES_LEN] == TOMBSTONE_MARK => true,
            _ => return Err(corrupt!("revision key of {} bytes: {b:02x?}", b.len())),
        };
        if b[8] != b'_' {
            return Err(corrupt!("revision key without '_' separator: {b:02x?}"));
        }
        let mut m = [0u8; 8];
        m.copy_from_slice(&b[..8]);
        let mut s = [0u8; 8];
        s.copy_from_slice(&b[9..17]);
        Ok((
            Revision {
                main: u64::from_be_bytes(m) as i64,
                sub: u64::from_be_bytes(s) as i64,
            },
            tombstone,
        ))
    }
}

/// Encodes a `meta` u64 value (`consistent_index`, `term`): 8 bytes big-endian.
pub fn encode_u64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

/// Decodes a `meta` u64 value; it must be exactly 8 bytes.
pub fn decode_u64(b: &[u8]) -> Result<u64> {
    let a: [u8; 8] = b.try_into().map_err(|_| {
        corrupt!(
            "expected an 8-byte big-endian integer, got {} bytes",
            b.len()
        )
    })?;
    Ok(u64::from_be_bytes(a))
}

/// `mvccpb.KeyValue`, the value of every `key` bucket entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyValue {
    /// Field 1: the user key.
    pub key: Vec<u8>,
    /// Field 2: revision of the key's creation (since its last deletion).
    pub create_revision: i64,
    /// Field 3: revision of this modification.
    pub mod_revision: i64,
    /// Field 4: number of modifications since creation (0 for a tombstone).
    pub version: i64,
    /// Field 5: the value.
    pub value: Vec<u8>,
    /// Field 6: attached lease id, 0 for none.
    pub lease: i64,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let Some(&byte) = b.get(*pos) else {
            return Err(corrupt!("protobuf: truncated varint"));
        };
        *pos += 1;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err(corrupt!("protobuf: varint longer than 10 bytes"))
}

impl KeyValue {
    /// Protobuf encoding as gogoproto's `Marshal` produces it: fields in number order, zero
    /// values omitted (proto3). Byte-identical to etcd's, so hashes over the store match.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.key.len() + self.value.len() + 40);
        let bytes_field = |out: &mut Vec<u8>, tag: u8, b: &[u8]| {
            if !b.is_empty() {
                out.push(tag);
                put_varint(out, b.len() as u64);
                out.extend_from_slice(b);
            }
        };
        let int_field = |out: &mut Vec<u8>, tag: u8, v: i64| {
            if v != 0 {
                out.push(tag);
                put_varint(out, v as u64);
            }
        };
        bytes_field(&mut out, 1 << 3 | 2, &self.key);
        int_field(&mut out, 2 << 3, self.create_revision);
        int_field(&mut out, 3 << 3, self.mod_revision);
        int_field(&mut out, 4 << 3, self.version);
        bytes_field(&mut out, 5 << 3 | 2, &self.value);
        int_field(&mut out, 6 << 3, self.lease);
        out
    }

    /// Decodes a protobuf `mvccpb.KeyValue`; unknown fields are skipped, malformed input is an
    /// error.
    pub fn decode(b: &[u8]) -> Result<KeyValue> {
        let mut kv = KeyValue::default();
        let mut pos = 0;
        while pos < b.len() {
            let tag = get_varint(b, &mut pos)?;
            let (field, wire) = (tag >> 3, tag & 7);
            if field == 0 {
                return Err(corrupt!("protobuf: field number 0"));
            }
            match wire {
                0 => {
                    let v = get_varint(b, &mut pos)? as i64;
                    match field {
                        2 => kv.create_revision = v,
                        3 => kv.mod_revision = v,
                        4 => kv.version = v,
                        6 => kv.lease = v,
                        1 | 5 => return Err(corrupt!("protobuf: field {field} is not a varint")),
                        _ => {}
                    }
                }
                2 => {
                    let len = get_varint(b, &mut pos)?;
                    let end = (pos as u64)
                        .checked_add(len)
                        .filter(|&e| e <= b.len() as u64)
                        .ok_or_else(|| corrupt!("protobuf: field {field} runs past the end"))?
                        as usize;
                    match field {
                        1 => kv.key = b[pos..end].to_vec(),
                        5 => kv.value = b[pos..end].to_vec(),
                        2 | 3 | 4 | 6 => {
                            return Err(corrupt!("protobuf: field {field} is not length-delimited"))
                        }
                        _ => {}
                    }
                    pos = end;
                }
                1 | 5 => {
                    let n = if wire == 1 { 8 } else { 4 };
                    if field <= 6 {
                        return Err(corrupt!("protobuf: field {field} has a fixed-width type"));
                    }
                    if pos + n > b.len() {
                        return Err(corrupt!("protobuf: truncated fixed-width field"));
                    }
                    pos += n;
                }
                _ => return Err(corrupt!("protobuf: unsupported wire type {wire}")),
            }
        }
        Ok(kv)
    }
}

/// Length of the sha256 trailer of an `etcdctl snapshot save` file.
pub const SNAPSHOT_HASH_LEN: u64 = 32;

/// etcd's `hasChecksum`: a file whose size is 32 more than a multiple of 512 carries a sha256
/// trailer (a bbolt database is a whole number of pages, so its size is a multiple of 512).
pub fn has_hash_trailer(file_len: u64) -> bool {
    file_len % 512 == SNAPSHOT_HASH_LEN
}

/// The sha256 of `len` bytes of `r` from its start.
fn sha256_prefix<R: Read + Seek>(r: &mut R, len: u64) -> Result<[u8; 32]> {
    r.seek(SeekFrom::Start(0))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        r.read_exact(&mut buf[..n])?;
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(h.finalize().into())
}

/// Appends the sha256 of the whole of `f` (a complete database) to its end, making it an
/// `etcdctl snapshot save`-style file that `etcdctl snapshot restore` verifies. Returns the
/// hash.
pub fn append_snapshot_hash<F: Read + Write + Seek>(f: &mut F) -> Result<[u8; 32]> {
    let len = f.seek(SeekFrom::End(0))?;
    if has_hash_trailer(len) {
        return Err(invalid!(
            "a file of {len} bytes already looks like it carries a hash trailer"
        ));
    }
    let sum = sha256_prefix(f, len)?;
    f.seek(SeekFrom::End(0))?;
    f.write_all(&sum)?;
    f.flush()?;
    Ok(sum)
}

/// What [`check_snapshot_hash`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotFraming {
    /// Length of the database part of the file.
    pub db_len: u64,
    /// The trailer, when there was one (it matched).
    pub hash: Option<[u8; 32]>,
}

/// Checks a snapshot file: if it carries a sha256 trailer (by etcd's size rule) the hash must
/// match the bytes before it. Returns where the database ends. A file without a trailer (a
/// plain bbolt `db` file) is accepted with `hash: None`, as with `--skip-hash-check`.
pub fn check_snapshot_hash<R: Read + Seek>(r: &mut R) -> Result<SnapshotFraming> {
    let len = r.seek(SeekFrom::End(0))?;
    if !has_hash_trailer(len) {
        return Ok(SnapshotFraming {
            db_len: len,
            hash: None,
        });
    }
    let db_len = len - SNAPSHOT_HASH_LEN;
    let sum = sha256_prefix(r, db_len)?;
    let mut stored = [0u8; 32];
    r.seek(SeekFrom::Start(db_len))?;
    r.read_exact(&mut stored)?;
    if stored != sum {
        return Err(corrupt!(
            "snapshot sha256 mismatch: trailer {}, content {}",
            hex(&stored),
            hex(&sum)
        ));
    }
    Ok(SnapshotFraming {
        db_len,
        hash: Some(stored),
    })
}

/// In-memory form of [`check_snapshot_hash`]: the database bytes without the trailer.
pub fn strip_snapshot_hash(file: &[u8]) -> Result<&[u8]> {
    let mut c = std::io::Cursor::new(file);
    let f = check_snapshot_hash(&mut c)?;
    Ok(&file[..f.db_len as usize])
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Opens an `etcdctl snapshot save` file (or a plain `db` file): checks the sha256 trailer if
/// present, then opens the database part.
pub fn open_snapshot(mut file: File) -> Result<Reader<File>> {
    let framing = check_snapshot_hash(&mut file)?;
    Reader::new(file, framing.db_len)
}

/// What `etcdctl snapshot status` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// CRC-32C (Castagnoli) over every bucket name, then each of its keys and values.
    pub hash: u32,
    /// Main revision of the last entry of the `key` bucket (0 if none).
    pub revision: i64,
    /// Number of entries over all buckets (`meta` etc. included).
    pub total_key: u64,
    /// `Tx.Size()`: pages × page size.
    pub total_size: u64,
}

/// Computes what `etcdctl snapshot status` prints, the same way (etcd 3.4's
/// `v3Manager.Status`), after checking the file as bbolt's `Tx.Check` does.
pub fn snapshot_status<S: ReadAt>(reader: &Reader<S>) -> Result<Status> {
    reader.check()?;
    let mut hash = 0u32;
    let mut revision = 0;
    let mut total_key = 0;
    for top in reader.root().iter() {
        let top = top?;
        if !top.is_bucket {
            return Err(corrupt!(
                "cannot get hash of bucket {}",
                String::from_utf8_lossy(&top.key)
            ));
        }
        hash = crc32c::crc32c_append(hash, &top.key);
        let is_key = top.key.as_slice() == KEY_BUCKET;
        let Some(bucket) = reader.bucket(&top.key)? else {
            return Err(corrupt!(
                "bucket {:?} vanished",
                String::from_utf8_lossy(&top.key)
            ));
        };
        for e in bucket.iter() {
            let e = e?;
            hash = crc32c::crc32c_append(hash, &e.key);
            if !e.is_bucket {
                // bbolt's ForEach passes a nil value for a nested bucket.
                hash = crc32c::crc32c_append(hash, &e.value);
            }
            if is_key {
                revision = Revision::parse_key(&e.key)?.0.main;
            }
            total_key += 1;
        }
    }
    Ok(Status {
        hash,
        revision,
        total_key,
        total_size: reader.size(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_bytes() {
        let r = Revision { main: 5, sub: 2 };
        let b = r.to_bytes();
        assert_eq!(b, [0, 0, 0, 0, 0, 0, 0, 5, b'_', 0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(Revision::parse_key(&b).unwrap(), (r, false));
        let t = r.to_tombstone_bytes();
        assert_eq!(t[17], b't');
        assert_eq!(Revision::parse_key(&t).unwrap(), (r, true));
        assert!(Revision::parse_key(&b[..16]).is_err());
        let mut bad = b;
        bad[8] = b'x';
        assert!(Revision::parse_key(&bad).is_err());
    }

    #[test]
    fn keyvalue_round_trip_and_known_bytes() {
        let kv = KeyValue {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            value: b"bar".to_vec(),
            lease: 0,
        };
        let b = kv.encode();
        // Hand-assembled: 0a 03 "foo" 10 02 18 03 20 02 2a 03 "bar".
        assert_eq!(
            b,
            [0x0a, 3, b'f', b'o', b'o', 0x10, 2, 0x18, 3, 0x20, 2, 0x2a, 3, b'b', b'a', b'r']
        );
        assert_eq!(KeyValue::decode(&b).unwrap(), kv);
        let neg = KeyValue {
            lease: -1,
            ..kv.clone()
        };
        assert_eq!(KeyValue::decode(&neg.encode()).unwrap(), neg);
        for cut in 0..b.len() {
            // Truncations either fail or decode a prefix, never panic.
            let _ = KeyValue::decode(&b[..cut]);
        }
        assert!(KeyValue::decode(&[0x0a, 0x05, b'a']).is_err());
    }

    #[test]
    fn hash_trailer() {
        let db = vec![7u8; 8192];
        let mut c = std::io::Cursor::new(db.clone());
        append_snapshot_hash(&mut c).unwrap();
        let file = c.into_inner();
        assert_eq!(file.len(), 8192 + 32);
        assert_eq!(strip_snapshot_hash(&file).unwrap(), &db[..]);
        let mut bad = file.clone();
        bad[10] ^= 1;
        assert!(strip_snapshot_hash(&bad).is_err());
        assert_eq!(strip_snapshot_hash(&db).unwrap().len(), 8192);
    }
}
