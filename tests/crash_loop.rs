//! RELIABILITY.md §3 S1, the kill -9 crash loop, over every write path at once,
//! for each durability mode (`Os`, `Interval(5 ms)`, `Always`); `Os` and
//! `Always` run with an open-partition budget of 3, below the workload's
//! partitions, so kills also land on parked and waking partitions.
//!
//! Method: [`crash_loop`] runs the three modes at once, each on its own
//! directory and thread (the work is mostly waiting for fsyncs). Each re-runs
//! this test binary as a child (`TIDELOG_CRASH_CHILD=1` with the directory,
//! seed, mode, first id and clock in `TIDELOG_CRASH_*`, running only
//! [`crash_loop_child`] with `--exact --nocapture`) and reads its stdout
//! through a pipe. The child opens the
//! directory (printing `OPENING`, then `READY`) and runs a seeded mix of
//! `send`, `send_batch` (2..=6 records, often over several partitions),
//! consumer `commit` (groups `g1` on `a`, `r`, `c` and `g2` on `a`, each poll
//! checked), `create_topic` and `delete_topic` (topics `tmp-<id>`, never
//! reused), `delete_records`, `run_maintenance` (after moving the
//! [`ManualClock`] forward) and, now and then, `close` and reopen. Topics: `a`
//! (3 partitions, 1 KiB segments, no retention), `r` (time and size retention,
//! `segment_ms` rolls, 768 B segments), `c` (`Cleanup::Compact`, 24 keys,
//! tombstones, 3 s `delete_retention_ms`), and the `tmp-*` ones (1 or 2
//! partitions, 512..=1280 B segments); tiny segments make rolls constant and
//! some records are bigger than a segment. Every value checks itself: the id,
//! a payload derived from (seed, id) and a CRC-32 of both; every record also
//! carries its id in a header, and its key, value and header are all derived
//! from (seed, topic, id), so the parent rebuilds the exact bytes.
//!
//! Before each call the child prints `SENT <id> <op> ...`; after `Ok`, `ACK <id>
//! <topic> <partition> <offset> <timestamp>` per record, `COMMIT <group>
//! <topic> <partition> <offset>`, `TOPIC create|delete <name>`, `DELREC <topic>
//! <partition> <before>`, `MAINT <id> <deleted> <compacted> <topic>:<p>:<start>
//! ...` or `CLOSED <id>`; each line is written and flushed on its own. The
//! parent SIGKILLs it at a seeded random instant: about 10% while `open` runs,
//! 5% while `close` runs, otherwise after N acknowledgements or a random delay.
//! It drops a cut last line, opens the directory in-process, snapshots every
//! topic and committed position, closes (or drops) it, opens it again and
//! requires the same snapshot (a second open changes nothing), then checks:
//!
//! - every acknowledged record is at its offset with identical bytes and
//!   timestamp, unless a returned `delete_records`, retention or (in `c`)
//!   compaction removed it: compaction may only remove a record acknowledged
//!   before the last maintenance call that was sent, and only if a later record
//!   of its key exists or it is a tombstone;
//! - the start offset never goes back, and moves past the acknowledged one only
//!   by the call in flight at the kill;
//! - offsets increase, are dense in non-compacted partitions, and a gap in `c`
//!   is an offset whose record was known;
//! - every record present was sent (nothing invented, nothing at a partition its
//!   key does not map to); records of the call in flight come after every
//!   acknowledged one, and a `send_batch` is whole per partition;
//! - each group's committed position is its last acknowledged commit or the
//!   one in flight (atomically), never past the partition end, never clamped;
//! - acknowledged topics exist with their config, acknowledged deletions stay
//!   deleted, and no other topic appears.
//!
//! The parent keeps the observed state as the model for the next kill (same
//! directory). A `kill -9` is a process crash: the page cache survives, so in
//! every mode nothing acknowledged may be lost, and in `Always` this is what
//! its stronger promise (acknowledged means fsynced) must give as well.
//!
//! Quick (default): [`QUICK_KILLS`] kills per mode (the cost is the fsyncs of
//! three opens and two closes per kill). Long:
//! `TIDELOG_CRASH_LOOP_ITERS=<kills per mode>`, `TIDELOG_SEED=<seed>`, and
//! optionally `TIDELOG_CRASH_LOOP_SECS=<stop starting kills after this>`,
//! `TIDELOG_CRASH_LOOP_MODES=os,interval,always`, `TIDELOG_CRASH_LOOP_VERBOSE=1`
//! (a line per kill). Each mode prints one `RELIABILITY suite=crash_loop
//! mode=...` line (and `target/reliability/crash_loop-<mode>.json`); a mode
//! stops at its first failing kill and prints the `TIDELOG_SEED=...` line that
//! replays it (the kill instants are timing-dependent, so a replay takes the
//! same decisions but may land the kills elsewhere).

#![cfg(feature = "internals")]

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tidelog::{
    murmur2, Cleanup, Clock, ConsumedRecord, Consumer, Durability, Error, Log, LogConfig, ManualClock,
    PartitionInfo, Record, TopicConfig, TopicInfo,
};

mod common;

const CHILD_TEST: &str = "crash_loop_child";
const T0: i64 = 1_700_000_000_000;
/// Ids of kill `n` start at `(n + 1) * ID_STRIDE`, so they never repeat.
const ID_STRIDE: u64 = 100_000_000;
/// Kills per mode in quick mode.
const QUICK_KILLS: u64 = 25;
/// The most the child moves its clock before one maintenance call (ms).
const CLOCK_STEP_MAX: u64 = 8_000;
/// Consumer groups and the topics they subscribe to.
const GROUPS: [(&str, &[&str]); 2] = [("g1", &["a", "r", "c"]), ("g2", &["a"])];
const PERMANENT: [&str; 3] = ["a", "r", "c"];
/// The child keeps at most this many `tmp-*` topics.
const TMP_MAX: usize = 3;
/// Keys of the compacted topic.
const COMPACT_KEYS: u64 = 24;
/// A child stops by itself after this many operations (it is killed long before).
const CHILD_OPS_MAX: u64 = 5_000_000;
/// Violation messages printed per kill.
const MESSAGES_MAX: u64 = 40;
const SIGKILL: i32 = 9;
/// Serialises spawning children across the modes' threads, and keeps them out
/// while a mode's parent has its log open (see `run_child`).
static SPAWN: std::sync::Mutex<()> = std::sync::Mutex::new(());

// ---------------------------------------------------------------------------
// shared by parent and child

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Os,
    Interval,
    Always,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Os => "os",
            Mode::Interval => "interval",
            Mode::Always => "always",
        }
    }
    fn parse(s: &str) -> Mode {
        match s {
            "os" => Mode::Os,
            "interval" => Mode::Interval,
            "always" => Mode::Always,
            other => panic!("unknown mode {other:?}"),
        }
    }
    fn durability(self) -> Durability {
        match self {
            Mode::Os => Durability::Os,
            Mode::Interval => Durability::Interval(Duration::from_millis(5)),
            Mode::Always => Durability::Always,
        }
    }
    fn salt(self) -> u64 {
        match self {
            Mode::Os => 0x05,
            Mode::Interval => 0x1e,
            Mode::Always => 0xa1,
        }
    }
}

fn log_config(mode: Mode, clock: &ManualClock) -> LogConfig {
    let config = LogConfig::default()
        .durability(mode.durability())
        .maintenance_interval(None)
        .clock(Arc::new(clock.clone()));
    match mode {
        // Fewer open partitions than the workload uses: kills land while
        // partitions are parked (with unsynced bytes, under Os) and woken.
        Mode::Os | Mode::Always => config.max_open_partitions(3),
        Mode::Interval => config,
    }
}

/// The config of every topic the workload may create, by name.
fn topic_config(name: &str) -> Option<TopicConfig> {
    match name {
        "a" => Some(
            TopicConfig::default()
                .partitions(3)
                .segment_bytes(1024)
                .index_interval_bytes(128)
                .retention_ms(None),
        ),
        "r" => Some(
            TopicConfig::default()
                .partitions(1)
                .segment_bytes(768)
                .segment_ms(5_000)
                .retention_ms(Some(20_000))
                .retention_bytes(Some(6_000)),
        ),
        "c" => Some(
            TopicConfig::default()
                .partitions(1)
                .segment_bytes(1024)
                .cleanup(Cleanup::Compact)
                .retention_ms(None)
                .min_cleanable_dirty_ratio(0.2)
                .delete_retention_ms(3_000),
        ),
        _ => {
            let id: u64 = name.strip_prefix("tmp-")?.parse().ok()?;
            Some(
                TopicConfig::default()
                    .partitions(1 + (id % 2) as u32)
                    .segment_bytes(512 + (id % 4) * 256)
                    .index_interval_bytes(64)
                    .retention_ms(None),
            )
        }
    }
}

