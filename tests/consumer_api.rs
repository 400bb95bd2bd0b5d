//! The single-consumer surface of API.md "Consuming" as a user sees it: where a
//! new group starts (`auto_offset_reset`, `Earliest` by default, `Latest` when
//! configured, anything else refused at open), what `poll` returns
//! (`max_poll_records` with 0 meaning 1, offset order per partition, every
//! assigned partition served within a few polls), `commit`/`committed`/
//! `commit_offsets` (a committed offset is the next offset to read, KAFKA.md
//! §9.1), resuming after close and reopen, no auto-commit, the errors
//! `NotAssigned`, `NotSubscribed`, `UnknownTopic`, `UnknownPartition`,
//! `OffsetOutOfRange` and `Closed` (and that a failed call changes nothing),
//! `seek` to `Earliest`/`Latest`/`At`/`Timestamp`, `position`, manual `assign`
//! without group balancing, `poll` and `next_batch` waking when a producer
//! appends, `group_lag`, independent groups, and that commits survive close and
//! drop-without-close; the trait bounds users rely on, and that formatting a
//! consumer with `{:?}` does not crash the process (checked in a child process
//! so a SIGBUS fails one test, not the binary).
//!
//! Method: every test opens a `Log` in a fresh `tempfile::tempdir()` and drives
//! it only through the public API. Each record's value names its topic,
//! partition and offset (`"<topic>/<partition>/<offset>"`), so every record a
//! consumer returns is checked against where it claims to come from. Persistence
//! is checked by closing (or dropping) and reopening the same directory. Waits
//! use long `poll` timeouts that return as soon as data is there; short (100 ms)
//! timeouts appear only where a test expects nothing. Futures run on a small
//! hand-written `block_on` (a `std::task::Wake` that unparks a thread); no
//! runtime crate. Nothing asserts on elapsed time.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tidelog::{ConsumedRecord, Consumer, Error, Log, LogConfig, Offset, PartitionLag, Record, TopicConfig};

const T0: i64 = 1_700_000_000_000;
/// A poll that is expected to return nothing.
const EMPTY: Duration = Duration::from_millis(100);
/// A poll that is expected to return data; it returns as soon as data is there.
const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// helpers

fn open(dir: &Path) -> Log {
    Log::open(dir, LogConfig::default()).expect("open")
}

fn topic(log: &Log, name: &str, partitions: u32) {
    log.create_topic(name, TopicConfig::default().partitions(partitions))
        .expect("create_topic");
}

fn value_of(topic: &str, partition: u32, offset: u64) -> String {
    format!("{topic}/{partition}/{offset}")
}

fn end_offset(log: &Log, topic: &str, partition: u32) -> u64 {
    log.describe(topic).expect("describe").partitions[partition as usize].end_offset
}

/// Appends `n` records to one partition; each value names its own offset.
fn fill(log: &Log, topic: &str, partition: u32, n: u64) {
    let producer = log.producer();
    let start = end_offset(log, topic, partition);
    for offset in start..start + n {
        let m = producer
            .send_to(topic, partition, Record::new(value_of(topic, partition, offset)))
            .expect("send_to");
        assert_eq!((m.partition, m.offset), (partition, offset));
    }
}

/// Appends `n` records with timestamps `T0 + offset * 1000` to a fresh one-partition topic.
fn fill_timed(log: &Log, topic: &str, n: u64) {
    let producer = log.producer();
    for offset in 0..n {
        let r = Record::new(value_of(topic, 0, offset)).with_timestamp(T0 + offset as i64 * 1000);
        assert_eq!(producer.send_to(topic, 0, r).unwrap().offset, offset);
    }
}

/// The record is what was written at its topic, partition and offset.
fn check(r: &ConsumedRecord) {
    let want = value_of(r.topic(), r.partition(), r.offset());
    assert_eq!(
        r.value().map(|v| v.as_ref()),
        Some(want.as_bytes()),
        "record at {}/{}/{} has another value",
        r.topic(),
        r.partition(),
        r.offset()
    );
}

/// Polls until exactly the `n` records left to read arrived (panics if the
/// consumer stalls or returns more); checks every record.
fn read_n(c: &mut Consumer, n: usize) -> Vec<ConsumedRecord> {
    let out = read_at_least(c, n);
    assert_eq!(out.len(), n, "more records than were written");
    out
}

/// Polls until at least `n` records arrived (panics if the consumer stalls); checks every record.
fn read_at_least(c: &mut Consumer, n: usize) -> Vec<ConsumedRecord> {
    let mut out = Vec::new();
    let mut empty_polls = 0;
    while out.len() < n {
        let batch = c.poll(WAIT).expect("poll");
        if batch.is_empty() {
            empty_polls += 1;
            assert!(empty_polls < 4, "poll stalled after {} of {n} records", out.len());
        }
        for r in &batch {
            check(r);
        }
        out.extend(batch);
    }
    out
}

fn assert_empty_poll(c: &mut Consumer) {
    let batch = c.poll(EMPTY).expect("poll");
    let got: Vec<(String, u32, u64)> = batch
        .iter()
        .map(|r| (r.topic().to_string(), r.partition(), r.offset()))
        .collect();
    assert!(got.is_empty(), "expected nothing to read, got {got:?}");
}

/// (partition, offset) of each record, in the order returned.
fn offsets(recs: &[ConsumedRecord]) -> Vec<(u32, u64)> {
    recs.iter().map(|r| (r.partition(), r.offset())).collect()
}

