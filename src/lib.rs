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
//! This release contains the storage engine (batch codec, segments, indexes,
//! partition log, recovery). The `Log`/producer/consumer surface is built on it
//! next; the engine is reachable today through the `internals` feature.

#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_debug_implementations)]
// Until the `Log` API is built on it, the engine is only reachable through the
// `internals` feature; without it, it is compiled (and checked) but unused.
#![cfg_attr(not(feature = "internals"), allow(dead_code))]

#[cfg(feature = "internals")]
pub mod batch;
#[cfg(not(feature = "internals"))]
mod batch;
mod checkpoint;
mod clock;
mod error;
mod index;
mod limits;
mod mmap;
mod partition;
mod record;
mod segment;
mod vfs;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{CorruptReason, Error, Result};
pub use record::{ConsumedRecord, Record};

/// Building blocks below the public API (the batch codec is `tidelog::batch`), for benches and tests. Not stable:
/// enabled by the non-default `internals` feature.
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::partition::{PartitionConfig, PartitionLog, RecoveryReport};
    pub use crate::vfs::{RealFs, Vfs, VfsFile};
}
