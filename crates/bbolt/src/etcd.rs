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
use crate::proto::{bytes_field, for_each_field, message_field, varint_field};
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

impl KeyValue {
    /// Protobuf encoding as gogoproto's `Marshal` produces it: fields in number order, zero
    /// values omitted (proto3). Byte-identical to etcd's, so hashes over the store match.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.key.len() + self.value.len() + 40);
        bytes_field(&mut out, 1, &self.key);
        varint_field(&mut out, 2, self.create_revision as u64);
        varint_field(&mut out, 3, self.mod_revision as u64);
        varint_field(&mut out, 4, self.version as u64);
        bytes_field(&mut out, 5, &self.value);
        varint_field(&mut out, 6, self.lease as u64);
        out
    }

    /// Decodes a protobuf `mvccpb.KeyValue`; unknown fields are skipped, malformed input is an
    /// error.
    pub fn decode(b: &[u8]) -> Result<KeyValue> {
        const WHAT: &str = "mvccpb.KeyValue";
        let mut kv = KeyValue::default();
        for_each_field(b, WHAT, |field, v| {
            match field {
                1 => kv.key = v.bytes(WHAT, field)?.to_vec(),
                2 => kv.create_revision = v.varint(WHAT, field)? as i64,
                3 => kv.mod_revision = v.varint(WHAT, field)? as i64,
                4 => kv.version = v.varint(WHAT, field)? as i64,
                5 => kv.value = v.bytes(WHAT, field)?.to_vec(),
                6 => kv.lease = v.varint(WHAT, field)? as i64,
                _ => {}
            }
            Ok(())
        })?;
        Ok(kv)
    }
}

/// `auth` bucket key: whether authentication is enabled (`[1]` or `[0]`).
pub const AUTH_ENABLED_KEY: &[u8] = b"authEnabled";
/// `auth` bucket key: the auth revision, 8-byte big-endian u64.
pub const AUTH_REVISION_KEY: &[u8] = b"authRevision";

/// `leasepb.Lease` (`server/lease/leasepb/lease.proto`), the value of a `lease` bucket entry,
/// whose key is the id as 8-byte big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lease {
    /// Field 1: the lease id.
    pub id: i64,
    /// Field 2: the granted TTL in seconds.
    pub ttl: i64,
    /// Field 3: the remaining TTL of the last checkpoint (0: never checkpointed).
    pub remaining_ttl: i64,
}

impl Lease {
    /// Protobuf encoding (gogoproto's field order, zero values omitted).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        varint_field(&mut out, 1, self.id as u64);
        varint_field(&mut out, 2, self.ttl as u64);
        varint_field(&mut out, 3, self.remaining_ttl as u64);
        out
    }

    /// Decodes a `leasepb.Lease`; malformed input is an error.
    pub fn decode(b: &[u8]) -> Result<Lease> {
        const WHAT: &str = "leasepb.Lease";
        let mut l = Lease::default();
        for_each_field(b, WHAT, |field, v| {
            match field {
                1 => l.id = v.varint(WHAT, field)? as i64,
                2 => l.ttl = v.varint(WHAT, field)? as i64,
                3 => l.remaining_ttl = v.varint(WHAT, field)? as i64,
                _ => {}
            }
            Ok(())
        })?;
        Ok(l)
    }
}

/// `authpb.User` (`api/authpb/auth.proto`), the value of an `authUsers` entry keyed by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthUser {
    /// Field 1: the name.
    pub name: Vec<u8>,
    /// Field 2: the bcrypt hash of the password (empty for a `no_password` user).
    pub password: Vec<u8>,
    /// Field 3: granted role names (etcd keeps them sorted).
    pub roles: Vec<String>,
    /// Field 4 (`UserAddOptions`), its field 1: the user has no password.
    pub no_password: bool,
}

