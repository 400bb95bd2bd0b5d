//! Resynchronisation: where reading resumes after a damaged batch.
//!
//! A damaged batch's length field cannot be trusted, so recovery (and a reader
//! meeting damage in a segment that was not scanned) searches forward, byte by
//! byte, for the next position holding a valid batch. A search that takes the
//! first valid batch it meets can land on a batch stored *inside* a record's key,
//! value or header (a service relaying Kafka batches stores exactly that) and
//! return records nobody wrote, at offsets that belonged to the damaged batch,
//! while the real batches after it then look out of order and are lost. So a
//! candidate is accepted only when it is consistent with what follows it:
//!
//! 1. It starts at least a batch header past the damaged batch's start: the
//!    damaged batch spans at least its header.
//! 2. Its offsets are at or above the expected next offset, and inside the
//!    segment; in a log without offset gaps, whose damaged batch held the
//!    expected offset, strictly above it (that batch held at least one offset).
//! 3. From it, a walk over whole batches (each starting where the previous one
//!    ends, offsets rising, contiguous in a gapless log) reaches the end of the
//!    data: the end of the bytes, zeros (unwritten preallocated space), or
//!    bytes holding no valid batch at all (a torn or damaged tail). Where the walk breaks (further damage), the
//!    first valid batch after the break, whatever its offsets, must itself pass
//!    rules 1 and 2 from the break, and the walk goes on from it. A walk that
//!    ran inside another batch breaks inside it, and the real batch after it is
//!    then too close (rule 1) or has offsets below the walk's (rule 2).
//!
//! Known blind spot: a batch nested as the very last bytes of the damaged batch
//! (the value of the last header of its last record) whose offsets are exactly
//! the tail of the damaged batch's offsets continues seamlessly into the real
//! batches, and is taken for a real one.
//!
//! Cost: the search reads the damaged region byte by byte and the rest of the
//! segment batch by batch (each candidate's walk), only where damage was met.

use crate::batch::{self, BatchHeader, Frame};
use crate::error::Result;
use crate::limits::{BATCH_BYTES_MAX, BATCH_HEADER_BYTES};
use crate::sabotage::{self, EngineSabotage};

/// Breaks (further damaged regions) a candidate's walk follows before it
/// accepts the candidate on what it has seen. Bounds the work per candidate.
const WALK_BREAKS_MAX: u32 = 16;

/// Bytes a resync searches: a file read in chunks, or a reader's view.
pub(crate) trait Source {
    /// Length of the data.
    fn len(&self) -> u64;
    /// Up to `want` bytes at `position` (fewer only at the end of the data).
    fn get(&mut self, position: u64, want: usize) -> Result<&[u8]>;
}

/// A reader's view: bytes in memory.
pub(crate) struct SliceSource<'a>(pub(crate) &'a [u8]);

impl Source for SliceSource<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn get(&mut self, position: u64, want: usize) -> Result<&[u8]> {
        let start = usize::try_from(position).unwrap_or(usize::MAX).min(self.0.len());
        let end = start.saturating_add(want).min(self.0.len());
        Ok(self.0.get(start..end).unwrap_or(&[]))
    }
}

/// What is known about the damaged batch a search starts from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Damaged {
    /// Where the damaged batch starts.
    pub(crate) position: u64,
    /// The lowest offset a batch after it may hold.
    pub(crate) expected: u64,
    /// The damaged batch started exactly at `expected`, and offsets have no
    /// gaps: the next batch starts strictly above `expected`.
    pub(crate) exact: bool,
    /// Offsets have no gaps: batches are contiguous.
    pub(crate) gapless: bool,
}

/// The segment a search runs in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub(crate) base_offset: u64,
    /// The segment's offsets are below this (the next segment's base), if known.
    pub(crate) upper: Option<u64>,
}

/// The next position after `damaged.position` where valid batches resume, and
/// the header of the batch there; `None` if no consistent one exists.
pub(crate) fn resync(
    src: &mut dyn Source,
    bounds: Bounds,
    damaged: Damaged,
) -> Result<Option<(u64, BatchHeader)>> {
    if sabotage::active(EngineSabotage::TruncateAtDamage) {
        return Ok(None); // negative control: nothing after damage is reachable
    }
    let len = src.len();
    let mut position = damaged.position.saturating_add(BATCH_HEADER_BYTES as u64);
    while position.saturating_add(BATCH_HEADER_BYTES as u64) <= len {
        if let Some(header) = whole_batch(src, position)? {
            if fits_after(&header, bounds, damaged)
                && walk_reaches_end(src, position, header, bounds, damaged.gapless)?
            {
                return Ok(Some((position, header)));
            }
        }
        position += 1;
    }
    Ok(None)
}