/// Offsets per partition, in the order returned.
fn by_partition(recs: &[ConsumedRecord]) -> BTreeMap<u32, Vec<u64>> {
    let mut m: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for r in recs {
        m.entry(r.partition()).or_default().push(r.offset());
    }
    m
}

fn sorted(mut v: Vec<(String, u32)>) -> Vec<(String, u32)> {
    v.sort();
    v
}

fn owned(list: &[(&str, u32)]) -> Vec<(String, u32)> {
    sorted(list.iter().map(|(t, p)| (t.to_string(), *p)).collect())
}

type LagRow = (String, u32, Option<u64>, u64, u64);

/// `group_lag` as sorted tuples (topic, partition, committed, end_offset, lag).
fn lag_rows(log: &Log, group: &str) -> Vec<LagRow> {
    let mut rows: Vec<LagRow> = log
        .group_lag(group)
        .expect("group_lag")
        .into_iter()
        .map(|l: PartitionLag| (l.topic, l.partition, l.committed, l.end_offset, l.lag))
        .collect();
    rows.sort();
    rows
}

fn row(topic: &str, partition: u32, committed: Option<u64>, end: u64, lag: u64) -> LagRow {
    (topic.to_string(), partition, committed, end, lag)
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

fn assert_send_val<T: Send>(_: &T) {}
fn assert_send<T: Send>() {}
fn assert_debug<T: Debug>() {}
fn assert_clone_eq<T: Clone + PartialEq + Debug>() {}

// ---------------------------------------------------------------------------
// where a new group starts

#[test]
fn new_group_reads_everything_from_the_start_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 1);
    fill(&log, "t", 0, 10);

    let mut c = log.consumer("g");
    c.subscribe(&["t"]).unwrap();
    assert_eq!(c.committed("t", 0).unwrap(), None, "a new group has no commit");
    let recs = read_n(&mut c, 10);
    assert_eq!(offsets(&recs), (0..10).map(|o| (0, o)).collect::<Vec<_>>());
    assert!(recs.iter().all(|r| r.topic() == "t"));
    assert_eq!(c.position("t", 0).unwrap(), 10);
    assert_empty_poll(&mut c);
    assert_eq!(c.committed("t", 0).unwrap(), None, "polling commits nothing");
}

#[test]
fn auto_offset_reset_latest_starts_at_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), LogConfig::default().auto_offset_reset(Offset::Latest)).unwrap();
    topic(&log, "t", 2);
    fill(&log, "t", 0, 5);
    fill(&log, "t", 1, 3);

    let mut c = log.consumer("g");
    c.subscribe(&["t"]).unwrap();
    assert_empty_poll(&mut c);
    assert_eq!(c.position("t", 0).unwrap(), 5);
    assert_eq!(c.position("t", 1).unwrap(), 3);

    fill(&log, "t", 0, 2);
    fill(&log, "t", 1, 1);
    let recs = read_n(&mut c, 3);
    let got: BTreeSet<(u32, u64)> = offsets(&recs).into_iter().collect();
    assert_eq!(got, BTreeSet::from([(0, 5), (0, 6), (1, 3)]));

    // A group with a commit resumes at the commit, not at the end.
    c.commit().unwrap();
    drop(c);
    fill(&log, "t", 0, 4);
    let mut c = log.consumer("g");
    c.subscribe(&["t"]).unwrap();
    let recs = read_n(&mut c, 4);
    assert_eq!(offsets(&recs), vec![(0, 7), (0, 8), (0, 9), (0, 10)]);
}

#[test]
fn auto_offset_reset_other_than_earliest_or_latest_is_invalid_config() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in [Offset::At(0), Offset::Timestamp(T0)] {
        let r = Log::open(tmp.path(), LogConfig::default().auto_offset_reset(bad));
        assert!(
            matches!(r, Err(Error::InvalidConfig { .. })),
            "auto_offset_reset({bad:?}): {r:?}"
        );
    }
    // Nothing is locked by the refused opens.
    let log = Log::open(
        tmp.path(),
        LogConfig::default().auto_offset_reset(Offset::Earliest),
    )
    .unwrap();
    log.close().unwrap();
}

// ---------------------------------------------------------------------------
// what poll returns

#[test]
fn poll_returns_at_most_max_poll_records() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 1);
    fill(&log, "t", 0, 50);

    let mut c = log.consumer("g");
    c.subscribe(&["t"]).unwrap();
    let mut all = Vec::new();
    let mut polls = 0;
    while all.len() < 50 {
        // max_poll_records returns the consumer, so it chains.
        let batch = c.max_poll_records(7).poll(WAIT).unwrap();
        assert!(batch.len() <= 7, "poll returned {} > 7 records", batch.len());
        polls += 1;
        assert!(polls < 60, "stalled at {} records", all.len());
        all.extend(batch);
    }
    assert_eq!(offsets(&all), (0..50).map(|o| (0, o)).collect::<Vec<_>>());
    assert_empty_poll(&mut c);
}

#[test]
fn max_poll_records_zero_means_one() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 1);
    fill(&log, "t", 0, 5);

    let mut c = log.consumer("g");
    c.subscribe(&["t"]).unwrap();
    c.max_poll_records(0);
    let mut got = Vec::new();
    let mut polls = 0;
    while got.len() < 5 {
        let batch = c.poll(WAIT).unwrap();
        assert!(
            batch.len() <= 1,
            "max_poll_records(0) returned {} records",
            batch.len()
        );
        polls += 1;
        assert!(polls < 10, "stalled at {} records", got.len());
        got.extend(batch);
    }
    assert_eq!(offsets(&got), (0..5).map(|o| (0, o)).collect::<Vec<_>>());
    // With records waiting, a poll returns one (it blocks until records, and 0 means 1).
    fill(&log, "t", 0, 3);
    for expected in 5..8 {
        let batch = c.poll(WAIT).unwrap();
        assert_eq!(offsets(&batch), vec![(0, expected)]);
    }
}

