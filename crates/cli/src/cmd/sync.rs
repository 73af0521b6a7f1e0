//! `lock` and `elect`: the v3lock and v3election services, held with a session lease that is
//! kept alive while the command runs and revoked when it ends.

use quorum_api::etcdserverpb::ResponseHeader;
use quorum_api::v3electionpb::{CampaignRequest, LeaderKey, LeaderRequest, ResignRequest};
use quorum_api::v3lockpb::{LockRequest, UnlockRequest};
use serde_json::json;
use tokio_stream::StreamExt;

use crate::args::{ElectArgs, Format, LockArgs};
use crate::cmd::lease::{grant, keep_alive_background, revoke_quietly};
use crate::connect::Conn;
use crate::error::{CliError, Result};
use crate::output::{self, emit, header_json, text};

/// `lock`.
pub async fn lock(conn: &Conn, fmt: Format, a: &LockArgs) -> Result<()> {
    if a.name.is_empty() {
        return Err(CliError::usage("lock needs a non-empty name"));
    }
    let lease = grant(conn, a.ttl).await?;
    let keeper = keep_alive_background(conn, lease, a.ttl);
    let result = lock_held(conn, fmt, a, lease).await;
    keeper.abort();
    revoke_quietly(conn, lease).await;
    result
}

async fn lock_held(conn: &Conn, fmt: Format, a: &LockArgs, lease: i64) -> Result<()> {
    let req = LockRequest {
        name: a.name.clone().into_bytes().into(),
        lease,
    };
    // Waiting for a lock has no time limit; Ctrl-C gives up.
    let mut client = conn.lock();
    let resp = tokio::select! {
        r = client.lock(req) => r.map_err(|s| conn.status(s))?.into_inner(),
        _ = crate::signals::interrupted() => return Ok(()),
    };
    let key = resp.key.clone();
    let rev = resp.header.as_ref().map(|h| h.revision).unwrap_or_default();
    let outcome = if a.command.is_empty() {
        let shown = match fmt {
            Format::Json => output::json_text(&json!({
                "header": header_json(resp.header.as_ref()),
                "key": output::b64(&key),
            })),
            _ => format!("{}\n", text(&key)),
        };
        match emit(&shown) {
            Ok(()) => {
                crate::signals::interrupted().await;
                Ok(())
            }
            Err(e) => Err(e),
        }
    } else {
        run_locked(&a.command, &key, rev).await
    };
    let unlock = conn
        .call("unlock", conn.lock().unlock(UnlockRequest { key }))
        .await;
    outcome.and(unlock.map(|_| ()))
}

/// Runs the user's command while the lock is held, as etcdctl does: ETCD_LOCK_KEY and
/// ETCD_LOCK_REV (the lock key's revision, a fencing token) are set in its environment.
async fn run_locked(command: &[String], key: &[u8], rev: i64) -> Result<()> {
    let Some((prog, args)) = command.split_first() else {
        return Ok(());
    };
    let status = tokio::process::Command::new(prog)
        .args(args)
        .env("ETCD_LOCK_KEY", text(key))
        .env("ETCD_LOCK_REV", rev.to_string())
        .status()
        .await
        .map_err(|e| CliError::io(format!("running {prog:?}"), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "{prog:?} exited with {status} (the lock was released)"
        )))
    }
}

/// `elect`.
pub async fn elect(conn: &Conn, fmt: Format, a: &ElectArgs) -> Result<()> {
    if a.name.is_empty() {
        return Err(CliError::usage("elect needs a non-empty election name"));
    }
    if a.listen {
        return observe(conn, fmt, a).await;
    }
    let Some(proposal) = &a.proposal else {
        return Err(CliError::usage(
            "elect needs a proposal to campaign with, or -l to observe",
        ));
    };
    let lease = grant(conn, a.ttl).await?;
    let keeper = keep_alive_background(conn, lease, a.ttl);
    let result = campaign(conn, fmt, a, proposal, lease).await;
    keeper.abort();
    revoke_quietly(conn, lease).await;
    result
}

async fn campaign(
    conn: &Conn,
    fmt: Format,
    a: &ElectArgs,
    proposal: &str,
    lease: i64,
) -> Result<()> {
    let req = CampaignRequest {
        name: a.name.clone().into_bytes().into(),
        lease,
        value: proposal.as_bytes().to_vec().into(),
    };
    let mut client = conn.election();
    let resp = tokio::select! {
        r = client.campaign(req) => r.map_err(|s| conn.status(s))?.into_inner(),
        _ = crate::signals::interrupted() => return Ok(()),
    };
    let leader: LeaderKey = resp.leader.unwrap_or_default();
    let shown = match fmt {
        Format::Json => output::json_text(&json!({
            "header": header_json(resp.header.as_ref()),
            "name": output::b64(&leader.name),
            "key": output::b64(&leader.key),
            "rev": leader.rev,
            "lease": leader.lease,
        })),
        _ => format!("{}\n{}\n", text(&leader.key), proposal),
    };
    let waited = match emit(&shown) {
        Ok(()) => {
            crate::signals::interrupted().await;
            Ok(())
        }
        Err(e) => Err(e),
    };
    let resign = conn
        .call(
            "resign",
            conn.election().resign(ResignRequest {
                leader: Some(leader),
            }),
        )
        .await;
    waited.and(resign.map(|_| ()))
}

/// `elect -l`: prints each new leader's key and value until Ctrl-C.
async fn observe(conn: &Conn, fmt: Format, a: &ElectArgs) -> Result<()> {
    let req = LeaderRequest {
        name: a.name.clone().into_bytes().into(),
    };
    let mut client = conn.election();
    let mut stream = tokio::select! {
        r = client.observe(req) => r.map_err(|s| conn.status(s))?.into_inner(),
        _ = crate::signals::interrupted() => return Ok(()),
    };
    loop {
        let next = tokio::select! {
            n = stream.next() => n,
            _ = crate::signals::interrupted() => return Ok(()),
        };
        let Some(item) = next else {
            return Err(CliError::Server {
                message: "the server closed the observe stream".into(),
                hint: "; retry",
            });
        };
        let r = item.map_err(|s| conn.status(s))?;
        let Some(kv) = r.kv else { continue };
        let shown = match fmt {
            Format::Json => output::json_text(&json!({
                "header": header_json(r.header.as_ref().or(Some(&ResponseHeader::default()))),
                "kv": output::kv_json(&kv),
            })),
            _ => format!("{}\n{}\n", text(&kv.key), text(&kv.value)),
        };
        emit(&shown)?;
    }
}
