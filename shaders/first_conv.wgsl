// The first layer: real-valued image (f32 NHWC) convolved with binary (+-1) weights.
//
//   input   [N][H][W][C]            f32 (normalized image)
//   weights [O][KH][KW][WORDS]      u32 packed signs (set bit = -1), WORDS = ceil(C/32)
//   first_dot:  output [N][OH][OW][O]   f32 sums  sum = sum over taps, c of (+-1) * x
//
// Zero padding: out-of-image taps contribute 0 and are skipped. The sum runs over ky, kx, c in
// order, as the reference does. Signs come from threshold.wgsl (FLOAT) in a second dispatch: a
// fused float-threshold variant gave wrong bits on lavapipe (Mesa 22.3) while each half alone
// was exact, and the first layer's output is small, so the split costs little.

struct Params {
    batch: u32, in_h: u32, in_w: u32, in_c: u32,
    out_h: u32, out_w: u32, out_c: u32, stride: u32,
    pad: u32, _a: u32, _b: u32, _c: u32,
}

override WG: u32 = 64u;
override WORDS: u32 = 1u;
override KH: u32 = 3u;
override KW: u32 = 3u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<u32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

fn sum_at(n: u32, oy: u32, ox: u32, o: u32) -> f32 {
    var sum = 0.0;
    let iy0 = i32(oy * p.stride) - i32(p.pad);
    let ix0 = i32(ox * p.stride) - i32(p.pad);
    for (var ky = 0u; ky < KH; ky++) {
        let iy = iy0 + i32(ky);
        let row_inside = iy >= 0 && iy < i32(p.in_h);
        for (var kx = 0u; kx < KW; kx++) {
            let ix = ix0 + i32(kx);
            if (row_inside && ix >= 0 && ix < i32(p.in_w)) {
                let a_base = ((n * p.in_h + u32(iy)) * p.in_w + u32(ix)) * p.in_c;
                let w_base = ((o * KH + ky) * KW + kx) * WORDS;
                for (var c = 0u; c < p.in_c; c++) {
                    let x = input[a_base + c];
                    let negative = ((weights[w_base + c / 32u] >> (c % 32u)) & 1u) == 1u;
                    sum += select(x, -x, negative);
                }
            }
        }
    }
    return sum;
}

@compute @workgroup_size(WG)
fn first_dot(
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
    output[idx] = sum_at(n, oy, ox, o);
}
