//! etcdctl (Debian's etcd-client package, etcd 3.4) against a 3-member Quorum cluster: the
//! commands people and scripts use, with their output checked. Skipped, with a notice, when
//! etcdctl is not installed (scripts/test.sh installs it).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quorum_tests::{have_etcdctl, Cluster};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_quorum-test-server"))
}

struct Ctl {
    endpoints: String,
}

impl Ctl {
    fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use std::io::Write;
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints))
            .arg("--command-timeout=10s")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn etcdctl");
        if let Some(input) = stdin {
            child
                .stdin
                .as_mut()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("etcdctl output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run_with_stdin(args, None);
        assert!(ok, "etcdctl {args:?} failed: {err}{out}");
        out
    }

    fn fails(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run_with_stdin(args, None);
        assert!(!ok, "etcdctl {args:?} should have failed: {out}");
        err
    }
}

fn wait_healthy(ctl: &Ctl) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, _, _) = ctl.run_with_stdin(&["endpoint", "health"], None);
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "cluster never became healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A healthy 3-member cluster and an etcdctl over its endpoints, each written by `endpoint`;
/// `None` (with a notice) when etcdctl is not installed.
fn healthy_cluster(endpoint: impl Fn(&str) -> String) -> Option<(Cluster, Ctl)> {
    if !have_etcdctl() {
        eprintln!("SKIPPED: etcdctl is not installed (scripts/test.sh installs it)");
        return None;
    }
    let cluster = Cluster::start(binary(), 3, &[]);
    let ctl = Ctl {
        endpoints: cluster
            .endpoints()
            .iter()
            .map(|e| endpoint(e))
            .collect::<Vec<_>>()
            .join(","),
    };
    wait_healthy(&ctl);
    Some((cluster, ctl))
}

