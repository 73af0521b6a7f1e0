//! Backups in etcd's format: the whole store as a bbolt file laid out as etcd 3.5's backend
//! (what `etcdctl snapshot save` copies), and the import of such a file (etcd's or ours).
//!
//! Layout written (facts and sources in `crates/bbolt/README.md`; etcd v3.5.19):
//!
//! * `key`: every stored revision of `history`, keyed by etcd's revision bytes (17 bytes, plus
//!   `'t'` for a deletion), valued by `mvccpb.KeyValue`; a deletion's value holds only the key
//!   (`storeTxnWrite.delete` in `server/mvcc/kvstore_txn.go`).
//! * `meta`: `consistent_index` (u64 big-endian); when the store was ever compacted,
//!   `scheduledCompactRev` = the compaction revision and `finishedCompactRev` = the revision the
//!   physical compaction completed (revision bytes, sub 0; `kvstore.go`,
//!   `kvstore_compaction.go`). etcd finishes a scheduled compaction left unfinished when it
//!   starts, and so does our import (the physical walk restarts from the beginning).
//! * `lease`: 8-byte big-endian id → `leasepb.Lease`; `alarm`: `AlarmMember` bytes → empty;
//!   `auth`: `authEnabled`, `authRevision`; `authUsers`, `authRoles`: name → `authpb` message.
//! * `cluster`, `members`, `members_removed`: empty (the membership is not part of the store;
//!   `snapshot restore` rewrites it anyway).

use std::collections::HashMap;
use std::io::{Seek, Write};

use quorum_bbolt::etcd::{
    self, AlarmMember as PbAlarm, AuthPermission, AuthRole, AuthUser, KeyValue, Lease as PbLease,
    Revision,
};
use quorum_bbolt::{Entry, ReadAt, Reader, Writer};
use redb::{Database, Durability, ReadTransaction, ReadableTable, Table, WriteTransaction};

use crate::auth::{self, AuthState, PermType, Permission, Role, User};
use crate::error::MvccError;
use crate::schema::*;
use crate::write::meta_get;

/// Records per engine transaction during an import (as `snapshot.rs`).
const IMPORT_BATCH: usize = 10_000;

fn corrupt(what: impl std::fmt::Display) -> MvccError {
    MvccError::CorruptData(format!("backup file: {what}"))
}

/// A bbolt error as a store error: damage of the file is `CorruptData`.
fn bbolt_err(e: quorum_bbolt::Error) -> MvccError {
    match e {
        quorum_bbolt::Error::Corrupt(m) => corrupt(m),
        quorum_bbolt::Error::Io(e) => MvccError::Storage(format!("backup file i/o: {e}")),
        quorum_bbolt::Error::InvalidInput(m) => {
            MvccError::Storage(format!("cannot write the backup: {m}"))
        }
    }
}