#[test]
fn default_max_poll_records_is_500() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 1);
    let producer = log.producer();
    producer
        .send_batch("t", (0..1200).map(|o| Record::new(value_of("t", 0, o))).collect())
        .unwrap();

    let mut c = log.consumer("g");
    c.subscribe(&["t"]).unwrap();
    let mut all = Vec::new();
    while all.len() < 1200 {
        let batch = c.poll(WAIT).unwrap();
        assert!(!batch.is_empty(), "stalled at {} records", all.len());
        assert!(batch.len() <= 500, "poll returned {} > 500 records", batch.len());
        for r in &batch {
            check(r);
        }
        all.extend(batch);
    }
    assert_eq!(offsets(&all), (0..1200).map(|o| (0, o)).collect::<Vec<_>>());
}

#[test]
fn poll_serves_every_partition_in_offset_order() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 3);
    for p in 0..3 {
        fill(&log, "t", p, 300);
    }

    let mut c = log.consumer("g");
    c.subscribe(&["t"]).unwrap();
    c.max_poll_records(10);
    // Fairness: with every partition full, the first few polls touch all of them
    // (draining partition 0 first would take 30 polls).
    let mut first = Vec::new();
    let mut nonempty = 0;
    let mut polls = 0;
    while nonempty < 6 {
        let batch = c.poll(WAIT).unwrap();
        polls += 1;
        assert!(polls < 12, "poll stalled");
        assert!(batch.len() <= 10);
        if !batch.is_empty() {
            nonempty += 1;
        }
        first.extend(batch);
    }
    let seen: BTreeSet<u32> = first.iter().map(|r| r.partition()).collect();
    assert_eq!(
        seen,
        BTreeSet::from([0, 1, 2]),
        "the first 6 polls of 10 returned only partitions {seen:?}: {:?}",
        offsets(&first)
    );

    let rest = read_n(&mut c, 900 - first.len());
    let mut all = first;
    all.extend(rest);
    for r in &all {
        check(r);
    }
    let per = by_partition(&all);
    for p in 0..3 {
        assert_eq!(
            per.get(&p).cloned().unwrap_or_default(),
            (0..300).collect::<Vec<u64>>(),
            "partition {p}: each offset once, in order"
        );
    }
    assert_empty_poll(&mut c);
}

// ---------------------------------------------------------------------------
// positions and commits

#[test]
fn commit_stores_polled_positions_and_a_new_consumer_resumes_there_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let read_before;
    let committed_at: Vec<u64>;
    {
        let log = open(tmp.path());
        topic(&log, "t", 2);
        fill(&log, "t", 0, 20);
        fill(&log, "t", 1, 20);
        let mut c = log.consumer("g");
        c.subscribe(&["t"]).unwrap();
        c.max_poll_records(15);
        read_before = read_at_least(&mut c, 15);
        let per = by_partition(&read_before);
        let positions: Vec<u64> = (0..2).map(|p| c.position("t", p).unwrap()).collect();
        for p in 0..2u32 {
            // The position is one past the last record returned (or where reading starts).
            let want = per.get(&p).and_then(|o| o.last()).map_or(0, |l| l + 1);
            assert_eq!(positions[p as usize], want, "position of partition {p}");
            assert_eq!(c.committed("t", p).unwrap(), None, "nothing committed yet");
        }
        c.commit().unwrap();
        for p in 0..2u32 {
            assert_eq!(c.committed("t", p).unwrap(), Some(positions[p as usize]));
        }
        committed_at = positions;
        drop(c);
        log.close().unwrap();
    }
    let log = open(tmp.path());
    // Any consumer of the group reports the group's commits.
    let probe = log.consumer("g");
    for p in 0..2u32 {
        assert_eq!(probe.committed("t", p).unwrap(), Some(committed_at[p as usize]));
    }
    drop(probe);
    let mut c = log.consumer("g");
    c.subscribe(&["t"]).unwrap();
    let after = read_n(&mut c, 40 - read_before.len());
    let per = by_partition(&after);
    for p in 0..2u32 {
        let want: Vec<u64> = (committed_at[p as usize]..20).collect();
        assert_eq!(
            per.get(&p).cloned().unwrap_or_default(),
            want,
            "partition {p} resumes at the committed offset {}",
            committed_at[p as usize]
        );
    }
    // Before and after the commit together: every record exactly once.
    let mut all: Vec<(u32, u64)> = offsets(&read_before);
    all.extend(offsets(&after));
    all.sort();
    let want: Vec<(u32, u64)> = (0..2).flat_map(|p| (0..20).map(move |o| (p, o))).collect();
    assert_eq!(all, want);
    assert_empty_poll(&mut c);
}

#[test]
fn there_is_no_auto_commit() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = open(tmp.path());
        topic(&log, "t", 1);
        fill(&log, "t", 0, 10);
        let mut c = log.consumer("g");
        c.subscribe(&["t"]).unwrap();
        read_n(&mut c, 10);
        drop(c); // no commit
        let mut c = log.consumer("g");
        c.subscribe(&["t"]).unwrap();
        assert_eq!(c.committed("t", 0).unwrap(), None);
        let recs = read_n(&mut c, 10);
        assert_eq!(
            recs[0].offset(),
            0,
            "the next member starts again at the beginning"
        );
        drop(c); // no commit
        log.close().unwrap();
    }
    let log = open(tmp.path());
    assert_eq!(log.consumer("g").committed("t", 0).unwrap(), None);
    assert_eq!(
        lag_rows(&log, "g"),
        vec![],
        "a group that never committed and has no member is unknown"
    );
    let mut c = log.consumer("g");
    c.subscribe(&["t"]).unwrap();
    let recs = read_n(&mut c, 10);
    assert_eq!(recs[0].offset(), 0);
}

