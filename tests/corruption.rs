#![cfg(feature = "internals")]
//! The corruption matrix (RELIABILITY.md §3, S4).
//!
//! Behaviour: damage at rest costs at most the damaged batches. Those read as
//! `Error::Corrupt { path, position, reason }`, every other record reads back
//! byte for byte, the end offset does not move, appends continue, and no byte on
//! disk makes `open` fail or anything panic. Indexes are derived data: losing
//! or garbling them loses nothing. Leftover files of an interrupted atomic
//! replace or compaction are cleaned up or completed. Damaged metadata never
//! silently destroys data, and a damaged commit never resets a group.
//!
//! Method: write real files in a temporary directory through the engine
//! (`PartitionLog`) or the public `Log`, keep a copy of every file, then for each
//! case restore the copy, damage it with plain `std::fs`, reopen and compare every
//! answer with what was written. The bit-flip sweep runs every 7th byte (one bit
//! each) by default; `TIDELOG_CORRUPTION_FULL=1` flips every bit of every byte
//! (about eight minutes on two cores). Scratch copies live in `/dev/shm` where
//! it exists (see `scratch`). Cases that fail today because of a bug in the
//! code are `#[ignore = "BUG: ..."]` and keep their expectation.

mod common;

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tidelog::batch::{self, BatchRecord, Frame};
use tidelog::internals::{EngineSabotage, PartitionConfig, PartitionLog, RealFs, RecoveryReport};
use tidelog::{
    Cleanup, ConsumedRecord, CorruptReason, Error, Log, LogConfig, ManualClock, Record, TopicConfig,
};

const T0: i64 = common::T0;
const DAY: i64 = 86_400_000;

// ---------------------------------------------------------------------------
// What was written, and what came back.

/// One record as a reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: u64,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
}

impl Rec {
    fn of(offset: u64, r: &Record) -> Rec {
        Rec {
            offset,
            timestamp: r.timestamp().expect("records here carry timestamps"),
            key: r.key().cloned(),
            value: r.value().cloned(),
            headers: r.headers().to_vec(),
        }
    }
}

impl From<BatchRecord> for Rec {
    fn from(r: BatchRecord) -> Rec {
        Rec {
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r.headers,
        }
    }
}

impl From<&ConsumedRecord> for Rec {
    fn from(r: &ConsumedRecord) -> Rec {
        Rec {
            offset: r.offset(),
            timestamp: r.timestamp(),
            key: r.key().cloned(),
            value: r.value().cloned(),
            headers: r.headers().to_vec(),
        }
    }
}

/// A record of varied shape for sequence number `n`: null, empty and ordinary
/// keys, tombstones, values of 0 to 39 bytes, no header, one header, or a
/// duplicated header key with a null value; timestamps that go back within a
/// batch (negative deltas). `keyed` forces a key (compacted topics).
fn varied(n: u64, keyed: bool) -> Record {
    let len = ((n * 37) % 40) as usize;
    let value: Vec<u8> = (0..len).map(|i| (n as usize * 31 + i * 7) as u8).collect();
    let key = match n % 5 {
        0 if !keyed => None,
        1 => Some(Bytes::new()),
        _ => Some(Bytes::from(format!("key-{}", n % 11))),
    };
    let mut r = match key {
        Some(k) if n % 9 == 4 => Record::tombstone(k),
        Some(k) => Record::new(value).with_key(k),
        None => Record::new(value),
    };
    r = match n % 3 {
        1 => r.with_header("h", format!("v{n}")),
        2 => r.with_header("dup", "a").with_null_header("dup"),
        _ => r,
    };
    r.with_timestamp(T0 + n as i64 * 10 - (n % 4) as i64 * 17)
}

/// A record with every field present (key, value, one header with a value):
/// the subject of the record-field cases.
fn full_record(n: u64) -> Record {
    Record::new(format!("value-{n:04}"))
        .with_key(format!("key-{n:04}"))
        .with_header("hdr", format!("hv{n:03}"))
        .with_timestamp(T0 + n as i64 * 10)
}

// ---------------------------------------------------------------------------
// Files: copies of a directory tree, batch layouts.

/// Every file of a directory tree, by relative path.
#[derive(Clone)]
struct Snapshot {
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl Snapshot {
    fn take(root: &Path) -> Snapshot {
        fn walk(root: &Path, rel: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in fs::read_dir(root.join(rel)).unwrap() {
                let entry = entry.unwrap();
                let rel = rel.join(entry.file_name());
                if entry.file_type().unwrap().is_dir() {
                    walk(root, &rel, out);
                } else {
                    out.push((rel.clone(), fs::read(root.join(&rel)).unwrap()));
                }
            }
        }
        let mut files = Vec::new();
        walk(root, Path::new(""), &mut files);
        files.sort();
        Snapshot { files }
    }

    fn restore(&self, root: &Path) {
        for (rel, bytes) in &self.files {
            let path = root.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        }
    }

    fn file(&self, rel: &Path) -> &[u8] {
        &self.files.iter().find(|(p, _)| p == rel).unwrap().1
    }

    fn file_mut(&mut self, rel: &Path) -> &mut Vec<u8> {
        &mut self.files.iter_mut().find(|(p, _)| p == rel).unwrap().1
    }

    /// Relative paths of the `.log` files under `dir`, in base-offset order.
    fn logs_in(&self, dir: &Path) -> Vec<PathBuf> {
        self.files
            .iter()
            .map(|(p, _)| p.clone())
            .filter(|p| p.parent() == Some(dir) && p.extension().is_some_and(|e| e == "log"))
            .collect()
    }
}

/// One batch of a `.log` file as written.
#[derive(Debug, Clone)]
struct Span {
    position: u64,
    size: u64,
    base: u64,
    /// Offsets of the records it holds (fewer than its range after compaction).
    offsets: Vec<u64>,
}

impl Span {
    fn contains(&self, position: u64) -> bool {
        self.position <= position && position < self.position + self.size
    }
}

/// The batches of a pristine `.log` file.
fn spans(bytes: &[u8]) -> Vec<Span> {
    let bytes = Bytes::copy_from_slice(bytes);
    let mut out = Vec::new();
    let mut position = 0usize;
    while position < bytes.len() {
        let Ok(Frame::Batch(h)) = batch::read_header(&bytes[position..]) else {
            panic!("pristine log has a bad batch at {position}");
        };
        let mut records = Vec::new();
        batch::decode_batch(&bytes.slice(position..position + h.size()), 0, &mut records).unwrap();
        out.push(Span {
            position: position as u64,
            size: h.size() as u64,
            base: h.base_offset as u64,
            offsets: records.iter().map(|r| r.offset).collect(),
        });
        position += h.size();
    }
    out
}

/// The batch header fields (KAFKA.md §2), and the records behind them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    BaseOffset,
    BatchLength,
    LeaderEpoch,
    Magic,
    Crc,
    Attributes,
    LastOffsetDelta,
    BaseTimestamp,
    MaxTimestamp,
    ProducerId,
    ProducerEpoch,
    BaseSequence,
    RecordsCount,
    Records,
}

/// The header field at byte `rel` of a batch.
fn field_at(rel: u64) -> Field {
    match rel {
        0..=7 => Field::BaseOffset,
        8..=11 => Field::BatchLength,
        12..=15 => Field::LeaderEpoch,
        16 => Field::Magic,
        17..=20 => Field::Crc,
        21..=22 => Field::Attributes,
        23..=26 => Field::LastOffsetDelta,
        27..=34 => Field::BaseTimestamp,
        35..=42 => Field::MaxTimestamp,
        43..=50 => Field::ProducerId,
        51..=52 => Field::ProducerEpoch,
        53..=56 => Field::BaseSequence,
        57..=60 => Field::RecordsCount,
        _ => Field::Records,
    }
}

/// Byte range of a header field inside a batch.
fn field_range(f: Field) -> (u64, u64) {
    match f {
        Field::BaseOffset => (0, 8),
        Field::BatchLength => (8, 12),
        Field::LeaderEpoch => (12, 16),
        Field::Magic => (16, 17),
        Field::Crc => (17, 21),
        Field::Attributes => (21, 23),
        Field::LastOffsetDelta => (23, 27),
        Field::BaseTimestamp => (27, 35),
        Field::MaxTimestamp => (35, 43),
        Field::ProducerId => (43, 51),
        Field::ProducerEpoch => (51, 53),
        Field::BaseSequence => (53, 57),
        Field::RecordsCount => (57, 61),
        Field::Records => (61, u64::MAX),
    }
}

/// The reasons a reader may give for a damaged `field` (RELIABILITY.md §2.4):
/// fields outside the CRC are checked structurally, everything from the
/// attributes on is caught by the CRC-32C (lastOffsetDelta also bounds the
/// batch's offsets, which are checked before the CRC).
fn reason_fits(field: Field, reason: &CorruptReason) -> bool {
    use CorruptReason as R;
    match field {
        Field::BaseOffset => matches!(
            reason,
            R::OffsetOutOfOrder { .. } | R::OffsetOutsideSegment { .. } | R::OffsetOverflow { .. }
        ),
        Field::BatchLength => matches!(
            reason,
            R::CrcMismatch { .. }
                | R::BatchLengthTooSmall { .. }
                | R::BatchLengthTooLarge { .. }
                | R::BatchTruncated { .. }
        ),
        Field::LeaderEpoch => matches!(reason, R::BadLeaderEpoch { .. }),
        Field::Magic => matches!(reason, R::BadMagic { .. }),
        Field::LastOffsetDelta => matches!(
            reason,
            R::CrcMismatch { .. } | R::OffsetOutsideSegment { .. } | R::OffsetOverflow { .. }
        ),
        _ => matches!(reason, R::CrcMismatch { .. }),
    }
}

/// Whether a flip in `field` may leave the batch valid with the same records:
/// only the partition leader epoch, outside the CRC, which may hold any value
/// from -1 up (Kafka-written segments carry real epochs; §2.4) and is not part
/// of any record.
fn may_be_benign(field: Field) -> bool {
    field == Field::LeaderEpoch
}

/// A scratch directory for one case. On Linux it lives in `/dev/shm` when that
/// is a writable tmpfs: these cases test decoding and recovery decisions, not
/// durability, and a tmpfs makes the fsyncs of each open free, which keeps the
/// thousands of opens of the sweep fast. Elsewhere, the system temp directory.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("tidelog-corruption-")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

fn flip(bytes: &mut [u8], position: u64, bit: u32) {
    bytes[position as usize] ^= 1 << bit;
}

// ---------------------------------------------------------------------------
// The thing under test: a partition read through the engine or through `Log`.

trait Subject {
    fn read(&self, from: u64, max: usize) -> tidelog::Result<Vec<Rec>>;
    fn end_offset(&self) -> u64;
    fn start_offset(&self) -> u64;
    fn offset_for_timestamp(&self, ts: i64) -> tidelog::Result<Option<u64>>;
    /// Appends one record; returns its offset and what must read back there.
    fn append(&self, n: u64) -> tidelog::Result<Rec>;
}

struct Engine(PartitionLog);

impl Subject for Engine {
    fn read(&self, from: u64, max: usize) -> tidelog::Result<Vec<Rec>> {
        Ok(self.0.read(from, max)?.into_iter().map(Rec::from).collect())
    }
    fn end_offset(&self) -> u64 {
        self.0.end_offset()
    }
    fn start_offset(&self) -> u64 {
        self.0.start_offset()
    }
    fn offset_for_timestamp(&self, ts: i64) -> tidelog::Result<Option<u64>> {
        self.0.offset_for_timestamp(ts)
    }
    fn append(&self, n: u64) -> tidelog::Result<Rec> {
        let r = full_record(n);
        let a = self.0.append_records(std::slice::from_ref(&r))?;
        Ok(Rec::of(a.base_offset, &r))
    }
}

struct TopicOf<'a> {
    log: &'a Log,
    topic: &'a str,
}

