//! The main demo: writes 1,000,000 keyed records of 100 bytes into a
//! 4-partition topic under `./tidelog-demo` and prints the rate.
//!
//! ```text
//! cargo run --release --example producer
//! cargo run --release --example producer -- --count 200000 --size 1024 \
//!     --partitions 8 --batch 100 --durability always --dir /tmp/demo
//! ```

use std::time::{Duration, Instant};
use tidelog::{Durability, Log, LogConfig, Record, TopicConfig};

struct Args {
    count: u64,
    size: usize,
    partitions: u32,
    batch: usize,
    durability: Durability,
    dir: String,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        count: 1_000_000,
        size: 100,
        partitions: 4,
        batch: 1,
        durability: Durability::Os,
        dir: "tidelog-demo".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--count" => a.count = value()?.parse().map_err(|e| format!("--count: {e}"))?,
            "--size" => a.size = value()?.parse().map_err(|e| format!("--size: {e}"))?,
            "--partitions" => a.partitions = value()?.parse().map_err(|e| format!("--partitions: {e}"))?,
            "--batch" => a.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--dir" => a.dir = value()?,
            "--durability" => {
                a.durability = match value()?.as_str() {
                    "os" => Durability::Os,
                    "always" => Durability::Always,
                    other => match other.strip_prefix("interval=").and_then(|ms| ms.parse().ok()) {
                        Some(ms) => Durability::Interval(Duration::from_millis(ms)),
                        None => {
                            return Err(format!("--durability: os, always or interval=<ms>, not {other}"))
                        }
                    },
                }
            }
            "-h" | "--help" => {
                println!(
                    "producer [--count N] [--size BYTES] [--partitions N] [--batch N] \
                     [--durability os|always|interval=MS] [--dir PATH]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other} (try --help)")),
        }
    }
    a.batch = a.batch.max(1);
    Ok(a)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    let log = Log::open(&args.dir, LogConfig::default().durability(args.durability))?;
    let topic = "demo";
    if !log.topics().iter().any(|t| t == topic) {
        log.create_topic(topic, TopicConfig::default().partitions(args.partitions))?;
    }
    let producer = log.producer();
    let value = vec![b'x'; args.size];
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < args.count {
        let n = (args.count - sent).min(args.batch as u64);
        if n == 1 {
            producer.send(
                topic,
                Record::new(value.clone()).with_key(format!("key-{:08}", sent % 100_000)),
            )?;
        } else {
            let records = (0..n)
                .map(|i| Record::new(value.clone()).with_key(format!("key-{:08}", (sent + i) % 100_000)))
                .collect();
            producer.send_batch(topic, records)?;
        }
        sent += n;
    }
    let secs = started.elapsed().as_secs_f64();
    log.close()?;
    let mb = (args.count as f64 * args.size as f64) / 1e6;
    println!(
        "wrote {} records of {} B to topic {topic:?} ({} partitions, batch {}, {:?}) in {:.2} s",
        args.count, args.size, args.partitions, args.batch, args.durability, secs
    );
    println!(
        "{:.0} records/s, {:.1} MB/s of values",
        args.count as f64 / secs,
        mb / secs
    );
    println!(
        "files: {}/{topic}-0 .. {topic}-{}",
        args.dir,
        args.partitions.saturating_sub(1)
    );
    Ok(())
}
