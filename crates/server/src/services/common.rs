//! Helpers every service uses: response headers, error mapping, limits checked before a
//! request is proposed, and the quota check.

use prost::Message;
use quorum_api::etcdserverpb as pb;
use quorum_mvcc::{self as mvcc, MvccError, WriteRequest, WriteResponse};
use tonic::Status;

use super::backend::Backend;
use crate::convert::write_to_internal;
use crate::error::{mvcc_status, ServerError};

/// The header of a top-level response: this member's identity, the store `revision` the
/// response reflects and the current Raft term, as etcd fills it.
pub fn header<B: Backend>(b: &B, revision: i64) -> pb::ResponseHeader {
    let s = b.status();
    pb::ResponseHeader {
        cluster_id: s.cluster_id,
        member_id: s.member_id,
        revision,
        raft_term: s.raft_term,
    }
}

/// A header at the store's current revision (for calls that do not produce a revision).
pub fn current_header<B: Backend>(b: &B) -> Result<pb::ResponseHeader, Status> {
    let rev = b.store().current_revision().map_err(|e| mvcc_err(&e))?;
    Ok(header(b, rev))
}

/// A store error as etcd's gRPC status.
pub fn mvcc_err(e: &MvccError) -> Status {
    mvcc_status(e)
}

/// A member error as etcd's gRPC status.
pub fn server_err(e: ServerError) -> Status {
    e.into()
}

/// The answer when the store's response is not of the kind the request asked for (a bug).
pub fn unexpected(what: &str) -> Status {
    Status::internal(format!("etcdserver: unexpected response to {what}"))
}

/// Proposes a store write and returns this member's result of applying it.
///
/// Checked first, as etcd does before proposing: the quota (a write that would grow the store
/// past `--quota-backend-bytes` is refused with `etcdserver: mvcc: database space exceeded`
/// and the NOSPACE alarm is raised), then the encoded size against `--max-request-bytes`
/// (`etcdserver: request is too large`).
pub async fn propose_write<B: Backend>(b: &B, w: WriteRequest) -> Result<WriteResponse, Status> {
    if let Err(e) = b.store().quota_check(&w) {
        if e == MvccError::NoSpace {
            raise_nospace(b);
        }
        return Err(mvcc_err(&e));
    }
    let req = write_to_internal(&w);
    if req.encoded_len() > b.max_request_bytes() {
        return Err(server_err(ServerError::RequestTooLarge));
    }
    b.propose(req).await.map_err(server_err)
}

/// Raises the NOSPACE alarm for this member unless it is raised already (in the background:
/// the refused request does not wait for it, as in etcd).
fn raise_nospace<B: Backend>(b: &B) {
    let already = b
        .store()
        .alarms()
        .map(|a| a.iter().any(|a| a.alarm == mvcc::AlarmType::Nospace))
        .unwrap_or(false);
    if already {
        return;
    }
    let member_id = b.status().member_id;
    let b = b.clone();
    tokio::spawn(async move {
        let req = write_to_internal(&WriteRequest::Alarm(mvcc::AlarmRequest {
            action: mvcc::AlarmAction::Activate,
            member_id,
            alarm: mvcc::AlarmType::Nospace,
        }));
        if let Err(e) = b.propose(req).await {
            tracing::warn!("raising the NOSPACE alarm failed: {e}");
        }
    });
}

/// The `range_end` that selects every key starting with `prefix` (etcd's `GetPrefixRangeEnd`):
/// the prefix with its last byte below 0xff incremented and what follows dropped; `[0]` (every
/// key) when there is no such byte.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_matches_etcd() {
        assert_eq!(prefix_end(b"abc"), b"abd".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
