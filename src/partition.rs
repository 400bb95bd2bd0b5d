//! A partition log: an ordered run of segments with a log start offset (first
//! readable offset) and a log end offset (the offset the next append gets).
//!
//! Invariants:
//! - Segments are sorted by base offset; only the last (the active segment) is
//!   appended to; every other one is sealed (indexes trimmed, files fsynced,
//!   listed in `tidelog.checkpoint` with its length and CRC-32C).
//! - Offsets are dense from the start: each appended batch gets base offset =
//!   log end offset.
//! - Readers see only whole batches below the published end of each segment.
//!
//! Thread-safety: `PartitionLog` is `Send + Sync`. One `RwLock` guards the
//! segment list and offsets; appends take it for writing, readers take it for
//! reading only long enough to clone `Bytes` views, then decode without it.
//! Sealing on roll currently runs under the write lock (see ARCHITECTURE.md).

use crate::batch::{self, BatchHeader, BatchRecord, Frame};
use crate::checkpoint::{self, Checkpoint, CleanClose, SealedSegment, CHECKPOINT_FILE, START_FILE};
use crate::clock::Clock;
use crate::error::{CorruptReason, Error, Result};
use crate::limits::{BATCH_BYTES_MAX, SEGMENTS_PER_PARTITION_MAX, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};
use crate::record::Record;
use crate::sabotage::{self, EngineSabotage};
use crate::segment::{
    self, AppendState, Damage, Dormant, Resume, ScanFrom, SealedFacts, Segment, SegmentSettings, ViewRead,
};
use crate::vfs::{self, Vfs, TMP_MARK};
use parking_lot::RwLock;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Settings of one partition log (a topic's segment settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionConfig {
    /// Roll when the active segment would pass this many bytes (default 1 GiB).
    pub segment_bytes: u64,
    /// Roll when the active segment's records span more than this (default 7 days).
    pub segment_ms: u64,
    /// Bytes between offset-index entries (default 4096).
    pub index_interval_bytes: u32,
    /// Maximum size of each index file (default 10 MiB).
    pub index_bytes: u64,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            index_bytes: 10 * 1024 * 1024,
        }
    }
}

impl PartitionConfig {
    fn validate(&self) -> Result<()> {
        let bad = |field, reason: String| Err(Error::InvalidConfig { field, reason });
        if self.segment_bytes < SEGMENT_BYTES_MIN || self.segment_bytes > SEGMENT_BYTES_MAX {
            return bad(
                "segment_bytes",
                format!(
                    "{} is outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}",
                    self.segment_bytes
                ),
            );
        }
        if self.segment_ms == 0 {
            return bad("segment_ms", "must be at least 1".into());
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes", "must be at least 1".into());
        }
        if self.index_bytes < 24 || self.index_bytes > crate::limits::INDEX_BYTES_MAX {
            return bad(
                "index_bytes",
                format!(
                    "{} is outside 24..={}",
                    self.index_bytes,
                    crate::limits::INDEX_BYTES_MAX
                ),
            );
        }
        Ok(())
    }

    fn settings(&self) -> SegmentSettings {
        SegmentSettings {
            index_interval_bytes: self.index_interval_bytes,
            index_bytes: self.index_bytes,
            segment_bytes: self.segment_bytes,
        }
    }
}

/// What recovery found and did when a partition was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The previous close was clean and its record matched the files.
    pub clean: bool,
    /// Segments opened.
    pub segments: usize,
    /// Segments whose log was scanned batch by batch.
    pub scanned_segments: usize,
    /// Index files rebuilt from their log.
    pub indexes_rebuilt: usize,
    /// Bytes cut from the end of the log (a torn tail).
    pub truncated_bytes: u64,
    /// Files the cut bytes were copied to, for inspection.
    pub torn_files: Vec<PathBuf>,
    /// Damaged byte ranges kept in place (quarantined): (file, start, end).
    pub quarantined: Vec<(PathBuf, u64, u64)>,
    /// Bytes that were known synced but had to be cut (data lost at rest).
    pub synced_bytes_lost: u64,
    /// The checkpoint file was missing or damaged (everything was scanned).
    pub checkpoint_damaged: bool,
    /// With the checkpoint unreadable, the log start offset came from its
    /// second copy, `tidelog.start`.
    pub start_from_copy: bool,
    /// Stray files removed (temp files, orphan indexes, `.deleted`, `.cleaned`).
    pub stray_files_removed: usize,
}

/// Offsets and timestamps of one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the batch's first record.
    pub base_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
    /// Its largest record timestamp.
    pub max_timestamp: i64,
    /// Its first record's timestamp.
    pub base_timestamp: i64,
}

/// One partition's log. See the module docs.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    vfs: Arc<dyn Vfs>,
    clock: Arc<dyn Clock>,
    config: PartitionConfig,
    nonce: AtomicU64,
    /// The sync window W (the W rule of RELIABILITY.md §2.3): the most bytes
    /// of the active segment ever written but not yet fsynced in this session,
    /// rounded up to a power of two and recorded in the checkpoint *before* an
    /// append passes it, so recovery knows that bytes more than W before the
    /// end of the data were synced. 0: not tracked.
    sync_window: AtomicU64,
    /// The most W may grow to (0: no window); an append that would pass it
    /// fsyncs first. Set for `Always` partitions and the offsets store.
    sync_window_cap: AtomicU64,
    /// Held by a compaction pass from its snapshot to its commit, so two
    /// passes (the maintenance thread and a user's `run_maintenance`) never
    /// write the same `.cleaned` files. Lock order: `cleaning`, then `inner`.
    cleaning: parking_lot::Mutex<()>,
    /// Open (not parked) partitions of the log this partition belongs to;
    /// this one counts while its segments are open.
    open_gauge: Arc<AtomicUsize>,
    /// Set by every use through the log, cleared by the budget's sweep
    /// (second chance before a partition is parked).
    referenced: AtomicBool,
    inner: RwLock<Inner>,
}

/// What a parked partition knows of one of its segments.
#[derive(Debug, Clone, Copy)]
struct SegmentSummary {
    base_offset: u64,
    next_offset: u64,
    size: u64,
    max_timestamp: Option<i64>,
}

/// Why a partition's segments are not open (no descriptor, no map).
#[derive(Debug)]
enum Parked {
    /// Closed cleanly by an earlier session and not used in this one: the
    /// first use recovers it (the clean path, which scans nothing). The
    /// summaries come from the checkpoint.
    Unopened(Vec<SegmentSummary>),
    /// Parked by the open-partition budget: every segment's state is in
    /// memory, and waking maps the files again without reading them.
    Dormant(Vec<Dormant>),
}

impl Parked {
    fn summaries(&self) -> Vec<SegmentSummary> {
        match self {
            Parked::Unopened(s) => s.clone(),
            Parked::Dormant(d) => d
                .iter()
                .map(|d| SegmentSummary {
                    base_offset: d.base_offset(),
                    next_offset: d.next_offset(),
                    size: d.size(),
                    max_timestamp: d.max_timestamp(),
                })
                .collect(),
        }
    }

    fn end_offset(&self) -> Option<u64> {
        match self {
            Parked::Unopened(s) => s.last().map(|s| s.next_offset),
            Parked::Dormant(d) => d.last().map(Dormant::next_offset),
        }
    }

    fn size(&self) -> u64 {
        match self {
            Parked::Unopened(s) => s.iter().map(|s| s.size).sum(),
            Parked::Dormant(d) => d.iter().map(Dormant::size).sum(),
        }
    }

    fn segment_count(&self) -> usize {
        match self {
            Parked::Unopened(s) => s.len(),
            Parked::Dormant(d) => d.len(),
        }
    }
}

#[derive(Debug)]
struct Inner {
    segments: Vec<Segment>,
    log_start_offset: u64,
    /// Sync point: (segment base offset, position) known durable.
    sync: (u64, u64),
    /// Set after a failed fsync or an unrecoverable write failure.
    fenced: Option<String>,
    closed: bool,
    /// First dirty offset for the cleaner (in memory: after a reopen the first
    /// pass treats everything as dirty).
    cleaner_offset: u64,
    /// Offsets may have gaps (compaction ran, or segments of unknown origin);
    /// otherwise reads and recovery require contiguous offsets.
    gaps: bool,
    /// What `tidelog.start` holds on disk (`None`: no such file).
    start_copy: Option<u64>,
    /// `Some`: the segments are closed (`segments` is empty) until next use.
    parked: Option<Parked>,
    /// Counted in the log's gauge of open partitions.
    counted: bool,
}

impl Inner {
    /// Bytes of the active segment written since its last known fsync.
    fn unsynced_bytes(&self) -> u64 {
        self.segments.last().map_or(0, |active| {
            if self.sync.0 == active.base_offset() {
                active.size().saturating_sub(self.sync.1)
            } else {
                active.size()
            }
        })
    }
}

