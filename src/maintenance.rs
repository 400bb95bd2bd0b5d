//! `run_maintenance`: retention by time and size, rolls of quiet segments past
//! `segment_ms`, and `delete_records`; the background thread at
//! `maintenance_interval` calls the same code. Compacted topics are cleaned
//! first (see `cleaner.rs`), then retention applies to `CompactDelete` ones.

use crate::cleaner::CleanParams;
use crate::config::Cleanup;
use crate::error::Result;
use crate::log::{with_place, Log};

/// What one maintenance pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Whole segments deleted by retention or `delete_records`.
    pub segments_deleted: u64,
    /// Segments rewritten by compaction.
    pub segments_compacted: u64,
    /// `.log` bytes freed.
    pub bytes_reclaimed: u64,
    /// Active segments rolled because they were older than `segment_ms`.
    pub segments_rolled: u64,
    /// Partitions that failed (fenced or I/O errors); the others were done.
    pub partitions_failed: u64,
}

/// What retention would delete from one partition now (see
/// [`Log::retention_preview`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPreview {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// Whole segments retention would delete.
    pub segments: u64,
    /// Their `.log` bytes.
    pub bytes: u64,
}

impl Log {
    /// What the next maintenance pass's retention would delete, partition by
    /// partition (those with something to delete), without deleting
    /// anything: a dry run of the time and size rules. Compaction and the
    /// roll of a quiet active segment are not previewed.
    ///
    /// # Errors
    /// `Closed`.
    pub fn retention_preview(&self) -> Result<Vec<RetentionPreview>> {
        self.check_open()?;
        let topics: Vec<_> = self.inner.topics.read().values().cloned().collect();
        let mut out = Vec::new();
        for t in topics {
            let (retention_ms, retention_bytes) = match t.config.cleanup {
                Cleanup::Delete | Cleanup::CompactDelete => (t.config.retention_ms, t.config.retention_bytes),
                Cleanup::Compact => (None, None),
            };
            for (index, p) in t.partitions.iter().enumerate() {
                let (segments, bytes) = p.log.retention_preview(retention_ms, retention_bytes);
                if segments > 0 {
                    out.push(RetentionPreview {
                        topic: t.name.to_string(),
                        partition: index as u32,
                        segments,
                        bytes,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Applies retention (time, size, and the start offsets moved by
    /// `delete_records`) and rolls segments past `segment_ms`, on every topic.
    ///
    /// # Errors
    /// `Closed`; a failing partition is counted in `partitions_failed` and the
    /// first such error is returned only if every partition failed.
    pub fn run_maintenance(&self) -> Result<MaintenanceReport> {
        self.check_open()?;
        let mut report = MaintenanceReport::default();
        let mut first_err = None;
        let mut attempted = 0u64;
        let topics: Vec<_> = self.inner.topics.read().values().cloned().collect();
        for t in topics {
            let (retention_ms, retention_bytes) = match t.config.cleanup {
                Cleanup::Delete | Cleanup::CompactDelete => (t.config.retention_ms, t.config.retention_bytes),
                // Compact-only topics lose segments only below their start offset.
                Cleanup::Compact => (None, None),
            };
            for (index, p) in t.partitions.iter().enumerate() {
                if p.log.is_fenced() {
                    continue;
                }
                attempted += 1;
                let compacted = match t.config.cleanup {
                    Cleanup::Compact | Cleanup::CompactDelete => {
                        let params = CleanParams {
                            now_ms: self.inner.config.clock.now_ms(),
                            delete_retention_ms: t.config.delete_retention_ms,
                            min_compaction_lag_ms: t.config.min_compaction_lag_ms,
                            min_cleanable_dirty_ratio: t.config.min_cleanable_dirty_ratio,
                            map_bytes_max: self.inner.config.cleaner_map_bytes,
                        };
                        let stop = &self.inner.stop;
                        p.log.compact(&params, &|| *stop.0.lock())
                    }
                    Cleanup::Delete => Ok((0, 0)),
                };
                let retained = compacted.and_then(|c| {
                    p.log
                        .apply_retention(retention_ms, retention_bytes)
                        .map(|r| (c, r))
                });
                match retained {
                    Ok(((segments, freed), (deleted, bytes, rolled))) => {
                        crate::observe::maintained(&t.name, index as u32, deleted, segments, bytes + freed);
                        report.segments_compacted += segments;
                        report.segments_deleted += deleted;
                        report.bytes_reclaimed += bytes + freed;
                        report.segments_rolled += u64::from(rolled);
                    }
                    Err(e) => {
                        report.partitions_failed += 1;
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        match first_err {
            Some(e) if report.partitions_failed == attempted => Err(e),
            _ => Ok(report),
        }
    }

    /// Moves a partition's start offset forward to `before_offset` (Kafka's
    /// DeleteRecords): records below it are no longer readable, whole segments
    /// below it are deleted, and the new start survives reopen. Below the start
    /// it changes nothing. Allowed on topics of every cleanup policy.
    ///
    /// # Errors
    /// `OffsetOutOfRange` past the end offset, `UnknownTopic`,
    /// `UnknownPartition`, `Closed`, `Io`.
    pub fn delete_records(&self, topic: &str, partition: u32, before_offset: u64) -> Result<()> {
        self.check_open()?;
        let t = self.topic(topic)?;
        let p = self.partition(&t, partition)?;
        if before_offset <= p.log.start_offset() {
            return Ok(());
        }
        p.log
            .delete_before(before_offset)
            .map(|_| ())
            .map_err(|e| with_place(e, topic, partition))
    }
}

/// Runs `work` on a thread named `name` every `every`, until the log's stop
/// flag is set (close, or the last drop) or the log is gone. The thread holds
/// only a weak reference between runs.
pub(crate) fn spawn_periodic(
    name: &str,
    weak: std::sync::Weak<crate::log::LogInner>,
    stop: std::sync::Arc<(parking_lot::Mutex<bool>, parking_lot::Condvar)>,
    every: std::time::Duration,
    work: fn(&Log),
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || loop {
            {
                let (lock, cv) = &*stop;
                let mut stopped = lock.lock();
                if !*stopped {
                    let _ = cv.wait_for(&mut stopped, every);
                }
                if *stopped {
                    return;
                }
            }
            let Some(inner) = weak.upgrade() else { return };
            work(&Log::background(inner));
        })
}

/// One background maintenance pass; failures are counted per partition in the
/// report, so there is nothing more to do with them here.
pub(crate) fn maintain(log: &Log) {
    let _ = log.run_maintenance();
}
