//! A segment: one `.log` file of whole RecordBatch v2 batches, named by its base
//! offset, with its offset index (`.index`) and time index (`.timeindex`).
//!
//! Invariants:
//! - `size` is the published end: every byte below it is a whole batch that was
//!   fully written; readers never look past it, and only bytes past it are ever
//!   truncated while the file is mapped.
//! - Batches hold rising offsets in `[base_offset, next_offset)`; relative offsets
//!   fit in `i32` and positions in `u32` (the segment rolls before either would not).
//! - Index entries follow Kafka's rule (KAFKA.md §3): an offset entry every time
//!   more than `index_interval_bytes` were appended since the last one, keyed by
//!   the last offset of the batch at the entry's position; a time entry whenever
//!   the maximum timestamp grows past the last entry.
//!
//! Not thread-safe: the partition's lock serialises appends; readers take a
//! [`SegmentView`] (a cheap `Bytes` clone of the map) and decode without a lock.

use crate::batch::{self, BatchHeader, Frame};
use crate::error::{CorruptReason, Error, Result};
use crate::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use crate::limits::{BATCH_BYTES_MAX, BATCH_HEADER_BYTES, RECOVERY_READ_BYTES, SEGMENT_BYTES_MAX};
use crate::mmap::WriteMap;
#[cfg(feature = "internals")]
use crate::sabotage::{self, EngineSabotage};
use crate::vfs::{Vfs, VfsFile};
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod resync;

use resync::{Bounds, Damaged, SliceSource};

/// Smallest step by which an active `.log` file's space is reserved.
const LOG_GROW_BYTES_MIN: u64 = 64 * 1024;
/// Largest step by which an active `.log` file's space is reserved.
const LOG_GROW_BYTES_MAX: u64 = 8 * 1024 * 1024;
/// Batches at least this large are written with `pwrite`, smaller ones stored
/// through the write map. A store into fresh mapped pages takes two page
/// faults per 4 KiB page (a read fault that zero-fills the reserved page, then
/// the filesystem's write fault), which costs more than one syscall once a
/// batch spans a page; below this a store needs no syscall at all.
const PWRITE_BATCH_BYTES_MIN: usize = 4096;

/// Suffix of the data file.
pub(crate) const LOG_SUFFIX: &str = ".log";
/// Suffix of the offset index.
pub(crate) const INDEX_SUFFIX: &str = ".index";
/// Suffix of the time index.
pub(crate) const TIME_INDEX_SUFFIX: &str = ".timeindex";

/// `<20-digit base offset><suffix>`, as Kafka names segment files.
pub(crate) fn file_name(base_offset: u64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// Parses a base offset from a Kafka segment file name with `suffix`.
pub(crate) fn parse_file_name(name: &str, suffix: &str) -> Option<u64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Settings a segment needs from its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentSettings {
    pub(crate) index_interval_bytes: u32,
    pub(crate) index_bytes: u64,
    pub(crate) segment_bytes: u64,
}

/// State accumulated while appending or scanning batches, from which the indexes
/// are written (Kafka's rule) and the segment's timestamps known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AppendState {
    pub(crate) bytes_since_last_index_entry: u64,
    /// Largest batch max timestamp so far, and the last offset of the first
    /// batch that reached it.
    pub(crate) max_timestamp: Option<(i64, u64)>,
    /// Max timestamp of the first batch (Kafka's `rollingBasedTimestamp`).
    pub(crate) first_batch_max_timestamp: Option<i64>,
}

impl AppendState {
    const EMPTY: AppendState = AppendState {
        bytes_since_last_index_entry: 0,
        max_timestamp: None,
        first_batch_max_timestamp: None,
    };

    /// Kafka's indexing step for one batch at `position`: returns the offset
    /// entry and time entry to add, if any.
    fn step(
        &mut self,
        header: &BatchHeader,
        position: u32,
        interval: u32,
    ) -> (Option<OffsetEntry>, Option<TimeEntry>) {
        let last_offset = header.last_offset() as u64;
        if self.max_timestamp.is_none_or(|(ts, _)| header.max_timestamp > ts) {
            self.max_timestamp = Some((header.max_timestamp, last_offset));
        }
        if self.first_batch_max_timestamp.is_none() {
            self.first_batch_max_timestamp = Some(header.max_timestamp);
        }
        let mut entries = (None, None);
        if self.bytes_since_last_index_entry > u64::from(interval) {
            entries.0 = Some(OffsetEntry {
                offset: last_offset,
                position,
            });
            entries.1 = self
                .max_timestamp
                .map(|(timestamp, offset)| TimeEntry { timestamp, offset });
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += header.size() as u64;
        entries
    }
}

/// A byte range of a segment that recovery found damaged and quarantined
/// (never rewritten): reads of offsets it may hold are `Corrupt` with `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    pub(crate) start: u64,
    /// Where valid batches resume (or the recorded end of a cut file).
    pub(crate) end: u64,
    /// What was wrong with the first damaged batch.
    pub(crate) reason: CorruptReason,
}

/// A read-only snapshot of a segment for readers: its bytes up to the published end.
#[derive(Clone)]
pub(crate) struct SegmentView {
    pub(crate) path: Arc<Path>,
    pub(crate) base_offset: u64,
    /// Upper bound of offsets held (the next segment's base, or the log end).
    pub(crate) next_offset: u64,
    /// The log bytes `[0, published end)`.
    pub(crate) bytes: Bytes,
    /// Where to start scanning for the batch holding the requested offset.
    pub(crate) start_position: u64,
    /// Byte ranges known to be damaged (found by recovery).
    pub(crate) damage: Arc<[Damage]>,
    /// Offsets have no gaps (see [`fits_gapless`]).
    pub(crate) gapless: bool,
    /// The last offset of the batch at `start_position`, from the index entry.
    pub(crate) start_last: Option<u64>,
}

// Debug never prints mapped bytes: a map may extend past the end of its file,
// and touching those pages would be SIGBUS.
impl std::fmt::Debug for SegmentView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentView")
            .field("path", &self.path)
            .field("base_offset", &self.base_offset)
            .field("next_offset", &self.next_offset)
            .field("len", &self.bytes.len())
            .field("start_position", &self.start_position)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("log_path", &self.log_path)
            .field("base_offset", &self.base_offset)
            .field("next_offset", &self.next_offset)
            .field("size", &self.size)
            .field("allocated", &self.allocated)
            .field("sealed", &self.sealed)
            .field("damage", &self.damage)
            .finish_non_exhaustive()
    }
}

