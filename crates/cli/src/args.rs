//! The command line: global flags and subcommands (clap derive), named as etcdctl's.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// quorumctl: a command-line client for Quorum and etcd (speaks the etcd v3 gRPC API).
#[derive(Debug, Parser)]
#[command(name = "quorumctl", version, about, propagate_version = true)]
pub struct Cli {
    /// Flags shared by every command.
    #[command(flatten)]
    pub global: Global,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Client endpoints, comma-separated (host:port or http://host:port).
    #[arg(
        long,
        global = true,
        env = "QUORUMCTL_ENDPOINTS",
        default_value = "127.0.0.1:2379",
        value_delimiter = ','
    )]
    pub endpoints: Vec<String>,
    /// Output format.
    #[arg(short = 'w', long = "write-out", global = true, value_enum, default_value_t = Format::Simple)]
    pub write_out: Format,
    /// Time allowed to connect to an endpoint (e.g. 2s, 500ms).
    #[arg(long, global = true, default_value = "2s", value_parser = parse_duration)]
    pub dial_timeout: Duration,
    /// Time allowed for one request, not counting streams (e.g. 5s).
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration)]
    pub command_timeout: Duration,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable lines, as etcdctl prints them.
    Simple,
    /// One JSON document per response (bytes in base64, as etcdctl).
    Json,
    /// An ASCII table.
    Table,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Gets a key or a range of keys.
    Get(GetArgs),
    /// Puts a key (the value is read from stdin when not given).
    Put(PutArgs),
    /// Deletes a key or a range of keys.
    Del(DelArgs),
    /// Runs a transaction read from stdin: compares, a blank line, success ops, a blank line,
    /// failure ops.
    Txn(TxnArgs),
    /// Watches a key or a range for changes.
    Watch(WatchArgs),
    /// Lease commands.
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// Acquires a named lock; runs a command while holding it, or holds it until Ctrl-C.
    Lock(LockArgs),
    /// Campaigns in a named election, or observes it with -l.
    Elect(ElectArgs),
    /// Membership commands.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Endpoint commands.
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Snapshot commands.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Compacts the event history up to a revision.
    Compaction(CompactionArgs),
    /// Defragments the storage of every endpoint.
    Defrag,
    /// Alarm commands.
    #[command(subcommand)]
    Alarm(AlarmCommand),
    /// Starts a local 3-member cluster in the foreground; Ctrl-C stops it.
    Playground(PlaygroundArgs),
    /// Runs a benchmark workload and reports throughput, latency percentiles and errors.
    Bench(crate::cmd::bench::BenchArgs),
}

/// Sort targets of `get --sort-by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum SortBy {
    /// The key.
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Modify,
    /// The value.
    Value,
}

/// Sort orders of `get --order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum Order {
    /// Lowest first.
    Ascend,
    /// Highest first.
    Descend,
}

/// Read consistency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable.
    L,
    /// Serializable (served by the member at once, possibly stale).
    S,
}

/// `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The key, or the first key of the range.
    pub key: String,
    /// End of the range [key, range_end).
    pub range_end: Option<String>,
    /// Get every key with the prefix `key`.
    #[arg(long, conflicts_with_all = ["from_key", "range_end"])]
    pub prefix: bool,
    /// Get every key >= `key`.
    #[arg(long, conflicts_with = "range_end")]
    pub from_key: bool,
    /// At most this many keys (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Read at this revision (0: the newest).
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// Sort by this field.
    #[arg(long, value_enum)]
    pub sort_by: Option<SortBy>,
    /// Sort order (default ASCEND when --sort-by is given).
    #[arg(long, value_enum)]
    pub order: Option<Order>,
    /// Print keys only.
    #[arg(long)]
    pub keys_only: bool,
    /// Print the number of keys only.
    #[arg(long)]
    pub count_only: bool,
    /// Print values only.
    #[arg(long)]
    pub print_value_only: bool,
    /// Linearizable (l) or serializable (s) read.
    #[arg(long, value_enum, default_value_t = Consistency::L)]
    pub consistency: Consistency,
}

/// `put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The key.
    pub key: String,
    /// The value (read from stdin when absent).
    pub value: Option<String>,
    /// Attach this lease (hexadecimal ID, as printed by `lease grant`).
    #[arg(long)]
    pub lease: Option<String>,
    /// Print the previous key-value pair.
    #[arg(long)]
    pub prev_kv: bool,
    /// Keep the current value (update the lease only).
    #[arg(long)]
    pub ignore_value: bool,
    /// Keep the current lease.
    #[arg(long)]
    pub ignore_lease: bool,
}

/// `del`.
#[derive(Debug, Args)]
pub struct DelArgs {
    /// The key, or the first key of the range.
    pub key: String,
    /// End of the range [key, range_end).
    pub range_end: Option<String>,
    /// Delete every key with the prefix `key`.
    #[arg(long, conflicts_with_all = ["from_key", "range_end"])]
    pub prefix: bool,
    /// Delete every key >= `key`.
    #[arg(long, conflicts_with = "range_end")]
    pub from_key: bool,
    /// Print the deleted key-value pairs.
    #[arg(long)]
    pub prev_kv: bool,
}

