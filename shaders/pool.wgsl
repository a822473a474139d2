// Max-pooling, NHWC, no padding (windows that would cross the edge are not produced).
//
// maxpool_values: i32 pre-activations (or f32 when FLOAT), the max of each window per channel.
//   Used when a network pools before batch norm (BNN AlexNet): pool on integers, then threshold.
// maxpool_bits: packed signs. The max of +-1 values is +1 unless all are -1, so with set bit = -1
//   the pooled word is the AND of the window's words (tail bits stay 0). With a threshold's output
//   bits as input this also pools the pre-activations exactly (docs/FORMAT.md, Pooling): a set bit
//   of `and_mask[word]` takes the AND (flip-0 channels: the max is below t iff every value is), a
//   clear one the OR (flip-1 channels: the max is above t iff any value is). All ones = plain AND.

struct Params {
    batch: u32, in_h: u32, in_w: u32, channels: u32,   // channels = words per pixel for bits
    out_h: u32, out_w: u32, kernel: u32, stride: u32,
}

override WG: u32 = 64u;
override FLOAT: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;
@group(0) @binding(3) var<storage, read> and_mask: array<u32>;   // maxpool_bits only: [channels]

fn greater(a: u32, b: u32) -> bool {
    if (FLOAT) {
        return bitcast<f32>(a) > bitcast<f32>(b);
    }
    return bitcast<i32>(a) > bitcast<i32>(b);
}

fn window(idx: u32) -> vec4<u32> {
    // (n, y0, x0, c) of output element idx
    let c = idx % p.channels;
    let pixel = idx / p.channels;
    let ox = pixel % p.out_w;
    let oy = (pixel / p.out_w) % p.out_h;
    let n = pixel / (p.out_w * p.out_h);
    return vec4<u32>(n, oy * p.stride, ox * p.stride, c);
}

@compute @workgroup_size(WG)
fn maxpool_values(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * groups.x) * WG + lid;
    if (idx >= p.batch * p.out_h * p.out_w * p.channels) {
        return;
    }
    let w = window(idx);
    var best = input[((w.x * p.in_h + w.y) * p.in_w + w.z) * p.channels + w.w];
    for (var ky = 0u; ky < p.kernel; ky++) {
        for (var kx = 0u; kx < p.kernel; kx++) {
            let v = input[((w.x * p.in_h + w.y + ky) * p.in_w + w.z + kx) * p.channels + w.w];
            if (greater(v, best)) {
                best = v;
            }
        }
    }
    output[idx] = best;
}

@compute @workgroup_size(WG)
fn maxpool_bits(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * groups.x) * WG + lid;
    if (idx >= p.batch * p.out_h * p.out_w * p.channels) {
        return;
    }
    let w = window(idx);
    var all = 0xffffffffu;
    var any = 0u;
    for (var ky = 0u; ky < p.kernel; ky++) {
        for (var kx = 0u; kx < p.kernel; kx++) {
            let v = input[((w.x * p.in_h + w.y + ky) * p.in_w + w.z + kx) * p.channels + w.w];
            all &= v;
            any |= v;
        }
    }
    let m = and_mask[w.w];
    output[idx] = (all & m) | (any & ~m);
}
