//! Entry points shared by the cargo-fuzz targets in `fuzz/` and by the test
//! that replays their corpora (`tests/fuzz_corpus.rs`).
//!
//! Each `pub fn` takes arbitrary bytes and panics only when tidelog breaks a
//! property (RELIABILITY.md §3, S6); bad input is never a panic. A fuzz harness
//! panics by design on a property violation, so the `assert!`s and `panic!`s
//! below are the point of this module, not error handling.
//!
//! - [`decode_batch`]: the RecordBatch v2 codec over arbitrary bytes: header,
//!   validation and decoding agree; a decoded batch re-encodes to the same bytes
//!   whenever it is in the encoder's canonical form, and to an equivalent,
//!   stable batch otherwise; the same bytes read as a recipe of records round-trip
//!   through [`crate::batch::encode_batch`].
//! - [`load_index`]: arbitrary `.index`/`.timeindex` bytes beside a valid log:
//!   open succeeds, every record and every lookup by offset or timestamp gives
//!   the written answer, appends and a reopen work, and retention by time
//!   deletes no segment that has not truly expired.
//! - [`recover_dir`]: a generated partition directory damaged by flips, cuts,
//!   zero runs, garbage, stray, misnamed, copied and deleted files: open returns
//!   a `Result`, every record read is a written one at its offset, byte for byte
//!   (damage reads as `Error::Corrupt`), appends work and a second open loses
//!   nothing the first one returned.
//! - [`decode_topics`], [`decode_checkpoint`], [`decode_offset_commit`]: the
//!   metadata decoders: decode, re-encode, decode again gives the same value, and
//!   the same bytes when the input was in canonical form.
//!
//! [`seeds`] builds the seed corpora (`fuzz/README.md` says how to write them).
//!
//! Scratch directories live under [`std::env::temp_dir`] (set `TMPDIR` to a
//! tmpfs such as `/dev/shm` to fuzz faster) and are removed after each input.

use crate::batch::{self, BatchHeader, BatchRecord, EncodeError, Frame};
use crate::checkpoint::{Checkpoint, CleanClose, SealedSegment};
use crate::clock::ManualClock;
use crate::config::{Cleanup, TopicConfig};
use crate::error::Error;
use crate::partition::{PartitionConfig, PartitionLog};
use crate::record::Record;
use crate::vfs::{RealFs, Vfs};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

// ---------------------------------------------------------------------------------------
// decode_batch

/// The batch codec over arbitrary bytes. See the module docs.
///
/// # Panics
/// Only when the codec breaks a property.
pub fn decode_batch(data: &[u8]) {
    let buf = Bytes::copy_from_slice(data);
    let framed = batch::read_header(data);
    let validated = batch::validate_batch(data);
    let mut out = Vec::new();
    let decoded = batch::decode_batch(&buf, 0, &mut out);

    check_frame(data, &framed);
    match (&validated, &framed) {
        (Ok(h), Ok(Frame::Batch(f))) => assert_eq!(h, f, "validate_batch and read_header disagree"),
        (Ok(h), other) => panic!("validate_batch accepted {h:?} but read_header gave {other:?}"),
        (Err(_), _) => {}
    }
    match (&decoded, &validated) {
        (Ok(d), Ok(v)) => assert_eq!(d, v, "decode_batch and validate_batch disagree on the header"),
        (Ok(d), Err(e)) => panic!("decode_batch accepted {d:?}, validate_batch rejected it: {e}"),
        (Err(e), Ok(v)) => {
            assert!(out.is_empty(), "a failed decode must leave `out` as it was");
            assert!(
                v.compression() != 0 || v.base_offset < 0,
                "validate_batch accepted a batch decode_batch rejects ({e}) for no documented reason"
            );
        }
        (Err(_), Err(_)) => assert!(out.is_empty(), "a failed decode must leave `out` as it was"),
    }
    if let Ok(header) = decoded {
        check_decoded(&buf, &header, &out);
        // A later min_offset keeps exactly the records at or above it.
        let min =
            (header.base_offset as u64).saturating_add(u64::from(data.last().copied().unwrap_or(0) % 8));
        let mut some = Vec::new();
        match batch::decode_batch(&buf, min, &mut some) {
            Ok(h) => assert_eq!(h, header, "min_offset changed the header"),
            Err(e) => panic!("decoding again with min_offset {min} failed: {e}"),
        }
        let want: Vec<BatchRecord> = out.iter().filter(|r| r.offset >= min).cloned().collect();
        assert_eq!(
            some, want,
            "min_offset {min} must keep exactly the records at or above it"
        );
        if header.compression() == 0 {
            check_reencode(&buf, &header, &out);
        } else {
            check_recompress(&header, &out);
        }
    }
    walk_as_log(data);
    recipe_round_trip(data);
}

/// A decoded compressed batch: its records, encoded again and compressed
/// with the same codec, decode to the same records.
fn check_recompress(header: &BatchHeader, out: &[BatchRecord]) {
    let Some(codec) = crate::compression::Compression::from_codec(header.compression()) else {
        panic!("decode_batch accepted an unknown codec: {header:?}");
    };
    if out.is_empty() || header.is_log_append_time() {
        return;
    }
    let records: Vec<Record> = out
        .iter()
        .map(|r| Record {
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
            timestamp: Some(r.timestamp),
        })
        .collect();
    let base = out.first().map_or(0, |r| r.offset);
    let contiguous = out.iter().zip(base..).all(|(r, o)| r.offset == o);
    let mut again = Vec::new();
    let Ok(h) = batch::encode_batch(&mut again, base, &records, 0) else {
        return; // timestamps too far apart to re-encode: not a codec property
    };
    let h = match batch::compress_batch(&mut again, 0, h, codec) {
        Ok(h) => h,
        Err(e) => panic!("recompressing decoded records failed: {e}"),
    };
    let mut back = Vec::new();
    match batch::decode_batch(&Bytes::from(again), 0, &mut back) {
        Ok(b) => assert_eq!(b, h, "a recompressed batch's header"),
        Err(e) => panic!("a recompressed batch does not decode: {e}"),
    }
    if contiguous {
        assert_eq!(back, out, "records changed through compress and decode");
    }
}

/// What [`batch::read_header`] reports must be consistent with the bytes.
fn check_frame(data: &[u8], framed: &Result<Frame, batch::DecodeError>) {
    match framed {
        Ok(Frame::Incomplete { needed, available }) => {
            assert_eq!(
                *available,
                data.len() as u64,
                "Incomplete must report the bytes there"
            );
            assert!(*needed > *available, "Incomplete needs more than is there");
        }
        Ok(Frame::Batch(h)) => {
            assert!(h.size() <= data.len(), "a framed batch lies inside the buffer");
            assert!(
                h.batch_length >= 49,
                "batch length below the minimum was accepted"
            );
            assert_eq!(h.magic, 2, "magic other than 2 was accepted");
            assert!(
                h.partition_leader_epoch >= -1,
                "leader epoch below -1 was accepted"
            );
            assert!(
                h.base_offset
                    .checked_add(i64::from(h.last_offset_delta))
                    .and_then(|l| l.checked_add(1))
                    .is_some(),
                "an overflowing offset range was accepted"
            );
        }
        Err(e) => assert!(e.position < 61, "a header error points into the header"),
    }
}

/// Invariants of a successful decode.
fn check_decoded(buf: &Bytes, header: &BatchHeader, out: &[BatchRecord]) {
    let base = header.base_offset as u64;
    let last = header.last_offset() as u64;
    assert!(header.size() <= buf.len(), "decoded batch lies inside the buffer");
    if header.is_control() {
        assert!(out.is_empty(), "a control batch yields no records");
    } else {
        assert_eq!(
            out.len(),
            usize::try_from(header.records_count).unwrap_or(usize::MAX),
            "one record per recordsCount"
        );
    }
    let mut previous: Option<u64> = None;
    for r in out {
        assert!(
            r.offset >= base && r.offset <= last,
            "record offset outside the batch"
        );
        assert!(previous.is_none_or(|p| p < r.offset), "record offsets must rise");
        previous = Some(r.offset);
        if header.is_log_append_time() {
            assert_eq!(
                r.timestamp, header.max_timestamp,
                "LogAppendTime reads maxTimestamp"
            );
        }
    }
}

