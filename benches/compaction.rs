//! Compaction: MB of log cleaned per second with 1M distinct keys (2M records
//! of 100 B: every key written twice), the key map's memory bound, and `send`
//! p99 on another topic while a compaction runs versus without.
//!
//! Run with `cargo bench --bench compaction`. Prints a table; no assertions.

use std::time::{Duration, Instant};
use tidelog::{Cleanup, Log, LogConfig, Record, TopicConfig};

const VALUE: [u8; 100] = [0x42; 100];

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn p99(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[(v.len() - 1) * 99 / 100]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let keys: u64 = if full { 1_000_000 } else { 10_000 };
    let map_bytes = 128 * 1024 * 1024;
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = Log::open(
        tmp.path(),
        LogConfig::default()
            .maintenance_interval(None)
            .cleaner_map_bytes(map_bytes),
    )
    .expect("open");
    log.create_topic(
        "c",
        TopicConfig::default()
            .cleanup(Cleanup::Compact)
            .segment_bytes(16 * 1024 * 1024)
            .min_cleanable_dirty_ratio(0.0),
    )
    .expect("topic");
    log.create_topic("hot", TopicConfig::default()).expect("topic");
    let producer = log.producer();
    for round in 0..2 {
        for chunk in 0..keys / 100 {
            let records = (0..100)
                .map(|i| Record::new(&VALUE[..]).with_key(format!("key-{:08}", chunk * 100 + i)))
                .collect();
            producer.send_batch("c", records).expect("send");
        }
        let _ = round;
    }
    // One more segment so the last full one is sealed.
    producer
        .send_batch("c", vec![Record::new(&VALUE[..]).with_key("tail")])
        .expect("send");
    let size_before = log.describe("c").expect("describe").partitions[0].size_bytes;

    // send p99 without a compaction running.
    let mut quiet = Vec::new();
    for _ in 0..50_000 {
        let t = Instant::now();
        producer
            .send("hot", Record::new(&VALUE[..]).with_key("h"))
            .expect("send");
        quiet.push(t.elapsed().as_nanos() as u64);
    }

    let rss_before = peak_rss_kib();
    let started = Instant::now();
    let mut busy = Vec::new();
    let report = std::thread::scope(|s| {
        let cleaner = s.spawn(|| log.run_maintenance().expect("maintenance"));
        while !cleaner.is_finished() {
            let t = Instant::now();
            producer
                .send("hot", Record::new(&VALUE[..]).with_key("h"))
                .expect("send");
            busy.push(t.elapsed().as_nanos() as u64);
            if busy.len() % 1000 == 0 {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        cleaner.join().expect("cleaner")
    });
    let secs = started.elapsed().as_secs_f64();
    let size_after = log.describe("c").expect("describe").partitions[0].size_bytes;
    println!(
        "compaction of {} MB ({} keys x 2 records): {:.2} s, {:.0} MB/s cleaned; {} segments rewritten, {} MB reclaimed ({} MB left)",
        size_before / 1_000_000,
        keys,
        secs,
        size_before as f64 / 1e6 / secs,
        report.segments_compacted,
        report.bytes_reclaimed / 1_000_000,
        size_after / 1_000_000
    );
    println!(
        "key map bound {} MiB; peak RSS {} MiB before the pass, {} MiB after (includes mapped segment pages)",
        map_bytes >> 20,
        rss_before >> 10,
        peak_rss_kib() >> 10
    );
    if !busy.is_empty() {
        println!(
            "send p99 on another topic: {} ns quiet, {} ns while compacting ({} sends)",
            p99(quiet),
            p99(busy.clone()),
            busy.len()
        );
    }
    log.close().expect("close");
}
