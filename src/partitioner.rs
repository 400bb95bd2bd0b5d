//! Kafka's default partitioner for keyed records, bit-exact (KAFKA.md §8):
//! `(murmur2(key) & 0x7fffffff) % partitions`.

/// Kafka's `Utils.murmur2` (seed 0x9747b28c), as an `i32`.
///
/// ```
/// assert_eq!(tidelog::murmur2(b"21"), -973932308);
/// assert_eq!(tidelog::murmur2(b"foobar"), -790332482);
/// ```
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    const SEED: u32 = 0x9747_b28c;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        if let Some(b) = tail.get(2) {
            h ^= u32::from(*b) << 16;
        }
        if let Some(b) = tail.get(1) {
            h ^= u32::from(*b) << 8;
        }
        if let Some(b) = tail.first() {
            h ^= u32::from(*b);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key`.
pub(crate) fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    debug_assert!(partitions > 0, "a topic has at least one partition");
    ((murmur2(key) as u32) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_vectors() {
        let v: [(&[u8], i32); 10] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"abc", 479470107),
            (b"", 275646681),
            (b"a", -1563381124),
            (b"key", -1079937367),
            (b"k1", 1684045097),
        ];
        for (k, h) in v {
            assert_eq!(murmur2(k), h, "{:?}", String::from_utf8_lossy(k));
        }
        assert_eq!(partition_for_key(b"21", 50), 40);
        assert_eq!(partition_for_key(b"a-little-bit-long-string", 3), 2);
        assert_eq!(partition_for_key(b"k1", 4), 1);
    }
}
