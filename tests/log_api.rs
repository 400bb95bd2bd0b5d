//! The `Log` surface of API.md as a user sees it: opening and closing (directory
//! creation, the directory lock, `Error::Closed` after `close` on the log, its
//! clones and its producers, drop without close), topics (Kafka's name rules,
//! create/delete/describe/alter, config validation and persistence,
//! auto-creation), reading without a group (`fetch` ranges and record contents,
//! `offset_for_timestamp`, zero-copy records outliving their topic), the Kafka
//! directory layout on disk (folders, segment names, batch headers, no padding
//! once closed, a batch bigger than a segment alone in its own), error messages
//! naming what they are about, the trait bounds users may rely on, and the
//! durability modes.
//!
//! Method: every test opens a `Log` in a fresh `tempfile::tempdir()`, drives it
//! only through the public API (plus plain `std::fs` to look at the files), and
//! compares each answer with what API.md says; persistence is checked by closing
//! (or dropping) and reopening the same directory.

use bytes::Bytes;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tidelog::{
    Cleanup, ConsumedRecord, Durability, Error, Log, LogConfig, Offset, PartitionInfo, Producer, Record,
    RecordMetadata, TopicConfig, TopicInfo,
};

const T0: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------
// helpers

fn open(dir: &Path) -> Log {
    Log::open(dir, LogConfig::default()).expect("open")
}

fn open_with(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config).expect("open")
}

/// Every record of a partition, from its start offset to its end offset.
fn fetch_all(log: &Log, topic: &str, partition: u32) -> Vec<ConsumedRecord> {
    let info = log.describe(topic).expect("describe");
    let p = &info.partitions[partition as usize];
    let mut out = Vec::new();
    let mut from = p.start_offset;
    while from < p.end_offset {
        let batch = log.fetch(topic, partition, from, 1000).expect("fetch");
        assert!(
            !batch.is_empty(),
            "fetch from {from} below end {} returned nothing",
            p.end_offset
        );
        from = batch.last().unwrap().offset() + 1;
        out.extend(batch);
    }
    out
}

