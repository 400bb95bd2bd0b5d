//! Consumer positions across damage and runtimes:
//! - a committed position past its partition's recovered end (the end was cut
//!   by recovery) is clamped to the end and reported, never silently moved back
//!   to the start (RELIABILITY.md §1, §2.6);
//! - `next_batch` works under tokio (multi-thread and current-thread runtimes),
//!   woken by a producer on another thread.

use std::time::Duration;
use tidelog::{Log, LogConfig, Record, TopicConfig};

#[test]
fn commit_past_a_recovered_end_is_clamped_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = Log::open(tmp.path(), LogConfig::default()).unwrap();
        log.create_topic("t", TopicConfig::default()).unwrap();
        let p = log.producer();
        for i in 0..50 {
            p.send("t", Record::new(format!("v{i}"))).unwrap();
        }
        let mut c = log.consumer("g");
        c.assign(&[("t", 0)]).unwrap();
        c.commit_offsets(&[("t", 0, 50)]).unwrap();
        log.close().unwrap();
    }
    // Damage from outside: the segment loses its second half.
    let seg = tmp.path().join("t-0").join("00000000000000000000.log");
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let log = Log::open(tmp.path(), LogConfig::default()).unwrap();
    let end = log.describe("t").unwrap().partitions[0].end_offset;
    assert!(end > 0 && end < 50, "recovery cut the torn half: end {end}");
    let c = log.consumer("g");
    assert_eq!(
        c.committed("t", 0).unwrap(),
        Some(end),
        "clamped to the end, not reset"
    );
    let clamped = log.clamped_positions();
    assert_eq!(clamped, vec![(("g".to_string(), "t".to_string(), 0), 50, end)]);
    let lag = log.group_lag("g").unwrap();
    assert_eq!(lag[0].lag, 0);
    log.close().unwrap();
}

fn next_batch_under(rt: tokio::runtime::Runtime) {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), LogConfig::default()).unwrap();
    log.create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let producer = log.producer();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        for i in 0..3 {
            producer
                .send("t", Record::new(format!("m{i}")).with_key("k"))
                .unwrap();
        }
    });
    let mut consumer = log.consumer("g");
    consumer.subscribe(&["t"]).unwrap();
    let got = rt.block_on(async {
        let mut got = Vec::new();
        while got.len() < 3 {
            got.extend(consumer.next_batch().await.unwrap());
        }
        got
    });
    sender.join().unwrap();
    let values: Vec<_> = got.iter().map(|r| r.value().unwrap().clone()).collect();
    assert_eq!(values, vec!["m0", "m1", "m2"]);
    drop(consumer);
    log.close().unwrap();
}

#[test]
fn next_batch_under_tokio_multi_thread() {
    next_batch_under(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap(),
    );
}

#[test]
fn next_batch_under_tokio_current_thread() {
    next_batch_under(tokio::runtime::Builder::new_current_thread().build().unwrap());
}
