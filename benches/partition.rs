//! Partition-level hot paths: appending 100-byte records one per batch and in
//! batches of 100, and reading a partition sequentially from the start.
//!
//! Run with `cargo bench --features internals --bench partition`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::sync::Arc;
use tidelog::internals::{PartitionConfig, PartitionLog, RealFs};
use tidelog::{Record, SystemClock};

const VALUE: [u8; 100] = [0x5a; 100];

fn open(dir: &std::path::Path) -> PartitionLog {
    PartitionLog::open(
        RealFs::shared(),
        Arc::new(SystemClock),
        dir,
        PartitionConfig::default(),
    )
    .expect("open")
    .0
}

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record::new(&VALUE[..]).with_key(format!("key{:05}", i % 100_000)))
        .collect()
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("partition_append");
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = open(tmp.path());
    let one = records(1);
    g.throughput(Throughput::Elements(1));
    g.bench_function("single_100B", |b| {
        b.iter(|| log.append_records(&one).expect("append"))
    });
    let hundred = records(100);
    g.throughput(Throughput::Elements(100));
    g.bench_function("batch_100x100B", |b| {
        b.iter(|| log.append_records(&hundred).expect("append"))
    });
    g.finish();
}

fn read(c: &mut Criterion) {
    let mut g = c.benchmark_group("partition_read");
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = open(tmp.path());
    let batch = records(100);
    const TOTAL: u64 = 200_000;
    for _ in 0..TOTAL / 100 {
        log.append_records(&batch).expect("append");
    }
    g.throughput(Throughput::Elements(TOTAL));
    g.sample_size(20);
    g.bench_function("sequential_200k_x_100B", |b| {
        b.iter_batched(
            || (),
            |()| {
                let mut next = 0;
                let mut sum = 0u64;
                while next < TOTAL {
                    let got = log.read(next, 1000).expect("read");
                    for r in &got {
                        sum += r.value.as_ref().map_or(0, |v| v.len() as u64);
                    }
                    next = got.last().map_or(TOTAL, |r| r.offset + 1);
                }
                assert_eq!(sum, TOTAL * 100);
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
