//! Writer → Reader round trips over varied shapes, and the Writer's input checks.

mod common;
mod pages;

use std::collections::BTreeMap;
use std::io::Cursor;

use common::Rng;
use pages::bucket_root;
use quorum_bbolt::{Error, Reader, Writer};

type Db = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

fn write(db: &Db, page_size: u32) -> Vec<u8> {
    let mut w = Writer::with_page_size(Cursor::new(Vec::new()), page_size).unwrap();
    for (name, kvs) in db {
        w.bucket(name).unwrap();
        for (k, v) in kvs {
            w.put(k, v).unwrap();
        }
    }
    let (out, summary) = w.finish().unwrap();
    let bytes = out.into_inner();
    assert_eq!(bytes.len() as u64, summary.db_size());
    assert_eq!(summary.buckets, db.len() as u64);
    assert_eq!(
        summary.keys,
        db.values().map(|b| b.len() as u64).sum::<u64>()
    );
    bytes
}

fn read(bytes: &[u8]) -> Db {
    let r = Reader::new(bytes, bytes.len() as u64).unwrap();
    r.check().unwrap();
    let mut db = Db::new();
    for name in r.bucket_names().unwrap() {
        let b = r.bucket(&name).unwrap().unwrap();
        let mut kvs = BTreeMap::new();
        for e in b.iter() {
            let e = e.unwrap();
            assert!(!e.is_bucket);
            kvs.insert(e.key, e.value);
        }
        db.insert(name, kvs);
    }
    db
}

fn random_db(rng: &mut Rng, buckets: usize, max_keys: u64) -> Db {
    let mut db = Db::new();
    while db.len() < buckets {
        let name = rng.bytes_between(1, 12);
        let mut kvs = BTreeMap::new();
        let n = rng.below(max_keys + 1);
        for _ in 0..n {
            let k = rng.bytes_between(1, 40);
            let v = match rng.below(10) {
                0 => Vec::new(),
                1 => rng.bytes_between(4097, 20_000),
                2 => rng.bytes_between(900, 3000),
                _ => rng.bytes_between(0, 100),
            };
            kvs.insert(k, v);
        }
        db.insert(name, kvs);
    }
    db
}

#[test]
fn random_round_trips() {
    let mut rng = Rng::new(42);
    for round in 0..30 {
        let db = random_db(&mut rng, 1 + round % 7, 300);
        for ps in [4096, 512, 16384] {
            let bytes = write(&db, ps);
            assert_eq!(read(&bytes), db, "round {round}, page size {ps}");
        }
    }
}

#[test]
fn empty_database_and_empty_buckets() {
    let db = Db::new();
    let bytes = write(&db, 4096);
    // metas, root leaf, freelist.
    assert_eq!(bytes.len(), 4 * 4096);
    assert_eq!(read(&bytes), db);

    let mut db = Db::new();
    for name in [&b"a"[..], b"b", b"members_removed"] {
        db.insert(name.to_vec(), BTreeMap::new());
    }
    let bytes = write(&db, 4096);
    assert_eq!(read(&bytes), db);
    let r = Reader::new(&bytes[..], bytes.len() as u64).unwrap();
    assert!(r.bucket(b"a").unwrap().unwrap().is_inline());
    assert!(r.bucket(b"zz").unwrap().is_none());
}

#[test]
fn hundred_thousand_keys_make_a_deep_tree() {
    let mut kvs = BTreeMap::new();
    for i in 0..100_000u64 {
        kvs.insert(format!("key-{i:08}").into_bytes(), i.to_be_bytes().to_vec());
    }
    let mut db = Db::new();
    db.insert(b"key".to_vec(), kvs);
    db.insert(
        b"meta".to_vec(),
        BTreeMap::from([(b"x".to_vec(), b"y".to_vec())]),
    );
    let bytes = write(&db, 4096);
    assert_eq!(read(&bytes), db);

    // Small pages force several branch levels.
    let bytes = write(&db, 512);
    assert_eq!(read(&bytes), db);
    let r = Reader::new(&bytes[..], bytes.len() as u64).unwrap();
    let b = r.bucket(b"key").unwrap().unwrap();
    assert!(!b.is_inline());
    for i in (0..100_000u64).step_by(9973) {
        let k = format!("key-{i:08}").into_bytes();
        assert_eq!(b.get(&k).unwrap(), Some(i.to_be_bytes().to_vec()));
    }
    assert_eq!(b.get(b"key-").unwrap(), None);
    assert_eq!(b.get(b"zzz").unwrap(), None);
    // The key bucket's root: read its bucket header from the root leaf.
    let key_root = bucket_root(&r, b"key");
    let depth = tree_depth(&bytes, 512, key_root);
    assert!(
        depth >= 4,
        "100k keys on 512-byte pages should be ≥ 4 levels, got {depth}"
    );
}

