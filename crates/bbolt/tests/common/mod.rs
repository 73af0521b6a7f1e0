//! Helpers shared by the integration tests: a small PRNG, and running real etcd binaries.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// xorshift64*: deterministic test data without a rand dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// `min` plus up to `spread - 1` random bytes.
    pub fn bytes_between(&mut self, min: usize, spread: u64) -> Vec<u8> {
        let len = min + self.below(spread) as usize;
        self.bytes(len)
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Paths of etcd and etcdctl, or None (with the reason printed) when they are not installed.
pub fn etcd_binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    match (find("etcd"), find("etcdctl")) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => {
            eprintln!("SKIPPED: etcd and/or etcdctl not found on PATH");
            None
        }
    }
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

/// Runs etcdctl (API v3) with `args`; panics with its output if it fails.
pub fn etcdctl(bin: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin)
        .env("ETCDCTL_API", "3")
        .args(args)
        .output()
        .expect("run etcdctl");
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A running etcd, killed (and reaped) on drop.
pub struct EtcdGuard {
    child: Child,
    pub endpoint: String,
}

impl Drop for EtcdGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts etcd named `default` on free loopback ports with `data_dir`; waits until
/// `etcdctl endpoint health` succeeds.
pub fn start_etcd(etcd: &Path, etcdctl: &Path, data_dir: &Path, peer_port: u16) -> EtcdGuard {
    let client = format!("http://127.0.0.1:{}", free_port());
    let peer = format!("http://127.0.0.1:{peer_port}");
    let log = std::fs::File::create(data_dir.with_extension("log")).expect("etcd log file");
    let child = Command::new(etcd)
        .arg("--name")
        .arg("default")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("default={peer}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start etcd");
    let guard = EtcdGuard {
        child,
        endpoint: client,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = Command::new(etcdctl)
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &guard.endpoint, "--dial-timeout", "1s"])
            .args(["endpoint", "health"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return guard;
        }
        assert!(
            Instant::now() < deadline,
            "etcd did not become healthy; log: {}",
            std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Standard base64 decoding (etcdctl's JSON output encodes keys and values so).
pub fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 byte {c}"),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c) << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    out
}