fn end_offsets(log: &Log, topic: &str) -> Vec<u64> {
    log.describe(topic)
        .expect("describe")
        .partitions
        .iter()
        .map(|p| p.end_offset)
        .collect()
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn is_closed<T: Debug>(r: tidelog::Result<T>) -> bool {
    matches!(r, Err(Error::Closed { .. }))
}

/// Names of the directories directly under `dir`.
fn subdirs(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .collect()
}

/// True if `name` ends in `-<digits>` (Kafka parses partition folders by the last `-`).
fn looks_like_partition_dir(name: &str) -> bool {
    match name.rfind('-') {
        Some(i) => {
            let digits = &name[i + 1..];
            !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// API.md "On disk": every directory ending in `-<digits>` is a partition folder
/// of an existing topic (internal `__` topics included), and every partition of
/// every listed topic has its folder.
fn assert_partition_dirs_match_topics(log: &Log, dir: &Path) {
    let mut expected = BTreeSet::new();
    for t in log.topics() {
        let n = log.describe(&t).unwrap().partitions.len();
        for p in 0..n {
            expected.insert(format!("{t}-{p}"));
        }
    }
    let found: BTreeSet<String> = subdirs(dir)
        .into_iter()
        .filter(|n| looks_like_partition_dir(n))
        .filter(|n| !n.starts_with("__"))
        .collect();
    assert_eq!(found, expected, "partition folders on disk vs topics()");
    for n in subdirs(dir)
        .into_iter()
        .filter(|n| looks_like_partition_dir(n) && n.starts_with("__"))
    {
        // An internal topic: it must still be a `<topic>-<partition>` name.
        let (t, _) = n.rsplit_once('-').unwrap();
        assert!(!t.is_empty(), "bad internal partition folder {n}");
    }
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

// ---------------------------------------------------------------------------
// compile-time trait bounds ("Traits every user may rely on")

fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
fn assert_send_sync_static<T: Send + Sync + 'static>() {}
fn assert_debug<T: Debug>() {}
fn assert_clone<T: Clone>() {}
fn assert_copy_eq<T: Copy + PartialEq + Eq>() {}
fn assert_partial_eq<T: PartialEq>() {}
fn assert_default<T: Default>() {}
fn assert_error<T: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn public_types_have_the_promised_traits() {
    assert_send_sync_clone::<Log>();
    assert_send_sync_clone::<Producer>();
    assert_send_sync_static::<Error>();
    assert_error::<Error>();
    assert_send_sync_static::<ConsumedRecord>();

    assert_debug::<Log>();
    assert_debug::<Producer>();
    assert_debug::<Record>();
    assert_debug::<ConsumedRecord>();
    assert_debug::<RecordMetadata>();
    assert_debug::<LogConfig>();
    assert_debug::<TopicConfig>();
    assert_debug::<TopicInfo>();
    assert_debug::<PartitionInfo>();
    assert_debug::<Offset>();
    assert_debug::<Durability>();
    assert_debug::<Cleanup>();
    assert_debug::<Error>();

    assert_clone::<Record>();
    assert_clone::<ConsumedRecord>();
    assert_clone::<RecordMetadata>();
    assert_clone::<LogConfig>();
    assert_clone::<TopicConfig>();
    assert_clone::<TopicInfo>();
    assert_clone::<PartitionInfo>();

    assert_copy_eq::<Offset>();
    assert_copy_eq::<Durability>();
    assert_copy_eq::<Cleanup>();
    assert_copy_eq::<RecordMetadata>();

    assert_partial_eq::<TopicConfig>();
    assert_partial_eq::<TopicInfo>();
    assert_partial_eq::<PartitionInfo>();

    assert_default::<TopicConfig>();
    assert_default::<LogConfig>();

    // Value-level checks of the same promises: Default is Kafka's, Eq is structural.
    assert_eq!(TopicConfig::default(), TopicConfig::default());
    assert_ne!(TopicConfig::default(), TopicConfig::default().partitions(2));
    assert_eq!(Durability::default(), Durability::Os);
    assert_ne!(Offset::At(1), Offset::At(2));
}

// ---------------------------------------------------------------------------
// opening and closing

#[test]
fn open_creates_missing_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a").join("b").join("events");
    assert!(!dir.exists());
    let log = open(&dir);
    assert!(dir.is_dir(), "open must create the directory and its parents");
    log.create_topic("t", TopicConfig::default()).unwrap();
    log.producer().send("t", Record::new("v")).unwrap();
    log.close().unwrap();
    let log = open(&dir);
    assert_eq!(fetch_all(&log, "t", 0).len(), 1);
    log.close().unwrap();
}

#[test]
fn second_open_of_the_same_directory_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default()).unwrap();
    match Log::open(tmp.path(), LogConfig::default()) {
        Err(Error::Locked { .. }) => {}
        other => panic!("second open: expected Locked, got {other:?}"),
    }
    // The failed open had no effect on the first one.
    log.producer().send("t", Record::new("still works")).unwrap();
    assert_eq!(fetch_all(&log, "t", 0).len(), 1);
    log.close().unwrap();
    // close releases the lock.
    let log = open(tmp.path());
    assert_eq!(fetch_all(&log, "t", 0).len(), 1);
    log.close().unwrap();
}

#[test]
fn every_fallible_call_after_close_is_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let producer = log.producer();
    producer.send("t", Record::new("v")).unwrap();
    let clone = log.clone();
    let producer_clone = producer.clone();

    log.close().unwrap();
    assert!(log.close().is_ok(), "a second close is Ok");
    assert!(clone.close().is_ok(), "close through a clone after close is Ok");

    let made_after = log.producer();
    for l in [&log, &clone] {
        assert!(
            is_closed(l.create_topic("u", TopicConfig::default())),
            "create_topic"
        );
        assert!(is_closed(l.delete_topic("t")), "delete_topic");
        assert!(
            is_closed(l.alter_topic("t", TopicConfig::default().partitions(3))),
            "alter_topic"
        );
        assert!(is_closed(l.describe("t")), "describe");
        assert!(is_closed(l.fetch("t", 0, 0, 10)), "fetch");
        assert!(
            is_closed(l.offset_for_timestamp("t", 0, 0)),
            "offset_for_timestamp"
        );
        assert!(is_closed(l.flush()), "flush");
    }
    for p in [&producer, &producer_clone, &made_after] {
        assert!(is_closed(p.send("t", Record::new("x"))), "send");
        assert!(is_closed(p.send_to("t", 0, Record::new("x"))), "send_to");
        assert!(
            is_closed(p.send_batch("t", vec![Record::new("x"), Record::new("y")])),
            "send_batch"
        );
        assert!(
            is_closed(block_on(p.send_async("t", Record::new("x")))),
            "send_async"
        );
    }

    // Nothing was changed by the refused calls.
    let log = open(tmp.path());
    assert_eq!(log.topics(), vec!["t".to_string()]);
    assert_eq!(end_offsets(&log, "t").iter().sum::<u64>(), 1);
    log.close().unwrap();
}

#[test]
fn drop_without_close_then_reopen_keeps_every_sent_record() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sent = Vec::new();
    {
        let log = open(tmp.path());
        log.create_topic("t", TopicConfig::default().partitions(3).segment_bytes(1024))
            .unwrap();
        let producer = log.producer();
        for i in 0..200u32 {
            let r = Record::new(format!("value-{i}")).with_key(format!("k{i}"));
            let m = producer.send("t", r).unwrap();
            sent.push((m.partition, m.offset, format!("k{i}"), format!("value-{i}")));
        }
        let metas = producer
            .send_batch(
                "t",
                (0..5)
                    .map(|i| Record::new(format!("batch-{i}")).with_key(format!("b{i}")))
                    .collect(),
            )
            .unwrap();
        for (i, m) in metas.iter().enumerate() {
            sent.push((m.partition, m.offset, format!("b{i}"), format!("batch-{i}")));
        }
        // log and producer dropped here, no close.
    }
    let log = open(tmp.path());
    let total: u64 = end_offsets(&log, "t").iter().sum();
    assert_eq!(total, sent.len() as u64);
    for p in 0..3 {
        let recs = fetch_all(&log, "t", p);
        for r in &recs {
            let (_, _, k, v) = sent
                .iter()
                .find(|s| s.0 == p && s.1 == r.offset())
                .expect("sent record");
            assert_eq!(r.key(), Some(&b(k)));
            assert_eq!(r.value(), Some(&b(v)));
        }
    }
    // Appends continue after the recovered end.
    let m = log.producer().send_to("t", 0, Record::new("after")).unwrap();
    assert_eq!(m.offset, sent.iter().filter(|s| s.0 == 0).count() as u64);
    log.close().unwrap();
}

#[test]
fn auto_offset_reset_other_than_earliest_or_latest_is_invalid_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in [Offset::At(3), Offset::Timestamp(T0)] {
        match Log::open(tmp.path(), LogConfig::default().auto_offset_reset(bad)) {
            Err(Error::InvalidConfig { .. }) => {}
            other => panic!("auto_offset_reset({bad:?}): expected InvalidConfig, got {other:?}"),
        }
    }
    // A refused open holds no lock.
    for good in [Offset::Earliest, Offset::Latest] {
        let log = open_with(tmp.path(), LogConfig::default().auto_offset_reset(good));
        log.close().unwrap();
    }
}

// ---------------------------------------------------------------------------
// topics

#[test]
fn topics_are_listed_sorted() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    assert!(log.topics().is_empty());
    for name in ["zeta", "alpha", "Mid", "beta-2", "a.b"] {
        log.create_topic(name, TopicConfig::default()).unwrap();
    }
    let expected: Vec<String> = ["Mid", "a.b", "alpha", "beta-2", "zeta"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(log.topics(), expected);
    log.close().unwrap();
    let log = open(tmp.path());
    assert_eq!(log.topics(), expected, "after reopen");
    assert_partition_dirs_match_topics(&log, tmp.path());
    log.close().unwrap();
}

#[test]
fn invalid_topic_names_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    let long = "a".repeat(250);
    let bad: Vec<&str> = vec![
        "",
        &long,
        ".",
        "..",
        "a/b",
        "a b",
        "a\\b",
        "a:b",
        "é",
        "../escape",
        "__reserved",
        "__consumer_offsets",
        "__",
    ];
    let before = subdirs(tmp.path());
    for name in &bad {
        match log.create_topic(name, TopicConfig::default()) {
            Err(Error::InvalidTopicName { .. }) => {}
            other => panic!("create_topic({name:?}): expected InvalidTopicName, got {other:?}"),
        }
    }
    assert!(
        log.topics().is_empty(),
        "no rejected name was created: {:?}",
        log.topics()
    );
    assert_eq!(
        subdirs(tmp.path()),
        before,
        "no folder was created for a rejected name"
    );
    assert!(!tmp.path().parent().unwrap().join("escape-0").exists());
    log.close().unwrap();
}