#[test]
fn etcdctl_drives_a_quorum_cluster() {
    let Some((cluster, ctl)) = healthy_cluster(|e| e.to_string()) else {
        return;
    };

    assert_eq!(ctl.ok(&["put", "foo", "bar"]).trim(), "OK");
    assert_eq!(ctl.ok(&["get", "foo"]), "foo\nbar\n");
    assert_eq!(ctl.ok(&["get", "foo", "--print-value-only"]), "bar\n");
    ctl.ok(&["put", "foo2", "baz"]);
    assert_eq!(
        ctl.ok(&["get", "foo", "--prefix", "--keys-only"]),
        "foo\n\nfoo2\n\n"
    );
    let json = ctl.ok(&["get", "foo", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json output");
    assert_eq!(v["kvs"][0]["version"], 1);
    assert!(v["header"]["revision"].as_i64().unwrap_or(0) >= 3);
    assert_eq!(ctl.ok(&["del", "foo2"]).trim(), "1");
    assert_eq!(ctl.ok(&["get", "foo2"]), "");

    // Interactive-style txn on stdin: compares, success ops, failure ops.
    let (ok, out, err) = ctl.run_with_stdin(
        &["txn"],
        Some("value(\"foo\") = \"bar\"\n\nput foo qux\n\nput foo nope\n\n"),
    );
    assert!(ok, "txn failed: {err}");
    assert!(out.starts_with("SUCCESS"), "{out}");
    assert_eq!(ctl.ok(&["get", "foo", "--print-value-only"]), "qux\n");

    // Leases.
    let out = ctl.ok(&["lease", "grant", "100"]);
    let id = out
        .split_whitespace()
        .nth(1)
        .expect("lease id in output")
        .to_string();
    ctl.ok(&["put", "leased", "v", &format!("--lease={id}")]);
    let ttl = ctl.ok(&["lease", "timetolive", &id, "--keys"]);
    assert!(ttl.contains("leased"), "{ttl}");
    assert!(ctl.ok(&["lease", "list"]).contains(&id));
    ctl.ok(&["lease", "keep-alive", "--once", &id]);
    ctl.ok(&["lease", "revoke", &id]);
    assert_eq!(ctl.ok(&["get", "leased"]), "");
    let err = ctl.fails(&["lease", "revoke", &id]);
    assert!(err.contains("requested lease not found"), "{err}");

    // Cluster and maintenance.
    let members = ctl.ok(&["member", "list"]);
    assert_eq!(members.lines().count(), 3, "{members}");
    let status = ctl.ok(&["endpoint", "status", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&status).expect("status json");
    let leaders: Vec<_> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["Status"]["leader"].as_u64())
        .collect();
    assert!(leaders.iter().all(|l| l.is_some() && *l == leaders[0]));
    ctl.ok(&["endpoint", "hashkv"]);
    ctl.ok(&["alarm", "list"]);
    ctl.ok(&["defrag"]);

    // Compaction, and a watch below it fails with the compact revision.
    let rev = v[0]["Status"]["header"]["revision"]
        .as_i64()
        .expect("revision");
    ctl.ok(&["compaction", &rev.to_string()]);
    let err = ctl.fails(&["get", "foo", &format!("--rev={}", rev - 1)]);
    assert!(
        err.contains("required revision has been compacted"),
        "{err}"
    );

    // Snapshot save writes a file etcdctl can check.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("snap.db");
    let single = Ctl {
        endpoints: cluster.endpoints()[0].clone(),
    };
    let out = single.ok(&["snapshot", "save", path.to_str().expect("utf8")]);
    assert!(out.contains("Snapshot saved"), "{out}");
    assert!(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) > 0);

    // Bad input gets etcd's errors, and the member keeps serving.
    let err = ctl.fails(&["put", "", "v"]);
    assert!(err.contains("key is not provided"), "{err}");
    let big = "x".repeat(2 * 1024 * 1024);
    let (ok, _, err) = ctl.run_with_stdin(&["put", "big"], Some(&big));
    assert!(!ok, "an oversized put was accepted");
    assert!(
        err.contains("request is too large") || err.contains("larger than max"),
        "{err}"
    );
    assert_eq!(ctl.ok(&["get", "foo", "--print-value-only"]), "qux\n");
}

/// `etcdctl member add/list/update/promote/remove` and their output, with etcd's refusals.
#[test]
fn etcdctl_membership_commands() {
    let Some((cluster, ctl)) = healthy_cluster(|e| e.to_string()) else {
        return;
    };
    let peer = format!("http://127.0.0.1:{}", quorum_tests::free_port());

    // Right after start the members have not been connected for etcd's health interval.
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let (ok, out, err) = ctl.run_with_stdin(
            &[
                "member",
                "add",
                "m3",
                &format!("--peer-urls={peer}"),
                "--learner",
            ],
            None,
        );
        if ok {
            break out;
        }
        assert!(err.contains("unhealthy cluster"), "{err}");
        assert!(Instant::now() < deadline, "cluster never healthy: {err}");
        std::thread::sleep(Duration::from_millis(250));
    };
    // "Member <id> added to cluster <cid>" and the environment for the new member.
    let first = out.lines().next().unwrap_or_default();
    let words: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(words.len(), 6, "{out}");
    assert_eq!(
        (words[0], words[2], words[3]),
        ("Member", "added", "to"),
        "{out}"
    );
    let id = words[1].to_string();
    assert!(u64::from_str_radix(&id, 16).is_ok(), "{out}");
    assert!(out.contains("ETCD_NAME=\"m3\""), "{out}");
    assert!(
        out.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{out}"
    );
    assert!(
        out.contains(&format!("ETCD_INITIAL_ADVERTISE_PEER_URLS=\"{peer}\"")),
        "{out}"
    );
    for node in &cluster.nodes {
        let entry = format!("{}={}", node.name, node.peer_url);
        assert!(out.contains(&entry), "{entry} missing from {out}");
    }

    // member list: "id, status, name, peer urls, client urls, is learner".
    let list = ctl.ok(&["member", "list"]);
    assert_eq!(list.lines().count(), 4, "{list}");
    let row = list
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not in {list}"));
    let cols: Vec<&str> = row.split(", ").collect();
    assert_eq!(
        cols,
        [id.as_str(), "unstarted", "", peer.as_str(), "", "true"]
    );
    for node in &cluster.nodes {
        let row = list
            .lines()
            .find(|l| l.contains(&node.peer_url))
            .unwrap_or_else(|| panic!("{} not in {list}", node.name));
        let cols: Vec<&str> = row.split(", ").collect();
        assert_eq!(
            cols[1..],
            [
                "started",
                &node.name,
                &node.peer_url,
                &node.client_url,
                "false"
            ]
        );
    }

    // Refusals: a second learner, a taken peer URL, an unknown id, a learner that never
    // started (so it is not in sync), a voter.
    let err = ctl.fails(&[
        "member",
        "add",
        "m4",
        "--peer-urls=http://127.0.0.1:1",
        "--learner",
    ]);
    assert!(err.contains("too many learner members in cluster"), "{err}");
    let err = ctl.fails(&[
        "member",
        "add",
        "m4",
        &format!("--peer-urls={}", cluster.nodes[0].peer_url),
    ]);
    assert!(err.contains("Peer URLs already exists"), "{err}");
    let err = ctl.fails(&["member", "remove", "1234abcd"]);
    assert!(err.contains("member not found"), "{err}");
    let err = ctl.fails(&["member", "promote", &id]);
    assert!(
        err.contains("can only promote a learner member which is in sync with leader"),
        "{err}"
    );
    let voter = list
        .lines()
        .find(|l| !l.starts_with(&id))
        .unwrap_or_default();
    let voter_id = voter.split(", ").next().unwrap_or_default();
    let err = ctl.fails(&["member", "promote", voter_id]);
    assert!(err.contains("can only promote a learner member"), "{err}");

    // Update the learner's peer URLs, then remove it.
    let moved = format!("http://127.0.0.1:{}", quorum_tests::free_port());
    let out = ctl.ok(&["member", "update", &id, &format!("--peer-urls={moved}")]);
    // etcdctl pads the id to 16 columns here.
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        words[..5],
        ["Member", id.as_str(), "updated", "in", "cluster"],
        "{out}"
    );
    assert!(ctl.ok(&["member", "list"]).contains(&moved));
    let out = ctl.ok(&["member", "remove", &id]);
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        words[..5],
        ["Member", id.as_str(), "removed", "from", "cluster"],
        "{out}"
    );
    let list = ctl.ok(&["member", "list"]);
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(!list.contains(&id));
    let err = ctl.fails(&["member", "remove", &id]);
    assert!(err.contains("member not found"), "{err}");
    // The cluster still serves.
    assert_eq!(ctl.ok(&["put", "after", "membership"]).trim(), "OK");
}

