//! Footprint of idle partitions: opens a log with many partitions (10,000 by
//! default), writes one record to each, and reports resident memory, open
//! descriptors and memory maps per partition, then the time of a clean
//! reopen and of a first read of every partition after it.
//!
//! ```sh
//! (ulimit -n 1024; cargo run --release --example footprint -- 10000)
//! ```
//!
//! Linux only (it reads `/proc/self`). The directory is a fresh temp dir.

use std::time::Instant;
use tidelog::{Log, LogConfig, Record, TopicConfig};

/// (resident KiB, open descriptors, memory maps) of this process.
fn usage() -> (u64, usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
    let maps = std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count());
    (rss, fds, maps)
}

fn report(what: &str, base: (u64, usize, usize), now: (u64, usize, usize), partitions: u64) {
    let rss = now.0.saturating_sub(base.0);
    println!(
        "{what:<34} RSS +{:>7} KiB ({:>5.1} KiB/partition)  fds {:>5}  maps {:>6}",
        rss,
        rss as f64 / partitions as f64,
        now.1,
        now.2
    );
}

fn main() -> tidelog::Result<()> {
    let partitions: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let tmp = tempfile_dir();
    let config = || LogConfig::default().maintenance_interval(None);
    let base = usage();
    println!(
        "{partitions} partitions, descriptor limit {}, {}",
        fd_limit_text(),
        tmp.display()
    );

    let started = Instant::now();
    let log = Log::open(&tmp, config())?;
    log.create_topic("idle", TopicConfig::default().partitions(partitions))?;
    let created = started.elapsed();
    report("created", base, usage(), u64::from(partitions));

    let producer = log.producer();
    let started = Instant::now();
    for p in 0..partitions {
        producer.send_to("idle", p, Record::new(format!("record of partition {p}")))?;
    }
    let written = started.elapsed();
    report("one record in each", base, usage(), u64::from(partitions));
    log.close()?;
    drop(producer);
    drop(log);

    let started = Instant::now();
    let log = Log::open(&tmp, config())?;
    let reopened = started.elapsed();
    report("reopened (clean)", base, usage(), u64::from(partitions));

    let started = Instant::now();
    for p in 0..partitions {
        let got = log.fetch("idle", p, 0, 1)?;
        let want = format!("record of partition {p}");
        let ok = got
            .first()
            .and_then(|r| r.value())
            .is_some_and(|v| v[..] == *want.as_bytes());
        if !ok {
            eprintln!("partition {p}: the record did not come back");
            std::process::exit(1);
        }
    }
    let read = started.elapsed();
    report("every partition read once", base, usage(), u64::from(partitions));
    log.close()?;
    println!(
        "create {:.2} s, write {:.2} s, clean reopen {:.3} s, first read of all {:.2} s",
        created.as_secs_f64(),
        written.as_secs_f64(),
        reopened.as_secs_f64(),
        read.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tidelog-footprint-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn fd_limit_text() -> String {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
        })
        .unwrap_or_else(|| "unknown".into())
}
