// The subgroup path of the fused XNOR conv: not a module of its own but the tail of one, appended
// to xnor_conv.wgsl (kernels::Shader::XnorConvSubgroup) on devices with wgpu's SUBGROUP feature.
// (naga 30 accepts the subgroup built-ins under that feature and does not parse WGSL's
// `enable subgroups;` yet.)
//
// conv_bits_subgroup computes what conv_bits does. When each subgroup is one row of the
// workgroup (subgroup size = WG_N and subgroup_invocation_id = local.x, which the tile choice
// arranges and every invocation checks), channel j of invocation x is tile bit x + j*WG_N, so one
// subgroupBallot per pixel row and channel register gives WG_N consecutive bits of the row's
// words, and the subgroup's first invocation writes the words straight to memory: no atomics, no
// second pass. If any subgroup of the workgroup is laid out otherwise, the whole workgroup takes
// the atomic path of conv_bits instead (the check is made uniform through workgroup memory).

var<workgroup> unaligned: atomic<u32>;
var<workgroup> unaligned_uniform: u32;

// Writes the -1 bits of pixel row i of the block (tile bits j*WG_N .. j*WG_N + WG_N - 1 from
// ballot j), from invocation 0 of the subgroup.
fn ballot_row(tile: Tile, acc: vec4<u32>, ml: u32, local: vec3<u32>, lane: u32) {
    let m = tile.m0 + ml;
    let m_total = p.batch * p.out_h * p.out_w;
    let row_valid = m < m_total;
    var k = 0;
    if (row_valid) {
        k = i32(taps_at(m) * p.in_c);
    }
    let out_words = (p.out_c + 31u) / 32u;
    var word = 0u;
    for (var j = 0u; j < RN; j++) {
        let o = tile.n0 + local.x + j * WG_N;
        var minus = false;
        if (row_valid && o < p.out_c) {
            minus = !plus_one(k - 2 * i32(acc[j]), thresholds[o]);
        }
        let b = subgroupBallot(minus);
        if (lane == 0u && row_valid) {
            let bit0 = j * WG_N;   // first tile bit of this ballot
            if (WG_N >= 32u) {
                for (var q = 0u; q < WG_N / 32u; q++) {
                    let w = (tile.n0 + bit0) / 32u + q;
                    if (w < out_words) {
                        output[m * out_words + w] = b[q];
                    }
                }
            } else {
                word |= b.x << (bit0 % 32u);
                if ((bit0 + WG_N) % 32u == 0u) {
                    let w = (tile.n0 + bit0) / 32u;
                    if (w < out_words) {
                        output[m * out_words + w] = word;
                    }
                    word = 0u;
                }
            }
        }
    }
}

// A 1-D workgroup of the same WG_N * WG_M invocations (naga allows subgroup built-ins only with
// 1-D workgroups), with local (x, y) decoded as the 2-D one numbers them: lid = x + y * WG_N.
@compute @workgroup_size(WG)
fn conv_bits_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) lanes: u32,
) {
    let local = vec3<u32>(lid % WG_N, lid / WG_N, 0u);
    let tile = tile_of(wid, groups);
    if (!tile.valid) {
        return;
    }
    zero_bits(lid);
    if (lid == 0u) {
        atomicStore(&unaligned, 0u);
    }
    // The barriers inside accumulate order these stores before the uses below.
    let acc = accumulate(tile, lid, local.y, local.x);
    if (!subgroupAll(lanes == WG_N && lane == local.x)) {
        atomicMax(&unaligned, 1u);
    }
    workgroupBarrier();
    if (lid == 0u) {
        unaligned_uniform = atomicLoad(&unaligned);
    }
    if (workgroupUniformLoad(&unaligned_uniform) != 0u) {
        store_bits(tile, acc, local, lid);
        return;
    }
    for (var i = 0u; i < RM; i++) {
        ballot_row(tile, acc[i], local.y + i * WG_M, local, lane);
    }
}
