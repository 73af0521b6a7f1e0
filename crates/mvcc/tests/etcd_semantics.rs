//! etcd behaviours checked one by one.

mod common;

use common::*;
use quorum_mvcc::*;

#[test]
fn revisions_versions_and_generations() {
    let mut h = Harness::new();
    assert_eq!(
        h.store.current_revision().unwrap(),
        1,
        "etcd starts at revision 1"
    );
    assert_eq!(h.put("a", "1").header_revision, 2);
    let kv = h.get("a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 2, 1));
    h.put("a", "2");
    let kv = h.get("a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    let d = h.delete("a", "");
    assert_eq!((d.deleted, d.header_revision), (1, 4));
    assert_eq!(d.prev_kvs[0].value, b"2");
    assert!(h.get("a").is_none());
    // deleting nothing does not consume a revision
    let d = h.delete("a", "");
    assert_eq!((d.deleted, d.header_revision), (0, 4));
    h.put("a", "3");
    let kv = h.get("a").unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (5, 5, 1),
        "a new generation after a delete"
    );
    // history
    assert_eq!(h.range("a", "", 3).unwrap().kvs[0].value, b"2");
    assert_eq!(
        h.range("a", "", 3).unwrap().header_revision,
        5,
        "etcd reports the current revision, not the one read at"
    );
    assert!(h.range("a", "", 4).unwrap().kvs.is_empty());
    let err = h.range("a", "", 6).unwrap_err();
    assert_eq!(err, MvccError::FutureRevision);
    assert_eq!(
        err.to_string(),
        "etcdserver: mvcc: required revision is a future revision"
    );
    assert_eq!(err.grpc_code(), GrpcCode::OutOfRange);
}

#[test]
fn range_end_conventions_limit_count_and_sort() {
    let mut h = Harness::new();
    for (k, v) in [("a", "3"), ("b", "1"), ("b1", "2"), ("c", "0"), ("d", "9")] {
        h.put(k, v);
    }
    assert_eq!(h.keys("b", "", 0), ["b"]);
    assert_eq!(h.keys("b", "c", 0), ["b", "b1"]);
    assert_eq!(h.keys("b", "\0", 0), ["b", "b1", "c", "d"]);
    assert_eq!(h.keys("\0", "\0", 0), ["a", "b", "b1", "c", "d"]);
    assert!(h.keys("c", "b", 0).is_empty());
    let r = h
        .store
        .range(&RangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            limit: 2,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.more, r.count), (2, true, 5));
    let r = h
        .store
        .range(&RangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            count_only: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.count), (0, 5));
    let r = h
        .store
        .range(&RangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            keys_only: true,
            limit: 5,
            ..Default::default()
        })
        .unwrap();
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    assert!(!r.more);
    let r = h
        .store
        .range(&RangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Value,
            limit: 3,
            ..Default::default()
        })
        .unwrap();
    let vals: Vec<_> = r.kvs.iter().map(|kv| kv.value.clone()).collect();
    assert_eq!(vals, [b"9".to_vec(), b"3".to_vec(), b"2".to_vec()]);
    assert!(r.more);
    let r = h
        .store
        .range(&RangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Key,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.kvs[0].key, b"d");
    let r = h
        .store
        .range(&RangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            min_mod_revision: 3,
            max_mod_revision: 5,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.kvs.len(), 3);
    assert_eq!(
        r.count, 5,
        "count is taken before the min/max filters, as etcd"
    );
    assert_eq!(
        h.range("", "", 0).unwrap_err().to_string(),
        "etcdserver: key is not provided"
    );
}

