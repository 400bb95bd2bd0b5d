//! Power cuts (RELIABILITY.md §3 S2), on the simulated filesystem.
//!
//! As SQLite's TH3 does: a scripted workload runs once to count its mutating
//! file operations T; then, for crash points n < T, it runs again from scratch
//! and the power goes off at operation n. From the frozen disk, K crash images
//! are built (half `Ordered`, half `Reordered`: unsynced writes dropped, kept
//! or torn; directory changes only through a directory fsync). Each image is
//! opened and checked against the promises of RELIABILITY.md §1 for the
//! durability mode; then the same image is recovered again with a second power
//! cut at a random operation of that recovery, and checked once more
//! (compound crashes).
//!
//! Checked on every image:
//! - `open` succeeds (a torn tail never fails it) and nothing panics;
//! - every record present is one that was sent to that topic and partition,
//!   byte for byte, at its acknowledged offset if it was acknowledged; no
//!   read returns `Corrupt`; offsets are contiguous where nothing removes
//!   records (a prefix of what was sent, never a hole);
//! - a `send_batch` group is wholly present or wholly absent;
//! - `Always`: every acknowledged record is present; every mode: every record
//!   acknowledged before a `flush`/`close` that returned, and every record the
//!   durable-only image holds, is present (nothing durable is lost);
//! - a committed position equals the last acknowledged commit or a later sent
//!   one, and is never past the end of the data;
//! - acknowledged topic creations and deletions hold;
//! - records retention or `delete_records` removed (the call returned) never
//!   come back; compaction leaves the latest value of each key;
//! - a second open changes nothing.
//!
//! Quick mode (CI) samples crash points; long mode:
//! `TIDELOG_POWER_CUT_FULL=1 TIDELOG_POWER_CUT_IMAGES=32 cargo test --release
//! --all-features --test power_cut -- --nocapture` tries every operation.
//! A failure prints `TIDELOG_SEED=… TIDELOG_CRASH_AT=…` to replay it.

#![cfg(feature = "internals")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidelog::internals::{open_log_with_vfs, CrashModel, Sabotage, SimFs};
use tidelog::{Cleanup, Durability, Error, Log, LogConfig, ManualClock, Record, TopicConfig};

const ROOT: &str = "/sim/log";
const T0: i64 = 1_700_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Sends, batches, commits, flushes, topic create/delete, close and reopen.
    Basic,
    /// Also retention, compaction and `delete_records`.
    Maintenance,
}

