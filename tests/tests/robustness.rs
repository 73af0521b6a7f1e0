//! Bad input and operator mistakes: garbage on the client and peer ports, requests over the
//! limits, a second process on a data dir, a restart with the wrong cluster token, and a
//! graceful stop of the leader (it hands leadership over first).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp, WatchOptions};
use quorum_tests::Cluster;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_quorum-test-server"))
}

async fn connect(ep: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect([ep], None).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {ep}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn put_eventually(c: &mut Client, k: &str, v: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.put(k, v, None).await {
            Ok(_) => return,
            Err(e) if Instant::now() > deadline => panic!("put {k} never succeeded: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clean_errors_and_the_member_keeps_serving() {
    let cluster = Cluster::start(binary(), 1, &["--max-txn-ops=4"]);
    let ep = cluster.endpoints()[0].clone();
    let mut c = connect(&ep).await;
    put_eventually(&mut c, "a", "1").await;

    // Garbage on the client port and on the peer port.
    for addr in [
        ep.clone(),
        cluster.nodes[0]
            .peer_url
            .trim_start_matches("http://")
            .to_string(),
    ] {
        for junk in [
            &b"\x00\x01\x02garbage\r\n\r\n"[..],
            &[0xffu8; 4096][..],
            b"GET / HTTP/1.1\r\n\r\n",
        ] {
            if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                let _ = s.write_all(junk);
            }
        }
    }

    // Too many operations in a txn.
    let ops: Vec<TxnOp> = (0..5)
        .map(|i| TxnOp::put(format!("t{i}"), "v", None))
        .collect();
    let err = c.txn(Txn::new().and_then(ops)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("too many operations in txn request"),
        "{err}"
    );
    // Duplicate keys in a txn.
    let err = c
        .txn(Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("duplicate key given in txn request"),
        "{err}"
    );
    // Empty key.
    let err = c.put("", "v", None).await.unwrap_err();
    assert!(err.to_string().contains("key is not provided"), "{err}");
    // Unknown lease.
    let err = c
        .put(
            "k",
            "v",
            Some(etcd_client::PutOptions::new().with_lease(12345)),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("requested lease not found"),
        "{err}"
    );
    let err = c.lease_revoke(12345).await.unwrap_err();
    assert!(
        err.to_string().contains("requested lease not found"),
        "{err}"
    );
    // Oversized request (default limit 1.5 MiB).
    let err = c
        .put("big", vec![b'x'; 2 * 1024 * 1024], None)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("too large")
            || msg.contains("larger than max")
            || msg.contains("message length"),
        "{msg}"
    );
    // Reads and watches of compacted and future revisions.
    for i in 0..5 {
        c.put("h", format!("{i}"), None).await.unwrap();
    }
    let rev = c.get("h", None).await.unwrap().header().unwrap().revision();
    c.compact(rev - 1, None).await.unwrap();
    let err = c
        .get("h", Some(GetOptions::new().with_revision(rev - 3)))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("required revision has been compacted"),
        "{err}"
    );
    let err = c
        .get("h", Some(GetOptions::new().with_revision(rev + 100)))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("required revision is a future revision"),
        "{err}"
    );
    let mut w = c
        .watch("h", Some(WatchOptions::new().with_start_revision(rev - 3)))
        .await
        .unwrap();
    let mut compacted = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while compacted.is_none() && Instant::now() < deadline {
        let m = tokio::time::timeout(Duration::from_secs(5), w.message())
            .await
            .expect("watch answers")
            .unwrap();
        match m {
            Some(r) if r.compact_revision() > 0 => compacted = Some(r.compact_revision()),
            Some(_) => {}
            None => break,
        }
    }
    assert_eq!(compacted, Some(rev - 1), "watch below the compaction point");

    // The member still serves.
    let t = Txn::new()
        .when([Compare::value("a", CompareOp::Equal, "1")])
        .and_then([TxnOp::put("a", "2", None)]);
    assert!(c.txn(t).await.unwrap().succeeded());
    let mut c2 = connect(&ep).await;
    assert_eq!(c2.get("a", None).await.unwrap().kvs()[0].value(), b"2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_and_a_wrong_token_are_refused() {
    let mut cluster = Cluster::start(binary(), 1, &[]);
    let node = &cluster.nodes[0];
    let out = Command::new(binary())
        .arg(format!("--data-dir={}", node.data_dir.display()))
        .arg("--listen-client-urls=http://127.0.0.1:0")
        .arg("--listen-peer-urls=http://127.0.0.1:0")
        .arg("--initial-advertise-peer-urls=http://127.0.0.1:1")
        .arg("--initial-cluster=default=http://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another process"), "{err}");

    cluster.kill(0);
    let node = &cluster.nodes[0];
    let out = Command::new(binary())
        .arg(format!("--name={}", node.name))
        .arg(format!("--data-dir={}", node.data_dir.display()))
        .arg(format!("--listen-client-urls={}", node.client_url))
        .arg(format!("--listen-peer-urls={}", node.peer_url))
        .arg(format!("--initial-cluster={}={}", node.name, node.peer_url))
        .arg("--initial-cluster-token=another-cluster")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--initial-cluster-token"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_leader_hands_leadership_over_and_exits_cleanly() {
    let mut cluster = Cluster::start(binary(), 3, &[]);
    let eps = cluster.endpoints();
    let mut c = connect(&eps[0]).await;
    put_eventually(&mut c, "before", "1").await;
    // Find the leader.
    let mut leader = None;
    for (i, ep) in eps.iter().enumerate() {
        let mut ci = connect(ep).await;
        let s = ci.status().await.unwrap();
        if s.leader() == s.header().unwrap().member_id() {
            leader = Some(i);
        }
    }
    let leader = leader.expect("a leader");
    let code = cluster.terminate(leader, Duration::from_secs(10));
    assert_eq!(code, Some(0), "the leader did not stop cleanly");
    // Another member leads at once (no election timeout needed), and writes go on.
    let other = (leader + 1) % 3;
    let mut co = connect(&eps[other]).await;
    put_eventually(&mut co, "after", "1").await;
    let log = cluster.log(leader);
    assert!(log.contains("transferring leadership"), "{log}");
    assert_eq!(co.get("before", None).await.unwrap().kvs().len(), 1);
}
