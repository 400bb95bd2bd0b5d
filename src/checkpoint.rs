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
//! | 4 | 2 | version, 3 (version 1 lacks the sync window; versions 1 and 2 lack the sealed segments' max timestamps) |
//! | 6 | 2 | flags: bit 0 = written by a clean close; bit 1 = offsets may have gaps (compaction ran, or segments of unknown origin) |
//! | 8 | 8 | log start offset |
//! | 16 | 8 | base offset of the segment holding the sync point |
//! | 24 | 8 | sync position in that segment |
//! | 32 | 8 | active segment base offset (clean close only) |
//! | 40 | 8 | active segment length (clean close only) |
//! | 48 | 8 | log end offset (clean close only) |
//! | 56 | 4 | sealed segment count N |
//! | 60 | 28·N | per sealed segment: base offset u64, length u64, CRC-32C u32, max timestamp i64 (the largest record timestamp, which the time index's last entry must hold; `i64::MIN` when none is recorded). Versions 1 and 2: 20 bytes, without the max timestamp |
//! | 60+28·N | 8 | sync window W (version 2 on): while the log was open, at most W bytes of its active segment were ever written but not fsynced (0: unbounded) |
//! | 68+28·N | 4 | CRC-32 (IEEE, crc32fast) of all preceding bytes |
//!
//! A reader accepts versions 1 to 3 and writes version 3.

use crate::error::{CorruptReason, Result};
use crate::limits::SEGMENTS_PER_PARTITION_MAX;

/// File name inside a partition directory.
pub(crate) const CHECKPOINT_FILE: &str = "tidelog.checkpoint";

const MAGIC: [u8; 4] = *b"TLCK";
const VERSION: u16 = 3;
const FLAG_CLEAN: u16 = 1;
const FLAG_GAPS: u16 = 2;
const HEADER_BYTES: usize = 60;
const SEALED_ENTRY_BYTES: usize = 28;
/// A sealed entry of versions 1 and 2 (no max timestamp).
const SEALED_ENTRY_BYTES_V2: usize = 20;
/// The max timestamp field's value when none is recorded (below any timestamp
/// Kafka allows, which is at least -1).
const NO_MAX_TIMESTAMP: i64 = i64::MIN;

