//! Snapshot files: atomic creation, streaming, checksums, identity, retention.

use quorum_raft::{ConfState, Snapshot, SnapshotMetadata};
use quorum_storage::{Error, FileSystem, Identity, RealFs, SimFs, SnapshotOptions, SnapshotStore};
use std::io::Read;
use std::path::{Path, PathBuf};

const ID: Identity = Identity {
    cluster_id: 5,
    member_id: 6,
};

fn meta(index: u64) -> SnapshotMetadata {
    SnapshotMetadata {
        index,
        term: 2,
        conf_state: ConfState {
            voters: vec![1, 2, 3],
            ..ConfState::default()
        },
    }
}

fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn store<F: FileSystem>(fs: F, dir: &Path, retain: usize) -> SnapshotStore<F> {
    SnapshotStore::open(
        fs,
        dir,
        ID,
        SnapshotOptions {
            retain,
            write_buffer: 1000,
        },
    )
    .unwrap()
}

#[test]
fn streamed_write_and_read_round_trip() {
    let fs = SimFs::new(1);
    let dir = PathBuf::from("/snap");
    let s = store(fs.clone(), &dir, 3);
    let data = image(10_000, 1);
    let mut w = s.create(&meta(10)).unwrap();
    for chunk in data.chunks(777) {
        w.write(chunk).unwrap();
    }
    let info = w.finish().unwrap();
    assert_eq!((info.index, info.term), (10, 2));
    fs.crash();
    let s = store(fs.clone(), &dir, 3);
    let latest = s.latest().unwrap().unwrap();
    let mut r = s.open_reader(&latest).unwrap();
    assert_eq!(r.metadata(), &meta(10));
    let mut out = Vec::new();
    let mut buf = [0u8; 333];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out, data);
}

#[test]
fn unfinished_snapshot_is_invisible_and_cleaned_up() {
    let fs = SimFs::new(2);
    let dir = PathBuf::from("/snap");
    let s = store(fs.clone(), &dir, 3);
    let mut w = s.create(&meta(10)).unwrap();
    w.write(&image(5000, 2)).unwrap();
    std::mem::forget(w); // as if the process died mid-write
    assert_eq!(s.latest().unwrap(), None);
    let s = store(fs.clone(), &dir, 3);
    assert!(fs.list(&dir).unwrap().is_empty());
    assert_eq!(s.latest().unwrap(), None);
}

#[test]
fn damaged_image_is_detected() {
    let fs = SimFs::new(3);
    let dir = PathBuf::from("/snap");
    let s = store(fs.clone(), &dir, 3);
    let info = s
        .save(&Snapshot {
            metadata: meta(7),
            data: image(4000, 3).into(),
        })
        .unwrap();
    fs.flip_bit(&info.path, 2000, 5).unwrap();
    let err = s.load(&info, 1 << 20).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    // A damaged header is refused at open.
    let info2 = s
        .save(&Snapshot {
            metadata: meta(8),
            data: image(100, 4).into(),
        })
        .unwrap();
    fs.flip_bit(&info2.path, 30, 1).unwrap();
    assert!(matches!(s.open_reader(&info2), Err(Error::Corrupt { .. })));
}

#[test]
fn truncated_file_is_detected() {
    let fs = SimFs::new(4);
    let dir = PathBuf::from("/snap");
    let s = store(fs.clone(), &dir, 3);
    let info = s
        .save(&Snapshot {
            metadata: meta(7),
            data: image(4000, 3).into(),
        })
        .unwrap();
    let f = fs.open(&info.path).unwrap();
    quorum_storage::FsFile::set_len(&f, 3000).unwrap();
    assert!(matches!(s.open_reader(&info), Err(Error::Corrupt { .. })));
}

#[test]
fn other_members_snapshot_is_refused() {
    let fs = SimFs::new(5);
    let dir = PathBuf::from("/snap");
    let s = store(fs.clone(), &dir, 3);
    let info = s
        .save(&Snapshot {
            metadata: meta(7),
            data: image(10, 3).into(),
        })
        .unwrap();
    let other = SnapshotStore::open(
        fs,
        &dir,
        Identity {
            cluster_id: 5,
            member_id: 7,
        },
        SnapshotOptions::default(),
    )
    .unwrap();
    assert!(matches!(
        other.open_reader(&info),
        Err(Error::IdentityMismatch { .. })
    ));
}

#[test]
fn only_the_newest_are_retained() {
    let fs = SimFs::new(6);
    let dir = PathBuf::from("/snap");
    let s = store(fs.clone(), &dir, 2);
    for i in 1..=5 {
        s.save(&Snapshot {
            metadata: meta(i * 10),
            data: image(50, i as u8).into(),
        })
        .unwrap();
    }
    let indexes: Vec<u64> = s.list().unwrap().iter().map(|i| i.index).collect();
    assert_eq!(indexes, vec![40, 50]);
    let loaded = s.load(&s.latest().unwrap().unwrap(), 1 << 20).unwrap();
    assert_eq!(loaded.data.as_ref(), image(50, 5).as_slice());
    assert!(matches!(
        s.load(&s.latest().unwrap().unwrap(), 10),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn real_disk_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(RealFs, tmp.path(), 2);
    let data = image(100_000, 9);
    let info = s
        .save(&Snapshot {
            metadata: meta(3),
            data: data.clone().into(),
        })
        .unwrap();
    let loaded = s.load(&info, 1 << 20).unwrap();
    assert_eq!(loaded.data.as_ref(), data.as_slice());
    assert_eq!(loaded.metadata, meta(3));
}
