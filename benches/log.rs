//! Public-API hot paths, measured with plain timers so percentiles can be
//! reported (criterion reports means and medians only):
//! - `send` of one 100 B keyed record, `Durability::Os`: ns per send, p50/p99/p99.9;
//! - `send_batch` of 100 × 100 B: records/s and MB/s (median of 5 runs);
//! - `Durability::Always`: sends/s with 1, 4 and 16 threads (group commit).
//!
//! Run with `cargo bench --bench log`. Prints one table; no assertions.

use std::time::Instant;
use tidelog::{Durability, Log, LogConfig, Record, TopicConfig};

const VALUE: [u8; 100] = [0x5a; 100];

fn open(durability: Durability) -> (tempfile::TempDir, Log) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = Log::open(
        tmp.path(),
        LogConfig::default()
            .durability(durability)
            .maintenance_interval(None),
    )
    .expect("open");
    log.create_topic("bench", TopicConfig::default().partitions(4))
        .expect("topic");
    (tmp, log)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (e.g. `cargo test --benches`) runs a smoke pass.
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { 1 } else { 100 };

    // send, one record, Os.
    let (_tmp, log) = open(Durability::Os);
    let producer = log.producer();
    let n = 300_000 / scale;
    let keys: Vec<String> = (0..1000).map(|i| format!("key{i:05}")).collect();
    for i in 0..10_000 / scale {
        producer
            .send("bench", Record::new(&VALUE[..]).with_key(keys[i % 1000].clone()))
            .expect("send");
    }
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let r = Record::new(&VALUE[..]).with_key(keys[i % 1000].clone());
        let t = Instant::now();
        producer.send("bench", r).expect("send");
        lat.push(t.elapsed().as_nanos() as u64);
    }
    lat.sort_unstable();
    println!(
        "send 1 x 100 B (Os): p50 {} ns, p99 {} ns, p99.9 {} ns over {n} sends",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 0.999)
    );
    log.close().expect("close");

    // send_batch, 100 x 100 B.
    let mut rates = Vec::new();
    for _ in 0..5 {
        let (_tmp, log) = open(Durability::Os);
        let producer = log.producer();
        let batches = 5_000 / scale;
        let t = Instant::now();
        for b in 0..batches {
            let records = (0..100)
                .map(|i| Record::new(&VALUE[..]).with_key(keys[(b * 100 + i) % 1000].clone()))
                .collect();
            producer.send_batch("bench", records).expect("send_batch");
        }
        rates.push((batches * 100) as f64 / t.elapsed().as_secs_f64());
        log.close().expect("close");
    }
    let r = median(rates);
    println!(
        "send_batch 100 x 100 B (Os): {:.0} records/s, {:.1} MB/s (median of 5)",
        r,
        r * 100.0 / 1e6
    );

    // fetch everything sequentially, touching every value byte.
    let (_tmp, log) = open(Durability::Os);
    let producer = log.producer();
    let total = 400_000 / scale as u64;
    for b in 0..total / 100 {
        let records = (0..100).map(|_| Record::new(&VALUE[..])).collect();
        producer.send_batch("bench", records).expect("send_batch");
        let _ = b;
    }
    let ends: Vec<u64> = log
        .describe("bench")
        .expect("describe")
        .partitions
        .iter()
        .map(|p| p.end_offset)
        .collect();
    let mut rates = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut sum = 0u64;
        let mut count = 0u64;
        for (p, end) in ends.iter().enumerate() {
            let mut next = 0;
            while next < *end {
                let got = log.fetch("bench", p as u32, next, 2000).expect("fetch");
                for r in &got {
                    sum += r
                        .value()
                        .map_or(0, |v| v.iter().map(|b| u64::from(*b)).sum::<u64>());
                }
                count += got.len() as u64;
                next = got.last().map_or(*end, |r| r.offset() + 1);
            }
        }
        assert_eq!(sum, count * 100 * 0x5a);
        rates.push(count as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "fetch sequential, 100 B values touched: {:.0} records/s (median of 5)",
        median(rates)
    );
    log.close().expect("close");

    // Consumers: send-to-poll latency, consume throughput, commit cost.
    consumer_benches(scale);

    // Always, 1 / 4 / 16 threads.
    for threads in [1usize, 4, 16] {
        let mut rates = Vec::new();
        for _ in 0..3 {
            let (_tmp, log) = open(Durability::Always);
            let per_thread = (2_000 / threads).max(20) / scale.min(10);
            let t = Instant::now();
            std::thread::scope(|s| {
                for th in 0..threads {
                    let producer = log.producer();
                    s.spawn(move || {
                        for i in 0..per_thread {
                            let key = format!("t{th}-{}", i % 4);
                            producer
                                .send("bench", Record::new(&VALUE[..]).with_key(key))
                                .expect("send");
                        }
                    });
                }
            });
            rates.push((threads * per_thread) as f64 / t.elapsed().as_secs_f64());
            log.close().expect("close");
        }
        println!(
            "send (Always), {threads} threads: {:.0} sends/s (median of 3)",
            median(rates)
        );
    }
}

