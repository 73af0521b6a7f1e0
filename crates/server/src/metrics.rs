//! Prometheus metrics of a member, named like etcd's where they mean the same thing, so that
//! existing etcd dashboards and alerts work. Each member has its own registry (no global state:
//! the simulator and tests run several members in one process).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, IntGaugeVec, Opts, Registry};

/// The member's metrics and the registry they are exported from.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// `etcd_server_has_leader`: 1 if a leader is known.
    pub has_leader: IntGauge,
    /// `etcd_server_is_leader`: 1 if this member leads.
    pub is_leader: IntGauge,
    /// `etcd_server_leader_changes_seen_total`.
    pub leader_changes: IntCounter,
    /// `etcd_server_proposals_applied_total` (as a gauge of the applied index).
    pub applied_index: IntGauge,
    /// `quorum_server_proposal_duration_seconds`: propose → applied, seen by the client.
    pub proposal_duration: Histogram,
    /// `quorum_network_peer_dropped_messages_total`: messages dropped because a peer's queue
    /// was full or the peer unknown.
    pub peer_dropped: IntCounter,
    /// `etcd_network_snapshot_send_success`: snapshots streamed to followers.
    pub snapshot_sent: IntCounter,
    /// `etcd_network_snapshot_receive_success`: snapshots received from a leader.
    pub snapshot_received: IntCounter,
    /// Gauges refreshed when `/metrics` is scraped ([`Scrape`]), etcd's names.
    scrape: ScrapeGauges,
}

/// The values [`Metrics::encode_with`] sets before encoding: state that is cheaper to read
/// at scrape time than to track on every request.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// This member's id.
    pub member_id: u64,
    /// Raft term.
    pub term: u64,
    /// Last index of the Raft log (etcd's `proposals_committed_total` counts committed
    /// proposals; the log's end is the closest cheap measure).
    pub raft_index: u64,
    /// Requests waiting for their proposal to apply.
    pub proposals_pending: u64,
    /// True if this member is a learner.
    pub is_learner: bool,
    /// Store file size, bytes in use, quota.
    pub db_size: u64,
    /// Bytes the store's pages use.
    pub db_size_in_use: u64,
    /// `--quota-backend-bytes`.
    pub quota_bytes: u64,
    /// Current and compaction revision.
    pub current_revision: i64,
    /// Compaction revision.
    pub compact_revision: i64,
    /// Watchers, and of those the ones catching up (etcd's slow watchers).
    pub watchers: u64,
    /// Unsynced watchers.
    pub slow_watchers: u64,
}