/// How reading one segment view ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ViewRead {
    /// `max` records were collected.
    Full,
    /// The view has no more batches; continue with the next segment.
    Exhausted,
    /// Damage was met after some records were collected; return those.
    StoppedAtDamage,
}

impl SegmentView {
    fn corrupt(&self, position: u64, reason: CorruptReason) -> Error {
        Error::corrupt(&*self.path, position, reason)
    }

    /// Decodes records with offset >= `min_offset` into `out`, until `out` holds
    /// `max` records or the view ends. A damaged batch before any record was
    /// collected is `Error::Corrupt` if it may hold `min_offset`; otherwise
    /// reading resumes at the next valid batch.
    pub(crate) fn read<C: Collect>(&self, min_offset: u64, max: usize, out: &mut C) -> Result<ViewRead> {
        let len = self.bytes.len() as u64;
        let mut position = self.start_position;
        let mut expected = self.base_offset;
        let mut exact = position == 0;
        let mut first_last = self.start_last;
        let upper = Some(self.next_offset);
        while position < len {
            if let Some(d) = self
                .damage
                .iter()
                .find(|d| d.start <= position && position < d.end)
            {
                if out.count() > 0 {
                    return Ok(ViewRead::StoppedAtDamage);
                }
                // Recovery chose `end` as where valid batches resume; the damaged
                // range may have held `min_offset` unless that batch starts at or
                // below it.
                let resumed = match batch::read_header(self.bytes.get(d.end as usize..).unwrap_or(&[])) {
                    Ok(Frame::Batch(h)) => Some(h),
                    Ok(Frame::Incomplete { .. }) | Err(_) => None,
                };
                match resumed {
                    Some(h) if h.base_offset >= 0 && (h.base_offset as u64) <= min_offset => {
                        position = d.end;
                        exact = false;
                        first_last = None;
                        continue;
                    }
                    _ => return Err(self.corrupt(d.start, d.reason.clone())),
                }
            }
            let rest = self.bytes.get(position as usize..).unwrap_or(&[]);
            let header = match batch::read_header(rest) {
                Ok(Frame::Batch(h)) if self.gapless && !fits_gapless(&h, first_last, exact, expected) => {
                    if first_last.is_some() {
                        // The index entry and the log disagree; the index is only
                        // a hint: read from the segment's start instead.
                        position = 0;
                        expected = self.base_offset;
                        exact = true;
                        first_last = None;
                        continue;
                    }
                    Err(CorruptReason::OffsetOutOfOrder {
                        base_offset: h.base_offset,
                        expected_at_least: expected,
                    })
                }
                Ok(Frame::Batch(h)) if h.base_offset >= 0 && (h.base_offset as u64) >= expected => Ok(h),
                Ok(Frame::Batch(h)) => Err(CorruptReason::OffsetOutOfOrder {
                    base_offset: h.base_offset,
                    expected_at_least: expected,
                }),
                Ok(Frame::Incomplete { needed, available }) => {
                    Err(CorruptReason::BatchTruncated { needed, available })
                }
                Err(e) => Err(e.reason),
            };
            let header = match header {
                Ok(h) if h.last_offset() < 0 || (h.last_offset() as u64) < min_offset => {
                    // Before the wanted offset: skipped, but only once its CRC
                    // confirms the length and offsets the skip relies on.
                    let end = (position as usize).saturating_add(h.size());
                    match self.bytes.get(position as usize..end).map(batch::validate_batch) {
                        Some(Ok(_)) if h.last_offset() >= 0 => {
                            position = end as u64;
                            expected = h.next_offset() as u64;
                            exact = true;
                            first_last = None;
                            continue;
                        }
                        Some(Err(e)) => e.reason,
                        _ => CorruptReason::OffsetOutsideSegment {
                            last_offset: h.last_offset(),
                        },
                    }
                }
                Ok(h) => {
                    let end = position as usize + h.size();
                    let last = h.last_offset() as u64;
                    let inside = last < self.next_offset && last - self.base_offset <= i32::MAX as u64;
                    let slice = self.bytes.slice(position as usize..end);
                    // decode_batch validates everything (CRC, records) in the same pass.
                    let decoded = if inside {
                        out.collect(&slice, min_offset, max).map_err(|e| e.reason)
                    } else {
                        Err(CorruptReason::OffsetOutsideSegment {
                            last_offset: h.last_offset(),
                        })
                    };
                    match decoded {
                        Ok(_) => {
                            position = end as u64;
                            expected = h.next_offset() as u64;
                            exact = true;
                            first_last = None;
                            if out.is_full(max) {
                                out.truncate(max);
                                return Ok(ViewRead::Full);
                            }
                            continue;
                        }
                        Err(reason) => reason,
                    }
                }
                Err(reason) => reason,
            };
            // A damaged batch at `position`.
            if out.count() > 0 {
                return Ok(ViewRead::StoppedAtDamage);
            }
            let resumed = resync::resync(
                &mut SliceSource(&self.bytes),
                Bounds {
                    base_offset: self.base_offset,
                    upper,
                },
                Damaged {
                    position,
                    expected,
                    exact,
                    gapless: self.gapless,
                },
            )?;
            match resumed {
                Some((q, h)) if (h.base_offset as u64) <= min_offset => {
                    position = q;
                    exact = false;
                    first_last = None;
                }
                _ => return Err(self.corrupt(position, header)),
            }
        }
        // Known damage at the end of a sealed segment (a cut file) may have held the offset.
        if out.count() == 0 && min_offset < self.next_offset {
            if let Some(d) = self
                .damage
                .iter()
                .filter(|d| d.end >= len)
                .max_by_key(|d| d.start)
            {
                return Err(self.corrupt(d.start, d.reason.clone()));
            }
        }
        Ok(ViewRead::Exhausted)
    }
}

/// Where a read puts the records it finds.
pub(crate) trait Collect {
    /// Validates one batch and takes its records with offsets `>= min_offset`
    /// while fewer than `max` are held; nothing is taken from a batch that fails.
    fn collect(
        &mut self,
        batch: &Bytes,
        min_offset: u64,
        max: usize,
    ) -> std::result::Result<(), batch::DecodeError>;
    /// Records held.
    fn count(&self) -> usize;
    /// Whether the read is done: `max` records held, or nothing more may be
    /// taken.
    fn is_full(&self, max: usize) -> bool {
        self.count() >= max
    }
    /// Keeps the first `max` records.
    fn truncate(&mut self, max: usize);
}