#[test]
fn commit_offsets_sets_the_next_offset_to_read() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 1);
    fill(&log, "t", 0, 100);

    let mut c = log.consumer("g");
    c.subscribe(&["t"]).unwrap();
    c.max_poll_records(5);
    read_at_least(&mut c, 5);
    c.commit_offsets(&[("t", 0, 42)]).unwrap();
    assert_eq!(c.committed("t", 0).unwrap(), Some(42));
    assert_eq!(lag_rows(&log, "g"), vec![row("t", 0, Some(42), 100, 58)]);
    drop(c);

    let mut c = log.consumer("g");
    c.subscribe(&["t"]).unwrap();
    c.max_poll_records(3);
    let recs = c.poll(WAIT).unwrap();
    assert!(!recs.is_empty() && recs.len() <= 3, "{:?}", offsets(&recs));
    let want: Vec<(u32, u64)> = (42..42 + recs.len() as u64).map(|o| (0, o)).collect();
    assert_eq!(offsets(&recs), want, "resumes at the committed offset 42");
    let pos = 42 + recs.len() as u64;
    assert_eq!(c.position("t", 0).unwrap(), pos);

    // commit() then stores the position reached by poll.
    c.commit().unwrap();
    assert_eq!(c.committed("t", 0).unwrap(), Some(pos));
    // The end offset is a valid commit: nothing left to read.
    c.commit_offsets(&[("t", 0, 100)]).unwrap();
    assert_eq!(lag_rows(&log, "g"), vec![row("t", 0, Some(100), 100, 0)]);
}

#[test]
fn committing_or_seeking_a_partition_not_owned_is_not_assigned() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 2);
    fill(&log, "t", 0, 10);
    fill(&log, "t", 1, 10);

    // Manual assignment of partition 0 only.
    let mut c = log.consumer("g");
    c.assign(&[("t", 0)]).unwrap();
    let r = c.commit_offsets(&[("t", 1, 3)]);
    assert!(matches!(r, Err(Error::NotAssigned { .. })), "{r:?}");
    let r = c.seek("t", 1, Offset::Earliest);
    assert!(matches!(r, Err(Error::NotAssigned { .. })), "{r:?}");
    let r = c.seek("other", 0, Offset::Earliest);
    assert!(r.is_err(), "seek of an unknown topic: {r:?}");
    // A failed call has no effect: the owned partition of a mixed list is not committed.
    let r = c.commit_offsets(&[("t", 0, 5), ("t", 1, 5)]);
    assert!(matches!(r, Err(Error::NotAssigned { .. })), "{r:?}");
    assert_eq!(c.committed("t", 0).unwrap(), None);
    assert_eq!(c.committed("t", 1).unwrap(), None);
    c.commit_offsets(&[("t", 0, 5)]).unwrap();
    assert_eq!(c.committed("t", 0).unwrap(), Some(5));
    drop(c);

    // A group member owns nothing between subscribe and its first poll.
    let mut c = log.consumer("h");
    c.subscribe(&["t"]).unwrap();
    assert_eq!(c.assignment(), vec![]);
    let r = c.commit_offsets(&[("t", 0, 1)]);
    assert!(
        matches!(r, Err(Error::NotAssigned { .. })),
        "before the first poll: {r:?}"
    );
    let r = c.seek("t", 0, Offset::At(1));
    assert!(
        matches!(r, Err(Error::NotAssigned { .. })),
        "before the first poll: {r:?}"
    );
    assert_eq!(c.committed("t", 0).unwrap(), None);
    read_n(&mut c, 20);
    c.commit_offsets(&[("t", 0, 1)]).unwrap();
    c.seek("t", 0, Offset::At(1)).unwrap();
    assert_eq!(c.committed("t", 0).unwrap(), Some(1));
}

#[test]
fn poll_without_subscription_or_assignment_is_not_subscribed() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 1);
    fill(&log, "t", 0, 3);

    let mut c = log.consumer("g");
    let r = c.poll(EMPTY);
    assert!(matches!(r, Err(Error::NotSubscribed { .. })), "{r:?}");
    let r = block_on(c.next_batch());
    assert!(matches!(r, Err(Error::NotSubscribed { .. })), "next_batch: {r:?}");
    assert_eq!(c.assignment(), vec![]);

    c.subscribe(&["t"]).unwrap();
    read_n(&mut c, 3);
    c.subscribe(&[]).unwrap();
    assert_eq!(c.assignment(), vec![]);
    let r = c.poll(EMPTY);
    assert!(
        matches!(r, Err(Error::NotSubscribed { .. })),
        "after subscribe(&[]): {r:?}"
    );

    c.assign(&[("t", 0)]).unwrap();
    c.poll(EMPTY).expect("an assigned consumer polls");
}

