//! XNOR/popcount conv2d (`shaders/xnor_conv.wgsl`): packed NHWC activations × packed OHWI weights →
//! integer dot products, or packed signs through the fused threshold.

use bytemuck::{Pod, Zeroable};

use super::tuning::{ConvTile, Tuning};
use super::{Shader, Threshold, batch_chunk, over_chunks};
use crate::bits::words;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, PipelineKey, Storage};

/// How out-of-image taps are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Padding {
    /// Zeros (burn's conv): the tap is skipped and K counts valid taps only.
    Zero,
    /// +1 activations (LCE's cheaper option): every tap counts.
    One,
}

/// Shape of a conv layer (square stride and padding; kernel may be rectangular).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Images.
    pub batch: usize,
    /// Input height, pixels.
    pub in_h: usize,
    /// Input width, pixels.
    pub in_w: usize,
    /// Input channels.
    pub in_c: usize,
    /// Output channels.
    pub out_c: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Padding on every side, pixels.
    pub pad: usize,
    /// What the padding taps contribute.
    pub padding: Padding,
}

impl ConvShape {
    /// Output height (floor division).
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.pad - self.kernel_h) / self.stride + 1
    }
    /// Output width (floor division).
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.pad - self.kernel_w) / self.stride + 1
    }
    /// Packed words per input pixel (`ceil(in_c/32)`).
    pub fn in_words(&self) -> usize {
        words(self.in_c)
    }
    /// Packed words per output pixel (`ceil(out_c/32)`).
    pub fn out_words(&self) -> usize {
        words(self.out_c)
    }
    /// Packed input words per image.
    pub fn input_words_per_item(&self) -> usize {
        self.in_h * self.in_w * self.in_words()
    }
    /// Packed weight words, OHWI: `out_c × kernel_h × kernel_w × in_words`.
    pub fn weight_words(&self) -> usize {
        self.out_c * self.kernel_h * self.kernel_w * self.in_words()
    }
    /// Output pixels per image.
    pub fn out_pixels_per_item(&self) -> usize {
        self.out_h() * self.out_w()
    }
    /// Multiply-accumulates of the whole batch, every tap counted (padding taps included).
    pub fn macs(&self) -> u64 {
        (self.batch
            * self.out_pixels_per_item()
            * self.out_c
            * self.kernel_h
            * self.kernel_w
            * self.in_c) as u64
    }

    /// Checks that every size is positive and the kernel fits the padded input ([`Error::Shape`]
    /// otherwise).
    pub fn validate(&self) -> Result<()> {
        let ok = self.batch > 0
            && self.in_c > 0
            && self.out_c > 0
            && self.kernel_h > 0
            && self.kernel_w > 0
            && self.stride > 0
            && self.in_h + 2 * self.pad >= self.kernel_h
            && self.in_w + 2 * self.pad >= self.kernel_w;
        if !ok {
            return Err(Error::Shape(format!("invalid conv shape {self:?}")));
        }
        Ok(())
    }

    /// The dense layer `[B][in] × [out][in]ᵀ` as a 1×1 conv over `batch` one-pixel images: the
    /// one place a dense layer becomes a conv (the CPU path, the binary and the float launchers).
    pub fn dense(batch: usize, in_features: usize, out_features: usize) -> ConvShape {
        ConvShape {
            batch,
            in_h: 1,
            in_w: 1,
            in_c: in_features,
            out_c: out_features,
            kernel_h: 1,
            kernel_w: 1,
            stride: 1,
            pad: 0,
            padding: Padding::Zero,
        }
    }

    pub(crate) fn params(&self) -> ConvParams {
        ConvParams {
            batch: self.batch as u32,
            in_h: self.in_h as u32,
            in_w: self.in_w as u32,
            in_c: self.in_c as u32,
            out_h: self.out_h() as u32,
            out_w: self.out_w() as u32,
            out_c: self.out_c as u32,
            stride: self.stride as u32,
            pad: self.pad as u32,
            kernel_h: self.kernel_h as u32,
            kernel_w: self.kernel_w as u32,
            _pad: 0,
        }
    }
}

/// The `Params` block shared by the conv shaders.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct ConvParams {
    pub batch: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub in_c: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub out_c: u32,
    pub stride: u32,
    pub pad: u32,
    pub kernel_h: u32,
    pub kernel_w: u32,
    pub _pad: u32,
}

