//! Backups in etcd's format, both ways, with the real etcd 3.4 tools (skipped, with the
//! reason printed, when `etcd`/`etcdctl` are not installed):
//!
//! * Quorum → etcd: `etcdctl snapshot save` from a Quorum member gives a file `etcdctl snapshot
//!   status` reads (right revision), and `etcdctl snapshot restore` + a real etcd serves its
//!   keys, history, lease, user and role;
//! * etcd → Quorum: a snapshot saved from a real etcd (keys, a lease, users, roles, auth
//!   enabled) starts a Quorum member with `--restore-snapshot`: same keys and revisions, the
//!   lease with its key, and the users authenticate with their etcd passwords.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quorum_tests::{free_port, Cluster};
use serde_json::Value;

// etcd_binaries, start_etcd (etcd on loopback ports, waited healthy), base64_decode: the
// helpers the bbolt crate's etcd tests use.
#[path = "../../crates/bbolt/tests/common/mod.rs"]
mod etcd_tools;
use etcd_tools::{base64_decode, etcd_binaries, start_etcd};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_quorum-test-server"))
}

/// etcdctl (API v3) against one endpoint, optionally as a user.
struct Ctl<'a> {
    bin: &'a Path,
    endpoint: String,
    user: Option<&'a str>,
}

impl Ctl<'_> {
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = Command::new(self.bin);
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint))
            .arg("--command-timeout=10s");
        if let Some(u) = self.user {
            cmd.arg(format!("--user={u}"));
        }
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run etcdctl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "etcdctl {args:?} failed: {err}{out}");
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-w", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("bad JSON {out:?}: {e}"))
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.run(&["endpoint", "health"]).0 {
            assert!(Instant::now() < deadline, "{} never healthy", self.endpoint);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn as_user<'b>(&'b self, user: &'b str) -> Ctl<'b> {
        Ctl {
            bin: self.bin,
            endpoint: self.endpoint.clone(),
            user: Some(user),
        }
    }
}

/// `(value, create_revision, mod_revision, version)` of `key` as `get -w json` reports it, and
/// the header revision.
fn get(ctl: &Ctl, key: &str) -> (Option<(String, i64, i64, i64)>, i64) {
    let v = ctl.json(&["get", key]);
    let rev = v["header"]["revision"].as_i64().expect("header revision");
    let kv = v["kvs"].get(0).map(|kv| {
        (
            kv["value"].as_str().unwrap_or("").to_string(),
            kv["create_revision"].as_i64().unwrap_or(0),
            kv["mod_revision"].as_i64().unwrap_or(0),
            kv["version"].as_i64().unwrap_or(0),
        )
    });
    (kv, rev)
}

/// The value of `key` at revision `rev`.
fn value_at(ctl: &Ctl, key: &str, rev: i64) -> Vec<u8> {
    let v = ctl.json(&["get", key, &format!("--rev={rev}")]);
    base64_decode(v["kvs"][0]["value"].as_str().expect("a value"))
}

/// The hex lease id etcdctl prints in "lease 694d... granted with TTL(600s)".
fn grant(ctl: &Ctl, ttl: &str) -> String {
    let out = ctl.ok(&["lease", "grant", ttl]);
    out.split_whitespace().nth(1).expect("lease id").to_string()
}

#[test]
fn quorum_backup_is_read_by_etcdctl_and_restored_into_etcd() {
    let Some((etcd_bin, ctl_bin)) = etcd_binaries() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let quorum = Cluster::start(binary(), 1, &[]);
    let q = Ctl {
        bin: &ctl_bin,
        endpoint: quorum.endpoints()[0].clone(),
        user: None,
    };
    q.wait_healthy();
    q.ok(&["put", "a", "1"]);
    q.ok(&["put", "a", "2"]);
    q.ok(&["put", "b", "x"]);
    q.ok(&["del", "b"]);
    for i in 0..20 {
        q.ok(&["put", &format!("many/{i:02}"), &"v".repeat(i * 300)]);
    }
    let lease = grant(&q, "600");
    q.ok(&["put", "leased", "v", &format!("--lease={lease}")]);
    q.ok(&["compaction", "2"]);
    q.ok(&["user", "add", "alice:secret", "--interactive=false"]);
    q.ok(&["role", "add", "reader"]);
    q.ok(&["role", "grant-permission", "reader", "read", "a"]);
    q.ok(&["user", "grant-role", "alice", "reader"]);
    let (a, rev) = get(&q, "a");
    let a = a.expect("a");

    // (a) snapshot save from Quorum, snapshot status reads it.
    let file = dir.path().join("quorum.db");
    let file_s = file.to_str().unwrap();
    q.ok(&["snapshot", "save", file_s]);
    let status = q.json(&["snapshot", "status", file_s]);
    assert_eq!(status["revision"].as_i64(), Some(rev), "{status}");
    assert!(status["totalKey"].as_u64().unwrap_or(0) > 25, "{status}");
    drop(quorum);

    // (b) snapshot restore into an etcd data dir; etcd serves it.
    let data = dir.path().join("etcd-restored");
    let peer_port = free_port();
    q.ok(&[
        "snapshot",
        "restore",
        file_s,
        "--data-dir",
        data.to_str().unwrap(),
        "--name",
        "default",
        "--initial-cluster",
        &format!("default=http://127.0.0.1:{peer_port}"),
        "--initial-advertise-peer-urls",
        &format!("http://127.0.0.1:{peer_port}"),
    ]);
    let etcd = start_etcd(&etcd_bin, &ctl_bin, &data, peer_port);
    let e = Ctl {
        bin: &ctl_bin,
        endpoint: etcd.endpoint.clone(),
        user: None,
    };
    let (got, erev) = get(&e, "a");
    assert_eq!(got, Some(a.clone()), "key a in the restored etcd");
    assert_eq!(erev, rev, "etcd continues at Quorum's revision");
    assert_eq!(get(&e, "b").0, None, "b was deleted");
    assert_eq!(value_at(&e, "a", a.1), b"1", "history");
    let (ok, _, err) = e.run(&["get", "a", "--rev=1"]);
    assert!(!ok && err.contains("compacted"), "compaction kept: {err}");
    let v = e.json(&["get", "many/", "--prefix", "--keys-only"]);
    assert_eq!(v["count"].as_i64(), Some(20));
    let v = e.json(&["get", "leased"]);
    let lease_dec = i64::from_str_radix(&lease, 16).unwrap();
    assert_eq!(v["kvs"][0]["lease"].as_i64(), Some(lease_dec));
    let ttl = e.ok(&["lease", "timetolive", &lease, "--keys"]);
    assert!(
        ttl.contains("leased") && ttl.contains("granted with TTL(600s)"),
        "{ttl}"
    );
    assert!(e.ok(&["user", "list"]).contains("alice"));
    let role = e.ok(&["role", "get", "reader"]);
    assert!(role.contains("Read:") && role.contains("\ta"), "{role}");
    let after = e.json(&["put", "after", "1"]);
    assert_eq!(after["header"]["revision"].as_i64(), Some(rev + 1));
}