impl Collect for Vec<batch::BatchRecord> {
    fn collect(
        &mut self,
        batch: &Bytes,
        min_offset: u64,
        _max: usize,
    ) -> std::result::Result<(), batch::DecodeError> {
        batch::decode_batch(batch, min_offset, self).map(|_| ())
    }
    fn count(&self) -> usize {
        self.len()
    }
    fn truncate(&mut self, max: usize) {
        Vec::truncate(self, max);
    }
}

/// A read that hands each record to a closure, borrowed from the map.
pub(crate) struct Visitor<'f, F> {
    pub(crate) f: &'f mut F,
    /// Records at or past this offset are not visited (not yet durable).
    pub(crate) upper: u64,
    pub(crate) visited: usize,
    pub(crate) last: Option<u64>,
    pub(crate) scratch: batch::VisitScratch,
    /// A batch at or past `upper` was met: the read stops there.
    pub(crate) past_upper: bool,
}

impl<F: FnMut(batch::RecordRef<'_>)> Collect for Visitor<'_, F> {
    fn collect(
        &mut self,
        batch: &Bytes,
        min_offset: u64,
        max: usize,
    ) -> std::result::Result<(), batch::DecodeError> {
        if batch::read_header(batch).is_ok_and(|f| matches!(f, batch::Frame::Batch(h) if h.base_offset >= 0 && h.base_offset as u64 >= self.upper)) {
            // Not durable yet (`Always`): neither this batch nor any after it.
            self.past_upper = true;
            return Ok(());
        }
        let (n, last) = batch::visit_batch(
            batch,
            min_offset,
            self.upper,
            max.saturating_sub(self.visited),
            &mut self.scratch,
            self.f,
        )?;
        self.visited += n;
        self.last = last.or(self.last);
        Ok(())
    }
    fn count(&self) -> usize {
        self.visited
    }
    fn is_full(&self, max: usize) -> bool {
        self.visited >= max || self.past_upper
    }
    fn truncate(&mut self, _max: usize) {}
}

/// What is recorded about a sealed segment (in the checkpoint), to check its
/// files against without scanning them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SealedFacts {
    /// CRC-32C of the whole `.log` file.
    pub(crate) crc: Option<u32>,
    /// The largest record timestamp: the time index's last entry.
    pub(crate) max_timestamp: Option<i64>,
}

/// What a scan established about a segment that is reopened as the active one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resume {
    /// Valid length of the log (the file is cut to it).
    pub(crate) size: u64,
    pub(crate) next_offset: u64,
    pub(crate) state: AppendState,
    /// CRC-32C of the whole log, if the scan covered it from byte 0.
    pub(crate) crc: Option<u32>,
}

/// One segment.
pub(crate) struct Segment {
    base_offset: u64,
    log_path: Arc<Path>,
    log: Arc<dyn VfsFile>,
    /// Read map; for the active segment it covers the segment's capacity.
    map: Bytes,
    /// The active segment's writable map over the same capacity; appends are
    /// stores into it (no syscall per append), only into `allocated` space.
    write_map: Option<WriteMap>,
    /// Bytes of the log file reserved with `posix_fallocate` (active segment).
    allocated: u64,
    size: u64,
    next_offset: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    state: AppendState,
    created_ms: i64,
    sealed: bool,
    /// CRC-32C of the log bytes `[0, size)`, when known.
    crc: Option<u32>,
    /// Extends `crc` by appended batches from their stored CRCs.
    crc_run: crate::crc_extend::RunningCrc,
    settings: SegmentSettings,
    /// Byte ranges recovery found damaged (quarantined, never rewritten).
    damage: Arc<[Damage]>,
    /// Under the `AckBeforeWrite` negative control only: the last appended
    /// batch and its position, not yet stored.
    #[cfg(feature = "internals")]
    held_back: Option<(u64, Vec<u8>)>,
}

/// A segment with its files closed and unmapped (see [`Segment::into_dormant`]).
#[derive(Debug)]
pub(crate) struct Dormant {
    base_offset: u64,
    log_path: Arc<Path>,
    allocated: u64,
    size: u64,
    next_offset: u64,
    offset_index: crate::index::DormantIndex,
    time_index: crate::index::DormantIndex,
    state: AppendState,
    created_ms: i64,
    sealed: bool,
    crc: Option<u32>,
    settings: SegmentSettings,
    damage: Arc<[Damage]>,
}

impl Dormant {
    pub(crate) fn base_offset(&self) -> u64 {
        self.base_offset
    }
    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset
    }
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
    /// The largest record timestamp, if any.
    pub(crate) fn max_timestamp(&self) -> Option<i64> {
        self.state.max_timestamp.map(|(ts, _)| ts)
    }
}

/// The result of scanning a segment's log from position 0.
#[derive(Debug)]
pub(crate) struct Scan {
    /// End of the last valid batch before the first problem (or of the file).
    pub(crate) valid_end: u64,
    pub(crate) next_offset: u64,
    pub(crate) state: AppendState,
    pub(crate) offset_entries: Vec<OffsetEntry>,
    pub(crate) time_entries: Vec<TimeEntry>,
    /// CRC-32C of `[0, valid_end)`, when the scan started at 0.
    pub(crate) crc: Option<u32>,
    /// Quarantined ranges of damaged bytes followed by valid batches.
    pub(crate) damage: Vec<Damage>,
    /// The first invalid or incomplete batch, if the scan stopped before the end.
    pub(crate) stop: Option<ScanStop>,
}

/// Why and where a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanStop {
    pub(crate) position: u64,
    pub(crate) reason: CorruptReason,
    /// The stop is a batch cut short by the end of the file (a torn write).
    pub(crate) incomplete: bool,
}

impl Segment {
    /// Paths of the three files of the segment at `base_offset` in `dir`.
    pub(crate) fn paths(dir: &Path, base_offset: u64) -> [PathBuf; 3] {
        [
            dir.join(file_name(base_offset, LOG_SUFFIX)),
            dir.join(file_name(base_offset, INDEX_SUFFIX)),
            dir.join(file_name(base_offset, TIME_INDEX_SUFFIX)),
        ]
    }

    fn capacity(settings: &SegmentSettings) -> usize {
        let cap = settings
            .segment_bytes
            .saturating_add(u64::from(BATCH_BYTES_MAX))
            .min(SEGMENT_BYTES_MAX);
        usize::try_from(cap).unwrap_or(usize::MAX)
    }

