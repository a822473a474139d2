// XNOR/popcount dense layer: a batch of packed rows times packed weight rows.
//
//   input   [B][WORDS]   u32 packed signs (set bit = -1), WORDS = ceil(in_features / 32)
//   weights [O][WORDS]   u32
//   dense_dot:  output [B][O]            i32  dot = in_features - 2 * popcount(a XOR w)
//   dense_bits: output [B][ceil(O/32)]   fused threshold, as in xnor_conv.wgsl

struct Params {
    batch: u32,
    in_features: u32,
    out_features: u32,
    _pad: u32,
}

struct Threshold {
    t: i32,
    mode: u32,
}

override WG: u32 = 64u;
override WORDS: u32 = 1u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read> weights: array<u32>;
@group(0) @binding(3) var<storage, read_write> output: array<u32>;
@group(0) @binding(4) var<storage, read> thresholds: array<Threshold>;

fn dot_at(b: u32, o: u32) -> i32 {
    var mismatches = 0u;
    for (var w = 0u; w < WORDS; w++) {
        mismatches += countOneBits(input[b * WORDS + w] ^ weights[o * WORDS + w]);
    }
    return i32(p.in_features) - 2 * i32(mismatches);
}

@compute @workgroup_size(WG)
fn dense_dot(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * groups.x) * WG + lid;
    if (idx >= p.batch * p.out_features) {
        return;
    }
    output[idx] = bitcast<u32>(dot_at(idx / p.out_features, idx % p.out_features));
}

@compute @workgroup_size(WG)
fn dense_bits(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let out_words = (p.out_features + 31u) / 32u;
    let idx = (wid.x + wid.y * groups.x) * WG + lid;
    if (idx >= p.batch * out_words) {
        return;
    }
    let b = idx / out_words;
    let o0 = (idx % out_words) * 32u;
    var word = 0u;
    for (var j = 0u; j < min(32u, p.out_features - o0); j++) {
        let v = dot_at(b, o0 + j);
        let th = thresholds[o0 + j];
        if (!select(v >= th.t, v <= th.t, th.mode == 1u)) {
            word |= 1u << j;
        }
    }
    output[idx] = word;
}
