//! The Maintenance service: Status, Alarm, Hash, HashKV, Snapshot, MoveLeader, Defragment.

use std::io::{BufWriter, Read, Seek, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use quorum_api::etcdserverpb as pb;
use quorum_api::etcdserverpb::maintenance_server::Maintenance;
use quorum_mvcc::{AlarmMember, AlarmType, Store, WriteRequest, WriteResponse};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::backend::Backend;
use super::common::{current_header, header, mvcc_err, propose_write, server_err, unexpected};
use crate::config::ETCD_API_VERSION;
use crate::convert;

/// Bytes of snapshot per response (etcd: 32 KiB).
pub const SNAPSHOT_CHUNK: usize = 32 * 1024;
/// The snapshot blob is padded with zeros to a multiple of this: etcdctl checks that a saved
/// snapshot is `n * 512` bytes plus the 32-byte sha256 (a bbolt file, whole pages, always is).
pub const SNAPSHOT_ALIGN: u64 = 512;
/// Snapshot responses buffered ahead of the client.
const SNAPSHOT_BUFFER: usize = 4;

/// The Maintenance service over a member.
#[derive(Clone)]
pub struct MaintenanceService<B: Backend> {
    b: B,
}

impl<B: Backend> MaintenanceService<B> {
    /// The service over `b`.
    pub fn new(b: B) -> Self {
        MaintenanceService { b }
    }
}

/// An alarm as etcd prints it in `StatusResponse.errors` (protobuf text format).
pub fn alarm_text(a: &AlarmMember) -> String {
    let name = match a.alarm {
        AlarmType::None => "NONE",
        AlarmType::Nospace => "NOSPACE",
        AlarmType::Corrupt => "CORRUPT",
    };
    format!("memberID:{} alarm:{} ", a.member_id, name)
}

fn io_err(e: std::io::Error) -> Status {
    Status::internal(format!("etcdserver: snapshot: {e}"))
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("etcdserver: task failed: {e}")))?
}

/// Exports the store as a bbolt file in etcd's backend layout (`Store::backup_export`, so the
/// saved file is what `etcdctl snapshot save` gets from etcd) to an anonymous temporary file
/// (so that the size is known before the first response, for `remaining_bytes`), then streams
/// it in [`SNAPSHOT_CHUNK`] pieces padded
/// to [`SNAPSHOT_ALIGN`], then a last response holding the sha256 of everything sent, as etcd.
fn stream_snapshot(
    store: &Store,
    hdr: pb::ResponseHeader,
    tx: &mpsc::Sender<Result<pb::SnapshotResponse, Status>>,
) -> Result<(), Status> {
    let file = tempfile::tempfile().map_err(io_err)?;
    let (w, len) = store
        .backup_export(BufWriter::new(file))
        .map_err(|e| mvcc_err(&e))?;
    let mut file = w.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let total = len.div_ceil(SNAPSHOT_ALIGN) * SNAPSHOT_ALIGN;
    let mut sha = Sha256::new();
    let mut sent = 0u64;
    let mut first = Some(hdr);
    while sent < total {
        let n = (total - sent).min(SNAPSHOT_CHUNK as u64);
        let mut buf = vec![0u8; usize::try_from(n).unwrap_or(SNAPSHOT_CHUNK)];
        let from_file = usize::try_from(len.saturating_sub(sent).min(n)).unwrap_or(0);
        file.read_exact(&mut buf[..from_file]).map_err(io_err)?;
        sha.update(&buf);
        sent += n;
        debug_assert!(sent <= total);
        let version = if first.is_some() {
            ETCD_API_VERSION.to_string()
        } else {
            String::new()
        };
        let resp = pb::SnapshotResponse {
            header: first.take(),
            remaining_bytes: total - sent,
            blob: buf.into(),
            version,
        };
        if tx.blocking_send(Ok(resp)).is_err() {
            return Ok(()); // the client went away
        }
    }
    let digest = pb::SnapshotResponse {
        header: None,
        remaining_bytes: 0,
        blob: sha.finalize().to_vec().into(),
        version: String::new(),
    };
    let _ = tx.blocking_send(Ok(digest));
    Ok(())
}

#[tonic::async_trait]
impl<B: Backend> Maintenance for MaintenanceService<B> {
    async fn alarm(
        &self,
        request: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        let req = convert::alarm_from_pb(request.get_ref())?;
        match propose_write(&self.b, WriteRequest::Alarm(req)).await? {
            WriteResponse::Alarm(a) => Ok(Response::new(pb::AlarmResponse {
                header: Some(current_header(&self.b)?),
                alarms: convert::alarms_to_pb(a.alarms),
            })),
            _ => Err(unexpected("Alarm")),
        }
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let store = self.b.store();
        let s = self.b.status();
        let mut errors = Vec::new();
        if s.leader == 0 {
            errors.push(crate::error::ServerError::NoLeader.to_string());
        }
        errors.extend(
            store
                .alarms()
                .map_err(|e| mvcc_err(&e))?
                .iter()
                .map(alarm_text),
        );
        let db_size = store.db_size().map_err(|e| mvcc_err(&e))?;
        Ok(Response::new(pb::StatusResponse {
            header: Some(current_header(&self.b)?),
            version: ETCD_API_VERSION.to_string(),
            db_size: i64::try_from(db_size).unwrap_or(i64::MAX),
            leader: s.leader,
            raft_index: s.raft_index,
            raft_term: s.raft_term,
            raft_applied_index: s.raft_applied_index,
            errors,
            db_size_in_use: i64::try_from(store.db_size_in_use()).unwrap_or(i64::MAX),
            is_learner: s.is_learner,
            ..Default::default()
        }))
    }

    async fn defragment(
        &self,
        _request: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        // Nothing to do: the store reuses the pages compaction frees.
        Ok(Response::new(pb::DefragmentResponse {
            header: Some(current_header(&self.b)?),
        }))
    }

    async fn hash(
        &self,
        _request: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        let store = self.b.store().clone();
        let (hash, rev) = blocking(move || {
            let rev = store.current_revision().map_err(|e| mvcc_err(&e))?;
            Ok((store.hash().map_err(|e| mvcc_err(&e))?, rev))
        })
        .await?;
        Ok(Response::new(pb::HashResponse {
            header: Some(header(&self.b, rev)),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        let store = self.b.store().clone();
        let revision = request.get_ref().revision;
        let (h, rev) = blocking(move || {
            let rev = store.current_revision().map_err(|e| mvcc_err(&e))?;
            Ok((store.hash_kv(revision).map_err(|e| mvcc_err(&e))?, rev))
        })
        .await?;
        Ok(Response::new(pb::HashKvResponse {
            header: Some(header(&self.b, rev)),
            hash: h.hash,
            compact_revision: h.compact_revision,
            hash_revision: h.hash_revision,
        }))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

    async fn snapshot(
        &self,
        _request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let store: Arc<Store> = self.b.store().clone();
        let hdr = current_header(&self.b)?;
        let (tx, rx) = mpsc::channel(SNAPSHOT_BUFFER);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = stream_snapshot(&store, hdr, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn move_leader(
        &self,
        request: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        self.b
            .move_leader(request.get_ref().target_id)
            .await
            .map_err(server_err)?;
        Ok(Response::new(pb::MoveLeaderResponse {
            header: Some(current_header(&self.b)?),
        }))
    }

    async fn downgrade(
        &self,
        _request: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(Status::unimplemented(
            "Downgrade is not supported by Quorum: every member runs the same version",
        ))
    }
}
