#![cfg(feature = "internals")]
//! Recovery of a partition directory after crashes and damage (RELIABILITY.md
//! §2.3): torn tails are cut from the last segment only, appends continue at the
//! right offset, lost or garbage indexes are rebuilt with the same answers, and
//! damage inside a sealed segment is quarantined: reads over it are
//! `Error::Corrupt`, every other record stays readable.
//!
//! Method: write a partition through the engine, damage its files with plain
//! `std::fs`, reopen, and compare every answer with what was written.

mod common;
use common::*;
use std::fs::{self, OpenOptions};
use std::io::Write;
use tidelog::Error;

fn append_bytes(path: &std::path::Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// Writes 60 records (many segments), then closes or drops the log.
fn written(dir: &std::path::Path, clean: bool) {
    let (log, _) = open(dir, small_config());
    fill(&log, 0, 60);
    if clean {
        log.close().unwrap();
    }
}

fn check_all(dir: &std::path::Path, n: u64) -> tidelog::internals::PartitionLog {
    let (log, _) = open(dir, small_config());
    assert_eq!(log.end_offset(), n);
    let all = read_all(&log, 0);
    assert_eq!(all.len() as u64, n);
    for (i, r) in all.iter().enumerate() {
        assert_record(r, i as u64);
    }
    log
}

fn torn_tail_case(tail: &[u8], clean: bool, expect_torn_file: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    written(dir, clean);
    let last = log_files(dir).pop().unwrap();
    let whole_len = fs::metadata(&last).unwrap().len();
    append_bytes(&last, tail);
    let (log, report) = open(dir, small_config());
    assert_eq!(log.end_offset(), 60, "ends at the last whole batch");
    assert_eq!(report.truncated_bytes, tail.len() as u64, "{report:?}");
    assert_eq!(!report.torn_files.is_empty(), expect_torn_file, "{report:?}");
    assert_eq!(
        fs::metadata(&last).unwrap().len(),
        whole_len,
        "cut exactly at the last whole batch"
    );
    // Appends continue at the right offset and everything reads back.
    fill(&log, 60, 70);
    log.close().unwrap();
    let log = check_all(dir, 70);
    drop(log);
}

#[test]
fn torn_partial_batch_is_cut() {
    // The first 40 bytes of a valid batch: a write cut short.
    let mut batch = Vec::new();
    tidelog::batch::encode_batch(&mut batch, 60, &[record(60)], T0).unwrap();
    for clean in [true, false] {
        torn_tail_case(&batch[..40], clean, false);
        torn_tail_case(&batch[..batch.len() - 1], clean, false);
    }
}

#[test]
fn random_bytes_tail_is_cut_and_kept_aside() {
    let garbage: Vec<u8> = (0..777u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 | 1)
        .collect();
    for clean in [true, false] {
        torn_tail_case(&garbage, clean, true);
    }
}

#[test]
fn zeros_tail_is_cut() {
    for clean in [true, false] {
        torn_tail_case(&[0u8; 4096], clean, false);
    }
}

#[test]
fn whole_segment_of_zeros_holds_no_records() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("00000000000000000000.log"), vec![0u8; 4096]).unwrap();
    let (log, report) = open(tmp.path(), small_config());
    assert_eq!(log.end_offset(), 0);
    assert_eq!(log.read(0, 10).unwrap().len(), 0);
    assert_eq!(report.truncated_bytes, 4096);
    fill(&log, 0, 5);
    assert_eq!(read_all(&log, 0).len(), 5);
}

/// Answers that depend on the indexes: reads from every offset and lookups by
/// timestamp.
fn index_answers(log: &tidelog::internals::PartitionLog) -> Vec<(u64, Option<u64>)> {
    (0..log.end_offset())
        .map(|o| {
            let first = log.read(o, 1).unwrap()[0].offset;
            (first, log.offset_for_timestamp(T0 + o as i64 * 10 - 5).unwrap())
        })
        .collect()
}

