//! Recovery of a WAL directory whose segments hold arbitrary bytes: must return a result
//! (usually an error), never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quorum_storage::{FileSystem, FsFile, Identity, LogStore, SimFs, WalOptions};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let fs = SimFs::new(0);
    let dir = Path::new("/wal");
    if fs.create_dir_all(dir).is_err() {
        return;
    }
    // Split the input into up to three segment files at 0xFF 0xFF markers.
    for (seq, part) in data.split(|b| *b == 0xFF).take(3).enumerate() {
        let name = format!("{seq:016x}-{:016x}.wal", 1 + seq as u64 * 10);
        let Ok(file) = fs.create(&dir.join(name)) else {
            return;
        };
        let _ = file.write_at(0, part);
    }
    let id = Identity {
        cluster_id: 1,
        member_id: 1,
    };
    let opts = WalOptions {
        segment_size: 4096,
        ..WalOptions::default()
    };
    let _ = LogStore::open(fs, dir, id, opts);
});
