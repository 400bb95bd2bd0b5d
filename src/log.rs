//! `Log`: a directory of topics, each a set of partition logs laid out as
//! Kafka lays them out (`<topic>-<partition>/`), with tidelog's own metadata in
//! files at the root (`LOCK`, `.clean-shutdown`, `tidelog.topics`).
//!
//! Thread-safety: `Log` is a cheap `Clone` of one shared `Arc`; every method
//! takes `&self`. Lock order: `LogInner.metadata` (topic changes) →
//! `LogInner.topics` → `PartitionLog.inner`; `GroupCommit.state` is taken with
//! none of these held.

use crate::batch::RecordRef;
use crate::config::{Durability, LogConfig, TopicConfig};
use crate::consumer::Notifier;
use crate::durability::GroupCommit;
use crate::error::{Error, Result};
use crate::group::Groups;
use crate::offsets::{OffsetsStore, OFFSETS_TOPIC};
use crate::partition::PartitionLog;
use crate::producer::Producer;
use crate::record::ConsumedRecord;
use crate::topic::{self, TOPICS_FILE};
use crate::vfs::{self, LockGuard, RealFs, Vfs};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

const LOCK_FILE: &str = "LOCK";
const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

/// One partition of a topic: its log and its group-commit state.
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) log: PartitionLog,
    pub(crate) commit: GroupCommit,
}

/// A topic: its name, config and partitions. Replaced whole on alter.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) name: Arc<str>,
    pub(crate) config: TopicConfig,
    pub(crate) partitions: Vec<Arc<Partition>>,
}

/// What [`Log::fetch_each`] visited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    /// Records visited.
    pub records: usize,
    /// Where the next fetch continues: after the last record visited (`from`
    /// if none was).
    pub next_offset: u64,
}

/// Description of a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicInfo {
    /// The topic's name.
    pub name: String,
    /// Its stored config.
    pub config: TopicConfig,
    /// Its partitions, in order.
    pub partitions: Vec<PartitionInfo>,
}

/// Description of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition number.
    pub partition: u32,
    /// The first readable offset.
    pub start_offset: u64,
    /// The next offset to be written (Kafka's log end offset).
    pub end_offset: u64,
    /// Number of segments.
    pub segments: usize,
    /// Bytes of `.log` files.
    pub size_bytes: u64,
}

/// An open log directory. See the crate docs.
#[derive(Debug)]
pub struct Log {
    pub(crate) inner: Arc<LogInner>,
    /// A handle of the user's (counted in `LogInner::handles`), or the one a
    /// background thread makes for the length of one pass.
    user: bool,
}

impl Clone for Log {
    fn clone(&self) -> Log {
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        Log {
            inner: self.inner.clone(),
            user: true,
        }
    }
}

impl Drop for Log {
    /// The last of the user's handles stops and joins the background threads
    /// here, so the directory lock is released before this drop returns: a
    /// background pass holding the log would otherwise drop it later, on its
    /// own thread, and an `open` right after the drop would find it `Locked`.
    fn drop(&mut self) {
        if self.user && self.inner.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.stop_flusher();
        }
    }
}

#[derive(Debug)]
pub(crate) struct LogInner {
    pub(crate) dir: PathBuf,
    pub(crate) vfs: Arc<dyn Vfs>,
    pub(crate) config: LogConfig,
    /// Serialises topic creation, deletion and alteration (first in lock order).
    metadata: Mutex<()>,
    pub(crate) topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    closed: AtomicBool,
    lock: Mutex<Option<LockGuard>>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    maintainer: Mutex<Option<JoinHandle<()>>>,
    /// Serves `send_async` futures waiting for an fsync (started on first use;
    /// it ends when the log is dropped).
    syncer: Mutex<Option<std::sync::mpsc::Sender<crate::producer::SyncRequest>>>,
    pub(crate) stop: Arc<(Mutex<bool>, Condvar)>,
    nonce: AtomicU64,
    /// Consumer groups of this log.
    pub(crate) groups: Groups,
    /// Committed positions (loaded from `__consumer_offsets`).
    pub(crate) offsets: OffsetsStore,
    /// Wakes consumers when records arrive (shared with the syncer thread,
    /// which holds no reference to the log itself).
    pub(crate) notifier: Arc<Notifier>,
    /// The user's `Log` handles (producers and consumers hold one each).
    handles: AtomicUsize,
    /// Most partitions with open files (`LogConfig::max_open_partitions`).
    open_budget: usize,
    /// Partitions with open files now.
    open_gauge: Arc<AtomicUsize>,
    /// Held by the one thread parking partitions over the budget.
    parking: Mutex<()>,
}

