//! `Consumer`: pulls records from its own positions, alone (`assign`) or as a
//! member of a group (`subscribe`), and commits how far it got.
//!
//! Positions live in the consumer; commits go to the offsets store (see
//! `offsets.rs`). A blocked `poll` and a pending `next_batch` wake when any
//! producer appends (the log's [`Notifier`]); idle consumers cost nothing.
//!
//! Thread-safety: `Consumer` is `Send` (not `Sync`: its methods take `&mut self`).

use crate::config::Offset;
use crate::error::{Error, Result};
use crate::group::MemberId;
use crate::log::Log;
use crate::offsets::{encode_key, encode_value, OFFSETS_TOPIC};
use crate::record::{ConsumedRecord, Record};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Default `max_poll_records` (Kafka's).
const MAX_POLL_RECORDS_DEFAULT: usize = 500;

/// Wakes blocked polls and pending futures when data arrives.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    seq: AtomicU64,
    waiting: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
    wakers: Mutex<Vec<Waker>>,
    has_wakers: AtomicBool,
}

impl Notifier {
    pub(crate) fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Something changed (an append, a rebalance): wake every waiter.
    pub(crate) fn notify(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock();
            self.cv.notify_all();
        }
        if self.has_wakers.load(Ordering::SeqCst) && self.has_wakers.swap(false, Ordering::SeqCst) {
            let wakers = std::mem::take(&mut *self.wakers.lock());
            for w in wakers {
                w.wake();
            }
        }
    }

    /// Blocks until `seq` moves past `seen` or `deadline` passes.
    fn wait_until(&self, seen: u64, deadline: Instant) {
        let mut guard = self.lock.lock();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        while self.seq.load(Ordering::SeqCst) == seen && Instant::now() < deadline {
            let _ = self.cv.wait_until(&mut guard, deadline);
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// Registers a waker; true if `seq` already moved past `seen` (poll again).
    fn register(&self, waker: &Waker, seen: u64) -> bool {
        {
            let mut wakers = self.wakers.lock();
            if !wakers.iter().any(|w| w.will_wake(waker)) {
                wakers.push(waker.clone());
            }
            self.has_wakers.store(true, Ordering::SeqCst);
        }
        self.seq() != seen
    }
}

/// Lag of one partition for a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The group's committed offset (next to read), if any.
    pub committed: Option<u64>,
    /// The partition's log end offset.
    pub end_offset: u64,
    /// `end_offset - committed`, or `end_offset - start_offset` with no commit.
    pub lag: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    None,
    Subscribed(Vec<String>),
    Assigned(Vec<(String, u32)>),
}

/// A consumer of a group. Created by [`Log::consumer`].
#[derive(Debug)]
pub struct Consumer {
    log: Log,
    group: String,
    member: MemberId,
    mode: Mode,
    /// Partitions owned as of the last poll (group) or the assignment.
    owned: Vec<(String, u32)>,
    generation: u64,
    positions: HashMap<(String, u32), u64>,
    max_poll_records: usize,
    next_partition: usize,
}

impl Log {
    /// A consumer of `group` (it joins the group at `subscribe`).
    pub fn consumer(&self, group: &str) -> Consumer {
        Consumer {
            member: self.inner.groups.new_member(),
            log: self.clone(),
            group: group.to_owned(),
            mode: Mode::None,
            owned: Vec::new(),
            generation: 0,
            positions: HashMap::new(),
            max_poll_records: MAX_POLL_RECORDS_DEFAULT,
            next_partition: 0,
        }
    }

    /// The consumer groups with committed offsets, sorted.
    ///
    /// # Errors
    /// `Closed`.
    pub fn groups(&self) -> Result<Vec<String>> {
        self.check_open()?;
        Ok(self.inner.offsets.groups())
    }