impl AuthUser {
    /// Protobuf encoding. `options` is always written, as etcd 3.5 stores the request's
    /// options (empty unless `no_password`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.name.len() + self.password.len() + 16);
        bytes_field(&mut out, 1, &self.name);
        bytes_field(&mut out, 2, &self.password);
        for r in &self.roles {
            message_field(&mut out, 3, r.as_bytes());
        }
        let mut opts = Vec::new();
        varint_field(&mut opts, 1, u64::from(self.no_password));
        message_field(&mut out, 4, &opts);
        out
    }

    /// Decodes an `authpb.User`; malformed input (including a role name that is not UTF-8) is
    /// an error.
    pub fn decode(b: &[u8]) -> Result<AuthUser> {
        const WHAT: &str = "authpb.User";
        let mut u = AuthUser::default();
        for_each_field(b, WHAT, |field, v| {
            match field {
                1 => u.name = v.bytes(WHAT, field)?.to_vec(),
                2 => u.password = v.bytes(WHAT, field)?.to_vec(),
                3 => {
                    let r = std::str::from_utf8(v.bytes(WHAT, field)?)
                        .map_err(|_| corrupt!("protobuf {WHAT}: a role name is not UTF-8"))?;
                    u.roles.push(r.to_string());
                }
                4 => {
                    const OPTS: &str = "authpb.UserAddOptions";
                    for_each_field(v.bytes(WHAT, field)?, OPTS, |f, v| {
                        if f == 1 {
                            u.no_password = v.varint(OPTS, f)? != 0;
                        }
                        Ok(())
                    })?;
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(u)
    }
}

/// `authpb.Permission`: a key range and the access it grants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthPermission {
    /// Field 1: `Type` READ = 0, WRITE = 1, READWRITE = 2.
    pub perm_type: i32,
    /// Field 2: the first key.
    pub key: Vec<u8>,
    /// Field 3: the range end (empty: the key alone; `[0]`: every key from `key` on).
    pub range_end: Vec<u8>,
}

/// `authpb.Role`, the value of an `authRoles` entry keyed by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthRole {
    /// Field 1: the name.
    pub name: Vec<u8>,
    /// Field 2 (`keyPermission`): the permissions, as etcd keeps them sorted by key.
    pub permissions: Vec<AuthPermission>,
}

impl AuthRole {
    /// Protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.name.len() + 16);
        bytes_field(&mut out, 1, &self.name);
        let mut p = Vec::new();
        for perm in &self.permissions {
            p.clear();
            varint_field(&mut p, 1, perm.perm_type as i64 as u64);
            bytes_field(&mut p, 2, &perm.key);
            bytes_field(&mut p, 3, &perm.range_end);
            message_field(&mut out, 2, &p);
        }
        out
    }

    /// Decodes an `authpb.Role`; malformed input is an error.
    pub fn decode(b: &[u8]) -> Result<AuthRole> {
        const WHAT: &str = "authpb.Role";
        const PERM: &str = "authpb.Permission";
        let mut r = AuthRole::default();
        for_each_field(b, WHAT, |field, v| {
            match field {
                1 => r.name = v.bytes(WHAT, field)?.to_vec(),
                2 => {
                    let mut p = AuthPermission::default();
                    for_each_field(v.bytes(WHAT, field)?, PERM, |f, v| {
                        match f {
                            1 => p.perm_type = v.varint(PERM, f)? as i32,
                            2 => p.key = v.bytes(PERM, f)?.to_vec(),
                            3 => p.range_end = v.bytes(PERM, f)?.to_vec(),
                            _ => {}
                        }
                        Ok(())
                    })?;
                    r.permissions.push(p);
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(r)
    }
}

/// `etcdserverpb.AlarmMember`: the *key* of an `alarm` bucket entry (its value is empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlarmMember {
    /// Field 1: the member that raised the alarm.
    pub member_id: u64,
    /// Field 2: `AlarmType` NONE = 0, NOSPACE = 1, CORRUPT = 2.
    pub alarm: i32,
}

impl AlarmMember {
    /// Protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        varint_field(&mut out, 1, self.member_id);
        varint_field(&mut out, 2, self.alarm as i64 as u64);
        out
    }

    /// Decodes an `etcdserverpb.AlarmMember`; malformed input is an error.
    pub fn decode(b: &[u8]) -> Result<AlarmMember> {
        const WHAT: &str = "etcdserverpb.AlarmMember";
        let mut a = AlarmMember::default();
        for_each_field(b, WHAT, |field, v| {
            match field {
                1 => a.member_id = v.varint(WHAT, field)?,
                2 => a.alarm = v.varint(WHAT, field)? as i32,
                _ => {}
            }
            Ok(())
        })?;
        Ok(a)
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
    fn lease_auth_alarm_round_trips() {
        let l = Lease {
            id: 0x1234_5678,
            ttl: 600,
            remaining_ttl: 42,
        };
        // Hand-assembled: 08 f8ac d191 01, 10 d804, 18 2a.
        assert_eq!(
            l.encode(),
            [0x08, 0xf8, 0xac, 0xd1, 0x91, 0x01, 0x10, 0xd8, 0x04, 0x18, 0x2a]
        );
        assert_eq!(Lease::decode(&l.encode()).unwrap(), l);
        let u = AuthUser {
            name: b"alice".to_vec(),
            password: b"$2a$10$hash".to_vec(),
            roles: vec!["r1".into(), "root".into()],
            no_password: false,
        };
        assert_eq!(AuthUser::decode(&u.encode()).unwrap(), u);
        let np = AuthUser {
            password: Vec::new(),
            no_password: true,
            ..u.clone()
        };
        assert!(np.encode().ends_with(&[0x22, 2, 0x08, 1]));
        assert_eq!(AuthUser::decode(&np.encode()).unwrap(), np);
        let r = AuthRole {
            name: b"r1".to_vec(),
            permissions: vec![
                AuthPermission {
                    perm_type: 0,
                    key: b"a".to_vec(),
                    range_end: b"b".to_vec(),
                },
                AuthPermission {
                    perm_type: 2,
                    key: b"k".to_vec(),
                    range_end: vec![0],
                },
            ],
        };
        assert_eq!(AuthRole::decode(&r.encode()).unwrap(), r);
        let a = AlarmMember {
            member_id: u64::MAX,
            alarm: 1,
        };
        assert_eq!(AlarmMember::decode(&a.encode()).unwrap(), a);
        for b in [l.encode(), u.encode(), r.encode(), a.encode()] {
            for cut in 0..b.len() {
                let _ = (
                    Lease::decode(&b[..cut]),
                    AuthUser::decode(&b[..cut]),
                    AuthRole::decode(&b[..cut]),
                    AlarmMember::decode(&b[..cut]),
                );
            }
        }
        assert!(
            AuthUser::decode(&[0x1a, 1, 0xff]).is_err(),
            "role not UTF-8"
        );
        assert!(Lease::decode(&[0x0a, 0]).is_err(), "ID is a varint");
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