fn pipeline_key(
    shape: &ConvShape,
    tile: &ConvTile,
    shader: Shader,
    entry: &'static str,
) -> PipelineKey {
    let one_pad = shape.padding == Padding::One;
    let masked = !one_pad && shape.pad > 0;
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    PipelineKey::new(
        shader,
        entry,
        &[
            ("WORDS", shape.in_words() as f64),
            ("KH", shape.kernel_h as f64),
            ("KW", shape.kernel_w as f64),
            ("ONE_PAD", flag(one_pad)),
            ("MASKED", flag(masked)),
            ("WG_M", tile.wg_m as f64),
            ("WG_N", tile.wg_n as f64),
            ("KC", tile.kc as f64),
        ],
    )
}

/// Encodes the conv over device buffers. With `thresholds`, the output is packed signs
/// (`[N][OH][OW][ceil(O/32)]`); without, i32 dot products (`[N][OH][OW][O]`, stored as u32 bits).
/// The tile comes from [`Tuning::for_gpu`].
pub fn encode(
    gpu: &Gpu,
    shape: &ConvShape,
    input: &Storage<u32>,
    weights: &Storage<u32>,
    thresholds: Option<&Storage<Threshold>>,
) -> Result<(Dispatch, Storage<u32>)> {
    let tile = Tuning::for_gpu(gpu).xnor_conv_tile(shape);
    encode_with(gpu, shape, &tile, input, weights, thresholds)
}

/// [`encode`] with an explicit tile (benchmarks and tests of the tiling).
pub fn encode_with(
    gpu: &Gpu,
    shape: &ConvShape,
    tile: &ConvTile,
    input: &Storage<u32>,
    weights: &Storage<u32>,
    thresholds: Option<&Storage<Threshold>>,
) -> Result<(Dispatch, Storage<u32>)> {
    shape.validate()?;
    tile.validate_xnor(&gpu.adapter_limits(), shape)?;
    if input.len != shape.batch * shape.input_words_per_item()
        || weights.len != shape.weight_words()
    {
        return Err(Error::Shape(format!(
            "xnor_conv: buffers of {} input and {} weight words do not fit {shape:?}",
            input.len, weights.len
        )));
    }
    // The subgroup path where each subgroup is one row of the workgroup.
    let ballots = gpu.subgroup_size() == Some(tile.wg_n);
    encode_entry(gpu, shape, tile, input, weights, thresholds, ballots)
}

/// The fused conv (`thresholds` given) through the subgroup entry point `conv_bits_subgroup`
/// whatever the tile: ballots where each subgroup is one row of the workgroup, the atomic path
/// inside the same kernel otherwise (tests of both). An error where the device has no subgroups.
pub fn encode_bits_subgroup(
    gpu: &Gpu,
    shape: &ConvShape,
    tile: &ConvTile,
    input: &Storage<u32>,
    weights: &Storage<u32>,
    thresholds: &Storage<Threshold>,
) -> Result<(Dispatch, Storage<u32>)> {
    if !gpu.subgroups {
        return Err(Error::Limits(format!(
            "{}: the device has no subgroup operations",
            gpu.info.name
        )));
    }
    shape.validate()?;
    tile.validate_xnor(&gpu.adapter_limits(), shape)?;
    encode_entry(gpu, shape, tile, input, weights, Some(thresholds), true)
}

fn encode_entry(
    gpu: &Gpu,
    shape: &ConvShape,
    tile: &ConvTile,
    input: &Storage<u32>,
    weights: &Storage<u32>,
    thresholds: Option<&Storage<Threshold>>,
    ballots: bool,
) -> Result<(Dispatch, Storage<u32>)> {
    let pixels = shape.batch * shape.out_pixels_per_item();
    let tiles = tile.workgroups(shape) as u32;
    let params = gpu.uniform(&shape.params());
    let (shader, entry, label, out) = match thresholds {
        None => (
            Shader::XnorConv,
            "conv_dot",
            "xnor_conv_dot",
            gpu.zeros::<u32>(pixels * shape.out_c, "conv dots")?,
        ),
        Some(_) if ballots => (
            Shader::XnorConvSubgroup,
            "conv_bits_subgroup",
            "xnor_conv_bits",
            gpu.zeros::<u32>(pixels * shape.out_words(), "conv bits")?,
        ),
        Some(_) => (
            Shader::XnorConv,
            "conv_bits",
            "xnor_conv_bits",
            gpu.zeros::<u32>(pixels * shape.out_words(), "conv bits")?,
        ),
    };
    let pipeline = gpu.pipeline(pipeline_key(shape, tile, shader, entry))?;
    let mut buffers = vec![&params, &input.buffer, &weights.buffer, &out.buffer];
    if let Some(th) = thresholds {
        buffers.push(&th.buffer);
    }
    let bind_group = gpu.bind(&pipeline, &buffers);
    let d = Dispatch {
        pipeline,
        bind_group,
        workgroups: gpu.grid(tiles),
        label,
    };
    Ok((d, out))
}

