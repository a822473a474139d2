//! What the kernel tests share: the imports, the shape sweep, random thresholds, and the
//! comparisons (bit-exact, or within a stated tolerance) against the scalar references.

#![allow(unused_imports)] // a prelude: each module uses part of it

pub(crate) use crate::common;

pub use bnn_transfer::bits::{pack_rows, unpack_rows, words};
pub use bnn_transfer::gpu::{Gpu, LimitsProfile};
pub use bnn_transfer::kernels::{
    bitpack, first_conv, float_conv, pool, threshold, xnor_conv, xnor_dense,
};
pub use bnn_transfer::ops::{
    self, ConvShape, DenseShape, FloatThreshold, Padding, PoolShape, PoolValues, Threshold,
};
pub use bnn_transfer::rng::Rng;
pub use common::{all_gpus, random_f32, random_words};
pub use proptest::prelude::*;

pub const CHANNELS: [usize; 9] = [1, 3, 31, 32, 33, 63, 64, 65, 96];

pub const KERNELS: [usize; 4] = [1, 3, 5, 11];

pub const STRIDES: [usize; 3] = [1, 2, 4];

/// The sweep: every (C, kernel) pair, with stride, padding mode, batch, spatial size and output
/// channels cycling so each value of each axis meets many of the others.
pub fn sweep() -> Vec<ConvShape> {
    let mut shapes = Vec::new();
    let mut i = 0usize;
    for &c in &CHANNELS {
        for &k in &KERNELS {
            let stride = STRIDES[i % 3];
            let padding = if i.is_multiple_of(2) {
                Padding::Zero
            } else {
                Padding::One
            };
            let pad = [0, k / 2, k.min(3) - 1][i % 3].min(k - 1);
            let side = k + [0, 2, 5, 8][i % 4] + 1 - (k + 1) % 2; // odd sizes mostly
            shapes.push(ConvShape {
                batch: [1, 3][i % 2],
                in_h: side,
                in_w: side + 2 * (i % 2),
                in_c: c,
                out_c: [1, 5, 32, 33, 70][i % 5],
                kernel_h: k,
                kernel_w: k,
                stride,
                pad,
                padding,
            });
            i += 1;
        }
    }
    shapes
}

pub fn random_thresholds(rng: &mut Rng, n: usize, k: usize) -> Vec<Threshold> {
    (0..n)
        .map(|i| match i % 7 {
            5 => Threshold::ALWAYS_PLUS,
            6 => Threshold::ALWAYS_MINUS,
            _ => {
                let t = rng.below(2 * k + 3) as i32 - k as i32 - 1;
                if rng.below(2) == 0 {
                    Threshold::at_least(t)
                } else {
                    Threshold::at_most(t)
                }
            }
        })
        .collect()
}

pub fn check_conv(gpu: &Gpu, shape: &ConvShape, seed: u64) {
    let mut rng = Rng::new(seed);
    let input = random_words(&mut rng, shape.batch * shape.in_h * shape.in_w, shape.in_c);
    let weights = random_words(
        &mut rng,
        shape.out_c * shape.kernel_h * shape.kernel_w,
        shape.in_c,
    );
    let want = ops::conv::reference_dot(shape, &input, &weights);
    let got = xnor_conv::run_dot(gpu, shape, &input, &weights).unwrap();
    assert_eq!(got, want, "xnor_conv dots differ for {shape:?}");

    // Second oracle: a float conv on the ±1 values (zero padding is the float model's padding).
    if shape.padding == Padding::Zero {
        let x = unpack_rows(&input, shape.in_c);
        let w = unpack_rows(&weights, shape.in_c);
        let float: Vec<i32> = ops::float_conv::reference(shape, &x, &w)
            .iter()
            .map(|&v| v as i32)
            .collect();
        assert_eq!(
            want, float,
            "reference disagrees with the float oracle for {shape:?}"
        );
    }

    let k = shape.kernel_h * shape.kernel_w * shape.in_c;
    let th = random_thresholds(&mut rng, shape.out_c, k);
    let want_bits = ops::conv::reference_bits(shape, &input, &weights, &th);
    let got_bits = xnor_conv::run_bits(gpu, shape, &input, &weights, &th).unwrap();
    assert_eq!(
        got_bits, want_bits,
        "fused conv+threshold differs for {shape:?}"
    );
}

