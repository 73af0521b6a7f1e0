//! The JSON gateway over an in-process store ([`LocalBackend`]): etcd's JSON forms, error
//! mapping, tokens, and the streams.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tonic::codegen::Service;

use crate::services::routes_for;
use crate::services::testing::{LocalBackend, MEMBER_ID};

const MAX_REQUEST: usize = 64 * 1024;
const WAIT: Duration = Duration::from_secs(5);

fn gateway() -> Router {
    super::router(
        routes_for(LocalBackend::new(MAX_REQUEST)),
        MAX_REQUEST,
        1024,
    )
}

async fn send(
    router: &Router,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> axum::response::Response {
    let mut req = Request::post(path);
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    let req = req.body(Body::from(body.to_string())).unwrap();
    let mut r = router.clone();
    std::future::poll_fn(|cx| Service::<Request<Body>>::poll_ready(&mut r, cx))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, Service::<Request<Body>>::call(&mut r, req))
        .await
        .expect("gateway call timed out")
        .unwrap()
}

/// A unary call: its HTTP status and JSON body.
async fn post(router: &Router, path: &str, token: Option<&str>, body: &str) -> (StatusCode, Value) {
    let resp = send(router, path, token, body).await;
    let status = resp.status();
    let bytes = tokio::time::timeout(WAIT, resp.into_body().collect())
        .await
        .expect("body timed out")
        .unwrap()
        .to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, v)
}

/// Reads the next `n` lines of a streaming response.
async fn lines(body: &mut Body, buf: &mut Vec<u8>, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            out.push(serde_json::from_slice(&line).unwrap());
            continue;
        }
        let frame = tokio::time::timeout(WAIT, body.frame())
            .await
            .expect("stream line timed out")
            .expect("stream ended early")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    out
}

