//! A first rough timing of one binary conv against the float conv of the same shape on the default
//! adapter (GPU time from timestamp queries where available). The benchmark suite is `bnn bench`.
//! Run: `cargo run --release --example rough_timing`.

use bnn_transfer::gpu::Gpu;
use bnn_transfer::kernels::{ConvShape, Padding, float_conv, xnor_conv};
use bnn_transfer::rng::Rng;

fn main() -> anyhow::Result<()> {
    let gpu = Gpu::new()?;
    println!("device: {}", gpu.describe());
    let mut rng = Rng::new(0);
    for (side, c) in [(56usize, 64usize), (28, 128), (14, 256), (7, 512)] {
        let shape = ConvShape {
            batch: 1,
            in_h: side,
            in_w: side,
            in_c: c,
            out_c: c,
            kernel_h: 3,
            kernel_w: 3,
            stride: 1,
            pad: 1,
            padding: Padding::Zero,
        };
        let x: Vec<f32> = (0..side * side * c).map(|_| rng.range(-1.0, 1.0)).collect();
        let w: Vec<f32> = (0..c * 9 * c).map(|_| rng.range(-1.0, 1.0)).collect();
        let (xb, wb) = (
            bnn_transfer::bits::pack_rows(&x, c),
            bnn_transfer::bits::pack_rows(&w, c),
        );
        let (xg, wg) = (gpu.upload(&xb, "x")?, gpu.upload(&wb, "w")?);
        let (xf, wf) = (gpu.upload(&x, "xf")?, gpu.upload(&w, "wf")?);
        let median = |f: &dyn Fn() -> anyhow::Result<std::time::Duration>| -> anyhow::Result<f64> {
            f()?; // warm-up (pipeline compile, first touch)
            let mut t: Vec<f64> = (0..7)
                .map(|_| f().map(|d| d.as_secs_f64()))
                .collect::<Result<_, _>>()?;
            t.sort_by(f64::total_cmp);
            Ok(t[3])
        };
        let binary = median(&|| {
            let (d, _out) = xnor_conv::encode(&gpu, &shape, &xg, &wg, None)?;
            Ok(gpu.time(&[d])?.elapsed)
        })?;
        let float = median(&|| {
            let (d, _out) = float_conv::encode(&gpu, &shape, &xf, &wf)?;
            Ok(gpu.time(&[d])?.elapsed)
        })?;
        let gmacs = |s: f64| shape.macs() as f64 / s / 1e9;
        println!(
            "{side:>3}x{side:<3} {c:>3}->{c:<3} 3x3  xnor {:8.3} ms ({:7.2} GMAC/s)  float {:8.3} ms ({:6.2} GMAC/s)  float/xnor {:5.2}x  [{}]",
            binary * 1e3,
            gmacs(binary),
            float * 1e3,
            gmacs(float),
            float / binary,
            if gpu.timestamps {
                "timestamp queries"
            } else {
                "wall time"
            }
        );
    }
    Ok(())
}
