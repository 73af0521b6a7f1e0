//! Backups in etcd's format (`Store::backup_export` / `backup_import`): a store exported and
//! imported into a fresh store holds the same history at every revision from the compaction
//! revision on, the same leases and attachments, auth state and alarms; etcd's own snapshot
//! (the bbolt crate's fixture) imports; damaged files are refused with an error, never a panic.

mod common;

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};

use common::*;
use quorum_mvcc::bbolt::etcd::{self, KeyValue as PbKv, Revision};
use quorum_mvcc::bbolt::{Reader, Writer};
use quorum_mvcc::*;

fn auth(h: &mut Harness, r: AuthRequest) {
    h.apply(WriteRequest::Auth(r)).unwrap();
}

/// A store with puts, overwrites, deletes, multi-op txns, leases (one checkpointed),
/// compaction (logically ahead of the physical work), users, roles, auth enabled, an alarm.
fn populated() -> Harness {
    let mut h = Harness::new();
    for (id, ttl) in [(3, 30), (4, 600)] {
        h.apply(WriteRequest::LeaseGrant(LeaseGrantRequest { ttl, id }))
            .unwrap();
    }
    for i in 0..120 {
        h.put(&format!("k{:02}", i % 23), &format!("v{i}"));
    }
    h.put_lease("leased", "x", 3).unwrap();
    h.put_lease("leased2", "y", 4).unwrap();
    h.put_lease("moved", "1", 3).unwrap();
    h.put_lease("moved", "2", 4).unwrap();
    h.put_lease("gone", "1", 4).unwrap();
    h.delete("gone", "");
    h.delete("k01", "k04");
    h.apply(WriteRequest::Txn(TxnRequest {
        success: vec![
            RequestOp::Put(put("t1", "a")),
            RequestOp::Put(put("t2", "b")),
            RequestOp::DeleteRange(DeleteRangeRequest {
                key: b"k10".to_vec(),
                ..Default::default()
            }),
        ],
        ..Default::default()
    }))
    .unwrap();
    h.apply(WriteRequest::LeaseCheckpoint(LeaseCheckpointRequest {
        checkpoints: vec![LeaseCheckpoint {
            id: 4,
            remaining_ttl: 321,
        }],
    }))
    .unwrap();
    h.apply(WriteRequest::Compaction(CompactionRequest {
        revision: 60,
        physical: false,
    }))
    .unwrap();
    h.store.run_compaction(10).unwrap(); // partly done
    for i in 0..10 {
        h.put(&format!("after{i}"), &"z".repeat(i * 700));
    }
    auth(
        &mut h,
        AuthRequest::UserAdd {
            name: "root".into(),
            password_hash: Some("$2a$10$abcdefghijklmnopqrstuu".into()),
        },
    );
    auth(
        &mut h,
        AuthRequest::UserGrantRole {
            user: "root".into(),
            role: "root".into(),
        },
    );
    auth(
        &mut h,
        AuthRequest::UserAdd {
            name: "nopass".into(),
            password_hash: None,
        },
    );
    auth(&mut h, AuthRequest::RoleAdd { name: "r".into() });
    for (t, k, e) in [
        (PermType::Read, "a", "b"),
        (PermType::ReadWrite, "k", "\0"),
        (PermType::Write, "single", ""),
    ] {
        auth(
            &mut h,
            AuthRequest::RoleGrantPermission {
                name: "r".into(),
                perm: Permission {
                    perm_type: t,
                    key: k.as_bytes().to_vec(),
                    range_end: e.as_bytes().to_vec(),
                },
            },
        );
    }
    auth(
        &mut h,
        AuthRequest::UserGrantRole {
            user: "nopass".into(),
            role: "r".into(),
        },
    );
    auth(&mut h, AuthRequest::Enable);
    h.apply(WriteRequest::Alarm(AlarmRequest {
        action: AlarmAction::Activate,
        member_id: 7,
        alarm: AlarmType::Nospace,
    }))
    .unwrap();
    h
}

