//! A real 3-member cluster of `quorum` processes, used through a third-party etcd client
//! library (`etcd-client`): every API, and the faults the issue names (kill -9 of the leader
//! under writes, a paused majority, full restart, catch-up by snapshot).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, LockOptions, PutOptions, Txn, TxnOp,
    WatchOptions,
};
use quorum_tests::Cluster;

mod common;
use common::wait_leader;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_quorum-test-server"))
}

async fn connect(endpoints: &[String]) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect(endpoints, None).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {endpoints:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Puts with retries on errors that leave the outcome unknown; returns true when acknowledged.
async fn put_acked(c: &mut Client, k: &str, v: &str) -> bool {
    c.put(k, v, None).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_txn_watch_lease_lock_election_on_three_members() {
    let cluster = Cluster::start(binary(), 3, &[]);
    wait_leader(&cluster, &[0, 1, 2], Duration::from_secs(20)).await;
    let eps = cluster.endpoints();

    // Writes through one member are visible, linearizably, through every member.
    let mut c0 = connect(&eps[0..1]).await;
    c0.put("k1", "v1", None).await.unwrap();
    for ep in &eps {
        let mut c = connect(std::slice::from_ref(ep)).await;
        let r = c.get("k1", None).await.unwrap();
        assert_eq!(r.kvs()[0].value(), b"v1", "linearizable read at {ep}");
    }
    let mut c2 = connect(&eps[2..3]).await;
    // Writes through a follower too, and prev_kv.
    let r = c2
        .put("k1", "v2", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(r.prev_key().unwrap().value(), b"v1");
    let r = c0.get("k1", None).await.unwrap();
    assert_eq!(r.kvs()[0].value(), b"v2");
    assert_eq!(r.kvs()[0].version(), 2);

    // Prefix range and delete.
    for i in 0..10 {
        c0.put(format!("p/{i}"), format!("{i}"), None)
            .await
            .unwrap();
    }
    let r = c2
        .get("p/", Some(GetOptions::new().with_prefix().with_limit(3)))
        .await
        .unwrap();
    assert_eq!(r.kvs().len(), 3);
    assert!(r.more());
    assert_eq!(r.count(), 10);
    let d = c0
        .delete("p/", Some(etcd_client::DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(d.deleted(), 10);

    // Compare-and-swap transaction.
    let t = Txn::new()
        .when([Compare::value("k1", CompareOp::Equal, "v2")])
        .and_then([TxnOp::put("k1", "v3", None)])
        .or_else([TxnOp::get("k1", None)]);
    assert!(c2.txn(t).await.unwrap().succeeded());
    let t = Txn::new()
        .when([Compare::value("k1", CompareOp::Equal, "v2")])
        .and_then([TxnOp::put("k1", "v4", None)]);
    assert!(!c0.txn(t).await.unwrap().succeeded());

    // Watch from a follower sees a write made through another member, with prev_kv.
    let mut stream = c2
        .watch("wk", Some(WatchOptions::new().with_prev_key()))
        .await
        .unwrap();
    // etcd-client returns before the member has created the watch: a watch without a start
    // revision starts after the revision in its `created` response, so wait for it first
    // (else the first put may be applied on c2's member before the watch exists).
    let created = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("created in time")
        .unwrap()
        .expect("stream open");
    assert!(created.created());
    c0.put("wk", "a", None).await.unwrap();
    c0.put("wk", "b", None).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("watch event in time")
            .unwrap()
            .expect("stream open");
        for e in resp.events() {
            assert_eq!(e.event_type(), EventType::Put);
            seen.push((
                e.kv().unwrap().value().to_vec(),
                e.prev_kv().map(|p| p.value().to_vec()),
            ));
        }
    }
    assert_eq!(seen[0], (b"a".to_vec(), None));
    assert_eq!(seen[1], (b"b".to_vec(), Some(b"a".to_vec())));

    // A lease that is not kept alive expires (decided by the leader), deleting its key.
    let lease = c1_grant(&mut c0, 2).await;
    c0.put("leased", "x", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap();
    assert_eq!(c2.get("leased", None).await.unwrap().kvs().len(), 1);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if c2.get("leased", None).await.unwrap().kvs().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "leased key outlived its lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A kept-alive lease survives (keep-alive through a follower is forwarded to the leader).
    let lease = c1_grant(&mut c2, 2).await;
    let (mut keeper, mut ka) = c2.lease_keep_alive(lease).await.unwrap();
    c2.put("kept", "y", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap();
    for _ in 0..8 {
        keeper.keep_alive().await.unwrap();
        let r = ka.message().await.unwrap().unwrap();
        assert!(r.ttl() > 0, "keep-alive answered ttl {}", r.ttl());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(c0.get("kept", None).await.unwrap().kvs().len(), 1);
    c0.lease_revoke(lease).await.unwrap();
    assert!(c0.get("kept", None).await.unwrap().kvs().is_empty());

    // Lock contention: the second locker waits until the first unlocks.
    let l1 = c1_grant(&mut c0, 30).await;
    let l2 = c1_grant(&mut c2, 30).await;
    let lock1 = c0
        .lock("mylock", Some(LockOptions::new().with_lease(l1)))
        .await
        .unwrap();
    let key1 = lock1.key().to_vec();
    let mut c2b = c2.clone();
    let waiter = tokio::spawn(async move {
        let r = c2b
            .lock("mylock", Some(LockOptions::new().with_lease(l2)))
            .await
            .unwrap();
        (Instant::now(), r.key().to_vec())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiter.is_finished(),
        "second lock granted while the first is held"
    );
    let unlocked_at = Instant::now();
    c0.unlock(key1.clone()).await.unwrap();
    let (granted_at, key2) = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("second lock granted after unlock")
        .unwrap();
    assert!(granted_at >= unlocked_at);
    assert_ne!(key1, key2);

    // Election: campaign, leader, proclaim, resign.
    let el = c1_grant(&mut c0, 30).await;
    let r = c0.campaign("myelection", "v1", el).await.unwrap();
    let leader_key = r.leader().unwrap().clone();
    let l = c2.leader("myelection").await.unwrap();
    assert_eq!(l.kv().unwrap().value(), b"v1");
    c0.proclaim(
        "v2",
        Some(etcd_client::ProclaimOptions::new().with_leader(leader_key.clone())),
    )
    .await
    .unwrap();
    let l = c2.leader("myelection").await.unwrap();
    assert_eq!(l.kv().unwrap().value(), b"v2");
    c0.resign(Some(
        etcd_client::ResignOptions::new().with_leader(leader_key),
    ))
    .await
    .unwrap();

    // Cluster and maintenance APIs.
    let members = c0.member_list().await.unwrap();
    assert_eq!(members.members().len(), 3);
    let mut listed: Vec<String> = members
        .members()
        .iter()
        .flat_map(|m| m.client_urls().to_vec())
        .collect();
    listed.sort();
    let mut expected: Vec<String> = cluster.nodes.iter().map(|n| n.client_url.clone()).collect();
    expected.sort();
    assert_eq!(listed, expected, "every member's client URLs are listed");
    let s = c0.status().await.unwrap();
    assert!(s.leader() != 0);
    assert!(s.raft_index() > 0);
}

async fn c1_grant(c: &mut Client, ttl: i64) -> i64 {
    c.lease_grant(ttl, None).await.unwrap().id()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_writes_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(binary(), 3, &[]);
    let leader = wait_leader(&cluster, &[0, 1, 2], Duration::from_secs(20)).await;
    let eps = cluster.endpoints();
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();

    // Writers through the followers (they survive); kill the leader mid-stream.
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let mut c = connect(&[eps[followers[0]].clone(), eps[followers[1]].clone()]).await;
    for i in 0..200 {
        if i == 60 {
            cluster.kill(leader);
        }
        let k = format!("w/{i:04}");
        if put_acked(&mut c, &k, "v").await {
            acked.insert(k, "v".to_string());
        }
    }
    let new_leader = wait_leader(&cluster, &followers, Duration::from_secs(20)).await;
    assert_ne!(new_leader, leader);
    assert!(
        acked.len() >= 100,
        "too few writes acknowledged: {}",
        acked.len()
    );
    // The old leader comes back and catches up; every member has every acknowledged write.
    cluster.restart(leader);
    wait_leader(&cluster, &[0, 1, 2], Duration::from_secs(20)).await;
    let mut hashes = Vec::new();
    for ep in &eps {
        let mut c = connect(std::slice::from_ref(ep)).await;
        let r = c
            .get("w/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        let got: Vec<String> = r
            .kvs()
            .iter()
            .map(|kv| kv.key_str().unwrap().to_string())
            .collect();
        for k in acked.keys() {
            assert!(got.contains(k), "acknowledged {k} missing at {ep}");
        }
        let rev = r.header().unwrap().revision();
        hashes.push((rev, c.hash_kv(rev).await.unwrap().hash()));
    }
    // Same revision → same HashKV on every member.
    let max_rev = hashes.iter().map(|(r, _)| *r).max().unwrap();
    let mut at_rev = Vec::new();
    for ep in &eps {
        let mut c = connect(std::slice::from_ref(ep)).await;
        // Wait until the member applied max_rev, then hash at it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = c
                .get("w/0000", Some(GetOptions::new().with_serializable()))
                .await
                .unwrap();
            if r.header().unwrap().revision() >= max_rev || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        at_rev.push(c.hash_kv(max_rev).await.unwrap().hash());
    }
    assert!(
        at_rev.iter().all(|h| *h == at_rev[0]),
        "HashKV differs between members at revision {max_rev}: {at_rev:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_refuses_writes_in_bounded_time_and_recovers() {
    let mut cluster = Cluster::start(binary(), 3, &[]);
    wait_leader(&cluster, &[0, 1, 2], Duration::from_secs(20)).await;
    let eps = cluster.endpoints();
    let mut c0 = connect(&eps[0..1]).await;
    c0.put("before", "1", None).await.unwrap();
    cluster.pause(1);
    cluster.pause(2);
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(30), c0.put("during", "1", None)).await;
    let elapsed = started.elapsed();
    match r {
        Ok(Err(e)) => {
            let msg = e.to_string();
            assert!(
                msg.contains("no leader")
                    || msg.contains("timed out")
                    || msg.contains("leader changed"),
                "unexpected error {msg}"
            );
        }
        Ok(Ok(_)) => panic!("a minority acknowledged a write"),
        Err(_) => panic!("the write hung for 30 s instead of failing"),
    }
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    // Serializable reads still answer from the local state.
    let r = c0
        .get("before", Some(GetOptions::new().with_serializable()))
        .await
        .unwrap();
    assert_eq!(r.kvs().len(), 1);
    cluster.resume(1);
    cluster.resume(2);
    wait_leader(&cluster, &[0, 1, 2], Duration::from_secs(20)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c0.put("after", "1", None).await {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => panic!("cluster did not recover: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    assert_eq!(c0.get("before", None).await.unwrap().kvs().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_restart_keeps_every_key_and_a_lagging_member_catches_up_by_snapshot() {
    let mut cluster = Cluster::start(
        binary(),
        3,
        &[
            "--snapshot-count=50",
            "--experimental-snapshot-catchup-entries=10",
        ],
    );
    let leader = wait_leader(&cluster, &[0, 1, 2], Duration::from_secs(20)).await;
    let eps = cluster.endpoints();
    let lagger = (leader + 1) % 3;
    cluster.kill(lagger);
    let live: Vec<String> = (0..3)
        .filter(|i| *i != lagger)
        .map(|i| eps[i].clone())
        .collect();
    let mut c = connect(&live).await;
    // Far more than snapshot-count + the 5000 catch-up entries is too slow for a test; the
    // member is configured to keep few entries, so 50-entry snapshots compact the log.
    for i in 0..400 {
        c.put(format!("s/{i:04}"), "v", None).await.unwrap();
    }
    cluster.restart(lagger);
    let mut cl = connect(&eps[lagger..lagger + 1]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = cl
            .get(
                "s/",
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await;
        if let Ok(r) = r {
            if r.count() == 400 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "lagging member did not catch up; its log:\n{}\nleader's log:\n{}",
            cluster.log(lagger),
            cluster.log(leader)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let m = quorum_tests::http_get(&eps[lagger], "/metrics").unwrap();
    assert_eq!(
        quorum_tests::metric(&m, "etcd_network_snapshot_receive_success"),
        Some(1.0),
        "the lagging member should have caught up through exactly one snapshot; metrics:\n{m}\nlog:\n{}",
        cluster.log(lagger)
    );
    // Restart everyone from their data dirs: nothing is lost.
    for i in 0..3 {
        cluster.kill(i);
    }
    for i in 0..3 {
        cluster.restart(i);
    }
    wait_leader(&cluster, &[0, 1, 2], Duration::from_secs(30)).await;
    let mut c = connect(&eps).await;
    let r = c
        .get(
            "s/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!(r.count(), 400);
}

/// A one-member cluster elects itself at once (etcd's initial election tick advance): the
/// first write after its client port opens succeeds, on a fresh start and after a kill -9,
/// instead of meeting `etcdserver: no leader` for one to two election timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_member_serves_writes_as_soon_as_it_listens() {
    let mut cluster = Cluster::start(binary(), 1, &[]);
    let eps = cluster.endpoints();
    let mut c = connect(&eps).await;
    c.put("first", "1", None)
        .await
        .expect("the first put after start");
    cluster.restart(0);
    let mut c = connect(&eps).await;
    c.put("second", "2", None)
        .await
        .expect("the first put after a restart");
    let r = c
        .get("", Some(GetOptions::new().with_from_key()))
        .await
        .unwrap();
    assert_eq!(r.kvs().len(), 2);
    // etcd's metric names, as dashboards and alerts read them.
    let m = quorum_tests::http_get(&eps[0], "/metrics").unwrap();
    let metric = |name| quorum_tests::metric(&m, name);
    assert_eq!(metric("etcd_server_has_leader"), Some(1.0), "{m}");
    assert_eq!(metric("etcd_server_is_leader"), Some(1.0));
    assert_eq!(metric("etcd_server_is_learner"), Some(0.0));
    assert_eq!(metric("etcd_debugging_mvcc_current_revision"), Some(3.0));
    assert_eq!(
        metric("etcd_server_quota_backend_bytes"),
        Some(2.0 * 1024.0 * 1024.0 * 1024.0)
    );
    assert!(metric("etcd_mvcc_db_total_size_in_bytes").is_some_and(|v| v > 0.0));
    // Process metrics, as etcd's Go client library exports them (etcdctl check datascale).
    assert!(
        metric("process_resident_memory_bytes").is_some_and(|v| v > 0.0),
        "{m}"
    );
    assert!(metric("etcd_server_proposals_committed_total").is_some_and(|v| v >= 2.0));
    assert!(m.contains("etcd_server_id{server_id=\""), "{m}");
    assert!(
        m.contains("etcd_server_version{server_version=\"3.5.0\"} 1"),
        "{m}"
    );
    // Health probes: etcd's /health, and 3.5's /livez and /readyz.
    let health = quorum_tests::http_get(&eps[0], "/health").unwrap();
    assert_eq!(health, r#"{"health":"true","reason":""}"#);
    assert_eq!(quorum_tests::http_get(&eps[0], "/livez").unwrap(), "ok");
    assert_eq!(quorum_tests::http_get(&eps[0], "/readyz").unwrap(), "ok");
    // etcd's JSON gateway on the same port: a put through it is seen by gRPC clients, and
    // errors come back as HTTP statuses with etcd's message.
    let (status, body) = quorum_tests::http_post(
        &eps[0],
        "/v3/kv/put",
        r#"{"key":"Z3c=","value":"anNvbg=="}"#,
    )
    .unwrap();
    assert!(status.contains(" 200 "), "{status}\n{body}");
    assert!(body.contains(r#""revision":"4""#), "{body}");
    let r = c.get("gw", None).await.unwrap();
    assert_eq!(r.kvs()[0].value(), b"json");
    let (status, body) =
        quorum_tests::http_post(&eps[0], "/v3/kv/range", r#"{"key":"Z3c="}"#).unwrap();
    assert!(status.contains(" 200 "), "{status}\n{body}");
    assert!(body.contains(r#""value":"anNvbg==""#), "{body}");
    let (status, body) =
        quorum_tests::http_post(&eps[0], "/v3/kv/range", r#"{"key":"Z3c=","revision":"99"}"#)
            .unwrap();
    assert!(status.contains(" 400 "), "{status}\n{body}");
    assert!(
        body.contains("etcdserver: mvcc: required revision is a future revision"),
        "{body}"
    );
}

/// Lease calls reaching a follower are forwarded to the leader over one shared peer channel,
/// not a connection each (which cost a TCP and HTTP/2 handshake per keep-alive and left a
/// TIME_WAIT socket behind every one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_lease_calls_share_one_connection() {
    let cluster = Cluster::start(binary(), 3, &[]);
    let leader = wait_leader(&cluster, &[0, 1, 2], Duration::from_secs(30)).await;
    let follower = (leader + 1) % 3;
    let mut c = connect(&[cluster.endpoints()[follower].clone()]).await;
    let lease = c.lease_grant(60, None).await.unwrap().id();
    let peer_port: u16 = cluster.nodes[leader]
        .peer_url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("peer URL with a port");
    // Warm up: the first forwarded call opens the follower's channel to the leader.
    c.lease_time_to_live(lease, None).await.unwrap();
    let before = sockets_to_port(peer_port);
    for _ in 0..30 {
        let ttl = c.lease_time_to_live(lease, None).await.unwrap();
        assert!(ttl.ttl() > 0, "lease expired: {}", ttl.ttl());
    }
    let after = sockets_to_port(peer_port);
    assert!(
        after <= before + 2,
        "30 forwarded calls opened {} connections to the leader's peer port",
        after.saturating_sub(before)
    );
}

/// TCP sockets (any state, TIME_WAIT included) whose remote end is `127.0.0.1:port`.
fn sockets_to_port(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(2) == Some(remote.as_str()))
        .count()
}
