//! Key compaction (KAFKA.md §7): keep the latest record of each key at its
//! original offset; tombstones stay for `delete_retention_ms` after the
//! cleaning that first kept them (the batch's delete horizon), then go.
//!
//! A pass over one partition: (1) snapshot the sealed segments below the first
//! uncleanable offset (the active segment and segments younger than
//! `min_compaction_lag_ms` are never cleaned); (2) skip unless the dirty ratio
//! is over `min_cleanable_dirty_ratio` or a tombstone's horizon has passed;
//! (3) build the offset map (key → latest offset) over the dirty part, bounded
//! by `map_bytes_max` (records past the point where the map filled are kept);
//! (4) rewrite each segment's survivors into `<base>.log.cleaned` with its
//! indexes, then swap it in (see `PartitionLog::swap_cleaned`). Offsets never
//! change, and batches stay contiguous: a batch whose records all go is
//! dropped and its offset range joins the kept batch before it (whose
//! `lastOffsetDelta`, inside the CRC, grows to cover it), or, at the start of
//! a segment, an empty batch (Kafka's, 61 bytes, no records) holds it. So
//! every batch of a partition still starts one past the previous one's last
//! offset, and a damaged `baseOffset` (outside the CRC) is caught in compacted
//! partitions as in any other.
//!
//! Pure computation over `Bytes`; file work is the partition's.

use crate::batch::{self, BatchRecord, Frame};
use bytes::Bytes;
use std::collections::HashMap;

/// Settings of one cleaning pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CleanParams {
    pub(crate) now_ms: i64,
    pub(crate) delete_retention_ms: u64,
    pub(crate) min_compaction_lag_ms: u64,
    pub(crate) min_cleanable_dirty_ratio: f64,
    pub(crate) map_bytes_max: usize,
}

/// Bytes one offset-map entry costs besides its key (hash table slot, `Bytes`, offset).
const MAP_ENTRY_OVERHEAD: usize = 64;

/// The latest offset per key over `[from, map_end)`.
#[derive(Debug, Default)]
pub(crate) struct OffsetMap {
    latest: HashMap<Bytes, u64>,
    bytes: usize,
    /// Records at or past this offset were not mapped (kept as they are).
    pub(crate) map_end: u64,
}

/// Iterates the batches of a segment's bytes: (position, header).
pub(crate) fn batches(bytes: &Bytes) -> impl Iterator<Item = (usize, batch::BatchHeader)> + '_ {
    let mut position = 0usize;
    std::iter::from_fn(move || {
        let rest = bytes.get(position..)?;
        match batch::read_header(rest) {
            Ok(Frame::Batch(h)) => {
                let at = position;
                position += h.size();
                Some((at, h))
            }
            _ => None,
        }
    })
}

impl OffsetMap {
    /// Maps the keyed records with offset >= `from` of `segments` (in order),
    /// stopping when the map would pass `bytes_max`.
    pub(crate) fn build(segments: &[Bytes], from: u64, bytes_max: usize) -> OffsetMap {
        let mut map = OffsetMap::default();
        let mut records = Vec::new();
        for seg in segments {
            for (at, h) in batches(seg) {
                if h.next_offset() as u64 <= from {
                    continue;
                }
                records.clear();
                let slice = seg.slice(at..at + h.size());
                if batch::decode_batch(&slice, from, &mut records).is_err() {
                    // Damaged: leave it out of the map (its records are kept).
                    continue;
                }
                for r in &records {
                    let Some(key) = &r.key else { continue };
                    if !map.latest.contains_key(key) {
                        let cost = key.len() + MAP_ENTRY_OVERHEAD;
                        if map.bytes + cost > bytes_max {
                            map.map_end = r.offset;
                            return map;
                        }
                        map.bytes += cost;
                    }
                    map.latest.insert(key.clone(), r.offset);
                }
                map.map_end = h.next_offset() as u64;
            }
        }
        map
    }

    /// Kafka's keep rule for one record of a batch with `horizon`.
    fn keep(&self, r: &BatchRecord, horizon: Option<i64>, now_ms: i64) -> bool {
        if r.offset >= self.map_end {
            return true;
        }
        let Some(key) = &r.key else {
            return false; // keyless records are invalid in compacted topics
        };
        if self.latest.get(key).is_some_and(|latest| *latest > r.offset) {
            return false;
        }
        // The latest record of its key: a tombstone goes once its horizon passed.
        !(r.value.is_none() && horizon.is_some_and(|h| now_ms >= h))
    }
}