/// |got − want| ≤ 1e−5 · Σ|terms| + 1e−6, the bound of reordered/fused f32 summation of this depth.
pub fn assert_close(got: &[f32], want: &[f32], scale: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * scale + 1e-6,
            "{what}: element {i}: {g} vs {w}"
        );
    }
}

/// The float kernel's sums, bit for bit: equal to the reference in the kernel's order with `fma`
/// rounded twice (lavapipe) or once (GPUs that fuse it; WGSL allows either), the whole output one way.
pub fn assert_float_exact(got: &[f32], shape: &ConvShape, x: &[f32], w: &[f32], what: &str) {
    let twice = ops::float_conv::reference(shape, x, w);
    if got == twice.as_slice() {
        return;
    }
    let once = ops::float_conv::reference_fused(shape, x, w);
    if got == once.as_slice() {
        return;
    }
    let bad: Vec<(usize, f32, f32)> = got
        .iter()
        .zip(&twice)
        .enumerate()
        .filter(|(_, (g, r))| g != r)
        .map(|(i, (g, r))| (i, *g, *r))
        .take(5)
        .collect();
    panic!(
        "{what}: {} of {} values differ from the reference (first: {bad:?})",
        got.iter().zip(&twice).filter(|(g, r)| g != r).count(),
        got.len()
    );
}

/// A one-invocation shader that counts the iterations of a loop of `n` (read from a buffer, so no
/// compiler can fold it).
pub fn count_loop_iterations(gpu: &Gpu, n: u32) -> u32 {
    let source = "
        @group(0) @binding(0) var<storage, read_write> data: array<u32>;
        @compute @workgroup_size(1)
        fn main() {
            var count = 0u;
            for (var i = 0u; i < data[0]; i++) {
                count += data[1];
            }
            data[2] = count;
        }";
    let module = gpu
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("loop count"),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
    let pipeline = gpu
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("loop count"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
    let data = gpu.upload(&[n, 1, 0], "loop count").unwrap();
    let bind_group = gpu.bind(&pipeline, &[&data.buffer]);
    gpu.run(&[bnn_transfer::gpu::Dispatch {
        pipeline: std::sync::Arc::new(pipeline),
        bind_group,
        workgroups: [1, 1, 1],
        label: "loop count",
    }])
    .unwrap();
    gpu.read(&data).unwrap()[2]
}

/// The small-batch dense kernel's sums: bit for bit its reference in the documented order (fma
/// unfused or fused, the whole output one way), and within 1e−5 · Σ|x·w| + 1e−6 of it per output.
pub fn assert_dense_exact(
    got: &[f32],
    wg: u32,
    shape: (usize, usize, usize),
    x: &[f32],
    w: &[f32],
    what: &str,
) {
    let (batch, fin, fout) = shape;
    let twice = ops::float_dense::reference(wg, batch, fin, fout, x, w);
    assert_dense_close(got, &twice, x, w, fin, what);
    let once = ops::float_dense::reference_fused(wg, batch, fin, fout, x, w);
    assert!(
        got == twice.as_slice() || got == once.as_slice(),
        "{what}: {} of {} sums differ from the reference order",
        got.iter().zip(&twice).filter(|(g, r)| g != r).count(),
        got.len()
    );
}

/// |got − want| ≤ 1e−5 · Σ|x·w| + 1e−6 per output of a dense layer: the bound of reordered or
/// fused f32 summation of this depth.
pub fn assert_dense_close(got: &[f32], want: &[f32], x: &[f32], w: &[f32], fin: usize, what: &str) {
    let fout = w.len() / fin;
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, r)) in got.iter().zip(want).enumerate() {
        let (b, o) = (i / fout, i % fout);
        let scale: f32 = (0..fin)
            .map(|k| (x[b * fin + k] * w[o * fin + k]).abs())
            .sum();
        assert!(
            (g - r).abs() <= 1e-5 * scale + 1e-6,
            "{what}: row {b} output {o}: {g} vs {r}"
        );
    }
}
