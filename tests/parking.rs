//! The open-partition budget (`LogConfig::max_open_partitions`): partitions
//! beyond it are parked (files closed, state kept in memory) and woken by
//! their next use. What a user depends on: nothing is lost or changed by
//! parking, under appends, reads, retention, `delete_records`, reopen and a
//! drop without close; the budget holds; and a log of thousands of
//! partitions runs under a small descriptor limit with the default config.
//!
//! Method: a model (every acknowledged record of every partition, and each
//! partition's start offset) checked after every phase.

use std::collections::BTreeMap;
use std::path::Path;
use tidelog::{Error, Log, LogConfig, Record, TopicConfig};

const PARTITIONS: u32 = 24;
const BUDGET: usize = 3;

fn open(dir: &Path) -> Log {
    Log::open(
        dir,
        LogConfig::default()
            .maintenance_interval(None)
            .max_open_partitions(BUDGET),
    )
    .unwrap()
}

/// Every partition's records (offset → value) and start offset.
#[derive(Default)]
struct Model {
    records: BTreeMap<u32, BTreeMap<u64, Vec<u8>>>,
    start: BTreeMap<u32, u64>,
}

impl Model {
    /// The partition's start and end offsets.
    fn range(&self, p: u32) -> (u64, u64) {
        let end = self
            .records
            .get(&p)
            .and_then(|r| r.keys().last())
            .map_or(0, |o| o + 1);
        (self.start.get(&p).copied().unwrap_or(0), end)
    }

    fn check(&self, log: &Log, what: &str) {
        for p in 0..PARTITIONS {
            let (start, end) = self.range(p);
            let want: Vec<(u64, Vec<u8>)> = self
                .records
                .get(&p)
                .map(|r| r.range(start..).map(|(o, v)| (*o, v.clone())).collect())
                .unwrap_or_default();
            let info = log.describe("t").unwrap().partitions[p as usize].clone();
            assert_eq!(info.start_offset, start, "{what}: partition {p} start");
            assert_eq!(info.end_offset, end, "{what}: partition {p} end");
            let mut got = Vec::new();
            let mut from = start;
            while from < end {
                let batch = log.fetch("t", p, from, 7).unwrap();
                assert!(!batch.is_empty(), "{what}: partition {p} empty fetch at {from}");
                for r in batch {
                    got.push((r.offset(), r.value().unwrap().to_vec()));
                    from = r.offset() + 1;
                }
            }
            assert_eq!(got, want, "{what}: partition {p} records");
            assert!(
                log.open_partitions() <= BUDGET + 1,
                "{what}: {} partitions open, budget {BUDGET}",
                log.open_partitions()
            );
        }
    }
}

/// xorshift: the test's choices, fixed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn send(log: &Log, model: &mut Model, p: u32, n: u64) {
    let producer = log.producer();
    for _ in 0..n {
        let value = format!("p{p}-{}", model.records.get(&p).map_or(0, BTreeMap::len)).into_bytes();
        let meta = producer.send_to("t", p, Record::new(value.clone())).unwrap();
        model.records.entry(p).or_default().insert(meta.offset, value);
    }
}

#[test]
fn parking_loses_nothing_across_appends_reads_retention_reopen_and_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    {
        let log = open(tmp.path());
        // Small segments: rolls, sealed segments and deletions while parked.
        log.create_topic(
            "t",
            TopicConfig::default().partitions(PARTITIONS).segment_bytes(1024),
        )
        .unwrap();
        assert!(
            log.open_partitions() <= BUDGET + 1,
            "{} open after create",
            log.open_partitions()
        );
        for round in 0..400 {
            let p = rng.below(u64::from(PARTITIONS)) as u32;
            match rng.below(10) {
                0..=5 => send(&log, &mut model, p, 1 + rng.below(20)),
                6 | 7 => {
                    let (start, end) = model.range(p);
                    if end > start {
                        let from = start + rng.below(end - start);
                        let got = log.fetch("t", p, from, 5).unwrap();
                        let want = model.records.get(&p).and_then(|r| r.get(&from)).cloned();
                        assert_eq!(
                            got.first().map(|r| r.value().unwrap().to_vec()),
                            want,
                            "round {round}"
                        );
                    }
                }
                8 => {
                    let (start, end) = model.range(p);
                    if end > start {
                        let to = start + rng.below(end - start + 1);
                        log.delete_records("t", p, to).unwrap();
                        model.start.insert(p, to);
                    }
                }
                _ => {
                    log.run_maintenance().unwrap();
                }
            }
            assert!(
                log.open_partitions() <= BUDGET + 1,
                "round {round}: {} open",
                log.open_partitions()
            );
        }
        model.check(&log, "running");
        log.close().unwrap();
    }
    {
        // A clean reopen opens no partition until it is used.
        let log = open(tmp.path());
        assert_eq!(log.open_partitions(), 0, "partitions opened by a clean reopen");
        model.check(&log, "after a clean reopen");
        for p in 0..PARTITIONS {
            send(&log, &mut model, p, 3);
        }
        // Dropped without close, with parked partitions holding unsynced bytes.
    }
    let log = open(tmp.path());
    model.check(&log, "after a drop without close");
    log.close().unwrap();
}

#[test]
fn a_closed_log_refuses_parked_partitions_too() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    log.create_topic("t", TopicConfig::default().partitions(PARTITIONS))
        .unwrap();
    let mut model = Model::default();
    for p in 0..PARTITIONS {
        send(&log, &mut model, p, 2);
    }
    log.close().unwrap();
    for p in 0..PARTITIONS {
        assert!(
            matches!(log.fetch("t", p, 0, 1), Err(Error::Closed { .. })),
            "partition {p}"
        );
    }
}

/// The child of `thousands_of_partitions_run_under_a_small_descriptor_limit`:
/// runs only with `TIDELOG_PARKING_CHILD` set, under `ulimit -n 128`.
#[test]
fn parking_child() {
    let Ok(dir) = std::env::var("TIDELOG_PARKING_CHILD") else {
        return;
    };
    let partitions = 2_000;
    let log = Log::open(&dir, LogConfig::default().maintenance_interval(None)).unwrap();
    log.create_topic("t", TopicConfig::default().partitions(partitions))
        .unwrap();
    let producer = log.producer();
    for p in 0..partitions {
        producer.send_to("t", p, Record::new(format!("v{p}"))).unwrap();
    }
    drop(producer);
    log.close().unwrap();
    drop(log);
    let log = Log::open(&dir, LogConfig::default().maintenance_interval(None)).unwrap();
    for p in 0..partitions {
        let got = log.fetch("t", p, 0, 10).unwrap();
        let values: Vec<Vec<u8>> = got.iter().map(|r| r.value().unwrap().to_vec()).collect();
        assert_eq!(values, vec![format!("v{p}").into_bytes()], "partition {p}");
    }
    log.close().unwrap();
    println!("parking child: ok");
}

#[test]
fn thousands_of_partitions_run_under_a_small_descriptor_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 128 && exec \"$0\" parking_child --exact --nocapture --test-threads 1")
        .arg(&exe)
        .env("TIDELOG_PARKING_CHILD", tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("parking child: ok"),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
