//! Power cuts (RELIABILITY.md §3 S2), on the simulated filesystem.
//!
//! As SQLite's TH3 does: a scripted workload runs once to count its mutating
//! file operations T; then, for crash points n < T, it runs again from scratch
//! and the power goes off at operation n. From the frozen disk, K crash images
//! are built (half `Ordered`, half `Reordered`: unsynced writes dropped, kept
//! or torn; directory changes only through a directory fsync). Each image is
//! opened and checked against the promises of RELIABILITY.md §1 for the
//! durability mode; then the same image is recovered again with a second power
//! cut at a random operation of that recovery, and checked once more
//! (compound crashes).
//!
//! Checked on every image:
//! - `open` succeeds (a torn tail never fails it) and nothing panics;
//! - every record present is one that was sent to that topic and partition,
//!   byte for byte, at its acknowledged offset if it was acknowledged; no
//!   read returns `Corrupt`; offsets are contiguous where nothing removes
//!   records (a prefix of what was sent, never a hole);
//! - a `send_batch` group is wholly present or wholly absent;
//! - `Always`: every acknowledged record is present; every mode: every record
//!   acknowledged before a `flush`/`close` that returned, and every record the
//!   durable-only image holds, is present (nothing durable is lost);
//! - a committed position equals the last acknowledged commit or a later sent
//!   one, and is never past the end of the data;
//! - acknowledged topic creations and deletions hold;
//! - records retention or `delete_records` removed (the call returned) never
//!   come back; compaction leaves the latest value of each key;
//! - a second open changes nothing.
//!
//! Quick mode (CI) samples crash points; long mode:
//! `TIDELOG_POWER_CUT_FULL=1 TIDELOG_POWER_CUT_IMAGES=32 cargo test --release
//! --all-features --test power_cut -- --nocapture` tries every operation.
//! A failure prints `TIDELOG_SEED=… TIDELOG_CRASH_AT=…` to replay it.

#![cfg(feature = "internals")]

mod common;

use common::workload::*;
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};
use tidelog::internals::{CrashModel, Sabotage, SimFs};
use tidelog::{Durability, ManualClock};

#[derive(Debug, Default)]
struct Tally {
    crash_points: u64,
    images: u64,
    compound: u64,
    checked: u64,
    lost_beyond_promise: u64,
    corrupt: u64,
    invented: u64,
    panics: u64,
    open_errors: u64,
    failures: Vec<String>,
}

/// Opens an image, checks it, and checks that a second open changes nothing.
fn recover_and_check(
    image: &SimFs,
    seed: u64,
    h: &History,
    durable: Option<&Contents>,
    mode: Durability,
    t: &mut Tally,
    tag: &str,
) -> Option<Contents> {
    let clock = ManualClock::new(T0 + 10_000_000);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let log = match open(image, mode, &clock) {
            Ok(log) => log,
            Err(e) => return Err(format!("open failed: {e}")),
        };
        let r = read_all(&log, seed, h);
        let mut problems = Vec::new();
        let checked = check(&r, h, durable, mode, &mut problems);
        let before = summary(&log);
        log.close().map_err(|e| format!("close failed: {e}"))?;
        drop(log);
        let again = open(image, mode, &clock).map_err(|e| format!("second open failed: {e}"))?;
        let after = summary(&again);
        if before != after {
            problems.push(format!("second open changed {before:?} to {after:?}"));
        }
        drop(again);
        Ok((r, checked, problems))
    }));
    match outcome {
        Err(_) => {
            t.panics += 1;
            t.failures.push(format!("{tag}: panic"));
            None
        }
        Ok(Err(e)) => {
            t.open_errors += 1;
            t.failures.push(format!("{tag}: {e}"));
            None
        }
        Ok(Ok((r, checked, problems))) => {
            t.checked += checked;
            t.corrupt += r.corrupt;
            t.invented += r.invented;
            let lost = problems.iter().filter(|p| p.starts_with("lost")).count() as u64;
            t.lost_beyond_promise += lost;
            for p in problems {
                t.failures.push(format!("{tag}: {p}"));
            }
            Some(r.contents)
        }
    }
}