impl Subject for TopicOf<'_> {
    fn read(&self, from: u64, max: usize) -> tidelog::Result<Vec<Rec>> {
        Ok(self
            .log
            .fetch(self.topic, 0, from, max)?
            .iter()
            .map(Rec::from)
            .collect())
    }
    fn end_offset(&self) -> u64 {
        self.log.describe(self.topic).unwrap().partitions[0].end_offset
    }
    fn start_offset(&self) -> u64 {
        self.log.describe(self.topic).unwrap().partitions[0].start_offset
    }
    fn offset_for_timestamp(&self, ts: i64) -> tidelog::Result<Option<u64>> {
        self.log.offset_for_timestamp(self.topic, 0, ts)
    }
    fn append(&self, n: u64) -> tidelog::Result<Rec> {
        let r = full_record(n);
        let m = self.log.producer().send_to(self.topic, 0, r.clone())?;
        Ok(Rec::of(m.offset, &r))
    }
}

fn engine_open(dir: &Path, config: PartitionConfig) -> tidelog::Result<(PartitionLog, RecoveryReport)> {
    PartitionLog::open(
        RealFs::shared(),
        Arc::new(ManualClock::new(T0 + DAY)),
        dir,
        config,
    )
}

fn log_config(clock: &ManualClock) -> LogConfig {
    LogConfig::default()
        .maintenance_interval(None)
        .clock(Arc::new(clock.clone()))
}

// ---------------------------------------------------------------------------
// Checking a damaged partition against what was written.

/// What a damaged partition must look like.
struct Expect<'a> {
    written: &'a [Rec],
    /// Offsets of the damaged batches (empty: nothing may be damaged).
    damaged: BTreeSet<u64>,
    /// The file a `Corrupt` must name, and the byte range its position must fall in.
    file: PathBuf,
    bytes: (u64, u64),
    reason_ok: Box<dyn Fn(&CorruptReason) -> bool + 'a>,
    /// Damaged offsets may also read back unchanged (a flip with no effect).
    benign_ok: bool,
    end: u64,
}

/// What was seen; every counter but `detected`/`benign` is a violation.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Every damaged offset read as `Corrupt`.
    detected: bool,
    /// Every damaged offset read back unchanged (allowed only with `benign_ok`).
    benign: bool,
    /// Offsets read back with bytes that differ from what was written there, or
    /// records nobody wrote.
    wrong: BTreeSet<u64>,
    /// Undamaged offsets that failed to read back (Corrupt, skipped, missing).
    collateral: BTreeSet<u64>,
    /// Damaged offsets that vanished without a `Corrupt` (silently skipped).
    undetected: BTreeSet<u64>,
    /// `Corrupt` errors naming the wrong file, position or reason.
    bad_reports: Vec<String>,
    /// Anything else: end offset moved, append failed.
    other: Vec<String>,
}

impl Seen {
    fn is_ok(&self) -> bool {
        self.wrong.is_empty()
            && self.collateral.is_empty()
            && self.undetected.is_empty()
            && self.bad_reports.is_empty()
            && self.other.is_empty()
    }
}

/// Reads every written offset alone and everything in bulk, checks the end
/// offset, then appends one record and reads it back.
fn examine(s: &dyn Subject, e: &Expect) -> Seen {
    let mut seen = Seen::default();
    let by_offset: BTreeMap<u64, &Rec> = e.written.iter().map(|r| (r.offset, r)).collect();
    let (mut corrupt_damaged, mut same_damaged) = (0usize, 0usize);
    for want in e.written {
        let o = want.offset;
        let damaged = e.damaged.contains(&o);
        match s.read(o, 1) {
            Ok(got) => match got.first() {
                Some(r) if r.offset == o => {
                    if r != want {
                        seen.wrong.insert(o);
                    } else if damaged {
                        same_damaged += 1;
                    }
                }
                Some(r) if r.offset < o => {
                    seen.wrong.insert(r.offset);
                }
                Some(r) => {
                    if by_offset.get(&r.offset) != Some(&r) {
                        seen.wrong.insert(r.offset);
                    }
                    if damaged {
                        seen.undetected.insert(o);
                    } else {
                        seen.collateral.insert(o);
                    }
                }
                None if damaged => {
                    seen.undetected.insert(o);
                }
                None => {
                    seen.collateral.insert(o);
                }
            },
            Err(Error::Corrupt {
                path,
                position,
                reason,
            }) if damaged => {
                corrupt_damaged += 1;
                if path != e.file || position < e.bytes.0 || position >= e.bytes.1 || !(e.reason_ok)(&reason)
                {
                    seen.bad_reports.push(format!(
                        "offset {o}: Corrupt at {} byte {position} ({reason:?}); expected {} bytes {:?}",
                        path.display(),
                        e.file.display(),
                        e.bytes
                    ));
                }
            }
            Err(_) if damaged => {
                seen.undetected.insert(o);
            }
            Err(_) => {
                seen.collateral.insert(o);
            }
        }
    }
    if !e.damaged.is_empty() {
        seen.detected = corrupt_damaged == e.damaged.len();
        seen.benign = same_damaged == e.damaged.len();
    }
    if same_damaged > 0 && !e.benign_ok {
        // Damaged bytes read back as if intact: the damage was not noticed. The
        // record may even be right, but nothing checked it.
        seen.other
            .push(format!("{same_damaged} damaged records read without a Corrupt"));
    }
    // Bulk reads: every record returned is one that was written, in order.
    let mut next = e.written.first().map_or(0, |r| r.offset);
    let mut last = None;
    while next < e.end {
        match s.read(next, 100_000) {
            Ok(got) if got.is_empty() => break,
            Ok(got) => {
                for r in &got {
                    if by_offset.get(&r.offset) != Some(&r) || last.is_some_and(|l| l >= r.offset) {
                        seen.wrong.insert(r.offset);
                    }
                    last = Some(r.offset);
                }
                next = got.last().map_or(next + 1, |r| r.offset + 1);
            }
            Err(_) => next += 1,
        }
    }
    let end = s.end_offset();
    if end != e.end {
        seen.other.push(format!("end offset {end}, expected {}", e.end));
    }
    match s.append(1_000_000 + end) {
        Ok(want) if want.offset == end => match s.read(end, 10) {
            Ok(got) if got.len() == 1 && got[0] == want => {}
            other => seen
                .other
                .push(format!("appended record reads back as {other:?}")),
        },
        other => seen.other.push(format!("append after the damage: {other:?}")),
    }
    seen
}

// ---------------------------------------------------------------------------
// Fixtures.

/// A written partition, kept as a copy of its files.
struct Fixture {
    snapshot: Snapshot,
    /// Relative path of the partition folder.
    part: PathBuf,
    written: Vec<Rec>,
    end: u64,
    how: Opener,
}

#[derive(Clone, Copy)]
enum Opener {
    Engine(PartitionConfig),
    /// A `Log` whose topic is the partition folder's name without `-0`.
    Log,
}

impl Fixture {
    fn logs(&self) -> Vec<PathBuf> {
        self.snapshot.logs_in(&self.part)
    }

    fn topic(&self) -> String {
        let name = self.part.file_name().unwrap().to_str().unwrap();
        name.strip_suffix("-0").unwrap().to_owned()
    }

    /// Opens the fixture's files, restored under `root`, and runs `f` on the result.
    fn open_and<T>(&self, root: &Path, f: impl FnOnce(tidelog::Result<&dyn Subject>) -> T) -> T {
        match self.how {
            Opener::Engine(config) => match engine_open(&root.join(&self.part), config) {
                Ok((log, _)) => f(Ok(&Engine(log))),
                Err(e) => f(Err(e)),
            },
            Opener::Log => {
                let clock = ManualClock::new(T0 + 10 * DAY);
                match Log::open(root, log_config(&clock)) {
                    Ok(log) => {
                        let topic = self.topic();
                        let out = f(Ok(&TopicOf {
                            log: &log,
                            topic: &topic,
                        }));
                        log.close().unwrap();
                        out
                    }
                    Err(e) => f(Err(e)),
                }
            }
        }
    }
}

fn engine_config() -> PartitionConfig {
    PartitionConfig {
        segment_bytes: 1 << 20,
        segment_ms: 365 * DAY as u64,
        index_interval_bytes: 256,
        index_bytes: 4096,
    }
}

/// A partition written through the engine: one sealed segment of `before`
/// batches, the sealed segment under test of `batches` batches, and an active
/// segment of `after` batches (one to three records each, of varied shapes).
fn engine_fixture(before: usize, batches: usize, after: usize, clean: bool) -> Fixture {
    let tmp = scratch();
    let config = engine_config();
    let (log, _) = engine_open(tmp.path(), config).unwrap();
    let mut written = Vec::new();
    let mut n = 0u64;
    for (i, count) in [before, batches, after].into_iter().enumerate() {
        for b in 0..count {
            let records: Vec<Record> = (0..1 + (n + b as u64) % 3)
                .map(|k| varied(n + k, false))
                .collect();
            let a = log.append_records(&records).unwrap();
            for (k, r) in records.iter().enumerate() {
                written.push(Rec::of(a.base_offset + k as u64, r));
            }
            n += records.len() as u64;
        }
        if i < 2 {
            log.roll().unwrap();
        }
    }
    let read: Vec<Rec> = common::read_all(&log, 0).into_iter().map(Rec::from).collect();
    assert_eq!(read, written, "the fixture reads back as written");
    let end = log.end_offset();
    if clean {
        log.close().unwrap();
    }
    drop(log);
    Fixture {
        snapshot: Snapshot::take(tmp.path()),
        part: PathBuf::new(),
        written,
        end,
        how: Opener::Engine(config),
    }
}

/// Every record of partition 0 of `topic`, read from the start offset.
fn try_read_all_topic(log: &Log, topic: &str) -> tidelog::Result<Vec<Rec>> {
    let s = TopicOf { log, topic };
    let mut out = Vec::new();
    let mut next = s.start_offset();
    while next < s.end_offset() {
        let got = s.read(next, 1000)?;
        let Some(last) = got.last() else { break };
        next = last.offset + 1;
        out.extend(got);
    }
    Ok(out)
}

fn read_all_topic(log: &Log, topic: &str) -> Vec<Rec> {
    try_read_all_topic(log, topic).unwrap()
}

/// A compacted partition with offset gaps, through the public API: batches of
/// three keyed records, some with hot keys that are overwritten all the time
/// (gaps inside batches, whole batches gone), in 512-byte segments, cleaned by
/// `run_maintenance` on a manual clock past every lag, then a few records more
/// in the active segment; closed cleanly.
fn compacted_fixture() -> Fixture {
    let tmp = scratch();
    let clock = ManualClock::new(T0);
    let log = Log::open(tmp.path(), log_config(&clock)).unwrap();
    log.create_topic(
        "c",
        TopicConfig::default()
            .cleanup(Cleanup::Compact)
            .segment_bytes(512)
            .min_cleanable_dirty_ratio(0.0)
            .min_compaction_lag_ms(0)
            .delete_retention_ms(DAY as u64),
    )
    .unwrap();
    let p = log.producer();
    for b in 0..40u64 {
        let batch: Vec<Record> = (0..3)
            .map(|k| {
                let n = b * 3 + k;
                // Hot keys are overwritten all the time; the others stay.
                let key = if k == 0 || b % 5 == 0 {
                    format!("hot{}", n % 4)
                } else {
                    format!("k{n}")
                };
                Record::new(format!("v{n}-{}", "c".repeat((n % 17) as usize)))
                    .with_key(key)
                    .with_header("n", n.to_string())
                    .with_timestamp(T0 + n as i64)
            })
            .collect();
        p.send_batch("c", batch).unwrap();
    }
    clock.advance(DAY);
    let report = log.run_maintenance().unwrap();
    assert!(report.segments_compacted > 0, "{report:?}");
    for n in 120..124u64 {
        p.send("c", full_record(n)).unwrap();
    }
    let written = read_all_topic(&log, "c");
    let end = log.describe("c").unwrap().partitions[0].end_offset;
    log.close().unwrap();
    Fixture {
        snapshot: Snapshot::take(tmp.path()),
        part: PathBuf::from("c-0"),
        written,
        end,
        how: Opener::Log,
    }
}

// ---------------------------------------------------------------------------
// The bit-flip sweep.

fn full_mode() -> bool {
    std::env::var("TIDELOG_CORRUPTION_FULL").is_ok_and(|v| v == "1")
}

