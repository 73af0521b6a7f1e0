//! Mechanical conversions between the protobuf messages of the etcd v3 API (`quorum_api`) and the
//! plain types of the MVCC store (`quorum_mvcc`), in both directions, plus the payload of a Raft
//! log entry ([`InternalRaftRequest`]) to and from a store [`WriteRequest`].
//!
//! Nothing here panics on any input: protobuf enums are open (a client may send any `i32`), so
//! an unknown value is a [`ConvertError`] which the services answer with `InvalidArgument`, as
//! etcd rejects values it does not know. Nested transactions are bounded by
//! [`MAX_TXN_DEPTH`] so that converting one never exhausts the stack.
//!
//! Response headers are not built here (they need the member's identity and Raft term, see
//! `services::header`); nested responses inside a transaction carry a header with only the
//! revision set, as etcd's do.

use quorum_api::etcdserverpb as pb;
use quorum_api::internal::{InternalRaftRequest, RequestHeader};
use quorum_api::mvccpb;
use quorum_mvcc as mvcc;
use tonic::Status;

/// Deepest nesting of transactions accepted (a txn inside a txn inside ...). prost already stops
/// decoding at 100 levels of messages; this bound keeps our recursive conversions and the
/// store's recursive apply far from any stack limit.
pub const MAX_TXN_DEPTH: usize = 32;

/// A protobuf message that cannot be expressed as a store request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// An enum field with a value etcd does not define.
    #[error("etcdserver: unknown {field} value {value}")]
    UnknownEnum {
        /// The field, as etcd names it.
        field: &'static str,
        /// The value received.
        value: i32,
    },
    /// A `RequestOp` (or a Raft entry) without any request set.
    #[error("etcdserver: {0} has no request set")]
    MissingRequest(&'static str),
    /// A Raft entry with more than one request set.
    #[error("etcdserver: raft request carries {0} requests, expected one")]
    AmbiguousRequest(usize),
    /// Transactions nested deeper than [`MAX_TXN_DEPTH`].
    #[error("etcdserver: transactions nested deeper than {MAX_TXN_DEPTH} levels")]
    TxnTooDeep,
    /// A request kind Quorum does not replicate (auth reads and Authenticate).
    #[error("etcdserver: {0} is not supported by this server")]
    Unsupported(&'static str),
}

impl From<ConvertError> for Status {
    fn from(e: ConvertError) -> Status {
        match e {
            ConvertError::Unsupported(_) => Status::unimplemented(e.to_string()),
            _ => Status::invalid_argument(e.to_string()),
        }
    }
}

/// Result of a conversion.
pub type Result<T> = std::result::Result<T, ConvertError>;

// ---------------------------------------------------------------------------------------------
// Key-values and events (store → protobuf)

/// `mvcc::KeyValue` → `mvccpb::KeyValue`.
pub fn kv_to_pb(kv: mvcc::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key.into(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value.into(),
        lease: kv.lease,
    }
}

/// `mvccpb::KeyValue` → `mvcc::KeyValue`.
pub fn kv_from_pb(kv: &mvccpb::KeyValue) -> mvcc::KeyValue {
    mvcc::KeyValue {
        key: kv.key.to_vec(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value.to_vec(),
        lease: kv.lease,
    }
}

/// `mvcc::Event` → `mvccpb::Event`.
pub fn event_to_pb(ev: mvcc::Event) -> mvccpb::Event {
    let kind = match ev.kind {
        mvcc::EventType::Put => mvccpb::event::EventType::Put,
        mvcc::EventType::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(kv_to_pb(ev.kv)),
        prev_kv: ev.prev_kv.map(kv_to_pb),
    }
}

/// A response header carrying only a revision (nested transaction responses, as etcd).
fn rev_header(revision: i64) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        revision,
        ..Default::default()
    })
}

// ---------------------------------------------------------------------------------------------
// KV requests (protobuf → store)

fn sort_order(v: i32) -> Result<mvcc::SortOrder> {
    Ok(match pb::range_request::SortOrder::try_from(v) {
        Ok(pb::range_request::SortOrder::None) => mvcc::SortOrder::None,
        Ok(pb::range_request::SortOrder::Ascend) => mvcc::SortOrder::Ascend,
        Ok(pb::range_request::SortOrder::Descend) => mvcc::SortOrder::Descend,
        Err(_) => {
            return Err(ConvertError::UnknownEnum {
                field: "sort_order",
                value: v,
            })
        }
    })
}

