//! Kafka's batch compression codecs (KAFKA.md §2: attributes bits 0-2). Only
//! the records section of a batch (after its 61-byte header) is compressed,
//! each codec in the framing Kafka's clients write:
//! - gzip (1): a gzip stream;
//! - snappy (2): snappy-java's "xerial" stream: an 8-byte magic
//!   `82 'S' 'N' 'A' 'P' 'P' 'Y' 00`, version and compatible version (i32
//!   big-endian, 1 and 1), then blocks of `[i32 BE length][raw snappy block]`;
//!   a stream without the magic is read as one raw block (as librdkafka does);
//! - lz4 (3): an LZ4 frame (magic `04 22 4D 18`);
//! - zstd (4): a zstd frame.
//!
//! Decompression is bounded: a batch that would expand past
//! `BATCH_BYTES_MAX` is refused as corrupt instead of exhausting memory.

use crate::error::CorruptReason;

/// A batch compression codec (Kafka's `compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compression {
    /// Records stored as they are (the default).
    #[default]
    None,
    /// gzip (codec 1); cargo feature `gzip`.
    Gzip,
    /// snappy (codec 2), in Kafka's xerial framing; cargo feature `snappy`.
    Snappy,
    /// LZ4 frames (codec 3); cargo feature `lz4`.
    Lz4,
    /// zstd (codec 4); cargo feature `zstd`.
    Zstd,
}