/// The record layout of a batch as stored, read by a walker independent of the
/// codec: what [`batch::encode_rewritten`] cannot reproduce.
#[derive(Debug)]
struct RawLayout {
    /// Every record attributes byte is 0.
    attributes_zero: bool,
    /// Every varint uses the fewest bytes.
    minimal_varints: bool,
    /// The stored timestamp delta of each record.
    timestamp_deltas: Vec<i64>,
}

/// Unsigned LEB128 of at most `max` bytes at `at`: (value, bytes, minimal).
fn leb128(bytes: &[u8], at: usize, max: usize) -> Option<(u64, usize, bool)> {
    let mut value: u64 = 0;
    for i in 0..max {
        let b = *bytes.get(at + i)?;
        value |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1, i == 0 || b != 0));
        }
    }
    None
}

fn zigzag_decode(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn raw_layout(batch: &[u8], count: usize) -> Option<RawLayout> {
    let mut layout = RawLayout {
        attributes_zero: true,
        minimal_varints: true,
        timestamp_deltas: Vec::with_capacity(count.min(batch.len() / 7)),
    };
    let mut at = 61usize;
    let varint = |layout: &mut RawLayout, at: &mut usize, max: usize| -> Option<i64> {
        let (u, n, minimal) = leb128(batch, *at, max)?;
        layout.minimal_varints &= minimal;
        *at += n;
        Some(zigzag_decode(u))
    };
    for _ in 0..count {
        let length = usize::try_from(varint(&mut layout, &mut at, 5)?).ok()?;
        let end = at.checked_add(length)?;
        if end > batch.len() {
            return None;
        }
        layout.attributes_zero &= *batch.get(at)? == 0;
        at += 1;
        let delta = varint(&mut layout, &mut at, 10)?;
        layout.timestamp_deltas.push(delta);
        varint(&mut layout, &mut at, 5)?; // offset delta
        for _ in 0..2 {
            let n = varint(&mut layout, &mut at, 5)?;
            if n >= 0 {
                at = at.checked_add(usize::try_from(n).ok()?)?;
            }
        }
        let headers = varint(&mut layout, &mut at, 5)?;
        for _ in 0..headers.max(0) {
            for _ in 0..2 {
                let n = varint(&mut layout, &mut at, 5)?;
                if n >= 0 {
                    at = at.checked_add(usize::try_from(n).ok()?)?;
                }
            }
            if at > end {
                return None;
            }
        }
        if at != end {
            return None;
        }
    }
    (at == batch.len()).then_some(layout)
}

/// Re-encodes a decoded batch with the same base offset, attributes, leader
/// epoch, producer fields, timestamps and records, and checks what
/// `encode_rewritten` guarantees: the same bytes for a batch in canonical form
/// (minimal varints, record attributes 0, baseTimestamp the first record's
/// timestamp or the delete horizon, maxTimestamp as the encoder computes it,
/// every record decoded); otherwise an equivalent batch that is a fixed point.
/// Returns whether the input was canonical.
fn check_reencode(buf: &Bytes, header: &BatchHeader, out: &[BatchRecord]) -> bool {
    let size = header.size();
    let original = buf.get(..size).unwrap_or_default();
    let count = usize::try_from(header.records_count).unwrap_or(0);
    let Some(layout) = raw_layout(original, count) else {
        panic!("the codec accepted a batch whose records an independent walk cannot parse: {header:?}");
    };
    let new_base = header
        .delete_horizon()
        .or(out.first().map(|r| r.timestamp))
        .unwrap_or(-1);
    let new_max = if header.is_log_append_time() || out.is_empty() {
        header.max_timestamp
    } else {
        out.iter().map(|r| r.timestamp).fold(-1, i64::max)
    };
    let deltas_kept = layout.timestamp_deltas.len() == out.len()
        && out
            .iter()
            .zip(&layout.timestamp_deltas)
            .all(|(r, d)| r.timestamp.checked_sub(new_base) == Some(*d));
    let canonical = out.len() == count
        && layout.attributes_zero
        && layout.minimal_varints
        && header.base_timestamp == new_base
        && header.max_timestamp == new_max
        && deltas_kept;

    let mut again = Vec::new();
    let rewritten = match batch::encode_rewritten(&mut again, header, out, header.delete_horizon()) {
        Ok(h) => h,
        Err(e) => {
            assert!(
                !canonical,
                "a canonical batch failed to re-encode ({e}): {header:?}"
            );
            assert!(
                matches!(e, EncodeError::TimestampOverflow | EncodeError::TooLarge { .. }),
                "re-encoding a decoded batch failed with {e:?}"
            );
            assert!(again.is_empty(), "a failed encode appends nothing");
            return canonical;
        }
    };
    if canonical {
        assert_eq!(
            again.as_slice(),
            original,
            "re-encoding a canonical batch changed its bytes: {header:?}"
        );
        assert_eq!(
            rewritten, *header,
            "re-encoding a canonical batch changed its header"
        );
    }
    let same_fields = BatchHeader {
        batch_length: header.batch_length,
        crc: header.crc,
        base_timestamp: header.base_timestamp,
        max_timestamp: header.max_timestamp,
        records_count: header.records_count,
        ..rewritten
    };
    assert_eq!(
        same_fields, *header,
        "re-encoding changed the base offset, epoch, attributes, offsets or producer fields"
    );
    assert_eq!(
        rewritten.records_count as usize,
        out.len(),
        "records count of the re-encoded batch"
    );
    assert_eq!(
        rewritten.base_timestamp, new_base,
        "baseTimestamp of the re-encoded batch"
    );
    assert_eq!(
        rewritten.max_timestamp, new_max,
        "maxTimestamp of the re-encoded batch"
    );
    assert_eq!(rewritten.size(), again.len(), "the re-encoded header's length");
    let again = Bytes::from(again);
    let mut back = Vec::new();
    match batch::decode_batch(&again, 0, &mut back) {
        Ok(h) => assert_eq!(h, rewritten, "the re-encoded batch decodes to another header"),
        Err(e) => panic!("the re-encoded batch does not decode: {e}"),
    }
    assert_eq!(back, out, "the re-encoded batch holds other records");
    let mut third = Vec::new();
    match batch::encode_rewritten(&mut third, &rewritten, &back, rewritten.delete_horizon()) {
        Ok(h) => assert_eq!(h, rewritten, "re-encoding is not a fixed point (header)"),
        Err(e) => panic!("re-encoding a re-encoded batch failed: {e}"),
    }
    assert_eq!(third, again.as_ref(), "re-encoding is not a fixed point (bytes)");
    canonical
}

/// Reads the bytes as a `.log` file would be read: batch after batch until the
/// first one that is not valid. Positions must advance and stay inside.
fn walk_as_log(data: &[u8]) {
    let mut position = 0usize;
    let mut expected = 0u64;
    while let Some(rest) = data.get(position..) {
        if rest.is_empty() {
            break;
        }
        let Ok(header) = batch::validate_batch(rest) else {
            break;
        };
        assert!(
            header.size() >= 61 && header.size() <= rest.len(),
            "batch size out of bounds"
        );
        let checked = crate::segment::check_batch(rest, expected, expected, None);
        if let Ok(h) = checked {
            assert_eq!(h, header, "check_batch and validate_batch disagree");
            expected = h.next_offset() as u64;
        }
        position += header.size();
    }
}

/// Reads `data` as a recipe of records, encodes them with `encode_batch`, and
/// checks that they decode back exactly and that the encoder's output is in
/// canonical form.
fn recipe_round_trip(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let count = usize::from(input.u8() % 12) + 1;
    let base = if flags & 1 != 0 {
        (i64::MAX as u64).saturating_sub(u64::from(input.u8()))
    } else {
        u64::from(input.u32())
    };
    let default_ts = if flags & 2 != 0 {
        input.i64()
    } else {
        1_700_000_000_000
    };
    let records: Vec<Record> = (0..count).map(|_| recipe_record(&mut input)).collect();
    let mut out = vec![0xA5u8; usize::from(flags >> 5)];
    let prefix = out.len();
    let header = match batch::encode_batch(&mut out, base, &records, default_ts) {
        Ok(h) => h,
        Err(e) => {
            assert_eq!(out.len(), prefix, "a failed encode appends nothing");
            assert!(
                matches!(
                    e,
                    EncodeError::TimestampOverflow | EncodeError::FieldTooLarge { field: "base offset" }
                ),
                "encode_batch refused small records: {e:?}"
            );
            return;
        }
    };
    assert!(
        out.get(..prefix).is_some_and(|p| p.iter().all(|b| *b == 0xA5)),
        "encode_batch touched bytes before its batch"
    );
    let bytes = Bytes::from(out).slice(prefix..);
    assert_eq!(header.size(), bytes.len(), "encoded size");
    match batch::validate_batch(&bytes) {
        Ok(h) => assert_eq!(h, header, "validate_batch of an encoded batch"),
        Err(e) => panic!("encode_batch wrote a batch validate_batch rejects: {e}"),
    }
    let mut decoded = Vec::new();
    match batch::decode_batch(&bytes, 0, &mut decoded) {
        Ok(h) => assert_eq!(h, header, "decode_batch of an encoded batch"),
        Err(e) => panic!("encode_batch wrote a batch decode_batch rejects: {e}"),
    }
    let want: Vec<BatchRecord> = (0u64..)
        .zip(&records)
        .map(|(i, r)| BatchRecord {
            offset: base + i,
            timestamp: r.timestamp.unwrap_or(default_ts),
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
        })
        .collect();
    assert_eq!(decoded, want, "records did not survive encode + decode");
    let canonical = check_reencode(&bytes, &header, &decoded);
    let max_ts = want.iter().map(|r| r.timestamp).max().unwrap_or(-1);
    if max_ts >= -1 {
        assert!(
            canonical,
            "encode_batch wrote a batch not in canonical form: {header:?}"
        );
    }
}

fn recipe_record(input: &mut Input<'_>) -> Record {
    let flags = input.u8();
    let bytes = |input: &mut Input<'_>| {
        let n = usize::from(input.u8() % 40);
        Bytes::copy_from_slice(input.bytes(n))
    };
    let key = (flags & 1 != 0).then(|| bytes(input));
    let value = (flags & 2 != 0).then(|| bytes(input));
    let mut headers = Vec::new();
    for _ in 0..(flags >> 2) % 4 {
        let k = String::from_utf8_lossy(&bytes(input)).into_owned();
        let v = (input.u8() & 1 != 0).then(|| bytes(input));
        headers.push((k, v));
    }
    let timestamp = match (flags >> 4) % 4 {
        0 => None,
        1 => Some(1_700_000_000_000 + i64::from(input.u16())),
        2 => Some(i64::from(input.u32() as i32)),
        _ => Some(input.i64()),
    };
    Record {
        key,
        value,
        headers,
        timestamp,
    }
}