#[test]
fn edge_valid_topic_names_are_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    let longest = "x".repeat(249);
    for name in [longest.as_str(), "a-b.c_d", "A", "0", "...", "a..b", "_x", "x__"] {
        log.create_topic(name, TopicConfig::default())
            .unwrap_or_else(|e| panic!("{name:?}: {e}"));
        let m = log
            .producer()
            .send(name, Record::new(format!("in {name}")))
            .unwrap();
        assert_eq!((m.partition, m.offset), (0, 0));
        assert_eq!(log.describe(name).unwrap().name, name);
    }
    log.close().unwrap();
    let log = open(tmp.path());
    assert!(log.topics().contains(&longest));
    let recs = log.fetch(&longest, 0, 0, 10).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].topic(), longest);
    assert_eq!(recs[0].value(), Some(&b(&format!("in {longest}"))));
    assert_partition_dirs_match_topics(&log, tmp.path());
    log.close().unwrap();
}

#[test]
fn creating_an_existing_topic_is_topic_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    log.producer().send_to("t", 1, Record::new("v")).unwrap();
    match log.create_topic("t", TopicConfig::default().partitions(5)) {
        Err(Error::TopicExists { .. }) => {}
        other => panic!("expected TopicExists, got {other:?}"),
    }
    // The refused call changed nothing.
    let info = log.describe("t").unwrap();
    assert_eq!(info.partitions.len(), 2);
    assert_eq!(info.config, TopicConfig::default().partitions(2));
    assert_eq!(end_offsets(&log, "t"), vec![0, 1]);
    log.close().unwrap();
}

#[test]
fn deleted_topic_is_unknown_and_its_folders_are_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("keep", TopicConfig::default()).unwrap();
    log.create_topic("gone", TopicConfig::default().partitions(3))
        .unwrap();
    // A topic whose name itself ends in -<digits>.
    log.create_topic("gone-1", TopicConfig::default()).unwrap();
    let p = log.producer();
    for i in 0..10 {
        p.send("gone", Record::new(format!("{i}"))).unwrap();
        p.send("gone-1", Record::new(format!("{i}"))).unwrap();
    }
    assert_partition_dirs_match_topics(&log, tmp.path());
    log.delete_topic("gone").unwrap();
    match log.describe("gone") {
        Err(Error::UnknownTopic { .. }) => {}
        other => panic!("describe after delete: expected UnknownTopic, got {other:?}"),
    }
    match log.fetch("gone", 0, 0, 10) {
        Err(Error::UnknownTopic { .. }) => {}
        other => panic!("fetch after delete: expected UnknownTopic, got {other:?}"),
    }
    match p.send("gone", Record::new("x")) {
        Err(Error::UnknownTopic { .. }) => {}
        other => panic!("send after delete: expected UnknownTopic, got {other:?}"),
    }
    match log.delete_topic("gone") {
        Err(Error::UnknownTopic { .. }) => {}
        other => panic!("second delete: expected UnknownTopic, got {other:?}"),
    }
    assert_eq!(log.topics(), vec!["gone-1".to_string(), "keep".to_string()]);
    assert_partition_dirs_match_topics(&log, tmp.path());
    // The other topic is untouched.
    assert_eq!(fetch_all(&log, "gone-1", 0).len(), 10);
    log.close().unwrap();

    let log = open(tmp.path());
    assert!(matches!(log.describe("gone"), Err(Error::UnknownTopic { .. })));
    assert_partition_dirs_match_topics(&log, tmp.path());
    // The name can be used again and starts empty.
    log.create_topic("gone", TopicConfig::default()).unwrap();
    assert_eq!(end_offsets(&log, "gone"), vec![0]);
    let m = log.producer().send("gone", Record::new("fresh")).unwrap();
    assert_eq!(m.offset, 0);
    log.close().unwrap();
}

#[test]
fn describe_reports_partitions_offsets_and_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    let config = TopicConfig::default().partitions(3);
    log.create_topic("t", config.clone()).unwrap();
    let info = log.describe("t").unwrap();
    assert_eq!(info.name, "t");
    assert_eq!(info.config, config);
    assert_eq!(info.partitions.len(), 3);
    for (i, p) in info.partitions.iter().enumerate() {
        assert_eq!(p.partition, i as u32);
        assert_eq!(
            (p.start_offset, p.end_offset, p.size_bytes),
            (0, 0, 0),
            "fresh partition {p:?}"
        );
    }
    let prod = log.producer();
    for i in 0..5 {
        prod.send_to("t", 0, Record::new(format!("p0-{i}"))).unwrap();
    }
    for i in 0..3 {
        prod.send_to("t", 2, Record::new(format!("p2-{i}"))).unwrap();
    }
    let info = log.describe("t").unwrap();
    let ends: Vec<u64> = info.partitions.iter().map(|p| p.end_offset).collect();
    assert_eq!(ends, vec![5, 0, 3]);
    assert!(info.partitions[0].size_bytes > 0);
    assert_eq!(info.partitions[1].size_bytes, 0);
    assert!(info.partitions[2].size_bytes > 0);
    for p in &info.partitions {
        assert_eq!(p.start_offset, 0);
        if p.end_offset > 0 {
            assert!(
                p.segments >= 1,
                "a partition holding records has a segment: {p:?}"
            );
        }
    }
    log.close().unwrap();
    // size_bytes counts .log bytes only: after close (when an active segment that
    // was preallocated is trimmed) the .log files hold exactly that many bytes.
    for p in [0usize, 2] {
        let log_bytes: u64 = std::fs::read_dir(tmp.path().join(format!("t-{p}")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(info.partitions[p].size_bytes, log_bytes, "partition {p}");
    }
    let log = open(tmp.path());
    assert_eq!(
        log.describe("t").unwrap().partitions,
        info.partitions,
        "same description after reopen"
    );
    log.close().unwrap();
}

#[test]
fn many_small_segments_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().segment_bytes(512))
        .unwrap();
    let prod = log.producer();
    for i in 0..100 {
        prod.send("t", Record::new(vec![i as u8; 200])).unwrap();
    }
    let info = log.describe("t").unwrap();
    let p = &info.partitions[0];
    assert_eq!(p.end_offset, 100);
    // 100 batches of over 200 bytes cannot fit in fewer than 40 segments of 512 bytes.
    assert!(p.segments >= 40, "{p:?}");
    assert!(p.size_bytes >= 100 * 200, "{p:?}");
    let recs = fetch_all(&log, "t", 0);
    assert_eq!(recs.len(), 100);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.offset(), i as u64);
        assert_eq!(r.value().unwrap().as_ref(), &vec![i as u8; 200][..]);
    }
    log.close().unwrap();
}

