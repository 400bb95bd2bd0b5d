//! Kafka's RecordBatch v2 (magic 2) wire format: encode, validate, decode. No I/O.
//!
//! A `.log` segment is a sequence of record batches, each a 61-byte header followed by
//! its records (KAFKA.md §2 has the byte-by-byte layout, the CRC rules and Kafka's
//! reading rules; ARCHITECTURE.md repeats it under "On-disk format"). This module turns
//! [`Record`]s into one batch ([`encode_batch`]), checks a batch read back from disk
//! ([`read_header`] for the header alone, [`validate_batch`] for all of it) and decodes
//! it zero-copy into [`BatchRecord`]s ([`decode_batch`]).
//!
//! Layout, all integers big-endian (one `const` per field below, each derived from the
//! previous field's position plus its size):
//!
//! ```text
//! 0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8
//! 17 crc u32 (CRC-32C of bytes [21, 12 + batchLength)) | 21 attributes i16
//! 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64 | 43 producerId i64
//! 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordsCount i32 | 61 records...
//! record: length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//!         | keyLength varint, key | valueLength varint, value | headersCount varint
//!         | per header: keyLength varint, UTF-8 key | valueLength varint, value
//! ```
//!
//! Invariants:
//! - The CRC does not cover baseOffset, batchLength, partitionLeaderEpoch or magic, so
//!   those are checked structurally ([`read_header`]): length at least 49 and at most
//!   `BATCH_BYTES_MAX`, magic 2, epoch at least -1, and `baseOffset + lastOffsetDelta + 1`
//!   representable. An all-zero region fails on its length (RELIABILITY.md §2.4).
//!   Whether a base offset continues the log is the segment's check, not this module's.
//! - Everything a decoded record is built from has been validated first: CRC, counts,
//!   offset deltas strictly rising and at most `lastOffsetDelta`, every varint bounded
//!   (5 bytes, varlong 10), every length checked against the bytes that remain before
//!   any slice is taken, each record and the whole batch used up exactly.
//! - [`encode_batch`] writes only batches that [`validate_batch`] accepts.
//!
//! No input makes any function here panic: all reads of untrusted bytes go through
//! `get`, `split_at_checked` or fixed-size arrays whose field positions are checked at
//! compile time, and all arithmetic on stored values is checked.
//!
//! Pure functions over byte slices; thread-safe.

use crate::error::CorruptReason;
use crate::limits::{
    BATCH_BYTES_MAX, BATCH_HEADER_BYTES, BATCH_RECORDS_MAX, LOG_OVERHEAD_BYTES, RECORD_HEADERS_MAX,
};
use crate::record::Record;
use crate::sabotage::{self, EngineSabotage};
use bytes::Bytes;
use std::fmt;
use std::ops::Range;

// Header field positions, each the previous position plus the previous field's size.
const BASE_OFFSET_POSITION: usize = 0;
const BATCH_LENGTH_POSITION: usize = BASE_OFFSET_POSITION + 8;
const PARTITION_LEADER_EPOCH_POSITION: usize = BATCH_LENGTH_POSITION + 4;
const MAGIC_POSITION: usize = PARTITION_LEADER_EPOCH_POSITION + 4;
const CRC_POSITION: usize = MAGIC_POSITION + 1;
const ATTRIBUTES_POSITION: usize = CRC_POSITION + 4;
const LAST_OFFSET_DELTA_POSITION: usize = ATTRIBUTES_POSITION + 2;
const BASE_TIMESTAMP_POSITION: usize = LAST_OFFSET_DELTA_POSITION + 4;
const MAX_TIMESTAMP_POSITION: usize = BASE_TIMESTAMP_POSITION + 8;
const PRODUCER_ID_POSITION: usize = MAX_TIMESTAMP_POSITION + 8;
const PRODUCER_EPOCH_POSITION: usize = PRODUCER_ID_POSITION + 8;
const BASE_SEQUENCE_POSITION: usize = PRODUCER_EPOCH_POSITION + 2;
const RECORDS_COUNT_POSITION: usize = BASE_SEQUENCE_POSITION + 4;
const RECORDS_POSITION: usize = RECORDS_COUNT_POSITION + 4;

/// Bytes needed to read batchLength, partitionLeaderEpoch and magic: Kafka's minimum to
/// start a batch (`HEADER_SIZE_UP_TO_MAGIC`).
const HEADER_BYTES_UP_TO_MAGIC: usize = MAGIC_POSITION + 1;
/// Smallest valid batchLength: a header with no records.
const BATCH_LENGTH_MIN: i32 = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
/// The only magic this module reads and writes.
const MAGIC: i8 = 2;
/// Smallest record after its length varint: attributes, then five one-byte varints
/// (timestamp delta, offset delta, key length, value length, headers count).
const RECORD_BODY_BYTES_MIN: usize = 6;
/// Smallest record including its length varint (the 7 of `BATCH_RECORDS_MAX`).
const RECORD_BYTES_MIN: usize = RECORD_BODY_BYTES_MIN + 1;

const COMPRESSION_MASK: i16 = 0x07;
const LOG_APPEND_TIME_FLAG: i16 = 0x08;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;

const VARINT_BYTES_MAX: usize = 5;
const VARLONG_BYTES_MAX: usize = 10;

const _: () = assert!(RECORDS_POSITION == BATCH_HEADER_BYTES);
const _: () = assert!(BATCH_LENGTH_POSITION + 4 == LOG_OVERHEAD_BYTES);
const _: () = assert!(HEADER_BYTES_UP_TO_MAGIC == 17);
const _: () = assert!(BATCH_RECORDS_MAX as usize <= BATCH_BYTES_MAX as usize / RECORD_BYTES_MIN);
const _: () = assert!(BATCH_RECORDS_MAX <= i32::MAX as u32);
const _: () = assert!(RECORD_HEADERS_MAX <= i32::MAX as u32);
const _: () = assert!(BATCH_BYTES_MAX <= i32::MAX as u32);

/// The 61-byte header of a RecordBatch v2, field by field, as stored.
///
/// Headers returned by [`read_header`] satisfy: `batch_length >= 49`, `magic == 2`,
/// `partition_leader_epoch >= -1` and `base_offset + last_offset_delta + 1` fits an
/// `i64`. Those from [`validate_batch`] also have a valid CRC, `records_count` and
/// `last_offset_delta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the record with offset delta 0.
    pub base_offset: i64,
    /// Bytes after this field: the batch's size minus 12.
    pub batch_length: i32,
    /// Leader epoch stamped by the broker; -1 for none. Not covered by the CRC.
    pub partition_leader_epoch: i32,
    /// Format version; always 2 here.
    pub magic: i8,
    /// CRC-32C of the bytes from `attributes` to the end of the batch.
    pub crc: u32,
    /// Compression codec (bits 0-2), timestamp type (bit 3), transactional (bit 4),
    /// control (bit 5), delete horizon (bit 6).
    pub attributes: i16,
    /// `last_offset() - base_offset`; kept when compaction removes records.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (or the delete horizon when bit 6 is set).
    pub base_timestamp: i64,
    /// Largest record timestamp (CreateTime) or the append time (LogAppendTime).
    pub max_timestamp: i64,
    /// Producer id; -1 for none.
    pub producer_id: i64,
    /// Producer epoch; -1 for none.
    pub producer_epoch: i16,
    /// Sequence number of the first record; -1 for none.
    pub base_sequence: i32,
    /// Number of records stored in the batch.
    pub records_count: i32,
}

impl BatchHeader {
    /// Size of the whole batch in bytes: 12 + `batch_length` (0 + 12 for a negative
    /// length, which [`read_header`] never returns).
    pub fn size(&self) -> usize {
        LOG_OVERHEAD_BYTES + usize::try_from(self.batch_length).unwrap_or(0)
    }

    /// Offset of the batch's last record, `base_offset + last_offset_delta`. Never
    /// overflows for a header from [`read_header`] (it wraps for hand-made ones).
    pub fn last_offset(&self) -> i64 {
        self.base_offset.wrapping_add(i64::from(self.last_offset_delta))
    }

    /// The offset after the batch, `last_offset() + 1`. Never overflows for a header
    /// from [`read_header`] (it wraps for hand-made ones).
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// Compression codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd (5-7 are undefined).
    pub fn compression(&self) -> u8 {
        // Masked to three bits, so the cast keeps the value.
        (self.attributes & COMPRESSION_MASK) as u8
    }

    /// Whether the timestamp type is LogAppendTime: every record's timestamp then
    /// reads as `max_timestamp`.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & LOG_APPEND_TIME_FLAG != 0
    }

    /// Whether this is a control batch (transaction markers, no user records).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }
}

/// Why a batch was rejected, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte position of the bad field, relative to the start of the slice passed in
    /// (0 for a truncated batch or a bad base offset).
    pub position: u64,
    /// What was wrong.
    pub reason: CorruptReason,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad record batch at byte {}: {}", self.position, self.reason)
    }
}

impl std::error::Error for DecodeError {}

/// What [`read_header`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// The bytes end before the batch does: a torn tail, or simply the end of the data.
    Incomplete {
        /// Bytes needed to go on: the batch's size if the header could be read, else 17
        /// (the bytes up to and including magic).
        needed: u64,
        /// Bytes that are there.
        available: u64,
    },
    /// A structurally valid header of a batch that lies wholly inside the buffer (its CRC
    /// and records are not checked).
    Batch(BatchHeader),
}

