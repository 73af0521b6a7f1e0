//! `watch`: one watch on a key or range, events printed as they come, until Ctrl-C.

use quorum_api::etcdserverpb::{watch_request, WatchCreateRequest, WatchRequest, WatchResponse};
use quorum_api::mvccpb::event::EventType;
use serde_json::json;
use tokio_stream::StreamExt;

use crate::args::{Format, WatchArgs};
use crate::connect::Conn;
use crate::error::{CliError, Result};
use crate::output::{self, emit, header_json, kv_json, text};
use crate::range::key_range;

/// `watch`.
pub async fn watch(conn: &Conn, fmt: Format, a: &WatchArgs) -> Result<()> {
    let (key, range_end) = key_range(&a.key, a.range_end.as_deref(), a.prefix, false);
    let create = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: key.into(),
                range_end: range_end.into(),
                start_revision: a.rev,
                prev_kv: a.prev_kv,
                ..Default::default()
            },
        )),
    };
    // The request stream stays open (and the watch alive) as long as the sender lives.
    let (tx, rx) = tokio::sync::mpsc::channel::<WatchRequest>(1);
    tx.send(create)
        .await
        .map_err(|_| CliError::usage("watch request stream closed"))?;
    let req_stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut client = conn.watch();
    let mut events = tokio::select! {
        r = client.watch(req_stream) => r.map_err(|s| conn.status(s))?.into_inner(),
        _ = tokio::time::sleep(conn.command_timeout) => {
            return Err(CliError::Timeout { what: "watch", timeout: conn.command_timeout })
        }
    };
    loop {
        let msg = tokio::select! {
            m = events.next() => m,
            _ = crate::signals::interrupted() => return Ok(()),
        };
        let Some(msg) = msg else {
            return Err(CliError::Server {
                message: "the server closed the watch stream".into(),
                hint: "; retry, or check `quorumctl endpoint health`",
            });
        };
        let resp = msg.map_err(|s| conn.status(s))?;
        if resp.canceled {
            let reason = if resp.compact_revision > 0 {
                format!(
                    "watch canceled: revision {} is compacted; the oldest one left is {}; use --rev {} or later",
                    a.rev, resp.compact_revision, resp.compact_revision
                )
            } else {
                format!("watch canceled by the server: {}", resp.cancel_reason)
            };
            return Err(CliError::Server {
                message: reason,
                hint: "",
            });
        }
        emit(&render(fmt, &resp))?;
    }
}

/// Text of one watch response: for each event its type, key and value (previous pair first
/// when asked for), as etcdctl prints them.
fn render(fmt: Format, resp: &WatchResponse) -> String {
    if fmt == Format::Json {
        let events: Vec<_> = resp
            .events
            .iter()
            .map(|e| {
                let mut v = json!({ "type": type_name(e.r#type) });
                if let Some(kv) = &e.kv {
                    v["kv"] = kv_json(kv);
                }
                if let Some(p) = &e.prev_kv {
                    v["prev_kv"] = kv_json(p);
                }
                v
            })
            .collect();
        if events.is_empty() {
            return String::new();
        }
        return output::json_text(&json!({
            "Header": header_json(resp.header.as_ref()),
            "Events": events,
        }));
    }
    let mut s = String::new();
    for e in &resp.events {
        s.push_str(type_name(e.r#type));
        s.push('\n');
        if let Some(p) = &e.prev_kv {
            s.push_str(&format!("{}\n{}\n", text(&p.key), text(&p.value)));
        }
        if let Some(kv) = &e.kv {
            s.push_str(&format!("{}\n{}\n", text(&kv.key), text(&kv.value)));
        }
    }
    s
}

fn type_name(t: i32) -> &'static str {
    match EventType::try_from(t) {
        Ok(EventType::Put) => "PUT",
        Ok(EventType::Delete) => "DELETE",
        Err(_) => "UNKNOWN",
    }
}
