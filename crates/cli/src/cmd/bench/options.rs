//! The options of `quorumctl bench` and their validation into a [`Plan`].

use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::args::{parse_duration, Consistency};
use crate::error::{CliError, Result};

/// Most connections one run opens.
pub const MAX_CONNS: usize = 1_000;
/// Most concurrent clients (requests in flight) of one run.
pub const MAX_CLIENTS: usize = 10_000;
/// Most watchers of the watch workload.
pub const MAX_WATCHERS: usize = 100_000;
/// Largest key, in bytes.
pub const MAX_KEY_SIZE: usize = 4_096;
/// Largest value, in bytes (etcd refuses requests above 1.5 MiB by default).
pub const MAX_VAL_SIZE: usize = 1024 * 1024;
/// Most requests of one run.
pub const MAX_TOTAL: u64 = 1_000_000_000;
/// Requests of a run when neither --total nor --duration is given.
pub const DEFAULT_TOTAL: u64 = 10_000;
/// Smallest value of the watch workload: it carries an 8-byte send timestamp.
pub const WATCH_MIN_VAL_SIZE: usize = 8;

/// What the clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Put a key (sequential or random in the key space) with a value of --val-size bytes.
    Put,
    /// Read one key of the key space, or every key with --key-prefix (--range-prefix).
    Range,
    /// Compare-and-swap: a transaction putting a key if its mod revision is the one last
    /// seen, else reading it (the "cas_failed" count).
    TxnPut,
    /// Reads (--read-ratio of the requests) and puts on random keys.
    Mixed,
    /// Latency from a put to the delivery of its event to each of --watchers watchers.
    Watch,
    /// Lease keep-alives: each client renews its own lease over a keep-alive stream.
    LeaseKeepalive,
}

impl Workload {
    /// The name as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Range => "range",
            Workload::TxnPut => "txn-put",
            Workload::Mixed => "mixed",
            Workload::Watch => "watch",
            Workload::LeaseKeepalive => "lease-keepalive",
        }
    }
}

/// `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The workload.
    #[arg(value_enum)]
    pub workload: Workload,
    /// Connections (HTTP/2 channels), spread round-robin over the endpoints.
    #[arg(long, default_value_t = 1)]
    pub conns: usize,
    /// Concurrent clients (one request in flight each), spread over the connections.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Total requests (puts for the watch workload) [default: 10000 unless --duration].
    #[arg(long, conflicts_with = "duration")]
    pub total: Option<u64>,
    /// Run for this long instead of a fixed count (e.g. 10s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Limit to this many requests per second over all clients (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
    /// Key size in bytes (the key prefix followed by the zero-padded key number).
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    pub key_space: u64,
    /// Walk the key space in order instead of picking keys at random.
    #[arg(long)]
    pub sequential_keys: bool,
    /// Prefix of every key.
    #[arg(long, default_value = "")]
    pub key_prefix: String,
    /// Read consistency of range and mixed: l (linearizable) or s (serializable).
    #[arg(long, value_enum, default_value_t = Consistency::L)]
    pub consistency: Consistency,
    /// range: read every key with --key-prefix instead of one key.
    #[arg(long)]
    pub range_prefix: bool,
    /// range: at most this many keys per read (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub range_limit: i64,
    /// mixed: fraction of reads, from 0 to 1.
    #[arg(long, default_value_t = 0.5)]
    pub read_ratio: f64,
    /// watch: number of watchers (all on the same key).
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// watch: number of watch streams the watchers are spread over.
    #[arg(long, default_value_t = 10)]
    pub watch_streams: usize,
    /// Connect only to the leader (found with a status call) instead of every endpoint.
    #[arg(long)]
    pub leader_only: bool,
    /// Print one JSON object instead of text (as -w json).
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this many requests.
    Total(u64),
    /// After this long.
    Duration(Duration),
}

/// A validated run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The workload.
    pub workload: Workload,
    /// Connections.
    pub conns: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// When to stop.
    pub stop: Stop,
    /// Requests per second over all clients, if limited.
    pub rate: Option<u32>,
    /// Key size in bytes.
    pub key_size: usize,
    /// Value size in bytes.
    pub val_size: usize,
    /// Distinct keys.
    pub key_space: u64,
    /// Sequential keys.
    pub sequential_keys: bool,
    /// Key prefix.
    pub key_prefix: String,
    /// Serializable reads.
    pub serializable: bool,
    /// Range over the key prefix.
    pub range_prefix: bool,
    /// Range limit.
    pub range_limit: i64,
    /// Fraction of reads (mixed).
    pub read_ratio: f64,
    /// Watchers (watch).
    pub watchers: usize,
    /// Watch streams (watch).
    pub watch_streams: usize,
    /// Leader only.
    pub leader_only: bool,
    /// Show a progress bar.
    pub progress: bool,
}

fn usage<T>(msg: String) -> Result<T> {
    Err(CliError::Usage(msg))
}