/// A rewritten segment.
#[derive(Debug)]
pub(crate) struct Rewritten {
    pub(crate) bytes: Vec<u8>,
    /// Offset ranges could not all be kept contiguous (a dropped batch after
    /// one that cannot be re-encoded: compressed, control or damaged), so the
    /// partition's offsets may now have gaps.
    pub(crate) gaps: bool,
}

/// A kept batch not yet written: a dropped batch after it widens its range.
struct Kept {
    header: batch::BatchHeader,
    /// The batch as it was.
    original: Bytes,
    /// It decodes (not damaged, compressed or a control batch).
    decodable: bool,
    /// Its surviving records and delete horizon, when compaction changed it.
    changed: Option<(Vec<BatchRecord>, Option<i64>)>,
    /// The last offset it must cover (past its own when batches after it went).
    last: i64,
}

impl Kept {
    /// Writes the batch, widened to `last`; false if it could not be widened
    /// (it is then written over its own range, leaving a gap after it).
    fn write(self, out: &mut Vec<u8>) -> bool {
        let widened = self.last > self.header.last_offset();
        if !widened && self.changed.is_none() {
            out.extend_from_slice(&self.original);
            return true;
        }
        let mut template = self.header;
        if widened {
            match i32::try_from(self.last.saturating_sub(self.header.base_offset)) {
                Ok(delta) => template.last_offset_delta = delta,
                Err(_) => return self.write_unwidened(out),
            }
        }
        let (records, horizon) = match &self.changed {
            Some((survivors, horizon)) => (survivors.clone(), *horizon),
            None if self.decodable => {
                let mut records = Vec::new();
                if batch::decode_batch(&self.original, 0, &mut records).is_err() {
                    return self.write_unwidened(out);
                }
                (records, self.header.delete_horizon())
            }
            None => return self.write_unwidened(out),
        };
        if batch::encode_rewritten(out, &template, &records, horizon).is_ok() {
            return true;
        }
        self.write_unwidened(out)
    }

    /// Writes the batch over its own range: its survivors re-encoded, or as
    /// it was when they cannot be. True if no gap follows it.
    fn write_unwidened(self, out: &mut Vec<u8>) -> bool {
        let encoded = match &self.changed {
            Some((survivors, horizon)) => {
                batch::encode_rewritten(out, &self.header, survivors, *horizon).is_ok()
            }
            None => false,
        };
        if !encoded {
            out.extend_from_slice(&self.original);
        }
        self.last <= self.header.last_offset()
    }
}

/// The rewritten bytes of one segment, if anything changed.
pub(crate) fn rewrite_segment(seg: &Bytes, map: &OffsetMap, params: &CleanParams) -> Option<Rewritten> {
    let mut out = Vec::with_capacity(seg.len());
    let mut changed = false;
    let mut contiguous = true;
    let mut records = Vec::new();
    let mut kept: Option<Kept> = None;
    // Dropped batches at the start of the segment, before any kept one: the
    // first one's header and the last offset of the run.
    let mut leading: Option<(batch::BatchHeader, i64)> = None;
    for (at, h) in batches(seg) {
        let slice = seg.slice(at..at + h.size());
        records.clear();
        // Damaged or control batches are kept as they are; compressed ones
        // are decompressed, and their survivors compressed again.
        let decodable = !h.is_control() && batch::decode_batch(&slice, 0, &mut records).is_ok();
        let mut next = Kept {
            header: h,
            original: slice.clone(),
            decodable,
            changed: None,
            last: h.last_offset(),
        };
        if decodable {
            let horizon = h.delete_horizon();
            let survivors: Vec<BatchRecord> = records
                .iter()
                .filter(|r| map.keep(r, horizon, params.now_ms))
                .cloned()
                .collect();
            let has_tombstone = survivors.iter().any(|r| r.value.is_none());
            let new_horizon = match (has_tombstone, horizon) {
                (true, None) => Some(
                    params
                        .now_ms
                        .saturating_add(i64::try_from(params.delete_retention_ms).unwrap_or(i64::MAX)),
                ),
                (true, Some(h)) => Some(h),
                (false, _) => None,
            };
            if survivors.len() != records.len() || new_horizon != horizon {
                changed = true;
                if survivors.is_empty() {
                    // Dropped: its range joins the kept batch before it.
                    match (&mut kept, &mut leading) {
                        (Some(k), _) => k.last = h.last_offset(),
                        (None, Some((_, last))) => *last = h.last_offset(),
                        (None, None) => leading = Some((h, h.last_offset())),
                    }
                    continue;
                }
                next.changed = Some((survivors, new_horizon));
            }
        }
        if let Some(k) = kept.take() {
            contiguous &= k.write(&mut out);
        }
        if let Some((first, last)) = leading.take() {
            contiguous &= write_empty(&mut out, first, last);
        }
        kept = Some(next);
    }
    if let Some(k) = kept.take() {
        contiguous &= k.write(&mut out);
    }
    if let Some((first, last)) = leading.take() {
        // Every batch went: one empty batch holds the segment's range.
        contiguous &= write_empty(&mut out, first, last);
    }
    changed.then_some(Rewritten {
        bytes: out,
        gaps: !contiguous,
    })
}

