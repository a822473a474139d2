// Float baseline: 2-D convolution as a tiled implicit GEMM (a dense layer is the 1x1 case with
// H = W = 1). This is the yardstick the binary kernels are measured against, so it gets the same
// treatment as xnor_conv.wgsl: a workgroup owns a TILE_M x TILE_N block of outputs (TILE_M = WG_M*RM
// pixels, TILE_N = WG_N*RN channels), depth slices of KC values of the activations (gathered from
// the image, im2col on the fly) and of the weights are staged in workgroup memory as vec4<f32>
// along k ([KQ][TILE_M] and [KQ][TILE_N], KQ = KC/4, as xnor_conv.wgsl's vec4<u32> words), and
// every invocation keeps its RM x RN = 4 x 4 accumulators in named vec4 registers: per vec4 step it
// loads 4 activation and 4 weight vec4s from workgroup memory and runs 64 FMAs from registers.
// Output pixels are decoded once per workgroup; the channel count C and the kernel size are
// override constants, so the gather divides by constants only.
//
//   input   [N][H][W][C]        f32 NHWC
//   weights [O][KH][KW][C]      f32 OHWI: row o is the K = KH*KW*C vector of output channel o
//   output  [N][OH][OW][out_stride] f32 (out_stride = O unless the weights are split)
//
// GEMM view: out[m][o] = sum_k A[m][k] * Wt[o][k], m = output pixel, k = (ky, kx, c); A is read
// from the image on the fly, 0 for out-of-image taps (zero padding) and past K.
//
// Summation order (exact by contract): every output is the sequential sum acc = fma(a_k, w_k, acc)
// over k in increasing order, starting from +0.0; no dot(), no tree, no split of k. So with +-1.0
// weights every product is exact and the sum rounds exactly like acc +- x (first_conv.wgsl's
// order), and the padded taps add fma(0, w, acc) = acc.
//
// Weights too large for one storage binding are split along the output channels: a dispatch then
// sees `out_c` rows of the weights (channels out_base .. out_base + out_c of the layer) and writes
// them into columns out_base.. of output rows out_stride values long. Each output's sum is the same.
//
// The scalar type is `Real`: f32 here. The f16 baseline (kernels::Shader::FloatConvF16, adapters
// with shader-f16) is this file with `enable f16;` in front and `alias Real = f16;`: f16 storage,
// f16 tiles and f16 math, the same tiles and the same summation order.

alias Real = f32;

struct Params {
    batch: u32, in_h: u32, in_w: u32, in_c: u32,
    out_h: u32, out_w: u32, out_c: u32, stride: u32,
    pad: u32, kernel_h: u32, kernel_w: u32, _a: u32,
    out_stride: u32, out_base: u32, _b: u32, _c: u32,
}

override C: u32 = 1u;
override KH: u32 = 1u;
override KW: u32 = 1u;
override WG_M: u32 = 16u;
override WG_N: u32 = 16u;
override KC: u32 = 16u;   // depth slice in values, a multiple of 4

const RM: u32 = 4u;       // pixels per invocation
const RN: u32 = 4u;       // channels per invocation

override WG: u32 = WG_M * WG_N;
override TILE_M: u32 = WG_M * RM;
override TILE_N: u32 = WG_N * RN;
override KQ: u32 = KC / 4u;          // vec4 steps per slice
override K_TOTAL: u32 = KH * KW * C;
override A_LEN: u32 = KQ * TILE_M;
override B_LEN: u32 = KQ * TILE_N;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<Real>;
@group(0) @binding(2) var<storage, read> weights: array<Real>;
@group(0) @binding(3) var<storage, read_write> output: array<Real>;

var<workgroup> a_tile: array<vec4<Real>, A_LEN>;   // [KQ][TILE_M] activations, 4 consecutive k
var<workgroup> b_tile: array<vec4<Real>, B_LEN>;   // [KQ][TILE_N] weights, 4 consecutive k
var<workgroup> pix: array<vec4<i32>, TILE_M>;     // (n * in_h, iy0, ix0, inside the batch)