// ---------------------------------------------------------------------------------------
// Inputs, scratch directories, generated partitions.

/// A cursor over fuzz input; reads past the end give zeros.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn i64(&mut self) -> i64 {
        ((u64::from(self.u32()) << 32) | u64::from(self.u32())) as i64
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        taken
    }
    fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// A fresh directory under the temp dir, removed on drop.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("tidelog-fuzz-{tag}-{}-{n}", std::process::id()));
        if path.exists() {
            let _ = RealFs.remove_dir_all(&path);
        }
        setup(RealFs.create_dir_all(&path), "creating a scratch directory");
        Scratch { path }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = RealFs.remove_dir_all(&self.path);
    }
}

/// A failure of the harness's own setup (not of the property under test).
fn setup<T, E: Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("fuzz harness setup failed while {what}: {e:?}"),
    }
}

const T0: i64 = 1_700_000_000_000;
/// The manual clock's time; records without a timestamp get it.
const CLOCK_MS: i64 = T0 + 100_000;
/// Records whose value is itself a valid batch claiming the record's own offset.
const NESTED_AT: [u64; 2] = [2, 27];
/// Records per appended batch, cycled.
const BATCH_SIZES: [u64; 5] = [1, 1, 2, 1, 3];
const RECORDS: u64 = 30;

/// Tiny segments and a small index interval, so there are several sealed
/// segments, each with index entries.
fn fuzz_config() -> PartitionConfig {
    PartitionConfig {
        segment_bytes: 512,
        segment_ms: 7 * 24 * 3600 * 1000,
        index_interval_bytes: 48,
        index_bytes: 240,
    }
}

/// The record written at offset `n`: keys, null keys, tombstones, headers with
/// null values, timestamps out of order and from the clock, and a value that is
/// itself a valid batch (a trap for index entries pointing inside a record).
fn model_record(n: u64) -> Record {
    let mut r = Record::default();
    if n % 4 != 3 {
        r.key = Some(Bytes::from(format!("k{}", n % 5)));
    }
    if NESTED_AT.contains(&n) {
        let mut nested = Vec::new();
        let fake = Record::new("NESTED").with_key("k0").with_timestamp(T0);
        setup(
            batch::encode_batch(&mut nested, n, &[fake], T0),
            "encoding a nested batch",
        );
        r.value = Some(Bytes::from(nested));
    } else if n % 7 != 5 {
        r.value = Some(Bytes::from(format!("v{n}-{}", "x".repeat((n % 9) as usize))));
    }
    match n % 3 {
        1 => r.headers.push(("h".to_owned(), Some(Bytes::from(n.to_string())))),
        2 => {
            r.headers.push(("h".to_owned(), Some(Bytes::from(n.to_string()))));
            r.headers.push(("null".to_owned(), None));
        }
        _ => {}
    }
    if n % 13 != 12 {
        let back = if n % 6 == 4 { 35 } else { 0 };
        r.timestamp = Some(T0 + n as i64 * 10 - back);
    }
    r
}

fn expected_record(offset: u64, r: &Record) -> BatchRecord {
    BatchRecord {
        offset,
        timestamp: r.timestamp.unwrap_or(CLOCK_MS),
        key: r.key.clone(),
        value: r.value.clone(),
        headers: r.headers.clone(),
    }
}

/// How a generated partition directory was left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// `close()`: clean-close checkpoint, trimmed indexes.
    Clean,
    /// `flush()` a few batches before the end, then dropped without close.
    Flushed,
    /// Dropped without close or flush.
    Dropped,
}

/// A valid partition directory, held in memory.
#[derive(Debug)]
struct Image {
    files: Vec<(String, Vec<u8>)>,
    records: Vec<BatchRecord>,
}

impl Image {
    fn write_to(&self, dir: &Path) {
        for (name, bytes) in &self.files {
            put_file(dir, name, bytes);
        }
    }
    fn bases(&self) -> Vec<u64> {
        self.files
            .iter()
            .filter_map(|(n, _)| crate::segment::parse_file_name(n, ".log"))
            .collect()
    }
    fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
    }
}

fn open_dir(dir: &Path) -> crate::Result<PartitionLog> {
    let clock = ManualClock::new(CLOCK_MS);
    PartitionLog::open(RealFs::shared(), Arc::new(clock), dir, fuzz_config()).map(|(log, _)| log)
}

fn build_image(ending: Ending) -> Image {
    let scratch = Scratch::new("image");
    let log = setup(open_dir(&scratch.path), "opening an empty partition");
    let mut records = Vec::new();
    let batches: Vec<u64> = {
        let mut v = Vec::new();
        let mut n = 0;
        for i in 0.. {
            if n >= RECORDS {
                break;
            }
            let size = BATCH_SIZES[i % BATCH_SIZES.len()].min(RECORDS - n);
            v.push(size);
            n += size;
        }
        v
    };
    let mut n = 0u64;
    for (i, size) in batches.iter().enumerate() {
        if ending == Ending::Flushed && i + 3 == batches.len() {
            setup(log.flush(), "flushing");
        }
        let batch: Vec<Record> = (n..n + size).map(model_record).collect();
        let appended = setup(log.append_records(&batch), "appending");
        assert_eq!(
            appended.base_offset, n,
            "fuzz image: appended at the wrong offset"
        );
        for (k, r) in (0u64..).zip(&batch) {
            records.push(expected_record(n + k, r));
        }
        n += size;
    }
    if ending == Ending::Clean {
        setup(log.close(), "closing");
    }
    drop(log);
    let mut files = Vec::new();
    for name in setup(RealFs.list(&scratch.path), "listing the image") {
        let bytes = setup(RealFs.read(&scratch.path.join(&name)), "reading the image");
        files.push((name, bytes));
    }
    let image = Image { files, records };
    assert!(image.bases().len() >= 4, "the fuzz image needs several segments");
    image
}

