//! The apply path: executes committed write requests inside one redb write transaction, keeping
//! the in-memory key index in step with the `history` table.
//!
//! Every request is fully validated against the state before it mutates anything, so a request
//! that fails leaves no trace and consumes no revision (etcd's `checkRequests` + apply).

use crate::error::MvccError;
use crate::index::{KeyIndex, Rev};
use crate::read::{self, read_index, write_index};
use crate::schema::*;
use crate::types::*;
use crate::validate;
use redb::{ReadableTable, Table, WriteTransaction};
use std::sync::RwLock;

/// etcd's `MaxLeaseTTL` (seconds).
pub(crate) const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// Changes to report to the in-memory lessor once the batch is committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LeaseChange {
    /// A lease was granted with this TTL.
    Granted(LeaseId, i64),
    /// A lease was revoked.
    Revoked(LeaseId),
}

/// Which watch events the apply path collects (decided from the watchers present when the
/// batch starts; watchers the batch did not collect enough for catch up from the store).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventsMode {
    /// No watcher: collect nothing.
    None,
    /// Events without previous values.
    NoPrev,
    /// Events with previous values.
    WithPrev,
}

/// Options the apply path needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ApplyLimits {
    pub max_txn_ops: usize,
    pub min_lease_ttl: i64,
}

/// The state tables of one write transaction plus the revision bookkeeping.
pub(crate) struct Writer<'t> {
    /// Every stored revision, by revision.
    pub history: Table<'t, (u64, u64), &'static [u8]>,
    /// The key index over `history` (changed together with it).
    pub index: &'t RwLock<KeyIndex>,
    /// Encoding buffer for `history` values.
    buf: Vec<u8>,
    pub meta: Table<'t, &'static str, u64>,
    pub lease: Table<'t, i64, (i64, i64)>,
    pub lease_keys: Table<'t, (i64, &'static [u8]), ()>,
    pub alarm: Table<'t, (u64, i32), ()>,
    /// The auth records.
    pub auth_table: crate::auth::AuthTable<'t>,
    /// The auth state as of the request being applied (copied on write).
    pub auth: std::sync::Arc<crate::auth::AuthState>,
    /// Whether `auth` changed in this batch (the store publishes it after the commit).
    pub auth_changed: bool,
    /// Tokens assigned by `Authenticate` requests of this batch.
    pub tokens: Vec<crate::auth::AssignedToken>,
    /// Current revision (last completed write).
    pub current: u64,
    /// Logical compaction revision.
    pub compact: u64,
    /// Sub-revision of the next write within the request being applied.
    sub: u64,
    /// Events of the whole batch, in revision order.
    pub events: Vec<Event>,
    /// Lease changes of the whole batch.
    pub lease_changes: Vec<LeaseChange>,
    /// Which events to collect.
    pub events_mode: EventsMode,
    limits: ApplyLimits,
}

pub(crate) fn meta_get<T: ReadableTable<&'static str, u64>>(
    meta: &T,
    name: &str,
) -> Result<Option<u64>, MvccError> {
    Ok(meta.get(name)?.map(|g| g.value()))
}

impl<'t> Writer<'t> {
    /// Opens every table of `txn`.
    pub(crate) fn open(
        txn: &'t WriteTransaction,
        index: &'t RwLock<KeyIndex>,
        limits: ApplyLimits,
    ) -> Result<Self, MvccError> {
        let meta = txn.open_table(META)?;
        let current = meta_get(&meta, META_CURRENT_REV)?.unwrap_or(INITIAL_REVISION);
        let compact = meta_get(&meta, META_COMPACT_REV)?.unwrap_or(0);
        Ok(Writer {
            history: txn.open_table(HISTORY)?,
            index,
            buf: Vec::new(),
            meta,
            lease: txn.open_table(LEASE)?,
            lease_keys: txn.open_table(LEASE_KEYS)?,
            alarm: txn.open_table(ALARM)?,
            auth_table: txn.open_table(AUTH)?,
            auth: std::sync::Arc::new(crate::auth::AuthState::default()),
            auth_changed: false,
            tokens: Vec::new(),
            current,
            compact,
            sub: 0,
            events: Vec::new(),
            lease_changes: Vec::new(),
            events_mode: EventsMode::WithPrev,
            limits,
        })
    }