#[test]
fn put_options_and_errors() {
    let mut h = Harness::new();
    let e = h
        .apply(WriteRequest::Put(PutRequest {
            key: b"x".to_vec(),
            ignore_value: true,
            ..Default::default()
        }))
        .unwrap_err();
    assert_eq!(e.to_string(), "etcdserver: key not found");
    assert_eq!(
        h.store.current_revision().unwrap(),
        1,
        "no revision consumed"
    );
    let e = h.put_lease("x", "v", 42).unwrap_err();
    assert_eq!(e.to_string(), "etcdserver: requested lease not found");
    assert_eq!(e.grpc_code(), GrpcCode::NotFound);
    h.apply(WriteRequest::LeaseGrant(LeaseGrantRequest {
        ttl: 60,
        id: 42,
    }))
    .unwrap();
    h.put_lease("x", "v1", 42).unwrap();
    let r = h
        .apply(WriteRequest::Put(PutRequest {
            key: b"x".to_vec(),
            value: b"v2".to_vec(),
            ignore_lease: true,
            prev_kv: true,
            ..Default::default()
        }))
        .unwrap();
    let WriteResponse::Put(p) = r else { panic!() };
    assert_eq!(p.prev_kv.unwrap().value, b"v1");
    assert_eq!(
        h.get("x").unwrap().lease,
        42,
        "ignore_lease keeps the lease"
    );
    h.apply(WriteRequest::Put(PutRequest {
        key: b"x".to_vec(),
        ignore_value: true,
        ..Default::default()
    }))
    .unwrap();
    let kv = h.get("x").unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.lease, kv.version),
        (&b"v2"[..], 0, 3)
    );
    let e = h
        .apply(WriteRequest::Put(PutRequest {
            key: b"x".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        }))
        .unwrap_err();
    assert_eq!(e.to_string(), "etcdserver: value is provided");
}

fn cmp(key: &str, target: CompareTarget, result: CompareResult, u: TargetUnion) -> Compare {
    Compare {
        result,
        target,
        key: key.into(),
        target_union: Some(u),
        range_end: vec![],
    }
}

#[test]
fn txn_compares_branches_and_limits() {
    let mut h = Harness::new();
    h.put("k1", "a");
    h.put("k2", "b");
    let t = TxnRequest {
        compare: vec![cmp(
            "k1",
            CompareTarget::Value,
            CompareResult::Equal,
            TargetUnion::Value(b"a".to_vec()),
        )],
        success: vec![
            RequestOp::Put(put("k3", "c")),
            RequestOp::Put(put("k4", "d")),
            RequestOp::Range(RangeRequest {
                key: b"k".to_vec(),
                range_end: b"l".to_vec(),
                ..Default::default()
            }),
        ],
        failure: vec![],
    };
    let WriteResponse::Txn(r) = h.apply(WriteRequest::Txn(t)).unwrap() else {
        panic!()
    };
    assert!(r.succeeded);
    assert_eq!(r.header_revision, 4, "one revision for the whole txn");
    let ResponseOp::Range(rr) = &r.responses[2] else {
        panic!()
    };
    assert_eq!(rr.kvs.len(), 4, "reads inside a txn see its writes");
    assert_eq!(h.get("k3").unwrap().mod_revision, 4);
    assert_eq!(h.get("k4").unwrap().mod_revision, 4);
    // compare over a range: all keys must match
    let t = TxnRequest {
        compare: vec![Compare {
            range_end: b"l".to_vec(),
            ..cmp(
                "k",
                CompareTarget::Mod,
                CompareResult::Greater,
                TargetUnion::ModRevision(2),
            )
        }],
        success: vec![RequestOp::Put(put("ok", "1"))],
        failure: vec![RequestOp::DeleteRange(DeleteRangeRequest {
            key: b"k1".to_vec(),
            ..Default::default()
        })],
    };
    let WriteResponse::Txn(r) = h.apply(WriteRequest::Txn(t)).unwrap() else {
        panic!()
    };
    assert!(!r.succeeded, "k1 has mod 2, not > 2");
    assert!(h.get("k1").is_none());
    // missing key: VALUE never matches, other targets compare with zero
    let t = TxnRequest {
        compare: vec![cmp(
            "nope",
            CompareTarget::Version,
            CompareResult::Equal,
            TargetUnion::Version(0),
        )],
        ..Default::default()
    };
    let WriteResponse::Txn(r) = h.apply(WriteRequest::Txn(t)).unwrap() else {
        panic!()
    };
    assert!(r.succeeded);
    assert_eq!(r.header_revision, 5, "read-only txn consumes no revision");
    let t = TxnRequest {
        compare: vec![cmp(
            "nope",
            CompareTarget::Value,
            CompareResult::NotEqual,
            TargetUnion::Value(b"x".to_vec()),
        )],
        ..Default::default()
    };
    let WriteResponse::Txn(r) = h.apply(WriteRequest::Txn(t)).unwrap() else {
        panic!()
    };
    assert!(!r.succeeded);
    // nested txn and errors
    let nested = TxnRequest {
        compare: vec![],
        success: vec![RequestOp::Txn(TxnRequest {
            compare: vec![cmp(
                "k2",
                CompareTarget::Create,
                CompareResult::Less,
                TargetUnion::CreateRevision(100),
            )],
            success: vec![RequestOp::Put(put("n", "1"))],
            failure: vec![RequestOp::Put(put("n", "2"))],
        })],
        failure: vec![],
    };
    let WriteResponse::Txn(r) = h.apply(WriteRequest::Txn(nested)).unwrap() else {
        panic!()
    };
    let ResponseOp::Txn(inner) = &r.responses[0] else {
        panic!()
    };
    assert_eq!(
        inner.header_revision, 0,
        "etcd leaves nested txn headers empty"
    );
    let ResponseOp::Put(p) = &inner.responses[0] else {
        panic!()
    };
    assert_eq!(p.header_revision, r.header_revision);
    assert_eq!(h.get("n").unwrap().value, b"1");
    let dup = TxnRequest {
        success: vec![RequestOp::Put(put("d", "1")), RequestOp::Put(put("d", "2"))],
        ..Default::default()
    };
    assert_eq!(
        h.apply(WriteRequest::Txn(dup)).unwrap_err().to_string(),
        "etcdserver: duplicate key given in txn request"
    );
    let many = TxnRequest {
        success: (0..129)
            .map(|i| RequestOp::Put(put(&format!("m{i}"), "v")))
            .collect(),
        ..Default::default()
    };
    assert_eq!(
        h.apply(WriteRequest::Txn(many)).unwrap_err().to_string(),
        "etcdserver: too many operations in txn request"
    );
    // a failing put inside the chosen branch aborts the whole txn
    let before = h.store.current_revision().unwrap();
    let bad = TxnRequest {
        success: vec![
            RequestOp::Put(put("zz", "1")),
            RequestOp::Put(PutRequest {
                key: b"missing".to_vec(),
                ignore_value: true,
                ..Default::default()
            }),
        ],
        ..Default::default()
    };
    assert_eq!(
        h.apply(WriteRequest::Txn(bad)).unwrap_err(),
        MvccError::KeyNotFound
    );
    assert_eq!(h.store.current_revision().unwrap(), before);
    assert!(h.get("zz").is_none());
}