#[tokio::test]
async fn put_and_range_in_etcds_json() {
    let g = gateway();
    let (st, put) = post(&g, "/v3/kv/put", None, r#"{"key":"Zm9v","value":"YmFy"}"#).await;
    assert_eq!(st, StatusCode::OK, "{put}");
    // 64-bit integers are strings; the member id is this member's.
    assert_eq!(put["header"]["revision"], json!("2"));
    assert_eq!(put["header"]["member_id"], json!(MEMBER_ID.to_string()));
    assert!(put.get("prev_kv").is_none(), "{put}");

    // camelCase input is accepted too; defaults (more = false) are omitted on output.
    let (st, r) = post(
        &g,
        "/v3/kv/range",
        None,
        r#"{"key":"Zm9v","keysOnly":false}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["count"], json!("1"));
    let kv = &r["kvs"][0];
    assert_eq!(kv["key"], json!("Zm9v"));
    assert_eq!(kv["value"], json!("YmFy"));
    assert_eq!(kv["create_revision"], json!("2"));
    assert_eq!(kv["mod_revision"], json!("2"));
    assert_eq!(kv["version"], json!("1"));
    assert!(r.get("more").is_none(), "{r}");

    // A txn with enum names and a oneof target; /v3beta/ is /v3/.
    let txn = r#"{"compare":[{"target":"VALUE","key":"Zm9v","result":"EQUAL","value":"YmFy"}],
                  "success":[{"request_put":{"key":"Zm9v","value":"YmF6","prev_kv":true}}]}"#;
    let (st, t) = post(&g, "/v3beta/kv/txn", None, txn).await;
    assert_eq!(st, StatusCode::OK, "{t}");
    assert_eq!(t["succeeded"], json!(true));
    assert_eq!(
        t["responses"][0]["response_put"]["prev_kv"]["value"],
        json!("YmFy")
    );

    // An empty body is the default request: the member list.
    let (st, m) = post(&g, "/v3/cluster/member/list", None, "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(m["members"][0]["ID"], json!(MEMBER_ID.to_string()));
}

#[tokio::test]
async fn errors_map_to_http_statuses_with_etcds_messages() {
    let g = gateway();
    let (st, e) = post(&g, "/v3/kv/compaction", None, r#"{"revision":"100"}"#).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(e["code"], json!(tonic::Code::OutOfRange as i32));
    assert_eq!(
        e["error"],
        json!("etcdserver: mvcc: required revision is a future revision")
    );
    assert_eq!(e["message"], e["error"]);

    let (st, e) = post(&g, "/v3/kv/range", None, r#"{"key":"#).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(e["code"], json!(tonic::Code::InvalidArgument as i32));

    let (st, e) = post(&g, "/v3/lease/revoke", None, r#"{"ID":"12345"}"#).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{e}");
    assert_eq!(e["error"], json!("etcdserver: requested lease not found"));
}

#[tokio::test]
async fn authorization_header_carries_the_token() {
    let g = gateway();
    let root = r#"{"name":"root","password":"pw"}"#;
    assert_eq!(
        post(&g, "/v3/auth/user/add", None, root).await.0,
        StatusCode::OK
    );
    let grant = r#"{"user":"root","role":"root"}"#;
    assert_eq!(
        post(&g, "/v3/auth/user/grant", None, grant).await.0,
        StatusCode::OK
    );
    assert_eq!(
        post(&g, "/v3/auth/enable", None, "{}").await.0,
        StatusCode::OK
    );

    let (st, e) = post(&g, "/v3/kv/put", None, r#"{"key":"YQ==","value":"Yg=="}"#).await;
    assert_ne!(st, StatusCode::OK, "{e}");
    assert_eq!(e["error"], json!("etcdserver: user name is empty"));

    let (st, a) = post(&g, "/v3/auth/authenticate", None, root).await;
    assert_eq!(st, StatusCode::OK, "{a}");
    let token = a["token"].as_str().unwrap().to_string();
    let (st, p) = post(
        &g,
        "/v3/kv/put",
        Some(&token),
        r#"{"key":"YQ==","value":"Yg=="}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{p}");

    let (st, e) = post(&g, "/v3/kv/range", Some("bogus"), r#"{"key":"YQ=="}"#).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{e}");
    assert_eq!(e["error"], json!("etcdserver: invalid auth token"));
}

#[tokio::test]
async fn watch_streams_result_lines_after_the_body_ends() {
    let g = gateway();
    post(&g, "/v3/kv/put", None, r#"{"key":"Zm9v","value":"MQ=="}"#).await;
    let resp = send(
        &g,
        "/v3/watch",
        None,
        r#"{"create_request":{"key":"Zm9v","start_revision":"2"}}"#,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let first = lines(&mut body, &mut buf, 1).await;
    let created = &first[0]["result"];
    assert_eq!(created["created"], json!(true), "{created}");
    let mut events: Vec<Value> = Vec::new();
    if let Some(e) = created.get("events") {
        events.extend(e.as_array().unwrap().iter().cloned());
    }
    if events.is_empty() {
        let l = lines(&mut body, &mut buf, 1).await;
        events.extend(l[0]["result"]["events"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(events[0]["kv"]["value"], json!("MQ=="));
    // The request body has ended; the watch still delivers new events (etcd keeps it open).
    post(&g, "/v3/kv/put", None, r#"{"key":"Zm9v","value":"Mg=="}"#).await;
    let next = lines(&mut body, &mut buf, 1).await;
    let ev = &next[0]["result"]["events"][0];
    assert_eq!(ev["kv"]["value"], json!("Mg=="), "{next:?}");
    assert_eq!(ev["kv"]["version"], json!("2"));
}

#[tokio::test]
async fn several_streamed_requests_in_one_body() {
    let g = gateway();
    let two = r#"{"create_request":{"key":"YQ==","watch_id":"7"}}
                 {"create_request":{"key":"Yg==","watch_id":"8"}}"#;
    let resp = send(&g, "/v3/watch", None, two).await;
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let created = lines(&mut body, &mut buf, 2).await;
    let mut ids: Vec<_> = created
        .iter()
        .map(|l| l["result"]["watch_id"].clone())
        .collect();
    ids.sort_by_key(|v| v.to_string());
    assert_eq!(ids, vec![json!("7"), json!("8")]);
}

#[tokio::test]
async fn lease_keepalive_answers_and_ends_with_its_request_body() {
    let g = gateway();
    let (st, grant) = post(&g, "/v3/lease/grant", None, r#"{"TTL":"30"}"#).await;
    assert_eq!(st, StatusCode::OK, "{grant}");
    let id = grant["ID"].as_str().unwrap().to_string();
    let resp = send(
        &g,
        "/v3/lease/keepalive",
        None,
        &format!(r#"{{"ID":"{id}"}}"#),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = tokio::time::timeout(WAIT, resp.into_body().collect())
        .await
        .expect("keepalive stream did not end")
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["result"]["ID"], json!(id));
    assert_eq!(lines[0]["result"]["TTL"], json!("30"));
}

#[tokio::test]
async fn a_stream_failing_at_once_answers_the_status_and_an_error_line() {
    let g = gateway();
    let root = r#"{"name":"root","password":"pw"}"#;
    post(&g, "/v3/auth/user/add", None, root).await;
    post(
        &g,
        "/v3/auth/user/grant",
        None,
        r#"{"user":"root","role":"root"}"#,
    )
    .await;
    assert_eq!(
        post(&g, "/v3/auth/enable", None, "").await.0,
        StatusCode::OK
    );
    let (st, line) = post(&g, "/v3/election/observe", None, r#"{"name":"ZQ=="}"#).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{line}");
    let err = &line["error"];
    assert_eq!(
        err["message"],
        json!("etcdserver: user name is empty"),
        "{line}"
    );
    assert_eq!(err["http_code"], json!(400));
    assert_eq!(err["grpc_code"], json!(tonic::Code::InvalidArgument as i32));
}
