//! Counting outcomes (latency histogram, errors by kind) and printing the final report.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::error::{CliError, Result};

/// Highest latency recorded exactly, in microseconds (one hour); longer ones are clamped.
pub const LATENCY_MAX_US: u64 = 3_600_000_000;
/// Distinct error kinds kept; further kinds are counted under [`OTHER_ERRORS`].
pub const MAX_ERROR_KINDS: usize = 32;
/// The kind under which errors beyond [`MAX_ERROR_KINDS`] kinds are counted.
pub const OTHER_ERRORS: &str = "other";
/// Longest error kind text kept.
pub const MAX_ERROR_KIND_LEN: usize = 120;

/// The outcomes of one client, merged into the run's at the end.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latencies of successful requests, in microseconds.
    pub hist: Histogram<u64>,
    /// Successful requests.
    pub ok: u64,
    /// Transactions whose compare failed (txn-put): successful requests, not errors.
    pub cas_failed: u64,
    /// Failed requests by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Stats {
    /// Empty statistics.
    pub fn new() -> Result<Stats> {
        let hist = Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
            .map_err(|e| CliError::usage(format!("cannot create a latency histogram: {e}")))?;
        Ok(Stats {
            hist,
            ok: 0,
            cas_failed: 0,
            errors: BTreeMap::new(),
        })
    }

    /// Records a successful request that took `lat`.
    pub fn record_ok(&mut self, lat: Duration) {
        let us = u64::try_from(lat.as_micros()).unwrap_or(u64::MAX);
        self.record_us(us);
    }

    /// Records a successful request that took `us` microseconds.
    pub fn record_us(&mut self, us: u64) {
        self.hist.saturating_record(us.clamp(1, LATENCY_MAX_US));
        self.ok += 1;
    }

    /// Records `n` failed requests of one kind.
    pub fn record_errors(&mut self, kind: &str, n: u64) {
        let mut kind: String = kind.chars().take(MAX_ERROR_KIND_LEN).collect();
        if !self.errors.contains_key(&kind) && self.errors.len() >= MAX_ERROR_KINDS {
            kind = OTHER_ERRORS.to_string();
        }
        *self.errors.entry(kind).or_insert(0) += n;
    }

    /// Records one failed request.
    pub fn record_error(&mut self, kind: &str) {
        self.record_errors(kind, 1);
    }

    /// Adds `other`'s outcomes to these.
    pub fn merge(&mut self, other: &Stats) -> Result<()> {
        self.hist
            .add(&other.hist)
            .map_err(|e| CliError::usage(format!("cannot merge latency histograms: {e:?}")))?;
        self.ok += other.ok;
        self.cas_failed += other.cas_failed;
        for (k, n) in &other.errors {
            self.record_errors(k, *n);
        }
        Ok(())
    }

    /// Failed requests.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The kind of a gRPC error: its code and message (etcd's wording).
pub fn status_kind(status: &tonic::Status) -> String {
    if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{:?}: {}", status.code(), status.message())
    }
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// The percentiles of `hist` (all zero when it is empty).
    pub fn of(hist: &Histogram<u64>) -> Percentiles {
        if hist.is_empty() {
            return Percentiles {
                p50: 0,
                p90: 0,
                p99: 0,
                p999: 0,
                max: 0,
                mean: 0.0,
            };
        }
        Percentiles {
            p50: hist.value_at_quantile(0.5),
            p90: hist.value_at_quantile(0.9),
            p99: hist.value_at_quantile(0.99),
            p999: hist.value_at_quantile(0.999),
            max: hist.max(),
            mean: hist.mean(),
        }
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Workload name.
    pub workload: &'static str,
    /// One line describing the run's parameters.
    pub params: String,
    /// Connections.
    pub conns: usize,
    /// Clients.
    pub clients: usize,
    /// Endpoints connected to.
    pub endpoints: Vec<String>,
    /// Wall time of the measured part.
    pub elapsed: Duration,
    /// Outcomes.
    pub stats: Stats,
    /// What one "request" is when it is not obvious (e.g. a delivered watch event).
    pub unit: &'static str,
}

