//! The producer of API.md as a user sees it: the `RecordMetadata` that `send`,
//! `send_to`, `send_batch` and `send_async` return (partition, dense offsets,
//! the record's or the send's timestamp), Kafka's default partitioner
//! (`tidelog::murmur2` against every vector of KAFKA.md §8 and an independent
//! reference, and the partitions keyed records land on), spreading of keyless
//! records, `send_batch` ordering, grouping, one batch per partition and
//! all-or-nothing validation (`InvalidRecord`, `RecordTooLarge` at the exact
//! encoded-size boundary), and concurrent senders under `Always` and `Os`.
//!
//! Method: fresh `tempfile::tempdir()` logs driven through the public API; what
//! a send reports is compared with what `fetch` and `describe` show, before and
//! after reopening; "one batch" is checked on the `.log` bytes (Kafka's
//! RecordBatch v2 header: baseOffset at 0, batchLength at 8, lastOffsetDelta at
//! 23). Futures are driven by a small hand-written `block_on` (no runtime).

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{SystemTime, UNIX_EPOCH};
use tidelog::{
    murmur2, Cleanup, ConsumedRecord, Durability, Error, Log, LogConfig, Record, RecordMetadata, TopicConfig,
};

const T0: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------
// helpers

fn open(dir: &Path) -> Log {
    Log::open(dir, LogConfig::default()).expect("open")
}

fn open_with(dir: &Path, durability: Durability) -> Log {
    Log::open(dir, LogConfig::default().durability(durability)).expect("open")
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Kafka's default partitioner for a keyed record (KAFKA.md §8).
fn kafka_partition(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions
}

fn end_offsets(log: &Log, topic: &str) -> Vec<u64> {
    log.describe(topic)
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.end_offset)
        .collect()
}

fn size_bytes(log: &Log, topic: &str) -> Vec<u64> {
    log.describe(topic)
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.size_bytes)
        .collect()
}

fn fetch_all(log: &Log, topic: &str, partition: u32) -> Vec<ConsumedRecord> {
    let p = log.describe(topic).unwrap().partitions[partition as usize].clone();
    let mut out = Vec::new();
    let mut from = p.start_offset;
    while from < p.end_offset {
        let batch = log.fetch(topic, partition, from, 1000).unwrap();
        assert!(!batch.is_empty());
        from = batch.last().unwrap().offset() + 1;
        out.extend(batch);
    }
    out
}

fn fetch_one(log: &Log, topic: &str, meta: &RecordMetadata) -> ConsumedRecord {
    let recs = log.fetch(topic, meta.partition, meta.offset, 1).unwrap();
    assert_eq!(recs.len(), 1, "record at {meta:?}");
    assert_eq!(recs[0].offset(), meta.offset);
    assert_eq!(recs[0].partition(), meta.partition);
    recs.into_iter().next().unwrap()
}

/// `(first offset, last offset)` of every batch in a partition folder's `.log`
/// files, walked with Kafka's batch header layout.
fn batches_on_disk(partition_dir: &Path) -> Vec<(u64, u64)> {
    let mut logs: Vec<_> = std::fs::read_dir(partition_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().ends_with(".log"))
        .collect();
    logs.sort();
    let mut out = Vec::new();
    for path in logs {
        let bytes = std::fs::read(&path).unwrap();
        let mut pos = 0usize;
        while pos < bytes.len() {
            assert!(
                pos + 61 <= bytes.len(),
                "{}: truncated batch header at {pos}",
                path.display()
            );
            let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
            let length = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
            assert_eq!(bytes[pos + 16], 2, "{}: magic at {pos}", path.display());
            let delta = i32::from_be_bytes(bytes[pos + 23..pos + 27].try_into().unwrap());
            assert!(
                base >= 0 && length >= 49 && delta >= 0,
                "{}: bad header at {pos}",
                path.display()
            );
            out.push((base as u64, base as u64 + delta as u64));
            pos += 12 + length as usize;
        }
        assert_eq!(
            pos,
            bytes.len(),
            "{}: batches end exactly at the end of the file",
            path.display()
        );
    }
    out
}

