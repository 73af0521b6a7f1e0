//! Membership changes on real `quorum` processes through `etcd-client`: a learner is added,
//! started with `--initial-cluster-state existing`, catches up, publishes its name, is promoted
//! (through a follower, which forwards to the leader) and serves writes and reads; then the
//! leader is removed, steps down and exits, and the cluster keeps writing.

use std::path::Path;
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions, MemberAddOptions};
use quorum_tests::Cluster;

mod common;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_quorum-test-server"))
}

async fn connect(endpoint: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect([endpoint], None).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {endpoint}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn message(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => s.message().to_string(),
        other => other.to_string(),
    }
}

/// Index (among `live`) of the member every live member agrees leads.
async fn wait_leader(cluster: &Cluster, live: &[usize]) -> usize {
    common::wait_leader(cluster, live, Duration::from_secs(20)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_learner_catch_up_promote_then_remove_the_leader() {
    let mut cluster = Cluster::start(
        binary(),
        3,
        &[
            "--snapshot-count=100",
            "--experimental-snapshot-catchup-entries=20",
        ],
    );
    let leader = wait_leader(&cluster, &[0, 1, 2]).await;
    let eps = cluster.endpoints();
    let mut c0 = connect(&eps[0]).await;
    // Enough writes that the log is compacted: the new member catches up from a snapshot.
    for i in 0..400 {
        c0.put(format!("k{i:03}"), format!("v{i}"), None)
            .await
            .unwrap();
    }

    // Bad inputs get etcd's answers.
    let e = c0
        .member_add(["http://127.0.0.1:1/path"], None)
        .await
        .expect_err("URL with a path");
    assert_eq!(message(&e), "etcdserver: given member URLs are invalid");
    let e = c0
        .member_add([cluster.nodes[1].peer_url.clone()], None)
        .await
        .expect_err("duplicate peer URL");
    assert_eq!(message(&e), "etcdserver: Peer URLs already exists");
    let e = c0.member_remove(0x1234).await.expect_err("unknown member");
    assert_eq!(message(&e), "etcdserver: member not found");

    // Add a learner. Right after start the members may not have been connected for etcd's
    // health interval yet: "unhealthy cluster" until then.
    let j = cluster.prepare_joiner("m3", &[0, 1, 2]);
    let peer_url = cluster.nodes[j].peer_url.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let added = loop {
        match c0
            .member_add(
                [peer_url.clone()],
                Some(MemberAddOptions::new().with_is_learner()),
            )
            .await
        {
            Ok(r) => break r,
            Err(e) if message(&e) == "etcdserver: unhealthy cluster" => {
                assert!(Instant::now() < deadline, "cluster never healthy");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("member add: {e}"),
        }
    };
    let new = added.member().expect("the new member").clone();
    assert!(new.is_learner());
    assert_eq!(new.name(), "", "no name until it starts");
    assert_eq!(new.peer_urls(), std::slice::from_ref(&peer_url));
    assert_eq!(added.member_list().len(), 4);
    let new_id = new.id();
    // A second learner is refused.
    let e = c0
        .member_add(
            ["http://127.0.0.1:1".to_string()],
            Some(MemberAddOptions::new().with_is_learner()),
        )
        .await
        .expect_err("second learner");
    assert_eq!(
        message(&e),
        "etcdserver: too many learner members in cluster"
    );
    // Every member lists the learner.
    for ep in &eps {
        let mut c = connect(ep).await;
        let list = c.member_list().await.unwrap();
        let m = list.members().iter().find(|m| m.id() == new_id);
        assert!(m.is_some_and(|m| m.is_learner()), "{ep} lists the learner");
    }

    // Start it: it joins, catches up and publishes its name and client URL.
    cluster.start_node(j);
    let new_ep = cluster.endpoints()[j].clone();
    let mut cn = connect(&new_ep).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = cn
            .get(
                "k",
                Some(GetOptions::new().with_prefix().with_serializable()),
            )
            .await
            .map(|r| r.kvs().len())
            .unwrap_or(0);
        let list = c0.member_list().await.unwrap();
        let published = list.members().iter().any(|m| {
            m.id() == new_id && m.name() == "m3" && m.client_urls() == [format!("http://{new_ep}")]
        });
        if got == 400 && published {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the learner did not catch up ({got} keys, published {published}); log:\n{}",
            cluster.log(j)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    assert!(
        cluster.log(j).contains("installing snapshot"),
        "the learner caught up from a snapshot; log:\n{}",
        cluster.log(j)
    );

    // A learner serves serializable reads and Status only, as etcd: everything else is
    // "rpc not supported for learner" (Unavailable, so clients try another endpoint).
    let e = cn
        .put("k-learner", "v", None)
        .await
        .expect_err("put on a learner");
    assert_eq!(message(&e), "etcdserver: rpc not supported for learner");
    let e = cn
        .get("k000", None)
        .await
        .expect_err("linearizable read on a learner");
    assert_eq!(message(&e), "etcdserver: rpc not supported for learner");
    let e = cn
        .member_list()
        .await
        .expect_err("member list on a learner");
    assert_eq!(message(&e), "etcdserver: rpc not supported for learner");
    let st = cn.status().await.expect("status on a learner");
    assert!(st.is_learner());

    // Promote it through a follower (it forwards to the leader, which knows whether the
    // learner is in sync).
    let follower = (0..3).find(|&i| i != leader).unwrap();
    let mut cf = connect(&eps[follower]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match cf.member_promote(new_id).await {
            Ok(r) => {
                assert!(r.members().iter().all(|m| !m.is_learner()));
                break;
            }
            Err(e)
                if message(&e)
                    == "etcdserver: can only promote a learner member which is in sync with leader"
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("promote: {e}"),
        }
    }
    let e = cf
        .member_promote(new_id)
        .await
        .expect_err("already a voter");
    assert_eq!(message(&e), "etcdserver: can only promote a learner member");

    // The new voter serves writes and linearizable reads once it has applied its promotion
    // (until then it answers as a learner, as etcd's members do).
    let deadline = Instant::now() + Duration::from_secs(20);
    while cn.status().await.unwrap().is_learner() {
        assert!(
            Instant::now() < deadline,
            "the promotion never reached the new member"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cn.put("through-new", "yes", None).await.unwrap();
    let r = c0.get("through-new", None).await.unwrap();
    assert_eq!(r.kvs()[0].value(), b"yes");
    let r = cn.get("k399", None).await.unwrap();
    assert_eq!(r.kvs()[0].value(), b"v399");

    // Remove the leader through another member: it steps down, exits, and the others go on.
    let leader = wait_leader(&cluster, &[0, 1, 2, j]).await;
    let leader_id = {
        let mut c = connect(&cluster.endpoints()[leader]).await;
        c.status().await.unwrap().header().unwrap().member_id()
    };
    let other = [0, 1, 2, j].into_iter().find(|&i| i != leader).unwrap();
    let mut co = connect(&cluster.endpoints()[other]).await;
    let r = co.member_remove(leader_id).await.unwrap();
    assert_eq!(r.members().len(), 3);
    assert!(r.members().iter().all(|m| m.id() != leader_id));
    let code = cluster.wait_exit(leader, Duration::from_secs(20));
    assert_eq!(
        code,
        Some(0),
        "the removed leader exits; log:\n{}",
        cluster.log(leader)
    );
    assert!(cluster
        .log(leader)
        .contains("the member has been permanently removed from the cluster"));
    let live: Vec<usize> = [0, 1, 2, j].into_iter().filter(|&i| i != leader).collect();
    wait_leader(&cluster, &live).await;
    for (n, &i) in live.iter().enumerate() {
        let mut c = connect(&cluster.endpoints()[i]).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match c.put(format!("after-{n}"), "x", None).await {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("write after removal through member {i}: {e}"),
            }
        }
        let list = c.member_list().await.unwrap();
        assert_eq!(list.members().len(), 3, "member {i} lists three members");
    }
    // Restarting the removed member with its data dir is refused.
    cluster.launch(leader);
    assert_eq!(cluster.wait_exit(leader, Duration::from_secs(20)), Some(1));
    assert!(cluster.log(leader).contains("permanently removed"));

    // A member removed while it is down learns it from its peers when it comes back, and
    // stops; the two left keep serving.
    let down = live[0];
    let down_id = {
        let mut c = connect(&cluster.endpoints()[down]).await;
        c.status().await.unwrap().header().unwrap().member_id()
    };
    cluster.kill(down);
    let rest: Vec<usize> = live.iter().copied().filter(|&i| i != down).collect();
    let mut cr = connect(&cluster.endpoints()[rest[0]]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match cr.member_remove(down_id).await {
            Ok(r) => {
                assert_eq!(r.members().len(), 2);
                break;
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("remove of a down member: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("remove of a down member: {e}"),
        }
    }
    cluster.launch(down);
    assert_eq!(
        cluster.wait_exit(down, Duration::from_secs(20)),
        Some(0),
        "the member removed while down stops; log:\n{}",
        cluster.log(down)
    );
    assert!(cluster
        .log(down)
        .contains("the member has been permanently removed from the cluster"));
    wait_leader(&cluster, &rest).await;
    for &i in &rest {
        let mut c = connect(&cluster.endpoints()[i]).await;
        c.put(format!("two-left-{i}"), "x", None).await.unwrap();
        assert_eq!(c.member_list().await.unwrap().members().len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voter_added_directly_replays_the_log_then_removes_itself() {
    let mut cluster = Cluster::start(binary(), 3, &[]);
    wait_leader(&cluster, &[0, 1, 2]).await;
    let eps = cluster.endpoints();
    let mut c1 = connect(&eps[1]).await;
    for i in 0..50 {
        c1.put(format!("r{i:02}"), "v", None).await.unwrap();
    }
    let j = cluster.prepare_joiner("m3", &[0, 1, 2]);
    let peer_url = cluster.nodes[j].peer_url.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let new_id = loop {
        match c1.member_add([peer_url.clone()], None).await {
            Ok(r) => {
                let m = r.member().expect("the new member");
                assert!(!m.is_learner());
                break m.id();
            }
            Err(e) if message(&e) == "etcdserver: unhealthy cluster" => {
                assert!(Instant::now() < deadline, "cluster never healthy");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("member add: {e}"),
        }
    };
    // Four voters, one not started: a quorum of three still commits.
    c1.put("while-unstarted", "ok", None).await.unwrap();

    cluster.start_node(j);
    let new_ep = cluster.endpoints()[j].clone();
    let mut cn = connect(&new_ep).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = cn
            .get("r", Some(GetOptions::new().with_prefix()))
            .await
            .map(|r| r.kvs().len())
            .unwrap_or(0);
        if got == 50 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new voter did not catch up; log:\n{}",
            cluster.log(j)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !cluster.log(j).contains("installing snapshot"),
        "the log was not compacted: the new member replays it from the start"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = cn.member_list().await.unwrap();
        if list.members().len() == 4 && list.members().iter().all(|m| !m.name().is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "names not published: {list:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cn.put("through-new", "yes", None).await.unwrap();

    // It removes itself through its own endpoint (once it has been connected to the others
    // for etcd's health interval): the answer arrives, then it stops.
    let deadline = Instant::now() + Duration::from_secs(20);
    let r = loop {
        match cn.member_remove(new_id).await {
            Ok(r) => break r,
            Err(e) if message(&e) == "etcdserver: unhealthy cluster" => {
                assert!(Instant::now() < deadline, "never healthy");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("member remove: {e}"),
        }
    };
    assert_eq!(r.members().len(), 3);
    assert_eq!(cluster.wait_exit(j, Duration::from_secs(20)), Some(0));
    let r = c1.get("through-new", None).await.unwrap();
    assert_eq!(r.kvs()[0].value(), b"yes");
    c1.put("after-self-removal", "ok", None).await.unwrap();
}