#[test]
fn poll_after_assigning_nothing_is_not_subscribed() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 1);
    fill(&log, "t", 0, 3);

    // An empty assignment is no assignment (Kafka: assign(empty) = unsubscribe).
    let mut c = log.consumer("g");
    c.assign(&[("t", 0)]).unwrap();
    read_n(&mut c, 3);
    c.assign(&[]).unwrap();
    assert_eq!(c.assignment(), vec![]);
    let r = c.poll(EMPTY);
    assert!(
        matches!(r, Err(Error::NotSubscribed { .. })),
        "after assign(&[]): {r:?}"
    );
}

#[test]
fn subscribing_to_an_unknown_topic_is_unknown_topic_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 1);
    fill(&log, "t", 0, 3);

    let mut c = log.consumer("g");
    let r = c.subscribe(&["nope"]);
    assert!(matches!(r, Err(Error::UnknownTopic { .. })), "{r:?}");
    let r = c.subscribe(&["t", "nope"]);
    assert!(matches!(r, Err(Error::UnknownTopic { .. })), "{r:?}");
    let r = c.poll(EMPTY);
    assert!(
        matches!(r, Err(Error::NotSubscribed { .. })),
        "a refused subscribe subscribes to nothing: {r:?}"
    );
    assert_eq!(lag_rows(&log, "g"), vec![], "a refused subscribe joins no group");

    // The same for a consumer already subscribed: it keeps its subscription.
    c.subscribe(&["t"]).unwrap();
    read_n(&mut c, 3);
    let r = c.subscribe(&["t", "nope"]);
    assert!(matches!(r, Err(Error::UnknownTopic { .. })), "{r:?}");
    fill(&log, "t", 0, 1);
    let got = c.poll(WAIT).unwrap();
    assert!(!got.is_empty(), "still subscribed to t");

    // Manual assignment of unknown topics and partitions.
    let mut m = log.consumer("m");
    let r = m.assign(&[("nope", 0)]);
    assert!(matches!(r, Err(Error::UnknownTopic { .. })), "{r:?}");
    let r = m.assign(&[("t", 0), ("t", 9)]);
    assert!(matches!(r, Err(Error::UnknownPartition { .. })), "{r:?}");
    assert_eq!(m.assignment(), vec![], "a refused assign assigns nothing");
}

#[test]
fn seek_earliest_latest_at_and_timestamp() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 1);
    fill_timed(&log, "t", 10); // offset o has timestamp T0 + o * 1000

    let mut c = log.consumer("g");
    c.assign(&[("t", 0)]).unwrap();
    c.max_poll_records(2);

    c.seek("t", 0, Offset::At(5)).unwrap();
    assert_eq!(c.position("t", 0).unwrap(), 5);
    let recs = c.poll(WAIT).unwrap();
    assert_eq!(recs[0].offset(), 5);
    assert_eq!(recs[0].timestamp(), T0 + 5000);
    check(&recs[0]);
    assert_eq!(c.position("t", 0).unwrap(), recs.last().unwrap().offset() + 1);

    c.seek("t", 0, Offset::Earliest).unwrap();
    assert_eq!(c.position("t", 0).unwrap(), 0);
    assert_eq!(c.poll(WAIT).unwrap()[0].offset(), 0);

    c.seek("t", 0, Offset::Latest).unwrap();
    assert_eq!(c.position("t", 0).unwrap(), 10);
    assert_empty_poll(&mut c);

    // The end offset is inside [start, end].
    c.seek("t", 0, Offset::At(10)).unwrap();
    assert_eq!(c.position("t", 0).unwrap(), 10);
    c.seek("t", 0, Offset::At(0)).unwrap();
    assert_eq!(c.position("t", 0).unwrap(), 0);

    c.seek("t", 0, Offset::At(3)).unwrap();
    let r = c.seek("t", 0, Offset::At(11));
    assert!(matches!(r, Err(Error::OffsetOutOfRange { .. })), "{r:?}");
    assert_eq!(c.position("t", 0).unwrap(), 3, "a refused seek moves nothing");
    let r = c.seek("t", 0, Offset::At(u64::MAX));
    assert!(matches!(r, Err(Error::OffsetOutOfRange { .. })), "{r:?}");

    // Timestamp: the first offset with a timestamp at or after it.
    c.seek("t", 0, Offset::Timestamp(T0 + 3500)).unwrap();
    assert_eq!(c.position("t", 0).unwrap(), 4);
    assert_eq!(c.poll(WAIT).unwrap()[0].offset(), 4);
    c.seek("t", 0, Offset::Timestamp(T0 + 7000)).unwrap();
    assert_eq!(c.position("t", 0).unwrap(), 7);
    c.seek("t", 0, Offset::Timestamp(T0 - 1)).unwrap();
    assert_eq!(c.position("t", 0).unwrap(), 0);
    // Past the last record: the end offset.
    c.seek("t", 0, Offset::Timestamp(T0 + 100_000)).unwrap();
    assert_eq!(c.position("t", 0).unwrap(), 10);
    assert_empty_poll(&mut c);

    // seek does not commit; commit() then stores the sought position.
    assert_eq!(c.committed("t", 0).unwrap(), None);
    c.seek("t", 0, Offset::At(6)).unwrap();
    c.commit().unwrap();
    assert_eq!(c.committed("t", 0).unwrap(), Some(6));

    // A subscribed member seeks its own partitions after its first poll.
    drop(c);
    let mut s = log.consumer("s");
    s.subscribe(&["t"]).unwrap();
    read_n(&mut s, 10);
    assert_eq!(s.position("t", 0).unwrap(), 10);
    s.seek("t", 0, Offset::At(8)).unwrap();
    let recs = read_n(&mut s, 2);
    assert_eq!(offsets(&recs), vec![(0, 8), (0, 9)]);
    assert_eq!(s.position("t", 0).unwrap(), 10);
}