impl PartitionLog {
    /// Opens (creating if needed) the partition directory `dir` and recovers it
    /// (RELIABILITY.md §2.3).
    ///
    /// # Errors
    /// `InvalidConfig` for bad settings; `Io` when the filesystem fails. Bad bytes
    /// never fail the open: torn tails are cut, damage at rest is quarantined and
    /// indexes are rebuilt, all listed in the [`RecoveryReport`].
    pub fn open(
        vfs: Arc<dyn Vfs>,
        clock: Arc<dyn Clock>,
        dir: impl AsRef<Path>,
        config: PartitionConfig,
    ) -> Result<(PartitionLog, RecoveryReport)> {
        let log = Self::new(vfs, clock, dir.as_ref(), config, Arc::new(AtomicUsize::new(0)))?;
        let report = log.recover_locked(&mut log.inner.write())?;
        Ok((log, report))
    }

    /// Opens the partition at `dir` for a log whose open partitions `gauge`
    /// counts. A partition an earlier session closed cleanly is not opened
    /// now: it starts parked, and its first use recovers it (`None` report).
    pub(crate) fn open_counted(
        vfs: Arc<dyn Vfs>,
        clock: Arc<dyn Clock>,
        dir: &Path,
        config: PartitionConfig,
        gauge: Arc<AtomicUsize>,
    ) -> Result<(PartitionLog, Option<RecoveryReport>)> {
        let log = Self::new(vfs, clock, dir, config, gauge)?;
        if let Some((start, gaps, summary)) = log.clean_summary()? {
            {
                let mut inner = log.inner.write();
                inner.log_start_offset = start;
                inner.gaps = gaps;
                inner.parked = Some(Parked::Unopened(summary));
            }
            return Ok((log, None));
        }
        let report = log.recover_locked(&mut log.inner.write())?;
        Ok((log, Some(report)))
    }

    fn new(
        vfs: Arc<dyn Vfs>,
        clock: Arc<dyn Clock>,
        dir: &Path,
        config: PartitionConfig,
        open_gauge: Arc<AtomicUsize>,
    ) -> Result<PartitionLog> {
        config.validate()?;
        Ok(PartitionLog {
            dir: dir.to_owned(),
            nonce: AtomicU64::new(nonce_seed(clock.now_ms())),
            sync_window: AtomicU64::new(0),
            sync_window_cap: AtomicU64::new(0),
            vfs,
            clock,
            config,
            cleaning: parking_lot::Mutex::new(()),
            open_gauge,
            referenced: AtomicBool::new(false),
            inner: RwLock::new(Inner {
                segments: Vec::new(),
                log_start_offset: 0,
                sync: (0, 0),
                fenced: None,
                closed: false,
                cleaner_offset: 0,
                gaps: false,
                start_copy: None,
                parked: None,
                counted: false,
            }),
        })
    }

    /// The start offset, gaps flag and segments of a partition whose
    /// checkpoint records a clean close, read without opening any segment;
    /// `None` when it must be recovered now (no checkpoint, a damaged one,
    /// an unclean close, or a summary that does not add up).
    fn clean_summary(&self) -> Result<Option<(u64, bool, Vec<SegmentSummary>)>> {
        let path = self.dir.join(CHECKPOINT_FILE);
        if !self.vfs.exists(&path)? {
            return Ok(None);
        }
        let Ok(cp) = Checkpoint::decode(&self.vfs.read(&path)?) else {
            return Ok(None);
        };
        let Some(clean) = cp.clean else {
            return Ok(None);
        };
        let mut segments: Vec<SegmentSummary> = Vec::with_capacity(cp.sealed.len() + 1);
        for (i, s) in cp.sealed.iter().enumerate() {
            let next = cp
                .sealed
                .get(i + 1)
                .map_or(clean.active_base_offset, |n| n.base_offset);
            segments.push(SegmentSummary {
                base_offset: s.base_offset,
                next_offset: next,
                size: s.len,
                max_timestamp: s.max_timestamp,
            });
        }
        segments.push(SegmentSummary {
            base_offset: clean.active_base_offset,
            next_offset: clean.end_offset,
            size: clean.active_len,
            max_timestamp: None,
        });
        let ordered = segments
            .windows(2)
            .all(|w| matches!(w, [a, b] if a.base_offset < b.base_offset && a.next_offset <= b.base_offset));
        let start_fits = segments
            .first()
            .is_some_and(|f| f.base_offset <= cp.log_start_offset && cp.log_start_offset <= clean.end_offset);
        if !ordered || !start_fits || clean.end_offset < clean.active_base_offset {
            return Ok(None);
        }
        // The start offset's second copy, if there is one, must be readable
        // and agree (recovery rewrites a damaged one).
        let start_path = self.dir.join(START_FILE);
        if self.vfs.exists(&start_path)?
            && checkpoint::decode_start(&self.vfs.read(&start_path)?).ok() != Some(cp.log_start_offset)
        {
            return Ok(None);
        }
        // Every `.log` must still have its recorded length (one open and
        // fstat each): a file changed from outside is recovered now, as the
        // clean path of recovery would find it.
        for seg in &segments {
            let [log, index, time_index] = Segment::paths(&self.dir, seg.base_offset);
            if !self.vfs.exists(&log)? || self.vfs.open(&log)?.len()? != seg.size {
                return Ok(None);
            }
            // A missing index is rebuilt now, by recovery.
            if !self.vfs.exists(&index)? || !self.vfs.exists(&time_index)? {
                return Ok(None);
            }
        }
        Ok(Some((cp.log_start_offset, cp.gaps, segments)))
    }

