//! Injected I/O errors (RELIABILITY.md §2.2 and §3 S3), on the simulated
//! filesystem.
//!
//! The power-cut workloads run again with one fault injected at a sampled
//! mutating operation: EIO, ENOSPC, a short write, or an fsync EIO that leaves
//! the data readable but never durable; once, and from then on ("forever").
//! Every failed call must return a typed error (`Error::Io` naming a path, or
//! `Error::Fenced` for a partition fenced by an earlier fsync failure), and
//! nothing may panic. After the faults stop:
//! - a power cut right then must keep the mode's promise: under `Always` no
//!   acknowledged record may be lost, so nothing was acknowledged after a failed
//!   fsync (a retried fsync "succeeds" without writing anything);
//! - a reopen (a process restart) must hold every acknowledged record, whole
//!   batches, no invented record, and the acknowledged topics and commits.
//!
//! Focused tests: ENOSPC publishes nothing and appends resume once space
//! returns; a short write leaves no garbage and loses no offset; an fsync
//! failure fences only its partition; a read error during recovery is an error.
//!
//! Quick mode samples fault points; long mode:
//! `TIDELOG_IO_ERRORS_POINTS=100000 cargo test --release --all-features --test io_errors`.

#![cfg(feature = "internals")]

mod common;

use common::workload::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;
use tidelog::internals::{CrashModel, FaultKind, Persistence, SimFs};
use tidelog::{Durability, Error, ManualClock, Record, TopicConfig};

#[derive(Debug, Default)]
struct Tally {
    points: u64,
    faults: u64,
    errors: u64,
    fenced: u64,
    checked: u64,
    acks_after_fsync_error: u64,
    panics: u64,
    failures: Vec<String>,
}

fn is_typed(e: &Error) -> bool {
    match e {
        Error::Io { path, .. } => !path.as_os_str().is_empty(),
        Error::Fenced { .. } => true,
        // A topic whose creation failed is unknown afterwards (the checks
        // after reopen catch an acknowledged topic that went missing).
        Error::UnknownTopic { .. } => true,
        _ => false,
    }
}

/// Opens `disk` as a restarted process would, checks it under `promise`, and
/// returns the problems found (and how many acknowledged records were checked).
fn reopen_and_check(disk: &SimFs, seed: u64, h: &History, promise: Durability) -> (u64, Vec<String>) {
    let clock = ManualClock::new(T0 + 10_000_000);
    let log = match open(disk, promise, &clock) {
        Ok(log) => log,
        Err(e) => return (0, vec![format!("open failed: {e}")]),
    };
    let r = read_all(&log, seed, h);
    let mut problems = Vec::new();
    let checked = check(&r, h, None, promise, &mut problems);
    drop(log);
    (checked, problems)
}

fn sweep(mode: Durability) {
    let points = env_u64("TIDELOG_IO_ERRORS_POINTS").unwrap_or(3);
    let seed = env_u64("TIDELOG_SEED").unwrap_or(0x10e);
    let started = Instant::now();
    let steps = script(seed, Kind::Basic, 45);
    let (whole, _) = run_workload(seed, mode, &steps, None, None);
    let total = whole.op_count();
    let mut t = Tally::default();
    let mut rng = Rng(seed);
    let kinds = [
        FaultKind::Eio,
        FaultKind::Enospc,
        FaultKind::ShortWrite,
        FaultKind::SyncEio,
    ];
    for kind in kinds {
        for persistence in [Persistence::Once, Persistence::Forever] {
            let stride = (total / points.min(total)).max(1);
            for base in (0..total).step_by(stride as usize) {
                let n = (base + rng.below(stride)).min(total - 1);
                t.points += 1;
                let tag =
                    format!("TIDELOG_SEED={seed:#x} fault={kind:?} {persistence:?} at={n} mode={mode:?}");
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    let sim = SimFs::new().with_dir("/sim");
                    sim.fail_at(n, kind, persistence);
                    let mut untyped = Vec::new();
                    let mut errors = 0u64;
                    let mut fenced = 0u64;
                    let (h, log) = run_steps(&sim, seed, mode, &steps, &mut |what, e| {
                        errors += 1;
                        if matches!(e, Error::Fenced { .. }) {
                            fenced += 1;
                        }
                        if !is_typed(e) {
                            untyped.push(format!("{what}: untyped error {e:?}"));
                        }
                        true
                    });
                    let fired = sim.faults_fired();
                    let hit = sim.fault_log().join("; ");
                    sim.clear_faults();
                    // A power cut right after the faults: the mode's promise.
                    let image = sim.crash_image(CrashModel::Ordered, n);
                    drop(log);
                    let (_, cut_problems) = reopen_and_check(&image, seed, &h, mode);
                    // A process restart: everything acknowledged is there.
                    let (checked, restart_problems) = reopen_and_check(&sim, seed, &h, Durability::Always);
                    (
                        hit,
                        fired,
                        errors,
                        fenced,
                        untyped,
                        cut_problems,
                        checked,
                        restart_problems,
                    )
                }));
                match outcome {
                    Err(_) => {
                        t.panics += 1;
                        t.failures.push(format!("{tag}: panic"));
                    }
                    Ok((hit, fired, errors, fenced, untyped, cut, checked, restart)) => {
                        t.faults += fired as u64;
                        t.errors += errors;
                        t.fenced += fenced;
                        t.checked += checked;
                        // A failed write or create must reach the caller, except
                        // where an index could not grow: the record itself was
                        // stored, the sparse index just lacks an entry (lookups
                        // scan a little further; the next open checks it).
                        let index_only = hit
                            .split("; ")
                            .all(|h| h.ends_with(".index") || h.ends_with(".timeindex"));
                        if fired > 0 && errors == 0 && kind != FaultKind::SyncEio && !index_only {
                            t.failures
                                .push(format!("{tag}: a fault fired but no call failed ({hit})"));
                        }
                        let lost_after_cut = cut.iter().filter(|p| p.starts_with("lost")).count() as u64;
                        if kind == FaultKind::SyncEio {
                            t.acks_after_fsync_error += lost_after_cut;
                        }
                        for p in untyped.into_iter().chain(cut).chain(restart) {
                            t.failures.push(format!("{tag}: {p}"));
                        }
                    }
                }
            }
        }
    }
    common::reliability_report(
        "io_errors",
        &[
            ("mode", format!("{mode:?}").to_lowercase()),
            ("points", t.points.to_string()),
            ("faults", t.faults.to_string()),
            ("errors", t.errors.to_string()),
            ("fenced", t.fenced.to_string()),
            ("checked", t.checked.to_string()),
            ("acks_after_fsync_error", t.acks_after_fsync_error.to_string()),
            ("panics", t.panics.to_string()),
            ("secs", started.elapsed().as_secs().to_string()),
        ],
    );
    for f in t.failures.iter().take(20) {
        eprintln!("FAIL {f}");
    }
    assert!(
        t.failures.is_empty(),
        "{} violations, first: {}",
        t.failures.len(),
        t.failures[0]
    );
    assert!(
        t.faults > 0 && t.checked > 0,
        "the sweep injected or checked nothing: {t:?}"
    );
}