fn export(h: &Harness) -> File {
    let (mut f, size) = h
        .store
        .backup_export(tempfile::tempfile().unwrap())
        .unwrap();
    assert_eq!(f.seek(SeekFrom::End(0)).unwrap(), size);
    f
}

fn import(h: &Harness, f: &File) -> Result<(), MvccError> {
    let len = f.metadata().unwrap().len();
    let r = Reader::new(f, len).map_err(|e| MvccError::CorruptData(e.to_string()))?;
    h.store.backup_import(&r)
}

fn all(h: &Harness, rev: i64) -> Vec<KeyValue> {
    h.store
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision: rev,
            ..Default::default()
        })
        .unwrap()
        .kvs
}

fn assert_same(a: &Harness, b: &Harness) {
    let current = a.store.current_revision().unwrap();
    let compact = a.store.compact_revision().unwrap();
    assert_eq!(b.store.current_revision().unwrap(), current);
    assert_eq!(b.store.compact_revision().unwrap(), compact);
    assert_eq!(
        b.store.consistent_index().unwrap(),
        a.store.consistent_index().unwrap()
    );
    for rev in compact..=current {
        assert_eq!(
            b.store.hash_kv(rev).unwrap(),
            a.store.hash_kv(rev).unwrap(),
            "hash_kv at {rev}"
        );
        assert_eq!(all(b, rev), all(a, rev), "range at {rev}");
    }
    assert_eq!(b.store.hash().unwrap(), a.store.hash().unwrap());
    assert_eq!(b.store.leases().unwrap(), a.store.leases().unwrap());
    for id in a.store.leases().unwrap() {
        assert_eq!(
            b.store.lease_time_to_live(id, true, 0).unwrap(),
            a.store.lease_time_to_live(id, true, 0).unwrap(),
            "lease {id}"
        );
    }
    assert_eq!(*b.store.auth_state(), *a.store.auth_state());
    assert_eq!(b.store.alarms().unwrap(), a.store.alarms().unwrap());
}

#[test]
fn export_then_import_keeps_everything() {
    let h = populated();
    let f = export(&h);
    let status =
        etcd::snapshot_status(&Reader::open_file(f.try_clone().unwrap()).unwrap()).unwrap();
    assert_eq!(status.revision, h.store.current_revision().unwrap());

    let other = Harness::new();
    import(&other, &f).unwrap();
    assert_same(&h, &other);
    let ttl = other.store.lease_time_to_live(4, true, 0).unwrap();
    assert_eq!(ttl.ttl, 321, "checkpointed remaining TTL");
    assert_eq!(ttl.keys, [b"leased2".to_vec(), b"moved".to_vec()]);
    assert_eq!(
        other.store.lease_time_to_live(3, true, 0).unwrap().keys,
        [b"leased".to_vec()],
        "a key keeps only its newest revision's lease"
    );
    let st = other.store.auth_state();
    assert!(st.enabled());
    assert_eq!(st.user("nopass").unwrap().password_hash, None);
    assert_eq!(st.user("root").unwrap().roles, ["root"]);
    assert_eq!(st.role("r").unwrap().permissions.len(), 3);
    assert!(matches!(
        other.range("k00", "", 59),
        Err(MvccError::Compacted)
    ));

    // The imported store survives a reopen (index rebuilt), continues revisions, and after
    // both finish the physical compaction, exports the very same bytes.
    let mut other = other.reopen();
    assert_same(&h, &other);
    while !h.store.run_compaction(1000).unwrap() {}
    while !other.store.run_compaction(1000).unwrap() {}
    assert_same(&h, &other);
    let bytes = |f: &File| {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut f.try_clone().unwrap(), &mut v).unwrap();
        v
    };
    let (mut a, mut b) = (export(&h), export(&other));
    a.seek(SeekFrom::Start(0)).unwrap();
    b.seek(SeekFrom::Start(0)).unwrap();
    assert!(bytes(&a) == bytes(&b), "re-export is byte-identical");
    let rev = other.store.current_revision().unwrap();
    other.index += 1000;
    // (The NOSPACE alarm came along: a delete still applies.)
    assert_eq!(other.delete("t1", "").header_revision, rev + 1);
}

