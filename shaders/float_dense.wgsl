// Float baseline, dense layer at small batches: y[b][o] = sum_k x[b][k] * W[o][k] for a batch of
// 1..8 rows, the float counterpart of xnor_dense.wgsl. (Larger batches run as float_conv.wgsl's
// 1x1 case, where staged weights are reused over batch rows held in registers.) Here each weight
// is used by at most 8 rows, so the kernel is spread for bandwidth: one workgroup per ROWS = 4
// output rows (4096 outputs: 1024 workgroups), its WG invocations striding the depth with vec4
// loads of the 4 contiguous weight rows and keeping the BATCH x 4 sums in named vec4 registers,
// then a workgroup reduction.
//
//   input   [B][K4]   vec4<f32>, K = 4 * K4 values per row (the launcher requires K % 4 == 0)
//   weights [O][K4]   vec4<f32> (this dispatch's rows: channels out_base .. out_base + out_c)
//   output  [B][out_stride] f32, columns out_base .. out_base + out_c written
//
// Summation order (fixed, not the conv's): invocation i sums the vec4 steps kq = i, i + WG,
// i + 2 WG, ... in increasing order, each step's 4 values in order (fma, x then y, z, w), from
// +0.0; then the WG partial sums are added as a pairwise tree: for s = WG/2, WG/4, .., 1,
// partial[i] += partial[i + s] for i < s. The result is partial[0]. WG is a power of two
// (kernels::Tuning::float_dense_workgroup: 8 on a CPU adapter, 64 on a GPU).

struct Params {
    batch: u32,
    out_c: u32,
    out_stride: u32,
    out_base: u32,
}

override K4: u32 = 1u;       // vec4 steps per row (K / 4)
override BATCH: u32 = 1u;    // rows of the batch, 1 ..= 8
override WG: u32 = 64u;      // invocations per workgroup, a power of two

const ROWS: u32 = 4u;        // output rows per workgroup (the components of one vec4)

override PARTIAL_LEN: u32 = WG * BATCH;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

var<workgroup> partial: array<vec4<f32>, PARTIAL_LEN>;   // [BATCH][WG]: component r = row o0 + r

// One vec4 step of one batch row: x's 4 values in order, each times its column of the 4 rows.
fn step(acc: vec4<f32>, x: vec4<f32>, c: mat4x4<f32>) -> vec4<f32> {
    var s = fma(vec4<f32>(x.x), c[0], acc);
    s = fma(vec4<f32>(x.y), c[1], s);
    s = fma(vec4<f32>(x.z), c[2], s);
    return fma(vec4<f32>(x.w), c[3], s);
}

@compute @workgroup_size(WG)
fn dense(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o0 = (wid.x + wid.y * groups.x) * ROWS;
    if (o0 >= p.out_c) {
        return;
    }
    // Rows past out_c read row o0 instead (in bounds) and are never written.
    let r1 = select(o0, o0 + 1u, o0 + 1u < p.out_c) * K4;
    let r2 = select(o0, o0 + 2u, o0 + 2u < p.out_c) * K4;
    let r3 = select(o0, o0 + 3u, o0 + 3u < p.out_c) * K4;
    let r0 = o0 * K4;
    // Batch row b's sums in acc<b>: named registers, not an indexed array, so no driver keeps
    // them in scratch memory; rows past BATCH are compiled out (BATCH is a constant).
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    for (var kq = lid; kq < K4; kq += WG) {
        let w0 = weights[r0 + kq];
        let w1 = weights[r1 + kq];
        let w2 = weights[r2 + kq];
        let w3 = weights[r3 + kq];
        // Column c: the 4 rows' weights at value 4 kq + c.
        let c = mat4x4<f32>(
            vec4<f32>(w0.x, w1.x, w2.x, w3.x),
            vec4<f32>(w0.y, w1.y, w2.y, w3.y),
            vec4<f32>(w0.z, w1.z, w2.z, w3.z),
            vec4<f32>(w0.w, w1.w, w2.w, w3.w),
        );
        acc0 = step(acc0, input[kq], c);
        if (BATCH > 1u) { acc1 = step(acc1, input[K4 + kq], c); }
        if (BATCH > 2u) { acc2 = step(acc2, input[2u * K4 + kq], c); }
        if (BATCH > 3u) { acc3 = step(acc3, input[3u * K4 + kq], c); }
        if (BATCH > 4u) { acc4 = step(acc4, input[4u * K4 + kq], c); }
        if (BATCH > 5u) { acc5 = step(acc5, input[5u * K4 + kq], c); }
        if (BATCH > 6u) { acc6 = step(acc6, input[6u * K4 + kq], c); }
        if (BATCH > 7u) { acc7 = step(acc7, input[7u * K4 + kq], c); }
    }
    partial[lid] = acc0;
    if (BATCH > 1u) { partial[WG + lid] = acc1; }
    if (BATCH > 2u) { partial[2u * WG + lid] = acc2; }
    if (BATCH > 3u) { partial[3u * WG + lid] = acc3; }
    if (BATCH > 4u) { partial[4u * WG + lid] = acc4; }
    if (BATCH > 5u) { partial[5u * WG + lid] = acc5; }
    if (BATCH > 6u) { partial[6u * WG + lid] = acc6; }
    if (BATCH > 7u) { partial[7u * WG + lid] = acc7; }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            for (var b = 0u; b < BATCH; b++) {
                partial[b * WG + lid] = partial[b * WG + lid] + partial[b * WG + lid + s];
            }
        }
        workgroupBarrier();
    }
    // Invocation e < 4 * BATCH writes row o0 + e % 4 of batch row e / 4.
    for (var e = lid; e < BATCH * ROWS; e += WG) {
        let b = e / ROWS;
        let r = e % ROWS;
        if (o0 + r < p.out_c) {
            output[b * p.out_stride + p.out_base + o0 + r] = partial[b * WG][r];
        }
    }
}
