#![cfg(feature = "internals")]
//! The partition log behaves like a plain in-memory list of records.
//!
//! Method (proptest): random sequences of appends (single records and batches,
//! with keys, null keys and values, headers with null values and duplicate keys,
//! explicit and default timestamps, in and out of order), reads from random
//! offsets with random limits, lookups by timestamp, forced rolls, start-offset
//! moves, reopen after a clean close and after dropping without close. After
//! every operation each answer must equal the model's. Small segments and
//! indexes make size rolls, index-full rolls and time rolls frequent.
//!
//! The same model runs on the simulated disk with flushes and power cuts
//! (RELIABILITY.md S5): after a cut the log holds a prefix of the model at
//! least as long as the last durable point (flush, roll, clean close), with
//! every kept record unchanged; the model is cut to it and the run goes on.

mod common;
use bytes::Bytes;
use common::T0;
use proptest::prelude::*;
use std::sync::Arc;
use tidelog::internals::{CrashModel, PartitionConfig, PartitionLog, RealFs, SimFs, Vfs};
use tidelog::{Error, ManualClock, Record};

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Record>),
    Read {
        from_permille: u16,
        max: usize,
    },
    ReadEnd,
    Lookup {
        ts_delta: i64,
    },
    Roll,
    DeleteBefore {
        permille: u16,
    },
    AdvanceClock(i64),
    ReopenClean,
    ReopenDrop,
    /// fsync everything (simulated disk only).
    Flush,
    /// A power cut, then recovery from the image (simulated disk only).
    PowerCut {
        seed: u64,
        reordered: bool,
    },
}

