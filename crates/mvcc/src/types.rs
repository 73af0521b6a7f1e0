//! Plain Rust mirrors of etcd v3's protobuf messages (`mvccpb`, `etcdserverpb`).
//!
//! Field names and enum discriminants match etcd's protobuf definitions exactly so the server
//! can convert between them mechanically.

/// A lease identifier (etcd `LeaseID`, int64). `0` means "no lease".
pub type LeaseId = i64;

/// `mvccpb.KeyValue`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// Revision of the last creation of this key.
    pub create_revision: i64,
    /// Revision of the last modification of this key.
    pub mod_revision: i64,
    /// Number of modifications since creation (1 after creation, reset by deletion).
    pub version: i64,
    /// The value.
    pub value: Vec<u8>,
    /// Attached lease, 0 for none.
    pub lease: i64,
}

/// `mvccpb.Event.EventType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum EventType {
    /// PUT = 0.
    Put = 0,
    /// DELETE = 1.
    Delete = 1,
}

/// `mvccpb.Event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventType,
    /// For a put the new key-value; for a delete the key with `mod_revision` set to the
    /// deletion revision (other fields zero, as etcd).
    pub kv: KeyValue,
    /// The key-value before this event, if requested and still available.
    pub prev_kv: Option<KeyValue>,
}

/// `RangeRequest.SortOrder`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(i32)]
pub enum SortOrder {
    /// NONE = 0.
    #[default]
    None = 0,
    /// ASCEND = 1.
    Ascend = 1,
    /// DESCEND = 2.
    Descend = 2,
}

/// `RangeRequest.SortTarget`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(i32)]
pub enum SortTarget {
    /// KEY = 0.
    #[default]
    Key = 0,
    /// VERSION = 1.
    Version = 1,
    /// CREATE = 2.
    Create = 2,
    /// MOD = 3.
    Mod = 3,
    /// VALUE = 4.
    Value = 4,
}

/// `etcdserverpb.RangeRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeRequest {
    /// First key (or the only key when `range_end` is empty).
    pub key: Vec<u8>,
    /// Exclusive end; empty = single key; `[0]` = every key >= `key`.
    pub range_end: Vec<u8>,
    /// Maximum number of keys returned, 0 = no limit.
    pub limit: i64,
    /// Read at this revision, 0 (or negative) = current.
    pub revision: i64,
    /// Sort order.
    pub sort_order: SortOrder,
    /// Sort target.
    pub sort_target: SortTarget,
    /// Serializable read (consistency is the server's business; ignored here).
    pub serializable: bool,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Lower bound on mod_revision (0 = none).
    pub min_mod_revision: i64,
    /// Upper bound on mod_revision (0 = none).
    pub max_mod_revision: i64,
    /// Lower bound on create_revision (0 = none).
    pub min_create_revision: i64,
    /// Upper bound on create_revision (0 = none).
    pub max_create_revision: i64,
}

/// `etcdserverpb.RangeResponse` (plus the header revision).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResponse {
    /// `header.revision`: the store revision the read was served at.
    pub header_revision: i64,
    /// Matching key-values.
    pub kvs: Vec<KeyValue>,
    /// True if more keys matched than `limit` allowed.
    pub more: bool,
    /// Number of keys in the range at the read revision (before min/max filters, as etcd).
    pub count: i64,
}

/// `etcdserverpb.PutRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutRequest {
    /// Key.
    pub key: Vec<u8>,
    /// Value.
    pub value: Vec<u8>,
    /// Lease to attach, 0 for none.
    pub lease: i64,
    /// Return the previous key-value.
    pub prev_kv: bool,
    /// Keep the current value (key must exist).
    pub ignore_value: bool,
    /// Keep the current lease (key must exist).
    pub ignore_lease: bool,
}

/// `etcdserverpb.PutResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutResponse {
    /// `header.revision` after the put.
    pub header_revision: i64,
    /// Previous key-value when requested and the key existed.
    pub prev_kv: Option<KeyValue>,
}

/// `etcdserverpb.DeleteRangeRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteRangeRequest {
    /// First key.
    pub key: Vec<u8>,
    /// Exclusive end, same conventions as [`RangeRequest::range_end`].
    pub range_end: Vec<u8>,
    /// Return the deleted key-values.
    pub prev_kv: bool,
}

/// `etcdserverpb.DeleteRangeResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteRangeResponse {
    /// `header.revision` after the delete.
    pub header_revision: i64,
    /// Number of keys deleted.
    pub deleted: i64,
    /// Deleted key-values when requested.
    pub prev_kvs: Vec<KeyValue>,
}

