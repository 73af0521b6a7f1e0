//! Running a request/response workload: connections, clients, the request budget (count or
//! duration), the rate limit, the progress bar and the merged report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use quorum_api::etcdserverpb::StatusRequest;

use super::ops::{Client, Outcome};
use super::options::{Plan, Stop, Workload};
use super::report::{Report, Stats};
use crate::args::Global;
use crate::connect::{check_endpoint_count, Conn};
use crate::error::{CliError, Result};

/// How often the progress bar is redrawn.
const PROGRESS_TICK: Duration = Duration::from_millis(200);

/// The run-wide request budget shared by the clients.
pub struct Budget {
    issued: AtomicU64,
    done: AtomicU64,
    stopped: AtomicBool,
    start: Instant,
    stop: Stop,
    rate: Option<u32>,
}

impl Budget {
    /// A budget starting now.
    pub fn new(stop: Stop, rate: Option<u32>) -> Budget {
        Budget {
            issued: AtomicU64::new(0),
            done: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            start: Instant::now(),
            stop,
            rate,
        }
    }

    /// Claims the number of the next request, waiting for its slot under the rate limit;
    /// None once the run is over.
    pub async fn next(&self) -> Option<u64> {
        if self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        if let Stop::Total(total) = self.stop {
            if n >= total {
                return None;
            }
        }
        if let Some(rate) = self.rate {
            let due = self.start + Duration::from_secs_f64(n as f64 / f64::from(rate));
            tokio::time::sleep_until(due.into()).await;
        }
        if let Stop::Duration(d) = self.stop {
            if self.start.elapsed() >= d {
                return None;
            }
        }
        Some(n)
    }

