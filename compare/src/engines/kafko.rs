//! kafko 0.2, an async log on tokio. Each workload runs on one multi-thread
//! runtime of two workers (the machine's cores): the producing loop is a task
//! spawned on it, as in a tokio service, so the writer task kafko runs per
//! partition and the producer hand records over without leaving the runtime.
//!
//! kafko has one partition per topic, keys and values; it has no durability
//! setting (its writer only writes to the page cache), so W5 makes each send
//! durable with `Partition::sync`, its documented mid-life fsync. Its consumer
//! reads one record per call, and each call reads the partition's segment from
//! the nearest sparse-index entry to the end of the segment, so reading a
//! large segment from the start costs time quadratic in its size: W4 stops at
//! its budget and is reported as partial.

use super::{check_read_back, Engine, Outcome, ReadBack, TOPIC};
use crate::workload::{byte_sum, Dataset};
use bytes::Bytes;
use kafko::{Kafko, Producer};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Worker threads of the runtime: one per core of the machine this runs on.
const WORKER_THREADS: usize = 2;

/// How long the W6 sender waits after the consumer says it is about to wait,
/// so that the consumer is parked when the record arrives.
const E2E_SETTLE: Duration = Duration::from_micros(50);

/// W4 looks at the clock once per this many records.
const BUDGET_CHECK_EVERY: u64 = 64;

const NOTES: &[&str] = &[
    "Kafko::open + create_topic (default LogConfig: no compression, 1 GiB segments); one partition per topic",
    "tokio multi-thread runtime, 2 workers; producing loops are spawned tasks",
    "W1 Producer::send(Some(key), value).await per record; W2/W3 Producer::send_batch(Vec<(Option<Bytes>, Bytes)>)",
    "W4 Consumer::seek(0) + next_record().await per record (the only read API); stops at the read budget",
    "W5 no fsync setting in 0.2: send().await then Partition::sync().await (fdatasync of segment and index) per append, 4 tasks",
    "W6 Consumer::next_record().await in a task; sends from another thread through Handle::block_on",
];

pub struct Kafko02 {
    runtime: Runtime,
}

impl Kafko02 {
    pub fn new() -> Kafko02 {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .enable_all()
            .build()
            .expect("kafko: build the tokio runtime");
        Kafko02 { runtime }
    }

    /// Opens a broker in `dir` with the topic created.
    async fn open(dir: &Path) -> Kafko {
        let broker = Kafko::open(dir).await.expect("kafko: open");
        broker.create_topic(TOPIC).await.expect("kafko: create the topic");
        broker
    }

    async fn producer(broker: &Kafko) -> Producer {
        broker.producer_for(TOPIC).await.expect("kafko: producer_for")
    }
}

fn pair(data: &Dataset, i: usize) -> (Option<Bytes>, Bytes) {
    (Some(data.key(i)), data.value(i))
}

async fn send_all_batched(producer: &Producer, data: &Dataset, batch: usize) {
    for start in (0..data.len()).step_by(batch) {
        let end = (start + batch).min(data.len());
        let items = (start..end).map(|i| pair(data, i)).collect();
        producer.send_batch(items).await.expect("kafko: send_batch");
    }
}