/// Reads and structurally checks the header of the batch at the start of `buf` (no CRC).
///
/// Kafka's reading rules, in this order: fewer than 17 bytes gives
/// [`Frame::Incomplete`]; batchLength below 49 is `BatchLengthTooSmall` (so all-zero bytes
/// fail here); batchLength over `BATCH_BYTES_MAX` is `BatchLengthTooLarge`; magic other
/// than 2 is `BadMagic`; a leader epoch below -1 is `BadLeaderEpoch`; a batch running
/// past the end of `buf` is [`Frame::Incomplete`] (a torn tail); then all 61 header bytes
/// are parsed, and `OffsetOverflow` is returned if the batch's next offset overflows.
///
/// # Errors
/// The [`CorruptReason`]s above, with `position` at the offending field.
///
/// # Panics
/// Never, for any input.
///
/// ```
/// # #[cfg(feature = "internals")] {
/// use tidelog::batch::{read_header, Frame};
/// assert!(matches!(read_header(&[0u8; 10]), Ok(Frame::Incomplete { needed: 17, available: 10 })));
/// assert!(read_header(&[0u8; 61]).is_err());
/// # }
/// ```
pub fn read_header(buf: &[u8]) -> Result<Frame, DecodeError> {
    let available = buf.len() as u64;
    let Some(start) = buf.first_chunk::<HEADER_BYTES_UP_TO_MAGIC>() else {
        return Ok(Frame::Incomplete {
            needed: HEADER_BYTES_UP_TO_MAGIC as u64,
            available,
        });
    };
    let batch_length = i32::from_be_bytes(field::<BATCH_LENGTH_POSITION, 4, HEADER_BYTES_UP_TO_MAGIC>(start));
    if batch_length < BATCH_LENGTH_MIN {
        return Err(error(
            BATCH_LENGTH_POSITION,
            CorruptReason::BatchLengthTooSmall { length: batch_length },
        ));
    }
    // batch_length >= 49 > 0, so the conversion is exact.
    if batch_length.unsigned_abs() > BATCH_BYTES_MAX {
        return Err(error(
            BATCH_LENGTH_POSITION,
            CorruptReason::BatchLengthTooLarge {
                length: batch_length,
                max: BATCH_BYTES_MAX,
            },
        ));
    }
    let magic = i8::from_be_bytes(field::<MAGIC_POSITION, 1, HEADER_BYTES_UP_TO_MAGIC>(start));
    if magic != MAGIC {
        return Err(error(MAGIC_POSITION, CorruptReason::BadMagic { found: magic }));
    }
    let epoch = i32::from_be_bytes(field::<
        PARTITION_LEADER_EPOCH_POSITION,
        4,
        HEADER_BYTES_UP_TO_MAGIC,
    >(start));
    if epoch < -1 {
        return Err(error(
            PARTITION_LEADER_EPOCH_POSITION,
            CorruptReason::BadLeaderEpoch { epoch },
        ));
    }
    let size = LOG_OVERHEAD_BYTES as u64 + u64::from(batch_length.unsigned_abs());
    if size > available {
        return Ok(Frame::Incomplete {
            needed: size,
            available,
        });
    }
    // size >= 61 and size <= buf.len(): the whole header is there.
    let Some(bytes) = buf.first_chunk::<BATCH_HEADER_BYTES>() else {
        return Ok(Frame::Incomplete {
            needed: size,
            available,
        });
    };
    let header = parse_header(bytes);
    let overflows = header
        .base_offset
        .checked_add(i64::from(header.last_offset_delta))
        .and_then(|last| last.checked_add(1))
        .is_none();
    if overflows {
        return Err(error(
            BASE_OFFSET_POSITION,
            CorruptReason::OffsetOverflow {
                base_offset: header.base_offset,
                last_offset_delta: header.last_offset_delta,
            },
        ));
    }
    Ok(Frame::Batch(header))
}

/// Fully validates the complete batch at the start of `buf` (`buf` may continue past it)
/// and returns its header.
///
/// Checks, in order: [`read_header`] (an incomplete batch is `BatchTruncated`); the
/// CRC-32C of bytes `[21, size)` (`CrcMismatch`); `records_count` between 0 and
/// `BATCH_RECORDS_MAX` (`BadRecordCount`); `last_offset_delta` at least 0 and at least
/// `records_count - 1` (`BadLastOffsetDelta`; fewer records than `last_offset_delta + 1`
/// is compaction's doing, and 0 records are allowed). A compressed batch's records are
/// decompressed first (`UnsupportedCompression` for a codec not in the build,
/// `Decompression` for a bad stream or one expanding past the bound). Then every record
/// is walked, without allocating: `records_count` must fit in the bytes (7 bytes a record at least,
/// `BadRecordCount`); each record length at least 6 and inside the batch; varints at most
/// 5 bytes (varlongs 10) and inside their record (`BadVarint`); base timestamp plus delta
/// must not overflow (`TimestampOverflow`); offset deltas strictly rising from 0 up, at most
/// `last_offset_delta` (`BadOffsetDelta`); key and value lengths at least -1 and inside the
/// record, headers count between 0, `RECORD_HEADERS_MAX` and the bytes left, header key
/// length at least 0 (a null header key is invalid), header value length at least -1
/// (`BadLength`); header keys UTF-8 (`HeaderKeyNotUtf8`); each record used up exactly and
/// the batch used up exactly after `records_count` records (`TrailingBytes`). The record
/// attributes byte is read and, as Kafka does, not interpreted.
///
/// # Errors
/// A [`DecodeError`] whose `position` is the byte position of the bad field in `buf`.
///
/// # Panics
/// Never, for any input.
pub fn validate_batch(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
    let (header, batch) = check_header_and_crc(buf)?;
    match expand(batch, &header)? {
        Some(expanded) => walk_records(&expanded, &header, &mut Validate).map_err(inside_compressed)?,
        None => walk_records(batch, &header, &mut Validate)?,
    }
    Ok(header)
}

/// A compressed batch's header followed by its decompressed records (so
/// [`walk_records`] reads it as it reads an uncompressed batch, and record
/// ranges point into it); `None` for an uncompressed batch. Decompressed
/// once per batch, at most `BATCH_BYTES_MAX` bytes.
fn expand(batch: &[u8], header: &BatchHeader) -> Result<Option<Vec<u8>>, DecodeError> {
    let codec = header.compression();
    if codec == 0 {
        return Ok(None);
    }
    let records = batch.get(RECORDS_POSITION..).unwrap_or_default();
    let limit = crate::limits::DECOMPRESSED_BYTES_MAX;
    let body = crate::compression::decompress(codec, records, limit).map_err(|reason| match reason {
        CorruptReason::UnsupportedCompression { .. } => error(ATTRIBUTES_POSITION, reason),
        _ => error(RECORDS_POSITION, reason),
    })?;
    let mut out = Vec::with_capacity(RECORDS_POSITION + body.len());
    out.extend_from_slice(batch.get(..RECORDS_POSITION).unwrap_or_default());
    out.extend_from_slice(&body);
    Ok(Some(out))
}

/// An error found in decompressed records: reported at the start of the
/// compressed data (positions inside the decompressed bytes name no byte
/// of the file).
fn inside_compressed(mut e: DecodeError) -> DecodeError {
    e.position = RECORDS_POSITION as u64;
    e
}

/// One record decoded from a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// Its offset: the batch's base offset plus its offset delta.
    pub offset: u64,
    /// Its timestamp in milliseconds (the batch's max timestamp under LogAppendTime).
    pub timestamp: i64,
    /// The key; `None` for a null key (distinct from an empty one).
    pub key: Option<Bytes>,
    /// The value; `None` for a tombstone.
    pub value: Option<Bytes>,
    /// The headers in stored order, duplicate keys kept; a value may be null.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Validates (exactly as [`validate_batch`]) and decodes the batch at the start of `buf`,
/// appending its records with offset `>= min_offset` to `out`.
///
/// Zero-copy: keys, values and header values are slices of `buf`. Under LogAppendTime
/// every record's timestamp is the batch's `max_timestamp`. Control batches are
/// validated but yield no records.
///
/// # Errors
/// Everything [`validate_batch`] returns; `OffsetOutOfOrder` (position 0) for a negative
/// base offset. A compressed batch is decompressed once; its records share that buffer. On error
/// `out` holds what it held before.
///
/// # Panics
/// Never, for any input.
pub fn decode_batch(
    buf: &Bytes,
    min_offset: u64,
    out: &mut Vec<BatchRecord>,
) -> Result<BatchHeader, DecodeError> {
    let (header, batch) = check_header_and_crc(buf)?;
    let Ok(base_offset) = u64::try_from(header.base_offset) else {
        return Err(error(
            BASE_OFFSET_POSITION,
            CorruptReason::OffsetOutOfOrder {
                base_offset: header.base_offset,
                expected_at_least: 0,
            },
        ));
    };
    // Compressed: decoded from the decompressed copy, which the records'
    // `Bytes` then share.
    let expanded = expand(batch, &header)?.map(Bytes::from);
    let compressed = expanded.is_some();
    let (buf, batch): (&Bytes, &[u8]) = match &expanded {
        Some(e) => (e, e),
        None => (buf, batch),
    };
    let before = out.len();
    let control = header.is_control();
    if !control {
        // Bounded: the count is at most BATCH_RECORDS_MAX, and walk_records checks it
        // against the bytes before the first record; reserve only for what is wanted.
        let last = base_offset.saturating_add(u64::from(header.last_offset_delta.unsigned_abs()));
        if last >= min_offset {
            let count = usize::try_from(header.records_count).unwrap_or(0);
            if count <= batch.len() / RECORD_BYTES_MIN {
                out.reserve(count);
            }
        }
    }
    let mut sink = Collect {
        buf,
        base_offset,
        min_offset,
        log_append_time: header.is_log_append_time().then_some(header.max_timestamp),
        control,
        keep: false,
        headers: Vec::new(),
        out,
    };
    match walk_records(batch, &header, &mut sink) {
        Ok(()) => Ok(header),
        Err(e) => {
            sink.out.truncate(before);
            Err(if compressed { inside_compressed(e) } else { e })
        }
    }
}

