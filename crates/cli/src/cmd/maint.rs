//! `member list`, `endpoint status | health`, `defrag`, `alarm list | disarm`.

use std::time::Instant;

use quorum_api::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmType, DefragmentRequest, MemberListRequest,
    RangeRequest, StatusRequest,
};
use serde_json::json;

use crate::args::{AlarmCommand, EndpointCommand, Format, Global};
use crate::connect::{check_endpoint_count, Conn};
use crate::error::{CliError, Result};
use crate::output::{self, emit, header_json, hex_id, human_bytes};

/// `member list`.
pub async fn member_list(conn: &Conn, fmt: Format) -> Result<()> {
    let r = conn
        .call(
            "member list",
            conn.cluster().member_list(MemberListRequest {
                linearizable: false,
            }),
        )
        .await?;
    let rows: Vec<Vec<String>> = r
        .members
        .iter()
        .map(|m| {
            vec![
                hex_id(m.id),
                if m.name.is_empty() {
                    "unstarted"
                } else {
                    "started"
                }
                .to_string(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect();
    match fmt {
        Format::Json => emit(&output::json_text(&json!({
            "header": header_json(r.header.as_ref()),
            "members": r.members.iter().map(|m| json!({
                "ID": m.id,
                "name": m.name,
                "peerURLs": m.peer_ur_ls,
                "clientURLs": m.client_ur_ls,
                "isLearner": m.is_learner,
            })).collect::<Vec<_>>(),
        }))),
        Format::Table => emit(&output::table(
            &[
                "ID",
                "STATUS",
                "NAME",
                "PEER ADDRS",
                "CLIENT ADDRS",
                "IS LEARNER",
            ],
            rows,
        )),
        Format::Simple => emit(
            &rows
                .iter()
                .map(|r| format!("{}\n", r.join(", ")))
                .collect::<String>(),
        ),
    }
}

/// `endpoint status` and `endpoint health`: each endpoint on its own; the command fails if
/// any endpoint does.
pub async fn endpoint(global: &Global, fmt: Format, cmd: &EndpointCommand) -> Result<()> {
    check_endpoint_count(&global.endpoints)?;
    match cmd {
        EndpointCommand::Status => status(global, fmt).await,
        EndpointCommand::Health => health(global, fmt).await,
    }
}

async fn status(global: &Global, fmt: Format) -> Result<()> {
    let mut rows = Vec::new();
    let mut jsons = Vec::new();
    let mut failed = None;
    for ep in &global.endpoints {
        let r = match Conn::to(ep, global).await {
            Ok(conn) => {
                conn.call(
                    "endpoint status",
                    conn.maintenance().status(StatusRequest {}),
                )
                .await
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(s) => {
                let id = s.header.as_ref().map(|h| h.member_id).unwrap_or_default();
                rows.push(vec![
                    ep.clone(),
                    hex_id(id),
                    s.version.clone(),
                    human_bytes(s.db_size),
                    (s.leader == id && id != 0).to_string(),
                    s.is_learner.to_string(),
                    s.raft_term.to_string(),
                    s.raft_index.to_string(),
                    s.raft_applied_index.to_string(),
                    s.errors.join(", "),
                ]);
                jsons.push(output::status_json(ep, &s));
            }
            Err(e) => {
                eprintln!("failed to get the status of endpoint {ep}: {e}");
                failed = Some(e);
            }
        }
    }
    match fmt {
        Format::Json => emit(&output::json_text(&json!(jsons)))?,
        Format::Table => emit(&output::table(
            &[
                "ENDPOINT",
                "ID",
                "VERSION",
                "DB SIZE",
                "IS LEADER",
                "IS LEARNER",
                "RAFT TERM",
                "RAFT INDEX",
                "RAFT APPLIED INDEX",
                "ERRORS",
            ],
            rows,
        ))?,
        Format::Simple => emit(
            &rows
                .iter()
                .map(|r| format!("{}\n", r.join(", ")))
                .collect::<String>(),
        )?,
    }
    failed.map_or(Ok(()), Err)
}

async fn health(global: &Global, fmt: Format) -> Result<()> {
    let mut lines = String::new();
    let mut jsons = Vec::new();
    let mut rows = Vec::new();
    let mut unhealthy = 0;
    for ep in &global.endpoints {
        let start = Instant::now();
        // A linearizable read goes through the leader: it proves the member is part of a
        // working quorum, as etcdctl's health check does.
        let r = match Conn::to(ep, global).await {
            Ok(conn) => conn
                .call(
                    "endpoint health",
                    conn.kv().range(RangeRequest {
                        key: b"health".to_vec().into(),
                        ..Default::default()
                    }),
                )
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        let took = start.elapsed();
        match &r {
            Ok(()) => lines.push_str(&format!(
                "{ep} is healthy: successfully committed proposal: took = {took:?}\n"
            )),
            Err(e) => {
                unhealthy += 1;
                eprintln!("{ep} is unhealthy: failed to commit proposal: {e}");
            }
        }
        jsons.push(json!({
            "endpoint": ep,
            "health": r.is_ok(),
            "took": format!("{took:?}"),
            "error": r.as_ref().err().map(|e| e.to_string()),
        }));
        rows.push(vec![
            ep.clone(),
            r.is_ok().to_string(),
            format!("{took:?}"),
            r.as_ref().err().map(|e| e.to_string()).unwrap_or_default(),
        ]);
    }
    match fmt {
        Format::Json => emit(&output::json_text(&json!(jsons)))?,
        Format::Table => emit(&output::table(
            &["ENDPOINT", "HEALTH", "TOOK", "ERROR"],
            rows,
        ))?,
        Format::Simple => emit(&lines)?,
    }
    if unhealthy > 0 {
        return Err(CliError::Server {
            message: format!(
                "{unhealthy} of {} endpoints unhealthy",
                global.endpoints.len()
            ),
            hint: "; check that the members are running and that a majority can reach each other",
        });
    }
    Ok(())
}

/// `defrag`: every endpoint, one after the other.
pub async fn defrag(global: &Global) -> Result<()> {
    check_endpoint_count(&global.endpoints)?;
    let mut failed = None;
    for ep in &global.endpoints {
        let r = match Conn::to(ep, global).await {
            Ok(conn) => conn
                .call(
                    "defrag",
                    conn.maintenance().defragment(DefragmentRequest {}),
                )
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => emit(&format!("Finished defragmenting etcd member[{ep}]\n"))?,
            Err(e) => {
                eprintln!("Failed to defragment etcd member[{ep}] ({e})");
                failed = Some(e);
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

/// `alarm list` and `alarm disarm`.
pub async fn alarm(conn: &Conn, fmt: Format, cmd: &AlarmCommand) -> Result<()> {
    let list = conn
        .call(
            "alarm list",
            conn.maintenance().alarm(AlarmRequest {
                action: AlarmAction::Get as i32,
                member_id: 0,
                alarm: AlarmType::None as i32,
            }),
        )
        .await?;
    let mut alarms = list.alarms.clone();
    if matches!(cmd, AlarmCommand::Disarm) {
        alarms.clear();
        for a in &list.alarms {
            let r = conn
                .call(
                    "alarm disarm",
                    conn.maintenance().alarm(AlarmRequest {
                        action: AlarmAction::Deactivate as i32,
                        member_id: a.member_id,
                        alarm: a.alarm,
                    }),
                )
                .await?;
            alarms.extend(r.alarms);
        }
    }
    let name = |t: i32| {
        AlarmType::try_from(t)
            .map(|a| a.as_str_name())
            .unwrap_or("UNKNOWN")
    };
    match fmt {
        Format::Json => emit(&output::json_text(&json!({
            "header": header_json(list.header.as_ref()),
            "alarms": alarms.iter().map(|a| json!({ "memberID": a.member_id, "alarm": name(a.alarm) })).collect::<Vec<_>>(),
        }))),
        _ => emit(
            &alarms
                .iter()
                .map(|a| format!("memberID:{} alarm:{} \n", a.member_id, name(a.alarm)))
                .collect::<String>(),
        ),
    }
}
