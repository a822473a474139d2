// XNOR/popcount 2-D convolution on packed activations and packed weights, as a tiled implicit GEMM.
//
//   input   [N][H][W][WORDS]        u32, channels packed LSB first, set bit = -1 (see bitpack.wgsl)
//   weights [O][KH][KW][WORDS]      u32 (OHWI packed along input channels)
//   conv_dot:  out [N][OH][OW][O]   i32 dot products   dot = K - 2 * popcount(a XOR w)
//   conv_bits: out [N][OH][OW][ceil(O/32)] packed signs of the fused output transform
//
// GEMM view: rows m = output pixels (n, oy, ox), columns o = output channels, depth k = (ky, kx,
// word), so row o of the weights is simply the contiguous K_WORDS = KH*KW*WORDS words of channel o.
// A workgroup owns a TILE_M x TILE_N block of outputs (TILE_M = WG_M*RM pixels, TILE_N = WG_N*RN
// channels) and walks the depth in slices of KC words: each slice of the activations (gathered from
// the image, im2col on the fly) and of the weights is staged in workgroup memory as vec4<u32>, then
// every invocation accumulates its RM x RN = 4 x 4 outputs in registers. Pixels and channels of one
// invocation are strided by WG_M / WG_N so neighbouring invocations write neighbouring channels.
//
// Padding. Zero padding (burn's, the default) contributes 0 to the float sum, so out-of-image taps
// are skipped and K counts only the valid taps of each output pixel: K = valid_taps * C. The tile
// stores a mask word next to each activation word (all ones inside the image, 0 outside) and the
// kernel counts popcount((a ^ w) & mask); MASKED is off when no tap can leave the image (pad = 0)
// or under one padding (ONE_PAD), which treats out-of-image activations as +1 (bit 0, every tap
// counts).
//
// Fused output transform (batch norm + sign folded at export): channel o outputs +1 when
//   mode 0:  dot >= t      (gamma > 0)
//   mode 1:  dot <= t      (gamma < 0)
// and -1 otherwise; a constant channel (gamma = 0) is mode 0 with t = i32 min (always +1) or max.
// TILE_N is a multiple of 32, so the bits of a tile's words are gathered in workgroup memory
// (atomicOr) and each word is written once. Where the device has subgroups, xnor_conv_subgroup.wgsl
// (appended to this file) gathers them with subgroup ballots instead.

struct Params {
    batch: u32, in_h: u32, in_w: u32, in_c: u32,
    out_h: u32, out_w: u32, out_c: u32, stride: u32,
    pad: u32, _a: u32, _b: u32, _c: u32,
}

struct Threshold {
    t: i32,
    mode: u32,
}

override WORDS: u32 = 1u;   // words per input pixel = ceil(in_c / 32)
override KH: u32 = 3u;
override KW: u32 = 3u;
override ONE_PAD: bool = false;
override MASKED: bool = true;   // zero padding with pad > 0: out-of-image taps must be masked
override WG_M: u32 = 16u;       // invocations along pixels
override WG_N: u32 = 16u;       // invocations along channels
override KC: u32 = 16u;         // depth slice in words, a multiple of 4

const RM: u32 = 4u;             // pixels per invocation
const RN: u32 = 4u;             // channels per invocation

override WG: u32 = WG_M * WG_N;
override TILE_M: u32 = WG_M * RM;
override TILE_N: u32 = WG_N * RN;
override KQ: u32 = KC / 4u;                  // vec4 steps per slice
override K_WORDS: u32 = KH * KW * WORDS;     // depth of one weight row
override A_LEN: u32 = KQ * TILE_M;
override B_LEN: u32 = KQ * TILE_N;
override BITS_LEN: u32 = TILE_M * TILE_N / 32u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read> weights: array<u32>;
@group(0) @binding(3) var<storage, read_write> output: array<u32>;   // i32 dots (bitcast) or packed bits
@group(0) @binding(4) var<storage, read> thresholds: array<Threshold>;

var<workgroup> a_tile: array<vec4<u32>, A_LEN>;   // [KQ][TILE_M] activation words
var<workgroup> m_tile: array<vec4<u32>, A_LEN>;   // [KQ][TILE_M] their masks (MASKED only)
var<workgroup> b_tile: array<vec4<u32>, B_LEN>;   // [KQ][TILE_N] weight words
var<workgroup> bits: array<atomic<u32>, BITS_LEN>;
var<workgroup> pix: array<vec4<i32>, TILE_M>;     // per tile row: (n * in_h, iy0, ix0, inside the batch)

struct Tile {
    m0: u32,
    n0: u32,
    valid: bool,
}

