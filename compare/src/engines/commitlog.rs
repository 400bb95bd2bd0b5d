//! commitlog 0.2: one synchronous log (no topics, no partitions), messages
//! with an optional metadata field and a payload. The 8-byte key goes in the
//! metadata and the value is the payload, so it stores the same bytes.
//!
//! `CommitLog::flush` msyncs the index's full pages but only calls
//! `Write::flush` on the segment file, which does nothing for a `std::fs::File`:
//! no call of its API makes an append durable. W5 therefore adds what a user
//! would have to: an fdatasync of the active segment file through a second
//! handle, after `flush`, under the same mutex.

use super::{check_read_back, Engine, Outcome, ReadBack, READ_RECORDS_PER_CALL};
use crate::workload::{byte_sum, Dataset, KEY_BYTES};
use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, ReadLimit};
use std::fs::File;
use std::path::Path;
use std::sync::{Barrier, Mutex};
use std::time::Instant;

/// Bytes of commitlog's message header (offset, size, CRC-32C, metadata size).
const MESSAGE_HEADER_BYTES: usize = 20;

/// The file commitlog's first segment lives in (its base offset, 20 digits).
const FIRST_SEGMENT: &str = "00000000000000000000.log";

const NOTES: &[&str] = &[
    "CommitLog::new(LogOptions::new(dir)) (1 GB segments); no topics: one log; key stored as message metadata",
    "W1 CommitLog::append of a one-message MessageBuf (push_with_metadata), the buffer reused",
    "W2/W3 CommitLog::append of a MessageBuf of 100 / 64 messages",
    "W4 CommitLog::read(next, ReadLimit::max_bytes(2000 messages' bytes)) in a loop",
    "W5 append + flush() + fdatasync of the segment through a second handle (flush does not fsync it), under a mutex",
    "W6 n/a: no blocking read",
];

#[derive(Debug, Default)]
pub struct Commitlog02;

fn open(dir: &Path) -> CommitLog {
    CommitLog::new(LogOptions::new(dir)).expect("commitlog: open")
}

fn push(buf: &mut MessageBuf, data: &Dataset, i: usize) {
    buf.push_with_metadata(data.key(i), data.value(i))
        .expect("commitlog: push a message");
}

fn append_all_batched(log: &mut CommitLog, data: &Dataset, batch: usize) {
    let mut buf = MessageBuf::default();
    for start in (0..data.len()).step_by(batch) {
        buf.clear();
        for i in start..(start + batch).min(data.len()) {
            push(&mut buf, data, i);
        }
        log.append(&mut buf).expect("commitlog: append a batch");
    }
}

impl Engine for Commitlog02 {
    fn name(&self) -> &'static str {
        "commitlog"
    }

    fn notes(&self) -> &'static [&'static str] {
        NOTES
    }

    fn append_each(&mut self, dir: &Path, data: &Dataset) -> Outcome {
        let mut log = open(dir);
        let mut buf = MessageBuf::default();
        let start = Instant::now();
        for i in 0..data.len() {
            buf.clear();
            push(&mut buf, data, i);
            log.append(&mut buf).expect("commitlog: append");
        }
        let elapsed = start.elapsed();
        drop(log);
        Outcome::Throughput {
            items: data.len() as u64,
            elapsed,
            partial: None,
        }
    }

    fn append_batches(&mut self, dir: &Path, data: &Dataset, batch: usize) -> Outcome {
        let mut log = open(dir);
        let start = Instant::now();
        append_all_batched(&mut log, data, batch);
        let elapsed = start.elapsed();
        drop(log);
        Outcome::Throughput {
            items: data.len() as u64,
            elapsed,
            partial: None,
        }
    }

    fn read_back(&mut self, dir: &Path, read: ReadBack<'_>) -> Outcome {
        let mut log = open(dir);
        append_all_batched(&mut log, read.data, read.batch);
        let message_bytes = MESSAGE_HEADER_BYTES + KEY_BYTES + read.data.value_bytes();
        let limit = ReadLimit::max_bytes(READ_RECORDS_PER_CALL * message_bytes);
        let end = read.data.len() as u64;
        let (mut next, mut records, mut sum) = (0u64, 0u64, 0u64);
        let start = Instant::now();
        while next < end {
            let got = log.read(next, limit).expect("commitlog: read");
            let mut last = None;
            for m in got.iter() {
                sum += byte_sum(m.payload());
                records += 1;
                last = Some(m.offset());
            }
            next = last.expect("commitlog: read below the end returned nothing") + 1;
        }
        let elapsed = start.elapsed();
        check_read_back(self.name(), &read, records, sum, true);
        Outcome::Throughput {
            items: records,
            elapsed,
            partial: None,
        }
    }

    fn durable_appends(&mut self, dir: &Path, data: &Dataset, threads: usize, per_thread: usize) -> Outcome {
        assert!(threads * per_thread <= data.len(), "W5 needs a record per append");
        let log = open(dir);
        // W5 writes far less than a segment, so every append lands in the first one.
        let segment = File::open(dir.join(FIRST_SEGMENT)).expect("commitlog: open the segment file");
        let shared = Mutex::new((log, MessageBuf::default()));
        let barrier = Barrier::new(threads + 1);
        let elapsed = std::thread::scope(|s| {
            for t in 0..threads {
                let (shared, barrier, segment) = (&shared, &barrier, &segment);
                s.spawn(move || {
                    barrier.wait();
                    for i in t * per_thread..(t + 1) * per_thread {
                        let mut guard = shared.lock().expect("commitlog: lock");
                        let (log, buf) = &mut *guard;
                        buf.clear();
                        push(buf, data, i);
                        log.append(buf).expect("commitlog: append");
                        log.flush().expect("commitlog: flush");
                        segment.sync_data().expect("commitlog: fdatasync the segment");
                    }
                });
            }
            barrier.wait();
            Instant::now()
        })
        .elapsed();
        let (log, _) = shared.into_inner().expect("commitlog: unlock");
        assert_eq!(
            log.next_offset(),
            (threads * per_thread) as u64,
            "commitlog: W5 appends all in the log"
        );
        Outcome::Throughput {
            items: (threads * per_thread) as u64,
            elapsed,
            partial: None,
        }
    }

    fn end_to_end(&mut self, _dir: &Path, _data: &Dataset, _warmup: usize, _sends: usize) -> Outcome {
        Outcome::Unsupported(
            "no blocking read: a commitlog reader can only call read() again until new messages appear"
                .into(),
        )
    }
}