#[test]
fn etcd_backup_starts_a_quorum_member() {
    let Some((etcd_bin, ctl_bin)) = etcd_binaries() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("etcd");
    let etcd = start_etcd(&etcd_bin, &ctl_bin, &data, free_port());
    let e = Ctl {
        bin: &ctl_bin,
        endpoint: etcd.endpoint.clone(),
        user: None,
    };
    e.ok(&["put", "x", "1"]);
    e.ok(&["put", "x", "2"]);
    e.ok(&["put", "y", "3"]);
    e.ok(&["del", "y"]);
    let lease = grant(&e, "900");
    e.ok(&["put", "z", "leased", &format!("--lease={lease}")]);
    e.ok(&["user", "add", "root:rootpw", "--interactive=false"]);
    e.ok(&["role", "add", "root"]);
    e.ok(&["user", "grant-role", "root", "root"]);
    e.ok(&["user", "add", "bob:bobpw", "--interactive=false"]);
    e.ok(&["role", "add", "rw"]);
    e.ok(&["role", "grant-permission", "rw", "readwrite", "x"]);
    e.ok(&["user", "grant-role", "bob", "rw"]);
    e.ok(&["auth", "enable"]);
    let root = e.as_user("root:rootpw");
    let (x, rev) = get(&root, "x");
    let x = x.expect("x");
    let (z, _) = get(&root, "z");
    let file = dir.path().join("etcd.db");
    root.ok(&["snapshot", "save", file.to_str().unwrap()]);
    drop(etcd);

    let flag = format!("--restore-snapshot={}", file.display());
    let quorum = Cluster::start(binary(), 1, &[flag.as_str()]);
    let q = Ctl {
        bin: &ctl_bin,
        endpoint: quorum.endpoints()[0].clone(),
        user: None,
    };
    let root = q.as_user("root:rootpw");
    root.wait_healthy();
    let (got, qrev) = get(&root, "x");
    assert_eq!(got, Some(x.clone()), "x in Quorum");
    assert_eq!(qrev, rev, "Quorum continues at etcd's revision");
    assert_eq!(get(&root, "z").0, z);
    assert_eq!(get(&root, "y").0, None, "y was deleted");
    assert_eq!(value_at(&root, "x", x.1), b"1", "history");
    assert!(root.ok(&["lease", "list"]).contains(&lease), "lease listed");
    let ttl = root.ok(&["lease", "timetolive", &lease, "--keys"]);
    assert!(ttl.contains("attached keys([z])"), "{ttl}");
    let users = root.ok(&["user", "list"]);
    assert!(users.contains("bob") && users.contains("root"), "{users}");
    // Auth came along enabled, with etcd's bcrypt hashes and bob's permission.
    let (ok, _, err) = q.run(&["get", "x"]);
    assert!(!ok, "auth is enabled: {err}");
    let bob = q.as_user("bob:bobpw");
    assert_eq!(get(&bob, "x").0, Some(x));
    let (ok, _, err) = bob.run(&["get", "z"]);
    assert!(!ok && err.contains("permission denied"), "{err}");
    let (ok, _, err) = q.as_user("bob:wrong").run(&["get", "x"]);
    assert!(!ok && err.contains("authentication failed"), "{err}");
    let put = root.json(&["put", "after", "1"]);
    assert_eq!(put["header"]["revision"].as_i64(), Some(rev + 1));
}
