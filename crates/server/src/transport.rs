//! The peer transport: persistent gRPC streams between members carrying batches of Raft
//! messages (each in an envelope with its group id), and chunked snapshot streams.
//!
//! Sending: one task per peer owns a bounded queue; it keeps one client stream open, packs
//! whatever is queued into one `Batch` per write, and reconnects with backoff. When the queue is
//! full or the peer is down, messages are dropped and the core is told the peer is unreachable:
//! Raft retransmits, so dropping is safe, while blocking would stall the member.
//!
//! Receiving: the `Peer` service checks the cluster id of every batch (a member of another
//! cluster is refused) and hands the messages to the core's inbox.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use quorum_api::peer as pb;
use quorum_api::peer::peer_client::PeerClient;
use quorum_api::peer::peer_server::Peer;
use quorum_raft::{GroupId, Message, NodeId};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::core::Input;
use crate::shell::Shared;
use crate::wire::{message_from_wire, message_to_wire};

/// Messages queued per peer before new ones are dropped.
pub const PEER_QUEUE: usize = 8192;
/// Upper bound of one batch on the wire.
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Snapshot chunk size.
pub const SNAPSHOT_CHUNK: usize = 1024 * 1024;
/// Largest message a peer may send us (batches are bounded by the sender to 8 MiB).
pub const MAX_PEER_MESSAGE: usize = 64 * 1024 * 1024;

/// A peer's sender: its queue and the URLs its task dials.
struct PeerSender {
    tx: mpsc::Sender<Message>,
    urls: Vec<String>,
}

/// Senders to every peer, by member id, and since when each is connected.
#[derive(Clone, Default)]
pub struct Peers {
    queues: Arc<std::sync::RwLock<HashMap<NodeId, PeerSender>>>,
    connected: Arc<std::sync::RwLock<HashMap<NodeId, std::time::Instant>>>,
}

impl Peers {
    /// Starts the sender task of a peer reachable at `urls` (replacing any earlier one).
    pub fn add(&self, shared: Arc<Shared>, peer: NodeId, urls: Vec<String>) {
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        if let Ok(mut q) = self.queues.write() {
            q.insert(
                peer,
                PeerSender {
                    tx,
                    urls: urls.clone(),
                },
            );
        }
        tokio::spawn(peer_sender(shared, peer, urls, rx));
    }

    /// Stops sending to `peer` (its task ends once its queue is dropped).
    pub fn remove(&self, peer: NodeId) {
        if let Ok(mut q) = self.queues.write() {
            q.remove(&peer);
        }
        self.set_connected(peer, false);
    }

    /// Makes the senders match the registry: one per member other than this one, dialing
    /// the member's current peer URLs.
    pub fn sync(&self, shared: &Arc<Shared>, registry: &crate::membership::Registry) {
        let current: HashMap<NodeId, Vec<String>> = match self.queues.read() {
            Ok(q) => q.iter().map(|(id, p)| (*id, p.urls.clone())).collect(),
            Err(_) => return,
        };
        for (id, urls) in &current {
            match registry.member(*id) {
                Some(m) if &m.peer_urls == urls => {}
                _ => {
                    info!("peer {id:x} left the membership or moved: stop sending to {urls:?}");
                    self.remove(*id);
                }
            }
        }
        for m in registry.members() {
            if m.id == shared.member_id {
                continue;
            }
            if current.get(&m.id) != Some(&m.peer_urls) {
                info!("peer {:x} joined the membership at {:?}", m.id, m.peer_urls);
                self.add(shared.clone(), m.id, m.peer_urls.clone());
            }
        }
    }

    /// Queues `m` for its recipient; returns false (and drops it) when that is impossible.
    pub fn send(&self, m: Message) -> bool {
        let q = match self.queues.read() {
            Ok(q) => q,
            Err(_) => return false,
        };
        match q.get(&m.to) {
            Some(p) => p.tx.try_send(m).is_ok(),
            None => false,
        }
    }

    /// How long this member has been connected to `peer` (`None`: not connected).
    pub fn connected_for(&self, peer: NodeId) -> Option<Duration> {
        self.connected
            .read()
            .ok()
            .and_then(|c| c.get(&peer).map(|t| t.elapsed()))
    }

