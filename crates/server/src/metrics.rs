//! Prometheus metrics of a member, named like etcd's where they mean the same thing, so that
//! existing etcd dashboards and alerts work. Each member has its own registry (no global state:
//! the simulator and tests run several members in one process).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry};

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
}

fn etcd_buckets() -> Vec<f64> {
    // 1 ms .. 8 s, doubling: etcd's disk and proposal histograms.
    (0..14).map(|i| 0.001 * f64::from(1u32 << i)).collect()
}

impl Metrics {
    /// Creates the metrics in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
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
        Ok(Metrics {
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