/// Rule 2: the batch's offsets may follow the damage.
fn fits_after(header: &BatchHeader, bounds: Bounds, damaged: Damaged) -> bool {
    let base = header.base_offset;
    let last = header.last_offset();
    if base < 0 || last < base {
        return false;
    }
    let (base, last) = (base as u64, last as u64);
    let above = if damaged.exact && damaged.gapless {
        base > damaged.expected
    } else {
        base >= damaged.expected
    };
    above
        && bounds.upper.is_none_or(|u| last < u)
        && last.saturating_sub(bounds.base_offset) <= i32::MAX as u64
        && base >= bounds.base_offset
}

/// Rule 3: from the batch at `position`, whole batches lead to the end of the
/// data, across breaks only to batches that could follow real damage.
fn walk_reaches_end(
    src: &mut dyn Source,
    mut position: u64,
    mut header: BatchHeader,
    bounds: Bounds,
    gapless: bool,
) -> Result<bool> {
    let len = src.len();
    let mut breaks = 0;
    loop {
        position += header.size() as u64;
        let mut expected = header.next_offset() as u64;
        // Whole batches, each where the previous one ends.
        loop {
            if position >= len {
                return Ok(true);
            }
            let Some(next) = whole_batch(src, position)? else {
                break;
            };
            let follows = Damaged {
                position,
                expected,
                exact: true,
                gapless,
            };
            let contiguous = !gapless || next.base_offset == expected as i64;
            // `fits_after` is strict for a gapless log; here the batch directly
            // follows a valid one, so its base may equal `expected`.
            let fits = fits_after(
                &next,
                bounds,
                Damaged {
                    exact: false,
                    ..follows
                },
            );
            if !(contiguous && fits) {
                break;
            }
            position += next.size() as u64;
            expected = next.next_offset() as u64;
        }
        // The walk broke at `position`.
        if unwritten_from(src, position)? {
            return Ok(true);
        }
        breaks += 1;
        if breaks > WALK_BREAKS_MAX {
            return Ok(true);
        }
        let Some((next_position, next)) = next_valid(src, position + 1)? else {
            return Ok(true); // garbage to the end: nothing contradicts the walk
        };
        let damaged = Damaged {
            position,
            expected,
            exact: true,
            gapless,
        };
        let far_enough = next_position >= position.saturating_add(BATCH_HEADER_BYTES as u64);
        if !far_enough || !fits_after(&next, bounds, damaged) {
            return Ok(false);
        }
        position = next_position;
        header = next;
    }
}

/// Whether everything from `position` on is zeros: unwritten, preallocated
/// space of an active segment.
fn unwritten_from(src: &mut dyn Source, position: u64) -> Result<bool> {
    let len = src.len();
    let mut at = position;
    while at < len {
        let chunk = src.get(at, 64 * 1024)?;
        if chunk.is_empty() {
            break;
        }
        if chunk.iter().any(|b| *b != 0) {
            return Ok(false);
        }
        at += chunk.len() as u64;
    }
    Ok(true)
}

/// The first position at or after `from` holding a whole batch with a valid
/// CRC, whatever its offsets.
fn next_valid(src: &mut dyn Source, from: u64) -> Result<Option<(u64, BatchHeader)>> {
    let len = src.len();
    let mut position = from;
    while position.saturating_add(BATCH_HEADER_BYTES as u64) <= len {
        if let Some(header) = whole_batch(src, position)? {
            return Ok(Some((position, header)));
        }
        position += 1;
    }
    Ok(None)
}