    /// Creates a new, empty, active segment (`O_EXCL` on all three files). The
    /// caller fsyncs the directory before writing acknowledged data into it.
    pub(crate) fn create(
        vfs: &dyn Vfs,
        dir: &Path,
        base_offset: u64,
        settings: SegmentSettings,
        now_ms: i64,
    ) -> Result<Segment> {
        let [log_path, index_path, time_path] = Self::paths(dir, base_offset);
        // Stale files under this name (left by a truncation) are replaced.
        for p in [&log_path, &index_path, &time_path] {
            if vfs.exists(p)? {
                vfs.remove(p)?;
            }
        }
        let log = vfs.create_new(&log_path)?;
        let offset_index = OffsetIndex::create(vfs, &index_path, base_offset, settings.index_bytes)?;
        let time_index = TimeIndex::create(vfs, &time_path, base_offset, settings.index_bytes)?;
        let map = log.map_read(Self::capacity(&settings))?;
        let write_map = log.map_write(Self::capacity(&settings))?;
        Ok(Segment {
            base_offset,
            log_path: log_path.into(),
            log,
            map,
            write_map,
            allocated: 0,
            size: 0,
            next_offset: base_offset,
            offset_index,
            time_index,
            state: AppendState::EMPTY,
            created_ms: now_ms,
            sealed: false,
            crc: Some(0),
            settings,
            damage: Arc::from(Vec::new()),
            crc_run: crate::crc_extend::RunningCrc::default(),
            #[cfg(feature = "internals")]
            held_back: None,
        })
    }

    /// Opens an existing segment as the active one, from a scan (or tail scan)
    /// that established its valid length `size` and append state; the index
    /// files must hold valid, whole entries (rebuilt by the caller if needed).
    pub(crate) fn open_active(
        vfs: &dyn Vfs,
        dir: &Path,
        base_offset: u64,
        settings: SegmentSettings,
        resume: Resume,
        now_ms: i64,
    ) -> Result<Segment> {
        let Resume {
            size,
            next_offset,
            state,
            crc,
        } = resume;
        let [log_path, index_path, time_path] = Self::paths(dir, base_offset);
        let log = vfs.open(&log_path)?;
        if log.len()? != size {
            log.set_len(size)?;
        }
        let offset_index = OffsetIndex::open_active(vfs, &index_path, base_offset, settings.index_bytes)?;
        let time_index = TimeIndex::open_active(vfs, &time_path, base_offset, settings.index_bytes)?;
        let capacity = Self::capacity(&settings).max(usize::try_from(size).unwrap_or(usize::MAX));
        if size > 0 {
            log.allocate(size)?;
        }
        let map = log.map_read(capacity)?;
        let write_map = log.map_write(capacity)?;
        Ok(Segment {
            base_offset,
            log_path: log_path.into(),
            log,
            map,
            write_map,
            allocated: size,
            size,
            next_offset,
            offset_index,
            time_index,
            state,
            created_ms: now_ms,
            sealed: false,
            crc,
            settings,
            damage: Arc::from(Vec::new()),
            crc_run: crate::crc_extend::RunningCrc::default(),
            #[cfg(feature = "internals")]
            held_back: None,
        })
    }

    /// Opens a sealed segment without scanning its log. `next_offset` is the
    /// upper bound of its offsets (the next segment's base offset). Index files
    /// are checked structurally and rebuilt from the log if they fail.
    pub(crate) fn open_sealed(
        vfs: &dyn Vfs,
        dir: &Path,
        base_offset: u64,
        next_offset: u64,
        settings: SegmentSettings,
        known: SealedFacts,
        nonce: u64,
    ) -> Result<(Segment, bool)> {
        let crc = known.crc;
        let [log_path, index_path, time_path] = Self::paths(dir, base_offset);
        let log = vfs.open(&log_path)?;
        let size = log.len()?;
        let mut rebuilt = false;
        let indexes_ok = |vfs: &dyn Vfs| -> Result<Option<(OffsetIndex, TimeIndex)>> {
            if !vfs.exists(&index_path)? || !vfs.exists(&time_path)? {
                return Ok(None);
            }
            let oi = OffsetIndex::open_sealed(vfs, &index_path, base_offset)?;
            let ti = TimeIndex::open_sealed(vfs, &time_path, base_offset)?;
            // A sealed segment with batches always has its final time entry,
            // which holds the largest timestamp (when recorded at seal).
            let whole = oi.has_whole_entries()? && ti.has_whole_entries()? && (size == 0 || ti.len() > 0);
            if !whole || oi.check(size, next_offset).is_some() || ti.check(next_offset).is_some() {
                return Ok(None);
            }
            if known
                .max_timestamp
                .is_some_and(|max| ti.last().map(|e| e.timestamp) != Some(max))
            {
                return Ok(None);
            }
            Ok(Some((oi, ti)))
        };
        let (offset_index, time_index, state) = match indexes_ok(vfs)? {
            Some((oi, ti)) => {
                let state = AppendState {
                    bytes_since_last_index_entry: 0,
                    max_timestamp: ti.last().map(|e| (e.timestamp, e.offset)),
                    first_batch_max_timestamp: None,
                };
                (oi, ti, state)
            }
            None => {
                rebuilt = true;
                let scan = scan_log(
                    &*log,
                    base_offset,
                    settings.index_interval_bytes,
                    Some(next_offset),
                    ScanFrom::start(base_offset),
                    u64::MAX,
                )?;
                let mut time_entries = scan.time_entries.clone();
                push_final_time_entry(&mut time_entries, scan.state.max_timestamp);
                write_indexes(vfs, dir, base_offset, &scan.offset_entries, &time_entries, nonce)?;
                let oi = OffsetIndex::open_sealed(vfs, &index_path, base_offset)?;
                let ti = TimeIndex::open_sealed(vfs, &time_path, base_offset)?;
                (oi, ti, scan.state)
            }
        };
        let map = log.map_read(usize::try_from(size).unwrap_or(usize::MAX))?;
        let log = log.detached().unwrap_or(log);
        let segment = Segment {
            base_offset,
            log_path: log_path.into(),
            log,
            map,
            write_map: None,
            allocated: size,
            size,
            next_offset,
            offset_index,
            time_index,
            state,
            created_ms: 0,
            sealed: true,
            crc,
            settings,
            damage: Arc::from(Vec::new()),
            crc_run: crate::crc_extend::RunningCrc::default(),
            #[cfg(feature = "internals")]
            held_back: None,
        };
        Ok((segment, rebuilt))
    }