/// The (byte, bit) flips tried over `len` bytes: in quick mode every `step`th
/// byte, one bit each (varying with the position); in full mode every bit of
/// every byte.
fn flip_plan(len: u64, step: usize) -> Vec<(u64, u32)> {
    if full_mode() {
        (0..len).flat_map(|p| (0..8).map(move |b| (p, b))).collect()
    } else {
        (0..len).step_by(step).map(|p| (p, (p % 8) as u32)).collect()
    }
}

#[derive(Debug, Default)]
struct Tally {
    positions: u64,
    detected: u64,
    benign: u64,
    wrong_records: u64,
    collateral_loss: u64,
    undetected: u64,
    bad_reports: u64,
    open_errors: u64,
    panics: u64,
    failures: Vec<String>,
}

impl Tally {
    fn absorb(&mut self, t: Tally) {
        self.positions += t.positions;
        self.detected += t.detected;
        self.benign += t.benign;
        self.wrong_records += t.wrong_records;
        self.collateral_loss += t.collateral_loss;
        self.undetected += t.undetected;
        self.bad_reports += t.bad_reports;
        self.open_errors += t.open_errors;
        self.panics += t.panics;
        self.failures.extend(t.failures);
    }

    fn violations(&self) -> u64 {
        self.wrong_records
            + self.collateral_loss
            + self.undetected
            + self.bad_reports
            + self.open_errors
            + self.panics
            + self.failures.len() as u64
    }
}

/// Flips `bit` of byte `position` of the `.log` at `target` in a fresh copy of
/// the fixture, opens it and checks every answer; adds the outcome to `tally`.
fn flip_and_check(fx: &Fixture, target: &Path, layout: &[Span], position: u64, bit: u32, tally: &mut Tally) {
    let span = layout.iter().find(|s| s.contains(position)).unwrap();
    let field = field_at(position - span.position);
    let mut snapshot = fx.snapshot.clone();
    flip(snapshot.file_mut(target), position, bit);
    let tmp = scratch();
    snapshot.restore(tmp.path());
    let file = tmp.path().join(target);
    let expect = Expect {
        written: &fx.written,
        damaged: span.offsets.iter().copied().collect(),
        file,
        bytes: (span.position, span.position + span.size),
        reason_ok: Box::new(move |r: &CorruptReason| reason_fits(field, r)),
        benign_ok: may_be_benign(field),
        end: fx.end,
    };
    let what = format!(
        "{}: byte {position} bit {bit} ({field:?} of batch at {})",
        target.display(),
        span.position
    );
    tally.positions += 1;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        fx.open_and(tmp.path(), |s| {
            s.map(|s| examine(s, &expect)).map_err(|e| e.to_string())
        })
    }));
    match outcome {
        Err(_) => {
            tally.panics += 1;
            tally.failures.push(format!("{what}: panic"));
        }
        Ok(Err(e)) => {
            tally.open_errors += 1;
            tally.collateral_loss += fx.written.len() as u64;
            tally.failures.push(format!("{what}: open failed: {e}"));
        }
        Ok(Ok(seen)) => {
            tally.detected += u64::from(seen.detected);
            tally.benign += u64::from(seen.benign && !seen.detected);
            tally.wrong_records += seen.wrong.len() as u64;
            tally.collateral_loss += seen.collateral.len() as u64;
            tally.undetected += seen.undetected.len() as u64;
            tally.bad_reports += seen.bad_reports.len() as u64;
            if !(seen.detected || seen.benign && expect.benign_ok) {
                tally
                    .failures
                    .push(format!("{what}: damaged batch not reported as Corrupt: {seen:?}"));
            } else if !seen.is_ok() {
                tally.failures.push(format!("{what}: {seen:?}"));
            }
        }
    }
}

/// Sweeps the `.log` at `target` of the fixture over the bytes of batch
/// fields `include` accepts: every 7th byte (one bit, varying) in quick mode,
/// every bit of every byte in full mode. Two workers share the positions.
fn sweep(fx: &Fixture, target: &Path, include: fn(Field) -> bool) -> Tally {
    let bytes = fx.snapshot.file(target);
    let layout = spans(bytes);
    let plan: Vec<(u64, u32)> = flip_plan(bytes.len() as u64, 7)
        .into_iter()
        .filter(|(p, _)| {
            let span = layout.iter().find(|s| s.contains(*p)).unwrap();
            include(field_at(p - span.position))
        })
        .collect();
    let workers = 2;
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (plan, layout) = (&plan, &layout);
                scope.spawn(move || {
                    let mut tally = Tally::default();
                    for &(position, bit) in plan.iter().skip(w).step_by(workers) {
                        flip_and_check(fx, target, layout, position, bit, &mut tally);
                    }
                    tally
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut total = Tally::default();
    for t in tallies {
        total.absorb(t);
    }
    total
}

/// The segment under test of an engine fixture: its second `.log`.
fn second_log(fx: &Fixture) -> PathBuf {
    fx.logs()[1].clone()
}

/// The sealed segment of the compacted fixture with the widest offset gap
/// (records removed inside batches and whole batches removed).
fn gapped_log(fx: &Fixture) -> PathBuf {
    let logs = fx.logs();
    let widest_gap = |p: &PathBuf| {
        let layout = spans(fx.snapshot.file(p));
        let offsets: Vec<u64> = layout.iter().flat_map(|s| s.offsets.clone()).collect();
        offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
    };
    let best = logs[..logs.len() - 1]
        .iter()
        .max_by_key(|p| widest_gap(p))
        .unwrap();
    assert!(widest_gap(best) > 2, "compaction left a sealed segment with gaps");
    best.clone()
}

fn report_sweep(name: &str, t: &Tally) {
    let mut fields = vec![
        ("positions", t.positions.to_string()),
        ("detected", t.detected.to_string()),
        ("wrong_records", t.wrong_records.to_string()),
        ("collateral_loss", t.collateral_loss.to_string()),
        ("panics", t.panics.to_string()),
        ("benign", t.benign.to_string()),
        ("undetected", t.undetected.to_string()),
        ("bad_reports", t.bad_reports.to_string()),
        ("open_errors", t.open_errors.to_string()),
        ("full", u8::from(full_mode()).to_string()),
    ];
    if !name.is_empty() {
        fields.insert(0, ("mode", name.to_owned()));
    }
    common::reliability_report("corruption", &fields);
}

fn assert_sweep(t: &Tally) {
    assert!(t.positions > 0, "the sweep tried no position");
    let shown: Vec<&String> = t.failures.iter().take(12).collect();
    assert_eq!(
        t.violations(),
        0,
        "{} failing positions, first ones:\n{}",
        t.failures.len(),
        shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
}

/// The fields a reader uses before it checks the CRC: it walks from batch to
/// batch by `batchLength`, skips batches below the wanted offset by their
/// `baseOffset + lastOffsetDelta`, and places records by `baseOffset`, which
/// the CRC does not cover.
fn offset_or_length(f: Field) -> bool {
    matches!(f, Field::BaseOffset | Field::BatchLength | Field::LastOffsetDelta)
}

/// Picks the `.log` a sweep damages in a fixture.
type TargetOf = fn(&Fixture) -> PathBuf;

/// Sweeps the four fixtures (sealed segments of 1, 2 and 64 batches, and a
/// compacted one with gaps) over the bytes `include` accepts.
fn sweep_all(include: fn(Field) -> bool) -> Tally {
    let started = std::time::Instant::now();
    let mut total = Tally::default();
    let cases: [(&str, Fixture, TargetOf); 4] = [
        ("sealed-1", engine_fixture(2, 1, 2, true), second_log),
        ("sealed-2", engine_fixture(2, 2, 2, false), second_log),
        ("sealed-64", engine_fixture(2, 64, 2, true), second_log),
        ("compacted", compacted_fixture(), gapped_log),
    ];
    for (name, fx, target) in &cases {
        let t = sweep(fx, &target(fx), include);
        eprintln!(
            "{name}: positions {} detected {} benign {} violations {}",
            t.positions,
            t.detected,
            t.benign,
            t.violations()
        );
        total.absorb(t);
    }
    eprintln!("sweep took {:?}", started.elapsed());
    total
}

/// Bit flips over every batch field but the offset and length fields: each
/// flipped batch reads as `Corrupt` naming its file, a position inside it and a
/// reason that fits the field (or, for the leader epoch, reads unchanged);
/// every other record is byte-identical; the end offset holds; appends work.
/// The suite's RELIABILITY line.
#[test]
fn bit_flip_sweep() {
    let t = sweep_all(|f| !offset_or_length(f));
    report_sweep("", &t);
    assert_sweep(&t);
}

/// Negative control: with batch CRCs never compared, the sweep must see
/// flipped bits come back as wrong records.
#[test]
fn negative_control_ignoring_the_crc_is_caught() {
    let (passed, lines, text) = common::run_sabotaged("bit_flip_sweep", EngineSabotage::IgnoreCrc, &[]);
    assert!(!passed, "the sweep passed with CRCs ignored:\n{text}");
    assert!(
        common::reliability_sum(&lines, "wrong_records") > 0,
        "no wrong records reported with CRCs ignored:\n{text}"
    );
}

/// Negative control: with recovery cutting at any invalid batch and readers
/// never resyncing, the sweep must report records lost beside the damage.
#[test]
fn negative_control_truncating_at_damage_is_caught() {
    let (passed, lines, text) =
        common::run_sabotaged("bit_flip_sweep", EngineSabotage::TruncateAtDamage, &[]);
    assert!(!passed, "the sweep passed with truncation at damage:\n{text}");
    assert!(
        common::reliability_sum(&lines, "collateral_loss") > 0,
        "no collateral loss reported with truncation at damage:\n{text}"
    );
}

/// The same sweep over baseOffset, batchLength and lastOffsetDelta, with the
/// same expectations.
#[test]
fn bit_flip_sweep_offset_and_length_fields() {
    let t = sweep_all(offset_or_length);
    report_sweep("offset-length-fields", &t);
    assert_sweep(&t);
}

// ---------------------------------------------------------------------------
// Field by field.

/// The fields of a record (KAFKA.md §2), each a varint or bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecField {
    Length,
    Attributes,
    TimestampDelta,
    OffsetDelta,
    KeyLength,
    Key,
    ValueLength,
    Value,
    HeaderCount,
    HeaderKeyLength,
    HeaderKey,
    HeaderValueLength,
    HeaderValue,
}

/// Where a field-by-field case damages a batch.
#[derive(Debug, Clone, Copy)]
enum Place {
    Header(Field),
    /// A field of the batch's second record.
    Record(RecField),
}

/// A zigzag varint at `at`: its value and its length in bytes.
fn varint_at(b: &[u8], at: usize) -> (i64, usize) {
    let (mut u, mut shift, mut i) = (0u64, 0, at);
    loop {
        let byte = b[i];
        u |= u64::from(byte & 0x7f) << shift;
        i += 1;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    ((u >> 1) as i64 ^ -((u & 1) as i64), i - at)
}

/// Byte ranges (start, length) inside `batch` of each field of its record number `k`.
fn record_fields(batch: &[u8], k: usize) -> Vec<(RecField, usize, usize)> {
    let mut at = 61;
    for _ in 0..k {
        let (len, n) = varint_at(batch, at);
        at += n + len as usize;
    }
    let mut out = Vec::new();
    let take_varint = |out: &mut Vec<_>, f, at: &mut usize| {
        let (v, n) = varint_at(batch, *at);
        out.push((f, *at, n));
        *at += n;
        v
    };
    take_varint(&mut out, RecField::Length, &mut at);
    out.push((RecField::Attributes, at, 1));
    at += 1;
    take_varint(&mut out, RecField::TimestampDelta, &mut at);
    take_varint(&mut out, RecField::OffsetDelta, &mut at);
    for (len_field, bytes_field) in [
        (RecField::KeyLength, RecField::Key),
        (RecField::ValueLength, RecField::Value),
    ] {
        let len = take_varint(&mut out, len_field, &mut at);
        assert!(len > 0, "the case needs a record with a key and a value");
        out.push((bytes_field, at, len as usize));
        at += len as usize;
    }
    let count = take_varint(&mut out, RecField::HeaderCount, &mut at);
    assert!(count > 0, "the case needs a record with a header");
    let len = take_varint(&mut out, RecField::HeaderKeyLength, &mut at);
    out.push((RecField::HeaderKey, at, len as usize));
    at += len as usize;
    let len = take_varint(&mut out, RecField::HeaderValueLength, &mut at);
    out.push((RecField::HeaderValue, at, len as usize));
    out
}

/// (start, length) of `place` inside `batch`.
fn place_range(batch: &[u8], place: Place) -> (usize, usize) {
    match place {
        Place::Header(f) => {
            let (s, e) = field_range(f);
            (s as usize, (e - s) as usize)
        }
        Place::Record(f) => {
            let (_, s, n) = *record_fields(batch, 1).iter().find(|(g, _, _)| *g == f).unwrap();
            (s, n)
        }
    }
}

/// The flips tried on a field: the lowest bit of its last byte (a value off by
/// one), bit 3 of its last byte (off by eight: a length that now ends inside
/// the next batch), the top bit of its first byte (the sign, or a varint's
/// continuation) and bit 3 of its middle byte.
fn variants(start: usize, len: usize) -> Vec<(usize, u32)> {
    let mut v = vec![
        (start + len - 1, 0),
        (start + len - 1, 3),
        (start, 7),
        (start + len / 2, 3),
    ];
    v.sort_unstable();
    v.dedup();
    v
}

/// The reason reported today for a range recovery quarantined at open: the
/// cause found by the scan is not kept (see
/// `quarantined_damage_reports_what_was_wrong`).
fn is_quarantine_reason(r: &CorruptReason) -> bool {
    matches!(r, CorruptReason::BadMetadata { detail } if detail.contains("quarantined"))
}

/// Where the damage is and how the partition was left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// The middle batch of a sealed segment, after a clean close.
    SealedClean,
    /// The same after a drop without close: sealed segments are synced.
    SealedDropped,
    /// The middle batch of the active segment after a clean close: `close`
    /// synced it, so it is damage at rest.
    ActiveClean,
    /// The middle batch of the active segment after a drop without close: past
    /// the sync checkpoint, so crash damage that recovery may cut (§2.3).
    ActiveDropped,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario::SealedClean,
    Scenario::SealedDropped,
    Scenario::ActiveClean,
    Scenario::ActiveDropped,
];

/// A sealed segment and an active one, each of five batches of two records
/// with every field present. Kafka's default index interval (4096 bytes) gives
/// these small segments no offset-index entry: every read walks the segment
/// from its first batch, as reads between two sparse entries do.
fn field_fixture(clean: bool) -> Fixture {
    let tmp = scratch();
    let config = PartitionConfig {
        index_interval_bytes: 4096,
        ..engine_config()
    };
    let (log, _) = engine_open(tmp.path(), config).unwrap();
    let mut written = Vec::new();
    for segment in 0..2u64 {
        for b in 0..5u64 {
            let n = segment * 10 + b * 2;
            let records = [full_record(n), full_record(n + 1)];
            let a = log.append_records(&records).unwrap();
            assert_eq!(a.base_offset, n);
            written.extend(records.iter().enumerate().map(|(k, r)| Rec::of(n + k as u64, r)));
        }
        if segment == 0 {
            log.roll().unwrap();
        }
    }
    let end = log.end_offset();
    if clean {
        log.close().unwrap();
    }
    drop(log);
    Fixture {
        snapshot: Snapshot::take(tmp.path()),
        part: PathBuf::new(),
        written,
        end,
        how: Opener::Engine(config),
    }
}

/// Runs every flip of `place` in every scenario; returns the failures.
fn field_case_failures(place: Place) -> Vec<String> {
    let mut failures = Vec::new();
    let fixtures = [field_fixture(true), field_fixture(false)];
    for scenario in SCENARIOS {
        let clean = matches!(scenario, Scenario::SealedClean | Scenario::ActiveClean);
        let fx = &fixtures[usize::from(!clean)];
        let sealed = matches!(scenario, Scenario::SealedClean | Scenario::SealedDropped);
        let target = fx.logs()[usize::from(!sealed)].clone();
        let pristine = fx.snapshot.file(&target).to_vec();
        let span = spans(&pristine)[2].clone();
        let batch_bytes = &pristine[span.position as usize..(span.position + span.size) as usize];
        let (start, len) = place_range(batch_bytes, place);
        for (rel, bit) in variants(start, len) {
            let position = span.position + rel as u64;
            let mut damaged_batch = batch_bytes.to_vec();
            flip(&mut damaged_batch, rel as u64, bit);
            let epoch_after = i32::from_be_bytes(damaged_batch[12..16].try_into().unwrap());
            let benign = matches!(place, Place::Header(Field::LeaderEpoch)) && epoch_after >= -1;
            let mut snapshot = fx.snapshot.clone();
            flip(snapshot.file_mut(&target), position, bit);
            let tmp = scratch();
            snapshot.restore(tmp.path());
            let field = match place {
                Place::Header(f) => f,
                Place::Record(_) => Field::Records,
            };
            // Damage in the active segment is found by the scan at open, which
            // quarantines the range (its own reason, asserted elsewhere).
            let quarantined = scenario == Scenario::ActiveClean;
            let cut = scenario == Scenario::ActiveDropped && !benign;
            let before: Vec<Rec> = fx
                .written
                .iter()
                .filter(|r| r.offset < span.base)
                .cloned()
                .collect();
            let expect = Expect {
                written: if cut { &before } else { &fx.written },
                damaged: if benign || cut {
                    BTreeSet::new()
                } else {
                    span.offsets.iter().copied().collect()
                },
                file: tmp.path().join(&target),
                bytes: (span.position, span.position + span.size),
                reason_ok: Box::new(move |r: &CorruptReason| {
                    reason_fits(field, r) || (quarantined && is_quarantine_reason(r))
                }),
                benign_ok: false,
                end: if cut { span.base } else { fx.end },
            };
            let Opener::Engine(config) = fx.how else {
                unreachable!()
            };
            let what = format!("{place:?} {scenario:?} byte {rel} bit {bit}");
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let (log, report) = engine_open(tmp.path(), config)?;
                let seen = examine(&Engine(log), &expect);
                Ok::<_, Error>((seen, report))
            }));
            match outcome {
                Err(_) => failures.push(format!("{what}: panic")),
                Ok(Err(e)) => failures.push(format!("{what}: open failed: {e}")),
                Ok(Ok((seen, report))) => {
                    if !expect.damaged.is_empty() && !seen.detected {
                        failures.push(format!("{what}: damaged batch not Corrupt: {seen:?}"));
                    } else if !seen.is_ok() {
                        failures.push(format!("{what}: {seen:?}"));
                    }
                    if cut && report.truncated_bytes == 0 {
                        failures.push(format!("{what}: expected a cut at {position}: {report:?}"));
                    }
                    if !cut && report.truncated_bytes > 0 {
                        failures.push(format!("{what}: nothing may be cut: {report:?}"));
                    }
                }
            }
        }
    }
    failures
}