    /// Writes the revision counters back to `meta`.
    pub(crate) fn save_counters(&mut self) -> Result<(), MvccError> {
        self.meta.insert(META_CURRENT_REV, self.current)?;
        self.meta.insert(META_COMPACT_REV, self.compact)?;
        Ok(())
    }

    fn alarm_active(&self, a: AlarmType) -> Result<bool, MvccError> {
        for item in self.alarm.iter()? {
            let (k, _) = item?;
            if k.value().1 == alarm_code(a) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Applies one request. On error nothing was written.
    pub(crate) fn apply(
        &mut self,
        index: u64,
        req: &WriteRequest,
    ) -> Result<WriteResponse, MvccError> {
        debug_assert_eq!(self.sub, 0);
        let corrupt = self.alarm_active(AlarmType::Corrupt)?;
        let nospace = self.alarm_active(AlarmType::Nospace)?;
        if corrupt && !matches!(req, WriteRequest::Noop | WriteRequest::Alarm(_)) {
            return Err(MvccError::Corrupt);
        }
        let resp = match req {
            WriteRequest::Noop => WriteResponse::Noop,
            WriteRequest::Range(r) => {
                validate::check_range(r)?;
                let rev = self.read_rev(r.revision)?;
                WriteResponse::Range(read::range(
                    self.index,
                    &self.history,
                    r,
                    rev,
                    self.current,
                )?)
            }
            WriteRequest::Put(p) => {
                validate::check_put(p)?;
                if nospace {
                    return Err(MvccError::NoSpace);
                }
                self.check_put_state(p)?;
                let mut resp = self.put(p)?;
                self.finish_request();
                resp.header_revision = rev_i64(self.current);
                WriteResponse::Put(resp)
            }
            WriteRequest::DeleteRange(d) => {
                validate::check_delete(d)?;
                let mut resp = self.delete_range(&d.key, &d.range_end, d.prev_kv)?;
                self.finish_request();
                resp.header_revision = rev_i64(self.current);
                WriteResponse::DeleteRange(resp)
            }
            WriteRequest::Txn(t) => {
                validate::check_txn(t, self.limits.max_txn_ops)?;
                if nospace && txn_has_puts(t) {
                    return Err(MvccError::NoSpace);
                }
                let path = self.txn_path(t)?;
                self.check_txn_state(t, &path)?;
                let mut resp = self.txn(t, &path)?;
                self.finish_request();
                resp.header_revision = rev_i64(self.current);
                WriteResponse::Txn(resp)
            }
            WriteRequest::Compaction(c) => {
                let rev = u64::try_from(c.revision).unwrap_or(0);
                if rev <= self.compact {
                    return Err(MvccError::Compacted);
                }
                if rev > self.current {
                    return Err(MvccError::FutureRevision);
                }
                self.compact = rev;
                WriteResponse::Compaction(CompactionResponse {
                    header_revision: rev_i64(self.current),
                })
            }
            WriteRequest::LeaseGrant(g) => {
                if nospace {
                    return Err(MvccError::NoSpace);
                }
                WriteResponse::LeaseGrant(self.lease_grant(index, g)?)
            }
            WriteRequest::LeaseRevoke(r) => {
                self.lease_revoke(r.id)?;
                self.finish_request();
                WriteResponse::LeaseRevoke(LeaseRevokeResponse {
                    header_revision: rev_i64(self.current),
                })
            }
            WriteRequest::LeaseCheckpoint(c) => {
                for cp in &c.checkpoints {
                    let existing = self.lease.get(cp.id)?.map(|g| g.value());
                    if let Some((ttl, _)) = existing {
                        self.lease.insert(cp.id, (ttl, cp.remaining_ttl))?;
                    }
                }
                WriteResponse::LeaseCheckpoint
            }
            WriteRequest::Alarm(a) => WriteResponse::Alarm(self.alarm(a)?),
            WriteRequest::Authorized(a) => {
                // etcd's ErrAuthOldRevision: the check before proposing saw an auth state that
                // has changed since; what it allowed may no longer be allowed.
                if self.auth.enabled() && a.auth_revision < self.auth.revision() {
                    return Err(MvccError::AuthOldRevision);
                }
                if matches!(a.request, WriteRequest::Authorized(_)) {
                    return Err(MvccError::InvalidAuthMgmt);
                }
                return self.apply(index, &a.request);
            }
            WriteRequest::Auth(r) => WriteResponse::Auth(self.auth_change(r)?),
        };
        debug_assert_eq!(self.sub, 0);
        Ok(resp)
    }

    /// Applies an auth change: on a copy of the state, written back only if it succeeded.
    fn auth_change(
        &mut self,
        r: &crate::auth::AuthRequest,
    ) -> Result<crate::auth::AuthResponse, MvccError> {
        let before = self.auth.revision();
        let mut next = (*self.auth).clone();
        let mut changed = Vec::new();
        next.apply(r, &mut changed)?;
        if let crate::auth::AuthRequest::Authenticate { name, token } = r {
            self.tokens.push(crate::auth::AssignedToken {
                token: token.clone(),
                user: name.clone(),
            });
        }
        if next.revision() != before {
            debug_assert_eq!(next.revision(), before + 1, "one revision per change");
            crate::auth::persist(&mut self.auth_table, &next, &changed)?;
            self.auth = std::sync::Arc::new(next);
            self.auth_changed = true;
        }
        Ok(crate::auth::AuthResponse {
            header_revision: rev_i64(self.current),
            auth_revision: self.auth.revision(),
        })
    }

    /// Ends a request: if it wrote anything, it used main revision `current + 1`.
    fn finish_request(&mut self) {
        if self.sub > 0 {
            self.current += 1;
            self.sub = 0;
        }
    }

    /// The revision etcd reports inside a txn: the txn's revision once it has written
    /// something, else the current one.
    fn txn_revision(&self) -> u64 {
        if self.sub > 0 {
            self.main()
        } else {
            self.current
        }
    }

    /// Main revision of the request being applied.
    fn main(&self) -> u64 {
        self.current + 1
    }

    /// Validates a read revision (0 = current) as etcd's `rangeKeys`.
    pub(crate) fn read_rev(&self, revision: i64) -> Result<u64, MvccError> {
        resolve_read_rev(revision, self.current, self.compact)
    }

    /// `checkRequestPut` against the state before the request.
    fn check_put_state(&self, p: &PutRequest) -> Result<(), MvccError> {
        if p.lease != 0 && self.lease.get(p.lease)?.is_none() {
            return Err(MvccError::LeaseNotFound);
        }
        if (p.ignore_value || p.ignore_lease) && self.live(&p.key).is_none() {
            return Err(MvccError::KeyNotFound);
        }
        Ok(())
    }

    /// The newest revision of `key` with its metadata, when it is live: `(rev, create,
    /// version, lease)`.
    fn live(&self, key: &[u8]) -> Option<(Rev, u64, i64, i64)> {
        let ix = read_index(self.index);
        let e = ix.get(key)?;
        e.live().map(|r| (r, e.create, e.version, e.lease))
    }

    /// The live key-value of `key`; `with_value` false leaves the value empty (no engine
    /// read: the index holds the rest).
    fn current_kv(&self, key: &[u8], with_value: bool) -> Result<Option<KeyValue>, MvccError> {
        let Some((rev, create, version, lease)) = self.live(key) else {
            return Ok(None);
        };
        if with_value {
            return Ok(Some(read::kv_at(&self.history, key, rev, false)?));
        }
        Ok(Some(KeyValue {
            key: key.to_vec(),
            create_revision: rev_i64(create),
            mod_revision: rev_i64(rev.main),
            version,
            value: Vec::new(),
            lease,
        }))
    }

    fn put(&mut self, p: &PutRequest) -> Result<PutResponse, MvccError> {
        let main = self.main();
        let with_value = p.prev_kv || p.ignore_value || self.events_mode == EventsMode::WithPrev;
        let prev = self.current_kv(&p.key, with_value)?;
        let (value, lease) = match &prev {
            Some(prev) => (
                if p.ignore_value {
                    prev.value.clone()
                } else {
                    p.value.clone()
                },
                if p.ignore_lease { prev.lease } else { p.lease },
            ),
            None => {
                // check_put_state guarantees this
                debug_assert!(!p.ignore_value && !p.ignore_lease);
                (p.value.clone(), p.lease)
            }
        };
        let (create_revision, version) = match &prev {
            Some(prev) => (
                u64::try_from(prev.create_revision).unwrap_or(0),
                prev.version.saturating_add(1),
            ),
            None => (main, 1),
        };
        let rec = Record::Put {
            create_revision,
            version,
            lease,
            value,
        };
        self.write_record(&p.key, &rec)?;
        let prev_lease = prev.as_ref().map_or(0, |kv| kv.lease);
        if prev_lease != lease {
            if prev_lease != 0 {
                self.lease_keys.remove((prev_lease, p.key.as_slice()))?;
            }
            if lease != 0 {
                self.lease_keys.insert((lease, p.key.as_slice()), ())?;
            }
        }
        let kv = rec
            .into_kv(&p.key, main)
            .ok_or_else(|| MvccError::CorruptData("put record decoded as tombstone".to_string()))?;
        if self.events_mode != EventsMode::None {
            self.events.push(Event {
                kind: EventType::Put,
                kv,
                prev_kv: if self.events_mode == EventsMode::WithPrev {
                    prev.clone()
                } else {
                    None
                },
            });
        }
        Ok(PutResponse {
            header_revision: 0,
            prev_kv: if p.prev_kv { prev } else { None },
        })
    }

    fn write_record(&mut self, key: &[u8], rec: &Record) -> Result<(), MvccError> {
        let (main, sub) = (self.main(), self.sub);
        let rev = Rev {
            main,
            sub: u32::try_from(sub).map_err(|_| {
                MvccError::Storage(format!("more than {} writes in one revision", u32::MAX))
            })?,
            tomb: matches!(rec, Record::Tombstone),
        };
        encode_history(key, rec, &mut self.buf)?;
        self.history.insert((main, sub), self.buf.as_slice())?;
        let live = match rec {
            Record::Tombstone => None,
            Record::Put {
                create_revision,
                version,
                lease,
                ..
            } => Some((*create_revision, *version, *lease)),
        };
        write_index(self.index).push(key, rev, live)?;
        self.sub += 1;
        Ok(())
    }

    fn delete_range(
        &mut self,
        key: &[u8],
        range_end: &[u8],
        want_prev: bool,
    ) -> Result<DeleteRangeResponse, MvccError> {
        let end = RangeEnd::from_request(range_end);
        // Values are read only when someone needs them (memory of a large delete).
        let with_values = want_prev || self.events_mode == EventsMode::WithPrev;
        let mut doomed: Vec<KeyValue> = Vec::new();
        let mut picked = Vec::new();
        read_index(self.index).scan(key, &end, u64::MAX, |k, r, e| {
            if with_values {
                picked.push((k.to_vec(), r));
            } else {
                doomed.push(read::meta_kv(k, r, e));
            }
            true
        });
        for (k, r) in picked {
            doomed.push(read::kv_at(&self.history, &k, r, false)?);
        }
        let deleted = i64::try_from(doomed.len()).unwrap_or(i64::MAX);
        for prev in &doomed {
            self.delete_key(prev)?;
        }
        Ok(DeleteRangeResponse {
            header_revision: 0,
            deleted,
            prev_kvs: if want_prev { doomed } else { Vec::new() },
        })
    }

    fn delete_key(&mut self, prev: &KeyValue) -> Result<(), MvccError> {
        let main = self.main();
        self.write_record(&prev.key, &Record::Tombstone)?;
        if prev.lease != 0 {
            self.lease_keys.remove((prev.lease, prev.key.as_slice()))?;
        }
        if self.events_mode != EventsMode::None {
            self.events.push(Event {
                kind: EventType::Delete,
                kv: KeyValue {
                    key: prev.key.clone(),
                    mod_revision: rev_i64(main),
                    ..Default::default()
                },
                prev_kv: (self.events_mode == EventsMode::WithPrev).then(|| prev.clone()),
            });
        }
        Ok(())
    }

    /// Evaluates every compare of the txn (and of the nested txns on the chosen path) against
    /// the state before the txn, as etcd's `compareToPath`.
    fn txn_path(&self, t: &TxnRequest) -> Result<Vec<bool>, MvccError> {
        let mut path = Vec::new();
        self.txn_path_into(t, &mut path)?;
        Ok(path)
    }

    fn txn_path_into(&self, t: &TxnRequest, path: &mut Vec<bool>) -> Result<(), MvccError> {
        let mut ok = true;
        for c in &t.compare {
            if !self.compare(c)? {
                ok = false;
                break;
            }
        }
        path.push(ok);
        for op in if ok { &t.success } else { &t.failure } {
            if let RequestOp::Txn(inner) = op {
                self.txn_path_into(inner, path)?;
            }
        }
        Ok(())
    }

    fn compare(&self, c: &Compare) -> Result<bool, MvccError> {
        let end = RangeEnd::from_request(&c.range_end);
        let mut all = true;
        let mut any = false;
        // Only a VALUE compare needs records; the index knows every other target.
        let mut picked = Vec::new();
        read_index(self.index).scan(&c.key, &end, u64::MAX, |k, r, e| {
            any = true;
            if c.target == CompareTarget::Value {
                picked.push((k.to_vec(), r));
                true
            } else {
                all = compare_kv(c, &read::meta_kv(k, r, e));
                all
            }
        });
        for (k, r) in picked {
            if !compare_kv(c, &read::kv_at(&self.history, &k, r, false)?) {
                all = false;
                break;
            }
        }
        if !any {
            // etcd: a missing key never matches a VALUE compare; otherwise compare zero values.
            if c.target == CompareTarget::Value {
                return Ok(false);
            }
            return Ok(compare_kv(c, &KeyValue::default()));
        }
        Ok(all)
    }

    /// `checkRequests` along the chosen path, before anything is written.
    fn check_txn_state(&self, t: &TxnRequest, path: &[bool]) -> Result<(), MvccError> {
        let mut pos = 0;
        self.check_txn_state_at(t, path, &mut pos, &mut Vec::new())
    }

    /// Whether `key` exists at this point of a txn, given the writes of the path before it
    /// (`earlier`, in execution order): the latest of them that touches `key` decides, else
    /// the store.
    fn exists_in_txn(&self, key: &[u8], earlier: &[&RequestOp]) -> bool {
        for op in earlier.iter().rev() {
            match op {
                RequestOp::Put(p) if p.key == key => return true,
                RequestOp::DeleteRange(d)
                    if RangeEnd::from_request(&d.range_end).contains(&d.key, key) =>
                {
                    return false
                }
                _ => {}
            }
        }
        self.live(key).is_some()
    }

    fn check_txn_state_at<'r>(
        &self,
        t: &'r TxnRequest,
        path: &[bool],
        pos: &mut usize,
        earlier: &mut Vec<&'r RequestOp>,
    ) -> Result<(), MvccError> {
        let ok = *path
            .get(*pos)
            .ok_or_else(|| MvccError::CorruptData("txn path too short".to_string()))?;
        *pos += 1;
        for op in if ok { &t.success } else { &t.failure } {
            match op {
                RequestOp::Range(r) => {
                    if r.revision > 0 {
                        self.read_rev(r.revision)?;
                    }
                }
                RequestOp::Put(p) => {
                    self.check_put_state(p)?;
                    // A key deleted earlier in the txn (a "\0" range end escapes etcd's
                    // interval check) has no value or lease to keep: refused before anything
                    // is written (etcd 3.5 panics there).
                    if (p.ignore_value || p.ignore_lease) && !self.exists_in_txn(&p.key, earlier) {
                        return Err(MvccError::KeyNotFound);
                    }
                    earlier.push(op);
                }
                RequestOp::DeleteRange(_) => earlier.push(op),
                RequestOp::Txn(inner) => self.check_txn_state_at(inner, path, pos, earlier)?,
            }
        }
        Ok(())
    }

    fn txn(&mut self, t: &TxnRequest, path: &[bool]) -> Result<TxnResponse, MvccError> {
        let mut pos = 0;
        let resp = self.txn_at(t, path, &mut pos)?;
        debug_assert_eq!(pos, path.len());
        Ok(resp)
    }

    fn txn_at(
        &mut self,
        t: &TxnRequest,
        path: &[bool],
        pos: &mut usize,
    ) -> Result<TxnResponse, MvccError> {
        let ok = *path
            .get(*pos)
            .ok_or_else(|| MvccError::CorruptData("txn path too short".to_string()))?;
        *pos += 1;
        let mut responses = Vec::new();
        for op in if ok { &t.success } else { &t.failure } {
            let r = match op {
                RequestOp::Range(r) => {
                    // Reads inside a txn see the txn's own earlier writes.
                    let rev = if r.revision > 0 {
                        u64::try_from(r.revision).unwrap_or(0)
                    } else {
                        u64::MAX
                    };
                    let header = self.txn_revision();
                    ResponseOp::Range(read::range(self.index, &self.history, r, rev, header)?)
                }
                RequestOp::Put(p) => {
                    let mut resp = self.put(p)?;
                    resp.header_revision = rev_i64(self.txn_revision());
                    ResponseOp::Put(resp)
                }
                RequestOp::DeleteRange(d) => {
                    let mut resp = self.delete_range(&d.key, &d.range_end, d.prev_kv)?;
                    resp.header_revision = rev_i64(self.txn_revision());
                    ResponseOp::DeleteRange(resp)
                }
                // etcd leaves the header of a nested txn response empty (revision 0)
                RequestOp::Txn(inner) => ResponseOp::Txn(self.txn_at(inner, path, pos)?),
            };
            responses.push(r);
        }
        Ok(TxnResponse {
            header_revision: 0,
            succeeded: ok,
            responses,
        })
    }

    fn lease_grant(
        &mut self,
        index: u64,
        g: &LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, MvccError> {
        if g.ttl > MAX_LEASE_TTL {
            return Err(MvccError::LeaseTtlTooLarge);
        }
        let id = if g.id == 0 {
            self.generate_lease_id(index)?
        } else {
            g.id
        };
        if self.lease.get(id)?.is_some() {
            return Err(MvccError::LeaseExist);
        }
        let ttl = g.ttl.max(self.limits.min_lease_ttl);
        self.lease.insert(id, (ttl, 0))?;
        self.lease_changes.push(LeaseChange::Granted(id, ttl));
        Ok(LeaseGrantResponse {
            header_revision: rev_i64(self.current),
            id,
            ttl,
        })
    }

    /// A positive id derived from the Raft index only (deterministic on every member).
    fn generate_lease_id(&self, index: u64) -> Result<LeaseId, MvccError> {
        let mut x = index.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        let mut id = i64::try_from(x & (i64::MAX as u64)).unwrap_or(1).max(1);
        // Bounded probing: leases are far fewer than the id space.
        for _ in 0..1024 {
            if self.lease.get(id)?.is_none() {
                return Ok(id);
            }
            id = if id == i64::MAX { 1 } else { id + 1 };
        }
        Err(MvccError::LeaseExist)
    }

    fn lease_revoke(&mut self, id: LeaseId) -> Result<(), MvccError> {
        if self.lease.get(id)?.is_none() {
            return Err(MvccError::LeaseNotFound);
        }
        let keys = lease_keys_of(&self.lease_keys, id)?;
        let with_value = self.events_mode == EventsMode::WithPrev;
        for key in &keys {
            if let Some(prev) = self.current_kv(key, with_value)? {
                debug_assert_eq!(prev.lease, id, "lease_keys out of sync with kv");
                self.delete_key(&prev)?;
            }
            self.lease_keys.remove((id, key.as_slice()))?;
        }
        self.lease.remove(id)?;
        self.lease_changes.push(LeaseChange::Revoked(id));
        Ok(())
    }

    fn alarm(&mut self, a: &AlarmRequest) -> Result<AlarmResponse, MvccError> {
        let mut alarms = Vec::new();
        match a.action {
            // etcd: GET filters by type, NONE meaning every alarm
            AlarmAction::Get => {
                alarms = list_alarms(&self.alarm)?
                    .into_iter()
                    .filter(|m| a.alarm == AlarmType::None || m.alarm == a.alarm)
                    .collect();
            }
            AlarmAction::Activate => {
                if a.alarm != AlarmType::None {
                    self.alarm.insert((a.member_id, alarm_code(a.alarm)), ())?;
                    alarms.push(AlarmMember {
                        member_id: a.member_id,
                        alarm: a.alarm,
                    });
                }
            }
            // etcd: exactly this member's alarm of this type, answered only if it existed
            AlarmAction::Deactivate => {
                if self
                    .alarm
                    .remove((a.member_id, alarm_code(a.alarm)))?
                    .is_some()
                {
                    alarms.push(AlarmMember {
                        member_id: a.member_id,
                        alarm: a.alarm,
                    });
                }
            }
        }
        Ok(AlarmResponse { alarms })
    }
}

/// Validates a read revision (<= 0 = current) as etcd's `rangeKeys`.
pub(crate) fn resolve_read_rev(
    revision: i64,
    current: u64,
    compact: u64,
) -> Result<u64, MvccError> {
    if revision <= 0 {
        return Ok(current);
    }
    let rev = u64::try_from(revision).unwrap_or(0);
    if rev > current {
        return Err(MvccError::FutureRevision);
    }
    if rev < compact {
        return Err(MvccError::Compacted);
    }
    Ok(rev)
}

/// Keys attached to lease `id`, in key order.
pub(crate) fn lease_keys_of<T: ReadableTable<(i64, &'static [u8]), ()>>(
    table: &T,
    id: LeaseId,
) -> Result<Vec<Vec<u8>>, MvccError> {
    let empty: &[u8] = &[];
    let iter = if id == i64::MAX {
        table.range((id, empty)..)?
    } else {
        table.range((id, empty)..(id + 1, empty))?
    };
    let mut keys = Vec::new();
    for item in iter {
        let (k, _) = item?;
        keys.push(k.value().1.to_vec());
    }
    Ok(keys)
}

/// Every active alarm.
pub(crate) fn list_alarms<T: ReadableTable<(u64, i32), ()>>(
    table: &T,
) -> Result<Vec<AlarmMember>, MvccError> {
    let mut out = Vec::new();
    for item in table.iter()? {
        let (k, _) = item?;
        let (member_id, code) = k.value();
        out.push(AlarmMember {
            member_id,
            alarm: alarm_from_code(code)?,
        });
    }
    Ok(out)
}

/// Whether the txn may write a value (etcd's quota cost > 0).
pub(crate) fn txn_has_puts(t: &TxnRequest) -> bool {
    t.success.iter().chain(t.failure.iter()).any(|op| match op {
        RequestOp::Put(_) => true,
        RequestOp::Txn(inner) => txn_has_puts(inner),
        _ => false,
    })
}

/// etcd's `compareKV`: a missing or mismatched operand compares against the zero value.
pub(crate) fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let ord = match c.target {
        CompareTarget::Value => {
            let v: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(v)
        }
        CompareTarget::Create => kv.create_revision.cmp(&match c.target_union {
            Some(TargetUnion::CreateRevision(r)) => r,
            _ => 0,
        }),
        CompareTarget::Mod => kv.mod_revision.cmp(&match c.target_union {
            Some(TargetUnion::ModRevision(r)) => r,
            _ => 0,
        }),
        CompareTarget::Version => kv.version.cmp(&match c.target_union {
            Some(TargetUnion::Version(r)) => r,
            _ => 0,
        }),
        CompareTarget::Lease => kv.lease.cmp(&match c.target_union {
            Some(TargetUnion::Lease(r)) => r,
            _ => 0,
        }),
    };
    match c.result {
        CompareResult::Equal => ord.is_eq(),
        CompareResult::NotEqual => !ord.is_eq(),
        CompareResult::Greater => ord.is_gt(),
        CompareResult::Less => ord.is_lt(),
    }
}