struct ThreadWaker(std::thread::Thread);
impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor: polls `fut` on this thread, parking between wake-ups.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// Compile-time check: the argument is `Send` (API.md: the futures of `send_async` are `Send`).
fn assert_send<T: Send>(t: T) -> T {
    t
}

// ---------------------------------------------------------------------------
// murmur2 and placement

/// KAFKA.md §8: (key, murmur2, toPositive, %3, %50) from Kafka's UtilsTest.testMurmur2.
const KAFKA_VECTORS: &[(&str, i32, u32, u32, u32)] = &[
    ("21", -973932308, 1173551340, 0, 40),
    ("foobar", -790332482, 1357151166, 0, 16),
    ("a-little-bit-long-string", -985981536, 1161502112, 2, 12),
    ("a-little-bit-longer-string", -1486304829, 661178819, 2, 19),
    (
        "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
        -58897971,
        2088585677,
        2,
        27,
    ),
    ("abc", 479470107, 479470107, 0, 7),
];

/// KAFKA.md §8 extra vectors (1-byte tail, empty input).
const EXTRA_VECTORS: &[(&str, i32)] = &[
    ("", 275646681),
    ("a", -1563381124),
    ("key", -1079937367),
    ("k1", 1684045097),
];

#[test]
fn murmur2_matches_every_vector_of_kafka_md() {
    for &(key, hash, positive, m3, m50) in KAFKA_VECTORS {
        let h = murmur2(key.as_bytes());
        assert_eq!(h, hash, "murmur2({key:?})");
        assert_eq!((h & 0x7fff_ffff) as u32, positive, "toPositive({key:?})");
        assert_eq!(kafka_partition(key.as_bytes(), 3), m3, "{key:?} % 3");
        assert_eq!(kafka_partition(key.as_bytes(), 50), m50, "{key:?} % 50");
    }
    for &(key, hash) in EXTRA_VECTORS {
        assert_eq!(murmur2(key.as_bytes()), hash, "murmur2({key:?})");
    }
    assert_eq!(kafka_partition(b"k1", 4), 1, "k1 % 4");
    // The hex column of the table, as u32.
    assert_eq!(murmur2(b"21") as u32, 0xC5F2_F8EC);
    assert_eq!(murmur2(b"abc") as u32, 0x1C94_221B);
}

