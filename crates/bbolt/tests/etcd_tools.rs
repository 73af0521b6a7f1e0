//! Interoperability with the real etcd 3.4 tools (skipped, with a message, if they are not
//! installed): files we write pass `etcdctl snapshot status` and `snapshot restore` and serve
//! their keys from a restored etcd; snapshots etcd saves read back with our Reader.

mod common;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::Path;

use common::{base64_decode, etcd_binaries, etcdctl, free_port, start_etcd};
use quorum_bbolt::etcd::{self, KeyValue, Revision};
use quorum_bbolt::Writer;
use serde_json::Value;

/// One write of the synthetic history: Some(value) puts, None deletes.
type Op = (String, Option<String>);

fn history() -> Vec<Op> {
    let mut ops = Vec::new();
    for i in 0..40 {
        let value = if i == 13 {
            "x".repeat(9000) // spans overflow pages
        } else {
            format!("value-{i}")
        };
        ops.push((format!("key-{}", i % 9), Some(value)));
        if i == 30 {
            ops.push(("key-3".to_string(), None));
        }
    }
    ops.push(("key-5".to_string(), None));
    ops
}

/// Live keys after `ops`: key → (create_revision, mod_revision, version, value).
type State = BTreeMap<String, (i64, i64, i64, String)>;

/// Writes `ops` at revisions 2.. as etcd's backend would hold them, every etcd bucket present,
/// and appends the sha256 trailer. Returns the final state and the last revision.
fn write_etcd_db(path: &Path, ops: &[Op], consistent_index: u64) -> (State, i64) {
    let mut state = State::new();
    let mut w = Writer::new(File::create(path).unwrap()).unwrap();
    let mut rev = 1;
    for bucket in etcd::ETCD_BUCKETS {
        w.bucket(bucket).unwrap();
        if bucket == etcd::KEY_BUCKET {
            for (key, op) in ops {
                rev += 1;
                let r = Revision { main: rev, sub: 0 };
                match op {
                    Some(value) => {
                        let e = state
                            .entry(key.clone())
                            .or_insert((rev, 0, 0, String::new()));
                        e.1 = rev;
                        e.2 += 1;
                        e.3 = value.clone();
                        let kv = KeyValue {
                            key: key.as_bytes().to_vec(),
                            create_revision: e.0,
                            mod_revision: rev,
                            version: e.2,
                            value: value.as_bytes().to_vec(),
                            lease: 0,
                        };
                        w.put(&r.to_bytes(), &kv.encode()).unwrap();
                    }
                    None => {
                        assert!(state.remove(key).is_some());
                        let kv = KeyValue {
                            key: key.as_bytes().to_vec(),
                            ..KeyValue::default()
                        };
                        w.put(&r.to_tombstone_bytes(), &kv.encode()).unwrap();
                    }
                }
            }
        }
        if bucket == etcd::META_BUCKET {
            w.put(
                etcd::CONSISTENT_INDEX_KEY,
                &etcd::encode_u64(consistent_index),
            )
            .unwrap();
        }
    }
    let (f, _) = w.finish().unwrap();
    drop(f.sync_all());
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    etcd::append_snapshot_hash(&mut f).unwrap();
    (state, rev)
}

fn json(out: &std::process::Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("bad JSON {text:?}: {e}"))
}

#[test]
fn etcdctl_accepts_our_snapshot_and_etcd_serves_it() {
    let Some((etcd_bin, ctl)) = etcd_binaries() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("quorum.snapshot.db");
    let ops = history();
    let (state, last_rev) = write_etcd_db(&snap, &ops, 57);
    let snap_s = snap.to_str().unwrap();

    // (a) snapshot status: etcdctl's numbers, and ours computed the same way.
    let status = json(&etcdctl(
        &ctl,
        &["snapshot", "status", snap_s, "-w", "json"],
    ));
    let key_entries = ops.len() as u64;
    assert_eq!(status["revision"].as_i64(), Some(last_rev));
    assert_eq!(status["totalKey"].as_u64(), Some(key_entries + 1)); // + consistent_index
    let ours =
        etcd::snapshot_status(&etcd::open_snapshot(File::open(&snap).unwrap()).unwrap()).unwrap();
    assert_eq!(status["hash"].as_u64(), Some(u64::from(ours.hash)));
    assert_eq!(status["totalSize"].as_u64(), Some(ours.total_size));
    assert_eq!(ours.revision, last_rev);

    // (b) restore into a data dir and serve it.
    let data = dir.path().join("restored");
    let peer_port = free_port();
    let peer = format!("http://127.0.0.1:{peer_port}");
    etcdctl(
        &ctl,
        &[
            "snapshot",
            "restore",
            snap_s,
            "--data-dir",
            data.to_str().unwrap(),
            "--name",
            "default",
            "--initial-cluster",
            &format!("default={peer}"),
            "--initial-advertise-peer-urls",
            &peer,
        ],
    );
    let server = start_etcd(&etcd_bin, &ctl, &data, peer_port);
    let ep = server.endpoint.as_str();
    for (key, (create, modr, version, value)) in &state {
        let got = json(&etcdctl(
            &ctl,
            &["--endpoints", ep, "get", key, "-w", "json"],
        ));
        assert_eq!(got["header"]["revision"].as_i64(), Some(last_rev));
        let kv = &got["kvs"][0];
        assert_eq!(
            base64_decode(kv["value"].as_str().unwrap()),
            value.as_bytes()
        );
        assert_eq!(kv["create_revision"].as_i64(), Some(*create), "{key}");
        assert_eq!(kv["mod_revision"].as_i64(), Some(*modr), "{key}");
        assert_eq!(kv["version"].as_i64(), Some(*version), "{key}");
    }
    let deleted: Vec<&String> = ops
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !state.contains_key(*k))
        .collect();
    assert!(!deleted.is_empty());
    for key in deleted {
        let got = json(&etcdctl(
            &ctl,
            &["--endpoints", ep, "get", key, "-w", "json"],
        ));
        assert!(got.get("kvs").is_none(), "{key} should be deleted: {got}");
    }
    // History before the first deletion is still there (nothing was compacted).
    let d = ops.iter().position(|(_, v)| v.is_none()).unwrap();
    let key = &ops[d].0;
    let before = ops[..d]
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.clone())
        .unwrap();
    let rev = (d + 1).to_string(); // ops[i] is at revision i + 2
    let old = json(&etcdctl(
        &ctl,
        &["--endpoints", ep, "get", key, "--rev", &rev, "-w", "json"],
    ));
    assert_eq!(
        base64_decode(old["kvs"][0]["value"].as_str().unwrap()),
        before.as_bytes()
    );
    let count = json(&etcdctl(
        &ctl,
        &[
            "--endpoints",
            ep,
            "get",
            "--prefix",
            "key-",
            "--keys-only",
            "-w",
            "json",
        ],
    ));
    assert_eq!(count["count"].as_u64(), Some(state.len() as u64));
    drop(server);
}

