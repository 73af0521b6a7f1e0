//! Model-based test: random operation sequences against the store and a naive in-memory model
//! (every revision of every key in a BTreeMap); every response and the final state must match.
//! Also the determinism test (two stores, same entries, same HashKV at every revision).

mod common;

use common::*;
use proptest::prelude::*;
use quorum_mvcc::*;
use std::collections::BTreeMap;

const KEYS: &[&str] = &["a", "ab", "b", "c", "cd", "d"];

#[derive(Clone, Debug)]
struct Ver {
    main: i64,
    // None = tombstone; else (create, version, lease, value)
    val: Option<(i64, i64, i64, Vec<u8>)>,
}

#[derive(Default)]
struct Model {
    hist: BTreeMap<Vec<u8>, Vec<Ver>>,
    current: i64,
    compact: i64,
    leases: BTreeMap<i64, i64>,
    // within one request
    writing: bool,
}

fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    match end {
        [] => key == start,
        [0] => key >= start,
        e => key >= start && key < e,
    }
}

impl Model {
    fn new() -> Model {
        Model {
            current: 1,
            ..Default::default()
        }
    }

    fn live(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        let v = self.hist.get(key)?.iter().rev().find(|v| v.main <= rev)?;
        let (create, version, lease, value) = v.val.clone()?;
        Some(KeyValue {
            key: key.to_vec(),
            create_revision: create,
            mod_revision: v.main,
            version,
            value,
            lease,
        })
    }

    fn live_in(&self, start: &[u8], end: &[u8], rev: i64) -> Vec<KeyValue> {
        self.hist
            .keys()
            .filter(|k| in_range(k, start, end))
            .filter_map(|k| self.live(k, rev))
            .collect()
    }

    fn main(&self) -> i64 {
        self.current + 1
    }

    fn write(&mut self, key: &[u8], val: Option<(i64, i64, i64, Vec<u8>)>) {
        let main = self.main();
        self.hist
            .entry(key.to_vec())
            .or_default()
            .push(Ver { main, val });
        self.writing = true;
    }

    fn end_request(&mut self) {
        if self.writing {
            self.current += 1;
            self.writing = false;
        }
    }

    fn read_rev(&self, rev: i64) -> Result<i64, MvccError> {
        if rev <= 0 {
            return Ok(self.current);
        }
        if rev > self.current {
            return Err(MvccError::FutureRevision);
        }
        if rev < self.compact {
            return Err(MvccError::Compacted);
        }
        Ok(rev)
    }

    fn range(&self, r: &RangeRequest, rev: i64) -> RangeResponse {
        self.range_with_header(r, rev, self.current)
    }