/// An independent implementation of KAFKA.md §8's algorithm, bytes unsigned.
fn reference_murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let n = data.len();
    let mut h: u32 = 0x9747_b28c ^ (n as u32);
    for chunk in data.chunks_exact(4) {
        let mut k = u32::from_le_bytes(chunk.try_into().unwrap());
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let base = n & !3;
    let left = n % 4;
    if left >= 3 {
        h ^= u32::from(data[base + 2]) << 16;
    }
    if left >= 2 {
        h ^= u32::from(data[base + 1]) << 8;
    }
    if left >= 1 {
        h ^= u32::from(data[base]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Deterministic pseudo-random keys of length 0..64 with every byte value (high bytes included).
fn random_keys(count: usize) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x5eed_1234_abcd_ef01;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..count)
        .map(|_| {
            let len = (next() % 64) as usize;
            (0..len).map(|_| next() as u8).collect()
        })
        .collect()
}

#[test]
fn murmur2_agrees_with_a_reference_on_arbitrary_bytes() {
    for &(key, hash, ..) in KAFKA_VECTORS {
        assert_eq!(
            reference_murmur2(key.as_bytes()),
            hash,
            "the reference itself is right"
        );
    }
    for key in random_keys(2000) {
        assert_eq!(murmur2(&key), reference_murmur2(&key), "murmur2({key:?})");
    }
    let all: Vec<u8> = (0..=255u8).collect();
    assert_eq!(murmur2(&all), reference_murmur2(&all));
    assert_eq!(murmur2(&[0xff]), reference_murmur2(&[0xff]));
    assert_eq!(
        murmur2(&[0x80, 0x81, 0xfe]),
        reference_murmur2(&[0x80, 0x81, 0xfe])
    );
}

#[test]
fn keyed_records_go_to_kafkas_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("p3", TopicConfig::default().partitions(3))
        .unwrap();
    log.create_topic("p4", TopicConfig::default().partitions(4))
        .unwrap();
    log.create_topic("p50", TopicConfig::default().partitions(50))
        .unwrap();
    let prod = log.producer();
    for &(key, _, _, m3, m50) in KAFKA_VECTORS {
        let m = prod.send("p3", Record::new("v").with_key(key)).unwrap();
        assert_eq!(m.partition, m3, "{key:?} on 3 partitions");
        let m = prod.send("p50", Record::new("v").with_key(key)).unwrap();
        assert_eq!(m.partition, m50, "{key:?} on 50 partitions");
    }
    // The placements the brief spells out.
    for (key, p) in [
        ("21", 0),
        ("foobar", 0),
        ("a-little-bit-long-string", 2),
        ("abc", 0),
    ] {
        assert_eq!(
            prod.send("p3", Record::new("again").with_key(key))
                .unwrap()
                .partition,
            p,
            "{key:?}"
        );
    }
    assert_eq!(
        prod.send("p4", Record::new("v").with_key("k1"))
            .unwrap()
            .partition,
        1,
        "k1 on 4"
    );
    // An empty key is a key: murmur2("") = 275646681, % 3 = 0, % 4 = 1.
    assert_eq!(
        prod.send("p3", Record::new("v").with_key("")).unwrap().partition,
        0
    );
    assert_eq!(
        prod.send("p4", Record::new("v").with_key("")).unwrap().partition,
        1
    );
    // Arbitrary keys, through every send path.
    let keys = random_keys(300);
    for (i, key) in keys.iter().enumerate() {
        let r = Record::new(format!("r{i}")).with_key(key.clone());
        let m = match i % 3 {
            0 => prod.send("p4", r).unwrap(),
            1 => block_on(prod.send_async("p4", r)).unwrap(),
            _ => prod.send_batch("p4", vec![r]).unwrap()[0],
        };
        assert_eq!(m.partition, kafka_partition(key, 4), "key {key:?}");
        let got = fetch_one(&log, "p4", &m);
        assert_eq!(got.key().unwrap().as_ref(), &key[..]);
        assert_eq!(got.value(), Some(&b(&format!("r{i}"))));
    }
    let metas = prod
        .send_batch(
            "p50",
            keys.iter()
                .map(|k| Record::new("batched").with_key(k.clone()))
                .collect(),
        )
        .unwrap();
    assert_eq!(metas.len(), keys.len());
    for (m, key) in metas.iter().zip(&keys) {
        assert_eq!(m.partition, kafka_partition(key, 50), "batched key {key:?}");
    }
    log.close().unwrap();
}

#[test]
fn keyless_records_are_spread_over_partitions() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().partitions(4))
        .unwrap();
    let prod = log.producer();
    let mut used = BTreeSet::new();
    // 200 KB in 200 separate sends: more than any stickiness rule of Kafka's (2 x 16 KiB).
    for i in 0..200 {
        let m = prod.send("t", Record::new(vec![i as u8; 1000])).unwrap();
        assert!(m.partition < 4);
        used.insert(m.partition);
    }
    assert!(used.len() > 1, "keyless records all went to {used:?}");
    assert_eq!(end_offsets(&log, "t").iter().sum::<u64>(), 200);
    log.close().unwrap();
}

// ---------------------------------------------------------------------------
// metadata

