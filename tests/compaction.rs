//! Key compaction (KAFKA.md §7) through the public API: after cleaning, reading
//! from the start gives, for the cleaned part, only the latest record of each
//! key, at its original offset; nothing is invented or changed; the end offset
//! never moves; tombstones stay for `delete_retention_ms` after the cleaning
//! that first kept them, then go; the result survives reopen; a reader holding
//! records across a cleaning keeps them; `__consumer_offsets` is compacted too;
//! leftover `.cleaned`/`.swap` files from a crash are finished or discarded.
//!
//! Method: a proptest against a model (the written history), a manual clock for
//! tombstone horizons, and files placed by hand for the crash states.

use bytes::Bytes;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tidelog::{Cleanup, Log, LogConfig, ManualClock, Record, TopicConfig};

const T0: i64 = 1_700_000_000_000;
const DAY: u64 = 86_400_000;

fn open(dir: &std::path::Path, clock: &ManualClock) -> Log {
    Log::open(
        dir,
        LogConfig::default()
            .maintenance_interval(None)
            .clock(Arc::new(clock.clone())),
    )
    .unwrap()
}

fn compacted() -> TopicConfig {
    TopicConfig::default()
        .cleanup(Cleanup::Compact)
        .segment_bytes(600)
        .min_cleanable_dirty_ratio(0.0)
        .delete_retention_ms(DAY)
}

fn read_all(log: &Log, topic: &str) -> Vec<tidelog::ConsumedRecord> {
    let end = log.describe(topic).unwrap().partitions[0].end_offset;
    let mut next = log.describe(topic).unwrap().partitions[0].start_offset;
    let mut out = Vec::new();
    while next < end {
        let got = log.fetch(topic, 0, next, 1000).unwrap();
        let Some(last) = got.last() else { break };
        next = last.offset() + 1;
        out.extend(got);
    }
    out
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u16),
    Delete(u8),
    Clean,
    Advance(u64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..12, any::<u16>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0u8..12).prop_map(Op::Delete),
        2 => Just(Op::Clean),
        1 => (0u64..2 * DAY).prop_map(Op::Advance),
        1 => Just(Op::Reopen),
    ]
}

fn run(ops: Vec<Op>) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut log = open(tmp.path(), &clock);
    log.create_topic("c", compacted()).unwrap();
    // The model: every record ever written, by offset.
    let mut written: Vec<(Bytes, Option<Bytes>)> = Vec::new();
    for op in ops {
        match op {
            Op::Put(k, v) => {
                let key = Bytes::from(format!("key-{k}"));
                let value = Bytes::from(format!("value-{v}-{}", "x".repeat(usize::from(v % 40))));
                let m = log
                    .producer()
                    .send("c", Record::new(value.clone()).with_key(key.clone()))
                    .unwrap();
                assert_eq!(m.offset, written.len() as u64);
                written.push((key, Some(value)));
            }
            Op::Delete(k) => {
                let key = Bytes::from(format!("key-{k}"));
                log.producer().send("c", Record::tombstone(key.clone())).unwrap();
                written.push((key, None));
            }
            Op::Clean => {
                log.run_maintenance().unwrap();
            }
            Op::Advance(ms) => clock.advance(ms as i64),
            Op::Reopen => {
                log.close().unwrap();
                log = open(tmp.path(), &clock);
            }
        }
        // Invariants after every step.
        let info = log.describe("c").unwrap().partitions[0].clone();
        assert_eq!(
            info.end_offset,
            written.len() as u64,
            "the end offset never moves"
        );
        let all = read_all(&log, "c");
        let mut latest: HashMap<&Bytes, u64> = HashMap::new();
        for (o, (k, _)) in written.iter().enumerate() {
            latest.insert(k, o as u64);
        }
        let mut last = None;
        for r in &all {
            let (k, v) = &written[r.offset() as usize];
            assert_eq!(
                r.key(),
                Some(k),
                "record at {} is what was written there",
                r.offset()
            );
            assert_eq!(r.value(), v.as_ref(), "value at {}", r.offset());
            assert!(last.is_none_or(|l| l < r.offset()), "offsets rise");
            last = Some(r.offset());
        }
        // The latest non-tombstone record of every key is always there.
        let present: std::collections::HashSet<u64> = all.iter().map(|r| r.offset()).collect();
        for (k, o) in &latest {
            if written[*o as usize].1.is_some() {
                assert!(present.contains(o), "latest record of {k:?} at {o} is kept");
            }
        }
    }
    log.close().unwrap();
}

