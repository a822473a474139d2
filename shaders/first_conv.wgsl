// The first layer: a real-valued image with few channels (f32 NHWC) convolved with binary
// weights, direct: no workgroup memory, no barriers.
//
//   input   [N][H][W][C]        f32
//   weights [G][KH][KW][C]      u32 sign words: bit j = the sign of channel g*32 + j (set = -1),
//                               G = ceil(O/32) groups of 32 output channels (bits past O clear)
//   first_sums: output [N][OH][OW][O]            f32 sums
//   first_bits: output [N][OH][OW][ceil(O/32)]   packed signs of the float threshold
//
// One invocation computes one output pixel x 32 channels (one output word) in eight vec4
// registers; all invocations of a workgroup share the channel group. One word holds the signs of
// all 32 channels of a tap, so a tap costs one weight load (real weights would need 32: on
// lavapipe the loads, not the adds, are what this layer costs), and each sum is sequential in (ky, kx, c) order from +0.0 exactly as the reference's:
// acc = acc + x or acc + (-x) (docs/FORMAT.md, first_conv). Taps outside the image read x = 0.0
// instead of branching (every loop runs the same trip count in every invocation); they add
// (+-0.0) to an accumulator that is never -0.0 (it starts at +0.0, and a rounded sum is -0.0
// only when both addends are), which leaves it unchanged, as the reference's skipping does.
//
// Fused output transform: channel o outputs +1 when
//   mode 0:  sum >= t      mode 1:  sum <= t
// and -1 (a set bit) otherwise.

struct Params {
    batch: u32, in_h: u32, in_w: u32, in_c: u32,
    out_h: u32, out_w: u32, out_c: u32, stride: u32,
    pad: u32, _a: u32, _b: u32, _c: u32,
}

struct FloatThreshold {
    t: f32,
    mode: u32,
}

override WG: u32 = 64u;
override C: u32 = 3u;
override KH: u32 = 3u;
override KW: u32 = 3u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<u32>;
@group(0) @binding(3) var<storage, read_write> output: array<u32>;   // f32 sums (bitcast) or bits
@group(0) @binding(4) var<storage, read> thresholds: array<FloatThreshold>;

struct Item {
    m: u32,       // output pixel (n, oy, ox) flattened
    group: u32,   // channel group: channels group*32 .. group*32 + 31
    valid: bool,
}

// Invocations past the last pixel (or group) compute the last one again and do not store it, so
// no invocation leaves early and every lane stays active through the loops.
fn item_of(wid: vec3<u32>, groups: vec3<u32>, lid: u32) -> Item {
    let m_total = p.batch * p.out_h * p.out_w;
    let m_groups = (m_total + WG - 1u) / WG;
    let w = wid.x + wid.y * groups.x;
    let m = (w % m_groups) * WG + lid;
    let g = w / m_groups;
    let n_groups = (p.out_c + 31u) / 32u;
    return Item(min(m, m_total - 1u), min(g, n_groups - 1u), m < m_total && g < n_groups);
}

// Bits 0..3 of a sign word: channels 4q .. 4q + 3 of register q are bits 4q .. 4q + 3.
const M0 = vec4<u32>(1u, 2u, 4u, 8u);

// The 32 sums of one output pixel: acc[q] holds channels group*32 + 4q .. 4q + 3.
fn sums(item: Item) -> array<vec4<f32>, 8> {
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    let ox = item.m % p.out_w;
    let oy = (item.m / p.out_w) % p.out_h;
    let n = item.m / (p.out_w * p.out_h);
    let iy0 = i32(oy * p.stride) - i32(p.pad);
    let ix0 = i32(ox * p.stride) - i32(p.pad);
    let w_group = item.group * KH * KW * C;   // this group's first tap
    for (var ky = 0u; ky < KH; ky++) {
        let iy = iy0 + i32(ky);
        let row_inside = iy >= 0 && iy < i32(p.in_h);
        for (var kx = 0u; kx < KW; kx++) {
            let ix = ix0 + i32(kx);
            let inside = row_inside && ix >= 0 && ix < i32(p.in_w);
            let y = u32(clamp(iy, 0, i32(p.in_h) - 1));
            let x0 = u32(clamp(ix, 0, i32(p.in_w) - 1));
            let a_base = ((n * p.in_h + y) * p.in_w + x0) * C;
            let tap = (ky * KW + kx) * C;
            for (var c = 0u; c < C; c++) {
                let x = vec4<f32>(select(0.0, input[a_base + c], inside));
                let signs = vec4<u32>(weights[w_group + tap + c]);
                let neg = -x;
                a0 += select(x, neg, (signs & M0) != vec4<u32>(0u));
                a1 += select(x, neg, (signs & (M0 << vec4<u32>(4u))) != vec4<u32>(0u));
                a2 += select(x, neg, (signs & (M0 << vec4<u32>(8u))) != vec4<u32>(0u));
                a3 += select(x, neg, (signs & (M0 << vec4<u32>(12u))) != vec4<u32>(0u));
                a4 += select(x, neg, (signs & (M0 << vec4<u32>(16u))) != vec4<u32>(0u));
                a5 += select(x, neg, (signs & (M0 << vec4<u32>(20u))) != vec4<u32>(0u));
                a6 += select(x, neg, (signs & (M0 << vec4<u32>(24u))) != vec4<u32>(0u));
                a7 += select(x, neg, (signs & (M0 << vec4<u32>(28u))) != vec4<u32>(0u));
            }
        }
    }
    return array<vec4<f32>, 8>(a0, a1, a2, a3, a4, a5, a6, a7);
}

@compute @workgroup_size(WG)
fn first_sums(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let item = item_of(wid, groups, lid);
    var acc = sums(item);
    if (!item.valid) {
        return;
    }
    for (var j = 0u; j < 32u; j++) {
        let o = item.group * 32u + j;
        if (o < p.out_c) {
            output[item.m * p.out_c + o] = bitcast<u32>(acc[j / 4u][j % 4u]);
        }
    }
}

// Bits of the 4 channels o0 .. o0 + 3 (those < out_c), at positions shift .. shift + 3.
fn minus_bits(v: vec4<f32>, o0: u32, shift: u32) -> u32 {
    var bits = 0u;
    for (var j = 0u; j < 4u; j++) {
        let o = o0 + j;
        if (o < p.out_c) {
            let th = thresholds[o];
            let plus = select(v[j] >= th.t, v[j] <= th.t, th.mode == 1u);
            bits |= select(1u, 0u, plus) << (shift + j);
        }
    }
    return bits;
}

@compute @workgroup_size(WG)
fn first_bits(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let item = item_of(wid, groups, lid);
    var acc = sums(item);
    if (!item.valid) {
        return;
    }
    let o0 = item.group * 32u;
    var word = 0u;
    for (var q = 0u; q < 8u; q++) {
        word |= minus_bits(acc[q], o0 + 4u * q, 4u * q);
    }
    output[item.m * ((p.out_c + 31u) / 32u) + item.group] = word;
}