// ---------------------------------------------------------------------------
// manual assignment

#[test]
fn assign_is_manual_without_group_balancing() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 3);
    for p in 0..3 {
        fill(&log, "t", p, 10);
    }

    let mut a = log.consumer("g");
    a.assign(&[("t", 0), ("t", 1)]).unwrap();
    assert_eq!(sorted(a.assignment()), owned(&[("t", 0), ("t", 1)]));
    let recs = read_n(&mut a, 20);
    let per = by_partition(&recs);
    assert_eq!(per.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
    for offs in per.values() {
        assert_eq!(offs, &(0..10).collect::<Vec<u64>>());
    }
    assert_empty_poll(&mut a);
    assert_eq!(sorted(a.assignment()), owned(&[("t", 0), ("t", 1)]));

    // Two consumers of one group, both assigned partition 0: both read all of it.
    let mut b = log.consumer("g");
    b.assign(&[("t", 0)]).unwrap();
    let recs = read_n(&mut b, 10);
    assert_eq!(offsets(&recs), (0..10).map(|o| (0, o)).collect::<Vec<_>>());
    fill(&log, "t", 0, 2);
    assert_eq!(offsets(&read_n(&mut a, 2)), vec![(0, 10), (0, 11)]);
    assert_eq!(offsets(&read_n(&mut b, 2)), vec![(0, 10), (0, 11)]);

    // A subscribed member of the same group is not balanced against them: it gets every partition.
    let mut s = log.consumer("g");
    s.subscribe(&["t"]).unwrap();
    read_n(&mut s, 32);
    assert_eq!(sorted(s.assignment()), owned(&[("t", 0), ("t", 1), ("t", 2)]));
    assert_eq!(sorted(a.assignment()), owned(&[("t", 0), ("t", 1)]));
    assert_eq!(b.assignment(), owned(&[("t", 0)]));
    a.commit_offsets(&[("t", 1, 4)]).unwrap();
    b.commit_offsets(&[("t", 0, 3)]).unwrap();
    assert_eq!(
        s.committed("t", 0).unwrap(),
        Some(3),
        "one group, one committed offset"
    );
    assert_eq!(s.committed("t", 1).unwrap(), Some(4));

    // Re-assigning replaces the assignment.
    a.assign(&[("t", 2)]).unwrap();
    assert_eq!(a.assignment(), owned(&[("t", 2)]));
    let r = a.commit_offsets(&[("t", 0, 1)]);
    assert!(matches!(r, Err(Error::NotAssigned { .. })), "{r:?}");
}

// ---------------------------------------------------------------------------
// waking on appends

#[test]
fn a_blocked_poll_wakes_when_a_record_is_appended() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 3);

    let mut c = log.consumer("g");
    c.subscribe(&["t"]).unwrap();
    assert_empty_poll(&mut c); // takes the assignment; nothing to read
    assert_eq!(c.assignment().len(), 3);

    for round in 0..5u32 {
        let partition = round % 3;
        let producer = log.producer();
        let got = std::thread::scope(|s| {
            let sender = s.spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                producer
                    .send_to("t", partition, Record::new(format!("wake-{round}")))
                    .unwrap()
            });
            // Returns as soon as the record is appended, long before 10 s.
            let got = c.poll(Duration::from_secs(10)).unwrap();
            (got, sender.join().unwrap())
        });
        let (recs, meta) = got;
        assert_eq!(recs.len(), 1, "round {round}: {:?}", offsets(&recs));
        assert_eq!(recs[0].partition(), meta.partition);
        assert_eq!(recs[0].offset(), meta.offset);
        assert_eq!(
            recs[0].value().map(|v| v.as_ref()),
            Some(format!("wake-{round}").as_bytes())
        );
    }
}

#[test]
fn next_batch_waits_for_records_sent_later_without_a_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 2);

    // Compile-time checks: the consumer and the future are Send.
    assert_send::<Consumer>();
    let mut c = log.consumer("g");
    c.subscribe(&["t"]).unwrap();
    {
        let fut = c.next_batch();
        assert_send_val(&fut); // dropped unpolled at the end of the block: no effect
    }

    let producer = log.producer();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        for i in 0..3u64 {
            producer
                .send_to("t", (i % 2) as u32, Record::new(format!("later-{i}")))
                .unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    // The consumer moves to another thread (Consumer: Send) and waits there.
    let (c, got) = std::thread::spawn(move || {
        let mut got = Vec::new();
        while got.len() < 3 {
            let batch = block_on(c.next_batch()).expect("next_batch");
            assert!(!batch.is_empty(), "next_batch resolved with no records");
            got.extend(batch);
        }
        (c, got)
    })
    .join()
    .unwrap();
    sender.join().unwrap();
    let mut values: Vec<(u32, u64, String)> = got
        .iter()
        .map(|r| {
            (
                r.partition(),
                r.offset(),
                String::from_utf8(r.value().unwrap().to_vec()).unwrap(),
            )
        })
        .collect();
    values.sort_by(|a, b| a.2.cmp(&b.2));
    assert_eq!(
        values,
        vec![
            (0, 0, "later-0".to_string()),
            (1, 0, "later-1".to_string()),
            (0, 1, "later-2".to_string())
        ]
    );
    drop(c);
}

// ---------------------------------------------------------------------------
// group_lag