fn field_case(place: Place) {
    let failures = field_case_failures(place);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

macro_rules! field_cases {
    ($($(#[$doc:meta])* $name:ident => $place:expr;)*) => {
        $(
            $(#[$doc])*
            #[test]
            fn $name() {
                field_case($place);
            }
        )*
    };
}

// One test per field. Each flips four bits of the field (see `variants`) in
// the middle batch of a sealed segment and of the active segment, written
// through the engine as a `Log` with `Durability::Os` writes (no fsync per
// append; `close` fsyncs), and checks the outcome each scenario documents:
// - sealed, clean close or drop: the batch reads as `Corrupt` with the reason
//   given below, at a position inside it; all other records byte-identical;
//   end offset unchanged; appends work;
// - active after a clean close: the same (the scan at open quarantines it);
// - active after a drop: past the sync checkpoint, so crash damage: cut at
//   the batch, the records before it intact, the end offset is its base
//   offset and the next append takes it (§2.3).
// A flip that leaves the batch valid with the same records (only the leader
// epoch can) must read every record unchanged and cut nothing.
field_cases! {
    /// baseOffset (outside the CRC): sealed or synced, the batch reads as
    /// `Corrupt` (OffsetOutOfOrder / OffsetOutsideSegment / OffsetOverflow);
    /// unsynced active, the log is cut at the batch.
    header_base_offset => Place::Header(Field::BaseOffset);
    /// batchLength (outside the CRC): `Corrupt` (CRC mismatch, length too small
    /// or too large, or truncated); the batches after it stay readable.
    header_batch_length => Place::Header(Field::BatchLength);
    /// partitionLeaderEpoch (outside the CRC, any value >= -1 is legal): a flip
    /// to another value >= -1 reads every record unchanged; a flip below -1 is
    /// `Corrupt` (BadLeaderEpoch).
    header_partition_leader_epoch => Place::Header(Field::LeaderEpoch);
    /// magic: `Corrupt` (BadMagic).
    header_magic => Place::Header(Field::Magic);
    /// crc: `Corrupt` (CrcMismatch).
    header_crc => Place::Header(Field::Crc);
    /// attributes: `Corrupt` (CrcMismatch), never a batch read as compressed.
    header_attributes => Place::Header(Field::Attributes);
    /// lastOffsetDelta: `Corrupt` (CrcMismatch or offsets outside the segment);
    /// no record hidden, later batches readable.
    header_last_offset_delta => Place::Header(Field::LastOffsetDelta);
    /// baseTimestamp: `Corrupt` (CrcMismatch), never shifted timestamps.
    header_base_timestamp => Place::Header(Field::BaseTimestamp);
    /// maxTimestamp: `Corrupt` (CrcMismatch).
    header_max_timestamp => Place::Header(Field::MaxTimestamp);
    /// producerId: `Corrupt` (CrcMismatch).
    header_producer_id => Place::Header(Field::ProducerId);
    /// producerEpoch: `Corrupt` (CrcMismatch).
    header_producer_epoch => Place::Header(Field::ProducerEpoch);
    /// baseSequence: `Corrupt` (CrcMismatch).
    header_base_sequence => Place::Header(Field::BaseSequence);
    /// recordsCount: `Corrupt` (CrcMismatch).
    header_records_count => Place::Header(Field::RecordsCount);
    /// A record's length varint: `Corrupt` (CrcMismatch).
    record_length => Place::Record(RecField::Length);
    /// A record's attributes byte: `Corrupt` (CrcMismatch).
    record_attributes => Place::Record(RecField::Attributes);
    /// A record's timestampDelta: `Corrupt` (CrcMismatch), never a shifted timestamp.
    record_timestamp_delta => Place::Record(RecField::TimestampDelta);
    /// A record's offsetDelta: `Corrupt` (CrcMismatch), never a record at another offset.
    record_offset_delta => Place::Record(RecField::OffsetDelta);
    /// A record's key length: `Corrupt` (CrcMismatch).
    record_key_length => Place::Record(RecField::KeyLength);
    /// A record's key bytes: `Corrupt` (CrcMismatch), never a changed key.
    record_key => Place::Record(RecField::Key);
    /// A record's value length: `Corrupt` (CrcMismatch).
    record_value_length => Place::Record(RecField::ValueLength);
    /// A record's value bytes: `Corrupt` (CrcMismatch), never a changed value.
    record_value => Place::Record(RecField::Value);
    /// A record's header count: `Corrupt` (CrcMismatch).
    record_header_count => Place::Record(RecField::HeaderCount);
    /// A header's key length: `Corrupt` (CrcMismatch).
    record_header_key_length => Place::Record(RecField::HeaderKeyLength);
    /// A header's key bytes: `Corrupt` (CrcMismatch).
    record_header_key => Place::Record(RecField::HeaderKey);
    /// A header's value length: `Corrupt` (CrcMismatch).
    record_header_value_length => Place::Record(RecField::HeaderValueLength);
    /// A header's value bytes: `Corrupt` (CrcMismatch).
    record_header_value => Place::Record(RecField::HeaderValue);
}

// ---------------------------------------------------------------------------
// One damaged copy at a time.

/// Restores `snapshot` into a scratch directory, opens it as the fixture does
/// and examines it against the expectation `make` builds for that directory.
/// A panic or a failed open is an `Err`.
fn check_snapshot<'a>(
    fx: &Fixture,
    snapshot: &Snapshot,
    make: impl FnOnce(&Path) -> Expect<'a>,
) -> Result<Seen, String> {
    let tmp = scratch();
    snapshot.restore(tmp.path());
    let expect = make(tmp.path());
    catch_unwind(AssertUnwindSafe(|| {
        fx.open_and(tmp.path(), |s| {
            s.map(|s| examine(s, &expect))
                .map_err(|e| format!("open failed: {e}"))
        })
    }))
    .unwrap_or_else(|_| Err("panic".into()))
}

/// Fails unless the case was clean: no violation, and (with damaged offsets)
/// every damaged offset read as `Corrupt`.
fn assert_clean_outcome(what: &str, outcome: Result<Seen, String>, damaged: bool) {
    match outcome {
        Err(e) => panic!("{what}: {e}"),
        Ok(seen) => {
            assert!(
                !damaged || seen.detected,
                "{what}: damaged records not reported as Corrupt: {seen:?}"
            );
            assert!(seen.is_ok(), "{what}: {seen:?}");
        }
    }
}

/// Any reason that describes a damaged batch (not a metadata file).
fn batch_reason(r: &CorruptReason) -> bool {
    !matches!(r, CorruptReason::BadMetadata { .. })
}

/// A sealed segment of 200 batches in which the second 4 KiB page reads as
/// zeros (a lost sector run): exactly the batches overlapping the page read
/// as `Corrupt`, naming the file and a position inside them; every batch
/// before and after the page, in this segment and the others, is
/// byte-identical; the end offset holds; appends work. After a clean close
/// and after a drop without close (sealed segments are synced either way).
#[test]
fn zeroed_page_in_a_sealed_segment() {
    for clean in [true, false] {
        let fx = engine_fixture(2, 200, 2, clean);
        let target = second_log(&fx);
        let layout = spans(fx.snapshot.file(&target));
        let (from, to) = (4096u64, 8192u64);
        assert!(fx.snapshot.file(&target).len() as u64 > to + 4096);
        let hit: Vec<&Span> = layout
            .iter()
            .filter(|s| s.position < to && s.position + s.size > from)
            .collect();
        let mut snapshot = fx.snapshot.clone();
        snapshot.file_mut(&target)[from as usize..to as usize].fill(0);
        let damaged: BTreeSet<u64> = hit.iter().flat_map(|s| s.offsets.iter().copied()).collect();
        let bytes = (hit[0].position, hit.last().map(|s| s.position + s.size).unwrap());
        let outcome = check_snapshot(&fx, &snapshot, |root| Expect {
            written: &fx.written,
            damaged,
            file: root.join(&target),
            bytes,
            reason_ok: Box::new(batch_reason),
            benign_ok: false,
            end: fx.end,
        });
        assert_clean_outcome(&format!("zeroed page, clean {clean}"), outcome, true);
    }
}

/// Cuts the sealed segment under test to the length `cut_to` picks from its
/// batches and checks the documented outcome: its length no longer matches the checkpoint, so it
/// is scanned; the batches that lost bytes read as `Corrupt` (naming the file
/// and a position from the first of them on); everything else, in particular
/// every later segment, reads back; the end offset holds; appends work.
fn shortened_sealed_segment(cut_to: impl Fn(&[Span]) -> u64) {
    for clean in [true, false] {
        let fx = engine_fixture(2, 12, 2, clean);
        let target = second_log(&fx);
        let layout = spans(fx.snapshot.file(&target));
        let len = cut_to(&layout);
        let mut snapshot = fx.snapshot.clone();
        snapshot.file_mut(&target).truncate(len as usize);
        let lost: Vec<&Span> = layout.iter().filter(|s| s.position + s.size > len).collect();
        let damaged: BTreeSet<u64> = lost.iter().flat_map(|s| s.offsets.iter().copied()).collect();
        let full_len = fx.snapshot.file(&target).len() as u64;
        let outcome = check_snapshot(&fx, &snapshot, |root| Expect {
            written: &fx.written,
            damaged,
            file: root.join(&target),
            bytes: (lost[0].position, full_len + 1),
            reason_ok: Box::new(|r: &CorruptReason| {
                matches!(
                    r,
                    CorruptReason::SegmentLengthMismatch { .. } | CorruptReason::BatchTruncated { .. }
                ) || is_quarantine_reason(r)
            }),
            benign_ok: false,
            end: fx.end,
        });
        assert_clean_outcome(
            &format!("sealed segment cut to {len} bytes, clean {clean}"),
            outcome,
            true,
        );
    }
}

/// A sealed segment whose last batch lost its final 10 bytes: that batch reads
/// as `Corrupt`, nothing else is lost.
#[test]
fn shortened_sealed_segment_inside_its_last_batch() {
    shortened_sealed_segment(|l| {
        let last = l.last().unwrap();
        last.position + last.size - 10
    });
}

/// A sealed segment cut to half its batches, in the middle of one: the cut
/// batches read as `Corrupt`, later segments stay readable.
#[test]
fn shortened_sealed_segment_to_half() {
    shortened_sealed_segment(|l| l[l.len() / 2].position + 20);
}

/// A sealed segment whose last batch is gone whole (cut at a batch boundary):
/// the length mismatch is the only sign of the loss, and the missing offsets
/// must still read as `Corrupt`, not vanish like a compaction gap.
#[test]
fn shortened_sealed_segment_at_a_batch_boundary() {
    shortened_sealed_segment(|l| l.last().unwrap().position);
}

/// The writes of an `Os`-durability log through the public API, closed or
/// dropped: thirty records of varied shapes, one batch each, in one segment.
fn os_log_fixture(clean: bool) -> Fixture {
    let tmp = scratch();
    let clock = ManualClock::new(T0);
    let log = Log::open(tmp.path(), log_config(&clock).durability(tidelog::Durability::Os)).unwrap();
    log.create_topic("t", TopicConfig::default().segment_bytes(1 << 20))
        .unwrap();
    let mut written = Vec::new();
    for n in 0..30 {
        let r = varied(n, false);
        let m = log.producer().send_to("t", 0, r.clone()).unwrap();
        written.push(Rec::of(m.offset, &r));
    }
    assert_eq!(read_all_topic(&log, "t"), written);
    if clean {
        log.close().unwrap();
    }
    drop(log);
    Fixture {
        snapshot: Snapshot::take(tmp.path()),
        part: PathBuf::from("t-0"),
        written,
        end: 30,
        how: Opener::Log,
    }
}

/// Garbage or zeros appended to the active segment (Kafka's testCorruptLog),
/// after a clean close and after a drop without close (`Durability::Os`): the
/// bytes lie past the synced end, so recovery cuts them as a torn tail; every
/// record reads back, the end offset holds, the `.log` is back to its exact
/// length and appends continue at the end offset.
#[test]
fn garbage_or_zeros_appended_to_the_active_segment() {
    let garbage: Vec<u8> = (0..777u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8 | 1)
        .collect();
    let mut partial = Vec::new();
    batch::encode_batch(&mut partial, 30, &[full_record(30)], T0).unwrap();
    partial.truncate(partial.len() - 5);
    let tails: [(&str, Vec<u8>); 3] = [
        ("garbage", garbage),
        ("zeros", vec![0; 4096]),
        ("partial batch", partial),
    ];
    for clean in [true, false] {
        let fx = os_log_fixture(clean);
        let target = fx.logs()[0].clone();
        let exact = fx.snapshot.file(&target).len();
        for (name, tail) in &tails {
            let mut snapshot = fx.snapshot.clone();
            snapshot.file_mut(&target).extend_from_slice(tail);
            let tmp = scratch();
            snapshot.restore(tmp.path());
            let clock = ManualClock::new(T0 + DAY);
            let log = Log::open(tmp.path(), log_config(&clock)).unwrap();
            assert_eq!(
                fs::metadata(tmp.path().join(&target)).unwrap().len(),
                exact as u64,
                "{name}, clean {clean}: cut back to the last whole batch"
            );
            let s = TopicOf {
                log: &log,
                topic: "t",
            };
            let expect = Expect {
                written: &fx.written,
                damaged: BTreeSet::new(),
                file: tmp.path().join(&target),
                bytes: (0, 0),
                reason_ok: Box::new(|_: &CorruptReason| false),
                benign_ok: false,
                end: fx.end,
            };
            let seen = examine(&s, &expect);
            assert!(seen.is_ok(), "{name}, clean {clean}: {seen:?}");
            log.close().unwrap();
        }
    }
}

/// The active segment through the public API with `Durability::Os`, its
/// fifth batch's CRC flipped. After a clean close, `close` synced it: damage
/// at rest, quarantined; offset 4 reads as `Corrupt`, the 29 others read back,
/// the end offset stays 30. After a drop without close the segment lies past
/// the sync checkpoint (sends in `Os` are not synced): crash damage, cut at
/// the batch (§2.3); offsets 0..4 read back, the end offset is 4 and the next
/// send gets offset 4.
#[test]
fn active_segment_damage_through_the_log_depends_on_a_clean_close() {
    for clean in [true, false] {
        let fx = os_log_fixture(clean);
        let target = fx.logs()[0].clone();
        let span = spans(fx.snapshot.file(&target))[4].clone();
        let mut snapshot = fx.snapshot.clone();
        flip(snapshot.file_mut(&target), span.position + 18, 2);
        let before: Vec<Rec> = fx.written[..4].to_vec();
        let outcome = check_snapshot(&fx, &snapshot, |root| Expect {
            written: if clean { &fx.written } else { &before },
            damaged: if clean {
                BTreeSet::from([4])
            } else {
                BTreeSet::new()
            },
            file: root.join(&target),
            bytes: (span.position, span.position + span.size),
            reason_ok: Box::new(|r: &CorruptReason| {
                matches!(r, CorruptReason::CrcMismatch { .. }) || is_quarantine_reason(r)
            }),
            benign_ok: false,
            end: if clean { 30 } else { 4 },
        });
        assert_clean_outcome(&format!("active segment, clean {clean}"), outcome, clean);
    }
}

/// Damage that recovery quarantines at open (a CRC flip in the synced active
/// segment) reads as `Corrupt` whose reason says what was wrong with the batch
/// (here `CrcMismatch`), as a damaged sealed batch does, not as a damaged
/// metadata file.
#[test]
fn quarantined_damage_reports_what_was_wrong() {
    let fx = os_log_fixture(true);
    let target = fx.logs()[0].clone();
    let span = spans(fx.snapshot.file(&target))[4].clone();
    let mut snapshot = fx.snapshot.clone();
    flip(snapshot.file_mut(&target), span.position + 18, 2);
    let outcome = check_snapshot(&fx, &snapshot, |root| Expect {
        written: &fx.written,
        damaged: BTreeSet::from([4]),
        file: root.join(&target),
        bytes: (span.position, span.position + span.size),
        reason_ok: Box::new(|r: &CorruptReason| matches!(r, CorruptReason::CrcMismatch { .. })),
        benign_ok: false,
        end: 30,
    });
    assert_clean_outcome("quarantined CRC flip", outcome, true);
}

// ---------------------------------------------------------------------------
// Index and time-index files.

/// `count` records of varied shapes through the public API, one batch each, in
/// 1 KiB segments with an index entry every 100 bytes: many sealed segments,
/// each with offset- and time-index entries, and an active one.
fn index_fixture_of(count: u64, clean: bool) -> Fixture {
    let tmp = scratch();
    let clock = ManualClock::new(T0);
    let log = Log::open(tmp.path(), log_config(&clock)).unwrap();
    log.create_topic(
        "t",
        TopicConfig::default()
            .segment_bytes(1024)
            .index_interval_bytes(100),
    )
    .unwrap();
    let mut written = Vec::new();
    for n in 0..count {
        let r = varied(n, false);
        let m = log.producer().send_to("t", 0, r.clone()).unwrap();
        written.push(Rec::of(m.offset, &r));
    }
    assert!(log.describe("t").unwrap().partitions[0].segments > 3);
    if clean {
        log.close().unwrap();
    }
    drop(log);
    Fixture {
        snapshot: Snapshot::take(tmp.path()),
        part: PathBuf::from("t-0"),
        written,
        end: count,
        how: Opener::Log,
    }
}

/// 150 records in 1 KiB segments (about twenty).
fn index_fixture(clean: bool) -> Fixture {
    index_fixture_of(150, clean)
}

/// The answers that depend on the indexes: the first record read from every
/// written offset, and `offset_for_timestamp` around every written timestamp.
fn index_answers(s: &dyn Subject, written: &[Rec]) -> (Vec<Rec>, Vec<(i64, Option<u64>)>) {
    let reads = written
        .iter()
        .map(|w| s.read(w.offset, 1).unwrap()[0].clone())
        .collect();
    let mut probes: Vec<i64> = written
        .iter()
        .flat_map(|w| [w.timestamp - 1, w.timestamp, w.timestamp + 1])
        .collect();
    probes.sort_unstable();
    probes.dedup();
    let lookups = probes
        .into_iter()
        .map(|ts| (ts, s.offset_for_timestamp(ts).unwrap()))
        .collect();
    (reads, lookups)
}

/// The model's answer to `offset_for_timestamp`: the first offset whose
/// timestamp is at or after `ts`.
fn first_at_or_after(written: &[Rec], ts: i64) -> Option<u64> {
    written.iter().find(|r| r.timestamp >= ts).map(|r| r.offset)
}

type IndexDamage = fn(&Path, &[u8]) -> Option<Vec<u8>>;

/// Opens the fixture with every `.index` and `.timeindex` of the partition
/// replaced by what `damage` returns (`None`: deleted), and checks the
/// documented outcome: open succeeds, no record is lost or changed, reads from
/// every offset and lookups by timestamp give the model's answers, appends work.
fn index_case(name: &str, damage: IndexDamage) {
    for clean in [true, false] {
        let fx = index_fixture(clean);
        let mut snapshot = fx.snapshot.clone();
        let indexes: Vec<PathBuf> = snapshot
            .files
            .iter()
            .map(|(p, _)| p.clone())
            .filter(|p| p.parent() == Some(&fx.part))
            .filter(|p| p.extension().is_some_and(|e| e == "index" || e == "timeindex"))
            .collect();
        assert!(indexes.len() > 10);
        for p in &indexes {
            let old = snapshot.file(p).to_vec();
            match damage(p, &old) {
                Some(new) => *snapshot.file_mut(p) = new,
                None => snapshot.files.retain(|(q, _)| q != p),
            }
        }
        let tmp = scratch();
        snapshot.restore(tmp.path());
        let clock = ManualClock::new(T0 + DAY);
        let log = Log::open(tmp.path(), log_config(&clock))
            .unwrap_or_else(|e| panic!("indexes {name}, clean {clean}: open failed: {e}"));
        let s = TopicOf {
            log: &log,
            topic: "t",
        };
        let (reads, lookups) = index_answers(&s, &fx.written);
        assert_eq!(
            reads, fx.written,
            "indexes {name}, clean {clean}: reads from every offset"
        );
        for (ts, got) in lookups {
            assert_eq!(
                got,
                first_at_or_after(&fx.written, ts),
                "indexes {name}, clean {clean}: timestamp {ts}"
            );
        }
        let expect = Expect {
            written: &fx.written,
            damaged: BTreeSet::new(),
            file: PathBuf::new(),
            bytes: (0, 0),
            reason_ok: Box::new(|_: &CorruptReason| false),
            benign_ok: false,
            end: fx.end,
        };
        let seen = examine(&s, &expect);
        assert!(seen.is_ok(), "indexes {name}, clean {clean}: {seen:?}");
        log.close().unwrap();
        // Every segment has both indexes again, each a whole number of entries.
        let dir = tmp.path().join(&fx.part);
        for entry in fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "log") {
                for (ext, size) in [("index", 8), ("timeindex", 12)] {
                    let len = fs::metadata(p.with_extension(ext)).map(|m| m.len());
                    assert!(
                        len.as_ref().is_ok_and(|l| l % size == 0),
                        "indexes {name}, clean {clean}: {} .{ext} is {len:?}",
                        p.display()
                    );
                }
            }
        }
    }
}

/// Pseudo-random bytes, the same for the same seed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn is_time_index(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "timeindex")
}

