//! The plain HTTP endpoints etcd serves next to gRPC on its client port (and on
//! `--listen-metrics-urls`): `/health`, `/version`, `/metrics`.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::config::{ETCD_API_VERSION, ETCD_CLUSTER_VERSION};
use crate::member::Member;

/// How long `/health` waits for a linearizable read barrier before answering unhealthy.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The router with the HTTP endpoints of `member`.
pub fn router(member: Member) -> Router {
    let health_member = member.clone();
    let ready_member = member.clone();
    let metrics_member = member;
    Router::new()
        .route(
            "/health",
            get(move || {
                let m = health_member.clone();
                async move { health(m).await }
            }),
        )
        // etcd 3.5's Kubernetes-style probes: alive while the process serves HTTP; ready
        // when a linearizable read goes through (the same check as /health).
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let m = ready_member.clone();
                async move { readyz(m).await }
            }),
        )
        .route("/version", get(version))
        .route(
            "/metrics",
            get(move || {
                let m = metrics_member.clone();
                async move { metrics(m) }
            }),
        )
}

/// etcd's `/health`: healthy when the member has a leader and a linearizable read goes
/// through (etcd 3.5 does a quorum read too), and no NOSPACE alarm is raised.
async fn health(member: Member) -> impl IntoResponse {
    let alarm = member.store().alarms().ok().and_then(|a| {
        a.first().map(|a| match a.alarm {
            quorum_mvcc::AlarmType::Nospace => "ALARM NOSPACE".to_string(),
            quorum_mvcc::AlarmType::Corrupt => "ALARM CORRUPT".to_string(),
            other => format!("ALARM {other:?}"),
        })
    });
    let problem = match alarm {
        Some(a) => Some(a),
        None => health_problem(&member).await,
    };
    match problem {
        None => (
            StatusCode::OK,
            [("content-type", "application/json")],
            r#"{"health":"true","reason":""}"#.to_string(),
        ),
        Some(r) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "application/json")],
            format!(r#"{{"health":"false","reason":{}}}"#, json_string(&r)),
        ),
    }
}

/// etcd's `/readyz` (3.5): `ok`, or 503 naming the failed check.
async fn readyz(member: Member) -> impl IntoResponse {
    match health_problem(&member).await {
        None => (StatusCode::OK, "ok".to_string()),
        Some(r) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("[-]linearizable_read failed: {r}\nreadyz check failed\n"),
        ),
    }
}

/// Why this member cannot serve a linearizable read now, if it cannot.
async fn health_problem(member: &Member) -> Option<String> {
    if member.status().leader == 0 {
        Some("RAFT NO LEADER".to_string())
    } else {
        match tokio::time::timeout(HEALTH_TIMEOUT, member.read_barrier()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("RAFT NO LEADER: {e}")),
            Err(_) => Some("RAFT NO LEADER: read timed out".to_string()),
        }
    }
}

async fn version() -> impl IntoResponse {
    (
        [("content-type", "application/json")],
        format!(
            r#"{{"etcdserver":"{ETCD_API_VERSION}","etcdcluster":"{ETCD_CLUSTER_VERSION}","quorum":"{}"}}"#,
            env!("CARGO_PKG_VERSION")
        ),
    )
}

fn metrics(member: Member) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        member.metrics_text(),
    )
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
