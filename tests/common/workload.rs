//! A scripted workload over a log on [`SimFs`], the record of what it had
//! acknowledged, and the checks of RELIABILITY.md §1 against a recovered log:
//! shared by the power-cut and I/O-error suites.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tidelog::internals::{open_log_with_vfs, Sabotage, SimFs};
use tidelog::{Cleanup, Durability, Error, Log, LogConfig, ManualClock, Record, TopicConfig};

pub const ROOT: &str = "/sim/log";
pub const T0: i64 = 1_700_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Sends, batches, commits, flushes, topic create/delete, close and reopen.
    Basic,
    /// Also retention, compaction and `delete_records`.
    Maintenance,
}

#[derive(Debug, Clone)]
pub enum Step {
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

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Topics of the workload, their configs and what they do.
pub fn topic_config(topic: &str) -> TopicConfig {
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

pub fn removes_records(topic: &str) -> bool {
    topic == "retained" || topic == "compacted"
}

pub fn key_of(topic: &str, id: u64) -> String {
    if topic == "compacted" {
        format!("k{}", id % 5)
    } else {
        format!("k{}", id % 17)
    }
}

/// The value of record `id`: its id first, then bytes derived from (seed, id).
pub fn value_of(seed: u64, id: u64) -> Vec<u8> {
    let mut rng = Rng(seed ^ id.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let len = 8 + rng.below(120) as usize;
    let mut v = format!("{id:08}|").into_bytes();
    v.extend((0..len).map(|_| b'a' + (rng.next() % 26) as u8));
    v
}

pub fn id_of(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value.get(..8)?).ok()?.parse().ok()
}

pub fn record_of(seed: u64, topic: &str, id: u64) -> Record {
    Record::new(value_of(seed, id))
        .with_key(key_of(topic, id))
        .with_timestamp(T0 + id as i64)
}

pub fn partition_for(topic: &str, key: &str) -> u32 {
    let n = topic_config(topic).partition_count();
    (tidelog::murmur2(key.as_bytes()) & 0x7fff_ffff) as u32 % n
}

pub fn script(seed: u64, kind: Kind, steps: usize) -> Vec<Step> {
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
pub type GroupPartition = (String, String, u32);

/// What the workload saw before the power went off.
#[derive(Debug, Default, Clone)]
pub struct History {
    /// Every record sent: id -> (topic, partition).
    pub sent: BTreeMap<u64, (String, u32)>,
    /// Acknowledged records: id -> offset.
    pub acked: BTreeMap<u64, u64>,
    /// Ids acknowledged before the last `flush`/`close` that returned.
    pub flushed: BTreeSet<u64>,
    /// `send_batch` groups: (topic, partition) -> ids.
    pub batches: Vec<((String, u32), Vec<u64>)>,
    /// (group, topic, partition) -> offsets sent, and the last acknowledged.
    pub commits: BTreeMap<GroupPartition, (Vec<u64>, Option<u64>)>,
    pub created: BTreeSet<String>,
    pub deleted: BTreeSet<String>,
    /// Topics whose deletion was sent but not acknowledged.
    pub maybe_deleted: BTreeSet<String>,
    /// (topic, partition) -> the start offset seen after a removal returned.
    pub start_floor: BTreeMap<(String, u32), u64>,
    /// Maintenance or delete_records was in flight at the cut.
    pub removal_in_flight: bool,
}

pub struct Run {
    pub sim: SimFs,
    pub log: Option<Log>,
    pub clock: ManualClock,
    pub mode: Durability,
}

pub fn config(mode: Durability, clock: &ManualClock) -> LogConfig {
    LogConfig::default()
        .durability(mode)
        .maintenance_interval(None)
        .clock(Arc::new(clock.clone()))
}

pub fn open(sim: &SimFs, mode: Durability, clock: &ManualClock) -> tidelog::Result<Log> {
    open_log_with_vfs(sim.shared(), ROOT, config(mode, clock))
}

impl Run {
    pub fn log(&self) -> &Log {
        self.log.as_ref().expect("the log is open while steps run")
    }

    /// Runs one step; a failed call is `Err((what, error))`.
    pub fn step(&mut self, seed: u64, step: &Step, h: &mut History) -> Result<(), (&'static str, Error)> {
        if self.log.is_none() {
            self.log = Some(open(&self.sim, self.mode, &self.clock).map_err(|e| ("open", e))?);
        }
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
                    Err(e) => return Err(("send", e)),
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
                    Err(e) => return Err(("send_batch", e)),
                }
            }
            Step::Commit {
                group,
                topic,
                partition,
            } => {
                let end = match self.log().describe(topic) {
                    Ok(info) => info.partitions[*partition as usize].end_offset,
                    Err(e) => return Err(("describe", e)),
                };
                let key = (group.clone(), topic.clone(), *partition);
                h.commits.entry(key.clone()).or_default().0.push(end);
                let mut consumer = self.log().consumer(group);
                let done = consumer
                    .assign(&[(topic, *partition)])
                    .and_then(|()| consumer.commit_offsets(&[(topic, *partition, end)]));
                match done {
                    Ok(()) => h.commits.entry(key).or_default().1 = Some(end),
                    Err(e) => return Err(("commit", e)),
                }
            }
            Step::Flush => match self.log().flush() {
                Ok(()) => h.flushed = h.acked.keys().copied().collect(),
                Err(e) => return Err(("flush", e)),
            },
            Step::Create { topic, partitions } => {
                let config = topic_config(topic).partitions(*partitions);
                match self.log().create_topic(topic, config) {
                    Ok(()) => {
                        h.created.insert(topic.clone());
                        h.deleted.remove(topic);
                    }
                    Err(Error::TopicExists { .. }) => {}
                    Err(e) => return Err(("create_topic", e)),
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
                    Err(e) => return Err(("delete_topic", e)),
                }
            }
            Step::Reopen => {
                let Some(log) = self.log.take() else {
                    return Ok(());
                };
                let closed = log.close();
                drop(log);
                match closed {
                    Ok(()) => h.flushed = h.acked.keys().copied().collect(),
                    Err(e) => return Err(("close", e)),
                }
                match open(&self.sim, self.mode, &self.clock) {
                    Ok(log) => self.log = Some(log),
                    Err(e) => return Err(("open", e)),
                }
            }
            Step::Maintain { advance_ms } => {
                self.clock.advance(*advance_ms);
                h.removal_in_flight = true;
                match self.log().run_maintenance() {
                    // A partition that failed did not do its part: not acknowledged.
                    Ok(report) if report.partitions_failed > 0 => {
                        let e = Error::Io {
                            path: ROOT.into(),
                            source: std::io::Error::other(format!(
                                "{} partitions failed",
                                report.partitions_failed
                            )),
                        };
                        return Err(("run_maintenance", e));
                    }
                    Ok(_) => {}
                    Err(e) => return Err(("run_maintenance", e)),
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
                    Err(e) => return Err(("describe", e)),
                };
                let before = info.start_offset + (info.end_offset - info.start_offset) / 3;
                h.removal_in_flight = true;
                if let Err(e) = self.log().delete_records(topic, *partition, before) {
                    return Err(("delete_records", e));
                }
                h.removal_in_flight = false;
                let floor = h.start_floor.entry((topic.clone(), *partition)).or_default();
                *floor = (*floor).max(before);
            }
        }
        Ok(())
    }
}

