//! S7 concurrency stress (RELIABILITY.md §3 "S7. Concurrency", §2.7 mmap safety).
//!
//! For a fixed wall time, all at once on one `Log`:
//! - producer threads sending self-checking records with `send`, `send_to` and
//!   `send_batch` to three topics with several partitions: `plain` (nothing is
//!   ever removed), `retained` (tiny `retention_bytes` and `retention_ms`, plus
//!   `delete_records`) and `compacted` (`Cleanup::Compact`, tombstones, plus
//!   `delete_records` to bound it). A value carries its topic, the producer id
//!   (independent of the partition), the producer's sequence number and a CRC-32
//!   of all that; headers repeat producer and sequence; key, value, headers and
//!   padding are all derived from (topic, producer, sequence), so every byte read
//!   back is compared with what was sent;
//! - consumers in two groups: `g-plain` (on `plain`) and `g-mixed` (on `retained`
//!   and `compacted`), each with one member that stays and members that join,
//!   poll, sometimes commit, and leave (drop or `subscribe(&[])`) over and over;
//! - a standalone reader that `fetch`es ranges and holds on to `ConsumedRecord`s
//!   (their `Bytes` point into the mapped segments) while retention deletes and
//!   compaction rewrites those segments, then reads them again;
//! - a maintenance thread that advances the `ManualClock`, calls
//!   `run_maintenance`, `delete_records` and `flush`; `Durability::Interval` adds
//!   the log's own background fsync thread; an open-partition budget of 4
//!   keeps partitions being parked and woken under all of it.
//!
//! Checks (each failure is a counted violation with a message):
//! - every record read is byte-identical to the record its producer sent, and an
//!   acknowledged send of that producer and sequence got exactly that offset
//!   (and timestamp);
//! - per partition, offsets a reader sees only increase; within a consumer's run
//!   a gap is allowed only where records are gone (below the start offset moved
//!   by retention or `delete_records`, or removed by compaction; checked by
//!   reading the range again), and a jump (back or forward) only to the first
//!   record at or after a position the group committed (at-least-once
//!   hand-over); on `plain` nothing is ever gone, so no gaps at all, and every
//!   acknowledged record is seen by `g-plain`;
//! - for each producer, per partition, sequence numbers appear in order;
//! - start and end offsets never move back; records held across deletion read
//!   the same bytes again (no SIGBUS: a handler turns one into a failure line),
//!   and their offsets then read as `OffsetOutOfRange`;
//! - at the end: every offset below each end offset was acknowledged once; a
//!   full read of every partition matches; on `compacted` the latest record of
//!   every key is still there (tombstones may go); retention, compaction and
//!   deletion after holding really happened;
//! - no thread panics (all are joined; a panic is re-raised after the report);
//!   a watchdog fails the run if any thread makes no progress for 30 s;
//! - after everything is dropped and the log closed, open file descriptors
//!   (`/proc/self/fd`) and mappings (`/proc/self/maps`) are back at the
//!   baseline taken after a short warm-up run of the same workload (which
//!   creates the lazy statics, allocator arenas and cached thread stacks), within
//!   a small tolerance, and none refers to the log directory.
//!
//! `concurrent_maintenance_passes` is a smaller focused test: two
//! `run_maintenance` callers at once over a compacted topic being written.
//!
//! Duration: the environment variable `TIDELOG_STRESS_SECS` sets the wall time
//! of the stress workload, the 1 s warm-up included (default 10, the CI quick
//! run; the focused test adds about 4 s). Long run (RELIABILITY.md S7: 30 min):
//! `TIDELOG_STRESS_SECS=1800 cargo test --all-features --test stress --
//! --nocapture`. `TIDELOG_SEED=<hex>` fixes the random choices (the thread
//! interleaving itself is not reproducible). The tests of this file hold a
//! static lock, so they never run at once: a parallel test would disturb the
//! descriptor and mapping counts.
#![cfg(feature = "internals")]

mod common;

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tidelog::{
    Cleanup, ConsumedRecord, Consumer, Durability, Error, Log, LogConfig, ManualClock, Record, TopicConfig,
};

const T0: i64 = 1_700_000_000_000;

const PLAIN: usize = 0;
const RETAINED: usize = 1;
const COMPACTED: usize = 2;
/// (name, partitions) by topic index.
const TOPICS: [(&str, u32); 3] = [("plain", 4), ("retained", 3), ("compacted", 2)];
/// First slot of each topic; a slot is one (topic, partition).
const SLOT_BASE: [usize; 3] = [0, 4, 7];
const SLOTS: usize = 9;

const PRODUCERS: u32 = 3;
/// Keys per producer on the compacted topic.
const KEYS: u64 = 24;
/// Producers pause while `g-plain` is this many records behind.
const LAG_MAX: u64 = 20_000;
/// Records the compacted topic keeps per partition before `delete_records`.
const COMPACTED_KEEP: u64 = 4_000;
/// Clock advance per maintenance pass.
const ADVANCE_MS: i64 = 20_000;
/// Records the standalone reader holds at most.
const HELD_MAX: usize = 2_000;

/// No progress for this long is a deadlock.
const STALL: Duration = Duration::from_secs(30);
/// Descriptors and mappings the harness may open or close on its own.
const FD_TOLERANCE: usize = 2;
const MAP_TOLERANCE: usize = 8;

/// One test at a time in this binary (descriptor and mapping counts).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

// ---------------------------------------------------------------------------
// records

fn slot(t: usize, p: u32) -> usize {
    SLOT_BASE[t] + p as usize
}

fn slot_tp(slot: usize) -> (usize, u32) {
    let t = SLOT_BASE.iter().rposition(|b| *b <= slot).unwrap_or(0);
    (t, (slot - SLOT_BASE[t]) as u32)
}

