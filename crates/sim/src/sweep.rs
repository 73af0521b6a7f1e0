//! Runs many seeds in parallel (one seed per task, threads pulling the next seed from a shared
//! counter) and aggregates the results.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cluster::{run, SimConfig, SimFailure};

/// The outcome of a sweep.
#[derive(Debug, Default)]
pub struct SweepReport {
    /// Seeds run.
    pub seeds: u64,
    /// Client operations over all runs.
    pub ops: u64,
    /// Events over all runs.
    pub events: u64,
    /// Runs whose history check ran out of budget.
    pub lincheck_unknown: u64,
    /// Failed runs, by seed order.
    pub failures: Vec<SimFailure>,
    /// Wall time.
    pub elapsed: Duration,
}

impl SweepReport {
    /// Seeds per second of wall time.
    pub fn seeds_per_sec(&self) -> f64 {
        self.seeds as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Simulated client operations per second of wall time.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs seeds `first..first + count` on `threads` threads, each configured by `configure`
/// (start from [`SimConfig::from_seed`]). Stops early after `max_failures` failures (0: never).
/// No new seed starts after `deadline`. `progress` is called (from worker threads) after each
/// seed with (done, failures so far).
#[allow(clippy::too_many_arguments)]
pub fn sweep(
    first: u64,
    count: u64,
    threads: usize,
    max_failures: usize,
    deadline: Option<Instant>,
    configure: &(dyn Fn(u64) -> SimConfig + Sync),
    progress: &(dyn Fn(u64, usize) + Sync),
) -> SweepReport {
    let start = Instant::now();
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let report = Mutex::new(SweepReport::default());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                {
                    let r = report.lock().unwrap_or_else(|p| p.into_inner());
                    if max_failures > 0 && r.failures.len() >= max_failures {
                        break;
                    }
                }
                let cfg = configure(first + i);
                let result = run(&cfg);
                let failures = {
                    let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
                    r.seeds += 1;
                    match result {
                        Ok(rep) => {
                            r.ops += rep.ops;
                            r.events += rep.events;
                            r.lincheck_unknown += u64::from(rep.lincheck_unknown);
                        }
                        Err(f) => r.failures.push(*f),
                    }
                    r.failures.len()
                };
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress(d, failures);
            });
        }
    });
    let mut r = report.into_inner().unwrap_or_else(|p| p.into_inner());
    r.failures.sort_by_key(|f| f.seed);
    r.elapsed = start.elapsed();
    r
}