fn sort_target(v: i32) -> Result<mvcc::SortTarget> {
    use pb::range_request::SortTarget as T;
    Ok(match T::try_from(v) {
        Ok(T::Key) => mvcc::SortTarget::Key,
        Ok(T::Version) => mvcc::SortTarget::Version,
        Ok(T::Create) => mvcc::SortTarget::Create,
        Ok(T::Mod) => mvcc::SortTarget::Mod,
        Ok(T::Value) => mvcc::SortTarget::Value,
        Err(_) => {
            return Err(ConvertError::UnknownEnum {
                field: "sort_target",
                value: v,
            })
        }
    })
}

/// `RangeRequest` → store range request.
pub fn range_from_pb(r: &pb::RangeRequest) -> Result<mvcc::RangeRequest> {
    Ok(mvcc::RangeRequest {
        key: r.key.to_vec(),
        range_end: r.range_end.to_vec(),
        limit: r.limit,
        revision: r.revision,
        sort_order: sort_order(r.sort_order)?,
        sort_target: sort_target(r.sort_target)?,
        serializable: r.serializable,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    })
}

/// `PutRequest` → store put.
pub fn put_from_pb(r: &pb::PutRequest) -> mvcc::PutRequest {
    mvcc::PutRequest {
        key: r.key.to_vec(),
        value: r.value.to_vec(),
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    }
}

/// `DeleteRangeRequest` → store delete.
pub fn delete_from_pb(r: &pb::DeleteRangeRequest) -> mvcc::DeleteRangeRequest {
    mvcc::DeleteRangeRequest {
        key: r.key.to_vec(),
        range_end: r.range_end.to_vec(),
        prev_kv: r.prev_kv,
    }
}

fn compare_from_pb(c: &pb::Compare) -> Result<mvcc::Compare> {
    use pb::compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let result = match R::try_from(c.result) {
        Ok(R::Equal) => mvcc::CompareResult::Equal,
        Ok(R::Greater) => mvcc::CompareResult::Greater,
        Ok(R::Less) => mvcc::CompareResult::Less,
        Ok(R::NotEqual) => mvcc::CompareResult::NotEqual,
        Err(_) => {
            return Err(ConvertError::UnknownEnum {
                field: "compare result",
                value: c.result,
            })
        }
    };
    let target = match T::try_from(c.target) {
        Ok(T::Version) => mvcc::CompareTarget::Version,
        Ok(T::Create) => mvcc::CompareTarget::Create,
        Ok(T::Mod) => mvcc::CompareTarget::Mod,
        Ok(T::Value) => mvcc::CompareTarget::Value,
        Ok(T::Lease) => mvcc::CompareTarget::Lease,
        Err(_) => {
            return Err(ConvertError::UnknownEnum {
                field: "compare target",
                value: c.target,
            })
        }
    };
    let target_union = c.target_union.as_ref().map(|u| match u {
        U::Version(v) => mvcc::TargetUnion::Version(*v),
        U::CreateRevision(v) => mvcc::TargetUnion::CreateRevision(*v),
        U::ModRevision(v) => mvcc::TargetUnion::ModRevision(*v),
        U::Value(v) => mvcc::TargetUnion::Value(v.to_vec()),
        U::Lease(v) => mvcc::TargetUnion::Lease(*v),
    });
    Ok(mvcc::Compare {
        result,
        target,
        key: c.key.to_vec(),
        target_union,
        range_end: c.range_end.to_vec(),
    })
}

fn op_from_pb(op: &pb::RequestOp, depth: usize) -> Result<mvcc::RequestOp> {
    use pb::request_op::Request as Q;
    Ok(match &op.request {
        Some(Q::RequestRange(r)) => mvcc::RequestOp::Range(range_from_pb(r)?),
        Some(Q::RequestPut(r)) => mvcc::RequestOp::Put(put_from_pb(r)),
        Some(Q::RequestDeleteRange(r)) => mvcc::RequestOp::DeleteRange(delete_from_pb(r)),
        Some(Q::RequestTxn(t)) => mvcc::RequestOp::Txn(txn_from_pb_at(t, depth + 1)?),
        None => return Err(ConvertError::MissingRequest("txn operation")),
    })
}

