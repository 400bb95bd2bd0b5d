//! `Log::table`: the latest value per key of a compacted topic, checked
//! against a model (a map) along a random run of sends, tombstones and
//! compaction passes, then restored from the log after a reopen.

use std::collections::HashMap;
use tidelog::{Cleanup, Log, LogConfig, Record, TopicConfig};

fn open(dir: &std::path::Path) -> Log {
    Log::open(dir, LogConfig::default().maintenance_interval(None)).unwrap()
}

fn check(table: &mut tidelog::Table, model: &HashMap<Vec<u8>, Vec<u8>>, what: &str) {
    assert_eq!(table.len().unwrap(), model.len(), "{what}: len");
    for (k, v) in model {
        assert_eq!(
            table.get(k).unwrap().as_deref(),
            Some(&v[..]),
            "{what}: key {k:?}"
        );
    }
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = table
        .entries()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    entries.sort();
    let mut want: Vec<(Vec<u8>, Vec<u8>)> = model.clone().into_iter().collect();
    want.sort();
    assert_eq!(entries, want, "{what}: entries");
}

#[test]
fn the_table_follows_the_log_and_is_restored_on_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    {
        let log = open(tmp.path());
        log.create_topic(
            "t",
            TopicConfig::default()
                .partitions(3)
                .cleanup(Cleanup::Compact)
                .segment_bytes(1024)
                .min_cleanable_dirty_ratio(0.0)
                .delete_retention_ms(0),
        )
        .unwrap();
        let mut table = log.table("t").unwrap();
        assert!(table.is_empty().unwrap());
        let mut compacted = 0;
        let p = log.producer();
        for step in 0..600 {
            let key = format!("k{}", next(40)).into_bytes();
            match next(10) {
                0 => {
                    p.send("t", Record::tombstone(key.clone())).unwrap();
                    model.remove(&key);
                }
                1 => {
                    compacted += log.run_maintenance().unwrap().segments_compacted;
                }
                _ => {
                    let value = format!("v{step}").into_bytes();
                    p.send("t", Record::new(value.clone()).with_key(key.clone()))
                        .unwrap();
                    model.insert(key, value);
                }
            }
            if step % 25 == 0 {
                check(&mut table, &model, &format!("step {step}"));
            }
        }
        check(&mut table, &model, "end of run");
        assert!(compacted > 0, "the run compacted segments under the table");
        drop(table);
        log.close().unwrap();
    }
    let log = open(tmp.path());
    let mut table = log.table("t").unwrap();
    check(&mut table, &model, "after reopen");
    log.close().unwrap();
}
