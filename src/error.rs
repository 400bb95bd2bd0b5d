//! The one error type of tidelog, and the reasons bytes on disk can be rejected.
//!
//! Every failure a caller can cause or meet is a variant whose message names the
//! path, position, topic, partition or offset involved. There is deliberately no
//! `From<std::io::Error>`: `?` would drop the path, so I/O errors are mapped at the
//! call site with [`Error::io`].

use std::fmt;
use std::path::{Path, PathBuf};

/// `Result` with tidelog's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in tidelog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call on `path` failed.
    #[error("I/O error on {}", path.display())]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk failed validation; nothing at `position` was trusted.
    #[error("corrupt data in {} at byte {position}: {reason}", path.display())]
    Corrupt {
        /// The file holding the bad bytes.
        path: PathBuf,
        /// Byte position of the bad structure in that file.
        position: u64,
        /// What exactly was wrong.
        reason: CorruptReason,
    },
    /// The log directory is locked by another open `Log`, in this process or another.
    #[error("log directory {} is locked by another open log", path.display())]
    Locked {
        /// The locked directory.
        path: PathBuf,
    },
    /// A topic name breaks Kafka's naming rules or uses the reserved `__` prefix.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// `create_topic` of a topic that already exists.
    #[error("topic {topic:?} already exists")]
    TopicExists {
        /// The topic.
        topic: String,
    },
    /// The topic does not exist.
    #[error("unknown topic {topic:?}")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// The topic exists but has no such partition.
    #[error("topic {topic:?} has no partition {partition} (it has {partitions})")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The requested partition.
        partition: u32,
        /// How many partitions the topic has.
        partitions: u32,
    },
    /// An encoded batch is larger than the topic's `max_record_bytes` or a hard limit.
    #[error(
        "record batch for {topic:?} partition {partition} is {size} bytes, over the limit of {max} bytes"
    )]
    RecordTooLarge {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// Encoded size of the batch, header included.
        size: u64,
        /// The limit that was exceeded.
        max: u64,
    },
    /// A record the topic cannot take (for example a keyless record in a compacted topic).
    #[error("invalid record for topic {topic:?}: {reason}")]
    InvalidRecord {
        /// The topic.
        topic: String,
        /// Why it was refused.
        reason: String,
    },
    /// An offset outside the readable range `[start, end]` of a partition.
    #[error("offset {offset} is out of range for {topic:?} partition {partition} (valid: {start}..={end})")]
    OffsetOutOfRange {
        /// The topic (empty for a bare partition log).
        topic: String,
        /// The partition.
        partition: u32,
        /// The requested offset.
        offset: u64,
        /// The log start offset.
        start: u64,
        /// The log end offset.
        end: u64,
    },
    /// A configuration value is out of bounds.
    #[error("invalid config {field}: {reason}")]
    InvalidConfig {
        /// The config field, by its builder name.
        field: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// A consumer committed or sought a partition it does not own.
    #[error("partition {partition} of topic {topic:?} is not assigned to this consumer")]
    NotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// `poll` on a consumer with neither a subscription nor an assignment.
    #[error("consumer of group {group:?} has neither a subscription nor an assignment")]
    NotSubscribed {
        /// The consumer's group.
        group: String,
    },
    /// The log was closed.
    #[error("the log at {} is closed", path.display())]
    Closed {
        /// The log directory.
        path: PathBuf,
    },
    /// An earlier fsync of this partition failed; it refuses writes until the log is reopened.
    #[error("partition {} is fenced after a failed fsync; reopen the log", path.display())]
    Fenced {
        /// The partition directory.
        path: PathBuf,
    },
}

impl Error {
    /// Wraps an `io::Error` with the path it was about.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A closure for `map_err` that wraps an `io::Error` with `path`.
    pub(crate) fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// A `Corrupt` error.
    pub(crate) fn corrupt(path: impl Into<PathBuf>, position: u64, reason: CorruptReason) -> Error {
        Error::Corrupt {
            path: path.into(),
            position,
            reason,
        }
    }
}