/// Every index file deleted: rebuilt from the logs.
#[test]
fn index_files_deleted() {
    index_case("deleted", |_, _| None);
}

/// Every index file cut to an odd length (a partial entry): rebuilt.
#[test]
fn index_files_cut_to_an_odd_length() {
    index_case("odd length", |_, old| {
        let mut b = old.to_vec();
        if b.len() > 3 {
            b.truncate(b.len() - 3);
        } else {
            b.extend_from_slice(&[1, 2, 3]);
        }
        Some(b)
    });
}

/// Every index file zeroed (at least two entries' worth): zero entries are
/// never taken for real ones beyond the first; lookups stay right.
#[test]
fn index_files_zeroed() {
    index_case("zeroed", |_, old| Some(vec![0; old.len().max(24)]));
}

/// Every index file replaced by random bytes.
#[test]
fn index_files_random() {
    index_case("random", |p, old| {
        Some(noise(old.len() as u64 + p.as_os_str().len() as u64, 96))
    });
}

/// Entries whose positions (offset index) or offsets (time index) point far
/// past the end of the log.
#[test]
fn index_entries_pointing_past_eof() {
    index_case("past eof", |p, _| {
        let mut b = Vec::new();
        for i in 1..4u32 {
            if is_time_index(p) {
                b.extend_from_slice(&(T0 + i64::from(i)).to_be_bytes());
            } else {
                b.extend_from_slice(&i.to_be_bytes());
            }
            b.extend_from_slice(&(i * 1_000_000).to_be_bytes());
        }
        Some(b)
    });
}