#[derive(Debug, Clone)]
enum Step {
    Send {
        id: u64,
        topic: String,
        partition: u32,
    },
    Batch {
        ids: Vec<u64>,
        topic: String,
    },
    Commit {
        group: String,
        topic: String,
        partition: u32,
    },
    Flush,
    Create {
        topic: String,
        partitions: u32,
    },
    Delete {
        topic: String,
    },
    Reopen,
    Maintain {
        advance_ms: i64,
    },
    DeleteRecords {
        topic: String,
        partition: u32,
    },
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Topics of the workload, their configs and what they do.
fn topic_config(topic: &str) -> TopicConfig {
    let base = TopicConfig::default()
        .segment_bytes(600)
        .index_interval_bytes(128)
        .retention_ms(None);
    match topic {
        "plain" => base.partitions(2),
        "retained" => base.partitions(1).retention_bytes(Some(1500)),
        "compacted" => base
            .partitions(1)
            .cleanup(Cleanup::Compact)
            .min_cleanable_dirty_ratio(0.0)
            .delete_retention_ms(0),
        _ => base.partitions(1),
    }
}

fn removes_records(topic: &str) -> bool {
    topic == "retained" || topic == "compacted"
}

fn key_of(topic: &str, id: u64) -> String {
    if topic == "compacted" {
        format!("k{}", id % 5)
    } else {
        format!("k{}", id % 17)
    }
}

/// The value of record `id`: its id first, then bytes derived from (seed, id).
fn value_of(seed: u64, id: u64) -> Vec<u8> {
    let mut rng = Rng(seed ^ id.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let len = 8 + rng.below(120) as usize;
    let mut v = format!("{id:08}|").into_bytes();
    v.extend((0..len).map(|_| b'a' + (rng.next() % 26) as u8));
    v
}

fn id_of(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value.get(..8)?).ok()?.parse().ok()
}

fn record_of(seed: u64, topic: &str, id: u64) -> Record {
    Record::new(value_of(seed, id))
        .with_key(key_of(topic, id))
        .with_timestamp(T0 + id as i64)
}

fn partition_for(topic: &str, key: &str) -> u32 {
    let n = topic_config(topic).partition_count();
    (tidelog::murmur2(key.as_bytes()) & 0x7fff_ffff) as u32 % n
}

fn script(seed: u64, kind: Kind, steps: usize) -> Vec<Step> {
    let mut rng = Rng(seed);
    let mut out = vec![
        Step::Create {
            topic: "plain".into(),
            partitions: 2,
        },
        Step::Create {
            topic: "single".into(),
            partitions: 1,
        },
    ];
    if kind == Kind::Maintenance {
        out.push(Step::Create {
            topic: "retained".into(),
            partitions: 1,
        });
        out.push(Step::Create {
            topic: "compacted".into(),
            partitions: 1,
        });
    }
    let mut topics: Vec<&str> = vec!["plain", "single"];
    if kind == Kind::Maintenance {
        topics.extend(["retained", "compacted"]);
    }
    let mut id = 0u64;
    let mut temp = 0u32;
    for _ in 0..steps {
        let topic = topics[rng.below(topics.len() as u64) as usize].to_string();
        let roll = rng.below(100);
        let step = match roll {
            0..=44 => {
                id += 1;
                let partition = rng.below(u64::from(topic_config(&topic).partition_count())) as u32;
                Step::Send { id, topic, partition }
            }
            45..=62 => {
                let n = 2 + rng.below(4);
                let ids = (0..n)
                    .map(|_| {
                        id += 1;
                        id
                    })
                    .collect();
                Step::Batch { ids, topic }
            }
            63..=72 => Step::Commit {
                group: format!("g{}", rng.below(2)),
                topic: "plain".into(),
                partition: rng.below(2) as u32,
            },
            73..=76 => Step::Flush,
            77..=79 => {
                temp += 1;
                Step::Create {
                    topic: format!("temp{temp}"),
                    partitions: 1 + rng.below(2) as u32,
                }
            }
            80..=81 if temp > 0 => Step::Delete {
                topic: format!("temp{}", 1 + rng.below(u64::from(temp))),
            },
            82..=84 => Step::Reopen,
            85..=94 if kind == Kind::Maintenance => Step::Maintain {
                advance_ms: 1 + rng.below(5) as i64 * 1000,
            },
            95..=99 if kind == Kind::Maintenance => Step::DeleteRecords {
                topic: "retained".into(),
                partition: 0,
            },
            _ => {
                id += 1;
                Step::Send {
                    id,
                    topic: "single".into(),
                    partition: 0,
                }
            }
        };
        out.push(step);
    }
    out
}

/// (group, topic, partition).
type GroupPartition = (String, String, u32);

/// What the workload saw before the power went off.
#[derive(Debug, Default, Clone)]
struct History {
    /// Every record sent: id -> (topic, partition).
    sent: BTreeMap<u64, (String, u32)>,
    /// Acknowledged records: id -> offset.
    acked: BTreeMap<u64, u64>,
    /// Ids acknowledged before the last `flush`/`close` that returned.
    flushed: BTreeSet<u64>,
    /// `send_batch` groups: (topic, partition) -> ids.
    batches: Vec<((String, u32), Vec<u64>)>,
    /// (group, topic, partition) -> offsets sent, and the last acknowledged.
    commits: BTreeMap<GroupPartition, (Vec<u64>, Option<u64>)>,
    created: BTreeSet<String>,
    deleted: BTreeSet<String>,
    /// Topics whose deletion was sent but not acknowledged.
    maybe_deleted: BTreeSet<String>,
    /// (topic, partition) -> the start offset seen after a removal returned.
    start_floor: BTreeMap<(String, u32), u64>,
    /// Maintenance or delete_records was in flight at the cut.
    removal_in_flight: bool,
}

struct Run {
    sim: SimFs,
    log: Option<Log>,
    clock: ManualClock,
    mode: Durability,
}

fn config(mode: Durability, clock: &ManualClock) -> LogConfig {
    LogConfig::default()
        .durability(mode)
        .maintenance_interval(None)
        .clock(Arc::new(clock.clone()))
}

fn open(sim: &SimFs, mode: Durability, clock: &ManualClock) -> tidelog::Result<Log> {
    open_log_with_vfs(sim.shared(), ROOT, config(mode, clock))
}

impl Run {
    fn log(&self) -> &Log {
        self.log.as_ref().expect("the log is open while steps run")
    }

