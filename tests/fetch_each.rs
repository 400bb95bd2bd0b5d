//! `Log::fetch_each`, the borrowed, allocation-free read: for any starting
//! offset and count it visits exactly the records `Log::fetch` returns (keys,
//! values, null keys, tombstones, headers, timestamps), continues where it
//! stopped, respects `Always`'s durable-only visibility, and visits nothing
//! from a damaged batch.

use proptest::prelude::*;
use std::path::Path;
use tidelog::{ConsumedRecord, Durability, Error, Log, LogConfig, Record, RecordRef, TopicConfig};

/// A record as both reads see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    offset: u64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn from_owned(r: &ConsumedRecord) -> Seen {
    Seen {
        offset: r.offset(),
        timestamp: r.timestamp(),
        key: r.key().map(|k| k.to_vec()),
        value: r.value().map(|v| v.to_vec()),
        headers: r
            .headers()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map(|v| v.to_vec())))
            .collect(),
    }
}

fn from_ref(r: RecordRef<'_>) -> Seen {
    Seen {
        offset: r.offset(),
        timestamp: r.timestamp(),
        key: r.key().map(<[u8]>::to_vec),
        value: r.value().map(<[u8]>::to_vec),
        headers: r
            .headers()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(<[u8]>::to_vec)))
            .collect(),
    }
}

fn each(log: &Log, from: u64, max: usize) -> tidelog::Result<(Vec<Seen>, u64)> {
    let mut seen = Vec::new();
    let fetched = log.fetch_each("t", 0, from, max, |r| seen.push(from_ref(r)))?;
    assert_eq!(fetched.records, seen.len());
    Ok((seen, fetched.next_offset))
}

fn record(i: u32) -> Record {
    let mut r = match i % 7 {
        0 => Record::tombstone(format!("k{i}")),
        1 => Record::new(vec![b'x'; (i % 300) as usize]),
        _ => Record::new(format!("value {i}")).with_key(format!("k{}", i % 13)),
    };
    if i.is_multiple_of(5) {
        r = r.with_header("h", format!("{i}")).with_header("dup", "");
    }
    r.with_timestamp(1_700_000_000_000 + i64::from(i))
}

fn fill(dir: &Path, groups: &[u8]) -> Log {
    let log = Log::open(dir, LogConfig::default().maintenance_interval(None)).unwrap();
    log.create_topic("t", TopicConfig::default().segment_bytes(2048))
        .unwrap();
    let p = log.producer();
    let mut i = 0u32;
    for &g in groups {
        let group: Vec<Record> = (0..u32::from(g)).map(|k| record(i + k)).collect();
        i += u32::from(g);
        p.send_batch("t", group).unwrap();
    }
    log
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn fetch_each_visits_what_fetch_returns(
        groups in prop::collection::vec(1u8..20, 1..40),
        probes in prop::collection::vec((0u64..1000, 1usize..50), 1..20),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let log = fill(tmp.path(), &groups);
        let end = log.describe("t").unwrap().partitions[0].end_offset;
        for (from, max) in probes {
            let from = from % (end + 1);
            let owned: Vec<Seen> = log.fetch("t", 0, from, max).unwrap().iter().map(from_owned).collect();
            let (borrowed, next) = each(&log, from, max).unwrap();
            prop_assert_eq!(&borrowed, &owned);
            prop_assert_eq!(next, owned.last().map_or(from, |r| r.offset + 1));
        }
        // A scan by next_offset sees every record once, in order.
        let mut from = 0;
        let mut all = Vec::new();
        while from < end {
            let (batch, next) = each(&log, from, 17).unwrap();
            prop_assert!(next > from);
            all.extend(batch);
            from = next;
        }
        let owned: Vec<Seen> = log.fetch("t", 0, 0, usize::MAX).unwrap().iter().map(from_owned).collect();
        prop_assert_eq!(all, owned);
    }
}

#[test]
fn out_of_range_is_an_error_and_the_end_is_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let log = fill(tmp.path(), &[5, 5]);
    assert!(matches!(each(&log, 11, 10), Err(Error::OffsetOutOfRange { .. })));
    assert_eq!(each(&log, 10, 10).unwrap(), (Vec::new(), 10));
}

#[test]
fn always_shows_only_durable_records() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(
        tmp.path(),
        LogConfig::default()
            .maintenance_interval(None)
            .durability(Durability::Always),
    )
    .unwrap();
    log.create_topic("t", TopicConfig::default()).unwrap();
    let p = log.producer();
    for i in 0..10 {
        p.send_to("t", 0, record(i)).unwrap();
    }
    let (seen, next) = each(&log, 0, 100).unwrap();
    assert_eq!(seen.len(), 10);
    assert_eq!(next, 10);
}

#[test]
fn nothing_is_visited_from_a_damaged_batch() {
    let tmp = tempfile::tempdir().unwrap();
    {
        // Several segments: the first is sealed, and a sealed segment's log
        // is not read at open, so the damage is met by the read.
        let log = fill(tmp.path(), &[4; 40]);
        assert!(log.describe("t").unwrap().partitions[0].segments > 1);
        log.close().unwrap();
    }
    // Flip a byte inside the first batch's records (past its 61-byte header).
    let seg = tmp.path().join("t-0/00000000000000000000.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[70] ^= 0x40;
    std::fs::write(&seg, bytes).unwrap();
    let log = Log::open(tmp.path(), LogConfig::default().maintenance_interval(None)).unwrap();
    let mut visited = 0;
    let result = log.fetch_each("t", 0, 0, 10, |_| visited += 1);
    assert!(matches!(result, Err(Error::Corrupt { .. })), "{result:?}");
    assert_eq!(visited, 0);
}
