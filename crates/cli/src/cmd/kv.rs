//! `get`, `put`, `del`, `txn` and `compaction`.

use std::io::{BufRead, Read, Write};

use quorum_api::etcdserverpb::{
    range_request, response_op, CompactionRequest, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, TxnResponse,
};
use serde_json::{json, Value};

use crate::args::{
    CompactionArgs, Consistency, DelArgs, Format, GetArgs, Order, PutArgs, SortBy, TxnArgs,
};
use crate::connect::Conn;
use crate::error::{CliError, Result};
use crate::output::{self, emit, header_json, kv_json, kvs_simple, kvs_table, KvStyle};
use crate::range::key_range;
use crate::txn::parse_txn;

/// Largest value or transaction text read from stdin.
pub const MAX_STDIN_BYTES: u64 = 64 * 1024 * 1024;

/// `get`.
pub async fn get(conn: &Conn, fmt: Format, a: &GetArgs) -> Result<()> {
    let (key, range_end) = key_range(&a.key, a.range_end.as_deref(), a.prefix, a.from_key);
    let sort_target = match a.sort_by {
        None | Some(SortBy::Key) => range_request::SortTarget::Key,
        Some(SortBy::Version) => range_request::SortTarget::Version,
        Some(SortBy::Create) => range_request::SortTarget::Create,
        Some(SortBy::Modify) => range_request::SortTarget::Mod,
        Some(SortBy::Value) => range_request::SortTarget::Value,
    };
    let sort_order = match (a.order, a.sort_by) {
        (Some(Order::Descend), _) => range_request::SortOrder::Descend,
        (Some(Order::Ascend), _) | (None, Some(_)) => range_request::SortOrder::Ascend,
        (None, None) => range_request::SortOrder::None,
    };
    let req = RangeRequest {
        key: key.into(),
        range_end: range_end.into(),
        limit: a.limit,
        revision: a.rev,
        sort_order: sort_order as i32,
        sort_target: sort_target as i32,
        serializable: a.consistency == Consistency::S,
        keys_only: a.keys_only,
        count_only: a.count_only,
        ..Default::default()
    };
    let resp = conn.call("get", conn.kv().range(req)).await?;
    let style = KvStyle {
        keys_only: a.keys_only,
        values_only: a.print_value_only,
    };
    emit(&render_range(fmt, &resp, style, a.count_only))
}

/// Text of a range response.
fn render_range(fmt: Format, resp: &RangeResponse, style: KvStyle, count_only: bool) -> String {
    match fmt {
        Format::Json => output::json_text(&range_json(resp)),
        Format::Table => kvs_table(&resp.kvs),
        Format::Simple if count_only => format!("{}\n", resp.count),
        Format::Simple => kvs_simple(&resp.kvs, style),
    }
}

fn range_json(resp: &RangeResponse) -> Value {
    json!({
        "header": header_json(resp.header.as_ref()),
        "kvs": resp.kvs.iter().map(kv_json).collect::<Vec<_>>(),
        "more": resp.more,
        "count": resp.count,
    })
}

/// `put`.
pub async fn put(conn: &Conn, fmt: Format, a: &PutArgs) -> Result<()> {
    if a.key.is_empty() {
        return Err(CliError::usage("put needs a non-empty key"));
    }
    let value = match &a.value {
        Some(v) => v.clone().into_bytes(),
        None => read_stdin("the value")?,
    };
    let lease = match &a.lease {
        Some(l) => output::parse_hex_id(l)?,
        None => 0,
    };
    let req = PutRequest {
        key: a.key.clone().into_bytes().into(),
        value: value.into(),
        lease,
        prev_kv: a.prev_kv,
        ignore_value: a.ignore_value,
        ignore_lease: a.ignore_lease,
    };
    let resp = conn.call("put", conn.kv().put(req)).await?;
    emit(&render_put(fmt, &resp))
}

fn render_put(fmt: Format, resp: &PutResponse) -> String {
    match fmt {
        Format::Json => output::json_text(&put_json(resp)),
        _ => {
            let mut s = String::from("OK\n");
            if let Some(p) = &resp.prev_kv {
                s.push_str(&kvs_simple(std::slice::from_ref(p), KvStyle::default()));
            }
            s
        }
    }
}

fn put_json(resp: &PutResponse) -> Value {
    let mut v = json!({ "header": header_json(resp.header.as_ref()) });
    if let Some(p) = &resp.prev_kv {
        v["prev_kv"] = kv_json(p);
    }
    v
}

/// `del`.
pub async fn del(conn: &Conn, fmt: Format, a: &DelArgs) -> Result<()> {
    let (key, range_end) = key_range(&a.key, a.range_end.as_deref(), a.prefix, a.from_key);
    if key.is_empty() {
        return Err(CliError::usage(
            "del needs a non-empty key (or --prefix / --from-key)",
        ));
    }
    let req = DeleteRangeRequest {
        key: key.into(),
        range_end: range_end.into(),
        prev_kv: a.prev_kv,
    };
    let resp = conn.call("del", conn.kv().delete_range(req)).await?;
    emit(&render_del(fmt, &resp))
}