    /// Runs one step; `Err` only when the power is off (anything else panics).
    fn step(&mut self, seed: u64, step: &Step, h: &mut History) -> Result<(), ()> {
        let off = |sim: &SimFs, e: Error, what: &str| -> Result<(), ()> {
            assert!(sim.crashed(), "{what} failed with the power on: {e}");
            Err(())
        };
        self.clock.advance(3);
        match step {
            Step::Send { id, topic, partition } => {
                h.sent.insert(*id, (topic.clone(), *partition));
                match self
                    .log()
                    .producer()
                    .send_to(topic, *partition, record_of(seed, topic, *id))
                {
                    Ok(meta) => {
                        h.acked.insert(*id, meta.offset);
                    }
                    Err(e) => return off(&self.sim, e, "send"),
                }
            }
            Step::Batch { ids, topic } => {
                let mut groups: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
                for id in ids {
                    let p = partition_for(topic, &key_of(topic, *id));
                    h.sent.insert(*id, (topic.clone(), p));
                    groups.entry(p).or_default().push(*id);
                }
                for (p, g) in groups {
                    h.batches.push(((topic.clone(), p), g));
                }
                let records = ids.iter().map(|id| record_of(seed, topic, *id)).collect();
                match self.log().producer().send_batch(topic, records) {
                    Ok(metas) => {
                        for (id, meta) in ids.iter().zip(metas) {
                            assert_eq!(meta.partition, partition_for(topic, &key_of(topic, *id)));
                            h.acked.insert(*id, meta.offset);
                        }
                    }
                    Err(e) => return off(&self.sim, e, "send_batch"),
                }
            }
            Step::Commit {
                group,
                topic,
                partition,
            } => {
                let end = match self.log().describe(topic) {
                    Ok(info) => info.partitions[*partition as usize].end_offset,
                    Err(e) => return off(&self.sim, e, "describe"),
                };
                let key = (group.clone(), topic.clone(), *partition);
                h.commits.entry(key.clone()).or_default().0.push(end);
                let mut consumer = self.log().consumer(group);
                let done = consumer
                    .assign(&[(topic, *partition)])
                    .and_then(|()| consumer.commit_offsets(&[(topic, *partition, end)]));
                match done {
                    Ok(()) => h.commits.entry(key).or_default().1 = Some(end),
                    Err(e) => return off(&self.sim, e, "commit"),
                }
            }
            Step::Flush => match self.log().flush() {
                Ok(()) => h.flushed = h.acked.keys().copied().collect(),
                Err(e) => return off(&self.sim, e, "flush"),
            },
            Step::Create { topic, partitions } => {
                let config = topic_config(topic).partitions(*partitions);
                match self.log().create_topic(topic, config) {
                    Ok(()) => {
                        h.created.insert(topic.clone());
                        h.deleted.remove(topic);
                    }
                    Err(Error::TopicExists { .. }) => {}
                    Err(e) => return off(&self.sim, e, "create_topic"),
                }
            }
            Step::Delete { topic } => {
                h.maybe_deleted.insert(topic.clone());
                match self.log().delete_topic(topic) {
                    Ok(()) => {
                        h.maybe_deleted.remove(topic);
                        h.created.remove(topic);
                        h.deleted.insert(topic.clone());
                    }
                    Err(Error::UnknownTopic { .. }) => {
                        h.maybe_deleted.remove(topic);
                    }
                    Err(e) => return off(&self.sim, e, "delete_topic"),
                }
            }
            Step::Reopen => {
                let log = self.log.take().expect("open");
                match log.close() {
                    Ok(()) => h.flushed = h.acked.keys().copied().collect(),
                    Err(e) => return off(&self.sim, e, "close"),
                }
                drop(log);
                match open(&self.sim, self.mode, &self.clock) {
                    Ok(log) => self.log = Some(log),
                    Err(e) => return off(&self.sim, e, "open"),
                }
            }
            Step::Maintain { advance_ms } => {
                self.clock.advance(*advance_ms);
                h.removal_in_flight = true;
                if let Err(e) = self.log().run_maintenance() {
                    return off(&self.sim, e, "run_maintenance");
                }
                h.removal_in_flight = false;
                for topic in ["retained", "compacted"] {
                    if let Ok(info) = self.log().describe(topic) {
                        for p in info.partitions {
                            h.start_floor.insert((topic.into(), p.partition), p.start_offset);
                        }
                    }
                }
            }
            Step::DeleteRecords { topic, partition } => {
                let info = match self.log().describe(topic) {
                    Ok(info) => info.partitions[*partition as usize].clone(),
                    Err(e) => return off(&self.sim, e, "describe"),
                };
                let before = info.start_offset + (info.end_offset - info.start_offset) / 3;
                h.removal_in_flight = true;
                if let Err(e) = self.log().delete_records(topic, *partition, before) {
                    return off(&self.sim, e, "delete_records");
                }
                h.removal_in_flight = false;
                let floor = h.start_floor.entry((topic.clone(), *partition)).or_default();
                *floor = (*floor).max(before);
            }
        }
        Ok(())
    }
}

/// Runs the script on a fresh disk, with the power going off at operation
/// `crash_at` (or never). Returns the frozen disk and what was acknowledged.
fn run_workload(
    seed: u64,
    mode: Durability,
    steps: &[Step],
    crash_at: Option<u64>,
    sabotage: Option<Sabotage>,
) -> (SimFs, History) {
    let sim = SimFs::new().with_dir("/sim");
    if let Some(s) = sabotage {
        sim.sabotage(s);
    }
    if let Some(n) = crash_at {
        sim.crash_at(n);
    }
    let clock = ManualClock::new(T0);
    let mut h = History::default();
    let log = match open(&sim, mode, &clock) {
        Ok(log) => Some(log),
        Err(e) => {
            assert!(sim.crashed(), "first open failed with the power on: {e}");
            return (sim, h);
        }
    };
    let mut run = Run {
        sim: sim.clone(),
        log,
        clock,
        mode,
    };
    for step in steps {
        if run.step(seed, step, &mut h).is_err() {
            break;
        }
    }
    // The process dies with the machine: nothing more reaches the disk. A drop
    // here would only fail against the dead disk; keep the handles from
    // running their best-effort cleanups for a faithful cut.
    if let Some(log) = run.log.take() {
        if !sim.crashed() {
            sim.crash_now();
        }
        drop(log);
    }
    (sim, h)
}

#[derive(Debug, Default)]
struct Tally {
    crash_points: u64,
    images: u64,
    compound: u64,
    checked: u64,
    lost_beyond_promise: u64,
    corrupt: u64,
    invented: u64,
    panics: u64,
    open_errors: u64,
    failures: Vec<String>,
}

/// Everything a recovered log holds: (topic, partition) -> offset -> id.
type Contents = BTreeMap<(String, u32), (u64, BTreeMap<u64, u64>)>;

struct Recovered {
    contents: Contents,
    topics: BTreeSet<String>,
    committed: BTreeMap<(String, String, u32), Option<u64>>,
    problems: Vec<String>,
    corrupt: u64,
    invented: u64,
}

fn read_all(log: &Log, seed: u64, h: &History) -> Recovered {
    let mut r = Recovered {
        contents: BTreeMap::new(),
        topics: log.topics().into_iter().collect(),
        committed: BTreeMap::new(),
        problems: Vec::new(),
        corrupt: 0,
        invented: 0,
    };
    for topic in r.topics.clone() {
        let info = match log.describe(&topic) {
            Ok(info) => info,
            Err(e) => {
                r.problems.push(format!("describe {topic}: {e}"));
                continue;
            }
        };
        for p in &info.partitions {
            let mut seen = BTreeMap::new();
            let mut next = p.start_offset;
            while next < p.end_offset {
                let batch = match log.fetch(&topic, p.partition, next, 500) {
                    Ok(b) => b,
                    Err(e) => {
                        r.corrupt += 1;
                        r.problems
                            .push(format!("fetch {topic}/{} at {next}: {e}", p.partition));
                        break;
                    }
                };
                let Some(last) = batch.last() else {
                    r.problems.push(format!(
                        "fetch {topic}/{} at {next} returned nothing",
                        p.partition
                    ));
                    break;
                };
                next = last.offset() + 1;
                for rec in batch {
                    let value = rec.value().map(|v| v.to_vec()).unwrap_or_default();
                    let id = id_of(&value);
                    let genuine = id.is_some_and(|id| {
                        h.sent.get(&id) == Some(&(topic.clone(), p.partition))
                            && value == value_of(seed, id)
                            && rec.key().map(|k| k.to_vec()) == Some(key_of(&topic, id).into_bytes())
                            && h.acked.get(&id).is_none_or(|o| *o == rec.offset())
                    });
                    if !genuine {
                        r.invented += 1;
                        r.problems.push(format!(
                            "{topic}/{} offset {}: a record nobody sent there (id {id:?})",
                            p.partition,
                            rec.offset()
                        ));
                        continue;
                    }
                    seen.insert(rec.offset(), id.unwrap_or_default());
                }
            }
            r.contents
                .insert((topic.clone(), p.partition), (p.start_offset, seen));
        }
    }
    for key @ (group, topic, partition) in h.commits.keys() {
        let committed = log.group_lag(group).ok().and_then(|lags| {
            lags.iter()
                .find(|l| &l.topic == topic && l.partition == *partition)
                .and_then(|l| l.committed)
        });
        r.committed
            .insert((group.clone(), topic.clone(), *partition), committed);
        let _ = key;
    }
    r
}

/// Checks one recovered image against the promises; returns what was checked.
fn check(
    r: &Recovered,
    h: &History,
    durable: Option<&Contents>,
    mode: Durability,
    problems: &mut Vec<String>,
) -> u64 {
    problems.extend(r.problems.iter().cloned());
    let mut checked = 0;
    // Contiguity where nothing removes records.
    for ((topic, p), (start, seen)) in &r.contents {
        if removes_records(topic) {
            continue;
        }
        for (want, off) in (*start..).zip(seen.keys()) {
            if *off != want {
                problems.push(format!("{topic}/{p}: a hole at {want} (next present {off})"));
                break;
            }
        }
    }
    let present = |topic: &str, p: u32, offset: u64, id: u64| {
        r.contents
            .get(&(topic.to_string(), p))
            .and_then(|(_, seen)| seen.get(&offset))
            == Some(&id)
    };
    // Whether a missing record may legitimately be gone.
    let may_be_gone = |topic: &str, p: u32, offset: u64, id: u64| -> bool {
        if h.maybe_deleted.contains(topic) || !r.topics.contains(topic) && !h.created.contains(topic) {
            return true;
        }
        let Some((start, seen)) = r.contents.get(&(topic.to_string(), p)) else {
            return false;
        };
        if topic == "retained" && offset < *start {
            return true;
        }
        if topic == "compacted" {
            let key = key_of(topic, id);
            return seen
                .iter()
                .any(|(o, other)| *o > offset && key_of(topic, *other) == key);
        }
        false
    };
    for (id, offset) in &h.acked {
        let (topic, p) = &h.sent[id];
        if h.deleted.contains(topic) {
            continue;
        }
        let must = mode == Durability::Always || h.flushed.contains(id);
        if present(topic, *p, *offset, *id) {
            checked += 1;
        } else if must && !may_be_gone(topic, *p, *offset, *id) {
            problems.push(format!("lost acknowledged {topic}/{p} offset {offset} (id {id})"));
        }
    }
    if let Some(durable) = durable {
        for ((topic, p), (_, seen)) in durable {
            for (offset, id) in seen {
                if !present(topic, *p, *offset, *id) && !may_be_gone(topic, *p, *offset, *id) {
                    problems.push(format!("lost durable {topic}/{p} offset {offset} (id {id})"));
                }
            }
        }
    }
    // Batches: all or nothing per partition.
    for ((topic, p), ids) in &h.batches {
        if removes_records(topic) || h.maybe_deleted.contains(topic) {
            continue;
        }
        let Some((_, seen)) = r.contents.get(&(topic.clone(), *p)) else {
            continue;
        };
        let have = ids.iter().filter(|id| seen.values().any(|v| v == *id)).count();
        if have != 0 && have != ids.len() {
            problems.push(format!("{topic}/{p}: half a batch ({have} of {})", ids.len()));
        }
    }
    // Removed records never come back.
    for ((topic, p), floor) in &h.start_floor {
        if let Some((start, _)) = r.contents.get(&(topic.clone(), *p)) {
            if start < floor {
                problems.push(format!(
                    "{topic}/{p}: start {start} below the acknowledged {floor}"
                ));
            }
        }
    }
    // Commits.
    for (key, (sent, acked)) in &h.commits {
        let (group, topic, p) = key;
        let end = r
            .contents
            .get(&(topic.clone(), *p))
            .map(|(start, seen)| seen.keys().last().map_or(*start, |o| o + 1))
            .unwrap_or(0);
        let got = r.committed.get(key).copied().flatten();
        if let Some(c) = got {
            if c > end {
                problems.push(format!("{group} {topic}/{p}: committed {c} past the end {end}"));
            }
        }
        if let Some(a) = acked {
            let allowed = |c: u64| {
                let later = sent.iter().skip_while(|s| *s != a).copied();
                later.chain([*a]).any(|s| s == c || (s > end && c == end))
            };
            match got {
                Some(c) if allowed(c) => {}
                other => problems.push(format!(
                    "{group} {topic}/{p}: committed {other:?}, acknowledged {a}, sent {sent:?}, end {end}"
                )),
            }
        }
    }
    for topic in &h.created {
        if !h.maybe_deleted.contains(topic) && !r.topics.contains(topic) {
            problems.push(format!("acknowledged topic {topic} is missing"));
        }
    }
    for topic in &h.deleted {
        if r.topics.contains(topic) && !h.created.contains(topic) {
            problems.push(format!("deleted topic {topic} came back"));
        }
    }
    checked
}

fn summary(log: &Log) -> Vec<(String, u32, u64, u64)> {
    let mut out = Vec::new();
    for topic in log.topics() {
        if let Ok(info) = log.describe(&topic) {
            for p in info.partitions {
                out.push((topic.clone(), p.partition, p.start_offset, p.end_offset));
            }
        }
    }
    out
}

/// Opens an image, checks it, and checks that a second open changes nothing.
fn recover_and_check(
    image: &SimFs,
    seed: u64,
    h: &History,
    durable: Option<&Contents>,
    mode: Durability,
    t: &mut Tally,
    tag: &str,
) -> Option<Contents> {
    let clock = ManualClock::new(T0 + 10_000_000);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let log = match open(image, mode, &clock) {
            Ok(log) => log,
            Err(e) => return Err(format!("open failed: {e}")),
        };
        let r = read_all(&log, seed, h);
        let mut problems = Vec::new();
        let checked = check(&r, h, durable, mode, &mut problems);
        let before = summary(&log);
        log.close().map_err(|e| format!("close failed: {e}"))?;
        drop(log);
        let again = open(image, mode, &clock).map_err(|e| format!("second open failed: {e}"))?;
        let after = summary(&again);
        if before != after {
            problems.push(format!("second open changed {before:?} to {after:?}"));
        }
        drop(again);
        Ok((r, checked, problems))
    }));
    match outcome {
        Err(_) => {
            t.panics += 1;
            t.failures.push(format!("{tag}: panic"));
            None
        }
        Ok(Err(e)) => {
            t.open_errors += 1;
            t.failures.push(format!("{tag}: {e}"));
            None
        }
        Ok(Ok((r, checked, problems))) => {
            t.checked += checked;
            t.corrupt += r.corrupt;
            t.invented += r.invented;
            let lost = problems.iter().filter(|p| p.starts_with("lost")).count() as u64;
            t.lost_beyond_promise += lost;
            for p in problems {
                t.failures.push(format!("{tag}: {p}"));
            }
            Some(r.contents)
        }
    }
}