    /// Lag per partition of every topic the group committed on or is subscribed
    /// to, sorted; empty for an unknown group.
    ///
    /// # Errors
    /// `Closed`.
    pub fn group_lag(&self, group: &str) -> Result<Vec<PartitionLag>> {
        self.check_open()?;
        // Every partition of every topic committed on or subscribed to.
        let mut topics: Vec<String> = self
            .inner
            .offsets
            .partitions_of(group)
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        topics.extend(self.inner.groups.subscribed_topics(group));
        topics.sort();
        topics.dedup();
        let mut parts = Vec::new();
        for topic in topics {
            if let Ok(t) = self.topic(&topic) {
                parts.extend((0..t.partitions.len() as u32).map(|p| (topic.clone(), p)));
            }
        }
        parts.sort();
        parts.dedup();
        let mut rows = Vec::with_capacity(parts.len());
        for (topic, partition) in parts {
            let Ok(t) = self.topic(&topic) else { continue };
            let Ok(p) = self.partition(&t, partition) else {
                continue;
            };
            let end = p.log.end_offset();
            let committed = self
                .inner
                .offsets
                .get(&(group.to_owned(), topic.clone(), partition));
            let lag = match committed {
                Some(c) => end.saturating_sub(c),
                None => end.saturating_sub(p.log.start_offset()),
            };
            crate::observe::lag(group, &topic, partition, lag);
            rows.push(PartitionLag {
                topic,
                partition,
                committed,
                end_offset: end,
                lag,
            });
        }
        Ok(rows)
    }

    pub(crate) fn partition_count(&self, topic: &str) -> u32 {
        self.topic(topic).map_or(0, |t| t.partitions.len() as u32)
    }
}

