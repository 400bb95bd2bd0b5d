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
//! change; a batch whose records all go is dropped, its range simply absent.
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

/// The rewritten bytes of one segment, and whether anything changed.
pub(crate) fn rewrite_segment(seg: &Bytes, map: &OffsetMap, params: &CleanParams) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(seg.len());
    let mut changed = false;
    let mut records = Vec::new();
    for (at, h) in batches(seg) {
        let slice = seg.slice(at..at + h.size());
        records.clear();
        // Damaged or compressed batches are copied as they are.
        if h.compression() != 0 || h.is_control() || batch::decode_batch(&slice, 0, &mut records).is_err() {
            out.extend_from_slice(&slice);
            continue;
        }
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
        if survivors.len() == records.len() && new_horizon == horizon {
            out.extend_from_slice(&slice);
            continue;
        }
        changed = true;
        if survivors.is_empty() {
            continue;
        }
        if batch::encode_rewritten(&mut out, &h, &survivors, new_horizon).is_err() {
            out.extend_from_slice(&slice);
        }
    }
    changed.then_some(out)
}

/// Whether a segment holds a batch whose tombstone horizon has passed.
pub(crate) fn has_expired_horizon(seg: &Bytes, now_ms: i64) -> bool {
    batches(seg).any(|(_, h)| h.delete_horizon().is_some_and(|t| now_ms >= t))
}
