//! Reads what `examples/producer.rs` wrote (topic `demo` under `./tidelog-demo`)
//! as group `demo`, printing progress and lag, committing as it goes. Run it
//! twice: the second run resumes where the first committed.
//!
//! `cargo run --release --example consumer [-- --dir PATH --group NAME]`

use std::time::{Duration, Instant};
use tidelog::{Log, LogConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut dir = "tidelog-demo".to_string();
    let mut group = "demo".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--dir", Some(v)) => dir = v,
            ("--group", Some(v)) => group = v,
            _ => return Err(format!("usage: consumer [--dir PATH] [--group NAME], not {flag}").into()),
        }
    }
    let log = Log::open(&dir, LogConfig::default())?;
    if !log.topics().iter().any(|t| t == "demo") {
        return Err(
            format!("no topic `demo` in {dir}: run `cargo run --release --example producer` first").into(),
        );
    }
    let mut consumer = log.consumer(&group);
    consumer.subscribe(&["demo"])?;
    let lag_before: u64 = log.group_lag(&group)?.iter().map(|l| l.lag).sum();
    consumer.max_poll_records(5000);
    let started = Instant::now();
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut last_report = Instant::now();
    loop {
        let batch = consumer.poll(Duration::from_millis(200))?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            bytes += r.value().map_or(0, |v| v.len() as u64);
        }
        count += batch.len() as u64;
        consumer.commit()?;
        if last_report.elapsed() > Duration::from_millis(500) {
            let lag: u64 = log.group_lag(&group)?.iter().map(|l| l.lag).sum();
            println!("read {count} records, lag {lag}");
            last_report = Instant::now();
        }
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "group {group:?}: read {count} records ({:.1} MB) in {secs:.2} s, {:.0} records/s; lag was {lag_before}, now {}",
        bytes as f64 / 1e6,
        count as f64 / secs,
        log.group_lag(&group)?.iter().map(|l| l.lag).sum::<u64>()
    );
    for l in log.group_lag(&group)? {
        println!(
            "  {}-{}: committed {:?}, end {}, lag {}",
            l.topic, l.partition, l.committed, l.end_offset, l.lag
        );
    }
    drop(consumer);
    log.close()?;
    Ok(())
}
