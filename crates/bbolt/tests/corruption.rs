//! Damaged input: every flipped byte and every truncation gives an error or (where bbolt's
//! redundancy allows) the right data, never a panic; specific damage gives specific errors.

mod common;
mod pages;

use std::io::Cursor;

use common::Rng;
use quorum_bbolt::{etcd, Error, Reader, Writer};

type Dump = Vec<(Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>)>;

const PS: usize = 512;

/// A small database on 512-byte pages: a multi-level bucket, an inline one, an overflow value.
fn sample() -> Vec<u8> {
    let mut rng = Rng::new(5);
    let mut w = Writer::with_page_size(Cursor::new(Vec::new()), PS as u32).unwrap();
    w.bucket(b"big").unwrap();
    w.put(b"huge", &rng.bytes(1500)).unwrap();
    w.bucket(b"key").unwrap();
    for i in 0..300u32 {
        w.put(&i.to_be_bytes(), &rng.bytes_between(0, 30)).unwrap();
    }
    w.bucket(b"small").unwrap();
    w.put(b"a", b"1").unwrap();
    w.finish().unwrap().0.into_inner()
}

/// Reads everything a user could ask for.
fn read_all(bytes: &[u8]) -> Result<Dump, Error> {
    let r = Reader::new(bytes, bytes.len() as u64)?;
    let mut out = Vec::new();
    for name in r.bucket_names()? {
        let Some(b) = r.bucket(&name)? else {
            continue;
        };
        let mut kvs = Vec::new();
        for e in b.iter() {
            let e = e?;
            kvs.push((e.key, e.value));
        }
        for (k, _) in kvs.iter().step_by(37) {
            b.get(k)?;
        }
        b.get(b"\xff\xff\xff")?;
        out.push((name, kvs));
    }
    let _ = r.check();
    let _ = etcd::snapshot_status(&r);
    let _ = r.free_pages();
    Ok(out)
}

#[test]
fn every_flipped_byte_is_an_error_or_harmless() {
    let good = sample();
    let want = read_all(&good).unwrap();
    assert!(
        good.len() >= 20 * PS,
        "sample has {} pages",
        good.len() / PS
    );
    let mut errors = 0;
    for pos in 0..good.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[pos] ^= mask;
            match read_all(&bad) {
                Err(_) => errors += 1,
                Ok(got) => {
                    // A flip in meta page 0's fields or checksum is survived by falling back
                    // to meta page 1, which describes the same tree.
                    if (16..80).contains(&pos) {
                        assert_eq!(got, want, "flip at {pos} changed the data silently");
                    }
                }
            }
        }
    }
    assert!(errors > 1000, "only {errors} flips detected");
}

#[test]
fn both_metas_damaged_is_an_error() {
    let mut bad = sample();
    bad[16] ^= 1; // magic of meta 0
    bad[PS + 60] ^= 1; // checksum of meta 1
    let err = Reader::new(&bad[..], bad.len() as u64).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("no valid meta page"), "{msg}");
    assert!(msg.contains("page 0: bad magic"), "{msg}");
    let mut bad = sample();
    bad[PS + 16..PS + 20].copy_from_slice(&[0, 0, 0, 0]); // magic of meta 1
    bad[60] ^= 1; // checksum of meta 0
    let msg = Reader::new(&bad[..], bad.len() as u64)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("page 0: meta checksum mismatch"), "{msg}");
    assert!(msg.contains("page 1: bad magic"), "{msg}");
}

#[test]
fn higher_txid_meta_wins() {
    let good = sample();
    let r = Reader::new(&good[..], good.len() as u64).unwrap();
    assert_eq!(r.meta().txid, 3);
    let mut bad = good.clone();
    bad[PS + 16] ^= 1; // meta 1 broken: meta 0 (txid 2) is used.
    let r = Reader::new(&bad[..], bad.len() as u64).unwrap();
    assert_eq!(r.meta().txid, 2);
}

#[test]
fn every_truncation_is_an_error() {
    let good = sample();
    for len in 0..good.len() {
        let err = match read_all(&good[..len]) {
            Err(e) => e,
            Ok(_) => panic!("truncation to {len} bytes went unnoticed"),
        };
        if len >= 2 * PS {
            assert!(err.to_string().contains("truncated"), "{len}: {err}");
        }
    }
}

fn page_of(bytes: &[u8], pgid: u64) -> std::ops::Range<usize> {
    let s = pgid as usize * PS;
    let _ = bytes;
    s..s + PS
}

/// Root page of a top-level bucket of the file `bytes`.
fn bucket_root(bytes: &[u8], name: &[u8]) -> u64 {
    pages::bucket_root(&Reader::new(bytes, bytes.len() as u64).unwrap(), name)
}