/// The suite for one durability mode over both workloads; its tally.
fn suite(mode: Durability) {
    let t = run_suite(mode, None, None);
    for f in t.failures.iter().take(20) {
        eprintln!("FAIL {f}");
    }
    assert!(
        t.failures.is_empty(),
        "{} violations, first: {}",
        t.failures.len(),
        t.failures[0]
    );
    assert!(t.checked > 0, "no acknowledged record was checked");
}

fn run_suite(mode: Durability, sabotage: Option<Sabotage>, points_override: Option<u64>) -> Tally {
    let full = std::env::var_os("TIDELOG_POWER_CUT_FULL").is_some();
    let images = env_u64("TIDELOG_POWER_CUT_IMAGES").unwrap_or(4).max(2);
    let points = match points_override {
        Some(p) => p,
        None if full => u64::MAX,
        None => env_u64("TIDELOG_POWER_CUT_POINTS").unwrap_or(12),
    };
    let seed0 = env_u64("TIDELOG_SEED").unwrap_or(0x5eed);
    let only_at = env_u64("TIDELOG_CRASH_AT");
    let started = Instant::now();
    let mut t = Tally::default();
    let only_maintenance = std::env::var_os("TIDELOG_POWER_CUT_MAINTENANCE_ONLY").is_some();
    for (w, kind) in [Kind::Basic, Kind::Maintenance].into_iter().enumerate() {
        if only_maintenance && kind == Kind::Basic {
            continue;
        }
        let seed = seed0.wrapping_add(w as u64 * 7919);
        let steps = script(seed, kind, if full { 160 } else { 70 });
        let (whole, h) = run_workload(seed, mode, &steps, None, sabotage);
        let total = whole.op_count();
        assert!(total > 100, "the workload made only {total} operations");
        assert!(!h.acked.is_empty());
        let stride = (total / points.min(total)).max(1);
        let mut rng = Rng(seed ^ 0xc4a5);
        let crash_points: Vec<u64> = match only_at {
            Some(n) => vec![n],
            None => (0..total)
                .step_by(stride as usize)
                .map(|n| (n + rng.below(stride)).min(total - 1))
                .collect(),
        };
        for n in crash_points {
            let (disk, h) = run_workload(seed, mode, &steps, Some(n), sabotage);
            t.crash_points += 1;
            let replay = format!(
                "TIDELOG_SEED={seed0:#x} TIDELOG_CRASH_AT={n} mode={}",
                mode_name(mode)
            );
            let durable = disk.durable_image();
            let d = recover_and_check(
                &durable,
                seed,
                &h,
                None,
                mode,
                &mut t,
                &format!("{replay} durable"),
            );
            for k in 0..images {
                let model = if k % 2 == 0 {
                    CrashModel::Ordered
                } else {
                    CrashModel::Reordered
                };
                let image_seed = seed ^ (n << 8) ^ k;
                let tag = format!("{replay} image={k} {model:?}");
                let image = disk.crash_image(model, image_seed);
                t.images += 1;
                recover_and_check(&image, seed, &h, d.as_ref(), mode, &mut t, &tag);
                // A second cut during the recovery of the same image.
                let probe = disk.crash_image(model, image_seed);
                let ops_before = probe.op_count();
                let clock = ManualClock::new(T0 + 20_000_000);
                if let Ok(log) = open(&probe, mode, &clock) {
                    let _ = log.close();
                }
                let recovery_ops = probe.op_count() - ops_before;
                let again = disk.crash_image(model, image_seed);
                again.crash_at(again.op_count() + rng.below(recovery_ops + 1));
                let _ = catch_unwind(AssertUnwindSafe(|| {
                    if let Ok(log) = open(&again, mode, &clock) {
                        drop(log);
                    }
                }));
                let second = again.crash_image(model, image_seed.rotate_left(17));
                t.compound += 1;
                recover_and_check(
                    &second,
                    seed,
                    &h,
                    d.as_ref(),
                    mode,
                    &mut t,
                    &format!("{tag} compound"),
                );
            }
        }
    }
    let secs = started.elapsed().as_secs();
    if sabotage.is_some() {
        return t;
    }
    common::reliability_report(
        "power_cut",
        &[
            ("mode", mode_name(mode).into()),
            ("crash_points", t.crash_points.to_string()),
            ("images", t.images.to_string()),
            ("compound", t.compound.to_string()),
            ("checked", t.checked.to_string()),
            ("lost_beyond_promise", t.lost_beyond_promise.to_string()),
            ("corrupt", t.corrupt.to_string()),
            ("invented", t.invented.to_string()),
            ("panics", t.panics.to_string()),
            ("open_errors", t.open_errors.to_string()),
            ("seed", format!("{seed0:#x}")),
            ("secs", secs.to_string()),
        ],
    );
    t
}

