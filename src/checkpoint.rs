//! `tidelog.checkpoint`: tidelog's own per-partition metadata file.
//!
//! It records what recovery may trust without scanning: the log start offset,
//! the sync point (a byte position up to which the log is known to be synced; it
//! may lag, never lead), every sealed segment with its length and whole-file
//! CRC-32C, and, after a clean close, the active segment's length and end offset.
//! Replaced atomically (temp file, fsync, rename, directory fsync).
//!
//! Layout, all integers big-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `TLCK` |
//! | 4 | 2 | version, 2 (version 1 lacks the sync window) |
//! | 6 | 2 | flags: bit 0 = written by a clean close; bit 1 = offsets may have gaps (compaction ran, or segments of unknown origin) |
//! | 8 | 8 | log start offset |
//! | 16 | 8 | base offset of the segment holding the sync point |
//! | 24 | 8 | sync position in that segment |
//! | 32 | 8 | active segment base offset (clean close only) |
//! | 40 | 8 | active segment length (clean close only) |
//! | 48 | 8 | log end offset (clean close only) |
//! | 56 | 4 | sealed segment count N |
//! | 60 | 20·N | per sealed segment: base offset u64, length u64, CRC-32C u32 |
//! | 60+20·N | 8 | sync window W (version 2): while the log was open, at most W bytes of its active segment were ever written but not fsynced (0: unbounded) |
//! | 68+20·N | 4 | CRC-32 (IEEE, crc32fast) of all preceding bytes |

use crate::error::{CorruptReason, Result};
use crate::limits::SEGMENTS_PER_PARTITION_MAX;

/// File name inside a partition directory.
pub(crate) const CHECKPOINT_FILE: &str = "tidelog.checkpoint";

const MAGIC: [u8; 4] = *b"TLCK";
const VERSION: u16 = 2;
const FLAG_CLEAN: u16 = 1;
const FLAG_GAPS: u16 = 2;
const HEADER_BYTES: usize = 60;
const SEALED_ENTRY_BYTES: usize = 20;

/// A sealed segment as recorded at seal time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SealedSegment {
    pub(crate) base_offset: u64,
    pub(crate) len: u64,
    pub(crate) crc: u32,
}

/// What a clean close recorded about the active segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanClose {
    pub(crate) active_base_offset: u64,
    pub(crate) active_len: u64,
    pub(crate) end_offset: u64,
}

/// The decoded checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Checkpoint {
    pub(crate) log_start_offset: u64,
    pub(crate) sync_base_offset: u64,
    pub(crate) sync_position: u64,
    pub(crate) clean: Option<CleanClose>,
    pub(crate) sealed: Vec<SealedSegment>,
    /// Offsets may have gaps: compaction has run, or the segments were found
    /// without a checkpoint. Without it every batch must start exactly one
    /// past the previous one, so a damaged base offset (outside the CRC) is
    /// caught instead of shifting records to wrong offsets.
    pub(crate) gaps: bool,
    /// The sync window in force while the log was open (0: none): bytes of
    /// the active segment more than this before the end of its data were synced.
    pub(crate) sync_window: u64,
}