#[test]
fn invalid_topic_configs_are_invalid_config_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    let cases: Vec<(&str, TopicConfig)> = vec![
        ("partitions", TopicConfig::default().partitions(0)),
        ("segment_bytes", TopicConfig::default().segment_bytes(511)),
        ("segment_ms", TopicConfig::default().segment_ms(0)),
        (
            "index_interval_bytes",
            TopicConfig::default().index_interval_bytes(0),
        ),
        ("max_record_bytes", TopicConfig::default().max_record_bytes(0)),
        (
            "min_cleanable_dirty_ratio",
            TopicConfig::default().min_cleanable_dirty_ratio(1.5),
        ),
        (
            "min_cleanable_dirty_ratio",
            TopicConfig::default().min_cleanable_dirty_ratio(-0.1),
        ),
        (
            "min_cleanable_dirty_ratio",
            TopicConfig::default().min_cleanable_dirty_ratio(f64::NAN),
        ),
    ];
    for (i, (field, config)) in cases.into_iter().enumerate() {
        let name = format!("bad{i}");
        match log.create_topic(&name, config.clone()) {
            Err(e @ Error::InvalidConfig { .. }) => {
                assert!(
                    e.to_string().contains(field),
                    "message {:?} should name {field}",
                    e.to_string()
                );
            }
            other => panic!("{config:?}: expected InvalidConfig, got {other:?}"),
        }
        assert!(
            matches!(log.describe(&name), Err(Error::UnknownTopic { .. })),
            "{name} was not created"
        );
    }
    assert!(log.topics().is_empty());
    assert_partition_dirs_match_topics(&log, tmp.path());
    // The boundaries themselves are valid.
    log.create_topic("ok1", TopicConfig::default().segment_bytes(512))
        .unwrap();
    log.create_topic("ok2", TopicConfig::default().min_cleanable_dirty_ratio(0.0))
        .unwrap();
    log.create_topic("ok3", TopicConfig::default().min_cleanable_dirty_ratio(1.0))
        .unwrap();
    log.create_topic(
        "ok4",
        TopicConfig::default()
            .segment_ms(1)
            .index_interval_bytes(1)
            .max_record_bytes(1024)
            .partitions(1),
    )
    .unwrap();
    log.close().unwrap();
}

fn non_default_config() -> TopicConfig {
    TopicConfig::default()
        .partitions(3)
        .segment_bytes(64 * 1024)
        .segment_ms(3_600_000)
        .index_interval_bytes(128)
        .retention_ms(None)
        .retention_bytes(Some(10 * 1024 * 1024))
        .cleanup(Cleanup::CompactDelete)
        .delete_retention_ms(1234)
        .min_compaction_lag_ms(5678)
        .min_cleanable_dirty_ratio(0.25)
        .max_record_bytes(200_000)
}

#[test]
fn topic_config_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let config = non_default_config();
    assert_ne!(config, TopicConfig::default());
    let other = TopicConfig::default()
        .cleanup(Cleanup::Compact)
        .retention_ms(Some(1000))
        .partitions(2);
    {
        let log = open(tmp.path());
        log.create_topic("t", config.clone()).unwrap();
        log.create_topic("u", other.clone()).unwrap();
        assert_eq!(log.describe("t").unwrap().config, config);
        log.close().unwrap();
    }
    {
        let log = open(tmp.path());
        assert_eq!(log.describe("t").unwrap().config, config, "after close + reopen");
        assert_eq!(log.describe("u").unwrap().config, other);
        // drop without close
    }
    let log = open(tmp.path());
    assert_eq!(log.describe("t").unwrap().config, config, "after drop + reopen");
    assert_eq!(log.describe("u").unwrap().config, other);
    log.close().unwrap();
}

#[test]
fn alter_topic_grows_partitions_and_refuses_to_shrink() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let prod = log.producer();
    prod.send_to("t", 0, Record::new("a")).unwrap();
    prod.send_to("t", 1, Record::new("b")).unwrap();

    let grown = TopicConfig::default().partitions(4).retention_ms(Some(60_000));
    log.alter_topic("t", grown.clone()).unwrap();
    let info = log.describe("t").unwrap();
    assert_eq!(info.config, grown);
    assert_eq!(info.partitions.len(), 4);
    assert_eq!(
        info.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert_eq!(end_offsets(&log, "t"), vec![1, 1, 0, 0]);
    let m = prod.send_to("t", 3, Record::new("new")).unwrap();
    assert_eq!((m.partition, m.offset), (3, 0));
    let recs = log.fetch("t", 3, 0, 10).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].value(), Some(&b("new")));
    // Keyed records now hash over 4 partitions.
    let key = "k1"; // murmur2("k1") = 1684045097, % 4 = 1 (KAFKA.md §8)
    assert_eq!(
        prod.send("t", Record::new("v").with_key(key)).unwrap().partition,
        1
    );

    match log.alter_topic("t", grown.clone().partitions(3)) {
        Err(Error::InvalidConfig { .. }) => {}
        other => panic!("shrinking: expected InvalidConfig, got {other:?}"),
    }
    match log.alter_topic("t", grown.clone().partitions(0)) {
        Err(Error::InvalidConfig { .. }) => {}
        other => panic!("0 partitions: expected InvalidConfig, got {other:?}"),
    }
    match log.alter_topic("t", grown.clone().segment_bytes(511)) {
        Err(Error::InvalidConfig { .. }) => {}
        other => panic!("segment_bytes 511: expected InvalidConfig, got {other:?}"),
    }
    match log.alter_topic("nope", grown.clone()) {
        Err(Error::UnknownTopic { .. }) => {}
        other => panic!("alter unknown: expected UnknownTopic, got {other:?}"),
    }
    assert_eq!(
        log.describe("t").unwrap().config,
        grown,
        "refused alters changed nothing"
    );
    assert_eq!(log.describe("t").unwrap().partitions.len(), 4);
    assert_partition_dirs_match_topics(&log, tmp.path());
    log.close().unwrap();

    let log = open(tmp.path());
    let info = log.describe("t").unwrap();
    assert_eq!(info.config, grown);
    assert_eq!(info.partitions.len(), 4);
    assert_eq!(fetch_all(&log, "t", 3).len(), 1);
    assert_partition_dirs_match_topics(&log, tmp.path());
    log.close().unwrap();
}