fn tile_of(wid: vec3<u32>, groups: vec3<u32>) -> Tile {
    let m_total = p.batch * p.out_h * p.out_w;
    let m_tiles = (m_total + TILE_M - 1u) / TILE_M;
    let n_tiles = (p.out_c + TILE_N - 1u) / TILE_N;
    let t = wid.x + wid.y * groups.x;
    return Tile((t % m_tiles) * TILE_M, (t / m_tiles) * TILE_N, t < m_tiles * n_tiles);
}

// Decodes the tile's output pixels once, so staging needs no division by runtime sizes.
fn decode_pixels(m0: u32, lid: u32) {
    let m_total = p.batch * p.out_h * p.out_w;
    for (var e = lid; e < TILE_M; e += WG) {
        let m = m0 + e;
        let ox = m % p.out_w;
        let oy = (m / p.out_w) % p.out_h;
        let n = m / (p.out_w * p.out_h);
        pix[e] = vec4<i32>(
            i32(n * p.in_h),
            i32(oy * p.stride) - i32(p.pad),
            i32(ox * p.stride) - i32(p.pad),
            select(0, 1, m < m_total),
        );
    }
    workgroupBarrier();
}

// Stages depth slice [k0, k0 + KC) of the tile's activations and weights. Neighbouring
// invocations take neighbouring vec4s of one pixel (contiguous words of one tap).
fn stage(m0: u32, n0: u32, k0: u32, lid: u32) {
    for (var e = lid; e < A_LEN; e += WG) {
        let kq = e % KQ;
        let ml = e / KQ;
        let px = pix[ml];
        var a = vec4<u32>(0u);
        var mask = vec4<u32>(0u);
        if (px.w != 0) {
            for (var c = 0u; c < 4u; c++) {
                let k = k0 + kq * 4u + c;
                if (k < K_WORDS) {
                    let tap = k / WORDS;
                    let iy = px.y + i32(tap / KW);
                    let ix = px.z + i32(tap % KW);
                    if (iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w)) {
                        a[c] = input[(u32(px.x + iy) * p.in_w + u32(ix)) * WORDS + k % WORDS];
                        mask[c] = 0xffffffffu;
                    }
                }
            }
        }
        a_tile[kq * TILE_M + ml] = a;
        if (MASKED) {
            m_tile[kq * TILE_M + ml] = mask;
        }
    }
    for (var e = lid; e < B_LEN; e += WG) {
        let kq = e % KQ;
        let nl = e / KQ;
        let o = n0 + nl;
        let k = k0 + kq * 4u;
        var w = vec4<u32>(0u);
        if (o < p.out_c) {
            let row = o * K_WORDS;
            for (var c = 0u; c < 4u; c++) {
                if (k + c < K_WORDS) {
                    w[c] = weights[row + k + c];
                }
            }
        }
        b_tile[kq * TILE_N + nl] = w;
    }
}

fn popcount4(v: vec4<u32>) -> u32 {
    let c = countOneBits(v);
    return (c.x + c.y) + (c.z + c.w);
}

fn row4(a: vec4<u32>, mask: vec4<u32>, w0: vec4<u32>, w1: vec4<u32>, w2: vec4<u32>, w3: vec4<u32>) -> vec4<u32> {
    if (MASKED) {
        return vec4<u32>(
            popcount4((a ^ w0) & mask), popcount4((a ^ w1) & mask),
            popcount4((a ^ w2) & mask), popcount4((a ^ w3) & mask),
        );
    }
    return vec4<u32>(popcount4(a ^ w0), popcount4(a ^ w1), popcount4(a ^ w2), popcount4(a ^ w3));
}