#[test]
fn group_lag_lists_subscribed_and_committed_partitions() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = open(tmp.path());
        topic(&log, "a", 2);
        topic(&log, "b", 3);
        fill(&log, "a", 0, 10);
        fill(&log, "a", 1, 20);
        for p in 0..3 {
            fill(&log, "b", p, 5 + p as u64);
        }
        assert_eq!(lag_rows(&log, "nobody"), vec![], "unknown group");

        let mut c = log.consumer("g");
        c.subscribe(&["a"]).unwrap();
        // Subscribed, nothing committed: lag = end - start.
        assert_eq!(
            lag_rows(&log, "g"),
            vec![row("a", 0, None, 10, 10), row("a", 1, None, 20, 20)]
        );
        read_n(&mut c, 30);
        // Reading moves positions, not the lag: it is measured from the commit.
        assert_eq!(
            lag_rows(&log, "g"),
            vec![row("a", 0, None, 10, 10), row("a", 1, None, 20, 20)]
        );
        c.commit_offsets(&[("a", 0, 4)]).unwrap();
        assert_eq!(
            lag_rows(&log, "g"),
            vec![row("a", 0, Some(4), 10, 6), row("a", 1, None, 20, 20)]
        );
        c.commit().unwrap();
        assert_eq!(
            lag_rows(&log, "g"),
            vec![row("a", 0, Some(10), 10, 0), row("a", 1, Some(20), 20, 0)]
        );
        fill(&log, "a", 1, 5);
        assert_eq!(
            lag_rows(&log, "g"),
            vec![row("a", 0, Some(10), 10, 0), row("a", 1, Some(20), 25, 5)]
        );
        // The member leaves; the group's commits stay.
        drop(c);
        assert_eq!(
            lag_rows(&log, "g"),
            vec![row("a", 0, Some(10), 10, 0), row("a", 1, Some(20), 25, 5)]
        );

        assert_eq!(lag_rows(&log, "g").len(), 2, "b is not g's topic");
        log.close().unwrap();
    }
    let log = open(tmp.path());
    assert_eq!(
        lag_rows(&log, "g"),
        vec![row("a", 0, Some(10), 10, 0), row("a", 1, Some(20), 25, 5)],
        "after reopen"
    );
    assert_eq!(lag_rows(&log, "nobody"), vec![]);
    // Internal topics are listed nowhere.
    assert!(!log.topics().iter().any(|t| t.starts_with("__")));
}

#[test]
fn group_lag_lists_every_partition_of_a_topic_committed_on() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = open(tmp.path());
        topic(&log, "a", 1);
        topic(&log, "b", 3);
        fill(&log, "a", 0, 4);
        for p in 0..3 {
            fill(&log, "b", p, 5 + p as u64);
        }
        // A manually assigned consumer (not subscribed) commits on one partition of b.
        let mut h = log.consumer("h");
        h.assign(&[("b", 1)]).unwrap();
        h.commit_offsets(&[("b", 1, 2)]).unwrap();
        assert_eq!(
            lag_rows(&log, "h"),
            vec![
                row("b", 0, None, 5, 5),
                row("b", 1, Some(2), 6, 4),
                row("b", 2, None, 7, 7)
            ]
        );
        drop(h);
        log.close().unwrap();
    }
    let log = open(tmp.path());
    assert_eq!(
        lag_rows(&log, "h"),
        vec![
            row("b", 0, None, 5, 5),
            row("b", 1, Some(2), 6, 4),
            row("b", 2, None, 7, 7)
        ],
        "after reopen"
    );
}

// ---------------------------------------------------------------------------
// groups, persistence, close

#[test]
fn groups_on_one_topic_are_independent() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 2);
    fill(&log, "t", 0, 25);
    fill(&log, "t", 1, 25);

    let mut g1 = log.consumer("g1");
    let mut g2 = log.consumer("g2");
    g1.subscribe(&["t"]).unwrap();
    g2.subscribe(&["t"]).unwrap();
    let r1 = read_n(&mut g1, 50);
    let r2 = read_n(&mut g2, 50);
    let all: Vec<(u32, u64)> = (0..2).flat_map(|p| (0..25).map(move |o| (p, o))).collect();
    for recs in [&r1, &r2] {
        let mut got = offsets(recs);
        got.sort();
        assert_eq!(got, all, "each group reads everything");
    }
    assert_eq!(sorted(g1.assignment()), owned(&[("t", 0), ("t", 1)]));
    assert_eq!(sorted(g2.assignment()), owned(&[("t", 0), ("t", 1)]));

    g1.commit().unwrap();
    assert_eq!(g1.committed("t", 0).unwrap(), Some(25));
    assert_eq!(
        g2.committed("t", 0).unwrap(),
        None,
        "g1's commit does not move g2"
    );
    g2.commit_offsets(&[("t", 0, 7), ("t", 1, 9)]).unwrap();
    assert_eq!(g1.committed("t", 0).unwrap(), Some(25));
    assert_eq!(g1.committed("t", 1).unwrap(), Some(25));
    assert_eq!(g2.committed("t", 0).unwrap(), Some(7));
    assert_eq!(g2.committed("t", 1).unwrap(), Some(9));
    assert_eq!(
        lag_rows(&log, "g1"),
        vec![row("t", 0, Some(25), 25, 0), row("t", 1, Some(25), 25, 0)]
    );
    assert_eq!(
        lag_rows(&log, "g2"),
        vec![row("t", 0, Some(7), 25, 18), row("t", 1, Some(9), 25, 16)]
    );

    // A third group starts from the beginning whatever the others did.
    let mut g3 = log.consumer("g3");
    g3.subscribe(&["t"]).unwrap();
    let mut got = offsets(&read_n(&mut g3, 50));
    got.sort();
    assert_eq!(got, all);
}