/// One record borrowed from a mapped segment, as [`crate::Log::fetch_each`]
/// hands it out: nothing is copied or allocated for it.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    offset: u64,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: &'a [(&'a str, Option<&'a [u8]>)],
}

impl<'a> RecordRef<'a> {
    /// Its offset in the partition.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// Its timestamp, in milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
    /// The key, if any.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }
    /// The value; `None` for a tombstone.
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }
    /// The headers, in order, duplicates kept.
    pub fn headers(&self) -> &'a [(&'a str, Option<&'a [u8]>)] {
        self.headers
    }
}

/// Reusable buffers of [`visit_batch`] (kept across batches of one read).
#[derive(Debug, Default)]
pub(crate) struct VisitScratch {
    records: Vec<Pending>,
    /// (key range, value range) of every wanted header of the batch.
    headers: Vec<(Range<usize>, Option<Range<usize>>)>,
}

/// A wanted record, found while the batch is checked, visited once it passed.
#[derive(Debug)]
struct Pending {
    offset: u64,
    timestamp: i64,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    /// Its headers in `VisitScratch::headers`.
    headers: Range<usize>,
}

/// Validates the batch at the start of `buf` (exactly as [`validate_batch`],
/// in the same single pass that finds the records), then calls `f` with each
/// of its records whose offset is in `min_offset..upper`, at most `max` of
/// them. Returns how many were visited and the last one's offset. Nothing is
/// visited from a batch that fails.
pub(crate) fn visit_batch<F: FnMut(RecordRef<'_>)>(
    buf: &[u8],
    min_offset: u64,
    upper: u64,
    max: usize,
    scratch: &mut VisitScratch,
    f: &mut F,
) -> Result<(usize, Option<u64>), DecodeError> {
    let (header, batch) = check_header_and_crc(buf)?;
    let expanded = expand(batch, &header)?;
    let compressed = expanded.is_some();
    let buf: &[u8] = expanded.as_deref().unwrap_or(batch);
    let Ok(base_offset) = u64::try_from(header.base_offset) else {
        return Err(error(
            BASE_OFFSET_POSITION,
            CorruptReason::OffsetOutOfOrder {
                base_offset: header.base_offset,
                expected_at_least: 0,
            },
        ));
    };
    scratch.records.clear();
    scratch.headers.clear();
    let mut sink = Gather {
        origin: buf.as_ptr() as usize,
        base_offset,
        min_offset,
        upper,
        left: if header.is_control() { 0 } else { max },
        log_append_time: header.is_log_append_time().then_some(header.max_timestamp),
        keep: false,
        headers_from: 0,
        scratch,
    };
    walk_records(buf, &header, &mut sink).map_err(|e| if compressed { inside_compressed(e) } else { e })?;
    let mut headers: Vec<(&str, Option<&[u8]>)> = Vec::new();
    let mut last = None;
    for p in &scratch.records {
        headers.clear();
        for (k, v) in scratch.headers.get(p.headers.clone()).unwrap_or_default() {
            let key = buf
                .get(k.clone())
                .and_then(|k| std::str::from_utf8(k).ok())
                .unwrap_or_default();
            headers.push((key, v.clone().and_then(|v| buf.get(v))));
        }
        f(RecordRef {
            offset: p.offset,
            timestamp: p.timestamp,
            key: p.key.clone().and_then(|r| buf.get(r)),
            value: p.value.clone().and_then(|r| buf.get(r)),
            headers: &headers,
        });
        last = Some(p.offset);
    }
    Ok((scratch.records.len(), last))
}

/// Gathering the wanted records of a batch while it is checked.
struct Gather<'s> {
    /// Address of the batch's first byte (header keys arrive as `&str`).
    origin: usize,
    base_offset: u64,
    min_offset: u64,
    upper: u64,
    /// Records still wanted.
    left: usize,
    log_append_time: Option<i64>,
    keep: bool,
    headers_from: usize,
    scratch: &'s mut VisitScratch,
}

impl Sink for Gather<'_> {
    #[inline(always)]
    fn begin_headers(&mut self, offset_delta: i32, _count: usize) {
        let offset = self
            .base_offset
            .wrapping_add(u64::from(offset_delta.unsigned_abs()));
        self.keep = self.left > 0 && offset >= self.min_offset && offset < self.upper;
        self.headers_from = self.scratch.headers.len();
    }

    #[inline(always)]
    fn header(&mut self, key: &str, value: Option<Range<usize>>) {
        if self.keep {
            let start = (key.as_ptr() as usize).wrapping_sub(self.origin);
            self.scratch
                .headers
                .push((start..start.saturating_add(key.len()), value));
        }
    }

    #[inline(always)]
    fn record(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<Range<usize>>,
        value: Option<Range<usize>>,
    ) {
        if self.keep {
            self.scratch.records.push(Pending {
                offset: self
                    .base_offset
                    .wrapping_add(u64::from(offset_delta.unsigned_abs())),
                timestamp: self.log_append_time.unwrap_or(timestamp),
                key,
                value,
                headers: self.headers_from..self.scratch.headers.len(),
            });
            self.left -= 1;
        }
    }
}

/// Why [`encode_batch`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The compression codec is not in this build, or failed.
    #[error("cannot compress the batch: {reason}")]
    Compression {
        /// What went wrong.
        reason: String,
    },
    /// No records: a batch holds at least one.
    #[error("cannot encode an empty record batch")]
    Empty,
    /// More records than one batch may hold.
    #[error("{count} records are more than the {max} one batch may hold", max = BATCH_RECORDS_MAX)]
    TooManyRecords {
        /// Records given.
        count: usize,
    },
    /// The encoded batch would exceed `BATCH_BYTES_MAX`.
    #[error("record batch of {size} bytes is over the limit of {max} bytes", max = BATCH_BYTES_MAX)]
    TooLarge {
        /// Size the whole batch would have, header included.
        size: u64,
    },
    /// A record's timestamp minus the first record's overflows an `i64`.
    #[error("record timestamps are too far apart to encode as deltas")]
    TimestampOverflow,
    /// A field does not fit its length prefix: a key, value, header key or value over
    /// `i32::MAX` bytes, more than `RECORD_HEADERS_MAX` headers, or a base offset whose
    /// batch would pass `i64::MAX`.
    #[error("{field} is too large to encode")]
    FieldTooLarge {
        /// "key", "value", "header key", "header value", "headers count" or "base offset".
        field: &'static str,
    },
    /// A rewritten batch's record lies outside the batch's offsets, or records
    /// are not in rising offset order.
    #[error("record at offset {offset} cannot be written into this batch")]
    NotInBatch {
        /// The offending record's offset.
        offset: u64,
    },
}