/// The generated directories, built once per process: clean, flushed, dropped.
fn images() -> &'static [Image; 3] {
    static IMAGES: OnceLock<[Image; 3]> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let images = [
            build_image(Ending::Clean),
            build_image(Ending::Flushed),
            build_image(Ending::Dropped),
        ];
        // Undamaged, each reads back exactly as written.
        for image in &images {
            let scratch = Scratch::new("check");
            image.write_to(&scratch.path);
            let log = setup(open_dir(&scratch.path), "opening an undamaged image");
            verify_intact(&log, &image.records, Some(0), "undamaged image");
        }
        images
    })
}

fn put_file(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    if setup(RealFs.exists(&path), "checking a file") {
        setup(RealFs.remove(&path), "removing a file");
    }
    let file = setup(RealFs.create_new(&path), "creating a file");
    setup(file.write_all_at(bytes, 0), "writing a file");
}

/// Reads every record from the start, then each offset alone, then the answer
/// to `offset_for_timestamp` at and just after the timestamp of every record
/// from offset `probe_from` on: all must be exactly the written ones
/// (`expected` is dense from offset 0).
fn verify_intact(log: &PartitionLog, expected: &[BatchRecord], probe_from: Option<u64>, what: &str) {
    let end = expected.len() as u64;
    assert_eq!(log.start_offset(), 0, "{what}: start offset");
    assert_eq!(log.end_offset(), end, "{what}: end offset");
    let all = read_from(log, 0, what);
    assert_eq!(
        all, expected,
        "{what}: the records read differ from those written"
    );
    for want in expected {
        match log.read(want.offset, 1) {
            Ok(records) => assert_eq!(
                records.first(),
                Some(want),
                "{what}: read({}) must start with that record",
                want.offset
            ),
            Err(e) => panic!("{what}: read({}) failed on an intact log: {e}", want.offset),
        }
    }
    let Some(probe_from) = probe_from else {
        return;
    };
    let mut probes: Vec<i64> = expected
        .iter()
        .filter(|r| r.offset >= probe_from)
        .flat_map(|r| [r.timestamp, r.timestamp.saturating_add(1)])
        .chain([i64::MIN, 0, i64::MAX])
        .collect();
    probes.sort_unstable();
    probes.dedup();
    for ts in probes {
        let want = expected.iter().find(|r| r.timestamp >= ts).map(|r| r.offset);
        match log.offset_for_timestamp(ts) {
            Ok(got) => assert_eq!(
                got, want,
                "{what}: offset_for_timestamp({ts}) must be the first offset with a timestamp >= {ts}"
            ),
            Err(e) => panic!("{what}: offset_for_timestamp({ts}) failed on an intact log: {e}"),
        }
    }
}

/// Appends `count` records after `expected`'s end (one batch each), checking
/// each lands at the end offset; extends `expected`.
fn append_more(log: &PartitionLog, expected: &mut Vec<BatchRecord>, count: u64, what: &str) {
    for _ in 0..count {
        let offset = log.end_offset();
        let n = 1000 + offset;
        let record = model_record(n);
        match log.append_records(std::slice::from_ref(&record)) {
            Ok(a) => assert_eq!(a.base_offset, offset, "{what}: append landed at the wrong offset"),
            Err(e) => panic!("{what}: append after open failed: {e}"),
        }
        expected.push(expected_record(offset, &record));
    }
}

// ---------------------------------------------------------------------------------------
// load_index

/// Arbitrary index files beside a valid log. Input: image selector, segment
/// selector, which files to replace or delete, split point, then the new
/// `.index` bytes followed by the new `.timeindex` bytes.
///
/// # Panics
/// Only when tidelog breaks a property.
pub fn load_index(data: &[u8]) {
    let images = images();
    let mut input = Input::new(data);
    let image = &images[usize::from(input.u8() % 2)];
    let bases = image.bases();
    let selector = input.u8();
    let mode = input.u8();
    let split = usize::from(input.u16());
    let rest = input.rest();
    let (index_bytes, time_bytes) = rest.split_at(split.min(rest.len()));

    let scratch = Scratch::new("index");
    let dir = &scratch.path;
    image.write_to(dir);
    let targets: Vec<u64> = if selector == 0xFF {
        bases.clone()
    } else {
        bases
            .get(usize::from(selector) % bases.len())
            .copied()
            .into_iter()
            .collect()
    };
    for base in &targets {
        for (i, (suffix, bytes)) in [(".index", index_bytes), (".timeindex", time_bytes)]
            .into_iter()
            .enumerate()
        {
            let name = crate::segment::file_name(*base, suffix);
            match (mode >> (2 * i)) & 3 {
                0 => {}
                3 => setup(RealFs.remove(&dir.join(&name)), "deleting an index"),
                _ => put_file(dir, &name, bytes),
            }
        }
    }
    let what = format!("index files of segments {targets:?} replaced (mode {mode:#04x})");
    let log = match open_dir(dir) {
        Ok(log) => log,
        Err(e) => panic!("{what}: open failed: {e} (a bad index must never fail open)"),
    };
    let mut expected = image.records.clone();
    verify_intact(&log, &expected, Some(0), &what);
    // Appends go through the active segment's indexes (loaded, not rebuilt,
    // after a clean close); lookups in it must stay right.
    let active = bases.last().copied().unwrap_or(0);
    append_more(&log, &mut expected, 4, &what);
    verify_intact(&log, &expected, Some(active), &format!("{what}, after appends"));
    drop(log);
    // The replaced sealed indexes may still be there: reading must still work.
    let log = match open_dir(dir) {
        Ok(log) => log,
        Err(e) => panic!("{what}: second open failed: {e}"),
    };
    verify_intact(&log, &expected, None, &format!("{what}, after a reopen"));

    // Retention by time trusts each segment's largest timestamp (the last time
    // index entry). With a limit of 0 ms, exactly the segments whose newest
    // record is older than the clock have expired (the second segment holds a
    // record stamped by the clock): retention must not delete past them.
    let segment_max = |i: usize| {
        let (from, to) = (
            bases.get(i).copied().unwrap_or(u64::MAX),
            bases.get(i + 1).copied(),
        );
        expected
            .iter()
            .filter(|r| r.offset >= from && to.is_none_or(|t| r.offset < t))
            .map(|r| r.timestamp)
            .max()
    };
    let limit = 0i64;
    let expired = (0..bases.len())
        .take_while(|i| segment_max(*i).is_some_and(|m| CLOCK_MS.saturating_sub(m) > limit))
        .count();
    let allowed = bases.get(expired).copied().unwrap_or(u64::MAX);
    match log.apply_retention(u64::try_from(limit).ok(), None) {
        Ok(_) => {}
        Err(e) => panic!("{what}: retention failed: {e}"),
    }
    let start = log.start_offset();
    assert!(
        start <= allowed,
        "{what}: retention by time ({limit} ms) moved the start offset to {start}, deleting records of \
         segments that had not expired (only those below offset {allowed} had)"
    );
    let kept: Vec<BatchRecord> = expected.iter().filter(|r| r.offset >= start).cloned().collect();
    assert_eq!(
        read_from(&log, start, &what),
        kept,
        "{what}: records after retention"
    );
}

/// Every record from `from` to the end, read in order; any error is a violation.
fn read_from(log: &PartitionLog, from: u64, what: &str) -> Vec<BatchRecord> {
    let end = log.end_offset();
    let mut all = Vec::new();
    let mut next = from;
    while next < end {
        match log.read(next, 1000) {
            Ok(records) => {
                let Some(last) = records.last() else {
                    panic!("{what}: read({next}) returned nothing before the end {end}");
                };
                next = last.offset + 1;
                all.extend(records);
            }
            Err(e) => panic!("{what}: read({next}) failed on an intact log: {e}"),
        }
    }
    all
}

// ---------------------------------------------------------------------------------------
// recover_dir

