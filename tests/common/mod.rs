//! Helpers shared by the storage-engine tests.
#![allow(dead_code)]

pub mod workload;

use std::path::Path;
use std::sync::Arc;
use tidelog::batch::BatchRecord;
use tidelog::internals::{
    EngineSabotage, PartitionConfig, PartitionLog, RealFs, RecoveryReport, SABOTAGE_ENV,
};
use tidelog::{ManualClock, Record};

pub const T0: i64 = 1_700_000_000_000;

/// Small segments and indexes so rolls and index limits happen constantly.
pub fn small_config() -> PartitionConfig {
    PartitionConfig {
        segment_bytes: 1024,
        segment_ms: 7 * 24 * 3600 * 1000,
        index_interval_bytes: 100,
        index_bytes: 240,
    }
}

pub fn open(dir: &Path, config: PartitionConfig) -> (PartitionLog, RecoveryReport) {
    let clock = ManualClock::new(T0);
    PartitionLog::open(RealFs::shared(), Arc::new(clock), dir, config).expect("open")
}

pub fn open_with_clock(
    dir: &Path,
    config: PartitionConfig,
    clock: &ManualClock,
) -> (PartitionLog, RecoveryReport) {
    PartitionLog::open(RealFs::shared(), Arc::new(clock.clone()), dir, config).expect("open")
}

/// A self-describing record for offset `n`.
pub fn record(n: u64) -> Record {
    Record::new(format!("value-{n}-{}", "x".repeat((n % 7) as usize)))
        .with_key(format!("key-{}", n % 13))
        .with_header("n", n.to_string())
        .with_timestamp(T0 + n as i64 * 10)
}

/// Appends records `from..to` one batch each.
pub fn fill(log: &PartitionLog, from: u64, to: u64) {
    for n in from..to {
        let a = log.append_records(&[record(n)]).expect("append");
        assert_eq!(a.base_offset, n);
    }
}

/// Reads everything from `from` to the end.
pub fn read_all(log: &PartitionLog, from: u64) -> Vec<BatchRecord> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.end_offset() {
        let got = log.read(next, 1000).expect("read");
        assert!(
            !got.is_empty(),
            "read from {next} returned nothing before the end"
        );
        next = got.last().map(|r| r.offset + 1).unwrap_or(next);
        out.extend(got);
    }
    out
}

/// Asserts `r` is the record `record(n)` wrote at offset n.
pub fn assert_record(r: &BatchRecord, n: u64) {
    let want = record(n);
    assert_eq!(r.offset, n);
    assert_eq!(r.timestamp, want.timestamp().unwrap());
    assert_eq!(r.key.as_ref(), want.key());
    assert_eq!(r.value.as_ref(), want.value());
    assert_eq!(r.headers, want.headers());
}

pub fn log_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Prints a suite's one-line summary (RELIABILITY.md §4) and writes it as JSON
/// to `target/reliability/<suite>.json` (or `<suite>-<tag>.json` when the
/// fields hold a `mode`). Values that parse as integers are written as numbers.
pub fn reliability_report(suite: &str, fields: &[(&str, String)]) {
    let mut line = format!("RELIABILITY suite={suite}");
    let mut json = format!("{{\"suite\":\"{suite}\"");
    for (k, v) in fields {
        line.push_str(&format!(" {k}={v}"));
        if v.parse::<i64>().is_ok() {
            json.push_str(&format!(",\"{k}\":{v}"));
        } else {
            let escaped = v.replace('\\', "\\\\").replace('"', "\\\"");
            json.push_str(&format!(",\"{k}\":\"{escaped}\""));
        }
    }
    json.push_str("}\n");
    println!("{line}");
    eprintln!("{line}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("reliability");
    let mut name = match fields.iter().find(|(k, _)| *k == "mode" || *k == "target") {
        Some((_, tag)) => format!("{suite}-{tag}"),
        None => suite.to_string(),
    };
    // A negative control's run never overwrites the real figures.
    if let Ok(sabotage) = std::env::var(SABOTAGE_ENV) {
        name.push_str(&format!("-sabotage-{sabotage}"));
    }
    let name = format!("{name}.json");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join(name), json);
    }
}

/// A negative control (RELIABILITY.md §3, "test the tests"): runs the test
/// `test` of this same test binary in a child process with `sabotage` in force
/// (and `env` set), and returns whether it passed and the `RELIABILITY` lines
/// it printed, each as its `key=value` fields. The suite must fail.
pub fn run_sabotaged(
    test: &str,
    sabotage: EngineSabotage,
    env: &[(&str, &str)],
) -> (bool, Vec<std::collections::BTreeMap<String, String>>, String) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(SABOTAGE_ENV, sabotage.name())
        .envs(env.iter().copied())
        .output()
        .expect("running the sabotaged suite");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Each line goes to stdout and to stderr: read stdout's.
    let lines: Vec<_> = String::from_utf8_lossy(&out.stdout)
        .lines()
        // libtest may print "test <name> ... " before it on the same line.
        .filter_map(|l| {
            l.find("RELIABILITY suite=")
                .and_then(|at| l.get(at + "RELIABILITY ".len()..))
        })
        .map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect();
    (out.status.success(), lines, text)
}

/// The sum of `key` over the `RELIABILITY` lines of [`run_sabotaged`].
pub fn reliability_sum(lines: &[std::collections::BTreeMap<String, String>], key: &str) -> u64 {
    lines
        .iter()
        .filter_map(|l| l.get(key))
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}
