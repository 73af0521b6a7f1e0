//! quorumctl against a real etcd (Debian's etcd-server; skipped with a notice when absent):
//! every command's output is checked, and so are the errors.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::{assert_no_panic, etcd_or_skip, run, stderr};

#[test]
fn kv_commands() {
    let Some(etcd) = etcd_or_skip("kv_commands") else {
        return;
    };
    assert_eq!(etcd.ok(&["put", "foo", "bar"]), "OK\n");
    assert_eq!(etcd.ok(&["put", "foo2", "baz"]), "OK\n");
    assert_eq!(etcd.ok(&["put", "fop", "x", "--prev-kv"]), "OK\n");
    assert_eq!(etcd.ok(&["put", "fop", "y", "--prev-kv"]), "OK\nfop\nx\n");
    // Value from stdin.
    let out = etcd.ctl_stdin(&["put", "stdin-key"], "from stdin");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        etcd.ok(&["get", "stdin-key", "--print-value-only"]),
        "from stdin\n"
    );

    assert_eq!(etcd.ok(&["get", "foo"]), "foo\nbar\n");
    assert_eq!(
        etcd.ok(&["get", "foo", "--prefix"]),
        "foo\nbar\nfoo2\nbaz\n"
    );
    assert_eq!(etcd.ok(&["get", "foo", "fop"]), "foo\nbar\nfoo2\nbaz\n");
    assert_eq!(
        etcd.ok(&["get", "foo2", "--from-key", "--keys-only"]),
        "foo2\nfop\nstdin-key\n"
    );
    assert_eq!(etcd.ok(&["get", "f", "--prefix", "--count-only"]), "3\n");
    assert_eq!(
        etcd.ok(&["get", "f", "--prefix", "--limit", "1"]),
        "foo\nbar\n"
    );
    assert_eq!(
        etcd.ok(&[
            "get",
            "f",
            "--prefix",
            "--sort-by",
            "VALUE",
            "--order",
            "DESCEND",
            "--print-value-only"
        ]),
        "y\nbaz\nbar\n"
    );
    // Revision 2 is the first put: foo=bar and nothing else.
    assert_eq!(
        etcd.ok(&["get", "f", "--prefix", "--rev", "2"]),
        "foo\nbar\n"
    );
    assert_eq!(etcd.ok(&["get", "foo", "--consistency", "s"]), "foo\nbar\n");

    let json: serde_json::Value =
        serde_json::from_str(&etcd.ok(&["-w", "json", "get", "foo"])).unwrap();
    assert_eq!(json["kvs"][0]["key"], "Zm9v"); // base64("foo"), as etcdctl prints it
    assert_eq!(json["kvs"][0]["value"], "YmFy");
    assert_eq!(json["count"], 1);
    assert!(json["header"]["revision"].as_i64().unwrap() >= 5);
    let table = etcd.ok(&["-w", "table", "get", "foo"]);
    assert!(
        table.contains("| foo ") && table.contains("| bar "),
        "{table}"
    );

    assert_eq!(etcd.ok(&["del", "foo2", "--prev-kv"]), "1\nfoo2\nbaz\n");
    assert_eq!(etcd.ok(&["del", "nothing"]), "0\n");
    assert_eq!(etcd.ok(&["get", "foo2"]), "");

    // Transactions, in etcdctl's format, both branches.
    let txn = "value(\"foo\") = \"bar\"\n\nput foo ok\nget fop\n\nput foo failed\n";
    let out = etcd.ctl_stdin(&["txn"], txn);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "SUCCESS\n\nOK\n\nfop\ny\n"
    );
    let out = etcd.ctl_stdin(&["txn"], txn);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "FAILURE\n\nOK\n");
    assert_eq!(etcd.ok(&["get", "foo", "--print-value-only"]), "failed\n");
    let out = etcd.ctl_stdin(&["txn", "-i"], "mod(\"fop\") > \"0\"\n\ndel fop\n\n\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("compares:"), "prompts go to stderr");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SUCCESS\n\n1\n");

    // Compaction, then reading the compacted past is a clean error with advice.
    assert_eq!(etcd.ok(&["compaction", "4"]), "compacted revision 4\n");
    let out = etcd.ctl(&["get", "foo", "--rev", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("required revision has been compacted"),
        "{}",
        stderr(&out)
    );
    assert_no_panic(&out);
}

