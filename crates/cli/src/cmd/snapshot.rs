//! `snapshot save`: streams the backend of the first endpoint into a file, with a progress line.

use std::io::{IsTerminal, Write};
use std::path::Path;

use quorum_api::etcdserverpb::SnapshotRequest;
use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt;

use crate::connect::Conn;
use crate::error::{CliError, Result};
use crate::output::{emit, human_bytes};

/// Largest snapshot accepted (etcd's largest supported backend quota is 8 GiB).
pub const MAX_SNAPSHOT_BYTES: u64 = 16 * 1024 * 1024 * 1024;

/// `snapshot save <file>`: writes to `<file>.part`, then renames, so that a failed transfer
/// never leaves a truncated snapshot under the final name.
pub async fn save(conn: &Conn, file: &Path) -> Result<()> {
    let part = file.with_extension(match file.extension() {
        Some(e) => format!("{}.part", e.to_string_lossy()),
        None => "part".to_string(),
    });
    let r = save_to(conn, &part).await;
    match r {
        Ok(total) => {
            tokio::fs::rename(&part, file).await.map_err(|e| {
                CliError::io(
                    format!("renaming {} to {}", part.display(), file.display()),
                    e,
                )
            })?;
            emit(&format!(
                "Snapshot saved at {} ({})\n",
                file.display(),
                human_bytes(i64::try_from(total).unwrap_or(i64::MAX))
            ))
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            Err(e)
        }
    }
}

async fn save_to(conn: &Conn, part: &Path) -> Result<u64> {
    let mut f = tokio::fs::File::create(part)
        .await
        .map_err(|e| CliError::io(format!("creating {}", part.display()), e))?;
    let mut client = conn.maintenance();
    let mut stream = conn
        .call("snapshot", client.snapshot(SnapshotRequest {}))
        .await?;
    let tty = std::io::stderr().is_terminal();
    let mut received: u64 = 0;
    let mut last_shown: u64 = 0;
    loop {
        let next = tokio::select! {
            n = tokio::time::timeout(conn.command_timeout, stream.next()) => n,
            _ = crate::signals::interrupted() => return Err(CliError::usage("snapshot interrupted")),
        };
        let chunk = match next {
            Err(_) => {
                return Err(CliError::Timeout {
                    what: "snapshot chunk",
                    timeout: conn.command_timeout,
                })
            }
            Ok(None) => break,
            Ok(Some(c)) => c.map_err(|s| conn.status(s))?,
        };
        received += chunk.blob.len() as u64;
        if received > MAX_SNAPSHOT_BYTES {
            return Err(CliError::usage(format!(
                "snapshot larger than {MAX_SNAPSHOT_BYTES} bytes; refusing"
            )));
        }
        f.write_all(&chunk.blob)
            .await
            .map_err(|e| CliError::io(format!("writing {}", part.display()), e))?;
        let total = received + chunk.remaining_bytes;
        // A line per MiB at most, rewritten in place on a terminal.
        if received - last_shown >= 1 << 20 || (chunk.remaining_bytes == 0 && received > last_shown)
        {
            last_shown = received;
            let pct = (received * 100).checked_div(total).unwrap_or(100);
            let line = format!(
                "received {} of {} ({pct}%)",
                human_bytes(received as i64),
                human_bytes(total as i64)
            );
            let mut err = std::io::stderr().lock();
            let _ = if tty {
                write!(err, "\r{line}")
            } else {
                writeln!(err, "{line}")
            };
        }
    }
    if tty {
        eprintln!();
    }
    f.sync_all()
        .await
        .map_err(|e| CliError::io(format!("syncing {}", part.display()), e))?;
    if received == 0 {
        return Err(CliError::Server {
            message: "the server sent an empty snapshot".into(),
            hint: "",
        });
    }
    Ok(received)
}