/// The header of a whole, valid batch (structure and CRC) at `position`.
fn whole_batch(src: &mut dyn Source, position: u64) -> Result<Option<BatchHeader>> {
    let head = src.get(position, BATCH_HEADER_BYTES)?;
    let size = match batch::read_header(head) {
        Ok(Frame::Batch(h)) => h.size(),
        Ok(Frame::Incomplete { needed, .. }) if head.len() == BATCH_HEADER_BYTES => {
            match usize::try_from(needed) {
                Ok(n) if n <= BATCH_BYTES_MAX as usize => n,
                _ => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    let buf = src.get(position, size)?;
    if buf.len() < size {
        return Ok(None);
    }
    Ok(batch::validate_batch(buf).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use bytes::Bytes;

    const T0: i64 = 1_700_000_000_000;

    /// One batch of one record at `offset` holding `value`.
    fn batch_of(out: &mut Vec<u8>, offset: u64, value: Vec<u8>) -> u64 {
        let start = out.len();
        let record = Record::new(Bytes::from(value)).with_key("k");
        batch::encode_batch(out, offset, &[record], T0).expect("encoding a test batch");
        start as u64
    }

    /// A segment of batches at offsets 0..6, one record each; the batch at
    /// offset 1 holds, as its value, a valid batch at `nested_offset`. Then the
    /// batch at offset 1 is damaged (a bit of its key flipped). Returns the
    /// bytes, the damaged batch's position and the real next batch's position.
    fn segment_with_nested(nested_offset: u64) -> (Vec<u8>, u64, u64) {
        let mut nested = Vec::new();
        batch_of(&mut nested, nested_offset, b"NESTED".to_vec());
        let mut log = Vec::new();
        batch_of(&mut log, 0, b"v0".to_vec());
        let damaged = batch_of(&mut log, 1, nested);
        let next = log.len() as u64;
        for offset in 2..6 {
            batch_of(&mut log, offset, format!("v{offset}").into_bytes());
        }
        // The record's key sits just after the 61-byte header and 5 bytes of
        // record fields; any flip inside the CRC's coverage will do.
        let key = damaged as usize + 61 + 6;
        log[key] ^= 1;
        assert!(batch::validate_batch(&log[damaged as usize..]).is_err());
        (log, damaged, next)
    }

    fn search(log: &[u8], damaged: u64, gapless: bool) -> Option<u64> {
        let found = resync(
            &mut SliceSource(log),
            Bounds {
                base_offset: 0,
                upper: None,
            },
            Damaged {
                position: damaged,
                expected: 1,
                exact: true,
                gapless,
            },
        )
        .expect("a slice never fails");
        found.map(|(position, _)| position)
    }

    /// Whatever offsets the nested batch claims, the search resumes at the real
    /// next batch, in a gapless log and in one with gaps.
    #[test]
    fn a_batch_nested_in_a_damaged_value_is_never_taken() {
        for nested_offset in [0, 1, 2, 3, 5, 1000] {
            let (log, damaged, next) = segment_with_nested(nested_offset);
            for gapless in [true, false] {
                assert_eq!(
                    search(&log, damaged, gapless),
                    Some(next),
                    "nested batch at offset {nested_offset}, gapless {gapless}"
                );
            }
        }
    }

    /// The same log undamaged: the nested batch is never looked at, and a walk
    /// from the first batch reaches the end.
    #[test]
    fn an_undamaged_log_walks_to_its_end() {
        let mut log = Vec::new();
        let mut nested = Vec::new();
        batch_of(&mut nested, 2, b"NESTED".to_vec());
        for offset in 0..4 {
            batch_of(
                &mut log,
                offset,
                if offset == 1 { nested.clone() } else { vec![b'v'] },
            );
        }
        let first = batch::validate_batch(&log).expect("valid");
        assert!(walk_reaches_end(
            &mut SliceSource(&log),
            0,
            first,
            Bounds {
                base_offset: 0,
                upper: None
            },
            true
        )
        .expect("a slice never fails"));
    }

    /// Two damaged batches: the search from the first lands on the batch
    /// after it, across the second damage, and from the second on the batch
    /// after that.
    #[test]
    fn resumes_across_two_damaged_batches() {
        let mut log = Vec::new();
        let mut starts = Vec::new();
        for offset in 0..8 {
            starts.push(batch_of(&mut log, offset, format!("value-{offset}").into_bytes()));
        }
        for damaged in [2usize, 5] {
            let at = starts[damaged] as usize + 61 + 6;
            log[at] ^= 0x10;
        }
        let found = resync(
            &mut SliceSource(&log),
            Bounds {
                base_offset: 0,
                upper: None,
            },
            Damaged {
                position: starts[2],
                expected: 2,
                exact: true,
                gapless: true,
            },
        )
        .expect("a slice never fails");
        assert_eq!(found.map(|f| f.0), Some(starts[3]));
        let found = resync(
            &mut SliceSource(&log),
            Bounds {
                base_offset: 0,
                upper: None,
            },
            Damaged {
                position: starts[5],
                expected: 5,
                exact: true,
                gapless: true,
            },
        )
        .expect("a slice never fails");
        assert_eq!(found.map(|f| f.0), Some(starts[6]));
    }

    /// Damage in the last batch, followed by zeros (preallocated space): no
    /// batch resumes.
    #[test]
    fn nothing_resumes_after_a_damaged_last_batch() {
        let mut log = Vec::new();
        batch_of(&mut log, 0, b"v0".to_vec());
        let last = batch_of(&mut log, 1, b"v1".to_vec());
        log[last as usize + 61 + 6] ^= 1;
        log.extend_from_slice(&[0u8; 4096]);
        assert_eq!(search(&log, last, true), None);
    }
}
