//! Observability hooks: `tracing` events and `metrics` measurements, each
//! behind its cargo feature. Without the features every function here is an
//! empty inline function, and no clock is read for a latency.
//!
//! Events (target `tidelog`): `log opened` (info), `partition recovered`
//! (info, warn when bytes were cut or quarantined), `segment rolled`
//! (debug), `retention deleted segments` / `compaction rewrote segments`
//! (info), `fsync failed: partition fenced` (error), `group rebalanced`
//! (info). Metrics: counters `tidelog_appended_records_total` and
//! `tidelog_appended_bytes_total` (label `topic`),
//! `tidelog_segments_deleted_total`, `tidelog_segments_compacted_total`,
//! `tidelog_fsync_failures_total`; histograms `tidelog_append_seconds` and
//! `tidelog_fsync_seconds`; gauges `tidelog_open_partitions` and
//! `tidelog_consumer_lag` (labels `group`, `topic`, `partition`; set when
//! `Log::group_lag` computes it).

#![cfg_attr(not(any(feature = "tracing", feature = "metrics")), allow(unused_variables))]

use std::path::Path;

/// A start time for a latency, taken only when metrics are compiled in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Started(#[cfg(feature = "metrics")] std::time::Instant);

#[inline(always)]
pub(crate) fn start() -> Started {
    Started(
        #[cfg(feature = "metrics")]
        std::time::Instant::now(),
    )
}

/// A send appended `records` records in `bytes` bytes of batches to `topic`.
#[inline(always)]
pub(crate) fn appended(topic: &str, records: u64, bytes: u64, started: Started) {
    #[cfg(feature = "metrics")]
    {
        let topic = topic.to_owned();
        metrics::counter!("tidelog_appended_records_total", "topic" => topic.clone()).increment(records);
        metrics::counter!("tidelog_appended_bytes_total", "topic" => topic).increment(bytes);
        metrics::histogram!("tidelog_append_seconds").record(started.0.elapsed().as_secs_f64());
    }
}

/// An fsync of a partition's active segment succeeded.
#[inline(always)]
pub(crate) fn fsynced(started: Started) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("tidelog_fsync_seconds").record(started.0.elapsed().as_secs_f64());
}

/// An fsync failed: the partition is fenced.
#[cold]
pub(crate) fn fsync_failed(dir: &Path, error: &dyn std::fmt::Display) {
    #[cfg(feature = "tracing")]
    tracing::error!(target: "tidelog", dir = %dir.display(), %error, "fsync failed: partition fenced");
    #[cfg(feature = "metrics")]
    metrics::counter!("tidelog_fsync_failures_total").increment(1);
}

/// A partition was recovered at open (or at its first use after a clean close).
pub(crate) fn recovered(dir: &Path, report: &crate::partition::RecoveryReport) {
    #[cfg(feature = "tracing")]
    {
        let damaged =
            report.truncated_bytes > 0 || !report.quarantined.is_empty() || report.checkpoint_damaged;
        if damaged {
            tracing::warn!(
                target: "tidelog",
                dir = %dir.display(),
                clean = report.clean,
                scanned_segments = report.scanned_segments,
                truncated_bytes = report.truncated_bytes,
                quarantined = report.quarantined.len(),
                synced_bytes_lost = report.synced_bytes_lost,
                checkpoint_damaged = report.checkpoint_damaged,
                indexes_rebuilt = report.indexes_rebuilt,
                "partition recovered"
            );
        } else {
            tracing::info!(
                target: "tidelog",
                dir = %dir.display(),
                clean = report.clean,
                segments = report.segments,
                scanned_segments = report.scanned_segments,
                indexes_rebuilt = report.indexes_rebuilt,
                "partition recovered"
            );
        }
    }
}

/// `Log::open` finished.
pub(crate) fn opened(dir: &Path, topics: usize, partitions: usize, open_partitions: usize, millis: u128) {
    #[cfg(feature = "tracing")]
    tracing::info!(target: "tidelog", dir = %dir.display(), topics, partitions, open_partitions, millis, "log opened");
    open_gauge(open_partitions);
}

/// Partitions with open files now.
#[inline(always)]
pub(crate) fn open_gauge(open_partitions: usize) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("tidelog_open_partitions").set(open_partitions as f64);
}

/// The active segment was sealed and a new one started at `base_offset`.
pub(crate) fn rolled(dir: &Path, base_offset: u64) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "tidelog", dir = %dir.display(), base_offset, "segment rolled");
}

/// A maintenance pass deleted or rewrote segments of a partition.
pub(crate) fn maintained(topic: &str, partition: u32, deleted: u64, compacted: u64, bytes: u64) {
    #[cfg(feature = "tracing")]
    {
        if deleted > 0 {
            tracing::info!(target: "tidelog", topic, partition, segments = deleted, "retention deleted segments");
        }
        if compacted > 0 {
            tracing::info!(target: "tidelog", topic, partition, segments = compacted, bytes_reclaimed = bytes, "compaction rewrote segments");
        }
    }
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("tidelog_segments_deleted_total").increment(deleted);
        metrics::counter!("tidelog_segments_compacted_total").increment(compacted);
    }
}

/// `Log::group_lag` computed a partition's lag.
#[inline(always)]
pub(crate) fn lag(group: &str, topic: &str, partition: u32, lag: u64) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(
        "tidelog_consumer_lag",
        "group" => group.to_owned(),
        "topic" => topic.to_owned(),
        "partition" => partition.to_string()
    )
    .set(lag as f64);
}

/// A consumer group moved to a new generation.
pub(crate) fn rebalanced(group: &str, generation: u64, members: usize) {
    #[cfg(feature = "tracing")]
    tracing::info!(target: "tidelog", group, generation, members, "group rebalanced");
}
