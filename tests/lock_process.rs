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