/// Offset-index entries that rise and stay inside the log but land in the
/// middle of batches: a lookup must not start decoding there.
#[test]
fn index_entries_inside_batches() {
    index_case("inside batches", |p, old| {
        if is_time_index(p) {
            return Some(old.to_vec());
        }
        let mut b = Vec::new();
        for i in 0..3u32 {
            b.extend_from_slice(&i.to_be_bytes());
            b.extend_from_slice(&(i * 5 + 3).to_be_bytes());
        }
        Some(b)
    });
}

/// A time index whose timestamps fall (entries in reverse order, or two
/// made-up falling entries): rebuilt, lookups by timestamp stay right.
#[test]
fn time_index_not_monotonic() {
    index_case("falling time index", |p, old| {
        if !is_time_index(p) {
            return Some(old.to_vec());
        }
        let entries: Vec<&[u8]> = old.chunks(12).collect();
        if entries.len() >= 2 {
            Some(entries.into_iter().rev().flatten().copied().collect())
        } else {
            let mut b = Vec::new();
            b.extend_from_slice(&(T0 + 1_000_000).to_be_bytes());
            b.extend_from_slice(&0u32.to_be_bytes());
            b.extend_from_slice(&T0.to_be_bytes());
            b.extend_from_slice(&0u32.to_be_bytes());
            Some(b)
        }
    });
}

/// Time indexes that lost their last entries (cut to a whole entry shorter:
/// still well formed, rising, inside the segment). The checkpoint records each
/// sealed segment's largest timestamp, which the last entry must hold: the
/// index is rebuilt, and lookups by timestamp (which pick a segment by its
/// largest timestamp) stay right.
#[test]
fn time_index_that_lost_its_last_entries() {
    index_case("time index lost its last entry", |p, old| {
        if !is_time_index(p) {
            return Some(old.to_vec());
        }
        Some(old.get(..old.len().saturating_sub(12)).unwrap_or(&[]).to_vec())
    });
}

/// Index files without their `.log` (at a base past the end and at a base
/// inside an existing segment), beside intact indexes: removed at open, no
/// segment appears for them, every answer unchanged.
#[test]
fn orphaned_index_files_are_removed() {
    for clean in [true, false] {
        let fx = index_fixture(clean);
        let logs = fx.logs();
        let second = logs[1]
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap();
        let mut snapshot = fx.snapshot.clone();
        let mut orphans = Vec::new();
        for base in [99_999u64, second + 1] {
            for (ext, bytes) in [("index", vec![0u8; 16]), ("timeindex", noise(base, 24))] {
                let rel = fx.part.join(format!("{base:020}.{ext}"));
                snapshot.files.push((rel.clone(), bytes));
                orphans.push(rel);
            }
        }
        let tmp = scratch();
        snapshot.restore(tmp.path());
        let clock = ManualClock::new(T0 + DAY);
        let log = Log::open(tmp.path(), log_config(&clock)).unwrap();
        let info = log.describe("t").unwrap().partitions[0].clone();
        assert_eq!(
            info.segments,
            logs.len(),
            "clean {clean}: no segment made up from an orphan"
        );
        let s = TopicOf {
            log: &log,
            topic: "t",
        };
        let (reads, lookups) = index_answers(&s, &fx.written);
        assert_eq!(reads, fx.written, "clean {clean}");
        for (ts, got) in lookups {
            assert_eq!(
                got,
                first_at_or_after(&fx.written, ts),
                "clean {clean}: timestamp {ts}"
            );
        }
        assert_eq!(s.append(7).unwrap().offset, 150);
        log.close().unwrap();
        for rel in &orphans {
            assert!(
                !tmp.path().join(rel).exists(),
                "clean {clean}: {} is removed",
                rel.display()
            );
        }
    }
}

/// The fixture's own answers agree with the model (so the damaged cases above
/// compare against something right).
#[test]
fn index_fixture_answers_match_the_model() {
    let fx = index_fixture(true);
    let tmp = scratch();
    fx.snapshot.restore(tmp.path());
    let clock = ManualClock::new(T0 + DAY);
    let log = Log::open(tmp.path(), log_config(&clock)).unwrap();
    let s = TopicOf {
        log: &log,
        topic: "t",
    };
    let (reads, lookups) = index_answers(&s, &fx.written);
    assert_eq!(reads, fx.written);
    for (ts, got) in lookups {
        assert_eq!(got, first_at_or_after(&fx.written, ts), "timestamp {ts}");
    }
    log.close().unwrap();
}

// ---------------------------------------------------------------------------
// Leftovers of interrupted atomic replaces and compactions.

/// A compacted topic caught at two instants, as a process killed there leaves
/// it (images taken while the log is open): before a compaction pass and just
/// after it.
struct CompactionImages {
    before: Snapshot,
    after: Snapshot,
    read_before: Vec<Rec>,
    read_after: Vec<Rec>,
    /// Relative paths (without suffix) of the segments the pass rewrote, by base.
    rewritten: Vec<PathBuf>,
}

fn compaction_images() -> CompactionImages {
    let tmp = scratch();
    let clock = ManualClock::new(T0);
    let log = Log::open(tmp.path(), log_config(&clock)).unwrap();
    log.create_topic(
        "c",
        TopicConfig::default()
            .cleanup(Cleanup::Compact)
            .segment_bytes(512)
            .min_cleanable_dirty_ratio(0.0)
            .min_compaction_lag_ms(0),
    )
    .unwrap();
    for b in 0..30u64 {
        let batch: Vec<Record> = (0..3)
            .map(|k| {
                let n = b * 3 + k;
                let key = if k == 0 {
                    format!("hot{}", n % 3)
                } else {
                    format!("k{n}")
                };
                Record::new(format!("v{n}"))
                    .with_key(key)
                    .with_timestamp(T0 + n as i64)
            })
            .collect();
        log.producer().send_batch("c", batch).unwrap();
    }
    clock.advance(DAY);
    let read_before = read_all_topic(&log, "c");
    let before = Snapshot::take(tmp.path());
    let report = log.run_maintenance().unwrap();
    assert!(report.segments_compacted >= 3, "{report:?}");
    let read_after = read_all_topic(&log, "c");
    assert_ne!(read_before, read_after);
    let after = Snapshot::take(tmp.path());
    log.close().unwrap();
    let part = Path::new("c-0");
    let rewritten = before
        .logs_in(part)
        .into_iter()
        .filter(|p| {
            after
                .files
                .iter()
                .any(|(q, b)| q == p && b.as_slice() != before.file(p))
        })
        .map(|p| p.with_extension(""))
        .collect::<Vec<_>>();
    assert!(rewritten.len() >= 3, "{rewritten:?}");
    CompactionImages {
        before,
        after,
        read_before,
        read_after,
        rewritten,
    }
}