/// `Compare.CompareResult`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(i32)]
pub enum CompareResult {
    /// EQUAL = 0.
    #[default]
    Equal = 0,
    /// GREATER = 1.
    Greater = 1,
    /// LESS = 2.
    Less = 2,
    /// NOT_EQUAL = 3.
    NotEqual = 3,
}

/// `Compare.CompareTarget`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(i32)]
pub enum CompareTarget {
    /// VERSION = 0.
    #[default]
    Version = 0,
    /// CREATE = 1.
    Create = 1,
    /// MOD = 2.
    Mod = 2,
    /// VALUE = 3.
    Value = 3,
    /// LEASE = 4.
    Lease = 4,
}

/// `Compare.target_union` (a protobuf oneof).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetUnion {
    /// `version`.
    Version(i64),
    /// `create_revision`.
    CreateRevision(i64),
    /// `mod_revision`.
    ModRevision(i64),
    /// `value`.
    Value(Vec<u8>),
    /// `lease`.
    Lease(i64),
}

/// `etcdserverpb.Compare`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compare {
    /// Comparison operator.
    pub result: CompareResult,
    /// Which field is compared.
    pub target: CompareTarget,
    /// Key (or first key of the range).
    pub key: Vec<u8>,
    /// The operand; when absent or of another kind than `target`, the zero value is used (as etcd).
    pub target_union: Option<TargetUnion>,
    /// Range end: when set, every key in `[key, range_end)` must satisfy the compare.
    pub range_end: Vec<u8>,
}

/// `etcdserverpb.RequestOp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestOp {
    /// `request_range`.
    Range(RangeRequest),
    /// `request_put`.
    Put(PutRequest),
    /// `request_delete_range`.
    DeleteRange(DeleteRangeRequest),
    /// `request_txn`.
    Txn(TxnRequest),
}

/// `etcdserverpb.ResponseOp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseOp {
    /// `response_range`.
    Range(RangeResponse),
    /// `response_put`.
    Put(PutResponse),
    /// `response_delete_range`.
    DeleteRange(DeleteRangeResponse),
    /// `response_txn`.
    Txn(TxnResponse),
}

/// `etcdserverpb.TxnRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnRequest {
    /// All must hold for `success` to run, otherwise `failure` runs.
    pub compare: Vec<Compare>,
    /// Operations when every compare holds.
    pub success: Vec<RequestOp>,
    /// Operations otherwise.
    pub failure: Vec<RequestOp>,
}

/// `etcdserverpb.TxnResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnResponse {
    /// `header.revision` after the transaction.
    pub header_revision: i64,
    /// Whether the compares held.
    pub succeeded: bool,
    /// One response per executed operation.
    pub responses: Vec<ResponseOp>,
}

/// `etcdserverpb.CompactionRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionRequest {
    /// Compact every revision below this one.
    pub revision: i64,
    /// etcd waits for the physical compaction; here compaction is always logical at once and
    /// physical incrementally (see [`crate::Store::run_compaction`]).
    pub physical: bool,
}

/// `etcdserverpb.CompactionResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionResponse {
    /// `header.revision`.
    pub header_revision: i64,
}

/// `etcdserverpb.LeaseGrantRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseGrantRequest {
    /// Requested TTL in seconds (raised to the minimum TTL).
    pub ttl: i64,
    /// Lease id; 0 = generated deterministically from the Raft index.
    pub id: i64,
}

/// `etcdserverpb.LeaseGrantResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseGrantResponse {
    /// `header.revision`.
    pub header_revision: i64,
    /// Granted lease id.
    pub id: i64,
    /// Granted TTL in seconds.
    pub ttl: i64,
}

/// `etcdserverpb.LeaseRevokeRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseRevokeRequest {
    /// Lease to revoke.
    pub id: i64,
}

/// `etcdserverpb.LeaseRevokeResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseRevokeResponse {
    /// `header.revision` after the attached keys were deleted.
    pub header_revision: i64,
}

/// `etcdserverpb.LeaseCheckpoint`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseCheckpoint {
    /// Lease id.
    pub id: i64,
    /// Remaining TTL in seconds at the time of the checkpoint.
    pub remaining_ttl: i64,
}

/// `etcdserverpb.LeaseCheckpointRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseCheckpointRequest {
    /// Checkpoints to persist.
    pub checkpoints: Vec<LeaseCheckpoint>,
}

