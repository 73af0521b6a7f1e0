//! Restoring a backup (`etcdctl snapshot save`, `quorumctl snapshot save`) into the store of a
//! member that bootstraps a new cluster (`--restore-snapshot`), as `etcdctl snapshot restore`
//! does for etcd: every member of the new cluster starts from the same file, so all hold the
//! same keys, revisions, leases and users, under a new cluster id and membership.
//!
//! The file is the store image the Maintenance `Snapshot` call streams, zero-padded to
//! [`SNAPSHOT_ALIGN`] bytes and followed by the sha256 of everything before it. The sha256 is
//! checked when present (etcd's rule: the file's size is a multiple of the alignment plus 32);
//! the image carries its own CRC, which the import checks in any case. The store's consistent
//! index is reset afterwards, since the new cluster's log starts again at index 1.

use std::io::{BufReader, Read};
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tracing::info;

use crate::server::StartError;
use crate::services::maintenance::SNAPSHOT_ALIGN;

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

/// Replaces the store at `db_path` with the image in `file` and resets its consistent index.
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
    store
        .snapshot_import(BufReader::new(f))
        .and_then(|_| store.restart_log())
        .map_err(|e| {
            StartError(format!(
                "snapshot {} cannot be restored: {e} (is it a file written by `snapshot save` \
                 of Quorum?)",
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
            " (no sha256 appended; the image's CRC was verified)"
        }
    );
    Ok(())
}