    /// Closes the segment's files and unmaps it, keeping in memory all that
    /// [`Segment::wake`] needs to open it again without reading it (an idle
    /// partition under the open-partition budget). Nothing is written or
    /// synced: unsynced bytes stay in the page cache, as they would have.
    #[cfg_attr(not(feature = "internals"), allow(unused_mut))]
    pub(crate) fn into_dormant(mut self) -> Result<Dormant> {
        #[cfg(feature = "internals")]
        if let Some((at, held)) = self.held_back.take() {
            self.store_at(at, &held)?;
        }
        Ok(Dormant {
            base_offset: self.base_offset,
            log_path: self.log_path.clone(),
            allocated: self.allocated,
            size: self.size,
            next_offset: self.next_offset,
            offset_index: self.offset_index.dormant(),
            time_index: self.time_index.dormant(),
            state: self.state,
            created_ms: self.created_ms,
            sealed: self.sealed,
            crc: self.crc,
            settings: self.settings,
            damage: self.damage.clone(),
        })
    }

    /// Opens and maps a dormant segment again; its files are the ones this
    /// process wrote, unchanged since.
    pub(crate) fn wake(vfs: &dyn Vfs, dir: &Path, d: Dormant) -> Result<Segment> {
        let [log_path, index_path, time_path] = Self::paths(dir, d.base_offset);
        let log = vfs.open(&log_path)?;
        let offset_index = OffsetIndex::wake(vfs, &index_path, d.base_offset, d.offset_index)?;
        let time_index = TimeIndex::wake(vfs, &time_path, d.base_offset, d.time_index)?;
        let size = usize::try_from(d.size).unwrap_or(usize::MAX);
        let (log, map, write_map) = if d.sealed {
            let map = log.map_read(size)?;
            (log.detached().unwrap_or(log), map, None)
        } else {
            let capacity = Self::capacity(&d.settings).max(size);
            let map = log.map_read(capacity)?;
            let write_map = log.map_write(capacity)?;
            (log, map, write_map)
        };
        Ok(Segment {
            base_offset: d.base_offset,
            log_path: d.log_path,
            log,
            map,
            write_map,
            allocated: d.allocated,
            size: d.size,
            next_offset: d.next_offset,
            offset_index,
            time_index,
            state: d.state,
            created_ms: d.created_ms,
            sealed: d.sealed,
            crc: d.crc,
            settings: d.settings,
            damage: d.damage,
            crc_run: crate::crc_extend::RunningCrc::default(),
            #[cfg(feature = "internals")]
            held_back: None,
        })
    }

