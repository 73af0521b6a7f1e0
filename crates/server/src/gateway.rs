//! etcd's gRPC gateway: the v3 API as JSON over HTTP on the client port
//! (`POST /v3/kv/put {"key": "Zm9v", "value": "YmFy"}`), for clients that speak HTTP only —
//! `curl`, Patroni's etcd3 driver, OpenStack's etcd3gw.
//!
//! Each route turns its JSON body into the protobuf request and calls the member's own gRPC
//! services in process (through the same [`Routes`] the gRPC clients reach, so
//! authentication, permissions, learner and `hasleader` checks and size limits apply alike),
//! then answers with the response in JSON. The JSON is etcd's (grpc-gateway v1 with proto
//! field names): 64-bit integers as strings, bytes in base64, enums by name, fields at their
//! default value omitted; unknown request fields are ignored.
//!
//! * Unary calls answer `200` with the response, or the gRPC error mapped to an HTTP status
//!   with the body `{"error": msg, "code": grpc_code, "message": msg}`.
//! * Streams (`/v3/watch`, `/v3/lease/keepalive`, `/v3/election/observe`,
//!   `/v3/maintenance/snapshot`) answer `200` and then one line per message,
//!   `{"result": {...}}`, ending with `{"error": {...}}` if the stream fails. The request body of
//!   the two-way streams may hold several JSON requests one after the other; when it ends, the
//!   stream stays open for responses (as etcd's watch does) until the client disconnects.
//! * `Authorization: <token>` carries the token from `/v3/auth/authenticate`; other
//!   `Grpc-Metadata-<name>` headers become gRPC metadata `<name>` (e.g. `hasleader`).
//! * `/v3beta/...` is accepted for `/v3/...`, as etcd 3.4 and 3.5 do.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Router;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::StreamExt;
use http_body_util::BodyExt;
use quorum_api::etcdserverpb as pb;
use quorum_api::{v3electionpb as epb, v3lockpb as lpb};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::codegen::Service;
use tonic::service::Routes;
use tonic::{Code, Status};
use tracing::debug;

use crate::services::authz::TOKEN_METADATA;

/// Length of a gRPC message frame's prefix: a compression flag and a big-endian length.
const FRAME_PREFIX: usize = 5;
/// Prefix of the headers passed on as gRPC metadata (grpc-gateway's convention).
const METADATA_PREFIX: &str = "grpc-metadata-";

/// A protobuf request the gateway can read from JSON.
pub trait GatewayRequest: prost::Message + Default + DeserializeOwned + Send + 'static {}
impl<T: prost::Message + Default + DeserializeOwned + Send + 'static> GatewayRequest for T {}
/// A protobuf response the gateway can write as JSON.
pub trait GatewayResponse: prost::Message + Default + Serialize + Send + 'static {}
impl<T: prost::Message + Default + Serialize + Send + 'static> GatewayResponse for T {}

/// The route table: `kind "route" => "package.Service/Method": Request, Response;`.
macro_rules! routes {
    ($g:expr, $limit:expr; $($kind:ident $route:literal => $method:literal: $req:ty, $resp:ty;)*) => {
        vec![$(($route, $kind::<$req, $resp>($g, concat!("/", $method), $limit))),*]
    };
}