/// Writes the state seen by `txn` to `out` as an etcd backend file; returns `out` and the
/// file's size in bytes.
pub(crate) fn export<W: Write + Seek>(
    txn: &ReadTransaction,
    out: W,
) -> Result<(W, u64), MvccError> {
    let meta = txn.open_table(META)?;
    let consistent_index = meta_get(&meta, META_CONSISTENT_INDEX)?.unwrap_or(0);
    let compact = meta_get(&meta, META_COMPACT_REV)?.unwrap_or(0);
    let compact_done = meta_get(&meta, META_COMPACT_DONE)?.unwrap_or(0);
    let auth_state = auth::load(&txn.open_table(AUTH)?)?;
    let mut w = Writer::new(out).map_err(bbolt_err)?;
    let put = |w: &mut Writer<W>, k: &[u8], v: &[u8]| w.put(k, v).map_err(bbolt_err);
    for bucket in etcd::ETCD_BUCKETS {
        w.bucket(bucket).map_err(bbolt_err)?;
        if bucket == etcd::ALARM_BUCKET {
            let mut keys = Vec::new();
            for item in txn.open_table(ALARM)?.iter()? {
                let (member_id, alarm) = item?.0.value();
                keys.push(PbAlarm { member_id, alarm }.encode());
            }
            keys.sort();
            keys.dedup();
            // AlarmMember{0, NONE} encodes as nothing, which bbolt cannot key; never raised.
            for k in keys.iter().filter(|k| !k.is_empty()) {
                put(&mut w, k, &[])?;
            }
        } else if bucket == etcd::AUTH_BUCKET {
            put(
                &mut w,
                etcd::AUTH_ENABLED_KEY,
                &[u8::from(auth_state.enabled())],
            )?;
            let rev = etcd::encode_u64(auth_state.revision());
            put(&mut w, etcd::AUTH_REVISION_KEY, &rev)?;
        } else if bucket == etcd::AUTH_ROLES_BUCKET {
            for r in auth_state.roles() {
                put(&mut w, r.name.as_bytes(), &role_to_pb(r).encode())?;
            }
        } else if bucket == etcd::AUTH_USERS_BUCKET {
            for u in auth_state.users() {
                put(&mut w, u.name.as_bytes(), &user_to_pb(u).encode())?;
            }
        } else if bucket == etcd::KEY_BUCKET {
            for item in txn.open_table(HISTORY)?.iter()? {
                let (k, v) = item?;
                let (main, sub) = k.value();
                let (key, rec) = split_history(v.value())?;
                let rev = Revision {
                    main: rev_i64(main),
                    sub: rev_i64(sub),
                };
                match Record::decode(rec, false)?.into_kv(key, main) {
                    None => {
                        let kv = KeyValue {
                            key: key.to_vec(),
                            ..KeyValue::default()
                        };
                        put(&mut w, &rev.to_tombstone_bytes(), &kv.encode())?;
                    }
                    Some(kv) => {
                        let kv = KeyValue {
                            key: kv.key,
                            create_revision: kv.create_revision,
                            mod_revision: kv.mod_revision,
                            version: kv.version,
                            value: kv.value,
                            lease: kv.lease,
                        };
                        put(&mut w, &rev.to_bytes(), &kv.encode())?;
                    }
                }
            }
        } else if bucket == etcd::LEASE_BUCKET {
            // Keys are the ids as unsigned big-endian: non-negative ids first.
            let lease = txn.open_table(LEASE)?;
            for item in lease.range(0i64..)?.chain(lease.range(..0i64)?) {
                let (k, v) = item?;
                let (ttl, remaining_ttl) = v.value();
                let id = k.value();
                let l = PbLease {
                    id,
                    ttl,
                    remaining_ttl,
                };
                put(&mut w, &etcd::encode_u64(id as u64), &l.encode())?;
            }
        } else if bucket == etcd::META_BUCKET {
            put(
                &mut w,
                etcd::CONSISTENT_INDEX_KEY,
                &etcd::encode_u64(consistent_index),
            )?;
            if compact > 0 {
                if compact_done > 0 {
                    let done = Revision {
                        main: rev_i64(compact_done.min(compact)),
                        sub: 0,
                    };
                    put(&mut w, etcd::FINISHED_COMPACT_KEY, &done.to_bytes())?;
                }
                let scheduled = Revision {
                    main: rev_i64(compact),
                    sub: 0,
                };
                put(&mut w, etcd::SCHEDULED_COMPACT_KEY, &scheduled.to_bytes())?;
            }
        }
    }
    let (out, summary) = w.finish().map_err(bbolt_err)?;
    Ok((out, summary.db_size()))
}

fn user_to_pb(u: &User) -> AuthUser {
    AuthUser {
        name: u.name.as_bytes().to_vec(),
        password: u
            .password_hash
            .as_deref()
            .unwrap_or_default()
            .as_bytes()
            .to_vec(),
        roles: u.roles.clone(),
        no_password: u.password_hash.is_none(),
    }
}

fn role_to_pb(r: &Role) -> AuthRole {
    AuthRole {
        name: r.name.as_bytes().to_vec(),
        permissions: r
            .permissions
            .iter()
            .map(|p| AuthPermission {
                perm_type: p.perm_type as i32,
                key: p.key.clone(),
                range_end: p.range_end.clone(),
            })
            .collect(),
    }
}

