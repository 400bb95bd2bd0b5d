//! kill -9 in the middle of compaction: after reopen the partition reads
//! exactly as before cleaning or exactly as after it, never a mix, never a loss.
//!
//! Method: build a compacted topic with many segments and a fixed clock
//! ("before"); clean a copy in-process ("after"); then, many times, copy
//! "before", let a child process (this test binary re-run with
//! `TIDELOG_COMPACT_CHILD=<dir>`) run maintenance on it, SIGKILL it after a
//! random delay, reopen in-process and compare. Quick: 12 kills; more with
//! `TIDELOG_COMPACT_CRASH_ITERS`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tidelog::{Cleanup, Log, LogConfig, ManualClock, Record, TopicConfig};

const T0: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig::default()
        .maintenance_interval(None)
        .clock(Arc::new(ManualClock::new(T0)))
}

/// (offset, key, value) of every readable record.
type State = Vec<(u64, Option<Vec<u8>>, Option<Vec<u8>>)>;

fn state(dir: &Path) -> State {
    let log = Log::open(dir, config()).unwrap();
    let info = log.describe("c").unwrap().partitions[0].clone();
    let mut next = info.start_offset;
    let mut out = Vec::new();
    while next < info.end_offset {
        let got = log.fetch("c", 0, next, 1000).unwrap();
        let Some(last) = got.last() else { break };
        next = last.offset() + 1;
        out.extend(got.iter().map(|r| {
            (
                r.offset(),
                r.key().map(|k| k.to_vec()),
                r.value().map(|v| v.to_vec()),
            )
        }));
    }
    log.close().unwrap();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn kill_during_compaction_leaves_before_or_after() {
    if let Ok(dir) = std::env::var("TIDELOG_COMPACT_CHILD") {
        let log = Log::open(&dir, config()).unwrap();
        println!("READY");
        let _ = log.run_maintenance();
        println!("DONE");
        loop {
            std::thread::park();
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let before = tmp.path().join("before");
    {
        let log = Log::open(&before, config()).unwrap();
        log.create_topic(
            "c",
            TopicConfig::default()
                .cleanup(Cleanup::Compact)
                .segment_bytes(2048)
                .min_cleanable_dirty_ratio(0.0),
        )
        .unwrap();
        let p = log.producer();
        for i in 0..3000u32 {
            let r = if i % 17 == 0 {
                Record::tombstone(format!("k{}", i % 50))
            } else {
                Record::new(format!("v{i}-{}", "p".repeat((i % 30) as usize)))
                    .with_key(format!("k{}", i % 50))
            };
            p.send("c", r.with_timestamp(T0 - 1000)).unwrap();
        }
        log.close().unwrap();
    }
    let want_before = state(&before);
    let after_dir = tmp.path().join("after");
    copy_dir(&before, &after_dir);
    {
        let log = Log::open(&after_dir, config()).unwrap();
        assert!(log.run_maintenance().unwrap().segments_compacted > 1);
        log.close().unwrap();
    }
    let want_after = state(&after_dir);
    assert_ne!(want_before, want_after);

    let iters: u64 = std::env::var("TIDELOG_COMPACT_CRASH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let (mut saw_before, mut saw_after) = (0, 0);
    let mut seed = 0x5eed_u64;
    for i in 0..iters {
        let dir = tmp.path().join(format!("run-{i}"));
        copy_dir(&before, &dir);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "kill_during_compaction_leaves_before_or_after",
                "--nocapture",
            ])
            .env("TIDELOG_COMPACT_CHILD", &dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(lines.by_ref().map_while(Result::ok).any(|l| l.contains("READY")));
        if i == 0 {
            // The first run is not killed: the child's pass must reach "after".
            assert!(lines.by_ref().map_while(Result::ok).any(|l| l.contains("DONE")));
        } else {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            std::thread::sleep(Duration::from_micros((seed >> 33) % 1_200_000));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let got = state(&dir);
        if got == want_before {
            saw_before += 1;
        } else if got == want_after {
            saw_after += 1;
        } else {
            panic!("kill {i}: the partition is neither the before nor the after state");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    println!(
        "RELIABILITY suite=compaction_crash kills={iters} before={saw_before} after={saw_after} mixed=0"
    );
}
