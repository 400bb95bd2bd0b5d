//! Extending a running CRC-32C by a batch whose own CRC is known, without
//! reading the batch's bytes again.
//!
//! A segment keeps the CRC-32C of its whole `.log` (checked against the
//! checkpoint for sealed segments). A RecordBatch's stored CRC already covers
//! its bytes from `attributes` (byte 21) to its end, so the running CRC is
//! extended by the 21 header bytes directly and then by the rest with
//! CRC arithmetic: `crc(A ‖ B) = crc(A) · x^(8·|B|) mod P  ⊕  crc(B)` (the
//! pre- and post-conditioning of CRC-32C cancel out in this identity, as in
//! zlib's `crc32_combine`). The multiplication by `x^(8·n)` costs a few
//! hundred instructions, against about 0.4 per byte to recompute, so it is
//! used for large batches only, and the operator of the last length is kept.

/// CRC-32C's polynomial, reflected.
const POLY: u32 = 0x82F6_3B78;

/// `a · b mod P` in the reflected representation (bit 31 is `x^0`).
fn mul_mod_p(a: u32, mut b: u32) -> u32 {
    let mut m: u32 = 1 << 31;
    let mut product = 0;
    while m != 0 {
        if a & m != 0 {
            product ^= b;
            if a & (m - 1) == 0 {
                break;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    product
}

/// `x^(8·n) mod P`: the operator that shifts a CRC over `n` zero bytes.
fn shift_operator(n: u64) -> u32 {
    // x^(2^k) mod P, squared at each step, starting from x^8 (one byte).
    let mut square = mul_mod_p(1 << 30, 1 << 30); // x^2
    square = mul_mod_p(square, square); // x^4
    square = mul_mod_p(square, square); // x^8
    let mut operator: u32 = 1 << 31; // x^0
    let mut n = n;
    while n != 0 {
        if n & 1 != 0 {
            operator = mul_mod_p(square, operator);
        }
        square = mul_mod_p(square, square);
        n >>= 1;
    }
    operator
}

/// A running CRC-32C extended by whole batches.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RunningCrc {
    /// The last length shifted over, and its operator.
    cached: Option<(u64, u32)>,
}

/// Below this many bytes a batch is hashed directly (cheaper than a shift).
const EXTEND_BYTES_MIN: usize = 1024;
/// Bytes of a batch header before the part its CRC covers (`attributes`).
const CRC_COVERS_FROM: usize = 21;

impl RunningCrc {
    /// `running` extended by `batch`, whose stored CRC (bytes 17..21,
    /// covering bytes 21..) is `batch_crc`.
    pub(crate) fn extend(&mut self, running: u32, batch: &[u8], batch_crc: u32) -> u32 {
        let (Some(head), true) = (batch.get(..CRC_COVERS_FROM), batch.len() >= EXTEND_BYTES_MIN) else {
            return crc32c::crc32c_append(running, batch);
        };
        let head_crc = crc32c::crc32c_append(running, head);
        let rest = (batch.len() - CRC_COVERS_FROM) as u64;
        let operator = match self.cached {
            Some((len, op)) if len == rest => op,
            _ => {
                let op = shift_operator(rest);
                self.cached = Some((rest, op));
                op
            }
        };
        mul_mod_p(operator, head_crc) ^ batch_crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extending_equals_hashing_the_bytes() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut running_crc = RunningCrc::default();
        let mut all = Vec::new();
        let mut running = 0u32;
        for len in [
            21usize, 22, 100, 1023, 1024, 1025, 4096, 65_536, 65_536, 70_001, 3000,
        ] {
            let batch: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let batch_crc = crc32c::crc32c(batch.get(CRC_COVERS_FROM..).unwrap_or_default());
            running = running_crc.extend(running, &batch, batch_crc);
            all.extend_from_slice(&batch);
            assert_eq!(running, crc32c::crc32c(&all), "after a batch of {len} bytes");
        }
    }

    #[test]
    fn the_shift_operator_matches_the_library_combine() {
        for (a, b, len) in [
            (0u32, 0u32, 1u64),
            (0xdead_beef, 0x1234_5678, 7),
            (1, 2, 65_536),
            (u32::MAX, 5, 1 << 30),
        ] {
            let ours = mul_mod_p(shift_operator(len), a) ^ b;
            assert_eq!(ours, crc32c::crc32c_combine(a, b, len as usize), "len {len}");
        }
    }
}