fn render_del(fmt: Format, resp: &DeleteRangeResponse) -> String {
    match fmt {
        Format::Json => output::json_text(&del_json(resp)),
        _ => format!(
            "{}\n{}",
            resp.deleted,
            kvs_simple(&resp.prev_kvs, KvStyle::default())
        ),
    }
}

fn del_json(resp: &DeleteRangeResponse) -> Value {
    json!({
        "header": header_json(resp.header.as_ref()),
        "deleted": resp.deleted,
        "prev_kvs": resp.prev_kvs.iter().map(kv_json).collect::<Vec<_>>(),
    })
}

/// `txn`: reads the transaction from stdin (with prompts when interactive).
pub async fn txn(conn: &Conn, fmt: Format, a: &TxnArgs) -> Result<()> {
    let text = if a.interactive {
        read_txn_interactive()?
    } else {
        String::from_utf8(read_stdin("the transaction")?)
            .map_err(|_| CliError::usage("the transaction is not valid UTF-8"))?
    };
    let req = parse_txn(&text)?;
    let resp = conn.call("txn", conn.kv().txn(req)).await?;
    emit(&render_txn(fmt, &resp))
}

/// Reads the three sections with etcdctl's prompts on stderr.
fn read_txn_interactive() -> Result<String> {
    let prompts = [
        "compares:",
        "success requests (get, put, del):",
        "failure requests (get, put, del):",
    ];
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut text = String::new();
    for p in prompts {
        eprintln!("{p}");
        let _ = std::io::stderr().flush();
        let mut count = 0;
        for line in lines.by_ref() {
            let line = line.map_err(|e| CliError::io("reading the transaction", e))?;
            if line.trim().is_empty() {
                break;
            }
            count += 1;
            if count > crate::txn::MAX_SECTION_LINES {
                return Err(CliError::usage("too many lines in one txn section"));
            }
            text.push_str(&line);
            text.push('\n');
        }
        text.push('\n');
        eprintln!();
    }
    Ok(text)
}

fn render_txn(fmt: Format, resp: &TxnResponse) -> String {
    if fmt == Format::Json {
        return output::json_text(&txn_json(resp));
    }
    let mut s = String::from(if resp.succeeded {
        "SUCCESS\n"
    } else {
        "FAILURE\n"
    });
    for r in &resp.responses {
        s.push('\n');
        match &r.response {
            Some(response_op::Response::ResponseRange(rr)) => {
                s.push_str(&render_range(Format::Simple, rr, KvStyle::default(), false))
            }
            Some(response_op::Response::ResponsePut(p)) => {
                s.push_str(&render_put(Format::Simple, p))
            }
            Some(response_op::Response::ResponseDeleteRange(d)) => {
                s.push_str(&render_del(Format::Simple, d))
            }
            Some(response_op::Response::ResponseTxn(t)) => {
                s.push_str(&render_txn(Format::Simple, t))
            }
            None => {}
        }
    }
    s
}

fn txn_json(resp: &TxnResponse) -> Value {
    let responses: Vec<Value> = resp
        .responses
        .iter()
        .map(|r| match &r.response {
            Some(response_op::Response::ResponseRange(rr)) => {
                json!({ "response_range": range_json(rr) })
            }
            Some(response_op::Response::ResponsePut(p)) => json!({ "response_put": put_json(p) }),
            Some(response_op::Response::ResponseDeleteRange(d)) => {
                json!({ "response_delete_range": del_json(d) })
            }
            Some(response_op::Response::ResponseTxn(t)) => json!({ "response_txn": txn_json(t) }),
            None => json!({}),
        })
        .collect();
    json!({
        "header": header_json(resp.header.as_ref()),
        "succeeded": resp.succeeded,
        "responses": responses,
    })
}

/// `compaction`.
pub async fn compaction(conn: &Conn, fmt: Format, a: &CompactionArgs) -> Result<()> {
    if a.rev <= 0 {
        return Err(CliError::usage("compaction needs a positive revision"));
    }
    let req = CompactionRequest {
        revision: a.rev,
        physical: a.physical,
    };
    let resp = conn.call("compaction", conn.kv().compact(req)).await?;
    match fmt {
        Format::Json => emit(&output::json_text(
            &json!({ "header": header_json(resp.header.as_ref()) }),
        )),
        _ => emit(&format!("compacted revision {}\n", a.rev)),
    }
}

/// Reads all of stdin, bounded by [`MAX_STDIN_BYTES`].
fn read_stdin(what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_STDIN_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::io(format!("reading {what} from stdin"), e))?;
    if buf.len() as u64 > MAX_STDIN_BYTES {
        return Err(CliError::usage(format!(
            "{what} on stdin is larger than {MAX_STDIN_BYTES} bytes"
        )));
    }
    Ok(buf)
}
