//! Tunables of the WAL, with their limits.

use crate::metrics::WalMetrics;

/// Default target size of a WAL segment: 64 MiB (etcd's).
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 * 1024 * 1024;
/// Default maximum size of one record's payload: 64 MiB.
pub const DEFAULT_MAX_RECORD_SIZE: u64 = 64 * 1024 * 1024;
/// Default maximum bytes one `append` call may write: 256 MiB.
pub const DEFAULT_MAX_BATCH_SIZE: u64 = 256 * 1024 * 1024;
/// Hard ceiling on the record size: the frame length is a `u32`.
pub const MAX_RECORD_SIZE_LIMIT: u64 = (u32::MAX as u64) - 1;

/// Options of [`crate::LogStore`].
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// A new segment is started when the next write would take the current one past this size
    /// (a single write larger than this still goes into one segment). Segments are
    /// preallocated to this size.
    pub segment_size: u64,
    /// Maximum payload of one record; an entry larger than this is refused with
    /// [`crate::Error::TooLarge`]. At most [`MAX_RECORD_SIZE_LIMIT`].
    pub max_record_size: u64,
    /// Maximum bytes one `append` call may write (all its records together).
    pub max_batch_size: u64,
    /// Preallocate segments (`fallocate`) so appends do not allocate blocks.
    pub preallocate: bool,
    /// Where to count fsync latency and bytes written.
    pub metrics: Option<WalMetrics>,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
            preallocate: true,
            metrics: None,
        }
    }
}

impl WalOptions {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_record_size == 0 || self.max_record_size > MAX_RECORD_SIZE_LIMIT {
            return Err(format!(
                "max_record_size must be in 1..={MAX_RECORD_SIZE_LIMIT}, got {}",
                self.max_record_size
            ));
        }
        if self.segment_size < 4096 {
            return Err(format!(
                "segment_size must be at least 4096 bytes, got {}",
                self.segment_size
            ));
        }
        if self.max_batch_size < self.max_record_size {
            return Err("max_batch_size must be at least max_record_size".into());
        }
        Ok(())
    }
}
