//! A rough timing of the binary kernels against the float baseline of the same shape on the default
//! adapter (GPU time from timestamp queries where available): daBNN's conv shapes and a 4096→4096
//! dense layer at batch 1 and 64. The benchmark suite is `bnn bench`.
//! Run: `cargo run --release --example rough_timing [xnor|float]` (no argument: both), or
//! `... rough_timing crossover`: the float dense layer's two kernels (`float_dense.wgsl` and the
//! tiled conv's 1×1 case) at batch 1 ..= 9, the measurement behind `float_dense::TILED_BATCH`.

use bnn_transfer::gpu::Gpu;
use bnn_transfer::kernels::float_dense::{self, DenseKernel};
use bnn_transfer::kernels::{float_conv, xnor_conv, xnor_dense};
use bnn_transfer::ops::{ConvShape, DenseShape, Padding};
use bnn_transfer::rng::Rng;

fn median(f: &dyn Fn() -> anyhow::Result<std::time::Duration>) -> anyhow::Result<f64> {
    f()?; // warm-up (pipeline compile, first touch)
    let mut t: Vec<f64> = (0..7)
        .map(|_| f().map(|d| d.as_secs_f64()))
        .collect::<Result<_, _>>()?;
    t.sort_by(f64::total_cmp);
    Ok(t[3])
}

/// Both float dense kernels over batch 1 ..= 9 (the small-batch one refuses batch ≥ 8).
fn crossover(gpu: &Gpu) -> anyhow::Result<()> {
    let mut rng = Rng::new(1);
    for (inf, outf) in [(4096usize, 4096usize), (1152, 512)] {
        let w: Vec<f32> = (0..outf * inf).map(|_| rng.range(-1.0, 1.0)).collect();
        let wf = gpu.upload(&w, "wf")?;
        for batch in 1..=9usize {
            let x: Vec<f32> = (0..batch * inf).map(|_| rng.range(-1.0, 1.0)).collect();
            let xf = gpu.upload(&x, "xf")?;
            let mut line = format!("dense {inf}→{outf} batch {batch}:");
            for kernel in [DenseKernel::SmallBatch, DenseKernel::Tiled] {
                let t = median(&|| {
                    let (d, _out) =
                        float_dense::encode_on(gpu, kernel, batch, inf, outf, &xf, &wf)?;
                    Ok(gpu.time(&[d])?.elapsed)
                });
                match t {
                    Ok(s) => line += &format!("  {kernel:?} {:8.3} ms", s * 1e3),
                    Err(_) => line += &format!("  {kernel:?} {:>8} ms", "-"),
                }
            }
            line += &format!("  (encode picks {:?})", DenseKernel::for_shape(batch, inf));
            println!("{line}");
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let which = std::env::args().nth(1).unwrap_or_default();
    let (do_xnor, do_float) = (which != "float", which != "xnor");
    let gpu = Gpu::new()?;
    if which == "crossover" {
        return crossover(&gpu);
    }
    println!(
        "device: {} [{}]",
        gpu.describe(),
        if gpu.timestamps {
            "timestamp queries"
        } else {
            "wall time"
        }
    );
    let mut rng = Rng::new(0);
    let report = |name: String, macs: u64, binary: Option<f64>, float: Option<f64>| {
        let gmacs = |s: f64| macs as f64 / s / 1e9;
        let cell = |t: Option<f64>| match t {
            Some(s) => format!("{:9.3} ms ({:7.2} GMAC/s)", s * 1e3, gmacs(s)),
            None => format!("{:>27}", "-"),
        };
        let ratio = match (binary, float) {
            (Some(b), Some(f)) => format!("{:6.2}x", f / b),
            _ => "-".into(),
        };
        println!(
            "{name:<26} xnor {}  float {}  float/xnor {ratio}",
            cell(binary),
            cell(float)
        );
    };
    for (side, c, k) in [
        (56usize, 64usize, 3usize),
        (28, 128, 3),
        (14, 256, 3),
        (7, 512, 3),
        (14, 256, 5),
    ] {
        let shape = ConvShape {
            batch: 1,
            in_h: side,
            in_w: side,
            in_c: c,
            out_c: c,
            kernel_h: k,
            kernel_w: k,
            stride: 1,
            pad: k / 2,
            padding: Padding::Zero,
        };
        let x: Vec<f32> = (0..side * side * c).map(|_| rng.range(-1.0, 1.0)).collect();
        let w: Vec<f32> = (0..c * k * k * c).map(|_| rng.range(-1.0, 1.0)).collect();
        let (xb, wb) = (
            bnn_transfer::bits::pack_rows(&x, c),
            bnn_transfer::bits::pack_rows(&w, c),
        );
        let (xg, wg) = (gpu.upload(&xb, "x")?, gpu.upload(&wb, "w")?);
        let (xf, wf) = (gpu.upload(&x, "xf")?, gpu.upload(&w, "wf")?);
        let binary = do_xnor
            .then(|| {
                median(&|| {
                    let (d, _out) = xnor_conv::encode(&gpu, &shape, &xg, &wg, None)?;
                    Ok(gpu.time(&[d])?.elapsed)
                })
            })
            .transpose()?;
        let float = do_float
            .then(|| {
                median(&|| {
                    let (d, _out) = float_conv::encode(&gpu, &shape, &xf, &wf)?;
                    Ok(gpu.time(&[d])?.elapsed)
                })
            })
            .transpose()?;
        report(
            format!("conv {side}²×{c}→{c} {k}×{k}"),
            shape.macs(),
            binary,
            float,
        );
    }
    for batch in [1usize, 64] {
        let (inf, outf) = (4096usize, 4096usize);
        let shape = DenseShape {
            batch,
            in_features: inf,
            out_features: outf,
        };
        let x: Vec<f32> = (0..batch * inf).map(|_| rng.range(-1.0, 1.0)).collect();
        let w: Vec<f32> = (0..outf * inf).map(|_| rng.range(-1.0, 1.0)).collect();
        let (xb, wb) = (
            bnn_transfer::bits::pack_rows(&x, inf),
            bnn_transfer::bits::pack_rows(&w, inf),
        );
        let (xg, wg) = (gpu.upload(&xb, "x")?, gpu.upload(&wb, "w")?);
        let (xf, wf) = (gpu.upload(&x, "xf")?, gpu.upload(&w, "wf")?);
        let binary = do_xnor
            .then(|| {
                median(&|| {
                    let (d, _out) = xnor_dense::encode(&gpu, &shape, &xg, &wg, None)?;
                    Ok(gpu.time(&[d])?.elapsed)
                })
            })
            .transpose()?;
        let float = do_float
            .then(|| {
                median(&|| {
                    let (d, _out) = float_dense::encode(&gpu, batch, inf, outf, &xf, &wf)?;
                    Ok(gpu.time(&[d])?.elapsed)
                })
            })
            .transpose()?;
        report(
            format!("dense 4096→4096 batch {batch}"),
            shape.macs(),
            binary,
            float,
        );
    }
    Ok(())
}