/// Kafka's empty batch (no records) holding the offsets of a run of dropped
/// batches, `first`'s base to `last`; false if it cannot be encoded.
fn write_empty(out: &mut Vec<u8>, first: batch::BatchHeader, last: i64) -> bool {
    let mut template = first;
    let Ok(delta) = i32::try_from(last.saturating_sub(first.base_offset)) else {
        return false;
    };
    template.last_offset_delta = delta;
    batch::encode_rewritten(out, &template, &[], None).is_ok()
}

/// Whether a segment holds a batch whose tombstone horizon has passed.
pub(crate) fn has_expired_horizon(seg: &Bytes, now_ms: i64) -> bool {
    batches(seg).any(|(_, h)| h.delete_horizon().is_some_and(|t| now_ms >= t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    const T0: i64 = 1_700_000_000_000;

    /// A segment of one-record batches at offsets `0..keys.len()`, keyed as given.
    fn segment(keys: &[&str]) -> Bytes {
        let mut out = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let record = Record::new(format!("v{i}")).with_key(key.to_string());
            batch::encode_batch(&mut out, i as u64, &[record], T0).expect("encoding a test batch");
        }
        Bytes::from(out)
    }

    /// A pass at `T0` that keeps nothing for lag or ratio reasons.
    fn params() -> CleanParams {
        CleanParams {
            now_ms: T0,
            delete_retention_ms: 0,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio: 0.0,
            map_bytes_max: 1 << 20,
        }
    }

    fn clean(keys: &[&str]) -> Rewritten {
        let seg = segment(keys);
        let map = OffsetMap::build(std::slice::from_ref(&seg), 0, 1 << 20);
        rewrite_segment(&seg, &map, &params()).expect("something was cleaned")
    }

    /// (base offset, last offset, records) of every batch.
    fn ranges(bytes: &[u8]) -> Vec<(i64, i64, i32)> {
        let bytes = Bytes::copy_from_slice(bytes);
        batches(&bytes)
            .map(|(_, h)| (h.base_offset, h.last_offset(), h.records_count))
            .collect()
    }

    /// Dropped batches in the middle and at the end join the kept batch
    /// before them; a leading run becomes an empty batch: every batch starts
    /// one past the previous one, from the segment's first offset to its last.
    #[test]
    fn dropped_batches_leave_no_offset_gap() {
        // Offsets 0..8: the first a, b and c (0, 1, 4) are overwritten later.
        let out = clean(&["a", "b", "d", "a", "c", "e", "b", "c", "f"]);
        assert!(!out.gaps);
        assert_eq!(
            ranges(&out.bytes),
            vec![
                (0, 1, 0),
                (2, 2, 1),
                (3, 4, 1),
                (5, 5, 1),
                (6, 6, 1),
                (7, 7, 1),
                (8, 8, 1)
            ]
        );
        let mut offsets = Vec::new();
        let bytes = Bytes::from(out.bytes);
        for (at, h) in batches(&bytes) {
            let mut records = Vec::new();
            batch::decode_batch(&bytes.slice(at..at + h.size()), 0, &mut records).expect("valid");
            offsets.extend(records.iter().map(|r| r.offset));
        }
        assert_eq!(offsets, vec![2, 3, 5, 6, 7, 8]);
    }

    /// A segment whose every record goes keeps one empty batch over its range.
    #[test]
    fn a_segment_with_nothing_left_keeps_an_empty_batch() {
        let seg = segment(&["a", "b"]);
        let later = segment(&["a", "b", "a", "b"]);
        let map = OffsetMap::build(&[later], 0, 1 << 20);
        let out = rewrite_segment(&seg, &map, &params()).expect("cleaned");
        assert!(!out.gaps);
        assert_eq!(ranges(&out.bytes), vec![(0, 1, 0)]);
    }
}