/// Appends to `out` one uncompressed RecordBatch v2 of `records` at `base_offset`, and
/// returns its header.
///
/// Writes what a broker-stamped, non-idempotent producer batch holds: magic 2,
/// partitionLeaderEpoch 0, attributes 0 (CreateTime), producerId, producerEpoch and
/// baseSequence -1, offset deltas `0..n`, lastOffsetDelta `n - 1`, baseTimestamp the
/// first record's timestamp, maxTimestamp the largest. A record's timestamp is
/// `record.timestamp.unwrap_or(default_timestamp)`. One pass: the header is reserved,
/// the records written, then the header with length and CRC filled in; no allocation
/// per record.
///
/// # Errors
/// `Empty`; `TooManyRecords` over `BATCH_RECORDS_MAX`; `TooLarge` when the batch would
/// exceed `BATCH_BYTES_MAX`; `FieldTooLarge` for a key, value or header over `i32::MAX`
/// bytes, more than `RECORD_HEADERS_MAX` headers on a record, or a base offset past
/// `i64::MAX - n`; `TimestampOverflow`. On error nothing is appended to `out`.
///
/// # Panics
/// Never.
///
/// ```
/// # #[cfg(feature = "internals")] {
/// use tidelog::batch::{encode_batch, validate_batch};
/// let mut out = Vec::new();
/// let header = encode_batch(&mut out, 7, &[tidelog::Record::new("v").with_key("k")], 1_700_000_000_000)?;
/// assert_eq!((header.base_offset, header.size()), (7, out.len()));
/// assert_eq!(validate_batch(&out)?, header);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_batch(
    out: &mut Vec<u8>,
    base_offset: u64,
    records: &[Record],
    default_timestamp: i64,
) -> Result<BatchHeader, EncodeError> {
    let start = out.len();
    let result = encode_into(out, start, base_offset, records, default_timestamp);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Compresses, in place, the records of the uncompressed batch that
/// [`encode_batch`] appended to `out` at `start` (described by `header`):
/// the records section is replaced by its compressed form in Kafka's framing
/// for `compression`, and the attributes, batch length and CRC-32C are
/// rewritten. `Compression::None` leaves the batch as it is.
///
/// # Errors
/// `Compression` when the codec is not in this build or fails, `TooLarge`
/// when the compressed batch passes the batch limit; `out` is then as it was.
pub fn compress_batch(
    out: &mut Vec<u8>,
    start: usize,
    header: BatchHeader,
    compression: crate::compression::Compression,
) -> Result<BatchHeader, EncodeError> {
    if compression == crate::compression::Compression::None {
        return Ok(header);
    }
    let records_at = start + RECORDS_POSITION;
    let packed = crate::compression::compress(compression, out.get(records_at..).unwrap_or_default())
        .map_err(|reason| EncodeError::Compression { reason })?;
    let size = RECORDS_POSITION + packed.len();
    let batch_length = i32::try_from(size - LOG_OVERHEAD_BYTES)
        .ok()
        .filter(|_| size <= BATCH_BYTES_MAX as usize)
        .ok_or(EncodeError::TooLarge { size: size as u64 })?;
    out.truncate(records_at);
    out.extend_from_slice(&packed);
    let mut header = BatchHeader {
        batch_length,
        attributes: (header.attributes & !COMPRESSION_MASK) | i16::from(compression.codec()),
        crc: 0,
        ..header
    };
    let batch = out.get_mut(start..).unwrap_or_default();
    if let Some(slot) = batch.first_chunk_mut::<BATCH_HEADER_BYTES>() {
        *slot = header_bytes(&header);
    }
    header.crc = crc32c::crc32c(batch.get(ATTRIBUTES_POSITION..).unwrap_or_default());
    if let Some(slot) = batch.first_chunk_mut::<BATCH_HEADER_BYTES>() {
        put::<CRC_POSITION, 4>(slot, header.crc.to_be_bytes());
    }
    Ok(header)
}

/// Attribute bit 6 (KIP-534): baseTimestamp holds the tombstone delete horizon.
const DELETE_HORIZON_FLAG: i16 = 0x40;

/// Re-encodes the surviving `records` of the batch described by `template`, as
/// Kafka's cleaner does (KAFKA.md §7): offsets never change (base offset,
/// lastOffsetDelta and each record's offset delta are kept), nor do the leader
/// epoch, producer id, epoch and base sequence or the timestamp type;
/// maxTimestamp is recomputed from the survivors (kept for LogAppendTime). With
/// `delete_horizon`, attribute bit 6 is set and baseTimestamp holds the horizon
/// (record timestamps are unchanged: their deltas are re-based). No survivors
/// give Kafka's empty batch: a 61-byte header with recordsCount 0 and
/// baseTimestamp −1, keeping the batch's offset range. Survivors of a
/// compressed batch are compressed again with its codec.
///
/// # Errors
/// `NotInBatch` for a record outside `[base, base + lastOffsetDelta]` or
/// records out of order; `Compression` when the template's codec is not in
/// the build; the size and field errors of [`encode_batch`]. On error nothing
/// is appended to `out`.
pub fn encode_rewritten(
    out: &mut Vec<u8>,
    template: &BatchHeader,
    records: &[BatchRecord],
    delete_horizon: Option<i64>,
) -> Result<BatchHeader, EncodeError> {
    let start = out.len();
    let result = rewrite_into(out, start, template, records, delete_horizon).and_then(|header| {
        // A compressed batch's survivors are compressed with its codec again
        // (Kafka's cleaner does the same); an empty batch has nothing to compress.
        match crate::compression::Compression::from_codec(template.compression()) {
            _ if records.is_empty() => Ok(header),
            Some(codec) => compress_batch(out, start, header, codec),
            None => Err(EncodeError::Compression {
                reason: format!("unknown codec {}", template.compression()),
            }),
        }
    });
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn rewrite_into(
    out: &mut Vec<u8>,
    start: usize,
    template: &BatchHeader,
    records: &[BatchRecord],
    delete_horizon: Option<i64>,
) -> Result<BatchHeader, EncodeError> {
    let base = u64::try_from(template.base_offset).map_err(|_| EncodeError::NotInBatch { offset: 0 })?;
    let count = i32::try_from(records.len())
        .ok()
        .filter(|n| n.unsigned_abs() <= BATCH_RECORDS_MAX)
        .ok_or(EncodeError::TooManyRecords { count: records.len() })?;
    let log_append = template.is_log_append_time();
    let base_timestamp = match (delete_horizon, records.first()) {
        (Some(h), _) => h,
        (None, Some(first)) => first.timestamp,
        (None, None) => -1,
    };
    // Encoded uncompressed here; `encode_rewritten` compresses afterwards.
    let mut attributes = template.attributes & !DELETE_HORIZON_FLAG & !COMPRESSION_MASK;
    if delete_horizon.is_some() {
        attributes |= DELETE_HORIZON_FLAG;
    }
    out.extend_from_slice(&[0u8; BATCH_HEADER_BYTES]);
    let mut max_timestamp = if log_append { template.max_timestamp } else { -1 };
    let mut previous: Option<i32> = None;
    for r in records {
        let delta = r
            .offset
            .checked_sub(base)
            .and_then(|d| i32::try_from(d).ok())
            .filter(|d| *d <= template.last_offset_delta && previous.is_none_or(|p| p < *d))
            .ok_or(EncodeError::NotInBatch { offset: r.offset })?;
        previous = Some(delta);
        if !log_append {
            max_timestamp = max_timestamp.max(r.timestamp);
        }
        let timestamp_delta = r
            .timestamp
            .checked_sub(base_timestamp)
            .ok_or(EncodeError::TimestampOverflow)?;
        let key_length = length_of(r.key.as_ref(), "key")?;
        let value_length = length_of(r.value.as_ref(), "value")?;
        let headers_count = i32::try_from(r.headers.len())
            .ok()
            .filter(|n| n.unsigned_abs() <= RECORD_HEADERS_MAX)
            .ok_or(EncodeError::FieldTooLarge {
                field: "headers count",
            })?;
        let mut body = Vec::with_capacity(32);
        body.push(0); // record attributes
        put_varlong(&mut body, timestamp_delta);
        put_varint(&mut body, delta);
        put_bytes(&mut body, key_length, r.key.as_ref());
        put_bytes(&mut body, value_length, r.value.as_ref());
        put_varint(&mut body, headers_count);
        for (key, value) in &r.headers {
            let key_length =
                i32::try_from(key.len()).map_err(|_| EncodeError::FieldTooLarge { field: "header key" })?;
            put_varint(&mut body, key_length);
            body.extend_from_slice(key.as_bytes());
            put_bytes(
                &mut body,
                length_of(value.as_ref(), "header value")?,
                value.as_ref(),
            );
        }
        let body_length = i32::try_from(body.len()).map_err(|_| EncodeError::TooLarge {
            size: body.len() as u64,
        })?;
        put_varint(out, body_length);
        out.extend_from_slice(&body);
        if (out.len() - start) as u64 > u64::from(BATCH_BYTES_MAX) {
            return Err(EncodeError::TooLarge {
                size: (out.len() - start) as u64,
            });
        }
    }
    let written = out.len() - start;
    let batch_length = i32::try_from(written - LOG_OVERHEAD_BYTES)
        .map_err(|_| EncodeError::TooLarge { size: written as u64 })?;
    if records.is_empty() && !log_append {
        max_timestamp = template.max_timestamp;
    }
    let mut header = BatchHeader {
        batch_length,
        crc: 0,
        attributes,
        base_timestamp,
        max_timestamp,
        records_count: count,
        ..*template
    };
    let batch = out.get_mut(start..).unwrap_or_default();
    let Some(slot) = batch.first_chunk_mut::<BATCH_HEADER_BYTES>() else {
        return Err(EncodeError::TooLarge { size: written as u64 });
    };
    *slot = header_bytes(&header);
    header.crc = crc32c::crc32c(batch.get(ATTRIBUTES_POSITION..).unwrap_or_default());
    if let Some(slot) = batch.first_chunk_mut::<BATCH_HEADER_BYTES>() {
        put::<CRC_POSITION, 4>(slot, header.crc.to_be_bytes());
    }
    Ok(header)
}

impl BatchHeader {
    /// Whether attribute bit 6 is set: `base_timestamp` is the tombstone delete horizon.
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.attributes & DELETE_HORIZON_FLAG != 0).then_some(self.base_timestamp)
    }
}

/// Rewrites the base offset of the encoded batch at the start of `batch`, in place. The
/// field is outside the CRC, so nothing else changes (as when a broker assigns offsets).
///
/// Returns false, changing nothing, if `batch` is shorter than a batch header or the
/// batch's offsets would pass `i64::MAX` at `base_offset`.
pub fn set_base_offset(batch: &mut [u8], base_offset: u64) -> bool {
    let Some(header) = batch.first_chunk_mut::<BATCH_HEADER_BYTES>() else {
        return false;
    };
    let last_offset_delta =
        i32::from_be_bytes(field::<LAST_OFFSET_DELTA_POSITION, 4, BATCH_HEADER_BYTES>(header));
    let fits = i64::try_from(base_offset)
        .ok()
        .and_then(|base| base.checked_add(i64::from(last_offset_delta)))
        .and_then(|last| last.checked_add(1))
        .is_some();
    if !fits {
        return false;
    }
    put::<BASE_OFFSET_POSITION, 8>(header, base_offset.to_be_bytes());
    true
}

/// CRC-32C (Castagnoli) of `bytes`, as Kafka computes a batch's CRC.
///
/// ```
/// # #[cfg(feature = "internals")]
/// assert_eq!(tidelog::batch::crc32c(b"123456789"), 0xE306_9283);
/// ```
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn error(position: usize, reason: CorruptReason) -> DecodeError {
    DecodeError {
        position: position as u64,
        reason,
    }
}