#[test]
fn lost_or_garbage_indexes_are_rebuilt_with_the_same_answers() {
    type Damage = fn(&std::path::Path);
    let damages: [(&str, Damage); 5] = [
        ("deleted", |p| fs::remove_file(p).unwrap()),
        ("odd length", |p| {
            let len = fs::metadata(p).unwrap().len();
            OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(len + 3)
                .unwrap();
        }),
        ("zeroed", |p| {
            let len = fs::metadata(p).unwrap().len().max(24);
            fs::write(p, vec![0u8; len as usize]).unwrap()
        }),
        ("random", |p| {
            let bytes: Vec<u8> = (0..96u32)
                .map(|i| (i.wrapping_mul(0x9E3779B1) >> 7) as u8)
                .collect();
            fs::write(p, bytes).unwrap()
        }),
        ("past eof", |p| {
            // Entries whose positions point far past the end of the log.
            let mut b = Vec::new();
            for i in 1..4u32 {
                if p.extension().unwrap() == "index" {
                    b.extend_from_slice(&i.to_be_bytes());
                    b.extend_from_slice(&(i * 1_000_000).to_be_bytes());
                } else {
                    b.extend_from_slice(&(T0 + i as i64).to_be_bytes());
                    b.extend_from_slice(&(i * 1_000_000).to_be_bytes());
                }
            }
            fs::write(p, b).unwrap()
        }),
    ];
    for (name, damage) in damages {
        for clean in [true, false] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path();
            written(dir, clean);
            let expected = {
                let (log, _) = open(dir, small_config());
                let a = index_answers(&log);
                if clean {
                    log.close().unwrap();
                }
                a
            };
            for entry in fs::read_dir(dir).unwrap() {
                let p = entry.unwrap().path();
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                if ext == "index" || ext == "timeindex" {
                    damage(&p);
                }
            }
            let log = check_all(dir, 60);
            assert_eq!(index_answers(&log), expected, "indexes {name}, clean {clean}");
            fill(&log, 60, 65);
            assert_eq!(read_all(&log, 0).len(), 65);
        }
    }
}

/// Position and size of the `k`th batch of a .log file.
fn batch_at(bytes: &[u8], k: usize) -> (usize, usize) {
    let mut pos = 0;
    for _ in 0..k {
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        pos += 12 + len;
    }
    let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
    (pos, 12 + len)
}

fn first_offset_of(bytes: &[u8], pos: usize) -> u64 {
    u64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap())
}

#[test]
fn flipped_bit_in_a_sealed_segment_is_quarantined() {
    for clean in [true, false] {
        for byte_in_batch in [9usize, 16, 19, 30, 61, 70] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path();
            written(dir, clean);
            let files = log_files(dir);
            assert!(files.len() >= 3, "the test needs several segments");
            // Damage the second batch of the first sealed segment.
            let seg = &files[0];
            let mut bytes = fs::read(seg).unwrap();
            let (pos, size) = batch_at(&bytes, 1);
            let damaged_offset = first_offset_of(&bytes, pos);
            let byte = pos + byte_in_batch.min(size - 1);
            bytes[byte] ^= 0x04;
            fs::write(seg, &bytes).unwrap();

            let (log, _report) = open(dir, small_config());
            assert_eq!(log.end_offset(), 60, "nothing after the damage is lost");
            // Before the damage: readable.
            let before = log.read(0, 1).unwrap();
            assert_record(&before[0], 0);
            // Over the damage: Corrupt, naming the file.
            match log.read(damaged_offset, 10) {
                Err(Error::Corrupt { path, .. }) => assert_eq!(&path, seg),
                other => panic!("expected Corrupt reading over the damage, got {other:?}"),
            }
            // After the damage: every record readable and identical.
            let after = read_all(&log, damaged_offset + 1);
            assert_eq!(after.len() as u64, 60 - damaged_offset - 1);
            for r in &after {
                assert_record(r, r.offset);
            }
            // Appends continue.
            fill(&log, 60, 62);
            assert_eq!(
                read_all(&log, damaged_offset + 1).len() as u64,
                62 - damaged_offset - 1
            );
        }
    }
}

