#![cfg(feature = "internals")]
//! Replays the fuzz corpora as ordinary tests (RELIABILITY.md §3, S6), so CI
//! checks every kept input without a fuzzer: each file of
//! `fuzz/corpus/<target>/` (and of `fuzz/artifacts/<target>/`, where a local
//! fuzz run left crashes) goes through the same `tidelog::fuzzing` function as
//! the cargo-fuzz target. One test per target; each corpus must be non-empty.
//!
//! Bounded allocation: a counting allocator records the largest single
//! allocation made on the test's thread while an input runs; the decoders may
//! allocate only in proportion to their input, never to a length field in it.
//!
//! `regenerate_seeds` (ignored) rewrites the `seed-*` files of every corpus
//! from `tidelog::fuzzing::seeds()`; see `fuzz/README.md`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Forwards to the system allocator and notes the largest request per thread.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| {
        if size > largest.get() {
            largest.set(size);
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments, so the
// `GlobalAlloc` contract is `System`'s; `note` neither allocates nor unwinds.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract, passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file of the target's corpus and artifacts, sorted.
fn inputs(target: &str) -> (Vec<PathBuf>, usize) {
    let mut corpus = Vec::new();
    let mut artifacts = Vec::new();
    for (kind, list) in [("corpus", &mut corpus), ("artifacts", &mut artifacts)] {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("listing a corpus directory").path();
            if path.is_file() {
                list.push(path);
            }
        }
        list.sort();
    }
    let in_corpus = corpus.len();
    corpus.extend(artifacts);
    (corpus, in_corpus)
}

/// Replays every input of `target`; `bound(input)` is the largest single
/// allocation allowed for it.
fn replay(target: &str, bound: fn(&[u8]) -> usize) {
    let started = Instant::now();
    let (files, in_corpus) = inputs(target);
    assert!(
        in_corpus > 0,
        "fuzz/corpus/{target}/ is empty or missing: regenerate the seeds (fuzz/README.md)"
    );
    let mut failures = Vec::new();
    for path in &files {
        let data = std::fs::read(path).expect("reading a corpus file");
        LARGEST.with(|l| l.set(0));
        let outcome = std::panic::catch_unwind(|| {
            assert!(
                tidelog::fuzzing::run(target, &data),
                "unknown fuzz target {target}"
            );
        });
        let largest = LARGEST.with(Cell::get);
        match outcome {
            Err(_) => failures.push(format!("{}: panicked (message above)", path.display())),
            Ok(()) if largest > bound(&data) => failures.push(format!(
                "{}: a single allocation of {largest} bytes for an input of {} bytes (limit {})",
                path.display(),
                data.len(),
                bound(&data)
            )),
            Ok(()) => {}
        }
    }
    common::reliability_report(
        "fuzz_corpus",
        &[
            ("target", target.to_owned()),
            ("inputs", files.len().to_string()),
            ("crashes", failures.len().to_string()),
            ("ms", started.elapsed().as_millis().to_string()),
        ],
    );
    assert!(
        failures.is_empty(),
        "{} of {} inputs of {target} failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// Decoders: allocations in proportion to the input only.
fn proportional(input: &[u8]) -> usize {
    64 * input.len() + 64 * 1024
}

/// Batches: in proportion to the input, except that a batch whose attributes
/// name a codec may decompress: a few bytes of zstd or gzip legitimately
/// expand to megabytes, up to the decompression bound (32 MiB, limits.rs),
/// plus the codec's working memory.
fn batch_bound(input: &[u8]) -> usize {
    let compressed = input.get(22).is_some_and(|a| a & 7 != 0);
    if compressed {
        (32 << 20) + (1 << 20)
    } else {
        proportional(input)
    }
}

/// Directory targets: small files only, so no allocation is large.
fn small_files(_: &[u8]) -> usize {
    8 << 20
}

#[test]
fn decode_batch() {
    replay("decode_batch", batch_bound);
}

#[test]
fn load_index() {
    replay("load_index", small_files);
}

#[test]
fn recover_dir() {
    replay("recover_dir", small_files);
}

#[test]
fn decode_topics() {
    replay("decode_topics", proportional);
}

#[test]
fn decode_checkpoint() {
    replay("decode_checkpoint", proportional);
}

#[test]
fn decode_offset_commit() {
    replay("decode_offset_commit", proportional);
}

#[test]
fn every_target_has_a_test() {
    let tested = [
        "decode_batch",
        "load_index",
        "recover_dir",
        "decode_topics",
        "decode_checkpoint",
        "decode_offset_commit",
    ];
    assert_eq!(tidelog::fuzzing::TARGETS, tested);
}

/// Rewrites the `seed-*` files of every corpus (other files, kept findings of
/// fuzz runs, stay).
#[test]
#[ignore = "writes fuzz/corpus/*/seed-*: run with --ignored to regenerate the seeds"]
fn regenerate_seeds() {
    for target in tidelog::fuzzing::TARGETS {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("creating a corpus directory");
        for entry in std::fs::read_dir(&dir).expect("listing a corpus directory") {
            let path = entry.expect("listing a corpus directory").path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"))
            {
                std::fs::remove_file(&path).expect("removing an old seed");
            }
        }
    }
    let seeds = tidelog::fuzzing::seeds();
    for (target, name, bytes) in &seeds {
        let path = fuzz_dir()
            .join("corpus")
            .join(target)
            .join(format!("seed-{name}"));
        std::fs::write(&path, bytes).expect("writing a seed");
    }
    println!("wrote {} seeds", seeds.len());
}
