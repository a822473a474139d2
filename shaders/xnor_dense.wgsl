// XNOR/popcount dense layer at small batch: a batch of packed rows times packed weight rows.
//
//   input   [B][WORDS]   u32 packed signs (set bit = -1), WORDS = ceil(in_features / 32)
//   weights [O][WORDS]   u32
//   dense_dot:  output [B][O]            i32  dot = in_features - 2 * popcount(a XOR w)
//   dense_bits: output [B][ceil(O/32)]   fused threshold, as in xnor_conv.wgsl
//
// Split-K: one workgroup per (row b, word of 32 outputs), WG = 32 * SPLIT invocations. Invocation
// lid takes output o0 + lid % 32 and every SPLIT-th word of the depth starting at lid / 32; the
// SPLIT partial mismatch counts of an output meet in workgroup memory and the first 32
// invocations add them (integers: the order cannot change the sum). So a 512-output layer at
// batch 1 is 16 workgroups, not 16 invocations, and a deep layer spreads its words over SPLIT
// invocations per output. (Batches of 8 or more run on the tiled conv kernel as a 1x1 conv.)

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

override WORDS: u32 = 1u;
override SPLIT: u32 = 1u;          // invocations per output
override WG: u32 = 32u * SPLIT;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read> weights: array<u32>;
@group(0) @binding(3) var<storage, read_write> output: array<u32>;
@group(0) @binding(4) var<storage, read> thresholds: array<Threshold>;

var<workgroup> partial: array<u32, WG>;
var<workgroup> bits: atomic<u32>;

struct Item {
    b: u32,     // batch row
    o: u32,     // this invocation's output
    valid: bool,
}

fn item_of(wid: vec3<u32>, groups: vec3<u32>, lid: u32) -> Item {
    let out_words = (p.out_features + 31u) / 32u;
    let t = wid.x + wid.y * groups.x;
    let b = t / out_words;
    let o = (t % out_words) * 32u + lid % 32u;
    return Item(b, o, b < p.batch && o < p.out_features);
}

// The mismatch count of output item.o over the whole depth, in partial[lid % 32] of the first 32
// invocations after the call (every invocation must call it: it holds a barrier).
fn reduce(item: Item, lid: u32) -> u32 {
    var m = 0u;
    if (item.valid) {
        for (var w = lid / 32u; w < WORDS; w += SPLIT) {
            m += countOneBits(input[item.b * WORDS + w] ^ weights[item.o * WORDS + w]);
        }
    }
    partial[lid] = m;
    workgroupBarrier();
    var total = 0u;
    if (lid < 32u) {
        for (var s = 0u; s < SPLIT; s++) {
            total += partial[s * 32u + lid];
        }
    }
    return total;
}

@compute @workgroup_size(WG)
fn dense_dot(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let item = item_of(wid, groups, lid);
    let mismatches = reduce(item, lid);
    if (lid < 32u && item.valid) {
        let dot = i32(p.in_features) - 2 * i32(mismatches);
        output[item.b * p.out_features + item.o] = bitcast<u32>(dot);
    }
}

@compute @workgroup_size(WG)
fn dense_bits(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let item = item_of(wid, groups, lid);
    if (lid == 0u) {
        atomicStore(&bits, 0u);
    }
    // The barrier inside reduce orders the store before the atomicOr below.
    let mismatches = reduce(item, lid);
    if (lid < 32u && item.valid) {
        let v = i32(p.in_features) - 2 * i32(mismatches);
        let th = thresholds[item.o];
        if (!select(v >= th.t, v <= th.t, th.mode == 1u)) {
            atomicOr(&bits, 1u << lid);
        }
    }
    workgroupBarrier();
    if (lid == 0u && item.b < p.batch) {
        let out_words = (p.out_features + 31u) / 32u;
        output[item.b * out_words + item.o / 32u] = atomicLoad(&bits);
    }
}
