//! The directory lock across processes: while another process has the log
//! open, `Log::open` is `Error::Locked`; once that process dies (SIGKILL, no
//! cleanup), the kernel releases the lock and the next open succeeds and
//! recovers.
//!
//! Method: the test re-runs its own binary as a child (`TIDELOG_LOCK_CHILD=1`)
//! that opens the log, sends one record, prints `READY` and waits to be killed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use tidelog::{Error, Log, LogConfig, Record, TopicConfig};

#[test]
fn lock_is_held_across_processes_and_released_by_death() {
    if let Ok(dir) = std::env::var("TIDELOG_LOCK_CHILD_DIR") {
        let log = Log::open(&dir, LogConfig::default()).unwrap();
        log.create_topic("t", TopicConfig::default()).unwrap();
        log.producer().send("t", Record::new("from the child")).unwrap();
        println!("READY");
        loop {
            std::thread::park();
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_is_held_across_processes_and_released_by_death",
            "--nocapture",
        ])
        .env("TIDELOG_LOCK_CHILD_DIR", tmp.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.by_ref().map_while(Result::ok).any(|l| l.contains("READY")),
        "the child never became ready"
    );
    match Log::open(tmp.path(), LogConfig::default()) {
        Err(Error::Locked { path }) => assert_eq!(path, tmp.path()),
        other => panic!("expected Locked while the child holds the log, got {other:?}"),
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let log = Log::open(tmp.path(), LogConfig::default()).unwrap();
    let got = log.fetch("t", 0, 0, 10).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value().unwrap(), "from the child");
    log.close().unwrap();
}

/// Dropping the last handle without `close` releases the directory lock before
/// the drop returns, even while a background pass (the `Interval` flusher,
/// maintenance) holds the log: an `open` right after the drop, from this
/// process or another, never finds it `Locked`. Found by the kill -9 loop,
/// where a child's open failed once in about a thousand kills.
#[test]
fn dropping_the_last_handle_releases_the_lock_at_once() {
    use std::time::Duration;
    use tidelog::Durability;
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig::default()
        .durability(Durability::Interval(Duration::from_millis(1)))
        .maintenance_interval(Some(Duration::from_millis(1)));
    {
        let log = Log::open(tmp.path(), config.clone()).unwrap();
        log.create_topic("t", TopicConfig::default()).unwrap();
        log.close().unwrap();
    }
    for round in 0..300 {
        let log = Log::open(tmp.path(), config.clone())
            .unwrap_or_else(|e| panic!("round {round}: open right after a drop failed: {e}"));
        let producer = log.producer();
        producer.send("t", Record::new(format!("r{round}"))).unwrap();
        // Let a background pass start now and then.
        if round % 3 == 0 {
            std::thread::sleep(Duration::from_micros(900));
        }
        drop(producer);
        drop(log);
    }
    let log = Log::open(tmp.path(), config).unwrap();
    assert_eq!(log.describe("t").unwrap().partitions[0].end_offset, 300);
    log.close().unwrap();
}