#[test]
fn flipped_bit_in_the_active_segment_is_quarantined_after_a_clean_close() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (log, _) = open(
        dir,
        tidelog::internals::PartitionConfig {
            segment_bytes: 1 << 20,
            ..small_config()
        },
    );
    fill(&log, 0, 20);
    log.close().unwrap();
    drop(log);
    let seg = log_files(dir).pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    let (pos, _) = batch_at(&bytes, 5);
    bytes[pos + 40] ^= 0x80;
    fs::write(&seg, &bytes).unwrap();
    let (log, _) = open(
        dir,
        tidelog::internals::PartitionConfig {
            segment_bytes: 1 << 20,
            ..small_config()
        },
    );
    assert_eq!(log.end_offset(), 20);
    assert!(matches!(log.read(5, 10), Err(Error::Corrupt { .. })));
    let before = log.read(0, 100).unwrap();
    assert_eq!(
        before.len(),
        5,
        "records before the damage are returned, then the read stops"
    );
    let after = read_all(&log, 6);
    assert_eq!(after.len(), 14);
}

#[test]
fn reopen_twice_changes_nothing_the_second_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    written(dir, false);
    append_bytes(&log_files(dir).pop().unwrap(), &[7u8; 100]);
    drop(open(dir, small_config()));
    let listing = |d: &std::path::Path| {
        let mut v: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name(), e.metadata().unwrap().len())
            })
            .collect();
        v.sort();
        v
    };
    let first = listing(dir);
    let (_, report) = open(dir, small_config());
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(listing(dir), first);
}

#[test]
fn delete_before_drops_whole_segments_and_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (log, _) = open(dir, small_config());
    fill(&log, 0, 60);
    let segments = log.segment_count();
    let bases = log.segment_base_offsets();
    let cut = bases[2] + 1;
    let deleted = log.delete_before(cut).unwrap();
    assert_eq!(deleted, 2);
    assert_eq!(log.segment_count(), segments - 2);
    assert_eq!(log.start_offset(), cut);
    assert!(matches!(
        log.read(cut - 1, 1),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert_record(&log.read(cut, 1).unwrap()[0], cut);
    assert!(matches!(
        log.delete_before(61),
        Err(Error::OffsetOutOfRange { .. })
    ));
    drop(log);
    let (log, _) = open(dir, small_config());
    assert_eq!(log.start_offset(), cut);
    assert_eq!(log.end_offset(), 60);
    // Everything removed: the active segment is rolled so the old one can go.
    log.delete_before(60).unwrap();
    assert_eq!(log.start_offset(), 60);
    assert_eq!(log.segment_count(), 1);
    fill(&log, 60, 61);
    assert_eq!(read_all(&log, 60).len(), 1);
}

/// After an unclean stop, damage in the active segment's unsynced bytes is crash
/// damage (cut there); in bytes a `flush` covered it is damage at rest
/// (quarantined, nothing after it lost).
#[test]
fn active_segment_damage_depends_on_the_sync_point() {
    let big = tidelog::internals::PartitionConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    for flushed in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (log, _) = open(dir, big);
        fill(&log, 0, 20);
        if flushed {
            log.flush().unwrap();
        }
        drop(log); // no close: an unclean stop
        let seg = log_files(dir).pop().unwrap();
        let mut bytes = fs::read(&seg).unwrap();
        let (pos, _) = batch_at(&bytes, 10);
        bytes[pos + 30] ^= 0x01;
        fs::write(&seg, &bytes).unwrap();
        let (log, report) = open(dir, big);
        if flushed {
            assert_eq!(log.end_offset(), 20, "{report:?}");
            assert_eq!(report.quarantined.len(), 1, "{report:?}");
            assert!(matches!(log.read(10, 5), Err(Error::Corrupt { .. })));
            assert_eq!(read_all(&log, 11).len(), 9);
        } else {
            assert_eq!(log.end_offset(), 10, "{report:?}");
            assert!(report.truncated_bytes > 0);
            assert_eq!(report.torn_files.len(), 1, "cut bytes are kept aside");
            assert_eq!(read_all(&log, 0).len(), 10);
        }
        fill(&log, log.end_offset(), log.end_offset() + 3);
    }
}