#[test]
fn power_cut_always() {
    suite(Durability::Always);
}

#[test]
fn power_cut_os() {
    suite(Durability::Os);
}

#[test]
fn power_cut_interval() {
    suite(Durability::Interval(Duration::from_millis(5)));
}

/// Negative controls: a disk that skips file fsyncs, or directory fsyncs,
/// must make the suite report losses (a suite that passes is broken).
#[test]
fn power_cut_detects_skipped_fsyncs() {
    for sabotage in [Sabotage::SkipFileSync, Sabotage::SkipDirSync] {
        let t = run_suite(Durability::Always, Some(sabotage), Some(3));
        assert!(
            t.lost_beyond_promise > 0 || t.open_errors > 0,
            "{sabotage:?}: the suite saw no loss: {t:?}"
        );
    }
}

/// The simulator itself: unsynced data is gone after a cut, synced data and
/// directory entries stay, and a failed fsync's data never becomes durable.
#[test]
fn simfs_keeps_only_what_was_synced() {
    use tidelog::internals::{FaultKind, Persistence, Vfs};
    let sim = SimFs::new().with_dir("/d");
    let dir = Path::new("/d");
    let a = sim.create_new(&dir.join("a")).unwrap();
    a.write_all_at(b"hello", 0).unwrap();
    a.sync_data().unwrap();
    // Data synced but the name is not: the file is gone.
    let image = sim.durable_image();
    assert!(!image.exists(&dir.join("a")).unwrap());
    sim.sync_dir(dir).unwrap();
    a.write_all_at(b" world", 5).unwrap();
    let image = sim.durable_image();
    assert_eq!(image.read(&dir.join("a")).unwrap(), b"hello");
    // Some image keeps the unsynced write, some drops it.
    let kept: BTreeSet<Vec<u8>> = (0..32)
        .map(|s| {
            sim.crash_image(CrashModel::Reordered, s)
                .read(&dir.join("a"))
                .unwrap()
        })
        .collect();
    assert!(kept.contains(b"hello".as_slice()) && kept.contains(b"hello world".as_slice()));
    // A failed fsync: readable, never durable, even after a later good fsync.
    sim.fail_at(sim.op_count(), FaultKind::SyncEio, Persistence::Once);
    assert!(a.sync_data().is_err());
    assert_eq!(sim.contents(dir.join("a")).unwrap(), b"hello world");
    a.sync_data().unwrap();
    assert_eq!(sim.durable_image().read(&dir.join("a")).unwrap(), b"hello");
    // A rename is atomic and durable only through the directory fsync.
    let b = sim.create_new(&dir.join("b.tmp")).unwrap();
    b.write_all_at(b"new", 0).unwrap();
    b.sync_data().unwrap();
    sim.rename(&dir.join("b.tmp"), &dir.join("a")).unwrap();
    assert_eq!(sim.durable_image().read(&dir.join("a")).unwrap(), b"hello");
    sim.sync_dir(dir).unwrap();
    assert_eq!(sim.durable_image().read(&dir.join("a")).unwrap(), b"new");
    // After the cut nothing changes.
    sim.crash_now();
    assert!(a.write_all_at(b"x", 0).is_err());
}
