//! # tidelog
//!
//! An embedded, Kafka-style, partitioned commit log. A Rust service links it in
//! and gets, inside its own process and with no broker to run, Kafka's log:
//! named topics split into partitions, append-only segment files holding
//! Kafka's RecordBatch v2 bytes with a sparse offset index and a time index,
//! retention by time and size, key compaction with tombstones, producers that
//! partition by key, consumers and consumer groups with committed offsets, and
//! crash recovery that never loses or invents an acknowledged record.
//!
//! The files are Kafka's, byte for byte: a partition folder written by tidelog
//! decodes with any Kafka record decoder, and a Kafka-written segment
//! (compressed with any of Kafka's codecs this build has) reads in tidelog.
//! `ARCHITECTURE.md` describes the modules, the path of an append and of a
//! read, and the on-disk format.
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
//! ## A guide to the API
//!
//! - **Opening.** [`Log::open`] takes a directory (created if missing) and a
//!   [`LogConfig`]; it locks the directory against other processes and
//!   recovers what a crash left. [`Log`] is a cheap `Clone`; the last handle's
//!   drop (or [`Log::close`]) releases the lock.
//! - **Topics.** [`Log::create_topic`] with a [`TopicConfig`]: partitions,
//!   segment size and age, retention by time and size, [`Cleanup`] (delete,
//!   compact, or both), [`Compression`]. [`Log::describe`] reports offsets,
//!   segments and bytes per partition.
//! - **Writing.** [`Log::producer`] gives a [`Producer`]: `send` (keyed
//!   records go where Kafka's partitioner puts them), `send_to` a partition,
//!   `send_batch` (one atomic batch per partition), `send_async`. Each returns
//!   [`RecordMetadata`] (partition, offset, timestamp).
//! - **Durability.** [`Durability`]: `Os` (default) acknowledges once the
//!   bytes are in the kernel, so a process crash loses nothing acknowledged;
//!   `Interval(d)` adds a background fsync every `d`; `Always` acknowledges
//!   only after an fsync, shared by concurrent senders (group commit).
//! - **Reading.** [`Log::fetch`] returns owned, zero-copy records;
//!   [`Log::fetch_each`] visits records borrowed from the mapped segment
//!   without allocating (the fastest scan); [`Log::offset_for_timestamp`] is
//!   Kafka's ListOffsets.
//! - **Consuming.** [`Log::consumer`] gives a [`Consumer`] of a group:
//!   `subscribe` (members of a group split the partitions, Kafka's range
//!   assignment) or `assign`; blocking `poll` or the runtime-agnostic
//!   `next_batch` future; `commit` (fsynced, stored as Kafka stores it, in
//!   `__consumer_offsets`); `seek` by [`Offset`]; [`Log::group_lag`].
//! - **Tables.** [`Log::table`] keeps the latest value per key of a
//!   (compacted) topic, current as of every call.
//! - **Maintenance.** A background thread (or [`Log::run_maintenance`])
//!   applies retention and compaction; [`Log::delete_records`] moves a
//!   partition's start; [`Log::retention_preview`] is a dry run.
//! - **Many partitions.** [`LogConfig::max_open_partitions`] bounds the
//!   partitions with open files; idle ones are parked and reopened on use.
//! - **Errors.** Every failure is an [`Error`] naming what was wrong
//!   (the path and position and a [`CorruptReason`] for bad bytes on disk);
//!   nothing panics on bad input.
//!
//! Cargo features: `gzip`, `snappy`, `lz4` (default) and `zstd` for
//! [`Compression`]; `tracing` and `metrics` for observability (events and
//! measurements through those facades; nothing without them).

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
