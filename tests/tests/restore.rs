//! Backup and restore: a snapshot saved through the Maintenance API (as `etcdctl snapshot
//! save` does) starts a new 3-member cluster with `--restore-snapshot`, keeping every key,
//! revision and lease; a corrupt file is refused with a message.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::wait_leader;
use etcd_client::{Client, GetOptions, PutOptions};
use quorum_tests::{free_port, Cluster};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_quorum-test-server"))
}

async fn connect(endpoint: &str) -> Client {
    for _ in 0..200 {
        if let Ok(c) = Client::connect([endpoint], None).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to {endpoint}");
}

/// Saves a snapshot of the member at `endpoint` into `file`, as etcdctl writes it (every
/// blob of the stream, the trailing sha256 included).
async fn save_snapshot(endpoint: &str, file: &Path) {
    let mut c = connect(endpoint).await;
    let mut stream = c.snapshot().await.expect("snapshot stream");
    let mut bytes = Vec::new();
    while let Some(resp) = stream.message().await.expect("snapshot chunk") {
        bytes.extend_from_slice(resp.blob());
    }
    std::fs::write(file, bytes).expect("write the snapshot file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_snapshot_starts_a_new_cluster_with_every_key_and_revision() {
    let backup_dir = tempfile::tempdir().unwrap();
    let file = backup_dir.path().join("backup.db");

    // The original cluster: keys with history, a deleted key, a lease.
    let old = Cluster::start(binary(), 1, &[]);
    let mut c = connect(&old.endpoints()[0]).await;
    for i in 0..50 {
        c.put(format!("k{i:02}"), format!("v{i}"), None)
            .await
            .unwrap();
    }
    c.put("k00", "again", None).await.unwrap();
    c.delete("k49", None).await.unwrap();
    let lease = c.lease_grant(600, None).await.unwrap().id();
    c.put("leased", "x", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap();
    let old_status = c.status().await.unwrap();
    let old_rev = old_status.header().unwrap().revision();
    let old_cluster_id = old_status.header().unwrap().cluster_id();
    save_snapshot(&old.endpoints()[0], &file).await;
    drop(old);

    // A new cluster from the backup.
    let flag = format!("--restore-snapshot={}", file.display());
    let mut new = Cluster::start(binary(), 3, &[flag.as_str()]);
    wait_leader(&new, &[0, 1, 2], Duration::from_secs(30)).await;
    for ep in new.endpoints() {
        let mut c = connect(&ep).await;
        let r = c
            .get("k", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(r.kvs().len(), 49, "keys at {ep}");
        assert_eq!(r.kvs()[0].value(), b"again");
        assert_eq!(r.kvs()[0].version(), 2, "history kept at {ep}");
        assert_eq!(r.header().unwrap().revision(), old_rev, "revision at {ep}");
        assert_ne!(r.header().unwrap().cluster_id(), old_cluster_id);
        let ttl = c.lease_time_to_live(lease, None).await.unwrap();
        assert!(ttl.ttl() > 0, "lease restored at {ep}");
    }
    // It takes writes, continuing the revisions.
    let mut c = connect(&new.endpoints()[1]).await;
    let put = c.put("after", "1", None).await.unwrap();
    assert_eq!(put.header().unwrap().revision(), old_rev + 1);

    // A restart with the same flags keeps the data (the flag only acts on a new data dir).
    new.restart(2);
    wait_leader(&new, &[0, 1, 2], Duration::from_secs(30)).await;
    let mut c = connect(&new.endpoints()[2]).await;
    let r = c
        .get(
            "",
            Some(GetOptions::new().with_from_key().with_serializable()),
        )
        .await
        .unwrap();
    assert_eq!(
        r.kvs().len(),
        51,
        "49 + leased + after: {:?}",
        r.kvs().len()
    );
    assert!(new.log(2).contains("--restore-snapshot"), "{}", new.log(2));

    // A corrupt backup is refused before anything starts.
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let bad = backup_dir.path().join("bad.db");
    std::fs::write(&bad, bytes).unwrap();
    let (client, peer) = (free_port(), free_port());
    let out = Command::new(binary())
        .arg("--name=solo")
        .arg(format!(
            "--data-dir={}",
            backup_dir.path().join("solo").display()
        ))
        .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
        .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
        ))
        .arg(format!("--initial-cluster=solo=http://127.0.0.1:{peer}"))
        .arg(format!("--restore-snapshot={}", bad.display()))
        .stdin(Stdio::null())
        .output()
        .expect("run the member");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sha256 mismatch"), "{stderr}");
}
