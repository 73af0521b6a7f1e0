//! Page-level helpers for the tests that inspect or damage a file's pages (kept out of
//! `common`, which tests/tests/etcd_backup.rs also includes without depending on this crate).

use quorum_bbolt::{ReadAt, Reader};

/// Root page id of the top-level bucket `name`, read from its bucket header in the root leaf.
pub fn bucket_root<S: ReadAt>(r: &Reader<S>, name: &[u8]) -> u64 {
    let e = r
        .root()
        .iter()
        .map(|e| e.unwrap())
        .find(|e| e.key == name)
        .unwrap();
    u64::from_le_bytes(e.value[..8].try_into().unwrap())
}