#[test]
fn empty_store_round_trips() {
    let h = Harness::new();
    let other = populated();
    import(&other, &export(&h)).unwrap();
    assert_eq!(other.store.current_revision().unwrap(), 1);
    assert_eq!(other.store.compact_revision().unwrap(), 0);
    assert!(other.store.leases().unwrap().is_empty());
    assert!(!other.store.auth_state().enabled());
    assert!(other.store.alarms().unwrap().is_empty());
    assert!(all(&other, 0).is_empty());
}

#[test]
fn imports_a_snapshot_saved_by_etcd() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../bbolt/tests/fixtures/etcd-3.4.23.snapshot.db"
    );
    let r = etcd::open_snapshot(File::open(fixture).unwrap()).unwrap();
    let h = Harness::new();
    h.store.backup_import(&r).unwrap();
    assert_eq!(h.store.current_revision().unwrap(), 9);
    assert_eq!(h.store.compact_revision().unwrap(), 2);
    let kvs = all(&h, 0);
    let keys: Vec<&[u8]> = kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(
        keys,
        [&b"big"[..], b"empty", b"foo", b"leased", b"zeta"],
        "hello was deleted"
    );
    assert_eq!(kvs[2].value, b"bar2");
    assert_eq!(
        (kvs[2].create_revision, kvs[2].mod_revision, kvs[2].version),
        (2, 3, 2)
    );
    let lease = 0x390d_a23c_476c_1f0c;
    assert_eq!(kvs[3].lease, lease);
    let ttl = h.store.lease_time_to_live(lease, true, 0).unwrap();
    assert_eq!(ttl.granted_ttl, 100_000);
    assert_eq!(ttl.keys, [b"leased".to_vec()]);
    assert_eq!(h.range("foo", "", 2).unwrap().kvs[0].value, b"bar");
    assert!(matches!(h.range("foo", "", 1), Err(MvccError::Compacted)));
}

/// A bbolt file with etcd's buckets, `key` holding `entries` and the other buckets `extra`.
fn crafted(key: &[(Vec<u8>, Vec<u8>)], extra: &[(&[u8], &[u8], &[u8])]) -> File {
    let mut w = Writer::new(tempfile::tempfile().unwrap()).unwrap();
    for b in etcd::ETCD_BUCKETS {
        w.bucket(b).unwrap();
        if b == etcd::KEY_BUCKET {
            for (k, v) in key {
                w.put(k, v).unwrap();
            }
        }
        for (bucket, k, v) in extra {
            if *bucket == b {
                w.put(k, v).unwrap();
            }
        }
    }
    let (mut f, _) = w.finish().unwrap();
    f.flush().unwrap();
    f
}

fn put_entry(main: i64, kv: PbKv) -> (Vec<u8>, Vec<u8>) {
    (Revision { main, sub: 0 }.to_bytes().to_vec(), kv.encode())
}

fn kv(key: &str, create: i64, m: i64, version: i64) -> PbKv {
    PbKv {
        key: key.as_bytes().to_vec(),
        create_revision: create,
        mod_revision: m,
        version,
        value: b"v".to_vec(),
        lease: 0,
    }
}