/// `etcdserverpb.LeaseTimeToLiveResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseTimeToLiveResponse {
    /// Lease id.
    pub id: i64,
    /// Remaining TTL in seconds; -1 when the lease does not exist (as etcd).
    pub ttl: i64,
    /// TTL granted at creation.
    pub granted_ttl: i64,
    /// Attached keys when requested, sorted.
    pub keys: Vec<Vec<u8>>,
}

/// `etcdserverpb.AlarmType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i32)]
pub enum AlarmType {
    /// NONE = 0 (with Get/Deactivate: every alarm).
    None = 0,
    /// NOSPACE = 1.
    Nospace = 1,
    /// CORRUPT = 2.
    Corrupt = 2,
}

/// `AlarmRequest.AlarmAction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum AlarmAction {
    /// GET = 0.
    Get = 0,
    /// ACTIVATE = 1.
    Activate = 1,
    /// DEACTIVATE = 2.
    Deactivate = 2,
}

/// `etcdserverpb.AlarmRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmRequest {
    /// What to do.
    pub action: AlarmAction,
    /// Member raising or clearing the alarm (0 = all members for Deactivate/Get).
    pub member_id: u64,
    /// Alarm kind.
    pub alarm: AlarmType,
}

/// `etcdserverpb.AlarmMember`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AlarmMember {
    /// Member with the alarm.
    pub member_id: u64,
    /// Alarm kind.
    pub alarm: AlarmType,
}

/// `etcdserverpb.AlarmResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlarmResponse {
    /// Alarms active after the request (for Activate/Deactivate: the ones changed, as etcd).
    pub alarms: Vec<AlarmMember>,
}

/// One replicated write, as carried by a committed Raft entry (etcd's `InternalRaftRequest`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteRequest {
    /// An entry with nothing for the store (empty entry, configuration change): only advances
    /// the consistent index.
    Noop,
    /// A linearizable range proposed through Raft (etcd's quorum read path); served at apply.
    Range(RangeRequest),
    /// Put.
    Put(PutRequest),
    /// DeleteRange.
    DeleteRange(DeleteRangeRequest),
    /// Txn.
    Txn(TxnRequest),
    /// Compaction.
    Compaction(CompactionRequest),
    /// LeaseGrant.
    LeaseGrant(LeaseGrantRequest),
    /// LeaseRevoke (proposed by clients, or by the leader when a lease expires).
    LeaseRevoke(LeaseRevokeRequest),
    /// LeaseCheckpoint (remaining TTLs persisted by the leader).
    LeaseCheckpoint(LeaseCheckpointRequest),
    /// Alarm.
    Alarm(AlarmRequest),
    /// A change of the auth state.
    Auth(crate::auth::AuthRequest),
    /// A request checked against the auth state of revision `auth_revision` before it was
    /// proposed: refused at apply with `AuthOldRevision` if auth is enabled and its revision
    /// moved since (a permission change raced with the request).
    Authorized(Box<AuthorizedRequest>),
}

/// A request with the auth revision its permission check saw. See
/// [`WriteRequest::Authorized`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizedRequest {
    /// Auth revision at the time of the check (never 0).
    pub auth_revision: u64,
    /// User the request was checked for (empty: none), for diagnostics.
    pub username: String,
    /// The request itself (never itself `Authorized`).
    pub request: WriteRequest,
}

/// The response to one [`WriteRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteResponse {
    /// Response to [`WriteRequest::Noop`].
    Noop,
    /// Range.
    Range(RangeResponse),
    /// Put.
    Put(PutResponse),
    /// DeleteRange.
    DeleteRange(DeleteRangeResponse),
    /// Txn.
    Txn(TxnResponse),
    /// Compaction.
    Compaction(CompactionResponse),
    /// LeaseGrant.
    LeaseGrant(LeaseGrantResponse),
    /// LeaseRevoke.
    LeaseRevoke(LeaseRevokeResponse),
    /// LeaseCheckpoint.
    LeaseCheckpoint,
    /// Alarm.
    Alarm(AlarmResponse),
    /// Auth change.
    Auth(crate::auth::AuthResponse),
}

/// `etcdserverpb.HashKVResponse` fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashKv {
    /// CRC-32C over every key-value revision visible in `(compact, hash_revision]`, plus the
    /// latest live version of each key at the compaction point.
    pub hash: u32,
    /// Compaction revision at the time of hashing.
    pub compact_revision: i64,
    /// Revision hashed up to.
    pub hash_revision: i64,
}