/// The `N` bytes at `AT` of a fixed-size array. A field outside the array fails to compile.
#[inline(always)]
fn field<const AT: usize, const N: usize, const L: usize>(bytes: &[u8; L]) -> [u8; N] {
    const { assert!(AT + N <= L, "header field lies outside the array") };
    let mut value = [0u8; N];
    // In bounds by the compile-time assertion above.
    value.copy_from_slice(&bytes[AT..AT + N]);
    value
}

/// Writes `value` at `AT` of a header. A field outside the header fails to compile.
#[inline(always)]
fn put<const AT: usize, const N: usize>(header: &mut [u8; BATCH_HEADER_BYTES], value: [u8; N]) {
    const {
        assert!(
            AT + N <= BATCH_HEADER_BYTES,
            "header field lies outside the header"
        )
    };
    // In bounds by the compile-time assertion above.
    header[AT..AT + N].copy_from_slice(&value);
}

fn parse_header(h: &[u8; BATCH_HEADER_BYTES]) -> BatchHeader {
    const L: usize = BATCH_HEADER_BYTES;
    BatchHeader {
        base_offset: i64::from_be_bytes(field::<BASE_OFFSET_POSITION, 8, L>(h)),
        batch_length: i32::from_be_bytes(field::<BATCH_LENGTH_POSITION, 4, L>(h)),
        partition_leader_epoch: i32::from_be_bytes(field::<PARTITION_LEADER_EPOCH_POSITION, 4, L>(h)),
        magic: i8::from_be_bytes(field::<MAGIC_POSITION, 1, L>(h)),
        crc: u32::from_be_bytes(field::<CRC_POSITION, 4, L>(h)),
        attributes: i16::from_be_bytes(field::<ATTRIBUTES_POSITION, 2, L>(h)),
        last_offset_delta: i32::from_be_bytes(field::<LAST_OFFSET_DELTA_POSITION, 4, L>(h)),
        base_timestamp: i64::from_be_bytes(field::<BASE_TIMESTAMP_POSITION, 8, L>(h)),
        max_timestamp: i64::from_be_bytes(field::<MAX_TIMESTAMP_POSITION, 8, L>(h)),
        producer_id: i64::from_be_bytes(field::<PRODUCER_ID_POSITION, 8, L>(h)),
        producer_epoch: i16::from_be_bytes(field::<PRODUCER_EPOCH_POSITION, 2, L>(h)),
        base_sequence: i32::from_be_bytes(field::<BASE_SEQUENCE_POSITION, 4, L>(h)),
        records_count: i32::from_be_bytes(field::<RECORDS_COUNT_POSITION, 4, L>(h)),
    }
}

fn header_bytes(header: &BatchHeader) -> [u8; BATCH_HEADER_BYTES] {
    let mut h = [0u8; BATCH_HEADER_BYTES];
    put::<BASE_OFFSET_POSITION, 8>(&mut h, header.base_offset.to_be_bytes());
    put::<BATCH_LENGTH_POSITION, 4>(&mut h, header.batch_length.to_be_bytes());
    put::<PARTITION_LEADER_EPOCH_POSITION, 4>(&mut h, header.partition_leader_epoch.to_be_bytes());
    put::<MAGIC_POSITION, 1>(&mut h, header.magic.to_be_bytes());
    put::<CRC_POSITION, 4>(&mut h, header.crc.to_be_bytes());
    put::<ATTRIBUTES_POSITION, 2>(&mut h, header.attributes.to_be_bytes());
    put::<LAST_OFFSET_DELTA_POSITION, 4>(&mut h, header.last_offset_delta.to_be_bytes());
    put::<BASE_TIMESTAMP_POSITION, 8>(&mut h, header.base_timestamp.to_be_bytes());
    put::<MAX_TIMESTAMP_POSITION, 8>(&mut h, header.max_timestamp.to_be_bytes());
    put::<PRODUCER_ID_POSITION, 8>(&mut h, header.producer_id.to_be_bytes());
    put::<PRODUCER_EPOCH_POSITION, 2>(&mut h, header.producer_epoch.to_be_bytes());
    put::<BASE_SEQUENCE_POSITION, 4>(&mut h, header.base_sequence.to_be_bytes());
    put::<RECORDS_COUNT_POSITION, 4>(&mut h, header.records_count.to_be_bytes());
    h
}

/// [`read_header`] for a batch that must be complete, then the checks that need no record
/// walk: CRC, records count, last offset delta. Returns the header and the batch's bytes.
fn check_header_and_crc(buf: &[u8]) -> Result<(BatchHeader, &[u8]), DecodeError> {
    let header = match read_header(buf)? {
        Frame::Batch(header) => header,
        Frame::Incomplete { needed, available } => {
            return Err(error(0, CorruptReason::BatchTruncated { needed, available }));
        }
    };
    let size = header.size();
    let Some(batch) = buf.get(..size) else {
        return Err(error(
            0,
            CorruptReason::BatchTruncated {
                needed: size as u64,
                available: buf.len() as u64,
            },
        ));
    };
    let computed = crc32c::crc32c(batch.get(ATTRIBUTES_POSITION..).unwrap_or_default());
    if computed != header.crc && !sabotage::active(EngineSabotage::IgnoreCrc) {
        return Err(error(
            CRC_POSITION,
            CorruptReason::CrcMismatch {
                stored: header.crc,
                computed,
            },
        ));
    }
    let count = header.records_count;
    if count < 0 || count.unsigned_abs() > BATCH_RECORDS_MAX {
        return Err(error(
            RECORDS_COUNT_POSITION,
            CorruptReason::BadRecordCount { count },
        ));
    }
    // count >= 0 here, so count - 1 cannot overflow.
    if header.last_offset_delta < 0 || header.last_offset_delta < count - 1 {
        return Err(error(
            LAST_OFFSET_DELTA_POSITION,
            CorruptReason::BadLastOffsetDelta {
                last_offset_delta: header.last_offset_delta,
                records_count: count,
            },
        ));
    }
    Ok((header, batch))
}

/// What [`walk_records`] reports while it checks records. Positions are ranges of the
/// buffer the batch starts at.
trait Sink {
    /// A record's headers count has been read (after its offset delta, key and value).
    fn begin_headers(&mut self, offset_delta: i32, count: usize);
    /// One valid header of the current record.
    fn header(&mut self, key: &str, value: Option<Range<usize>>);
    /// The current record is complete and valid.
    fn record(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<Range<usize>>,
        value: Option<Range<usize>>,
    );
}

/// Validation only: every callback is empty and compiles away.
struct Validate;

impl Sink for Validate {
    #[inline(always)]
    fn begin_headers(&mut self, _: i32, _: usize) {}
    #[inline(always)]
    fn header(&mut self, _: &str, _: Option<Range<usize>>) {}
    #[inline(always)]
    fn record(&mut self, _: i32, _: i64, _: Option<Range<usize>>, _: Option<Range<usize>>) {}
}

/// Decoding: builds [`BatchRecord`]s of the wanted records as slices of `buf`.
struct Collect<'a> {
    buf: &'a Bytes,
    /// The batch's base offset, checked non-negative.
    base_offset: u64,
    min_offset: u64,
    /// `Some(max_timestamp)` under LogAppendTime.
    log_append_time: Option<i64>,
    control: bool,
    /// Whether the current record is pushed.
    keep: bool,
    /// Headers of the current record; allocated only when it has some.
    headers: Vec<(String, Option<Bytes>)>,
    out: &'a mut Vec<BatchRecord>,
}

impl Collect<'_> {
    /// Offset of a record; offset deltas are at most lastOffsetDelta, so no overflow.
    #[inline(always)]
    fn offset(&self, offset_delta: i32) -> u64 {
        self.base_offset
            .wrapping_add(u64::from(offset_delta.unsigned_abs()))
    }
}

impl Sink for Collect<'_> {
    #[inline(always)]
    fn begin_headers(&mut self, offset_delta: i32, count: usize) {
        self.keep = !self.control && self.offset(offset_delta) >= self.min_offset;
        if self.keep && count > 0 {
            self.headers = Vec::with_capacity(count);
        }
    }

    #[inline(always)]
    fn header(&mut self, key: &str, value: Option<Range<usize>>) {
        if self.keep {
            self.headers
                .push((key.to_owned(), value.map(|r| self.buf.slice(r))));
        }
    }

    #[inline(always)]
    fn record(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<Range<usize>>,
        value: Option<Range<usize>>,
    ) {
        if self.keep {
            self.out.push(BatchRecord {
                offset: self.offset(offset_delta),
                timestamp: self.log_append_time.unwrap_or(timestamp),
                key: key.map(|r| self.buf.slice(r)),
                value: value.map(|r| self.buf.slice(r)),
                headers: std::mem::take(&mut self.headers),
            });
        }
    }
}

