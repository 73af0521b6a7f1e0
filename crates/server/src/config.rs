//! The member's configuration: etcd-compatible flags (same names, same meaning), also readable
//! from `QUORUM_*` environment variables (e.g. `QUORUM_NAME`, `QUORUM_INITIAL_CLUSTER`), so a
//! script that starts etcd starts Quorum by changing only the binary's name.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use url::Url;

/// The version of the etcd API Quorum speaks; reported by `/version` and Maintenance.Status so
/// that client libraries enable the features they know this API level has.
pub const ETCD_API_VERSION: &str = "3.5.0";
/// The cluster-level version reported by `/version`.
pub const ETCD_CLUSTER_VERSION: &str = "3.5.0";

/// Command-line flags of the `quorum` binary. Unknown etcd flags that only tune etcd internals
/// are accepted and ignored with a warning (see [`Flags::ignored`]).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "quorum",
    version,
    about = "Quorum: a strongly consistent key-value store speaking etcd's v3 API",
    long_about = "Quorum: a strongly consistent key-value store speaking etcd's v3 API.\n\
        With no flags it runs a single member: clients on 127.0.0.1:2379, peers on \
        127.0.0.1:2380, data in ./default.quorum. Every flag can also be set with an \
        environment variable QUORUM_<FLAG> (e.g. QUORUM_INITIAL_CLUSTER)."
)]
pub struct Flags {
    /// Human-readable name for this member.
    #[arg(long, env = "QUORUM_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: ./<name>.quorum).
    #[arg(long, env = "QUORUM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Path to a dedicated WAL directory (default: <data-dir>/member/wal).
    #[arg(long, env = "QUORUM_WAL_DIR")]
    pub wal_dir: Option<PathBuf>,
    /// URLs to listen on for client traffic (comma-separated).
    #[arg(
        long,
        env = "QUORUM_LISTEN_CLIENT_URLS",
        default_value = "http://127.0.0.1:2379"
    )]
    pub listen_client_urls: String,
    /// This member's client URLs to advertise to the rest of the cluster.
    #[arg(long, env = "QUORUM_ADVERTISE_CLIENT_URLS")]
    pub advertise_client_urls: Option<String>,
    /// PEM certificate served on `https://` client URLs.
    #[arg(long, env = "QUORUM_CERT_FILE")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `--cert-file`.
    #[arg(long, env = "QUORUM_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates that client certificates are verified against.
    #[arg(long, env = "QUORUM_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<PathBuf>,
    /// Require a client certificate signed by `--trusted-ca-file` on `https://` client URLs.
    #[arg(long, env = "QUORUM_CLIENT_CERT_AUTH", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub client_cert_auth: bool,
    /// `https://` client URLs without `--cert-file`/`--key-file` use a self-signed certificate,
    /// generated into `<data-dir>/fixtures/client` on first start (clients must skip
    /// verification, e.g. `etcdctl --insecure-skip-tls-verify`), as etcd's `--auto-tls`.
    #[arg(long, env = "QUORUM_AUTO_TLS", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub auto_tls: bool,
    /// Years the `--auto-tls` certificate is valid (etcd's `--self-signed-cert-validity`).
    #[arg(long, env = "QUORUM_SELF_SIGNED_CERT_VALIDITY", default_value_t = 1)]
    pub self_signed_cert_validity: u32,
    /// etcd's `--peer-auto-tls` (peers that skip certificate verification): refused, with what
    /// to use instead.
    #[arg(long, env = "QUORUM_PEER_AUTO_TLS", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub peer_auto_tls: bool,
    /// PEM certificate served on `https://` peer URLs, and presented as this member's client
    /// certificate when it connects to peers.
    #[arg(long, env = "QUORUM_PEER_CERT_FILE")]
    pub peer_cert_file: Option<PathBuf>,
    /// PEM private key of `--peer-cert-file`.
    #[arg(long, env = "QUORUM_PEER_KEY_FILE")]
    pub peer_key_file: Option<PathBuf>,
    /// PEM CA certificates that verify the peers' certificates (server and client).
    #[arg(long, env = "QUORUM_PEER_TRUSTED_CA_FILE")]
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// Require a client certificate signed by `--peer-trusted-ca-file` on `https://` peer URLs.
    #[arg(long, env = "QUORUM_PEER_CLIENT_CERT_AUTH", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub peer_client_cert_auth: bool,
    /// URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "QUORUM_LISTEN_PEER_URLS",
        default_value = "http://127.0.0.1:2380"
    )]
    pub listen_peer_urls: String,
    /// This member's peer URLs to advertise to the rest of the cluster.
    #[arg(long, env = "QUORUM_INITIAL_ADVERTISE_PEER_URLS")]
    pub initial_advertise_peer_urls: Option<String>,
    /// Initial cluster configuration for bootstrapping: name=peerURL,name=peerURL,...
    #[arg(long, env = "QUORUM_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// Initial cluster state: `new` or `existing`.
    #[arg(long, env = "QUORUM_INITIAL_CLUSTER_STATE", default_value = "new")]
    pub initial_cluster_state: ClusterState,
    /// Initial cluster token: members of one cluster must share it; it keeps clusters apart.
    #[arg(
        long,
        env = "QUORUM_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "QUORUM_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "QUORUM_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Number of committed entries that trigger a snapshot (and log compaction).
    #[arg(long, env = "QUORUM_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Raise the NOSPACE alarm when the backend exceeds this size (0: 2 GiB default).
    #[arg(long, env = "QUORUM_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    pub quota_backend_bytes: u64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "QUORUM_MAX_REQUEST_BYTES", default_value_t = 1_572_864)]
    pub max_request_bytes: u64,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long, env = "QUORUM_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: u64,
    /// Auto compaction mode: `periodic` (retention is a duration) or `revision`.
    #[arg(long, env = "QUORUM_AUTO_COMPACTION_MODE", default_value = "periodic")]
    pub auto_compaction_mode: CompactionMode,
    /// Auto compaction retention: a duration (e.g. `1h`, `30m`, hours if no unit) for periodic,
    /// a revision count for revision mode; 0 disables auto compaction.
    #[arg(long, env = "QUORUM_AUTO_COMPACTION_RETENTION", default_value = "0")]
    pub auto_compaction_retention: String,
    /// Log level: debug, info, warn, error.
    #[arg(long, env = "QUORUM_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// URLs to serve /metrics and /health on, besides the client URLs.
    #[arg(long, env = "QUORUM_LISTEN_METRICS_URLS")]
    pub listen_metrics_urls: Option<String>,
    /// Run the extra PreVote election phase (Quorum always does; accepted for compatibility).
    #[arg(long, env = "QUORUM_PRE_VOTE", num_args = 0..=1, default_missing_value = "true", default_value = "true")]
    pub pre_vote: bool,
    /// Entries kept in the log behind a snapshot, so that a slightly lagging follower catches
    /// up from the log instead of needing a whole snapshot (etcd's
    /// `--experimental-snapshot-catchup-entries`).
    #[arg(
        long = "experimental-snapshot-catchup-entries",
        alias = "snapshot-catchup-entries",
        env = "QUORUM_SNAPSHOT_CATCHUP_ENTRIES",
        default_value_t = 5000
    )]
    pub snapshot_catchup_entries: u64,
    /// Maximum number of snapshot files to retain (0 is unlimited).
    #[arg(long, env = "QUORUM_MAX_SNAPSHOTS", default_value_t = 5)]
    pub max_snapshots: u64,
    /// Refuse membership changes that would leave the cluster without a started quorum, or
    /// that this member cannot vouch for (a voter it is not connected to).
    #[arg(long, env = "QUORUM_STRICT_RECONFIG_CHECK", num_args = 0..=1, default_missing_value = "true", default_value = "true")]
    pub strict_reconfig_check: bool,
    /// Serve etcd's JSON gateway (`/v3/...` over HTTP) on the client port, as etcd does by
    /// default.
    #[arg(long, env = "QUORUM_ENABLE_GRPC_GATEWAY", num_args = 0..=1, default_missing_value = "true", default_value = "true")]
    pub enable_grpc_gateway: bool,
    /// Restore this backup (a file written by `etcdctl snapshot save` or `quorumctl snapshot
    /// save` from Quorum) into a new cluster: give the same file to every member of the new
    /// cluster on its first start (`--initial-cluster-state new`, empty data dir). Ignored,
    /// with a warning, once the data dir holds a member (so the same command line restarts it).
    #[arg(long, env = "QUORUM_RESTORE_SNAPSHOT", value_name = "FILE")]
    pub restore_snapshot: Option<PathBuf>,
    /// Auth token provider: `simple` (etcd's default), or
    /// `jwt,pub-key=<PEM>,priv-key=<PEM or secret>,sign-method=<RS256|ES256|HS256|...>,ttl=<5m>`.
    #[arg(long, env = "QUORUM_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,
    /// Seconds a simple auth token lives after its last use (etcd's `--auth-token-ttl`).
    #[arg(long, env = "QUORUM_AUTH_TOKEN_TTL", default_value_t = 300)]
    pub auth_token_ttl: u64,
    /// etcd flags that tune etcd internals Quorum does not have; accepted so that etcd command
    /// lines work unchanged, and ignored with a warning.
    #[arg(
        long = "ignored-etcd-flag",
        hide = true,
        value_name = "FLAG",
        num_args = 0..,
    )]
    pub ignored: Vec<String>,
}

