//! Harness for multi-process tests: starts real member processes on free loopback ports, each
//! with its own data directory, and lets a test kill (SIGKILL), pause (SIGSTOP), resume and
//! restart them. Every process is killed when the harness is dropped, so a failing test leaves
//! nothing running.

#![warn(missing_docs)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One member process of a test cluster.
pub struct Node {
    /// Member name.
    pub name: String,
    /// Client URL (`http://127.0.0.1:port`).
    pub client_url: String,
    /// Peer URL.
    pub peer_url: String,
    /// Data directory.
    pub data_dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    paused: bool,
}

impl Node {
    /// `127.0.0.1:port` of the client listener.
    pub fn client_addr(&self) -> String {
        self.client_url.trim_start_matches("http://").to_string()
    }

    /// True while the process runs (or is paused).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on a child pid we own; no memory is involved.
            unsafe {
                libc::kill(c.id() as libc::pid_t, sig);
            }
        }
    }
}

/// A cluster of member processes.
pub struct Cluster {
    /// The members, in the order of `--initial-cluster`.
    pub nodes: Vec<Node>,
    binary: PathBuf,
    extra: Vec<String>,
    _dir: tempfile::TempDir,
}

/// A free loopback port for a test member, never the same twice within this process.
///
/// Ports come from below the kernel's ephemeral range (32768 and up on Linux), so that an
/// outgoing connection made meanwhile cannot take a port between this check and the member's
/// own bind, and a process-wide set makes sure two members of one test (or two tests running
/// in parallel threads) never get the same port. The start point depends on the process id,
/// so test binaries running one after another spread over the range.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static HANDED_OUT: Mutex<Option<(u32, HashSet<u16>)>> = Mutex::new(None);
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let (next, handed) =
        guard.get_or_insert_with(|| ((std::process::id() * 7919) % SPAN, HashSet::new()));
    for _ in 0..SPAN {
        let port = (FIRST + *next % SPAN) as u16;
        *next = next.wrapping_add(1);
        if handed.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + SPAN);
}

impl Cluster {
    /// Starts `n` members of a new cluster with `extra` flags each, using the member binary at
    /// `binary`, and waits until every member answers on its client port.
    pub fn start(binary: &Path, n: usize, extra: &[&str]) -> Cluster {
        Self::start_with_peer_scheme(binary, n, extra, "http")
    }

    /// [`Cluster::start`] with peer URLs of `scheme` (`"https"` for peer TLS: give the
    /// `--peer-*` files in `extra`).
    pub fn start_with_peer_scheme(
        binary: &Path,
        n: usize,
        extra: &[&str],
        scheme: &str,
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut nodes = Vec::new();
        for i in 0..n {
            let name = format!("m{i}");
            nodes.push(Node {
                client_url: format!("http://127.0.0.1:{}", free_port()),
                peer_url: format!("{scheme}://127.0.0.1:{}", free_port()),
                data_dir: dir.path().join(format!("{name}.quorum")),
                name,
                args: Vec::new(),
                child: None,
                paused: false,
            });
        }
        let initial: Vec<String> = nodes
            .iter()
            .map(|n| format!("{}={}", n.name, n.peer_url))
            .collect();
        let initial = initial.join(",");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for node in &mut nodes {
            node.args = member_args(node, &initial, &extra);
        }
        let mut cluster = Cluster {
            nodes,
            binary: binary.to_path_buf(),
            extra,
            _dir: dir,
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.wait_listening(i, Duration::from_secs(30));
        }
        cluster
    }

