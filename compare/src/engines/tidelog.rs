//! tidelog, through its public API only: one topic of one partition (default
//! segment size), keyed records sent with `Producer::send` / `send_batch`
//! (Kafka's partitioner puts every key on partition 0), reads with
//! `Log::fetch_each`, the consumer with `Consumer::poll`.

use super::{check_read_back, Engine, Outcome, ReadBack, READ_RECORDS_PER_CALL, TOPIC};
use crate::workload::{byte_sum, Dataset};
use std::path::Path;
use std::sync::{mpsc, Barrier};
use std::time::{Duration, Instant};
use tidelog::{Durability, Log, LogConfig, Record, TopicConfig};

/// How long the W6 sender waits after the consumer says it is about to poll,
/// so that the consumer is blocked when the record arrives.
const E2E_SETTLE: Duration = Duration::from_micros(50);

#[derive(Debug, Default)]
pub struct Tidelog;

const NOTES: &[&str] = &[
    "Log::open with maintenance_interval(None); one topic, partitions(1), default segment size",
    "W1 Producer::send per record (keyed); W2/W3 Producer::send_batch",
    "W4 Log::fetch_each(topic, 0, next, 2000, closure) in a loop: records borrowed from the map (Log::fetch, which returns owned records, is slower)",
    "W5 Durability::Always: each thread's send returns after an fsync covering it (group commit)",
    "W6 Consumer::assign + poll in another thread",
];

fn open(dir: &Path, durability: Durability) -> Log {
    let config = LogConfig::default()
        .durability(durability)
        .maintenance_interval(None);
    let log = Log::open(dir, config).expect("tidelog: open the log");
    log.create_topic(TOPIC, TopicConfig::default().partitions(1))
        .expect("tidelog: create the topic");
    log
}

fn record(data: &Dataset, i: usize) -> Record {
    Record::new(data.value(i)).with_key(data.key(i))
}

fn send_all_batched(log: &Log, data: &Dataset, batch: usize) {
    let producer = log.producer();
    for start in (0..data.len()).step_by(batch) {
        let end = (start + batch).min(data.len());
        let records = (start..end).map(|i| record(data, i)).collect();
        producer.send_batch(TOPIC, records).expect("tidelog: send_batch");
    }
}

impl Engine for Tidelog {
    fn name(&self) -> &'static str {
        "tidelog"
    }

    fn notes(&self) -> &'static [&'static str] {
        NOTES
    }

    fn append_each(&mut self, dir: &Path, data: &Dataset) -> Outcome {
        let log = open(dir, Durability::Os);
        let producer = log.producer();
        let start = Instant::now();
        for i in 0..data.len() {
            producer.send(TOPIC, record(data, i)).expect("tidelog: send");
        }
        let elapsed = start.elapsed();
        log.close().expect("tidelog: close");
        Outcome::Throughput {
            items: data.len() as u64,
            elapsed,
            partial: None,
        }
    }

    fn append_batches(&mut self, dir: &Path, data: &Dataset, batch: usize) -> Outcome {
        let log = open(dir, Durability::Os);
        let start = Instant::now();
        send_all_batched(&log, data, batch);
        let elapsed = start.elapsed();
        log.close().expect("tidelog: close");
        Outcome::Throughput {
            items: data.len() as u64,
            elapsed,
            partial: None,
        }
    }

    fn read_back(&mut self, dir: &Path, read: ReadBack<'_>) -> Outcome {
        let log = open(dir, Durability::Os);
        send_all_batched(&log, read.data, read.batch);
        let end = read.data.len() as u64;
        let (mut next, mut records, mut sum) = (0u64, 0u64, 0u64);
        let start = Instant::now();
        while next < end {
            let fetched = log
                .fetch_each(TOPIC, 0, next, READ_RECORDS_PER_CALL, |r| {
                    sum += r.value().map_or(0, byte_sum);
                })
                .expect("tidelog: fetch_each");
            assert!(
                fetched.records > 0,
                "tidelog: fetch_each below the end visited nothing"
            );
            next = fetched.next_offset;
            records += fetched.records as u64;
        }
        let elapsed = start.elapsed();
        check_read_back(self.name(), &read, records, sum, true);
        log.close().expect("tidelog: close");
        Outcome::Throughput {
            items: records,
            elapsed,
            partial: None,
        }
    }

    fn durable_appends(&mut self, dir: &Path, data: &Dataset, threads: usize, per_thread: usize) -> Outcome {
        assert!(threads * per_thread <= data.len(), "W5 needs a record per append");
        let log = open(dir, Durability::Always);
        let barrier = Barrier::new(threads + 1);
        let elapsed = std::thread::scope(|s| {
            for t in 0..threads {
                let producer = log.producer();
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    for i in t * per_thread..(t + 1) * per_thread {
                        producer
                            .send(TOPIC, record(data, i))
                            .expect("tidelog: durable send");
                    }
                });
            }
            barrier.wait();
            Instant::now()
        })
        .elapsed();
        log.close().expect("tidelog: close");
        Outcome::Throughput {
            items: (threads * per_thread) as u64,
            elapsed,
            partial: None,
        }
    }

    fn end_to_end(&mut self, dir: &Path, data: &Dataset, warmup: usize, sends: usize) -> Outcome {
        let total = warmup + sends;
        assert!(total <= data.len(), "W6 needs a record per send");
        let log = open(dir, Durability::Os);
        let (ready_tx, ready_rx) = mpsc::sync_channel::<()>(1);
        let (received_tx, received_rx) = mpsc::sync_channel::<Instant>(1);
        let mut latencies = Vec::with_capacity(sends);
        std::thread::scope(|s| {
            let consumer_log = log.clone();
            s.spawn(move || {
                let mut consumer = consumer_log.consumer("e2e");
                consumer.assign(&[(TOPIC, 0)]).expect("tidelog: assign");
                for _ in 0..total {
                    ready_tx.send(()).expect("tidelog: ready");
                    let got = loop {
                        let got = consumer.poll(Duration::from_secs(10)).expect("tidelog: poll");
                        if !got.is_empty() {
                            break got;
                        }
                    };
                    let at = Instant::now();
                    assert_eq!(got.len(), 1, "tidelog: one record in flight");
                    received_tx.send(at).expect("tidelog: received");
                }
            });
            let producer = log.producer();
            for i in 0..total {
                ready_rx.recv().expect("tidelog: consumer ready");
                std::thread::sleep(E2E_SETTLE);
                let start = Instant::now();
                producer.send(TOPIC, record(data, i)).expect("tidelog: send");
                let at = received_rx.recv().expect("tidelog: consumer received");
                if i >= warmup {
                    latencies.push(at.saturating_duration_since(start).as_nanos() as u64);
                }
            }
        });
        log.close().expect("tidelog: close");
        Outcome::Latencies(latencies)
    }
}