/// Whether this member bootstraps a new cluster or joins an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterState {
    /// All members in `--initial-cluster` start together and form a new cluster.
    New,
    /// This member joins a running cluster that already lists it (after `member add`).
    Existing,
}

/// How auto compaction picks the revision to compact to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompactionMode {
    /// Keep the history of the last `retention` duration.
    Periodic,
    /// Keep the last `retention` revisions.
    Revision,
}

/// A configuration error, worded for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// One member of the initial cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMember {
    /// The member's `--name`.
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
}

/// TLS of `https://` listeners: the client port's (etcd's `--cert-file`, `--key-file`,
/// `--trusted-ca-file`, `--client-cert-auth`) or the peer port's (the same with `--peer-`),
/// which also sets how this member connects to its peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain served.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// PEM CA certificates that verify client certificates.
    pub trusted_ca_file: Option<PathBuf>,
    /// Whether a verified client certificate is required.
    pub client_cert_auth: bool,
}

/// Validated configuration, derived from [`Flags`].
#[derive(Debug, Clone)]
pub struct Config {
    /// This member's name.
    pub name: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// WAL directory.
    pub wal_dir: PathBuf,
    /// Client listen addresses (host:port).
    pub listen_client: Vec<String>,
    /// The client listen addresses whose URLs are `https://`.
    pub listen_client_tls: Vec<String>,
    /// TLS for `https://` client URLs (`None` when there are none).
    pub client_tls: Option<TlsFiles>,
    /// `--auto-tls` in effect: `client_tls` names a self-signed certificate to generate (if
    /// missing) valid this many years.
    pub auto_tls: Option<u32>,
    /// Advertised client URLs.
    pub advertise_client_urls: Vec<String>,
    /// Peer listen addresses (host:port).
    pub listen_peer: Vec<String>,
    /// The peer listen addresses whose URLs are `https://`.
    pub listen_peer_tls: Vec<String>,
    /// TLS of `https://` peer URLs, ours and the peers' (`None` when no peer URL is one).
    pub peer_tls: Option<TlsFiles>,
    /// Advertised peer URLs.
    pub advertise_peer_urls: Vec<String>,
    /// The initial cluster, in the order given.
    pub initial_cluster: Vec<InitialMember>,
    /// New or existing.
    pub initial_cluster_state: ClusterState,
    /// Cluster token.
    pub initial_cluster_token: String,
    /// Heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Election timeout.
    pub election_timeout: Duration,
    /// Entries between snapshots.
    pub snapshot_count: u64,
    /// Backend quota in bytes.
    pub quota_backend_bytes: u64,
    /// Request size limit.
    pub max_request_bytes: u64,
    /// Txn operation limit.
    pub max_txn_ops: u64,
    /// Auto compaction mode.
    pub auto_compaction_mode: CompactionMode,
    /// Auto compaction retention: a duration for periodic mode.
    pub auto_compaction_period: Option<Duration>,
    /// Auto compaction retention: a revision count for revision mode.
    pub auto_compaction_revisions: Option<u64>,
    /// Metrics listen addresses (host:port).
    pub listen_metrics: Vec<String>,
    /// Log level filter.
    pub log_level: String,
    /// Snapshot files to keep.
    pub max_snapshots: u64,
    /// Log entries kept behind a snapshot.
    pub snapshot_catchup_entries: u64,
    /// `--strict-reconfig-check`: refuse membership changes that endanger the quorum.
    pub strict_reconfig_check: bool,
    /// `--enable-grpc-gateway`: serve the JSON gateway on the client port.
    pub enable_grpc_gateway: bool,
    /// `--auth-token-ttl`.
    pub auth_token_ttl: Duration,
    /// `--auth-token jwt,...`: JWT tokens instead of simple ones.
    pub jwt: Option<crate::jwt::JwtOptions>,
    /// `--restore-snapshot`: the backup a new cluster starts from.
    pub restore_snapshot: Option<PathBuf>,
}

