//! `playground`: a local cluster of server processes (Quorum's `quorum`, or any binary with
//! etcd's flags) on free loopback ports, data under a temporary directory, logs streamed with
//! the member's name in front, everything stopped on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::args::PlaygroundArgs;
use crate::error::{CliError, Result};

/// Time a member gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// One running member.
struct Member {
    name: String,
    child: Child,
}

/// Stops every member when dropped, so that no path (error, panic, Ctrl-C) leaves one behind.
struct Cluster {
    members: Vec<Member>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &self.members {
            if let Ok(pid) = i32::try_from(m.child.id()) {
                // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for m in &mut self.members {
            loop {
                match m.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = m.child.kill();
                        let _ = m.child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            eprintln!("[{}] stopped", m.name);
        }
    }
}

/// Finds the server binary: the flag, else `quorum` next to this executable, else on PATH.
fn server_binary(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let candidate = dir.join("quorum");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("quorum");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(CliError::usage(
        "cannot find the `quorum` server binary next to quorumctl or on PATH; \
         build it (cargo build -p quorum-server) or pass --server-bin (e.g. --server-bin etcd)",
    ))
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| CliError::io("finding a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| CliError::io("finding a free port", e))
}

/// `playground`.
pub async fn playground(a: &PlaygroundArgs) -> Result<()> {
    let bin = server_binary(a.server_bin.as_deref())?;
    let dir = tempfile::Builder::new()
        .prefix("quorum-playground-")
        .tempdir()
        .map_err(|e| CliError::io("creating the data directory", e))?;
    let n = usize::from(a.members);
    let mut ports = Vec::with_capacity(n);
    for _ in 0..n {
        ports.push((free_port()?, free_port()?));
    }
    let names: Vec<String> = (1..=n).map(|i| format!("m{i}")).collect();
    let initial_cluster = names
        .iter()
        .zip(&ports)
        .map(|(name, (_, peer))| format!("{name}=http://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let token = format!("playground-{}", std::process::id());
    let mut cluster = Cluster {
        members: Vec::with_capacity(n),
    };
    for (name, (client, peer)) in names.iter().zip(&ports) {
        let data = dir.path().join(name);
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut child = Command::new(&bin)
            .arg("--name")
            .arg(name)
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(&initial_cluster)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(&token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CliError::io(format!("starting {}", bin.display()), e))?;
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let prefix = name.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    match line {
                        Ok(l) => eprintln!("[{prefix}] {l}"),
                        Err(_) => break,
                    }
                }
            });
        }
        cluster.members.push(Member {
            name: name.clone(),
            child,
        });
    }
    let endpoints = ports
        .iter()
        .map(|(c, _)| format!("127.0.0.1:{c}"))
        .collect::<Vec<_>>()
        .join(",");
    println!(
        "playground: {n} members of {} running, data in {}",
        bin.display(),
        dir.path().display()
    );
    println!("  endpoints: {endpoints}");
    println!("  try:       quorumctl --endpoints {endpoints} put hello world");
    println!("             quorumctl --endpoints {endpoints} -w table endpoint status");
    println!("             ETCDCTL_API=3 etcdctl --endpoints {endpoints} get hello");
    println!("  Ctrl-C stops the cluster.");
    let outcome = wait_for_end(&mut cluster).await;
    drop(cluster);
    if a.keep_data {
        let kept = dir.keep();
        println!("data kept in {}", kept.display());
    }
    outcome
}

/// Returns on Ctrl-C (or SIGTERM), or with an error when a member exits by itself.
async fn wait_for_end(cluster: &mut Cluster) -> Result<()> {
    loop {
        tokio::select! {
            _ = crate::signals::interrupted() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        for m in &mut cluster.members {
            if let Ok(Some(status)) = m.child.try_wait() {
                return Err(CliError::usage(format!(
                    "member {} exited ({status}); see its log above. Stopping the others.",
                    m.name
                )));
            }
        }
    }
}