#[test]
fn auto_create_topics_uses_default_topic_config() {
    let tmp = tempfile::tempdir().unwrap();
    let default_topic = TopicConfig::default().partitions(3).segment_bytes(4096);
    let log = open_with(
        tmp.path(),
        LogConfig::default()
            .auto_create_topics(true)
            .default_topic(default_topic.clone()),
    );
    let prod = log.producer();
    let m = prod.send("auto", Record::new("v").with_key("k")).unwrap();
    assert_eq!(m.offset, 0);
    assert!(log.topics().contains(&"auto".to_string()));
    let info = log.describe("auto").unwrap();
    assert_eq!(info.config, default_topic);
    assert_eq!(info.partitions.len(), 3);
    let recs = log.fetch("auto", m.partition, 0, 10).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].value(), Some(&b("v")));
    // send_batch also creates.
    prod.send_batch("auto2", vec![Record::new("a"), Record::new("b")])
        .unwrap();
    assert_eq!(end_offsets(&log, "auto2").iter().sum::<u64>(), 2);
    // create_topic stores the config it is given, not the default.
    log.create_topic("explicit", TopicConfig::default()).unwrap();
    assert_eq!(log.describe("explicit").unwrap().config, TopicConfig::default());
    // Auto-creation still applies Kafka's name rules.
    for bad in ["../escape", "a b", "__internal", ""] {
        match prod.send(bad, Record::new("v")) {
            Err(Error::InvalidTopicName { .. }) => {}
            other => panic!("auto-create {bad:?}: expected InvalidTopicName, got {other:?}"),
        }
    }
    assert!(!tmp.path().parent().unwrap().join("escape-0").exists());
    assert_partition_dirs_match_topics(&log, tmp.path());
    log.close().unwrap();
    let log = open(tmp.path());
    assert_eq!(log.describe("auto").unwrap().config, default_topic);
    log.close().unwrap();
}

#[test]
fn producing_to_an_unknown_topic_is_unknown_topic_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    let prod = log.producer();
    match prod.send("nope", Record::new("v")) {
        Err(Error::UnknownTopic { .. }) => {}
        other => panic!("send: expected UnknownTopic, got {other:?}"),
    }
    match prod.send_to("nope", 0, Record::new("v")) {
        Err(Error::UnknownTopic { .. }) => {}
        other => panic!("send_to: expected UnknownTopic, got {other:?}"),
    }
    match prod.send_batch("nope", vec![Record::new("v")]) {
        Err(Error::UnknownTopic { .. }) => {}
        other => panic!("send_batch: expected UnknownTopic, got {other:?}"),
    }
    match block_on(prod.send_async("nope", Record::new("v"))) {
        Err(Error::UnknownTopic { .. }) => {}
        other => panic!("send_async: expected UnknownTopic, got {other:?}"),
    }
    match log.fetch("nope", 0, 0, 1) {
        Err(Error::UnknownTopic { .. }) => {}
        other => panic!("fetch: expected UnknownTopic, got {other:?}"),
    }
    match log.offset_for_timestamp("nope", 0, 0) {
        Err(Error::UnknownTopic { .. }) => {}
        other => panic!("offset_for_timestamp: expected UnknownTopic, got {other:?}"),
    }
    match log.describe("nope") {
        Err(Error::UnknownTopic { .. }) => {}
        other => panic!("describe: expected UnknownTopic, got {other:?}"),
    }
    assert!(log.topics().is_empty());
    assert!(subdirs(tmp.path()).iter().all(|d| !d.starts_with("nope")));
    log.close().unwrap();
}

#[test]
fn unknown_partition_is_unknown_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let prod = log.producer();
    for p in [2u32, 3, u32::MAX] {
        match prod.send_to("t", p, Record::new("v")) {
            Err(Error::UnknownPartition { .. }) => {}
            other => panic!("send_to {p}: expected UnknownPartition, got {other:?}"),
        }
        match log.fetch("t", p, 0, 10) {
            Err(Error::UnknownPartition { .. }) => {}
            other => panic!("fetch {p}: expected UnknownPartition, got {other:?}"),
        }
        match log.offset_for_timestamp("t", p, 0) {
            Err(Error::UnknownPartition { .. }) => {}
            other => panic!("offset_for_timestamp {p}: expected UnknownPartition, got {other:?}"),
        }
    }
    assert_eq!(end_offsets(&log, "t"), vec![0, 0]);
    log.close().unwrap();
}

// ---------------------------------------------------------------------------
// reading without a group

#[test]
fn fetch_ranges_and_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().partitions(2).segment_bytes(1024))
        .unwrap();
    let prod = log.producer();
    // Empty partition: from 0 == end is empty, past it is out of range.
    assert!(log.fetch("t", 0, 0, 10).unwrap().is_empty());
    assert!(matches!(
        log.fetch("t", 0, 1, 10),
        Err(Error::OffsetOutOfRange { .. })
    ));
    for i in 0..50i64 {
        prod.send_to("t", 0, Record::new(format!("v{i}")).with_timestamp(T0 + i))
            .unwrap();
    }
    assert!(
        log.fetch("t", 0, 50, 10).unwrap().is_empty(),
        "from == end is empty"
    );
    for past in [51u64, 1000, u64::MAX] {
        match log.fetch("t", 0, past, 10) {
            Err(Error::OffsetOutOfRange { .. }) => {}
            other => panic!("fetch from {past}: expected OffsetOutOfRange, got {other:?}"),
        }
    }
    // Partition 1 is independent.
    assert!(log.fetch("t", 1, 0, 10).unwrap().is_empty());
    for (from, max) in [
        (0u64, 1usize),
        (0, 7),
        (13, 5),
        (49, 10),
        (45, 500),
        (0, 500),
        (10, usize::MAX),
    ] {
        let recs = log.fetch("t", 0, from, max).unwrap();
        assert!(
            !recs.is_empty(),
            "fetch({from}, {max}) must return at least one record"
        );
        assert!(recs.len() <= max, "fetch({from}, {max}) returned {}", recs.len());
        for (j, r) in recs.iter().enumerate() {
            let o = from + j as u64;
            assert_eq!(r.offset(), o, "fetch({from}, {max}) in order without gaps");
            assert_eq!(r.topic(), "t");
            assert_eq!(r.partition(), 0);
            assert_eq!(r.timestamp(), T0 + o as i64);
            assert_eq!(r.value(), Some(&b(&format!("v{o}"))));
            assert_eq!(r.key(), None);
        }
    }
    // Reading everything in small steps yields every record exactly once.
    let mut from = 0;
    let mut seen = 0;
    while from < 50 {
        let recs = log.fetch("t", 0, from, 3).unwrap();
        assert!(!recs.is_empty() && recs.len() <= 3);
        assert_eq!(recs[0].offset(), from);
        seen += recs.len();
        from = recs.last().unwrap().offset() + 1;
    }
    assert_eq!(seen, 50);
    log.close().unwrap();
}