// One row of the invocation's outputs (pixel a, channels w0..w3) advanced by the 4 values of one
// vec4 step, in increasing k: component x, then y, z, w.
fn step(acc: vec4<Real>, a: vec4<Real>, w0: vec4<Real>, w1: vec4<Real>, w2: vec4<Real>, w3: vec4<Real>) -> vec4<Real> {
    var s = fma(vec4<Real>(a.x), vec4<Real>(w0.x, w1.x, w2.x, w3.x), acc);
    s = fma(vec4<Real>(a.y), vec4<Real>(w0.y, w1.y, w2.y, w3.y), s);
    s = fma(vec4<Real>(a.z), vec4<Real>(w0.z, w1.z, w2.z, w3.z), s);
    return fma(vec4<Real>(a.w), vec4<Real>(w0.w, w1.w, w2.w, w3.w), s);
}

@compute @workgroup_size(WG_N, WG_M)
fn conv(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let m_total = p.batch * p.out_h * p.out_w;
    let m_tiles = (m_total + TILE_M - 1u) / TILE_M;
    let n_tiles = (p.out_c + TILE_N - 1u) / TILE_N;
    let tile = wid.x + wid.y * groups.x;
    if (tile >= m_tiles * n_tiles) {
        return;
    }
    let m0 = (tile % m_tiles) * TILE_M;
    let n0 = (tile / m_tiles) * TILE_N;
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

    let tm = local.y;
    let tn = local.x;
    // Row i: pixel tm + i*WG_M; component j: channel tn + j*WG_N. Named registers, not an
    // indexed array, so no driver keeps them in scratch memory.
    var acc0 = vec4<Real>(0.0);
    var acc1 = vec4<Real>(0.0);
    var acc2 = vec4<Real>(0.0);
    var acc3 = vec4<Real>(0.0);
    for (var k0 = 0u; k0 < K_TOTAL; k0 += KC) {
        // Neighbouring invocations take neighbouring vec4s of one pixel (contiguous channels of
        // one tap) or of one weight row.
        for (var e = lid; e < A_LEN; e += WG) {
            let kq = e % KQ;
            let ml = e / KQ;
            let px = pix[ml];
            var a = vec4<Real>(0.0);
            if (px.w != 0) {
                for (var c = 0u; c < 4u; c++) {
                    let k = k0 + kq * 4u + c;
                    if (k < K_TOTAL) {
                        let tap = k / C;
                        let iy = px.y + i32(tap / KW);
                        let ix = px.z + i32(tap % KW);
                        if (iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w)) {
                            a[c] = input[(u32(px.x + iy) * p.in_w + u32(ix)) * C + k % C];
                        }
                    }
                }
            }
            a_tile[kq * TILE_M + ml] = a;
        }
        for (var e = lid; e < B_LEN; e += WG) {
            let kq = e % KQ;
            let nl = e / KQ;
            let o = n0 + nl;
            let k = k0 + kq * 4u;
            var w = vec4<Real>(0.0);
            if (o < p.out_c) {
                let row = o * K_TOTAL;
                for (var c = 0u; c < 4u; c++) {
                    if (k + c < K_TOTAL) {
                        w[c] = weights[row + k + c];
                    }
                }
            }
            b_tile[kq * TILE_N + nl] = w;
        }
        workgroupBarrier();
        for (var kq = 0u; kq < KQ; kq++) {
            let ab = kq * TILE_M + tm;
            let bb = kq * TILE_N + tn;
            let w0 = b_tile[bb];
            let w1 = b_tile[bb + WG_N];
            let w2 = b_tile[bb + 2u * WG_N];
            let w3 = b_tile[bb + 3u * WG_N];
            acc0 = step(acc0, a_tile[ab], w0, w1, w2, w3);
            acc1 = step(acc1, a_tile[ab + WG_M], w0, w1, w2, w3);
            acc2 = step(acc2, a_tile[ab + 2u * WG_M], w0, w1, w2, w3);
            acc3 = step(acc3, a_tile[ab + 3u * WG_M], w0, w1, w2, w3);
        }
        workgroupBarrier();
    }
    let acc = array<vec4<Real>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < RM; i++) {
        let m = m0 + tm + i * WG_M;
        if (m >= m_total) {
            continue;
        }
        for (var j = 0u; j < RN; j++) {
            let o = n0 + tn + j * WG_N;
            if (o < p.out_c) {
                output[m * p.out_stride + p.out_base + o] = acc[i][j];
            }
        }
    }
}