/// Why a structure read from disk was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptReason {
    /// The batch length field is below the minimum batch size.
    BatchLengthTooSmall {
        /// The stored `batchLength`.
        length: i32,
    },
    /// The batch length field is above the largest batch tidelog accepts.
    BatchLengthTooLarge {
        /// The stored `batchLength`.
        length: i32,
        /// The limit.
        max: u32,
    },
    /// The batch runs past the end of the data (a torn tail).
    BatchTruncated {
        /// Bytes the batch says it has.
        needed: u64,
        /// Bytes that are there.
        available: u64,
    },
    /// The magic byte is not 2 (RecordBatch v2).
    BadMagic {
        /// The stored magic.
        found: i8,
    },
    /// The CRC-32C over attributes..end does not match.
    CrcMismatch {
        /// CRC stored in the batch.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
    },
    /// The batch uses a compression codec this build cannot decode (an
    /// unknown codec, or one whose cargo feature is off).
    UnsupportedCompression {
        /// The codec bits of the attributes (1 gzip, 2 snappy, 3 lz4, 4 zstd).
        codec: u8,
    },
    /// The batch's compressed records could not be decompressed, or would
    /// expand past the batch size limit.
    Decompression {
        /// The codec bits of the attributes.
        codec: u8,
        /// What the codec reported.
        reason: String,
    },
    /// The records count is negative or cannot fit in the batch.
    BadRecordCount {
        /// The stored count.
        count: i32,
    },
    /// `lastOffsetDelta` is negative or smaller than `recordsCount - 1`.
    BadLastOffsetDelta {
        /// The stored `lastOffsetDelta`.
        last_offset_delta: i32,
        /// The stored `recordsCount`.
        records_count: i32,
    },
    /// The leader epoch is below -1.
    BadLeaderEpoch {
        /// The stored epoch.
        epoch: i32,
    },
    /// A varint runs past the end of its record or has too many bytes.
    BadVarint {
        /// The field being read.
        field: &'static str,
    },
    /// A length field is negative (where null is not allowed) or runs past the record.
    BadLength {
        /// The field being read.
        field: &'static str,
        /// The stored length.
        length: i64,
        /// Bytes left in the record.
        remaining: u64,
    },
    /// A record's offset delta is not above the previous one or exceeds `lastOffsetDelta`.
    BadOffsetDelta {
        /// Index of the record in the batch.
        record: u32,
        /// The stored delta.
        delta: i64,
    },
    /// A record or batch has bytes left over after all its fields.
    TrailingBytes {
        /// What had the extra bytes ("record" or "batch").
        what: &'static str,
        /// How many bytes were left.
        count: u64,
    },
    /// A header key is not valid UTF-8.
    HeaderKeyNotUtf8,
    /// A record's timestamp overflows when the delta is added to the base timestamp.
    TimestampOverflow,
    /// A batch's offsets are not above the previous batch's, or fall outside the segment.
    OffsetOutOfOrder {
        /// The batch's base offset.
        base_offset: i64,
        /// The lowest offset allowed here.
        expected_at_least: u64,
    },
    /// `baseOffset + lastOffsetDelta + 1` (the batch's next offset) overflows an `i64`.
    OffsetOverflow {
        /// The stored `baseOffset`.
        base_offset: i64,
        /// The stored `lastOffsetDelta`.
        last_offset_delta: i32,
    },
    /// A batch's offsets do not fit below the next segment or in a relative offset.
    OffsetOutsideSegment {
        /// The batch's last offset.
        last_offset: i64,
    },
    /// A sealed segment's length differs from the length recorded when it was sealed.
    SegmentLengthMismatch {
        /// The recorded length.
        expected: u64,
        /// The file's length.
        found: u64,
    },
    /// A tidelog metadata file (checkpoint, marker) failed its checks.
    BadMetadata {
        /// What was wrong.
        detail: String,
    },
}

impl fmt::Display for CorruptReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CorruptReason::*;
        match self {
            BatchLengthTooSmall { length } => write!(f, "batch length {length} is below the minimum of 49"),
            BatchLengthTooLarge { length, max } => {
                write!(f, "batch length {length} is over the limit of {max}")
            }
            BatchTruncated { needed, available } => {
                write!(f, "batch needs {needed} bytes but only {available} remain")
            }
            BadMagic { found } => write!(f, "magic byte is {found}, expected 2"),
            CrcMismatch { stored, computed } => {
                write!(
                    f,
                    "CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            UnsupportedCompression { codec } => {
                let name = match codec {
                    1 => "gzip",
                    2 => "snappy",
                    3 => "lz4",
                    4 => "zstd",
                    _ => "unknown",
                };
                write!(f, "unsupported compression codec {codec} ({name})")?;
                if (1..=4).contains(codec) {
                    write!(f, ": this build lacks the cargo feature {name:?}")?;
                }
                Ok(())
            }
            Decompression { codec, reason } => {
                write!(
                    f,
                    "compressed records (codec {codec}) do not decompress: {reason}"
                )
            }
            BadRecordCount { count } => write!(f, "records count {count} is invalid"),
            BadLastOffsetDelta {
                last_offset_delta,
                records_count,
            } => write!(
                f,
                "last offset delta {last_offset_delta} is invalid for {records_count} records"
            ),
            BadLeaderEpoch { epoch } => write!(f, "partition leader epoch {epoch} is below -1"),
            BadVarint { field } => write!(f, "malformed or truncated varint in {field}"),
            BadLength {
                field,
                length,
                remaining,
            } => write!(
                f,
                "{field} length {length} is invalid with {remaining} bytes remaining"
            ),
            BadOffsetDelta { record, delta } => {
                write!(
                    f,
                    "record {record} has offset delta {delta}, not rising within the batch"
                )
            }
            TrailingBytes { what, count } => write!(f, "{count} bytes left over at the end of the {what}"),
            HeaderKeyNotUtf8 => write!(f, "header key is not valid UTF-8"),
            TimestampOverflow => write!(f, "record timestamp overflows"),
            OffsetOutOfOrder {
                base_offset,
                expected_at_least,
            } => write!(
                f,
                "batch base offset {base_offset} is below the expected {expected_at_least}"
            ),
            OffsetOverflow {
                base_offset,
                last_offset_delta,
            } => write!(
                f,
                "batch base offset {base_offset} plus last offset delta {last_offset_delta} overflows"
            ),
            OffsetOutsideSegment { last_offset } => {
                write!(f, "batch last offset {last_offset} does not fit in this segment")
            }
            SegmentLengthMismatch { expected, found } => {
                write!(f, "sealed segment is {found} bytes, {expected} were recorded")
            }
            BadMetadata { detail } => write!(f, "bad metadata: {detail}"),
        }
    }
}