#[test]
fn compaction_logical_then_physical() {
    let mut h = Harness::new();
    for i in 0..20 {
        h.put("a", &format!("{i}"));
        h.put(&format!("k{i:02}"), "x");
    }
    h.delete("k00", "k05");
    let rev = h.store.current_revision().unwrap();
    let before: Vec<_> = (10..=rev).map(|r| h.store.hash_kv(r).unwrap()).collect();
    let at_10 = h.range("\0", "\0", 10).unwrap();
    let compact = WriteRequest::Compaction(CompactionRequest {
        revision: 10,
        physical: false,
    });
    h.apply(compact.clone()).unwrap();
    assert_eq!(
        h.apply(compact).unwrap_err().to_string(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(
        h.apply(WriteRequest::Compaction(CompactionRequest {
            revision: rev + 5,
            physical: false
        }))
        .unwrap_err(),
        MvccError::FutureRevision
    );
    assert_eq!(h.range("a", "", 9).unwrap_err(), MvccError::Compacted);
    assert_eq!(h.range("\0", "\0", 10).unwrap(), at_10);
    assert!(h.store.run_compaction(1_000_000).unwrap());
    assert_eq!(h.range("\0", "\0", 10).unwrap(), at_10);
    // hashes at and above the compaction point are unchanged by compaction
    let after: Vec<_> = (10..=rev).map(|r| h.store.hash_kv(r).unwrap()).collect();
    for (b, a) in before.iter().zip(after.iter()) {
        assert_eq!(a.hash_revision, b.hash_revision);
        assert_eq!(a.compact_revision, 10);
    }
    // physical vs not-yet-physical compaction give the same hash
    let mut other = Harness::with_options(StoreOptions {
        compaction_batch: 0,
        ..options()
    });
    for i in 0..20 {
        other.put("a", &format!("{i}"));
        other.put(&format!("k{i:02}"), "x");
    }
    other.delete("k00", "k05");
    other
        .apply(WriteRequest::Compaction(CompactionRequest {
            revision: 10,
            physical: false,
        }))
        .unwrap();
    for r in 10..=rev {
        assert_eq!(other.store.hash_kv(r).unwrap(), h.store.hash_kv(r).unwrap());
    }
    // second compaction past the deletions drops them
    h.apply(WriteRequest::Compaction(CompactionRequest {
        revision: rev,
        physical: true,
    }))
    .unwrap();
    while !h.store.run_compaction(3).unwrap() {}
    assert_eq!(h.keys("k00", "k05", 0), Vec::<String>::new());
    assert_eq!(h.get("a").unwrap().value, b"19");
}

#[test]
fn leases_grant_attach_revoke() {
    let mut h = Harness::new();
    let WriteResponse::LeaseGrant(g) = h
        .apply(WriteRequest::LeaseGrant(LeaseGrantRequest {
            ttl: 1,
            id: 0,
        }))
        .unwrap()
    else {
        panic!()
    };
    assert!(g.id > 0, "generated id");
    assert_eq!(g.ttl, 2, "raised to the minimum TTL");
    assert_eq!(
        h.apply(WriteRequest::LeaseGrant(LeaseGrantRequest {
            ttl: 5,
            id: g.id
        }))
        .unwrap_err()
        .to_string(),
        "etcdserver: lease already exists"
    );
    h.put_lease("a", "1", g.id).unwrap();
    h.put_lease("b", "1", g.id).unwrap();
    h.put_lease("c", "1", g.id).unwrap();
    h.put("c", "detached");
    let ttl = h.store.lease_time_to_live(g.id, true, 0).unwrap();
    assert_eq!(ttl.keys, [b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(ttl.granted_ttl, 2);
    assert_eq!(h.store.leases().unwrap(), [g.id]);
    let rev = h.store.current_revision().unwrap();
    let WriteResponse::LeaseRevoke(r) = h
        .apply(WriteRequest::LeaseRevoke(LeaseRevokeRequest { id: g.id }))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        r.header_revision,
        rev + 1,
        "all attached keys in one revision"
    );
    assert!(h.get("a").is_none() && h.get("b").is_none());
    assert_eq!(h.get("c").unwrap().value, b"detached");
    assert_eq!(h.store.lease_time_to_live(g.id, true, 0).unwrap().ttl, -1);
    assert_eq!(
        h.apply(WriteRequest::LeaseRevoke(LeaseRevokeRequest { id: g.id }))
            .unwrap_err(),
        MvccError::LeaseNotFound
    );
}

#[test]
fn lease_expiry_on_leader_only() {
    let mut h = Harness::new();
    h.apply(WriteRequest::LeaseGrant(LeaseGrantRequest {
        ttl: 10,
        id: 7,
    }))
    .unwrap();
    assert!(h.store.lease_expired(1_000_000, 10).is_empty(), "follower");
    assert_eq!(h.store.lease_renew(7, 0), Err(MvccError::NotLeader));
    h.store.lease_promote(1_000, 2_000).unwrap();
    assert!(h.store.lease_expired(12_999, 10).is_empty());
    assert_eq!(h.store.lease_expired(13_000, 10), vec![7]);
    assert_eq!(
        h.store.lease_renew(7, 13_000),
        Err(MvccError::LeaseNotFound)
    );
    h.apply(WriteRequest::LeaseRevoke(LeaseRevokeRequest { id: 7 }))
        .unwrap();
    h.apply(WriteRequest::LeaseGrant(LeaseGrantRequest {
        ttl: 10,
        id: 8,
    }))
    .unwrap();
    assert_eq!(h.store.lease_renew(8, 20_000), Ok(10));
    assert_eq!(h.store.lease_time_to_live(8, false, 25_000).unwrap().ttl, 5);
    // checkpoint then failover: the new leader uses the remaining TTL, extended
    let cps = h.store.lease_checkpoints(25_000, 10);
    assert_eq!(cps.checkpoints[0].remaining_ttl, 5);
    h.apply(WriteRequest::LeaseCheckpoint(cps)).unwrap();
    h.store.lease_demote();
    h.store.lease_promote(100_000, 1_000).unwrap();
    assert!(h.store.lease_expired(105_999, 10).is_empty());
    assert_eq!(h.store.lease_expired(106_000, 10), vec![8]);
}

#[test]
fn restart_and_replay_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let entries: Vec<(u64, WriteRequest)> = (1..=50u64)
        .map(|i| {
            (
                i,
                WriteRequest::Put(put(&format!("k{}", i % 7), &format!("{i}"))),
            )
        })
        .collect();
    let (hash, rev) = {
        let s = Store::open(&path, StoreOptions::default()).unwrap();
        s.apply(&entries[..30]).unwrap();
        s.apply(&entries[30..40]).unwrap();
        (s.hash().unwrap(), s.current_revision().unwrap())
    };
    let s = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(s.consistent_index().unwrap(), 40);
    assert_eq!(
        (s.hash().unwrap(), s.current_revision().unwrap()),
        (hash, rev)
    );
    // replay overlapping entries: the applied ones are skipped
    let out = s.apply(&entries[35..]).unwrap();
    assert!(out[..5].iter().all(Option::is_none));
    assert!(out[5..].iter().all(|o| matches!(o, Some(Ok(_)))));
    assert_eq!(s.current_revision().unwrap(), 51);
    let reference = Store::open(dir.path().join("ref"), StoreOptions::default()).unwrap();
    reference.apply(&entries).unwrap();
    assert_eq!(reference.hash().unwrap(), s.hash().unwrap());
}

#[test]
fn snapshot_round_trip() {
    let mut h = Harness::new();
    h.apply(WriteRequest::LeaseGrant(LeaseGrantRequest {
        ttl: 30,
        id: 3,
    }))
    .unwrap();
    for i in 0..200 {
        h.put(&format!("k{}", i % 37), &format!("v{i}"));
    }
    h.put_lease("leased", "x", 3).unwrap();
    h.apply(WriteRequest::Compaction(CompactionRequest {
        revision: 100,
        physical: false,
    }))
    .unwrap();
    let mut buf = Vec::new();
    h.store.snapshot_export(&mut buf).unwrap();
    let other = Harness::new();
    other.store.snapshot_import(buf.as_slice()).unwrap();
    assert_eq!(other.store.hash().unwrap(), h.store.hash().unwrap());
    assert_eq!(
        other.store.consistent_index().unwrap(),
        h.store.consistent_index().unwrap()
    );
    assert_eq!(other.store.compact_revision().unwrap(), 100);
    assert_eq!(
        other.store.lease_time_to_live(3, true, 0).unwrap().keys,
        [b"leased".to_vec()]
    );
    let mut bad = buf.clone();
    let n = bad.len();
    bad[n / 2] ^= 0xFF;
    let third = Harness::new();
    assert!(third.store.snapshot_import(bad.as_slice()).is_err());
    assert!(third.store.snapshot_import(&buf[..n - 3]).is_err());
    // A failed import leaves neither the old state nor the new one: the store refuses to
    // serve or apply until the member restarts (and fetches the image again).
    let err = third
        .store
        .range(&RangeRequest {
            key: b"k1".to_vec(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("restart"), "{err}");
    assert!(third
        .store
        .apply(&[(1_000_000, WriteRequest::Noop)])
        .is_err());
    // A complete image brings it back.
    third.store.snapshot_import(buf.as_slice()).unwrap();
    assert_eq!(third.store.hash().unwrap(), h.store.hash().unwrap());
}

#[test]
fn txn_put_keeping_the_value_of_a_key_it_deleted_is_refused_before_writing() {
    // checkIntervals takes a "\0" range end literally, so this txn passes validation; the
    // put would keep the value of a key the txn itself just deleted (etcd 3.5 panics).
    let mut h = Harness::new();
    h.put("b", "v");
    let rev = h.store.current_revision().unwrap();
    let txn = TxnRequest {
        compare: Vec::new(),
        success: vec![
            RequestOp::DeleteRange(DeleteRangeRequest {
                key: b"a".to_vec(),
                range_end: vec![0],
                prev_kv: false,
            }),
            RequestOp::Put(PutRequest {
                key: b"b".to_vec(),
                ignore_value: true,
                ..Default::default()
            }),
        ],
        failure: Vec::new(),
    };
    assert_eq!(
        h.apply(WriteRequest::Txn(txn)).unwrap_err(),
        MvccError::KeyNotFound
    );
    assert_eq!(h.store.current_revision().unwrap(), rev, "nothing written");
    assert_eq!(h.get("b").unwrap().value, b"v");
}

#[test]
fn quota_alarm_refuses_writes_but_not_deletes_and_clears() {
    let mut h = Harness::with_options(StoreOptions {
        quota_bytes: 1, // any write exceeds it
        ..options()
    });
    let req = WriteRequest::Put(put("a", "1"));
    assert_eq!(h.store.quota_check(&req), Err(MvccError::NoSpace));
    assert_eq!(
        h.store
            .quota_check(&WriteRequest::DeleteRange(DeleteRangeRequest::default())),
        Ok(())
    );
    h.put("a", "1"); // applied anyway: quota is checked before proposing
    h.apply(WriteRequest::Alarm(AlarmRequest {
        action: AlarmAction::Activate,
        member_id: 1,
        alarm: AlarmType::Nospace,
    }))
    .unwrap();
    let e = h.apply(req.clone()).unwrap_err();
    assert_eq!(e.to_string(), "etcdserver: mvcc: database space exceeded");
    assert_eq!(e.grpc_code(), GrpcCode::ResourceExhausted);
    assert_eq!(
        h.apply(WriteRequest::LeaseGrant(LeaseGrantRequest {
            ttl: 5,
            id: 1
        }))
        .unwrap_err(),
        MvccError::NoSpace
    );
    assert_eq!(h.delete("a", "").deleted, 1);
    h.apply(WriteRequest::Compaction(CompactionRequest {
        revision: 2,
        physical: false,
    }))
    .unwrap();
    assert!(h.range("a", "", 0).is_ok());
    assert!(
        !h.store.nospace_should_clear().unwrap(),
        "still over the quota"
    );
    let mut roomy = Harness::new();
    roomy
        .apply(WriteRequest::Alarm(AlarmRequest {
            action: AlarmAction::Activate,
            member_id: 1,
            alarm: AlarmType::Nospace,
        }))
        .unwrap();
    assert!(roomy.store.nospace_should_clear().unwrap());
    roomy
        .apply(WriteRequest::Alarm(AlarmRequest {
            action: AlarmAction::Deactivate,
            member_id: 1,
            alarm: AlarmType::Nospace,
        }))
        .unwrap();
    assert!(roomy.store.alarms().unwrap().is_empty());
    roomy.put("b", "1");
}

#[test]
fn paginated_counts_at_a_fixed_revision() {
    let mut h = Harness::new();
    let n = 9_000;
    let entries: Vec<(u64, WriteRequest)> = (0..n)
        .map(|i| {
            (
                i as u64 + 1,
                WriteRequest::Put(put(&format!("p/{i:05}"), "v")),
            )
        })
        .collect();
    for chunk in entries.chunks(1000) {
        h.store.apply(chunk).unwrap();
    }
    h.index = n as u64;
    h.delete("p/00100", "p/00200");
    let rev = h.store.current_revision().unwrap();
    // later writes must not leak into pages at `rev`
    h.delete("p/05000", "p/05500");
    h.put("p/99999", "late");
    let page = |start: &str, limit: i64| {
        h.store
            .range(&RangeRequest {
                key: start.into(),
                range_end: b"p0".to_vec(),
                limit,
                revision: rev,
                ..Default::default()
            })
            .unwrap()
    };
    let mut start = "p/".to_string();
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let r = page(&start, 700);
        assert_eq!(r.count, (n - 100 - seen) as i64, "page {pages}");
        seen += r.kvs.len();
        pages += 1;
        if !r.more {
            break;
        }
        let last = r.kvs.last().unwrap().key.clone();
        start = String::from_utf8(last).unwrap() + "\0";
    }
    assert_eq!(seen, n - 100);
    assert!(pages > 10);
    // the current revision sees the later writes
    let now = h
        .store
        .range(&RangeRequest {
            key: b"p/".to_vec(),
            range_end: b"p0".to_vec(),
            count_only: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(now.count, (n - 100 - 500 + 1) as i64);
    let mid = h
        .store
        .range(&RangeRequest {
            key: b"p/05100".to_vec(),
            range_end: b"p0".to_vec(),
            count_only: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(mid.count, (n - 5500 + 1) as i64);
}

#[test]
fn non_durable_restart_matches_its_consistent_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let entries: Vec<(u64, WriteRequest)> = (1..=300u64)
        .map(|i| {
            let req = if i % 50 == 0 {
                WriteRequest::Compaction(CompactionRequest {
                    revision: i as i64 - 10,
                    physical: false,
                })
            } else if i % 7 == 0 {
                WriteRequest::DeleteRange(DeleteRangeRequest {
                    key: format!("k{}", i % 5).into_bytes(),
                    ..Default::default()
                })
            } else {
                WriteRequest::Put(put(&format!("k{}", i % 11), &format!("{i}")))
            };
            (i, req)
        })
        .collect();
    {
        let s = Store::open(&path, options()).unwrap();
        for e in &entries[..200] {
            s.apply(std::slice::from_ref(e)).unwrap();
        }
        // dropped without flush: whatever survives must be self-consistent
    }
    let s = Store::open(&path, options()).unwrap();
    let ci = s.consistent_index().unwrap();
    assert!(ci >= 128, "a durable commit happens every 128 batches");
    let reference = Store::open(dir.path().join("ref"), options()).unwrap();
    reference.apply(&entries[..ci as usize]).unwrap();
    assert_eq!(s.hash().unwrap(), reference.hash().unwrap());
    // replay the whole log: applied entries are skipped, the rest applied
    s.apply(&entries).unwrap();
    reference.apply(&entries).unwrap();
    assert_eq!(s.consistent_index().unwrap(), 300);
    assert_eq!(s.hash().unwrap(), reference.hash().unwrap());
    assert_eq!(
        s.hash_kv(0).unwrap(),
        reference.hash_kv(0).unwrap(),
        "same HashKV after replay"
    );
}

#[test]
fn reads_run_concurrently_with_applies_on_consistent_snapshots() {
    let h = Harness::new();
    let store = std::sync::Arc::new(h.store);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 1..=300u64 {
                let v = format!("{i}");
                // both keys always change together, in one revision
                let t = TxnRequest {
                    success: vec![RequestOp::Put(put("x", &v)), RequestOp::Put(put("y", &v))],
                    ..Default::default()
                };
                store.apply(&[(i, WriteRequest::Txn(t))]).unwrap();
            }
        })
    };
    let mut reads = 0;
    let mut last_rev = 0;
    while !writer.is_finished() || reads == 0 {
        let r = store
            .range(&RangeRequest {
                key: b"x".to_vec(),
                range_end: b"z".to_vec(),
                ..Default::default()
            })
            .unwrap();
        assert!(r.header_revision >= last_rev, "reads never go back in time");
        last_rev = r.header_revision;
        if r.kvs.len() == 2 {
            assert_eq!(
                r.kvs[0].value, r.kvs[1].value,
                "a txn is never seen half-applied"
            );
            assert_eq!(r.kvs[0].mod_revision, r.header_revision);
        } else {
            assert!(r.kvs.is_empty());
        }
        reads += 1;
    }
    writer.join().unwrap();
    assert_eq!(store.current_revision().unwrap(), 301);
}

#[test]
fn usage_update_reads_the_file_size_far_from_the_quota_and_walks_near_it() {
    let mut roomy = Harness::new();
    for i in 0..200 {
        roomy.put(&format!("k{i}"), &"v".repeat(200));
    }
    let file = roomy.store.db_size().unwrap();
    assert_eq!(
        roomy.store.update_usage().unwrap(),
        file,
        "far from the quota: file size"
    );
    assert_eq!(roomy.store.db_size_in_use(), file);
    let walked = roomy.store.refresh_usage().unwrap();
    assert!(walked <= file, "in use {walked} beyond the file {file}");

    // A quota the file is already past: the walk runs, so usage is what is really in use.
    let mut tight = Harness::with_options(StoreOptions {
        quota_bytes: 1,
        ..options()
    });
    tight.put("a", "1");
    let walked = tight.store.refresh_usage().unwrap();
    assert_eq!(tight.store.update_usage().unwrap(), walked);
}