/// The default backend quota, as etcd's (2 GiB).
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// etcd's suggested maximum quota (8 GiB); larger values are accepted with a warning.
pub const MAX_SUGGESTED_QUOTA_BYTES: u64 = 8 * 1024 * 1024 * 1024;

impl Flags {
    /// Peer TLS from the `--peer-*` files; `needed` when some peer URL (ours, or one in
    /// `--initial-cluster`) is `https://`. Connecting to an `https://` peer verifies it
    /// against `--peer-trusted-ca-file`, so that file is required as well.
    fn peer_tls(&self, needed: bool) -> Result<Option<TlsFiles>, ConfigError> {
        let files = match (
            &self.peer_cert_file,
            &self.peer_key_file,
            &self.peer_trusted_ca_file,
        ) {
            (Some(cert), Some(key), Some(ca)) => Some(TlsFiles {
                cert_file: cert.clone(),
                key_file: key.clone(),
                trusted_ca_file: Some(ca.clone()),
                client_cert_auth: self.peer_client_cert_auth,
            }),
            (None, None, None) if !needed && !self.peer_client_cert_auth => None,
            _ if !needed => {
                return Err(ConfigError(
                    "peer TLS needs --peer-cert-file, --peer-key-file and \
                     --peer-trusted-ca-file together (PEM)"
                        .into(),
                ))
            }
            _ => {
                return Err(ConfigError(
                    "https:// peer URLs need --peer-cert-file and --peer-key-file (PEM, this \
                     member's certificate) and --peer-trusted-ca-file (the CA that signed the \
                     members' certificates)"
                        .into(),
                ))
            }
        };
        Ok(files)
    }

