// Bit-packing of f32 values into u32 words along the innermost (channel) axis.
//
// The bit convention, used by every kernel, file and test of bnn-transfer:
//   * a SET bit means -1, a CLEAR bit means +1; sign(x) = +1 for x >= 0, so 0.0 and -0.0 pack as +1;
//   * element i of a 32-element group is bit i of its word (LSB first);
//   * a row of C values packs into ceil(C/32) words; tail bits past C are 0 in every operand,
//     so they never count in XOR/popcount;
//   * a binary dot product of depth K is  dot = K - 2 * popcount(a XOR w).
//
// "x < 0" is evaluated on the IEEE bits rather than with a float comparison, so that drivers that
// assume no NaNs cannot change it: -0.0 -> +1, NaN (any sign) -> +1, -inf -> -1.

struct Params {
    rows: u32,      // number of rows (pixels, or output channels x taps for weights)
    channels: u32,  // values per row
    words: u32,     // ceil(channels / 32)
    _pad: u32,
}

override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> packed: array<u32>;

fn is_negative(x: f32) -> bool {
    let b = bitcast<u32>(x);
    let magnitude = b & 0x7fffffffu;
    return (b >> 31u) == 1u && magnitude != 0u && magnitude <= 0x7f800000u;
}

@compute @workgroup_size(WG)
fn pack(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * groups.x) * WG + lid;
    if (idx >= p.rows * p.words) {
        return;
    }
    let row = idx / p.words;
    let c0 = (idx % p.words) * 32u;
    let n = min(32u, p.channels - c0);
    let base = row * p.channels + c0;
    var word = 0u;
    for (var i = 0u; i < n; i++) {
        if (is_negative(values[base + i])) {
            word |= 1u << i;
        }
    }
    packed[idx] = word;
}