    pub(crate) fn base_offset(&self) -> u64 {
        self.base_offset
    }
    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset
    }
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
    pub(crate) fn log_file(&self) -> Arc<dyn VfsFile> {
        self.log.clone()
    }
    pub(crate) fn is_sealed(&self) -> bool {
        self.sealed
    }
    pub(crate) fn crc(&self) -> Option<u32> {
        self.crc
    }
    /// The largest record timestamp in the segment, if it has any batch.
    pub(crate) fn max_timestamp(&self) -> Option<i64> {
        self.state.max_timestamp.map(|(ts, _)| ts)
    }

    /// The length to record for this sealed segment: its size, or the end of
    /// a missing tail recovery found (so every later open finds it missing too).
    pub(crate) fn recorded_len(&self) -> u64 {
        self.damage.iter().map(|d| d.end).fold(self.size, u64::max)
    }

    /// Records byte ranges found damaged by recovery.
    pub(crate) fn set_damage(&mut self, damage: Vec<Damage>) {
        self.damage = Arc::from(damage);
    }

    /// Sets the upper offset bound of a sealed segment (its successor's base).
    pub(crate) fn set_next_offset_bound(&mut self, next_offset: u64) {
        debug_assert!(self.sealed, "only a sealed segment's bound is set from outside");
        self.next_offset = next_offset;
    }

    /// Kafka's roll test (KAFKA.md §4) for appending `header` now.
    pub(crate) fn should_roll(&self, header: &BatchHeader, segment_ms: u64, now_ms: i64) -> bool {
        if self.size == 0 {
            return self.relative_overflow(header);
        }
        let incoming = header.size() as u64;
        let size_full = self.size > self.settings.segment_bytes.saturating_sub(incoming)
            || self.size + incoming > SEGMENT_BYTES_MAX;
        let waited = match self.state.first_batch_max_timestamp {
            Some(first) if first >= 0 => header.max_timestamp.saturating_sub(first),
            _ => now_ms.saturating_sub(self.created_ms),
        };
        let time_full = waited > i64::try_from(segment_ms).unwrap_or(i64::MAX);
        size_full
            || time_full
            || self.offset_index.is_full()
            || self.time_index.is_full()
            || self.relative_overflow(header)
    }

    /// Whether this non-empty segment has been open longer than `segment_ms`
    /// (a quiet partition's roll by maintenance; an empty one never rolls).
    pub(crate) fn is_older_than(&self, segment_ms: u64, now_ms: i64) -> bool {
        self.size > 0
            && !self.sealed
            && now_ms.saturating_sub(self.created_ms) > i64::try_from(segment_ms).unwrap_or(i64::MAX)
    }

    fn relative_overflow(&self, header: &BatchHeader) -> bool {
        let last = header.last_offset();
        last < 0 || (last as u64).saturating_sub(self.base_offset) > i32::MAX as u64
    }

    /// Appends one encoded, validated batch whose offsets start at `next_offset`.
    /// Nothing is published unless the whole write succeeded; a failed write is
    /// cut back to the published end. The `Err` carries whether that cut failed
    /// too (the partition must then be fenced).
    pub(crate) fn append(&mut self, batch: &[u8], header: &BatchHeader) -> Result<(), (Error, bool)> {
        assert!(!self.sealed, "append to a sealed segment");
        debug_assert_eq!(batch.len(), header.size(), "batch length matches its header");
        debug_assert!(header.base_offset as u64 >= self.next_offset, "offsets must rise");
        let position = u32::try_from(self.size).map_err(|_| {
            (
                Error::corrupt(
                    &*self.log_path,
                    self.size,
                    CorruptReason::OffsetOutsideSegment {
                        last_offset: header.last_offset(),
                    },
                ),
                false,
            )
        })?;
        if let Err(e) = self.store(batch) {
            return Err((e, false));
        }
        let (offset_entry, time_entry) =
            self.state
                .step(header, position, self.settings.index_interval_bytes);
        let indexed = (|| {
            if let Some(e) = offset_entry {
                self.offset_index.append(e.offset, e.position)?;
            }
            if let Some(e) = time_entry {
                self.time_index.maybe_append(e.timestamp, e.offset, false)?;
            }
            Ok::<(), Error>(())
        })();
        // An index that could not grow (a full disk) is rebuilt from the log at
        // the next open; the data itself was written and is published.
        let _ = indexed;
        if let Some(running) = self.crc {
            // The batch's stored CRC (bytes 17..21) covers its bytes from 21.
            let stored = batch
                .get(17..21)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes);
            self.crc = Some(match stored {
                Some(stored) => self.crc_run.extend(running, batch, stored),
                None => crc32c::crc32c_append(running, batch),
            });
        }
        self.size += batch.len() as u64;
        self.next_offset = header.last_offset() as u64 + 1;
        Ok(())
    }

    /// Copies `batch` to the published end, through the write map or, for a
    /// large batch, with `pwrite`; first reserves file space (in steps) so the
    /// store can never fault on a full disk. Nothing is published here; on
    /// error nothing was stored.
    fn store(&mut self, batch: &[u8]) -> Result<()> {
        #[cfg(feature = "internals")]
        if sabotage::active(EngineSabotage::AckBeforeWrite) {
            // Negative control: hold this batch back, store the one held before.
            if let Some((at, held)) = self.held_back.replace((self.size, batch.to_vec())) {
                self.store_at(at, &held)?;
            }
            return Ok(());
        }
        self.store_at(self.size, batch)
    }

    /// Stores `batch` at byte `start` (see [`Segment::store`]).
    fn store_at(&mut self, start: u64, batch: &[u8]) -> Result<()> {
        let end = start + batch.len() as u64;
        let capacity = Self::capacity(&self.settings) as u64;
        if end > self.allocated {
            // Geometric: a partition holding little reserves little (10,000
            // idle partitions must not reserve gigabytes), a busy one
            // reserves a few megabytes ahead.
            let step = end
                .min(self.settings.segment_bytes / 4)
                .clamp(LOG_GROW_BYTES_MIN, LOG_GROW_BYTES_MAX);
            let target = end.saturating_add(step).min(capacity.max(end));
            self.log.allocate(target)?;
            self.allocated = target;
        }
        let (Ok(from), Ok(to)) = (usize::try_from(start), usize::try_from(end)) else {
            return self.log.write_all_at(batch, start);
        };
        if batch.len() >= PWRITE_BATCH_BYTES_MIN {
            return self.log.write_all_at(batch, start);
        }
        match self
            .write_map
            .as_mut()
            .and_then(|m| m.bytes_mut().get_mut(from..to))
        {
            Some(slot) => {
                slot.copy_from_slice(batch);
                Ok(())
            }
            // No map over this range (a filesystem without maps): write it.
            None => self.log.write_all_at(batch, start),
        }
    }

    /// Drops the write map and cuts the reserved but unwritten tail, so the
    /// file is exactly its batches (at seal and close; never under a live store).
    fn trim_log(&mut self) -> Result<()> {
        #[cfg(feature = "internals")]
        if let Some((at, held)) = self.held_back.take() {
            self.store_at(at, &held)?;
        }
        self.write_map = None;
        if self.log.len()? != self.size {
            self.log.set_len(self.size)?;
        }
        self.allocated = self.size;
        Ok(())
    }

    /// fdatasync of the log file (it covers stores made through the map).
    pub(crate) fn sync(&self) -> Result<()> {
        self.log.sync_data()
    }

    /// Seals the segment: the final time entry, indexes trimmed and fsynced, the
    /// log trimmed and fsynced. Afterwards it is read-only.
    pub(crate) fn seal(&mut self) -> Result<()> {
        if self.sealed {
            return Ok(());
        }
        if let Some((ts, offset)) = self.state.max_timestamp {
            self.time_index.maybe_append(ts, offset, true)?;
        }
        self.offset_index.file().seal()?;
        self.time_index.file().seal()?;
        self.trim_log()?;
        self.log.sync_data()?;
        if self.crc.is_none() {
            // Reopened after a clean close: the digest was not carried; compute it.
            self.crc = Some(file_crc(&*self.log, self.size)?);
        }
        self.sealed = true;
        // Read-only from now on (trim_log dropped the writable map): no
        // descriptor held.
        self.log = self.log.detached().unwrap_or_else(|| self.log.clone());
        Ok(())
    }

    /// At a clean close of the active segment: the final time entry, indexes
    /// trimmed, everything fsynced; the segment stays appendable after a reopen.
    pub(crate) fn close_active(&mut self) -> Result<()> {
        if self.sealed {
            return Ok(());
        }
        if let Some((ts, offset)) = self.state.max_timestamp {
            self.time_index.maybe_append(ts, offset, true)?;
        }
        self.offset_index.file().trim_and_sync()?;
        self.time_index.file().trim_and_sync()?;
        self.trim_log()?;
        self.log.sync_data()
    }

    /// Best effort when a partition is dropped without close: cut the reserved
    /// tail so the file holds only its batches (recovery would cut it anyway).
    pub(crate) fn trim_on_drop(&mut self) {
        if !self.sealed {
            let _ = self.trim_log();
        }
    }

    /// A reader's snapshot from the batch that may hold `offset`; `gapless`:
    /// the partition's offsets have no gaps (see [`fits_gapless`]).
    pub(crate) fn view(&self, offset: u64, gapless: bool) -> Result<SegmentView> {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        let bytes = if self.map.len() < size {
            // A filesystem whose maps are snapshots: map again to see new appends.
            let map = self.log.map_read(size)?;
            map.slice(..size.min(map.len()))
        } else {
            self.map.slice(..size)
        };
        let entry = self
            .offset_index
            .lookup(offset)
            .filter(|e| index_lands_on_batch(&bytes, u64::from(e.position), offset));
        let start_position = entry.map_or(0, |e| u64::from(e.position));
        let start_last = entry.filter(|e| e.position > 0).map(|e| e.offset);
        Ok(SegmentView {
            path: self.log_path.clone(),
            base_offset: self.base_offset,
            next_offset: self.next_offset,
            bytes,
            start_position,
            damage: self.damage.clone(),
            gapless,
            start_last,
        })
    }

    /// Where to start scanning for the first record with timestamp >= `ts`.
    pub(crate) fn time_lookup(&self, ts: i64) -> u64 {
        self.time_index.lookup(ts).map_or(self.base_offset, |e| e.offset)
    }
}

/// Whether an index entry's position holds a batch header whose offsets do not
/// start past `offset` (a lazily verified index entry; a bad one is ignored).
fn index_lands_on_batch(bytes: &[u8], position: u64, offset: u64) -> bool {
    let Some(rest) = usize::try_from(position).ok().and_then(|p| bytes.get(p..)) else {
        return false;
    };
    matches!(batch::read_header(rest), Ok(Frame::Batch(h)) if h.base_offset >= 0 && (h.base_offset as u64) <= offset)
}

