//! # tidelog
//!
//! An embedded, Kafka-style, partitioned commit log. A Rust service links it in
//! and gets, inside its own process and with no broker to run, Kafka's log:
//! append-only segment files holding Kafka's RecordBatch v2 bytes, a sparse
//! offset index and a time index per segment, and crash recovery that never
//! loses or invents a record.
//!
//! The files are Kafka's, byte for byte: a partition folder written by tidelog
//! decodes with any Kafka record decoder, and a Kafka-written (uncompressed)
//! segment reads in tidelog. See `ARCHITECTURE.md` for the modules, the path of
//! an append and of a read, and the on-disk format.
//!
//! ```
//! use tidelog::{Log, LogConfig, Record, TopicConfig};
//! # let tmp = tempfile::tempdir()?;
//! let log = Log::open(tmp.path().join("events"), LogConfig::default())?;
//! log.create_topic("orders", TopicConfig::default().partitions(4))?;
//! let producer = log.producer();
//! let meta = producer.send("orders", Record::new("created").with_key("order-1"))?;
//! let records = log.fetch("orders", meta.partition, meta.offset, 10)?;
//! assert_eq!(records[0].value().map(|v| &v[..]), Some(&b"created"[..]));
//! log.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Durability (see [`Durability`]): `Os` (default) acknowledges once the bytes
//! are in the kernel, so a process crash loses nothing acknowledged;
//! `Interval(d)` adds a background fsync every `d`; `Always` acknowledges only
//! after an fsync, shared by concurrent senders (group commit).
//!
//! Consumer groups and maintenance (retention, compaction) are being built on
//! this next.

#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_debug_implementations)]
#![warn(missing_docs)]
// Some engine entry points (partition-level append, raw batch helpers) are
// used only by benches and tests through the `internals` feature.
#![cfg_attr(not(feature = "internals"), allow(dead_code))]

#[cfg(feature = "internals")]
pub mod batch;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(not(feature = "internals"))]
mod batch;
mod checkpoint;
mod cleaner;
mod clock;
mod compression;
mod config;
mod consumer;
mod crc_extend;
mod durability;
mod error;
#[cfg(feature = "internals")]
pub mod fuzzing;
mod group;
mod index;
mod limits;
mod log;
mod maintenance;
mod mmap;
mod observe;
mod offsets;
mod partition;
mod partitioner;
mod producer;
mod record;
mod retention;
mod sabotage;
mod segment;
#[cfg(feature = "internals")]
mod sim;
mod table;
mod topic;
mod vfs;

pub use batch::RecordRef;
pub use clock::{Clock, ManualClock, SystemClock};
pub use compression::Compression;
pub use config::{Cleanup, Durability, LogConfig, Offset, TopicConfig};
pub use consumer::{Consumer, NextBatch, PartitionLag};
pub use error::{CorruptReason, Error, Result};
pub use log::{Fetched, Log, PartitionInfo, TopicInfo};
pub use maintenance::{MaintenanceReport, RetentionPreview};
pub use partitioner::murmur2;
pub use producer::{Producer, RecordMetadata, SendFuture};
pub use record::{ConsumedRecord, Record};
pub use table::Table;

/// Building blocks below the public API (the batch codec is `tidelog::batch`), for benches and tests. Not stable:
/// enabled by the non-default `internals` feature.
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::mmap::WriteMap;
    pub use crate::partition::{PartitionConfig, PartitionLog, RecoveryReport};
    pub use crate::sabotage::{EngineSabotage, SABOTAGE_ENV};
    pub use crate::sim::{CrashModel, FaultKind, Persistence, Sabotage, SimFs};
    pub use crate::vfs::{LockGuard, RealFs, Vfs, VfsFile};

    /// Opens a [`crate::Log`] over another filesystem (fault injection in tests).
    ///
    /// # Errors
    /// As [`crate::Log::open`].
    pub fn open_log_with_vfs(
        vfs: std::sync::Arc<dyn Vfs>,
        path: impl AsRef<std::path::Path>,
        config: crate::LogConfig,
    ) -> crate::Result<crate::Log> {
        crate::Log::open_with(vfs, path.as_ref(), config)
    }
}