fn run(
    gpu: &Gpu,
    shape: &ConvShape,
    input: &[u32],
    weights: &[u32],
    thresholds: Option<&[Threshold]>,
) -> Result<Vec<u32>> {
    shape.validate()?;
    let in_item = shape.input_words_per_item();
    let out_item = shape.out_pixels_per_item()
        * if thresholds.is_some() {
            shape.out_words()
        } else {
            shape.out_c
        };
    if input.len() != shape.batch * in_item {
        return Err(Error::Shape(format!(
            "xnor_conv: {} input words for {shape:?}",
            input.len()
        )));
    }
    let chunk = batch_chunk(
        gpu,
        "xnor_conv",
        shape.batch,
        &[("input", in_item * 4), ("output", out_item * 4)],
    )?;
    let w = gpu.upload(weights, "conv weights")?;
    let th = thresholds
        .map(|t| gpu.upload(t, "thresholds"))
        .transpose()?;
    over_chunks(shape.batch, chunk, |range| {
        let part = ConvShape {
            batch: range.len(),
            ..*shape
        };
        let x = gpu.upload(
            &input[range.start * in_item..range.end * in_item],
            "conv input",
        )?;
        let (d, out) = encode(gpu, &part, &x, &w, th.as_ref())?;
        gpu.run(&[d])?;
        gpu.read(&out)
    })
}

/// Dot products on the device, host in and out.
pub fn run_dot(gpu: &Gpu, shape: &ConvShape, input: &[u32], weights: &[u32]) -> Result<Vec<i32>> {
    Ok(bytemuck::cast_vec(run(gpu, shape, input, weights, None)?))
}

/// Fused conv + threshold on the device, host in and out.
pub fn run_bits(
    gpu: &Gpu,
    shape: &ConvShape,
    input: &[u32],
    weights: &[u32],
    thresholds: &[Threshold],
) -> Result<Vec<u32>> {
    if thresholds.len() != shape.out_c {
        return Err(Error::Shape(format!(
            "{} thresholds for {} channels",
            thresholds.len(),
            shape.out_c
        )));
    }
    run(gpu, shape, input, weights, Some(thresholds))
}

/// Scalar reference: the dot product of output (n, oy, ox, o).
pub fn reference_dot_at(
    shape: &ConvShape,
    input: &[u32],
    weights: &[u32],
    n: usize,
    oy: usize,
    ox: usize,
    o: usize,
) -> i32 {
    let wpp = shape.in_words();
    let mut mismatches = 0u32;
    let mut taps = 0usize;
    for ky in 0..shape.kernel_h {
        for kx in 0..shape.kernel_w {
            let iy = (oy * shape.stride + ky) as isize - shape.pad as isize;
            let ix = (ox * shape.stride + kx) as isize - shape.pad as isize;
            let w_base = ((o * shape.kernel_h + ky) * shape.kernel_w + kx) * wpp;
            let inside =
                iy >= 0 && ix >= 0 && (iy as usize) < shape.in_h && (ix as usize) < shape.in_w;
            if inside {
                let a_base = ((n * shape.in_h + iy as usize) * shape.in_w + ix as usize) * wpp;
                for w in 0..wpp {
                    mismatches += (input[a_base + w] ^ weights[w_base + w]).count_ones();
                }
                taps += 1;
            } else if shape.padding == Padding::One {
                for w in 0..wpp {
                    mismatches += weights[w_base + w].count_ones();
                }
                taps += 1;
            }
        }
    }
    (taps * shape.in_c) as i32 - 2 * mismatches as i32
}

/// Scalar reference: all dot products, `[N][OH][OW][O]`.
pub fn reference_dot(shape: &ConvShape, input: &[u32], weights: &[u32]) -> Vec<i32> {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    let mut out = Vec::with_capacity(shape.batch * oh * ow * shape.out_c);
    for n in 0..shape.batch {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..shape.out_c {
                    out.push(reference_dot_at(shape, input, weights, n, oy, ox, o));
                }
            }
        }
    }
    out
}

/// Scalar reference of the fused path: dots, then the threshold.
pub fn reference_bits(
    shape: &ConvShape,
    input: &[u32],
    weights: &[u32],
    thresholds: &[Threshold],
) -> Vec<u32> {
    super::threshold::reference(&reference_dot(shape, input, weights), thresholds)
}