/// Appends the sealing time entry (the segment's max timestamp) if it is above the last.
pub(crate) fn push_final_time_entry(entries: &mut Vec<TimeEntry>, max: Option<(i64, u64)>) {
    if let Some((timestamp, offset)) = max {
        if entries.last().is_none_or(|l| l.timestamp < timestamp) {
            entries.push(TimeEntry { timestamp, offset });
        }
    }
}

/// Writes both index files of a segment by atomic replace.
pub(crate) fn write_indexes(
    vfs: &dyn Vfs,
    dir: &Path,
    base_offset: u64,
    offset_entries: &[OffsetEntry],
    time_entries: &[TimeEntry],
    nonce: u64,
) -> Result<()> {
    let [_, index_path, time_path] = Segment::paths(dir, base_offset);
    let mut bytes = Vec::with_capacity(offset_entries.len() * 8);
    OffsetIndex::encode(base_offset, offset_entries, &mut bytes);
    crate::index::write_rebuilt(vfs, &index_path, &bytes, nonce)?;
    bytes.clear();
    TimeIndex::encode(base_offset, time_entries, &mut bytes);
    crate::index::write_rebuilt(vfs, &time_path, &bytes, nonce.wrapping_add(1))
}

/// Checks the batch at the start of `buf` as it must be at this place of a
/// segment: a whole, valid batch whose offsets start at or above `expected`
/// (gaps are legal: compaction) and end below `upper` (if known) within the
/// segment's relative-offset range.
pub(crate) fn check_batch(
    buf: &[u8],
    base_offset: u64,
    expected: u64,
    upper: Option<u64>,
) -> Result<BatchHeader, ScanStop> {
    let stop = |reason, incomplete| ScanStop {
        position: 0,
        reason,
        incomplete,
    };
    match batch::read_header(buf) {
        Ok(Frame::Incomplete { needed, available }) => {
            return Err(stop(CorruptReason::BatchTruncated { needed, available }, true));
        }
        Ok(Frame::Batch(_)) => {}
        Err(e) => return Err(stop(e.reason, false)),
    }
    let header = batch::validate_batch(buf).map_err(|e| stop(e.reason, false))?;
    if header.base_offset < 0 || (header.base_offset as u64) < expected {
        return Err(stop(
            CorruptReason::OffsetOutOfOrder {
                base_offset: header.base_offset,
                expected_at_least: expected,
            },
            false,
        ));
    }
    let last = header.last_offset();
    let beyond_upper = upper.is_some_and(|u| last < 0 || last as u64 >= u);
    if beyond_upper || (last as u64).saturating_sub(base_offset) > i32::MAX as u64 {
        return Err(stop(
            CorruptReason::OffsetOutsideSegment { last_offset: last },
            false,
        ));
    }
    Ok(header)
}

/// Reads a file with `pread` in large chunks (recovery never scans through a
/// map: a bad sector is an error there, not SIGBUS).
struct ChunkReader<'a> {
    file: &'a dyn VfsFile,
    len: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> ChunkReader<'a> {
    fn new(file: &'a dyn VfsFile) -> Result<ChunkReader<'a>> {
        Ok(ChunkReader {
            len: file.len()?,
            file,
            buf: Vec::new(),
            buf_start: 0,
        })
    }

    /// Up to `want` bytes at `position` (fewer only at the end of the file).
    /// The size the batch at `position` claims (its header alone is read);
    /// `None` if the bytes there are no batch header at all.
    fn batch_size_at(&mut self, position: u64) -> Result<Option<usize>> {
        let head = self.get(position, BATCH_HEADER_BYTES)?;
        Ok(match batch::read_header(head) {
            Ok(Frame::Batch(h)) => Some(h.size()),
            Ok(Frame::Incomplete { needed, .. }) => Some(usize::try_from(needed).unwrap_or(head.len())),
            Err(_) => None,
        })
    }

    fn get(&mut self, position: u64, want: usize) -> Result<&[u8]> {
        let end = position.saturating_add(want as u64).min(self.len);
        let buf_end = self.buf_start + self.buf.len() as u64;
        if position < self.buf_start || end > buf_end {
            let n = (end - position.min(end))
                .max(RECOVERY_READ_BYTES as u64)
                .min(self.len - position.min(self.len));
            self.buf.resize(n as usize, 0);
            self.file.read_exact_at(&mut self.buf, position)?;
            self.buf_start = position;
        }
        let from = (position - self.buf_start) as usize;
        let to = (end - self.buf_start) as usize;
        Ok(self.buf.get(from..to).unwrap_or(&[]))
    }
}

impl resync::Source for ChunkReader<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn get(&mut self, position: u64, want: usize) -> Result<&[u8]> {
        ChunkReader::get(self, position, want)
    }
}

/// Where a scan starts: position 0 of an unknown segment, or the position of
/// the last offset-index entry of a trusted one (a clean reopen).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanFrom {
    pub(crate) position: u64,
    pub(crate) expected: u64,
    pub(crate) state: AppendState,
    /// Offsets have no gaps: each batch must start exactly at `expected`
    /// (known exactly at position 0 and after every valid batch).
    pub(crate) gapless: bool,
    /// The last offset of the batch at `position`, when an index entry tells it.
    pub(crate) first_last: Option<u64>,
    /// The sync window the file was written under: bytes more than this
    /// before the end of its valid data were synced.
    pub(crate) window: Option<u64>,
}

impl ScanFrom {
    pub(crate) fn start(base_offset: u64) -> ScanFrom {
        ScanFrom {
            position: 0,
            expected: base_offset,
            state: AppendState::EMPTY,
            gapless: false,
            first_last: None,
            window: None,
        }
    }

    /// The same scan, for a file written under a sync window.
    pub(crate) fn window(mut self, window: Option<u64>) -> ScanFrom {
        self.window = window;
        self
    }

    /// The same scan, requiring contiguous offsets when `gapless`.
    pub(crate) fn gapless(mut self, gapless: bool) -> ScanFrom {
        self.gapless = gapless;
        self
    }
}

/// Whether a batch's offsets fit a gapless log: its last offset is the one an
/// index entry gave, or its base is exactly the expected next offset (when that
/// is known exactly). The base offset is outside the CRC, so this is what
/// catches a damaged one.
fn fits_gapless(header: &BatchHeader, first_last: Option<u64>, exact: bool, expected: u64) -> bool {
    match first_last {
        Some(last) => header.last_offset() >= 0 && header.last_offset() as u64 == last,
        None => !exact || (header.base_offset >= 0 && header.base_offset as u64 == expected),
    }
}

