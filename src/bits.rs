//! The bit convention, written once (its WGSL twin is the header of `shaders/bitpack.wgsl`):
//!
//! * a **set bit means −1**, a clear bit means +1; `sign(x) = +1 if x ≥ 0 else −1`, so 0.0 and −0.0
//!   pack as +1 (and NaN as +1: the IEEE comparison `x < 0` is false for it);
//! * element `i` of a 32-element group is **bit `i`** of its word (LSB first);
//! * a row of `C` values packs into `ceil(C/32)` words; **tail bits** past `C` are 0 in every operand;
//! * a binary dot product of true depth `K` is `dot = K − 2·popcount(a XOR w)`;
//! * activations are NHWC packed along channels, conv weights OHWI packed along input channels,
//!   dense weights `[out][ceil(in/32)]`.

/// Words that hold `channels` bits.
pub fn words(channels: usize) -> usize {
    channels.div_ceil(32)
}

/// The sign bit of the convention: true (−1) iff `x < 0` under IEEE rules.
pub fn is_negative(x: f32) -> bool {
    x < 0.0
}

/// Packs each row of `channels` values into `words(channels)` words.
///
/// ```
/// use bnn_transfer::bits::{pack_rows, unpack_rows};
/// // A set bit is −1; 0.0 counts as +1; tail bits past the 3 channels stay 0.
/// let packed = pack_rows(&[-0.5, 0.0, 2.0, 1.0, -1.0, -3.0], 3);
/// assert_eq!(packed, vec![0b001, 0b110]);
/// assert_eq!(unpack_rows(&packed, 3), vec![-1.0, 1.0, 1.0, 1.0, -1.0, -1.0]);
/// ```
pub fn pack_rows(values: &[f32], channels: usize) -> Vec<u32> {
    assert!(
        channels > 0 && values.len().is_multiple_of(channels),
        "values must be whole rows"
    );
    let words_per_row = words(channels);
    let mut out = vec![0u32; values.len() / channels * words_per_row];
    for (row, chunk) in values.chunks_exact(channels).enumerate() {
        for (c, &x) in chunk.iter().enumerate() {
            if is_negative(x) {
                out[row * words_per_row + c / 32] |= 1 << (c % 32);
            }
        }
    }
    out
}

/// Unpacks rows of packed words back to ±1.0.
pub fn unpack_rows(packed: &[u32], channels: usize) -> Vec<f32> {
    let words_per_row = words(channels);
    assert!(
        packed.len().is_multiple_of(words_per_row),
        "packed must be whole rows"
    );
    let rows = packed.len() / words_per_row;
    let mut out = Vec::with_capacity(rows * channels);
    for row in packed.chunks_exact(words_per_row) {
        for c in 0..channels {
            let bit = (row[c / 32] >> (c % 32)) & 1;
            out.push(if bit == 1 { -1.0 } else { 1.0 });
        }
    }
    out
}

/// ±1 value of the sign convention.
pub fn sign(x: f32) -> f32 {
    if is_negative(x) { -1.0 } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_negative_zero_and_nan_pack_as_plus_one() {
        let v = [
            0.0,
            -0.0,
            f32::NAN,
            -f32::NAN,
            -1e-30,
            f32::NEG_INFINITY,
            f32::INFINITY,
            2.0,
        ];
        let packed = pack_rows(&v, v.len());
        assert_eq!(packed, vec![0b0011_0000]);
    }

    #[test]
    fn lsb_first_and_tail_bits_clear() {
        let mut v = vec![1.0f32; 33];
        v[0] = -1.0;
        v[31] = -1.0;
        v[32] = -1.0;
        assert_eq!(pack_rows(&v, 33), vec![0x8000_0001, 0x1]);
        assert_eq!(unpack_rows(&pack_rows(&v, 33), 33), v);
    }
}
