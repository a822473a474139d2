// The first layer: a real-valued image with few channels (f32 NHWC) convolved with f32 weights,
// direct (no workgroup memory, no barriers). The binary extractor's weights are its signs as
// +-1.0; the float twin runs the same kernel with real weights, so the two pay the same for it.
//
//   input   [N][H][W][C]              f32
//   weights [G][KH][KW][C][32]        f32, G = ceil(O/32) groups of 32 output channels, the 32
//                                     weights of one tap contiguous (channels past O are 0.0)
//   first_sums: output [N][OH][OW][O]            f32 sums
//   first_bits: output [N][OH][OW][ceil(O/32)]   packed signs of the float threshold
//
// One invocation computes one output pixel x 32 channels (one output word) in eight vec4
// registers. All invocations of a workgroup share the channel group and every loop runs the same
// trip count in every invocation (taps outside the image read x = 0.0 instead of branching), so
// the weight addresses are uniform and a driver can load each once for all lanes. Each sum is
// sequential in (ky, kx, c) order from +0.0: acc = fma(x, w, acc). With w = +-1.0 the product is
// exact, so this rounds exactly like the reference's acc + x / acc - x (docs/FORMAT.md,
// first_conv); an outside tap adds (+-0.0) to an accumulator that is never -0.0 (it starts at
// +0.0, and a rounded sum is -0.0 only when both addends are), which leaves it unchanged, as the
// reference's skipping does.
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
@group(0) @binding(2) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> output: array<u32>;   // f32 sums (bitcast) or bits
@group(0) @binding(4) var<storage, read> thresholds: array<FloatThreshold>;

struct Item {
    m: u32,       // output pixel (n, oy, ox) flattened
    group: u32,   // channel group: channels group*32 .. group*32 + 31
    valid: bool,
}

fn item_of(wid: vec3<u32>, groups: vec3<u32>, lid: u32) -> Item {
    let m_total = p.batch * p.out_h * p.out_w;
    let m_groups = (m_total + WG - 1u) / WG;
    let w = wid.x + wid.y * groups.x;
    let m = (w % m_groups) * WG + lid;
    let g = w / m_groups;
    return Item(m, g, m < m_total && g < (p.out_c + 31u) / 32u);
}

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
    let w_group = item.group * KH * KW * C * 8u;
    for (var ky = 0u; ky < KH; ky++) {
        let iy = iy0 + i32(ky);
        let row_inside = iy >= 0 && iy < i32(p.in_h);
        for (var kx = 0u; kx < KW; kx++) {
            let ix = ix0 + i32(kx);
            let inside = row_inside && ix >= 0 && ix < i32(p.in_w);
            let y = u32(clamp(iy, 0, i32(p.in_h) - 1));
            let x0 = u32(clamp(ix, 0, i32(p.in_w) - 1));
            let a_base = ((n * p.in_h + y) * p.in_w + x0) * C;
            let w_base = w_group + (ky * KW + kx) * C * 8u;
            for (var c = 0u; c < C; c++) {
                let x = vec4<f32>(select(0.0, input[a_base + c], inside));
                let w = w_base + c * 8u;
                a0 = fma(x, weights[w], a0);
                a1 = fma(x, weights[w + 1u], a1);
                a2 = fma(x, weights[w + 2u], a2);
                a3 = fma(x, weights[w + 3u], a3);
                a4 = fma(x, weights[w + 4u], a4);
                a5 = fma(x, weights[w + 5u], a5);
                a6 = fma(x, weights[w + 6u], a6);
                a7 = fma(x, weights[w + 7u], a7);
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
    if (!item.valid) {
        return;
    }
    var acc = sums(item);
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
    if (!item.valid) {
        return;
    }
    var acc = sums(item);
    let o0 = item.group * 32u;
    var word = 0u;
    for (var q = 0u; q < 8u; q++) {
        word |= minus_bits(acc[q], o0 + 4u * q, 4u * q);
    }
    output[item.m * ((p.out_c + 31u) / 32u) + item.group] = word;
}