    /// Counts the partition as open in the log's gauge, or not.
    fn set_counted(&self, inner: &mut Inner, counted: bool) {
        if inner.counted != counted {
            inner.counted = counted;
            if counted {
                self.open_gauge.fetch_add(1, Ordering::Relaxed);
            } else {
                self.open_gauge.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Marks the partition used (the budget parks unused ones first).
    pub(crate) fn touch(&self) {
        if !self.referenced.load(Ordering::Relaxed) {
            self.referenced.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the partition was used since the last call (and clears it).
    pub(crate) fn take_referenced(&self) -> bool {
        self.referenced.swap(false, Ordering::Relaxed)
    }

    /// Closes the partition's files and maps until its next use, keeping its
    /// state in memory (nothing is written or synced, so this is cheap and
    /// changes no durability promise). `false`: not parked (already parked,
    /// closed, fenced, or a compaction pass is running).
    pub(crate) fn park(&self) -> Result<bool> {
        let Some(_cleaning) = self.cleaning.try_lock() else {
            return Ok(false);
        };
        let mut inner = self.inner.write();
        if inner.parked.is_some() || inner.closed || inner.fenced.is_some() || inner.segments.is_empty() {
            return Ok(false);
        }
        let segments = std::mem::take(&mut inner.segments);
        let mut dormant = Vec::with_capacity(segments.len());
        for seg in segments {
            match seg.into_dormant() {
                Ok(d) => dormant.push(d),
                Err(e) => {
                    // Only the negative control's held-back write can fail here.
                    inner.fenced = Some(format!("parking failed: {e}"));
                    return Err(e);
                }
            }
        }
        inner.parked = Some(Parked::Dormant(dormant));
        self.set_counted(&mut inner, false);
        Ok(true)
    }

    /// Opens a parked partition's segments again.
    fn unpark_locked(&self, inner: &mut Inner) -> Result<()> {
        match inner.parked.take() {
            None => Ok(()),
            Some(Parked::Unopened(summary)) => {
                if let Err(e) = self.recover_locked(inner) {
                    inner.segments.clear();
                    inner.parked = Some(Parked::Unopened(summary));
                    self.set_counted(inner, false);
                    return Err(e);
                }
                // As the log does after opening: a partition without a sync
                // window records none.
                if self.sync_window_cap.load(Ordering::Relaxed) == 0
                    && self.sync_window.swap(0, Ordering::Relaxed) != 0
                {
                    self.write_checkpoint(inner, None)?;
                }
                Ok(())
            }
            Some(Parked::Dormant(dormant)) => {
                let mut segments = Vec::with_capacity(dormant.len());
                let mut rest = dormant.into_iter();
                for d in rest.by_ref() {
                    match Segment::wake(&*self.vfs, &self.dir, d) {
                        Ok(seg) => segments.push(seg),
                        Err(e) => {
                            // Put back what was woken and what was not.
                            let mut back: Vec<Dormant> = Vec::new();
                            for seg in segments {
                                back.push(seg.into_dormant()?);
                            }
                            back.extend(rest);
                            inner.parked = Some(Parked::Dormant(back));
                            return Err(e);
                        }
                    }
                }
                inner.segments = segments;
                self.set_counted(inner, true);
                Ok(())
            }
        }
    }

    /// The partition lock for reading, with the segments open.
    fn read_open(&self) -> Result<parking_lot::RwLockReadGuard<'_, Inner>> {
        loop {
            let inner = self.inner.read();
            if inner.parked.is_none() {
                return Ok(inner);
            }
            drop(inner);
            let mut inner = self.inner.write();
            inner.check_open(&self.dir)?;
            self.unpark_locked(&mut inner)?;
        }
    }

    /// The partition lock for writing, with the segments open.
    fn write_open(&self) -> Result<parking_lot::RwLockWriteGuard<'_, Inner>> {
        let mut inner = self.inner.write();
        if inner.parked.is_some() {
            inner.check_open(&self.dir)?;
            self.unpark_locked(&mut inner)?;
        }
        Ok(inner)
    }

    fn next_nonce(&self) -> u64 {
        self.nonce.fetch_add(1, Ordering::Relaxed)
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The first readable offset.
    pub fn start_offset(&self) -> u64 {
        self.inner.read().log_start_offset
    }

    /// The offset the next append gets (Kafka's log end offset).
    pub fn end_offset(&self) -> u64 {
        self.inner.read().end_offset()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        let inner = self.inner.read();
        inner
            .parked
            .as_ref()
            .map_or(inner.segments.len(), Parked::segment_count)
    }

    /// Base offsets of the segments, in order.
    pub fn segment_base_offsets(&self) -> Vec<u64> {
        let inner = self.inner.read();
        match &inner.parked {
            Some(parked) => parked.summaries().iter().map(|s| s.base_offset).collect(),
            None => inner.segments.iter().map(Segment::base_offset).collect(),
        }
    }

    /// Total `.log` bytes.
    pub fn size_bytes(&self) -> u64 {
        let inner = self.inner.read();
        match &inner.parked {
            Some(parked) => parked.size(),
            None => inner.segments.iter().map(Segment::size).sum(),
        }
    }

    /// Encodes `records` as one batch and appends it. Records without a
    /// timestamp get the clock's time.
    ///
    /// # Errors
    /// `InvalidRecord` for an empty or unencodable batch, `RecordTooLarge` over
    /// the batch limit, `Fenced` after a failed fsync, `Closed`, `Io`.
    pub fn append_records(&self, records: &[Record]) -> Result<Appended> {
        let mut buf = Vec::new();
        let now = self.clock.now_ms();
        let header = batch::encode_batch(&mut buf, 0, records, now).map_err(|e| match e {
            batch::EncodeError::TooLarge { size } => Error::RecordTooLarge {
                topic: String::new(),
                partition: 0,
                size,
                max: u64::from(BATCH_BYTES_MAX),
            },
            other => Error::InvalidRecord {
                topic: String::new(),
                reason: other.to_string(),
            },
        })?;
        self.append_trusted(&mut buf, header)
    }

    /// Appends one encoded RecordBatch v2 (from any Kafka producer): it is fully
    /// validated, then its base offset is set to the log end offset.
    ///
    /// # Errors
    /// `InvalidRecord` if the bytes are not exactly one valid batch; otherwise as
    /// [`PartitionLog::append_records`].
    pub fn append_batch(&self, batch_bytes: &mut [u8]) -> Result<Appended> {
        let header = batch::validate_batch(batch_bytes).map_err(|e| Error::InvalidRecord {
            topic: String::new(),
            reason: format!("batch rejected at byte {}: {}", e.position, e.reason),
        })?;
        if header.size() != batch_bytes.len() {
            return Err(Error::InvalidRecord {
                topic: String::new(),
                reason: format!("{} bytes after the batch", batch_bytes.len() - header.size()),
            });
        }
        if header.records_count <= 0 || header.last_offset_delta + 1 != header.records_count {
            return Err(Error::InvalidRecord {
                topic: String::new(),
                reason: "records count must equal lastOffsetDelta + 1 and be positive".into(),
            });
        }
        self.append_trusted(batch_bytes, header)
    }

    /// Appends a batch encoded by [`batch::encode_batch`] (trusted: not validated
    /// again); its base offset is set to the log end offset.
    ///
    /// # Errors
    /// As [`PartitionLog::append_records`].
    pub fn append_encoded(&self, buf: &mut [u8], header: BatchHeader) -> Result<Appended> {
        debug_assert!(
            batch::validate_batch(buf).is_ok(),
            "only valid batches are appended"
        );
        self.append_trusted(buf, header)
    }

    /// Bounds the sync window at `cap` (`None`: no window, as in `Os`
    /// partitions, whose unsynced bytes are unbounded). `Always` partitions and
    /// the offsets store run with one (the log sets it after opening them).
    ///
    /// # Errors
    /// `Io` when the checkpoint cannot be written.
    pub fn set_sync_window(&self, cap: Option<u64>) -> Result<()> {
        let cap = cap.unwrap_or(0);
        self.sync_window_cap.store(cap, Ordering::Relaxed);
        if cap == 0 && self.sync_window.swap(0, Ordering::Relaxed) != 0 {
            let inner = self.write_open()?;
            inner.check_writable(&self.dir)?;
            self.write_checkpoint(&inner, None)?;
        }
        Ok(())
    }

    /// Appends a batch known valid (encoded by us or validated).
    fn append_trusted(&self, buf: &mut [u8], header: BatchHeader) -> Result<Appended> {
        let now = self.clock.now_ms();
        let cap = self.sync_window_cap.load(Ordering::Relaxed);
        let mut inner = self.write_open()?;
        inner.check_writable(&self.dir)?;
        if cap > 0 {
            // Keep the unsynced part of the active segment within the cap:
            // fsync first (outside the lock) when this batch would pass it.
            while inner.unsynced_bytes() > 0 && inner.unsynced_bytes() + buf.len() as u64 > cap {
                drop(inner);
                self.sync_active()?;
                inner = self.write_open()?;
                inner.check_writable(&self.dir)?;
            }
            // Record a wider window before any byte can lie outside the old one.
            let need = inner.unsynced_bytes() + buf.len() as u64;
            if need > self.sync_window.load(Ordering::Relaxed) {
                let window = need.next_power_of_two();
                self.sync_window.store(window, Ordering::Relaxed);
                self.write_checkpoint(&inner, None)?;
            }
        }
        let base_offset = inner.end_offset();
        if !batch::set_base_offset(buf, base_offset) {
            return Err(Error::InvalidRecord {
                topic: String::new(),
                reason: "batch shorter than its header".into(),
            });
        }
        let header = BatchHeader {
            base_offset: base_offset as i64,
            ..header
        };
        let must_roll = inner
            .segments
            .last()
            .is_none_or(|active| active.should_roll(&header, self.config.segment_ms, now));
        if must_roll {
            self.roll_locked(&mut inner, now)?;
        }
        let Some(active) = inner.segments.last_mut() else {
            unreachable!("a roll leaves an active segment");
        };
        if let Err((e, cut_failed)) = active.append(buf, &header) {
            if cut_failed {
                inner.fenced = Some(format!("a failed write could not be undone: {e}"));
            }
            return Err(e);
        }
        Ok(Appended {
            base_offset,
            last_offset: header.last_offset() as u64,
            max_timestamp: header.max_timestamp,
            base_timestamp: header.base_timestamp,
        })
    }

    /// Seals the active segment (if it holds data) and starts a new one.
    ///
    /// # Errors
    /// `Io` on failure (the partition is then fenced), `Fenced`, `Closed`.
    pub fn roll(&self) -> Result<()> {
        let now = self.clock.now_ms();
        let mut inner = self.write_open()?;
        inner.check_writable(&self.dir)?;
        if inner.segments.last().is_some_and(|s| s.size() == 0) {
            return Ok(());
        }
        self.roll_locked(&mut inner, now)
    }

    fn roll_locked(&self, inner: &mut Inner, now: i64) -> Result<()> {
        if inner.segments.len() >= SEGMENTS_PER_PARTITION_MAX {
            return Err(Error::InvalidConfig {
                field: "segment_bytes",
                reason: format!(
                    "partition {} reached the limit of {SEGMENTS_PER_PARTITION_MAX} segments",
                    self.dir.display()
                ),
            });
        }
        let result = (|| {
            let next_base = inner.end_offset();
            if let Some(active) = inner.segments.last_mut() {
                if active.size() == 0 {
                    return Ok(());
                }
                active.seal()?;
                active.set_next_offset_bound(next_base);
            }
            let segment = Segment::create(&*self.vfs, &self.dir, next_base, self.config.settings(), now)?;
            self.vfs.sync_dir(&self.dir)?;
            inner.segments.push(segment);
            inner.sync = (next_base, 0);
            self.write_checkpoint(inner, None)?;
            crate::observe::rolled(&self.dir, next_base);
            Ok(())
        })();
        if let Err(e) = &result {
            inner.fenced = Some(format!("segment roll failed: {e}"));
        }
        result
    }

    /// fsyncs the active segment's data; the sync point moves to the end and is
    /// recorded in the checkpoint.
    ///
    /// # Errors
    /// `Io` if the fsync fails: the partition is fenced and refuses writes
    /// until reopened (a failed fsync is never retried).
    pub fn flush(&self) -> Result<()> {
        let mut inner = self.inner.write();
        inner.check_writable(&self.dir)?;
        if inner.parked.is_some() {
            if !inner.parked_unsynced() {
                return Ok(());
            }
            // Parked with bytes not yet fsynced: open it to sync them.
            self.unpark_locked(&mut inner)?;
        }
        let Some(active) = inner.segments.last() else {
            return Ok(());
        };
        let point = (active.base_offset(), active.size());
        let started = crate::observe::start();
        if let Err(e) = active.sync() {
            crate::observe::fsync_failed(&self.dir, &e);
            inner.fenced = Some(format!("fsync failed: {e}"));
            return Err(e);
        }
        crate::observe::fsynced(started);
        if inner.sync != point {
            inner.sync = point;
            // Record the new sync point, so recovery treats these bytes as synced
            // (damage in them is quarantined, never cut).
            self.write_checkpoint(&inner, None)?;
        }
        Ok(())
    }

    /// fsyncs the active segment without holding the partition lock while the
    /// fsync runs; returns the end offset it covers (every offset below it is
    /// durable: older segments were fsynced when sealed). A failure fences the
    /// partition: the fsync is never retried.
    ///
    /// # Errors
    /// `Io` from the fsync, `Fenced`, `Closed`.
    pub fn sync_active(&self) -> Result<u64> {
        let (file, point, end) = {
            let mut inner = self.inner.read();
            inner.check_writable(&self.dir)?;
            if inner.parked.is_some() {
                if !inner.parked_unsynced() {
                    return Ok(inner.end_offset());
                }
                drop(inner);
                inner = self.read_open()?;
            }
            let Some(active) = inner.segments.last() else {
                return Ok(inner.end_offset());
            };
            (
                active.log_file(),
                (active.base_offset(), active.size()),
                inner.end_offset(),
            )
        };
        let started = crate::observe::start();
        match file.sync_data() {
            Ok(()) => {
                crate::observe::fsynced(started);
                let mut inner = self.inner.write();
                if point > inner.sync {
                    inner.sync = point;
                }
                Ok(end)
            }
            Err(e) => {
                crate::observe::fsync_failed(&self.dir, &e);
                self.inner.write().fenced = Some(format!("fsync failed: {e}"));
                Err(e)
            }
        }
    }

    /// Whether a failed fsync or write fenced the partition.
    pub fn is_fenced(&self) -> bool {
        self.inner.read().fenced.is_some()
    }

    /// Up to `max` records with offsets >= `from`, in order (at least one if any
    /// record exists at or after `from`).
    ///
    /// # Errors
    /// `OffsetOutOfRange` if `from` is below the start or past the end offset;
    /// `Corrupt` if the first batch needed is damaged.
    pub fn read(&self, from: u64, max: usize) -> Result<Vec<BatchRecord>> {
        let mut out = Vec::new();
        self.read_into(from, max, &mut out)?;
        Ok(out)
    }

    /// [`PartitionLog::read`] into any collector (a `Vec`, or a visitor that
    /// hands records out borrowed).
    pub(crate) fn read_into<C: segment::Collect>(&self, from: u64, max: usize, out: &mut C) -> Result<()> {
        let max = max.max(1);
        let mut next = from;
        loop {
            let view = {
                let inner = self.read_open()?;
                let (start, end) = (inner.log_start_offset, inner.end_offset());
                // The range is checked under the same lock as the segment is
                // picked: retention may delete the segment holding `from`
                // between two lock holds, and that is "out of range", not an
                // empty answer.
                if out.count() == 0 && (next < start || next > end) {
                    return Err(Error::OffsetOutOfRange {
                        topic: String::new(),
                        partition: 0,
                        offset: from,
                        start,
                        end,
                    });
                }
                if next >= end {
                    break;
                }
                let Some(i) = inner.segment_for(next) else { break };
                let Some(seg) = inner.segments.get(i) else { break };
                seg.view(next, !inner.gaps)?
            };
            match view.read(next, max, out)? {
                ViewRead::Full | ViewRead::StoppedAtDamage => break,
                ViewRead::Exhausted => {
                    if view.next_offset <= next {
                        break;
                    }
                    next = view.next_offset;
                }
            }
        }
        Ok(())
    }

    /// The first offset whose record timestamp is >= `timestamp` (Kafka's
    /// ListOffsets), or `None` if no record has such a timestamp.
    ///
    /// # Errors
    /// `Corrupt` when the batch holding the answer is damaged.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<u64>> {
        let (views, start) = {
            let inner = self.read_open()?;
            let start = inner.log_start_offset;
            let mut views = Vec::new();
            for seg in &inner.segments {
                if seg.max_timestamp().is_some_and(|m| m >= timestamp) && seg.next_offset() > start {
                    // The time index names the batch to start scanning at; every
                    // record of that batch counts (Kafka's ListOffsets).
                    let from = seg.time_lookup(timestamp).max(start).max(seg.base_offset());
                    views.push((seg.view(from, !inner.gaps)?, start.max(seg.base_offset())));
                }
            }
            (views, start)
        };
        for (view, from) in views {
            let mut records = Vec::new();
            let mut next = from;
            loop {
                records.clear();
                let ended = view.read(next, 1024, &mut records)?;
                if let Some(r) = records
                    .iter()
                    .find(|r| r.timestamp >= timestamp && r.offset >= start)
                {
                    return Ok(Some(r.offset));
                }
                match (ended, records.last()) {
                    (ViewRead::Exhausted, _) | (_, None) => break,
                    (_, Some(last)) => next = last.offset + 1,
                }
            }
        }
        Ok(None)
    }

    /// Moves the log start offset to `offset` (at most the end offset) and
    /// deletes every segment wholly below it. Returns the segments deleted. When
    /// every record is below `offset`, the active segment is rolled first so the
    /// old one can go (Kafka's rule).
    ///
    /// # Errors
    /// `OffsetOutOfRange` past the end offset; `Io`, `Fenced`, `Closed`.
    pub fn delete_before(&self, offset: u64) -> Result<usize> {
        let now = self.clock.now_ms();
        let mut inner = self.write_open()?;
        inner.check_writable(&self.dir)?;
        let end = inner.end_offset();
        if offset > end {
            return Err(Error::OffsetOutOfRange {
                topic: String::new(),
                partition: 0,
                offset,
                start: inner.log_start_offset,
                end,
            });
        }
        if offset <= inner.log_start_offset {
            return Ok(0);
        }
        // Readers see the new start only once the checkpoint holding it is
        // durable: a failed write puts the old start back.
        let old_start = inner.log_start_offset;
        inner.log_start_offset = offset;
        if offset == end && inner.segments.last().is_some_and(|s| s.size() > 0) {
            if let Err(e) = self.roll_locked(&mut inner, now) {
                inner.log_start_offset = old_start;
                return Err(e);
            }
        }
        // Persist the new start first, then remove the files: a crash in between
        // leaves files below the start, which the next open drops.
        if let Err(e) = self.write_checkpoint(&inner, None) {
            inner.log_start_offset = old_start;
            return Err(e);
        }
        // Segments wholly below the start: the next segment's base <= start.
        let mut doomed = 0;
        while inner.segments.len() > 1 && inner.segments.get(1).is_some_and(|s| s.base_offset() <= offset) {
            doomed += 1;
            let removed = inner.segments.remove(0);
            self.write_checkpoint(&inner, None)?;
            self.remove_segment_files(&removed)?;
        }
        self.sync_start_copy(&mut inner)?;
        Ok(doomed)
    }

    /// What [`PartitionLog::apply_retention`] would delete now, without
    /// deleting anything: (segments, `.log` bytes). Parked partitions are
    /// judged from their summary.
    pub fn retention_preview(&self, retention_ms: Option<u64>, retention_bytes: Option<u64>) -> (u64, u64) {
        let now = self.clock.now_ms();
        let inner = self.inner.read();
        let facts = inner.retention_facts();
        let n = crate::retention::segments_to_delete(&facts, now, retention_ms, retention_bytes);
        let bytes = facts.iter().take(n).map(|f| f.size).sum();
        (n as u64, bytes)
    }

    /// Applies retention by time and size (KAFKA.md §6) and rolls a quiet
    /// active segment older than `segment_ms`, so retention can free it later.
    /// Returns (segments deleted, bytes reclaimed, rolled).
    ///
    /// # Errors
    /// `Io`, `Fenced`, `Closed`.
    pub fn apply_retention(
        &self,
        retention_ms: Option<u64>,
        retention_bytes: Option<u64>,
    ) -> Result<(u64, u64, bool)> {
        let now = self.clock.now_ms();
        let (cut, bytes, rolled) = {
            let mut inner = self.inner.write();
            inner.check_writable(&self.dir)?;
            if inner.parked.is_some() {
                // A parked partition is woken only when its summary says
                // retention has work there.
                let facts = inner.retention_facts();
                if crate::retention::segments_to_delete(&facts, now, retention_ms, retention_bytes) == 0 {
                    return Ok((0, 0, false));
                }
                self.unpark_locked(&mut inner)?;
            }
            let segment_ms = self.config.segment_ms;
            let roll = inner
                .segments
                .last()
                .is_some_and(|a| a.is_older_than(segment_ms, now));
            if roll {
                self.roll_locked(&mut inner, now)?;
            }
            let facts = inner.retention_facts();
            let n = crate::retention::segments_to_delete(&facts, now, retention_ms, retention_bytes);
            let cut = facts.get(..n).and_then(|f| f.last()).map(|f| f.next_offset);
            let bytes = facts.iter().take(n).map(|f| f.size).sum::<u64>();
            (cut, bytes, roll)
        };
        let deleted = match cut {
            Some(offset) if offset > self.start_offset() => self.delete_before(offset)? as u64,
            _ => 0,
        };
        Ok((deleted, if deleted > 0 { bytes } else { 0 }, rolled))
    }

    /// One compaction pass (see `cleaner.rs`). Returns (segments rewritten,
    /// bytes reclaimed).
    ///
    /// # Errors
    /// `Io`, `Fenced`, `Closed`. A failure leaves the partition as it was (a
    /// half-written `.cleaned` file is removed now or at the next open).
    pub(crate) fn compact(
        &self,
        params: &crate::cleaner::CleanParams,
        should_stop: &dyn Fn() -> bool,
    ) -> Result<(u64, u64)> {
        use crate::cleaner;
        let _cleaning = self.cleaning.lock();
        // 0. A parked partition is woken only if it may have dirty sealed
        //    segments: any, after a clean reopen (nothing is known then);
        //    ones past the cleaner's position otherwise.
        {
            let mut inner = self.inner.write();
            if let Some(parked) = &inner.parked {
                let summary = parked.summaries();
                let sealed_end = summary.iter().rev().nth(1).map(|s| s.next_offset);
                let due = match parked {
                    Parked::Unopened(_) => sealed_end.is_some(),
                    Parked::Dormant(_) => {
                        sealed_end.is_some_and(|end| end > inner.cleaner_offset.max(inner.log_start_offset))
                    }
                };
                if !due {
                    return Ok((0, 0));
                }
                inner.check_writable(&self.dir)?;
                self.unpark_locked(&mut inner)?;
            }
        }
        // 1. Snapshot the cleanable sealed segments.
        let (snapshot, first_dirty) = {
            let inner = self.inner.read();
            inner.check_writable(&self.dir)?;
            let lag = i64::try_from(params.min_compaction_lag_ms).unwrap_or(i64::MAX);
            let mut snapshot = Vec::new();
            let sealed = inner.segments.len().saturating_sub(1);
            for seg in inner.segments.iter().take(sealed) {
                if seg
                    .max_timestamp()
                    .is_some_and(|ts| ts > params.now_ms.saturating_sub(lag))
                {
                    break;
                }
                let view = seg.view(seg.base_offset(), !inner.gaps)?;
                snapshot.push((seg.base_offset(), seg.next_offset(), view.bytes));
            }
            (snapshot, inner.cleaner_offset.max(inner.log_start_offset))
        };
        if snapshot.is_empty() {
            return Ok((0, 0));
        }
        // 2. Dirty ratio, or a tombstone horizon that has passed.
        let (mut clean, mut dirty) = (0u64, 0u64);
        for (_, next, bytes) in &snapshot {
            if *next <= first_dirty {
                clean += bytes.len() as u64;
            } else {
                dirty += bytes.len() as u64;
            }
        }
        let ratio = if clean + dirty == 0 {
            0.0
        } else {
            dirty as f64 / (clean + dirty) as f64
        };
        let expired = snapshot
            .iter()
            .any(|(_, _, b)| cleaner::has_expired_horizon(b, params.now_ms));
        if !(ratio > params.min_cleanable_dirty_ratio || (expired && dirty + clean > 0)) {
            return Ok((0, 0));
        }
        // 3. The offset map over the dirty part (all of it when only horizons are due).
        let from = if ratio > params.min_cleanable_dirty_ratio {
            first_dirty
        } else {
            0
        };
        let views: Vec<bytes::Bytes> = snapshot.iter().map(|(_, _, b)| b.clone()).collect();
        let map = cleaner::OffsetMap::build(&views, from, params.map_bytes_max);
        // 4. Rewrite each segment that changes into `.cleaned` files, then swap
        //    them all in at once.
        let mut prepared = Vec::new();
        let mut reclaimed = 0u64;
        let mut gaps = false;
        for (base, _, bytes) in &snapshot {
            if should_stop() {
                // Closing: drop the partial work (nothing was swapped in yet).
                self.discard_cleaned(&prepared);
                return Ok((0, 0));
            }
            let Some(rewritten) = cleaner::rewrite_segment(bytes, &map, params) else {
                continue;
            };
            gaps |= rewritten.gaps;
            let new_bytes = rewritten.bytes;
            match self.prepare_cleaned(*base, bytes.len() as u64, &new_bytes) {
                Ok(Some(p)) => {
                    reclaimed += (bytes.len() as u64).saturating_sub(new_bytes.len() as u64);
                    prepared.push(p);
                }
                Ok(None) => {}
                Err(e) => {
                    self.discard_cleaned(&prepared);
                    return Err(e);
                }
            }
        }
        let rewritten = self.commit_cleaned(&prepared, gaps)?;
        let mut inner = self.inner.write();
        inner.cleaner_offset = inner.cleaner_offset.max(map.map_end);
        if rewritten > 0 {
            self.write_checkpoint(&inner, None)?;
        }
        Ok((rewritten, if rewritten > 0 { reclaimed } else { 0 }))
    }

    fn cleaner_paths(&self, base: u64, suffix: &str) -> [PathBuf; 3] {
        Segment::paths(&self.dir, base).map(|p| {
            let mut name = p.into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        })
    }

    /// Writes `<base>.log.cleaned` and its indexes (`.cleaned`), fsynced, and
    /// checks the new log scans back whole. `None`: the segment is gone.
    fn prepare_cleaned(&self, base: u64, old_len: u64, bytes: &[u8]) -> Result<Option<Prepared>> {
        let vfs = &*self.vfs;
        let cleaned = self.cleaner_paths(base, ".cleaned");
        for p in cleaned.iter().chain(self.cleaner_paths(base, ".swap").iter()) {
            if vfs.exists(p)? {
                vfs.remove(p)?;
            }
        }
        let next_bound = {
            let inner = self.inner.read();
            inner
                .segments
                .iter()
                .position(|s| s.base_offset() == base)
                .and_then(|i| inner.segments.get(i + 1))
                .map(Segment::base_offset)
        };
        let Some(next_bound) = next_bound else {
            return Ok(None);
        };
        let file = vfs.create_new(&cleaned[0])?;
        file.write_all_at(bytes, 0)?;
        file.sync_data()?;
        let scan = segment::scan_log(
            &*file,
            base,
            self.config.index_interval_bytes,
            Some(next_bound),
            ScanFrom::start(base),
            u64::MAX,
        )?;
        drop(file);
        if scan.stop.is_some() || scan.valid_end != bytes.len() as u64 {
            // Never swap in anything that does not read back whole.
            vfs.remove(&cleaned[0])?;
            return Ok(None);
        }
        let mut time_entries = scan.time_entries.clone();
        segment::push_final_time_entry(&mut time_entries, scan.state.max_timestamp);
        let mut index_bytes = Vec::new();
        crate::index::OffsetIndex::encode(base, &scan.offset_entries, &mut index_bytes);
        let mut time_bytes = Vec::new();
        crate::index::TimeIndex::encode(base, &time_entries, &mut time_bytes);
        for (path, content) in [(&cleaned[1], &index_bytes), (&cleaned[2], &time_bytes)] {
            let f = vfs.create_new(path)?;
            f.write_all_at(content, 0)?;
            f.sync_data()?;
        }
        Ok(Some(Prepared {
            base,
            old_len,
            new_len: bytes.len() as u64,
            next_bound,
            crc: scan.crc,
            max_timestamp: scan.state.max_timestamp.map(|(ts, _)| ts),
        }))
    }

    fn discard_cleaned(&self, prepared: &[Prepared]) {
        for p in prepared {
            for path in self.cleaner_paths(p.base, ".cleaned") {
                let _ = self.vfs.remove(&path);
            }
        }
    }

    /// Swaps every prepared segment in, all or none, by Kafka's protocol:
    /// rename each `.cleaned` to `.swap`, highest base offset first (indexes,
    /// then the log); fsync the directory; rename each `.swap` over its final
    /// name, lowest first; fsync the directory. Recovery (step 2 of `recover`)
    /// drops every `.swap` at or above the lowest `.cleaned` left (an
    /// interrupted first phase) and completes the rest. Returns the count.
    fn commit_cleaned(&self, prepared: &[Prepared], gaps: bool) -> Result<u64> {
        if prepared.is_empty() {
            return Ok(0);
        }
        let vfs = &*self.vfs;
        let mut inner = self.inner.write();
        let unchanged = prepared.iter().all(|p| {
            inner
                .segments
                .iter()
                .any(|s| s.base_offset() == p.base && s.is_sealed() && s.size() == p.old_len)
        });
        if !unchanged {
            drop(inner);
            self.discard_cleaned(prepared);
            return Ok(0);
        }
        // Compaction keeps batches contiguous, except after a batch it could
        // not re-encode: then record that offsets may have gaps before any of
        // these segments can be on disk under its final name.
        if gaps && !inner.gaps {
            inner.gaps = true;
            self.write_checkpoint(&inner, None)?;
        }
        // From the first rename on, the files and the segments in memory may
        // disagree if a call fails: fence the partition so the next open
        // settles it from the disk (completing or dropping the swaps).
        let swapped = (|| {
            for p in prepared.iter().rev() {
                let cleaned = self.cleaner_paths(p.base, ".cleaned");
                let swap = self.cleaner_paths(p.base, ".swap");
                vfs.rename(&cleaned[1], &swap[1])?;
                vfs.rename(&cleaned[2], &swap[2])?;
                vfs.rename(&cleaned[0], &swap[0])?;
            }
            vfs.sync_dir(&self.dir)?;
            // The commit point has passed: the checkpoint lists the new
            // lengths before any segment has its final name, so no open ever
            // finds a cleaned segment shorter than recorded (an unfinished
            // swap is completed at open and listed again from its scan).
            self.write_checkpoint_with(&inner, None, prepared)?;
            for p in prepared {
                let swap = self.cleaner_paths(p.base, ".swap");
                let [log_path, index_path, time_path] = Segment::paths(&self.dir, p.base);
                vfs.rename(&swap[1], &index_path)?;
                vfs.rename(&swap[2], &time_path)?;
                vfs.rename(&swap[0], &log_path)?;
            }
            vfs.sync_dir(&self.dir)?;
            // Readers holding the old segments' Bytes keep their (unlinked) maps.
            let mut opened = Vec::with_capacity(prepared.len());
            for p in prepared {
                let (segment, _) = Segment::open_sealed(
                    vfs,
                    &self.dir,
                    p.base,
                    p.next_bound,
                    self.config.settings(),
                    SealedFacts {
                        crc: p.crc,
                        max_timestamp: None,
                    },
                    self.next_nonce(),
                )?;
                opened.push(segment);
            }
            Ok::<_, Error>(opened)
        })();
        let opened = match swapped {
            Ok(opened) => opened,
            Err(e) => {
                inner.fenced = Some(format!("compaction could not finish swapping segments: {e}"));
                return Err(e);
            }
        };
        for segment in opened {
            let base = segment.base_offset();
            if let Some(slot) = inner.segments.iter_mut().find(|s| s.base_offset() == base) {
                *slot = segment;
            }
        }
        Ok(prepared.len() as u64)
    }

    fn remove_segment_files(&self, segment: &Segment) -> Result<()> {
        // Readers holding `Bytes` of this segment keep its map (and so its pages)
        // alive after the unlink; nothing is truncated.
        if sabotage::active(EngineSabotage::ReuseDeletedSegments) {
            // Negative control: the bytes readers still hold are overwritten.
            segment
                .log_file()
                .write_all_at(&vec![0; usize::try_from(segment.size()).unwrap_or(0)], 0)?;
        }
        for path in Segment::paths(&self.dir, segment.base_offset()) {
            if self.vfs.exists(&path)? {
                self.vfs.remove(&path)?;
            }
        }
        self.vfs.sync_dir(&self.dir)
    }

    /// Clean close: the active segment's indexes trimmed and everything fsynced,
    /// then a checkpoint recording the clean state. Later writes get `Closed`.
    ///
    /// # Errors
    /// `Io` when a sync or the checkpoint fails (the next open then recovers).
    pub fn close(&self) -> Result<()> {
        let mut inner = self.inner.write();
        if inner.closed {
            return Ok(());
        }
        match &inner.parked {
            // Closed cleanly by the last session and untouched since.
            Some(Parked::Unopened(_)) => {
                inner.closed = true;
                return Ok(());
            }
            Some(Parked::Dormant(_)) => {
                if let Err(e) = self.unpark_locked(&mut inner) {
                    inner.closed = true;
                    return Err(e);
                }
            }
            None => {}
        }
        inner.closed = true;
        if inner.fenced.is_some() {
            return Err(Error::Fenced {
                path: self.dir.clone(),
            });
        }
        let end = inner.end_offset();
        let Some(active) = inner.segments.last_mut() else {
            return Ok(());
        };
        active.close_active()?;
        let clean = CleanClose {
            active_base_offset: active.base_offset(),
            active_len: active.size(),
            end_offset: end,
        };
        inner.sync = (clean.active_base_offset, clean.active_len);
        self.write_checkpoint(&inner, Some(clean))?;
        // Closed: release the files now (a log of many partitions closes
        // them one by one, waking parked ones), keeping what `describe` shows.
        let mut dormant = Vec::with_capacity(inner.segments.len());
        for seg in std::mem::take(&mut inner.segments) {
            dormant.push(seg.into_dormant()?);
        }
        inner.parked = Some(Parked::Dormant(dormant));
        self.set_counted(&mut inner, false);
        Ok(())
    }

    /// Brings `tidelog.start` in line with the log start offset: written while
    /// the start lies above the first segment's base (only the checkpoint and
    /// this copy then say which records are gone), removed otherwise. Called
    /// after the checkpoint holding the start is durable.
    fn sync_start_copy(&self, inner: &mut Inner) -> Result<()> {
        let first_base = inner.segments.first().map_or(0, Segment::base_offset);
        let wanted = (inner.log_start_offset > first_base).then_some(inner.log_start_offset);
        if wanted == inner.start_copy {
            return Ok(());
        }
        let path = self.dir.join(START_FILE);
        match wanted {
            Some(start) => {
                vfs::atomic_replace(
                    &*self.vfs,
                    &path,
                    &checkpoint::encode_start(start),
                    self.next_nonce(),
                )?;
            }
            None => {
                if self.vfs.exists(&path)? {
                    self.vfs.remove(&path)?;
                    self.vfs.sync_dir(&self.dir)?;
                }
            }
        }
        inner.start_copy = wanted;
        Ok(())
    }

    fn write_checkpoint(&self, inner: &Inner, clean: Option<CleanClose>) -> Result<()> {
        self.write_checkpoint_with(inner, clean, &[])
    }

    /// Writes the checkpoint, listing the segments of `swapped_in` (cleaned
    /// segments being swapped in) with their new length, CRC and timestamp.
    fn write_checkpoint_with(
        &self,
        inner: &Inner,
        clean: Option<CleanClose>,
        swapped_in: &[Prepared],
    ) -> Result<()> {
        let sealed = inner
            .segments
            .iter()
            .filter(|s| s.is_sealed())
            .map(|s| match swapped_in.iter().find(|p| p.base == s.base_offset()) {
                Some(p) => SealedSegment {
                    base_offset: p.base,
                    len: p.new_len,
                    crc: p.crc.unwrap_or(0),
                    max_timestamp: p.max_timestamp,
                },
                None => SealedSegment {
                    base_offset: s.base_offset(),
                    len: s.recorded_len(),
                    crc: s.crc().unwrap_or(0),
                    max_timestamp: s.max_timestamp(),
                },
            })
            .collect();
        let cp = Checkpoint {
            log_start_offset: inner.log_start_offset,
            sync_base_offset: inner.sync.0,
            sync_position: inner.sync.1,
            clean,
            sealed,
            gaps: inner.gaps,
            sync_window: self.sync_window.load(Ordering::Relaxed),
        };
        vfs::atomic_replace(
            &*self.vfs,
            &self.dir.join(CHECKPOINT_FILE),
            &cp.encode(),
            self.next_nonce(),
        )
    }

    /// Opens every segment; see RELIABILITY.md §2.3 and ARCHITECTURE.md.
    fn recover_locked(&self, inner: &mut Inner) -> Result<RecoveryReport> {
        let vfs = &*self.vfs;
        let dir = &self.dir;
        let mut report = RecoveryReport::default();
        crate::vfs::create_dir_durable(vfs, dir)?;
        let now = self.clock.now_ms();

        // 1. The checkpoint, then forget its clean flag before changing anything,
        //    so a crash during recovery means a full recovery next time.
        let cp_path = dir.join(CHECKPOINT_FILE);
        let mut cp = if vfs.exists(&cp_path)? {
            match Checkpoint::decode(&vfs.read(&cp_path)?) {
                Ok(cp) => cp,
                Err(_) => {
                    report.checkpoint_damaged = true;
                    Checkpoint::default()
                }
            }
        } else {
            Checkpoint::default()
        };
        // The start offset's second copy: the start when the checkpoint is
        // unreadable (a damaged copy is removed; the end of recovery writes
        // a fresh one if the start still needs it).
        let start_path = dir.join(START_FILE);
        let start_copy = if vfs.exists(&start_path)? {
            match checkpoint::decode_start(&vfs.read(&start_path)?) {
                Ok(start) => Some(start),
                Err(_) => {
                    vfs.remove(&start_path)?;
                    vfs.sync_dir(dir)?;
                    None
                }
            }
        } else {
            None
        };
        let checkpoint_readable = !report.checkpoint_damaged && vfs.exists(&cp_path)?;
        if let (false, Some(start)) = (checkpoint_readable, start_copy) {
            cp.log_start_offset = start;
            report.start_from_copy = true;
        }
        // Without a readable checkpoint, segments are of unknown history
        // (copied in, or the checkpoint was damaged): gaps are allowed.
        let has_logs = vfs
            .list(dir)?
            .iter()
            .any(|n| segment::parse_file_name(n, segment::LOG_SUFFIX).is_some());
        let gaps = cp.gaps || (!checkpoint_readable && has_logs);
        // The window the crashed (or closed) session wrote under, kept until
        // the log sets the one of this session.
        let window = (cp.sync_window > 0).then_some(cp.sync_window);
        let clean = cp.clean.take();
        if clean.is_some() {
            vfs::atomic_replace(vfs, &cp_path, &cp.encode(), self.next_nonce())?;
        }

        // 2. Compaction swaps (Kafka's rule): `.swap` files at or above the
        //    lowest `.cleaned` log belong to an interrupted first phase and go;
        //    the others are completed (indexes first, then the log).
        let listing = vfs.list(dir)?;
        let lowest_cleaned = listing
            .iter()
            .filter_map(|n| n.strip_suffix(".cleaned"))
            .filter_map(|n| segment::parse_file_name(n, segment::LOG_SUFFIX))
            .min();
        let mut completing: Vec<(String, String, u64)> = Vec::new();
        for name in &listing {
            let Some(stem) = name.strip_suffix(".log.swap") else {
                continue;
            };
            let Some(base) = segment::parse_file_name(&format!("{stem}.log"), segment::LOG_SUFFIX) else {
                continue;
            };
            if lowest_cleaned.is_some_and(|low| base >= low) {
                continue; // removed with the other stray files below
            }
            // Complete only a valid swap: a damaged one is dropped (with the
            // stray files below) while the segment it would replace is there.
            let swap_file = vfs.open(&dir.join(name))?;
            let swap_scan = segment::scan_log(
                &*swap_file,
                base,
                self.config.settings().index_interval_bytes,
                None,
                ScanFrom::start(base),
                0,
            )?;
            drop(swap_file);
            let swap_valid = swap_scan.stop.is_none() && swap_scan.damage.is_empty();
            if !swap_valid && vfs.exists(&dir.join(format!("{stem}{}", segment::LOG_SUFFIX)))? {
                continue;
            }
            completing.push((stem.to_owned(), name.clone(), base));
        }
        if !completing.is_empty() {
            // A completed swap's record in the checkpoint may be the old
            // segment's: it is dropped first (durably, so a crash during the
            // renames cannot leave a segment shorter than recorded), the
            // segment is scanned, and the final checkpoint lists it again.
            cp.sealed
                .retain(|s| completing.iter().all(|(_, _, b)| *b != s.base_offset));
            vfs::atomic_replace(vfs, &cp_path, &cp.encode(), self.next_nonce())?;
        }
        for (stem, name, _) in &completing {
            for suffix in [segment::INDEX_SUFFIX, segment::TIME_INDEX_SUFFIX] {
                let from = dir.join(format!("{stem}{suffix}.swap"));
                if vfs.exists(&from)? {
                    vfs.rename(&from, &dir.join(format!("{stem}{suffix}")))?;
                }
            }
            vfs.rename(
                &dir.join(name),
                &dir.join(format!("{stem}{}", segment::LOG_SUFFIX)),
            )?;
            vfs.sync_dir(dir)?;
        }
        // 3. Stray files: temp files, `.deleted`, `.cleaned`, `.swap`, orphan indexes.
        let names = vfs.list(dir)?;
        let mut bases: Vec<u64> = names
            .iter()
            .filter_map(|n| segment::parse_file_name(n, segment::LOG_SUFFIX))
            .collect();
        bases.sort_unstable();
        for name in &names {
            let stray = name.contains(TMP_MARK)
                || name.ends_with(".deleted")
                || name.ends_with(".cleaned")
                || name.ends_with(".swap")
                || [segment::INDEX_SUFFIX, segment::TIME_INDEX_SUFFIX]
                    .iter()
                    .any(|suffix| {
                        segment::parse_file_name(name, suffix)
                            .is_some_and(|b| bases.binary_search(&b).is_err())
                    });
            if stray {
                vfs.remove(&dir.join(name))?;
                report.stray_files_removed += 1;
            }
        }

        // 3. Segments wholly below the log start offset go.
        let start_offset = cp.log_start_offset;
        while bases.len() > 1 && bases.get(1).is_some_and(|b| *b <= start_offset) {
            let base = bases.remove(0);
            for p in Segment::paths(dir, base) {
                if vfs.exists(&p)? {
                    vfs.remove(&p)?;
                }
            }
        }

        // 4. Open each segment, scanning what is not known good.
        let settings = self.config.settings();
        let interval = settings.index_interval_bytes;
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
        let mut expected = bases.first().copied().unwrap_or(start_offset);
        let mut i = 0;
        while i < bases.len() {
            let Some(&base) = bases.get(i) else { break };
            let upper = bases.get(i + 1).copied();
            let is_last = upper.is_none();
            let [log_path, index_path, time_path] = Segment::paths(dir, base);
            let log_file = vfs.open(&log_path)?;
            let len = log_file.len()?;
            let listed = cp.sealed(base).copied();

            // A sealed segment whose length matches its record: trusted, not scanned.
            if let (false, Some(rec)) = (is_last, listed) {
                if rec.len == len {
                    let next = upper.unwrap_or(base);
                    let (seg, rebuilt) = Segment::open_sealed(
                        vfs,
                        dir,
                        base,
                        next,
                        settings,
                        SealedFacts {
                            crc: Some(rec.crc),
                            max_timestamp: rec.max_timestamp,
                        },
                        self.next_nonce(),
                    )?;
                    report.indexes_rebuilt += usize::from(rebuilt) * 2;
                    expected = next;
                    segments.push(seg);
                    i += 1;
                    continue;
                }
            }

            // The active segment after a clean close: trusted; only the tail after
            // its last index entry is read, to restore the append state.
            let clean_here =
                is_last && clean.is_some_and(|c| c.active_base_offset == base && c.active_len == len);
            let from = if clean_here {
                clean_tail_start(
                    vfs,
                    &log_file,
                    &index_path,
                    &time_path,
                    base,
                    len,
                    clean.map_or(0, |c| c.end_offset),
                )?
            } else {
                None
            };
            if let Some(from) = from {
                let from = from.gapless(!gaps);
                let scan = segment::scan_log(&*log_file, base, interval, None, from, u64::MAX)?;
                if scan.stop.is_none() && scan.damage.is_empty() {
                    report.clean = true;
                    let seg = Segment::open_active(
                        vfs,
                        dir,
                        base,
                        settings,
                        Resume {
                            size: len,
                            next_offset: scan.next_offset,
                            state: scan.state,
                            crc: None,
                        },
                        now,
                    )?;
                    segments.push(seg);
                    break;
                }
            }

            // Everything else is scanned from its first byte.
            report.scanned_segments += 1;
            let synced_until = if sabotage::active(EngineSabotage::TruncateAtDamage) {
                0 // negative control: every invalid batch is taken for a torn tail
            } else if listed.is_some() || base < cp.sync_base_offset {
                u64::MAX
            } else if base == cp.sync_base_offset {
                cp.sync_position
            } else {
                0
            };
            let scan = segment::scan_log(
                &*log_file,
                base,
                interval,
                upper,
                ScanFrom::start(expected.max(base)).gapless(!gaps).window(
                    if is_last && !sabotage::active(EngineSabotage::TruncateAtDamage) {
                        window
                    } else {
                        None
                    },
                ),
                synced_until,
            )?;
            for d in &scan.damage {
                report.quarantined.push((log_path.clone(), d.start, d.end));
            }
            let mut keep_len = len;
            let mut damage = scan.damage.clone();
            // A sealed segment shorter than it was sealed, cut exactly at a batch
            // boundary, scans clean: its missing tail is damage all the same, and
            // reads of the offsets it held are `Corrupt`, not silently skipped.
            // Not where compaction ran: a swapped-in segment is legitimately
            // shorter until the checkpoint records it.
            if let (false, false, Some(rec), None) = (is_last, gaps, listed, &scan.stop) {
                if len < rec.len {
                    damage.push(Damage {
                        start: len,
                        end: rec.len,
                        reason: CorruptReason::SegmentLengthMismatch {
                            expected: rec.len,
                            found: len,
                        },
                    });
                    report.quarantined.push((log_path.clone(), len, rec.len));
                }
            }
            let mut last_here = is_last;
            if let Some(stop) = &scan.stop {
                let synced = stop.position < synced_until;
                if synced && !is_last {
                    // Damage at rest with valid data after it (in later segments):
                    // quarantine the rest of this segment.
                    damage.push(Damage {
                        start: stop.position,
                        end: len,
                        reason: stop.reason.clone(),
                    });
                    report.quarantined.push((log_path.clone(), stop.position, len));
                } else {
                    // Crash damage (or synced data with nothing valid after it):
                    // cut here and drop every later segment.
                    let cut = len - stop.position;
                    if cut > 0 {
                        if synced {
                            report.synced_bytes_lost += cut;
                        }
                        if let Some(p) = self.save_torn(&*log_file, base, stop, len)? {
                            report.torn_files.push(p);
                        }
                        report.truncated_bytes += cut;
                    }
                    keep_len = stop.position;
                    for &later in bases.get(i + 1..).unwrap_or(&[]) {
                        let later_log = vfs.open(&Segment::paths(dir, later)[0])?;
                        let later_len = later_log.len()?;
                        if later_len > 0 {
                            let stop = segment::ScanStop {
                                position: 0,
                                reason: CorruptReason::OffsetOutOfOrder {
                                    base_offset: later as i64,
                                    expected_at_least: scan.next_offset,
                                },
                                incomplete: false,
                            };
                            if let Some(p) = self.save_torn(&*later_log, later, &stop, later_len)? {
                                report.torn_files.push(p);
                            }
                            report.truncated_bytes += later_len;
                        }
                        drop(later_log);
                        for p in Segment::paths(dir, later) {
                            if vfs.exists(&p)? {
                                vfs.remove(&p)?;
                            }
                        }
                    }
                    vfs.sync_dir(dir)?;
                    last_here = true;
                }
            }
            // Indexes rebuilt from the scan, written by atomic replace.
            let mut time_entries = scan.time_entries.clone();
            if !last_here {
                segment::push_final_time_entry(&mut time_entries, scan.state.max_timestamp);
            }
            segment::write_indexes(
                vfs,
                dir,
                base,
                &scan.offset_entries,
                &time_entries,
                self.next_nonce(),
            )?;
            report.indexes_rebuilt += 2;
            drop(log_file);
            if last_here {
                let crc = if keep_len == scan.valid_end {
                    scan.crc
                } else {
                    None
                };
                let mut seg = Segment::open_active(
                    vfs,
                    dir,
                    base,
                    settings,
                    Resume {
                        size: keep_len,
                        next_offset: scan.next_offset,
                        state: scan.state,
                        crc,
                    },
                    now,
                )?;
                seg.set_damage(damage);
                segments.push(seg);
                break;
            }
            let next = upper.unwrap_or(scan.next_offset);
            let (mut seg, _) = Segment::open_sealed(
                vfs,
                dir,
                base,
                next,
                settings,
                SealedFacts {
                    crc: scan.crc,
                    max_timestamp: None,
                },
                self.next_nonce(),
            )?;
            seg.set_damage(damage);
            expected = next;
            segments.push(seg);
            i += 1;
        }

        // 5. No segment: an empty one at the log start offset.
        if segments.is_empty() {
            segments.push(Segment::create(vfs, dir, start_offset, settings, now)?);
            vfs.sync_dir(dir)?;
        }
        report.segments = segments.len();
        let first_base = segments.first().map_or(0, Segment::base_offset);
        let end = segments.last().map_or(0, Segment::next_offset);
        let sync = if report.clean {
            segments.last().map_or((0, 0), |s| (s.base_offset(), s.size()))
        } else {
            (cp.sync_base_offset, cp.sync_position)
        };
        inner.segments = segments;
        inner.gaps = gaps;
        inner.log_start_offset = start_offset.max(first_base).min(end);
        inner.sync = sync;
        inner.start_copy = start_copy;
        // 6. A fresh checkpoint (opening twice in a row changes nothing
        //    more), then the start offset's copy.
        self.write_checkpoint(inner, None)?;
        self.sync_start_copy(inner)?;
        self.set_counted(inner, true);
        crate::observe::recovered(&self.dir, &report);
        Ok(report)
    }

    /// Copies the bytes recovery cuts to `<base>.log.torn-<position>` (fsynced),
    /// unless they are zeros or one incomplete batch (an ordinary torn write).
    fn save_torn(
        &self,
        file: &dyn crate::vfs::VfsFile,
        base: u64,
        stop: &segment::ScanStop,
        len: u64,
    ) -> Result<Option<PathBuf>> {
        let n = len.saturating_sub(stop.position);
        if n == 0 || n > SEGMENT_BYTES_MAX {
            return Ok(None);
        }
        let mut bytes = vec![0u8; n as usize];
        file.read_exact_at(&mut bytes, stop.position)?;
        let one_torn_batch = stop.incomplete
            && matches!(batch::read_header(&bytes), Ok(Frame::Incomplete { needed, .. }) if needed > n);
        if bytes.iter().all(|b| *b == 0) || one_torn_batch {
            return Ok(None);
        }
        let path = self.dir.join(format!("{base:020}.log.torn-{}", stop.position));
        if self.vfs.exists(&path)? {
            self.vfs.remove(&path)?;
        }
        let out = self.vfs.create_new(&path)?;
        out.write_all_at(&bytes, 0)?;
        out.sync_data()?;
        Ok(Some(path))
    }
}

/// For a cleanly closed active segment: where to resume reading to restore the
/// append state (the last offset-index entry), if the index files look sound.
fn clean_tail_start(
    vfs: &dyn Vfs,
    log: &Arc<dyn crate::vfs::VfsFile>,
    index_path: &Path,
    time_path: &Path,
    base: u64,
    len: u64,
    end_offset: u64,
) -> Result<Option<ScanFrom>> {
    use crate::index::{OffsetIndex, TimeIndex};
    if !vfs.exists(index_path)? || !vfs.exists(time_path)? {
        return Ok(None);
    }
    let oi = OffsetIndex::open_sealed(vfs, index_path, base)?;
    let ti = TimeIndex::open_sealed(vfs, time_path, base)?;
    if !oi.has_whole_entries()?
        || !ti.has_whole_entries()?
        // Entries must lie below the end offset the clean close recorded.
        || oi.check(len, end_offset).is_some()
        || ti.check(end_offset).is_some()
    {
        return Ok(None);
    }
    // The first batch's max timestamp drives time-based rolls.
    let mut head = [0u8; crate::limits::BATCH_HEADER_BYTES];
    let first_max = if len >= head.len() as u64 {
        log.read_exact_at(&mut head, 0)?;
        match batch::read_header(&head) {
            Ok(Frame::Batch(_)) | Ok(Frame::Incomplete { .. }) => first_batch_max_timestamp(&head),
            Err(_) => None,
        }
    } else {
        None
    };
    let (position, expected) = match oi.last() {
        Some(e) => (u64::from(e.position), base),
        None => (0, base),
    };
    let max_timestamp = ti.last().map(|e| (e.timestamp, e.offset));
    Ok(Some(ScanFrom {
        window: None,
        gapless: false,
        first_last: oi.last().filter(|e| e.position > 0).map(|e| e.offset),
        position,
        expected,
        state: AppendState {
            bytes_since_last_index_entry: 0,
            max_timestamp,
            first_batch_max_timestamp: if position == 0 { None } else { first_max },
        },
    }))
}

fn first_batch_max_timestamp(head: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = head.get(35..43)?.try_into().ok()?;
    Some(i64::from_be_bytes(bytes))
}

fn nonce_seed(now_ms: i64) -> u64 {
    (u64::from(std::process::id()) << 40) ^ (now_ms as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A cleaned segment written and fsynced as `.cleaned`, waiting to be swapped in.
#[derive(Debug)]
struct Prepared {
    base: u64,
    old_len: u64,
    new_len: u64,
    next_bound: u64,
    crc: Option<u32>,
    max_timestamp: Option<i64>,
}

impl Drop for PartitionLog {
    fn drop(&mut self) {
        let mut inner = self.inner.write();
        self.set_counted(&mut inner, false);
        if !inner.closed {
            if let Some(active) = inner.segments.last_mut() {
                active.trim_on_drop();
            }
        }
    }
}

impl Inner {
    fn end_offset(&self) -> u64 {
        match &self.parked {
            Some(parked) => parked.end_offset(),
            None => self.segments.last().map(Segment::next_offset),
        }
        .unwrap_or(self.log_start_offset)
    }

    /// What retention needs of each segment: from the open segments, or from
    /// the parked summary.
    fn retention_facts(&self) -> Vec<crate::retention::SegmentFacts> {
        match &self.parked {
            Some(parked) => parked
                .summaries()
                .iter()
                .map(|s| crate::retention::SegmentFacts {
                    next_offset: s.next_offset,
                    size: s.size,
                    max_timestamp: s.max_timestamp,
                })
                .collect(),
            None => self
                .segments
                .iter()
                .map(|s| crate::retention::SegmentFacts {
                    next_offset: s.next_offset(),
                    size: s.size(),
                    max_timestamp: s.max_timestamp(),
                })
                .collect(),
        }
    }

    /// Parked with bytes of the active segment not yet fsynced.
    fn parked_unsynced(&self) -> bool {
        match &self.parked {
            Some(Parked::Dormant(d)) => d.last().is_some_and(|a| (a.base_offset(), a.size()) != self.sync),
            _ => false,
        }
    }

    fn check_open(&self, dir: &Path) -> Result<()> {
        if self.closed {
            return Err(Error::Closed { path: dir.to_owned() });
        }
        Ok(())
    }

    fn check_writable(&self, dir: &Path) -> Result<()> {
        if self.closed {
            return Err(Error::Closed { path: dir.to_owned() });
        }
        if self.fenced.is_some() {
            return Err(Error::Fenced { path: dir.to_owned() });
        }
        Ok(())
    }

    /// Index of the segment that may hold `offset`: the last with base <= offset.
    fn segment_for(&self, offset: u64) -> Option<usize> {
        let n = self.segments.partition_point(|s| s.base_offset() <= offset);
        n.checked_sub(1)
    }
}