// Mismatch counts of the invocation's 4 x 4 outputs over the whole depth: row i holds pixel
// tm + i*WG_M, component j channel tn + j*WG_N. Registers are named, not indexed, so no driver
// has to keep them in scratch memory.
fn accumulate(tile: Tile, lid: u32, tm: u32, tn: u32) -> array<vec4<u32>, 4> {
    var acc0 = vec4<u32>(0u);
    var acc1 = vec4<u32>(0u);
    var acc2 = vec4<u32>(0u);
    var acc3 = vec4<u32>(0u);
    let no_mask = vec4<u32>(0xffffffffu);
    decode_pixels(tile.m0, lid);
    for (var k0 = 0u; k0 < K_WORDS; k0 += KC) {
        stage(tile.m0, tile.n0, k0, lid);
        workgroupBarrier();
        for (var kq = 0u; kq < KQ; kq++) {
            let ab = kq * TILE_M + tm;
            let bb = kq * TILE_N + tn;
            let w0 = b_tile[bb];
            let w1 = b_tile[bb + WG_N];
            let w2 = b_tile[bb + 2u * WG_N];
            let w3 = b_tile[bb + 3u * WG_N];
            var m0 = no_mask;
            var m1 = no_mask;
            var m2 = no_mask;
            var m3 = no_mask;
            if (MASKED) {
                m0 = m_tile[ab];
                m1 = m_tile[ab + WG_M];
                m2 = m_tile[ab + 2u * WG_M];
                m3 = m_tile[ab + 3u * WG_M];
            }
            acc0 += row4(a_tile[ab], m0, w0, w1, w2, w3);
            acc1 += row4(a_tile[ab + WG_M], m1, w0, w1, w2, w3);
            acc2 += row4(a_tile[ab + 2u * WG_M], m2, w0, w1, w2, w3);
            acc3 += row4(a_tile[ab + 3u * WG_M], m3, w0, w1, w2, w3);
        }
        workgroupBarrier();
    }
    return array<vec4<u32>, 4>(acc0, acc1, acc2, acc3);
}

// The number of taps of output pixel m that count in K.
fn taps_at(m: u32) -> u32 {
    if (!MASKED) {
        return KH * KW;
    }
    let ox = m % p.out_w;
    let oy = (m / p.out_w) % p.out_h;
    let y0 = i32(oy * p.stride) - i32(p.pad);
    let x0 = i32(ox * p.stride) - i32(p.pad);
    let ky = min(i32(p.in_h) - y0, i32(KH)) - max(-y0, 0);
    let kx = min(i32(p.in_w) - x0, i32(KW)) - max(-x0, 0);
    return u32(max(ky, 0) * max(kx, 0));
}

@compute @workgroup_size(WG_N, WG_M)
fn conv_dot(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = tile_of(wid, groups);
    if (!tile.valid) {
        return;
    }
    let acc = accumulate(tile, lid, local.y, local.x);
    let m_total = p.batch * p.out_h * p.out_w;
    for (var i = 0u; i < RM; i++) {
        let m = tile.m0 + local.y + i * WG_M;
        if (m >= m_total) {
            continue;
        }
        let k = i32(taps_at(m) * p.in_c);
        for (var j = 0u; j < RN; j++) {
            let o = tile.n0 + local.x + j * WG_N;
            if (o < p.out_c) {
                output[m * p.out_c + o] = bitcast<u32>(k - 2 * i32(acc[i][j]));
            }
        }
    }
}

fn plus_one(v: i32, th: Threshold) -> bool {
    return select(v >= th.t, v <= th.t, th.mode == 1u);
}

// The fused epilogue through workgroup memory: every invocation atomicOrs its -1 bits into the
// block's words, then each word is written once. `bits` must have been zeroed before the barriers
// of accumulate.
fn store_bits(tile: Tile, acc: array<vec4<u32>, 4>, local: vec3<u32>, lid: u32) {
    let m_total = p.batch * p.out_h * p.out_w;
    let words_per_tile = TILE_N / 32u;
    for (var i = 0u; i < RM; i++) {
        let ml = local.y + i * WG_M;
        let m = tile.m0 + ml;
        if (m >= m_total) {
            continue;
        }
        let k = i32(taps_at(m) * p.in_c);
        for (var j = 0u; j < RN; j++) {
            let nl = local.x + j * WG_N;
            let o = tile.n0 + nl;
            if (o < p.out_c && !plus_one(k - 2 * i32(acc[i][j]), thresholds[o])) {
                atomicOr(&bits[ml * words_per_tile + nl / 32u], 1u << (nl % 32u));
            }
        }
    }
    workgroupBarrier();
    let out_words = (p.out_c + 31u) / 32u;
    for (var e = lid; e < BITS_LEN; e += WG) {
        let m = tile.m0 + e / words_per_tile;
        let word = tile.n0 / 32u + e % words_per_tile;
        if (m < m_total && word < out_words) {
            output[m * out_words + word] = atomicLoad(&bits[e]);
        }
    }
}

fn zero_bits(lid: u32) {
    for (var e = lid; e < BITS_LEN; e += WG) {
        atomicStore(&bits[e], 0u);
    }
}

@compute @workgroup_size(WG_N, WG_M)
fn conv_bits(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = tile_of(wid, groups);
    if (!tile.valid) {
        return;
    }
    zero_bits(lid);
    // The barriers inside accumulate order these stores before the atomicOr of store_bits.
    let acc = accumulate(tile, lid, local.y, local.x);
    store_bits(tile, acc, local, lid);
}