fn bytes_opt(max_len: usize) -> impl Strategy<Value = Option<Bytes>> {
    prop_oneof![
        1 => Just(None),
        6 => proptest::collection::vec(any::<u8>(), 0..max_len).prop_map(|v| Some(Bytes::from(v))),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    (
        bytes_opt(12),
        bytes_opt(90),
        proptest::collection::vec(("[a-c]{0,3}", bytes_opt(6)), 0..3),
        prop_oneof![1 => Just(None), 4 => (-50i64..5000).prop_map(Some)],
    )
        .prop_map(|(key, value, headers, ts)| {
            let mut r = match value {
                Some(v) => Record::new(v),
                None => Record::default(),
            };
            if let Some(k) = key {
                r = r.with_key(k);
            }
            for (k, v) in headers {
                r = match v {
                    Some(v) => r.with_header(k, v),
                    None => r.with_null_header(k),
                };
            }
            if let Some(ts) = ts {
                r = r.with_timestamp(T0 + ts);
            }
            r
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => record().prop_map(|r| Op::Append(vec![r])),
        5 => proptest::collection::vec(record(), 1..12).prop_map(Op::Append),
        6 => (0u16..=1000, 1usize..40).prop_map(|(from_permille, max)| Op::Read { from_permille, max }),
        1 => Just(Op::ReadEnd),
        3 => (-100i64..5200).prop_map(|ts_delta| Op::Lookup { ts_delta }),
        1 => Just(Op::Roll),
        1 => (0u16..=1000).prop_map(|permille| Op::DeleteBefore { permille }),
        1 => (0i64..20_000).prop_map(Op::AdvanceClock),
        1 => Just(Op::ReopenClean),
        1 => Just(Op::ReopenDrop),
    ]
}

fn sim_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => op(),
        1 => Just(Op::Flush),
        2 => (any::<u64>(), any::<bool>()).prop_map(|(seed, reordered)| Op::PowerCut { seed, reordered }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct ModelRecord {
    offset: u64,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
}

struct Model {
    records: Vec<ModelRecord>,
    start: u64,
    end: u64,
}

impl Model {
    fn read(&self, from: u64, max: usize) -> Vec<ModelRecord> {
        self.records
            .iter()
            .filter(|r| r.offset >= from && r.offset >= self.start)
            .take(max.max(1))
            .cloned()
            .collect()
    }
    fn lookup(&self, ts: i64) -> Option<u64> {
        self.records
            .iter()
            .filter(|r| r.offset >= self.start && r.timestamp >= ts)
            .map(|r| r.offset)
            .min()
    }
}

fn config(segment_bytes: u64, index_bytes: u64) -> PartitionConfig {
    PartitionConfig {
        segment_bytes,
        segment_ms: 60_000,
        index_interval_bytes: 64,
        index_bytes,
    }
}

fn run(ops: Vec<Op>, cfg: PartitionConfig) {
    let tmp = tempfile::tempdir().unwrap();
    run_on(RealFs::shared(), None, tmp.path(), ops, cfg);
}

fn run_sim(ops: Vec<Op>, cfg: PartitionConfig) {
    let sim = SimFs::new().with_dir("/sim");
    run_on(
        sim.shared(),
        Some(sim),
        std::path::Path::new("/sim/p-0"),
        ops,
        cfg,
    );
}

fn run_on(
    vfs: Arc<dyn Vfs>,
    mut sim: Option<SimFs>,
    dir: &std::path::Path,
    ops: Vec<Op>,
    cfg: PartitionConfig,
) {
    let clock = ManualClock::new(T0);
    let open = |vfs: &Arc<dyn Vfs>| {
        PartitionLog::open(vfs.clone(), Arc::new(clock.clone()), dir, cfg)
            .unwrap()
            .0
    };
    let mut vfs = vfs;
    let mut log = open(&vfs);
    let mut model = Model {
        records: Vec::new(),
        start: 0,
        end: 0,
    };
    // The end offset known to be durable (simulated disk).
    let mut durable_end = 0u64;
    for op in ops {
        match op {
            Op::Append(records) => {
                let now = clock_now(&clock);
                let a = log.append_records(&records).unwrap();
                assert_eq!(a.base_offset, model.end);
                assert_eq!(a.last_offset, model.end + records.len() as u64 - 1);
                for r in records {
                    model.records.push(ModelRecord {
                        offset: model.end,
                        timestamp: r.timestamp().unwrap_or(now),
                        key: r.key().cloned(),
                        value: r.value().cloned(),
                        headers: r.headers().to_vec(),
                    });
                    model.end += 1;
                }
            }
            Op::Read { from_permille, max } => {
                let span = model.end - model.start;
                let from = model.start + span * u64::from(from_permille) / 1000;
                let got: Vec<ModelRecord> = log
                    .read(from, max)
                    .unwrap()
                    .into_iter()
                    .map(|r| ModelRecord {
                        offset: r.offset,
                        timestamp: r.timestamp,
                        key: r.key,
                        value: r.value,
                        headers: r.headers,
                    })
                    .collect();
                assert_eq!(got, model.read(from, max), "read({from}, {max})");
            }
            Op::ReadEnd => {
                assert!(log.read(model.end, 5).unwrap().is_empty());
                assert!(matches!(
                    log.read(model.end + 1, 5),
                    Err(Error::OffsetOutOfRange { .. })
                ));
                if model.start > 0 {
                    assert!(matches!(
                        log.read(model.start - 1, 5),
                        Err(Error::OffsetOutOfRange { .. })
                    ));
                }
            }
            Op::Lookup { ts_delta } => {
                let ts = T0 + ts_delta;
                assert_eq!(
                    log.offset_for_timestamp(ts).unwrap(),
                    model.lookup(ts),
                    "lookup({ts})"
                );
            }
            Op::Roll => {
                log.roll().unwrap();
                durable_end = model.end;
            }
            Op::DeleteBefore { permille } => {
                let to = model.start + (model.end - model.start) * u64::from(permille) / 1000;
                log.delete_before(to).unwrap();
                model.start = model.start.max(to);
            }
            Op::AdvanceClock(ms) => clock.advance(ms),
            Op::ReopenClean => {
                log.close().unwrap();
                drop(log);
                log = open(&vfs);
                durable_end = model.end;
            }
            Op::ReopenDrop => {
                drop(log);
                log = open(&vfs);
            }
            Op::Flush => {
                log.flush().unwrap();
                durable_end = model.end;
            }
            Op::PowerCut { seed, reordered } => {
                let Some(disk) = sim.as_ref() else { continue };
                let model_kind = if reordered {
                    CrashModel::Reordered
                } else {
                    CrashModel::Ordered
                };
                let image = disk.crash_image(model_kind, seed);
                drop(log);
                vfs = image.shared();
                log = open(&vfs);
                let end = log.end_offset();
                assert!(
                    (durable_end..=model.end).contains(&end),
                    "after a cut the end is {end}, durable {durable_end}, written {}",
                    model.end
                );
                model.records.retain(|r| r.offset < end);
                model.end = end;
                if end >= model.start {
                    assert_eq!(
                        log.start_offset(),
                        model.start,
                        "a removal came back or went further"
                    );
                } else {
                    model.start = log.start_offset();
                }
                let all = common::read_all(&log, log.start_offset());
                let kept: Vec<ModelRecord> = all
                    .into_iter()
                    .map(|r| ModelRecord {
                        offset: r.offset,
                        timestamp: r.timestamp,
                        key: r.key,
                        value: r.value,
                        headers: r.headers,
                    })
                    .collect();
                assert_eq!(kept, model.read(model.start, usize::MAX), "records after the cut");
                durable_end = end;
                sim = Some(image);
            }
        }
        assert_eq!(log.end_offset(), model.end);
        assert_eq!(log.start_offset(), model.start);
    }
    // Finally everything reads back in order.
    let all = common::read_all(&log, model.start);
    assert_eq!(all.len(), model.read(model.start, usize::MAX).len());
}

fn clock_now(clock: &ManualClock) -> i64 {
    use tidelog::Clock;
    clock.now_ms()
}

proptest! {
    // Quick in CI; PROPTEST_CASES=N for a long run.
    #![proptest_config(ProptestConfig::with_cases(cases_from_env(64)))]

    #[test]
    fn partition_log_matches_model(
        ops in proptest::collection::vec(op(), 1..120),
        segment_bytes in prop_oneof![Just(512u64), Just(2048), Just(1 << 20)],
        index_bytes in prop_oneof![Just(48u64), Just(240), Just(10 << 20)],
    ) {
        run(ops, config(segment_bytes, index_bytes));
    }

    #[test]
    fn partition_log_matches_model_through_power_cuts(
        ops in proptest::collection::vec(sim_op(), 1..120),
        segment_bytes in prop_oneof![Just(512u64), Just(2048), Just(1 << 20)],
        index_bytes in prop_oneof![Just(48u64), Just(240), Just(10 << 20)],
    ) {
        run_sim(ops, config(segment_bytes, index_bytes));
    }
}

/// Found by the model: the time index points at the last offset of the batch
/// that first reached a timestamp; an earlier record of that same batch may be
/// the answer, so the whole batch must be searched (Kafka's ListOffsets does).
#[test]
fn regression_timestamp_lookup_searches_the_whole_indexed_batch() {
    let first = Record::default().with_timestamp(T0 + 4852);
    let ops = vec![
        Op::Append(vec![first, Record::default()]),
        Op::Append(vec![Record::default()]),
        Op::Lookup { ts_delta: 4852 },
    ];
    run(ops, config(512, 48));
}

/// The number of proptest cases: `PROPTEST_CASES` if set, else the quick default.
fn cases_from_env(quick: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(quick)
}