#[test]
fn fetched_records_carry_every_field() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().partitions(3))
        .unwrap();
    let prod = log.producer();
    let records = vec![
        Record::new("plain").with_timestamp(T0),
        Record::new("keyed").with_key("k").with_timestamp(T0 + 1),
        Record::new("empty-key").with_key("").with_timestamp(T0 + 2),
        Record::new("").with_key("empty-value").with_timestamp(T0 + 3),
        Record::tombstone("dead").with_timestamp(T0 + 4),
        Record::new("headers")
            .with_header("dup", "first")
            .with_null_header("null")
            .with_header("dup", "second")
            .with_header("empty", "")
            .with_null_header("dup")
            .with_timestamp(T0 + 5),
    ];
    for r in &records {
        prod.send_to("t", 1, r.clone()).unwrap();
    }
    let got = log.fetch("t", 1, 0, 100).unwrap();
    assert_eq!(got.len(), records.len());
    for (i, (g, r)) in got.iter().zip(&records).enumerate() {
        assert_eq!(g.topic(), "t");
        assert_eq!(g.partition(), 1);
        assert_eq!(g.offset(), i as u64);
        assert_eq!(g.timestamp(), r.timestamp().unwrap());
        assert_eq!(g.key(), r.key(), "record {i}");
        assert_eq!(g.value(), r.value(), "record {i}");
        assert_eq!(g.headers(), r.headers(), "record {i}");
    }
    // The distinctions API.md promises, spelled out.
    assert_eq!(got[0].key(), None, "no key");
    assert_eq!(got[2].key(), Some(&Bytes::new()), "an empty key is a key");
    assert_eq!(
        got[3].value(),
        Some(&Bytes::new()),
        "an empty value is not a tombstone"
    );
    assert_eq!(got[4].value(), None, "tombstone");
    assert_eq!(got[4].key(), Some(&b("dead")));
    let expected_headers: Vec<(String, Option<Bytes>)> = vec![
        ("dup".into(), Some(b("first"))),
        ("null".into(), None),
        ("dup".into(), Some(b("second"))),
        ("empty".into(), Some(Bytes::new())),
        ("dup".into(), None),
    ];
    assert_eq!(got[5].headers(), &expected_headers[..]);
    log.close().unwrap();
}

#[test]
fn offset_for_timestamp_finds_the_first_offset_at_or_after() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic(
        "t",
        TopicConfig::default()
            .partitions(2)
            .segment_bytes(1024)
            .index_interval_bytes(64),
    )
    .unwrap();
    let prod = log.producer();
    assert_eq!(
        log.offset_for_timestamp("t", 0, 0).unwrap(),
        None,
        "empty partition"
    );
    // Timestamps T0, T0+10, ..., T0+990 over many segments.
    for i in 0..100i64 {
        prod.send_to("t", 0, Record::new(vec![b'x'; 50]).with_timestamp(T0 + 10 * i))
            .unwrap();
    }
    assert_eq!(log.offset_for_timestamp("t", 0, 0).unwrap(), Some(0));
    assert_eq!(log.offset_for_timestamp("t", 0, T0).unwrap(), Some(0));
    assert_eq!(log.offset_for_timestamp("t", 0, T0 + 1).unwrap(), Some(1));
    assert_eq!(log.offset_for_timestamp("t", 0, T0 + 15).unwrap(), Some(2));
    assert_eq!(log.offset_for_timestamp("t", 0, T0 + 20).unwrap(), Some(2));
    for i in 0..100i64 {
        assert_eq!(
            log.offset_for_timestamp("t", 0, T0 + 10 * i).unwrap(),
            Some(i as u64),
            "exact {i}"
        );
        assert_eq!(
            log.offset_for_timestamp("t", 0, T0 + 10 * i - 3).unwrap(),
            Some(i as u64),
            "before {i}"
        );
    }
    assert_eq!(log.offset_for_timestamp("t", 0, T0 + 990).unwrap(), Some(99));
    assert_eq!(
        log.offset_for_timestamp("t", 0, T0 + 991).unwrap(),
        None,
        "past the last timestamp"
    );
    assert_eq!(log.offset_for_timestamp("t", 0, i64::MAX).unwrap(), None);
    // Partition 1 untouched.
    assert_eq!(log.offset_for_timestamp("t", 1, 0).unwrap(), None);

    // Out-of-order timestamps: the first offset (in offset order) whose timestamp >= ts.
    for ts in [100i64, 300, 200, 400, 150] {
        prod.send_to("t", 1, Record::new("o").with_timestamp(T0 + ts))
            .unwrap();
    }
    assert_eq!(log.offset_for_timestamp("t", 1, T0 + 100).unwrap(), Some(0));
    assert_eq!(log.offset_for_timestamp("t", 1, T0 + 120).unwrap(), Some(1));
    assert_eq!(log.offset_for_timestamp("t", 1, T0 + 250).unwrap(), Some(1));
    assert_eq!(log.offset_for_timestamp("t", 1, T0 + 350).unwrap(), Some(3));
    assert_eq!(log.offset_for_timestamp("t", 1, T0 + 401).unwrap(), None);
    log.close().unwrap();

    let log = open(tmp.path());
    assert_eq!(
        log.offset_for_timestamp("t", 0, T0 + 555).unwrap(),
        Some(56),
        "after reopen"
    );
    assert_eq!(
        log.offset_for_timestamp("t", 1, T0 + 350).unwrap(),
        Some(3),
        "after reopen"
    );
    log.close().unwrap();
}