#[derive(Clone)]
struct ScrapeGauges {
    server_id: IntGaugeVec,
    server_version: IntGaugeVec,
    cluster_version: IntGaugeVec,
    term: IntGauge,
    committed: IntGauge,
    pending: IntGauge,
    is_learner: IntGauge,
    db_size: IntGauge,
    db_size_in_use: IntGauge,
    quota: IntGauge,
    current_rev: IntGauge,
    compact_rev: IntGauge,
    watchers: IntGauge,
    slow_watchers: IntGauge,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    let g = IntGauge::with_opts(Opts::new(name, help))?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn labelled(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
) -> Result<IntGaugeVec, prometheus::Error> {
    let g = IntGaugeVec::new(Opts::new(name, help), &[label])?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

impl ScrapeGauges {
    fn new(r: &Registry) -> Result<Self, prometheus::Error> {
        Ok(ScrapeGauges {
            server_id: labelled(r, "etcd_server_id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", "server_id")?,
            server_version: labelled(r, "etcd_server_version", "Which version is running. 1 for 'server_version' label with current version.", "server_version")?,
            cluster_version: labelled(r, "etcd_cluster_version", "Which version is running. 1 for 'cluster_version' label with current cluster version", "cluster_version")?,
            term: gauge(r, "etcd_server_term", "The current Raft term.")?,
            committed: gauge(r, "etcd_server_proposals_committed_total", "The total number of consensus proposals committed.")?,
            pending: gauge(r, "etcd_server_proposals_pending", "The current number of pending proposals to commit.")?,
            is_learner: gauge(r, "etcd_server_is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise.")?,
            db_size: gauge(r, "etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.")?,
            db_size_in_use: gauge(r, "etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.")?,
            quota: gauge(r, "etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.")?,
            current_rev: gauge(r, "etcd_debugging_mvcc_current_revision", "The current revision of store.")?,
            compact_rev: gauge(r, "etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in store.")?,
            watchers: gauge(r, "etcd_debugging_mvcc_watcher_total", "Total number of watchers.")?,
            slow_watchers: gauge(r, "etcd_debugging_mvcc_slow_watcher_total", "Total number of unsynced slow watchers.")?,
        })
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn etcd_buckets() -> Vec<f64> {
    // 1 ms .. 8 s, doubling: etcd's disk and proposal histograms.
    (0..14).map(|i| 0.001 * f64::from(1u32 << i)).collect()
}

impl Metrics {
    /// Creates the metrics in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        // process_resident_memory_bytes, process_cpu_seconds_total, open fds...: what etcd
        // exports from its Go client library (`etcdctl check datascale` reads the RSS one).
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let has_leader = IntGauge::with_opts(Opts::new(
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
        ))?;
        let is_leader = IntGauge::with_opts(Opts::new(
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        ))?;
        let leader_changes = IntCounter::with_opts(Opts::new(
            "etcd_server_leader_changes_seen_total",
            "The number of leader changes seen.",
        ))?;
        let applied_index = IntGauge::with_opts(Opts::new(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
        ))?;
        let proposal_duration = Histogram::with_opts(
            HistogramOpts::new(
                "quorum_server_proposal_duration_seconds",
                "Latency from proposing a request to its local apply.",
            )
            .buckets(etcd_buckets()),
        )?;
        let peer_dropped = IntCounter::with_opts(Opts::new(
            "quorum_network_peer_dropped_messages_total",
            "Raft messages dropped because a peer's queue was full or it was unreachable.",
        ))?;
        let snapshot_sent = IntCounter::with_opts(Opts::new(
            "etcd_network_snapshot_send_success",
            "Total number of successful snapshot sends.",
        ))?;
        let snapshot_received = IntCounter::with_opts(Opts::new(
            "etcd_network_snapshot_receive_success",
            "Total number of successful snapshot receives.",
        ))?;
        registry.register(Box::new(snapshot_sent.clone()))?;
        registry.register(Box::new(snapshot_received.clone()))?;
        registry.register(Box::new(has_leader.clone()))?;
        registry.register(Box::new(is_leader.clone()))?;
        registry.register(Box::new(leader_changes.clone()))?;
        registry.register(Box::new(applied_index.clone()))?;
        registry.register(Box::new(proposal_duration.clone()))?;
        registry.register(Box::new(peer_dropped.clone()))?;
        let scrape = ScrapeGauges::new(&registry)?;
        Ok(Metrics {
            scrape,
            registry,
            has_leader,
            is_leader,
            leader_changes,
            applied_index,
            proposal_duration,
            peer_dropped,
            snapshot_sent,
            snapshot_received,
        })
    }

    /// Sets the scrape-time gauges from `s`, then encodes every metric.
    pub fn encode_with(&self, s: &Scrape) -> String {
        let g = &self.scrape;
        g.server_id.reset();
        g.server_id
            .with_label_values(&[format!("{:x}", s.member_id).as_str()])
            .set(1);
        g.server_version
            .with_label_values(&[crate::config::ETCD_API_VERSION])
            .set(1);
        g.cluster_version
            .with_label_values(&[crate::config::ETCD_CLUSTER_VERSION])
            .set(1);
        g.term.set(clamp(s.term));
        g.committed.set(clamp(s.raft_index));
        g.pending.set(clamp(s.proposals_pending));
        g.is_learner.set(i64::from(s.is_learner));
        g.db_size.set(clamp(s.db_size));
        g.db_size_in_use.set(clamp(s.db_size_in_use));
        g.quota.set(clamp(s.quota_bytes));
        g.current_rev.set(s.current_revision);
        g.compact_rev.set(s.compact_revision);
        g.watchers.set(clamp(s.watchers));
        g.slow_watchers.set(clamp(s.slow_watchers));
        self.encode()
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        let enc = prometheus::TextEncoder::new();
        if enc.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
