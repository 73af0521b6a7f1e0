//! The services end to end over a loopback gRPC connection, on an in-process store
//! ([`LocalBackend`]): wire format, headers, errors and the coordination services.

use std::time::Duration;

use quorum_api::etcdserverpb as pb;
use quorum_api::etcdserverpb::auth_client::AuthClient;
use quorum_api::etcdserverpb::cluster_client::ClusterClient;
use quorum_api::etcdserverpb::kv_client::KvClient;
use quorum_api::etcdserverpb::lease_client::LeaseClient;
use quorum_api::etcdserverpb::maintenance_client::MaintenanceClient;
use quorum_api::etcdserverpb::watch_client::WatchClient;
use quorum_api::v3electionpb as epb;
use quorum_api::v3electionpb::election_client::ElectionClient;
use quorum_api::v3lockpb as lockpb;
use quorum_api::v3lockpb::lock_client::LockClient;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Code;

use super::routes_for;
use super::testing::{LocalBackend, CLUSTER_ID, MEMBER_ID, TERM};

const MAX_REQUEST: usize = 64 * 1024;
const WAIT: Duration = Duration::from_secs(5);

async fn serve(b: LocalBackend) -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(routes_for(b))
            .serve_with_incoming(incoming),
    );
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn setup() -> (LocalBackend, Channel) {
    let b = LocalBackend::new(MAX_REQUEST);
    let ch = serve(b.clone()).await;
    (b, ch)
}

fn put(key: &str, value: &str) -> pb::PutRequest {
    pb::PutRequest {
        key: key.as_bytes().to_vec().into(),
        value: value.as_bytes().to_vec().into(),
        ..Default::default()
    }
}

fn get(key: &str) -> pb::RangeRequest {
    pb::RangeRequest {
        key: key.as_bytes().to_vec().into(),
        ..Default::default()
    }
}

fn check_header(h: &Option<pb::ResponseHeader>, revision: i64) {
    let h = h.as_ref().expect("header");
    assert_eq!(
        (h.cluster_id, h.member_id, h.revision, h.raft_term),
        (CLUSTER_ID, MEMBER_ID, revision, TERM)
    );
}

async fn recv<T>(s: &mut tonic::Streaming<T>) -> T {
    tokio::time::timeout(WAIT, s.message())
        .await
        .expect("a response in time")
        .expect("no error")
        .expect("stream still open")
}