fn utf8(kind: &str, b: &[u8]) -> Result<String, MvccError> {
    String::from_utf8(b.to_vec()).map_err(|_| corrupt(format!("{kind} name is not UTF-8")))
}

/// An `authUsers` entry as our user; the entry's key must be the user's name.
fn user_from_pb(e: &Entry) -> Result<User, MvccError> {
    let u = AuthUser::decode(&e.value).map_err(bbolt_err)?;
    let name = utf8("user", &e.key)?;
    if u.name != e.key {
        return Err(corrupt(format!("user {name:?} stored under another name")));
    }
    let hash = utf8("password hash of a user", &u.password)?;
    Ok(User {
        name,
        password_hash: (!u.no_password && !hash.is_empty()).then_some(hash),
        roles: u.roles,
    })
}

/// An `authRoles` entry as our role; the entry's key must be the role's name.
fn role_from_pb(e: &Entry) -> Result<Role, MvccError> {
    let r = AuthRole::decode(&e.value).map_err(bbolt_err)?;
    let name = utf8("role", &e.key)?;
    if r.name != e.key {
        return Err(corrupt(format!("role {name:?} stored under another name")));
    }
    let permissions = r
        .permissions
        .into_iter()
        .map(|p| {
            let perm_type = PermType::from_i32(p.perm_type).ok_or_else(|| {
                corrupt(format!(
                    "role {name:?} has a permission of unknown type {}",
                    p.perm_type
                ))
            })?;
            Ok(Permission {
                perm_type,
                key: p.key,
                range_end: p.range_end,
            })
        })
        .collect::<Result<_, MvccError>>()?;
    Ok(Role { name, permissions })
}

/// The entries of bucket `name` (none if the file lacks it); nested buckets are refused.
fn entries<'r, S: ReadAt>(
    src: &'r Reader<S>,
    name: &'static [u8],
) -> Result<impl Iterator<Item = Result<Entry, MvccError>> + 'r, MvccError> {
    let bucket = src.bucket(name).map_err(bbolt_err)?;
    let label = String::from_utf8_lossy(name).into_owned();
    Ok(bucket
        .into_iter()
        .flat_map(|b| b.iter())
        .map(move |e| match e {
            Ok(e) if e.is_bucket => Err(corrupt(format!(
                "bucket {label:?} holds a nested bucket {:?}",
                String::from_utf8_lossy(&e.key)
            ))),
            Ok(e) => Ok(e),
            Err(e) => Err(bbolt_err(e)),
        }))
}

/// A `meta`/`auth` value by key.
fn get<S: ReadAt>(
    src: &Reader<S>,
    bucket: &'static [u8],
    key: &[u8],
) -> Result<Option<Vec<u8>>, MvccError> {
    match src.bucket(bucket).map_err(bbolt_err)? {
        Some(b) => b.get(key).map_err(bbolt_err),
        None => Ok(None),
    }
}

/// A compaction revision of the `meta` bucket (revision bytes, not a tombstone).
fn compact_rev<S: ReadAt>(src: &Reader<S>, key: &[u8]) -> Result<Option<u64>, MvccError> {
    let Some(v) = get(src, etcd::META_BUCKET, key)? else {
        return Ok(None);
    };
    let label = String::from_utf8_lossy(key);
    let (rev, tomb) = Revision::parse_key(&v).map_err(|e| corrupt(format!("{label}: {e}")))?;
    if tomb || rev.main < 0 {
        return Err(corrupt(format!("{label} is not a revision: {v:02x?}")));
    }
    Ok(Some(rev.main as u64))
}

/// The small part of a backup, read and checked before the store is touched.
struct Small {
    consistent_index: u64,
    compact: u64,
    auth: AuthState,
    alarms: Vec<(u64, i32)>,
}

