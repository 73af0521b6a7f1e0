//! One client of the request/response workloads (put, range, txn-put, mixed,
//! lease-keepalive): its connection, its state, and one request at a time.

use std::collections::HashMap;

use quorum_api::etcdserverpb::{
    compare, kv_client::KvClient, request_op, response_op, Compare, LeaseGrantRequest,
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::keys::{self, Rng};
use super::options::{Plan, Workload};
use super::report::status_kind;
use crate::connect::Conn;
use crate::error::{CliError, Result};
use crate::range::key_range;

/// Revisions remembered per client for compare-and-swap; the map is cleared when full (the
/// next swap of a forgotten key fails once and learns the revision again).
pub const MAX_CAS_KEYS: usize = 100_000;
/// TTL of the leases of the lease-keepalive workload, in seconds.
pub const BENCH_LEASE_TTL: i64 = 60;

/// What one request came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done.
    Ok,
    /// A transaction whose compare failed (it still read the key).
    CasFailed,
    /// Failed, with the error's kind.
    Err(String),
}

fn err(s: tonic::Status) -> Outcome {
    Outcome::Err(status_kind(&s))
}

/// A lease kept alive over its own stream.
struct KeepAlive {
    id: i64,
    tx: tokio::sync::mpsc::Sender<LeaseKeepAliveRequest>,
    rx: tonic::Streaming<LeaseKeepAliveResponse>,
}

/// One client.
pub struct Client {
    plan: Plan,
    kv: KvClient<Channel>,
    rng: Rng,
    value: Vec<u8>,
    cas_revs: HashMap<u64, i64>,
    lease: Option<KeepAlive>,
}

impl Client {
    /// A client of `plan` on `conn`; the lease-keepalive workload grants its lease here.
    pub async fn new(plan: &Plan, conn: &Conn, seed: u64) -> Result<Client> {
        let mut rng = Rng::new(seed);
        let value = keys::value(&mut rng, plan.val_size);
        let lease = if plan.workload == Workload::LeaseKeepalive {
            Some(open_keep_alive(conn).await?)
        } else {
            None
        };
        Ok(Client {
            plan: plan.clone(),
            kv: conn.kv(),
            rng,
            value,
            cas_revs: HashMap::new(),
            lease,
        })
    }

    /// Sends request number `op` of the run and waits for its answer.
    pub async fn request(&mut self, op: u64) -> Outcome {
        match self.plan.workload {
            Workload::Put => self.put(op).await,
            Workload::Range => self.range(op).await,
            Workload::TxnPut => self.cas(op).await,
            Workload::Mixed => {
                if self.rng.chance(self.plan.read_ratio) {
                    self.range(op).await
                } else {
                    self.put(op).await
                }
            }
            Workload::LeaseKeepalive => self.keep_alive().await,
            Workload::Watch => Outcome::Err("watch is not a request workload".into()),
        }
    }

    fn key_of(&mut self, op: u64) -> (u64, Vec<u8>) {
        let p = &self.plan;
        let idx = keys::key_index(&mut self.rng, p.sequential_keys, p.key_space, op);
        (idx, keys::key(&p.key_prefix, p.key_size, idx))
    }

    async fn put(&mut self, op: u64) -> Outcome {
        let (_, key) = self.key_of(op);
        let req = PutRequest {
            key: key.into(),
            value: self.value.clone().into(),
            ..Default::default()
        };
        match self.kv.put(req).await {
            Ok(_) => Outcome::Ok,
            Err(s) => err(s),
        }
    }

    async fn range(&mut self, op: u64) -> Outcome {
        let (key, range_end) = if self.plan.range_prefix {
            key_range(&self.plan.key_prefix, None, true, false)
        } else {
            (self.key_of(op).1, Vec::new())
        };
        let req = RangeRequest {
            key: key.into(),
            range_end: range_end.into(),
            limit: self.plan.range_limit,
            serializable: self.plan.serializable,
            ..Default::default()
        };
        match self.kv.range(req).await {
            Ok(_) => Outcome::Ok,
            Err(s) => err(s),
        }
    }

