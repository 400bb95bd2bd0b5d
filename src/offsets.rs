//! Committed consumer positions, stored as records of the internal compacted
//! topic `__consumer_offsets` (Kafka's design: a commit is an append; the
//! latest record per key wins). One `commit()` is one batch, so a group's
//! commit is atomic; it is fsynced before `commit` returns, whatever the log's
//! `Durability` (RELIABILITY.md §2.6).
//!
//! Record format (Kafka's offsets-topic schemas, KAFKA.md §9), big-endian:
//! key = version i16 (1), group (i16 length + UTF-8), topic (same), partition i32;
//! value = version i16 (3), offset i64, leader epoch i32 (−1), metadata (i16
//! length + UTF-8, empty), commit timestamp i64. A null value deletes the key.
//!
//! Thread-safety: the map is behind a `Mutex`; appends go through the
//! partition log and its group commit.

use crate::error::Result;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;

/// Name of the internal topic.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";
const KEY_VERSION: i16 = 1;
const VALUE_VERSION: i16 = 3;

/// (group, topic, partition).
pub(crate) type OffsetKey = (String, String, u32);

/// The latest committed offset per (group, topic, partition).
#[derive(Debug, Default)]
pub(crate) struct OffsetsStore {
    map: Mutex<HashMap<OffsetKey, u64>>,
    /// Positions clamped at open because they were past the recovered end.
    clamped: Mutex<Vec<(OffsetKey, u64, u64)>>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len().min(i16::MAX as usize) as i16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn get_str(b: &[u8], at: &mut usize) -> Option<String> {
    let len = i16::from_be_bytes(b.get(*at..*at + 2)?.try_into().ok()?);
    *at += 2;
    let len = usize::try_from(len).ok()?;
    let s = std::str::from_utf8(b.get(*at..*at + len)?).ok()?.to_owned();
    *at += len;
    Some(s)
}

pub(crate) fn encode_key(group: &str, topic: &str, partition: u32) -> Bytes {
    let mut out = Vec::with_capacity(10 + group.len() + topic.len());
    out.extend_from_slice(&KEY_VERSION.to_be_bytes());
    put_str(&mut out, group);
    put_str(&mut out, topic);
    out.extend_from_slice(&(partition as i32).to_be_bytes());
    Bytes::from(out)
}

pub(crate) fn encode_value(offset: u64, timestamp: i64) -> Bytes {
    let mut out = Vec::with_capacity(24);
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&(offset as i64).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    put_str(&mut out, "");
    out.extend_from_slice(&timestamp.to_be_bytes());
    Bytes::from(out)
}

pub(crate) fn decode_key(b: &[u8]) -> Option<OffsetKey> {
    let version = i16::from_be_bytes(b.get(0..2)?.try_into().ok()?);
    if version != 0 && version != 1 {
        return None;
    }
    let mut at = 2;
    let group = get_str(b, &mut at)?;
    let topic = get_str(b, &mut at)?;
    let partition = i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?);
    (at + 4 == b.len()).then_some(())?;
    Some((group, topic, u32::try_from(partition).ok()?))
}

pub(crate) fn decode_value(b: &[u8]) -> Option<u64> {
    let version = i16::from_be_bytes(b.get(0..2)?.try_into().ok()?);
    if !(0..=4).contains(&version) {
        return None;
    }
    let offset = i64::from_be_bytes(b.get(2..10)?.try_into().ok()?);
    u64::try_from(offset).ok()
}

impl OffsetsStore {
    pub(crate) fn get(&self, key: &OffsetKey) -> Option<u64> {
        self.map.lock().get(key).copied()
    }

    pub(crate) fn set(&self, key: OffsetKey, offset: Option<u64>) {
        let mut map = self.map.lock();
        match offset {
            Some(o) => {
                map.insert(key, o);
            }
            None => {
                map.remove(&key);
            }
        }
    }

    /// Every group with a committed offset, sorted.
    pub(crate) fn groups(&self) -> Vec<String> {
        let mut v: Vec<String> = self.map.lock().keys().map(|(g, _, _)| g.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Every (topic, partition) a group has committed on.
    pub(crate) fn partitions_of(&self, group: &str) -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = self
            .map
            .lock()
            .keys()
            .filter(|(g, _, _)| g == group)
            .map(|(_, t, p)| (t.clone(), *p))
            .collect();
        v.sort();
        v
    }

    /// Clamps a loaded position past the partition's end to the end, and
    /// remembers it (reported, never a silent jump back to the start).
    pub(crate) fn clamp(&self, key: &OffsetKey, end: u64) {
        let mut map = self.map.lock();
        if let Some(o) = map.get_mut(key) {
            if *o > end {
                self.clamped.lock().push((key.clone(), *o, end));
                *o = end;
            }
        }
    }

    /// Positions that were clamped at open: ((group, topic, partition), stored, end).
    pub(crate) fn clamped(&self) -> Vec<(OffsetKey, u64, u64)> {
        self.clamped.lock().clone()
    }

    pub(crate) fn keys(&self) -> Vec<OffsetKey> {
        self.map.lock().keys().cloned().collect()
    }
}

/// Replays the offsets partition into `store`. Damaged batches are skipped (the
/// group keeps its previous valid commit); returns how many were skipped.
pub(crate) fn replay(log: &crate::partition::PartitionLog, store: &OffsetsStore) -> Result<u64> {
    let mut next = log.start_offset();
    let end = log.end_offset();
    let mut skipped = 0;
    while next < end {
        match log.read(next, 4096) {
            Ok(records) if !records.is_empty() => {
                for r in &records {
                    if let Some(key) = r.key.as_deref().and_then(decode_key) {
                        store.set(key, r.value.as_deref().and_then(decode_value));
                    }
                }
                next = records.last().map_or(end, |r| r.offset + 1);
            }
            Ok(_) => break,
            Err(crate::Error::Corrupt { .. }) => {
                skipped += 1;
                next += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_value_round_trip() {
        let k = encode_key("billing", "orders", 7);
        assert_eq!(decode_key(&k), Some(("billing".into(), "orders".into(), 7)));
        assert_eq!(decode_value(&encode_value(42, 1_700_000_000_000)), Some(42));
        assert_eq!(decode_key(&k[..k.len() - 1]), None);
        assert_eq!(decode_key(&[0u8; 3]), None);
        assert_eq!(decode_value(&[0u8; 3]), None);
    }
}
