// Float baseline: 2-D convolution as a tiled implicit GEMM (a dense layer is the 1x1 case with
// H = W = 1). This is the yardstick the binary kernels are measured against, so it gets the same
// treatment as xnor_conv.wgsl: a workgroup owns a TILE_M x TILE_N block of outputs (TILE_M = WG_M*RM
// pixels, TILE_N = WG_N*RN channels), depth slices of KC values of the activations (gathered from
// the image, im2col on the fly) and of the weights are staged in workgroup memory, and every
// invocation keeps RM x RN accumulators in registers, so each staged value is reused RN (or RM)
// times from registers. Output pixels are decoded once per workgroup; the channel count C and the
// kernel size are override constants, so the gather divides by constants only.
//
//   input   [N][H][W][C]        f32 NHWC
//   weights [O][KH][KW][C]      f32 OHWI: row o is the K = KH*KW*C vector of output channel o
//   output  [N][OH][OW][out_stride] f32 (out_stride = O unless the weights are split)
//
// GEMM view: out[m][o] = sum_k A[m][k] * Wt[o][k], m = output pixel, k = (ky, kx, c); A is read
// from the image on the fly, 0 for out-of-image taps (zero padding). Sums run in increasing k.
//
// Weights too large for one storage binding are split along the output channels: a dispatch then
// sees `out_c` rows of the weights (channels out_base .. out_base + out_c of the layer) and writes
// them into columns out_base.. of output rows out_stride values long. Each output's sum is the same.

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
override KC: u32 = 16u;

const RM: u32 = 4u;       // pixels per invocation
const RN: u32 = 4u;       // channels per invocation

override WG: u32 = WG_M * WG_N;
override TILE_M: u32 = WG_M * RM;
override TILE_N: u32 = WG_N * RN;
override K_TOTAL: u32 = KH * KW * C;
override A_STRIDE: u32 = TILE_M + 1u;   // +1: the kk-major stores of the loaders avoid bank conflicts
override B_STRIDE: u32 = TILE_N + 1u;
override A_LEN: u32 = KC * A_STRIDE;
override B_LEN: u32 = KC * B_STRIDE;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

var<workgroup> a_tile: array<f32, A_LEN>;   // [KC][A_STRIDE]
var<workgroup> b_tile: array<f32, B_LEN>;   // [KC][B_STRIDE]
var<workgroup> pix: array<vec4<i32>, TILE_M>;   // (n * in_h, iy0, ix0, inside the batch)

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
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < K_TOTAL; k0 += KC) {
        // Loads run along k (contiguous channels of one tap, or of one weight row).
        for (var e = lid; e < KC * TILE_M; e += WG) {
            let kk = e % KC;
            let ml = e / KC;
            let k = k0 + kk;
            let px = pix[ml];
            var a = 0.0;
            if (px.w != 0 && k < K_TOTAL) {
                let tap = k / C;
                let iy = px.y + i32(tap / KW);
                let ix = px.z + i32(tap % KW);
                if (iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w)) {
                    a = input[(u32(px.x + iy) * p.in_w + u32(ix)) * C + k % C];
                }
            }
            a_tile[kk * A_STRIDE + ml] = a;
        }
        for (var e = lid; e < KC * TILE_N; e += WG) {
            let kk = e % KC;
            let nl = e / KC;
            var b = 0.0;
            if (n0 + nl < p.out_c && k0 + kk < K_TOTAL) {
                b = weights[(n0 + nl) * K_TOTAL + k0 + kk];
            }
            b_tile[kk * B_STRIDE + nl] = b;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KC; kk++) {
            let ab = kk * A_STRIDE + tm;
            let bb = kk * B_STRIDE + tn;
            let b = vec4<f32>(
                b_tile[bb], b_tile[bb + WG_N], b_tile[bb + 2u * WG_N], b_tile[bb + 3u * WG_N],
            );
            acc0 = fma(vec4<f32>(a_tile[ab]), b, acc0);
            acc1 = fma(vec4<f32>(a_tile[ab + WG_M]), b, acc1);
            acc2 = fma(vec4<f32>(a_tile[ab + 2u * WG_M]), b, acc2);
            acc3 = fma(vec4<f32>(a_tile[ab + 3u * WG_M]), b, acc3);
        }
        workgroupBarrier();
    }
    let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
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
