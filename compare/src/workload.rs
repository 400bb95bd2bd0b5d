//! The workloads, their sizes, and the records they write.
//!
//! Every record has an 8-byte key (its index, big-endian, so keys are distinct)
//! and a value filled from a cheap PRNG, different for every record, so no
//! engine gains from compressing or deduplicating repeated bytes. All keys and
//! values of a workload live in two buffers generated before any timing starts;
//! each record's key and value are zero-copy `Bytes` slices of them.

use bytes::Bytes;

/// Bytes in every key.
pub const KEY_BYTES: usize = 8;

/// One of the six workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadId {
    W1,
    W2,
    W3,
    W4,
    W5,
    W6,
}

impl WorkloadId {
    pub const ALL: [WorkloadId; 6] = [
        WorkloadId::W1,
        WorkloadId::W2,
        WorkloadId::W3,
        WorkloadId::W4,
        WorkloadId::W5,
        WorkloadId::W6,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WorkloadId::W1 => "W1",
            WorkloadId::W2 => "W2",
            WorkloadId::W3 => "W3",
            WorkloadId::W4 => "W4",
            WorkloadId::W5 => "W5",
            WorkloadId::W6 => "W6",
        }
    }

    pub fn parse(s: &str) -> Option<WorkloadId> {
        WorkloadId::ALL
            .into_iter()
            .find(|w| w.name().eq_ignore_ascii_case(s.trim()))
    }
}

/// The sizes of every workload, already divided by the scale (100 in `--quick`).
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// W1, W2 and W4: records written (W4 reads back what W2 writes).
    pub small_records: usize,
    /// W1, W2, W4, W5 and W6: value bytes.
    pub small_value: usize,
    /// W2 and W4: records per batch.
    pub small_batch: usize,
    /// W3: records written.
    pub large_records: usize,
    /// W3: value bytes.
    pub large_value: usize,
    /// W3: records per batch.
    pub large_batch: usize,
    /// W5: durable appends per thread.
    pub durable_per_thread: usize,
    /// W5: thread counts measured on every engine, then on tidelog alone.
    pub durable_threads: usize,
    pub durable_threads_tidelog: usize,
    /// W6: timed sends (one in flight), after `e2e_warmup` untimed ones.
    pub e2e_sends: usize,
    pub e2e_warmup: usize,
    /// Machine limits: MiB written to the page cache, 1 MiB per call.
    pub limit_write_mib: usize,
    /// Machine limits: 4 KiB appends each followed by fdatasync.
    pub limit_fsync_appends: usize,
    /// Machine limits: bytes per memcpy buffer.
    pub limit_memcpy_bytes: usize,
}

impl Sizes {
    /// The full sizes divided by `scale` (at least 1 of everything; batch sizes
    /// and record sizes are not scaled).
    pub fn scaled(scale: usize) -> Sizes {
        assert!(scale >= 1, "scale must be at least 1");
        let s = |n: usize| (n / scale).max(1);
        Sizes {
            small_records: s(1_000_000),
            small_value: 100,
            small_batch: 100,
            large_records: s(262_144),
            large_value: 1024,
            large_batch: 64,
            durable_per_thread: s(1_000),
            durable_threads: 4,
            durable_threads_tidelog: 16,
            e2e_sends: s(20_000),
            e2e_warmup: s(1_000),
            limit_write_mib: s(512),
            limit_fsync_appends: s(1_000),
            limit_memcpy_bytes: s(256 << 20),
        }
    }
}

/// Keys and values of a workload's records.
#[derive(Debug, Clone)]
pub struct Dataset {
    keys: Bytes,
    values: Bytes,
    count: usize,
    value_bytes: usize,
    value_byte_sum: u64,
}

impl Dataset {
    /// `count` records of `value_bytes` each, the values drawn from a PRNG
    /// seeded with `seed`.
    pub fn generate(count: usize, value_bytes: usize, seed: u64) -> Dataset {
        let mut keys = Vec::with_capacity(count * KEY_BYTES);
        for i in 0..count as u64 {
            keys.extend_from_slice(&i.to_be_bytes());
        }
        let mut values = vec![0u8; count * value_bytes];
        fill_random(&mut values, seed);
        let value_byte_sum = byte_sum(&values);
        Dataset {
            keys: Bytes::from(keys),
            values: Bytes::from(values),
            count,
            value_bytes,
            value_byte_sum,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn value_bytes(&self) -> usize {
        self.value_bytes
    }

    /// The key of record `i`.
    pub fn key(&self, i: usize) -> Bytes {
        self.keys.slice(i * KEY_BYTES..(i + 1) * KEY_BYTES)
    }

    /// The value of record `i`.
    pub fn value(&self, i: usize) -> Bytes {
        self.values
            .slice(i * self.value_bytes..(i + 1) * self.value_bytes)
    }

    /// The sum of every value byte, which a read-back must reproduce.
    pub fn value_byte_sum(&self) -> u64 {
        self.value_byte_sum
    }
}

/// The sum of the bytes of `bytes`, as readers compute it to touch every byte.
pub fn byte_sum(bytes: &[u8]) -> u64 {
    bytes.iter().map(|&b| u64::from(b)).sum()
}

/// Fills `buf` from a xorshift64* generator: cheap, and never a run of zeros.
pub fn fill_random(buf: &mut [u8], seed: u64) {
    let mut state = seed | 1;
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&next_random(&mut state).to_le_bytes());
    }
    let rest = chunks.into_remainder();
    let last = next_random(&mut state).to_le_bytes();
    rest.copy_from_slice(&last[..rest.len()]);
}

fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_differ_and_slices_line_up() {
        let d = Dataset::generate(1000, 100, 7);
        assert_eq!(d.len(), 1000);
        assert_eq!(d.value(3).len(), 100);
        assert_eq!(d.key(3).as_ref(), &3u64.to_be_bytes());
        assert_ne!(d.value(3), d.value(4));
        assert!(d.value(999).iter().any(|&b| b != 0));
        let sum: u64 = (0..1000).map(|i| byte_sum(&d.value(i))).sum();
        assert_eq!(sum, d.value_byte_sum());
    }

    #[test]
    fn quick_sizes_are_a_hundredth() {
        let s = Sizes::scaled(100);
        assert_eq!(s.small_records, 10_000);
        assert_eq!(s.large_records, 2_621);
        assert_eq!(s.durable_per_thread, 10);
        assert_eq!(s.small_batch, 100);
        assert_eq!(Sizes::scaled(1).small_records, 1_000_000);
    }

    #[test]
    fn workload_names_parse() {
        assert_eq!(WorkloadId::parse("w4"), Some(WorkloadId::W4));
        assert_eq!(WorkloadId::parse(" W1"), Some(WorkloadId::W1));
        assert_eq!(WorkloadId::parse("W7"), None);
    }
}