    /// Validates the flags and derives the member's [`Config`].
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.quorum", self.name)));
        let wal_dir = self
            .wal_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("member").join("wal"));
        let listen_client = parse_listen_urls("--listen-client-urls", &self.listen_client_urls)?;
        let listen_client_tls = tls_listen_addrs("--listen-client-urls", &self.listen_client_urls)?;
        let client_tls = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert_file: cert.clone(),
                key_file: key.clone(),
                trusted_ca_file: self.trusted_ca_file.clone(),
                client_cert_auth: self.client_cert_auth,
            }),
            (None, None) if listen_client_tls.is_empty() => None,
            (None, None) if self.auto_tls => Some(TlsFiles {
                cert_file: data_dir.join("fixtures").join("client").join("cert.pem"),
                key_file: data_dir.join("fixtures").join("client").join("key.pem"),
                trusted_ca_file: self.trusted_ca_file.clone(),
                client_cert_auth: self.client_cert_auth,
            }),
            _ => {
                return Err(ConfigError(
                    "https:// client URLs need both --cert-file and --key-file (PEM), or \
                     --auto-tls for a self-signed certificate"
                        .into(),
                ))
            }
        };
        if self.peer_auto_tls {
            return Err(ConfigError(
                "--peer-auto-tls (members that do not verify each other) is not supported; give \
                 the members certificates signed by one CA with --peer-cert-file, \
                 --peer-key-file and --peer-trusted-ca-file"
                    .into(),
            ));
        }
        if self.self_signed_cert_validity == 0 {
            return Err(ConfigError(
                "--self-signed-cert-validity must be at least 1 (year)".into(),
            ));
        }
        let auto_tls = (self.auto_tls && self.cert_file.is_none() && !listen_client_tls.is_empty())
            .then_some(self.self_signed_cert_validity);
        if self.client_cert_auth && self.trusted_ca_file.is_none() {
            return Err(ConfigError(
                "--client-cert-auth needs --trusted-ca-file: the CA that signs client certificates"
                    .into(),
            ));
        }
        let listen_peer = parse_listen_urls("--listen-peer-urls", &self.listen_peer_urls)?;
        let listen_peer_tls = tls_listen_addrs("--listen-peer-urls", &self.listen_peer_urls)?;
        let advertise_client_urls = match &self.advertise_client_urls {
            Some(s) => parse_urls("--advertise-client-urls", s)?,
            None => parse_urls("--listen-client-urls", &self.listen_client_urls)?,
        };
        let advertise_peer_urls = match &self.initial_advertise_peer_urls {
            Some(s) => parse_urls("--initial-advertise-peer-urls", s)?,
            None => parse_urls("--listen-peer-urls", &self.listen_peer_urls)?,
        };
        let initial_cluster = match &self.initial_cluster {
            Some(s) => parse_initial_cluster(s)?,
            None => vec![InitialMember {
                name: self.name.clone(),
                peer_urls: advertise_peer_urls.clone(),
            }],
        };
        let peer_tls = self.peer_tls(
            !listen_peer_tls.is_empty()
                || advertise_peer_urls
                    .iter()
                    .chain(initial_cluster.iter().flat_map(|m| m.peer_urls.iter()))
                    .any(|u| u.starts_with("https://")),
        )?;
        let me = initial_cluster
            .iter()
            .find(|m| m.name == self.name)
            .ok_or_else(|| {
                ConfigError(format!(
                    "--initial-cluster has no member named {:?} (this member's --name); \
                     add `{}={}` to it",
                    self.name,
                    self.name,
                    advertise_peer_urls.join(",")
                ))
            })?;
        let mut mine = me.peer_urls.clone();
        mine.sort();
        let mut advertised = advertise_peer_urls.clone();
        advertised.sort();
        if mine != advertised {
            return Err(ConfigError(format!(
                "--initial-cluster has {}={} but --initial-advertise-peer-urls is {}; \
                 they must match",
                self.name,
                me.peer_urls.join(","),
                advertise_peer_urls.join(",")
            )));
        }
        if self.heartbeat_interval == 0 {
            return Err(ConfigError(
                "--heartbeat-interval must be at least 1 ms".into(),
            ));
        }
        if self.election_timeout < 5 * self.heartbeat_interval {
            return Err(ConfigError(format!(
                "--election-timeout ({} ms) must be at least 5 times --heartbeat-interval \
                 ({} ms)",
                self.election_timeout, self.heartbeat_interval
            )));
        }
        if self.election_timeout > 50_000 {
            return Err(ConfigError(format!(
                "--election-timeout ({} ms) is longer than 50000 ms",
                self.election_timeout
            )));
        }
        if self.snapshot_count == 0 {
            return Err(ConfigError("--snapshot-count must be at least 1".into()));
        }
        if self.max_txn_ops == 0 {
            return Err(ConfigError("--max-txn-ops must be at least 1".into()));
        }
        if self.max_request_bytes == 0 || self.max_request_bytes > 64 * 1024 * 1024 {
            return Err(ConfigError(
                "--max-request-bytes must be between 1 and 67108864 (64 MiB)".into(),
            ));
        }
        // etcd's syntax: "simple", or "jwt,pub-key=...,..." (its first field names the kind).
        let (kind, rest) = self
            .auth_token
            .split_once(',')
            .unwrap_or((self.auth_token.as_str(), ""));
        let jwt = match kind.trim() {
            "simple" => None,
            "jwt" => Some(crate::jwt::JwtOptions::parse(rest).map_err(ConfigError)?),
            _ => {
                return Err(ConfigError(format!(
                    "--auth-token {:?} is not a token provider; use simple or jwt,...",
                    self.auth_token
                )))
            }
        };
        if self.restore_snapshot.is_some() && self.initial_cluster_state == ClusterState::Existing {
            return Err(ConfigError(
                "--restore-snapshot starts a new cluster from a backup; it cannot be used with \
                 --initial-cluster-state existing (add the member empty, it catches up)"
                    .into(),
            ));
        }
        if self.auth_token_ttl == 0 {
            return Err(ConfigError(
                "--auth-token-ttl must be at least 1 second".into(),
            ));
        }
        let quota_backend_bytes = if self.quota_backend_bytes == 0 {
            DEFAULT_QUOTA_BYTES
        } else {
            self.quota_backend_bytes
        };
        let (auto_compaction_period, auto_compaction_revisions) =
            parse_retention(self.auto_compaction_mode, &self.auto_compaction_retention)?;
        let listen_metrics = match &self.listen_metrics_urls {
            Some(s) if !s.is_empty() => parse_listen_urls("--listen-metrics-urls", s)?,
            _ => Vec::new(),
        };
        Ok(Config {
            name: self.name,
            data_dir,
            wal_dir,
            listen_client,
            listen_client_tls,
            client_tls,
            auto_tls,
            listen_peer_tls,
            peer_tls,
            advertise_client_urls,
            listen_peer,
            advertise_peer_urls,
            initial_cluster,
            initial_cluster_state: self.initial_cluster_state,
            initial_cluster_token: self.initial_cluster_token,
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval),
            election_timeout: Duration::from_millis(self.election_timeout),
            snapshot_count: self.snapshot_count,
            quota_backend_bytes,
            max_request_bytes: self.max_request_bytes,
            max_txn_ops: self.max_txn_ops,
            auto_compaction_mode: self.auto_compaction_mode,
            auto_compaction_period,
            auto_compaction_revisions,
            listen_metrics,
            log_level: self.log_level,
            max_snapshots: self.max_snapshots,
            snapshot_catchup_entries: self.snapshot_catchup_entries,
            strict_reconfig_check: self.strict_reconfig_check,
            enable_grpc_gateway: self.enable_grpc_gateway,
            auth_token_ttl: Duration::from_secs(self.auth_token_ttl),
            jwt,
            restore_snapshot: self.restore_snapshot,
        })
    }
}