    fn set_connected(&self, peer: NodeId, up: bool) {
        if let Ok(mut c) = self.connected.write() {
            if up {
                c.entry(peer).or_insert_with(std::time::Instant::now);
            } else {
                c.remove(&peer);
            }
        }
    }
}

/// The status a member answers a removed member with; the removed member recognises it and
/// stops.
pub fn removed_status() -> Status {
    Status::failed_precondition(crate::error::ServerError::Removed.to_string())
}

fn is_removed_status(s: &Status) -> bool {
    s.code() == tonic::Code::FailedPrecondition
        && s.message() == crate::error::ServerError::Removed.to_string()
}

/// How every connection to a peer is set up (Raft streams, snapshots, forwarded calls,
/// joining): `None` for a URL that is not one, or an `https://` one without `tls` (the
/// `--peer-*` TLS files, checked at start).
pub fn peer_endpoint(
    url: &str,
    tls: Option<&tonic::transport::ClientTlsConfig>,
) -> Option<tonic::transport::Endpoint> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
        .ok()?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5));
    if !url.starts_with("https://") {
        return Some(endpoint);
    }
    match tls.map(|t| endpoint.tls_config(t.clone())) {
        Some(Ok(e)) => Some(e),
        Some(Err(e)) => {
            warn!("peer {url}: TLS configuration refused: {e}");
            None
        }
        None => {
            warn!("peer {url} is https:// but this member has no --peer-cert-file/--peer-key-file/--peer-trusted-ca-file");
            None
        }
    }
}

async fn connect(
    urls: &[String],
    tls: Option<&tonic::transport::ClientTlsConfig>,
) -> Option<PeerClient<tonic::transport::Channel>> {
    for url in urls {
        let Some(endpoint) = peer_endpoint(url, tls) else {
            continue;
        };
        if let Ok(ch) = endpoint.connect().await {
            return Some(
                PeerClient::new(ch)
                    .max_decoding_message_size(MAX_PEER_MESSAGE)
                    .max_encoding_message_size(MAX_PEER_MESSAGE),
            );
        }
    }
    None
}