impl Log {
    /// The handle a background thread uses for one pass: not one of the
    /// user's, so it never keeps the log open after the user's last drop.
    pub(crate) fn background(inner: Arc<LogInner>) -> Log {
        Log { inner, user: false }
    }

    /// Opens (creating if missing) the log directory at `path`, takes its lock
    /// and recovers every partition.
    ///
    /// # Errors
    /// `Locked` if another open `Log` holds the directory; `InvalidConfig`;
    /// `Corrupt` if the topics file is damaged; `Io`.
    pub fn open(path: impl AsRef<Path>, config: LogConfig) -> Result<Log> {
        Self::open_with(RealFs::shared(), path.as_ref(), config)
    }

    pub(crate) fn open_with(vfs: Arc<dyn Vfs>, dir: &Path, config: LogConfig) -> Result<Log> {
        let opened_at = std::time::Instant::now();
        config.validate()?;
        vfs::create_dir_durable(&*vfs, dir)?;
        let Some(lock) = vfs.lock(&dir.join(LOCK_FILE))? else {
            return Err(Error::Locked { path: dir.to_owned() });
        };
        // The marker is removed before anything changes: a crash during this
        // open means a full recovery next time.
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        if vfs.exists(&marker)? {
            vfs.remove(&marker)?;
            vfs.sync_dir(dir)?;
        }
        for name in vfs.list(dir)? {
            if name.contains(vfs::TMP_MARK) {
                vfs.remove(&dir.join(&name))?;
            }
        }
        let topics_path = dir.join(TOPICS_FILE);
        let stored = if vfs.exists(&topics_path)? {
            topic::decode(&vfs.read(&topics_path)?).map_err(|reason| Error::Corrupt {
                path: topics_path.clone(),
                position: 0,
                reason,
            })?
        } else {
            Vec::new()
        };
        let mut topics = BTreeMap::new();
        let open_gauge = Arc::new(AtomicUsize::new(0));
        for (name, config_t) in stored {
            let t = open_topic(&vfs, dir, &config, &open_gauge, &name, &config_t, Vec::new())?;
            topics.insert(name, Arc::new(t));
        }
        // Partition folders of no topic (a crash during create or delete) go.
        for name in vfs.list(dir)? {
            if let Some((topic_name, p)) = parse_partition_dir(&name) {
                let known = topics
                    .get(topic_name)
                    .is_some_and(|t: &Arc<Topic>| (p as usize) < t.partitions.len());
                if !known && !topic_name.starts_with("__") {
                    vfs.remove_dir_all(&dir.join(&name))?;
                }
            }
        }
        let config_budget = config.open_partitions_budget();
        let inner = Arc::new(LogInner {
            dir: dir.to_owned(),
            nonce: AtomicU64::new(config.clock.now_ms() as u64 ^ (u64::from(std::process::id()) << 32)),
            vfs,
            config,
            metadata: Mutex::new(()),
            topics: RwLock::new(topics),
            closed: AtomicBool::new(false),
            lock: Mutex::new(Some(lock)),
            flusher: Mutex::new(None),
            maintainer: Mutex::new(None),
            syncer: Mutex::new(None),
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            groups: Groups::default(),
            offsets: OffsetsStore::default(),
            notifier: Arc::new(Notifier::default()),
            handles: AtomicUsize::new(1),
            open_budget: config_budget,
            open_gauge,
            parking: Mutex::new(()),
        });
        if let Durability::Interval(every) = inner.config.durability {
            // A failed fsync fences its partition; the others keep going.
            let handle = crate::maintenance::spawn_periodic(
                "tidelog-flush",
                Arc::downgrade(&inner),
                inner.stop.clone(),
                every,
                |log| {
                    let _ = log.inner.sync_all();
                },
            )
            .map_err(|e| Error::io(dir, e))?;
            *inner.flusher.lock() = Some(handle);
        }
        let log = Log { inner, user: true };
        log.load_offsets()?;
        {
            let topics = log.inner.topics.read();
            let partitions = topics.values().map(|t| t.partitions.len()).sum();
            crate::observe::opened(
                dir,
                topics.len(),
                partitions,
                log.inner.open_gauge.load(Ordering::Relaxed),
                opened_at.elapsed().as_millis(),
            );
        }
        if let Some(every) = log.inner.config.maintenance_interval {
            let handle = crate::maintenance::spawn_periodic(
                "tidelog-maintenance",
                Arc::downgrade(&log.inner),
                log.inner.stop.clone(),
                every.max(std::time::Duration::from_millis(1)),
                crate::maintenance::maintain,
            )
            .map_err(|e| Error::io(dir, e))?;
            *log.inner.maintainer.lock() = Some(handle);
        }
        Ok(log)
    }

