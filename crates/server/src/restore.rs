//! Restoring a backup (`etcdctl snapshot save`, `quorumctl snapshot save`) into the store of a
//! member that bootstraps a new cluster (`--restore-snapshot`), as `etcdctl snapshot restore`
//! does for etcd: every member of the new cluster starts from the same file, so all hold the
//! same keys, revisions, leases and users, under a new cluster id and membership.
//!
//! Two kinds of file are accepted, each optionally followed by the sha256 of everything before
//! it (checked when present, by etcd's rule: the file's size is a multiple of
//! [`SNAPSHOT_ALIGN`] plus 32):
//!
//! * a bbolt database in etcd's backend layout: what the Maintenance `Snapshot` call streams
//!   (`Store::backup_export`), and what etcd's own `snapshot save` writes, so an etcd cluster
//!   migrates to Quorum with its keys, revisions, leases, users and roles
//!   (`Store::backup_import`, which checks every record);
//! * for compatibility, a backup taken from an older Quorum (its own streamed format, starting
//!   with the magic `QMVCCSN1` where a bbolt file has its meta page), zero-padded to
//!   [`SNAPSHOT_ALIGN`]; it carries its own CRC, which the import checks in any case.
//!
//! The store's consistent index is reset afterwards, since the new cluster's log starts again
//! at index 1.

use std::io::{BufReader, Read};
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tracing::info;

use crate::server::StartError;
use crate::services::maintenance::SNAPSHOT_ALIGN;

/// The first bytes of a backup in the streamed format of older Quorum builds.
const QUORUM_MAGIC: &[u8; 8] = b"QMVCCSN1";

/// Length of the sha256 the snapshot stream ends with.
const DIGEST_LEN: u64 = 32;

/// Checks `file`'s trailing sha256 if it has one: `Ok(true)` when checked, `Ok(false)` when the
/// file has none (its size says so).
pub fn verify_digest(file: &Path) -> Result<bool, StartError> {
    let fail = |what: String| StartError(format!("snapshot {}: {what}", file.display()));
    let len = std::fs::metadata(file)
        .map_err(|e| fail(format!("cannot read it: {e}")))?
        .len();
    if len % SNAPSHOT_ALIGN != DIGEST_LEN {
        return Ok(false);
    }
    let mut f =
        BufReader::new(std::fs::File::open(file).map_err(|e| fail(format!("cannot open: {e}")))?);
    let mut sha = Sha256::new();
    let mut left = len - DIGEST_LEN;
    let mut buf = vec![0u8; 1 << 16];
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        f.read_exact(&mut buf[..n])
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        sha.update(&buf[..n]);
        left -= n as u64;
    }
    let mut want = [0u8; DIGEST_LEN as usize];
    f.read_exact(&mut want)
        .map_err(|e| fail(format!("cannot read its sha256: {e}")))?;
    if sha.finalize().as_slice() != want {
        return Err(fail(
            "sha256 mismatch: the file is corrupt or truncated; take the backup again".into(),
        ));
    }
    Ok(true)
}