proptest! {
    // Quick in CI; PROPTEST_CASES=N for a long run.
    #![proptest_config(ProptestConfig::with_cases(cases_from_env(48)))]
    #[test]
    fn compaction_matches_the_model(ops in proptest::collection::vec(op(), 1..150)) {
        run(ops);
    }
}

#[test]
fn cleaning_keeps_only_the_latest_per_key_and_tombstones_expire() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let log = open(tmp.path(), &clock);
    log.create_topic("c", compacted()).unwrap();
    let p = log.producer();
    for round in 0..10 {
        for k in 0..5 {
            p.send(
                "c",
                Record::new(format!("{k}-{round}-{}", "y".repeat(20))).with_key(format!("k{k}")),
            )
            .unwrap();
        }
    }
    p.send("c", Record::tombstone("k0")).unwrap();
    // Fill a few more segments so the tombstone's segment is sealed.
    for i in 0..20 {
        p.send(
            "c",
            Record::new(format!("other-{i}-{}", "z".repeat(30))).with_key(format!("o{}", i % 2)),
        )
        .unwrap();
    }
    let held = log.fetch("c", 0, 0, 5).unwrap();
    let before = log.describe("c").unwrap().partitions[0].clone();
    let report = log.run_maintenance().unwrap();
    assert!(report.segments_compacted > 0, "{report:?}");
    assert!(report.bytes_reclaimed > 0);
    let after = log.describe("c").unwrap().partitions[0].clone();
    assert_eq!(after.end_offset, before.end_offset);
    assert!(after.size_bytes < before.size_bytes);
    let all = read_all(&log, "c");
    let k1: Vec<_> = all.iter().filter(|r| r.key().unwrap() == "k1").collect();
    assert_eq!(k1.len(), 1, "one record of k1 is left");
    assert_eq!(k1[0].value().unwrap(), &format!("1-9-{}", "y".repeat(20)));
    assert_eq!(k1[0].offset(), 46, "at its original offset");
    let k0: Vec<_> = all.iter().filter(|r| r.key().unwrap() == "k0").collect();
    assert_eq!(k0.len(), 1, "only the tombstone of k0 is left");
    assert!(k0[0].value().is_none());
    assert_eq!(
        held[0].value().unwrap(),
        &format!("0-0-{}", "y".repeat(20)),
        "held records stay valid"
    );
    // Before the horizon the tombstone stays; after it, it goes.
    clock.advance(DAY as i64 / 2);
    log.run_maintenance().unwrap();
    assert!(read_all(&log, "c").iter().any(|r| r.key().unwrap() == "k0"));
    clock.advance(DAY as i64);
    log.run_maintenance().unwrap();
    assert!(
        !read_all(&log, "c").iter().any(|r| r.key().unwrap() == "k0"),
        "tombstone removed after its retention"
    );
    // The cleaned state survives reopen.
    let kept = read_all(&log, "c")
        .iter()
        .map(|r| (r.offset(), r.value().cloned()))
        .collect::<Vec<_>>();
    log.close().unwrap();
    let log = open(tmp.path(), &clock);
    let again = read_all(&log, "c")
        .iter()
        .map(|r| (r.offset(), r.value().cloned()))
        .collect::<Vec<_>>();
    assert_eq!(kept, again);
    log.close().unwrap();
}