/// The gateway's routes over `grpc`, the member's gRPC services. Request bodies are bounded
/// to twice `max_request_bytes` (base64 makes bytes a third larger) plus `overhead`.
pub fn router(grpc: Routes, max_request_bytes: usize, overhead: usize) -> Router {
    let g = &grpc;
    let limit = max_request_bytes.saturating_mul(2).saturating_add(overhead);
    // route under /v3/ => gRPC method: request, response.
    let routes = routes! { g, limit;
        unary "kv/range" => "etcdserverpb.KV/Range": pb::RangeRequest, pb::RangeResponse;
        unary "kv/put" => "etcdserverpb.KV/Put": pb::PutRequest, pb::PutResponse;
        unary "kv/deleterange" => "etcdserverpb.KV/DeleteRange": pb::DeleteRangeRequest, pb::DeleteRangeResponse;
        unary "kv/txn" => "etcdserverpb.KV/Txn": pb::TxnRequest, pb::TxnResponse;
        unary "kv/compaction" => "etcdserverpb.KV/Compact": pb::CompactionRequest, pb::CompactionResponse;
        two_way "watch" => "etcdserverpb.Watch/Watch": pb::WatchRequest, pb::WatchResponse;
        unary "lease/grant" => "etcdserverpb.Lease/LeaseGrant": pb::LeaseGrantRequest, pb::LeaseGrantResponse;
        unary "lease/revoke" => "etcdserverpb.Lease/LeaseRevoke": pb::LeaseRevokeRequest, pb::LeaseRevokeResponse;
        unary "kv/lease/revoke" => "etcdserverpb.Lease/LeaseRevoke": pb::LeaseRevokeRequest, pb::LeaseRevokeResponse;
        two_way "lease/keepalive" => "etcdserverpb.Lease/LeaseKeepAlive": pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse;
        unary "lease/timetolive" => "etcdserverpb.Lease/LeaseTimeToLive": pb::LeaseTimeToLiveRequest, pb::LeaseTimeToLiveResponse;
        unary "kv/lease/timetolive" => "etcdserverpb.Lease/LeaseTimeToLive": pb::LeaseTimeToLiveRequest, pb::LeaseTimeToLiveResponse;
        unary "lease/leases" => "etcdserverpb.Lease/LeaseLeases": pb::LeaseLeasesRequest, pb::LeaseLeasesResponse;
        unary "kv/lease/leases" => "etcdserverpb.Lease/LeaseLeases": pb::LeaseLeasesRequest, pb::LeaseLeasesResponse;
        unary "cluster/member/add" => "etcdserverpb.Cluster/MemberAdd": pb::MemberAddRequest, pb::MemberAddResponse;
        unary "cluster/member/remove" => "etcdserverpb.Cluster/MemberRemove": pb::MemberRemoveRequest, pb::MemberRemoveResponse;
        unary "cluster/member/update" => "etcdserverpb.Cluster/MemberUpdate": pb::MemberUpdateRequest, pb::MemberUpdateResponse;
        unary "cluster/member/list" => "etcdserverpb.Cluster/MemberList": pb::MemberListRequest, pb::MemberListResponse;
        unary "cluster/member/promote" => "etcdserverpb.Cluster/MemberPromote": pb::MemberPromoteRequest, pb::MemberPromoteResponse;
        unary "maintenance/alarm" => "etcdserverpb.Maintenance/Alarm": pb::AlarmRequest, pb::AlarmResponse;
        unary "maintenance/status" => "etcdserverpb.Maintenance/Status": pb::StatusRequest, pb::StatusResponse;
        unary "maintenance/defragment" => "etcdserverpb.Maintenance/Defragment": pb::DefragmentRequest, pb::DefragmentResponse;
        unary "maintenance/hash" => "etcdserverpb.Maintenance/Hash": pb::HashRequest, pb::HashResponse;
        unary "maintenance/hashkv" => "etcdserverpb.Maintenance/HashKV": pb::HashKvRequest, pb::HashKvResponse;
        one_way "maintenance/snapshot" => "etcdserverpb.Maintenance/Snapshot": pb::SnapshotRequest, pb::SnapshotResponse;
        unary "maintenance/transfer-leadership" => "etcdserverpb.Maintenance/MoveLeader": pb::MoveLeaderRequest, pb::MoveLeaderResponse;
        unary "maintenance/downgrade" => "etcdserverpb.Maintenance/Downgrade": pb::DowngradeRequest, pb::DowngradeResponse;
        unary "auth/enable" => "etcdserverpb.Auth/AuthEnable": pb::AuthEnableRequest, pb::AuthEnableResponse;
        unary "auth/disable" => "etcdserverpb.Auth/AuthDisable": pb::AuthDisableRequest, pb::AuthDisableResponse;
        unary "auth/status" => "etcdserverpb.Auth/AuthStatus": pb::AuthStatusRequest, pb::AuthStatusResponse;
        unary "auth/authenticate" => "etcdserverpb.Auth/Authenticate": pb::AuthenticateRequest, pb::AuthenticateResponse;
        unary "auth/user/add" => "etcdserverpb.Auth/UserAdd": pb::AuthUserAddRequest, pb::AuthUserAddResponse;
        unary "auth/user/get" => "etcdserverpb.Auth/UserGet": pb::AuthUserGetRequest, pb::AuthUserGetResponse;
        unary "auth/user/list" => "etcdserverpb.Auth/UserList": pb::AuthUserListRequest, pb::AuthUserListResponse;
        unary "auth/user/delete" => "etcdserverpb.Auth/UserDelete": pb::AuthUserDeleteRequest, pb::AuthUserDeleteResponse;
        unary "auth/user/changepw" => "etcdserverpb.Auth/UserChangePassword": pb::AuthUserChangePasswordRequest, pb::AuthUserChangePasswordResponse;
        unary "auth/user/grant" => "etcdserverpb.Auth/UserGrantRole": pb::AuthUserGrantRoleRequest, pb::AuthUserGrantRoleResponse;
        unary "auth/user/revoke" => "etcdserverpb.Auth/UserRevokeRole": pb::AuthUserRevokeRoleRequest, pb::AuthUserRevokeRoleResponse;
        unary "auth/role/add" => "etcdserverpb.Auth/RoleAdd": pb::AuthRoleAddRequest, pb::AuthRoleAddResponse;
        unary "auth/role/get" => "etcdserverpb.Auth/RoleGet": pb::AuthRoleGetRequest, pb::AuthRoleGetResponse;
        unary "auth/role/list" => "etcdserverpb.Auth/RoleList": pb::AuthRoleListRequest, pb::AuthRoleListResponse;
        unary "auth/role/delete" => "etcdserverpb.Auth/RoleDelete": pb::AuthRoleDeleteRequest, pb::AuthRoleDeleteResponse;
        unary "auth/role/grant" => "etcdserverpb.Auth/RoleGrantPermission": pb::AuthRoleGrantPermissionRequest, pb::AuthRoleGrantPermissionResponse;
        unary "auth/role/revoke" => "etcdserverpb.Auth/RoleRevokePermission": pb::AuthRoleRevokePermissionRequest, pb::AuthRoleRevokePermissionResponse;
        unary "lock/lock" => "v3lockpb.Lock/Lock": lpb::LockRequest, lpb::LockResponse;
        unary "lock/unlock" => "v3lockpb.Lock/Unlock": lpb::UnlockRequest, lpb::UnlockResponse;
        unary "election/campaign" => "v3electionpb.Election/Campaign": epb::CampaignRequest, epb::CampaignResponse;
        unary "election/proclaim" => "v3electionpb.Election/Proclaim": epb::ProclaimRequest, epb::ProclaimResponse;
        unary "election/leader" => "v3electionpb.Election/Leader": epb::LeaderRequest, epb::LeaderResponse;
        one_way "election/observe" => "v3electionpb.Election/Observe": epb::LeaderRequest, epb::LeaderResponse;
        unary "election/resign" => "v3electionpb.Election/Resign": epb::ResignRequest, epb::ResignResponse;
    };
    let mut router = Router::new();
    for (path, route) in routes {
        router = router
            .route(&format!("/v3/{path}"), route.clone())
            .route(&format!("/v3beta/{path}"), route);
    }
    router.layer(DefaultBodyLimit::max(limit))
}