    /// Prepares (without starting it) a member named `name` that joins this running cluster
    /// as `etcdctl member add` tells one to: `--initial-cluster-state=existing` and an
    /// `--initial-cluster` naming the members listed in `members` (indexes) plus itself.
    /// Returns its index; add it with MemberAdd (its `peer_url`) first, then [`Cluster::start_node`].
    pub fn prepare_joiner(&mut self, name: &str, members: &[usize]) -> usize {
        let mut node = Node {
            name: name.to_string(),
            client_url: format!("http://127.0.0.1:{}", free_port()),
            peer_url: format!("http://127.0.0.1:{}", free_port()),
            data_dir: self._dir.path().join(format!("{name}.quorum")),
            args: Vec::new(),
            child: None,
            paused: false,
        };
        let mut initial: Vec<String> = members
            .iter()
            .map(|&i| format!("{}={}", self.nodes[i].name, self.nodes[i].peer_url))
            .collect();
        initial.push(format!("{}={}", node.name, node.peer_url));
        let mut extra = self.extra.clone();
        extra.push("--initial-cluster-state=existing".to_string());
        node.args = member_args(&node, &initial.join(","), &extra);
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Starts member `i` (prepared, or stopped) and waits until it listens.
    pub fn start_node(&mut self, i: usize) {
        self.spawn(i);
        self.wait_listening(i, Duration::from_secs(30));
    }

    /// Starts member `i` without waiting for it to listen (for a start that should fail).
    pub fn launch(&mut self, i: usize) {
        self.spawn(i);
    }

    /// Waits up to `timeout` for member `i` to exit by itself; its exit code, if it did.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(c) = self.nodes[i].child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.nodes[i].child = None;
                    return status.code();
                }
            } else {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::File::create(node.data_dir.with_extension("log")).ok();
        let stderr = match log {
            Some(f) => Stdio::from(f),
            None => Stdio::null(),
        };
        let child = Command::new(&self.binary)
            .args(&node.args)
            .env("QUORUM_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn the member binary");
        node.child = Some(child);
        node.paused = false;
    }

    /// Waits until member `i` accepts TCP connections on its client port.
    pub fn wait_listening(&self, i: usize, timeout: Duration) {
        let addr = self.nodes[i].client_addr();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "member {} did not listen on {addr} within {timeout:?}; log:\n{}",
            self.nodes[i].name,
            self.log(i)
        );
    }

    /// The member's log (stderr) so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].data_dir.with_extension("log")).unwrap_or_default()
    }

    /// Client endpoints of every member (`127.0.0.1:port`).
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.client_addr()).collect()
    }

    /// SIGKILL member `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM member `i` and wait up to `timeout` for it to exit; returns its exit status code.
    pub fn terminate(&mut self, i: usize, timeout: Duration) -> Option<i32> {
        self.nodes[i].signal(libc::SIGTERM);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(c) = self.nodes[i].child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.nodes[i].child = None;
                    return status.code();
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill(i);
        None
    }

    /// SIGSTOP member `i` (it stops ticking, sending and answering), and waits until every
    /// thread of it has stopped: the kernel stops a process's threads one by one, only after
    /// one of them has run to take the signal, so on a loaded machine a "paused" member can go
    /// on acknowledging messages for a while after kill(2) returns.
    pub fn pause(&mut self, i: usize) {
        self.nodes[i].signal(libc::SIGSTOP);
        self.nodes[i].paused = true;
        if let Some(c) = &self.nodes[i].child {
            let tasks = PathBuf::from(format!("/proc/{}/task", c.id()));
            let deadline = Instant::now() + Duration::from_secs(10);
            while !all_threads_stopped(&tasks) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// SIGCONT member `i`.
    pub fn resume(&mut self, i: usize) {
        self.nodes[i].signal(libc::SIGCONT);
        self.nodes[i].paused = false;
    }

    /// Starts member `i` again from its data directory.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_listening(i, Duration::from_secs(30));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].paused {
                self.resume(i);
            }
            self.kill(i);
        }
    }
}

/// True when every thread listed under `/proc/<pid>/task` is stopped (state `T` or `t`), or
/// the process is gone.
fn all_threads_stopped(tasks: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(tasks) else {
        return true;
    };
    entries.flatten().all(|e| {
        match std::fs::read_to_string(e.path().join("stat")) {
            // The state is the first field after the parenthesised command name.
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_none_or(|state| state == "T" || state == "t"),
            Err(_) => true,
        }
    })
}

/// The flags of a member with `initial` as `--initial-cluster`.
fn member_args(node: &Node, initial: &str, extra: &[String]) -> Vec<String> {
    let mut args = vec![
        format!("--name={}", node.name),
        format!("--data-dir={}", node.data_dir.display()),
        format!("--listen-client-urls={}", node.client_url),
        format!("--advertise-client-urls={}", node.client_url),
        format!("--listen-peer-urls={}", node.peer_url),
        format!("--initial-advertise-peer-urls={}", node.peer_url),
        format!("--initial-cluster={initial}"),
        "--initial-cluster-token=test-cluster".to_string(),
        "--heartbeat-interval=50".to_string(),
        "--election-timeout=500".to_string(),
    ];
    args.extend(extra.iter().cloned());
    args
}

/// GETs `path` from member `addr` (`127.0.0.1:port`) over plain HTTP/1.1 and returns the body.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    http_request(addr, "GET", path, "").map(|(_, body)| body)
}

/// POSTs `body` to `path` on member `addr` over plain HTTP/1.1 (as a JSON gateway client
/// does); returns the status line and the body.
pub fn http_post(addr: &str, path: &str, body: &str) -> std::io::Result<(String, String)> {
    http_request(addr, "POST", path, body)
}

fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.lines().next().unwrap_or_default().to_string();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(out);
    Ok((status, body))
}

/// The value of a Prometheus counter or gauge named `name` (without labels) in `text`.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Runs etcdctl (API v3) against `endpoint` with `flags` (e.g. TLS files) then `args`; returns
/// whether it succeeded and its stdout followed by its stderr.
pub fn run_etcdctl(endpoint: &str, flags: &[String], args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=5s")
        .arg("--dial-timeout=2s")
        .args(flags)
        .args(args)
        .output()
        .expect("run etcdctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// True when `etcdctl` (v3 API) is installed: the etcdctl tests skip themselves otherwise.
pub fn have_etcdctl() -> bool {
    std::process::Command::new("etcdctl")
        .arg("version")
        .env("ETCDCTL_API", "3")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
