//! Reads a real `etcdctl snapshot save` file (etcd 3.4.23) committed as a fixture, so the
//! reader is checked against etcd's own output without etcd installed. The file was made by:
//!
//! ```text
//! put foo bar; put foo bar2; put hello world; del hello; put big <6000 × 'x'>; put empty "";
//! put zeta last; lease grant 100000; put leased v --lease=<id>; compaction 2; snapshot save
//! ```
//!
//! and `etcdctl snapshot status -w json` printed
//! `{"hash":1359054831,"revision":9,"totalKey":15,"totalSize":49152}`.

use quorum_bbolt::etcd::{self, KeyValue, Revision};
use quorum_bbolt::Reader;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/etcd-3.4.23.snapshot.db"
);

#[test]
fn reads_etcd_snapshot_fixture() {
    let file = std::fs::File::open(FIXTURE).unwrap();
    let r = etcd::open_snapshot(file).unwrap();
    assert_eq!(r.page_size(), 4096);
    let names = r.bucket_names().unwrap();
    let want: Vec<Vec<u8>> = etcd::ETCD_BUCKETS.iter().map(|b| b.to_vec()).collect();
    assert_eq!(names, want);

    let key = r.bucket(etcd::KEY_BUCKET).unwrap().unwrap();
    let mut got = Vec::new();
    for e in key.iter() {
        let e = e.unwrap();
        let (rev, tombstone) = Revision::parse_key(&e.key).unwrap();
        let kv = KeyValue::decode(&e.value).unwrap();
        // Our encoding of what we decoded is byte-identical to etcd's.
        assert_eq!(kv.encode(), e.value);
        got.push((rev.main, tombstone, kv));
    }
    let kv = |k: &str, c, m, v, val: &[u8], lease| KeyValue {
        key: k.as_bytes().to_vec(),
        create_revision: c,
        mod_revision: m,
        version: v,
        value: val.to_vec(),
        lease,
    };
    let lease_id = 0x390d_a23c_476c_1f0c;
    let big = vec![b'x'; 6000];
    let want = vec![
        (2, false, kv("foo", 2, 2, 1, b"bar", 0)),
        (3, false, kv("foo", 2, 3, 2, b"bar2", 0)),
        (4, false, kv("hello", 4, 4, 1, b"world", 0)),
        (5, true, kv("hello", 0, 0, 0, b"", 0)),
        (6, false, kv("big", 6, 6, 1, &big, 0)),
        (7, false, kv("empty", 7, 7, 1, b"", 0)),
        (8, false, kv("zeta", 8, 8, 1, b"last", 0)),
        (9, false, kv("leased", 9, 9, 1, b"v", lease_id)),
    ];
    assert_eq!(got, want);

    let meta = r.bucket(etcd::META_BUCKET).unwrap().unwrap();
    let ci = meta.get(etcd::CONSISTENT_INDEX_KEY).unwrap().unwrap();
    assert!(etcd::decode_u64(&ci).unwrap() > 0);
    let compact = Revision { main: 2, sub: 0 }.to_bytes().to_vec();
    assert_eq!(
        meta.get(etcd::FINISHED_COMPACT_KEY).unwrap(),
        Some(compact.clone())
    );
    assert_eq!(
        meta.get(etcd::SCHEDULED_COMPACT_KEY).unwrap(),
        Some(compact)
    );

    let lease = r.bucket(etcd::LEASE_BUCKET).unwrap().unwrap();
    let leases: Vec<_> = lease.iter().map(|e| e.unwrap().key).collect();
    assert_eq!(leases, vec![(lease_id as u64).to_be_bytes().to_vec()]);
}

#[test]
fn status_matches_etcdctl() {
    let r = etcd::open_snapshot(std::fs::File::open(FIXTURE).unwrap()).unwrap();
    let s = etcd::snapshot_status(&r).unwrap();
    assert_eq!(
        s,
        etcd::Status {
            hash: 1359054831,
            revision: 9,
            total_key: 15,
            total_size: 49152,
        }
    );
}

#[test]
fn trailer_is_checked() {
    let mut bytes = std::fs::read(FIXTURE).unwrap();
    assert_eq!(bytes.len() % 512, 32);
    assert_eq!(etcd::strip_snapshot_hash(&bytes).unwrap().len(), 49152);
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let err = etcd::strip_snapshot_hash(&bytes).unwrap_err();
    assert!(err.to_string().contains("sha256 mismatch"), "{err}");
    // The database part alone still opens.
    let r = Reader::new(&bytes[..49152], 49152).unwrap();
    r.check().unwrap();
}
