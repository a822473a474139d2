// The real-valued epilogue of a Bi-Real block (docs/FORMAT.md, "real layers"): per output element
// of a conv map, the folded batch norm, the shortcut and RPReLU, in f32. Two entry points:
// `real_epilogue`, one invocation per element, writes the real output alone (its signs then come
// from threshold.wgsl, FLOAT); `real_epilogue_signs`, one invocation per output word (32
// channels of a pixel), writes the real output and the packed signs in the same dispatch:
//
//   thresholds [C]                      { t: f32 bits, mode }: +1 when (mode 0) z >= t, (mode 1)
//                                       z <= t (real_epilogue_signs only)
//   signs      [batch][h][w][ceil(C/32)] u32, set bit = -1, tail bits 0 (real_epilogue_signs only)
//
//   pre       [batch][h][w][C]          i32, or f32 when PRE_FLOAT (both stored as 32-bit words);
//             with POOL, the conv map [batch][pool_h][pool_w][C], max-pooled here first (window
//             pool_k, stride pool_s, row-major, a later value replaces the max only if greater)
//   shortcut  [batch][in_h][in_w][Cs]   f32, the previous layer's real output (SHORTCUT only;
//                                       Cs = C, or the projection's input channels with PROJECT)
//   consts    [C][5]                    scale, bias, shift_in, slope, shift_out per channel; with
//             [C][Cs], [C]              PROJECT, then the 1×1 projection's weights and bias
//   real      [batch][h][w][C]          f32 output z
//
//   u = mul(p, scale) + bias
//   with a shortcut: s = +0.0; for each tap (ky, kx), row-major: s = s + shortcut[...];
//                    u = u + mul(s, inv)          inv = 1/(kernel²) rounded to f32
//     or, PROJECT:   acc = +0.0; for each shortcut channel k: acc = acc + mul(mul(s_k, inv), W[c][k]);
//                    u = u + (acc + b[c])
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
    shortcut_c: u32,
    _pad0: u32,
    _pad1: u32,
}

override WG: u32 = 64u;
override PRE_FLOAT: bool = false;
override SHORTCUT: bool = false;
override POOL: bool = false;
override PROJECT: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pre: array<u32>;
@group(0) @binding(2) var<storage, read> shortcut: array<f32>;
@group(0) @binding(3) var<storage, read> consts: array<f32>;
@group(0) @binding(4) var<storage, read_write> real: array<f32>;

struct Threshold {
    t: u32,      // f32 bits
    mode: u32,
}

@group(0) @binding(5) var<storage, read_write> signs: array<u32>;
@group(0) @binding(6) var<storage, read> thresholds: array<Threshold>;

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

// The shortcut's window sum of channel k (of cs) at output pixel (n, y, x), row-major from +0.0.
fn window_sum(n: u32, y: u32, x: u32, k: u32, cs: u32) -> f32 {
    var s = 0.0;
    for (var ky = 0u; ky < p.kernel; ky++) {
        for (var kx = 0u; kx < p.kernel; kx++) {
            let iy = y * p.stride + ky;
            let ix = x * p.stride + kx;
            s = s + shortcut[((n * p.in_h + iy) * p.in_w + ix) * cs + k];
        }
    }
    return s;
}

// The real output z of channel c at output pixel (n, y, x).
fn epilogue(n: u32, y: u32, x: u32, c: u32) -> f32 {
    let idx = ((n * p.h + y) * p.w + x) * p.channels + c;
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
    var u = mul(v, consts[5u * c]) + consts[5u * c + 1u];
    if (SHORTCUT) {
        if (PROJECT) {
            let cs = p.shortcut_c;
            let w0 = 5u * p.channels + c * cs;
            var acc = 0.0;
            for (var k = 0u; k < cs; k++) {
                acc = acc + mul(mul(window_sum(n, y, x, k, cs), p.inv), consts[w0 + k]);
            }
            u = u + (acc + consts[5u * p.channels + p.channels * cs + c]);
        } else {
            u = u + mul(window_sum(n, y, x, c, p.channels), p.inv);
        }
    }
    let t = u - consts[5u * c + 2u];
    return select(mul(t, consts[5u * c + 3u]), t, t > 0.0) + consts[5u * c + 4u];
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
    let pixel = idx / p.channels;
    real[idx] = epilogue(pixel / (p.w * p.h), (pixel / p.w) % p.h, pixel % p.w, idx % p.channels);
}

@compute @workgroup_size(WG)
fn real_epilogue_signs(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let words = (p.channels + 31u) / 32u;
    let idx = (wid.x + wid.y * groups.x) * WG + lid;
    if (idx >= p.batch * p.h * p.w * words) {
        return;
    }
    let pixel = idx / words;
    let n = pixel / (p.w * p.h);
    let y = (pixel / p.w) % p.h;
    let x = pixel % p.w;
    let c0 = (idx % words) * 32u;
    var word = 0u;
    for (var j = 0u; j < min(32u, p.channels - c0); j++) {
        let c = c0 + j;
        let z = epilogue(n, y, x, c);
        real[pixel * p.channels + c] = z;
        let th = thresholds[c];
        let t = bitcast<f32>(th.t);
        if (!select(z >= t, z <= t, th.mode == 1u)) {
            word |= 1u << j;
        }
    }
    signs[idx] = word;
}