/// Suffixes that mutations give to new or renamed files.
const SUFFIXES: [&str; 16] = [
    ".log",
    ".index",
    ".timeindex",
    ".log.deleted",
    ".index.deleted",
    ".log.cleaned",
    ".index.cleaned",
    ".log.swap",
    ".index.swap",
    ".timeindex.swap",
    ".log.torn-7",
    ".txnindex",
    ".snapshot",
    ".log.tmp-00000000000000ab",
    ".timeindex.cleaned",
    "",
];

/// A file name derived from the input: a segment-like name (near an existing
/// base offset or anywhere), or one of the partition's own names.
fn derived_name(input: &mut Input<'_>, bases: &[u64]) -> String {
    let kind = input.u8();
    match kind % 8 {
        0 => "tidelog.checkpoint".to_owned(),
        1 => format!("tidelog.checkpoint.tmp-{:016x}", input.u8()),
        2 => format!("{}.log", input.u8()),
        3 => format!("junk-{}", input.u8()),
        _ => {
            let base = if kind & 0x80 != 0 || bases.is_empty() {
                u64::from(input.u32())
            } else {
                let b = bases
                    .get(usize::from(input.u8()) % bases.len())
                    .copied()
                    .unwrap_or(0);
                b.saturating_add_signed(i64::from(input.u8() as i8))
            };
            let suffix = SUFFIXES[usize::from(input.u8()) % SUFFIXES.len()];
            crate::segment::file_name(base, suffix)
        }
    }
}

fn read_file(dir: &Path, name: &str) -> Vec<u8> {
    setup(RealFs.read(&dir.join(name)), "reading a file to mutate")
}

/// Applies one mutation driven by `input` to the directory.
fn mutate(dir: &Path, input: &mut Input<'_>, bases: &[u64]) {
    let names = setup(RealFs.list(dir), "listing the directory");
    let op = input.u8();
    let pick = usize::from(input.u8());
    let Some(name) = names.get(pick % names.len().max(1)).cloned() else {
        return;
    };
    let path = dir.join(&name);
    let mut bytes = read_file(dir, &name);
    let len = bytes.len();
    match op % 10 {
        0 => {
            // Bit flip.
            if len > 0 {
                let at = input.u32() as usize % len;
                bytes[at] ^= 1 << (input.u8() % 8);
            }
        }
        1 => {
            // Cut.
            let to = input.u32() as usize % (len + 1);
            bytes.truncate(to);
        }
        2 => {
            // A run of zeros (a lost page), possibly past the end.
            let at = input.u32() as usize % (len + 1);
            let n = usize::from(input.u16() % 4096) + 1;
            if bytes.len() < at + n {
                bytes.resize(at + n, 0);
            }
            bytes[at..at + n].fill(0);
        }
        3 => {
            // Garbage appended.
            let n = usize::from(input.u8()) + 1;
            let garbage = input.bytes(n);
            bytes.extend_from_slice(garbage);
            bytes.resize(len + n, 0x5A);
        }
        4 => {
            // Bytes overwritten in place.
            let at = input.u32() as usize % (len + 1);
            let n = usize::from(input.u8() % 64) + 1;
            let patch = input.bytes(n).to_vec();
            if bytes.len() < at + patch.len() {
                bytes.resize(at + patch.len(), 0);
            }
            bytes[at..at + patch.len()].copy_from_slice(&patch);
        }
        5 => {
            // A stray file.
            let stray = derived_name(input, bases);
            let n = usize::from(input.u8());
            let content = input.bytes(n).to_vec();
            put_file(dir, &stray, &content);
            return;
        }
        6 => {
            // Misnamed: renamed.
            let to = derived_name(input, bases);
            if to != name {
                setup(RealFs.rename(&path, &dir.join(&to)), "renaming");
            }
            return;
        }
        7 => {
            setup(RealFs.remove(&path), "deleting");
            return;
        }
        8 => {
            // Copied under another name.
            let to = derived_name(input, bases);
            if to != name {
                put_file(dir, &to, &bytes);
            }
            return;
        }
        _ => {
            // A chunk of another file spliced in (whole batches from elsewhere).
            let other = names
                .get(usize::from(input.u8()) % names.len())
                .cloned()
                .unwrap_or_default();
            let source = read_file(dir, &other);
            let from = input.u32() as usize % (source.len() + 1);
            let n = (input.u16() as usize).min(source.len() - from);
            let at = input.u32() as usize % (len + 1);
            let chunk = &source[from..from + n];
            if bytes.len() < at + n {
                bytes.resize(at + n, 0);
            }
            bytes[at..at + n].copy_from_slice(chunk);
        }
    }
    put_file(dir, &name, &bytes);
}

/// Reads every offset from the start to the end (a damaged batch may be
/// `Error::Corrupt`; reading then goes on one offset later, or at the next
/// segment after a run of damaged offsets). Every record returned must be in
/// `expected` at its offset, byte for byte, in rising order.
fn read_everything(
    log: &PartitionLog,
    expected: &BTreeMap<u64, BatchRecord>,
    what: &str,
) -> BTreeMap<u64, BatchRecord> {
    let mut got = BTreeMap::new();
    let (start, end) = (log.start_offset(), log.end_offset());
    assert!(
        start <= end,
        "{what}: start offset {start} is past the end offset {end}"
    );
    let bases = log.segment_base_offsets();
    let mut next = start;
    let mut budget = expected.len() * 4 + 256;
    let mut damaged_run = 0;
    let mut last: Option<u64> = None;
    while next < end && budget > 0 {
        budget -= 1;
        match log.read(next, 64) {
            Ok(records) => {
                let Some(tail) = records.last().map(|r| r.offset) else {
                    // Nothing from here in this segment: go on at the next one.
                    next = bases.iter().copied().find(|b| *b > next).unwrap_or(end);
                    continue;
                };
                for r in records {
                    assert!(
                        r.offset >= next,
                        "{what}: read({next}) returned offset {}",
                        r.offset
                    );
                    assert!(
                        r.offset < end,
                        "{what}: read returned offset {} at or past the end {end}",
                        r.offset
                    );
                    assert!(
                        last.is_none_or(|l| l < r.offset),
                        "{what}: offsets must rise: {} after {last:?}",
                        r.offset
                    );
                    last = Some(r.offset);
                    match expected.get(&r.offset) {
                        Some(want) => assert_eq!(
                            &r, want,
                            "{what}: the record read at offset {} is not the one written there",
                            r.offset
                        ),
                        None => panic!(
                            "{what}: read returned a record never written at offset {}: {r:?}",
                            r.offset
                        ),
                    }
                    got.insert(r.offset, r);
                }
                next = tail + 1;
                damaged_run = 0;
            }
            Err(Error::Corrupt { .. }) => {
                damaged_run += 1;
                next = if damaged_run > 8 {
                    // A long damaged range (or a gap behind damage): go on at the next segment.
                    damaged_run = 0;
                    bases.iter().copied().find(|b| *b > next).unwrap_or(end)
                } else {
                    next + 1
                };
            }
            Err(e) => panic!("{what}: read({next}) failed with {e}: only Error::Corrupt may report damage"),
        }
    }
    got
}