/// Replaces the store at `db_path` with the backup in `file` (etcd's layout, or the older
/// Quorum format) and resets its consistent index.
/// Idempotent: a start interrupted after this repeats it.
pub fn restore_store(
    db_path: &Path,
    file: &Path,
    opts: quorum_mvcc::StoreOptions,
) -> Result<(), StartError> {
    let started = Instant::now();
    let size = std::fs::metadata(file)
        .map_err(|e| StartError(format!("snapshot {}: cannot read it: {e}", file.display())))?
        .len();
    info!(
        "restoring snapshot {} ({:.1} MiB) into {}",
        file.display(),
        size as f64 / (1024.0 * 1024.0),
        db_path.display()
    );
    let checked = verify_digest(file)?;
    // The member is new (no cluster file yet): whatever an interrupted earlier start left in
    // the store is disposable, including a half-done import.
    match std::fs::remove_file(db_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(StartError(format!(
                "cannot remove the store {} to restore into it: {e}",
                db_path.display()
            )))
        }
    }
    let store = quorum_mvcc::Store::open(db_path, opts)
        .map_err(|e| StartError(format!("cannot open the store {}: {e}", db_path.display())))?;
    let f = std::fs::File::open(file)
        .map_err(|e| StartError(format!("snapshot {}: cannot open: {e}", file.display())))?;
    let mut magic = [0u8; QUORUM_MAGIC.len()];
    let legacy = std::os::unix::fs::FileExt::read_exact_at(&f, &mut magic, 0).is_ok()
        && &magic == QUORUM_MAGIC;
    let imported = if legacy {
        store.snapshot_import(BufReader::new(f))
    } else {
        let db_len = if checked { size - DIGEST_LEN } else { size };
        quorum_mvcc::bbolt::Reader::new(f, db_len)
            .map_err(|e| quorum_mvcc::MvccError::CorruptData(e.to_string()))
            .and_then(|r| store.backup_import(&r))
    };
    imported.and_then(|_| store.restart_log()).map_err(|e| {
        StartError(format!(
            "snapshot {} cannot be restored: {e} (is it a file written by `etcdctl snapshot \
             save` of etcd or Quorum?)",
            file.display()
        ))
    })?;
    let rev = store.current_revision().unwrap_or(0);
    info!(
        "restored snapshot {} in {:.1} s: revision {rev}{}",
        file.display(),
        started.elapsed().as_secs_f64(),
        if checked {
            ", sha256 verified"
        } else {
            " (no sha256 appended)"
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorum_mvcc::{PutRequest, RangeRequest, Store, StoreOptions, WriteRequest};
    use std::io::{Seek, SeekFrom, Write};

    fn store_with_key(dir: &Path) -> Store {
        let store = Store::open(dir.join("src.db"), StoreOptions::default()).unwrap();
        let put = PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        store.apply(&[(1, WriteRequest::Put(put))]).unwrap();
        store
    }

    fn restored_value(dir: &Path, file: &Path) -> Vec<u8> {
        let db = dir.join("restored.db");
        restore_store(&db, file, StoreOptions::default()).unwrap();
        let store = Store::open(&db, StoreOptions::default()).unwrap();
        assert_eq!(store.consistent_index().unwrap(), 0, "log restarts");
        let r = store
            .range(&RangeRequest {
                key: b"k".to_vec(),
                ..Default::default()
            })
            .unwrap();
        r.kvs[0].value.clone()
    }

    #[test]
    fn restores_etcd_layout_and_older_quorum_backups() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_key(dir.path());

        // etcd's layout with the sha256 trailer, as `snapshot save` writes it.
        let etcd_file = dir.path().join("etcd.db");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&etcd_file)
            .unwrap();
        let (mut f, _) = store.backup_export(f).unwrap();
        quorum_mvcc::bbolt::etcd::append_snapshot_hash(&mut f).unwrap();
        assert_eq!(restored_value(dir.path(), &etcd_file), b"v");

        // An older Quorum backup: the streamed format, zero-padded, then its sha256.
        let old_file = dir.path().join("old.snap");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&old_file)
            .unwrap();
        store.snapshot_export(&mut f).unwrap();
        let len = f.seek(SeekFrom::End(0)).unwrap();
        let pad = len.div_ceil(SNAPSHOT_ALIGN) * SNAPSHOT_ALIGN - len;
        f.write_all(&vec![0u8; pad as usize]).unwrap();
        quorum_mvcc::bbolt::etcd::append_snapshot_hash(&mut f).unwrap();
        assert_eq!(restored_value(dir.path(), &old_file), b"v");

        // Neither: refused with the question.
        let junk = dir.path().join("junk");
        std::fs::write(&junk, vec![7u8; 10_000]).unwrap();
        let db = dir.path().join("junk.db");
        let err = restore_store(&db, &junk, StoreOptions::default()).unwrap_err();
        assert!(err.0.contains("etcd or Quorum"), "{}", err.0);
    }
}