    /// Creates `__consumer_offsets` if missing, loads the latest commit per
    /// (group, topic, partition), and clamps positions past a recovered end.
    fn load_offsets(&self) -> Result<()> {
        if self.topic(OFFSETS_TOPIC).is_err() {
            let config = TopicConfig::default()
                .partitions(1)
                .cleanup(crate::config::Cleanup::Compact)
                .segment_bytes(100 * 1024 * 1024)
                .retention_ms(None);
            self.create_topic_unchecked(OFFSETS_TOPIC, config)?;
        }
        let t = self.topic(OFFSETS_TOPIC)?;
        let p = self.partition(&t, 0)?;
        crate::offsets::replay(&p.log, &self.inner.offsets)?;
        for key in self.inner.offsets.keys() {
            let end = self
                .topic(&key.1)
                .ok()
                .and_then(|t| t.partitions.get(key.2 as usize).map(|p| p.log.end_offset()));
            if let Some(end) = end {
                self.inner.offsets.clamp(&key, end);
            }
        }
        Ok(())
    }

    /// Committed positions that were past their partition's recovered end at
    /// open and were clamped to it: ((group, topic, partition), stored, end).
    pub fn clamped_positions(&self) -> Vec<((String, String, u32), u64, u64)> {
        self.inner.offsets.clamped()
    }