    /// etcd reports the current revision in the header, not the one read at.
    fn range_with_header(&self, r: &RangeRequest, rev: i64, header: i64) -> RangeResponse {
        let all = self.live_in(&r.key, &r.range_end, rev);
        let count = all.len() as i64;
        let filtered = r.min_mod_revision != 0
            || r.max_mod_revision != 0
            || r.min_create_revision != 0
            || r.max_create_revision != 0;
        // etcd's apply: fetch limit + 1 in key order unless it must sort or filter
        let mut kvs: Vec<KeyValue> = if r.count_only {
            vec![]
        } else if r.limit > 0 && r.sort_order == SortOrder::None && !filtered {
            all.into_iter().take(r.limit as usize + 1).collect()
        } else {
            all
        };
        kvs.retain(|kv| {
            (r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
                && (r.max_mod_revision == 0 || kv.mod_revision <= r.max_mod_revision)
                && (r.min_create_revision == 0 || kv.create_revision >= r.min_create_revision)
                && (r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
        });
        let field = |kv: &KeyValue| -> (Vec<u8>, i64) {
            match r.sort_target {
                SortTarget::Key => (kv.key.clone(), 0),
                SortTarget::Version => (vec![], kv.version),
                SortTarget::Create => (vec![], kv.create_revision),
                SortTarget::Mod => (vec![], kv.mod_revision),
                SortTarget::Value => (kv.value.clone(), 0),
            }
        };
        let descend = r.sort_order == SortOrder::Descend;
        let sorts = r.sort_order != SortOrder::None || r.sort_target != SortTarget::Key;
        if sorts {
            // stable: ties keep key order
            kvs.sort_by(|a, b| {
                let o = field(a).cmp(&field(b));
                if descend {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        let mut more = false;
        if r.limit > 0 && kvs.len() > r.limit as usize {
            kvs.truncate(r.limit as usize);
            more = true;
        }
        if r.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        RangeResponse {
            header_revision: header,
            kvs,
            more,
            count,
        }
    }

    fn put(&mut self, p: &PutRequest) -> Result<PutResponse, MvccError> {
        if p.lease != 0 && !self.leases.contains_key(&p.lease) {
            return Err(MvccError::LeaseNotFound);
        }
        let prev = self.live(&p.key, i64::MAX);
        let (create, version) = match &prev {
            Some(kv) => (kv.create_revision, kv.version + 1),
            None => (self.main(), 1),
        };
        self.write(&p.key, Some((create, version, p.lease, p.value.clone())));
        Ok(PutResponse {
            header_revision: 0,
            prev_kv: if p.prev_kv { prev } else { None },
        })
    }

    fn delete(&mut self, d: &DeleteRangeRequest) -> DeleteRangeResponse {
        let doomed = self.live_in(&d.key, &d.range_end, i64::MAX);
        for kv in &doomed {
            self.write(&kv.key, None);
        }
        DeleteRangeResponse {
            header_revision: 0,
            deleted: doomed.len() as i64,
            prev_kvs: if d.prev_kv { doomed } else { vec![] },
        }
    }

    fn compare(&self, c: &Compare) -> bool {
        let kvs = self.live_in(&c.key, &c.range_end, i64::MAX);
        if kvs.is_empty() {
            if c.target == CompareTarget::Value {
                return false;
            }
            return cmp_one(c, &KeyValue::default());
        }
        kvs.iter().all(|kv| cmp_one(c, kv))
    }

    /// Every compare of the chosen path, evaluated before the txn writes (pre-order).
    fn txn_path(&self, t: &TxnRequest, path: &mut Vec<bool>) {
        let ok = t.compare.iter().all(|c| self.compare(c));
        path.push(ok);
        for op in if ok { &t.success } else { &t.failure } {
            if let RequestOp::Txn(inner) = op {
                self.txn_path(inner, path);
            }
        }
    }

    fn check_txn(&self, t: &TxnRequest, path: &[bool], pos: &mut usize) -> Result<(), MvccError> {
        let ok = path[*pos];
        *pos += 1;
        for op in if ok { &t.success } else { &t.failure } {
            match op {
                RequestOp::Put(p) if p.lease != 0 && !self.leases.contains_key(&p.lease) => {
                    return Err(MvccError::LeaseNotFound)
                }
                RequestOp::Txn(inner) => self.check_txn(inner, path, pos)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn txn_header(&self) -> i64 {
        if self.writing {
            self.main()
        } else {
            self.current
        }
    }

    fn exec_txn(
        &mut self,
        t: &TxnRequest,
        path: &[bool],
        pos: &mut usize,
    ) -> Result<TxnResponse, MvccError> {
        let ok = path[*pos];
        *pos += 1;
        let mut responses = vec![];
        for op in if ok { &t.success } else { &t.failure } {
            responses.push(match op {
                RequestOp::Put(p) => {
                    let r = self.put(p)?;
                    ResponseOp::Put(PutResponse {
                        header_revision: self.txn_header(),
                        ..r
                    })
                }
                RequestOp::DeleteRange(d) => {
                    let r = self.delete(d);
                    ResponseOp::DeleteRange(DeleteRangeResponse {
                        header_revision: self.txn_header(),
                        ..r
                    })
                }
                RequestOp::Range(r) => {
                    ResponseOp::Range(self.range_with_header(r, i64::MAX, self.txn_header()))
                }
                RequestOp::Txn(inner) => ResponseOp::Txn(self.exec_txn(inner, path, pos)?),
            });
        }
        Ok(TxnResponse {
            header_revision: 0,
            succeeded: ok,
            responses,
        })
    }

    fn apply(&mut self, req: &WriteRequest) -> Result<WriteResponse, MvccError> {
        let out = match req {
            WriteRequest::Put(p) => {
                let mut r = self.put(p)?;
                self.end_request();
                r.header_revision = self.current;
                WriteResponse::Put(r)
            }
            WriteRequest::DeleteRange(d) => {
                let mut r = self.delete(d);
                self.end_request();
                r.header_revision = self.current;
                WriteResponse::DeleteRange(r)
            }
            WriteRequest::Txn(t) => {
                // stateless checks (duplicate keys, limits) have their own tests in validate.rs
                quorum_mvcc::validate::check_txn(t, 128)?;
                let mut path = vec![];
                self.txn_path(t, &mut path);
                self.check_txn(t, &path, &mut 0)?;
                let mut resp = self.exec_txn(t, &path, &mut 0)?;
                self.end_request();
                resp.header_revision = self.current;
                WriteResponse::Txn(resp)
            }
            WriteRequest::Compaction(c) => {
                if c.revision <= self.compact {
                    return Err(MvccError::Compacted);
                }
                if c.revision > self.current {
                    return Err(MvccError::FutureRevision);
                }
                self.compact = c.revision;
                WriteResponse::Compaction(CompactionResponse {
                    header_revision: self.current,
                })
            }
            WriteRequest::LeaseGrant(g) => {
                if self.leases.contains_key(&g.id) {
                    return Err(MvccError::LeaseExist);
                }
                let ttl = g.ttl.max(2);
                self.leases.insert(g.id, ttl);
                WriteResponse::LeaseGrant(LeaseGrantResponse {
                    header_revision: self.current,
                    id: g.id,
                    ttl,
                })
            }
            WriteRequest::LeaseRevoke(r) => {
                if self.leases.remove(&r.id).is_none() {
                    return Err(MvccError::LeaseNotFound);
                }
                let attached: Vec<KeyValue> = self
                    .live_in(b"\0", b"\0", i64::MAX)
                    .into_iter()
                    .filter(|kv| kv.lease == r.id)
                    .collect();
                for kv in attached {
                    self.write(&kv.key, None);
                }
                self.end_request();
                WriteResponse::LeaseRevoke(LeaseRevokeResponse {
                    header_revision: self.current,
                })
            }
            _ => unreachable!(),
        };
        Ok(out)
    }
}

fn cmp_one(c: &Compare, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    let o: Ordering = match (&c.target, &c.target_union) {
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => kv.value.cmp(v),
        (CompareTarget::Version, Some(TargetUnion::Version(v))) => kv.version.cmp(v),
        (CompareTarget::Create, Some(TargetUnion::CreateRevision(v))) => kv.create_revision.cmp(v),
        (CompareTarget::Mod, Some(TargetUnion::ModRevision(v))) => kv.mod_revision.cmp(v),
        (CompareTarget::Lease, Some(TargetUnion::Lease(v))) => kv.lease.cmp(v),
        _ => unreachable!("generator pairs targets and operands"),
    };
    match c.result {
        CompareResult::Equal => o.is_eq(),
        CompareResult::NotEqual => o.is_ne(),
        CompareResult::Greater => o.is_gt(),
        CompareResult::Less => o.is_lt(),
    }
}

#[derive(Clone, Debug)]
enum Op {
    Write(WriteRequest),
    Read(RangeRequest),
    PhysicalCompaction(usize),
    /// Close and open the store again (rebuilds the in-memory key index).
    Reopen,
    /// Export a snapshot and import it into the same store (rebuilds the index too).
    SnapshotRoundTrip,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(KEYS).prop_map(|k| k.as_bytes().to_vec())
}

fn range_end() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![]),
        Just(vec![0]),
        prop::sample::select(&["b", "c", "d", "e", "a"][..]).prop_map(|k| k.as_bytes().to_vec()),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(b'0'..b'4', 0..3)
}

fn put_req() -> impl Strategy<Value = PutRequest> {
    (
        key(),
        value(),
        prop_oneof![3 => Just(0i64), 1 => 1i64..4],
        any::<bool>(),
    )
        .prop_map(|(key, value, lease, prev_kv)| PutRequest {
            key,
            value,
            lease,
            prev_kv,
            ..Default::default()
        })
}

fn delete_req() -> impl Strategy<Value = DeleteRangeRequest> {
    (key(), range_end(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

fn range_req() -> impl Strategy<Value = RangeRequest> {
    let order = prop::sample::select(&[SortOrder::None, SortOrder::Ascend, SortOrder::Descend][..]);
    let target = prop::sample::select(
        &[
            SortTarget::Key,
            SortTarget::Version,
            SortTarget::Create,
            SortTarget::Mod,
            SortTarget::Value,
        ][..],
    );
    let filters = prop_oneof![
        3 => Just((0i64, 0i64, 0i64, 0i64)),
        1 => (0i64..20, 0i64..20, 0i64..20, 0i64..20),
    ];
    (
        (key(), range_end(), 0i64..4, -1i64..40),
        (order, target, any::<bool>(), prop::bool::weighted(0.15)),
        filters,
    )
        .prop_map(
            |(
                (key, range_end, limit, revision),
                (sort_order, sort_target, keys_only, count_only),
                (min_mod_revision, max_mod_revision, min_create_revision, max_create_revision),
            )| RangeRequest {
                key,
                range_end,
                limit,
                revision,
                sort_order,
                sort_target,
                keys_only,
                count_only,
                min_mod_revision,
                max_mod_revision,
                min_create_revision,
                max_create_revision,
                ..Default::default()
            },
        )
}

fn compare() -> impl Strategy<Value = Compare> {
    let target = prop_oneof![
        value().prop_map(|v| (CompareTarget::Value, TargetUnion::Value(v))),
        (0i64..4).prop_map(|v| (CompareTarget::Version, TargetUnion::Version(v))),
        (0i64..20).prop_map(|v| (CompareTarget::Create, TargetUnion::CreateRevision(v))),
        (0i64..20).prop_map(|v| (CompareTarget::Mod, TargetUnion::ModRevision(v))),
        (0i64..3).prop_map(|v| (CompareTarget::Lease, TargetUnion::Lease(v))),
    ];
    let result = prop::sample::select(
        &[
            CompareResult::Equal,
            CompareResult::NotEqual,
            CompareResult::Greater,
            CompareResult::Less,
        ][..],
    );
    (
        key(),
        target,
        result,
        prop_oneof![3 => Just(vec![]), 1 => range_end()],
    )
        .prop_map(|(key, (target, u), result, range_end)| Compare {
            result,
            target,
            key,
            target_union: Some(u),
            range_end,
        })
}

fn txn_op() -> impl Strategy<Value = RequestOp> {
    prop_oneof![
        put_req().prop_map(RequestOp::Put),
        key().prop_map(|key| RequestOp::DeleteRange(DeleteRangeRequest {
            key,
            range_end: vec![],
            prev_kv: true
        })),
        range_req().prop_map(|r| RequestOp::Range(RangeRequest { revision: 0, ..r })),
    ]
}

fn txn<S: Strategy<Value = Vec<RequestOp>>>(
    ops: impl Fn() -> S,
) -> impl Strategy<Value = TxnRequest> {
    (prop::collection::vec(compare(), 0..3), ops(), ops()).prop_map(
        |(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => put_req().prop_map(|p| Op::Write(WriteRequest::Put(p))),
        2 => delete_req().prop_map(|d| Op::Write(WriteRequest::DeleteRange(d))),
        3 => range_req().prop_map(Op::Read),
        3 => txn(|| prop::collection::vec(
            prop_oneof![
                4 => txn_op(),
                1 => txn(|| prop::collection::vec(txn_op(), 0..3)).prop_map(RequestOp::Txn)
            ],
            0..4,
        ))
        .prop_map(|t| Op::Write(WriteRequest::Txn(t))),
        1 => (0i64..40).prop_map(|revision| Op::Write(WriteRequest::Compaction(
            CompactionRequest { revision, physical: false }
        ))),
        1 => (1i64..4, 0i64..5).prop_map(|(id, ttl)| Op::Write(WriteRequest::LeaseGrant(
            LeaseGrantRequest { ttl, id }
        ))),
        1 => (1i64..4).prop_map(|id| Op::Write(WriteRequest::LeaseRevoke(
            LeaseRevokeRequest { id }
        ))),
        1 => (1usize..5).prop_map(Op::PhysicalCompaction),
        1 => Just(Op::Reopen),
        1 => Just(Op::SnapshotRoundTrip),
    ]
}

fn check_state(h: &Harness, m: &Model) {
    let all = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    assert_eq!(h.store.current_revision().unwrap(), m.current);
    for rev in m.compact.max(1)..=m.current {
        let r = RangeRequest {
            revision: rev,
            ..all.clone()
        };
        assert_eq!(
            h.store.range(&r).unwrap(),
            m.range(&r, rev),
            "state at {rev}"
        );
    }
    let mut leases: Vec<i64> = m.leases.keys().copied().collect();
    leases.sort();
    assert_eq!(h.store.leases().unwrap(), leases);
    for id in m.leases.keys() {
        let keys: Vec<Vec<u8>> = m
            .live_in(b"\0", b"\0", i64::MAX)
            .into_iter()
            .filter(|kv| kv.lease == *id)
            .map(|kv| kv.key)
            .collect();
        assert_eq!(h.store.lease_time_to_live(*id, true, 0).unwrap().keys, keys);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut h = Harness::with_options(StoreOptions { compaction_batch: 2, ..options() });
        let mut m = Model::new();
        for op in &ops {
            match op {
                Op::Write(req) => {
                    let got = h.apply(req.clone());
                    let want = m.apply(req);
                    prop_assert_eq!(got, want, "request {:?}", req);
                }
                Op::Read(r) => {
                    let got = h.store.range(r);
                    let want = m.read_rev(r.revision).map(|rev| m.range(r, rev));
                    prop_assert_eq!(got, want, "range {:?}", r);
                }
                Op::PhysicalCompaction(n) => {
                    h.store.run_compaction(*n).unwrap();
                }
                Op::Reopen => h = h.reopen(),
                Op::SnapshotRoundTrip => {
                    let mut image = Vec::new();
                    h.store.snapshot_export(&mut image).unwrap();
                    h.store.snapshot_import(image.as_slice()).unwrap();
                }
            }
        }
        check_state(&h, &m);
        h.store.run_compaction(usize::MAX).unwrap();
        check_state(&h, &m);
    }

    #[test]
    fn same_entries_same_hashes(ops in prop::collection::vec(op(), 1..40)) {
        // one store compacts eagerly and applies one entry per batch, the other lazily in
        // bigger batches: HashKV must agree at every revision anyway
        let mut a = Harness::with_options(StoreOptions { compaction_batch: 1, ..options() });
        let b = Harness::with_options(StoreOptions { compaction_batch: 0, ..options() });
        let writes: Vec<(u64, WriteRequest)> = ops.iter().filter_map(|o| match o {
            Op::Write(w) => Some(w.clone()),
            _ => None,
        }).enumerate().map(|(i, w)| (i as u64 + 1, w)).collect();
        for (_, w) in &writes {
            let _ = a.apply(w.clone());
        }
        for chunk in writes.chunks(7) {
            b.store.apply(chunk).unwrap();
        }
        let cur = a.store.current_revision().unwrap();
        prop_assert_eq!(cur, b.store.current_revision().unwrap());
        let compact = a.store.compact_revision().unwrap();
        for rev in compact.max(1)..=cur {
            prop_assert_eq!(a.store.hash_kv(rev).unwrap(), b.store.hash_kv(rev).unwrap());
        }
        prop_assert_eq!(a.store.hash().unwrap(), b.store.hash().unwrap());
    }
}