/// A sealed segment as recorded at seal time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SealedSegment {
    pub(crate) base_offset: u64,
    pub(crate) len: u64,
    pub(crate) crc: u32,
    /// The largest record timestamp, when recorded: the sealed time index's
    /// last entry must hold it, or the index lost its tail.
    pub(crate) max_timestamp: Option<i64>,
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
            out.extend_from_slice(&s.max_timestamp.unwrap_or(NO_MAX_TIMESTAMP).to_be_bytes());
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
        let payload = crc_checked(bytes).ok_or_else(|| bad("CRC-32 mismatch"))?;
        let mut r = Reader::new(payload);
        if r.take(4) != Some(&MAGIC[..]) {
            return Err(bad("bad magic"));
        }
        let version = r.u16().ok_or_else(|| bad("version"))?;
        if !(1..=VERSION).contains(&version) {
            return Err(bad(&format!("unknown version {version}")));
        }
        let tail = if version >= 2 { 8 } else { 0 };
        let entry_bytes = if version >= 3 {
            SEALED_ENTRY_BYTES
        } else {
            SEALED_ENTRY_BYTES_V2
        };
        let flags = r.u16().ok_or_else(|| bad("flags"))?;
        let field = |v: Option<u64>| v.ok_or_else(|| bad("truncated header"));
        let log_start_offset = field(r.u64())?;
        let sync_base_offset = field(r.u64())?;
        let sync_position = field(r.u64())?;
        let active_base_offset = field(r.u64())?;
        let active_len = field(r.u64())?;
        let end_offset = field(r.u64())?;
        let count = r.u32().ok_or_else(|| bad("count"))? as usize;
        if count > SEGMENTS_PER_PARTITION_MAX || payload.len() != HEADER_BYTES + count * entry_bytes + tail {
            return Err(bad("sealed segment count does not match the file length"));
        }
        let mut sealed = Vec::with_capacity(count);
        for _ in 0..count {
            let base_offset = field(r.u64())?;
            let len = field(r.u64())?;
            let crc = r.u32().ok_or_else(|| bad("truncated entry"))?;
            let max_timestamp = if version >= 3 {
                let raw = r.i64().ok_or_else(|| bad("truncated entry"))?;
                (raw != NO_MAX_TIMESTAMP).then_some(raw)
            } else {
                None
            };
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
                max_timestamp,
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

/// File name of the log start offset's second copy, inside a partition
/// directory.
pub(crate) const START_FILE: &str = "tidelog.start";
const START_MAGIC: [u8; 4] = *b"TLST";
const START_VERSION: u16 = 1;
/// magic, version, log start offset, CRC-32.
const START_BYTES: usize = 4 + 2 + 8 + 4;

/// `tidelog.start`: a second copy of the log start offset, kept only while the
/// start lies inside the first segment (moved there by `delete_records`), when
/// nothing but the checkpoint says which records are gone. If the checkpoint is
/// damaged, recovery takes the start from here, so removed records never come
/// back. Layout (big-endian): magic `TLST` (4), version 1 (2), log start offset
/// u64 (8), CRC-32 (IEEE) of the preceding 14 bytes (4). Replaced atomically.
pub(crate) fn encode_start(log_start_offset: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(START_BYTES);
    out.extend_from_slice(&START_MAGIC);
    out.extend_from_slice(&START_VERSION.to_be_bytes());
    out.extend_from_slice(&log_start_offset.to_be_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes `tidelog.start`; any damage is a `BadMetadata` reason.
pub(crate) fn decode_start(bytes: &[u8]) -> Result<u64, CorruptReason> {
    let bad = |detail: &str| CorruptReason::BadMetadata {
        detail: format!("start offset copy: {detail}"),
    };
    if bytes.len() != START_BYTES {
        return Err(bad("wrong length"));
    }
    let payload = crc_checked(bytes).ok_or_else(|| bad("CRC-32 mismatch"))?;
    let mut r = Reader::new(payload);
    if r.take(4) != Some(&START_MAGIC[..]) {
        return Err(bad("bad magic"));
    }
    if r.u16() != Some(START_VERSION) {
        return Err(bad("unknown version"));
    }
    r.u64().ok_or_else(|| bad("truncated"))
}

/// The bytes before a trailing CRC-32 (IEEE, big-endian) of them, if it
/// matches (shared by the metadata decoders: this file and `tidelog.topics`).
pub(crate) fn crc_checked(bytes: &[u8]) -> Option<&[u8]> {
    let (payload, stored) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    let stored = u32::from_be_bytes(stored.try_into().ok()?);
    (crc32fast::hash(payload) == stored).then_some(payload)
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
    pub(crate) fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
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
                    max_timestamp: Some(1_700_000_000_000),
                },
                SealedSegment {
                    base_offset: 50,
                    len: 20,
                    crc: 2,
                    max_timestamp: None,
                },
                SealedSegment {
                    base_offset: 60,
                    len: 20,
                    crc: 3,
                    max_timestamp: Some(-1),
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

    /// A version-2 checkpoint, byte by byte as version 2 wrote it (sealed
    /// entries of 20 bytes, no max timestamps), still reads.
    #[test]
    fn version_2_fixture_reads() {
        let mut v2 = Vec::new();
        v2.extend_from_slice(b"TLCK");
        v2.extend_from_slice(&2u16.to_be_bytes());
        v2.extend_from_slice(&FLAG_GAPS.to_be_bytes());
        for field in [7u64, 100, 4096, 0, 0, 0] {
            v2.extend_from_slice(&field.to_be_bytes());
        }
        v2.extend_from_slice(&1u32.to_be_bytes());
        v2.extend_from_slice(&50u64.to_be_bytes());
        v2.extend_from_slice(&20u64.to_be_bytes());
        v2.extend_from_slice(&0xABCD_u32.to_be_bytes());
        v2.extend_from_slice(&(4u64 << 20).to_be_bytes());
        let crc = crc32fast::hash(&v2);
        v2.extend_from_slice(&crc.to_be_bytes());
        let decoded = Checkpoint::decode(&v2).expect("a version-2 checkpoint reads");
        assert_eq!(
            decoded,
            Checkpoint {
                log_start_offset: 7,
                sync_base_offset: 100,
                sync_position: 4096,
                clean: None,
                sealed: vec![SealedSegment {
                    base_offset: 50,
                    len: 20,
                    crc: 0xABCD,
                    max_timestamp: None,
                }],
                gaps: true,
                sync_window: 4 << 20,
            }
        );
        // Written back, it is version 3.
        assert_eq!(decoded.encode().get(4..6), Some(&3u16.to_be_bytes()[..]));
    }

    #[test]
    fn start_copy_round_trip_and_damage() {
        let bytes = encode_start(12_345);
        assert_eq!(decode_start(&bytes), Ok(12_345));
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(decode_start(&b).is_err(), "flip at {i} bit {bit} accepted");
            }
        }
        for n in 0..bytes.len() {
            assert!(decode_start(&bytes[..n]).is_err(), "cut at {n} accepted");
        }
        assert!(decode_start(&[0u8; START_BYTES]).is_err());
    }
}