/// `stem` + `.log` / `.index` / `.timeindex`.
fn segment_files(stem: &Path) -> [PathBuf; 3] {
    ["log", "index", "timeindex"].map(|e| stem.with_extension(e))
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Opens `snapshot` twice and checks that it reads as `want`, that no
/// temporary, `.cleaned`, `.swap` or `.deleted` file is left anywhere, and
/// that the second open changes nothing.
fn assert_recovers_to(what: &str, snapshot: &Snapshot, want: &[Rec]) {
    let tmp = scratch();
    snapshot.restore(tmp.path());
    let clock = ManualClock::new(T0 + 2 * DAY);
    for round in 0..2 {
        let log = Log::open(tmp.path(), log_config(&clock)).unwrap_or_else(|e| panic!("{what}: {e}"));
        match try_read_all_topic(&log, "c") {
            Ok(got) => assert_eq!(got, want, "{what}, open {round}"),
            Err(e) => panic!("{what}, open {round}: reading everything failed: {e}"),
        }
        log.close().unwrap();
        let left: Vec<PathBuf> = Snapshot::take(tmp.path())
            .files
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| {
                let n = p.to_string_lossy();
                n.contains(".tmp-")
                    || n.ends_with(".cleaned")
                    || n.ends_with(".swap")
                    || n.ends_with(".deleted")
            })
            .collect();
        assert!(left.is_empty(), "{what}: left behind {left:?}");
    }
}

/// Leftover `.tmp-*` files of interrupted atomic replaces (topic metadata, a
/// checkpoint, a rebuilt index), garbage inside: deleted at open, data intact.
#[test]
fn leftover_temp_files_are_deleted() {
    let img = compaction_images();
    let mut s = img.before.clone();
    s.files
        .push((PathBuf::from("tidelog.topics.tmp-00000000000000a1"), noise(1, 50)));
    s.files.push((
        PathBuf::from("c-0/tidelog.checkpoint.tmp-00000000000000b2"),
        noise(2, 70),
    ));
    let stem = &img.rewritten[0];
    s.files.push((
        with_suffix(&stem.with_extension("index"), ".tmp-00000000000000c3"),
        vec![0; 40],
    ));
    s.files.push((
        PathBuf::from(".clean-shutdown.tmp-00000000000000d4"),
        b"{".to_vec(),
    ));
    assert_recovers_to("temp files", &s, &img.read_before);
}

/// Killed while writing the cleaned segments (before the commit point): only
/// `.cleaned` files, the last one cut short. Deleted at open; the log reads as
/// before the pass.
#[test]
fn leftover_cleaned_files_are_deleted() {
    let img = compaction_images();
    let mut s = img.before.clone();
    for (i, stem) in img.rewritten.iter().enumerate() {
        for f in segment_files(stem) {
            let mut bytes = img.after.file(&f).to_vec();
            if i + 1 == img.rewritten.len() {
                bytes.truncate(bytes.len() / 2);
            }
            s.files.push((with_suffix(&f, ".cleaned"), bytes));
        }
    }
    assert_recovers_to(".cleaned only", &s, &img.read_before);
}

/// Killed during the first phase of the swap (renaming `.cleaned` to `.swap`,
/// highest base first): the highest segments are `.swap`, the lowest still
/// `.cleaned`. The interrupted swap is discarded whole; the log reads as
/// before the pass.
#[test]
fn leftover_swap_files_of_an_unfinished_first_phase_are_discarded() {
    let img = compaction_images();
    let mut s = img.before.clone();
    let n = img.rewritten.len();
    for (i, stem) in img.rewritten.iter().enumerate() {
        let suffix = if i == 0 { ".cleaned" } else { ".swap" };
        for f in segment_files(stem) {
            s.files
                .push((with_suffix(&f, suffix), img.after.file(&f).to_vec()));
        }
    }
    assert!(n >= 2);
    assert_recovers_to("first phase interrupted", &s, &img.read_before);
}

/// Killed after the commit point (every cleaned segment is `.swap`, none
/// renamed into place yet): the swaps are completed; the log reads as after the
/// pass.
#[test]
fn leftover_swap_files_after_the_commit_point_are_completed() {
    let img = compaction_images();
    let mut s = img.before.clone();
    for stem in &img.rewritten {
        for f in segment_files(stem) {
            s.files
                .push((with_suffix(&f, ".swap"), img.after.file(&f).to_vec()));
        }
    }
    assert_recovers_to("all .swap", &s, &img.read_after);
}

/// Killed during the second phase (renaming `.swap` over the final names,
/// lowest base first): the lowest segment is already in place, the others are
/// still `.swap`. The rest is completed; the log reads as after the pass.
#[test]
fn leftover_swap_files_of_an_unfinished_second_phase_are_completed() {
    let img = compaction_images();
    let mut s = img.before.clone();
    for (i, stem) in img.rewritten.iter().enumerate() {
        for f in segment_files(stem) {
            let bytes = img.after.file(&f).to_vec();
            if i == 0 {
                *s.file_mut(&f) = bytes;
            } else {
                s.files.push((with_suffix(&f, ".swap"), bytes));
            }
        }
    }
    assert_recovers_to("second phase interrupted", &s, &img.read_after);
}

/// `.deleted` files (segments retired by a swap or by retention, not yet
/// unlinked) holding the old, uncompacted bytes: deleted at open; what the
/// compaction removed does not come back.
#[test]
fn leftover_deleted_files_are_removed_and_stay_gone() {
    let img = compaction_images();
    let mut s = img.after.clone();
    for stem in &img.rewritten {
        for f in segment_files(stem) {
            s.files
                .push((with_suffix(&f, ".deleted"), img.before.file(&f).to_vec()));
        }
    }
    assert_recovers_to(".deleted", &s, &img.read_after);
}

/// A `.swap` with no `.cleaned` left whose bytes are not a valid segment (a
/// damaged or foreign file): only a valid `.swap` is completed (§2.1); the
/// valid segment it would replace stays, the log reads as before.
#[test]
fn leftover_invalid_swap_is_not_completed() {
    let img = compaction_images();
    let mut s = img.before.clone();
    let stem = &img.rewritten[0];
    let log = stem.with_extension("log");
    let mut bytes = img.after.file(&log).to_vec();
    for b in bytes.iter_mut().skip(30).take(40) {
        *b ^= 0x5a;
    }
    s.files.push((with_suffix(&log, ".swap"), bytes));
    assert_recovers_to("invalid .swap", &s, &img.read_before);
}

// ---------------------------------------------------------------------------
// Metadata: checkpoint, topic metadata, committed offsets, lock; tiny segments.

/// Applies `damage` to the partition checkpoint of an index fixture of 40
/// records in a few segments (closed cleanly and dropped) and checks the documented outcome: open succeeds,
/// nothing is trusted without a scan, every record reads back, the end offset
/// holds, appends work.
fn checkpoint_case(fixtures: &[Fixture], name: &str, damage: &dyn Fn(&mut Snapshot, &Path)) {
    for (i, fx) in fixtures.iter().enumerate() {
        let cp = fx.part.join("tidelog.checkpoint");
        let mut snapshot = fx.snapshot.clone();
        damage(&mut snapshot, &cp);
        let outcome = check_snapshot(fx, &snapshot, |_| Expect {
            written: &fx.written,
            damaged: BTreeSet::new(),
            file: PathBuf::new(),
            bytes: (0, 0),
            reason_ok: Box::new(|_: &CorruptReason| false),
            benign_ok: false,
            end: fx.end,
        });
        assert_clean_outcome(&format!("checkpoint {name}, fixture {i}"), outcome, false);
    }
}

/// A bit flipped in every 7th byte of the checkpoint (each its own case), after
/// a clean close and after a drop: its CRC fails, every segment is scanned,
/// nothing is lost.
#[test]
fn damaged_checkpoint_bit_flips() {
    let fixtures = [index_fixture_of(40, true), index_fixture_of(40, false)];
    let len = fixtures[0]
        .snapshot
        .file(&fixtures[0].part.join("tidelog.checkpoint"))
        .len();
    for (position, bit) in flip_plan(len as u64, 7) {
        checkpoint_case(&fixtures, &format!("byte {position} bit {bit}"), &|s, cp| {
            flip(s.file_mut(cp), position, bit)
        });
    }
}

/// The checkpoint truncated, emptied, zeroed, replaced by noise or deleted,
/// after a clean close and after a drop: every segment is scanned, nothing is
/// lost.
#[test]
fn damaged_checkpoint_cut_zeroed_garbage_or_missing() {
    let fixtures = [index_fixture_of(40, true), index_fixture_of(40, false)];
    checkpoint_case(&fixtures, "cut to 30 bytes", &|s, cp| s.file_mut(cp).truncate(30));
    checkpoint_case(&fixtures, "empty", &|s, cp| s.file_mut(cp).clear());
    checkpoint_case(&fixtures, "zeroed", &|s, cp| s.file_mut(cp).fill(0));
    checkpoint_case(&fixtures, "noise", &|s, cp| *s.file_mut(cp) = noise(9, 200));
    checkpoint_case(&fixtures, "deleted", &|s, cp| s.files.retain(|(p, _)| p != cp));
}

/// `delete_records` moved the start offset inside the first segment, then the
/// checkpoint is damaged: the start comes from its second copy
/// (`tidelog.start`), and the removed records do not come back
/// (RELIABILITY.md §1).
#[test]
fn damaged_checkpoint_keeps_deleted_records_deleted() {
    let tmp = scratch();
    let clock = ManualClock::new(T0);
    let log = Log::open(tmp.path(), log_config(&clock)).unwrap();
    log.create_topic("t", TopicConfig::default()).unwrap();
    for n in 0..20 {
        log.producer().send("t", full_record(n)).unwrap();
    }
    log.delete_records("t", 0, 5).unwrap();
    log.close().unwrap();
    let cp = tmp.path().join("t-0/tidelog.checkpoint");
    let mut bytes = fs::read(&cp).unwrap();
    flip(&mut bytes, 10, 0);
    fs::write(&cp, bytes).unwrap();
    let log = Log::open(tmp.path(), log_config(&clock)).unwrap();
    let info = log.describe("t").unwrap().partitions[0].clone();
    assert_eq!((info.start_offset, info.end_offset), (5, 20));
    assert!(matches!(
        log.fetch("t", 0, 0, 10),
        Err(Error::OffsetOutOfRange { .. })
    ));
    log.close().unwrap();

    // The copy damaged instead (the checkpoint intact): the start holds, and
    // open writes a fresh copy, so a later damaged checkpoint is covered again.
    let copy = tmp.path().join("t-0/tidelog.start");
    let pristine = fs::read(&copy).unwrap();
    let mut bytes = pristine.clone();
    flip(&mut bytes, 9, 3);
    fs::write(&copy, bytes).unwrap();
    let log = Log::open(tmp.path(), log_config(&clock)).unwrap();
    assert_eq!(log.describe("t").unwrap().partitions[0].start_offset, 5);
    log.close().unwrap();
    assert_eq!(fs::read(&copy).unwrap(), pristine);

    // Once the start is a segment boundary again (everything below it
    // deleted), the copy is not needed and goes.
    let log = Log::open(tmp.path(), log_config(&clock)).unwrap();
    log.delete_records("t", 0, 20).unwrap();
    assert!(!copy.exists());
    log.close().unwrap();
}

/// Two topics with data, closed cleanly.
fn two_topics() -> (tempfile::TempDir, Vec<Rec>, Vec<Rec>) {
    let tmp = scratch();
    let clock = ManualClock::new(T0);
    let log = Log::open(tmp.path(), log_config(&clock)).unwrap();
    log.create_topic("a", TopicConfig::default().segment_bytes(1024))
        .unwrap();
    log.create_topic("b", TopicConfig::default().partitions(2).retention_ms(None))
        .unwrap();
    for n in 0..40 {
        log.producer().send_to("a", 0, varied(n, false)).unwrap();
        log.producer()
            .send_to("b", (n % 2) as u32, full_record(n))
            .unwrap();
    }
    let (a, b) = (read_all_topic(&log, "a"), read_all_topic(&log, "b"));
    log.close().unwrap();
    (tmp, a, b)
}

/// The files of every partition folder (what a failed open must not touch).
fn partition_files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    Snapshot::take(root)
        .files
        .into_iter()
        .filter(|(p, _)| p.components().count() > 1)
        .collect()
}