    /// The log directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed {
                path: self.inner.dir.clone(),
            });
        }
        Ok(())
    }

    /// Flushes and fsyncs everything, stops background work, marks a clean
    /// shutdown and releases the lock. Later calls on this log and its handles
    /// return `Error::Closed`; a second `close` is `Ok`.
    ///
    /// # Errors
    /// `Io` if a flush fails (the next open then recovers).
    pub fn close(&self) -> Result<()> {
        let _meta = self.inner.metadata.lock();
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.stop_flusher();
        let mut first_err = None;
        for t in self.inner.topics.read().values() {
            for p in &t.partitions {
                if let Err(e) = p.log.close() {
                    first_err.get_or_insert(e);
                }
            }
        }
        if first_err.is_none() {
            let marker = self.inner.dir.join(CLEAN_SHUTDOWN_FILE);
            let nonce = self.inner.next_nonce();
            if let Err(e) = vfs::atomic_replace(&*self.inner.vfs, &marker, b"{\"version\":0}", nonce) {
                first_err = Some(e);
            }
        }
        *self.inner.lock.lock() = None;
        self.inner.notifier.notify();
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A producer handle (cheap; `Clone + Send + Sync`).
    pub fn producer(&self) -> Producer {
        Producer::new(self.clone())
    }

    /// fsyncs every partition now.
    ///
    /// # Errors
    /// `Closed`; `Io` if an fsync fails (that partition is fenced).
    pub fn flush(&self) -> Result<()> {
        self.check_open()?;
        self.inner.sync_all()
    }

    /// Creates a topic with `config`, stored with it.
    ///
    /// # Errors
    /// `InvalidTopicName`, `TopicExists`, `InvalidConfig`, `Closed`, `Io`.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        self.check_open()?;
        topic::validate_name(name)?;
        config.validate()?;
        config.check_compression_available()?;
        self.create_topic_unchecked(name, config)
    }

    pub(crate) fn create_topic_unchecked(&self, name: &str, config: TopicConfig) -> Result<()> {
        let _meta = self.inner.metadata.lock();
        self.check_open()?;
        {
            let topics = self.inner.topics.read();
            if topics.contains_key(name) {
                return Err(Error::TopicExists {
                    topic: name.to_owned(),
                });
            }
            if let Some(other) = topics.keys().find(|k| topic::collides(k, name)) {
                return Err(Error::InvalidTopicName {
                    name: name.to_owned(),
                    reason: if other.contains('.') {
                        "it collides with an existing topic that differs only by '.' and '_'"
                    } else {
                        "it collides with an existing topic that differs only by '_' and '.'"
                    },
                });
            }
            if topics.len() >= crate::limits::TOPICS_MAX {
                return Err(Error::InvalidConfig {
                    field: "topics",
                    reason: format!("the log already has {} topics", topics.len()),
                });
            }
        }
        let t = open_topic(
            &self.inner.vfs,
            &self.inner.dir,
            &self.inner.config,
            &self.inner.open_gauge,
            name,
            &config,
            Vec::new(),
        )?;
        self.inner.vfs.sync_dir(&self.inner.dir)?;
        let mut next = self.inner.topics.read().clone();
        next.insert(name.to_owned(), Arc::new(t));
        self.inner.store_topics(&next)?;
        *self.inner.topics.write() = next;
        Ok(())
    }

    /// Deletes a topic and its data.
    ///
    /// # Errors
    /// `UnknownTopic`, `Closed`, `Io`.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        self.check_open()?;
        let _meta = self.inner.metadata.lock();
        let mut next = self.inner.topics.read().clone();
        let Some(t) = next.remove(name) else {
            return Err(Error::UnknownTopic {
                topic: name.to_owned(),
            });
        };
        // The metadata goes first: a crash after it leaves folders that the next
        // open removes.
        self.inner.store_topics(&next)?;
        *self.inner.topics.write() = next;
        for (i, p) in t.partitions.iter().enumerate() {
            let _ = p.log.close();
            let dir = self.inner.dir.join(format!("{name}-{i}"));
            if self.inner.vfs.exists(&dir)? {
                self.inner.vfs.remove_dir_all(&dir)?;
            }
        }
        self.inner.vfs.sync_dir(&self.inner.dir)
    }

    /// Changes a topic's config. Partitions may only grow.
    ///
    /// # Errors
    /// `UnknownTopic`, `InvalidConfig` (also for fewer partitions), `Closed`, `Io`.
    pub fn alter_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        self.check_open()?;
        config.validate()?;
        config.check_compression_available()?;
        let _meta = self.inner.metadata.lock();
        let old = self.topic(name)?;
        if config.partitions < old.config.partitions {
            return Err(Error::InvalidConfig {
                field: "partitions",
                reason: format!(
                    "topic {name:?} has {} partitions; partitions can only grow, not shrink to {}",
                    old.config.partitions, config.partitions
                ),
            });
        }
        let t = open_topic(
            &self.inner.vfs,
            &self.inner.dir,
            &self.inner.config,
            &self.inner.open_gauge,
            name,
            &config,
            old.partitions.clone(),
        )?;
        self.inner.vfs.sync_dir(&self.inner.dir)?;
        let mut next = self.inner.topics.read().clone();
        next.insert(name.to_owned(), Arc::new(t));
        self.inner.store_topics(&next)?;
        *self.inner.topics.write() = next;
        Ok(())
    }

    /// The topic names, sorted (internal topics excluded).
    pub fn topics(&self) -> Vec<String> {
        self.inner
            .topics
            .read()
            .keys()
            .filter(|k| !k.starts_with("__"))
            .cloned()
            .collect()
    }

    /// Describes a topic.
    ///
    /// # Errors
    /// `UnknownTopic`, `Closed`.
    pub fn describe(&self, name: &str) -> Result<TopicInfo> {
        self.check_open()?;
        let t = self.topic(name)?;
        Ok(TopicInfo {
            name: name.to_owned(),
            config: t.config.clone(),
            partitions: t
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| PartitionInfo {
                    partition: i as u32,
                    start_offset: p.log.start_offset(),
                    end_offset: p.log.end_offset(),
                    segments: p.log.segment_count(),
                    size_bytes: p.log.size_bytes(),
                })
                .collect(),
        })
    }

    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.inner
            .topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic {
                topic: name.to_owned(),
            })
    }

    /// Partitions whose files are open now; the others are parked until
    /// their next use (see [`LogConfig::max_open_partitions`]).
    pub fn open_partitions(&self) -> usize {
        self.inner.open_gauge.load(Ordering::Relaxed)
    }

    pub(crate) fn partition(&self, t: &Topic, partition: u32) -> Result<Arc<Partition>> {
        let p = t
            .partitions
            .get(partition as usize)
            .cloned()
            .ok_or_else(|| Error::UnknownPartition {
                topic: t.name.to_string(),
                partition,
                partitions: t.partitions.len() as u32,
            })?;
        p.log.touch();
        if self.inner.open_gauge.load(Ordering::Relaxed) > self.inner.open_budget {
            self.inner.park_unused(&p);
        }
        Ok(p)
    }

    /// Up to `max` records of a partition with offsets `>= from`, in order: at
    /// least one if any record exists at or after `from`, empty at the end.
    /// Zero-copy: keys and values point into the mapped segment.
    ///
    /// # Errors
    /// `UnknownTopic`, `UnknownPartition`, `OffsetOutOfRange` (below the start or
    /// past the end), `Corrupt` over damaged bytes, `Closed`.
    pub fn fetch(&self, topic: &str, partition: u32, from: u64, max: usize) -> Result<Vec<ConsumedRecord>> {
        self.check_open()?;
        let t = self.topic(topic)?;
        let p = self.partition(&t, partition)?;
        let records = p
            .log
            .read(from, max)
            .map_err(|e| with_place(e, topic, partition))?;
        // With `Always`, readers see only what is durable.
        let visible = match self.inner.config.durability {
            Durability::Always => p.commit.durable_offset(),
            _ => u64::MAX,
        };
        Ok(records
            .into_iter()
            .filter(|r| r.offset < visible)
            .map(|r| ConsumedRecord {
                topic: t.name.clone(),
                partition,
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
                headers: r.headers,
            })
            .collect())
    }

    /// Calls `f` with up to `max` records of a partition with offsets `>= from`,
    /// in order, as [`fetch`](Log::fetch) would return them, but borrowed
    /// from the mapped segment: nothing is copied or allocated per record
    /// (a [`RecordRef`] is valid during its call only; copy what must
    /// outlive it). Every batch is validated (CRC-32C and structure) before
    /// any of its records is visited. The fastest way to scan a partition.
    ///
    /// # Errors
    /// As [`fetch`](Log::fetch); records visited before an error stay visited.
    pub fn fetch_each<F: FnMut(RecordRef<'_>)>(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
        mut f: F,
    ) -> Result<Fetched> {
        self.check_open()?;
        let t = self.topic(topic)?;
        let p = self.partition(&t, partition)?;
        // With `Always`, readers see only what is durable.
        let upper = match self.inner.config.durability {
            Durability::Always => p.commit.durable_offset(),
            _ => u64::MAX,
        };
        let mut visitor = crate::segment::Visitor {
            f: &mut f,
            upper,
            visited: 0,
            last: None,
            scratch: crate::batch::VisitScratch::default(),
            past_upper: false,
        };
        p.log
            .read_into(from, max, &mut visitor)
            .map_err(|e| with_place(e, topic, partition))?;
        Ok(Fetched {
            records: visitor.visited,
            next_offset: visitor.last.map_or(from, |o| o + 1),
        })
    }

    /// The first offset whose record timestamp is `>= timestamp`, or `None`.
    ///
    /// # Errors
    /// `UnknownTopic`, `UnknownPartition`, `Corrupt`, `Closed`.
    pub fn offset_for_timestamp(&self, topic: &str, partition: u32, timestamp: i64) -> Result<Option<u64>> {
        self.check_open()?;
        let t = self.topic(topic)?;
        let p = self.partition(&t, partition)?;
        p.log
            .offset_for_timestamp(timestamp)
            .map_err(|e| with_place(e, topic, partition))
    }
}

