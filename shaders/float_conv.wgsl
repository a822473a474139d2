// Float baseline: 2-D convolution as a tiled implicit GEMM (a dense layer is the 1x1 case with
// H = W = 1). This is the yardstick the binary kernels are measured against, so it is written
// with the usual care: 64x64 output tiles per workgroup, 16-deep K slices staged in workgroup
// memory, 4x4 outputs per invocation, loads ordered along the contiguous axis.
//
//   input   [N][H][W][C]        f32 NHWC
//   weights [O][KH][KW][C]      f32 OHWI: row o is the K = KH*KW*C vector of output channel o
//   output  [N][OH][OW][O]      f32
//
// GEMM view: out[m][o] = sum_k A[m][k] * Wt[o][k], m = output pixel, k = (ky, kx, c); A is read
// from the image on the fly, 0 for out-of-image taps (zero padding). Sums run in increasing k.

struct Params {
    batch: u32, in_h: u32, in_w: u32, in_c: u32,
    out_h: u32, out_w: u32, out_c: u32, stride: u32,
    pad: u32, kernel_h: u32, kernel_w: u32, _a: u32,
}

const TILE_M: u32 = 64u;
const TILE_N: u32 = 64u;
const TILE_K: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

var<workgroup> a_tile: array<f32, 1024>;   // [TILE_K][TILE_M]
var<workgroup> b_tile: array<f32, 1024>;   // [TILE_K][TILE_N]

fn load_a(m: u32, k: u32, m_total: u32, k_total: u32) -> f32 {
    if (m >= m_total || k >= k_total) {
        return 0.0;
    }
    let c = k % p.in_c;
    let tap = k / p.in_c;
    let kx = tap % p.kernel_w;
    let ky = tap / p.kernel_w;
    let ox = m % p.out_w;
    let oy = (m / p.out_w) % p.out_h;
    let n = m / (p.out_w * p.out_h);
    let iy = i32(oy * p.stride + ky) - i32(p.pad);
    let ix = i32(ox * p.stride + kx) - i32(p.pad);
    if (iy < 0 || iy >= i32(p.in_h) || ix < 0 || ix >= i32(p.in_w)) {
        return 0.0;
    }
    return input[((n * p.in_h + u32(iy)) * p.in_w + u32(ix)) * p.in_c + c];
}

@compute @workgroup_size(16, 16)
fn conv(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let m_total = p.batch * p.out_h * p.out_w;
    let k_total = p.kernel_h * p.kernel_w * p.in_c;
    let m_tiles = (m_total + TILE_M - 1u) / TILE_M;
    let n_tiles = (p.out_c + TILE_N - 1u) / TILE_N;
    let tile = wid.x + wid.y * groups.x;
    if (tile >= m_tiles * n_tiles) {
        return;
    }
    let m0 = (tile % m_tiles) * TILE_M;
    let n0 = (tile / m_tiles) * TILE_N;

    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < k_total; k0 += TILE_K) {
        // 1024 elements of each tile, 4 per invocation; k is the fastest axis of the loads.
        for (var i = 0u; i < 4u; i++) {
            let e = lid + i * 256u;
            let kk = e % TILE_K;
            let row = e / TILE_K;
            a_tile[kk * TILE_M + row] = load_a(m0 + row, k0 + kk, m_total, k_total);
            var b = 0.0;
            if (n0 + row < p.out_c && k0 + kk < k_total) {
                b = weights[(n0 + row) * k_total + k0 + kk];
            }
            b_tile[kk * TILE_N + row] = b;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            let ab = kk * TILE_M + local.y * 4u;
            let bb = kk * TILE_N + local.x * 4u;
            let bv = vec4<f32>(b_tile[bb], b_tile[bb + 1u], b_tile[bb + 2u], b_tile[bb + 3u]);
            for (var i = 0u; i < 4u; i++) {
                acc[i] += a_tile[ab + i] * bv;
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + local.y * 4u + i;
        if (m >= m_total) {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let o = n0 + local.x * 4u + j;
            if (o < p.out_c) {
                output[m * p.out_c + o] = acc[i][j];
            }
        }
    }
}
