//! `lease grant | revoke | timetolive | list | keep-alive`, and the session lease that `lock`
//! and `elect` hold while they run.

use std::time::Duration;

use quorum_api::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest,
};
use serde_json::json;
use tokio_stream::StreamExt;

use crate::args::{Format, LeaseCommand};
use crate::connect::Conn;
use crate::error::{CliError, Result};
use crate::output::{self, emit, header_json, hex_id, parse_hex_id, text};

/// Longest TTL accepted (etcd's own maximum is 9,000,000,000 s; a year is plenty here).
pub const MAX_TTL_SECS: i64 = 365 * 24 * 3600;

/// `lease ...`.
pub async fn lease(conn: &Conn, fmt: Format, cmd: &LeaseCommand) -> Result<()> {
    match cmd {
        LeaseCommand::Grant { ttl } => {
            let id = grant(conn, *ttl).await?;
            match fmt {
                Format::Json => emit(&output::json_text(&json!({ "ID": id, "TTL": ttl }))),
                _ => emit(&format!(
                    "lease {} granted with TTL({ttl}s)\n",
                    hex_id(id as u64)
                )),
            }
        }
        LeaseCommand::Revoke { id } => {
            let id = parse_hex_id(id)?;
            let resp = conn
                .call(
                    "lease revoke",
                    conn.lease().lease_revoke(LeaseRevokeRequest { id }),
                )
                .await?;
            match fmt {
                Format::Json => emit(&output::json_text(
                    &json!({ "header": header_json(resp.header.as_ref()) }),
                )),
                _ => emit(&format!("lease {} revoked\n", hex_id(id as u64))),
            }
        }
        LeaseCommand::Timetolive { id, keys } => {
            let id = parse_hex_id(id)?;
            let req = LeaseTimeToLiveRequest { id, keys: *keys };
            let r = conn
                .call("lease timetolive", conn.lease().lease_time_to_live(req))
                .await?;
            if fmt == Format::Json {
                return emit(&output::json_text(&json!({
                    "header": header_json(r.header.as_ref()),
                    "id": r.id,
                    "ttl": r.ttl,
                    "granted-ttl": r.granted_ttl,
                    "keys": r.keys.iter().map(|k| output::b64(k)).collect::<Vec<_>>(),
                })));
            }
            if r.ttl == -1 {
                return emit(&format!("lease {} already expired\n", hex_id(id as u64)));
            }
            let mut s = format!(
                "lease {} granted with TTL({}s), remaining({}s)",
                hex_id(id as u64),
                r.granted_ttl,
                r.ttl
            );
            if *keys {
                let ks: Vec<String> = r.keys.iter().map(|k| text(k)).collect();
                s.push_str(&format!(", attached keys([{}])", ks.join(" ")));
            }
            s.push('\n');
            emit(&s)
        }
        LeaseCommand::List => {
            let r = conn
                .call(
                    "lease list",
                    conn.lease().lease_leases(LeaseLeasesRequest {}),
                )
                .await?;
            match fmt {
                Format::Json => emit(&output::json_text(&json!({
                    "header": header_json(r.header.as_ref()),
                    "leases": r.leases.iter().map(|l| json!({ "ID": l.id })).collect::<Vec<_>>(),
                }))),
                Format::Table => emit(&output::table(
                    &["ID"],
                    r.leases.iter().map(|l| vec![hex_id(l.id as u64)]).collect(),
                )),
                Format::Simple => {
                    let mut s = format!("found {} leases\n", r.leases.len());
                    for l in &r.leases {
                        s.push_str(&hex_id(l.id as u64));
                        s.push('\n');
                    }
                    emit(&s)
                }
            }
        }
        LeaseCommand::KeepAlive { id, once } => {
            let id = parse_hex_id(id)?;
            keep_alive_print(conn, id, *once).await
        }
    }
}

/// Grants a lease; returns its ID.
pub async fn grant(conn: &Conn, ttl: i64) -> Result<i64> {
    if !(1..=MAX_TTL_SECS).contains(&ttl) {
        return Err(CliError::usage(format!(
            "TTL must be between 1 and {MAX_TTL_SECS} seconds"
        )));
    }
    let resp = conn
        .call(
            "lease grant",
            conn.lease().lease_grant(LeaseGrantRequest { ttl, id: 0 }),
        )
        .await?;
    if !resp.error.is_empty() {
        return Err(CliError::Server {
            message: resp.error,
            hint: "",
        });
    }
    Ok(resp.id)
}

/// Revokes a lease, ignoring failure (used on the way out of `lock` and `elect`).
pub async fn revoke_quietly(conn: &Conn, id: i64) {
    let _ = conn
        .call(
            "lease revoke",
            conn.lease().lease_revoke(LeaseRevokeRequest { id }),
        )
        .await;
}

/// `lease keep-alive`: renews the lease every third of its TTL, printing each renewal.
async fn keep_alive_print(conn: &Conn, id: i64, once: bool) -> Result<()> {
    let (tx, rx) = tokio::sync::mpsc::channel::<LeaseKeepAliveRequest>(1);
    // The first request goes in before the call: a server may hold its response headers until
    // it has something to answer.
    tx.send(LeaseKeepAliveRequest { id })
        .await
        .map_err(|_| CliError::usage("keep-alive stream closed"))?;
    let mut client = conn.lease();
    let mut resps = conn
        .call(
            "lease keep-alive",
            client.lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx)),
        )
        .await?;
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) {
            tx.send(LeaseKeepAliveRequest { id })
                .await
                .map_err(|_| CliError::usage("keep-alive stream closed"))?;
        }
        let next = tokio::select! {
            r = tokio::time::timeout(conn.command_timeout, resps.next()) => r,
            _ = crate::signals::interrupted() => return Ok(()),
        };
        let r = match next {
            Err(_) => {
                return Err(CliError::Timeout {
                    what: "lease keep-alive",
                    timeout: conn.command_timeout,
                })
            }
            Ok(None) => {
                return Err(CliError::Server {
                    message: "the server closed the keep-alive stream".into(),
                    hint: "",
                })
            }
            Ok(Some(r)) => r.map_err(|s| conn.status(s))?,
        };
        if r.ttl <= 0 {
            return Err(CliError::Server {
                message: format!("lease {} expired or revoked", hex_id(id as u64)),
                hint: "; grant a new one with `quorumctl lease grant <ttl>`",
            });
        }
        emit(&format!(
            "lease {} keepalived with TTL({})\n",
            hex_id(id as u64),
            r.ttl
        ))?;
        if once {
            return Ok(());
        }
        let wait = Duration::from_millis((r.ttl as u64).saturating_mul(1000) / 3)
            .max(Duration::from_millis(500));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = crate::signals::interrupted() => return Ok(()),
        }
    }
}

/// Keeps `id` alive in the background until the returned task is aborted; the task ends by
/// itself if the lease is lost (the caller notices on its next request).
pub fn keep_alive_background(conn: &Conn, id: i64, ttl: i64) -> tokio::task::JoinHandle<()> {
    let conn = conn.clone();
    tokio::spawn(async move {
        let (tx, rx) = tokio::sync::mpsc::channel::<LeaseKeepAliveRequest>(1);
        if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
            return;
        }
        let mut client = conn.lease();
        let Ok(resp) = client
            .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
        else {
            return;
        };
        let mut resps = resp.into_inner();
        let period = Duration::from_millis((ttl.max(1) as u64) * 1000 / 3);
        loop {
            match resps.next().await {
                Some(Ok(r)) if r.ttl > 0 => {}
                _ => return,
            }
            tokio::time::sleep(period).await;
            if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                return;
            }
        }
    })
}