fn mode_name(mode: Durability) -> &'static str {
    match mode {
        Durability::Os => "os",
        Durability::Interval(_) => "interval",
        Durability::Always => "always",
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| {
        let v = v.trim();
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    })
}

/// The suite for one durability mode over both workloads; its tally.
fn suite(mode: Durability) {
    let t = run_suite(mode, None, None);
    for f in t.failures.iter().take(20) {
        eprintln!("FAIL {f}");
    }
    assert!(
        t.failures.is_empty(),
        "{} violations, first: {}",
        t.failures.len(),
        t.failures[0]
    );
    assert!(t.checked > 0, "no acknowledged record was checked");
}

fn run_suite(mode: Durability, sabotage: Option<Sabotage>, points_override: Option<u64>) -> Tally {
    let full = std::env::var_os("TIDELOG_POWER_CUT_FULL").is_some();
    let images = env_u64("TIDELOG_POWER_CUT_IMAGES").unwrap_or(4).max(2);
    let points = match points_override {
        Some(p) => p,
        None if full => u64::MAX,
        None => env_u64("TIDELOG_POWER_CUT_POINTS").unwrap_or(12),
    };
    let seed0 = env_u64("TIDELOG_SEED").unwrap_or(0x5eed);
    let only_at = env_u64("TIDELOG_CRASH_AT");
    let started = Instant::now();
    let mut t = Tally::default();
    for (w, kind) in [Kind::Basic, Kind::Maintenance].into_iter().enumerate() {
        let seed = seed0.wrapping_add(w as u64 * 7919);
        let steps = script(seed, kind, if full { 160 } else { 70 });
        let (whole, h) = run_workload(seed, mode, &steps, None, sabotage);
        let total = whole.op_count();
        assert!(total > 100, "the workload made only {total} operations");
        assert!(!h.acked.is_empty());
        let stride = (total / points.min(total)).max(1);
        let mut rng = Rng(seed ^ 0xc4a5);
        let crash_points: Vec<u64> = match only_at {
            Some(n) => vec![n],
            None => (0..total)
                .step_by(stride as usize)
                .map(|n| (n + rng.below(stride)).min(total - 1))
                .collect(),
        };
        for n in crash_points {
            let (disk, h) = run_workload(seed, mode, &steps, Some(n), sabotage);
            t.crash_points += 1;
            let replay = format!(
                "TIDELOG_SEED={seed0:#x} TIDELOG_CRASH_AT={n} mode={}",
                mode_name(mode)
            );
            let durable = disk.durable_image();
            let d = recover_and_check(
                &durable,
                seed,
                &h,
                None,
                mode,
                &mut t,
                &format!("{replay} durable"),
            );
            for k in 0..images {
                let model = if k % 2 == 0 {
                    CrashModel::Ordered
                } else {
                    CrashModel::Reordered
                };
                let image_seed = seed ^ (n << 8) ^ k;
                let tag = format!("{replay} image={k} {model:?}");
                let image = disk.crash_image(model, image_seed);
                t.images += 1;
                recover_and_check(&image, seed, &h, d.as_ref(), mode, &mut t, &tag);
                // A second cut during the recovery of the same image.
                let probe = disk.crash_image(model, image_seed);
                let ops_before = probe.op_count();
                let clock = ManualClock::new(T0 + 20_000_000);
                if let Ok(log) = open(&probe, mode, &clock) {
                    let _ = log.close();
                }
                let recovery_ops = probe.op_count() - ops_before;
                let again = disk.crash_image(model, image_seed);
                again.crash_at(again.op_count() + rng.below(recovery_ops + 1));
                let _ = catch_unwind(AssertUnwindSafe(|| {
                    if let Ok(log) = open(&again, mode, &clock) {
                        drop(log);
                    }
                }));
                let second = again.crash_image(model, image_seed.rotate_left(17));
                t.compound += 1;
                recover_and_check(
                    &second,
                    seed,
                    &h,
                    d.as_ref(),
                    mode,
                    &mut t,
                    &format!("{tag} compound"),
                );
            }
        }
    }
    let secs = started.elapsed().as_secs();
    if sabotage.is_some() {
        return t;
    }
    common::reliability_report(
        "power_cut",
        &[
            ("mode", mode_name(mode).into()),
            ("crash_points", t.crash_points.to_string()),
            ("images", t.images.to_string()),
            ("compound", t.compound.to_string()),
            ("checked", t.checked.to_string()),
            ("lost_beyond_promise", t.lost_beyond_promise.to_string()),
            ("corrupt", t.corrupt.to_string()),
            ("invented", t.invented.to_string()),
            ("panics", t.panics.to_string()),
            ("open_errors", t.open_errors.to_string()),
            ("seed", format!("{seed0:#x}")),
            ("secs", secs.to_string()),
        ],
    );
    t
}

