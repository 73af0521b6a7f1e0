//! Request checks that need no state, as etcd's `api/v3rpc/key.go` (`checkTxnRequest`,
//! `checkIntervals`, `checkPutRequest`...). They run again at apply so a request that skipped
//! the server's checks still cannot corrupt the store.

use crate::error::MvccError;
use crate::types::{DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};
use std::collections::BTreeSet;

/// `checkRangeRequest`.
pub fn check_range(r: &RangeRequest) -> Result<(), MvccError> {
    if r.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    Ok(())
}

/// `checkPutRequest`.
pub fn check_put(r: &PutRequest) -> Result<(), MvccError> {
    if r.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(MvccError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(MvccError::LeaseProvided);
    }
    Ok(())
}

/// `checkDeleteRequest`.
pub fn check_delete(r: &DeleteRangeRequest) -> Result<(), MvccError> {
    if r.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    Ok(())
}

/// `checkTxnRequest` followed by `checkIntervals` on both branches.
pub fn check_txn(r: &TxnRequest, max_txn_ops: usize) -> Result<(), MvccError> {
    check_txn_ops(r, max_txn_ops)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn check_txn_ops(r: &TxnRequest, max_txn_ops: usize) -> Result<(), MvccError> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len());
    if opc > max_txn_ops {
        return Err(MvccError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(MvccError::EmptyKey);
    }
    for op in r.success.iter().chain(r.failure.iter()) {
        match op {
            RequestOp::Range(x) => check_range(x)?,
            RequestOp::Put(x) => check_put(x)?,
            RequestOp::DeleteRange(x) => check_delete(x)?,
            RequestOp::Txn(x) => check_txn_ops(x, max_txn_ops)?,
        }
    }
    Ok(())
}

/// A deleted interval as etcd's `adt` affine interval: a point when `end` is `None`, else
/// `[start, end)` compared literally (so a `"\0"` end is not "unbounded" here, as in etcd).
#[derive(Clone)]
struct Interval {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Interval {
    fn contains(&self, p: &[u8]) -> bool {
        match &self.end {
            None => self.start.as_slice() == p,
            Some(end) => self.start.as_slice() <= p && p < end.as_slice(),
        }
    }
}

/// `checkIntervals`: no key is put twice, nor put and deleted, within one branch (including
/// nested transactions; the two branches of a nested txn may put the same key).
fn check_intervals(reqs: &[RequestOp]) -> Result<(BTreeSet<Vec<u8>>, Vec<Interval>), MvccError> {
    let mut dels: Vec<Interval> = reqs
        .iter()
        .filter_map(|r| match r {
            RequestOp::DeleteRange(d) => Some(Interval {
                start: d.key.clone(),
                end: (!d.range_end.is_empty()).then(|| d.range_end.clone()),
            }),
            _ => None,
        })
        .collect();
    let deleted = |dels: &[Interval], k: &[u8]| dels.iter().any(|d| d.contains(k));
    let mut puts: BTreeSet<Vec<u8>> = BTreeSet::new();
    for r in reqs {
        let RequestOp::Txn(t) = r else { continue };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if puts.contains(k) && !puts_then.contains(k) {
                return Err(MvccError::DuplicateKey);
            }
            if deleted(&dels, k) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for r in reqs {
        let RequestOp::Put(p) = r else { continue };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(MvccError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str) -> RequestOp {
        RequestOp::Put(PutRequest {
            key: k.into(),
            ..Default::default()
        })
    }
    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp::DeleteRange(DeleteRangeRequest {
            key: k.into(),
            range_end: end.into(),
            prev_kv: false,
        })
    }
    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }

    #[test]
    fn duplicate_puts_and_put_delete_overlaps_are_rejected() {
        let dup = txn(vec![put("a"), put("a")], vec![]);
        assert_eq!(check_txn(&dup, 128), Err(MvccError::DuplicateKey));
        let overlap = txn(vec![del("a", "c"), put("b")], vec![]);
        assert_eq!(check_txn(&overlap, 128), Err(MvccError::DuplicateKey));
        let outside = txn(vec![del("a", "c"), put("c")], vec![]);
        assert_eq!(check_txn(&outside, 128), Ok(()));
        let branches = txn(vec![put("a")], vec![put("a")]);
        assert_eq!(check_txn(&branches, 128), Ok(()));
        let nested_ok = txn(
            vec![RequestOp::Txn(txn(vec![put("x")], vec![put("x")]))],
            vec![],
        );
        assert_eq!(check_txn(&nested_ok, 128), Ok(()));
        let nested_dup = txn(
            vec![RequestOp::Txn(txn(vec![put("x")], vec![])), put("x")],
            vec![],
        );
        assert_eq!(check_txn(&nested_dup, 128), Err(MvccError::DuplicateKey));
        let nested_del = txn(
            vec![del("x", ""), RequestOp::Txn(txn(vec![put("x")], vec![]))],
            vec![],
        );
        assert_eq!(check_txn(&nested_del, 128), Err(MvccError::DuplicateKey));
    }

    #[test]
    fn limits_and_empty_keys() {
        let many = txn((0..129).map(|i| put(&format!("k{i}"))).collect(), vec![]);
        assert_eq!(check_txn(&many, 128), Err(MvccError::TooManyOps));
        assert_eq!(check_txn(&many, 129), Ok(()));
        let empty = txn(vec![put("")], vec![]);
        assert_eq!(check_txn(&empty, 128), Err(MvccError::EmptyKey));
        let p = PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        };
        assert_eq!(check_put(&p), Err(MvccError::ValueProvided));
    }
}