// ---------------------------------------------------------------------------
// on disk

#[test]
fn kafka_layout_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("layout", TopicConfig::default().partitions(2))
        .unwrap();
    log.create_topic("other-7", TopicConfig::default()).unwrap();
    let m = log
        .producer()
        .send_to("layout", 0, Record::new("hello").with_key("k").with_timestamp(T0))
        .unwrap();
    assert_eq!((m.partition, m.offset), (0, 0));
    let size = log.describe("layout").unwrap().partitions[0].size_bytes;
    assert_partition_dirs_match_topics(&log, tmp.path());
    log.close().unwrap();

    for p in 0..2 {
        assert!(
            tmp.path().join(format!("layout-{p}")).is_dir(),
            "layout-{p}/ exists"
        );
    }
    assert!(tmp.path().join("other-7-0").is_dir());
    let part = tmp.path().join("layout-0");
    for suffix in ["log", "index", "timeindex"] {
        let f = part.join(format!("00000000000000000000.{suffix}"));
        assert!(f.is_file(), "{} exists", f.display());
    }
    let bytes = std::fs::read(part.join("00000000000000000000.log")).unwrap();
    assert!(
        bytes.len() > 61,
        "one batch is at least the 61-byte header: {}",
        bytes.len()
    );
    assert_eq!(&bytes[0..8], &0i64.to_be_bytes(), "baseOffset 0");
    let batch_length = i32::from_be_bytes(bytes[8..12].try_into().unwrap());
    assert_eq!(
        bytes.len() as u64,
        12 + batch_length as u64,
        "exactly one batch, no padding"
    );
    assert_eq!(bytes[16], 2, "magic byte 2 at position 16");
    assert_eq!(
        i32::from_be_bytes(bytes[23..27].try_into().unwrap()),
        0,
        "lastOffsetDelta 0"
    );
    assert_eq!(
        i32::from_be_bytes(bytes[57..61].try_into().unwrap()),
        1,
        "one record"
    );
    assert_eq!(
        size,
        bytes.len() as u64,
        "describe().size_bytes counts the .log bytes"
    );

    // Segment file names are 20-digit base offsets with Kafka's suffixes only.
    for entry in std::fs::read_dir(&part).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some((stem, ext)) = name.split_once('.') {
            if ["log", "index", "timeindex"].contains(&ext) {
                assert_eq!(stem.len(), 20, "{name}");
                assert!(stem.bytes().all(|c| c.is_ascii_digit()), "{name}");
            }
        }
    }
    let log = open(tmp.path());
    assert_partition_dirs_match_topics(&log, tmp.path());
    log.close().unwrap();
}

// ---------------------------------------------------------------------------
// durability and persistence

#[test]
fn flush_works_and_keeps_records() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    log.flush().unwrap();
    let prod = log.producer();
    for i in 0..20 {
        prod.send("t", Record::new(format!("v{i}")).with_key(format!("k{i}")))
            .unwrap();
    }
    log.flush().unwrap();
    log.clone().flush().unwrap();
    assert_eq!(end_offsets(&log, "t").iter().sum::<u64>(), 20);
    drop(prod);
    drop(log);
    let log = open(tmp.path());
    assert_eq!(end_offsets(&log, "t").iter().sum::<u64>(), 20);
    log.close().unwrap();
}

fn durability_round_trip(durability: Durability) {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig::default().durability(durability);
    let log = open_with(tmp.path(), config.clone());
    log.create_topic("t", TopicConfig::default().partitions(2).segment_bytes(2048))
        .unwrap();
    let prod = log.producer();
    let mut metas = Vec::new();
    for i in 0..60 {
        let r = Record::new(format!("value-{i}"))
            .with_key(format!("key-{i}"))
            .with_header("i", format!("{i}"));
        metas.push(prod.send("t", r).unwrap());
    }
    let batch = prod
        .send_batch(
            "t",
            (60..70)
                .map(|i| Record::new(format!("value-{i}")).with_key(format!("key-{i}")))
                .collect(),
        )
        .unwrap();
    metas.extend(batch);
    metas.push(
        prod.send_to("t", 1, Record::new("value-70").with_key("key-70"))
            .unwrap(),
    );
    metas.push(block_on(prod.send_async("t", Record::new("value-71").with_key("key-71"))).unwrap());
    let check = |log: &Log| {
        for (i, m) in metas.iter().enumerate() {
            let r = log.fetch("t", m.partition, m.offset, 1).unwrap();
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].offset(), m.offset);
            assert_eq!(
                r[0].key(),
                Some(&b(&format!("key-{i}"))),
                "{durability:?} record {i}"
            );
            assert_eq!(
                r[0].value(),
                Some(&b(&format!("value-{i}"))),
                "{durability:?} record {i}"
            );
            assert_eq!(r[0].timestamp(), m.timestamp);
        }
        assert_eq!(end_offsets(log, "t").iter().sum::<u64>(), metas.len() as u64);
    };
    check(&log);
    log.close().unwrap();
    let log = open_with(tmp.path(), config);
    check(&log);
    log.close().unwrap();
}

#[test]
fn durability_always_round_trip() {
    durability_round_trip(Durability::Always);
}

#[test]
fn durability_interval_round_trip() {
    durability_round_trip(Durability::Interval(Duration::from_millis(10)));
}

#[test]
fn durability_os_round_trip() {
    durability_round_trip(Durability::Os);
}