#[test]
fn reads_a_snapshot_etcd_just_saved() {
    let Some((etcd_bin, ctl)) = etcd_binaries() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_etcd(&etcd_bin, &ctl, &data, free_port());
    let ep = server.endpoint.clone();
    let big = "y".repeat(7000);
    let puts = [
        ("alpha", "1"),
        ("beta", "2"),
        ("alpha", "3"),
        ("gamma", big.as_str()),
        ("delta", "4"),
    ];
    for (k, v) in puts {
        etcdctl(&ctl, &["--endpoints", &ep, "put", k, v]);
    }
    etcdctl(&ctl, &["--endpoints", &ep, "del", "beta"]);
    let snap = dir.path().join("etcd.snapshot.db");
    etcdctl(
        &ctl,
        &[
            "--endpoints",
            &ep,
            "snapshot",
            "save",
            snap.to_str().unwrap(),
        ],
    );
    drop(server);

    let r = etcd::open_snapshot(File::open(&snap).unwrap()).unwrap();
    r.check().unwrap();
    let key = r.bucket(etcd::KEY_BUCKET).unwrap().unwrap();
    let mut entries = Vec::new();
    for e in key.iter() {
        let e = e.unwrap();
        let (rev, tombstone) = Revision::parse_key(&e.key).unwrap();
        let kv = KeyValue::decode(&e.value).unwrap();
        entries.push((
            rev.main,
            tombstone,
            String::from_utf8(kv.key).unwrap(),
            kv.mod_revision,
            kv.version,
            String::from_utf8(kv.value).unwrap(),
        ));
    }
    let s = |x: &str| x.to_string();
    assert_eq!(
        entries,
        vec![
            (2, false, s("alpha"), 2, 1, s("1")),
            (3, false, s("beta"), 3, 1, s("2")),
            (4, false, s("alpha"), 4, 2, s("3")),
            (5, false, s("gamma"), 5, 1, big.clone()),
            (6, false, s("delta"), 6, 1, s("4")),
            (7, true, s("beta"), 0, 0, s("")),
        ]
    );
    let meta = r.bucket(etcd::META_BUCKET).unwrap().unwrap();
    let ci = etcd::decode_u64(&meta.get(etcd::CONSISTENT_INDEX_KEY).unwrap().unwrap()).unwrap();
    assert!(ci >= 6, "consistent index {ci}");
    let members = r.bucket(etcd::MEMBERS_BUCKET).unwrap().unwrap();
    assert_eq!(members.iter().count(), 1);

    let status = json(&etcdctl(
        &ctl,
        &["snapshot", "status", snap.to_str().unwrap(), "-w", "json"],
    ));
    let ours = etcd::snapshot_status(&r).unwrap();
    assert_eq!(status["hash"].as_u64(), Some(u64::from(ours.hash)));
    assert_eq!(status["revision"].as_i64(), Some(ours.revision));
    assert_eq!(status["totalKey"].as_u64(), Some(ours.total_key));
    assert_eq!(status["totalSize"].as_u64(), Some(ours.total_size));
    assert_eq!(ours.revision, 7);
}

#[test]
fn etcdctl_checks_a_large_multi_level_file() {
    let Some((_, ctl)) = etcd_binaries() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("large.snapshot.db");
    let mut rng = common::Rng::new(11);
    let ops: Vec<Op> = (0..30_000u64)
        .map(|i| {
            let len = if i % 997 == 0 {
                5000 + rng.below(20_000)
            } else {
                rng.below(200)
            };
            (
                format!("k/{}", rng.below(5000)),
                Some("v".repeat(len as usize)),
            )
        })
        .collect();
    let (_, last_rev) = write_etcd_db(&snap, &ops, 1);
    let status = json(&etcdctl(
        &ctl,
        &["snapshot", "status", snap.to_str().unwrap(), "-w", "json"],
    ));
    let ours =
        etcd::snapshot_status(&etcd::open_snapshot(File::open(&snap).unwrap()).unwrap()).unwrap();
    assert_eq!(status["revision"].as_i64(), Some(last_rev));
    assert_eq!(status["totalKey"].as_u64(), Some(ops.len() as u64 + 1));
    assert_eq!(status["hash"].as_u64(), Some(u64::from(ours.hash)));
    assert_eq!(status["totalSize"].as_u64(), Some(ours.total_size));
}