    /// Counts a finished request (for the progress bar).
    pub fn finished(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Finished requests.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Ends the run early (Ctrl-C): clients finish their current request and stop.
    pub fn halt(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// A progress bar on stderr following `budget` until dropped (hidden when asked or when
/// stderr is not a terminal).
pub struct Progress {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts drawing.
    pub fn start(plan: &Plan, budget: Arc<Budget>, what: &'static str) -> Progress {
        let (len, by_time) = match plan.stop {
            Stop::Total(n) => (n, false),
            Stop::Duration(d) => (u64::try_from(d.as_millis()).unwrap_or(u64::MAX), true),
        };
        let bar = if plan.progress {
            ProgressBar::new(len)
        } else {
            ProgressBar::hidden()
        };
        let template = if by_time {
            "{spinner} [{elapsed_precise}] {wide_bar} {msg}"
        } else {
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        let b = bar.clone();
        let ticker = tokio::spawn(async move {
            loop {
                let done = budget.done();
                let secs = budget.elapsed().as_secs_f64().max(1e-3);
                if by_time {
                    b.set_position(u64::try_from(budget.elapsed().as_millis()).unwrap_or(0));
                } else {
                    b.set_position(done);
                }
                b.set_message(format!("{done} {what}, {:.0}/s", done as f64 / secs));
                tokio::time::sleep(PROGRESS_TICK).await;
            }
        });
        Progress { bar, ticker }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

/// The endpoint of the current leader: the one whose status names itself as leader.
async fn find_leader(g: &Global) -> Result<String> {
    for ep in &g.endpoints {
        let Ok(conn) = Conn::to(ep, g).await else {
            continue;
        };
        if let Ok(s) = conn
            .call("status", conn.maintenance().status(StatusRequest {}))
            .await
        {
            let id = s.header.map(|h| h.member_id).unwrap_or(0);
            if id != 0 && s.leader == id {
                return Ok(ep.clone());
            }
        }
    }
    Err(CliError::Server {
        message: format!("no endpoint of {} is the leader", g.endpoints.join(",")),
        hint: "; give every member's endpoint, or drop --leader-only",
    })
}

/// Opens the run's connections, round-robin over the endpoints (or all to the leader);
/// returns them and the endpoints used.
pub async fn open_conns(g: &Global, plan: &Plan) -> Result<(Vec<Conn>, Vec<String>)> {
    check_endpoint_count(&g.endpoints)?;
    let endpoints = if plan.leader_only {
        vec![find_leader(g).await?]
    } else {
        g.endpoints.clone()
    };
    let mut conns = Vec::with_capacity(plan.conns);
    for i in 0..plan.conns {
        conns.push(Conn::to(&endpoints[i % endpoints.len()], g).await?);
    }
    Ok((conns, endpoints))
}

/// One line describing the run's parameters.
pub fn describe(plan: &Plan) -> String {
    let keys = if plan.sequential_keys {
        "sequential"
    } else {
        "random"
    };
    let mut s = match plan.workload {
        Workload::LeaseKeepalive => "one lease per client".to_string(),
        Workload::Watch => format!(
            "{} watchers over {} streams, value {} B",
            plan.watchers, plan.watch_streams, plan.val_size
        ),
        _ => format!(
            "{keys} keys over {}, key {} B, value {} B",
            plan.key_space, plan.key_size, plan.val_size
        ),
    };
    match plan.workload {
        Workload::Range | Workload::Mixed => s.push_str(if plan.serializable {
            ", serializable"
        } else {
            ", linearizable"
        }),
        _ => {}
    }
    if plan.workload == Workload::Range && plan.range_prefix {
        s.push_str(&format!(", prefix {:?}", plan.key_prefix));
    }
    if plan.workload == Workload::Mixed {
        s.push_str(&format!(", read ratio {}", plan.read_ratio));
    }
    if let Some(r) = plan.rate {
        s.push_str(&format!(", rate limit {r}/s"));
    }
    if plan.leader_only {
        s.push_str(", leader only");
    }
    s
}

/// Runs a request/response workload over `conns`.
pub async fn run(plan: &Plan, conns: &[Conn]) -> Result<Report> {
    assert!(!conns.is_empty(), "open_conns opens at least one");
    let mut clients = Vec::with_capacity(plan.clients);
    for i in 0..plan.clients {
        let seed = 0x5EED_0000_0000_0000 ^ (i as u64) ^ (u64::from(std::process::id()) << 20);
        clients.push(Client::new(plan, &conns[i % conns.len()], seed).await?);
    }
    let timeout = conns[0].command_timeout;
    let budget = Arc::new(Budget::new(plan.stop, plan.rate));
    let progress = Progress::start(plan, budget.clone(), "requests");
    let stopper = {
        let b = budget.clone();
        tokio::spawn(async move {
            crate::signals::interrupted().await;
            b.halt();
        })
    };
    let mut tasks = Vec::with_capacity(plan.clients);
    for mut client in clients {
        let budget = budget.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::new()?;
            while let Some(op) = budget.next().await {
                let t0 = Instant::now();
                let outcome = tokio::time::timeout(timeout, client.request(op)).await;
                match outcome {
                    Ok(Outcome::Ok) => stats.record_ok(t0.elapsed()),
                    Ok(Outcome::CasFailed) => {
                        stats.record_ok(t0.elapsed());
                        stats.cas_failed += 1;
                    }
                    Ok(Outcome::Err(kind)) => stats.record_error(&kind),
                    Err(_) => stats.record_error("timeout (--command-timeout)"),
                }
                budget.finished();
            }
            Ok::<Stats, CliError>(stats)
        }));
    }
    let mut total = Stats::new()?;
    for t in tasks {
        match t.await {
            Ok(stats) => total.merge(&stats?)?,
            Err(e) => total.record_error(&format!("client task failed: {e}")),
        }
    }
    let elapsed = budget.elapsed();
    stopper.abort();
    drop(progress);
    Ok(Report {
        workload: plan.workload.name(),
        params: describe(plan),
        conns: plan.conns,
        clients: plan.clients,
        endpoints: Vec::new(),
        elapsed,
        stats: total,
        unit: "requests",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn budget_counts_requests() {
        let b = Budget::new(Stop::Total(3), None);
        assert_eq!(b.next().await, Some(0));
        assert_eq!(b.next().await, Some(1));
        assert_eq!(b.next().await, Some(2));
        assert_eq!(b.next().await, None);
        assert_eq!(b.next().await, None);
    }

    #[tokio::test]
    async fn budget_halts_and_times_out() {
        let b = Budget::new(Stop::Duration(Duration::from_millis(50)), None);
        assert_eq!(b.next().await, Some(0));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(b.next().await, None);
        let h = Budget::new(Stop::Total(100), None);
        h.halt();
        assert_eq!(h.next().await, None);
    }

    #[tokio::test]
    async fn rate_limit_spaces_requests() {
        let b = Budget::new(Stop::Total(11), Some(100));
        let t0 = Instant::now();
        while b.next().await.is_some() {}
        let e = t0.elapsed();
        // Request 10 is due at 100 ms.
        assert!(e >= Duration::from_millis(95), "{e:?}");
        assert!(e < Duration::from_millis(1000), "{e:?}");
    }
}