/// Topic metadata (`tidelog.topics`) damaged: a bit flipped in every byte (each
/// its own case), cut short, emptied, zeroed or replaced by noise. Its CRC-32
/// catches every case: `Log::open` fails with `Corrupt` naming the file, and
/// it changes nothing in any partition folder (a folder of no listed topic is
/// never removed over bad metadata); with the file restored, every record of
/// every topic is back.
#[test]
fn damaged_topic_metadata_fails_open_and_destroys_nothing() {
    let (tmp, a, b) = two_topics();
    let root = tmp.path();
    let topics = root.join("tidelog.topics");
    let pristine = fs::read(&topics).unwrap();
    let folders = partition_files(root);
    let mut damages: Vec<(String, Vec<u8>)> = flip_plan(pristine.len() as u64, 1)
        .into_iter()
        .map(|(i, bit)| {
            let mut b = pristine.clone();
            flip(&mut b, i, bit);
            (format!("byte {i} bit {bit}"), b)
        })
        .collect();
    damages.push(("cut".into(), pristine[..pristine.len() / 2].to_vec()));
    damages.push(("empty".into(), Vec::new()));
    damages.push(("zeroed".into(), vec![0; pristine.len()]));
    damages.push(("noise".into(), noise(3, pristine.len())));
    for (name, bytes) in damages {
        fs::write(&topics, &bytes).unwrap();
        let clock = ManualClock::new(T0 + DAY);
        let opened = catch_unwind(AssertUnwindSafe(|| Log::open(root, log_config(&clock))))
            .unwrap_or_else(|_| panic!("{name}: panic"));
        match opened {
            Err(Error::Corrupt { path, .. }) => assert_eq!(path, topics, "{name}"),
            Err(e) => panic!("{name}: expected Corrupt naming the topics file, got {e}"),
            Ok(log) => panic!("{name}: opened over damaged topic metadata: {:?}", log.topics()),
        }
        assert!(
            partition_files(root) == folders,
            "{name}: partition folders changed"
        );
    }
    fs::write(&topics, &pristine).unwrap();
    let clock = ManualClock::new(T0 + DAY);
    let log = Log::open(root, log_config(&clock)).unwrap();
    assert_eq!(log.topics(), ["a", "b"]);
    assert_eq!(read_all_topic(&log, "a"), a);
    assert_eq!(read_all_topic(&log, "b"), b);
    log.close().unwrap();
}

/// Commits of group "g" on t-0 at offsets 3, 7 and 12, one batch each, then a
/// clean close or a drop.
fn offsets_fixture(clean: bool) -> Fixture {
    let tmp = scratch();
    let clock = ManualClock::new(T0);
    let log = Log::open(tmp.path(), log_config(&clock)).unwrap();
    log.create_topic("t", TopicConfig::default()).unwrap();
    for n in 0..20 {
        log.producer().send("t", full_record(n)).unwrap();
    }
    let mut c = log.consumer("g");
    c.assign(&[("t", 0)]).unwrap();
    for at in [3, 7, 12] {
        c.commit_offsets(&[("t", 0, at)]).unwrap();
    }
    drop(c);
    if clean {
        log.close().unwrap();
    }
    drop(log);
    Fixture {
        snapshot: Snapshot::take(tmp.path()),
        part: PathBuf::from("__consumer_offsets-0"),
        written: Vec::new(),
        end: 3,
        how: Opener::Log,
    }
}

/// Opens `snapshot` and returns the committed offset of "g" on t-0 and the
/// offset its first poll starts at.
fn committed_after(snapshot: &Snapshot) -> Result<(Option<u64>, Option<u64>), String> {
    let tmp = scratch();
    snapshot.restore(tmp.path());
    catch_unwind(AssertUnwindSafe(|| {
        let clock = ManualClock::new(T0 + DAY);
        let log = Log::open(tmp.path(), log_config(&clock)).map_err(|e| e.to_string())?;
        let mut c = log.consumer("g");
        c.assign(&[("t", 0)]).map_err(|e| e.to_string())?;
        let committed = c.committed("t", 0).map_err(|e| e.to_string())?;
        let first = c
            .poll(std::time::Duration::ZERO)
            .map_err(|e| e.to_string())?
            .first()
            .map(|r| r.offset());
        drop(c);
        log.close().map_err(|e| e.to_string())?;
        Ok((committed, first))
    }))
    .unwrap_or_else(|_| Err("panic".into()))
}

/// Flips a bit in every 3rd byte (every bit of every byte in full mode) of the
/// fields `include` accepts in one commit's batch in `__consumer_offsets-0`,
/// and checks where the group resumes: at one of the commits in `want`. Never
/// `Earliest`, never no commit at all.
fn commit_case(clean: bool, batch: usize, want: &[u64], include: fn(Field) -> bool) -> Vec<String> {
    let fx = offsets_fixture(clean);
    let target = fx.logs()[0].clone();
    let layout = spans(fx.snapshot.file(&target));
    assert_eq!(layout.len(), 3, "one batch per commit");
    let span = &layout[batch];
    let mut failures = Vec::new();
    let mut tried = 0;
    for (rel, bit) in flip_plan(span.size, 3)
        .into_iter()
        .filter(|(r, _)| include(field_at(*r)))
    {
        let mut snapshot = fx.snapshot.clone();
        flip(snapshot.file_mut(&target), span.position + rel, bit);
        tried += 1;
        match committed_after(&snapshot) {
            Ok((Some(c), Some(first))) if want.contains(&c) && first == c => {}
            other => failures.push(format!(
                "clean {clean}, commit batch {batch}, byte {rel} bit {bit} ({:?}): \
                 expected one of {want:?}, got {other:?}",
                field_at(rel)
            )),
        }
    }
    assert!(tried > 0);
    failures
}

/// A damaged middle commit (7), after a clean close: the later, intact commit
/// (12) stands (a flip in the leader epoch leaves 7 valid, and 12 still
/// wins). Every field but the offset and length ones.
#[test]
fn damaged_middle_commit_keeps_the_latest_valid_commit_after_close() {
    let failures = commit_case(true, 1, &[12], |f| !offset_or_length(f));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same over the offset and length fields of the middle commit's batch.
#[test]
fn damaged_middle_commit_offset_fields_after_close() {
    let failures = commit_case(true, 1, &[12], offset_or_length);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A damaged last commit (12): the group keeps its previous valid commit (7),
/// or 12 where the flip left that commit's key and value readable; after a
/// clean close and after a drop without close.
#[test]
fn damaged_last_commit_keeps_the_previous_commit() {
    let mut failures = commit_case(true, 2, &[7, 12], |_| true);
    failures.extend(commit_case(false, 2, &[7, 12], |_| true));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A damaged middle commit (7) after a drop without close: commit 12 was
/// fsynced before it returned (commits are durable in every mode), so it
/// stands; a bit flip in an older batch must not take it along.
#[test]
fn damaged_middle_commit_keeps_the_latest_valid_commit_after_a_drop() {
    let failures = commit_case(false, 1, &[12], |_| true);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// With `Durability::Always` every acknowledged batch was fsynced: after a drop
/// without close, a CRC flip in the fifth of thirty batches of the active
/// segment is damage at rest (§2.3: in `Always`, bytes more than W before the
/// end are synced). Offset 4 reads as `Corrupt`, the 29 others read back, the
/// end offset stays 30.
#[test]
fn always_durability_damage_after_a_drop_is_quarantined() {
    let tmp = scratch();
    let clock = ManualClock::new(T0);
    let log = Log::open(
        tmp.path(),
        log_config(&clock).durability(tidelog::Durability::Always),
    )
    .unwrap();
    log.create_topic("t", TopicConfig::default().segment_bytes(1 << 20))
        .unwrap();
    let mut written = Vec::new();
    for n in 0..30 {
        let r = varied(n, false);
        let m = log.producer().send_to("t", 0, r.clone()).unwrap();
        written.push(Rec::of(m.offset, &r));
    }
    drop(log);
    let fx = Fixture {
        snapshot: Snapshot::take(tmp.path()),
        part: PathBuf::from("t-0"),
        written,
        end: 30,
        how: Opener::Log,
    };
    let target = fx.logs()[0].clone();
    let span = spans(fx.snapshot.file(&target))[4].clone();
    let mut snapshot = fx.snapshot.clone();
    flip(snapshot.file_mut(&target), span.position + 18, 2);
    let outcome = check_snapshot(&fx, &snapshot, |root| Expect {
        written: &fx.written,
        damaged: BTreeSet::from([4]),
        file: root.join(&target),
        bytes: (span.position, span.position + span.size),
        reason_ok: Box::new(|r: &CorruptReason| {
            matches!(r, CorruptReason::CrcMismatch { .. }) || is_quarantine_reason(r)
        }),
        benign_ok: false,
        end: 30,
    });
    assert_clean_outcome("Always, dropped", outcome, true);
}

/// A `LOCK` file left by a process that died (the kernel dropped its lock; the
/// file and its content stay): open succeeds and recovers, after a clean close
/// and after a drop; the lock still excludes a second open.
#[test]
fn stale_lock_file_does_not_block_open() {
    for clean in [true, false] {
        let fx = os_log_fixture(clean);
        let mut snapshot = fx.snapshot.clone();
        snapshot.files.retain(|(p, _)| p != Path::new("LOCK"));
        snapshot
            .files
            .push((PathBuf::from("LOCK"), b"pid 4194303\n".to_vec()));
        let tmp = scratch();
        snapshot.restore(tmp.path());
        let clock = ManualClock::new(T0 + DAY);
        let log = Log::open(tmp.path(), log_config(&clock)).unwrap_or_else(|e| panic!("clean {clean}: {e}"));
        assert_eq!(read_all_topic(&log, "t"), fx.written, "clean {clean}");
        assert!(matches!(
            Log::open(tmp.path(), log_config(&clock)),
            Err(Error::Locked { .. })
        ));
        log.close().unwrap();
    }
}

/// Segments holding exactly one record (commitlog #11: a first index entry
/// (0, 0) is a real entry, not the end of the index): three segments of one
/// record each, every index rewritten to hold the single entry (0, 0)
/// (relative offset 0 at position 0) and one time entry. After a clean close
/// and after a drop, every record reads back, lookups by timestamp are right,
/// the end offset is 3 and the next append gets offset 3.
#[test]
fn segments_of_exactly_one_record() {
    for clean in [true, false] {
        let tmp = scratch();
        let config = engine_config();
        let (log, _) = engine_open(tmp.path(), config).unwrap();
        let mut written = Vec::new();
        for n in 0..3 {
            let r = full_record(n);
            let a = log.append_records(std::slice::from_ref(&r)).unwrap();
            written.push(Rec::of(a.base_offset, &r));
            if n < 2 {
                log.roll().unwrap();
            }
        }
        if clean {
            log.close().unwrap();
        }
        drop(log);
        for base in 0..3u64 {
            let mut index = Vec::new();
            index.extend_from_slice(&0u32.to_be_bytes());
            index.extend_from_slice(&0u32.to_be_bytes());
            fs::write(tmp.path().join(format!("{base:020}.index")), index).unwrap();
            let mut time = Vec::new();
            time.extend_from_slice(&written[base as usize].timestamp.to_be_bytes());
            time.extend_from_slice(&0u32.to_be_bytes());
            fs::write(tmp.path().join(format!("{base:020}.timeindex")), time).unwrap();
        }
        for round in 0..2 {
            let (log, _) = engine_open(tmp.path(), config).unwrap();
            let s = Engine(log);
            assert_eq!(s.end_offset(), 3 + round, "clean {clean}, open {round}");
            for w in &written {
                assert_eq!(&s.read(w.offset, 1).unwrap()[0], w, "clean {clean}");
                assert_eq!(s.offset_for_timestamp(w.timestamp).unwrap(), Some(w.offset));
            }
            let appended = s.append(3).unwrap();
            assert_eq!(
                appended.offset,
                3 + round,
                "clean {clean}: appends continue after the last record"
            );
            assert_eq!(s.read(appended.offset, 1).unwrap()[0], appended);
            if round == 0 {
                written.push(appended);
            }
            s.0.close().unwrap();
        }
    }
}