/// A cursor over untrusted bytes that knows its position in the original buffer.
struct Reader<'a> {
    rest: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    #[inline(always)]
    fn fail(&self, reason: CorruptReason) -> DecodeError {
        error(self.position, reason)
    }

    #[inline(always)]
    fn skip(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        self.position += n;
        Some(taken)
    }

    #[inline(always)]
    fn varint(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        match decode_varint(self.rest) {
            Some((value, n)) => {
                self.skip(n);
                Ok(value)
            }
            None => Err(self.fail(CorruptReason::BadVarint { field })),
        }
    }

    #[inline(always)]
    fn varlong(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        match decode_varlong(self.rest) {
            Some((value, n)) => {
                self.skip(n);
                Ok(value)
            }
            None => Err(self.fail(CorruptReason::BadVarint { field })),
        }
    }

    /// A length-prefixed byte string that may be null (length -1); returns its range.
    #[inline(always)]
    fn nullable_bytes(
        &mut self,
        length_field: &'static str,
        field: &'static str,
    ) -> Result<Option<Range<usize>>, DecodeError> {
        let at = self.position;
        let length = self.varint(length_field)?;
        if length == -1 {
            return Ok(None);
        }
        let start = self.position;
        match usize::try_from(length).ok().and_then(|n| self.skip(n)) {
            Some(bytes) => Ok(Some(start..start + bytes.len())),
            None => Err(error(
                at,
                CorruptReason::BadLength {
                    field,
                    length: i64::from(length),
                    remaining: self.rest.len() as u64,
                },
            )),
        }
    }
}

/// Walks the `header.records_count` uncompressed records of `batch` (the batch's exact
/// bytes, header included), checking each as [`validate_batch`] documents and reporting
/// them to `sink`.
fn walk_records<S: Sink>(batch: &[u8], header: &BatchHeader, sink: &mut S) -> Result<(), DecodeError> {
    let mut reader = Reader {
        rest: batch.get(RECORDS_POSITION..).unwrap_or_default(),
        position: RECORDS_POSITION,
    };
    let count = u32::try_from(header.records_count).unwrap_or(0);
    if count as usize > reader.rest.len() / RECORD_BYTES_MIN {
        return Err(error(
            RECORDS_COUNT_POSITION,
            CorruptReason::BadRecordCount {
                count: header.records_count,
            },
        ));
    }
    let mut previous_delta: i64 = -1;
    for index in 0..count {
        let length_at = reader.position;
        let length = reader.varint("record length")?;
        let body = usize::try_from(length)
            .ok()
            .filter(|n| *n >= RECORD_BODY_BYTES_MIN)
            .and_then(|n| reader.skip(n));
        let Some(body) = body else {
            return Err(error(
                length_at,
                CorruptReason::BadLength {
                    field: "record",
                    length: i64::from(length),
                    remaining: reader.rest.len() as u64,
                },
            ));
        };
        let mut record = Reader {
            rest: body,
            position: reader.position - body.len(),
        };
        // The attributes byte: present (length >= 6), unused by Kafka.
        record.skip(1);

        let timestamp_at = record.position;
        let timestamp_delta = record.varlong("timestamp delta")?;
        let Some(timestamp) = header.base_timestamp.checked_add(timestamp_delta) else {
            return Err(error(timestamp_at, CorruptReason::TimestampOverflow));
        };

        let offset_delta_at = record.position;
        let offset_delta = record.varint("offset delta")?;
        if i64::from(offset_delta) <= previous_delta || offset_delta > header.last_offset_delta {
            return Err(error(
                offset_delta_at,
                CorruptReason::BadOffsetDelta {
                    record: index,
                    delta: i64::from(offset_delta),
                },
            ));
        }
        previous_delta = i64::from(offset_delta);

        let key = record.nullable_bytes("key length", "key")?;
        let value = record.nullable_bytes("value length", "value")?;

        let headers_at = record.position;
        let headers_count = record.varint("headers count")?;
        let headers = usize::try_from(headers_count)
            .ok()
            .filter(|n| *n <= RECORD_HEADERS_MAX as usize && *n <= record.rest.len());
        let Some(headers) = headers else {
            return Err(error(
                headers_at,
                CorruptReason::BadLength {
                    field: "headers count",
                    length: i64::from(headers_count),
                    remaining: record.rest.len() as u64,
                },
            ));
        };
        sink.begin_headers(offset_delta, headers);
        for _ in 0..headers {
            let key_at = record.position;
            let key_length = record.varint("header key length")?;
            let Some(key) = usize::try_from(key_length).ok().and_then(|n| record.skip(n)) else {
                return Err(error(
                    key_at,
                    CorruptReason::BadLength {
                        field: "header key",
                        length: i64::from(key_length),
                        remaining: record.rest.len() as u64,
                    },
                ));
            };
            let Ok(key) = std::str::from_utf8(key) else {
                return Err(error(
                    record.position - key.len(),
                    CorruptReason::HeaderKeyNotUtf8,
                ));
            };
            let value = record.nullable_bytes("header value length", "header value")?;
            sink.header(key, value);
        }
        if !record.rest.is_empty() {
            return Err(record.fail(CorruptReason::TrailingBytes {
                what: "record",
                count: record.rest.len() as u64,
            }));
        }
        sink.record(offset_delta, timestamp, key, value);
    }
    if !reader.rest.is_empty() {
        return Err(reader.fail(CorruptReason::TrailingBytes {
            what: "batch",
            count: reader.rest.len() as u64,
        }));
    }
    Ok(())
}

/// The body of [`encode_batch`]; the caller truncates `out` back to `start` on error.
fn encode_into(
    out: &mut Vec<u8>,
    start: usize,
    base_offset: u64,
    records: &[Record],
    default_timestamp: i64,
) -> Result<BatchHeader, EncodeError> {
    let Some(first) = records.first() else {
        return Err(EncodeError::Empty);
    };
    let count = records.len();
    let records_count = i32::try_from(count)
        .ok()
        .filter(|n| n.unsigned_abs() <= BATCH_RECORDS_MAX)
        .ok_or(EncodeError::TooManyRecords { count })?;
    let last_offset_delta = records_count - 1;
    let base = i64::try_from(base_offset)
        .ok()
        .filter(|base| base.checked_add(i64::from(records_count)).is_some())
        .ok_or(EncodeError::FieldTooLarge { field: "base offset" })?;
    let base_timestamp = first.timestamp.unwrap_or(default_timestamp);

    // Reserve what the batch will likely take, but never more than the limit allows.
    let estimate = records.iter().fold(BATCH_HEADER_BYTES, |sum, r| {
        let headers = r.headers.iter().fold(0usize, |s, (k, v)| {
            s.saturating_add(k.len() + v.as_ref().map_or(0, Bytes::len) + 2)
        });
        sum.saturating_add(r.key.as_ref().map_or(0, Bytes::len))
            .saturating_add(r.value.as_ref().map_or(0, Bytes::len))
            .saturating_add(headers)
            .saturating_add(12)
    });
    out.reserve(estimate.min(BATCH_BYTES_MAX as usize));
    out.extend_from_slice(&[0u8; BATCH_HEADER_BYTES]);

    let mut size = BATCH_HEADER_BYTES as u64;
    let mut max_timestamp = base_timestamp;
    for (offset_delta, record) in (0i32..).zip(records) {
        let timestamp = record.timestamp.unwrap_or(default_timestamp);
        let timestamp_delta = timestamp
            .checked_sub(base_timestamp)
            .ok_or(EncodeError::TimestampOverflow)?;
        max_timestamp = max_timestamp.max(timestamp);
        let key_length = length_of(record.key.as_ref(), "key")?;
        let value_length = length_of(record.value.as_ref(), "value")?;
        let headers_count = i32::try_from(record.headers.len())
            .ok()
            .filter(|n| n.unsigned_abs() <= RECORD_HEADERS_MAX)
            .ok_or(EncodeError::FieldTooLarge {
                field: "headers count",
            })?;

        let mut body = 1
            + varlong_size(timestamp_delta)
            + varint_size(offset_delta)
            + varint_size(key_length)
            + varint_size(value_length)
            + varint_size(headers_count);
        body += u64::from(key_length.max(0).unsigned_abs()) + u64::from(value_length.max(0).unsigned_abs());
        for (key, value) in &record.headers {
            let key_length =
                i32::try_from(key.len()).map_err(|_| EncodeError::FieldTooLarge { field: "header key" })?;
            let value_length = length_of(value.as_ref(), "header value")?;
            body += varint_size(key_length)
                + u64::from(key_length.unsigned_abs())
                + varint_size(value_length)
                + u64::from(value_length.max(0).unsigned_abs());
        }
        // A body over i32::MAX is over the batch limit too: report the size, write nothing.
        let record_length = i32::try_from(body).unwrap_or(i32::MAX);
        size = size
            .saturating_add(varint_size(record_length))
            .saturating_add(body);
        if size > u64::from(BATCH_BYTES_MAX) {
            // Over the limit: stop writing, keep checking and counting for the report.
            continue;
        }

        put_varint(out, record_length);
        out.push(0); // record attributes
        put_varlong(out, timestamp_delta);
        put_varint(out, offset_delta);
        put_bytes(out, key_length, record.key.as_ref());
        put_bytes(out, value_length, record.value.as_ref());
        put_varint(out, headers_count);
        for (key, value) in &record.headers {
            // Lengths checked above.
            put_varint(out, i32::try_from(key.len()).unwrap_or(i32::MAX));
            out.extend_from_slice(key.as_bytes());
            put_bytes(out, length_of(value.as_ref(), "header value")?, value.as_ref());
        }
    }
    if size > u64::from(BATCH_BYTES_MAX) {
        return Err(EncodeError::TooLarge { size });
    }
    let written = out.len() - start;
    debug_assert_eq!(written as u64, size, "encoded size must match the computed size");
    let batch_length = i32::try_from(written - LOG_OVERHEAD_BYTES)
        .map_err(|_| EncodeError::TooLarge { size: written as u64 })?;
    let mut header = BatchHeader {
        base_offset: base,
        batch_length,
        partition_leader_epoch: 0,
        magic: MAGIC,
        crc: 0,
        attributes: 0,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records_count,
    };
    let batch = out.get_mut(start..).unwrap_or_default();
    let Some(header_slot) = batch.first_chunk_mut::<BATCH_HEADER_BYTES>() else {
        return Err(EncodeError::TooLarge { size });
    };
    *header_slot = header_bytes(&header);
    header.crc = crc32c::crc32c(batch.get(ATTRIBUTES_POSITION..).unwrap_or_default());
    if let Some(header_slot) = batch.first_chunk_mut::<BATCH_HEADER_BYTES>() {
        put::<CRC_POSITION, 4>(header_slot, header.crc.to_be_bytes());
    }
    Ok(header)
}