/// Iterates a bucket to its end, returning the number of entries or the first error.
fn iterate_bucket(bytes: &[u8], name: &[u8]) -> Result<usize, Error> {
    let r = Reader::new(bytes, bytes.len() as u64)?;
    let b = r.bucket(name)?.unwrap();
    let mut n = 0;
    for e in b.iter() {
        e?;
        n += 1;
    }
    Ok(n)
}

#[test]
fn branch_loop_is_detected() {
    let mut bytes = sample();
    let root = bucket_root(&bytes, b"key");
    let p = page_of(&bytes, root);
    assert_eq!(
        u16::from_le_bytes([bytes[p.start + 8], bytes[p.start + 9]]),
        0x01
    );
    // Point the root branch's second child at the root itself.
    let elem = p.start + 16 + 16;
    bytes[elem + 8..elem + 16].copy_from_slice(&root.to_le_bytes());
    let err = iterate_bucket(&bytes, b"key").unwrap_err();
    assert!(err.to_string().contains("more than once"), "{err}");
}

#[test]
fn page_id_out_of_range_is_detected() {
    let mut bytes = sample();
    let root = bucket_root(&bytes, b"key");
    let elem = page_of(&bytes, root).start + 16;
    bytes[elem + 8..elem + 16].copy_from_slice(&1_000_000u64.to_le_bytes());
    let err = iterate_bucket(&bytes, b"key").unwrap_err();
    assert!(err.to_string().contains("outside 2.."), "{err}");
    bytes[elem + 8..elem + 16].copy_from_slice(&0u64.to_le_bytes());
    let err = iterate_bucket(&bytes, b"key").unwrap_err();
    assert!(err.to_string().contains("outside 2.."), "{err}");
}

#[test]
fn element_out_of_bounds_is_detected() {
    let mut bytes = sample();
    let root = bucket_root(&bytes, b"key");
    let elem = page_of(&bytes, root).start + 16;
    bytes[elem + 4..elem + 8].copy_from_slice(&u32::MAX.to_le_bytes()); // ksize
    let err = iterate_bucket(&bytes, b"key").unwrap_err();
    assert!(err.to_string().contains("runs past the page end"), "{err}");
}

#[test]
fn wrong_page_type_and_self_id_are_detected() {
    let good = sample();
    let root = bucket_root(&good, b"key");
    let start = page_of(&good, root).start;
    let mut bad = good.clone();
    bad[start + 8] = 0x10; // freelist flag on a branch page
    let err = iterate_bucket(&bad, b"key").unwrap_err();
    assert!(
        err.to_string().contains("expected a leaf or branch"),
        "{err}"
    );
    let mut bad = good.clone();
    bad[start] ^= 0x40; // header id
    let err = iterate_bucket(&bad, b"key").unwrap_err();
    assert!(err.to_string().contains("says it is page"), "{err}");
}

#[test]
fn keys_out_of_order_are_detected() {
    let mut bytes = sample();
    // Swap the first two children of the key bucket's root branch.
    let root = bucket_root(&bytes, b"key");
    let e0 = page_of(&bytes, root).start + 16;
    let e1 = e0 + 16;
    let c0: [u8; 8] = bytes[e0 + 8..e0 + 16].try_into().unwrap();
    let c1: [u8; 8] = bytes[e1 + 8..e1 + 16].try_into().unwrap();
    bytes[e0 + 8..e0 + 16].copy_from_slice(&c1);
    bytes[e1 + 8..e1 + 16].copy_from_slice(&c0);
    let err = iterate_bucket(&bytes, b"key").unwrap_err();
    assert!(err.to_string().contains("out of order"), "{err}");
}

#[test]
fn check_finds_unreachable_pages() {
    let good = sample();
    let r = Reader::new(&good[..], good.len() as u64).unwrap();
    r.check().unwrap();
    assert!(r.free_pages().unwrap().is_empty());
    // Append a page the metas do not know about: harmless (beyond the high-water mark).
    let mut longer = good.clone();
    longer.extend_from_slice(&[0u8; PS]);
    Reader::new(&longer[..], longer.len() as u64)
        .unwrap()
        .check()
        .unwrap();
}

#[test]
fn fixture_survives_every_flip() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/etcd-3.4.23.snapshot.db"
    );
    let good = std::fs::read(path).unwrap();
    let db = &good[..good.len() - 32];
    read_all(db).unwrap();
    let mut rng = Rng::new(3);
    for _ in 0..20_000 {
        let mut bad = db.to_vec();
        let pos = rng.below(bad.len() as u64) as usize;
        bad[pos] ^= 1 << rng.below(8);
        let _ = read_all(&bad);
        // With the trailer kept, any flip is caught by the sha256.
        let mut framed = bad.clone();
        framed.extend_from_slice(&good[good.len() - 32..]);
        assert!(etcd::strip_snapshot_hash(&framed).is_err());
    }
}