    /// Put the key if its mod revision is the last one this client saw (0: absent), else read
    /// it to learn the current one.
    async fn cas(&mut self, op: u64) -> Outcome {
        let (idx, key) = self.key_of(op);
        let expected = self.cas_revs.get(&idx).copied().unwrap_or(0);
        let put = RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: key.clone().into(),
                value: self.value.clone().into(),
                ..Default::default()
            })),
        };
        let read = RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest {
                key: key.clone().into(),
                ..Default::default()
            })),
        };
        let req = TxnRequest {
            compare: vec![Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Mod as i32,
                key: key.into(),
                range_end: Vec::new().into(),
                target_union: Some(compare::TargetUnion::ModRevision(expected)),
            }],
            success: vec![put],
            failure: vec![read],
        };
        let resp = match self.kv.txn(req).await {
            Ok(r) => r.into_inner(),
            Err(s) => return err(s),
        };
        if self.cas_revs.len() >= MAX_CAS_KEYS {
            self.cas_revs.clear();
        }
        if resp.succeeded {
            let rev = resp.header.map(|h| h.revision).unwrap_or(0);
            self.cas_revs.insert(idx, rev);
            return Outcome::Ok;
        }
        let current = resp.responses.first().and_then(|r| match &r.response {
            Some(response_op::Response::ResponseRange(rr)) => {
                Some(rr.kvs.first().map(|kv| kv.mod_revision).unwrap_or(0))
            }
            _ => None,
        });
        self.cas_revs.insert(idx, current.unwrap_or(0));
        Outcome::CasFailed
    }

    async fn keep_alive(&mut self) -> Outcome {
        let Some(ka) = self.lease.as_mut() else {
            return Outcome::Err("no lease".into());
        };
        if ka
            .tx
            .send(LeaseKeepAliveRequest { id: ka.id })
            .await
            .is_err()
        {
            return Outcome::Err("keep-alive stream closed".into());
        }
        match ka.rx.next().await {
            Some(Ok(r)) if r.ttl > 0 => Outcome::Ok,
            Some(Ok(_)) => Outcome::Err("lease expired".into()),
            Some(Err(s)) => err(s),
            None => Outcome::Err("keep-alive stream closed".into()),
        }
    }
}

async fn open_keep_alive(conn: &Conn) -> Result<KeepAlive> {
    let grant = conn
        .call(
            "lease grant",
            conn.lease().lease_grant(LeaseGrantRequest {
                ttl: BENCH_LEASE_TTL,
                id: 0,
            }),
        )
        .await?;
    if !grant.error.is_empty() {
        return Err(CliError::Server {
            message: grant.error,
            hint: "",
        });
    }
    // The first keep-alive is queued before the call: a server may send the response headers
    // only with its first message.
    let (tx, rx) = tokio::sync::mpsc::channel::<LeaseKeepAliveRequest>(1);
    tx.send(LeaseKeepAliveRequest { id: grant.id })
        .await
        .map_err(|_| CliError::usage("the keep-alive request stream closed"))?;
    let mut client = conn.lease();
    let mut rx = conn
        .call(
            "lease keep-alive",
            client.lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx)),
        )
        .await?;
    match tokio::time::timeout(conn.command_timeout, rx.next()).await {
        Ok(Some(Ok(_))) => {}
        Ok(Some(Err(s))) => return Err(conn.status(s)),
        Ok(None) => {
            return Err(CliError::Server {
                message: "the server closed the keep-alive stream".into(),
                hint: "",
            })
        }
        Err(_) => {
            return Err(CliError::Timeout {
                what: "lease keep-alive",
                timeout: conn.command_timeout,
            })
        }
    }
    Ok(KeepAlive {
        id: grant.id,
        tx,
        rx,
    })
}