/// Scans a segment's log: validates every batch, rebuilds index entries
/// (Kafka's rule), and stops at the first invalid or incomplete batch, except
/// that damage before `synced_until` (bytes known to have been synced) is
/// quarantined when a valid batch follows it in this file: the scan records the
/// damaged range and resumes there. `upper` bounds the offsets the segment holds.
pub(crate) fn scan_log(
    file: &dyn VfsFile,
    base_offset: u64,
    interval: u32,
    upper: Option<u64>,
    from: ScanFrom,
    synced_until: u64,
) -> Result<Scan> {
    let mut reader = ChunkReader::new(file)?;
    let mut scan = Scan {
        valid_end: from.position,
        next_offset: from.expected,
        state: from.state,
        offset_entries: Vec::new(),
        time_entries: Vec::new(),
        crc: (from.position == 0).then_some(0),
        damage: Vec::new(),
        stop: None,
    };
    let mut position = from.position;
    let mut exact = from.position == 0;
    let mut first_last = from.first_last;
    while position < reader.len {
        let size = reader.batch_size_at(position)?.unwrap_or(BATCH_HEADER_BYTES);
        let buf = reader.get(position, size)?;
        let expected = scan.next_offset;
        let checked = check_batch(buf, base_offset, expected, upper)
            .and_then(|h| {
                if !from.gapless || fits_gapless(&h, first_last, exact, expected) {
                    Ok(h)
                } else {
                    Err(ScanStop {
                        position,
                        reason: CorruptReason::OffsetOutOfOrder {
                            base_offset: h.base_offset,
                            expected_at_least: expected,
                        },
                        incomplete: false,
                    })
                }
            })
            .and_then(|h| {
                u32::try_from(position).map(|p| (h, p)).map_err(|_| ScanStop {
                    position,
                    reason: CorruptReason::OffsetOutsideSegment {
                        last_offset: h.last_offset(),
                    },
                    incomplete: false,
                })
            });
        first_last = None;
        match checked {
            Ok((header, pos32)) => {
                scan.crc = scan.crc.map(|c| crc32c::crc32c_append(c, buf));
                let (oe, te) = scan.state.step(&header, pos32, interval);
                if let Some(e) = oe {
                    scan.offset_entries.push(e);
                }
                if let Some(e) = te {
                    if scan.time_entries.last().is_none_or(|l| l.timestamp < e.timestamp) {
                        scan.time_entries.push(e);
                    }
                }
                position += header.size() as u64;
                scan.valid_end = position;
                scan.next_offset = header.last_offset() as u64 + 1;
                exact = true;
            }
            Err(mut stop) => {
                stop.position = position;
                let resumed = if position < synced_until || from.window.is_some() {
                    resync::resync(
                        &mut reader,
                        Bounds { base_offset, upper },
                        Damaged {
                            position,
                            expected: scan.next_offset,
                            exact,
                            gapless: from.gapless,
                        },
                    )?
                } else {
                    None
                };
                // Under a sync window, damage more than the window before the end
                // of the valid data that follows it lies in synced bytes.
                let in_synced_window = match (resumed, from.window) {
                    (Some((resume, _)), Some(w)) if position >= synced_until => {
                        valid_run_end(file, base_offset, resume, upper)? > position.saturating_add(w)
                    }
                    _ => false,
                };
                if position < synced_until || in_synced_window {
                    if let Some((resume, _)) = resumed {
                        if let Some(c) = scan.crc {
                            let damaged = reader.get(position, (resume - position) as usize)?;
                            scan.crc = Some(crc32c::crc32c_append(c, damaged));
                        }
                        scan.damage.push(Damage {
                            start: position,
                            end: resume,
                            reason: stop.reason.clone(),
                        });
                        // Index the resumed batch so lookups past the damage skip it.
                        scan.state.bytes_since_last_index_entry = u64::from(interval) + 1;
                        position = resume;
                        // The damaged batch's offsets are unknown.
                        exact = false;
                        continue;
                    }
                }
                scan.stop = Some(stop);
                break;
            }
        }
    }
    Ok(scan)
}

/// The end of the run of valid, consecutive batches starting at `from`.
fn valid_run_end(file: &dyn VfsFile, base_offset: u64, from: u64, upper: Option<u64>) -> Result<u64> {
    let mut reader = ChunkReader::new(file)?;
    let mut position = from;
    let mut expected = 0;
    while position < reader.len {
        let Some(size) = reader.batch_size_at(position)? else {
            break;
        };
        let buf = reader.get(position, size)?;
        match check_batch(buf, base_offset, expected, upper) {
            Ok(h) => {
                position += h.size() as u64;
                expected = h.next_offset() as u64;
            }
            Err(_) => break,
        }
    }
    Ok(position)
}

/// CRC-32C of the first `len` bytes of a file, read with `pread`.
fn file_crc(file: &dyn VfsFile, len: u64) -> Result<u32> {
    let mut reader = ChunkReader::new(file)?;
    let mut crc = 0;
    let mut position = 0;
    while position < len.min(reader.len) {
        let want = (len - position).min(RECOVERY_READ_BYTES as u64) as usize;
        let chunk = reader.get(position, want)?;
        if chunk.is_empty() {
            break;
        }
        crc = crc32c::crc32c_append(crc, chunk);
        position += chunk.len() as u64;
    }
    Ok(crc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::RealFs;

    /// The CRC a sealed segment records (extended batch by batch, from the
    /// batches' own CRCs when they are large) is the CRC of its file.
    #[test]
    fn the_running_crc_is_the_crc_of_the_log_file() {
        let tmp = tempfile::tempdir().unwrap();
        let settings = SegmentSettings {
            index_interval_bytes: 4096,
            index_bytes: 1 << 20,
            segment_bytes: 1 << 30,
        };
        let mut seg = Segment::create(&RealFs, tmp.path(), 0, settings, 0).unwrap();
        for (i, size) in [10usize, 2000, 100, 70_000, 70_000, 5, 1500, 1500]
            .into_iter()
            .enumerate()
        {
            let records = vec![crate::record::Record::new(vec![i as u8; size])];
            let mut buf = Vec::new();
            let header = batch::encode_batch(&mut buf, i as u64, &records, 1).unwrap();
            seg.append(&buf, &header).map_err(|(e, _)| e).unwrap();
        }
        seg.seal().unwrap();
        let bytes = std::fs::read(tmp.path().join("00000000000000000000.log")).unwrap();
        assert_eq!(seg.crc(), Some(crc32c::crc32c(&bytes)));
    }
}
