// The real-valued epilogue of a Bi-Real block (docs/FORMAT.md, "real layers"): per output element
// of a conv map, the folded batch norm, the shortcut and RPReLU, in f32. The signs of its output
// come from threshold.wgsl (FLOAT) in a second dispatch.
//
//   pre       [batch][h][w][C]          i32, or f32 when PRE_FLOAT (both stored as 32-bit words);
//             with POOL, the conv map [batch][pool_h][pool_w][C], max-pooled here first (window
//             pool_k, stride pool_s, row-major, a later value replaces the max only if greater)
//   shortcut  [batch][in_h][in_w][C]    f32, the previous layer's real output (SHORTCUT only)
//   channels  [C]                       { scale, bias, shift_in, slope, shift_out }
//   real      [batch][h][w][C]          f32 output z
//
//   u = mul(p, scale) + bias
//   with a shortcut: s = +0.0; for each tap (ky, kx), row-major: s = s + shortcut[...];
//                    u = u + mul(s, inv)          inv = 1/(kernel²) rounded to f32
//   t = u - shift_in
//   z = select(mul(t, slope), t, t > 0.0) + shift_out
//
// mul(x, c) sums four exact products of 12-bit halves, so a driver fusing a multiply with an add
// (SPIR-V allows it; WGSL's fma need not be fused) cannot change a result: every path gets the
// same bits (src/kernels/real_epilogue.rs).

struct Params {
    batch: u32,
    h: u32,
    w: u32,
    channels: u32,
    in_h: u32,
    in_w: u32,
    kernel: u32,
    stride: u32,
    inv: f32,
    pool_h: u32,
    pool_w: u32,
    pool_k: u32,
    pool_s: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

struct Channel {
    scale: f32,
    bias: f32,
    shift_in: f32,
    slope: f32,
    shift_out: f32,
}

override WG: u32 = 64u;
override PRE_FLOAT: bool = false;
override SHORTCUT: bool = false;
override POOL: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pre: array<u32>;
@group(0) @binding(2) var<storage, read> shortcut: array<f32>;
@group(0) @binding(3) var<storage, read> channels: array<Channel>;
@group(0) @binding(4) var<storage, read_write> real: array<f32>;

// x with its 12 low mantissa bits cleared (12 significant bits).
fn hi(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) & 0xFFFFF000u);
}

fn mul(x: f32, c: f32) -> f32 {
    let xh = hi(x);
    let ch = hi(c);
    let xl = x - xh;
    let cl = c - ch;
    return ((xh * ch + xh * cl) + xl * ch) + xl * cl;
}

fn load(i: u32) -> f32 {
    if (PRE_FLOAT) {
        return bitcast<f32>(pre[i]);
    }
    return f32(bitcast<i32>(pre[i]));
}

@compute @workgroup_size(WG)
fn real_epilogue(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * groups.x) * WG + lid;
    if (idx >= p.batch * p.h * p.w * p.channels) {
        return;
    }
    let c = idx % p.channels;
    let pixel = idx / p.channels;
    let ch = channels[c];
    let x = pixel % p.w;
    let y = (pixel / p.w) % p.h;
    let n = pixel / (p.w * p.h);
    var v: f32;
    if (POOL) {
        let y0 = y * p.pool_s;
        let x0 = x * p.pool_s;
        v = load(((n * p.pool_h + y0) * p.pool_w + x0) * p.channels + c);
        for (var ky = 0u; ky < p.pool_k; ky++) {
            for (var kx = 0u; kx < p.pool_k; kx++) {
                let t = load(((n * p.pool_h + y0 + ky) * p.pool_w + x0 + kx) * p.channels + c);
                if (t > v) {
                    v = t;
                }
            }
        }
    } else {
        v = load(idx);
    }
    var u = mul(v, ch.scale) + ch.bias;
    if (SHORTCUT) {
        var s = 0.0;
        for (var ky = 0u; ky < p.kernel; ky++) {
            for (var kx = 0u; kx < p.kernel; kx++) {
                let iy = y * p.stride + ky;
                let ix = x * p.stride + kx;
                s = s + shortcut[((n * p.in_h + iy) * p.in_w + ix) * p.channels + c];
            }
        }
        u = u + mul(s, p.inv);
    }
    let t = u - ch.shift_in;
    real[idx] = select(mul(t, ch.slope), t, t > 0.0) + ch.shift_out;
}