fn read_small<S: ReadAt>(src: &Reader<S>) -> Result<Small, MvccError> {
    for required in [etcd::KEY_BUCKET, etcd::META_BUCKET] {
        if src.bucket(required).map_err(bbolt_err)?.is_none() {
            return Err(corrupt(format!(
                "no {:?} bucket: not an etcd backend",
                String::from_utf8_lossy(required)
            )));
        }
    }
    let consistent_index = match get(src, etcd::META_BUCKET, etcd::CONSISTENT_INDEX_KEY)? {
        Some(v) => etcd::decode_u64(&v).map_err(|e| corrupt(format!("consistent_index: {e}")))?,
        None => 0,
    };
    let compact = match compact_rev(src, etcd::SCHEDULED_COMPACT_KEY)? {
        Some(c) => c,
        None => compact_rev(src, etcd::FINISHED_COMPACT_KEY)?.unwrap_or(0),
    };
    let enabled = match get(src, etcd::AUTH_BUCKET, etcd::AUTH_ENABLED_KEY)?.as_deref() {
        None | Some([0]) => false,
        Some([1]) => true,
        Some(v) => return Err(corrupt(format!("authEnabled is {v:02x?}, not [0] or [1]"))),
    };
    let revision = match get(src, etcd::AUTH_BUCKET, etcd::AUTH_REVISION_KEY)? {
        Some(v) => etcd::decode_u64(&v).map_err(|e| corrupt(format!("authRevision: {e}")))?,
        None => 0,
    };
    let users = entries(src, etcd::AUTH_USERS_BUCKET)?
        .map(|e| user_from_pb(&e?))
        .collect::<Result<Vec<_>, _>>()?;
    let roles = entries(src, etcd::AUTH_ROLES_BUCKET)?
        .map(|e| role_from_pb(&e?))
        .collect::<Result<Vec<_>, _>>()?;
    let auth = AuthState::from_parts(enabled, revision, users, roles)?;
    let mut alarms = Vec::new();
    for e in entries(src, etcd::ALARM_BUCKET)? {
        let a = PbAlarm::decode(&e?.key).map_err(bbolt_err)?;
        alarm_from_code(a.alarm)
            .map_err(|_| corrupt(format!("alarm of unknown type {}", a.alarm)))?;
        alarms.push((a.member_id, a.alarm));
    }
    Ok(Small {
        consistent_index,
        compact,
        auth,
        alarms,
    })
}

/// The tables an import batch writes.
struct Tables<'t> {
    history: Table<'t, (u64, u64), &'static [u8]>,
    lease: Table<'t, i64, (i64, i64)>,
    lease_keys: Table<'t, (i64, &'static [u8]), ()>,
}

/// Feeds `items` to `f` in engine transactions of [`IMPORT_BATCH`] items (not durable: the
/// last transaction of the import is).
fn batched<T>(
    db: &Database,
    mut items: impl Iterator<Item = Result<T, MvccError>>,
    mut f: impl FnMut(&mut Tables<'_>, T) -> Result<(), MvccError>,
) -> Result<(), MvccError> {
    loop {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::None)
            .map_err(|e| MvccError::Storage(e.to_string()))?;
        let mut n = 0;
        {
            let mut t = Tables {
                history: txn.open_table(HISTORY)?,
                lease: txn.open_table(LEASE)?,
                lease_keys: txn.open_table(LEASE_KEYS)?,
            };
            for item in items.by_ref().take(IMPORT_BATCH) {
                f(&mut t, item?)?;
                n += 1;
            }
        }
        txn.commit()?;
        if n < IMPORT_BATCH {
            return Ok(());
        }
    }
}

/// A `key` bucket entry as ours: `(main, sub)`, the user key and the record.
type HistoryEntry = ((u64, u64), Vec<u8>, Record);

/// One `key` bucket entry as `(main, sub)`, the user key and our record.
fn history_entry(e: &Entry) -> Result<HistoryEntry, MvccError> {
    let (rev, tomb) = Revision::parse_key(&e.key).map_err(bbolt_err)?;
    let at = format!("key bucket entry at revision {}/{}", rev.main, rev.sub);
    if rev.main < 1 || rev.sub < 0 || rev.sub > i64::from(u32::MAX) {
        return Err(corrupt(format!("{at}: revision out of range")));
    }
    let kv = KeyValue::decode(&e.value).map_err(|err| corrupt(format!("{at}: {err}")))?;
    if kv.key.is_empty() {
        return Err(corrupt(format!("{at}: empty key")));
    }
    let rec = if tomb {
        Record::Tombstone
    } else {
        if kv.mod_revision != rev.main {
            return Err(corrupt(format!(
                "{at}: mod_revision {} differs",
                kv.mod_revision
            )));
        }
        if kv.create_revision < 1 || kv.create_revision > rev.main || kv.version < 1 {
            return Err(corrupt(format!(
                "{at}: create_revision {} / version {} out of range",
                kv.create_revision, kv.version
            )));
        }
        Record::Put {
            create_revision: kv.create_revision as u64,
            version: kv.version,
            lease: kv.lease,
            value: kv.value,
        }
    };
    Ok(((rev.main as u64, rev.sub as u64), kv.key, rec))
}