impl Checkpoint {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + self.sealed.len() * SEALED_ENTRY_BYTES + 4);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        let mut flags = if self.clean.is_some() { FLAG_CLEAN } else { 0 };
        if self.gaps {
            flags |= FLAG_GAPS;
        }
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&self.log_start_offset.to_be_bytes());
        out.extend_from_slice(&self.sync_base_offset.to_be_bytes());
        out.extend_from_slice(&self.sync_position.to_be_bytes());
        let clean = self.clean.unwrap_or(CleanClose {
            active_base_offset: 0,
            active_len: 0,
            end_offset: 0,
        });
        out.extend_from_slice(&clean.active_base_offset.to_be_bytes());
        out.extend_from_slice(&clean.active_len.to_be_bytes());
        out.extend_from_slice(&clean.end_offset.to_be_bytes());
        let count = u32::try_from(self.sealed.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for s in &self.sealed {
            out.extend_from_slice(&s.base_offset.to_be_bytes());
            out.extend_from_slice(&s.len.to_be_bytes());
            out.extend_from_slice(&s.crc.to_be_bytes());
        }
        out.extend_from_slice(&self.sync_window.to_be_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes a checkpoint; any damage is a `BadMetadata` reason.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Checkpoint, CorruptReason> {
        let bad = |detail: &str| CorruptReason::BadMetadata {
            detail: format!("checkpoint: {detail}"),
        };
        if bytes.len() < HEADER_BYTES + 4 {
            return Err(bad("shorter than its header"));
        }
        let (payload, stored) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_be_bytes(stored.try_into().map_err(|_| bad("crc"))?);
        if crc32fast::hash(payload) != stored {
            return Err(bad("CRC-32 mismatch"));
        }
        let mut r = Reader {
            bytes: payload,
            at: 0,
        };
        if r.take(4) != Some(&MAGIC[..]) {
            return Err(bad("bad magic"));
        }
        let version = r.u16().ok_or_else(|| bad("version"))?;
        if version != 1 && version != VERSION {
            return Err(bad(&format!("unknown version {version}")));
        }
        let tail = if version >= 2 { 8 } else { 0 };
        let flags = r.u16().ok_or_else(|| bad("flags"))?;
        let field = |v: Option<u64>| v.ok_or_else(|| bad("truncated header"));
        let log_start_offset = field(r.u64())?;
        let sync_base_offset = field(r.u64())?;
        let sync_position = field(r.u64())?;
        let active_base_offset = field(r.u64())?;
        let active_len = field(r.u64())?;
        let end_offset = field(r.u64())?;
        let count = r.u32().ok_or_else(|| bad("count"))? as usize;
        if count > SEGMENTS_PER_PARTITION_MAX
            || payload.len() != HEADER_BYTES + count * SEALED_ENTRY_BYTES + tail
        {
            return Err(bad("sealed segment count does not match the file length"));
        }
        let mut sealed = Vec::with_capacity(count);
        for _ in 0..count {
            let base_offset = field(r.u64())?;
            let len = field(r.u64())?;
            let crc = r.u32().ok_or_else(|| bad("truncated entry"))?;
            if sealed
                .last()
                .is_some_and(|l: &SealedSegment| l.base_offset >= base_offset)
            {
                return Err(bad("sealed segments out of order"));
            }
            sealed.push(SealedSegment {
                base_offset,
                len,
                crc,
            });
        }
        let sync_window = if tail > 0 { field(r.u64())? } else { 0 };
        let clean = (flags & FLAG_CLEAN != 0).then_some(CleanClose {
            active_base_offset,
            active_len,
            end_offset,
        });
        Ok(Checkpoint {
            log_start_offset,
            sync_base_offset,
            sync_position,
            clean,
            sealed,
            gaps: flags & FLAG_GAPS != 0,
            sync_window,
        })
    }

    /// The sealed record for `base_offset`, if listed.
    pub(crate) fn sealed(&self, base_offset: u64) -> Option<&SealedSegment> {
        self.sealed
            .binary_search_by_key(&base_offset, |s| s.base_offset)
            .ok()
            .and_then(|i| self.sealed.get(i))
    }
}

/// A bounds-checked big-endian reader over bytes from disk; every read is an
/// `Option` (shared by the metadata decoders: this file and `tidelog.topics`).
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pub(crate) at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let c = Checkpoint {
            log_start_offset: 7,
            sync_base_offset: 100,
            sync_position: 4096,
            clean: Some(CleanClose {
                active_base_offset: 100,
                active_len: 5000,
                end_offset: 180,
            }),
            sealed: vec![
                SealedSegment {
                    base_offset: 0,
                    len: 10,
                    crc: 1,
                },
                SealedSegment {
                    base_offset: 50,
                    len: 20,
                    crc: 2,
                },
            ],
            gaps: true,
            sync_window: 4 << 20,
        };
        let bytes = c.encode();
        assert_eq!(Checkpoint::decode(&bytes), Ok(c.clone()));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(Checkpoint::decode(&b).is_err(), "flip at {i} accepted");
        }
        for n in 0..bytes.len() {
            assert!(Checkpoint::decode(&bytes[..n]).is_err(), "cut at {n} accepted");
        }
        assert!(Checkpoint::decode(&[0u8; 200]).is_err());
    }
}
