//! Records as users write them ([`Record`]) and read them back ([`ConsumedRecord`]).
//!
//! Both are plain values; `ConsumedRecord`'s key and value are `Bytes` slices of
//! the memory-mapped segment they were read from, which they keep alive.

use bytes::Bytes;
use std::sync::Arc;

/// A record to append: an optional key, a value (or none, for a tombstone),
/// headers in order, and an optional timestamp (default: the time of the append).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) headers: Vec<(String, Option<Bytes>)>,
    pub(crate) timestamp: Option<i64>,
}

impl Record {
    /// A record with `value`, no key, no headers and the default timestamp.
    ///
    /// ```
    /// let r = tidelog::Record::new("hello").with_key("greeting");
    /// assert_eq!(r.value().map(|v| &v[..]), Some(&b"hello"[..]));
    /// ```
    pub fn new(value: impl Into<Bytes>) -> Record {
        Record {
            value: Some(value.into()),
            ..Record::default()
        }
    }

    /// A tombstone: `key` with a null value. Under compaction it deletes the key.
    pub fn tombstone(key: impl Into<Bytes>) -> Record {
        Record {
            key: Some(key.into()),
            ..Record::default()
        }
    }

    /// Sets the key. An empty key is a key (it is hashed by the partitioner).
    #[must_use]
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Record {
        self.key = Some(key.into());
        self
    }

    /// Appends a header. Duplicate keys are kept, in order, as Kafka keeps them.
    #[must_use]
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Record {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    /// Appends a header with a null value.
    #[must_use]
    pub fn with_null_header(mut self, key: impl Into<String>) -> Record {
        self.headers.push((key.into(), None));
        self
    }

    /// Sets the timestamp, in milliseconds since the Unix epoch.
    #[must_use]
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Record {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// The key, if any.
    pub fn key(&self) -> Option<&Bytes> {
        self.key.as_ref()
    }

    /// The value; `None` for a tombstone.
    pub fn value(&self) -> Option<&Bytes> {
        self.value.as_ref()
    }

    /// The headers, in order.
    pub fn headers(&self) -> &[(String, Option<Bytes>)] {
        &self.headers
    }

    /// The timestamp set with [`Record::with_timestamp`], if any.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }
}

/// A record read back from the log, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: u32,
    pub(crate) offset: u64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) headers: Vec<(String, Option<Bytes>)>,
}

impl ConsumedRecord {
    /// The topic it was read from.
    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// The partition it was read from.
    pub fn partition(&self) -> u32 {
        self.partition
    }
    /// Its offset in the partition.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// Its timestamp, in milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
    /// The key, if any.
    pub fn key(&self) -> Option<&Bytes> {
        self.key.as_ref()
    }
    /// The value; `None` for a tombstone.
    pub fn value(&self) -> Option<&Bytes> {
        self.value.as_ref()
    }
    /// The headers, in order, duplicates kept.
    pub fn headers(&self) -> &[(String, Option<Bytes>)] {
        &self.headers
    }
}
