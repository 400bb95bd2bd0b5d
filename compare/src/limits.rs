//! The machine's own limits, measured with plain system calls in the same run
//! as the engines, so every engine's number can be read against what the
//! hardware allows:
//! - buffered sequential writes of fresh pages to the page cache (1 MiB
//!   `write` calls to a new file, no fsync; the best of three passes);
//! - the latency of a 4 KiB append followed by fdatasync;
//! - group-committed fdatasync appends: threads append to one file and one
//!   fdatasync covers every append written before it started;
//! - memcpy bandwidth.

use crate::stats::percentile;
use crate::workload::fill_random;
use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::sync::{Barrier, Condvar, Mutex};
use std::time::Instant;

/// Bytes per `write` call of the bandwidth probe.
const WRITE_CHUNK: usize = 1 << 20;
/// Bytes per append of the fdatasync latency probe.
const FSYNC_APPEND: usize = 4096;
/// Copies of the memcpy buffer per measurement.
const MEMCPY_ROUNDS: usize = 4;

/// Write bandwidth to the page cache, in MB/s (10^6 bytes): the best of
/// `WRITE_PASSES` passes, each a fresh file of `mib` MiB. One pass is not
/// enough on a virtual machine: how fast the kernel gets pages for the page
/// cache depends on what the guest touched before (the first touch of guest
/// memory is slow), which swung single passes from 240 to 3,658 MB/s here.
pub fn write_bandwidth(dir: &Path, mib: usize) -> f64 {
    (0..WRITE_PASSES)
        .map(|pass| write_pass(dir, mib, pass))
        .fold(0.0, f64::max)
}

/// Passes of the write-bandwidth probe; the best counts.
const WRITE_PASSES: u64 = 3;

fn write_pass(dir: &Path, mib: usize, pass: u64) -> f64 {
    let mut chunk = vec![0u8; WRITE_CHUNK];
    fill_random(&mut chunk, 0x11 + pass);
    let path = dir.join("write-bandwidth.probe");
    let mut file = File::create(&path).expect("limits: create the write probe");
    let start = Instant::now();
    for i in 0..mib {
        // Vary the first bytes so no two chunks are identical.
        chunk[..8].copy_from_slice(&(i as u64).to_le_bytes());
        file.write_all(&chunk).expect("limits: write");
    }
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(&path).expect("limits: remove the write probe");
    (mib * WRITE_CHUNK) as f64 / elapsed.as_secs_f64() / 1e6
}

/// Latency of a 4 KiB append followed by fdatasync, `appends` times: (p50, p99)
/// in microseconds.
pub fn fdatasync_latency(dir: &Path, appends: usize) -> (f64, f64) {
    let mut block = vec![0u8; FSYNC_APPEND];
    fill_random(&mut block, 0x22);
    let path = dir.join("fdatasync.probe");
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .expect("limits: create the fdatasync probe");
    let mut latencies = Vec::with_capacity(appends);
    for _ in 0..appends {
        let start = Instant::now();
        file.write_all(&block).expect("limits: append");
        file.sync_data().expect("limits: fdatasync");
        latencies.push(start.elapsed().as_nanos() as u64);
    }
    drop(file);
    std::fs::remove_file(&path).expect("limits: remove the fdatasync probe");
    latencies.sort_unstable();
    let us = |ns: u64| ns as f64 / 1e3;
    (us(percentile(&latencies, 0.5)), us(percentile(&latencies, 0.99)))
}

/// Appends written and made durable, shared by the group-commit threads.
#[derive(Debug, Default)]
struct GroupState {
    /// Appends written to the file so far.
    written: u64,
    /// Appends covered by a finished fdatasync.
    synced: u64,
    /// Whether some thread is running an fdatasync now.
    syncing: bool,
}

/// Group-committed durable appends per second: `threads` threads each append
/// `per_thread` blocks of `append_bytes` to one file and wait until an
/// fdatasync started after their append finishes. Whoever finds no fdatasync
/// running starts one covering everything written so far (the leader); the
/// others wait for it.
pub fn group_commit(dir: &Path, threads: usize, per_thread: usize, append_bytes: usize) -> f64 {
    let path = dir.join("group-commit.probe");
    let file = Mutex::new(
        OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .expect("limits: create the group-commit probe"),
    );
    // A second handle, so the fdatasync runs without holding the writers' lock.
    let sync_handle = File::open(&path).expect("limits: open the group-commit probe");
    let state = Mutex::new(GroupState::default());
    let synced = Condvar::new();
    let barrier = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|s| {
        for t in 0..threads {
            let (file, state, synced, barrier, sync_handle) =
                (&file, &state, &synced, &barrier, &sync_handle);
            s.spawn(move || {
                let mut block = vec![0u8; append_bytes];
                fill_random(&mut block, 0x33 + t as u64);
                barrier.wait();
                for _ in 0..per_thread {
                    file.lock()
                        .expect("limits: file lock")
                        .write_all(&block)
                        .expect("limits: append");
                    let mut st = state.lock().expect("limits: state lock");
                    st.written += 1;
                    let mine = st.written;
                    while st.synced < mine {
                        if st.syncing {
                            st = synced.wait(st).expect("limits: wait for the fdatasync");
                            continue;
                        }
                        st.syncing = true;
                        let target = st.written;
                        drop(st);
                        sync_handle.sync_data().expect("limits: fdatasync");
                        st = state.lock().expect("limits: state lock");
                        st.synced = target;
                        st.syncing = false;
                        synced.notify_all();
                    }
                }
            });
        }
        barrier.wait();
        Instant::now()
    })
    .elapsed();
    std::fs::remove_file(&path).expect("limits: remove the group-commit probe");
    (threads * per_thread) as f64 / elapsed.as_secs_f64()
}

/// memcpy bandwidth between two buffers of `bytes`, in GB/s (10^9 bytes).
pub fn memcpy_bandwidth(bytes: usize) -> f64 {
    let mut src = vec![0u8; bytes];
    fill_random(&mut src, 0x44);
    // Touch every page of the destination first, so the copy does not fault.
    let mut dst = vec![1u8; bytes];
    let start = Instant::now();
    for round in 0..MEMCPY_ROUNDS {
        src[0] = round as u8;
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
    }
    let elapsed = start.elapsed();
    (bytes * MEMCPY_ROUNDS) as f64 / elapsed.as_secs_f64() / 1e9
}