fn txn_from_pb_at(t: &pb::TxnRequest, depth: usize) -> Result<mvcc::TxnRequest> {
    if depth > MAX_TXN_DEPTH {
        return Err(ConvertError::TxnTooDeep);
    }
    Ok(mvcc::TxnRequest {
        compare: t
            .compare
            .iter()
            .map(compare_from_pb)
            .collect::<Result<_>>()?,
        success: t
            .success
            .iter()
            .map(|o| op_from_pb(o, depth))
            .collect::<Result<_>>()?,
        failure: t
            .failure
            .iter()
            .map(|o| op_from_pb(o, depth))
            .collect::<Result<_>>()?,
    })
}

/// `TxnRequest` → store txn (rejects nesting deeper than [`MAX_TXN_DEPTH`]).
pub fn txn_from_pb(t: &pb::TxnRequest) -> Result<mvcc::TxnRequest> {
    txn_from_pb_at(t, 1)
}

/// `CompactionRequest` → store compaction.
pub fn compaction_from_pb(r: &pb::CompactionRequest) -> mvcc::CompactionRequest {
    mvcc::CompactionRequest {
        revision: r.revision,
        physical: r.physical,
    }
}

// ---------------------------------------------------------------------------------------------
// KV responses (store → protobuf); the caller sets the top-level header.

/// Store range response → `RangeResponse` (header: revision only).
pub fn range_to_pb(r: mvcc::RangeResponse) -> pb::RangeResponse {
    pb::RangeResponse {
        header: rev_header(r.header_revision),
        kvs: r.kvs.into_iter().map(kv_to_pb).collect(),
        more: r.more,
        count: r.count,
    }
}

/// Store put response → `PutResponse` (header: revision only).
pub fn put_to_pb(r: mvcc::PutResponse) -> pb::PutResponse {
    pb::PutResponse {
        header: rev_header(r.header_revision),
        prev_kv: r.prev_kv.map(kv_to_pb),
    }
}

/// Store delete response → `DeleteRangeResponse` (header: revision only).
pub fn delete_to_pb(r: mvcc::DeleteRangeResponse) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: rev_header(r.header_revision),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(kv_to_pb).collect(),
    }
}