#[test]
fn send_returns_partition_offset_and_timestamp() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let prod = log.producer();

    let m = prod
        .send_to("t", 1, Record::new("explicit").with_timestamp(T0))
        .unwrap();
    assert_eq!(
        m,
        RecordMetadata {
            partition: 1,
            offset: 0,
            timestamp: T0
        }
    );
    assert_eq!(fetch_one(&log, "t", &m).timestamp(), T0);

    // Timestamps far from now are kept as given.
    let m = prod
        .send_to("t", 1, Record::new("old").with_timestamp(12345))
        .unwrap();
    assert_eq!((m.offset, m.timestamp), (1, 12345));
    assert_eq!(fetch_one(&log, "t", &m).timestamp(), 12345);

    // No timestamp: the time of the send (window of 10 s either side, only to catch
    // wrong units or a missing default, not to time anything).
    let window = 10_000;
    let before = now_ms();
    let m1 = prod.send("t", Record::new("now").with_key("k")).unwrap();
    let m2 = prod.send_to("t", 0, Record::new("now")).unwrap();
    let m3 = block_on(prod.send_async("t", Record::new("now").with_key("k"))).unwrap();
    let ms = prod
        .send_batch(
            "t",
            vec![Record::new("a"), Record::new("b").with_timestamp(T0 + 7)],
        )
        .unwrap();
    let after = now_ms();
    for m in [m1, m2, m3, ms[0]] {
        assert!(
            before - window <= m.timestamp && m.timestamp <= after + window,
            "timestamp {} not near the send ({before}..{after})",
            m.timestamp
        );
        assert_eq!(
            fetch_one(&log, "t", &m).timestamp(),
            m.timestamp,
            "stored timestamp = reported"
        );
    }
    assert_eq!(ms[1].timestamp, T0 + 7);
    assert_eq!(fetch_one(&log, "t", &ms[1]).timestamp(), T0 + 7);
    log.close().unwrap();
}

#[test]
fn offsets_are_dense_from_zero_per_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().partitions(3).segment_bytes(1024))
        .unwrap();
    let prod = log.producer();
    let mut per_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for i in 0..300 {
        let r = Record::new(format!("v{i}")).with_key(format!("key-{i}"));
        let m = if i % 10 == 9 {
            prod.send_batch("t", vec![r, Record::new("extra").with_key(format!("key-{i}"))])
                .unwrap()
        } else {
            vec![prod.send("t", r).unwrap()]
        };
        for m in m {
            per_partition.entry(m.partition).or_default().push(m.offset);
        }
    }
    assert_eq!(per_partition.len(), 3, "300 distinct keys use all 3 partitions");
    let ends = end_offsets(&log, "t");
    for (p, offsets) in &per_partition {
        let expected: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(
            offsets, &expected,
            "partition {p}: offsets in send order are 0, 1, 2, ..."
        );
        assert_eq!(ends[*p as usize], offsets.len() as u64);
        assert_eq!(fetch_all(&log, "t", *p).len(), offsets.len());
    }
    log.close().unwrap();
}

#[test]
fn send_to_uses_the_given_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().partitions(3))
        .unwrap();
    let prod = log.producer();
    // "21" hashes to partition 0; send_to overrides the partitioner.
    let m = prod.send_to("t", 2, Record::new("v").with_key("21")).unwrap();
    assert_eq!((m.partition, m.offset), (2, 0));
    let m = prod.send_to("t", 2, Record::new("w")).unwrap();
    assert_eq!((m.partition, m.offset), (2, 1));
    let m = prod.send_to("t", 1, Record::new("x").with_key("21")).unwrap();
    assert_eq!((m.partition, m.offset), (1, 0));
    assert_eq!(end_offsets(&log, "t"), vec![0, 1, 2]);
    let recs = fetch_all(&log, "t", 2);
    assert_eq!(recs[0].key(), Some(&b("21")));
    assert_eq!(recs[0].value(), Some(&b("v")));
    assert_eq!(recs[1].value(), Some(&b("w")));
    log.close().unwrap();
}