async fn peer_sender(
    shared: Arc<Shared>,
    peer: NodeId,
    urls: Vec<String>,
    mut rx: mpsc::Receiver<Message>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut was_connected = true;
    loop {
        if shared.is_stopped() || rx.is_closed() {
            shared.peers.set_connected(peer, false);
            return;
        }
        let Some(mut client) = connect(&urls, shared.peer_tls.as_ref()).await else {
            shared.peers.set_connected(peer, false);
            if was_connected {
                warn!("peer {peer:x} at {urls:?} is unreachable; retrying");
                was_connected = false;
            }
            // Drop what is queued: Raft retransmits, and stale messages are useless.
            let mut dropped = false;
            while rx.try_recv().is_ok() {
                dropped = true;
            }
            if dropped {
                shared.send_input(Input::Unreachable(peer));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
            continue;
        };
        // Introduce ourselves: a peer of another cluster refuses us here, and each side learns
        // the other's name and client URLs for the member list.
        let hello = pb::HelloRequest {
            cluster_id: shared.cluster_id,
            member_id: shared.member_id,
            name: shared.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            to_member: peer,
            client_urls: shared.client_urls.clone(),
        };
        match client.hello(hello).await {
            Ok(r) => {
                let r = r.into_inner();
                if r.member_id != peer {
                    warn!(
                        "peer at {urls:?} is member {:x}, expected {peer:x}; retrying",
                        r.member_id
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            Err(status) if is_removed_status(&status) => {
                warn!("peer {peer:x} says this member was removed from the cluster");
                shared.mark_removed();
                return;
            }
            Err(status) => {
                warn!("peer {peer:x} at {urls:?} refused us: {}", status.message());
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        if !was_connected {
            info!("peer {peer:x} is reachable again");
        }
        was_connected = true;
        shared.peers.set_connected(peer, true);
        backoff = Duration::from_millis(50);
        let (tx, batches) = mpsc::channel::<pb::Batch>(16);
        let call = tokio::spawn(async move {
            client
                .stream(tokio_stream::wrappers::ReceiverStream::new(batches))
                .await
        });
        // Pump: one batch per wake-up with everything queued.
        loop {
            let Some(first) = rx.recv().await else {
                shared.peers.set_connected(peer, false);
                return; // member stopping, or the peer left the membership
            };
            let mut size = 0usize;
            let mut msgs = Vec::with_capacity(16);
            let mut push = |m: Message, size: &mut usize| {
                *size += 64 + m.entries.iter().map(|e| e.data.len() + 24).sum::<usize>();
                msgs.push(pb::Envelope {
                    group_id: shared.group_id,
                    message: Some(message_to_wire(&m)),
                });
            };
            push(first, &mut size);
            while size < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(m) => push(m, &mut size),
                    Err(_) => break,
                }
            }
            let batch = pb::Batch {
                cluster_id: shared.cluster_id,
                from_member: shared.member_id,
                messages: msgs,
            };
            if tx.send(batch).await.is_err() {
                shared.send_input(Input::Unreachable(peer));
                break;
            }
        }
        shared.peers.set_connected(peer, false);
        match call.await {
            Ok(Err(status)) => debug!("stream to peer {peer:x} ended: {status}"),
            Ok(Ok(_)) => {}
            Err(e) => debug!("stream task to peer {peer:x} failed: {e}"),
        }
    }
}

/// Streams the store's current image to `to` along with the snapshot message `m`; reports
/// success or failure to the core.
pub fn send_snapshot(shared: Arc<Shared>, urls: Vec<String>, m: Message) {
    tokio::spawn(async move {
        let to = m.to;
        let ok = match stream_snapshot(&shared, &urls, &m).await {
            Ok(bytes) => {
                info!("sent snapshot ({bytes} bytes) to peer {to:x}");
                shared.metrics.snapshot_sent.inc();
                true
            }
            Err(e) => {
                warn!("sending snapshot to peer {to:x} failed: {e}");
                false
            }
        };
        shared.send_input(Input::SnapshotStatus { to, success: ok });
    });
}

async fn stream_snapshot(
    shared: &Arc<Shared>,
    urls: &[String],
    m: &Message,
) -> Result<u64, String> {
    let mut client = connect(urls, shared.peer_tls.as_ref())
        .await
        .ok_or_else(|| "peer unreachable".to_string())?;
    // Export on a blocking thread into a bounded channel of chunks: the image is never held
    // whole in memory.
    let (tx, mut rx) = mpsc::channel::<Result<Vec<u8>, String>>(4);
    let store = shared.store.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(SNAPSHOT_CHUNK),
        };
        let res = store
            .snapshot_export(&mut w)
            .map_err(|e| e.to_string())
            .and_then(|_| w.flush_chunk());
        if let Err(e) = res {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let header = message_to_wire(m);
    // The registry goes with the image: a member that catches up from a snapshot skips the
    // log entries that changed the membership.
    let membership = shared.registry().encode();
    let cluster_id = shared.cluster_id;
    let from = shared.member_id;
    let group = shared.group_id;
    let (ctx, crx) = mpsc::channel::<pb::SnapshotChunk>(2);
    let call = tokio::spawn(async move {
        client
            .snapshot(tokio_stream::wrappers::ReceiverStream::new(crx))
            .await
    });
    let mut offset = 0u64;
    let mut first = true;
    loop {
        let chunk = rx.recv().await;
        let (data, last) = match chunk {
            Some(Ok(d)) => (d, false),
            Some(Err(e)) => return Err(format!("exporting the store: {e}")),
            None => (Vec::new(), true),
        };
        let c = pb::SnapshotChunk {
            cluster_id,
            from_member: from,
            group_id: group,
            header: if first { Some(header.clone()) } else { None },
            offset,
            crc32c: crc32c::crc32c(&data),
            data: data.clone().into(),
            last,
            total_size: 0,
            membership: if first {
                membership.clone()
            } else {
                Default::default()
            },
        };
        first = false;
        offset += data.len() as u64;
        if ctx.send(c).await.is_err() {
            break;
        }
        if last {
            break;
        }
    }
    drop(ctx);
    let ack = call
        .await
        .map_err(|e| e.to_string())?
        .map_err(|s| s.message().to_string())?
        .into_inner();
    if !ack.accepted {
        return Err("peer refused the snapshot".into());
    }
    Ok(offset)
}

struct ChunkWriter {
    tx: mpsc::Sender<Result<Vec<u8>, String>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn flush_chunk(&mut self) -> Result<(), String> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(SNAPSHOT_CHUNK));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| "snapshot stream closed".to_string())
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= SNAPSHOT_CHUNK {
            self.flush_chunk()
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::BrokenPipe, e))?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `quorum.peer.Peer` service of a member.
pub struct PeerService {
    shared: Arc<Shared>,
    snap_dir: PathBuf,
}

impl PeerService {
    /// A service delivering into `shared`'s core, storing received snapshots in `snap_dir`.
    pub fn new(shared: Arc<Shared>, snap_dir: PathBuf) -> Self {
        PeerService { shared, snap_dir }
    }

    fn check_cluster(&self, cluster_id: u64, from: u64) -> Result<(), Status> {
        if cluster_id != self.shared.cluster_id {
            warn!(
                "refused peer {from:x}: cluster id {cluster_id:x} is not ours ({:x})",
                self.shared.cluster_id
            );
            return Err(Status::permission_denied(format!(
                "cluster id mismatch: peer is in cluster {cluster_id:x}, this member in {:x}",
                self.shared.cluster_id
            )));
        }
        if self
            .shared
            .registry
            .read()
            .is_ok_and(|r| r.is_removed(from))
        {
            debug!("refused peer {from:x}: it was removed from the cluster");
            return Err(removed_status());
        }
        Ok(())
    }

    fn deliver(&self, group: GroupId, m: pb::Message) -> Result<(), Status> {
        if group != self.shared.group_id {
            return Err(Status::not_found(format!("no raft group {group}")));
        }
        let msg = message_from_wire(m).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if msg.to != self.shared.member_id {
            return Err(Status::invalid_argument(format!(
                "message for member {:x} sent to member {:x}",
                msg.to, self.shared.member_id
            )));
        }
        self.shared.send_input(Input::Message(msg));
        Ok(())
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn hello(
        &self,
        req: Request<pb::HelloRequest>,
    ) -> Result<Response<pb::HelloResponse>, Status> {
        let r = req.into_inner();
        self.check_cluster(r.cluster_id, r.member_id)?;
        if r.to_member != 0 && r.to_member != self.shared.member_id {
            return Err(Status::failed_precondition(format!(
                "this is member {:x}, not {:x}",
                self.shared.member_id, r.to_member
            )));
        }
        Ok(Response::new(pb::HelloResponse {
            client_urls: self.shared.client_urls.clone(),
            cluster_id: self.shared.cluster_id,
            member_id: self.shared.member_id,
            name: self.shared.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }

    async fn stream(
        &self,
        req: Request<Streaming<pb::Batch>>,
    ) -> Result<Response<pb::StreamAck>, Status> {
        let mut stream = req.into_inner();
        let mut batches = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            self.check_cluster(batch.cluster_id, batch.from_member)?;
            for env in batch.messages {
                let Some(m) = env.message else {
                    return Err(Status::invalid_argument("envelope without a message"));
                };
                if m.msg_type == pb::MessageType::Snapshot as i32 {
                    // Snapshots only travel through the Snapshot stream with their image.
                    continue;
                }
                self.deliver(env.group_id, m)?;
            }
            batches += 1;
        }
        Ok(Response::new(pb::StreamAck { batches }))
    }

    async fn snapshot(
        &self,
        req: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::SnapshotAck>, Status> {
        use std::io::Write;
        let mut stream = req.into_inner();
        let mut header: Option<pb::Message> = None;
        let mut membership: Option<crate::membership::Registry> = None;
        let mut file: Option<(std::fs::File, PathBuf)> = None;
        let mut received = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            self.check_cluster(chunk.cluster_id, chunk.from_member)?;
            if chunk.group_id != self.shared.group_id {
                return Err(Status::not_found(format!(
                    "no raft group {}",
                    chunk.group_id
                )));
            }
            if header.is_none() {
                let h = chunk.header.clone().ok_or_else(|| {
                    Status::invalid_argument("first snapshot chunk has no header")
                })?;
                let index = h.snapshot.as_ref().map(|s| s.index).unwrap_or(0);
                std::fs::create_dir_all(&self.snap_dir)
                    .map_err(|e| Status::internal(format!("snapshot dir: {e}")))?;
                let path = self.snap_dir.join(format!("recv-{index:016x}.db"));
                let f = std::fs::File::create(&path)
                    .map_err(|e| Status::internal(format!("{}: {e}", path.display())))?;
                file = Some((f, path));
                header = Some(h);
                if !chunk.membership.is_empty() {
                    membership = Some(
                        crate::membership::Registry::decode(&chunk.membership)
                            .map_err(|e| Status::invalid_argument(e.to_string()))?,
                    );
                }
            }
            if chunk.offset != received {
                return Err(Status::invalid_argument(format!(
                    "snapshot chunk at offset {} but {} bytes received",
                    chunk.offset, received
                )));
            }
            if crc32c::crc32c(&chunk.data) != chunk.crc32c {
                return Err(Status::data_loss(format!(
                    "snapshot chunk at offset {} fails its checksum",
                    chunk.offset
                )));
            }
            if let Some((f, path)) = file.as_mut() {
                f.write_all(&chunk.data)
                    .map_err(|e| Status::internal(format!("{}: {e}", path.display())))?;
            }
            received += chunk.data.len() as u64;
            if chunk.last {
                let (f, path) = file
                    .take()
                    .ok_or_else(|| Status::invalid_argument("snapshot without data"))?;
                f.sync_all()
                    .map_err(|e| Status::internal(format!("{}: {e}", path.display())))?;
                let h = header
                    .take()
                    .ok_or_else(|| Status::invalid_argument("snapshot without header"))?;
                let message =
                    message_from_wire(h).map_err(|e| Status::invalid_argument(e.to_string()))?;
                info!(
                    "received snapshot ({received} bytes) from {:x}",
                    message.from
                );
                self.shared.metrics.snapshot_received.inc();
                if let (Some(registry), Some(s)) = (membership.take(), &message.snapshot) {
                    let index = s.metadata.index;
                    self.shared
                        .send_input(Input::SnapshotMembership { index, registry });
                }
                self.shared.send_input(Input::Snapshot { message, path });
                return Ok(Response::new(pb::SnapshotAck {
                    received_bytes: received,
                    accepted: true,
                }));
            }
        }
        if let Some((_, path)) = file {
            let _ = std::fs::remove_file(path);
        }
        Err(Status::aborted(
            "snapshot stream ended before its last chunk",
        ))
    }

    async fn forward(
        &self,
        req: Request<pb::ForwardRequest>,
    ) -> Result<Response<pb::ForwardResponse>, Status> {
        let r = req.into_inner();
        self.check_cluster(r.cluster_id, r.from_member)?;
        crate::shell::serve_forward(&self.shared, r).await
    }

    async fn join(
        &self,
        req: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinResponse>, Status> {
        let r = req.into_inner();
        if r.peer_urls.len() > crate::membership::MAX_URLS {
            return Err(Status::invalid_argument("too many peer URLs"));
        }
        let registry = self.shared.registry();
        let Some(member) = registry.find_by_peer_urls(&r.peer_urls) else {
            return Err(Status::not_found(format!(
                "no member of cluster {:x} has peer URLs {:?}; add it first (member add)",
                self.shared.cluster_id, r.peer_urls
            )));
        };
        info!(
            "member {:x} ({}) asks to join with peer URLs {:?}",
            member.id, r.name, r.peer_urls
        );
        Ok(Response::new(pb::JoinResponse {
            cluster_id: self.shared.cluster_id,
            member_id: member.id,
            membership: Some(registry.to_proto()),
        }))
    }
}