#[test]
fn io_faults_always() {
    sweep(Durability::Always);
}

#[test]
fn io_faults_os() {
    sweep(Durability::Os);
}

fn one_topic(sim: &SimFs, mode: Durability, partitions: u32) -> tidelog::Log {
    let clock = ManualClock::new(T0);
    let log = open(sim, mode, &clock).unwrap();
    log.create_topic(
        "t",
        TopicConfig::default().partitions(partitions).segment_bytes(4096),
    )
    .unwrap();
    log
}

fn values(log: &tidelog::Log, partition: u32) -> Vec<(u64, Vec<u8>)> {
    let end = log.describe("t").unwrap().partitions[partition as usize].end_offset;
    if end == 0 {
        return Vec::new();
    }
    log.fetch("t", partition, 0, 10_000)
        .unwrap()
        .iter()
        .map(|r| (r.offset(), r.value().unwrap().to_vec()))
        .collect()
}

fn os_code(e: &Error) -> Option<i32> {
    match e {
        Error::Io { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

/// A full disk: sends fail with ENOSPC naming the file and publish nothing;
/// once space returns the same log appends again, without a reopen, at the
/// next offset; a reopen holds exactly the acknowledged records.
#[test]
fn enospc_publishes_nothing_and_appends_resume_when_space_returns() {
    let sim = SimFs::new().with_dir("/sim");
    let log = one_topic(&sim, Durability::Os, 1);
    let p = log.producer();
    let mut acked = Vec::new();
    for i in 0..20u32 {
        let v = format!("before-{i}-{}", "x".repeat(200));
        acked.push((
            p.send_to("t", 0, Record::new(v.clone())).unwrap().offset,
            v.into_bytes(),
        ));
    }
    sim.fail_at(sim.op_count(), FaultKind::Enospc, Persistence::Forever);
    let mut failures = 0;
    for i in 0..200u32 {
        match p.send_to("t", 0, Record::new(format!("full-{i}-{}", "y".repeat(200)))) {
            Ok(meta) => panic!("a send succeeded on a full disk at offset {}", meta.offset),
            Err(e) => {
                assert_eq!(os_code(&e), Some(libc_enospc()), "not ENOSPC: {e}");
                failures += 1;
            }
        }
        assert_eq!(values(&log, 0), acked, "a failed send published something");
    }
    assert_eq!(failures, 200);
    sim.clear_faults();
    for i in 0..20u32 {
        let v = format!("after-{i}");
        let meta = p.send_to("t", 0, Record::new(v.clone())).unwrap();
        assert_eq!(meta.offset, acked.len() as u64, "an offset was skipped");
        acked.push((meta.offset, v.into_bytes()));
    }
    assert_eq!(values(&log, 0), acked);
    log.close().unwrap();
    drop((p, log));
    let log = open(&sim, Durability::Os, &ManualClock::new(T0)).unwrap();
    assert_eq!(values(&log, 0), acked);
}

fn libc_enospc() -> i32 {
    28
}

/// A short write (half the batch reached the file, then ENOSPC) is cut back:
/// the send fails, the next send takes the same offset, and no garbage is
/// left for a reader or for recovery, even after a power cut.
#[test]
fn short_write_is_cut_back_and_loses_no_offset() {
    for mode in [Durability::Os, Durability::Always] {
        let sim = SimFs::new().with_dir("/sim");
        let log = one_topic(&sim, mode, 1);
        let p = log.producer();
        let first = p.send_to("t", 0, Record::new("first")).unwrap();
        sim.fail_at(sim.op_count(), FaultKind::ShortWrite, Persistence::Once);
        let e = p
            .send_to("t", 0, Record::new("torn".repeat(100)))
            .expect_err("a short write must fail the send");
        assert!(is_typed(&e), "{e:?}");
        let next = p.send_to("t", 0, Record::new("next")).unwrap();
        assert_eq!(next.offset, first.offset + 1, "{mode:?}");
        let want = vec![(0, b"first".to_vec()), (1, b"next".to_vec())];
        assert_eq!(values(&log, 0), want);
        if mode == Durability::Always {
            for seed in 0..8 {
                let image = sim.crash_image(CrashModel::Reordered, seed);
                let l = open(&image, mode, &ManualClock::new(T0)).unwrap();
                assert_eq!(values(&l, 0), want, "{mode:?} image {seed}");
            }
        }
        log.close().unwrap();
        drop((p, log));
        let log = open(&sim, mode, &ManualClock::new(T0)).unwrap();
        assert_eq!(values(&log, 0), want, "{mode:?} after reopen");
    }
}

/// An fsync failure under `Always` fails the send, fences only its
/// partition (later sends there fail, with no retry of the fsync), while the
/// other partition keeps acknowledging; the fenced data never counts as
/// durable, and a reopen clears the fence.
#[test]
fn fsync_failure_fences_only_its_partition() {
    let sim = SimFs::new().with_dir("/sim");
    let log = one_topic(&sim, Durability::Always, 2);
    let p = log.producer();
    p.send_to("t", 0, Record::new("a0")).unwrap();
    p.send_to("t", 1, Record::new("b0")).unwrap();
    let syncs = sim.sync_count();
    sim.fail_at(sim.op_count(), FaultKind::SyncEio, Persistence::Once);
    let e = p
        .send_to("t", 0, Record::new("a1"))
        .expect_err("the fsync failed");
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    let later = p
        .send_to("t", 0, Record::new("a2"))
        .expect_err("the partition is fenced");
    assert!(matches!(later, Error::Fenced { .. }), "{later:?}");
    assert_eq!(
        sim.sync_count(),
        syncs,
        "the failed fsync was retried or another ran for it"
    );
    for i in 1..5 {
        p.send_to("t", 1, Record::new(format!("b{i}"))).unwrap();
    }
    // Readers under Always never saw the unsynced record.
    assert_eq!(values(&log, 0), vec![(0, b"a0".to_vec())]);
    // A power cut now keeps every acknowledged record and nothing of p0's
    // failed write can have been acknowledged.
    for seed in 0..8 {
        let image = sim.crash_image(CrashModel::Reordered, seed);
        let l = open(&image, Durability::Always, &ManualClock::new(T0)).unwrap();
        let p0 = values(&l, 0);
        assert_eq!(p0.first(), Some(&(0, b"a0".to_vec())));
        assert_eq!(values(&l, 1).len(), 5, "image {seed}");
    }
    drop((p, log));
    let log = open(&sim, Durability::Always, &ManualClock::new(T0)).unwrap();
    let meta = log.producer().send_to("t", 0, Record::new("a3")).unwrap();
    assert!(meta.offset >= 1);
    assert_eq!(values(&log, 1).len(), 5);
}

/// A bad sector under a segment: recovery's reads fail with EIO. Open either
/// fails with a typed `Io` error naming the file or succeeds; it never panics
/// and never returns wrong bytes.
#[test]
fn read_errors_during_recovery_are_errors() {
    let sim = SimFs::new().with_dir("/sim");
    let log = one_topic(&sim, Durability::Os, 1);
    let p = log.producer();
    for i in 0..50 {
        p.send_to("t", 0, Record::new(format!("v{i}"))).unwrap();
    }
    drop((p, log)); // no clean close: recovery scans the active segment
    let segment = Path::new("/sim/log/t-0/00000000000000000000.log");
    assert!(sim.contents(segment).is_some());
    sim.fail_reads(segment, 100..200);
    match open(&sim, Durability::Os, &ManualClock::new(T0)) {
        Err(e) => assert!(is_typed(&e), "{e:?}"),
        Ok(log) => {
            let end = log.describe("t").unwrap().partitions[0].end_offset;
            if end > 0 {
                for r in log.fetch("t", 0, 0, 100).unwrap() {
                    assert_eq!(
                        r.value().unwrap().to_vec(),
                        format!("v{}", r.offset()).into_bytes()
                    );
                }
            }
        }
    }
    sim.clear_faults();
    let log = open(&sim, Durability::Os, &ManualClock::new(T0)).unwrap();
    assert_eq!(values(&log, 0).len(), 50);
}