#[test]
fn send_async_resolves_like_send() {
    for durability in [Durability::Os, Durability::Always] {
        let tmp = tempfile::tempdir().unwrap();
        let log = open_with(tmp.path(), durability);
        log.create_topic("t", TopicConfig::default().partitions(3))
            .unwrap();
        let prod = log.producer();
        let mut expected_next = [0u64; 3];
        for i in 0..40 {
            let key = format!("key-{i}");
            let r = Record::new(format!("v{i}"))
                .with_key(key.clone())
                .with_header("i", format!("{i}"));
            let m = if i % 2 == 0 {
                block_on(assert_send(prod.send_async("t", r.clone()))).unwrap()
            } else {
                prod.send("t", r.clone()).unwrap()
            };
            let p = kafka_partition(key.as_bytes(), 3);
            assert_eq!(m.partition, p, "{durability:?} {key}");
            assert_eq!(m.offset, expected_next[p as usize], "{durability:?} {key}");
            expected_next[p as usize] += 1;
            let got = fetch_one(&log, "t", &m);
            assert_eq!(got.key(), r.key());
            assert_eq!(got.value(), r.value());
            assert_eq!(got.headers(), r.headers());
            assert_eq!(got.timestamp(), m.timestamp);
        }
        // A future sent to another thread and driven there.
        let prod2 = prod.clone();
        let m = std::thread::spawn(move || {
            block_on(assert_send(
                prod2.send_async("t", Record::new("x").with_key("21")),
            ))
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!((m.partition, m.offset), (0, expected_next[0]));
        // Errors come through the future too.
        match block_on(prod.send_async(
            "t",
            Record::new("x").with_timestamp(T0).with_key(vec![0u8; 2_000_000]),
        )) {
            Err(Error::RecordTooLarge { .. }) => {}
            other => panic!("expected RecordTooLarge, got {other:?}"),
        }
        log.close().unwrap();
        let log = open_with(tmp.path(), durability);
        assert_eq!(end_offsets(&log, "t").iter().sum::<u64>(), 41);
        log.close().unwrap();
    }
}

// ---------------------------------------------------------------------------
// send_batch

#[test]
fn send_batch_keeps_input_order_and_writes_one_batch_per_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().partitions(3))
        .unwrap();
    let prod = log.producer();
    // Some records first, so groups do not start at 0.
    for i in 0..7 {
        prod.send("t", Record::new("pre").with_key(format!("pre-{i}")))
            .unwrap();
    }
    let ends_before = end_offsets(&log, "t");
    let keys: Vec<String> = (0..30).map(|i| format!("batch-key-{i}")).collect();
    let records: Vec<Record> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            Record::new(format!("value-{i}"))
                .with_key(k.clone())
                .with_timestamp(T0 + i as i64)
        })
        .collect();
    let metas = prod.send_batch("t", records.clone()).unwrap();
    assert_eq!(metas.len(), records.len());

    let mut groups: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for (i, (m, k)) in metas.iter().zip(&keys).enumerate() {
        assert_eq!(
            m.partition,
            kafka_partition(k.as_bytes(), 3),
            "meta {i} is for input {i}"
        );
        assert_eq!(m.timestamp, T0 + i as i64, "meta {i} is for input {i}");
        groups.entry(m.partition).or_default().push(m.offset);
        let got = fetch_one(&log, "t", m);
        assert_eq!(got.key(), Some(&b(k)));
        assert_eq!(got.value(), Some(&b(&format!("value-{i}"))));
    }
    assert!(groups.len() > 1, "30 keys spread over more than one partition");
    let ends_after = end_offsets(&log, "t");
    for (p, offsets) in &groups {
        let start = ends_before[*p as usize];
        let expected: Vec<u64> = (start..start + offsets.len() as u64).collect();
        assert_eq!(
            offsets, &expected,
            "partition {p}: consecutive offsets in input order"
        );
        assert_eq!(ends_after[*p as usize], start + offsets.len() as u64);
    }
    log.close().unwrap();

    for (p, offsets) in &groups {
        let batches = batches_on_disk(&tmp.path().join(format!("t-{p}")));
        let (first, last) = (offsets[0], *offsets.last().unwrap());
        assert!(
            batches.contains(&(first, last)),
            "partition {p}: offsets {first}..={last} are one batch on disk; batches: {batches:?}"
        );
    }
}