#[tokio::test]
async fn kv_reads_writes_and_headers() {
    let (_b, ch) = setup().await;
    let mut kv = KvClient::new(ch);
    let p = kv.put(put("a", "1")).await.unwrap().into_inner();
    check_header(&p.header, 2);
    let mut prev = put("a", "2");
    prev.prev_kv = true;
    let p = kv.put(prev).await.unwrap().into_inner();
    assert_eq!(&p.prev_kv.unwrap().value[..], b"1");
    let r = kv.range(get("a")).await.unwrap().into_inner();
    check_header(&r.header, 3);
    assert_eq!(r.count, 1);
    let got = &r.kvs[0];
    assert_eq!(
        (
            &got.value[..],
            got.create_revision,
            got.mod_revision,
            got.version
        ),
        (&b"2"[..], 2, 3, 2)
    );
    let mut serializable = get("a");
    serializable.serializable = true;
    serializable.revision = 2;
    let r = kv.range(serializable).await.unwrap().into_inner();
    assert_eq!(&r.kvs[0].value[..], b"1");

    // A txn: compare on the value, nested response headers carry the revision.
    let t = pb::TxnRequest {
        compare: vec![pb::Compare {
            result: pb::compare::CompareResult::Equal as i32,
            target: pb::compare::CompareTarget::Value as i32,
            key: b"a".to_vec().into(),
            target_union: Some(pb::compare::TargetUnion::Value(b"2".to_vec().into())),
            range_end: Default::default(),
        }],
        success: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(put("b", "x"))),
        }],
        failure: vec![],
    };
    let t = kv.txn(t).await.unwrap().into_inner();
    assert!(t.succeeded);
    check_header(&t.header, 4);
    match &t.responses[0].response {
        Some(pb::response_op::Response::ResponsePut(p)) => {
            assert_eq!(p.header.as_ref().unwrap().revision, 4)
        }
        other => panic!("unexpected {other:?}"),
    }
    let d = kv
        .delete_range(pb::DeleteRangeRequest {
            key: b"a".to_vec().into(),
            range_end: b"c".to_vec().into(),
            prev_kv: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((d.deleted, d.prev_kvs.len()), (2, 2));
    check_header(&d.header, 5);
    let c = kv
        .compact(pb::CompactionRequest {
            revision: 4,
            physical: true,
        })
        .await
        .unwrap()
        .into_inner();
    check_header(&c.header, 5);
    let mut old = get("a");
    old.revision = 3;
    let e = kv.range(old).await.unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange);
    assert_eq!(
        e.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
}

#[tokio::test]
async fn bad_requests_get_etcd_errors() {
    let (_b, ch) = setup().await;
    let mut kv = KvClient::new(ch);
    let e = kv.put(put("", "v")).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "etcdserver: key is not provided")
    );
    let e = kv.range(get("")).await.unwrap_err();
    assert_eq!(e.message(), "etcdserver: key is not provided");
    let many = pb::TxnRequest {
        success: (0..129)
            .map(|i| pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(put(
                    &format!("k{i}"),
                    "",
                ))),
            })
            .collect(),
        ..Default::default()
    };
    let e = kv.txn(many).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request"
        )
    );
    let e = kv
        .put(put("big", &"x".repeat(MAX_REQUEST + 1)))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "etcdserver: request is too large")
    );
    // Beyond the gRPC limit the transport refuses it; the server keeps serving.
    let e = kv
        .put(put(
            "huge",
            &"x".repeat(MAX_REQUEST + super::GRPC_OVERHEAD_BYTES + 1),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(e.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{e:?}"
    );
    let mut bad_sort = get("a");
    bad_sort.sort_order = 17;
    let e = kv.range(bad_sort).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = kv
        .put(pb::PutRequest {
            lease: 12345,
            ..put("k", "v")
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );
    assert!(kv.put(put("k", "v")).await.is_ok());
}

fn create(key: &str, end: &str, start: i64, id: i64) -> pb::WatchRequest {
    pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key: key.as_bytes().to_vec().into(),
                range_end: end.as_bytes().to_vec().into(),
                start_revision: start,
                watch_id: id,
                prev_kv: true,
                ..Default::default()
            },
        )),
    }
}

#[tokio::test]
async fn watch_streams_many_watches() {
    let (_b, ch) = setup().await;
    let mut kv = KvClient::new(ch.clone());
    kv.put(put("w/old", "0")).await.unwrap(); // revision 2
    let (tx, rx) = mpsc::channel(16);
    let mut watch = WatchClient::new(ch);
    let mut out = watch
        .watch(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();

    tx.send(create("w/", "w0", 0, 0)).await.unwrap();
    let c = recv(&mut out).await;
    assert!(c.created && !c.canceled);
    assert_eq!(c.watch_id, 0);
    check_header(&c.header, 2);

    kv.put(put("w/a", "1")).await.unwrap(); // 3
    let ev = recv(&mut out).await;
    assert_eq!(ev.watch_id, 0);
    check_header(&ev.header, 3);
    assert_eq!(ev.events.len(), 1);
    assert_eq!(&ev.events[0].kv.as_ref().unwrap().key[..], b"w/a");

    // A client-chosen id replaying history from revision 2.
    tx.send(create("w/old", "", 2, 7)).await.unwrap();
    let c = recv(&mut out).await;
    assert!(c.created);
    assert_eq!(c.watch_id, 7);
    let ev = recv(&mut out).await;
    assert_eq!(ev.watch_id, 7);
    assert_eq!(ev.events[0].kv.as_ref().unwrap().mod_revision, 2);

    // The same id again is refused on the stream, as etcd.
    tx.send(create("x", "", 0, 7)).await.unwrap();
    let c = recv(&mut out).await;
    assert!(c.created && c.canceled);
    assert_eq!(
        c.cancel_reason,
        "mvcc: duplicate watch ID provided on the WatchStream"
    );

    // Delete with prev_kv.
    kv.delete_range(pb::DeleteRangeRequest {
        key: b"w/old".to_vec().into(),
        ..Default::default()
    })
    .await
    .unwrap(); // 4
    let mut seen = Vec::new();
    for _ in 0..2 {
        let ev = recv(&mut out).await;
        let e = &ev.events[0];
        assert_eq!(e.r#type, 1);
        assert_eq!(&e.prev_kv.as_ref().unwrap().value[..], b"0");
        seen.push(ev.watch_id);
    }
    seen.sort();
    assert_eq!(seen, vec![0, 7]);

    // Cancel; then only watch 0 reports.
    tx.send(pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CancelRequest(
            pb::WatchCancelRequest { watch_id: 7 },
        )),
    })
    .await
    .unwrap();
    let c = recv(&mut out).await;
    assert!(c.canceled && c.watch_id == 7);

    // Progress: never ahead of what was delivered.
    tx.send(pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::ProgressRequest(
            pb::WatchProgressRequest {},
        )),
    })
    .await
    .unwrap();
    let p = recv(&mut out).await;
    assert!(p.events.is_empty() && !p.created && !p.canceled);
    assert_eq!(p.watch_id, 0);
    assert_eq!(p.header.unwrap().revision, 4);

    // A compacted start revision: created, then cancelled with the compaction revision.
    kv.compact(pb::CompactionRequest {
        revision: 4,
        physical: false,
    })
    .await
    .unwrap();
    tx.send(create("w/", "w0", 2, 0)).await.unwrap();
    let c = recv(&mut out).await;
    assert!(c.created);
    assert_eq!(c.watch_id, 1);
    let c = recv(&mut out).await;
    assert!(c.canceled);
    assert_eq!((c.watch_id, c.compact_revision), (1, 4));
}