/// Number of levels under page `pgid`, following first children (raw layout reading).
fn tree_depth(bytes: &[u8], ps: usize, mut pgid: u64) -> usize {
    let mut depth = 1;
    loop {
        let p = &bytes[pgid as usize * ps..];
        let flags = u16::from_le_bytes([p[8], p[9]]);
        if flags == 0x02 {
            return depth;
        }
        assert_eq!(flags, 0x01);
        pgid = u64::from_le_bytes(p[24..32].try_into().unwrap());
        depth += 1;
    }
}

#[test]
fn large_values_use_overflow_pages() {
    let mut rng = Rng::new(7);
    let mut kvs = BTreeMap::new();
    kvs.insert(b"a".to_vec(), rng.bytes(10_000));
    kvs.insert(b"b".to_vec(), Vec::new());
    kvs.insert(b"c".to_vec(), rng.bytes(1 << 20));
    kvs.insert(vec![b'k'; 32768], rng.bytes(5));
    let db = Db::from([(b"big".to_vec(), kvs)]);
    let bytes = write(&db, 4096);
    assert_eq!(read(&bytes), db);
    // Some page has a non-zero overflow count.
    let has_overflow = bytes
        .chunks(4096)
        .any(|p| u32::from_le_bytes(p[12..16].try_into().unwrap()) > 0);
    assert!(has_overflow);
}

#[test]
fn fill_percent_changes_page_count() {
    let mut kvs = BTreeMap::new();
    for i in 0..5000u32 {
        kvs.insert(i.to_be_bytes().to_vec(), vec![1u8; 20]);
    }
    let db = Db::from([(b"b".to_vec(), kvs)]);
    let full = write(&db, 4096);
    let mut w = Writer::new(Cursor::new(Vec::new())).unwrap();
    w.set_fill_percent(0.5).unwrap();
    for (name, kvs) in &db {
        w.bucket(name).unwrap();
        for (k, v) in kvs {
            w.put(k, v).unwrap();
        }
    }
    let half = w.finish().unwrap().0.into_inner();
    assert!(
        half.len() > full.len() * 3 / 2,
        "{} vs {}",
        half.len(),
        full.len()
    );
    assert_eq!(read(&half), db);
}

#[test]
fn writer_rejects_bad_input() {
    let mut w = Writer::new(Cursor::new(Vec::new())).unwrap();
    assert!(matches!(w.put(b"k", b"v"), Err(Error::InvalidInput(_))));
    assert!(matches!(w.bucket(b""), Err(Error::InvalidInput(_))));
    w.bucket(b"m").unwrap();
    assert!(matches!(w.bucket(b"a"), Err(Error::InvalidInput(_))));
    assert!(matches!(w.bucket(b"m"), Err(Error::InvalidInput(_))));
    w.put(b"b", b"1").unwrap();
    assert!(matches!(w.put(b"a", b"1"), Err(Error::InvalidInput(_))));
    assert!(matches!(w.put(b"b", b"1"), Err(Error::InvalidInput(_))));
    assert!(matches!(w.put(b"", b"1"), Err(Error::InvalidInput(_))));
    assert!(matches!(
        w.put(&[1; 32769], b"1"),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        w.set_fill_percent(0.5),
        Err(Error::InvalidInput(_))
    ));
    // Errors did not disturb what was written.
    w.put(b"c", b"2").unwrap();
    let bytes = w.finish().unwrap().0.into_inner();
    let db = read(&bytes);
    assert_eq!(db[&b"m".to_vec()].len(), 2);
    assert!(Writer::with_page_size(Cursor::new(Vec::new()), 1000).is_err());
    assert!(Writer::with_page_size(Cursor::new(Vec::new()), 256).is_err());
}

#[test]
fn writes_to_a_real_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let f = std::fs::File::create(&path).unwrap();
    let mut w = Writer::new(f).unwrap();
    w.bucket(b"key").unwrap();
    w.put(b"a", b"b").unwrap();
    let (_, summary) = w.finish().unwrap();
    let r = Reader::open_file(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(r.size(), summary.db_size());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), summary.db_size());
    assert_eq!(r.meta().txid, 3);
    let b = r.bucket(b"key").unwrap().unwrap();
    assert_eq!(b.get(b"a").unwrap(), Some(b"b".to_vec()));
}

#[test]
fn big_keys_on_small_pages() {
    let mut rng = Rng::new(99);
    let mut kvs = BTreeMap::new();
    for _ in 0..200 {
        let k = rng.bytes_between(300, 3000);
        let v = rng.bytes_between(0, 700);
        kvs.insert(k, v);
    }
    let db = Db::from([(b"k".to_vec(), kvs)]);
    for ps in [512, 1024, 4096] {
        assert_eq!(read(&write(&db, ps)), db, "page size {ps}");
    }
}