/// etcd flags accepted for compatibility and ignored: they tune etcd internals (bbolt, Go
/// runtime, v2 API, logging backends) that Quorum does not have.
pub const IGNORED_ETCD_FLAGS: &[&str] = &[
    "logger",
    "log-outputs",
    "enable-v2",
    "enable-pprof",
    "max-wals",
    "experimental-initial-corrupt-check",
    "experimental-corrupt-check-time",
    "experimental-enable-distributed-tracing",
    "experimental-watch-progress-notify-interval",
    "experimental-backend-bbolt-freelist-type",
    "backend-bbolt-freelist-type",
    "backend-batch-interval",
    "backend-batch-limit",
    "quota-backend-bytes-warning",
    "metrics",
    "grpc-keepalive-min-time",
    "grpc-keepalive-interval",
    "grpc-keepalive-timeout",
    "unsafe-no-fsync",
    "socket-reuse-port",
    "socket-reuse-address",
    "initial-election-tick-advance",
    "experimental-enable-lease-checkpoint",
    "experimental-enable-lease-checkpoint-persist",
    "experimental-compact-hash-check-enabled",
    "experimental-compact-hash-check-time",
    "experimental-txn-mode-write-with-shared-buffer",
    "experimental-warning-apply-duration",
    "warning-apply-duration",
    "experimental-memory-mlock",
    "experimental-enable-v2v3",
    "experimental-stop-grpc-service-on-defrag",
    "max-concurrent-streams",
    "enable-log-rotation",
    "log-rotation-config-json",
    "debug",
];