impl Compression {
    /// The codec bits of a batch's attributes.
    pub fn codec(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec of attribute bits `codec`, if it is one of Kafka's.
    pub fn from_codec(codec: u8) -> Option<Compression> {
        match codec {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Whether this build can read and write the codec (its cargo feature
    /// is on).
    pub fn is_available(self) -> bool {
        match self {
            Compression::None => true,
            Compression::Gzip => cfg!(feature = "gzip"),
            Compression::Snappy => cfg!(feature = "snappy"),
            Compression::Lz4 => cfg!(feature = "lz4"),
            Compression::Zstd => cfg!(feature = "zstd"),
        }
    }
}

/// snappy-java's stream magic.
#[cfg(feature = "snappy")]
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Uncompressed bytes per xerial block (snappy-java's default).
#[cfg(feature = "snappy")]
const XERIAL_BLOCK: usize = 32 * 1024;

fn failed(codec: u8, reason: impl std::fmt::Display) -> CorruptReason {
    CorruptReason::Decompression {
        codec,
        reason: reason.to_string(),
    }
}

/// Reads all of `reader`, refusing more than `limit` bytes.
#[cfg(any(feature = "gzip", feature = "lz4", feature = "zstd"))]
fn read_bounded(codec: u8, reader: impl std::io::Read, limit: usize) -> Result<Vec<u8>, CorruptReason> {
    use std::io::Read;
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| failed(codec, e))?;
    if out.len() > limit {
        return Err(failed(codec, format!("expands past {limit} bytes")));
    }
    Ok(out)
}

/// The records section `data` compressed with attribute bits `codec`,
/// decompressed (at most `limit` bytes).
///
/// # Errors
/// `UnsupportedCompression` for a codec this build does not have;
/// `Decompression` for bytes the codec rejects or that expand past `limit`.
pub(crate) fn decompress(codec: u8, data: &[u8], limit: usize) -> Result<Vec<u8>, CorruptReason> {
    let _ = limit;
    match Compression::from_codec(codec) {
        #[cfg(feature = "gzip")]
        Some(Compression::Gzip) => read_bounded(codec, flate2::read::MultiGzDecoder::new(data), limit),
        #[cfg(feature = "snappy")]
        Some(Compression::Snappy) => snappy_decompress(data, limit),
        #[cfg(feature = "lz4")]
        Some(Compression::Lz4) => read_bounded(codec, lz4_flex::frame::FrameDecoder::new(data), limit),
        #[cfg(feature = "zstd")]
        Some(Compression::Zstd) => {
            let decoder = zstd::stream::read::Decoder::new(data).map_err(|e| failed(codec, e))?;
            read_bounded(codec, decoder, limit)
        }
        Some(Compression::None) => Ok(data.to_vec()),
        _ => Err(CorruptReason::UnsupportedCompression { codec }),
    }
}

#[cfg(feature = "snappy")]
fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, CorruptReason> {
    let codec = Compression::Snappy.codec();
    let raw = |block: &[u8], out: &mut Vec<u8>| -> Result<(), CorruptReason> {
        let len = snap::raw::decompress_len(block).map_err(|e| failed(codec, e))?;
        if out.len().saturating_add(len) > limit {
            return Err(failed(codec, format!("expands past {limit} bytes")));
        }
        let at = out.len();
        out.resize(at + len, 0);
        let written = snap::raw::Decoder::new()
            .decompress(block, out.get_mut(at..).unwrap_or_default())
            .map_err(|e| failed(codec, e))?;
        out.truncate(at + written);
        Ok(())
    };
    let mut out = Vec::new();
    let Some(mut rest) = data.strip_prefix(&XERIAL_MAGIC[..]) else {
        raw(data, &mut out)?;
        return Ok(out);
    };
    // Version and compatible version.
    rest = rest
        .get(8..)
        .ok_or_else(|| failed(codec, "xerial header cut short"))?;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| failed(codec, "xerial block length cut short"))?;
        let len = usize::try_from(i32::from_be_bytes(*len))
            .map_err(|_| failed(codec, "negative xerial block length"))?;
        let (block, tail) = tail
            .split_at_checked(len)
            .ok_or_else(|| failed(codec, "xerial block cut short"))?;
        raw(block, &mut out)?;
        rest = tail;
    }
    Ok(out)
}

/// `data` compressed with `compression` in Kafka's framing.
///
/// # Errors
/// The codec's cargo feature is off, or the encoder failed (a message).
pub(crate) fn compress(compression: Compression, data: &[u8]) -> Result<Vec<u8>, String> {
    match compression {
        Compression::None => Ok(data.to_vec()),
        #[cfg(feature = "gzip")]
        Compression::Gzip => {
            use std::io::Write;
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).map_err(|e| e.to_string())?;
            encoder.finish().map_err(|e| e.to_string())
        }
        #[cfg(feature = "snappy")]
        Compression::Snappy => {
            let mut out = Vec::with_capacity(16 + data.len() / 2);
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK) {
                let block = encoder.compress_vec(chunk).map_err(|e| e.to_string())?;
                let len = i32::try_from(block.len()).map_err(|e| e.to_string())?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        #[cfg(feature = "lz4")]
        Compression::Lz4 => {
            use std::io::Write;
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(data).map_err(|e| e.to_string())?;
            encoder.finish().map_err(|e| e.to_string())
        }
        #[cfg(feature = "zstd")]
        Compression::Zstd => zstd::stream::encode_all(data, 3).map_err(|e| e.to_string()),
        #[allow(unreachable_patterns)]
        other => Err(format!(
            "{other:?} compression is not in this build (cargo feature {:?})",
            format!("{other:?}").to_lowercase()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_available_codec_round_trips_and_bounds_expansion() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            if !c.is_available() {
                assert!(compress(c, &data).is_err());
                assert!(matches!(
                    decompress(c.codec(), &data, usize::MAX),
                    Err(CorruptReason::UnsupportedCompression { .. })
                ));
                continue;
            }
            let packed = compress(c, &data).unwrap();
            assert_eq!(decompress(c.codec(), &packed, data.len()).unwrap(), data, "{c:?}");
            if c != Compression::None {
                assert!(packed.len() < data.len(), "{c:?} compresses");
                assert!(
                    matches!(
                        decompress(c.codec(), &packed, data.len() - 1),
                        Err(CorruptReason::Decompression { .. })
                    ),
                    "{c:?} refuses to expand past the limit"
                );
                let mut broken = packed.clone();
                broken.truncate(packed.len() / 2);
                assert!(
                    decompress(c.codec(), &broken, data.len()).is_err(),
                    "{c:?} cut short"
                );
            }
        }
        assert!(matches!(
            decompress(5, &data, usize::MAX),
            Err(CorruptReason::UnsupportedCompression { codec: 5 })
        ));
    }

    /// Damaged streams (every codec's valid stream with bytes flipped, cut,
    /// or replaced by noise) are errors or bounded output: never a panic,
    /// never more than the limit.
    #[test]
    fn damaged_streams_never_panic_or_pass_the_limit() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 7) as u8).collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for c in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            if !c.is_available() {
                continue;
            }
            let packed = compress(c, &data).unwrap();
            for round in 0..300 {
                let mut bad = packed.clone();
                match round % 3 {
                    0 => {
                        for _ in 0..1 + next() % 4 {
                            let at = (next() as usize) % bad.len();
                            bad[at] ^= 1 << (next() % 8);
                        }
                    }
                    1 => bad.truncate((next() as usize) % bad.len()),
                    _ => bad = (0..(next() % 200)).map(|_| next() as u8).collect(),
                }
                if let Ok(out) = decompress(c.codec(), &bad, 50_000) {
                    assert!(out.len() <= 50_000, "{c:?} round {round}");
                }
            }
        }
    }
}
