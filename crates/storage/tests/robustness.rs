//! Arbitrary bytes never make the decoder or recovery panic.

use proptest::prelude::*;
use quorum_storage::{FileSystem, FsFile, Identity, LogStore, SimFs, WalOptions};
use std::path::Path;

const ID: Identity = Identity {
    cluster_id: 1,
    member_id: 2,
};

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = quorum_storage::decode_all(&data, 1 << 20);
    }

    /// A valid segment image with random bytes overwritten: recovery may succeed or fail,
    /// but never panics.
    #[test]
    fn recovery_never_panics_on_damaged_segments(
        patches in proptest::collection::vec((0usize..8192, proptest::collection::vec(any::<u8>(), 1..16)), 1..6),
        seed in any::<u64>(),
    ) {
        let fs = SimFs::new(seed);
        let dir = Path::new("/wal");
        let opts = WalOptions { segment_size: 4096, ..WalOptions::default() };
        {
            let (mut log, _) = LogStore::open(fs.clone(), dir, ID, opts.clone()).unwrap();
            for i in 1..=60u64 {
                let e = quorum_raft::Entry { index: i, term: 1, data: vec![i as u8; 40].into(), ..Default::default() };
                log.save(Some(quorum_raft::HardState { term: 1, vote: 1, commit: i - 1 }), &[e]).unwrap();
            }
        }
        let names = fs.list(dir).unwrap();
        for (k, (offset, bytes)) in patches.iter().enumerate() {
            let path = dir.join(&names[k % names.len()]);
            let len = fs.open(&path).unwrap().size().unwrap() as usize;
            fs.corrupt(&path, (offset % len.max(1)) as u64, bytes).unwrap();
        }
        let _ = LogStore::open(fs.clone(), dir, ID, opts);
    }

    /// A segment file of arbitrary content.
    #[test]
    fn recovery_never_panics_on_arbitrary_segment(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let fs = SimFs::new(0);
        let dir = Path::new("/wal");
        fs.create_dir_all(dir).unwrap();
        let f = fs.create(&dir.join("0000000000000000-0000000000000001.wal")).unwrap();
        f.write_at(0, &data).unwrap();
        let _ = LogStore::open(fs.clone(), dir, ID, WalOptions { segment_size: 4096, ..WalOptions::default() });
    }
}
