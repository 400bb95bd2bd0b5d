//! Every hard limit of tidelog as a named constant, with why it exists.

/// Bytes of a RecordBatch v2 header (`RECORD_BATCH_OVERHEAD` in Kafka).
pub(crate) const BATCH_HEADER_BYTES: usize = 61;
/// Bytes before and including the batch length field (`LOG_OVERHEAD` in Kafka).
pub(crate) const LOG_OVERHEAD_BYTES: usize = 12;
/// Largest record batch written or accepted on read. Bounds a recovery scan's
/// buffer and the memory one append can pin.
pub(crate) const BATCH_BYTES_MAX: u32 = 64 * 1024 * 1024;
/// Positions in a segment are `u32` in the offset index, so no segment grows past this.
pub(crate) const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;
/// Smallest `segment_bytes` a topic may configure (API.md).
pub(crate) const SEGMENT_BYTES_MIN: u64 = 512;
/// Most records in one batch: every record takes at least 7 bytes, so a batch of
/// `BATCH_BYTES_MAX` cannot hold more.
pub(crate) const BATCH_RECORDS_MAX: u32 = BATCH_BYTES_MAX / 7;
/// Most headers on one record.
pub(crate) const RECORD_HEADERS_MAX: u32 = 64 * 1024;
/// Offset-index entry size.
pub(crate) const OFFSET_ENTRY_BYTES: usize = 8;
/// Time-index entry size.
pub(crate) const TIME_ENTRY_BYTES: usize = 12;
/// Largest index file (Kafka's `segment.index.bytes` default, 10 MiB).
pub(crate) const INDEX_BYTES_MAX: u64 = 10 * 1024 * 1024;
/// Index files grow, and have their disk space reserved, in steps of this many bytes.
/// A multiple of both entry sizes and of the page size.
pub(crate) const INDEX_GROW_BYTES: u64 = 24 * 4096;
/// Segments per partition.
pub(crate) const SEGMENTS_PER_PARTITION_MAX: usize = 1 << 20;
/// Size of one `pread` chunk when recovery scans a segment.
pub(crate) const RECOVERY_READ_BYTES: usize = 1 << 20;

const _: () = assert!(BATCH_BYTES_MAX as u64 <= SEGMENT_BYTES_MAX);
const _: () = assert!(BATCH_HEADER_BYTES > LOG_OVERHEAD_BYTES);
const _: () = assert!(INDEX_GROW_BYTES.is_multiple_of(OFFSET_ENTRY_BYTES as u64));
const _: () = assert!(INDEX_GROW_BYTES.is_multiple_of(TIME_ENTRY_BYTES as u64));
const _: () = assert!(INDEX_GROW_BYTES <= INDEX_BYTES_MAX);
const _: () = assert!(SEGMENT_BYTES_MIN as usize >= BATCH_HEADER_BYTES);

/// Most partitions of one topic.
pub(crate) const PARTITIONS_PER_TOPIC_MAX: u32 = 100_000;
/// Most topics in one log.
pub(crate) const TOPICS_MAX: usize = 100_000;
/// Longest topic name (Kafka's limit).
pub(crate) const TOPIC_NAME_BYTES_MAX: usize = 249;

/// The sync window of `Always` partitions and of the offsets store: at most
/// this many bytes of an active segment are ever written but not fsynced, so
/// recovery can tell damage at rest (older bytes) from a torn write.
pub(crate) const SYNC_WINDOW_BYTES: u64 = 4 * 1024 * 1024;

/// Most bytes a compressed batch's records may decompress to. Kafka bounds the
/// compressed size only; this bounds the memory one read of a hostile or
/// damaged batch can take (and keeps every allocation of it under 64 MiB,
/// the fuzzers' limit, even as a growing buffer doubles).
pub(crate) const DECOMPRESSED_BYTES_MAX: usize = 32 * 1024 * 1024;
