//! The Watch service: one bidirectional stream carries many watches.
//!
//! Each gRPC stream is served by one task that owns the stream's watches. Every watch of the
//! stream is a watcher of the store delivering into one bounded channel shared by the stream;
//! the task forwards what arrives to the client, translating the store's watcher ids into the
//! stream's watch ids (chosen by the client with `watch_id`, or by the server: the smallest
//! unused id from 0 up, as etcd). A watcher whose channel is full does not block the store: it
//! becomes unsynced and the store replays it from history later ([`ensure_syncer`]).
//!
//! Guarantees, per watch: the `created` response comes first; events arrive in revision order,
//! each once; after a cancel request is answered no response of that watch follows; a watch
//! whose start revision is compacted is answered with `compact_revision` and cancelled.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use quorum_api::etcdserverpb as pb;
use quorum_api::etcdserverpb::watch_server::Watch;
use quorum_mvcc::WatchId;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::backend::Backend;
use super::common::header;
use super::syncer::ensure_syncer;
use crate::convert;

/// Responses buffered between the store and a stream's task (shared by its watches). A full
/// buffer makes the store mark the watcher unsynced; nothing is lost.
const STORE_BUFFER: usize = 1024;
/// Responses buffered between a stream's task and the gRPC transport.
const OUT_BUFFER: usize = 64;
/// Watches one stream may hold.
pub const MAX_WATCHES_PER_STREAM: usize = 10_000;
/// Interval of the progress notifications asked for with `progress_notify` (etcd: 10 min).
pub const PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_secs(600);

/// How often a stream opened with `hasleader` metadata checks that this member has a leader,
/// and how many checks in a row without one end it with `etcdserver: no leader` (etcd's
/// `monitorLeader`: every election timeout, three times), so that the client moves to a member
/// that has one instead of waiting on a partitioned member for events that do not come.
pub const LEADER_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// See [`LEADER_CHECK_INTERVAL`].
pub const MAX_NO_LEADER_CHECKS: u32 = 3;

/// etcd's message for a client-chosen watch id already in use on the stream.
const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
/// etcd's message for a watch whose range is empty (`range_end <= key`).
const EMPTY_RANGE: &str = "mvcc: watcher range is empty";

/// The Watch service over a member.
#[derive(Clone)]
pub struct WatchService<B: Backend> {
    b: B,
}