impl Engine for Kafko02 {
    fn name(&self) -> &'static str {
        "kafko"
    }

    fn notes(&self) -> &'static [&'static str] {
        NOTES
    }

    fn append_each(&mut self, dir: &Path, data: &Dataset) -> Outcome {
        let data = data.clone();
        self.runtime.block_on(async move {
            let broker = Self::open(dir).await;
            let producer = Self::producer(&broker).await;
            let count = data.len() as u64;
            let elapsed = tokio::spawn(async move {
                let start = Instant::now();
                for i in 0..data.len() {
                    let (key, value) = pair(&data, i);
                    producer.send(key, value).await.expect("kafko: send");
                }
                start.elapsed()
            })
            .await
            .expect("kafko: producing task");
            broker.shutdown().await.expect("kafko: shutdown");
            Outcome::Throughput {
                items: count,
                elapsed,
                partial: None,
            }
        })
    }

    fn append_batches(&mut self, dir: &Path, data: &Dataset, batch: usize) -> Outcome {
        let data = data.clone();
        self.runtime.block_on(async move {
            let broker = Self::open(dir).await;
            let producer = Self::producer(&broker).await;
            let count = data.len() as u64;
            let elapsed = tokio::spawn(async move {
                let start = Instant::now();
                send_all_batched(&producer, &data, batch).await;
                start.elapsed()
            })
            .await
            .expect("kafko: producing task");
            broker.shutdown().await.expect("kafko: shutdown");
            Outcome::Throughput {
                items: count,
                elapsed,
                partial: None,
            }
        })
    }

    fn read_back(&mut self, dir: &Path, read: ReadBack<'_>) -> Outcome {
        let data = read.data.clone();
        let (batch, budget) = (read.batch, read.budget);
        let (records, sum, elapsed) = self.runtime.block_on(async move {
            let broker = Self::open(dir).await;
            let producer = Self::producer(&broker).await;
            send_all_batched(&producer, &data, batch).await;
            drop(producer);
            let mut consumer = broker.consumer_for(TOPIC).await.expect("kafko: consumer_for");
            let end = data.len() as u64;
            let measured = tokio::spawn(async move {
                consumer.seek(0);
                let (mut records, mut sum) = (0u64, 0u64);
                let start = Instant::now();
                while records < end {
                    let r = consumer.next_record().await.expect("kafko: next_record");
                    sum += byte_sum(r.value());
                    records += 1;
                    if records.is_multiple_of(BUDGET_CHECK_EVERY) && start.elapsed() >= budget {
                        break;
                    }
                }
                (records, sum, start.elapsed())
            })
            .await
            .expect("kafko: reading task");
            broker.shutdown().await.expect("kafko: shutdown");
            measured
        });
        let complete = records == read.data.len() as u64;
        check_read_back(self.name(), &read, records, sum, complete);
        let partial = (!complete).then(|| {
            format!(
                "partial: reading stopped at the {} s budget, before all {} records (the rate is of those \
                 read); each next_record reads the segment from its nearest index entry to its end, so a \
                 full read is quadratic in the segment size",
                budget.as_secs_f64(),
                read.data.len()
            )
        });
        Outcome::Throughput {
            items: records,
            elapsed,
            partial,
        }
    }

    fn durable_appends(&mut self, dir: &Path, data: &Dataset, threads: usize, per_thread: usize) -> Outcome {
        assert!(threads * per_thread <= data.len(), "W5 needs a record per append");
        let data = data.clone();
        self.runtime.block_on(async move {
            let broker = Self::open(dir).await;
            let partition = broker.topic(TOPIC).await.expect("kafko: the topic's partition");
            let start = Instant::now();
            let mut tasks = Vec::with_capacity(threads);
            for t in 0..threads {
                let producer = Self::producer(&broker).await;
                let partition = partition.clone();
                let data = data.clone();
                tasks.push(tokio::spawn(async move {
                    for i in t * per_thread..(t + 1) * per_thread {
                        let (key, value) = pair(&data, i);
                        producer.send(key, value).await.expect("kafko: send");
                        partition.sync().await.expect("kafko: sync");
                    }
                }));
            }
            for task in tasks {
                task.await.expect("kafko: durable producing task");
            }
            let elapsed = start.elapsed();
            drop(partition);
            broker.shutdown().await.expect("kafko: shutdown");
            Outcome::Throughput {
                items: (threads * per_thread) as u64,
                elapsed,
                partial: None,
            }
        })
    }

    fn end_to_end(&mut self, dir: &Path, data: &Dataset, warmup: usize, sends: usize) -> Outcome {
        let total = warmup + sends;
        assert!(total <= data.len(), "W6 needs a record per send");
        let handle = self.runtime.handle().clone();
        let broker = handle.block_on(Self::open(dir));
        let producer = handle.block_on(Self::producer(&broker));
        let mut consumer = handle
            .block_on(broker.consumer_for(TOPIC))
            .expect("kafko: consumer_for");
        let (ready_tx, ready_rx) = mpsc::sync_channel::<()>(1);
        let (received_tx, received_rx) = mpsc::sync_channel::<Instant>(1);
        let consuming = handle.spawn(async move {
            for _ in 0..total {
                ready_tx.send(()).expect("kafko: ready");
                consumer.next_record().await.expect("kafko: next_record");
                received_tx.send(Instant::now()).expect("kafko: received");
            }
        });
        let mut latencies = Vec::with_capacity(sends);
        for i in 0..total {
            ready_rx.recv().expect("kafko: consumer ready");
            std::thread::sleep(E2E_SETTLE);
            let (key, value) = pair(data, i);
            let start = Instant::now();
            handle.block_on(producer.send(key, value)).expect("kafko: send");
            let at = received_rx.recv().expect("kafko: consumer received");
            if i >= warmup {
                latencies.push(at.saturating_duration_since(start).as_nanos() as u64);
            }
        }
        handle.block_on(consuming).expect("kafko: consuming task");
        drop(producer);
        handle.block_on(broker.shutdown()).expect("kafko: shutdown");
        Outcome::Latencies(latencies)
    }
}