#[test]
fn send_batch_with_an_invalid_record_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    for (name, cleanup) in [
        ("compact", Cleanup::Compact),
        ("compact-delete", Cleanup::CompactDelete),
    ] {
        log.create_topic(name, TopicConfig::default().partitions(3).cleanup(cleanup))
            .unwrap();
    }
    let prod = log.producer();
    prod.send("compact", Record::new("ok").with_key("k")).unwrap();
    for topic in ["compact", "compact-delete"] {
        let ends = end_offsets(&log, topic);
        let sizes = size_bytes(&log, topic);
        let mut batch: Vec<Record> = (0..10)
            .map(|i| Record::new("v").with_key(format!("k{i}")))
            .collect();
        batch.insert(6, Record::new("no key"));
        match prod.send_batch(topic, batch) {
            Err(Error::InvalidRecord { .. }) => {}
            other => panic!("{topic}: expected InvalidRecord, got {other:?}"),
        }
        match prod.send(topic, Record::new("no key")) {
            Err(Error::InvalidRecord { .. }) => {}
            other => panic!("{topic}: send keyless: expected InvalidRecord, got {other:?}"),
        }
        match prod.send_to(topic, 1, Record::new("no key")) {
            Err(Error::InvalidRecord { .. }) => {}
            other => panic!("{topic}: send_to keyless: expected InvalidRecord, got {other:?}"),
        }
        match block_on(prod.send_async(topic, Record::new("no key"))) {
            Err(Error::InvalidRecord { .. }) => {}
            other => panic!("{topic}: send_async keyless: expected InvalidRecord, got {other:?}"),
        }
        assert_eq!(end_offsets(&log, topic), ends, "{topic}: nothing written");
        assert_eq!(size_bytes(&log, topic), sizes, "{topic}: no bytes written");
        // Tombstones have keys and are fine; keyed records still work.
        prod.send_batch(
            topic,
            vec![Record::tombstone("k1"), Record::new("v").with_key("k2")],
        )
        .unwrap();
    }
    log.close().unwrap();
}

#[test]
fn record_too_large_at_the_exact_encoded_size() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().max_record_bytes(1024))
        .unwrap();
    let prod = log.producer();
    let record = |len: usize| Record::new(vec![b'v'; len]).with_timestamp(T0);

    match prod.send("t", record(2000)) {
        Err(Error::RecordTooLarge { .. }) => {}
        other => panic!("2000-byte value: expected RecordTooLarge, got {other:?}"),
    }
    assert_eq!(end_offsets(&log, "t"), vec![0]);
    assert_eq!(size_bytes(&log, "t"), vec![0]);

    // A keyless, headerless record with a 954-byte value encodes as a 1024-byte batch:
    // 61 (batch header) + 2 (length varint) + 1 (attributes) + 1 (timestamp delta)
    // + 1 (offset delta) + 1 (key length -1) + 2 (value length) + 954 + 1 (header count).
    let m = prod.send("t", record(954)).unwrap();
    assert_eq!(m.offset, 0);
    assert_eq!(
        size_bytes(&log, "t"),
        vec![1024],
        "the batch is exactly max_record_bytes"
    );
    for (what, r) in [
        ("send", prod.send("t", record(955))),
        ("send_to", prod.send_to("t", 0, record(955))),
        ("send_async", block_on(prod.send_async("t", record(955)))),
        (
            "send_batch",
            prod.send_batch("t", vec![record(955)]).map(|v| v[0]),
        ),
    ] {
        match r {
            Err(Error::RecordTooLarge { .. }) => {}
            other => panic!("{what} of a 1025-byte batch: expected RecordTooLarge, got {other:?}"),
        }
    }
    assert_eq!(
        end_offsets(&log, "t"),
        vec![1],
        "nothing written by the refused sends"
    );
    assert_eq!(size_bytes(&log, "t"), vec![1024]);

    // One oversized record fails the whole batch; so does a group whose batch is too large.
    match prod.send_batch("t", vec![record(10), record(2000), record(10)]) {
        Err(Error::RecordTooLarge { .. }) => {}
        other => panic!("batch with a 2000-byte record: expected RecordTooLarge, got {other:?}"),
    }
    match prod.send_batch("t", vec![record(400), record(400), record(400)]) {
        Err(Error::RecordTooLarge { .. }) => {}
        other => panic!("batch of 3 x 400 bytes over 1024: expected RecordTooLarge, got {other:?}"),
    }
    assert_eq!(end_offsets(&log, "t"), vec![1]);
    assert_eq!(size_bytes(&log, "t"), vec![1024]);
    // Two that fit together are fine.
    let metas = prod.send_batch("t", vec![record(400), record(400)]).unwrap();
    assert_eq!(metas.iter().map(|m| m.offset).collect::<Vec<_>>(), vec![1, 2]);
    let got = fetch_one(&log, "t", &m);
    assert_eq!(got.value().unwrap().len(), 954);
    log.close().unwrap();
}