impl<B: Backend> WatchService<B> {
    /// The service over `b`.
    pub fn new(b: B) -> Self {
        WatchService { b }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<B: Backend> Watch for WatchService<B> {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        ensure_syncer(self.b.store());
        let who = super::authz::caller(&request);
        let require_leader = super::authz::requires_leader(request.metadata().as_ref());
        let inbound = request.into_inner();
        let (out_tx, out_rx) = mpsc::channel(OUT_BUFFER);
        let b = self.b.clone();
        tokio::spawn(async move {
            let mut s = StreamTask::new(b, out_tx);
            s.caller = who;
            s.require_leader = require_leader;
            s.run(inbound).await;
            s.close();
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }
}

/// One watch of a stream.
struct WatchEntry {
    store_id: WatchId,
    progress_notify: bool,
    /// Something was sent for this watch since the last progress tick.
    active: bool,
}

/// The task serving one stream.
struct StreamTask<B: Backend> {
    b: B,
    out: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    store_tx: mpsc::Sender<quorum_mvcc::WatchResponse>,
    store_rx: mpsc::Receiver<quorum_mvcc::WatchResponse>,
    /// Stream watch id → watch. Invariant: `by_store` is exactly its inverse.
    watches: BTreeMap<i64, WatchEntry>,
    by_store: HashMap<WatchId, i64>,
    /// Next candidate for a server-chosen id.
    next_id: i64,
    /// Who opened the stream (auth): every watch created on it is checked for them.
    caller: super::authz::Caller,
    /// The stream was opened with `hasleader` metadata ([`LEADER_CHECK_INTERVAL`]).
    require_leader: bool,
    /// Leader checks in a row that found none.
    no_leader_checks: u32,
}

/// Whether the stream goes on.
enum Flow {
    Continue,
    Stop,
}

impl<B: Backend> StreamTask<B> {
    fn new(b: B, out: mpsc::Sender<Result<pb::WatchResponse, Status>>) -> Self {
        let (store_tx, store_rx) = mpsc::channel(STORE_BUFFER);
        StreamTask {
            b,
            out,
            store_tx,
            store_rx,
            watches: BTreeMap::new(),
            by_store: HashMap::new(),
            next_id: 0,
            caller: super::authz::Caller::default(),
            require_leader: false,
            no_leader_checks: 0,
        }
    }

    /// One leader check of a `hasleader` stream: ends it once this member has been without a
    /// leader for [`MAX_NO_LEADER_CHECKS`] checks in a row.
    async fn on_leader_check(&mut self) -> Flow {
        if self.b.status().leader != 0 {
            self.no_leader_checks = 0;
            return Flow::Continue;
        }
        self.no_leader_checks += 1;
        if self.no_leader_checks < MAX_NO_LEADER_CHECKS {
            return Flow::Continue;
        }
        let status: Status = crate::error::ServerError::NoLeader.into();
        let _ = self.out.send(Err(status)).await;
        Flow::Stop
    }

    async fn run(&mut self, mut inbound: Streaming<pb::WatchRequest>) {
        let mut progress = tokio::time::interval(PROGRESS_NOTIFY_INTERVAL);
        progress.tick().await;
        let mut leader_check = tokio::time::interval(LEADER_CHECK_INTERVAL);
        leader_check.tick().await;
        let mut inbound_open = true;
        loop {
            let flow = tokio::select! {
                msg = inbound.message(), if inbound_open => match msg {
                    Ok(Some(req)) => self.on_request(req).await,
                    // The client half-closed its side: as etcd, keep delivering events to the
                    // watches it created until it goes away (`out.closed()` below).
                    Ok(None) => {
                        inbound_open = false;
                        Flow::Continue
                    }
                    Err(_) => Flow::Stop,
                },
                Some(resp) = self.store_rx.recv() => self.on_store(resp).await,
                _ = progress.tick() => self.on_progress_tick(),
                _ = leader_check.tick(), if self.require_leader => self.on_leader_check().await,
                _ = self.out.closed() => Flow::Stop,
            };
            if let Flow::Stop = flow {
                return;
            }
            debug_assert_eq!(self.watches.len(), self.by_store.len());
        }
    }

    /// Cancels every watcher of the stream in the store.
    fn close(&mut self) {
        for (_, w) in std::mem::take(&mut self.watches) {
            self.b.store().cancel_watch(w.store_id);
        }
        self.by_store.clear();
    }

    async fn send(&self, resp: pb::WatchResponse) -> Flow {
        match self.out.send(Ok(resp)).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop,
        }
    }

    fn current_header(&self) -> pb::ResponseHeader {
        let rev = self.b.store().current_revision().unwrap_or(0);
        header(&self.b, rev)
    }

    async fn on_request(&mut self, req: pb::WatchRequest) -> Flow {
        use pb::watch_request::RequestUnion as U;
        match req.request_union {
            Some(U::CreateRequest(c)) => self.create(c).await,
            Some(U::CancelRequest(c)) => self.cancel(c.watch_id).await,
            Some(U::ProgressRequest(_)) => self.progress().await,
            None => Flow::Continue,
        }
    }

    async fn create(&mut self, mut c: pb::WatchCreateRequest) -> Flow {
        // etcd's conventions: no key is the smallest key, "\0" as end is "every key >= key".
        if c.key.is_empty() {
            c.key = vec![0u8].into();
        }
        let reject = |id: i64, reason: String, hdr: pb::ResponseHeader| pb::WatchResponse {
            header: Some(hdr),
            watch_id: id,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..Default::default()
        };
        let requested = c.watch_id;
        if !(c.range_end.is_empty() || c.range_end.as_ref() == [0u8])
            && c.key.as_ref() >= c.range_end.as_ref()
        {
            let r = reject(requested, EMPTY_RANGE.to_string(), self.current_header());
            return self.send(r).await;
        }
        // etcd's isWatchPermitted: READ on the watched range, else a canceled creation with
        // the invalid watch id -1.
        let access = super::authz::Access {
            key: &c.key,
            range_end: &c.range_end,
            perm: quorum_mvcc::PermType::Read,
        };
        if let Err(e) = super::authz::check(&self.b, &self.caller, &[access]) {
            let r = reject(-1, e.message().to_string(), self.current_header());
            return self.send(r).await;
        }
        if requested != 0 && self.watches.contains_key(&requested) {
            let r = reject(requested, DUPLICATE_ID.to_string(), self.current_header());
            return self.send(r).await;
        }
        if self.watches.len() >= MAX_WATCHES_PER_STREAM {
            let reason = format!(
                "etcdserver: too many watches on one stream (at most {MAX_WATCHES_PER_STREAM})"
            );
            let r = reject(requested, reason, self.current_header());
            return self.send(r).await;
        }
        let store_req = match convert::watch_create_from_pb(&c) {
            Ok(r) => r,
            Err(e) => {
                let r = reject(requested, e.to_string(), self.current_header());
                return self.send(r).await;
            }
        };
        let id = if requested != 0 {
            requested
        } else {
            while self.watches.contains_key(&self.next_id) {
                self.next_id = self.next_id.wrapping_add(1);
            }
            self.next_id
        };
        // The header revision of `created` must not be above what the watch will deliver
        // from: read it before the watcher exists.
        let hdr = self.current_header();
        let store_id = match self.b.store().watch(&store_req, self.store_tx.clone()) {
            Ok(sid) => sid,
            Err(e) => {
                let r = reject(requested, e.to_string(), hdr);
                return self.send(r).await;
            }
        };
        if requested == 0 {
            self.next_id = self.next_id.wrapping_add(1);
        }
        self.watches.insert(
            id,
            WatchEntry {
                store_id,
                progress_notify: c.progress_notify,
                active: false,
            },
        );
        self.by_store.insert(store_id, id);
        self.send(pb::WatchResponse {
            header: Some(hdr),
            watch_id: id,
            created: true,
            ..Default::default()
        })
        .await
    }

    async fn cancel(&mut self, id: i64) -> Flow {
        let Some(w) = self.watches.remove(&id) else {
            // etcd answers nothing for an unknown watch.
            return Flow::Continue;
        };
        self.by_store.remove(&w.store_id);
        self.b.store().cancel_watch(w.store_id);
        let hdr = self.current_header();
        self.send(pb::WatchResponse {
            header: Some(hdr),
            watch_id: id,
            canceled: true,
            ..Default::default()
        })
        .await
    }

    async fn progress(&mut self) -> Flow {
        if self.watches.is_empty() {
            // Nothing to be behind on: the current revision is safe (etcd: watch id -1).
            let hdr = self.current_header();
            return self
                .send(pb::WatchResponse {
                    header: Some(hdr),
                    watch_id: -1,
                    ..Default::default()
                })
                .await;
        }
        // Each watch gets its own notification, queued behind what it has not received yet,
        // so its revision is never ahead of the events delivered on it.
        for w in self.watches.values() {
            if let Err(e) = self.b.store().request_progress(w.store_id) {
                tracing::debug!("progress request on a vanished watcher: {e}");
            }
        }
        Flow::Continue
    }

    fn on_progress_tick(&mut self) -> Flow {
        for w in self.watches.values_mut() {
            if w.progress_notify && !w.active {
                let _ = self.b.store().request_progress(w.store_id);
            }
            w.active = false;
        }
        Flow::Continue
    }

    async fn on_store(&mut self, r: quorum_mvcc::WatchResponse) -> Flow {
        let Some(&id) = self.by_store.get(&r.watch_id) else {
            // A watch cancelled by the client: what was already queued for it is dropped.
            return Flow::Continue;
        };
        if r.canceled {
            self.by_store.remove(&r.watch_id);
            self.watches.remove(&id);
        } else if let Some(w) = self.watches.get_mut(&id) {
            w.active = true;
        }
        let resp = pb::WatchResponse {
            header: Some(header(&self.b, r.header_revision)),
            watch_id: id,
            created: false,
            canceled: r.canceled,
            compact_revision: r.compact_revision,
            cancel_reason: r.cancel_reason,
            fragment: r.fragment,
            events: r.events.into_iter().map(convert::event_to_pb).collect(),
        };
        self.send(resp).await
    }
}