fn compacted(topic: &str) -> bool {
    topic == "c"
}

/// Topics whose start offset `run_maintenance` may move (retention).
fn has_retention(topic: &str) -> bool {
    topic == "r"
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hash3(seed: u64, id: u64, salt: u64) -> u64 {
    mix(seed ^ mix(id ^ mix(salt)))
}

/// Seeded xorshift64*.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(mix(seed) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn key_of(seed: u64, topic: &str, id: u64) -> Bytes {
    if compacted(topic) {
        Bytes::from(format!("ck{}", hash3(seed, id, 1) % COMPACT_KEYS))
    } else {
        Bytes::from(format!("k{id}"))
    }
}

fn is_tombstone(seed: u64, topic: &str, id: u64) -> bool {
    compacted(topic) && hash3(seed, id, 2).is_multiple_of(8)
}

/// 0..160 bytes, or (one record in 40) 1100..1600 bytes: bigger than a segment.
fn payload_of(seed: u64, id: u64) -> Vec<u8> {
    let r = hash3(seed, id, 3);
    let len = if r.is_multiple_of(40) {
        1100 + (r >> 8) % 500
    } else {
        (r >> 8) % 160
    } as usize;
    let mut x = hash3(seed, id, 4) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// id (u64 BE), payload length (u32 BE), payload, CRC-32 of all before it.
fn value_of(seed: u64, id: u64) -> Bytes {
    let payload = payload_of(seed, id);
    let mut v = Vec::with_capacity(payload.len() + 16);
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(&payload);
    let crc = crc32fast::hash(&v);
    v.extend_from_slice(&crc.to_be_bytes());
    Bytes::from(v)
}

/// Checks a value by itself; returns the id inside it.
fn check_value(seed: u64, v: &[u8]) -> Result<u64, String> {
    if v.len() < 16 {
        return Err(format!("value of {} bytes is too short", v.len()));
    }
    let (body, crc) = v.split_at(v.len() - 4);
    let want = u32::from_be_bytes(crc.try_into().unwrap());
    if crc32fast::hash(body) != want {
        return Err("value checksum mismatch".into());
    }
    let id = u64::from_be_bytes(body[..8].try_into().unwrap());
    let len = u32::from_be_bytes(body[8..12].try_into().unwrap()) as usize;
    if body.len() != 12 + len {
        return Err(format!("value length {} does not match {len}", body.len() - 12));
    }
    if body[12..] != payload_of(seed, id)[..] {
        return Err(format!("payload of id {id} differs"));
    }
    Ok(id)
}

fn record_of(seed: u64, topic: &str, id: u64) -> Record {
    let key = key_of(seed, topic, id);
    let r = if is_tombstone(seed, topic, id) {
        Record::tombstone(key)
    } else {
        Record::new(value_of(seed, id)).with_key(key)
    };
    r.with_header("id", id.to_string())
}

fn partition_of(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions
}

/// The id a record carries in its `id` header.
fn record_id(r: &ConsumedRecord) -> Option<u64> {
    let (_, v) = r.headers().iter().find(|(k, _)| k == "id")?;
    std::str::from_utf8(v.as_ref()?).ok()?.parse().ok()
}

/// Whether `r` is exactly the record `id` sent to `topic`, at the partition its key maps to.
fn record_matches(
    seed: u64,
    topic: &str,
    partitions: u32,
    id: u64,
    r: &ConsumedRecord,
) -> Result<(), String> {
    let key = key_of(seed, topic, id);
    if r.key() != Some(&key) {
        return Err(format!("key {:?}, not {key:?}", r.key()));
    }
    if is_tombstone(seed, topic, id) {
        if r.value().is_some() {
            return Err("a value where a tombstone was sent".into());
        }
    } else {
        let Some(v) = r.value() else {
            return Err("no value".into());
        };
        match check_value(seed, v) {
            Ok(inner) if inner == id => {}
            Ok(inner) => return Err(format!("the value belongs to id {inner}")),
            Err(e) => return Err(e),
        }
    }
    let headers = [("id".to_string(), Some(Bytes::from(id.to_string())))];
    if r.headers() != headers {
        return Err(format!("headers {:?}", r.headers()));
    }
    if partition_of(&key, partitions) != r.partition() {
        return Err(format!("in partition {}, its key maps elsewhere", r.partition()));
    }
    Ok(())
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

// ---------------------------------------------------------------------------
// child

/// One protocol line, written and flushed on its own.
fn emit(line: &str) {
    let mut s = String::with_capacity(line.len() + 1);
    s.push_str(line);
    s.push('\n');
    let mut out = std::io::stdout().lock();
    // The parent is gone (broken pipe): nothing left to do.
    if out.write_all(s.as_bytes()).and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

fn fail(id: u64, what: &str, e: &Error) -> ! {
    let msg = e.to_string().replace('\n', " ");
    emit(&format!("ERR {id} {what}: {msg}"));
    std::process::exit(3);
}

struct ChildState {
    seed: u64,
    rng: Rng,
    clock: ManualClock,
    id: u64,
    tmp: Vec<String>,
}

impl ChildState {
    fn advance(&mut self, ms: u64) {
        let next = self.clock.now_ms() + ms as i64;
        // Printed before the clock moves, so it never runs ahead of the last line.
        emit(&format!("CLOCK {next}"));
        self.clock.set(next);
    }

    fn pick_topic(&mut self) -> String {
        let r = self.rng.below(100);
        if r < 35 {
            "a".into()
        } else if r < 60 {
            "r".into()
        } else if r < 90 || self.tmp.is_empty() {
            "c".into()
        } else {
            let i = self.rng.below(self.tmp.len() as u64) as usize;
            self.tmp[i].clone()
        }
    }

    fn send(&mut self, log: &Log) {
        if self.rng.below(10) == 0 {
            let ms = self.rng.below(50);
            self.advance(ms);
        }
        let topic = self.pick_topic();
        let id = self.id;
        self.id += 1;
        emit(&format!("SENT {id} send {topic}"));
        match log.producer().send(&topic, record_of(self.seed, &topic, id)) {
            Ok(m) => emit(&format!(
                "ACK {id} {topic} {} {} {}",
                m.partition, m.offset, m.timestamp
            )),
            Err(e) => fail(id, "send", &e),
        }
    }

    fn send_batch(&mut self, log: &Log) {
        let topic = self.pick_topic();
        let n = 2 + self.rng.below(5);
        let first = self.id;
        self.id += n;
        emit(&format!("SENT {first} batch {topic} {n}"));
        let records = (first..first + n)
            .map(|id| record_of(self.seed, &topic, id))
            .collect();
        match log.producer().send_batch(&topic, records) {
            Ok(metas) => {
                for (id, m) in (first..).zip(metas) {
                    emit(&format!(
                        "ACK {id} {topic} {} {} {}",
                        m.partition, m.offset, m.timestamp
                    ));
                }
            }
            Err(e) => fail(first, "send_batch", &e),
        }
    }

    fn commit(&mut self, group: &str, c: &mut Consumer) {
        let id = self.id;
        c.max_poll_records(1 + self.rng.below(60) as usize);
        let got = match c.poll(Duration::ZERO) {
            Ok(got) => got,
            Err(e) => fail(id, "poll", &e),
        };
        for r in &got {
            let topic = r.topic();
            let parts = topic_config(topic).map_or(1, |c| c.partition_count());
            let verdict = match record_id(r) {
                Some(rid) => record_matches(self.seed, topic, parts, rid, r),
                None => Err("no id header".into()),
            };
            if let Err(why) = verdict {
                emit(&format!("BAD {topic} {} {} {why}", r.partition(), r.offset()));
            }
        }
        let mut list = Vec::new();
        for (t, p) in c.assignment() {
            match c.position(&t, p) {
                Ok(o) => list.push(format!("{t}:{p}:{o}")),
                Err(e) => fail(id, "position", &e),
            }
        }
        if list.is_empty() {
            return;
        }
        self.id += 1;
        emit(&format!("SENT {id} commit {group} {}", list.join(" ")));
        if let Err(e) = c.commit() {
            fail(id, "commit", &e);
        }
        for entry in &list {
            let mut it = entry.split(':');
            let (t, p, o) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            emit(&format!("COMMIT {group} {t} {p} {o}"));
        }
    }

    fn create_topic(&mut self, log: &Log) {
        let id = self.id;
        self.id += 1;
        let name = format!("tmp-{id}");
        emit(&format!("SENT {id} create {name}"));
        if let Err(e) = log.create_topic(&name, topic_config(&name).unwrap()) {
            fail(id, "create_topic", &e);
        }
        emit(&format!("TOPIC create {name}"));
        self.tmp.push(name);
    }

    fn delete_topic(&mut self, log: &Log) {
        let id = self.id;
        self.id += 1;
        let i = self.rng.below(self.tmp.len() as u64) as usize;
        let name = self.tmp.remove(i);
        emit(&format!("SENT {id} delete {name}"));
        if let Err(e) = log.delete_topic(&name) {
            fail(id, "delete_topic", &e);
        }
        emit(&format!("TOPIC delete {name}"));
    }

    fn delete_records(&mut self, log: &Log) {
        let id = self.id;
        self.id += 1;
        let topic = self.pick_topic();
        let info = match log.describe(&topic) {
            Ok(info) => info,
            Err(e) => fail(id, "describe", &e),
        };
        let p = self.rng.below(info.partitions.len() as u64) as u32;
        let (start, end) = (
            info.partitions[p as usize].start_offset,
            info.partitions[p as usize].end_offset,
        );
        let keep = self.rng.below(300);
        let before = end.saturating_sub(keep).max(start);
        emit(&format!("SENT {id} delrec {topic} {p} {before}"));
        if let Err(e) = log.delete_records(&topic, p, before) {
            fail(id, "delete_records", &e);
        }
        emit(&format!("DELREC {topic} {p} {before}"));
    }

    fn maintenance(&mut self, log: &Log) {
        let ms = self.rng.below(CLOCK_STEP_MAX);
        self.advance(ms);
        let id = self.id;
        self.id += 1;
        emit(&format!("SENT {id} maint"));
        let report = match log.run_maintenance() {
            Ok(r) => r,
            Err(e) => fail(id, "run_maintenance", &e),
        };
        if report.partitions_failed > 0 {
            emit(&format!("ERR {id} run_maintenance: {report:?}"));
            std::process::exit(3);
        }
        let mut line = format!(
            "MAINT {id} {} {}",
            report.segments_deleted, report.segments_compacted
        );
        for t in log.topics() {
            match log.describe(&t) {
                Ok(info) => {
                    for p in &info.partitions {
                        line.push_str(&format!(" {t}:{}:{}", p.partition, p.start_offset));
                    }
                }
                Err(e) => fail(id, "describe", &e),
            }
        }
        emit(&line);
    }
}

fn child_main() -> ! {
    let dir = PathBuf::from(std::env::var_os("TIDELOG_CRASH_DIR").expect("TIDELOG_CRASH_DIR"));
    let mode = Mode::parse(&std::env::var("TIDELOG_CRASH_MODE").expect("TIDELOG_CRASH_MODE"));
    let seed = env_u64("TIDELOG_CRASH_SEED").expect("TIDELOG_CRASH_SEED");
    let first_id = env_u64("TIDELOG_CRASH_FIRST_ID").expect("TIDELOG_CRASH_FIRST_ID");
    let clock_ms = env_u64("TIDELOG_CRASH_CLOCK").expect("TIDELOG_CRASH_CLOCK");
    let close_at = env_u64("TIDELOG_CRASH_CLOSE_AT").unwrap_or(0);
    let mut st = ChildState {
        seed,
        rng: Rng::new(seed ^ first_id),
        clock: ManualClock::new(clock_ms as i64),
        id: first_id,
        tmp: Vec::new(),
    };
    let mut ops = 0u64;
    loop {
        emit("OPENING");
        let log = match Log::open(&dir, log_config(mode, &st.clock)) {
            Ok(log) => log,
            Err(e) => {
                emit(&format!("OPENERR {}", e.to_string().replace('\n', " ")));
                std::process::exit(4);
            }
        };
        emit("READY");
        let mut consumers: Vec<(&str, Consumer)> = Vec::new();
        for (group, topics) in GROUPS {
            let mut c = log.consumer(group);
            if let Err(e) = c.subscribe(topics) {
                fail(st.id, "subscribe", &e);
            }
            consumers.push((group, c));
        }
        st.tmp = log
            .topics()
            .into_iter()
            .filter(|t| t.starts_with("tmp-"))
            .collect();
        loop {
            ops += 1;
            if ops > CHILD_OPS_MAX {
                std::process::exit(0);
            }
            if ops == close_at || st.rng.below(400) == 0 {
                let id = st.id;
                st.id += 1;
                emit(&format!("SENT {id} close"));
                drop(consumers);
                if let Err(e) = log.close() {
                    fail(id, "close", &e);
                }
                emit(&format!("CLOSED {id}"));
                break;
            }
            match st.rng.below(100) {
                0..=44 => st.send(&log),
                45..=66 => st.send_batch(&log),
                67..=76 => {
                    let k = st.rng.below(consumers.len() as u64) as usize;
                    let (group, c) = &mut consumers[k];
                    st.commit(group, c);
                }
                77..=80 => st.delete_records(&log),
                81..=87 => st.maintenance(&log),
                88..=92 if st.tmp.len() < TMP_MAX => st.create_topic(&log),
                93..=96 if !st.tmp.is_empty() => st.delete_topic(&log),
                _ => st.send(&log),
            }
        }
    }
}

/// The child: runs only when re-run by a parent (`TIDELOG_CRASH_CHILD=1`).
#[test]
fn crash_loop_child() {
    if std::env::var_os("TIDELOG_CRASH_CHILD").is_some() {
        child_main();
    }
}

// ---------------------------------------------------------------------------
// parent: what one child printed

#[derive(Debug, Clone)]
enum Kind {
    Send {
        topic: String,
    },
    Batch {
        topic: String,
        n: u64,
    },
    Commit {
        group: String,
        list: Vec<(String, u32, u64)>,
    },
    Create {
        name: String,
    },
    Delete {
        name: String,
    },
    DelRec {
        topic: String,
        partition: u32,
        before: u64,
    },
    Maint,
    Close,
}

#[derive(Debug, Clone)]
struct Ack {
    id: u64,
    topic: String,
    partition: u32,
    offset: u64,
    ts: i64,
}

#[derive(Debug, Clone)]
struct Op {
    id: u64,
    /// Global order of every call ever sent in this mode.
    seq: u64,
    kind: Kind,
    /// The call returned `Ok` (at least one of its acknowledgement lines arrived).
    acked: bool,
    acks: Vec<Ack>,
    /// `MAINT`: the start offsets printed after the call.
    starts: Vec<(String, u32, u64)>,
    /// `MAINT`: segments deleted and segments compacted by the call.
    maint: (u64, u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Life {
    #[default]
    Started,
    Opening,
    Ready,
    Closing,
    Closed,
}

/// What the parent reacts to while the child runs.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Opening,
    Ready,
    Closing,
    Acked,
    Other,
}

#[derive(Debug, Default)]
struct Run {
    ops: Vec<Op>,
    clock: Option<i64>,
    life: Life,
    opening_at: Option<Instant>,
    closing_at: Option<Instant>,
    open_us: Vec<u64>,
    close_us: Vec<u64>,
    open_err: Option<String>,
    err: Option<String>,
    bad: Vec<String>,
    /// The child ended by itself (a panic, an error, or its own stop).
    exited_itself: Option<String>,
}

const KEYWORDS: [&str; 13] = [
    "OPENING", "READY", "OPENERR", "CLOCK", "SENT", "ACK", "COMMIT", "TOPIC", "DELREC", "MAINT", "CLOSED",
    "ERR", "BAD",
];

fn num<T: std::str::FromStr>(t: &[&str], i: usize, line: &str) -> T {
    t.get(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("protocol: bad field {i} in {line:?}"))
}

fn triple(s: &str, line: &str) -> (String, u32, u64) {
    let mut it = s.split(':');
    let t = it.next().unwrap_or_default().to_string();
    let p = it.next().and_then(|p| p.parse().ok());
    let o = it.next().and_then(|o| o.parse().ok());
    match (p, o) {
        (Some(p), Some(o)) => (t, p, o),
        _ => panic!("protocol: bad entry {s:?} in {line:?}"),
    }
}

impl Run {
    fn current(&mut self, line: &str) -> &mut Op {
        self.ops
            .last_mut()
            .unwrap_or_else(|| panic!("protocol: {line:?} before any SENT"))
    }

    /// Parses one line (other output, such as libtest's, is ignored; a keyword
    /// may follow libtest's `test crash_loop_child ... ` on the same line).
    fn handle(&mut self, line: &str, at: Instant, seq: &mut u64) -> Option<Event> {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let start = tokens.iter().position(|t| KEYWORDS.contains(t))?;
        let t = &tokens[start..];
        Some(match t[0] {
            "OPENING" => {
                self.life = Life::Opening;
                self.opening_at = Some(at);
                Event::Opening
            }
            "READY" => {
                self.life = Life::Ready;
                if let Some(o) = self.opening_at.take() {
                    self.open_us.push(at.duration_since(o).as_micros() as u64);
                }
                Event::Ready
            }
            "OPENERR" => {
                self.open_err = Some(t[1..].join(" "));
                Event::Other
            }
            "ERR" => {
                self.err = Some(t[1..].join(" "));
                Event::Other
            }
            "BAD" => {
                self.bad.push(t[1..].join(" "));
                Event::Other
            }
            "CLOCK" => {
                let ms: i64 = num(t, 1, line);
                self.clock = Some(self.clock.map_or(ms, |c| c.max(ms)));
                Event::Other
            }
            "SENT" => {
                let id: u64 = num(t, 1, line);
                let word = |i: usize| -> String {
                    t.get(i)
                        .unwrap_or_else(|| panic!("protocol: short line {line:?}"))
                        .to_string()
                };
                let kind = match t.get(2).copied() {
                    Some("send") => Kind::Send { topic: word(3) },
                    Some("batch") => Kind::Batch {
                        topic: word(3),
                        n: num(t, 4, line),
                    },
                    Some("commit") => Kind::Commit {
                        group: word(3),
                        list: t[4..].iter().map(|s| triple(s, line)).collect(),
                    },
                    Some("create") => Kind::Create { name: word(3) },
                    Some("delete") => Kind::Delete { name: word(3) },
                    Some("delrec") => Kind::DelRec {
                        topic: word(3),
                        partition: num(t, 4, line),
                        before: num(t, 5, line),
                    },
                    Some("maint") => Kind::Maint,
                    Some("close") => Kind::Close,
                    _ => panic!("protocol: unknown call in {line:?}"),
                };
                if let Some(prev) = self.ops.last() {
                    assert!(
                        prev.acked,
                        "protocol: {line:?} while call {} has no acknowledgement",
                        prev.id
                    );
                }
                let closing = matches!(kind, Kind::Close);
                self.ops.push(Op {
                    id,
                    seq: *seq,
                    kind,
                    acked: false,
                    acks: Vec::new(),
                    starts: Vec::new(),
                    maint: (0, 0),
                });
                *seq += 1;
                if closing {
                    self.life = Life::Closing;
                    self.closing_at = Some(at);
                    Event::Closing
                } else {
                    Event::Other
                }
            }
            "ACK" => {
                let ack = Ack {
                    id: num(t, 1, line),
                    topic: t.get(2).unwrap_or(&"").to_string(),
                    partition: num(t, 3, line),
                    offset: num(t, 4, line),
                    ts: num(t, 5, line),
                };
                let op = self.current(line);
                let ok = match &op.kind {
                    Kind::Send { topic } => *topic == ack.topic && ack.id == op.id,
                    Kind::Batch { topic, n } => *topic == ack.topic && (op.id..op.id + n).contains(&ack.id),
                    _ => false,
                };
                assert!(ok, "protocol: {line:?} does not answer {op:?}");
                op.acked = true;
                op.acks.push(ack);
                Event::Acked
            }
            "COMMIT" => {
                let (g, tp, p, o) = (
                    t.get(1).copied(),
                    t.get(2).copied(),
                    num(t, 3, line),
                    num(t, 4, line),
                );
                let op = self.current(line);
                let ok = match &op.kind {
                    Kind::Commit { group, list } => {
                        Some(group.as_str()) == g
                            && list
                                .iter()
                                .any(|(lt, lp, lo)| Some(lt.as_str()) == tp && *lp == p && *lo == o)
                    }
                    _ => false,
                };
                assert!(ok, "protocol: {line:?} does not answer {op:?}");
                op.acked = true;
                Event::Acked
            }
            "TOPIC" => {
                let (what, name) = (t.get(1).copied(), t.get(2).copied());
                let op = self.current(line);
                let ok = match &op.kind {
                    Kind::Create { name: n } => what == Some("create") && Some(n.as_str()) == name,
                    Kind::Delete { name: n } => what == Some("delete") && Some(n.as_str()) == name,
                    _ => false,
                };
                assert!(ok, "protocol: {line:?} does not answer {op:?}");
                op.acked = true;
                Event::Acked
            }
            "DELREC" => {
                let (tp, p, b): (Option<&str>, u32, u64) =
                    (t.get(1).copied(), num(t, 2, line), num(t, 3, line));
                let op = self.current(line);
                let ok = matches!(&op.kind, Kind::DelRec { topic, partition, before }
                    if Some(topic.as_str()) == tp && *partition == p && *before == b);
                assert!(ok, "protocol: {line:?} does not answer {op:?}");
                op.acked = true;
                Event::Acked
            }
            "MAINT" => {
                let id: u64 = num(t, 1, line);
                let starts: Vec<(String, u32, u64)> = t[4..].iter().map(|s| triple(s, line)).collect();
                let op = self.current(line);
                assert!(
                    matches!(op.kind, Kind::Maint) && op.id == id,
                    "protocol: {line:?} does not answer {op:?}"
                );
                op.acked = true;
                op.starts = starts;
                op.maint = (num(t, 2, line), num(t, 3, line));
                Event::Acked
            }
            "CLOSED" => {
                let id: u64 = num(t, 1, line);
                let op = self.current(line);
                assert!(
                    matches!(op.kind, Kind::Close) && op.id == id,
                    "protocol: {line:?} does not answer {op:?}"
                );
                op.acked = true;
                self.life = Life::Closed;
                if let Some(c) = self.closing_at.take() {
                    self.close_us.push(at.duration_since(c).as_micros() as u64);
                }
                Event::Other
            }
            _ => Event::Other,
        })
    }
}

/// When to kill the child.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// This long after `OPENING`.
    InOpen(Duration),
    /// Close at operation `close_at`, kill this long after its `SENT`.
    InClose { close_at: u64, delay: Duration },
    /// After `n` acknowledgement lines, plus a little.
    AfterAcks { n: u64, delay: Duration },
    /// This long after `READY`.
    Delay(Duration),
}

/// Running estimates of how long `open` and `close` take, as seen through the pipe.
struct Estimates {
    open_us: u64,
    close_us: u64,
}

impl Estimates {
    fn update(slot: &mut u64, samples: &[u64]) {
        for s in samples {
            *slot = (*slot * 3 + s) / 4;
        }
    }
}

fn choose_plan(rng: &mut Rng, est: &Estimates) -> Plan {
    let r = rng.below(100);
    let us = |n: u64| Duration::from_micros(n);
    if r < 10 {
        Plan::InOpen(us(rng.below(est.open_us + 1)))
    } else if r < 15 {
        Plan::InClose {
            close_at: 1 + rng.below(60),
            delay: us(rng.below(est.close_us + 1)),
        }
    } else if r < 60 {
        Plan::AfterAcks {
            n: rng.below(150),
            delay: us(rng.below(400)),
        }
    } else {
        Plan::Delay(Duration::from_millis(rng.below(150)))
    }
}

struct Ctx {
    dir: PathBuf,
    mode: Mode,
    seed: u64,
}

/// Runs one child until the plan says, SIGKILLs it, and returns what it printed (whole lines).
fn run_child(ctx: &Ctx, first_id: u64, clock_ms: i64, plan: Plan, seq: &mut u64) -> Run {
    let close_at = match plan {
        Plan::InClose { close_at, .. } => close_at,
        _ => 0,
    };
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", CHILD_TEST, "--nocapture"])
        .env("TIDELOG_CRASH_CHILD", "1")
        .env("TIDELOG_CRASH_DIR", &ctx.dir)
        .env("TIDELOG_CRASH_MODE", ctx.mode.name())
        .env("TIDELOG_CRASH_SEED", ctx.seed.to_string())
        .env("TIDELOG_CRASH_FIRST_ID", first_id.to_string())
        .env("TIDELOG_CRASH_CLOCK", clock_ms.to_string())
        .env("TIDELOG_CRASH_CLOSE_AT", close_at.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // Between fork and exec a new process shares every open file description of
    // this one, so the flock of another mode's LOCK file, held by that mode's
    // in-process `Log`, would outlive its `close` until the exec: that mode's
    // next open could then find its directory locked. Spawns hold `SPAWN`
    // (spawn returns after the exec), and so does a mode's parent while its
    // log is open in `check`.
    let mut child = {
        let _one = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        command.spawn().expect("spawn the child")
    };
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<(String, Instant)>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    // A line without its newline was cut by the kill: dropped.
                    if !line.ends_with('\n') || tx.send((line, Instant::now())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut run = Run::default();
    let stall = Duration::from_secs(120);
    let mut acks = 0u64;
    let mut kill_at: Option<Instant> = None;
    let ended_itself = loop {
        let wait = match kill_at {
            Some(t) => t.saturating_duration_since(Instant::now()),
            None => stall,
        };
        if kill_at.is_some() && wait.is_zero() {
            break false;
        }
        match rx.recv_timeout(wait) {
            Ok((line, at)) => {
                let event = run.handle(&line, at, seq);
                if kill_at.is_some() {
                    continue;
                }
                let now = Instant::now();
                match (plan, event) {
                    (Plan::InOpen(d), Some(Event::Opening)) => kill_at = Some(now + d),
                    (Plan::InClose { delay, .. }, Some(Event::Closing)) => kill_at = Some(now + delay),
                    (Plan::Delay(d), Some(Event::Ready)) => kill_at = Some(now + d),
                    (Plan::AfterAcks { n: 0, delay }, Some(Event::Ready)) => kill_at = Some(now + delay),
                    (Plan::AfterAcks { n, delay }, Some(Event::Acked)) => {
                        acks += 1;
                        if acks >= n {
                            kill_at = Some(now + delay);
                        }
                    }
                    _ => {}
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if kill_at.is_some() => break false,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("the child printed nothing for {stall:?} (plan {plan:?})");
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break true,
        }
    };
    if !ended_itself {
        child.kill().expect("SIGKILL the child");
    }
    let status = child.wait().expect("wait for the child");
    while let Ok((line, at)) = rx.recv() {
        run.handle(&line, at, seq);
    }
    reader.join().unwrap();
    if status.signal() != Some(SIGKILL) {
        run.exited_itself = Some(format!("{status:?}"));
    }
    run
}

// ---------------------------------------------------------------------------
// parent: the model and the checks

/// A record known to be in a partition.
#[derive(Debug, Clone)]
struct Rec {
    id: u64,
    seq: u64,
    key: Bytes,
    tombstone: bool,
    ts: i64,
}

impl Rec {
    fn new(seed: u64, topic: &str, id: u64, seq: u64, ts: i64) -> Rec {
        Rec {
            id,
            seq,
            key: key_of(seed, topic, id),
            tombstone: is_tombstone(seed, topic, id),
            ts,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Part {
    start: u64,
    end: u64,
    recs: BTreeMap<u64, Rec>,
}

type GroupKey = (String, String, u32);

/// The state found at the last check (what every later open must keep).
#[derive(Debug, Default)]
struct Model {
    topics: BTreeMap<String, TopicConfig>,
    parts: BTreeMap<(String, u32), Part>,
    commits: BTreeMap<GroupKey, u64>,
    last_maint_seq: Option<u64>,
    clock: i64,
    seq: u64,
}

#[derive(Debug, Default)]
struct Tally {
    kills: u64,
    kills_in_open: u64,
    kills_in_close: u64,
    acked: u64,
    checked: u64,
    commits_checked: u64,
    /// Returned calls by kind, and what maintenance did.
    calls: BTreeMap<&'static str, u64>,
    segments_deleted: u64,
    segments_compacted: u64,
    lost: u64,
    corrupt: u64,
    reordered: u64,
    invented: u64,
    panics: u64,
    open_errors: u64,
    reopen_diffs: u64,
    messages: u64,
}

#[derive(Clone, Copy)]
enum Bad {
    Lost,
    Corrupt,
    Reordered,
    Invented,
    Panic,
    Open,
    Reopen,
}

impl Tally {
    fn failures(&self) -> u64 {
        self.lost
            + self.corrupt
            + self.reordered
            + self.invented
            + self.panics
            + self.open_errors
            + self.reopen_diffs
    }
    fn note(&mut self, what: Bad, n: u64, msg: String) {
        let (slot, name) = match what {
            Bad::Lost => (&mut self.lost, "LOST"),
            Bad::Corrupt => (&mut self.corrupt, "CORRUPT"),
            Bad::Reordered => (&mut self.reordered, "REORDERED"),
            Bad::Invented => (&mut self.invented, "INVENTED"),
            Bad::Panic => (&mut self.panics, "CHILD FAILED"),
            Bad::Open => (&mut self.open_errors, "OPEN ERROR"),
            Bad::Reopen => (&mut self.reopen_diffs, "REOPEN CHANGED"),
        };
        *slot += n;
        self.messages += 1;
        if self.messages <= MESSAGES_MAX {
            eprintln!("crash_loop: {name}: {msg}");
        }
    }
}

#[derive(Debug, PartialEq)]
struct Snapshot {
    infos: BTreeMap<String, TopicInfo>,
    commits: BTreeMap<GroupKey, Option<u64>>,
}

fn snapshot(log: &Log) -> Snapshot {
    let mut infos = BTreeMap::new();
    for t in log.topics() {
        if let Ok(info) = log.describe(&t) {
            infos.insert(t, info);
        }
    }
    let mut commits = BTreeMap::new();
    for (group, topics) in GROUPS {
        let c = log.consumer(group);
        for &t in topics {
            let Some(info) = infos.get(t) else { continue };
            for p in 0..info.partitions.len() as u32 {
                let committed = c.committed(t, p).unwrap_or(None);
                commits.insert((group.to_string(), t.to_string(), p), committed);
            }
        }
    }
    Snapshot { infos, commits }
}

/// Everything one run implies for the checks.
struct Expect {
    seed: u64,
    /// Acknowledged records of this run per partition: (ack, seq of its call).
    acks: BTreeMap<(String, u32), Vec<(Ack, u64)>>,
    /// Records of the last call without an ACK line: id -> (topic, seq, the call returned).
    pending: BTreeMap<u64, (String, u64, bool)>,
    /// The acknowledged start offset per partition.
    lo: BTreeMap<(String, u32), u64>,
    /// `delete_records` in flight at the kill.
    delrec_in_flight: Option<(String, u32, u64)>,
    maint_in_flight: bool,
    /// The last maintenance call sent (acknowledged or not), ever.
    last_maint_seq: Option<u64>,
}

fn read_partition(
    log: &Log,
    topic: &str,
    p: u32,
    start: u64,
    end: u64,
    tally: &mut Tally,
) -> Vec<ConsumedRecord> {
    let mut out = Vec::new();
    let mut next = start;
    let mut errors = 0;
    while next < end {
        match log.fetch(topic, p, next, 1000) {
            Ok(got) => {
                let Some(last) = got.last() else {
                    if !compacted(topic) {
                        tally.note(
                            Bad::Reordered,
                            1,
                            format!("{topic}-{p}: fetch({next}) is empty below the end {end}"),
                        );
                    }
                    break;
                };
                next = last.offset() + 1;
                out.extend(got);
            }
            Err(e) => {
                tally.note(Bad::Corrupt, 1, format!("{topic}-{p}: fetch({next}): {e}"));
                next += 1;
                errors += 1;
                if errors > 20 {
                    break;
                }
            }
        }
    }
    out
}

impl Expect {
    fn build(seed: u64, model: &Model, run: &Run, tally: &mut Tally) -> Expect {
        let mut e = Expect {
            seed,
            acks: BTreeMap::new(),
            pending: BTreeMap::new(),
            lo: model.parts.iter().map(|(k, p)| (k.clone(), p.start)).collect(),
            delrec_in_flight: None,
            maint_in_flight: false,
            last_maint_seq: model.last_maint_seq,
        };
        let mut last_ack: BTreeMap<(String, u32), u64> = BTreeMap::new();
        for op in &run.ops {
            if matches!(op.kind, Kind::Maint) {
                e.last_maint_seq = Some(op.seq);
            }
            if op.acked {
                let name = match op.kind {
                    Kind::Send { .. } => "sends",
                    Kind::Batch { .. } => "batches",
                    Kind::Commit { .. } => "commits",
                    Kind::Create { .. } | Kind::Delete { .. } => "topic_ops",
                    Kind::DelRec { .. } => "delete_records",
                    Kind::Maint => "maintenance",
                    Kind::Close => "closes",
                };
                *tally.calls.entry(name).or_default() += 1;
                tally.segments_deleted += op.maint.0;
                tally.segments_compacted += op.maint.1;
            }
            let mut batch_next: BTreeMap<u32, u64> = BTreeMap::new();
            for a in &op.acks {
                tally.acked += 1;
                let parts = topic_config(&a.topic).map_or(1, |c| c.partition_count());
                let key = key_of(seed, &a.topic, a.id);
                if partition_of(&key, parts) != a.partition {
                    tally.note(
                        Bad::Invented,
                        1,
                        format!(
                            "ACK {} at {}-{}: its key maps elsewhere",
                            a.id, a.topic, a.partition
                        ),
                    );
                }
                let tp = (a.topic.clone(), a.partition);
                if last_ack.get(&tp).is_some_and(|&prev| a.offset <= prev) {
                    tally.note(
                        Bad::Reordered,
                        1,
                        format!(
                            "ACK {} at {tp:?} offset {} after offset {}",
                            a.id, a.offset, last_ack[&tp]
                        ),
                    );
                }
                last_ack.insert(tp.clone(), a.offset);
                if let Some(want) = batch_next.get(&a.partition) {
                    if *want != a.offset {
                        tally.note(
                            Bad::Reordered,
                            1,
                            format!("send_batch {}: {tp:?} offsets not consecutive at {}", op.id, a.id),
                        );
                    }
                }
                batch_next.insert(a.partition, a.offset + 1);
                e.acks.entry(tp).or_default().push((a.clone(), op.seq));
            }
            if op.acked {
                match &op.kind {
                    Kind::DelRec {
                        topic,
                        partition,
                        before,
                    } => {
                        let lo = e.lo.entry((topic.clone(), *partition)).or_insert(0);
                        *lo = (*lo).max(*before);
                    }
                    Kind::Maint => {
                        for (t, p, s) in &op.starts {
                            let lo = e.lo.entry((t.clone(), *p)).or_insert(0);
                            if *s < *lo {
                                tally.note(
                                    Bad::Invented,
                                    1,
                                    format!("{t}-{p}: start offset {s} after maintenance, below {lo}"),
                                );
                            }
                            *lo = (*lo).max(*s);
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(op) = run.ops.last() {
            let ids = match &op.kind {
                Kind::Send { topic } => Some((topic, op.id..op.id + 1)),
                Kind::Batch { topic, n } => Some((topic, op.id..op.id + n)),
                _ => None,
            };
            if let Some((topic, ids)) = ids {
                for id in ids {
                    if !op.acks.iter().any(|a| a.id == id) {
                        e.pending.insert(id, (topic.clone(), op.seq, op.acked));
                    }
                }
            }
            if !op.acked {
                match &op.kind {
                    Kind::DelRec {
                        topic,
                        partition,
                        before,
                    } => e.delrec_in_flight = Some((topic.clone(), *partition, *before)),
                    Kind::Maint => e.maint_in_flight = true,
                    _ => {}
                }
            }
        }
        e
    }

    /// Checks one partition against the model and this run; returns what it holds now.
    fn check_partition(
        &self,
        log: &Log,
        topic: &str,
        parts: u32,
        pi: &PartitionInfo,
        old: &Part,
        tally: &mut Tally,
    ) -> Part {
        let p = pi.partition;
        let tp = (topic.to_string(), p);
        let (start, end) = (pi.start_offset, pi.end_offset);
        let compact = compacted(topic);
        let lo = self.lo.get(&tp).copied().unwrap_or(0).max(old.start);
        let hi = match &self.delrec_in_flight {
            Some((t, dp, b)) if t == topic && *dp == p => lo.max(*b),
            _ if self.maint_in_flight && has_retention(topic) => u64::MAX,
            _ => lo,
        };

        // What must be there: the model plus this run's acknowledgements.
        let mut expected = old.recs.clone();
        let mut fresh: BTreeSet<u64> = BTreeSet::new();
        for (a, seq) in self.acks.get(&tp).into_iter().flatten() {
            if a.offset < old.end {
                tally.note(
                    Bad::Reordered,
                    1,
                    format!(
                        "{topic}-{p}: ACK {} at offset {} below the end {} found before this run",
                        a.id, a.offset, old.end
                    ),
                );
            }
            if expected
                .insert(a.offset, Rec::new(self.seed, topic, a.id, *seq, a.ts))
                .is_some()
            {
                tally.note(
                    Bad::Reordered,
                    1,
                    format!("{topic}-{p}: two records acknowledged at offset {}", a.offset),
                );
            }
            fresh.insert(a.offset);
        }
        let by_id: HashMap<u64, u64> = expected.iter().map(|(o, r)| (r.id, *o)).collect();
        let max_expected = expected.keys().next_back().copied();

        if start < lo {
            tally.note(
                Bad::Invented,
                1,
                format!("{topic}-{p}: start offset {start} is below {lo}: removed records came back"),
            );
        }
        if start > hi {
            let n = expected.range(hi..start).count() as u64;
            tally.note(
                Bad::Lost,
                n.max(1),
                format!("{topic}-{p}: start offset {start} is past {hi}, which no returned or pending call explains"),
            );
        }
        if end < old.end {
            tally.note(
                Bad::Reordered,
                1,
                format!("{topic}-{p}: end offset {end} went back from {}", old.end),
            );
        }

        let present = read_partition(log, topic, p, start, end, tally);
        let mut now_recs: BTreeMap<u64, Rec> = BTreeMap::new();
        let mut matched: BTreeSet<u64> = BTreeSet::new();
        let mut seen: HashSet<u64> = HashSet::new();
        let mut pending_here: BTreeMap<u64, u64> = BTreeMap::new();
        let mut prev: Option<u64> = None;
        for r in &present {
            let o = r.offset();
            if prev.is_some_and(|q| o <= q) {
                tally.note(
                    Bad::Reordered,
                    1,
                    format!("{topic}-{p}: offset {o} after {prev:?}"),
                );
            } else if !compact && o != prev.map_or(start, |q| q + 1) {
                tally.note(
                    Bad::Reordered,
                    1,
                    format!("{topic}-{p}: hole before offset {o} (after {prev:?}, start {start})"),
                );
            }
            prev = Some(o);
            let Some(id) = record_id(r) else {
                tally.note(
                    Bad::Invented,
                    1,
                    format!("{topic}-{p}: offset {o} holds a record without an id"),
                );
                continue;
            };
            if !seen.insert(id) {
                tally.note(
                    Bad::Reordered,
                    1,
                    format!("{topic}-{p}: id {id} twice (again at {o})"),
                );
                continue;
            }
            let pending = self.pending.get(&id).filter(|(t, _, _)| t == topic);
            let known = by_id.contains_key(&id) || pending.is_some();
            if let Err(why) = record_matches(self.seed, topic, parts, id, r) {
                let what = if known { Bad::Corrupt } else { Bad::Invented };
                tally.note(what, 1, format!("{topic}-{p}: offset {o}, id {id}: {why}"));
                continue;
            }
            match expected.get(&o) {
                Some(rec) if rec.id == id => {
                    if rec.ts != r.timestamp() {
                        tally.note(
                            Bad::Corrupt,
                            1,
                            format!(
                                "{topic}-{p}: offset {o}, id {id}: timestamp {} not {}",
                                r.timestamp(),
                                rec.ts
                            ),
                        );
                    }
                    matched.insert(o);
                    if fresh.contains(&o) {
                        tally.checked += 1;
                    }
                    now_recs.insert(o, rec.clone());
                }
                _ => {
                    if let Some((_, seq, _)) = pending {
                        if expected.contains_key(&o) || o < old.end || max_expected.is_some_and(|m| o < m) {
                            tally.note(
                                Bad::Reordered,
                                1,
                                format!("{topic}-{p}: unacknowledged id {id} at offset {o}, before acknowledged records"),
                            );
                        }
                        pending_here.insert(id, o);
                        now_recs.insert(o, Rec::new(self.seed, topic, id, *seq, r.timestamp()));
                    } else if let Some(at) = by_id.get(&id) {
                        tally.note(
                            Bad::Reordered,
                            1,
                            format!("{topic}-{p}: id {id} at offset {o}, acknowledged at {at}"),
                        );
                    } else {
                        tally.note(
                            Bad::Invented,
                            1,
                            format!("{topic}-{p}: offset {o} holds id {id}, never sent here"),
                        );
                    }
                }
            }
        }
        if !compact && start < end && prev != Some(end - 1) {
            tally.note(
                Bad::Reordered,
                1,
                format!("{topic}-{p}: records end at {prev:?}, the end offset is {end}"),
            );
        }
        if compact {
            // A gap past the previous end must be a known record (compacted away).
            let offsets: BTreeSet<u64> = present.iter().map(|r| r.offset()).collect();
            let mut holes = 0;
            for o in start.max(old.end)..end {
                if !offsets.contains(&o) && !expected.contains_key(&o) {
                    holes += 1;
                }
            }
            if holes > 0 {
                tally.note(
                    Bad::Reordered,
                    holes,
                    format!(
                        "{topic}-{p}: {holes} offsets in {}..{end} hold no record anyone acknowledged",
                        start.max(old.end)
                    ),
                );
            }
        }

        // Every expected record at or past the start is there, or compaction removed it.
        let mut latest: HashMap<Bytes, u64> = HashMap::new();
        for (o, rec) in expected.range(start..) {
            let l = latest.entry(rec.key.clone()).or_insert(*o);
            *l = (*l).max(*o);
        }
        for r in &present {
            if let Some(k) = r.key() {
                let l = latest.entry(k.clone()).or_insert(r.offset());
                *l = (*l).max(r.offset());
            }
        }
        for (o, rec) in expected.range(start..) {
            if matched.contains(o) {
                continue;
            }
            let compactable = compact
                && self.last_maint_seq.is_some_and(|m| rec.seq < m)
                && (rec.tombstone || latest.get(&rec.key).is_some_and(|l| l > o));
            if !compactable {
                tally.note(
                    Bad::Lost,
                    1,
                    format!("{topic}-{p}: id {} acknowledged at offset {o} is missing", rec.id),
                );
            }
        }

        // The last call's unacknowledged records: whole per partition, at the end.
        let group: Vec<(u64, bool)> = self
            .pending
            .iter()
            .filter(|(id, (t, _, _))| t == topic && partition_of(&key_of(self.seed, topic, **id), parts) == p)
            .map(|(id, (_, _, returned))| (*id, *returned))
            .collect();
        let here: Vec<u64> = group
            .iter()
            .filter_map(|(id, _)| pending_here.get(id).copied())
            .collect();
        let returned = group.iter().any(|(_, r)| *r);
        if returned && here.len() < group.len() {
            tally.note(
                Bad::Lost,
                (group.len() - here.len()) as u64,
                format!(
                    "{topic}-{p}: a returned send_batch lacks {} records",
                    group.len() - here.len()
                ),
            );
        } else if !here.is_empty() && here.len() < group.len() {
            tally.note(
                Bad::Corrupt,
                1,
                format!(
                    "{topic}-{p}: half a batch: {} of {} records of the call in flight",
                    here.len(),
                    group.len()
                ),
            );
        }
        if here.windows(2).any(|w| w[1] != w[0] + 1) {
            tally.note(
                Bad::Reordered,
                1,
                format!("{topic}-{p}: the batch in flight is not consecutive: {here:?}"),
            );
        }
        Part {
            start,
            end,
            recs: now_recs,
        }
    }
}

/// Reopens after a kill, checks everything, and makes what it found the new model.
fn check(ctx: &Ctx, model: &mut Model, run: &Run, tally: &mut Tally, rng: &mut Rng) -> bool {
    let expect = Expect::build(ctx.seed, model, run, tally);
    let in_flight = run.ops.last().filter(|o| !o.acked);
    let clock = run.clock.unwrap_or(model.clock).max(model.clock);
    let config = log_config(ctx.mode, &ManualClock::new(clock));
    // No other mode spawns a child while this one has its log open here: a
    // process between fork and exec shares the flock'd LOCK descriptor, which
    // would outlive this mode's drop and make its next open `Locked`.
    let _no_spawn = SPAWN.lock().unwrap_or_else(|e| e.into_inner());

    let log1 = match Log::open(&ctx.dir, config.clone()) {
        Ok(log) => log,
        Err(e) => {
            tally.note(Bad::Open, 1, format!("open after the kill: {e}"));
            return false;
        }
    };
    let snap1 = snapshot(&log1);
    let clamped = log1.clamped_positions();
    if !clamped.is_empty() {
        tally.note(
            Bad::Lost,
            clamped.len() as u64,
            format!("committed positions past the recovered end: {clamped:?}"),
        );
    }
    if rng.below(2) == 0 {
        if let Err(e) = log1.close() {
            tally.note(Bad::Open, 1, format!("close after recovery: {e}"));
        }
    }
    drop(log1);
    let log = match Log::open(&ctx.dir, config.clone()) {
        Ok(log) => log,
        Err(e) => {
            tally.note(Bad::Open, 1, format!("second open: {e}"));
            return false;
        }
    };
    let snap = snapshot(&log);
    if snap != snap1 {
        let mut diffs = Vec::new();
        for (name, info) in &snap.infos {
            if snap1.infos.get(name) != Some(info) {
                diffs.push(format!("{info:?} was {:?}", snap1.infos.get(name)));
            }
        }
        for name in snap1.infos.keys().filter(|n| !snap.infos.contains_key(*n)) {
            diffs.push(format!("topic {name} gone"));
        }
        if snap.commits != snap1.commits {
            diffs.push(format!("commits {:?} were {:?}", snap.commits, snap1.commits));
        }
        tally.note(
            Bad::Reopen,
            1,
            format!("the second open differs: {}", diffs.join("; ")),
        );
    }

    // Topics.
    let mut must = model.topics.clone();
    let mut may: BTreeMap<String, TopicConfig> = BTreeMap::new();
    for op in run.ops.iter().filter(|o| o.acked) {
        match &op.kind {
            Kind::Create { name } => {
                must.insert(name.clone(), topic_config(name).unwrap());
            }
            Kind::Delete { name } => {
                must.remove(name);
            }
            _ => {}
        }
    }
    if let Some(op) = in_flight {
        match &op.kind {
            Kind::Create { name } => {
                may.insert(name.clone(), topic_config(name).unwrap());
            }
            Kind::Delete { name } => {
                if let Some(c) = must.remove(name) {
                    may.insert(name.clone(), c);
                }
            }
            _ => {}
        }
    }
    for (name, config) in &must {
        match snap.infos.get(name) {
            None => tally.note(Bad::Lost, 1, format!("acknowledged topic {name} is missing")),
            Some(info)
                if info.config != *config || info.partitions.len() != config.partition_count() as usize =>
            {
                tally.note(
                    Bad::Corrupt,
                    1,
                    format!("topic {name} has config {:?}, not {config:?}", info.config),
                );
            }
            Some(_) => {}
        }
    }
    for (name, info) in &snap.infos {
        if must.contains_key(name) {
            continue;
        }
        match may.get(name) {
            Some(c) if *c == info.config => {}
            Some(c) => tally.note(
                Bad::Corrupt,
                1,
                format!("topic {name} has config {:?}, not {c:?}", info.config),
            ),
            None => tally.note(
                Bad::Invented,
                1,
                format!("topic {name} exists, but nobody created it or it was deleted"),
            ),
        }
    }

    // Partitions.
    let mut parts = BTreeMap::new();
    for (name, info) in &snap.infos {
        let count = info.partitions.len() as u32;
        for pi in &info.partitions {
            let tp = (name.clone(), pi.partition);
            let old = model.parts.get(&tp).cloned().unwrap_or_default();
            let now = expect.check_partition(&log, name, count, pi, &old, tally);
            parts.insert(tp, now);
        }
    }
    // Records acknowledged to a topic that must exist but is gone were counted with the topic.

    // Committed positions.
    let mut confirmed = model.commits.clone();
    for op in run.ops.iter().filter(|o| o.acked) {
        if let Kind::Commit { group, list } = &op.kind {
            for (t, p, o) in list {
                confirmed.insert((group.clone(), t.clone(), *p), *o);
            }
        }
    }
    let flight: BTreeMap<GroupKey, u64> = match in_flight.map(|o| &o.kind) {
        Some(Kind::Commit { group, list }) => list
            .iter()
            .map(|(t, p, o)| ((group.clone(), t.clone(), *p), *o))
            .collect(),
        _ => BTreeMap::new(),
    };
    for (key, actual) in &snap.commits {
        tally.commits_checked += 1;
        let want = confirmed.get(key).copied();
        let alt = flight.get(key).copied();
        if *actual != want && (alt.is_none() || *actual != alt) {
            let what = if actual.is_none() || *actual < want {
                Bad::Lost
            } else {
                Bad::Invented
            };
            tally.note(
                what,
                1,
                format!("group {key:?}: committed {actual:?}, acknowledged {want:?}, in flight {alt:?}"),
            );
        }
        if let (Some(a), Some(info)) = (actual, snap.infos.get(&key.1)) {
            let end = info.partitions.get(key.2 as usize).map_or(0, |p| p.end_offset);
            if *a > end {
                tally.note(
                    Bad::Lost,
                    1,
                    format!("group {key:?}: committed {a} is past the end {end}"),
                );
            }
        }
    }
    for key in confirmed.keys().filter(|k| !snap.commits.contains_key(*k)) {
        if snap.infos.contains_key(&key.1) {
            tally.note(
                Bad::Lost,
                1,
                format!("group {key:?}: the committed position is gone"),
            );
        }
    }
    let changed: Vec<(&GroupKey, &u64)> = flight
        .iter()
        .filter(|(k, o)| confirmed.get(*k) != Some(*o))
        .collect();
    let applied = changed
        .iter()
        .filter(|(k, o)| snap.commits.get(*k) == Some(&Some(**o)))
        .count();
    if applied != 0 && applied != changed.len() {
        tally.note(
            Bad::Corrupt,
            1,
            format!(
                "half a commit: {applied} of {} positions of the commit in flight",
                changed.len()
            ),
        );
    }
    if let Err(e) = log.close() {
        tally.note(Bad::Open, 1, format!("close after the check: {e}"));
    }

    model.topics = snap
        .infos
        .iter()
        .map(|(n, i)| (n.clone(), i.config.clone()))
        .collect();
    model.parts = parts;
    model.commits = snap
        .commits
        .iter()
        .filter_map(|(k, v)| v.map(|v| (k.clone(), v)))
        .collect();
    model.last_maint_seq = expect.last_maint_seq;
    model.clock = clock;
    true
}

/// Runs `kills` kills in one mode; returns a description of the failures, if any.
fn run_mode(mode: Mode, kills: u64, base_seed: u64) -> Result<(), String> {
    let started = Instant::now();
    let verbose = std::env::var_os("TIDELOG_CRASH_LOOP_VERBOSE").is_some();
    let budget = env_u64("TIDELOG_CRASH_LOOP_SECS").map(Duration::from_secs);
    let seed = mix(base_seed ^ mode.salt());
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let ctx = Ctx {
        dir: tmp.path().join("log"),
        mode,
        seed,
    };
    let mut model = Model {
        clock: T0,
        ..Model::default()
    };
    {
        let _no_spawn = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        let log = Log::open(&ctx.dir, log_config(mode, &ManualClock::new(T0))).expect("first open");
        for t in PERMANENT {
            let config = topic_config(t).unwrap();
            log.create_topic(t, config.clone()).expect("create_topic");
            for p in 0..config.partition_count() {
                model.parts.insert((t.to_string(), p), Part::default());
            }
            model.topics.insert(t.to_string(), config);
        }
        log.close().expect("close");
    }
    let mut tally = Tally::default();
    let mut est = Estimates {
        open_us: 3_000,
        close_us: 3_000,
    };
    let replay = |kill: u64| {
        format!(
            "TIDELOG_SEED={base_seed:#x} TIDELOG_CRASH_LOOP_ITERS={kills} TIDELOG_CRASH_LOOP_MODES={} \
             cargo test --all-features --test crash_loop crash_loop -- --exact (failed at kill {kill})",
            mode.name()
        )
    };
    for i in 0..kills {
        if budget.is_some_and(|b| started.elapsed() >= b) {
            eprintln!("crash_loop: {}: time budget reached after {i} kills", mode.name());
            break;
        }
        let plan = choose_plan(&mut rng, &est);
        let before = tally.failures();
        let t_child = Instant::now();
        let run = run_child(&ctx, (i + 1) * ID_STRIDE, model.clock + 1, plan, &mut model.seq);
        tally.kills += 1;
        Estimates::update(&mut est.open_us, &run.open_us[..run.open_us.len().min(1)]);
        Estimates::update(&mut est.close_us, &run.close_us);
        match run.life {
            Life::Opening if run.exited_itself.is_none() => tally.kills_in_open += 1,
            Life::Closing if run.exited_itself.is_none() => tally.kills_in_close += 1,
            _ => {}
        }
        if let Some(e) = &run.open_err {
            tally.note(Bad::Open, 1, format!("kill {i}: the child's open failed: {e}"));
        } else if let Some(e) = &run.err {
            tally.note(Bad::Panic, 1, format!("kill {i}: the child got an error: {e}"));
        } else if let Some(status) = &run.exited_itself {
            tally.note(
                Bad::Panic,
                1,
                format!("kill {i}: the child ended by itself: {status}"),
            );
        }
        for b in &run.bad {
            tally.note(
                Bad::Corrupt,
                1,
                format!("kill {i}: the child polled a bad record: {b}"),
            );
        }
        let t_check = Instant::now();
        let went_on = check(&ctx, &mut model, &run, &mut tally, &mut rng);
        if verbose {
            eprintln!(
                "crash_loop: {} kill {i}: plan {plan:?}, killed {:?}, {} calls, child {:?}, check {:?}, \
                 {} records held",
                mode.name(),
                run.life,
                run.ops.len(),
                t_check - t_child,
                t_check.elapsed(),
                model.parts.values().map(|p| p.recs.len()).sum::<usize>()
            );
        }
        if tally.failures() > before || !went_on {
            eprintln!(
                "crash_loop: mode {} kill {i} (plan {plan:?}, last calls {:?}) failed; replay: {}",
                mode.name(),
                run.ops.iter().rev().take(3).collect::<Vec<_>>(),
                replay(i)
            );
            break;
        }
    }
    common::reliability_report(
        "crash_loop",
        &[
            ("mode", mode.name().to_string()),
            ("kills", tally.kills.to_string()),
            ("kills_in_open", tally.kills_in_open.to_string()),
            ("kills_in_close", tally.kills_in_close.to_string()),
            ("acked", tally.acked.to_string()),
            ("checked", tally.checked.to_string()),
            ("commits_checked", tally.commits_checked.to_string()),
            (
                "calls",
                [
                    "sends",
                    "batches",
                    "commits",
                    "topic_ops",
                    "delete_records",
                    "maintenance",
                    "closes",
                ]
                .iter()
                .map(|k| format!("{k}:{}", tally.calls.get(k).copied().unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(","),
            ),
            ("segments_deleted", tally.segments_deleted.to_string()),
            ("segments_compacted", tally.segments_compacted.to_string()),
            ("lost", tally.lost.to_string()),
            ("corrupt", tally.corrupt.to_string()),
            ("reordered", tally.reordered.to_string()),
            ("invented", tally.invented.to_string()),
            ("panics", tally.panics.to_string()),
            ("open_errors", tally.open_errors.to_string()),
            ("reopen_diffs", tally.reopen_diffs.to_string()),
            ("seed", format!("{base_seed:#x}")),
            ("secs", started.elapsed().as_secs().to_string()),
        ],
    );
    if tally.failures() == 0 && tally.checked > 0 {
        return Ok(());
    }
    Err(format!(
        "mode {}: lost {} corrupt {} reordered {} invented {} panics {} open_errors {} reopen_diffs {} \
         checked {}; replay: {}",
        mode.name(),
        tally.lost,
        tally.corrupt,
        tally.reordered,
        tally.invented,
        tally.panics,
        tally.open_errors,
        tally.reopen_diffs,
        tally.checked,
        replay(tally.kills.saturating_sub(1))
    ))
}

/// The parent: every mode at once (the work is mostly waiting for fsyncs),
/// `TIDELOG_CRASH_LOOP_MODES=os,interval,always` to choose.
#[test]
fn crash_loop() {
    if std::env::var_os("TIDELOG_CRASH_CHILD").is_some() {
        return;
    }
    let kills = env_u64("TIDELOG_CRASH_LOOP_ITERS").unwrap_or(QUICK_KILLS);
    let base_seed = env_u64("TIDELOG_SEED").unwrap_or(0x5eed_c1a5);
    let modes = std::env::var("TIDELOG_CRASH_LOOP_MODES").unwrap_or_else(|_| "os,interval,always".into());
    let threads: Vec<_> = modes
        .split(',')
        .map(|m| Mode::parse(m.trim()))
        .map(|mode| std::thread::spawn(move || run_mode(mode, kills, base_seed)))
        .collect();
    let failures: Vec<String> = threads
        .into_iter()
        .filter_map(|t| match t.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some("a mode's parent panicked".to_string()),
        })
        .collect();
    assert!(failures.is_empty(), "crash_loop failed:\n{}", failures.join("\n"));
}

/// Negative control: with sends acknowledged before their bytes are stored
/// (the last batch held in a user-space buffer), the loop must report
/// acknowledged records lost or damaged after a kill.
#[test]
fn negative_control_acknowledging_before_the_write_is_caught() {
    if std::env::var_os("TIDELOG_CRASH_CHILD").is_some() {
        return;
    }
    let (passed, lines, text) = common::run_sabotaged(
        "crash_loop",
        tidelog::internals::EngineSabotage::AckBeforeWrite,
        &[
            ("TIDELOG_CRASH_LOOP_ITERS", "8"),
            ("TIDELOG_CRASH_LOOP_MODES", "os"),
        ],
    );
    assert!(
        !passed,
        "the crash loop passed with acknowledgements before writes:\n{text}"
    );
    assert!(
        common::reliability_sum(&lines, "lost") > 0,
        "no loss reported with acknowledgements before writes:\n{text}"
    );
}