/// Runs `steps` against the log at [`ROOT`] on `sim`. `on_error` hears every
/// failed call and says whether to go on. Returns what was acknowledged and
/// the log, still open, if it is.
pub fn run_steps(
    sim: &SimFs,
    seed: u64,
    mode: Durability,
    steps: &[Step],
    on_error: &mut dyn FnMut(&'static str, &Error) -> bool,
) -> (History, Option<Log>) {
    let clock = ManualClock::new(T0);
    let mut h = History::default();
    let mut run = Run {
        sim: sim.clone(),
        log: None,
        clock,
        mode,
    };
    for step in steps {
        if let Err((what, e)) = run.step(seed, step, &mut h) {
            if !on_error(what, &e) {
                break;
            }
        }
    }
    (h, run.log.take())
}

/// Runs the script on a fresh disk, with the power going off at operation
/// `crash_at` (or never). Returns the frozen disk and what was acknowledged.
pub fn run_workload(
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
    let (h, log) = run_steps(&sim, seed, mode, steps, &mut |what, e| {
        assert!(sim.crashed(), "{what} failed with the power on: {e}");
        false
    });
    // The machine dies with the process: nothing more reaches the disk.
    sim.crash_now();
    drop(log);
    (sim, h)
}

/// Everything a recovered log holds: (topic, partition) -> offset -> id.
pub type Contents = BTreeMap<(String, u32), (u64, BTreeMap<u64, u64>)>;

pub struct Recovered {
    pub contents: Contents,
    pub topics: BTreeSet<String>,
    pub committed: BTreeMap<(String, String, u32), Option<u64>>,
    pub problems: Vec<String>,
    pub corrupt: u64,
    pub invented: u64,
}

pub fn read_all(log: &Log, seed: u64, h: &History) -> Recovered {
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
pub fn check(
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

pub fn summary(log: &Log) -> Vec<(String, u32, u64, u64)> {
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

pub fn mode_name(mode: Durability) -> &'static str {
    match mode {
        Durability::Os => "os",
        Durability::Interval(_) => "interval",
        Durability::Always => "always",
    }
}

pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| {
        let v = v.trim();
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    })
}
