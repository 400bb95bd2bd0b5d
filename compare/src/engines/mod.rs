//! The engines under test, behind one small trait. Each engine opens a fresh
//! log in the directory it is given, runs one workload, closes the log, and
//! reports only the time of the measured part (opening, closing and any
//! untimed preparation are left out).

use crate::workload::{byte_sum, Dataset};
use std::path::Path;
use std::time::Duration;

pub mod commitlog;
pub mod kafko;
pub mod tidelog;

/// The topic every engine writes to (engines without topics ignore it).
pub const TOPIC: &str = "bench";

/// Records requested per read call in W4: tidelog's `fetch` `max`, and the
/// byte limit given to commitlog's `read` is this many of its records.
pub const READ_RECORDS_PER_CALL: usize = 2000;

/// What one engine did on one workload in one run.
#[derive(Debug)]
pub enum Outcome {
    /// Measured: `items` records or appends in `elapsed`.
    Throughput {
        items: u64,
        elapsed: Duration,
        /// Set when the engine did only part of the work within its budget.
        partial: Option<String>,
    },
    /// Measured: one latency per operation, in nanoseconds.
    Latencies(Vec<u64>),
    /// The engine cannot do this workload, and why.
    Unsupported(String),
}

/// What W4 needs: the records to write (untimed) and then read back (timed).
#[derive(Debug, Clone, Copy)]
pub struct ReadBack<'a> {
    pub data: &'a Dataset,
    /// Records per batch when writing them.
    pub batch: usize,
    /// Reading stops after this long even if not done (the outcome is then
    /// partial); only an engine whose reads are slow ever reaches it.
    pub budget: Duration,
}

/// One engine. Methods take `&mut self` so an engine may keep state across
/// workloads (kafko keeps its tokio runtime).
pub trait Engine {
    /// The engine's name in tables, charts and JSON.
    fn name(&self) -> &'static str;

    /// How this engine does each workload: printed under the table.
    fn notes(&self) -> &'static [&'static str];

    /// W1: every record appended with one call, no fsync.
    fn append_each(&mut self, dir: &Path, data: &Dataset) -> Outcome;

    /// W2 and W3: records appended `batch` at a time, no fsync.
    fn append_batches(&mut self, dir: &Path, data: &Dataset, batch: usize) -> Outcome;

    /// W4: writes `read.data` in batches, then reads it all back from offset 0,
    /// summing every value byte; panics if the sum or count is wrong.
    fn read_back(&mut self, dir: &Path, read: ReadBack<'_>) -> Outcome;

    /// W5: `threads` threads (or tasks) each make `per_thread` appends of
    /// `data`'s records, each durable before the next.
    fn durable_appends(&mut self, dir: &Path, data: &Dataset, threads: usize, per_thread: usize) -> Outcome;

    /// W6: from the start of a send to a blocked consumer receiving the record,
    /// one record in flight; `warmup` sends first are not timed.
    fn end_to_end(&mut self, dir: &Path, data: &Dataset, warmup: usize, sends: usize) -> Outcome;
}

/// Checks what a W4 read-back returned against what was written: the count of
/// records and the sum of their value bytes (of the prefix read, when partial).
pub fn check_read_back(engine: &str, read: &ReadBack<'_>, records: u64, sum: u64, complete: bool) {
    let written = read.data.len() as u64;
    if complete {
        assert_eq!(
            records, written,
            "{engine}: W4 read back a wrong number of records"
        );
        assert_eq!(
            sum,
            read.data.value_byte_sum(),
            "{engine}: W4 read back wrong value bytes"
        );
    } else {
        assert!(
            records <= written,
            "{engine}: W4 read more records than were written"
        );
        let expected: u64 = (0..records as usize).map(|i| byte_sum(&read.data.value(i))).sum();
        assert_eq!(sum, expected, "{engine}: W4 read back wrong value bytes");
    }
}