/// Rewrites the process arguments so that every flag in [`IGNORED_ETCD_FLAGS`] is collected
/// into `--ignored-etcd-flag` instead of failing to parse. Returns the rewritten arguments.
pub fn rewrite_ignored_flags(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter().peekable();
    if let Some(program) = iter.next() {
        out.push(program);
    }
    while let Some(arg) = iter.next() {
        let Some(body) = arg.strip_prefix("--") else {
            out.push(arg);
            continue;
        };
        let (name, inline_value) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (body.to_string(), None),
        };
        if !IGNORED_ETCD_FLAGS.contains(&name.as_str()) {
            out.push(arg);
            continue;
        }
        let value = match inline_value {
            Some(v) => Some(v),
            None => match iter.peek() {
                Some(next) if !next.starts_with("--") => iter.next(),
                _ => None,
            },
        };
        out.push("--ignored-etcd-flag".to_string());
        out.push(match value {
            Some(v) => format!("{name}={v}"),
            None => name,
        });
    }
    out
}

/// The listen addresses (host:port) of the `https://` URLs in `list`.
fn tls_listen_addrs(flag: &str, list: &str) -> Result<Vec<String>, ConfigError> {
    parse_urls(flag, list)?
        .iter()
        .filter(|u| u.starts_with("https://"))
        .map(|u| url_to_addr(u).map_err(|e| ConfigError(format!("{flag}: {e}"))))
        .collect()
}

fn parse_urls(flag: &str, list: &str) -> Result<Vec<String>, ConfigError> {
    let mut urls = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let url = Url::parse(raw).map_err(|e| {
            ConfigError(format!(
                "{flag}: {raw:?} is not a URL ({e}); expected e.g. http://127.0.0.1:2379"
            ))
        })?;
        match url.scheme() {
            "http" => {}
            // etcd serves these on unix sockets (TLS for unixs); never silently on TCP.
            "unix" | "unixs" => {
                return Err(ConfigError(format!(
                    "{flag}: {raw:?}: unix socket URLs are not supported; use \
                     http://host:port or https://host:port"
                )))
            }
            "https" if !flag.contains("metrics") => {}
            "https" => {
                return Err(ConfigError(format!(
                    "{flag}: {raw:?}: TLS is not supported on metrics URLs; use http:// here, \
                     or serve /metrics on an https:// client URL"
                )))
            }
            other => {
                return Err(ConfigError(format!(
                    "{flag}: {raw:?} has scheme {other:?}; expected http://"
                )))
            }
        }
        if url.host_str().is_none() || url.port().is_none() {
            return Err(ConfigError(format!(
                "{flag}: {raw:?} needs a host and a port, e.g. http://127.0.0.1:2379"
            )));
        }
        urls.push(raw.trim_end_matches('/').to_string());
    }
    if urls.is_empty() {
        return Err(ConfigError(format!(
            "{flag} is empty; give at least one URL"
        )));
    }
    Ok(urls)
}

fn parse_listen_urls(flag: &str, list: &str) -> Result<Vec<String>, ConfigError> {
    parse_urls(flag, list)?
        .iter()
        .map(|u| url_to_addr(u).map_err(|e| ConfigError(format!("{flag}: {e}"))))
        .collect()
}

/// Turns `http://host:port` into `host:port`, mapping `localhost` to 127.0.0.1 so that binding
/// never depends on name resolution.
pub fn url_to_addr(raw: &str) -> Result<String, String> {
    let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL ({e})"))?;
    let host = url
        .host_str()
        .ok_or_else(|| format!("{raw:?} has no host"))?;
    let port = url.port().ok_or_else(|| format!("{raw:?} has no port"))?;
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    if host.contains(':') && !host.starts_with('[') {
        Ok(format!("[{host}]:{port}"))
    } else {
        Ok(format!("{host}:{port}"))
    }
}