#[test]
fn record_with_every_field_survives_reopen_byte_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let key: Vec<u8> = (0..=255u8).collect();
    let mut value = Vec::with_capacity(10_000);
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        value.push(x as u8);
    }
    let full = Record::new(value.clone())
        .with_key(key.clone())
        .with_header("trace", "abc")
        .with_null_header("sampled")
        .with_header("trace", vec![0u8, 255, 1])
        .with_header("ключ-🔑", "ünïcødé")
        .with_header("", "")
        .with_timestamp(1_700_000_123_456);
    let tomb = Record::tombstone(key.clone())
        .with_header("why", "gone")
        .with_timestamp(1);
    let empty = Record::new(Bytes::new()).with_key(Bytes::new()).with_timestamp(0);
    let records = [full, tomb, empty];
    let before;
    {
        let log = open(tmp.path());
        log.create_topic("t", TopicConfig::default()).unwrap();
        for r in &records {
            log.producer().send("t", r.clone()).unwrap();
        }
        before = log.fetch("t", 0, 0, 10).unwrap();
        log.close().unwrap();
    }
    let log = open(tmp.path());
    let after = log.fetch("t", 0, 0, 10).unwrap();
    assert_eq!(after.len(), 3);
    assert_eq!(before, after, "identical before and after reopen");
    for (i, (g, r)) in after.iter().zip(&records).enumerate() {
        assert_eq!(g.offset(), i as u64);
        assert_eq!(g.timestamp(), r.timestamp().unwrap(), "record {i}");
        assert_eq!(g.key(), r.key(), "record {i}");
        assert_eq!(g.value(), r.value(), "record {i}");
        assert_eq!(g.headers(), r.headers(), "record {i}");
    }
    assert_eq!(after[0].key().unwrap().as_ref(), &key[..]);
    assert_eq!(after[0].value().unwrap().as_ref(), &value[..]);
    assert_eq!(after[1].value(), None);
    assert_eq!(after[2].key(), Some(&Bytes::new()));
    assert_eq!(after[2].value(), Some(&Bytes::new()));
    // Records stay valid after the log is closed (zero-copy Bytes keep their mapping alive).
    log.close().unwrap();
    assert_eq!(after[0].value().unwrap().as_ref(), &value[..]);
    drop(log);
    assert_eq!(after[0].key().unwrap().as_ref(), &key[..]);
}

#[test]
fn error_messages_name_what_they_are_about() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("orders", TopicConfig::default().partitions(2))
        .unwrap();
    log.producer().send_to("orders", 1, Record::new("v")).unwrap();
    let msg = |e: Error| e.to_string();
    let m = msg(log.describe("no-such-topic").unwrap_err());
    assert!(m.contains("no-such-topic"), "UnknownTopic: {m}");
    let m = msg(log.create_topic("orders", TopicConfig::default()).unwrap_err());
    assert!(m.contains("orders"), "TopicExists: {m}");
    let m = msg(log.create_topic("bad name", TopicConfig::default()).unwrap_err());
    assert!(m.contains("bad name"), "InvalidTopicName: {m}");
    let m = msg(log.fetch("orders", 7, 0, 1).unwrap_err());
    assert!(m.contains("orders") && m.contains('7'), "UnknownPartition: {m}");
    let m = msg(log.fetch("orders", 1, 12345, 1).unwrap_err());
    assert!(
        m.contains("orders") && m.contains("12345"),
        "OffsetOutOfRange: {m}"
    );
    let m = msg(Log::open(tmp.path(), LogConfig::default()).unwrap_err());
    assert!(m.contains(&tmp.path().display().to_string()), "Locked: {m}");
    log.close().unwrap();
    let m = msg(log.describe("orders").unwrap_err());
    assert!(m.contains(&tmp.path().display().to_string()), "Closed: {m}");
}

#[test]
fn a_batch_bigger_than_a_segment_goes_alone_into_its_own_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().segment_bytes(512))
        .unwrap();
    let prod = log.producer();
    prod.send("t", Record::new("small-0")).unwrap();
    let big = vec![7u8; 3000];
    let m = prod.send("t", Record::new(big.clone())).unwrap();
    assert_eq!(m.offset, 1);
    prod.send("t", Record::new("small-2")).unwrap();
    let info = log.describe("t").unwrap();
    assert_eq!(info.partitions[0].end_offset, 3);
    assert!(info.partitions[0].segments >= 3, "{:?}", info.partitions[0]);
    let recs = fetch_all(&log, "t", 0);
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[1].value().unwrap().as_ref(), &big[..]);
    assert_eq!(recs[2].value(), Some(&b("small-2")));
    log.close().unwrap();
    // The big batch is the whole of the segment named by its offset.
    let seg = std::fs::read(tmp.path().join("t-0").join("00000000000000000001.log")).unwrap();
    assert_eq!(&seg[0..8], &1i64.to_be_bytes());
    let batch_length = i32::from_be_bytes(seg[8..12].try_into().unwrap());
    assert_eq!(seg.len() as u64, 12 + batch_length as u64, "alone in its segment");
    assert!(tmp.path().join("t-0").join("00000000000000000002.log").is_file());
}

#[test]
fn fetched_records_outlive_their_topic() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().segment_bytes(1024))
        .unwrap();
    let prod = log.producer();
    for i in 0..30 {
        prod.send("t", Record::new(vec![i as u8; 300]).with_key(format!("k{i}")))
            .unwrap();
    }
    let recs = fetch_all(&log, "t", 0);
    log.delete_topic("t").unwrap();
    assert!(!tmp.path().join("t-0").exists());
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(
            r.value().unwrap().as_ref(),
            &vec![i as u8; 300][..],
            "record {i} after delete_topic"
        );
        assert_eq!(r.key(), Some(&b(&format!("k{i}"))));
    }
    log.close().unwrap();
}

#[test]
fn drop_without_close_leaves_no_padding_after_the_next_close() {
    let tmp = tempfile::tempdir().unwrap();
    let size_before;
    {
        let log = open(tmp.path());
        log.create_topic("t", TopicConfig::default()).unwrap();
        let prod = log.producer();
        for i in 0..5 {
            prod.send("t", Record::new(format!("v{i}")).with_timestamp(T0 + i))
                .unwrap();
        }
        size_before = log.describe("t").unwrap().partitions[0].size_bytes;
        assert!(size_before > 0);
    }
    let log = open(tmp.path());
    let info = log.describe("t").unwrap();
    assert_eq!(info.partitions[0].end_offset, 5);
    assert_eq!(
        info.partitions[0].size_bytes, size_before,
        "recovery keeps exactly the written bytes"
    );
    log.close().unwrap();
    let bytes = std::fs::read(tmp.path().join("t-0").join("00000000000000000000.log")).unwrap();
    assert_eq!(
        bytes.len() as u64,
        size_before,
        "the .log holds the batches and nothing else"
    );
    // Five batches back to back, offsets 0..5.
    let mut pos = 0usize;
    for expected in 0..5i64 {
        assert_eq!(&bytes[pos..pos + 8], &expected.to_be_bytes());
        assert_eq!(bytes[pos + 16], 2);
        pos += 12 + i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
    }
    assert_eq!(pos, bytes.len());
}
