//! Test support: a real `etcd` on free loopback ports in a temporary directory (stopped by a
//! Drop guard in every case), and a runner for the quorumctl binary.

#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the quorumctl binary under test.
pub fn quorumctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_quorumctl"))
}

/// The `etcd` binary, or None (the caller skips with a printed notice).
pub fn etcd_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
}

/// Skips the calling test (returns None) with a notice when etcd is not installed.
pub fn etcd_or_skip(test: &str) -> Option<Etcd> {
    match etcd_binary() {
        Some(bin) => Some(Etcd::start(bin)),
        None => {
            eprintln!(
                "SKIPPED {test}: no `etcd` binary on PATH (apt-get install etcd-server etcd-client)"
            );
            None
        }
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running single-member etcd; killed when dropped.
pub struct Etcd {
    child: Child,
    /// The client endpoint, host:port.
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    fn start(bin: PathBuf) -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let child = Command::new(bin)
            .args(["--name", "t1", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t1={peer_url}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let etcd = Etcd {
            child,
            endpoint: format!("127.0.0.1:{client}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = etcd.ctl(&["endpoint", "health"]);
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not become healthy: {out:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }

    /// Runs quorumctl against this etcd.
    pub fn ctl(&self, args: &[&str]) -> Output {
        run(&self.endpoint, args, None)
    }

    /// Runs quorumctl against this etcd with `input` on stdin.
    pub fn ctl_stdin(&self, args: &[&str], input: &str) -> Output {
        run(&self.endpoint, args, Some(input))
    }

    /// Runs quorumctl and returns its stdout, asserting success.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "quorumctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_panic(&out);
        String::from_utf8(out.stdout).unwrap()
    }

    /// A quorumctl command for this etcd, to spawn.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(quorumctl());
        c.args(["--endpoints", &self.endpoint]).args(args);
        c
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs quorumctl against `endpoints`.
pub fn run(endpoints: &str, args: &[&str], input: Option<&str>) -> Output {
    let mut child = Command::new(quorumctl())
        .args(["--endpoints", endpoints])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(i) = input {
        stdin.write_all(i.as_bytes()).unwrap();
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// quorumctl never panics, whatever the input.
pub fn assert_no_panic(out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "quorumctl panicked: {err}");
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