/// Fills in the topic and partition of errors raised by a bare partition log.
pub(crate) fn with_place(e: Error, topic: &str, partition: u32) -> Error {
    match e {
        Error::OffsetOutOfRange {
            offset, start, end, ..
        } => Error::OffsetOutOfRange {
            topic: topic.to_owned(),
            partition,
            offset,
            start,
            end,
        },
        Error::RecordTooLarge { size, max, .. } => Error::RecordTooLarge {
            topic: topic.to_owned(),
            partition,
            size,
            max,
        },
        Error::InvalidRecord { reason, .. } => Error::InvalidRecord {
            topic: topic.to_owned(),
            reason,
        },
        other => other,
    }
}

impl LogInner {
    fn next_nonce(&self) -> u64 {
        self.nonce.fetch_add(1, Ordering::Relaxed)
    }

    fn store_topics(&self, topics: &BTreeMap<String, Arc<Topic>>) -> Result<()> {
        let list: Vec<(&str, &TopicConfig)> = topics.iter().map(|(k, t)| (k.as_str(), &t.config)).collect();
        vfs::atomic_replace(
            &*self.vfs,
            &self.dir.join(TOPICS_FILE),
            &topic::encode(&list),
            self.next_nonce(),
        )
    }

    /// Parks partitions until an eighth of the open-partition budget is free
    /// (CLOCK: a partition used since the last sweep gets a second chance),
    /// never `keep`, the one being used. Failures leave a partition open.
    pub(crate) fn park_unused(&self, keep: &Arc<Partition>) {
        let Some(_parking) = self.parking.try_lock() else {
            return;
        };
        let target = self.open_budget - self.open_budget / 8;
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        'sweeps: for _sweep in 0..2 {
            for t in &topics {
                for p in &t.partitions {
                    if self.open_gauge.load(Ordering::Relaxed) <= target {
                        break 'sweeps;
                    }
                    if Arc::ptr_eq(p, keep) || p.log.take_referenced() {
                        continue;
                    }
                    let _ = p.log.park();
                }
            }
        }
        crate::observe::open_gauge(self.open_gauge.load(Ordering::Relaxed));
    }

    pub(crate) fn sync_all(&self) -> Result<()> {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        let mut first_err = None;
        for t in topics {
            for p in &t.partitions {
                let end = p.log.end_offset();
                if let Err(e) = p.commit.wait_durable(&p.log, end) {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Hands an async send's durability wait to the syncer thread.
    pub(crate) fn submit_sync(self: &Arc<Self>, request: crate::producer::SyncRequest) -> Result<()> {
        let mut syncer = self.syncer.lock();
        if syncer.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<crate::producer::SyncRequest>();
            let notifier = self.notifier.clone();
            std::thread::Builder::new()
                .name("tidelog-sync".into())
                .spawn(move || {
                    while let Ok(request) = rx.recv() {
                        request.serve();
                        notifier.notify();
                    }
                })
                .map_err(|e| Error::io(&self.dir, e))?;
            *syncer = Some(tx);
        }
        match syncer.as_ref().map(|tx| tx.send(request)) {
            Some(Ok(())) => Ok(()),
            _ => Err(Error::Closed {
                path: self.dir.clone(),
            }),
        }
    }

    fn stop_flusher(&self) {
        {
            let (lock, cv) = &*self.stop;
            *lock.lock() = true;
            cv.notify_all();
        }
        for slot in [&self.flusher, &self.maintainer] {
            if let Some(h) = slot.lock().take() {
                if h.thread().id() != std::thread::current().id() {
                    let _ = h.join();
                }
            }
        }
    }
}

impl Drop for LogInner {
    fn drop(&mut self) {
        // Dropped without close: stop the flusher, best-effort flush. Every
        // appended byte is already in the kernel; the next open recovers.
        if !self.closed.load(Ordering::Acquire) {
            self.stop_flusher();
            let _ = self.sync_all();
        }
    }
}

/// Opens (creating if missing) the partitions of a topic; `existing` are kept.
fn open_topic(
    vfs: &Arc<dyn Vfs>,
    dir: &Path,
    log_config: &LogConfig,
    open_gauge: &Arc<AtomicUsize>,
    name: &str,
    config: &TopicConfig,
    existing: Vec<Arc<Partition>>,
) -> Result<Topic> {
    let mut partitions = existing;
    let budget = log_config.open_partitions_budget();
    for i in partitions.len() as u32..config.partitions {
        let pdir = dir.join(format!("{name}-{i}"));
        let (log, _report) = PartitionLog::open_counted(
            vfs.clone(),
            log_config.clock.clone(),
            &pdir,
            config.partition_config(),
            open_gauge.clone(),
        )?;
        // Every write to these is fsynced before it is acknowledged: bound
        // what may be unsynced, so recovery can trust older bytes.
        let synced_writes = matches!(log_config.durability, Durability::Always) || name == OFFSETS_TOPIC;
        log.set_sync_window(synced_writes.then_some(crate::limits::SYNC_WINDOW_BYTES))?;
        // What recovery kept is in the page cache; make it durable before the
        // group-commit watermark says so.
        let end = if synced_writes {
            log.sync_active()?
        } else {
            log.end_offset()
        };
        // Over the open-partition budget (a topic of many partitions, or a
        // recovery), new partitions are parked as soon as they are ready.
        if open_gauge.load(Ordering::Relaxed) > budget {
            log.park()?;
        }
        partitions.push(Arc::new(Partition {
            log,
            commit: GroupCommit::new(end),
        }));
    }
    Ok(Topic {
        name: Arc::from(name),
        config: config.clone(),
        partitions,
    })
}

/// `<topic>-<digits>` → (topic, partition), parsed at the last '-' as Kafka does.
fn parse_partition_dir(name: &str) -> Option<(&str, u32)> {
    let (topic, digits) = name.rsplit_once('-')?;
    if topic.is_empty() || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((topic, digits.parse().ok()?))
}