#[test]
fn malformed_files_are_refused_with_a_reason() {
    let h = Harness::new();
    let err = |f: File| match import(&h, &f) {
        Err(MvccError::CorruptData(m)) => m,
        other => panic!("expected CorruptData, got {other:?}"),
    };
    // A fine one first.
    import(&h, &crafted(&[put_entry(2, kv("a", 2, 2, 1))], &[])).unwrap();
    assert_eq!(h.store.current_revision().unwrap(), 2);

    let m = err(crafted(&[put_entry(2, kv("a", 2, 3, 1))], &[]));
    assert!(m.contains("mod_revision 3 differs"), "{m}");
    let m = err(crafted(&[put_entry(2, kv("a", 0, 2, 1))], &[]));
    assert!(m.contains("create_revision 0"), "{m}");
    let m = err(crafted(&[put_entry(2, kv("", 2, 2, 1))], &[]));
    assert!(m.contains("empty key"), "{m}");
    let m = err(crafted(
        &[(b"short".to_vec(), kv("a", 2, 2, 1).encode())],
        &[],
    ));
    assert!(m.contains("revision key of 5 bytes"), "{m}");
    let r = Revision { main: 2, sub: 0 };
    let dup = [
        (r.to_bytes().to_vec(), kv("a", 2, 2, 1).encode()),
        (r.to_tombstone_bytes().to_vec(), kv("a", 0, 0, 0).encode()),
    ];
    let m = err(crafted(&dup, &[]));
    assert!(m.contains("stored twice"), "{m}");
    let m = err(crafted(&[(r.to_bytes().to_vec(), vec![0x0a, 9, 1])], &[]));
    assert!(m.contains("runs past the end"), "{m}");
    let lease = etcd::Lease {
        id: 5,
        ttl: 10,
        remaining_ttl: 0,
    };
    let m = err(crafted(
        &[],
        &[(etcd::LEASE_BUCKET, &etcd::encode_u64(6), &lease.encode())],
    ));
    assert!(m.contains("lease stored under id 6 names id 5"), "{m}");
    let m = err(crafted(
        &[],
        &[(etcd::AUTH_BUCKET, etcd::AUTH_ENABLED_KEY, &[7])],
    ));
    assert!(m.contains("authEnabled"), "{m}");
    let m = err(crafted(
        &[],
        &[(etcd::META_BUCKET, etcd::SCHEDULED_COMPACT_KEY, b"xx")],
    ));
    assert!(m.contains("scheduledCompactRev"), "{m}");
    let role = etcd::AuthRole {
        name: b"other".to_vec(),
        permissions: Vec::new(),
    };
    let m = err(crafted(
        &[],
        &[(etcd::AUTH_ROLES_BUCKET, b"r", &role.encode())],
    ));
    assert!(m.contains("another name"), "{m}");
    let bad_perm = etcd::AuthRole {
        name: b"r".to_vec(),
        permissions: vec![etcd::AuthPermission {
            perm_type: 9,
            key: b"a".to_vec(),
            range_end: Vec::new(),
        }],
    };
    let m = err(crafted(
        &[],
        &[(etcd::AUTH_ROLES_BUCKET, b"r", &bad_perm.encode())],
    ));
    assert!(m.contains("unknown type 9"), "{m}");
    let alarm = etcd::AlarmMember {
        member_id: 1,
        alarm: 9,
    };
    let m = err(crafted(&[], &[(etcd::ALARM_BUCKET, &alarm.encode(), b"")]));
    assert!(m.contains("alarm of unknown type 9"), "{m}");

    // Not an etcd backend: a bbolt file without its buckets.
    let mut w = Writer::new(tempfile::tempfile().unwrap()).unwrap();
    w.bucket(b"fruit").unwrap();
    w.put(b"apple", b"red").unwrap();
    let m = err(w.finish().unwrap().0);
    assert!(m.contains("not an etcd backend"), "{m}");

    // Every flipped byte of a real export: an error or a store, never a panic.
    let src = populated();
    let mut bytes = Vec::new();
    let mut f = export(&src);
    f.seek(SeekFrom::Start(0)).unwrap();
    std::io::Read::read_to_end(&mut f, &mut bytes).unwrap();
    let target = Harness::new();
    for pos in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
        let mut b = bytes.clone();
        b[pos] ^= 0x5A;
        if let Ok(r) = Reader::new(b.as_slice(), b.len() as u64) {
            let _ = target.store.backup_import(&r);
        }
    }
    // And the store still takes a good import afterwards.
    import(&target, &export(&src)).unwrap();
    assert_same(&src, &target);
}