#[tokio::test]
async fn leases_grant_keepalive_ttl_revoke() {
    let (_b, ch) = setup().await;
    let mut lease = LeaseClient::new(ch.clone());
    let mut kv = KvClient::new(ch);
    let g = lease
        .lease_grant(pb::LeaseGrantRequest { ttl: 30, id: 0 })
        .await
        .unwrap()
        .into_inner();
    assert!(g.id != 0);
    assert_eq!(g.ttl, 30);
    let g2 = lease
        .lease_grant(pb::LeaseGrantRequest { ttl: 30, id: 77 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g2.id, 77);
    let e = lease
        .lease_grant(pb::LeaseGrantRequest { ttl: 30, id: 77 })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "etcdserver: lease already exists");
    kv.put(pb::PutRequest {
        lease: g.id,
        ..put("leased", "v")
    })
    .await
    .unwrap();
    let t = lease
        .lease_time_to_live(pb::LeaseTimeToLiveRequest {
            id: g.id,
            keys: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.granted_ttl, 30);
    assert!(t.ttl > 0 && t.ttl <= 30);
    assert_eq!(t.keys, vec![bytes::Bytes::from_static(b"leased")]);

    let (tx, rx) = mpsc::channel(4);
    let mut ka = lease
        .lease_keep_alive(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(pb::LeaseKeepAliveRequest { id: g.id })
        .await
        .unwrap();
    let r = recv(&mut ka).await;
    assert_eq!((r.id, r.ttl), (g.id, 30));
    tx.send(pb::LeaseKeepAliveRequest { id: 999 })
        .await
        .unwrap();
    let r = recv(&mut ka).await;
    assert_eq!((r.id, r.ttl), (999, 0));

    let all = lease
        .lease_leases(pb::LeaseLeasesRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut ids: Vec<i64> = all.leases.iter().map(|l| l.id).collect();
    ids.sort();
    let mut want = vec![g.id, 77];
    want.sort();
    assert_eq!(ids, want);

    lease
        .lease_revoke(pb::LeaseRevokeRequest { id: g.id })
        .await
        .unwrap();
    let r = kv.range(get("leased")).await.unwrap().into_inner();
    assert!(r.kvs.is_empty());
    let t = lease
        .lease_time_to_live(pb::LeaseTimeToLiveRequest {
            id: g.id,
            keys: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.ttl, -1);
    let e = lease
        .lease_revoke(pb::LeaseRevokeRequest { id: g.id })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

async fn grant(ch: &Channel, ttl: i64) -> i64 {
    LeaseClient::new(ch.clone())
        .lease_grant(pb::LeaseGrantRequest { ttl, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id
}

async fn create_revision(ch: &Channel, key: &[u8]) -> i64 {
    let r = KvClient::new(ch.clone())
        .range(pb::RangeRequest {
            key: key.to_vec().into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    r.kvs[0].create_revision
}

#[tokio::test]
async fn lock_waits_for_its_turn_and_fences() {
    let (_b, ch) = setup().await;
    let (l1, l2) = (grant(&ch, 30).await, grant(&ch, 30).await);
    let mut lock = LockClient::new(ch.clone());
    let a = lock
        .lock(lockpb::LockRequest {
            name: b"m".to_vec().into(),
            lease: l1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&a.key[..], format!("m/{l1:x}").as_bytes());
    let token_a = create_revision(&ch, &a.key).await;
    // Locking again with the same lease keeps the key and its revision.
    let again = lock
        .lock(lockpb::LockRequest {
            name: b"m".to_vec().into(),
            lease: l1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.key, a.key);
    assert_eq!(create_revision(&ch, &a.key).await, token_a);

    let mut lock2 = LockClient::new(ch.clone());
    let waiter = tokio::spawn(async move {
        lock2
            .lock(lockpb::LockRequest {
                name: b"m".to_vec().into(),
                lease: l2,
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the second locker must wait");
    lock.unlock(lockpb::UnlockRequest { key: a.key.clone() })
        .await
        .unwrap();
    let b = tokio::time::timeout(WAIT, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .into_inner();
    let token_b = create_revision(&ch, &b.key).await;
    assert!(token_b > token_a, "fencing tokens increase");
    assert!(b.header.unwrap().revision > a.header.unwrap().revision);
}

#[tokio::test]
async fn lock_is_not_granted_on_an_expired_lease() {
    let (be, ch) = setup().await;
    let (l1, l2) = (grant(&ch, 30).await, grant(&ch, 5).await);
    let mut lock = LockClient::new(ch.clone());
    let a = lock
        .lock(lockpb::LockRequest {
            name: b"j".to_vec().into(),
            lease: l1,
        })
        .await
        .unwrap()
        .into_inner();
    let mut lock2 = LockClient::new(ch.clone());
    let waiter = tokio::spawn(async move {
        lock2
            .lock(lockpb::LockRequest {
                name: b"j".to_vec().into(),
                lease: l2,
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // l2 expires while its holder waits (the revoke has not been applied yet).
    be.advance_ms(6_000);
    LeaseClient::new(ch.clone())
        .lease_keep_alive(futures::stream::iter(vec![pb::LeaseKeepAliveRequest {
            id: l1,
        }]))
        .await
        .unwrap();
    lock.unlock(lockpb::UnlockRequest { key: a.key })
        .await
        .unwrap();
    let e = tokio::time::timeout(WAIT, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.message(), "session expired");
    // The abandoned key is cleaned up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = KvClient::new(ch)
        .range(pb::RangeRequest {
            key: b"j/".to_vec().into(),
            range_end: b"j0".to_vec().into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.count, 0);
}

#[tokio::test]
async fn election_campaign_proclaim_observe_resign() {
    let (_b, ch) = setup().await;
    let mut el = ElectionClient::new(ch.clone());
    let e = el
        .leader(epb::LeaderRequest {
            name: b"e".to_vec().into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "election: no leader");

    let mut obs = el
        .observe(epb::LeaderRequest {
            name: b"e".to_vec().into(),
        })
        .await
        .unwrap()
        .into_inner();

    let (l1, l2) = (grant(&ch, 30).await, grant(&ch, 30).await);
    let c1 = el
        .campaign(epb::CampaignRequest {
            name: b"e".to_vec().into(),
            lease: l1,
            value: b"one".to_vec().into(),
        })
        .await
        .unwrap()
        .into_inner();
    let leader1 = c1.leader.unwrap();
    let o = recv(&mut obs).await;
    assert_eq!(&o.kv.unwrap().value[..], b"one");

    el.proclaim(epb::ProclaimRequest {
        leader: Some(leader1.clone()),
        value: b"uno".to_vec().into(),
    })
    .await
    .unwrap();
    let o = recv(&mut obs).await;
    assert_eq!(&o.kv.unwrap().value[..], b"uno");
    let l = el
        .leader(epb::LeaderRequest {
            name: b"e".to_vec().into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&l.kv.unwrap().value[..], b"uno");

    let mut el2 = ElectionClient::new(ch.clone());
    let second = tokio::spawn(async move {
        el2.campaign(epb::CampaignRequest {
            name: b"e".to_vec().into(),
            lease: l2,
            value: b"two".to_vec().into(),
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished());
    el.resign(epb::ResignRequest {
        leader: Some(leader1.clone()),
    })
    .await
    .unwrap();
    let c2 = tokio::time::timeout(WAIT, second)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .into_inner();
    let leader2 = c2.leader.unwrap();
    assert!(leader2.rev > leader1.rev);
    let o = recv(&mut obs).await;
    assert_eq!(&o.kv.unwrap().value[..], b"two");

    // The deposed leader can no longer proclaim.
    let e = el
        .proclaim(epb::ProclaimRequest {
            leader: Some(leader1),
            value: b"usurp".to_vec().into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "election: not leader");
}

#[tokio::test]
async fn maintenance_status_hash_snapshot_alarm() {
    let (_b, ch) = setup().await;
    let mut kv = KvClient::new(ch.clone());
    for i in 0..50 {
        kv.put(put(&format!("s{i}"), &"v".repeat(1000)))
            .await
            .unwrap();
    }
    let mut m = MaintenanceClient::new(ch.clone());
    let s = m.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(s.version, crate::config::ETCD_API_VERSION);
    assert_eq!((s.leader, s.raft_term), (MEMBER_ID, TERM));
    assert!(s.db_size > 0);
    assert!(s.errors.is_empty());
    check_header(&s.header, 51);

    let h1 = m
        .hash_kv(pb::HashKvRequest { revision: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h1.hash_revision, 51);
    kv.put(put("s0", "changed")).await.unwrap();
    let h2 = m
        .hash_kv(pb::HashKvRequest { revision: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(h1.hash, h2.hash);
    let h1_again = m
        .hash_kv(pb::HashKvRequest { revision: 51 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h1_again.hash, h1.hash);

    let mut snap = m
        .snapshot(pb::SnapshotRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut blob = Vec::new();
    let mut last_remaining = u64::MAX;
    let mut responses = 0;
    while let Some(r) = snap.message().await.unwrap() {
        if responses == 0 {
            assert!(r.header.is_some());
        }
        responses += 1;
        assert!(r.blob.len() <= super::maintenance::SNAPSHOT_CHUNK);
        assert!(r.remaining_bytes <= last_remaining);
        last_remaining = r.remaining_bytes;
        blob.extend_from_slice(&r.blob);
    }
    assert!(responses > 2);
    // etcdctl's check: n * 512 bytes of data, then their sha256.
    assert_eq!(blob.len() % 512, 32);
    let (data, sum) = blob.split_at(blob.len() - 32);
    assert_eq!(Sha256::digest(data).as_slice(), sum);

    let a = m
        .alarm(pb::AlarmRequest {
            action: pb::alarm_request::AlarmAction::Get as i32,
            member_id: 0,
            alarm: pb::AlarmType::None as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(a.alarms.is_empty());
    m.defragment(pb::DefragmentRequest {}).await.unwrap();
    m.move_leader(pb::MoveLeaderRequest {
        target_id: MEMBER_ID,
    })
    .await
    .unwrap();
    let e = m
        .move_leader(pb::MoveLeaderRequest { target_id: 42 })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "etcdserver: bad leader transferee");
}

#[tokio::test]
async fn cluster_and_auth() {
    let (_b, ch) = setup().await;
    let ml = ClusterClient::new(ch.clone())
        .member_list(pb::MemberListRequest { linearizable: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ml.members.len(), 1);
    assert_eq!(ml.members[0].id, MEMBER_ID);
    assert_eq!(ml.members[0].peer_ur_ls, vec!["http://127.0.0.1:2380"]);
    let e = ClusterClient::new(ch.clone())
        .member_add(pb::MemberAddRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.message(), "etcdserver: given member URLs are invalid");
    let mut auth = AuthClient::new(ch);
    let s = auth
        .auth_status(pb::AuthStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!s.enabled);
    let e = auth
        .authenticate(pb::AuthenticateRequest {
            name: "root".into(),
            password: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "etcdserver: authentication is not enabled");
}

#[tokio::test]
async fn a_slow_watcher_catches_up_without_losing_events() {
    use super::Backend;
    let (b, ch) = setup().await;
    let (tx, rx) = mpsc::channel(4);
    let mut out = WatchClient::new(ch)
        .watch(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(create("s/", "s0", 0, 0)).await.unwrap();
    assert!(recv(&mut out).await.created);
    // Far more revisions than the stream buffers while the client reads nothing.
    let n = 3_000;
    for i in 0..n {
        let w = quorum_mvcc::WriteRequest::Put(quorum_mvcc::PutRequest {
            key: format!("s/{i}").into_bytes(),
            value: vec![b'v'; 100],
            ..Default::default()
        });
        b.propose(crate::convert::write_to_internal(&w))
            .await
            .unwrap();
    }
    let mut next = 2;
    while next < n + 2 {
        let r = recv(&mut out).await;
        for e in r.events {
            assert_eq!(e.kv.unwrap().mod_revision, next, "in order, none lost");
            next += 1;
        }
    }
}

#[tokio::test]
async fn a_half_closed_watch_stream_keeps_delivering_events() {
    let (_b, ch) = setup().await;
    let mut kv = KvClient::new(ch.clone());
    let (tx, rx) = mpsc::channel(4);
    let mut watch = WatchClient::new(ch);
    let mut out = watch
        .watch(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(create("h", "", 0, 0)).await.unwrap();
    assert!(recv(&mut out).await.created);
    // The client closes its sending side, as etcd clients may after creating their watches.
    drop(tx);
    kv.put(put("h", "1")).await.unwrap();
    let ev = recv(&mut out).await;
    assert_eq!(ev.events.len(), 1, "event after the half-close");
    assert_eq!(&ev.events[0].kv.as_ref().unwrap().value[..], b"1");
}

#[tokio::test]
async fn membership_changes_answer_as_etcd() {
    let (_b, ch) = setup().await;
    let mut c = ClusterClient::new(ch);
    let add = |urls: &[&str], learner: bool| pb::MemberAddRequest {
        peer_ur_ls: urls.iter().map(|u| u.to_string()).collect(),
        is_learner: learner,
    };
    for bad in [
        "127.0.0.1:2390",
        "http://127.0.0.1",
        "http://127.0.0.1:2390/x",
        "ftp://h:1",
    ] {
        let e = c.member_add(add(&[bad], false)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(e.message(), "etcdserver: given member URLs are invalid");
    }
    let e = c
        .member_add(add(&["http://127.0.0.1:2380"], false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(e.message(), "etcdserver: Peer URLs already exists");

    let r = c
        .member_add(add(&["http://127.0.0.1:2390"], true))
        .await
        .unwrap()
        .into_inner();
    let new = r.member.unwrap();
    assert!(new.is_learner && new.name.is_empty() && new.id != 0 && new.id != MEMBER_ID);
    assert_eq!(new.peer_ur_ls, vec!["http://127.0.0.1:2390"]);
    assert_eq!(r.members.len(), 2);
    assert_eq!(r.header.unwrap().member_id, MEMBER_ID);

    let e = c
        .member_add(add(&["http://127.0.0.1:2391"], true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(
        e.message(),
        "etcdserver: too many learner members in cluster"
    );

    let e = c
        .member_promote(pb::MemberPromoteRequest { id: MEMBER_ID })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "etcdserver: can only promote a learner member");
    let e = c
        .member_promote(pb::MemberPromoteRequest { id: 42 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(e.message(), "etcdserver: member not found");

    let r = c
        .member_update(pb::MemberUpdateRequest {
            id: new.id,
            peer_ur_ls: vec!["http://127.0.0.1:2392".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let updated = r.members.iter().find(|m| m.id == new.id).unwrap();
    assert_eq!(updated.peer_ur_ls, vec!["http://127.0.0.1:2392"]);
    assert!(updated.is_learner);

    let r = c
        .member_promote(pb::MemberPromoteRequest { id: new.id })
        .await
        .unwrap()
        .into_inner();
    assert!(r.members.iter().all(|m| !m.is_learner));

    let r = c
        .member_remove(pb::MemberRemoveRequest { id: new.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.members.len(), 1);
    let e = c
        .member_remove(pb::MemberRemoveRequest { id: new.id })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(e.message(), "etcdserver: member not found");
    let listed = c
        .member_list(pb::MemberListRequest {
            linearizable: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.members.len(), 1);
}

/// A request with etcd's `hasleader` metadata (`clientv3.WithRequireLeader`).
fn require_leader<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "hasleader",
        tonic::metadata::MetadataValue::from_static("true"),
    );
    r
}

#[tokio::test]
async fn require_leader_calls_are_refused_and_their_watches_ended_without_a_leader() {
    let (b, ch) = setup().await;
    let mut kv = KvClient::new(ch.clone());
    kv.put(require_leader(put("a", "1"))).await.unwrap();
    let (tx, rx) = mpsc::channel(16);
    let mut watch = WatchClient::new(ch.clone());
    let mut out = watch
        .watch(require_leader(ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    tx.send(create("w", "", 0, 0)).await.unwrap();
    assert!(recv(&mut out).await.created);
    // A plain watch stream on the same member is not affected.
    let (plain_tx, plain_rx) = mpsc::channel(16);
    let mut plain = watch
        .watch(ReceiverStream::new(plain_rx))
        .await
        .unwrap()
        .into_inner();
    plain_tx.send(create("w", "", 0, 0)).await.unwrap();
    assert!(recv(&mut plain).await.created);

    b.set_leaderless(true);
    let e = kv.put(require_leader(put("a", "2"))).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert_eq!(e.message(), "etcdserver: no leader");
    // Without the metadata the request is served as before.
    kv.put(put("a", "3")).await.unwrap();
    let e = watch
        .watch(require_leader(ReceiverStream::new(mpsc::channel(1).1)))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "etcdserver: no leader");
    // The open require-leader stream ends after three leaderless checks.
    let ended = tokio::time::timeout(
        super::watch::LEADER_CHECK_INTERVAL * (super::watch::MAX_NO_LEADER_CHECKS + 2),
        async {
            loop {
                match out.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => return None,
                    Err(e) => return Some(e),
                }
            }
        },
    )
    .await
    .expect("the require-leader watch stream was not ended");
    let e = ended.expect("ended with an error");
    assert_eq!(e.code(), Code::Unavailable);
    assert_eq!(e.message(), "etcdserver: no leader");
    // The plain stream still delivers once a leader is back.
    b.set_leaderless(false);
    kv.put(put("w", "x")).await.unwrap();
    let ev = recv(&mut plain).await;
    assert_eq!(ev.events.len(), 1);
}

/// etcd 3.5: LeaseTimeToLive with `keys` needs READ on every attached key (without `keys`,
/// anyone authenticated may ask).
#[tokio::test]
async fn lease_time_to_live_with_keys_needs_read_on_them() {
    let (_b, ch) = setup().await;
    let lease = LeaseClient::new(ch.clone())
        .lease_grant(pb::LeaseGrantRequest { ttl: 60, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id;
    let mut p = put("secret", "v");
    p.lease = lease;
    KvClient::new(ch.clone()).put(p).await.unwrap();
    let mut auth = AuthClient::new(ch.clone());
    for (name, password) in [("root", "pw"), ("bob", "pw")] {
        auth.user_add(pb::AuthUserAddRequest {
            name: name.into(),
            password: password.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    auth.user_grant_role(pb::AuthUserGrantRoleRequest {
        user: "root".into(),
        role: "root".into(),
    })
    .await
    .unwrap();
    auth.auth_enable(pb::AuthEnableRequest {}).await.unwrap();
    let token = |name: &str| {
        let mut auth = auth.clone();
        let name = name.to_string();
        async move {
            auth.authenticate(pb::AuthenticateRequest {
                name,
                password: "pw".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .token
        }
    };
    let ttl = |token: String, keys: bool| {
        let mut c = LeaseClient::new(ch.clone());
        async move {
            let mut req = tonic::Request::new(pb::LeaseTimeToLiveRequest { id: lease, keys });
            req.metadata_mut().insert("token", token.parse().unwrap());
            c.lease_time_to_live(req).await
        }
    };
    let bob = token("bob").await;
    let e = ttl(bob.clone(), true).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(e.message(), "etcdserver: permission denied");
    assert_eq!(ttl(bob, false).await.unwrap().into_inner().granted_ttl, 60);
    let r = ttl(token("root").await, true).await.unwrap().into_inner();
    assert_eq!(r.keys, vec![b"secret".to_vec()]);
}