#[test]
fn commits_survive_close_and_drop_without_close() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = open(tmp.path());
        topic(&log, "t", 2);
        fill(&log, "t", 0, 30);
        fill(&log, "t", 1, 30);
        let mut c = log.consumer("g");
        c.subscribe(&["t"]).unwrap();
        read_n(&mut c, 60);
        c.commit_offsets(&[("t", 0, 11), ("t", 1, 12)]).unwrap();
        drop(c);
        log.close().unwrap();
    }
    {
        let log = open(tmp.path());
        let mut c = log.consumer("g");
        assert_eq!(c.committed("t", 0).unwrap(), Some(11), "after close");
        assert_eq!(c.committed("t", 1).unwrap(), Some(12), "after close");
        c.subscribe(&["t"]).unwrap();
        let recs = read_n(&mut c, 19 + 18);
        let per = by_partition(&recs);
        assert_eq!(per[&0], (11..30).collect::<Vec<u64>>());
        assert_eq!(per[&1], (12..30).collect::<Vec<u64>>());
        c.commit_offsets(&[("t", 0, 21)]).unwrap();
        c.commit_offsets(&[("t", 1, 22)]).unwrap();
        c.commit_offsets(&[("t", 0, 23)]).unwrap(); // the last commit wins
                                                    // No close: the consumer and the last log handle are dropped.
        drop(c);
        drop(log);
    }
    {
        let log = open(tmp.path());
        let c = log.consumer("g");
        assert_eq!(c.committed("t", 0).unwrap(), Some(23), "after drop without close");
        assert_eq!(c.committed("t", 1).unwrap(), Some(22), "after drop without close");
        drop(c);
        assert_eq!(
            lag_rows(&log, "g"),
            vec![row("t", 0, Some(23), 30, 7), row("t", 1, Some(22), 30, 8)]
        );
        log.close().unwrap();
    }
    // Opening twice changes nothing.
    let log = open(tmp.path());
    let mut c = log.consumer("g");
    assert_eq!(c.committed("t", 0).unwrap(), Some(23));
    c.subscribe(&["t"]).unwrap();
    let per = by_partition(&read_n(&mut c, 7 + 8));
    assert_eq!(per[&0], (23..30).collect::<Vec<u64>>());
    assert_eq!(per[&1], (22..30).collect::<Vec<u64>>());
}

#[test]
fn after_close_consumer_calls_return_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 1);
    fill(&log, "t", 0, 5);
    let mut c = log.consumer("g");
    c.subscribe(&["t"]).unwrap();
    read_n(&mut c, 5);
    c.commit().unwrap();
    let mut m = log.consumer("m");
    m.assign(&[("t", 0)]).unwrap();

    log.clone().close().unwrap();

    fn closed<T: Debug>(what: &str, r: tidelog::Result<T>) {
        assert!(
            matches!(r, Err(Error::Closed { .. })),
            "{what} after close: {r:?}"
        );
    }
    closed("poll", c.poll(EMPTY));
    closed("next_batch", block_on(c.next_batch()));
    closed("commit", c.commit());
    closed("commit_offsets", c.commit_offsets(&[("t", 0, 1)]));
    closed("seek", c.seek("t", 0, Offset::Earliest));
    closed("position", c.position("t", 0));
    closed("committed", c.committed("t", 0));
    closed("subscribe", c.subscribe(&["t"]));
    closed("assign", c.assign(&[("t", 0)]));
    closed("poll of an assigned consumer", m.poll(EMPTY));
    closed("group_lag", log.group_lag("g"));
    closed("group_lag of an unknown group", log.group_lag("nobody"));
    let mut late = log.consumer("late");
    closed("subscribe of a consumer made after close", late.subscribe(&["t"]));
    closed("poll of a consumer made after close", late.poll(EMPTY));
    drop(c);
    drop(m);
    drop(late);
    log.close().unwrap();

    // The commit made before close is there.
    let log = open(tmp.path());
    assert_eq!(log.consumer("g").committed("t", 0).unwrap(), Some(5));
}

#[test]
fn trait_bounds_users_rely_on() {
    assert_send::<Consumer>();
    assert_debug::<Consumer>();
    assert_clone_eq::<PartitionLag>();
    assert_send::<ConsumedRecord>();
}

/// Formatting a consumer with `{:?}` (every public type is `Debug`) must not
/// crash the process. It runs in a child process (this binary re-run with
/// `TIDELOG_DEBUG_CHILD=1`), so a crash fails this test only.
#[test]
fn debug_formatting_a_consumer_does_not_crash() {
    if std::env::var_os("TIDELOG_DEBUG_CHILD").is_some() {
        let tmp = tempfile::tempdir().unwrap();
        let log = open(tmp.path());
        topic(&log, "t", 2);
        fill(&log, "t", 0, 3);
        let mut c = log.consumer("g");
        let before = format!("{c:?}");
        c.subscribe(&["t"]).unwrap();
        let recs = read_n(&mut c, 3);
        c.commit().unwrap();
        let after = format!("{c:?} {:?} {:?}", recs[0], log.group_lag("g").unwrap());
        println!("DEBUG-OK {} {}", before.len(), after.len());
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "debug_formatting_a_consumer_does_not_crash",
            "--nocapture",
        ])
        .env("TIDELOG_DEBUG_CHILD", "1")
        .output()
        .expect("run the child");
    let signal = std::os::unix::process::ExitStatusExt::signal(&out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("DEBUG-OK"),
        "format!(\"{{:?}}\") of a Consumer killed the process: {:?} (signal {signal:?})\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
}