fn topic_index(name: &str) -> Option<usize> {
    TOPICS.iter().position(|(n, _)| *n == name)
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        mix(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// Everything a record holds, derived from (topic, producer, sequence).
struct Expected {
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
}

fn record_hash(t: usize, pid: u32, seq: u64) -> u64 {
    mix(((t as u64) << 60) ^ (u64::from(pid) << 44) ^ seq)
}

/// `topic|producer|sequence|padding|crc32` with the CRC over everything before it.
fn value_bytes(t: usize, pid: u32, seq: u64, h: u64) -> Vec<u8> {
    let pad = ((h >> 8) % 100) as usize;
    let ch = b'a' + ((h >> 20) % 26) as u8;
    let mut v = format!("{}|{pid}|{seq}|", TOPICS[t].0).into_bytes();
    v.extend(std::iter::repeat_n(ch, pad));
    v.push(b'|');
    let crc = crc32fast::hash(&v);
    v.extend(format!("{crc:08x}").bytes());
    v
}

/// Checks a value's own CRC and returns (topic, producer, sequence).
fn parse_value(v: &[u8]) -> Result<(String, u32, u64), String> {
    let cut = v
        .iter()
        .rposition(|b| *b == b'|')
        .ok_or("no separator in value")?;
    let (body, crc) = v.split_at(cut + 1);
    let crc = std::str::from_utf8(crc).map_err(|_| "checksum is not text")?;
    let crc = u32::from_str_radix(crc, 16).map_err(|_| format!("bad checksum text {crc:?}"))?;
    if crc32fast::hash(body) != crc {
        return Err(format!(
            "checksum mismatch: stored {crc:08x}, computed {:08x}",
            crc32fast::hash(body)
        ));
    }
    let text = std::str::from_utf8(body).map_err(|_| "value is not text")?;
    let mut parts = text.split('|');
    let topic = parts.next().unwrap_or_default().to_owned();
    let pid = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("bad producer id")?;
    let seq = parts.next().and_then(|s| s.parse().ok()).ok_or("bad sequence")?;
    Ok((topic, pid, seq))
}

fn is_tombstone(t: usize, pid: u32, seq: u64) -> bool {
    t == COMPACTED && record_hash(t, pid, seq).is_multiple_of(11)
}

fn compacted_key(pid: u32, seq: u64) -> String {
    format!("k{pid}-{}", seq % KEYS)
}

fn expected(t: usize, pid: u32, seq: u64) -> Expected {
    let h = record_hash(t, pid, seq);
    let key = if t == COMPACTED {
        Some(Bytes::from(compacted_key(pid, seq)))
    } else if h.is_multiple_of(3) {
        Some(Bytes::from(format!("u{}", (h >> 40) % 50)))
    } else {
        None
    };
    let value = (!is_tombstone(t, pid, seq)).then(|| Bytes::from(value_bytes(t, pid, seq, h)));
    let mut headers = vec![
        ("pid".to_owned(), Some(Bytes::from(pid.to_string()))),
        ("seq".to_owned(), Some(Bytes::from(seq.to_string()))),
    ];
    if (h >> 32).is_multiple_of(5) {
        headers.push(("n".to_owned(), None));
    }
    Expected { key, value, headers }
}

fn make_record(t: usize, pid: u32, seq: u64) -> Record {
    let e = expected(t, pid, seq);
    let mut r = match (&e.key, e.value) {
        (Some(k), None) => Record::tombstone(k.clone()),
        (Some(k), Some(v)) => Record::new(v).with_key(k.clone()),
        (None, v) => Record::new(v.unwrap_or_default()),
    };
    for (k, v) in e.headers {
        r = match v {
            Some(v) => r.with_header(k, v),
            None => r.with_null_header(k),
        };
    }
    r
}

fn header_number(rec: &ConsumedRecord, i: usize, name: &str) -> Option<u64> {
    let (k, v) = rec.headers().get(i)?;
    if k != name {
        return None;
    }
    std::str::from_utf8(v.as_ref()?).ok()?.parse().ok()
}

// ---------------------------------------------------------------------------
// shared state

#[derive(Debug, Clone, Copy)]
struct Ack {
    pid: u32,
    seq: u64,
    ts: i64,
}

/// A record read before its producer recorded the acknowledgement.
#[derive(Debug, Clone, Copy)]
struct PendingAck {
    slot: usize,
    offset: u64,
    pid: u32,
    seq: u64,
    ts: i64,
}

/// A thread's heartbeat for the watchdog.
struct Beat {
    name: String,
    last_ms: AtomicU64,
    done: AtomicBool,
}

struct Monitor {
    start: Instant,
    beats: Mutex<Vec<Arc<Beat>>>,
    finished: AtomicBool,
}

impl Monitor {
    fn register(&self, name: &str) -> Arc<Beat> {
        let b = Arc::new(Beat {
            name: name.to_owned(),
            last_ms: AtomicU64::new(self.start.elapsed().as_millis() as u64),
            done: AtomicBool::new(false),
        });
        self.beats.lock().push(b.clone());
        b
    }
    fn tick(&self, b: &Beat) {
        b.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

struct Group {
    name: &'static str,
    topics: &'static [usize],
    /// Per slot: every position a member of the group may have committed
    /// (recorded before the commit), and 0 for "no commit yet".
    hist: Vec<Mutex<BTreeSet<u64>>>,
}

impl Group {
    fn new(name: &'static str, topics: &'static [usize]) -> Group {
        Group {
            name,
            topics,
            hist: (0..SLOTS).map(|_| Mutex::new(BTreeSet::from([0]))).collect(),
        }
    }
    fn topic_names(&self) -> Vec<&'static str> {
        self.topics.iter().map(|t| TOPICS[*t].0).collect()
    }
}

#[derive(Default)]
struct Counters {
    acked: AtomicU64,
    consumed: AtomicU64,
    fetched: AtomicU64,
    checked: AtomicU64,
    commits: AtomicU64,
    joins: AtomicU64,
    passes: AtomicU64,
    segments_deleted: AtomicU64,
    segments_compacted: AtomicU64,
    delete_records: AtomicU64,
    held_after_delete: AtomicU64,
    held_across_maintenance: AtomicU64,
    max_fds: AtomicU64,
    max_maps: AtomicU64,
}

struct Shared {
    log: Log,
    clock: ManualClock,
    monitor: Arc<Monitor>,
    stop: AtomicBool,
    acks: Vec<Mutex<Vec<Option<Ack>>>>,
    groups: [Group; 2],
    /// Offsets of `plain` seen by `g-plain`, as bitsets per partition.
    plain_seen: Vec<Mutex<Vec<u64>>>,
    plain_seen_count: AtomicU64,
    plain_acked: AtomicU64,
    violations: AtomicU64,
    messages: Mutex<Vec<String>>,
    n: Counters,
}

impl Shared {
    fn violation(&self, msg: String) {
        let n = self.violations.fetch_add(1, Ordering::SeqCst);
        if n < 20 {
            eprintln!("stress violation: {msg}");
        }
        let mut m = self.messages.lock();
        if m.len() < 50 {
            m.push(msg);
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn record_ack(&self, slot: usize, offset: u64, ack: Ack) {
        let mut v = self.acks[slot].lock();
        let i = offset as usize;
        if v.len() <= i {
            v.resize(i + 1, None);
        }
        if let Some(old) = v[i] {
            let (t, p) = slot_tp(slot);
            self.violation(format!(
                "{}/{p} offset {offset} acknowledged twice: producer {} seq {} and producer {} seq {}",
                TOPICS[t].0, old.pid, old.seq, ack.pid, ack.seq
            ));
        }
        v[i] = Some(ack);
        if slot < SLOT_BASE[RETAINED] {
            self.plain_acked.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn ack_at(&self, slot: usize, offset: u64) -> Option<Ack> {
        self.acks[slot].lock().get(offset as usize).copied().flatten()
    }

    /// Checks a record's bytes against what was sent; returns (slot, producer,
    /// sequence). A record whose acknowledgement is not recorded yet goes to
    /// `pending`.
    fn check_record(&self, rec: &ConsumedRecord, pending: &mut Vec<PendingAck>) -> Option<(usize, u32, u64)> {
        self.n.checked.fetch_add(1, Ordering::Relaxed);
        let at = format!("{}/{} offset {}", rec.topic(), rec.partition(), rec.offset());
        let Some(t) = topic_index(rec.topic()) else {
            self.violation(format!("{at}: record of an unknown topic"));
            return None;
        };
        if rec.partition() >= TOPICS[t].1 {
            self.violation(format!("{at}: record of an unknown partition"));
            return None;
        }
        let s = slot(t, rec.partition());
        let (Some(pid), Some(seq)) = (header_number(rec, 0, "pid"), header_number(rec, 1, "seq")) else {
            self.violation(format!(
                "{at}: headers {:?} do not name producer and sequence",
                rec.headers()
            ));
            return None;
        };
        let pid = pid as u32;
        if pid >= PRODUCERS {
            self.violation(format!("{at}: producer {pid} does not exist"));
            return None;
        }
        if let Some(v) = rec.value() {
            match parse_value(v) {
                Ok((vt, vp, vs)) if vt == TOPICS[t].0 && vp == pid && vs == seq => {}
                Ok((vt, vp, vs)) => {
                    self.violation(format!(
                        "{at}: value names {vt} producer {vp} seq {vs}, headers producer {pid} seq {seq}"
                    ));
                    return None;
                }
                Err(e) => {
                    self.violation(format!("{at}: damaged value: {e}"));
                    return None;
                }
            }
        }
        let e = expected(t, pid, seq);
        if rec.key() != e.key.as_ref() || rec.value() != e.value.as_ref() || rec.headers() != e.headers {
            self.violation(format!(
                "{at}: bytes differ from producer {pid} seq {seq}: key {:?} (want {:?}), value {:?} (want {:?}), headers {:?} (want {:?})",
                rec.key(),
                e.key,
                rec.value(),
                e.value,
                rec.headers(),
                e.headers
            ));
            return None;
        }
        let p = PendingAck {
            slot: s,
            offset: rec.offset(),
            pid,
            seq,
            ts: rec.timestamp(),
        };
        match self.ack_at(s, rec.offset()) {
            Some(a) => self.compare_ack(&p, a),
            None => pending.push(p),
        }
        Some((s, pid, seq))
    }

    fn compare_ack(&self, p: &PendingAck, a: Ack) {
        if a.pid != p.pid || a.seq != p.seq || a.ts != p.ts {
            let (t, part) = slot_tp(p.slot);
            self.violation(format!(
                "{}/{part} offset {}: holds producer {} seq {} ts {}, but that offset was acknowledged to producer {} seq {} ts {}",
                TOPICS[t].0, p.offset, p.pid, p.seq, p.ts, a.pid, a.seq, a.ts
            ));
        }
    }

    /// Rechecks records read before their acknowledgement was recorded; at the
    /// end (`last`), one still unacknowledged is a record nobody sent.
    fn resolve_pending(&self, pending: &mut Vec<PendingAck>, last: bool) {
        pending.retain(|p| match self.ack_at(p.slot, p.offset) {
            Some(a) => {
                self.compare_ack(p, a);
                false
            }
            None => true,
        });
        if last {
            for p in pending.drain(..) {
                let (t, part) = slot_tp(p.slot);
                self.violation(format!(
                    "{}/{part} offset {}: producer {} seq {} was read but never acknowledged at that offset",
                    TOPICS[t].0, p.offset, p.pid, p.seq
                ));
            }
        }
    }

    fn start_end(&self, t: usize, p: u32) -> Option<(u64, u64)> {
        match self.log.describe(TOPICS[t].0) {
            Ok(info) => info
                .partitions
                .get(p as usize)
                .map(|i| (i.start_offset, i.end_offset)),
            Err(e) => {
                self.violation(format!("describe {}: {e}", TOPICS[t].0));
                None
            }
        }
    }

    /// The first offset at or after `from` that holds a record now.
    fn first_existing(&self, slot: usize, from: u64) -> Option<u64> {
        let (t, p) = slot_tp(slot);
        let mut from = from;
        loop {
            match self.log.fetch(TOPICS[t].0, p, from, 1) {
                Ok(v) => return v.first().map(ConsumedRecord::offset),
                Err(Error::OffsetOutOfRange { start, .. }) if from < start => from = start,
                Err(Error::OffsetOutOfRange { .. }) => return None,
                Err(e) => {
                    self.violation(format!("fetch {}/{p} from {from}: {e}", TOPICS[t].0));
                    return None;
                }
            }
        }
    }

    /// Whether no record in `[from, to)` exists any more (removed by retention,
    /// `delete_records` or compaction; removals never come back).
    fn gap_ok(&self, slot: usize, from: u64, to: u64) -> bool {
        self.first_existing(slot, from).is_none_or(|x| x >= to)
    }

    /// Whether `f` is the first record at or after a position the group may
    /// have committed (where a new owner resumes).
    fn restart_ok(&self, group: &Group, slot: usize, f: u64) -> bool {
        let h = group.hist[slot]
            .lock()
            .range(..=f)
            .next_back()
            .copied()
            .unwrap_or(0);
        self.gap_ok(slot, h, f)
    }

    fn mark_plain_seen(&self, slot: usize, offset: u64) {
        let mut bits = self.plain_seen[slot].lock();
        let (w, b) = ((offset / 64) as usize, offset % 64);
        if bits.len() <= w {
            bits.resize(w + 1, 0);
        }
        if bits[w] & (1 << b) == 0 {
            bits[w] |= 1 << b;
            self.plain_seen_count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What one reader (a consumer instance) has seen.
struct View {
    last: [Option<u64>; SLOTS],
    seqs: Vec<HashMap<u32, u64>>,
    pending: Vec<PendingAck>,
}

impl View {
    fn new() -> View {
        View {
            last: [None; SLOTS],
            seqs: vec![HashMap::new(); SLOTS],
            pending: Vec::new(),
        }
    }
}

/// Checks one `poll` result of a group member.
fn observe_poll(sh: &Shared, view: &mut View, group: &Group, records: &[ConsumedRecord]) {
    let mut touched = [false; SLOTS];
    for rec in records {
        let Some((s, pid, seq)) = sh.check_record(rec, &mut view.pending) else {
            continue;
        };
        let f = rec.offset();
        let where_ = format!("{} {}/{}", group.name, rec.topic(), rec.partition());
        let first = !touched[s];
        touched[s] = true;
        let mut restarted = false;
        match view.last[s] {
            None => {
                if !sh.restart_ok(group, s, f) {
                    sh.violation(format!(
                        "{where_}: a member's first record is {f}, not the first record at or after a committed position"
                    ));
                }
                restarted = true;
            }
            Some(l) if first => {
                if f == l + 1 || (f > l + 1 && sh.gap_ok(s, l + 1, f)) {
                } else if sh.restart_ok(group, s, f) {
                    restarted = true;
                } else {
                    sh.violation(format!(
                        "{where_}: jumped from offset {l} to {f}, skipping records that exist, and {f} is not where a committed position resumes"
                    ));
                    restarted = true;
                }
            }
            Some(l) => {
                if f <= l {
                    sh.violation(format!(
                        "{where_}: offset went back from {l} to {f} within one poll"
                    ));
                    restarted = true;
                } else if f > l + 1 && !sh.gap_ok(s, l + 1, f) {
                    sh.violation(format!(
                        "{where_}: gap {}..{f} within one poll over records that exist",
                        l + 1
                    ));
                }
            }
        }
        if restarted {
            view.seqs[s].clear();
        }
        if let Some(&prev) = view.seqs[s].get(&pid) {
            if seq <= prev {
                sh.violation(format!(
                    "{where_} offset {f}: producer {pid} seq {seq} after seq {prev}"
                ));
            }
        }
        view.seqs[s].insert(pid, seq);
        view.last[s] = Some(f);
        if s < SLOT_BASE[RETAINED] && group.topics.contains(&PLAIN) {
            sh.mark_plain_seen(s, f);
        }
    }
    sh.n.consumed.fetch_add(records.len() as u64, Ordering::Relaxed);
}

/// Records every position the consumer may commit, then commits.
fn commit(sh: &Shared, c: &mut Consumer, view: &View, group: &Group) {
    for (s, last) in view.last.iter().enumerate() {
        if let Some(l) = last {
            group.hist[s].lock().insert(l + 1);
        }
    }
    for (topic, p) in c.assignment() {
        let Some(t) = topic_index(&topic) else { continue };
        if let Ok(pos) = c.position(&topic, p) {
            group.hist[slot(t, p)].lock().insert(pos);
        }
    }
    match c.commit() {
        Ok(()) => {
            sh.n.commits.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => sh.violation(format!("{} commit: {e}", group.name)),
    }
}

// ---------------------------------------------------------------------------
// threads

fn producer_thread(sh: Arc<Shared>, pid: u32, seed: u64) -> Vec<PendingAck> {
    let beat = sh.monitor.register(&format!("producer-{pid}"));
    let mut rng = Rng(seed);
    let producer = sh.log.producer();
    let mut seq = 0u64;
    let mut last_own: [Option<u64>; SLOTS] = [None; SLOTS];
    while !sh.stopped() {
        sh.monitor.tick(&beat);
        let lag = sh
            .plain_acked
            .load(Ordering::Relaxed)
            .saturating_sub(sh.plain_seen_count.load(Ordering::Relaxed));
        if lag > LAG_MAX {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let t = match rng.below(100) {
            0..=54 => PLAIN,
            55..=81 => RETAINED,
            _ => COMPACTED,
        };
        let (name, parts) = TOPICS[t];
        let op = rng.below(10);
        let n = if op >= 7 { 1 + rng.below(6) } else { 1 };
        let records: Vec<Record> = (0..n).map(|i| make_record(t, pid, seq + i)).collect();
        let keys: Vec<Option<Bytes>> = records.iter().map(|r| r.key().cloned()).collect();
        let explicit = (op == 5 || op == 6).then(|| rng.below(u64::from(parts)) as u32);
        let result = match (op, explicit) {
            (_, Some(p)) => producer
                .send_to(name, p, records.into_iter().next().unwrap_or_default())
                .map(|m| vec![m]),
            (0..=4, None) => producer
                .send(name, records.into_iter().next().unwrap_or_default())
                .map(|m| vec![m]),
            _ => producer.send_batch(name, records),
        };
        match result {
            Ok(metas) if metas.len() as u64 == n => {
                for (i, m) in metas.iter().enumerate() {
                    if m.partition >= parts {
                        sh.violation(format!("{name}: acknowledged to partition {}", m.partition));
                        continue;
                    }
                    if explicit.is_none() {
                        if let Some(k) = &keys[i] {
                            let want = (tidelog::murmur2(k) & 0x7fff_ffff) as u32 % parts;
                            if m.partition != want {
                                sh.violation(format!(
                                    "{name}: key {k:?} went to partition {}, Kafka's partitioner says {want}",
                                    m.partition
                                ));
                            }
                        }
                    }
                    let s = slot(t, m.partition);
                    if let Some(prev) = last_own[s] {
                        if m.offset <= prev {
                            sh.violation(format!(
                                "{name}/{}: producer {pid} got offset {} after {prev}",
                                m.partition, m.offset
                            ));
                        }
                    }
                    last_own[s] = Some(m.offset);
                    sh.record_ack(
                        s,
                        m.offset,
                        Ack {
                            pid,
                            seq: seq + i as u64,
                            ts: m.timestamp,
                        },
                    );
                }
                sh.n.acked.fetch_add(n, Ordering::Relaxed);
            }
            Ok(metas) => sh.violation(format!("{name}: {n} records sent, {} acknowledged", metas.len())),
            Err(e) => sh.violation(format!("producer {pid} sending to {name}: {e}")),
        }
        // Sequence numbers of a failed send are not reused.
        seq += n;
    }
    beat.done.store(true, Ordering::SeqCst);
    Vec::new()
}

fn poll_and_observe(sh: &Shared, c: &mut Consumer, view: &mut View, group: &Group, wait: Duration) {
    match c.poll(wait) {
        Ok(recs) => observe_poll(sh, view, group, &recs),
        Err(e) => sh.violation(format!("{} poll: {e}", group.name)),
    }
}

/// A member that joins once and stays until the end.
fn stayer_thread(sh: Arc<Shared>, gi: usize, seed: u64) -> Vec<PendingAck> {
    let group = &sh.groups[gi];
    let beat = sh.monitor.register(&format!("{}-stayer", group.name));
    let mut rng = Rng(seed);
    let mut c = sh.log.consumer(group.name);
    c.max_poll_records(50 + rng.below(250) as usize);
    if let Err(e) = c.subscribe(&group.topic_names()) {
        sh.violation(format!("{} subscribe: {e}", group.name));
        beat.done.store(true, Ordering::SeqCst);
        return Vec::new();
    }
    sh.n.joins.fetch_add(1, Ordering::Relaxed);
    let mut view = View::new();
    let mut polls = 0u64;
    while !sh.stopped() {
        sh.monitor.tick(&beat);
        poll_and_observe(&sh, &mut c, &mut view, group, Duration::from_millis(50));
        polls += 1;
        if polls.is_multiple_of(8) {
            commit(&sh, &mut c, &view, group);
        }
        if polls.is_multiple_of(16) {
            sh.resolve_pending(&mut view.pending, false);
            match sh.log.group_lag(group.name) {
                Ok(rows) => {
                    for r in rows {
                        if r.committed.is_some_and(|c| c > r.end_offset) {
                            sh.violation(format!(
                                "{} lag: {}/{} committed {:?} past the end {}",
                                group.name, r.topic, r.partition, r.committed, r.end_offset
                            ));
                        }
                    }
                }
                Err(e) => sh.violation(format!("group_lag {}: {e}", group.name)),
            }
        }
    }
    commit(&sh, &mut c, &view, group);
    drop(c);
    beat.done.store(true, Ordering::SeqCst);
    view.pending
}

/// Members that join, poll for a while, sometimes commit, and leave, over and over.
fn churn_thread(sh: Arc<Shared>, gi: usize, id: u32, seed: u64) -> Vec<PendingAck> {
    let group = &sh.groups[gi];
    let beat = sh.monitor.register(&format!("{}-churn-{id}", group.name));
    let mut rng = Rng(seed);
    let mut pending = Vec::new();
    while !sh.stopped() {
        sh.monitor.tick(&beat);
        let mut c = sh.log.consumer(group.name);
        c.max_poll_records(1 + rng.below(200) as usize);
        if let Err(e) = c.subscribe(&group.topic_names()) {
            sh.violation(format!("{} subscribe: {e}", group.name));
            break;
        }
        sh.n.joins.fetch_add(1, Ordering::Relaxed);
        let mut view = View::new();
        for _ in 0..1 + rng.below(6) {
            sh.monitor.tick(&beat);
            poll_and_observe(&sh, &mut c, &mut view, group, Duration::from_millis(30));
        }
        if rng.below(4) != 0 {
            commit(&sh, &mut c, &view, group);
        }
        if rng.below(3) == 0 {
            // Read more without committing: the next owner reads it again.
            poll_and_observe(&sh, &mut c, &mut view, group, Duration::from_millis(10));
        }
        if rng.below(5) == 0 {
            if let Err(e) = c.subscribe(&[]) {
                sh.violation(format!("{} leave: {e}", group.name));
            }
        }
        drop(c);
        sh.resolve_pending(&mut view.pending, false);
        pending.append(&mut view.pending);
        if rng.below(3) == 0 {
            std::thread::sleep(Duration::from_millis(rng.below(20)));
        }
    }
    beat.done.store(true, Ordering::SeqCst);
    pending
}

struct Held {
    rec: ConsumedRecord,
    events: u64,
}

/// Fetches ranges and holds records across maintenance.
fn reader_thread(sh: Arc<Shared>, seed: u64) -> Vec<PendingAck> {
    let beat = sh.monitor.register("reader");
    let mut rng = Rng(seed);
    let mut pending = Vec::new();
    let mut held: VecDeque<Held> = VecDeque::new();
    let mut seen_start = [0u64; SLOTS];
    let mut seen_end = [0u64; SLOTS];
    let mut iter = 0u64;
    while !sh.stopped() {
        sh.monitor.tick(&beat);
        iter += 1;
        let s = rng.below(SLOTS as u64) as usize;
        let (t, p) = slot_tp(s);
        let name = TOPICS[t].0;
        let Some((start, end)) = sh.start_end(t, p) else {
            continue;
        };
        if start > end || start < seen_start[s] || end < seen_end[s] {
            sh.violation(format!(
                "{name}/{p}: start/end moved from {}/{} to {start}/{end}",
                seen_start[s], seen_end[s]
            ));
        }
        seen_start[s] = seen_start[s].max(start);
        seen_end[s] = seen_end[s].max(end);
        if end > start {
            let from_start = rng.below(2) == 0;
            let from = if from_start {
                start
            } else {
                start + rng.below(end - start)
            };
            let max = 1 + rng.below(200) as usize;
            match sh.log.fetch(name, p, from, max) {
                Ok(recs) => {
                    sh.n.fetched.fetch_add(recs.len() as u64, Ordering::Relaxed);
                    let mut prev: Option<u64> = None;
                    let mut seqs: HashMap<u32, u64> = HashMap::new();
                    for rec in &recs {
                        let Some((_, pid, seq)) = sh.check_record(rec, &mut pending) else {
                            continue;
                        };
                        let f = rec.offset();
                        let lo = match prev {
                            Some(l) if f <= l => {
                                sh.violation(format!("{name}/{p}: fetch went back from {l} to {f}"));
                                f
                            }
                            Some(l) => l + 1,
                            None if f < from => {
                                sh.violation(format!("{name}/{p}: fetch from {from} returned {f}"));
                                f
                            }
                            None => from,
                        };
                        if f > lo && !sh.gap_ok(s, lo, f) {
                            sh.violation(format!(
                                "{name}/{p}: fetch from {from} skipped {lo}..{f}, which exist"
                            ));
                        }
                        if let Some(&ps) = seqs.get(&pid) {
                            if seq <= ps {
                                sh.violation(format!(
                                    "{name}/{p} offset {f}: producer {pid} seq {seq} after {ps}"
                                ));
                            }
                        }
                        seqs.insert(pid, seq);
                        prev = Some(f);
                    }
                    if recs.len() > max {
                        sh.violation(format!("{name}/{p}: fetch returned {} > {max}", recs.len()));
                    }
                    if recs.is_empty() && t != COMPACTED {
                        sh.violation(format!(
                            "{name}/{p}: fetch from {from} below end {end} returned nothing"
                        ));
                    }
                    if from_start && t != PLAIN && held.len() < HELD_MAX {
                        let events = sh.n.segments_deleted.load(Ordering::SeqCst)
                            + sh.n.segments_compacted.load(Ordering::SeqCst);
                        for rec in recs.into_iter().take(20) {
                            held.push_back(Held { rec, events });
                        }
                    }
                }
                Err(Error::OffsetOutOfRange { start: now, .. }) if now > from => {}
                Err(e) => sh.violation(format!("fetch {name}/{p} from {from}: {e}")),
            }
        }
        if iter.is_multiple_of(8) {
            recheck_held(&sh, &mut held, &mut pending);
            sh.resolve_pending(&mut pending, false);
        }
    }
    recheck_held(&sh, &mut held, &mut pending);
    drop(held);
    beat.done.store(true, Ordering::SeqCst);
    pending
}

/// Reads held records again; those whose offsets are gone must still hold the
/// same bytes (their segment was deleted under them) and no longer be readable.
fn recheck_held(sh: &Shared, held: &mut VecDeque<Held>, pending: &mut Vec<PendingAck>) {
    let mut starts = [0u64; SLOTS];
    for (t, (_, parts)) in TOPICS.iter().enumerate() {
        for p in 0..*parts {
            starts[slot(t, p)] = sh.start_end(t, p).map_or(0, |(s, _)| s);
        }
    }
    let events =
        sh.n.segments_deleted.load(Ordering::SeqCst) + sh.n.segments_compacted.load(Ordering::SeqCst);
    let mut keep = VecDeque::with_capacity(held.len());
    for h in held.drain(..) {
        let Some((s, _, _)) = sh.check_record(&h.rec, pending) else {
            continue;
        };
        if h.rec.offset() < starts[s] {
            sh.n.held_after_delete.fetch_add(1, Ordering::Relaxed);
            match sh.log.fetch(h.rec.topic(), h.rec.partition(), h.rec.offset(), 1) {
                Err(Error::OffsetOutOfRange { .. }) => {}
                other => sh.violation(format!(
                    "{}/{} offset {} is below the start {} but fetch gave {other:?}",
                    h.rec.topic(),
                    h.rec.partition(),
                    h.rec.offset(),
                    starts[s]
                )),
            }
        } else {
            if events > h.events {
                sh.n.held_across_maintenance.fetch_add(1, Ordering::Relaxed);
            }
            keep.push_back(h);
        }
    }
    while keep.len() > HELD_MAX / 2 {
        keep.pop_front();
    }
    *held = keep;
}

fn maintenance_thread(sh: Arc<Shared>, seed: u64) -> Vec<PendingAck> {
    let beat = sh.monitor.register("maintenance");
    let mut rng = Rng(seed);
    let mut iter = 0u64;
    while !sh.stopped() {
        sh.monitor.tick(&beat);
        iter += 1;
        sh.clock.advance(ADVANCE_MS);
        match sh.log.run_maintenance() {
            Ok(r) => {
                if r.partitions_failed > 0 {
                    sh.violation(format!("run_maintenance: {r:?}"));
                }
                sh.n.passes.fetch_add(1, Ordering::Relaxed);
                sh.n.segments_deleted
                    .fetch_add(r.segments_deleted, Ordering::SeqCst);
                sh.n.segments_compacted
                    .fetch_add(r.segments_compacted, Ordering::SeqCst);
            }
            Err(e) => sh.violation(format!("run_maintenance: {e}")),
        }
        if iter % 3 == 1 {
            let p = rng.below(u64::from(TOPICS[RETAINED].1)) as u32;
            if let Some((start, end)) = sh.start_end(RETAINED, p) {
                let to = start + rng.below(end - start + 1) / 2;
                delete_records(&sh, RETAINED, p, to);
            }
        }
        if iter.is_multiple_of(5) {
            for p in 0..TOPICS[COMPACTED].1 {
                if let Some((start, end)) = sh.start_end(COMPACTED, p) {
                    if end - start > COMPACTED_KEEP {
                        delete_records(&sh, COMPACTED, p, end - COMPACTED_KEEP / 2);
                    }
                }
            }
        }
        if iter.is_multiple_of(11) {
            if let Err(e) = sh.log.flush() {
                sh.violation(format!("flush: {e}"));
            }
        }
        if iter.is_multiple_of(4) {
            let fds = open_fds() as u64;
            let maps = mappings() as u64;
            sh.n.max_fds.fetch_max(fds, Ordering::Relaxed);
            sh.n.max_maps.fetch_max(maps, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(5 + rng.below(20)));
    }
    beat.done.store(true, Ordering::SeqCst);
    Vec::new()
}

fn delete_records(sh: &Shared, t: usize, p: u32, to: u64) {
    match sh.log.delete_records(TOPICS[t].0, p, to) {
        Ok(()) => {
            sh.n.delete_records.fetch_add(1, Ordering::Relaxed);
            if let Some((start, _)) = sh.start_end(t, p) {
                if start < to {
                    sh.violation(format!(
                        "delete_records {}/{p} before {to}: start is {start}",
                        TOPICS[t].0
                    ));
                }
            }
        }
        Err(e) => sh.violation(format!("delete_records {}/{p} before {to}: {e}", TOPICS[t].0)),
    }
}

fn watchdog_thread(monitor: Arc<Monitor>) {
    while !monitor.finished.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(250));
        let now = monitor.start.elapsed().as_millis() as u64;
        let stalled: Vec<String> = monitor
            .beats
            .lock()
            .iter()
            .filter(|b| !b.done.load(Ordering::SeqCst))
            .filter(|b| now.saturating_sub(b.last_ms.load(Ordering::Relaxed)) > STALL.as_millis() as u64)
            .map(|b| b.name.clone())
            .collect();
        if !stalled.is_empty() {
            eprintln!(
                "stress: no progress for {} s in {stalled:?}: deadlock or hang in tidelog",
                STALL.as_secs()
            );
            common::reliability_report(
                "stress",
                &[
                    ("secs", (now / 1000).to_string()),
                    ("records", "0".into()),
                    ("violations", "1".into()),
                    ("sigbus", "0".into()),
                    ("leaked_fds", "0".into()),
                    ("leaked_maps", "0".into()),
                ],
            );
            std::process::exit(1);
        }
    }
}

// ---------------------------------------------------------------------------
// the run

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |s| s.lines().count())
}

/// Descriptors and mappings that still refer to `dir`.
fn refs_to(dir: &std::path::Path) -> (Vec<String>, Vec<String>) {
    let needle = dir.to_string_lossy().into_owned();
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|p| p.contains(&needle))
                .collect()
        })
        .unwrap_or_default();
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map(|s| {
            s.lines()
                .filter(|l| l.contains(&needle))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    (fds, maps)
}

struct Outcome {
    records: u64,
    violations: u64,
    panic: Option<Box<dyn std::any::Any + Send>>,
    dir_fds: usize,
    dir_maps: usize,
}

fn topic_configs() -> [TopicConfig; 3] {
    [
        TopicConfig::default()
            .partitions(TOPICS[PLAIN].1)
            .segment_bytes(1024 * 1024)
            .retention_ms(None),
        TopicConfig::default()
            .partitions(TOPICS[RETAINED].1)
            .segment_bytes(4096)
            .index_interval_bytes(512)
            .segment_ms(600_000)
            .retention_bytes(Some(16 * 1024))
            .retention_ms(Some(300_000)),
        TopicConfig::default()
            .partitions(TOPICS[COMPACTED].1)
            .cleanup(Cleanup::Compact)
            .segment_bytes(2048)
            .index_interval_bytes(512)
            .min_cleanable_dirty_ratio(0.2)
            .delete_retention_ms(120_000)
            .retention_ms(None),
    ]
}

fn run(duration: Duration, seed: u64, label: &str, require_activity: bool) -> Outcome {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let clock = ManualClock::new(T0);
    let log = Log::open(
        &dir,
        LogConfig::default()
            .maintenance_interval(None)
            .durability(Durability::Interval(Duration::from_millis(200)))
            // Fewer open partitions than the run uses: partitions are parked
            // and woken all the time, under every concurrent operation.
            .max_open_partitions(4)
            .clock(Arc::new(clock.clone())),
    )
    .expect("open");
    for ((name, _), config) in TOPICS.iter().zip(topic_configs()) {
        log.create_topic(name, config).expect("create_topic");
    }
    let monitor = Arc::new(Monitor {
        start: Instant::now(),
        beats: Mutex::new(Vec::new()),
        finished: AtomicBool::new(false),
    });
    let watchdog = {
        let m = monitor.clone();
        std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || watchdog_thread(m))
            .expect("spawn watchdog")
    };
    let main_beat = monitor.register(&format!("main ({label})"));
    let sh = Arc::new(Shared {
        log,
        clock,
        monitor: monitor.clone(),
        stop: AtomicBool::new(false),
        acks: (0..SLOTS).map(|_| Mutex::new(Vec::new())).collect(),
        groups: [
            Group::new("g-plain", &[PLAIN]),
            Group::new("g-mixed", &[RETAINED, COMPACTED]),
        ],
        plain_seen: (0..SLOT_BASE[RETAINED]).map(|_| Mutex::new(Vec::new())).collect(),
        plain_seen_count: AtomicU64::new(0),
        plain_acked: AtomicU64::new(0),
        violations: AtomicU64::new(0),
        messages: Mutex::new(Vec::new()),
        n: Counters::default(),
    });

    type Work = Box<dyn FnOnce() -> Vec<PendingAck> + Send>;
    let mut work: Vec<(String, Work)> = Vec::new();
    let mut rng = Rng(seed);
    for pid in 0..PRODUCERS {
        let (s, r) = (sh.clone(), rng.next());
        work.push((
            format!("producer-{pid}"),
            Box::new(move || producer_thread(s, pid, r)),
        ));
    }
    for gi in 0..2 {
        let (s, r) = (sh.clone(), rng.next());
        work.push((format!("stayer-{gi}"), Box::new(move || stayer_thread(s, gi, r))));
    }
    for (gi, id) in [(0, 0), (0, 1), (1, 0)] {
        let (s, r) = (sh.clone(), rng.next());
        work.push((
            format!("churn-{gi}-{id}"),
            Box::new(move || churn_thread(s, gi, id, r)),
        ));
    }
    {
        let (s, r) = (sh.clone(), rng.next());
        work.push(("reader".into(), Box::new(move || reader_thread(s, r))));
        let (s, r) = (sh.clone(), rng.next());
        work.push(("maintenance".into(), Box::new(move || maintenance_thread(s, r))));
    }
    let handles: Vec<(String, JoinHandle<Vec<PendingAck>>)> = work
        .into_iter()
        .map(|(name, f)| {
            let h = std::thread::Builder::new()
                .name(name.clone())
                .spawn(f)
                .expect("spawn");
            (name, h)
        })
        .collect();

    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        monitor.tick(&main_beat);
        std::thread::sleep(Duration::from_millis(100));
    }
    sh.stop.store(true, Ordering::SeqCst);

    let mut panic = None;
    let mut pending = Vec::new();
    for (name, h) in handles {
        monitor.tick(&main_beat);
        match h.join() {
            Ok(mut p) => pending.append(&mut p),
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                sh.violation(format!("thread {name} panicked: {msg}"));
                panic.get_or_insert(payload);
            }
        }
    }
    monitor.tick(&main_beat);

    // Every group member left; a last member of each group reads to the end.
    for gi in 0..2 {
        let mut p = drain_group(&sh, gi, &main_beat);
        pending.append(&mut p);
    }
    sh.resolve_pending(&mut pending, true);
    monitor.tick(&main_beat);
    final_checks(&sh, require_activity);
    monitor.tick(&main_beat);

    let n = &sh.n;
    eprintln!(
        "stress {label}: acked={} consumed={} fetched={} checked={} commits={} joins={} maintenance_passes={} segments_deleted={} segments_compacted={} delete_records={} held_after_delete={} held_across_maintenance={} max_fds={} max_maps={}",
        n.acked.load(Ordering::SeqCst),
        n.consumed.load(Ordering::SeqCst),
        n.fetched.load(Ordering::SeqCst),
        n.checked.load(Ordering::SeqCst),
        n.commits.load(Ordering::SeqCst),
        n.joins.load(Ordering::SeqCst),
        n.passes.load(Ordering::SeqCst),
        n.segments_deleted.load(Ordering::SeqCst),
        n.segments_compacted.load(Ordering::SeqCst),
        n.delete_records.load(Ordering::SeqCst),
        n.held_after_delete.load(Ordering::SeqCst),
        n.held_across_maintenance.load(Ordering::SeqCst),
        n.max_fds.load(Ordering::SeqCst),
        n.max_maps.load(Ordering::SeqCst),
    );
    let records = n.acked.load(Ordering::SeqCst);

    if let Err(e) = sh.log.close() {
        sh.violation(format!("close: {e}"));
    }
    monitor.tick(&main_beat);
    let sh = match Arc::try_unwrap(sh) {
        Ok(sh) => sh,
        Err(_) => panic!("a thread still holds the shared state"),
    };
    let violations = sh.violations.load(Ordering::SeqCst);
    drop(sh);
    main_beat.done.store(true, Ordering::SeqCst);
    monitor.finished.store(true, Ordering::SeqCst);
    watchdog.join().expect("watchdog");

    let (fds, maps) = refs_to(&dir);
    if !fds.is_empty() || !maps.is_empty() {
        eprintln!("stress {label}: after close, still open: {fds:?}, still mapped: {maps:?}");
    }
    drop(tmp);
    Outcome {
        records,
        violations,
        panic,
        dir_fds: fds.len(),
        dir_maps: maps.len(),
    }
}

/// A new member of the group (alone now) reads every partition to its end.
fn drain_group(sh: &Shared, gi: usize, beat: &Beat) -> Vec<PendingAck> {
    let group = &sh.groups[gi];
    let mut c = sh.log.consumer(group.name);
    c.max_poll_records(2_000);
    if let Err(e) = c.subscribe(&group.topic_names()) {
        sh.violation(format!("{} final subscribe: {e}", group.name));
        return Vec::new();
    }
    let mut view = View::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        sh.monitor.tick(beat);
        poll_and_observe(sh, &mut c, &mut view, group, Duration::from_millis(100));
        let mut done = true;
        for &t in group.topics {
            for p in 0..TOPICS[t].1 {
                let end = sh.start_end(t, p).map_or(0, |(_, e)| e);
                if c.position(TOPICS[t].0, p).map_or(true, |pos| pos < end) {
                    done = false;
                }
            }
        }
        if done {
            break;
        }
        if Instant::now() > deadline {
            sh.violation(format!(
                "{}: a lone member did not reach the end in 60 s (assignment {:?})",
                group.name,
                c.assignment()
            ));
            break;
        }
    }
    commit(sh, &mut c, &view, group);
    view.pending
}

fn final_checks(sh: &Shared, require_activity: bool) {
    for s in 0..SLOTS {
        let (t, p) = slot_tp(s);
        let name = TOPICS[t].0;
        let Some((start, end)) = sh.start_end(t, p) else {
            continue;
        };
        let acks = sh.acks[s].lock().clone();
        // Every offset below the end was acknowledged once, in producer order.
        if acks.len() as u64 != end {
            sh.violation(format!(
                "{name}/{p}: end offset {end}, but {} offsets were acknowledged",
                acks.len()
            ));
        }
        let missing = acks.iter().filter(|a| a.is_none()).count();
        if missing > 0 {
            sh.violation(format!(
                "{name}/{p}: {missing} offsets below the end never acknowledged"
            ));
        }
        let mut last_seq: HashMap<u32, u64> = HashMap::new();
        for (o, a) in acks.iter().enumerate() {
            let Some(a) = a else { continue };
            if let Some(&prev) = last_seq.get(&a.pid) {
                if a.seq <= prev {
                    sh.violation(format!(
                        "{name}/{p} offset {o}: producer {} seq {} acknowledged after seq {prev}",
                        a.pid, a.seq
                    ));
                }
            }
            last_seq.insert(a.pid, a.seq);
        }
        // A full read matches.
        let mut pending = Vec::new();
        let mut present = BTreeSet::new();
        let mut next = start;
        let mut expect = start;
        while next < end {
            let recs = match sh.log.fetch(name, p, next, 1_000) {
                Ok(r) => r,
                Err(e) => {
                    sh.violation(format!("final fetch {name}/{p} from {next}: {e}"));
                    break;
                }
            };
            let Some(last) = recs.last().map(ConsumedRecord::offset) else {
                break;
            };
            for rec in &recs {
                sh.check_record(rec, &mut pending);
                if t != COMPACTED && rec.offset() != expect {
                    sh.violation(format!(
                        "{name}/{p}: final read has {} where {expect} was due",
                        rec.offset()
                    ));
                }
                if rec.offset() < expect {
                    sh.violation(format!("{name}/{p}: final read went back to {}", rec.offset()));
                }
                expect = rec.offset() + 1;
                present.insert(rec.offset());
            }
            next = last + 1;
        }
        sh.resolve_pending(&mut pending, true);
        if t != COMPACTED && present.len() as u64 != end - start {
            sh.violation(format!(
                "{name}/{p}: final read found {} records in {start}..{end}",
                present.len()
            ));
        }
        if t == COMPACTED {
            // The latest record of every key is still there (tombstones may go).
            let mut latest: HashMap<String, (u64, bool)> = HashMap::new();
            for (o, a) in acks.iter().enumerate().skip(start as usize) {
                if let Some(a) = a {
                    latest.insert(
                        compacted_key(a.pid, a.seq),
                        (o as u64, is_tombstone(t, a.pid, a.seq)),
                    );
                }
            }
            for (key, (o, tomb)) in latest {
                if !tomb && !present.contains(&o) {
                    sh.violation(format!(
                        "{name}/{p}: the latest record of key {key} (offset {o}) is gone"
                    ));
                }
            }
        }
        // `g-plain` saw every record of `plain`.
        if t == PLAIN {
            let bits = sh.plain_seen[s].lock();
            let unseen: Vec<u64> = (0..end)
                .filter(|o| {
                    bits.get((o / 64) as usize)
                        .is_none_or(|w| w & (1 << (o % 64)) == 0)
                })
                .collect();
            if !unseen.is_empty() {
                sh.violation(format!(
                    "{name}/{p}: g-plain never saw {} acknowledged records, first {:?}",
                    unseen.len(),
                    &unseen[..unseen.len().min(10)]
                ));
            }
        }
    }
    let n = &sh.n;
    for (what, v) in [
        (
            "segments deleted by retention",
            n.segments_deleted.load(Ordering::SeqCst),
        ),
        ("segments compacted", n.segments_compacted.load(Ordering::SeqCst)),
        ("delete_records calls", n.delete_records.load(Ordering::SeqCst)),
        (
            "held records read after their deletion",
            n.held_after_delete.load(Ordering::SeqCst),
        ),
        ("group commits", n.commits.load(Ordering::SeqCst)),
    ] {
        if v == 0 && require_activity {
            sh.violation(format!("the workload made no {what}"));
        }
    }
}

// ---------------------------------------------------------------------------
// SIGBUS: a failure line instead of a silent death.

extern "C" fn on_sigbus(_: libc::c_int) {
    const MSG: &[u8] = b"\nRELIABILITY suite=stress sigbus=1: SIGBUS while reading a mapped segment\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe; MSG is a static buffer.
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        libc::write(1, MSG.as_ptr().cast(), MSG.len());
        libc::_exit(70);
    }
}

fn install_sigbus_handler() {
    // SAFETY: a zeroed sigaction is valid; the handler only calls
    // async-signal-safe functions.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

#[test]
fn stress() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_sigbus_handler();
    let secs: u64 = std::env::var("TIDELOG_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let seed: u64 = std::env::var("TIDELOG_SEED")
        .ok()
        .and_then(|s| {
            let s = s.trim_start_matches("0x");
            u64::from_str_radix(s, 16).ok()
        })
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x5eed, |d| d.as_nanos() as u64)
        });
    eprintln!("stress: TIDELOG_SEED={seed:#x} TIDELOG_STRESS_SECS={secs}");

    // Warm-up: the same workload, briefly, so lazy statics, allocator arenas and
    // cached thread stacks exist before the baseline.
    let warm_up = Duration::from_secs(1);
    let warm = run(warm_up, mix(seed), "warm-up", false);
    let (fds0, maps0) = (open_fds(), mappings());
    let began = Instant::now();
    let main_time = Duration::from_secs(secs)
        .saturating_sub(warm_up)
        .max(Duration::from_secs(1));
    let main = run(main_time, seed, "main", true);
    let (fds1, maps1) = (open_fds(), mappings());
    eprintln!(
        "stress: main run took {:.1} s; fds {fds0} -> {fds1}, mappings {maps0} -> {maps1}",
        began.elapsed().as_secs_f64()
    );

    let leaked_fds = (fds1.saturating_sub(fds0 + FD_TOLERANCE)).max(main.dir_fds + warm.dir_fds);
    let leaked_maps = (maps1.saturating_sub(maps0 + MAP_TOLERANCE)).max(main.dir_maps + warm.dir_maps);
    let violations = main.violations + warm.violations;
    common::reliability_report(
        "stress",
        &[
            ("secs", secs.to_string()),
            ("records", main.records.to_string()),
            ("violations", violations.to_string()),
            ("sigbus", "0".into()),
            ("leaked_fds", leaked_fds.to_string()),
            ("leaked_maps", leaked_maps.to_string()),
        ],
    );
    if let Some(p) = main.panic.or(warm.panic) {
        std::panic::resume_unwind(p);
    }
    assert_eq!(
        violations, 0,
        "violations (see the messages above; seed {seed:#x})"
    );
    assert!(main.records > 0, "no records were acknowledged");
    assert_eq!(leaked_fds, 0, "file descriptors leaked: {fds0} -> {fds1}");
    assert_eq!(leaked_maps, 0, "mappings leaked: {maps0} -> {maps1}");
}

/// Two `run_maintenance` callers at once (the background thread and a user, or
/// two users) over a compacted topic that is being written: every pass must
/// succeed for every partition, a live partition directory must hold no
/// `.cleaned` or `.swap` files once the passes are over, and a reopen must
/// show exactly the records the live log showed before `close` (nothing is
/// left half-swapped on disk for the next open to finish), with the latest
/// record of every key kept.
#[test]
fn concurrent_maintenance_passes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const K: u64 = 5;
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let config = || {
        LogConfig::default()
            .maintenance_interval(None)
            .clock(Arc::new(clock.clone()))
    };
    let log = Log::open(tmp.path(), config()).expect("open");
    log.create_topic(
        "c",
        TopicConfig::default()
            .cleanup(Cleanup::Compact)
            .segment_bytes(1024)
            .min_cleanable_dirty_ratio(0.0),
    )
    .expect("create_topic");
    let monitor = Arc::new(Monitor {
        start: Instant::now(),
        beats: Mutex::new(Vec::new()),
        finished: AtomicBool::new(false),
    });
    let watchdog = {
        let m = monitor.clone();
        std::thread::spawn(move || watchdog_thread(m))
    };
    let stop = Arc::new(AtomicBool::new(false));
    let passes: Vec<JoinHandle<(u64, Vec<String>)>> = (0..2)
        .map(|i| {
            let (log, stop, clock, monitor) = (log.clone(), stop.clone(), clock.clone(), monitor.clone());
            std::thread::spawn(move || {
                let beat = monitor.register(&format!("maintenance-{i}"));
                let (mut ok, mut failed) = (0u64, Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    monitor.tick(&beat);
                    clock.advance(1_000);
                    match log.run_maintenance() {
                        Ok(r) if r.partitions_failed == 0 => ok += 1,
                        Ok(r) => failed.push(format!("{r:?}")),
                        Err(e) => failed.push(e.to_string()),
                    }
                }
                beat.done.store(true, Ordering::SeqCst);
                (ok, failed)
            })
        })
        .collect();
    let beat = monitor.register("producer");
    let producer = log.producer();
    let mut latest = HashMap::new();
    let began = Instant::now();
    let mut n = 0u64;
    while began.elapsed() < Duration::from_secs(2) {
        monitor.tick(&beat);
        let key = format!("k{}", n % K);
        let m = producer
            .send("c", Record::new(vec![b'v'; 50]).with_key(key.clone()))
            .expect("send");
        latest.insert(key, m.offset);
        n += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let mut problems = Vec::new();
    for h in passes {
        let (ok, failed) = h.join().expect("maintenance thread");
        if !failed.is_empty() {
            problems.push(format!(
                "{} of {} passes failed a partition, e.g. {}",
                failed.len(),
                failed.len() as u64 + ok,
                failed[0]
            ));
        }
    }
    beat.done.store(true, Ordering::SeqCst);
    let pdir = tmp.path().join("c-0");
    let debris: Vec<String> = std::fs::read_dir(&pdir)
        .expect("partition dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect();
    if !debris.is_empty() {
        problems.push(format!(
            "{} .cleaned/.swap files left in the live {}: {:?}",
            debris.len(),
            pdir.display(),
            &debris[..debris.len().min(6)]
        ));
    }
    let read_all = |log: &Log| -> Vec<u64> {
        let mut out = Vec::new();
        let mut next = 0;
        while let Ok(recs) = log.fetch("c", 0, next, 10_000) {
            let Some(last) = recs.last() else { break };
            next = last.offset() + 1;
            out.extend(recs.iter().map(ConsumedRecord::offset));
        }
        out
    };
    let live = read_all(&log);
    log.close().expect("close");
    drop(log);
    let log = Log::open(tmp.path(), config()).expect("reopen");
    let reopened = read_all(&log);
    if reopened != live {
        problems.push(format!(
            "{} records readable before close, {} after reopen",
            live.len(),
            reopened.len()
        ));
    }
    for (key, offset) in &latest {
        if reopened.binary_search(offset).is_err() {
            problems.push(format!("latest record of {key} (offset {offset}) lost"));
        }
    }
    log.close().expect("close");
    monitor.finished.store(true, Ordering::SeqCst);
    watchdog.join().expect("watchdog");
    assert!(
        problems.is_empty(),
        "concurrent run_maintenance on a compacted topic ({n} records sent): {problems:#?}"
    );
}

/// Negative control: a deleted segment's bytes overwritten while readers still
/// hold records in it (what dropping segment reference counts would do) must
/// be reported as violations by the stress run.
#[test]
fn negative_control_reusing_deleted_segments_is_caught() {
    // The child's pipes are descriptors of this process: keep the stress
    // run's descriptor counts undisturbed.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (passed, lines, text) = common::run_sabotaged(
        "stress",
        tidelog::internals::EngineSabotage::ReuseDeletedSegments,
        &[("TIDELOG_STRESS_SECS", "4")],
    );
    assert!(
        !passed,
        "the stress run passed with deleted segments overwritten:\n{text}"
    );
    assert!(
        common::reliability_sum(&lines, "violations") > 0,
        "no violations reported with deleted segments overwritten:\n{text}"
    );
}