impl Report {
    /// Successful requests per second.
    pub fn throughput(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.stats.ok as f64 / s
        } else {
            0.0
        }
    }

    /// The report as one JSON object.
    pub fn json(&self) -> Value {
        let p = Percentiles::of(&self.stats.hist);
        json!({
            "workload": self.workload,
            "params": self.params,
            "unit": self.unit,
            "endpoints": self.endpoints,
            "conns": self.conns,
            "clients": self.clients,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "ok": self.stats.ok,
            "cas_failed": self.stats.cas_failed,
            "errors_total": self.stats.error_count(),
            "errors": self.stats.errors,
            "throughput": self.throughput(),
            "latency_us": {
                "p50": p.p50, "p90": p.p90, "p99": p.p99, "p99_9": p.p999,
                "max": p.max, "mean": p.mean,
            },
        })
    }

    /// The report as text.
    pub fn text(&self) -> String {
        let p = Percentiles::of(&self.stats.hist);
        let mut s = format!(
            "Workload:    {} ({})\nEndpoints:   {} ({} conns, {} clients)\n",
            self.workload,
            self.params,
            self.endpoints.join(","),
            self.conns,
            self.clients
        );
        s.push_str(&format!(
            "Completed:   {} {} ok, {} errors in {:.2} s\n",
            self.stats.ok,
            self.unit,
            self.stats.error_count(),
            self.elapsed.as_secs_f64()
        ));
        if self.stats.cas_failed > 0 {
            s.push_str(&format!(
                "CAS failed:  {} (compare false; counted as ok)\n",
                self.stats.cas_failed
            ));
        }
        s.push_str(&format!("Throughput:  {:.1} /s\n", self.throughput()));
        if self.stats.ok == 0 {
            s.push_str("Latency:     no successful requests\n");
        } else {
            s.push_str(&format!(
                "Latency µs:  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {:.0}\n",
                p.p50, p.p90, p.p99, p.p999, p.max, p.mean
            ));
        }
        if self.stats.errors.is_empty() {
            s.push_str("Errors:      none\n");
        } else {
            s.push_str("Errors:\n");
            for (k, n) in &self.stats.errors {
                s.push_str(&format!("  {n:>8}  {k}\n"));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(stats: Stats) -> Report {
        Report {
            workload: "put",
            params: "random keys".into(),
            conns: 2,
            clients: 4,
            endpoints: vec!["a:1".into()],
            elapsed: Duration::from_secs(2),
            stats,
            unit: "requests",
        }
    }

    #[test]
    fn percentiles_and_throughput() {
        let mut s = Stats::new().unwrap();
        for us in 1..=1000 {
            s.record_us(us);
        }
        s.record_error("Unavailable: etcdserver: no leader");
        s.record_error("Unavailable: etcdserver: no leader");
        s.record_error("timeout");
        let r = report(s);
        assert_eq!(r.throughput(), 500.0);
        let j = r.json();
        assert_eq!(j["ok"], 1000);
        assert_eq!(j["errors_total"], 3);
        assert_eq!(j["errors"]["timeout"], 1);
        assert_eq!(j["errors"]["Unavailable: etcdserver: no leader"], 2);
        let p50 = j["latency_us"]["p50"].as_u64().unwrap();
        assert!((499..=501).contains(&p50), "{p50}");
        let p999 = j["latency_us"]["p99_9"].as_u64().unwrap();
        assert!((998..=1000).contains(&p999), "{p999}");
        assert_eq!(j["latency_us"]["max"].as_u64().unwrap(), 1000);
        let t = r.text();
        assert!(t.contains("Throughput:  500.0 /s"), "{t}");
        assert!(t.contains("1000 requests ok, 3 errors in 2.00 s"), "{t}");
        assert!(t.contains("p50 500"), "{t}");
        assert!(
            t.contains("       2  Unavailable: etcdserver: no leader"),
            "{t}"
        );
    }

    #[test]
    fn empty_run_says_so() {
        let t = report(Stats::new().unwrap()).text();
        assert!(t.contains("no successful requests"), "{t}");
        assert!(t.contains("Errors:      none"), "{t}");
    }

    #[test]
    fn error_kinds_are_bounded_and_merge() {
        let mut a = Stats::new().unwrap();
        for i in 0..100 {
            a.record_error(&format!("kind {i}"));
        }
        assert_eq!(a.errors.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(a.errors[OTHER_ERRORS], 100 - MAX_ERROR_KINDS as u64);
        let mut b = Stats::new().unwrap();
        b.record_ok(Duration::from_millis(3));
        b.cas_failed = 2;
        b.record_error("kind 0");
        a.merge(&b).unwrap();
        assert_eq!((a.ok, a.cas_failed, a.error_count()), (1, 2, 101));
        assert_eq!(a.errors["kind 0"], 2);
        assert_eq!(a.hist.max(), a.hist.highest_equivalent(3000));
    }

    #[test]
    fn status_kinds() {
        let k = status_kind(&tonic::Status::unavailable("etcdserver: no leader"));
        assert_eq!(k, "Unavailable: etcdserver: no leader");
        assert_eq!(status_kind(&tonic::Status::internal("")), "Internal");
    }
}
