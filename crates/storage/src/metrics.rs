//! Prometheus metrics of the WAL, under etcd's names so that existing dashboards work.

use prometheus::{Histogram, HistogramOpts, IntCounter, Registry};

/// The WAL's metrics. Create one per member and register it in the server's own
/// [`Registry`]; clones share the same underlying metrics.
#[derive(Clone, Debug)]
pub struct WalMetrics {
    /// Latency of each `fdatasync` of a WAL segment (etcd's
    /// `etcd_disk_wal_fsync_duration_seconds`, same buckets: 1 ms · 2^k, 14 buckets).
    pub fsync_duration: Histogram,
    /// Bytes written to WAL segments (etcd's `etcd_disk_wal_write_bytes_total`).
    pub write_bytes: IntCounter,
}

impl WalMetrics {
    /// Creates the metrics, not yet registered anywhere.
    pub fn new() -> Result<Self, prometheus::Error> {
        let buckets = prometheus::exponential_buckets(0.001, 2.0, 14)?;
        let fsync_duration = Histogram::with_opts(
            HistogramOpts::new(
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
            )
            .buckets(buckets),
        )?;
        let write_bytes = IntCounter::new(
            "etcd_disk_wal_write_bytes_total",
            "Total number of bytes written in WAL.",
        )?;
        Ok(WalMetrics {
            fsync_duration,
            write_bytes,
        })
    }

    /// Registers the metrics in `registry`.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.fsync_duration.clone()))?;
        registry.register(Box::new(self.write_bytes.clone()))?;
        Ok(())
    }
}