/// A generated partition directory damaged by mutations from `data`, then
/// opened, read whole, appended to and reopened.
///
/// Input: image selector, mutation count, then per mutation its kind, target
/// and parameters.
///
/// # Panics
/// Only when tidelog breaks a property.
pub fn recover_dir(data: &[u8]) {
    let images = images();
    let mut input = Input::new(data);
    let image = &images[usize::from(input.u8() % 3)];
    let bases = image.bases();
    let mutations = input.u8() % 9;

    let scratch = Scratch::new("recover");
    let dir = &scratch.path;
    image.write_to(dir);
    for _ in 0..mutations {
        if input.is_empty() {
            break;
        }
        mutate(dir, &mut input, &bases);
    }
    let mut expected: BTreeMap<u64, BatchRecord> =
        image.records.iter().map(|r| (r.offset, r.clone())).collect();
    let log = match open_dir(dir) {
        Ok(log) => log,
        // A typed error is allowed; a panic is not.
        Err(_) => return,
    };
    let first = read_everything(&log, &expected, "first open");
    let end = log.end_offset();
    let start = log.start_offset();
    for ts in [i64::MIN, T0, T0 + 105, T0 + 250, CLOCK_MS, i64::MAX] {
        match log.offset_for_timestamp(ts) {
            Ok(None) => {}
            Ok(Some(o)) => {
                assert!(
                    o >= start && o < end,
                    "offset_for_timestamp({ts}) = {o} outside {start}..{end}"
                );
                match expected.get(&o) {
                    Some(r) => assert!(
                        r.timestamp >= ts,
                        "offset_for_timestamp({ts}) = {o}, whose timestamp is {}",
                        r.timestamp
                    ),
                    None => panic!("offset_for_timestamp({ts}) = {o}, an offset never written"),
                }
            }
            Err(Error::Corrupt { .. }) => {}
            Err(e) => panic!("offset_for_timestamp({ts}) failed with {e}"),
        }
    }
    // Appends work after recovery, at the end offset.
    let extra = model_record(5000);
    match log.append_records(std::slice::from_ref(&extra)) {
        Ok(a) => assert_eq!(
            a.base_offset, end,
            "append after recovery landed at the wrong offset"
        ),
        Err(e) => panic!("append after recovery failed: {e}"),
    }
    let extra = expected_record(end, &extra);
    match log.read(end, 10) {
        Ok(records) => assert_eq!(records, vec![extra.clone()], "the record appended after recovery"),
        Err(e) => panic!("reading the record appended after recovery failed: {e}"),
    }
    drop(log);
    expected.insert(end, extra.clone());
    // A second open keeps everything the first one returned.
    let log = match open_dir(dir) {
        Ok(log) => log,
        Err(e) => panic!("second open, of a directory tidelog itself recovered, failed: {e}"),
    };
    let second = read_everything(&log, &expected, "second open");
    for (offset, r) in first.iter().chain([(&end, &extra)]) {
        assert_eq!(
            second.get(offset),
            Some(r),
            "record at offset {offset}, read after the first open, is gone after the second"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Metadata decoders

/// The `tidelog.topics` decoder. See the module docs.
///
/// # Panics
/// Only when the decoder or encoder breaks a property.
pub fn decode_topics(data: &[u8]) {
    let Ok(topics) = crate::topic::decode(data) else {
        return;
    };
    let refs: Vec<(&str, &TopicConfig)> = topics.iter().map(|(n, c)| (n.as_str(), c)).collect();
    let again = crate::topic::encode(&refs);
    match crate::topic::decode(&again) {
        Ok(back) => assert_eq!(back, topics, "topics: decode(encode(decode(x))) differs"),
        Err(e) => panic!("topics: the re-encoded file does not decode: {e}"),
    }
    // Canonical unless a retention field holds a negative value other than -1
    // (all of which mean "none" and are written back as -1).
    let mut at = 10usize;
    // Version 1 files (no compression byte) decode but are written back as
    // the current version.
    let version = data.get(4..6).map_or(0, |v| u16::from_be_bytes([v[0], v[1]]));
    let entry = if version == 1 { 69 } else { 70 };
    let mut canonical = version != 1;
    let field = |at: usize| -> i64 {
        let mut b = [0u8; 8];
        if let Some(s) = data.get(at..at + 8) {
            b.copy_from_slice(s);
        }
        i64::from_be_bytes(b)
    };
    for _ in &topics {
        let name_len = data
            .get(at..at + 2)
            .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
        at += 2 + name_len;
        canonical &= field(at + 24) >= -1 && field(at + 32) >= -1;
        at += entry;
    }
    assert_eq!(
        at + 4,
        data.len(),
        "topics: the decoder accepted a file of another length"
    );
    if canonical {
        assert_eq!(
            again, data,
            "topics: re-encoding a canonical file changed its bytes"
        );
    }
}

/// The `tidelog.checkpoint` decoder. See the module docs.
///
/// # Panics
/// Only when the decoder or encoder breaks a property.
pub fn decode_checkpoint(data: &[u8]) {
    let Ok(cp) = Checkpoint::decode(data) else {
        return;
    };
    assert!(
        cp.sealed.windows(2).all(|w| w[0].base_offset < w[1].base_offset),
        "checkpoint: sealed segments must be in rising order"
    );
    assert!(
        cp.sealed.iter().all(|s| cp.sealed(s.base_offset) == Some(s)),
        "checkpoint: lookup"
    );
    let again = cp.encode();
    match Checkpoint::decode(&again) {
        Ok(back) => assert_eq!(back, cp, "checkpoint: decode(encode(decode(x))) differs"),
        Err(e) => panic!("checkpoint: the re-encoded file does not decode: {e}"),
    }
    // Canonical: no flags but bit 0 (clean close) and bit 1 (gaps), and the
    // clean-close fields zero when not clean.
    let flags = data.get(6..8).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let clean_fields_zero = data.get(32..56).is_some_and(|b| b.iter().all(|x| *x == 0));
    let current_version = data.get(4..6) == Some(&[0, 2][..]);
    if current_version && flags & !3 == 0 && (flags & 1 == 1 || clean_fields_zero) {
        assert_eq!(
            again, data,
            "checkpoint: re-encoding a canonical file changed its bytes"
        );
    }
}

/// The `__consumer_offsets` record decoders. Input: key length (u16 BE), the
/// key, then the value; the whole input is also decoded as a key and as a value.
///
/// # Panics
/// Only when a decoder or encoder breaks a property.
pub fn decode_offset_commit(data: &[u8]) {
    let mut input = Input::new(data);
    let key_len = usize::from(input.u16());
    let key = input.bytes(key_len);
    let value = input.rest();
    for k in [key, data] {
        if let Some((group, topic, partition)) = crate::offsets::decode_key(k) {
            let again = crate::offsets::encode_key(&group, &topic, partition);
            assert_eq!(
                crate::offsets::decode_key(&again),
                Some((group.clone(), topic.clone(), partition)),
                "offset commit key: decode(encode(decode(x))) differs"
            );
            if k.get(..2) == Some(&[0u8, 1][..]) {
                assert_eq!(
                    &again[..],
                    k,
                    "offset commit key: re-encoding a version-1 key changed it"
                );
            }
        }
    }
    for v in [value, data] {
        if let Some(offset) = crate::offsets::decode_value(v) {
            assert!(
                i64::try_from(offset).is_ok(),
                "offset commit value: offset past i64::MAX"
            );
            let timestamp = v.get(16..24).map_or(0, |b| {
                let mut t = [0u8; 8];
                t.copy_from_slice(b);
                i64::from_be_bytes(t)
            });
            let again = crate::offsets::encode_value(offset, timestamp);
            assert_eq!(
                crate::offsets::decode_value(&again),
                Some(offset),
                "offset commit value: decode(encode(decode(x))) differs"
            );
            // Canonical: version 3, leader epoch -1, empty metadata, 24 bytes.
            let canonical = v.len() == 24
                && v.get(..2) == Some(&[0u8, 3][..])
                && v.get(10..16) == Some(&[0xFFu8, 0xFF, 0xFF, 0xFF, 0, 0][..]);
            if canonical {
                assert_eq!(
                    &again[..],
                    v,
                    "offset commit value: re-encoding a canonical value changed it"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Seeds

/// Kafka-written (kafka-python 3.0.12) golden batches of KAFKA.md §11.
const GOLDEN_86: &str = "00000000000000000000004a0000000002c28bbde80000000000010000018bcfe568000000018bcfe56805\
                         ffffffffffffffffffffffffffff000000021e000000046b3104763102046831027810000a02046b320100";
const GOLDEN_TOMBSTONE_70: &str =
    "00000000000000020000003a00000000027826ff7a0000000000000000018bcfe5680a0000018b\
                                   cfe5680affffffffffffffffffffffffffff0000000110000000046b310100";

fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|d| match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => d - b'A' + 10,
        })
        .collect();
    digits
        .chunks(2)
        .map(|p| (p[0] << 4) | p.get(1).copied().unwrap_or(0))
        .collect()
}

fn encoded(base: u64, records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    setup(
        batch::encode_batch(&mut out, base, records, T0),
        "encoding a seed batch",
    );
    out
}

/// Re-encodes `bytes`'s batch from a changed header template (attributes,
/// producer fields, delete horizon), so the CRC is right.
fn rewritten(bytes: &[u8], change: impl Fn(&mut BatchHeader), horizon: Option<i64>, keep: usize) -> Vec<u8> {
    let buf = Bytes::copy_from_slice(bytes);
    let mut records = Vec::new();
    let mut header = setup(
        batch::decode_batch(&buf, 0, &mut records),
        "decoding a seed batch",
    );
    change(&mut header);
    records.truncate(keep);
    let mut out = Vec::new();
    setup(
        batch::encode_rewritten(&mut out, &header, &records, horizon),
        "rewriting a seed batch",
    );
    out
}

/// `batch` (uncompressed, as `encoded` made it) compressed with `codec`; the
/// batch unchanged when this build lacks the codec.
fn compressed(batch: &[u8], codec: crate::compression::Compression) -> Vec<u8> {
    let Ok(header) = batch::validate_batch(batch) else {
        return batch.to_vec();
    };
    let mut out = batch.to_vec();
    match batch::compress_batch(&mut out, 0, header, codec) {
        Ok(_) => out,
        Err(_) => batch.to_vec(),
    }
}

/// Sets the attributes of an encoded batch and fixes its CRC.
fn with_attributes(mut bytes: Vec<u8>, attributes: i16) -> Vec<u8> {
    if bytes.len() >= 61 {
        bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
        let crc = batch::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    bytes
}

/// A batch with one record whose varints are not minimal (0 as `80 00`), by hand.
fn non_minimal_varint_batch() -> Vec<u8> {
    // Record body: attributes, timestampDelta 0 as 80 00, offsetDelta 0, key len 1 "k",
    // value len 1 "v", headers 0.
    let body = [0x00, 0x80, 0x00, 0x00, 0x02, b'k', 0x02, b'v', 0x00];
    let mut out = Vec::new();
    out.extend_from_slice(&0i64.to_be_bytes());
    let length = (61 - 12 + 1 + body.len()) as i32;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.push(2);
    out.extend_from_slice(&[0; 4]); // crc, patched below
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&T0.to_be_bytes());
    out.extend_from_slice(&T0.to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes());
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    out.push((body.len() as u8) << 1);
    out.extend_from_slice(&body);
    let crc = batch::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// A named seed input.
type Seed = (String, Vec<u8>);

fn batch_seeds() -> Vec<Seed> {
    let golden = unhex(GOLDEN_86);
    let tombstone = unhex(GOLDEN_TOMBSTONE_70);
    let plain = encoded(0, &[Record::new("value").with_key("key").with_timestamp(T0)]);
    let several = encoded(
        41,
        &[
            Record::new("a").with_key("k1").with_timestamp(T0),
            Record::tombstone("k2").with_timestamp(T0 + 3),
            Record::new("c")
                .with_header("h", "x")
                .with_null_header("n")
                .with_timestamp(T0 - 7),
            Record::default(),
            Record::new("").with_key(""),
        ],
    );
    let keyless = encoded(7, &[Record::new("no key").with_timestamp(5)]);
    let headers = encoded(
        3,
        &[Record::new("v")
            .with_key("k")
            .with_header("dup", "1")
            .with_header("dup", "2")
            .with_null_header("none")
            .with_timestamp(T0)],
    );
    let mut seeds = vec![
        ("kafka-golden-86".to_owned(), golden.clone()),
        ("kafka-golden-tombstone-70".to_owned(), tombstone.clone()),
        ("encoded-one-record".to_owned(), plain.clone()),
        ("encoded-five-records".to_owned(), several.clone()),
        ("encoded-keyless".to_owned(), keyless),
        ("encoded-headers".to_owned(), headers),
        (
            "log-append-time".to_owned(),
            with_attributes(several.clone(), 0x08),
        ),
        ("transactional".to_owned(), with_attributes(plain.clone(), 0x10)),
        ("control".to_owned(), with_attributes(golden.clone(), 0x30)),
        ("gzip-flag".to_owned(), with_attributes(plain.clone(), 0x01)),
        ("zstd-flag".to_owned(), with_attributes(several.clone(), 0x04)),
        (
            "gzip".to_owned(),
            compressed(&several, crate::compression::Compression::Gzip),
        ),
        (
            "snappy".to_owned(),
            compressed(&several, crate::compression::Compression::Snappy),
        ),
        (
            "lz4".to_owned(),
            compressed(&several, crate::compression::Compression::Lz4),
        ),
        (
            "zstd".to_owned(),
            compressed(&several, crate::compression::Compression::Zstd),
        ),
        (
            "delete-horizon".to_owned(),
            rewritten(&several, |_| {}, Some(T0 + 86_400_000), usize::MAX),
        ),
        ("compacted-gaps".to_owned(), rewritten(&several, |_| {}, None, 2)),
        ("compacted-empty".to_owned(), rewritten(&several, |_| {}, None, 0)),
        (
            "idempotent-producer".to_owned(),
            rewritten(
                &golden,
                |h| {
                    h.producer_id = 4242;
                    h.producer_epoch = 3;
                    h.base_sequence = 17;
                },
                None,
                usize::MAX,
            ),
        ),
        ("non-minimal-varint".to_owned(), non_minimal_varint_batch()),
        (
            "two-batches".to_owned(),
            [golden.clone(), tombstone.clone()].concat(),
        ),
    ];
    let mut epoch = plain.clone();
    epoch[12..16].copy_from_slice(&7i32.to_be_bytes());
    seeds.push(("leader-epoch-7".to_owned(), epoch));
    let mut negative = plain.clone();
    negative[..8].copy_from_slice(&(-5i64).to_be_bytes());
    seeds.push(("negative-base-offset".to_owned(), negative));
    for cut in [16usize, 17, 40, 61, 85] {
        seeds.push((format!("golden-cut-{cut}"), golden[..cut].to_vec()));
    }
    let mut flipped = golden.clone();
    flipped[70] ^= 0x01;
    seeds.push(("golden-crc-mismatch".to_owned(), flipped));
    seeds.push(("zeros-61".to_owned(), vec![0u8; 61]));
    seeds
}

fn index_seeds() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let images = images();
    for (i, image) in images.iter().take(2).enumerate() {
        let bases = image.bases();
        for (s, base) in bases.iter().enumerate() {
            let index = image
                .file(&crate::segment::file_name(*base, ".index"))
                .unwrap_or_default();
            let time = image
                .file(&crate::segment::file_name(*base, ".timeindex"))
                .unwrap_or_default();
            let input = |mode: u8, index: &[u8], time: &[u8]| {
                let mut v = vec![i as u8, s as u8, mode];
                v.extend_from_slice(&(index.len() as u16).to_be_bytes());
                v.extend_from_slice(index);
                v.extend_from_slice(time);
                v
            };
            let name = if i == 0 { "clean" } else { "flushed" };
            seeds.push((format!("{name}-seg{s}-valid"), input(0x05, index, time)));
            if s == 0 || s + 1 == bases.len() {
                let mut swapped = index.to_vec();
                if swapped.len() >= 16 {
                    let (a, b) = swapped.split_at_mut(8);
                    a.swap_with_slice(&mut b[..8]);
                }
                seeds.push((format!("{name}-seg{s}-swapped"), input(0x05, &swapped, time)));
                let odd = index.get(..index.len().saturating_sub(3)).unwrap_or_default();
                seeds.push((format!("{name}-seg{s}-odd-length"), input(0x01, odd, time)));
                seeds.push((
                    format!("{name}-seg{s}-zeroed"),
                    input(0x05, &vec![0; index.len()], &vec![0; time.len()]),
                ));
                seeds.push((format!("{name}-seg{s}-deleted"), input(0x0F, &[], &[])));
                let mut past_eof = index.to_vec();
                if past_eof.len() >= 8 {
                    past_eof[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
                }
                seeds.push((format!("{name}-seg{s}-past-eof"), input(0x01, &past_eof, time)));
            }
        }
        seeds.push((format!("image{i}-all-empty"), vec![i as u8, 0xFF, 0x05, 0, 0]));
    }
    seeds
}

fn recover_seeds() -> Vec<Seed> {
    // op, pick, params...
    let op = |image: u8, ops: &[&[u8]]| {
        let mut v = vec![image, ops.len() as u8];
        for o in ops {
            v.extend_from_slice(o);
        }
        v
    };
    vec![
        ("clean-untouched".to_owned(), op(0, &[])),
        ("flushed-untouched".to_owned(), op(1, &[])),
        ("dropped-untouched".to_owned(), op(2, &[])),
        ("flip-first-log".to_owned(), op(0, &[&[0, 2, 0, 0, 0, 90, 3]])),
        ("flip-in-header".to_owned(), op(2, &[&[0, 2, 0, 0, 0, 19, 5]])),
        ("cut-active".to_owned(), op(1, &[&[1, 0xFE, 0, 0, 0, 77]])),
        (
            "zero-page-sealed".to_owned(),
            op(0, &[&[2, 5, 0, 0, 0, 40, 0, 80]]),
        ),
        (
            "garbage-appended".to_owned(),
            op(
                2,
                &[&[
                    3, 0xFE, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
                ]],
            ),
        ),
        (
            "zeros-appended".to_owned(),
            op(0, &[&[2, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0, 200]]),
        ),
        (
            "stray-cleaned".to_owned(),
            op(0, &[&[5, 0, 4, 1, 0, 5, 4, 1, 2, 3, 4]]),
        ),
        (
            "stray-swap".to_owned(),
            op(1, &[&[5, 0, 4, 2, 0, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0]]),
        ),
        (
            "stray-tmp-checkpoint".to_owned(),
            op(2, &[&[5, 0, 1, 3, 4, 1, 2, 3, 4]]),
        ),
        ("renamed-segment".to_owned(), op(0, &[&[6, 2, 4, 1, 0xFE, 0]])),
        ("deleted-index".to_owned(), op(0, &[&[7, 3]])),
        ("deleted-checkpoint".to_owned(), op(1, &[&[7, 0xFF]])),
        (
            "corrupt-checkpoint".to_owned(),
            op(0, &[&[0, 0xFF, 0, 0, 0, 20, 1]]),
        ),
        ("copied-segment".to_owned(), op(2, &[&[8, 0, 4, 3, 1, 0]])),
        (
            "spliced-batches".to_owned(),
            op(2, &[&[9, 5, 2, 0, 0, 0, 0, 0, 200, 0, 0, 0, 100]]),
        ),
        (
            "several".to_owned(),
            op(
                1,
                &[
                    &[0, 2, 0, 0, 1, 0, 7],
                    &[7, 4],
                    &[3, 0xFE, 4, 9, 9, 9, 9],
                    &[5, 0, 0x84, 0, 0, 0, 9, 0, 3, 1, 1, 1],
                ],
            ),
        ),
    ]
}

fn topics_seeds() -> Vec<Seed> {
    let default = TopicConfig::default();
    let compact = TopicConfig::default()
        .partitions(3)
        .retention_ms(None)
        .cleanup(Cleanup::Compact)
        .min_cleanable_dirty_ratio(0.25);
    let both = TopicConfig::default()
        .retention_bytes(Some(1 << 30))
        .cleanup(Cleanup::CompactDelete)
        .segment_bytes(512)
        .max_record_bytes(1);
    let one = crate::topic::encode(&[("orders", &default)]);
    let three = crate::topic::encode(&[("orders", &default), ("x.y_z-1", &compact), ("üñí", &both)]);
    let mut seeds = vec![
        ("empty".to_owned(), crate::topic::encode(&[])),
        ("one-topic".to_owned(), one.clone()),
        ("three-topics".to_owned(), three.clone()),
    ];
    for cut in [13usize, 20, one.len() - 1] {
        seeds.push((format!("one-topic-cut-{cut}"), one[..cut].to_vec()));
    }
    let mut bad_crc = three.clone();
    bad_crc[30] ^= 0x40;
    seeds.push(("three-topics-bad-crc".to_owned(), bad_crc));
    seeds
}

fn checkpoint_seeds() -> Vec<Seed> {
    let sealed = |n: u64| -> Vec<SealedSegment> {
        (0..n)
            .map(|i| SealedSegment {
                base_offset: i * 10,
                len: 500 + i,
                crc: 0xDEAD_0000 + i as u32,
                max_timestamp: (i % 2 == 0).then_some(1_700_000_000_000 + i as i64),
            })
            .collect()
    };
    let unclean = Checkpoint {
        log_start_offset: 0,
        sync_base_offset: 30,
        sync_position: 77,
        clean: None,
        sealed: sealed(3),
        gaps: false,
        sync_window: 0,
    };
    let clean = Checkpoint {
        log_start_offset: 12,
        sync_base_offset: 30,
        sync_position: 480,
        clean: Some(CleanClose {
            active_base_offset: 30,
            active_len: 480,
            end_offset: 41,
        }),
        sealed: sealed(1),
        gaps: false,
        sync_window: 256,
    };
    let compacted = Checkpoint {
        gaps: true,
        ..unclean.clone()
    };
    let mut seeds = vec![
        ("default".to_owned(), Checkpoint::default().encode()),
        ("unclean-three-sealed".to_owned(), unclean.encode()),
        ("clean-one-sealed".to_owned(), clean.encode()),
        ("gaps-three-sealed".to_owned(), compacted.encode()),
    ];
    for (i, image) in images().iter().enumerate() {
        if let Some(bytes) = image.file(crate::checkpoint::CHECKPOINT_FILE) {
            seeds.push((format!("image{i}"), bytes.to_vec()));
        }
    }
    let bytes = unclean.encode();
    for cut in [10usize, 63, bytes.len() - 1] {
        seeds.push((format!("unclean-cut-{cut}"), bytes[..cut].to_vec()));
    }
    seeds
}

fn offset_commit_seeds() -> Vec<Seed> {
    let pair = |key: &[u8], value: &[u8]| {
        let mut v = (key.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(key);
        v.extend_from_slice(value);
        v
    };
    let key = crate::offsets::encode_key("billing", "orders", 7);
    let value = crate::offsets::encode_value(42, T0);
    let mut v0_key = key.to_vec();
    v0_key[1] = 0;
    // Kafka's value v1: offset, metadata, commit timestamp, expire timestamp.
    let mut v1 = vec![0, 1];
    v1.extend_from_slice(&9i64.to_be_bytes());
    v1.extend_from_slice(&[0, 2, b'h', b'i']);
    v1.extend_from_slice(&T0.to_be_bytes());
    v1.extend_from_slice(&(T0 + 1000).to_be_bytes());
    vec![
        ("commit".to_owned(), pair(&key, &value)),
        ("tombstone".to_owned(), pair(&key, &[])),
        ("key-v0".to_owned(), pair(&v0_key, &value)),
        ("value-v1".to_owned(), pair(&key, &v1)),
        (
            "unicode".to_owned(),
            pair(
                &crate::offsets::encode_key("grüppe", "tópic", 0),
                &crate::offsets::encode_value(0, -1),
            ),
        ),
        ("key-cut".to_owned(), pair(&key[..key.len() - 1], &value[..9])),
    ]
}

/// The seed corpora: (target, file name, bytes). Valid batches from the encoder
/// and from Kafka, index files of generated segments, metadata files, and
/// truncated or damaged variants.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut all = Vec::new();
    let groups: [(&'static str, Vec<Seed>); 6] = [
        ("decode_batch", batch_seeds()),
        ("load_index", index_seeds()),
        ("recover_dir", recover_seeds()),
        ("decode_topics", topics_seeds()),
        ("decode_checkpoint", checkpoint_seeds()),
        ("decode_offset_commit", offset_commit_seeds()),
    ];
    for (target, group) in groups {
        for (name, bytes) in group {
            all.push((target, name, bytes));
        }
    }
    all
}

/// The names of the fuzz targets, one per function above.
pub const TARGETS: [&str; 6] = [
    "decode_batch",
    "load_index",
    "recover_dir",
    "decode_topics",
    "decode_checkpoint",
    "decode_offset_commit",
];

/// Runs the target named `name` on `data`; false if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "decode_batch" => decode_batch(data),
        "load_index" => load_index(data),
        "recover_dir" => recover_dir(data),
        "decode_topics" => decode_topics(data),
        "decode_checkpoint" => decode_checkpoint(data),
        "decode_offset_commit" => decode_offset_commit(data),
        _ => return false,
    }
    true
}
