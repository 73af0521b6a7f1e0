//! `quorumctl playground` with etcd standing in for the server (same flags): three members
//! come up, form one cluster, serve reads and writes, and all stop on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{etcd_binary, quorumctl, run, stderr};

/// Stops the playground (SIGTERM, so it stops its members) in all cases.
struct Playground(Child);

impl Playground {
    fn terminate(&mut self) {
        // SAFETY: kill(2) on the pid of our own child process.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
    }
}

impl Drop for Playground {
    fn drop(&mut self) {
        self.terminate();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn playground_runs_a_three_member_cluster_and_stops_it() {
    let Some(etcd) = etcd_binary() else {
        eprintln!("SKIPPED playground test: no `etcd` binary on PATH");
        return;
    };
    let mut pg = Playground(
        Command::new(quorumctl())
            .args(["playground", "--server-bin"])
            .arg(&etcd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = BufReader::new(pg.0.stdout.take().unwrap());
    let mut endpoints = None;
    for line in stdout.lines().map_while(Result::ok) {
        if let Some(e) = line.trim().strip_prefix("endpoints:") {
            endpoints = Some(e.trim().to_string());
            break;
        }
    }
    let endpoints = endpoints.expect("playground printed its endpoints");
    let list: Vec<&str> = endpoints.split(',').collect();
    assert_eq!(list.len(), 3, "{endpoints}");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = run(&endpoints, &["endpoint", "health"], None);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cluster never healthy: {}",
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let members = run(list[0], &["member", "list"], None);
    let members = String::from_utf8_lossy(&members.stdout).to_string();
    assert_eq!(members.lines().count(), 3, "{members}");
    for name in ["m1", "m2", "m3"] {
        assert!(
            members.contains(&format!(", started, {name}, ")),
            "{members}"
        );
    }
    assert!(run(list[0], &["put", "k", "v"], None).status.success());
    let got = run(list[2], &["get", "k", "--print-value-only"], None);
    assert_eq!(String::from_utf8_lossy(&got.stdout), "v\n");

    pg.terminate();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = pg.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "playground did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    for ep in &list {
        let out = run(ep, &["--dial-timeout", "500ms", "get", "k"], None);
        assert_eq!(out.status.code(), Some(1), "member at {ep} still serving");
    }
}