/// A unary call: one JSON request, one JSON response.
fn unary<Req: GatewayRequest, Resp: GatewayResponse>(
    grpc: &Routes,
    path: &'static str,
    _limit: usize,
) -> MethodRouter {
    let grpc = grpc.clone();
    post(move |headers: HeaderMap, body: Bytes| {
        let grpc = grpc.clone();
        async move {
            let mut reader = match call_one::<Req>(grpc, path, &headers, &body).await {
                Ok(r) => r,
                Err(s) => return error_response(&s),
            };
            match reader.next().await {
                Some(Ok(msg)) => match Resp::decode(msg) {
                    Ok(resp) => json_response(&resp),
                    Err(e) => error_response(&Status::internal(format!("bad response: {e}"))),
                },
                Some(Err(s)) => error_response(&s),
                None => error_response(&Status::internal("the call returned no response")),
            }
        }
    })
}

/// A server stream: one JSON request, a line per response.
fn one_way<Req: GatewayRequest, Resp: GatewayResponse>(
    grpc: &Routes,
    path: &'static str,
    _limit: usize,
) -> MethodRouter {
    let grpc = grpc.clone();
    post(move |headers: HeaderMap, body: Bytes| {
        let grpc = grpc.clone();
        async move { stream_response::<Resp>(call_one::<Req>(grpc, path, &headers, &body).await).await }
    })
}