#[test]
fn consumer_offsets_are_compacted_and_commits_survive() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let log = open(tmp.path(), &clock);
    // Small segments for the offsets topic, so that it rolls and can be cleaned.
    let cfg = log
        .describe("__consumer_offsets")
        .unwrap()
        .config
        .segment_bytes(4096)
        .min_cleanable_dirty_ratio(0.0);
    log.alter_topic("__consumer_offsets", cfg).unwrap();
    log.close().unwrap();
    let log = open(tmp.path(), &clock);
    log.create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    log.producer().send_to("t", 0, Record::new("x")).unwrap();
    log.producer().send_to("t", 1, Record::new("y")).unwrap();
    let mut c = log.consumer("g");
    c.assign(&[("t", 0), ("t", 1)]).unwrap();
    for i in 0..2000u64 {
        c.commit_offsets(&[("t", 0, i % 2), ("t", 1, 1 - i % 2)]).unwrap();
    }
    c.commit_offsets(&[("t", 0, 1), ("t", 1, 0)]).unwrap();
    drop(c);
    let before = log.describe("__consumer_offsets").unwrap().partitions[0].clone();
    let report = log.run_maintenance().unwrap();
    assert!(report.segments_compacted > 0, "{report:?}");
    let after = log.describe("__consumer_offsets").unwrap().partitions[0].clone();
    assert!(
        after.size_bytes < before.size_bytes / 4,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.end_offset, before.end_offset);
    log.close().unwrap();
    let log = open(tmp.path(), &clock);
    let c = log.consumer("g");
    assert_eq!(c.committed("t", 0).unwrap(), Some(1));
    assert_eq!(c.committed("t", 1).unwrap(), Some(0));
    drop(c);
    log.close().unwrap();
}

#[test]
fn leftover_cleaned_and_swap_files_are_discarded_or_completed() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let log = open(tmp.path(), &clock);
    log.create_topic("c", compacted()).unwrap();
    for i in 0..30 {
        log.producer()
            .send(
                "c",
                Record::new(format!("v{i}-{}", "q".repeat(30))).with_key(format!("k{}", i % 3)),
            )
            .unwrap();
    }
    let want = read_all(&log, "c")
        .iter()
        .map(|r| (r.offset(), r.value().cloned()))
        .collect::<Vec<_>>();
    log.close().unwrap();
    let pdir = tmp.path().join("c-0");
    let first = "00000000000000000000";
    // A crash before the commit point: .cleaned files and index .swap files only.
    std::fs::write(pdir.join(format!("{first}.log.cleaned")), b"garbage").unwrap();
    std::fs::write(pdir.join(format!("{first}.index.swap")), [0u8; 16]).unwrap();
    let log = open(tmp.path(), &clock);
    let got = read_all(&log, "c")
        .iter()
        .map(|r| (r.offset(), r.value().cloned()))
        .collect::<Vec<_>>();
    assert_eq!(got, want, "an unfinished cleaning is discarded");
    log.close().unwrap();
    let names: Vec<String> = std::fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(".cleaned") || n.ends_with(".swap")),
        "{names:?}"
    );
    // A crash in the first phase of a multi-segment swap: a later segment's log
    // already renamed to .swap (here garbage), a lower one still .cleaned. The
    // swap must be discarded, not completed.
    let second = std::fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log") && !n.starts_with(first))
        .min()
        .unwrap();
    std::fs::write(pdir.join(format!("{second}.swap")), b"not a segment").unwrap();
    std::fs::write(pdir.join(format!("{first}.log.cleaned")), b"garbage").unwrap();
    let log = open(tmp.path(), &clock);
    let got = read_all(&log, "c")
        .iter()
        .map(|r| (r.offset(), r.value().cloned()))
        .collect::<Vec<_>>();
    assert_eq!(got, want, "an interrupted first phase is discarded whole");
    log.close().unwrap();
    // A crash after the commit point: the .log.swap is renamed into place.
    let log_file = pdir.join(format!("{first}.log"));
    std::fs::copy(&log_file, pdir.join(format!("{first}.log.swap"))).unwrap();
    let log = open(tmp.path(), &clock);
    let got = read_all(&log, "c")
        .iter()
        .map(|r| (r.offset(), r.value().cloned()))
        .collect::<Vec<_>>();
    assert_eq!(got, want, "a committed swap is completed");
    log.close().unwrap();
    let _ = Duration::from_millis(1);
}

/// The number of proptest cases: `PROPTEST_CASES` if set, else the quick default.
fn cases_from_env(quick: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(quick)
}