// ---------------------------------------------------------------------------
// concurrency

/// `threads` threads each send `per_thread` records (every 10th step a batch of
/// 3) with ids; afterwards every offset is distinct and dense per partition, and
/// after close and reopen every record is where its metadata said, byte for byte.
fn concurrent_senders(durability: Durability, threads: usize, per_thread: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_with(tmp.path(), durability);
    log.create_topic("t", TopicConfig::default().partitions(3).segment_bytes(4096))
        .unwrap();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            // Half the threads use a producer from a clone of the log, half share one.
            let prod = if t % 2 == 0 {
                log.clone().producer()
            } else {
                log.producer().clone()
            };
            std::thread::spawn(move || {
                let mut sent: Vec<(String, String, RecordMetadata)> = Vec::new();
                let mut i = 0;
                while i < per_thread {
                    if i % 10 == 9 {
                        let ids: Vec<String> = (0..3).map(|j| format!("t{t}-i{}", i + j)).collect();
                        let recs = ids
                            .iter()
                            .map(|id| Record::new(format!("value of {id}")).with_key(id.clone()))
                            .collect();
                        let metas = prod.send_batch("t", recs).unwrap();
                        for (id, m) in ids.into_iter().zip(metas) {
                            sent.push((id.clone(), format!("value of {id}"), m));
                        }
                        i += 3;
                    } else {
                        let id = format!("t{t}-i{i}");
                        let value = format!("value of {id}");
                        let m = prod
                            .send("t", Record::new(value.clone()).with_key(id.clone()))
                            .unwrap();
                        sent.push((id, value, m));
                        i += 1;
                    }
                }
                sent
            })
        })
        .collect();
    let sent: Vec<(String, String, RecordMetadata)> =
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect();

    let mut per_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for (id, _, m) in &sent {
        assert_eq!(m.partition, kafka_partition(id.as_bytes(), 3), "{id}");
        per_partition.entry(m.partition).or_default().push(m.offset);
    }
    let ends = end_offsets(&log, "t");
    for (p, offsets) in per_partition.iter_mut() {
        offsets.sort_unstable();
        let expected: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(
            offsets, &expected,
            "{durability:?} partition {p}: distinct and dense from 0"
        );
        assert_eq!(ends[*p as usize], offsets.len() as u64);
    }
    assert_eq!(ends.iter().sum::<u64>(), sent.len() as u64);
    log.close().unwrap();

    let log = open_with(tmp.path(), durability);
    assert_eq!(end_offsets(&log, "t"), ends, "after reopen");
    let mut all: BTreeMap<(u32, u64), ConsumedRecord> = BTreeMap::new();
    for p in 0..3 {
        for r in fetch_all(&log, "t", p) {
            all.insert((p, r.offset()), r);
        }
    }
    assert_eq!(all.len(), sent.len());
    for (id, value, m) in &sent {
        let r = &all[&(m.partition, m.offset)];
        assert_eq!(r.key(), Some(&b(id)), "{durability:?} {m:?}");
        assert_eq!(r.value(), Some(&b(value)), "{durability:?} {m:?}");
        assert_eq!(r.timestamp(), m.timestamp);
    }
    log.close().unwrap();
}

#[test]
fn concurrent_senders_with_always_durability() {
    concurrent_senders(Durability::Always, 4, 60);
}

#[test]
fn concurrent_senders_with_os_durability() {
    concurrent_senders(Durability::Os, 4, 500);
}