fn consumer_benches(scale: usize) {
    use std::sync::mpsc;
    use std::time::Duration;
    // End-to-end latency: send returns -> a blocked poll returns the record.
    let (_tmp, log) = open(Durability::Os);
    log.create_topic("lat", TopicConfig::default()).expect("topic");
    let rounds = 20_000 / scale;
    let (sent_at_tx, sent_at_rx) = mpsc::sync_channel::<Instant>(1);
    let (ready_tx, ready_rx) = mpsc::sync_channel::<()>(1);
    let mut lat = Vec::with_capacity(rounds);
    std::thread::scope(|s| {
        let consumer_log = log.clone();
        let handle = s.spawn(move || {
            let mut c = consumer_log.consumer("lat");
            c.assign(&[("lat", 0)]).expect("assign");
            let mut lat = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                ready_tx.send(()).expect("ready");
                let got = loop {
                    let got = c.poll(Duration::from_secs(5)).expect("poll");
                    if !got.is_empty() {
                        break got;
                    }
                };
                let done = Instant::now();
                let sent: Instant = sent_at_rx.recv().expect("sent");
                assert_eq!(got.len(), 1);
                lat.push(done.saturating_duration_since(sent).as_nanos() as u64);
            }
            lat
        });
        let producer = log.producer();
        for _ in 0..rounds {
            ready_rx.recv().expect("ready");
            // Let the consumer block in poll.
            std::thread::sleep(Duration::from_micros(50));
            // Timed from the start of the send call (the consumer may wake
            // before this thread returns from it).
            let start = Instant::now();
            producer.send_to("lat", 0, Record::new(&VALUE[..])).expect("send");
            sent_at_tx.send(start).expect("sent");
        }
        lat = handle.join().expect("consumer");
    });
    lat.sort_unstable();
    println!(
        "send call -> blocked poll returns: p50 {} ns, p99 {} ns over {rounds} records",
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );

    // Consume throughput, 1 and 4 partitions.
    for partitions in [1u32, 4] {
        let (_tmp, log) = open(Durability::Os);
        let topic = format!("c{partitions}");
        log.create_topic(&topic, TopicConfig::default().partitions(partitions))
            .expect("topic");
        let producer = log.producer();
        let total = 400_000 / scale;
        for b in 0..total / 100 {
            let records = (0..100)
                .map(|i| Record::new(&VALUE[..]).with_key(format!("{b}-{i}")))
                .collect();
            producer.send_batch(&topic, records).expect("send_batch");
        }
        let mut rates = Vec::new();
        for run in 0..5 {
            let mut c = log.consumer(&format!("g{run}"));
            c.subscribe(&[&topic]).expect("subscribe");
            c.max_poll_records(2000);
            let t = Instant::now();
            let mut n = 0;
            while n < total {
                n += c.poll(Duration::from_millis(100)).expect("poll").len();
            }
            rates.push(n as f64 / t.elapsed().as_secs_f64());
        }
        println!(
            "consume, {partitions} partition(s): {:.0} records/s (median of 5)",
            median(rates)
        );
    }

    // Commit cost (one partition), against a bare fdatasync of a 4 KiB append.
    let (tmp, log) = open(Durability::Os);
    let mut c = log.consumer("commit");
    c.assign(&[("bench", 0)]).expect("assign");
    let n = 300 / scale.min(10);
    let mut costs = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        c.commit_offsets(&[("bench", 0, 0)]).expect("commit");
        costs.push(t.elapsed().as_nanos() as u64);
        let _ = i;
    }
    costs.sort_unstable();
    let path = tmp.path().join("fsync-probe");
    let f = std::fs::File::create(&path).expect("probe");
    let mut fs = Vec::with_capacity(n);
    for i in 0..n {
        use std::os::unix::fs::FileExt;
        f.write_all_at(&[7u8; 4096], (i * 4096) as u64).expect("write");
        let t = Instant::now();
        f.sync_data().expect("fdatasync");
        fs.push(t.elapsed().as_nanos() as u64);
    }
    fs.sort_unstable();
    println!(
        "commit one partition: p50 {} us (bare fdatasync of a 4 KiB append: p50 {} us)",
        pct(&costs, 0.5) / 1000,
        pct(&fs, 0.5) / 1000
    );
}
