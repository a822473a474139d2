// XNOR/popcount 2-D convolution on packed activations and packed weights.
//
//   input   [N][H][W][WORDS]        u32, channels packed LSB first, set bit = -1 (see bitpack.wgsl)
//   weights [O][KH][KW][WORDS]      u32 (OHWI packed along input channels)
//   conv_dot:  out [N][OH][OW][O]   i32 dot products   dot = K - 2 * popcount(a XOR w)
//   conv_bits: out [N][OH][OW][ceil(O/32)] packed signs of the fused output transform
//
// Padding. Zero padding (burn's, the default) contributes 0 to the float sum, so out-of-image taps
// are skipped and K counts only the valid taps of each output pixel: K = valid_taps * C.
// One padding (ONE_PAD) treats out-of-image activations as +1 (bit 0): every tap counts.
//
// Fused output transform (batch norm + sign folded at export): channel o outputs +1 when
//   mode 0:  dot >= t      (gamma > 0)
//   mode 1:  dot <= t      (gamma < 0)
// and -1 otherwise; a constant channel (gamma = 0) is mode 0 with t = i32 min (always +1) or max.

struct Params {
    batch: u32, in_h: u32, in_w: u32, in_c: u32,
    out_h: u32, out_w: u32, out_c: u32, stride: u32,
    pad: u32, _a: u32, _b: u32, _c: u32,
}

struct Threshold {
    t: i32,
    mode: u32,
}

override WG: u32 = 64u;
override WORDS: u32 = 1u;   // words per input pixel = ceil(in_c / 32)
override KH: u32 = 3u;
override KW: u32 = 3u;
override ONE_PAD: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read> weights: array<u32>;
@group(0) @binding(3) var<storage, read_write> output: array<u32>;   // i32 dots (bitcast) or packed bits
@group(0) @binding(4) var<storage, read> thresholds: array<Threshold>;

fn dot_at(n: u32, oy: u32, ox: u32, o: u32) -> i32 {
    var mismatches = 0u;
    var taps = 0u;
    let iy0 = i32(oy * p.stride) - i32(p.pad);
    let ix0 = i32(ox * p.stride) - i32(p.pad);
    for (var ky = 0u; ky < KH; ky++) {
        let iy = iy0 + i32(ky);
        let row_inside = iy >= 0 && iy < i32(p.in_h);
        for (var kx = 0u; kx < KW; kx++) {
            let ix = ix0 + i32(kx);
            let w_base = ((o * KH + ky) * KW + kx) * WORDS;
            if (row_inside && ix >= 0 && ix < i32(p.in_w)) {
                let a_base = ((n * p.in_h + u32(iy)) * p.in_w + u32(ix)) * WORDS;
                for (var w = 0u; w < WORDS; w++) {
                    mismatches += countOneBits(input[a_base + w] ^ weights[w_base + w]);
                }
                taps += 1u;
            } else if (ONE_PAD) {
                for (var w = 0u; w < WORDS; w++) {
                    mismatches += countOneBits(weights[w_base + w]);
                }
                taps += 1u;
            }
        }
    }
    return i32(taps * p.in_c) - 2 * i32(mismatches);
}

@compute @workgroup_size(WG)
fn conv_dot(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * groups.x) * WG + lid;
    if (idx >= p.batch * p.out_h * p.out_w * p.out_c) {
        return;
    }
    let o = idx % p.out_c;
    let pixel = idx / p.out_c;
    let ox = pixel % p.out_w;
    let oy = (pixel / p.out_w) % p.out_h;
    let n = pixel / (p.out_w * p.out_h);
    output[idx] = bitcast<u32>(dot_at(n, oy, ox, o));
}

fn plus_one(v: i32, th: Threshold) -> bool {
    return select(v >= th.t, v <= th.t, th.mode == 1u);
}

@compute @workgroup_size(WG)
fn conv_bits(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let out_words = (p.out_c + 31u) / 32u;
    let idx = (wid.x + wid.y * groups.x) * WG + lid;
    if (idx >= p.batch * p.out_h * p.out_w * out_words) {
        return;
    }
    let o0 = (idx % out_words) * 32u;
    let pixel = idx / out_words;
    let ox = pixel % p.out_w;
    let oy = (pixel / p.out_w) % p.out_h;
    let n = pixel / (p.out_w * p.out_h);
    var word = 0u;
    for (var j = 0u; j < min(32u, p.out_c - o0); j++) {
        if (!plus_one(dot_at(n, oy, ox, o0 + j), thresholds[o0 + j])) {
            word |= 1u << j;
        }
    }
    output[idx] = word;
}
