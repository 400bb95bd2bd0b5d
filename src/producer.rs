//! `Producer`: appends records to topics. Keyed records go where Kafka's
//! default partitioner puts them; keyless records are spread round robin.
//! `send_batch` appends one atomic batch per partition.
//!
//! Thread-safety: `Producer` is `Clone + Send + Sync`; clones share the log and
//! the round-robin counter.

use crate::batch::{self, BatchHeader, EncodeError};
use crate::config::Durability;
use crate::error::{Error, Result};
use crate::log::{with_place, Log, Partition, Topic};
use crate::partitioner::partition_for_key;
use crate::record::Record;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Where and when a record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The partition it went to.
    pub partition: u32,
    /// Its offset there.
    pub offset: u64,
    /// Its timestamp (the record's, or the time of the send).
    pub timestamp: i64,
}

/// Appends records to a [`Log`]. See the module docs.
#[derive(Debug, Clone)]
pub struct Producer {
    log: Log,
    next_keyless: Arc<AtomicU32>,
}

/// A batch appended but maybe not yet durable.
pub(crate) struct Pending {
    partition: Arc<Partition>,
    next_offset: u64,
}

impl Producer {
    pub(crate) fn new(log: Log) -> Producer {
        Producer {
            log,
            next_keyless: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Appends one record; returns once it is as durable as the log's
    /// `Durability` says.
    ///
    /// # Errors
    /// `UnknownTopic` (unless topics are auto-created), `InvalidRecord` (no key
    /// in a compacted topic), `RecordTooLarge`, `Fenced`, `Closed`, `Io`.
    pub fn send(&self, topic: &str, record: Record) -> Result<RecordMetadata> {
        let (meta, pending) = self.append_one(topic, None, record)?;
        self.wait(std::slice::from_ref(&pending))?;
        self.log.inner.notifier.notify();
        Ok(meta)
    }

    /// Appends one record to an explicit partition.
    ///
    /// # Errors
    /// As [`Producer::send`], and `UnknownPartition`.
    pub fn send_to(&self, topic: &str, partition: u32, record: Record) -> Result<RecordMetadata> {
        let (meta, pending) = self.append_one(topic, Some(partition), record)?;
        self.wait(std::slice::from_ref(&pending))?;
        self.log.inner.notifier.notify();
        Ok(meta)
    }

    /// Appends records grouped by partition, each group as one atomic batch
    /// (after any crash a group is wholly there or wholly absent). Every record
    /// is validated first: one invalid record fails the call and writes nothing.
    /// Metadata comes back in input order.
    ///
    /// # Errors
    /// As [`Producer::send`].
    pub fn send_batch(&self, topic: &str, records: Vec<Record>) -> Result<Vec<RecordMetadata>> {
        if records.is_empty() {
            self.log.check_open()?;
            return Ok(Vec::new());
        }
        let (metas, pending) = self.append(topic, None, records)?;
        self.wait(&pending)?;
        self.log.inner.notifier.notify();
        Ok(metas)
    }

    /// As [`Producer::send`], as a future that needs no runtime; it resolves
    /// when the record is as durable as configured. The append happens at the
    /// first poll; with `Durability::Always` the fsync wait runs on a helper
    /// thread, so no executor thread blocks on it.
    pub fn send_async(&self, topic: &str, record: Record) -> SendFuture {
        SendFuture {
            producer: self.clone(),
            topic: topic.to_owned(),
            record: Some(record),
            waiting: None,
        }
    }

    fn topic_for_send(&self, topic: &str) -> Result<Arc<Topic>> {
        self.log.check_open()?;
        match self.log.topic(topic) {
            Err(Error::UnknownTopic { .. }) if self.log.inner.config.auto_create_topics => {
                crate::topic::validate_name(topic)?;
                match self
                    .log
                    .create_topic_unchecked(topic, self.log.inner.config.default_topic.clone())
                {
                    Ok(()) | Err(Error::TopicExists { .. }) => {}
                    Err(e) => return Err(e),
                }
                self.log.topic(topic)
            }
            other => other,
        }
    }

    /// Validates, encodes and appends one record: [`Producer::append`] for a
    /// single record, without the lists a batch needs.
    fn append_one(
        &self,
        topic: &str,
        explicit: Option<u32>,
        record: Record,
    ) -> Result<(RecordMetadata, Pending)> {
        let started = crate::observe::start();
        let t = self.topic_for_send(topic)?;
        let now = self.log.inner.config.clock.now_ms();
        let keyless = self.next_keyless.fetch_add(1, Ordering::Relaxed);
        let p = place(&t, topic, explicit, 0, &record, keyless)?;
        let part = self.log.partition(&t, p)?;
        let (mut buf, header) = encode(&t, topic, p, std::slice::from_ref(&record), now)?;
        self.log.check_open()?;
        let bytes = buf.len() as u64;
        let appended = part
            .log
            .append_encoded(&mut buf, header)
            .map_err(|e| with_place(e, topic, p))?;
        crate::observe::appended(topic, 1, bytes, started);
        let meta = RecordMetadata {
            partition: p,
            offset: appended.base_offset,
            timestamp: record.timestamp.unwrap_or(now),
        };
        let pending = Pending {
            partition: part,
            next_offset: appended.last_offset + 1,
        };
        Ok((meta, pending))
    }

    /// Validates, encodes and appends; returns metadata in input order.
    fn append(
        &self,
        topic: &str,
        explicit: Option<u32>,
        records: Vec<Record>,
    ) -> Result<(Vec<RecordMetadata>, Vec<Pending>)> {
        let started = crate::observe::start();
        let t = self.topic_for_send(topic)?;
        let now = self.log.inner.config.clock.now_ms();
        // Place and validate every record before writing anything.
        let keyless_base = self.next_keyless.fetch_add(1, Ordering::Relaxed);
        let mut placed = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            placed.push(place(&t, topic, explicit, i, r, keyless_base)?);
        }
        let mut groups: Vec<(u32, Vec<usize>)> = Vec::new();
        match placed.first() {
            // The common case, every record on one partition: one group in
            // input order, built at once.
            Some(&p) if placed.iter().all(|q| *q == p) => groups.push((p, (0..records.len()).collect())),
            _ => {
                for (i, p) in placed.into_iter().enumerate() {
                    match groups.iter_mut().find(|(gp, _)| *gp == p) {
                        Some((_, idx)) => idx.push(i),
                        None => groups.push((p, vec![i])),
                    }
                }
            }
        }
        let mut encoded: Vec<(Arc<Partition>, u32, Vec<u8>, BatchHeader)> = Vec::with_capacity(groups.len());
        for (p, idx) in &groups {
            let part = self.log.partition(&t, *p)?;
            // One group of every record: encode in place; only a split across
            // partitions needs its own list.
            let split: Vec<Record>;
            let group: &[Record] = if groups.len() == 1 {
                &records
            } else {
                split = idx.iter().filter_map(|i| records.get(*i).cloned()).collect();
                &split
            };
            let (buf, header) = encode(&t, topic, *p, group, now)?;
            encoded.push((part, *p, buf, header));
        }
        let mut metas = vec![
            RecordMetadata {
                partition: 0,
                offset: 0,
                timestamp: 0
            };
            records.len()
        ];
        let mut pending = Vec::with_capacity(encoded.len());
        let mut appended_bytes = 0u64;
        for ((part, p, mut buf, header), (_, idx)) in encoded.into_iter().zip(&groups) {
            self.log.check_open()?;
            appended_bytes += buf.len() as u64;
            let appended = part
                .log
                .append_encoded(&mut buf, header)
                .map_err(|e| with_place(e, topic, p))?;
            for (k, i) in idx.iter().enumerate() {
                if let (Some(m), Some(r)) = (metas.get_mut(*i), records.get(*i)) {
                    *m = RecordMetadata {
                        partition: p,
                        offset: appended.base_offset + k as u64,
                        timestamp: r.timestamp.unwrap_or(now),
                    };
                }
            }
            pending.push(Pending {
                partition: part,
                next_offset: appended.last_offset + 1,
            });
        }
        crate::observe::appended(topic, records.len() as u64, appended_bytes, started);
        Ok((metas, pending))
    }

    fn needs_wait(&self) -> bool {
        matches!(self.log.inner.config.durability, Durability::Always)
    }

    fn wait(&self, pending: &[Pending]) -> Result<()> {
        if !self.needs_wait() {
            return Ok(());
        }
        for p in pending {
            p.partition.commit.wait_durable(&p.partition.log, p.next_offset)?;
        }
        Ok(())
    }
}

/// The partition record `i` of a send goes to (explicit, by key, or the
/// call's round-robin choice for keyless records), after checking it may be
/// written to the topic at all.
fn place(t: &Topic, topic: &str, explicit: Option<u32>, i: usize, r: &Record, keyless: u32) -> Result<u32> {
    let count = t.partitions.len() as u32;
    if t.config.is_compacted() && r.key.is_none() {
        return Err(Error::InvalidRecord {
            topic: topic.to_owned(),
            reason: format!("record {i} has no key; a compacted topic needs one"),
        });
    }
    match (explicit, &r.key) {
        (Some(p), _) if p >= count => Err(Error::UnknownPartition {
            topic: topic.to_owned(),
            partition: p,
            partitions: count,
        }),
        (Some(p), _) => Ok(p),
        // One partition: no need to hash the key.
        (None, Some(_)) if count == 1 => Ok(0),
        (None, Some(k)) => Ok(partition_for_key(k, count)),
        // Keyless records of one call stick to one partition (one batch).
        (None, None) => Ok(keyless % count),
    }
}

/// Encodes `group` as one batch for partition `p`, refusing it over the
/// topic's `max_record_bytes`.
fn encode(t: &Topic, topic: &str, p: u32, group: &[Record], now: i64) -> Result<(Vec<u8>, BatchHeader)> {
    let max = u64::from(t.config.max_record_bytes);
    let mut buf = Vec::with_capacity(size_hint(group));
    let refused = |e: EncodeError| match e {
        EncodeError::TooLarge { size } => Error::RecordTooLarge {
            topic: topic.to_owned(),
            partition: p,
            size,
            max,
        },
        other => Error::InvalidRecord {
            topic: topic.to_owned(),
            reason: other.to_string(),
        },
    };
    let header = batch::encode_batch(&mut buf, 0, group, now).map_err(refused)?;
    let header = batch::compress_batch(&mut buf, 0, header, t.config.compression).map_err(refused)?;
    if buf.len() as u64 > max {
        return Err(Error::RecordTooLarge {
            topic: topic.to_owned(),
            partition: p,
            size: buf.len() as u64,
            max,
        });
    }
    Ok((buf, header))
}

/// About the size `group` encodes to (a header, each record's fields and a
/// few bytes of varints each), so the encode buffer is allocated once.
/// Capped at the largest batch.
fn size_hint(group: &[Record]) -> usize {
    let len = |b: &Option<bytes::Bytes>| b.as_ref().map_or(0, |b| b.len());
    let records: usize = group
        .iter()
        .map(|r| {
            let headers: usize = r.headers.iter().map(|(k, v)| k.len() + len(v) + 10).sum();
            len(&r.key) + len(&r.value) + headers + 24
        })
        .sum();
    (crate::limits::BATCH_HEADER_BYTES + records).min(crate::limits::BATCH_BYTES_MAX as usize)
}

pub(crate) type Slot = Arc<parking_lot::Mutex<(Option<Result<()>>, Option<std::task::Waker>)>>;

/// An async send waiting for durability, served by the log's syncer thread.
#[derive(Debug)]
pub(crate) struct SyncRequest {
    pending: Vec<Pending>,
    slot: Slot,
}

impl SyncRequest {
    /// Waits for durability (leading group commits as needed), then completes
    /// the future's slot and wakes its task.
    pub(crate) fn serve(self) -> bool {
        let mut ok = true;
        let mut result = Ok(());
        for p in &self.pending {
            if let Err(e) = p.partition.commit.wait_durable(&p.partition.log, p.next_offset) {
                result = Err(e);
                ok = false;
                break;
            }
        }
        let waker = {
            let mut s = self.slot.lock();
            s.0 = Some(result);
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        ok
    }
}

/// The future of [`Producer::send_async`]. `Send`; needs no runtime.
#[derive(Debug)]
pub struct SendFuture {
    producer: Producer,
    topic: String,
    record: Option<Record>,
    waiting: Option<(RecordMetadata, Slot)>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("next_offset", &self.next_offset)
            .finish()
    }
}

impl Future for SendFuture {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some((meta, slot)) = &this.waiting {
            let mut s = slot.lock();
            return match s.0.take() {
                Some(result) => Poll::Ready(result.map(|()| *meta)),
                None => {
                    s.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            };
        }
        let Some(record) = this.record.take() else {
            return Poll::Ready(Err(Error::InvalidRecord {
                topic: this.topic.clone(),
                reason: "the send future was polled after it completed".into(),
            }));
        };
        let (meta, pending) = match this.producer.append_one(&this.topic, None, record) {
            Ok(x) => x,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let durable = !this.producer.needs_wait() || pending.partition.commit.is_durable(pending.next_offset);
        if durable {
            this.producer.log.inner.notifier.notify();
            return Poll::Ready(Ok(meta));
        }
        // Wait for the fsync off the executor's thread: the log's syncer
        // thread serves every pending async send, one group commit at a time.
        let slot: Slot = Arc::new(parking_lot::Mutex::new((None, Some(cx.waker().clone()))));
        let request = SyncRequest {
            pending: vec![pending],
            slot: slot.clone(),
        };
        if let Err(e) = this.producer.log.inner.submit_sync(request) {
            return Poll::Ready(Err(e));
        }
        this.waiting = Some((meta, slot));
        Poll::Pending
    }
}
