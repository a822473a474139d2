// The output transform on its own: per-channel threshold of integer (or f32) pre-activations,
// straight to packed signs, for layers that max-pool between the conv and its batch norm.
//
//   values     [rows][C]            i32, or f32 when FLOAT (both stored as 32-bit words)
//   thresholds [C]                  { t, mode }: +1 when (mode 0) v >= t, (mode 1) v <= t
//   output     [rows][ceil(C/32)]   u32, set bit = -1, tail bits 0

struct Params {
    rows: u32,
    channels: u32,
    words: u32,
    _pad: u32,
}

struct Threshold {
    t: u32,      // i32 or f32 bits
    mode: u32,
}

override WG: u32 = 64u;
override FLOAT: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> values: array<u32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;
@group(0) @binding(3) var<storage, read> thresholds: array<Threshold>;

fn plus_one(v: u32, th: Threshold) -> bool {
    if (FLOAT) {
        let x = bitcast<f32>(v);
        let t = bitcast<f32>(th.t);
        return select(x >= t, x <= t, th.mode == 1u);
    }
    let x = bitcast<i32>(v);
    let t = bitcast<i32>(th.t);
    return select(x >= t, x <= t, th.mode == 1u);
}

@compute @workgroup_size(WG)
fn threshold(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.x + wid.y * groups.x) * WG + lid;
    if (idx >= p.rows * p.words) {
        return;
    }
    let row = idx / p.words;
    let c0 = (idx % p.words) * 32u;
    var word = 0u;
    for (var j = 0u; j < min(32u, p.channels - c0); j++) {
        if (!plus_one(values[row * p.channels + c0 + j], thresholds[c0 + j])) {
            word |= 1u << j;
        }
    }
    output[idx] = word;
}