impl BenchArgs {
    /// Checks the options against each other and the limits.
    pub fn plan(&self) -> Result<Plan> {
        if self.conns == 0 || self.conns > MAX_CONNS {
            return usage(format!("--conns must be in 1..={MAX_CONNS}"));
        }
        if self.clients == 0 || self.clients > MAX_CLIENTS {
            return usage(format!("--clients must be in 1..={MAX_CLIENTS}"));
        }
        let stop = match (self.total, self.duration) {
            (Some(_), Some(_)) => return usage("give --total or --duration, not both".into()),
            (Some(n), None) if n == 0 || n > MAX_TOTAL => {
                return usage(format!("--total must be in 1..={MAX_TOTAL}"))
            }
            (Some(n), None) => Stop::Total(n),
            (None, Some(d)) => Stop::Duration(d),
            (None, None) => Stop::Total(DEFAULT_TOTAL),
        };
        if self.val_size > MAX_VAL_SIZE {
            return usage(format!("--val-size must be at most {MAX_VAL_SIZE}"));
        }
        if self.workload == Workload::Watch && self.val_size < WATCH_MIN_VAL_SIZE {
            return usage(format!(
                "the watch workload needs --val-size >= {WATCH_MIN_VAL_SIZE} (the value carries the send time)"
            ));
        }
        if self.key_size > MAX_KEY_SIZE || self.key_size <= self.key_prefix.len() {
            return usage(format!(
                "--key-size must be larger than the key prefix ({} bytes) and at most {MAX_KEY_SIZE}",
                self.key_prefix.len()
            ));
        }
        if self.key_space == 0 {
            return usage("--key-space must be at least 1".into());
        }
        let digits = self.key_size - self.key_prefix.len();
        if digits < 20 && 10u64.pow(digits as u32) < self.key_space {
            return usage(format!(
                "--key-space {} does not fit in {digits} digits: raise --key-size",
                self.key_space
            ));
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return usage("--read-ratio must be between 0 and 1".into());
        }
        if self.range_limit < 0 {
            return usage("--range-limit must not be negative".into());
        }
        if self.workload == Workload::Watch {
            if self.watchers == 0 || self.watchers > MAX_WATCHERS {
                return usage(format!("--watchers must be in 1..={MAX_WATCHERS}"));
            }
            if self.watch_streams == 0 || self.watch_streams > self.watchers {
                return usage("--watch-streams must be in 1..=--watchers".into());
            }
        }
        Ok(Plan {
            workload: self.workload,
            conns: self.conns,
            clients: self.clients,
            stop,
            rate: (self.rate > 0).then_some(self.rate),
            key_size: self.key_size,
            val_size: self.val_size,
            key_space: self.key_space,
            sequential_keys: self.sequential_keys,
            key_prefix: self.key_prefix.clone(),
            serializable: self.consistency == Consistency::S,
            range_prefix: self.range_prefix,
            range_limit: self.range_limit,
            read_ratio: self.read_ratio,
            watchers: self.watchers,
            watch_streams: self.watch_streams,
            leader_only: self.leader_only,
            progress: !self.no_progress,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Plan> {
        let mut v = vec!["quorumctl", "bench"];
        v.extend_from_slice(args);
        let cli = Cli::try_parse_from(v).map_err(|e| CliError::Usage(e.to_string()))?;
        match cli.command {
            Command::Bench(b) => b.plan(),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let p = parse(&["put"]).unwrap();
        assert_eq!(p.workload, Workload::Put);
        assert_eq!((p.conns, p.clients), (1, 1));
        assert_eq!(p.stop, Stop::Total(DEFAULT_TOTAL));
        assert_eq!(p.rate, None);
        assert_eq!((p.key_size, p.val_size, p.key_space), (8, 256, 100_000));
        assert!(!p.serializable && !p.sequential_keys && !p.leader_only);
    }

    #[test]
    fn every_option() {
        let p = parse(&[
            "range",
            "--conns",
            "10",
            "--clients",
            "100",
            "--duration",
            "5s",
            "--rate",
            "200",
            "--consistency",
            "s",
            "--key-size",
            "12",
            "--key-prefix",
            "k/",
            "--key-space",
            "1000",
            "--sequential-keys",
            "--leader-only",
        ])
        .unwrap();
        assert_eq!(p.workload, Workload::Range);
        assert_eq!((p.conns, p.clients), (10, 100));
        assert_eq!(p.stop, Stop::Duration(Duration::from_secs(5)));
        assert_eq!(p.rate, Some(200));
        assert!(p.serializable && p.sequential_keys && p.leader_only);
        assert_eq!(p.key_prefix, "k/");
        let w = parse(&["txn-put"]).unwrap();
        assert_eq!(w.workload, Workload::TxnPut);
        let l = parse(&["lease-keepalive", "--total", "7"]).unwrap();
        assert_eq!(
            (l.workload, l.stop),
            (Workload::LeaseKeepalive, Stop::Total(7))
        );
    }

    #[test]
    fn refusals() {
        assert!(parse(&["put", "--total", "5", "--duration", "1s"]).is_err());
        assert!(parse(&["put", "--total", "0"]).is_err());
        assert!(parse(&["put", "--conns", "0"]).is_err());
        assert!(parse(&["put", "--clients", "10001"]).is_err());
        // 3 digits number 1000 keys (000..999), not 1001.
        assert!(parse(&["put", "--key-size", "3", "--key-space", "1001"]).is_err());
        assert!(parse(&["put", "--key-size", "3", "--key-space", "1000"]).is_ok());
        assert!(parse(&["put", "--key-size", "2", "--key-prefix", "ab"]).is_err());
        assert!(parse(&["mixed", "--read-ratio", "1.5"]).is_err());
        assert!(parse(&["watch", "--val-size", "4"]).is_err());
        assert!(parse(&["watch", "--watchers", "2", "--watch-streams", "3"]).is_err());
        assert!(parse(&["nonsense"]).is_err());
    }
}