/// Store txn response → `TxnResponse` (headers: revision only, nested ones included).
pub fn txn_to_pb(r: mvcc::TxnResponse) -> pb::TxnResponse {
    use pb::response_op::Response as P;
    pb::TxnResponse {
        header: rev_header(r.header_revision),
        succeeded: r.succeeded,
        responses: r
            .responses
            .into_iter()
            .map(|op| pb::ResponseOp {
                response: Some(match op {
                    mvcc::ResponseOp::Range(x) => P::ResponseRange(range_to_pb(x)),
                    mvcc::ResponseOp::Put(x) => P::ResponsePut(put_to_pb(x)),
                    mvcc::ResponseOp::DeleteRange(x) => P::ResponseDeleteRange(delete_to_pb(x)),
                    mvcc::ResponseOp::Txn(x) => P::ResponseTxn(txn_to_pb(x)),
                }),
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Leases and alarms

/// `LeaseGrantRequest` → store grant.
pub fn lease_grant_from_pb(r: &pb::LeaseGrantRequest) -> mvcc::LeaseGrantRequest {
    mvcc::LeaseGrantRequest {
        ttl: r.ttl,
        id: r.id,
    }
}

/// `LeaseRevokeRequest` → store revoke.
pub fn lease_revoke_from_pb(r: &pb::LeaseRevokeRequest) -> mvcc::LeaseRevokeRequest {
    mvcc::LeaseRevokeRequest { id: r.id }
}

/// `LeaseCheckpointRequest` → store checkpoint.
pub fn lease_checkpoint_from_pb(r: &pb::LeaseCheckpointRequest) -> mvcc::LeaseCheckpointRequest {
    mvcc::LeaseCheckpointRequest {
        checkpoints: r
            .checkpoints
            .iter()
            .map(|c| mvcc::LeaseCheckpoint {
                id: c.id,
                remaining_ttl: c.remaining_ttl,
            })
            .collect(),
    }
}

/// Protobuf `AlarmType` value → store alarm type.
pub fn alarm_type_from_pb(v: i32) -> Result<mvcc::AlarmType> {
    Ok(match pb::AlarmType::try_from(v) {
        Ok(pb::AlarmType::None) => mvcc::AlarmType::None,
        Ok(pb::AlarmType::Nospace) => mvcc::AlarmType::Nospace,
        Ok(pb::AlarmType::Corrupt) => mvcc::AlarmType::Corrupt,
        Err(_) => {
            return Err(ConvertError::UnknownEnum {
                field: "alarm type",
                value: v,
            })
        }
    })
}

/// Store alarm type → protobuf `AlarmType` value.
pub fn alarm_type_to_pb(a: mvcc::AlarmType) -> i32 {
    match a {
        mvcc::AlarmType::None => pb::AlarmType::None as i32,
        mvcc::AlarmType::Nospace => pb::AlarmType::Nospace as i32,
        mvcc::AlarmType::Corrupt => pb::AlarmType::Corrupt as i32,
    }
}

/// `AlarmRequest` → store alarm request.
pub fn alarm_from_pb(r: &pb::AlarmRequest) -> Result<mvcc::AlarmRequest> {
    use pb::alarm_request::AlarmAction as A;
    let action = match A::try_from(r.action) {
        Ok(A::Get) => mvcc::AlarmAction::Get,
        Ok(A::Activate) => mvcc::AlarmAction::Activate,
        Ok(A::Deactivate) => mvcc::AlarmAction::Deactivate,
        Err(_) => {
            return Err(ConvertError::UnknownEnum {
                field: "alarm action",
                value: r.action,
            })
        }
    };
    Ok(mvcc::AlarmRequest {
        action,
        member_id: r.member_id,
        alarm: alarm_type_from_pb(r.alarm)?,
    })
}

/// Store alarm list → protobuf alarm members.
pub fn alarms_to_pb(alarms: Vec<mvcc::AlarmMember>) -> Vec<pb::AlarmMember> {
    alarms
        .into_iter()
        .map(|a| pb::AlarmMember {
            member_id: a.member_id,
            alarm: alarm_type_to_pb(a.alarm),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Watches

/// `WatchCreateRequest` → store watch creation. `watch_id` and `progress_notify` are the
/// stream's business (see `services::watch`), not the store's.
pub fn watch_create_from_pb(r: &pb::WatchCreateRequest) -> Result<mvcc::WatchCreateRequest> {
    use pb::watch_create_request::FilterType as F;
    let filters = r
        .filters
        .iter()
        .map(|f| match F::try_from(*f) {
            Ok(F::Noput) => Ok(mvcc::WatchFilterType::NoPut),
            Ok(F::Nodelete) => Ok(mvcc::WatchFilterType::NoDelete),
            Err(_) => Err(ConvertError::UnknownEnum {
                field: "watch filter",
                value: *f,
            }),
        })
        .collect::<Result<_>>()?;
    Ok(mvcc::WatchCreateRequest {
        key: r.key.to_vec(),
        range_end: r.range_end.to_vec(),
        start_revision: r.start_revision,
        filters,
        prev_kv: r.prev_kv,
        fragment: r.fragment,
    })
}

// ---------------------------------------------------------------------------------------------
// Raft entry payloads

/// Wraps a store write as the payload of a Raft entry. The proposal id (`header.id` and `id`)
/// is left 0: [`crate::member::Member::propose`] assigns it.
pub fn write_to_internal(w: &mvcc::WriteRequest) -> InternalRaftRequest {
    let mut req = InternalRaftRequest {
        header: Some(RequestHeader::default()),
        ..Default::default()
    };
    match w {
        mvcc::WriteRequest::Noop => {}
        mvcc::WriteRequest::Authorized(a) => {
            let mut inner = write_to_internal(&a.request);
            let h = inner.header.get_or_insert_with(Default::default);
            h.auth_revision = a.auth_revision;
            h.username = a.username.clone();
            return inner;
        }
        mvcc::WriteRequest::Auth(a) => crate::auth_convert::auth_to_internal(a, &mut req),
        mvcc::WriteRequest::Range(r) => req.range = Some(range_to_pb_req(r)),
        mvcc::WriteRequest::Put(p) => req.put = Some(put_to_pb_req(p)),
        mvcc::WriteRequest::DeleteRange(d) => req.delete_range = Some(delete_to_pb_req(d)),
        mvcc::WriteRequest::Txn(t) => req.txn = Some(txn_to_pb_req(t)),
        mvcc::WriteRequest::Compaction(c) => {
            req.compaction = Some(pb::CompactionRequest {
                revision: c.revision,
                physical: c.physical,
            })
        }
        mvcc::WriteRequest::LeaseGrant(g) => {
            req.lease_grant = Some(pb::LeaseGrantRequest {
                ttl: g.ttl,
                id: g.id,
            })
        }
        mvcc::WriteRequest::LeaseRevoke(r) => {
            req.lease_revoke = Some(pb::LeaseRevokeRequest { id: r.id })
        }
        mvcc::WriteRequest::LeaseCheckpoint(c) => {
            req.lease_checkpoint = Some(pb::LeaseCheckpointRequest {
                checkpoints: c
                    .checkpoints
                    .iter()
                    .map(|c| pb::LeaseCheckpoint {
                        id: c.id,
                        remaining_ttl: c.remaining_ttl,
                    })
                    .collect(),
            })
        }
        mvcc::WriteRequest::Alarm(a) => {
            req.alarm = Some(pb::AlarmRequest {
                action: match a.action {
                    mvcc::AlarmAction::Get => pb::alarm_request::AlarmAction::Get,
                    mvcc::AlarmAction::Activate => pb::alarm_request::AlarmAction::Activate,
                    mvcc::AlarmAction::Deactivate => pb::alarm_request::AlarmAction::Deactivate,
                } as i32,
                member_id: a.member_id,
                alarm: alarm_type_to_pb(a.alarm),
            })
        }
    }
    req
}

/// The store write a committed Raft entry carries; called by the apply path for every entry.
///
/// An entry with no store request (membership attributes, cluster version) is
/// [`mvcc::WriteRequest::Noop`]; the core handles those fields itself. An entry with several
/// requests, or an auth request Quorum never replicates (status, authenticate, reads), is an
/// error: the result depends on the entry alone, so every member decides the same. A request
/// whose header carries an auth revision becomes [`mvcc::WriteRequest::Authorized`].
pub fn internal_to_write(req: &InternalRaftRequest) -> Result<mvcc::WriteRequest> {
    let w = internal_to_plain_write(req)?;
    match req.header.as_ref() {
        Some(h) if h.auth_revision != 0 => Ok(mvcc::WriteRequest::Authorized(Box::new(
            mvcc::AuthorizedRequest {
                auth_revision: h.auth_revision,
                username: h.username.clone(),
                request: w,
            },
        ))),
        _ => Ok(w),
    }
}

fn internal_to_plain_write(req: &InternalRaftRequest) -> Result<mvcc::WriteRequest> {
    let auth_set = [
        req.auth_enable.is_some(),
        req.auth_disable.is_some(),
        req.auth_status.is_some(),
        req.authenticate.is_some(),
        req.auth_user_add.is_some(),
        req.auth_user_delete.is_some(),
        req.auth_user_get.is_some(),
        req.auth_user_change_password.is_some(),
        req.auth_user_grant_role.is_some(),
        req.auth_user_revoke_role.is_some(),
        req.auth_user_list.is_some(),
        req.auth_role_list.is_some(),
        req.auth_role_add.is_some(),
        req.auth_role_delete.is_some(),
        req.auth_role_get.is_some(),
        req.auth_role_grant_permission.is_some(),
        req.auth_role_revoke_permission.is_some(),
    ]
    .iter()
    .any(|s| *s);
    let mut found: Vec<mvcc::WriteRequest> = Vec::with_capacity(1);
    if let Some(r) = &req.range {
        found.push(mvcc::WriteRequest::Range(range_from_pb(r)?));
    }
    if let Some(r) = &req.put {
        found.push(mvcc::WriteRequest::Put(put_from_pb(r)));
    }
    if let Some(r) = &req.delete_range {
        found.push(mvcc::WriteRequest::DeleteRange(delete_from_pb(r)));
    }
    if let Some(r) = &req.txn {
        found.push(mvcc::WriteRequest::Txn(txn_from_pb(r)?));
    }
    if let Some(r) = &req.compaction {
        found.push(mvcc::WriteRequest::Compaction(compaction_from_pb(r)));
    }
    if let Some(r) = &req.lease_grant {
        found.push(mvcc::WriteRequest::LeaseGrant(lease_grant_from_pb(r)));
    }
    if let Some(r) = &req.lease_revoke {
        found.push(mvcc::WriteRequest::LeaseRevoke(lease_revoke_from_pb(r)));
    }
    if let Some(r) = &req.lease_checkpoint {
        found.push(mvcc::WriteRequest::LeaseCheckpoint(
            lease_checkpoint_from_pb(r),
        ));
    }
    if let Some(r) = &req.alarm {
        found.push(mvcc::WriteRequest::Alarm(alarm_from_pb(r)?));
    }
    let others = usize::from(auth_set)
        + usize::from(req.cluster_version_set.is_some())
        + usize::from(req.member_attr_set.is_some());
    if found.len() + others > 1 {
        return Err(ConvertError::AmbiguousRequest(found.len() + others));
    }
    if auth_set {
        return crate::auth_convert::auth_from_internal(req).map(mvcc::WriteRequest::Auth);
    }
    Ok(found.pop().unwrap_or(mvcc::WriteRequest::Noop))
}

// Store requests → protobuf requests, for `write_to_internal`.

fn range_to_pb_req(r: &mvcc::RangeRequest) -> pb::RangeRequest {
    pb::RangeRequest {
        key: r.key.clone().into(),
        range_end: r.range_end.clone().into(),
        limit: r.limit,
        revision: r.revision,
        sort_order: r.sort_order as i32,
        sort_target: r.sort_target as i32,
        serializable: r.serializable,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    }
}

fn put_to_pb_req(p: &mvcc::PutRequest) -> pb::PutRequest {
    pb::PutRequest {
        key: p.key.clone().into(),
        value: p.value.clone().into(),
        lease: p.lease,
        prev_kv: p.prev_kv,
        ignore_value: p.ignore_value,
        ignore_lease: p.ignore_lease,
    }
}

fn delete_to_pb_req(d: &mvcc::DeleteRangeRequest) -> pb::DeleteRangeRequest {
    pb::DeleteRangeRequest {
        key: d.key.clone().into(),
        range_end: d.range_end.clone().into(),
        prev_kv: d.prev_kv,
    }
}

fn compare_to_pb(c: &mvcc::Compare) -> pb::Compare {
    use pb::compare::TargetUnion as U;
    pb::Compare {
        result: c.result as i32,
        target: c.target as i32,
        key: c.key.clone().into(),
        target_union: c.target_union.as_ref().map(|u| match u {
            mvcc::TargetUnion::Version(v) => U::Version(*v),
            mvcc::TargetUnion::CreateRevision(v) => U::CreateRevision(*v),
            mvcc::TargetUnion::ModRevision(v) => U::ModRevision(*v),
            mvcc::TargetUnion::Value(v) => U::Value(v.clone().into()),
            mvcc::TargetUnion::Lease(v) => U::Lease(*v),
        }),
        range_end: c.range_end.clone().into(),
    }
}

fn txn_to_pb_req(t: &mvcc::TxnRequest) -> pb::TxnRequest {
    use pb::request_op::Request as Q;
    let op = |o: &mvcc::RequestOp| pb::RequestOp {
        request: Some(match o {
            mvcc::RequestOp::Range(r) => Q::RequestRange(range_to_pb_req(r)),
            mvcc::RequestOp::Put(p) => Q::RequestPut(put_to_pb_req(p)),
            mvcc::RequestOp::DeleteRange(d) => Q::RequestDeleteRange(delete_to_pb_req(d)),
            mvcc::RequestOp::Txn(t) => Q::RequestTxn(txn_to_pb_req(t)),
        }),
    };
    pb::TxnRequest {
        compare: t.compare.iter().map(compare_to_pb).collect(),
        success: t.success.iter().map(op).collect(),
        failure: t.failure.iter().map(op).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_txn() -> mvcc::TxnRequest {
        mvcc::TxnRequest {
            compare: vec![
                mvcc::Compare {
                    result: mvcc::CompareResult::NotEqual,
                    target: mvcc::CompareTarget::Value,
                    key: b"a".to_vec(),
                    target_union: Some(mvcc::TargetUnion::Value(b"x".to_vec())),
                    range_end: b"b".to_vec(),
                },
                mvcc::Compare {
                    result: mvcc::CompareResult::Less,
                    target: mvcc::CompareTarget::Lease,
                    key: b"c".to_vec(),
                    target_union: Some(mvcc::TargetUnion::Lease(7)),
                    range_end: vec![],
                },
                mvcc::Compare {
                    result: mvcc::CompareResult::Greater,
                    target: mvcc::CompareTarget::Mod,
                    key: b"d".to_vec(),
                    target_union: None,
                    range_end: vec![],
                },
            ],
            success: vec![
                mvcc::RequestOp::Put(mvcc::PutRequest {
                    key: b"k".to_vec(),
                    value: b"v".to_vec(),
                    lease: 3,
                    prev_kv: true,
                    ignore_value: false,
                    ignore_lease: false,
                }),
                mvcc::RequestOp::Range(mvcc::RangeRequest {
                    key: b"k".to_vec(),
                    range_end: vec![0],
                    limit: 4,
                    revision: 9,
                    sort_order: mvcc::SortOrder::Descend,
                    sort_target: mvcc::SortTarget::Value,
                    serializable: true,
                    keys_only: true,
                    count_only: false,
                    min_mod_revision: 1,
                    max_mod_revision: 2,
                    min_create_revision: 3,
                    max_create_revision: 4,
                }),
            ],
            failure: vec![
                mvcc::RequestOp::DeleteRange(mvcc::DeleteRangeRequest {
                    key: b"p".to_vec(),
                    range_end: b"q".to_vec(),
                    prev_kv: true,
                }),
                mvcc::RequestOp::Txn(mvcc::TxnRequest {
                    compare: vec![],
                    success: vec![mvcc::RequestOp::Put(mvcc::PutRequest {
                        key: b"n".to_vec(),
                        ignore_value: true,
                        ignore_lease: true,
                        ..Default::default()
                    })],
                    failure: vec![],
                }),
            ],
        }
    }

    fn roundtrip(w: mvcc::WriteRequest) {
        let internal = write_to_internal(&w);
        assert_eq!(internal_to_write(&internal), Ok(w));
    }

    #[test]
    fn every_write_request_round_trips_through_the_raft_payload() {
        roundtrip(mvcc::WriteRequest::Noop);
        roundtrip(mvcc::WriteRequest::Txn(sample_txn()));
        roundtrip(mvcc::WriteRequest::Put(mvcc::PutRequest {
            key: b"k".to_vec(),
            value: vec![0, 255, 7],
            lease: -5,
            prev_kv: true,
            ..Default::default()
        }));
        roundtrip(mvcc::WriteRequest::DeleteRange(mvcc::DeleteRangeRequest {
            key: b"a".to_vec(),
            range_end: vec![0],
            prev_kv: false,
        }));
        roundtrip(mvcc::WriteRequest::Compaction(mvcc::CompactionRequest {
            revision: 42,
            physical: true,
        }));
        roundtrip(mvcc::WriteRequest::LeaseGrant(mvcc::LeaseGrantRequest {
            ttl: 10,
            id: 0x1234,
        }));
        roundtrip(mvcc::WriteRequest::LeaseRevoke(mvcc::LeaseRevokeRequest {
            id: 99,
        }));
        roundtrip(mvcc::WriteRequest::LeaseCheckpoint(
            mvcc::LeaseCheckpointRequest {
                checkpoints: vec![mvcc::LeaseCheckpoint {
                    id: 1,
                    remaining_ttl: 5,
                }],
            },
        ));
        for (action, alarm) in [
            (mvcc::AlarmAction::Get, mvcc::AlarmType::None),
            (mvcc::AlarmAction::Activate, mvcc::AlarmType::Nospace),
            (mvcc::AlarmAction::Deactivate, mvcc::AlarmType::Corrupt),
        ] {
            roundtrip(mvcc::WriteRequest::Alarm(mvcc::AlarmRequest {
                action,
                member_id: 17,
                alarm,
            }));
        }
    }

    #[test]
    fn the_raft_payload_survives_protobuf_encoding() {
        use prost::Message;
        let w = mvcc::WriteRequest::Txn(sample_txn());
        let bytes = write_to_internal(&w).encode_to_vec();
        let decoded = InternalRaftRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(internal_to_write(&decoded), Ok(w));
    }

    #[test]
    fn unknown_enum_values_are_invalid_arguments_not_panics() {
        let r = pb::RangeRequest {
            key: b"k".to_vec().into(),
            sort_order: 3,
            ..Default::default()
        };
        let e = range_from_pb(&r).unwrap_err();
        assert_eq!(
            e,
            ConvertError::UnknownEnum {
                field: "sort_order",
                value: 3
            }
        );
        assert_eq!(Status::from(e).code(), tonic::Code::InvalidArgument);
        let r = pb::RangeRequest {
            sort_target: -1,
            ..Default::default()
        };
        assert!(range_from_pb(&r).is_err());
        let t = pb::TxnRequest {
            compare: vec![pb::Compare {
                result: 9,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(txn_from_pb(&t).is_err());
        let w = pb::WatchCreateRequest {
            filters: vec![0, 1, 2],
            ..Default::default()
        };
        assert!(watch_create_from_pb(&w).is_err());
        let a = pb::AlarmRequest {
            action: 3,
            ..Default::default()
        };
        assert!(alarm_from_pb(&a).is_err());
        let a = pb::AlarmRequest {
            alarm: 3,
            ..Default::default()
        };
        assert!(alarm_from_pb(&a).is_err());
    }

    #[test]
    fn malformed_raft_payloads_are_errors() {
        let empty_op = pb::TxnRequest {
            success: vec![pb::RequestOp { request: None }],
            ..Default::default()
        };
        assert_eq!(
            txn_from_pb(&empty_op),
            Err(ConvertError::MissingRequest("txn operation"))
        );
        let two = InternalRaftRequest {
            put: Some(pb::PutRequest::default()),
            lease_revoke: Some(pb::LeaseRevokeRequest::default()),
            ..Default::default()
        };
        assert_eq!(
            internal_to_write(&two),
            Err(ConvertError::AmbiguousRequest(2))
        );
        // Auth reads and Authenticate are never replicated.
        let auth = InternalRaftRequest {
            auth_status: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(
            internal_to_write(&auth),
            Err(ConvertError::Unsupported("this auth request"))
        );
        let attrs = InternalRaftRequest {
            member_attr_set: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(internal_to_write(&attrs), Ok(mvcc::WriteRequest::Noop));
    }

    #[test]
    fn nesting_is_bounded() {
        let mut t = pb::TxnRequest::default();
        for _ in 0..MAX_TXN_DEPTH - 1 {
            t = pb::TxnRequest {
                success: vec![pb::RequestOp {
                    request: Some(pb::request_op::Request::RequestTxn(t)),
                }],
                ..Default::default()
            };
        }
        assert!(txn_from_pb(&t).is_ok());
        let deeper = pb::TxnRequest {
            failure: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestTxn(t)),
            }],
            ..Default::default()
        };
        assert_eq!(txn_from_pb(&deeper), Err(ConvertError::TxnTooDeep));
    }

    #[test]
    fn responses_convert_with_nested_revision_headers() {
        let resp = mvcc::TxnResponse {
            header_revision: 12,
            succeeded: true,
            responses: vec![
                mvcc::ResponseOp::Put(mvcc::PutResponse {
                    header_revision: 12,
                    prev_kv: Some(mvcc::KeyValue {
                        key: b"k".to_vec(),
                        create_revision: 2,
                        mod_revision: 5,
                        version: 3,
                        value: b"old".to_vec(),
                        lease: 0,
                    }),
                }),
                mvcc::ResponseOp::Range(mvcc::RangeResponse {
                    header_revision: 12,
                    kvs: vec![],
                    more: true,
                    count: 8,
                }),
            ],
        };
        let p = txn_to_pb(resp);
        assert!(p.succeeded);
        assert_eq!(p.header.unwrap().revision, 12);
        match &p.responses[0].response {
            Some(pb::response_op::Response::ResponsePut(put)) => {
                assert_eq!(put.header.as_ref().unwrap().revision, 12);
                let prev = put.prev_kv.as_ref().unwrap();
                assert_eq!(&prev.value[..], b"old");
                assert_eq!(
                    (prev.create_revision, prev.mod_revision, prev.version),
                    (2, 5, 3)
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        match &p.responses[1].response {
            Some(pb::response_op::Response::ResponseRange(r)) => {
                assert!(r.more);
                assert_eq!(r.count, 8);
            }
            other => panic!("unexpected {other:?}"),
        }
        let ev = event_to_pb(mvcc::Event {
            kind: mvcc::EventType::Delete,
            kv: mvcc::KeyValue {
                key: b"z".to_vec(),
                mod_revision: 4,
                ..Default::default()
            },
            prev_kv: None,
        });
        assert_eq!(ev.r#type, mvccpb::event::EventType::Delete as i32);
        assert_eq!(ev.kv.unwrap().mod_revision, 4);
        let kv = mvcc::KeyValue {
            key: b"a".to_vec(),
            create_revision: 1,
            mod_revision: 2,
            version: 3,
            value: b"b".to_vec(),
            lease: 4,
        };
        assert_eq!(kv_from_pb(&kv_to_pb(kv.clone())), kv);
    }
}
