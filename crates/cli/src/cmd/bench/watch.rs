//! The watch workload: watchers on one key spread over several watch streams, putters writing
//! values that carry their send time, and the latency from each put to each delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quorum_api::etcdserverpb::{
    watch_request, PutRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use super::driver::{describe, Budget, Progress};
use super::keys::{self, Rng};
use super::options::Plan;
use super::report::{status_kind, Report, Stats};
use crate::connect::Conn;
use crate::error::{CliError, Result};

/// Time allowed for every watcher to be created.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed, after the last put, for the last events to arrive.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The key every watcher watches and every putter writes.
fn watch_key(plan: &Plan) -> Vec<u8> {
    format!("{}bench-watch", plan.key_prefix).into_bytes()
}

/// One watch stream: its request sender (the stream lives as long as it does) and responses.
struct Stream {
    _tx: mpsc::Sender<WatchRequest>,
    rx: tonic::Streaming<WatchResponse>,
}

/// Opens a stream on `conn` with `n` watchers of `key`, waiting until all are created.
async fn open_stream(conn: &Conn, key: &[u8], n: usize) -> Result<Stream> {
    // Every create request is queued before the call: a server may send the response headers
    // only with its first message, so awaiting the call first could wait forever.
    let (tx, rx) = mpsc::channel::<WatchRequest>(n + 1);
    for _ in 0..n {
        let create = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: key.to_vec().into(),
                    ..Default::default()
                },
            )),
        };
        tx.send(create)
            .await
            .map_err(|_| CliError::usage("the watch request stream closed"))?;
    }
    let mut client = conn.watch();
    let mut rx = conn
        .call(
            "watch",
            client.watch(tokio_stream::wrappers::ReceiverStream::new(rx)),
        )
        .await?;
    let mut created = 0;
    while created < n {
        match rx.next().await {
            Some(Ok(r)) if r.canceled => {
                return Err(CliError::Server {
                    message: format!("watch canceled at creation: {}", r.cancel_reason),
                    hint: "",
                })
            }
            Some(Ok(r)) if r.created => created += 1,
            Some(Ok(_)) => {}
            Some(Err(s)) => return Err(conn.status(s)),
            None => {
                return Err(CliError::Server {
                    message: "the server closed a watch stream".into(),
                    hint: "",
                })
            }
        }
    }
    Ok(Stream { _tx: tx, rx })
}

/// Runs the watch workload.
pub async fn run(plan: &Plan, conns: &[Conn]) -> Result<Report> {
    assert!(!conns.is_empty(), "open_conns opens at least one");
    let key = watch_key(plan);
    let timeout = conns[0].command_timeout;

    // Watchers: `watchers` split as evenly as possible over `watch_streams` streams.
    let mut streams = Vec::with_capacity(plan.watch_streams);
    let opening = async {
        for i in 0..plan.watch_streams {
            let n = plan.watchers / plan.watch_streams
                + usize::from(i < plan.watchers % plan.watch_streams);
            streams.push(open_stream(&conns[i % conns.len()], &key, n).await?);
        }
        Ok::<(), CliError>(())
    };
    tokio::time::timeout(CREATE_TIMEOUT, opening)
        .await
        .map_err(|_| CliError::Timeout {
            what: "creating the watchers",
            timeout: CREATE_TIMEOUT,
        })??;

    let budget = Arc::new(Budget::new(plan.stop, plan.rate));
    let progress = Progress::start(plan, budget.clone(), "puts");

    // Receivers: one task per stream, recording put-to-delivery latency of every event.
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<u64>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut receivers = Vec::with_capacity(streams.len());
    for s in streams {
        let events_tx = events_tx.clone();
        let mut stop = stop_rx.clone();
        receivers.push(tokio::spawn(async move {
            // Moves the whole stream in: were only `rx` captured, the request sender would be
            // dropped here, closing our side, and a server may then end the stream.
            let mut s = s;
            let mut stats = Stats::new()?;
            loop {
                let msg = tokio::select! {
                    m = s.rx.next() => m,
                    _ = stop.changed() => break,
                };
                let Some(msg) = msg else {
                    break;
                };
                let resp = match msg {
                    Ok(r) => r,
                    Err(st) => {
                        stats.record_error(&format!("watch stream: {}", status_kind(&st)));
                        break;
                    }
                };
                let now = keys::now_nanos();
                for ev in &resp.events {
                    match ev.kv.as_ref().and_then(|kv| keys::read_stamp(&kv.value)) {
                        Some(sent) => stats.record_us(now.saturating_sub(sent) / 1_000),
                        None => stats.record_error("event without a send time"),
                    }
                }
                if !resp.events.is_empty() && events_tx.send(resp.events.len() as u64).is_err() {
                    break;
                }
            }
            Ok::<Stats, CliError>(stats)
        }));
    }
    drop(events_tx);

    // Putters.
    let mut putters = Vec::with_capacity(plan.clients);
    for i in 0..plan.clients {
        let mut kv = conns[i % conns.len()].kv();
        let budget = budget.clone();
        let key = key.clone();
        let mut rng = Rng::new(0xCAFE ^ i as u64);
        let value = keys::value(&mut rng, plan.val_size);
        putters.push(tokio::spawn(async move {
            let mut stats = Stats::new()?;
            while budget.next().await.is_some() {
                let req = PutRequest {
                    key: key.clone().into(),
                    value: keys::stamp(value.clone()).into(),
                    ..Default::default()
                };
                let t0 = Instant::now();
                match tokio::time::timeout(timeout, kv.put(req)).await {
                    Ok(Ok(_)) => stats.record_ok(t0.elapsed()),
                    Ok(Err(s)) => stats.record_error(&format!("put: {}", status_kind(&s))),
                    Err(_) => stats.record_error("put: timeout (--command-timeout)"),
                }
                budget.finished();
            }
            Ok::<Stats, CliError>(stats)
        }));
    }
    let mut puts = Stats::new()?;
    for p in putters {
        match p.await {
            Ok(stats) => puts.merge(&stats?)?,
            Err(e) => puts.record_error(&format!("put task failed: {e}")),
        }
    }

    // Every successful put is due to every watcher.
    let expected = puts.ok.saturating_mul(plan.watchers as u64);
    let mut delivered = 0u64;
    let drain = async {
        while delivered < expected {
            match events_rx.recv().await {
                Some(n) => delivered += n,
                None => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
    let elapsed = budget.elapsed();
    drop(progress);

    // The receivers stop at the signal (or at once if all of them have ended already).
    let _ = stop_tx.send(true);
    let mut total = Stats::new()?;
    for r in receivers {
        match r.await {
            Ok(stats) => total.merge(&stats?)?,
            Err(e) => total.record_error(&format!("watch task failed: {e}")),
        }
    }
    if total.ok < expected {
        total.record_errors(
            "event not delivered (within 5 s of the last put)",
            expected - total.ok,
        );
    }
    for (k, n) in &puts.errors {
        total.record_errors(k, *n);
    }
    Ok(Report {
        workload: plan.workload.name(),
        params: format!("{}, {} puts", describe(plan), puts.ok),
        conns: plan.conns,
        clients: plan.clients,
        endpoints: Vec::new(),
        elapsed,
        stats: total,
        unit: "events",
    })
}