/// The length prefix of a nullable byte string: -1 for null.
#[inline(always)]
fn length_of(bytes: Option<&Bytes>, field: &'static str) -> Result<i32, EncodeError> {
    match bytes {
        None => Ok(-1),
        Some(b) => i32::try_from(b.len()).map_err(|_| EncodeError::FieldTooLarge { field }),
    }
}

#[inline(always)]
fn put_bytes(out: &mut Vec<u8>, length: i32, bytes: Option<&Bytes>) {
    put_varint(out, length);
    if let Some(b) = bytes {
        out.extend_from_slice(b);
    }
}

// Varints (Kafka's ByteUtils): zigzag, then unsigned LEB128, low 7-bit group first.

#[inline(always)]
fn zigzag32(n: i32) -> u32 {
    ((n << 1) ^ (n >> 31)) as u32
}

#[inline(always)]
fn unzigzag32(u: u32) -> i32 {
    ((u >> 1) as i32) ^ -((u & 1) as i32)
}

#[inline(always)]
fn zigzag64(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

#[inline(always)]
fn unzigzag64(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Bytes of the varint of `n`.
#[inline(always)]
fn varint_size(n: i32) -> u64 {
    let bits = 32 - u64::from((zigzag32(n) | 1).leading_zeros());
    bits.div_ceil(7)
}

/// Bytes of the varlong of `n`.
#[inline(always)]
fn varlong_size(n: i64) -> u64 {
    let bits = 64 - u64::from((zigzag64(n) | 1).leading_zeros());
    bits.div_ceil(7)
}

#[inline(always)]
fn put_varint(out: &mut Vec<u8>, n: i32) {
    let mut u = zigzag32(n);
    if u < 0x80 {
        out.push(u as u8);
        return;
    }
    let mut bytes = [0u8; VARINT_BYTES_MAX];
    let mut len = 0;
    for slot in bytes.iter_mut() {
        len += 1;
        if u < 0x80 {
            *slot = u as u8;
            break;
        }
        // Low seven bits plus the continuation bit: the cast keeps exactly those.
        *slot = ((u & 0x7F) as u8) | 0x80;
        u >>= 7;
    }
    out.extend_from_slice(bytes.get(..len).unwrap_or_default());
}

#[inline(always)]
fn put_varlong(out: &mut Vec<u8>, n: i64) {
    let mut u = zigzag64(n);
    if u < 0x80 {
        out.push(u as u8);
        return;
    }
    let mut bytes = [0u8; VARLONG_BYTES_MAX];
    let mut len = 0;
    for slot in bytes.iter_mut() {
        len += 1;
        if u < 0x80 {
            *slot = u as u8;
            break;
        }
        *slot = ((u & 0x7F) as u8) | 0x80;
        u >>= 7;
    }
    out.extend_from_slice(bytes.get(..len).unwrap_or_default());
}

/// Decodes a varint at the start of `bytes`: the value and the bytes it took. `None` if it
/// is truncated, longer than 5 bytes, or its fifth byte sets bits beyond 32.
#[inline(always)]
fn decode_varint(bytes: &[u8]) -> Option<(i32, usize)> {
    let first = *bytes.first()?;
    if first < 0x80 {
        return Some((unzigzag32(u32::from(first)), 1));
    }
    let mut raw: u32 = 0;
    for (i, &b) in bytes.iter().take(VARINT_BYTES_MAX).enumerate() {
        raw |= u32::from(b & 0x7F) << (7 * i);
        if b < 0x80 {
            if i == VARINT_BYTES_MAX - 1 && b > 0x0F {
                return None;
            }
            return Some((unzigzag32(raw), i + 1));
        }
    }
    None
}

/// Decodes a varlong at the start of `bytes`: the value and the bytes it took. `None` if it
/// is truncated, longer than 10 bytes, or its tenth byte sets bits beyond 64.
#[inline(always)]
fn decode_varlong(bytes: &[u8]) -> Option<(i64, usize)> {
    let first = *bytes.first()?;
    if first < 0x80 {
        return Some((unzigzag64(u64::from(first)), 1));
    }
    let mut raw: u64 = 0;
    for (i, &b) in bytes.iter().take(VARLONG_BYTES_MAX).enumerate() {
        raw |= u64::from(b & 0x7F) << (7 * i);
        if b < 0x80 {
            if i == VARLONG_BYTES_MAX - 1 && b > 0x01 {
                return None;
            }
            return Some((unzigzag64(raw), i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ByteUtilsTest.testVarintSerde vectors (KAFKA.md §2).
    const VARINTS: &[(i32, &[u8])] = &[
        (0, &[0x00]),
        (-1, &[0x01]),
        (1, &[0x02]),
        (63, &[0x7E]),
        (-64, &[0x7F]),
        (64, &[0x80, 0x01]),
        (-65, &[0x81, 0x01]),
        (8191, &[0xFE, 0x7F]),
        (-8192, &[0xFF, 0x7F]),
        (8192, &[0x80, 0x80, 0x01]),
        (-8193, &[0x81, 0x80, 0x01]),
        (1048575, &[0xFE, 0xFF, 0x7F]),
        (-1048576, &[0xFF, 0xFF, 0x7F]),
        (1048576, &[0x80, 0x80, 0x80, 0x01]),
        (-1048577, &[0x81, 0x80, 0x80, 0x01]),
        (134217727, &[0xFE, 0xFF, 0xFF, 0x7F]),
        (-134217728, &[0xFF, 0xFF, 0xFF, 0x7F]),
        (134217728, &[0x80, 0x80, 0x80, 0x80, 0x01]),
        (-134217729, &[0x81, 0x80, 0x80, 0x80, 0x01]),
        (i32::MAX, &[0xFE, 0xFF, 0xFF, 0xFF, 0x0F]),
        (i32::MIN, &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
    ];

    /// ByteUtilsTest.testVarlongSerde vectors.
    const VARLONGS: &[(i64, &[u8])] = &[
        (0, &[0x00]),
        (-1, &[0x01]),
        (1, &[0x02]),
        (63, &[0x7E]),
        (-64, &[0x7F]),
        (64, &[0x80, 0x01]),
        (-65, &[0x81, 0x01]),
        (8191, &[0xFE, 0x7F]),
        (-8192, &[0xFF, 0x7F]),
        (8192, &[0x80, 0x80, 0x01]),
        (-8193, &[0x81, 0x80, 0x01]),
        (1048575, &[0xFE, 0xFF, 0x7F]),
        (-1048576, &[0xFF, 0xFF, 0x7F]),
        (1048576, &[0x80, 0x80, 0x80, 0x01]),
        (-1048577, &[0x81, 0x80, 0x80, 0x01]),
        (134217727, &[0xFE, 0xFF, 0xFF, 0x7F]),
        (-134217728, &[0xFF, 0xFF, 0xFF, 0x7F]),
        (134217728, &[0x80, 0x80, 0x80, 0x80, 0x01]),
        (-134217729, &[0x81, 0x80, 0x80, 0x80, 0x01]),
        (i32::MAX as i64, &[0xFE, 0xFF, 0xFF, 0xFF, 0x0F]),
        (i32::MIN as i64, &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
        (17179869183, &[0xFE, 0xFF, 0xFF, 0xFF, 0x7F]),
        (-17179869184, &[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
        (17179869184, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
        (-17179869185, &[0x81, 0x80, 0x80, 0x80, 0x80, 0x01]),
        (2199023255551, &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
        (-2199023255552, &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
        (2199023255552, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
        (-2199023255553, &[0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
        (281474976710655, &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
        (-281474976710656, &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
        (281474976710656, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
        (
            -281474976710657,
            &[0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        ),
        (
            36028797018963967,
            &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        ),
        (
            -36028797018963968,
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        ),
        (
            36028797018963968,
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        ),
        (
            -36028797018963969,
            &[0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        ),
        (
            4611686018427387903,
            &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        ),
        (
            -4611686018427387904,
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        ),
        (
            4611686018427387904,
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        ),
        (
            -4611686018427387905,
            &[0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        ),
        (
            i64::MAX,
            &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        ),
        (
            i64::MIN,
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        ),
    ];

    #[test]
    fn varint_vectors_encode_decode_and_size() {
        for &(value, bytes) in VARINTS {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out, bytes, "encoding {value}");
            assert_eq!(
                decode_varint(bytes),
                Some((value, bytes.len())),
                "decoding {value}"
            );
            assert_eq!(varint_size(value), bytes.len() as u64, "size of {value}");
            // Trailing bytes after the varint are not consumed.
            let mut longer = bytes.to_vec();
            longer.extend_from_slice(&[0xFF, 0x00]);
            assert_eq!(decode_varint(&longer), Some((value, bytes.len())));
        }
    }

    #[test]
    fn varlong_vectors_encode_decode_and_size() {
        for &(value, bytes) in VARLONGS {
            let mut out = Vec::new();
            put_varlong(&mut out, value);
            assert_eq!(out, bytes, "encoding {value}");
            assert_eq!(
                decode_varlong(bytes),
                Some((value, bytes.len())),
                "decoding {value}"
            );
            assert_eq!(varlong_size(value), bytes.len() as u64, "size of {value}");
        }
    }

    #[test]
    fn malformed_varints_are_rejected() {
        // Empty and truncated.
        assert_eq!(decode_varint(&[]), None);
        assert_eq!(decode_varint(&[0x80]), None);
        assert_eq!(decode_varint(&[0xFF, 0xFF, 0xFF, 0xFF]), None);
        // Six bytes: too long (ByteUtilsTest.testInvalidVarint).
        assert_eq!(decode_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), None);
        // Fifth byte with bits beyond 32.
        assert_eq!(decode_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x1F]), None);
        assert_eq!(decode_varint(&[0x80, 0x80, 0x80, 0x80, 0x10]), None);
        // Varlongs: empty, truncated, eleven bytes, tenth byte beyond 64 bits.
        assert_eq!(decode_varlong(&[]), None);
        assert_eq!(decode_varlong(&[0x80; 9]), None);
        let mut eleven = [0xFF; 11];
        eleven[10] = 0x01;
        assert_eq!(decode_varlong(&eleven), None);
        let mut tenth = [0xFF; 10];
        tenth[9] = 0x02;
        assert_eq!(decode_varlong(&tenth), None);
    }

    #[test]
    fn varints_round_trip_at_every_width_boundary() {
        for shift in 0..32 {
            for v in [
                (1i64 << shift) - 1,
                1i64 << shift,
                -(1i64 << shift),
                -(1i64 << shift) - 1,
            ] {
                if let Ok(v32) = i32::try_from(v) {
                    let mut out = Vec::new();
                    put_varint(&mut out, v32);
                    assert_eq!(decode_varint(&out), Some((v32, out.len())));
                    assert_eq!(varint_size(v32), out.len() as u64);
                }
            }
        }
        for shift in 0..64 {
            for v in [
                (1i128 << shift) - 1,
                1i128 << shift,
                -(1i128 << shift),
                -(1i128 << shift) - 1,
            ] {
                if let Ok(v64) = i64::try_from(v) {
                    let mut out = Vec::new();
                    put_varlong(&mut out, v64);
                    assert_eq!(decode_varlong(&out), Some((v64, out.len())));
                    assert_eq!(varlong_size(v64), out.len() as u64);
                }
            }
        }
    }

    #[test]
    fn crc32c_check_values() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b"Some String"), 608_512_271);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn header_positions_match_kafka() {
        assert_eq!(
            [
                BASE_OFFSET_POSITION,
                BATCH_LENGTH_POSITION,
                PARTITION_LEADER_EPOCH_POSITION,
                MAGIC_POSITION,
                CRC_POSITION,
                ATTRIBUTES_POSITION,
                LAST_OFFSET_DELTA_POSITION,
                BASE_TIMESTAMP_POSITION,
                MAX_TIMESTAMP_POSITION,
                PRODUCER_ID_POSITION,
                PRODUCER_EPOCH_POSITION,
                BASE_SEQUENCE_POSITION,
                RECORDS_COUNT_POSITION,
                RECORDS_POSITION,
            ],
            [0, 8, 12, 16, 17, 21, 23, 27, 35, 43, 51, 53, 57, 61]
        );
    }

    #[test]
    fn header_bytes_and_parse_header_are_inverse() {
        let header = BatchHeader {
            base_offset: 0x0102_0304_0506_0708,
            batch_length: 1234,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0xDEAD_BEEF,
            attributes: 0x38,
            last_offset_delta: 77,
            base_timestamp: -5,
            max_timestamp: i64::MAX,
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 9,
            records_count: 78,
        };
        assert_eq!(parse_header(&header_bytes(&header)), header);
        assert!(header.is_log_append_time() && header.is_transactional() && header.is_control());
        assert_eq!(header.compression(), 0);
        assert_eq!(header.size(), 1246);
        assert_eq!(header.next_offset(), 0x0102_0304_0506_0708 + 78);
    }

    #[test]
    fn encode_then_validate_and_decode() {
        let records = vec![
            Record::new("v0").with_key("k0").with_timestamp(10),
            Record::tombstone("k1")
                .with_header("h", "x")
                .with_null_header("h"),
            Record::default().with_timestamp(5),
        ];
        let mut out = vec![0xAA];
        let header = encode_batch(&mut out, 100, &records, 7).expect("encodes");
        assert_eq!(out[0], 0xAA);
        let batch = Bytes::from(out).slice(1..);
        assert_eq!(header.size(), batch.len());
        assert_eq!(validate_batch(&batch), Ok(header));
        assert_eq!(
            (
                header.base_timestamp,
                header.max_timestamp,
                header.last_offset_delta,
                header.records_count
            ),
            (10, 10, 2, 3)
        );
        let mut decoded = Vec::new();
        assert_eq!(decode_batch(&batch, 101, &mut decoded), Ok(header));
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].offset, 101);
        assert_eq!(decoded[0].timestamp, 7);
        assert_eq!(decoded[0].value, None);
        assert_eq!(
            decoded[0].headers,
            vec![("h".to_owned(), Some(Bytes::from("x"))), ("h".to_owned(), None)]
        );
        assert_eq!(
            (decoded[1].offset, decoded[1].timestamp, decoded[1].key.clone()),
            (102, 5, None)
        );
    }

    #[test]
    fn encode_errors_append_nothing() {
        let mut out = vec![1, 2, 3];
        assert_eq!(encode_batch(&mut out, 0, &[], 0), Err(EncodeError::Empty));
        let records = [
            Record::new("a").with_timestamp(i64::MIN),
            Record::new("b").with_timestamp(1),
        ];
        assert_eq!(
            encode_batch(&mut out, 0, &records, 0),
            Err(EncodeError::TimestampOverflow)
        );
        assert_eq!(
            encode_batch(&mut out, u64::MAX, &records[..1], 0),
            Err(EncodeError::FieldTooLarge { field: "base offset" })
        );
        assert_eq!(
            encode_batch(&mut out, i64::MAX as u64, &records[..1], 0),
            Err(EncodeError::FieldTooLarge { field: "base offset" })
        );
        let big = Record::new(Bytes::from(vec![0u8; BATCH_BYTES_MAX as usize]));
        match encode_batch(&mut out, 0, &[big], 0) {
            Err(EncodeError::TooLarge { size }) => assert!(size > u64::from(BATCH_BYTES_MAX)),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        let many = vec![Record::default(); BATCH_RECORDS_MAX as usize + 1];
        assert_eq!(
            encode_batch(&mut out, 0, &many, 0),
            Err(EncodeError::TooManyRecords { count: many.len() })
        );
        let headers = Record {
            headers: vec![(String::new(), None); RECORD_HEADERS_MAX as usize + 1],
            ..Record::default()
        };
        assert_eq!(
            encode_batch(&mut out, 0, &[headers], 0),
            Err(EncodeError::FieldTooLarge {
                field: "headers count"
            })
        );
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn largest_encodable_batch_is_accepted_and_one_byte_more_is_not() {
        // One record with a value sized so that the batch is exactly BATCH_BYTES_MAX.
        let limit = BATCH_BYTES_MAX as usize;
        // Overhead with a 4-byte value-length varint and a 4-byte record-length varint.
        let overhead = BATCH_HEADER_BYTES + 4 + 1 + 1 + 1 + 1 + 4 + 1;
        let record = Record::new(Bytes::from(vec![7u8; limit - overhead])).with_timestamp(0);
        let mut out = Vec::new();
        let header = encode_batch(&mut out, 0, std::slice::from_ref(&record), 0).expect("fits");
        assert_eq!(out.len(), limit);
        assert_eq!(validate_batch(&out), Ok(header));
        let record = Record::new(Bytes::from(vec![7u8; limit - overhead + 1])).with_timestamp(0);
        assert_eq!(
            encode_batch(&mut Vec::new(), 0, &[record], 0),
            Err(EncodeError::TooLarge {
                size: limit as u64 + 1
            })
        );
    }

    #[test]
    fn set_base_offset_rewrites_outside_the_crc() {
        let mut out = Vec::new();
        let header = encode_batch(&mut out, 0, &[Record::new("v"), Record::new("w")], 1).expect("encodes");
        assert!(set_base_offset(&mut out, 1 << 40));
        let moved = validate_batch(&out).expect("still valid");
        assert_eq!(
            moved,
            BatchHeader {
                base_offset: 1 << 40,
                ..header
            }
        );
        assert!(!set_base_offset(&mut out, i64::MAX as u64));
        assert!(!set_base_offset(&mut out, u64::MAX));
        assert!(!set_base_offset(&mut out[..60], 0));
        assert!(set_base_offset(&mut out, i64::MAX as u64 - 2));
        assert_eq!(validate_batch(&out).map(|h| h.next_offset()), Ok(i64::MAX));
    }

    #[test]
    fn overflowing_offsets_are_rejected_by_read_header() {
        let mut out = Vec::new();
        encode_batch(&mut out, 0, &[Record::new("v"), Record::new("w")], 1).expect("encodes");
        out[..8].copy_from_slice(&(i64::MAX - 1).to_be_bytes());
        assert_eq!(
            read_header(&out),
            Err(DecodeError {
                position: 0,
                reason: CorruptReason::OffsetOverflow {
                    base_offset: i64::MAX - 1,
                    last_offset_delta: 1
                }
            })
        );
    }
}