#[test]
fn power_cut_always() {
    suite(Durability::Always);
}

#[test]
fn power_cut_os() {
    suite(Durability::Os);
}

#[test]
fn power_cut_interval() {
    suite(Durability::Interval(Duration::from_millis(5)));
}

/// Negative controls: a disk that skips file fsyncs, or directory fsyncs,
/// must make the suite report losses (a suite that passes is broken).
#[test]
fn power_cut_detects_skipped_fsyncs() {
    for sabotage in [Sabotage::SkipFileSync, Sabotage::SkipDirSync] {
        let t = run_suite(Durability::Always, Some(sabotage), Some(3));
        assert!(
            t.lost_beyond_promise > 0 || t.open_errors > 0,
            "{sabotage:?}: the suite saw no loss: {t:?}"
        );
    }
}

/// The simulator itself: unsynced data is gone after a cut, synced data and
/// directory entries stay, and a failed fsync's data never becomes durable.
#[test]
fn simfs_keeps_only_what_was_synced() {
    use tidelog::internals::{FaultKind, Persistence, Vfs};
    let sim = SimFs::new().with_dir("/d");
    let dir = Path::new("/d");
    let a = sim.create_new(&dir.join("a")).unwrap();
    a.write_all_at(b"hello", 0).unwrap();
    a.sync_data().unwrap();
    // Data synced but the name is not: the file is gone.
    let image = sim.durable_image();
    assert!(!image.exists(&dir.join("a")).unwrap());
    sim.sync_dir(dir).unwrap();
    a.write_all_at(b" world", 5).unwrap();
    let image = sim.durable_image();
    assert_eq!(image.read(&dir.join("a")).unwrap(), b"hello");
    // Some image keeps the unsynced write, some drops it.
    let kept: BTreeSet<Vec<u8>> = (0..32)
        .map(|s| {
            sim.crash_image(CrashModel::Reordered, s)
                .read(&dir.join("a"))
                .unwrap()
        })
        .collect();
    assert!(kept.contains(b"hello".as_slice()) && kept.contains(b"hello world".as_slice()));
    // A failed fsync: readable, never durable, even after a later good fsync.
    sim.fail_at(sim.op_count(), FaultKind::SyncEio, Persistence::Once);
    assert!(a.sync_data().is_err());
    assert_eq!(sim.contents(dir.join("a")).unwrap(), b"hello world");
    a.sync_data().unwrap();
    assert_eq!(sim.durable_image().read(&dir.join("a")).unwrap(), b"hello");
    // A rename is atomic and durable only through the directory fsync.
    let b = sim.create_new(&dir.join("b.tmp")).unwrap();
    b.write_all_at(b"new", 0).unwrap();
    b.sync_data().unwrap();
    sim.rename(&dir.join("b.tmp"), &dir.join("a")).unwrap();
    assert_eq!(sim.durable_image().read(&dir.join("a")).unwrap(), b"hello");
    sim.sync_dir(dir).unwrap();
    assert_eq!(sim.durable_image().read(&dir.join("a")).unwrap(), b"new");
    // After the cut nothing changes.
    sim.crash_now();
    assert!(a.write_all_at(b"x", 0).is_err());
}