#[test]
fn lease_lock_elect_watch() {
    let Some(etcd) = etcd_or_skip("lease_lock_elect_watch") else {
        return;
    };
    let granted = etcd.ok(&["lease", "grant", "30"]);
    // "lease 694d77aa9e38260f granted with TTL(30s)"
    let id = granted.split_whitespace().nth(1).unwrap().to_string();
    assert!(granted.ends_with("granted with TTL(30s)\n"), "{granted}");
    etcd.ok(&["put", "leased", "v", "--lease", &id]);
    let ttl = etcd.ok(&["lease", "timetolive", &id, "--keys"]);
    assert!(ttl.contains("attached keys([leased])"), "{ttl}");
    assert!(etcd.ok(&["lease", "list"]).contains(&id));
    assert_eq!(
        etcd.ok(&["lease", "keep-alive", "--once", &id]),
        format!("lease {id} keepalived with TTL(30)\n")
    );
    assert_eq!(
        etcd.ok(&["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(
        etcd.ok(&["get", "leased"]),
        "",
        "revoking deletes attached keys"
    );
    let out = etcd.ctl(&["lease", "timetolive", &id]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("lease {id} already expired\n")
    );

    // A lock held by a command: the command sees the key and its revision (fencing token).
    let out = etcd.ctl(&[
        "lock",
        "L",
        "sh",
        "-c",
        "echo key=$ETCD_LOCK_KEY rev=$ETCD_LOCK_REV",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.starts_with("key=L/") && text.contains(" rev="),
        "{text}"
    );
    assert_eq!(
        etcd.ok(&["get", "L/", "--prefix"]),
        "",
        "the lock key is gone after the command"
    );
    // A failing command is reported and the lock released.
    let out = etcd.ctl(&["lock", "L", "false"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(etcd.ok(&["get", "L/", "--prefix"]), "");

    // Watch: start it, write, read the events it prints.
    let mut watch = etcd
        .command(&["watch", "w", "--prefix", "--prev-kv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The watch is registered when the server answers; give it a moment, then write until the
    // first event shows up (bounded).
    let mut first = None;
    for _ in 0..50 {
        etcd.ok(&["put", "w1", "a"]);
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            first = Some(l);
            break;
        }
    }
    assert_eq!(first.as_deref(), Some("PUT"));
    etcd.ok(&["del", "w1"]);
    let mut lines = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(3)) {
        lines.push(l.clone());
        if l == "DELETE" {
            break;
        }
    }
    assert_eq!(
        lines.last().map(String::as_str),
        Some("DELETE"),
        "{lines:?}"
    );
    let _ = watch.kill();
    let _ = watch.wait();

    // Election: a campaigner proclaims, an observer sees it.
    let mut campaigner = etcd
        .command(&["elect", "E", "first"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(campaigner.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("E/"), "{line}");
    let mut observer = etcd
        .command(&["elect", "-l", "E"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(observer.stdout.take().unwrap());
    let (mut k, mut v) = (String::new(), String::new());
    out.read_line(&mut k).unwrap();
    out.read_line(&mut v).unwrap();
    assert_eq!((k.trim_end(), v.trim_end()), (line.trim_end(), "first"));
    for c in [&mut campaigner, &mut observer] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[test]
fn cluster_and_maintenance() {
    let Some(etcd) = etcd_or_skip("cluster_and_maintenance") else {
        return;
    };
    let members = etcd.ok(&["member", "list"]);
    assert!(
        members.contains(", started, t1, http://127.0.0.1:"),
        "{members}"
    );
    assert!(etcd
        .ok(&["-w", "table", "member", "list"])
        .contains("| NAME"));
    let status = etcd.ok(&["endpoint", "status"]);
    assert!(
        status.starts_with(&format!("{}, ", etcd.endpoint)),
        "{status}"
    );
    assert!(
        status.contains(", true, false, "),
        "single member is the leader: {status}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&etcd.ok(&["-w", "json", "endpoint", "status"])).unwrap();
    assert!(json[0]["Status"]["version"]
        .as_str()
        .unwrap()
        .starts_with("3."));
    assert!(etcd.ok(&["endpoint", "health"]).contains("is healthy"));
    assert_eq!(etcd.ok(&["alarm", "list"]), "");
    assert_eq!(etcd.ok(&["alarm", "disarm"]), "");
    assert!(etcd.ok(&["defrag"]).starts_with("Finished defragmenting"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snap.db");
    let out = etcd.ctl(&["snapshot", "save", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Snapshot saved at"));
    assert!(
        stderr(&out).contains("(100%)"),
        "progress line: {}",
        stderr(&out)
    );
    let len = std::fs::metadata(&file).unwrap().len();
    assert!(len > 4096, "a bolt db file is at least a few pages: {len}");
    assert!(!dir.path().join("snap.db.part").exists());

    // One endpoint down: status and health fail, naming it, but report the others.
    let both = format!("{},127.0.0.1:1", etcd.endpoint);
    let out = run(&both, &["endpoint", "health"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is healthy"));
    assert!(
        stderr(&out).contains("127.0.0.1:1 is unhealthy"),
        "{}",
        stderr(&out)
    );
    // ... while ordinary commands use the first endpoint that answers.
    let out = run(
        &format!("127.0.0.1:1,{}", etcd.endpoint),
        &["get", "x"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn errors_are_clean_and_actionable() {
    // No server needed for these.
    let out = run("127.0.0.1:1", &["get", "k"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot connect to 127.0.0.1:1") && err.contains("try --endpoints"),
        "{err}"
    );
    let out = run("https://127.0.0.1:1", &["get", "k"], None);
    assert!(
        stderr(&out).contains("TLS endpoints are not supported"),
        "{}",
        stderr(&out)
    );
    let out = run("127.0.0.1:1", &["--dial-timeout", "5h", "get", "k"], None);
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    assert_no_panic(&out);

    let Some(etcd) = etcd_or_skip("errors_are_clean_and_actionable") else {
        return;
    };
    for (args, input, expect) in [
        (
            &["lease", "revoke", "1234"][..],
            "",
            "requested lease not found",
        ),
        (&["lease", "revoke", "not-hex"][..], "", "invalid lease ID"),
        (&["put", "", "v"][..], "", "non-empty key"),
        (
            &["txn"][..],
            "bogus(\"k\") = \"1\"\n\n\n",
            "invalid compare",
        ),
        (
            &["txn"][..],
            "\nput onlykey\n\n",
            "put takes a key and a value",
        ),
        (
            &["txn"][..],
            "\nput \"unterminated\n\n",
            "unterminated quote",
        ),
        (&["lease", "grant", "0"][..], "", "TTL must be between"),
        (&["compaction", "0"][..], "", "positive revision"),
        (&["get", "k", "--rev", "1000000"][..], "", "future revision"),
    ] {
        let out = etcd.ctl_stdin(args, input);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
        assert_no_panic(&out);
    }
}

#[test]
fn membership_changes() {
    let Some(etcd) = etcd_or_skip("membership_changes") else {
        return;
    };
    let peer = "http://127.0.0.1:1";
    let out = etcd.ok(&[
        "member",
        "add",
        "t2",
        &format!("--peer-urls={peer}"),
        "--learner",
    ]);
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        (words[0], words[2], words[3]),
        ("Member", "added", "to"),
        "{out}"
    );
    let id = words[1].to_string();
    assert!(out.contains("ETCD_NAME=\"t2\""), "{out}");
    assert!(out.contains(&format!("t2={peer}")), "{out}");
    assert!(out.contains("t1=http://127.0.0.1:"), "{out}");
    assert!(
        out.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{out}"
    );
    let list = etcd.ok(&["member", "list"]);
    assert!(
        list.contains(&format!("{id}, unstarted, , {peer}, , true")),
        "{list}"
    );
    let out = etcd.ctl(&["member", "promote", &id]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("can only promote a learner member which is in sync with leader"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = etcd.ok(&["member", "update", &id, "--peer-urls=http://127.0.0.1:2"]);
    assert!(out.contains(&format!("{id} updated in cluster")), "{out}");
    let out = etcd.ok(&["member", "remove", &id]);
    assert!(out.contains(&format!("{id} removed from cluster")), "{out}");
    let out = etcd.ctl(&["member", "remove", &id]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("member not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = etcd.ctl(&["member", "remove", "not-hex"]);
    assert!(!out.status.success());
    assert_eq!(etcd.ok(&["member", "list"]).lines().count(), 1);
}