/// etcdctl 3.4 sends the endpoint URL itself as the HTTP/2 `:authority` when endpoints carry a
/// scheme (`--endpoints http://...`, and every `--cluster` command, which dials the members'
/// client URLs). etcd ignores it; Quorum must too (vendor/h2/QUORUM-PATCH.md).
#[test]
fn etcdctl_with_url_endpoints_and_cluster_flag() {
    let Some((cluster, ctl)) = healthy_cluster(|e| format!("http://{e}")) else {
        return;
    };
    assert_eq!(ctl.ok(&["put", "url", "ok"]).trim(), "OK");
    assert_eq!(ctl.ok(&["get", "url", "--print-value-only"]), "ok\n");

    // --cluster from a scheme-less endpoint: etcdctl dials every member's client URL, once
    // every member has published them (as with etcd, shortly after it starts).
    let one = Ctl {
        endpoints: cluster.endpoints()[0].clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = one.ok(&["member", "list", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&list).expect("json output");
        let published = v["members"]
            .as_array()
            .map(|ms| ms.iter().filter(|m| m["clientURLs"].is_array()).count())
            .unwrap_or(0);
        if published == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "client URLs never published: {list}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // (etcdctl 3.4 prints the health lines on stderr.)
    let (ok, out, err) = one.run_with_stdin(&["endpoint", "health", "--cluster"], None);
    assert!(ok, "{out}{err}");
    let health = format!("{out}{err}");
    assert_eq!(health.matches("is healthy").count(), 3, "{health}");
    let status = one.ok(&["endpoint", "status", "--cluster", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&status).expect("json output");
    let statuses = v.as_array().expect("one status per member");
    assert_eq!(statuses.len(), 3, "{status}");
    let leaders = statuses
        .iter()
        .filter(|s| s["Status"]["leader"] == s["Status"]["header"]["member_id"])
        .count();
    assert_eq!(leaders, 1, "{status}");
}