/// `txn`.
#[derive(Debug, Args)]
pub struct TxnArgs {
    /// Prompt for each section (as `etcdctl txn -i`).
    #[arg(short, long)]
    pub interactive: bool,
}

/// `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The key, or the first key of the range.
    pub key: String,
    /// End of the range [key, range_end).
    pub range_end: Option<String>,
    /// Watch every key with the prefix `key`.
    #[arg(long, conflicts_with = "range_end")]
    pub prefix: bool,
    /// Start from this revision (0: now).
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// Print the previous key-value pair of each event.
    #[arg(long)]
    pub prev_kv: bool,
}

/// `lease ...`.
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Grants a lease with a TTL in seconds.
    Grant {
        /// Time to live, in seconds.
        ttl: i64,
    },
    /// Revokes a lease and deletes its keys.
    Revoke {
        /// Lease ID (hexadecimal).
        id: String,
    },
    /// Shows a lease's remaining time.
    Timetolive {
        /// Lease ID (hexadecimal).
        id: String,
        /// Also list the attached keys.
        #[arg(long)]
        keys: bool,
    },
    /// Lists the leases.
    List,
    /// Keeps a lease alive until Ctrl-C.
    KeepAlive {
        /// Lease ID (hexadecimal).
        id: String,
        /// Renew once and exit.
        #[arg(long)]
        once: bool,
    },
}

/// `lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// Name of the lock.
    pub name: String,
    /// A command to run while holding the lock (ETCD_LOCK_KEY and ETCD_LOCK_REV are set).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// TTL of the session lease, in seconds.
    #[arg(long, default_value_t = 60)]
    pub ttl: i64,
}

/// `elect`.
#[derive(Debug, Args)]
pub struct ElectArgs {
    /// Name of the election.
    pub name: String,
    /// The value to proclaim once elected.
    pub proposal: Option<String>,
    /// Observe the election's leaders instead of campaigning.
    #[arg(short = 'l', long, conflicts_with = "proposal")]
    pub listen: bool,
    /// TTL of the session lease, in seconds.
    #[arg(long, default_value_t = 60)]
    pub ttl: i64,
}

/// `member ...`.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Lists the members.
    List,
    /// Adds a member (prints the environment its first start needs, as etcdctl does).
    Add {
        /// The new member's name (used in the printed ETCD_INITIAL_CLUSTER).
        name: String,
        /// Its peer URLs, comma-separated.
        #[arg(long = "peer-urls", value_delimiter = ',', required = true)]
        peer_urls: Vec<String>,
        /// Add it as a non-voting learner.
        #[arg(long)]
        learner: bool,
    },
    /// Removes a member (hexadecimal ID, as `member list` prints it).
    Remove {
        /// Member ID.
        id: String,
    },
    /// Replaces a member's peer URLs.
    Update {
        /// Member ID.
        id: String,
        /// The new peer URLs, comma-separated.
        #[arg(long = "peer-urls", value_delimiter = ',', required = true)]
        peer_urls: Vec<String>,
    },
    /// Promotes a learner that is in sync with the leader to a voter.
    Promote {
        /// Member ID.
        id: String,
    },
}

/// `endpoint ...`.
#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Shows the status of every endpoint.
    Status,
    /// Checks that every endpoint serves a linearizable read.
    Health,
}

/// `snapshot ...`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Saves a snapshot of the first endpoint's store to a file.
    Save {
        /// The file to write.
        file: PathBuf,
    },
}

/// `compaction`.
#[derive(Debug, Args)]
pub struct CompactionArgs {
    /// Revision to compact to.
    pub rev: i64,
    /// Wait until the compaction is physically applied.
    #[arg(long)]
    pub physical: bool,
}

/// `alarm ...`.
#[derive(Debug, Subcommand)]
pub enum AlarmCommand {
    /// Lists the raised alarms.
    List,
    /// Clears every raised alarm.
    Disarm,
}

/// `playground`.
#[derive(Debug, Args)]
pub struct PlaygroundArgs {
    /// The server binary (default: `quorum` next to quorumctl, else on PATH). Any binary with
    /// etcd's flags works, e.g. `etcd`.
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Number of members.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=7))]
    pub members: u8,
    /// Keep the data directory afterwards (it is deleted on exit by default).
    #[arg(long)]
    pub keep_data: bool,
}

/// Parses "500ms", "2s", "1m" or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: use e.g. 500ms, 2s, 1m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s or m")),
    };
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("duration {s:?} out of range (0, 24h]"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn endpoints_split_on_commas() {
        let cli = Cli::try_parse_from(["quorumctl", "--endpoints", "a:1,b:2", "get", "k"]).unwrap();
        assert_eq!(cli.global.endpoints, ["a:1", "b:2"]);
    }
}