/// A two-way stream: JSON requests one after the other in the body, a line per response.
fn two_way<Req: GatewayRequest, Resp: GatewayResponse>(
    grpc: &Routes,
    path: &'static str,
    limit: usize,
) -> MethodRouter {
    let grpc = grpc.clone();
    post(move |headers: HeaderMap, body: Body| {
        let grpc = grpc.clone();
        async move {
            let requests = Body::from_stream(json_requests::<Req>(body, limit));
            stream_response::<Resp>(call(grpc, path, &headers, requests).await).await
        }
    })
}

/// Calls `path` with the one JSON request in `body`.
async fn call_one<Req: GatewayRequest>(
    grpc: Routes,
    path: &'static str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<GrpcReader, Status> {
    let req: Req = parse_one(body)?;
    call(grpc, path, headers, Body::from(frame(&req))).await
}

/// Reads a request; an empty body is the default request (as grpc-gateway reads it).
fn parse_one<Req: GatewayRequest>(body: &[u8]) -> Result<Req, Status> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Req::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| Status::invalid_argument(format!("bad JSON request: {e}")))
}

/// The JSON requests of a streaming body, each framed for gRPC. Ends at the body's end, at a
/// malformed request (logged) or when one request exceeds `limit` bytes.
fn json_requests<Req: GatewayRequest>(
    body: Body,
    limit: usize,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send {
    struct State {
        body: axum::body::BodyDataStream,
        buf: BytesMut,
        end: bool,
    }
    let state = State {
        body: body.into_data_stream(),
        buf: BytesMut::new(),
        end: false,
    };
    futures::stream::unfold(state, move |mut st| async move {
        loop {
            let start = st
                .buf
                .iter()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
            st.buf.advance(start);
            if !st.buf.is_empty() {
                let mut values = serde_json::Deserializer::from_slice(&st.buf).into_iter::<Req>();
                match values.next() {
                    Some(Ok(req)) => {
                        let used = values.byte_offset();
                        st.buf.advance(used);
                        return Some((Ok(frame(&req)), st));
                    }
                    Some(Err(e)) if e.is_eof() && !st.end => {}
                    Some(Err(e)) => {
                        debug!("gateway: malformed streamed request, closing the stream: {e}");
                        return None;
                    }
                    None => {}
                }
            }
            if st.end {
                return None;
            }
            match st.body.next().await {
                Some(Ok(chunk)) => {
                    if st.buf.len() + chunk.len() > limit {
                        debug!("gateway: streamed request larger than {limit} bytes");
                        return None;
                    }
                    st.buf.extend_from_slice(&chunk);
                }
                Some(Err(_)) | None => st.end = true,
            }
        }
    })
}

/// `msg` as one gRPC message frame (uncompressed).
fn frame(msg: &impl prost::Message) -> Bytes {
    let len = msg.encoded_len();
    let mut buf = BytesMut::with_capacity(FRAME_PREFIX + len);
    buf.put_u8(0);
    // Bodies are bounded far below 4 GiB by the body limit.
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    msg.encode_raw(&mut buf);
    buf.freeze()
}

/// Calls `path` on `grpc` with the gRPC `body`, passing `Authorization` as the token and
/// `Grpc-Metadata-*` headers as metadata.
async fn call(
    mut grpc: Routes,
    path: &'static str,
    headers: &HeaderMap,
    body: Body,
) -> Result<GrpcReader, Status> {
    let mut req = Request::new(body);
    *req.method_mut() = Method::POST;
    *req.uri_mut() = axum::http::Uri::from_static(path);
    let md = req.headers_mut();
    md.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    md.insert(header::TE, HeaderValue::from_static("trailers"));
    for (name, value) in headers {
        if name == header::AUTHORIZATION {
            md.insert(HeaderName::from_static(TOKEN_METADATA), value.clone());
        } else if let Some(key) = name.as_str().strip_prefix(METADATA_PREFIX) {
            if let Ok(key) = HeaderName::from_bytes(key.as_bytes()) {
                md.insert(key, value.clone());
            }
        }
    }
    let ready = std::future::poll_fn(|cx| Service::<Request<Body>>::poll_ready(&mut grpc, cx));
    let Ok(()) = ready.await;
    let Ok(resp) = Service::<Request<Body>>::call(&mut grpc, req).await;
    // A call that fails at once answers with its status in the headers ("trailers only").
    if let Some(status) = Status::from_header_map(resp.headers()) {
        if status.code() != Code::Ok {
            return Err(status);
        }
    }
    Ok(GrpcReader {
        body: resp.into_body(),
        buf: BytesMut::new(),
        done: false,
    })
}

/// Reads the messages of a gRPC response body, then its status.
struct GrpcReader {
    body: tonic::body::Body,
    buf: BytesMut,
    done: bool,
}

impl GrpcReader {
    /// The next message; `Some(Err)` once if the call failed; `None` after a clean end.
    async fn next(&mut self) -> Option<Result<Bytes, Status>> {
        loop {
            if self.buf.len() >= FRAME_PREFIX {
                let compressed = self.buf[0] != 0;
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if compressed {
                    self.done = true;
                    return Some(Err(Status::internal("compressed response")));
                }
                if self.buf.len() >= FRAME_PREFIX + len {
                    self.buf.advance(FRAME_PREFIX);
                    return Some(Ok(self.buf.split_to(len).freeze()));
                }
            }
            if self.done {
                return None;
            }
            match self.body.frame().await {
                Some(Ok(f)) => match f.into_data() {
                    Ok(data) => self.buf.extend_from_slice(&data),
                    Err(f) => {
                        self.done = true;
                        if let Some(status) = f.trailers_ref().and_then(Status::from_header_map) {
                            if status.code() != Code::Ok {
                                return Some(Err(status));
                            }
                        }
                    }
                },
                Some(Err(status)) => {
                    self.done = true;
                    return Some(Err(status));
                }
                None => self.done = true,
            }
        }
    }
}

/// A streaming answer, as grpc-gateway v1 gives it: once the first message is there, `200`
/// and one `{"result": ...}` line per message, then `{"error": ...}` if the call fails; a
/// call that fails before its first message answers the mapped HTTP status and that error
/// line.
async fn stream_response<Resp: GatewayResponse>(call: Result<GrpcReader, Status>) -> Response {
    let mut reader = match call {
        Ok(r) => r,
        Err(status) => return stream_failure(&status),
    };
    let first = match reader.next().await {
        Some(Ok(msg)) => Some(msg),
        Some(Err(status)) => return stream_failure(&status),
        None => None,
    };
    let lines = futures::stream::unfold((first, Some(reader)), |(first, reader)| async move {
        let mut reader = reader?;
        let msg = match first {
            Some(m) => m,
            None => match reader.next().await? {
                Ok(m) => m,
                Err(status) => return Some((stream_error(&status), (None, None))),
            },
        };
        let resp = match Resp::decode(msg) {
            Ok(resp) => resp,
            Err(e) => return Some((stream_error(&Status::internal(e.to_string())), (None, None))),
        };
        let mut line = b"{\"result\":".to_vec();
        match serde_json::to_writer(&mut line, &resp) {
            Ok(()) => {
                line.extend_from_slice(b"}\n");
                Some((Ok(Bytes::from(line)), (None, Some(reader))))
            }
            Err(e) => Some((stream_error(&Status::internal(e.to_string())), (None, None))),
        }
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(lines),
    )
        .into_response()
}

/// A stream that failed before its first message.
fn stream_failure(status: &Status) -> Response {
    let Ok(line) = stream_error(status);
    (
        http_status(status.code()),
        [(header::CONTENT_TYPE, "application/json")],
        line,
    )
        .into_response()
}

/// grpc-gateway's in-stream error line.
fn stream_error(status: &Status) -> Result<Bytes, Infallible> {
    let http = http_status(status.code());
    let mut line = serde_json::json!({
        "error": {
            "grpc_code": status.code() as i32,
            "http_code": http.as_u16(),
            "message": status.message(),
            "http_status": http.canonical_reason().unwrap_or(""),
        }
    })
    .to_string()
    .into_bytes();
    line.push(b'\n');
    Ok(Bytes::from(line))
}

fn json_response(resp: &impl Serialize) -> Response {
    match serde_json::to_vec(resp) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => error_response(&Status::internal(e.to_string())),
    }
}

/// grpc-gateway's error answer: the status mapped to HTTP, the message and code in JSON.
fn error_response(status: &Status) -> Response {
    let body = serde_json::json!({
        "error": status.message(),
        "code": status.code() as i32,
        "message": status.message(),
    });
    (
        http_status(status.code()),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// grpc-gateway's mapping of gRPC codes to HTTP statuses.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