/// Parses `--initial-cluster`: `name=url,name=url2,other=url3`.
pub fn parse_initial_cluster(s: &str) -> Result<Vec<InitialMember>, ConfigError> {
    let mut members: Vec<InitialMember> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, url) = item.split_once('=').ok_or_else(|| {
            ConfigError(format!(
                "--initial-cluster: {item:?} is not name=URL (e.g. infra0=http://10.0.0.1:2380)"
            ))
        })?;
        let url = parse_urls("--initial-cluster", url)?.remove(0);
        match members.iter_mut().find(|m| m.name == name) {
            Some(m) => m.peer_urls.push(url),
            None => members.push(InitialMember {
                name: name.to_string(),
                peer_urls: vec![url],
            }),
        }
    }
    if members.is_empty() {
        return Err(ConfigError("--initial-cluster is empty".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for m in &members {
        for u in &m.peer_urls {
            if !seen.insert(u.clone()) {
                return Err(ConfigError(format!(
                    "--initial-cluster: peer URL {u} is given for more than one member"
                )));
            }
        }
    }
    Ok(members)
}

fn parse_retention(
    mode: CompactionMode,
    s: &str,
) -> Result<(Option<Duration>, Option<u64>), ConfigError> {
    let s = s.trim();
    if s.is_empty() || s == "0" {
        return Ok((None, None));
    }
    match mode {
        CompactionMode::Revision => s.parse::<u64>().map(|n| (None, Some(n))).map_err(|_| {
            ConfigError(format!(
                "--auto-compaction-retention {s:?} must be a revision count in revision mode"
            ))
        }),
        CompactionMode::Periodic => {
            let d = parse_duration(s).ok_or_else(|| {
                ConfigError(format!(
                    "--auto-compaction-retention {s:?} is not a duration (e.g. 1h, 30m, 90s, or \
                     hours as a plain number)"
                ))
            })?;
            Ok((Some(d), None))
        }
    }
}

/// Parses a Go-style duration (`1h30m`, `90s`, `500ms`) or a plain number of hours, as etcd's
/// `--auto-compaction-retention` does.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if let Ok(hours) = s.parse::<f64>() {
        return (hours.is_finite() && hours >= 0.0)
            .then(|| Duration::from_secs_f64(hours * 3600.0));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(digits);
        let value: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let secs = match unit {
            "h" => value * 3600.0,
            "m" => value * 60.0,
            "s" => value,
            "ms" => value / 1000.0,
            _ => return None,
        };
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        total += Duration::from_secs_f64(secs);
        rest = tail;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Result<Config, ConfigError> {
        let mut v = vec!["quorum".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        let v = rewrite_ignored_flags(v);
        Flags::try_parse_from(v)
            .map_err(|e| ConfigError(e.to_string()))?
            .into_config()
    }

    #[test]
    fn defaults_are_a_single_member_on_loopback() {
        let c = flags(&[]).unwrap();
        assert_eq!(c.name, "default");
        assert_eq!(c.data_dir, PathBuf::from("default.quorum"));
        assert_eq!(c.listen_client, vec!["127.0.0.1:2379"]);
        assert_eq!(c.listen_peer, vec!["127.0.0.1:2380"]);
        assert_eq!(c.initial_cluster.len(), 1);
        assert_eq!(
            c.initial_cluster[0].peer_urls,
            vec!["http://127.0.0.1:2380"]
        );
        assert_eq!(c.quota_backend_bytes, DEFAULT_QUOTA_BYTES);
        assert_eq!(c.election_timeout, Duration::from_millis(1000));
    }

    #[test]
    fn client_and_peer_tls_need_their_files() {
        let https = ["--listen-client-urls=https://127.0.0.1:2379"];
        let e = flags(&https).unwrap_err().0;
        assert!(e.contains("--cert-file and --key-file"), "{e}");
        let c = flags(&[https[0], "--cert-file=c.pem", "--key-file=k.pem"]).unwrap();
        assert_eq!(c.listen_client_tls, vec!["127.0.0.1:2379"]);
        let tls = c.client_tls.expect("client TLS");
        assert_eq!(tls.cert_file, PathBuf::from("c.pem"));
        assert!(!tls.client_cert_auth);
        let e = flags(&["--client-cert-auth"]).unwrap_err().0;
        assert!(e.contains("--trusted-ca-file"), "{e}");
        let peer = "--listen-peer-urls=https://127.0.0.1:2380";
        let e = flags(&[peer]).unwrap_err().0;
        assert!(e.contains("--peer-trusted-ca-file"), "{e}");
        let e = flags(&[peer, "--peer-cert-file=p.pem", "--peer-key-file=pk.pem"])
            .unwrap_err()
            .0;
        assert!(e.contains("--peer-trusted-ca-file"), "{e}");
        let files = [
            "--peer-cert-file=p.pem",
            "--peer-key-file=pk.pem",
            "--peer-trusted-ca-file=ca.pem",
        ];
        let c = flags(&[
            peer,
            files[0],
            files[1],
            files[2],
            "--peer-client-cert-auth",
        ])
        .unwrap();
        assert_eq!(c.listen_peer_tls, vec!["127.0.0.1:2380"]);
        let tls = c.peer_tls.expect("peer TLS");
        assert_eq!(tls.trusted_ca_file, Some(PathBuf::from("ca.pem")));
        assert!(tls.client_cert_auth);
        // An https:// peer in --initial-cluster needs the files too (to connect to it).
        let e = flags(&["--initial-cluster=default=https://127.0.0.1:2380"])
            .unwrap_err()
            .0;
        assert!(e.contains("--peer-cert-file"), "{e}");
        // Files without an https:// peer URL yet are kept (a member may join with one).
        assert!(flags(&files).unwrap().peer_tls.is_some());
        let e = flags(&[files[0]]).unwrap_err().0;
        assert!(e.contains("together"), "{e}");
        let e = flags(&["--listen-metrics-urls=https://127.0.0.1:2381"])
            .unwrap_err()
            .0;
        assert!(e.contains("metrics"), "{e}");
        let c = flags(&[]).unwrap();
        assert!(c.client_tls.is_none() && c.peer_tls.is_none());
        // --auto-tls: a self-signed certificate in the data dir for https:// client URLs.
        let c = flags(&[https[0], "--auto-tls", "--data-dir=d"]).unwrap();
        assert_eq!(c.auto_tls, Some(1));
        let tls = c.client_tls.expect("client TLS");
        assert_eq!(tls.cert_file, PathBuf::from("d/fixtures/client/cert.pem"));
        assert_eq!(
            flags(&["--auto-tls"]).unwrap().auto_tls,
            None,
            "no https URL"
        );
        let c = flags(&[
            https[0],
            "--auto-tls",
            "--cert-file=c.pem",
            "--key-file=k.pem",
        ])
        .unwrap();
        assert_eq!(c.auto_tls, None, "given files win");
        let e = flags(&["--peer-auto-tls"]).unwrap_err().0;
        assert!(e.contains("--peer-trusted-ca-file"), "{e}");
        // unix sockets are refused, never served as TCP (unixs would lose its TLS).
        for url in ["unix://127.0.0.1:2379", "unixs://127.0.0.1:2379"] {
            let e = flags(&[&format!("--listen-client-urls={url}")])
                .unwrap_err()
                .0;
            assert!(e.contains("unix socket"), "{e}");
        }
    }

    /// Boolean etcd flags that default to on: absent, bare and `=false`.
    #[test]
    fn default_on_flags_turn_off_only_when_told() {
        type Get = fn(&Config) -> bool;
        let cases: [(&str, Get); 2] = [
            ("strict-reconfig-check", |c| c.strict_reconfig_check),
            ("enable-grpc-gateway", |c| c.enable_grpc_gateway),
        ];
        for (flag, get) in cases {
            assert!(get(&flags(&[]).unwrap()), "{flag} default");
            assert!(get(&flags(&[&format!("--{flag}")]).unwrap()), "--{flag}");
            assert!(
                !get(&flags(&[&format!("--{flag}=false")]).unwrap()),
                "--{flag}=false"
            );
        }
    }

    #[test]
    fn etcd_style_three_member_command_line_parses() {
        let c = flags(&[
            "--name=infra1",
            "--listen-client-urls",
            "http://127.0.0.1:12379",
            "--advertise-client-urls=http://127.0.0.1:12379",
            "--listen-peer-urls=http://127.0.0.1:12380",
            "--initial-advertise-peer-urls=http://127.0.0.1:12380",
            "--initial-cluster=infra1=http://127.0.0.1:12380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380",
            "--initial-cluster-token=tok",
            "--initial-cluster-state=new",
            "--logger=zap",
            "--enable-pprof",
            "--auto-compaction-retention=1h",
        ])
        .unwrap();
        assert_eq!(c.initial_cluster.len(), 3);
        assert_eq!(c.initial_cluster[2].name, "infra3");
        assert_eq!(c.auto_compaction_period, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn missing_self_in_initial_cluster_is_explained() {
        let err = flags(&["--name=a", "--initial-cluster=b=http://127.0.0.1:2380"]).unwrap_err();
        assert!(err.0.contains("no member named \"a\""), "{}", err.0);
    }

    #[test]
    fn bad_urls_and_timeouts_are_rejected_with_the_flag_named() {
        let err = flags(&["--listen-client-urls=127.0.0.1"]).unwrap_err();
        assert!(err.0.contains("--listen-client-urls"), "{}", err.0);
        let err = flags(&["--heartbeat-interval=100", "--election-timeout=200"]).unwrap_err();
        assert!(err.0.contains("--election-timeout"), "{}", err.0);
    }

    #[test]
    fn auth_token_flags_take_simple_and_jwt_tokens() {
        assert_eq!(flags(&[]).unwrap().auth_token_ttl, Duration::from_secs(300));
        let c = flags(&["--auth-token=simple", "--auth-token-ttl=30"]).unwrap();
        assert_eq!(c.auth_token_ttl, Duration::from_secs(30));
        assert!(c.jwt.is_none());
        let c = flags(&["--auth-token=jwt,pub-key=a.pub,priv-key=a,sign-method=RS256"]).unwrap();
        assert_eq!(c.jwt.expect("jwt").sign_method, "RS256");
        let err = flags(&["--auth-token=jwt,pub-key=a.pub"]).unwrap_err();
        assert!(err.0.contains("sign-method"), "{}", err.0);
        assert!(flags(&["--auth-token=magic"]).is_err());
        assert!(flags(&["--auth-token-ttl=0"]).is_err());
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("5x"), None);
    }
}
