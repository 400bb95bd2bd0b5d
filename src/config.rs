//! Configuration: [`LogConfig`] for a whole log directory, [`TopicConfig`] per
//! topic (Kafka's names, meanings and defaults, KAFKA.md §10), and the small
//! enums [`Durability`], [`Cleanup`] and [`Offset`].

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::limits::{BATCH_BYTES_MAX, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};
use std::sync::Arc;
use std::time::Duration;

/// When an acknowledged record is on stable storage (RELIABILITY.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledged once written to the kernel: survives a process crash, not a
    /// power cut. The default.
    #[default]
    Os,
    /// As `Os`, and a background fsync of every partition every interval.
    Interval(Duration),
    /// Acknowledged only after an fsync covering the record; concurrent sends
    /// share one fsync (group commit).
    Always,
}

/// What happens to old data of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cleanup {
    /// Delete whole segments by time and size (Kafka's `delete`).
    #[default]
    Delete,
    /// Keep the latest record per key (Kafka's `compact`).
    Compact,
    /// Both (Kafka's `compact,delete`).
    CompactDelete,
}

/// A position in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// The log start offset.
    Earliest,
    /// The log end offset.
    Latest,
    /// An explicit offset.
    At(u64),
    /// The first offset whose timestamp is at or after this one (ms).
    Timestamp(i64),
}

/// Configuration of one topic. Builder methods take and return `Self`.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub(crate) partitions: u32,
    pub(crate) segment_bytes: u64,
    pub(crate) segment_ms: u64,
    pub(crate) index_interval_bytes: u32,
    pub(crate) retention_ms: Option<u64>,
    pub(crate) retention_bytes: Option<u64>,
    pub(crate) cleanup: Cleanup,
    pub(crate) delete_retention_ms: u64,
    pub(crate) min_compaction_lag_ms: u64,
    pub(crate) min_cleanable_dirty_ratio: f64,
    pub(crate) max_record_bytes: u32,
    pub(crate) compression: crate::compression::Compression,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            partitions: 1,
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            cleanup: Cleanup::Delete,
            delete_retention_ms: 24 * 3600 * 1000,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio: 0.5,
            max_record_bytes: 1024 * 1024,
            compression: crate::compression::Compression::None,
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, value: $ty) -> Self {
                self.$name = value;
                self
            }
        )*
    };
}

impl TopicConfig {
    setters! {
        /// Number of partitions (default 1; at least 1).
        partitions: u32,
        /// Roll the active segment before it passes this many bytes (default 1 GiB;
        /// at least 512). A batch bigger than a segment goes alone into its own.
        segment_bytes: u64,
        /// Roll the active segment when its records span more than this many ms
        /// (default 7 days; at least 1).
        segment_ms: u64,
        /// Bytes between offset-index entries (default 4096; at least 1).
        index_interval_bytes: u32,
        /// Delete segments whose newest record is older than this (default 7 days;
        /// `None` keeps them forever).
        retention_ms: Option<u64>,
        /// Delete old segments while the partition is bigger than this (default `None`).
        retention_bytes: Option<u64>,
        /// Delete, compact, or both (default `Delete`).
        cleanup: Cleanup,
        /// How long tombstones stay after the cleaning that first saw them (default 1 day).
        delete_retention_ms: u64,
        /// Records younger than this are not compacted (default 0).
        min_compaction_lag_ms: u64,
        /// Compact when the dirty part is at least this share of the log (default 0.5; 0..=1).
        min_cleanable_dirty_ratio: f64,
        /// Largest encoded batch one send may produce, header included (default 1 MiB; at least 1).
        max_record_bytes: u32,
        /// How sends compress their batches (Kafka's `compression.type`; default
        /// `Compression::None`). Batches of any codec this build has are read
        /// whatever the setting; `max_record_bytes` applies to the compressed batch.
        compression: crate::compression::Compression,
    }

    /// A topic may be created or altered to compress only with a codec this
    /// build has (a stored topic with another still opens: its sends fail).
    pub(crate) fn check_compression_available(&self) -> Result<()> {
        if self.compression.is_available() {
            return Ok(());
        }
        Err(Error::InvalidConfig {
            field: "compression",
            reason: format!(
                "{:?} is not in this build: enable the cargo feature {:?}",
                self.compression,
                format!("{:?}", self.compression).to_lowercase()
            ),
        })
    }

