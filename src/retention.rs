//! Retention (KAFKA.md §6): which prefix of a partition's segments may go, by
//! time (`retention_ms`: a segment goes when its newest record is older) and by
//! size (`retention_bytes`: oldest segments go while the partition stays at or
//! above the limit without them). Only a prefix is deleted: the walk stops at
//! the first segment that must stay. Pure functions; the partition applies them.

/// What retention needs to know of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentFacts {
    /// Offset after the segment's last record (the next segment's base).
    pub(crate) next_offset: u64,
    /// `.log` bytes.
    pub(crate) size: u64,
    /// Largest record timestamp, if the segment holds any batch.
    pub(crate) max_timestamp: Option<i64>,
}

/// How many of the oldest segments retention deletes.
pub(crate) fn segments_to_delete(
    segments: &[SegmentFacts],
    now_ms: i64,
    retention_ms: Option<u64>,
    retention_bytes: Option<u64>,
) -> usize {
    let mut by_size = 0;
    if let Some(limit) = retention_bytes {
        let total: u64 = segments.iter().map(|s| s.size).sum();
        if total >= limit {
            let mut diff = total - limit;
            for s in segments {
                if s.size == 0 || diff < s.size {
                    break;
                }
                diff -= s.size;
                by_size += 1;
            }
        }
    }
    let mut by_time = 0;
    if let Some(limit) = retention_ms {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        for s in segments {
            match s.max_timestamp {
                Some(ts) if now_ms.saturating_sub(ts) > limit => by_time += 1,
                _ => break,
            }
        }
    }
    by_size.max(by_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(next_offset: u64, size: u64, ts: i64) -> SegmentFacts {
        SegmentFacts {
            next_offset,
            size,
            max_timestamp: Some(ts),
        }
    }

    #[test]
    fn time_and_size_rules() {
        let segs = [seg(10, 100, 1000), seg(20, 100, 2000), seg(30, 100, 9000)];
        // Time: strictly older than the limit, prefix only.
        assert_eq!(segments_to_delete(&segs, 10_000, Some(7_999), None), 2);
        assert_eq!(segments_to_delete(&segs, 10_000, Some(8_999), None), 1);
        assert_eq!(
            segments_to_delete(&segs, 10_000, Some(9_000), None),
            0,
            "exactly the limit stays"
        );
        assert_eq!(segments_to_delete(&segs, 10_000, None, None), 0);
        // A future timestamp keeps its segment and everything after it.
        let future = [seg(10, 100, 1000), seg(20, 100, 99_999), seg(30, 100, 1000)];
        assert_eq!(segments_to_delete(&future, 10_000, Some(1), None), 1);
        // Size: stays at or above the limit.
        assert_eq!(segments_to_delete(&segs, 0, None, Some(150)), 1);
        assert_eq!(segments_to_delete(&segs, 0, None, Some(100)), 2);
        assert_eq!(segments_to_delete(&segs, 0, None, Some(0)), 3);
        assert_eq!(segments_to_delete(&segs, 0, None, Some(1000)), 0);
        // An empty segment is never deleted by size.
        let empty = [SegmentFacts {
            next_offset: 0,
            size: 0,
            max_timestamp: None,
        }];
        assert_eq!(segments_to_delete(&empty, 0, Some(0), Some(0)), 0);
    }
}