impl Consumer {
    /// Joins the group with these topics (`&[]` leaves it). The consumer owns
    /// nothing until its next `poll`.
    ///
    /// # Errors
    /// `UnknownTopic`, `Closed`.
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        self.log.check_open()?;
        for t in topics {
            self.log.topic(t)?;
        }
        self.leave();
        if topics.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        let log = self.log.clone();
        self.log
            .inner
            .groups
            .join(&self.group, self.member, list.clone(), &|t| {
                log.partition_count(t)
            });
        self.mode = Mode::Subscribed(list);
        self.log.inner.notifier.notify();
        Ok(())
    }

    /// Manual assignment: reads exactly these partitions, outside group balancing.
    ///
    /// # Errors
    /// `UnknownTopic`, `UnknownPartition`, `Closed`.
    pub fn assign(&mut self, partitions: &[(&str, u32)]) -> Result<()> {
        self.log.check_open()?;
        for (t, p) in partitions {
            let topic = self.log.topic(t)?;
            self.log.partition(&topic, *p)?;
        }
        self.leave();
        if partitions.is_empty() {
            // An empty assignment is no assignment (as Kafka's unsubscribe).
            return Ok(());
        }
        let list: Vec<(String, u32)> = partitions.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect();
        self.mode = Mode::Assigned(list.clone());
        self.set_owned(list)
    }

    /// The partitions this consumer owns now.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        // Revocations show at once; additions arrive at the next poll.
        let mut v: Vec<(String, u32)> = self
            .owned
            .iter()
            .filter(|(t, p)| self.owns(t, *p))
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Sets the most records one `poll` returns (default 500; 0 means 1).
    pub fn max_poll_records(&mut self, n: usize) -> &mut Self {
        self.max_poll_records = n.max(1);
        self
    }

    /// Waits up to `timeout` for records from the owned partitions, fairly
    /// across them. Picks up a new group assignment first.
    ///
    /// # Errors
    /// `NotSubscribed`, `Closed`, `Corrupt`, `Io`.
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumedRecord>> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.log.inner.notifier.seq();
            let records = self.poll_now()?;
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
            self.log.inner.notifier.wait_until(seen, deadline);
        }
    }

    /// Waits for records without blocking a thread: a runtime-agnostic future.
    pub fn next_batch(&mut self) -> NextBatch<'_> {
        NextBatch { consumer: self }
    }

    /// One non-blocking round over the owned partitions.
    fn poll_now(&mut self) -> Result<Vec<ConsumedRecord>> {
        self.log.check_open()?;
        match &self.mode {
            Mode::None => {
                return Err(Error::NotSubscribed {
                    group: self.group.clone(),
                })
            }
            Mode::Subscribed(_) => self.refresh()?,
            Mode::Assigned(_) => {}
        }
        let mut out = Vec::new();
        let n = self.owned.len();
        for k in 0..n {
            let remaining = self.max_poll_records - out.len();
            if remaining == 0 {
                break;
            }
            let Some((topic, p)) = self.owned.get((self.next_partition + k) % n).cloned() else {
                continue;
            };
            let got = self.fetch_from(&topic, p, remaining)?;
            out.extend(got);
        }
        self.next_partition = self.next_partition.wrapping_add(1);
        Ok(out)
    }

    fn fetch_from(&mut self, topic: &str, p: u32, max: usize) -> Result<Vec<ConsumedRecord>> {
        let key = (topic.to_owned(), p);
        let Some(&pos) = self.positions.get(&key) else {
            return Ok(Vec::new());
        };
        let t = self.log.topic(topic)?;
        let part = self.log.partition(&t, p)?;
        let (start, end) = (part.log.start_offset(), part.log.end_offset());
        // Below the start (retention): move to the start. Past the end: clamp.
        let pos = pos.clamp(start, end);
        self.positions.insert(key.clone(), pos);
        if pos == end {
            return Ok(Vec::new());
        }
        let got = self.log.fetch(topic, p, pos, max)?;
        if let Some(last) = got.last() {
            self.positions.insert(key, last.offset() + 1);
        }
        Ok(got)
    }

    /// Takes the group's current assignment for this member, if it changed.
    fn refresh(&mut self) -> Result<()> {
        let (generation, assigned) = self.log.inner.groups.assignment(&self.group, self.member);
        if generation != self.generation {
            // A partition (re)assigned after the generation this consumer last
            // saw may have been read and committed by another member in
            // between: it resumes from the group's committed position.
            let seen = self.generation;
            for (topic, p, since) in &assigned {
                if *since > seen {
                    self.positions.remove(&(topic.clone(), *p));
                }
            }
            self.generation = generation;
            self.set_owned(assigned.into_iter().map(|(t, p, _)| (t, p)).collect())?;
        }
        Ok(())
    }

    fn set_owned(&mut self, owned: Vec<(String, u32)>) -> Result<()> {
        self.positions.retain(|k, _| owned.contains(k));
        for (topic, p) in &owned {
            if self.positions.contains_key(&(topic.clone(), *p)) {
                continue;
            }
            let Ok(t) = self.log.topic(topic) else { continue };
            let Ok(part) = self.log.partition(&t, *p) else {
                continue;
            };
            let (start, end) = (part.log.start_offset(), part.log.end_offset());
            let committed = self
                .log
                .inner
                .offsets
                .get(&(self.group.clone(), topic.clone(), *p));
            let pos = match committed {
                Some(c) => c.clamp(start, end),
                None => match self.log.inner.config.auto_offset_reset {
                    Offset::Latest => end,
                    _ => start,
                },
            };
            self.positions.insert((topic.clone(), *p), pos);
        }
        self.owned = owned;
        Ok(())
    }

    fn owns(&self, topic: &str, partition: u32) -> bool {
        let cached = self.owned.iter().any(|(t, p)| t == topic && *p == partition);
        match &self.mode {
            Mode::None => false,
            Mode::Assigned(_) => cached,
            // Revocation is immediate: the group's current generation decides.
            Mode::Subscribed(_) => {
                cached
                    && self
                        .log
                        .inner
                        .groups
                        .owns(&self.group, self.member, topic, partition)
            }
        }
    }

    fn not_assigned(topic: &str, partition: u32) -> Error {
        Error::NotAssigned {
            topic: topic.to_owned(),
            partition,
        }
    }

    /// Durably stores the positions reached by `poll` for the owned partitions.
    /// Fsynced before it returns, whatever the log's durability.
    ///
    /// # Errors
    /// `Closed`, `Io`, `Fenced`.
    pub fn commit(&mut self) -> Result<()> {
        self.log.check_open()?;
        let mut list: Vec<(String, u32, u64)> = self
            .positions
            .iter()
            .filter(|((t, p), _)| self.owns(t, *p))
            .map(|((t, p), o)| (t.clone(), *p, *o))
            .collect();
        list.sort();
        self.store(&list)
    }

    /// Durably stores explicit positions (the next offset to read).
    ///
    /// # Errors
    /// `NotAssigned` for a partition not owned, `Closed`, `Io`, `Fenced`.
    pub fn commit_offsets(&mut self, offsets: &[(&str, u32, u64)]) -> Result<()> {
        self.log.check_open()?;
        for (t, p, _) in offsets {
            if !self.owns(t, *p) {
                return Err(Self::not_assigned(t, *p));
            }
        }
        let list: Vec<(String, u32, u64)> = offsets
            .iter()
            .map(|(t, p, o)| ((*t).to_owned(), *p, *o))
            .collect();
        self.store(&list)
    }

    fn store(&self, list: &[(String, u32, u64)]) -> Result<()> {
        if list.is_empty() {
            return Ok(());
        }
        // Offsets-topic strings carry an i16 length (Kafka's schema).
        if self.group.len() > i16::MAX as usize {
            return Err(Error::InvalidConfig {
                field: "group",
                reason: format!(
                    "a group id is at most {} bytes, not {}",
                    i16::MAX,
                    self.group.len()
                ),
            });
        }
        let now = self.log.inner.config.clock.now_ms();
        let records: Vec<Record> = list
            .iter()
            .map(|(t, p, o)| Record {
                key: Some(encode_key(&self.group, t, *p)),
                value: Some(encode_value(*o, now)),
                headers: Vec::new(),
                timestamp: Some(now),
            })
            .collect();
        let t = self.log.topic(OFFSETS_TOPIC)?;
        let part = self.log.partition(&t, 0)?;
        let mut buf = Vec::new();
        let header =
            crate::batch::encode_batch(&mut buf, 0, &records, now).map_err(|e| Error::InvalidRecord {
                topic: OFFSETS_TOPIC.to_owned(),
                reason: e.to_string(),
            })?;
        // One batch per commit (atomic), durable before we return.
        let appended = part.log.append_encoded(&mut buf, header)?;
        part.commit.wait_durable(&part.log, appended.last_offset + 1)?;
        for (tp, p, o) in list {
            self.log
                .inner
                .offsets
                .set((self.group.clone(), tp.clone(), *p), Some(*o));
        }
        Ok(())
    }

    /// Moves the position of an owned partition.
    ///
    /// # Errors
    /// `NotAssigned`, `OffsetOutOfRange` for `At` outside `[start, end]`, `Closed`.
    pub fn seek(&mut self, topic: &str, partition: u32, offset: Offset) -> Result<()> {
        self.log.check_open()?;
        if !self.owns(topic, partition) {
            return Err(Self::not_assigned(topic, partition));
        }
        let t = self.log.topic(topic)?;
        let part = self.log.partition(&t, partition)?;
        let (start, end) = (part.log.start_offset(), part.log.end_offset());
        let pos = match offset {
            Offset::Earliest => start,
            Offset::Latest => end,
            Offset::At(x) if x < start || x > end => {
                return Err(Error::OffsetOutOfRange {
                    topic: topic.to_owned(),
                    partition,
                    offset: x,
                    start,
                    end,
                })
            }
            Offset::At(x) => x,
            Offset::Timestamp(ts) => self
                .log
                .offset_for_timestamp(topic, partition, ts)?
                .unwrap_or(end),
        };
        self.positions.insert((topic.to_owned(), partition), pos);
        Ok(())
    }

    /// The position (next offset `poll` reads) of an owned partition.
    ///
    /// # Errors
    /// `NotAssigned`, `Closed`.
    pub fn position(&self, topic: &str, partition: u32) -> Result<u64> {
        self.log.check_open()?;
        if !self.owns(topic, partition) {
            return Err(Self::not_assigned(topic, partition));
        }
        self.positions
            .get(&(topic.to_owned(), partition))
            .copied()
            .ok_or_else(|| Self::not_assigned(topic, partition))
    }

    /// The group's committed offset for a partition, if any.
    ///
    /// # Errors
    /// `UnknownTopic`, `UnknownPartition`, `Closed`.
    pub fn committed(&self, topic: &str, partition: u32) -> Result<Option<u64>> {
        self.log.check_open()?;
        let t = self.log.topic(topic)?;
        self.log.partition(&t, partition)?;
        Ok(self
            .log
            .inner
            .offsets
            .get(&(self.group.clone(), topic.to_owned(), partition)))
    }

    fn leave(&mut self) {
        if matches!(self.mode, Mode::Subscribed(_)) {
            let log = self.log.clone();
            self.log
                .inner
                .groups
                .leave(&self.group, self.member, &|t| log.partition_count(t));
            self.log.inner.notifier.notify();
        }
        self.mode = Mode::None;
        self.owned.clear();
        self.positions.clear();
        self.generation = 0;
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.leave();
    }
}

/// The future of [`Consumer::next_batch`]: resolves with the next non-empty
/// batch of records (or an error). `Send`; needs no runtime.
#[derive(Debug)]
pub struct NextBatch<'a> {
    consumer: &'a mut Consumer,
}

impl Future for NextBatch<'_> {
    type Output = Result<Vec<ConsumedRecord>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            let seen = this.consumer.log.inner.notifier.seq();
            match this.consumer.poll_now() {
                Ok(records) if records.is_empty() => {}
                other => return Poll::Ready(other),
            }
            if !this.consumer.log.inner.notifier.register(cx.waker(), seen) {
                return Poll::Pending;
            }
        }
    }
}