    /// Validates every field, naming the first bad one.
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: String| Err(Error::InvalidConfig { field, reason });
        if self.partitions == 0 {
            return bad("partitions", "must be at least 1".into());
        }
        if self.partitions > crate::limits::PARTITIONS_PER_TOPIC_MAX {
            return bad(
                "partitions",
                format!(
                    "{} is over the limit of {}",
                    self.partitions,
                    crate::limits::PARTITIONS_PER_TOPIC_MAX
                ),
            );
        }
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return bad(
                "segment_bytes",
                format!(
                    "{} is outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}",
                    self.segment_bytes
                ),
            );
        }
        if self.segment_ms == 0 {
            return bad("segment_ms", "must be at least 1".into());
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes", "must be at least 1".into());
        }
        if self.max_record_bytes == 0 || self.max_record_bytes > BATCH_BYTES_MAX {
            return bad(
                "max_record_bytes",
                format!("{} is outside 1..={BATCH_BYTES_MAX}", self.max_record_bytes),
            );
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return bad(
                "min_cleanable_dirty_ratio",
                format!("{} is outside 0..=1", self.min_cleanable_dirty_ratio),
            );
        }
        Ok(())
    }

    /// The partition count.
    pub fn partition_count(&self) -> u32 {
        self.partitions
    }
    /// The cleanup policy.
    pub fn cleanup_policy(&self) -> Cleanup {
        self.cleanup
    }
    /// The largest encoded batch a send may produce.
    pub fn max_record_size(&self) -> u32 {
        self.max_record_bytes
    }
    /// Whether records must have keys (compacted topics).
    pub(crate) fn is_compacted(&self) -> bool {
        matches!(self.cleanup, Cleanup::Compact | Cleanup::CompactDelete)
    }

    pub(crate) fn partition_config(&self) -> crate::partition::PartitionConfig {
        crate::partition::PartitionConfig {
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            index_interval_bytes: self.index_interval_bytes,
            ..crate::partition::PartitionConfig::default()
        }
    }
}

/// Configuration of a [`crate::Log`]. Builder methods take and return `Self`.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub(crate) default_topic: TopicConfig,
    pub(crate) durability: Durability,
    pub(crate) maintenance_interval: Option<Duration>,
    pub(crate) auto_create_topics: bool,
    pub(crate) auto_offset_reset: Offset,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cleaner_map_bytes: usize,
    pub(crate) max_open_partitions: Option<usize>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            default_topic: TopicConfig::default(),
            durability: Durability::Os,
            maintenance_interval: Some(Duration::from_secs(300)),
            auto_create_topics: false,
            auto_offset_reset: Offset::Earliest,
            clock: Arc::new(SystemClock),
            cleaner_map_bytes: 64 * 1024 * 1024,
            max_open_partitions: None,
        }
    }
}

impl LogConfig {
    /// The config of auto-created topics (default `TopicConfig::default()`).
    #[must_use]
    pub fn default_topic(mut self, config: TopicConfig) -> Self {
        self.default_topic = config;
        self
    }
    /// When sends are acknowledged (default `Durability::Os`).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }
    /// How often background maintenance runs; `None`: never (call `run_maintenance`).
    #[must_use]
    pub fn maintenance_interval(mut self, interval: Option<Duration>) -> Self {
        self.maintenance_interval = interval;
        self
    }
    /// Whether producing to an unknown topic creates it (default `false`).
    #[must_use]
    pub fn auto_create_topics(mut self, enabled: bool) -> Self {
        self.auto_create_topics = enabled;
        self
    }
    /// Where a group without a committed position starts (default `Earliest`;
    /// only `Earliest` and `Latest` are valid).
    #[must_use]
    pub fn auto_offset_reset(mut self, offset: Offset) -> Self {
        self.auto_offset_reset = offset;
        self
    }
    /// The clock for timestamps and time-based rolls (default the system clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Memory bound of the compaction key map per pass, in bytes (default 64 MiB;
    /// at least 4 KiB). More keys than fit mean more passes, never more memory.
    #[must_use]
    pub fn cleaner_map_bytes(mut self, bytes: usize) -> Self {
        self.cleaner_map_bytes = bytes;
        self
    }

    /// Most partitions whose files are open at once (default: a quarter of
    /// the process's file-descriptor limit, between 16 and 16,384). Beyond
    /// it, the least recently used partitions are parked: their files are
    /// closed and unmapped, their state kept in memory, and the next use
    /// opens them again (no data is read or written to do either). An open
    /// partition holds one descriptor, for its active segment's log.
    #[must_use]
    pub fn max_open_partitions(mut self, partitions: usize) -> Self {
        self.max_open_partitions = Some(partitions);
        self
    }

    /// The open-partition budget: the configured one, or the default.
    pub(crate) fn open_partitions_budget(&self) -> usize {
        self.max_open_partitions
            .unwrap_or_else(|| (crate::mmap::fd_limit() / 4).clamp(16, 16_384))
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_open_partitions == Some(0) {
            return Err(Error::InvalidConfig {
                field: "max_open_partitions",
                reason: "must be at least 1".into(),
            });
        }
        if self.cleaner_map_bytes < 4096 {
            return Err(Error::InvalidConfig {
                field: "cleaner_map_bytes",
                reason: format!("{} is below 4096", self.cleaner_map_bytes),
            });
        }
        self.default_topic.validate()?;
        if !matches!(self.auto_offset_reset, Offset::Earliest | Offset::Latest) {
            return Err(Error::InvalidConfig {
                field: "auto_offset_reset",
                reason: format!("{:?} is not Earliest or Latest", self.auto_offset_reset),
            });
        }
        if let Durability::Interval(d) = self.durability {
            if d.is_zero() {
                return Err(Error::InvalidConfig {
                    field: "durability",
                    reason: "Interval must be longer than zero".into(),
                });
            }
        }
        Ok(())
    }
}
