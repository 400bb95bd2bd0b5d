//! Topics: Kafka's naming rules, and `tidelog.topics`, the file at the log root
//! that stores every topic's config.
//!
//! `tidelog.topics` layout, big-endian, replaced atomically:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `TLTP` |
//! | 4 | 2 | version = 1 |
//! | 6 | 4 | topic count N |
//! | 10 | … | N topics: name length u16, name (UTF-8), partitions u32, segment_bytes u64, segment_ms u64, index_interval_bytes u32, retention_ms i64 (−1 = none), retention_bytes i64 (−1 = none), cleanup u8 (0 delete, 1 compact, 2 both), delete_retention_ms u64, min_compaction_lag_ms u64, min_cleanable_dirty_ratio f64 bits u64, max_record_bytes u32 |
//! | end−4 | 4 | CRC-32 (IEEE) of all preceding bytes |

use crate::checkpoint::Reader;
use crate::config::{Cleanup, TopicConfig};
use crate::error::{CorruptReason, Error, Result};
use crate::limits::{TOPICS_MAX, TOPIC_NAME_BYTES_MAX};

/// File name at the log root.
pub(crate) const TOPICS_FILE: &str = "tidelog.topics";
const MAGIC: [u8; 4] = *b"TLTP";
const VERSION: u16 = 2;
/// Version 1 (before the compression setting) still decodes.
const VERSION_1: u16 = 1;

/// Checks a topic name a user may create (Kafka's rules, `__` reserved).
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let bad = |reason: &'static str| {
        Err(Error::InvalidTopicName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return bad("it is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not topic names");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    if name.starts_with("__") {
        return bad("names starting with '__' are reserved for internal topics");
    }
    Ok(())
}

/// Kafka rejects topics that differ only by '.' versus '_' (their metric names collide).
pub(crate) fn collides(a: &str, b: &str) -> bool {
    a != b && a.replace('.', "_") == b.replace('.', "_")
}

pub(crate) fn encode(topics: &[(&str, &TopicConfig)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&(topics.len() as u32).to_be_bytes());
    for (name, c) in topics {
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&c.partitions.to_be_bytes());
        out.extend_from_slice(&c.segment_bytes.to_be_bytes());
        out.extend_from_slice(&c.segment_ms.to_be_bytes());
        out.extend_from_slice(&c.index_interval_bytes.to_be_bytes());
        let opt = |v: Option<u64>| v.map_or(-1i64, |v| i64::try_from(v).unwrap_or(i64::MAX));
        out.extend_from_slice(&opt(c.retention_ms).to_be_bytes());
        out.extend_from_slice(&opt(c.retention_bytes).to_be_bytes());
        out.push(match c.cleanup {
            Cleanup::Delete => 0,
            Cleanup::Compact => 1,
            Cleanup::CompactDelete => 2,
        });
        out.extend_from_slice(&c.delete_retention_ms.to_be_bytes());
        out.extend_from_slice(&c.min_compaction_lag_ms.to_be_bytes());
        out.extend_from_slice(&c.min_cleanable_dirty_ratio.to_bits().to_be_bytes());
        out.extend_from_slice(&c.max_record_bytes.to_be_bytes());
        out.push(c.compression.codec());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<Vec<(String, TopicConfig)>, CorruptReason> {
    let bad = |detail: &str| CorruptReason::BadMetadata {
        detail: format!("topics file: {detail}"),
    };
    if bytes.len() < 14 {
        return Err(bad("too short"));
    }
    let payload = crate::checkpoint::crc_checked(bytes).ok_or_else(|| bad("CRC-32 mismatch"))?;
    let mut r = Reader::new(payload);
    if r.take(4) != Some(&MAGIC[..]) {
        return Err(bad("bad magic"));
    }
    let version = r.u16();
    if version != Some(VERSION) && version != Some(VERSION_1) {
        return Err(bad("unknown version"));
    }
    let with_compression = version == Some(VERSION);
    let count = r.u32().ok_or_else(|| bad("count"))? as usize;
    if count > TOPICS_MAX {
        return Err(bad("too many topics"));
    }
    let mut topics = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let len = r.u16().ok_or_else(|| bad("name length"))? as usize;
        let name = std::str::from_utf8(r.take(len).ok_or_else(|| bad("name"))?)
            .map_err(|_| bad("name is not UTF-8"))?
            .to_owned();
        let t = (|| {
            let partitions = r.u32()?;
            let segment_bytes = r.u64()?;
            let segment_ms = r.u64()?;
            let index_interval_bytes = r.u32()?;
            let retention_ms = u64::try_from(r.u64()? as i64).ok();
            let retention_bytes = u64::try_from(r.u64()? as i64).ok();
            let cleanup = match r.take(1)?.first()? {
                0 => Cleanup::Delete,
                1 => Cleanup::Compact,
                2 => Cleanup::CompactDelete,
                _ => return None,
            };
            Some(TopicConfig {
                partitions,
                segment_bytes,
                segment_ms,
                index_interval_bytes,
                retention_ms,
                retention_bytes,
                cleanup,
                delete_retention_ms: r.u64()?,
                min_compaction_lag_ms: r.u64()?,
                min_cleanable_dirty_ratio: f64::from_bits(r.u64()?),
                max_record_bytes: r.u32()?,
                compression: if with_compression {
                    crate::compression::Compression::from_codec(*r.take(1)?.first()?)?
                } else {
                    crate::compression::Compression::None
                },
            })
        })()
        .ok_or_else(|| bad("truncated topic entry"))?;
        t.validate().map_err(|e| bad(&format!("topic {name:?}: {e}")))?;
        topics.push((name, t));
    }
    if r.at != payload.len() {
        return Err(bad("trailing bytes"));
    }
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let a = TopicConfig::default()
            .partitions(3)
            .retention_ms(None)
            .cleanup(Cleanup::Compact);
        let b = TopicConfig::default()
            .retention_bytes(Some(77))
            .min_cleanable_dirty_ratio(0.25);
        let bytes = encode(&[("orders", &a), ("x.y_z-1", &b)]);
        let got = decode(&bytes).unwrap();
        assert_eq!(got, vec![("orders".to_string(), a), ("x.y_z-1".to_string(), b)]);
        for i in 0..bytes.len() {
            let mut d = bytes.clone();
            d[i] ^= 1;
            assert!(decode(&d).is_err(), "flip at {i}");
        }
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "cut at {n}");
        }
    }

    #[test]
    fn names() {
        for ok in ["a", "orders", "a-b.c_d", &"x".repeat(249)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "__consumer_offsets",
            "a/b",
            "a b",
            "é",
            &"x".repeat(250),
        ] {
            assert!(
                matches!(validate_name(bad), Err(Error::InvalidTopicName { .. })),
                "{bad}"
            );
        }
        assert!(collides("a.b", "a_b"));
        assert!(!collides("a.b", "a.b"));
    }
}