/// Replaces the content of `db` with the etcd backend in `src`. The small buckets (meta, auth,
/// alarms) are checked before anything is changed; a failure later (or a crash) leaves
/// `META_IMPORTING` set, which `Store::open` refuses, as `snapshot.rs`.
pub(crate) fn import<S: ReadAt>(db: &Database, src: &Reader<S>) -> Result<(), MvccError> {
    let small = read_small(src)?;
    crate::snapshot::clear_for_import(db)?;

    // History, remembering each key's newest lease (0: none, or deleted).
    let mut newest: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut last: Option<(u64, u64)> = None;
    let mut buf = Vec::new();
    batched(db, entries(src, etcd::KEY_BUCKET)?, |t, e| {
        let (pos, key, rec) = history_entry(&e)?;
        if last.is_some_and(|l| l >= pos) {
            return Err(corrupt(format!(
                "revision {}/{} stored twice (as a put and a deletion)",
                pos.0, pos.1
            )));
        }
        last = Some(pos);
        encode_history(&key, &rec, &mut buf)?;
        t.history.insert(pos, buf.as_slice())?;
        let lease = match rec {
            Record::Put { lease, .. } => lease,
            Record::Tombstone => 0,
        };
        newest.insert(key, lease);
        Ok(())
    })?;
    let current = last
        .map_or(INITIAL_REVISION, |(main, _)| main)
        .max(small.compact)
        .max(INITIAL_REVISION);

    batched(db, entries(src, etcd::LEASE_BUCKET)?, |t, e| {
        let id =
            etcd::decode_u64(&e.key).map_err(|err| corrupt(format!("lease key: {err}")))? as i64;
        let l = PbLease::decode(&e.value).map_err(|err| corrupt(format!("lease {id}: {err}")))?;
        if l.id != id || id == 0 {
            return Err(corrupt(format!(
                "lease stored under id {id} names id {}",
                l.id
            )));
        }
        t.lease.insert(id, (l.ttl, l.remaining_ttl))?;
        Ok(())
    })?;

    // Attachments: each key's newest revision's lease, if that lease exists.
    let mut attached: Vec<(i64, Vec<u8>)> = newest
        .into_iter()
        .filter(|(_, id)| *id != 0)
        .map(|(k, id)| (id, k))
        .collect();
    attached.sort();
    batched(db, attached.into_iter().map(Ok), |t, (id, key)| {
        if t.lease.get(id)?.is_some() {
            t.lease_keys.insert((id, key.as_slice()), ())?;
        }
        Ok(())
    })?;

    let mut txn: WriteTransaction = db.begin_write()?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| MvccError::Storage(e.to_string()))?;
    {
        let mut alarm = txn.open_table(ALARM)?;
        for a in &small.alarms {
            alarm.insert(*a, ())?;
        }
        auth::persist_all(&mut txn.open_table(AUTH)?, &small.auth)?;
        let mut meta = txn.open_table(META)?;
        meta.insert(META_CONSISTENT_INDEX, small.consistent_index)?;
        meta.insert(META_CURRENT_REV, current)?;
        meta.insert(META_COMPACT_REV, small.compact)?;
        // The physical compaction walks the whole history up to the compaction revision again.
        meta.insert(META_COMPACT_DONE, 0)?;
        meta.insert(META_CURSOR_MAIN, 0)?;
        meta.insert(META_CURSOR_SUB, 0)?;
        meta.remove(META_IMPORTING)?;
    }
    txn.commit()?;
    Ok(())
}
