//! `Table`: a key → latest value view of a topic (what Kafka Streams calls a
//! global table), meant for compacted topics.
//!
//! Memory holds each live key and where its latest record is (partition and
//! offset); values are read from the mapped segments when asked for, zero
//! copy. The table follows the log by pulling: every call first reads what
//! was appended since the last one (one end-offset check per partition when
//! nothing was), so it is current as of the call. A tombstone removes its
//! key. Built from the start of every partition when made, so after a reopen
//! `log.table(topic)` restores it from the log.

use crate::error::{Error, Result};
use crate::log::Log;
use bytes::Bytes;
use std::collections::HashMap;

/// Where a key's latest record is.
#[derive(Debug, Clone, Copy)]
struct Position {
    partition: u32,
    offset: u64,
}

/// A key → latest value view of a topic; see [`Log::table`].
#[derive(Debug)]
pub struct Table {
    log: Log,
    topic: String,
    /// Live keys and where their latest record is.
    keys: HashMap<Bytes, Position>,
    /// Per partition: the next offset to read.
    next: Vec<u64>,
}

/// Records read per fetch while catching up.
const CATCH_UP_RECORDS: usize = 4096;

impl Log {
    /// A table of `topic`'s latest value per key, built from the start of
    /// every partition (records without a key are skipped). Meant for
    /// compacted topics, where the log keeps the latest record of every key.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir()?;
    /// use tidelog::{Cleanup, Log, LogConfig, Record, TopicConfig};
    /// let log = Log::open(tmp.path(), LogConfig::default())?;
    /// log.create_topic("users", TopicConfig::default().cleanup(Cleanup::Compact))?;
    /// let p = log.producer();
    /// p.send("users", Record::new("alice@old").with_key("u1"))?;
    /// p.send("users", Record::new("alice@new").with_key("u1"))?;
    /// let mut users = log.table("users")?;
    /// assert_eq!(users.get(b"u1")?.as_deref(), Some(&b"alice@new"[..]));
    /// p.send("users", Record::tombstone("u1"))?;
    /// assert_eq!(users.get(b"u1")?, None); // current as of each call
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// `UnknownTopic`, `Closed`, `Corrupt` when a batch cannot be read.
    pub fn table(&self, topic: &str) -> Result<Table> {
        let partitions = self.topic(topic)?.partitions.len();
        let mut table = Table {
            log: self.clone(),
            topic: topic.to_owned(),
            keys: HashMap::new(),
            next: vec![0; partitions],
        };
        table.catch_up()?;
        Ok(table)
    }
}

impl Table {
    /// Reads every record appended since the last call.
    fn catch_up(&mut self) -> Result<()> {
        let info = self.log.describe(&self.topic)?;
        self.next.resize(info.partitions.len(), 0);
        for p in &info.partitions {
            let Some(next) = self.next.get_mut(p.partition as usize) else {
                continue;
            };
            // Records removed by retention or delete_records are gone from
            // the table's source too: start at the partition's start.
            if *next < p.start_offset {
                *next = p.start_offset;
            }
            while *next < p.end_offset {
                let keys = &mut self.keys;
                let partition = p.partition;
                let fetched = self
                    .log
                    .fetch_each(&self.topic, partition, *next, CATCH_UP_RECORDS, |r| {
                        let Some(key) = r.key() else { return };
                        if r.value().is_some() {
                            keys.insert(
                                Bytes::copy_from_slice(key),
                                Position {
                                    partition,
                                    offset: r.offset(),
                                },
                            );
                        } else {
                            keys.remove(key);
                        }
                    })?;
                if fetched.next_offset <= *next {
                    // Nothing more to read below the end (offsets past the
                    // last record of a compacted partition).
                    *next = p.end_offset;
                } else {
                    *next = fetched.next_offset;
                }
            }
        }
        Ok(())
    }

    /// The latest value of `key`, read zero-copy from its segment; `None` if
    /// the key was never written or its latest record is a tombstone.
    ///
    /// # Errors
    /// `Closed`; `Corrupt` when the record's batch cannot be read.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>> {
        self.catch_up()?;
        match self.keys.get(key) {
            Some(&position) => self.value_at(position),
            None => Ok(None),
        }
    }

    /// The value of the record at `position`.
    fn value_at(&self, Position { partition, offset }: Position) -> Result<Option<Bytes>> {
        match self.log.fetch(&self.topic, partition, offset, 1) {
            Ok(records) => Ok(records
                .into_iter()
                .find(|r| r.offset() == offset)
                .and_then(|r| r.value().cloned())),
            // Deleted below the start since the catch-up: gone.
            Err(Error::OffsetOutOfRange { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Live keys.
    ///
    /// # Errors
    /// As [`Table::get`].
    pub fn len(&mut self) -> Result<usize> {
        self.catch_up()?;
        Ok(self.keys.len())
    }

    /// Whether no key is live.
    ///
    /// # Errors
    /// As [`Table::get`].
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Every live key with its latest value, in no particular order.
    ///
    /// # Errors
    /// As [`Table::get`].
    pub fn entries(&mut self) -> Result<Vec<(Bytes, Bytes)>> {
        self.catch_up()?;
        let mut out = Vec::with_capacity(self.keys.len());
        for (key, position) in &self.keys {
            if let Some(value) = self.value_at(*position)? {
                out.push((key.clone(), value));
            }
        }
        Ok(out)
    }
}
