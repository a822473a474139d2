//! The real-valued epilogue of a Bi-Real block on the device (`shaders/real_epilogue.wgsl`): folded
//! batch norm, shortcut and RPReLU in f32, per output element of a conv map, optionally max-pooling
//! the pre-activations first. What it computes, operation by operation, is
//! [`crate::ops::real_epilogue`]; the kernel matches its
//! [`reference`](crate::ops::real_epilogue::reference) bit for bit.

use bytemuck::{Pod, Zeroable};

use super::{Shader, WORKGROUP, check_loop_budget, dispatch};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, PipelineKey, Storage};
use crate::ops::FloatThreshold;
use crate::ops::real_epilogue::{EpilogueShape, ProjectionRef, RealChannel, Window};

/// The constants buffer of the kernel: the channels' five values each (`[C][5]`), then a
/// projection's weights (`[C][Cs]`) and bias (`[C]`).
pub fn constants(channels: &[RealChannel], projection: Option<ProjectionRef>) -> Vec<f32> {
    let mut v: Vec<f32> = channels.iter().flat_map(|c| c.to_array()).collect();
    if let Some(p) = projection {
        v.extend_from_slice(p.weight);
        v.extend_from_slice(p.bias);
    }
    v
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch: u32,
    h: u32,
    w: u32,
    channels: u32,
    in_h: u32,
    in_w: u32,
    kernel: u32,
    stride: u32,
    inv: f32,
    pool_h: u32,
    pool_w: u32,
    pool_k: u32,
    pool_s: u32,
    shortcut_c: u32,
    _pad: [u32; 2],
}

/// The epilogue over buffers on the device. `pre` holds i32 (or f32 when `pre_float`) values as
/// 32-bit words: `[batch][h][w][C]`, or with `pool` the unpooled conv map
/// `[batch][pool.in_h][pool.in_w][C]`, max-pooled in the kernel with `pool`'s window (as
/// `ops::pool::reference_f32` does: row-major, a later value replaces the maximum only if greater).
/// `constants` is laid out by [`constants`]; `shortcut` is the previous layer's real output when
/// `shape` has a shortcut. Returns the dispatch and the real output `[batch][h][w][C]`.
pub fn encode(
    gpu: &Gpu,
    shape: &EpilogueShape,
    pool: Option<Window>,
    (pre, pre_float): (&Storage<u32>, bool),
    constants: &Storage<f32>,
    shortcut: Option<&Storage<f32>>,
) -> Result<(Dispatch, Storage<f32>)> {
    let launch = Launch::new(gpu, shape, pool, (pre, pre_float), constants, shortcut)?;
    check_loop_budget(
        &gpu.adapter_limits(),
        "the real epilogue's pool and shortcut windows",
        launch.loops,
    )?;
    let pipeline = gpu.pipeline(launch.key("real_epilogue", pre_float))?;
    let out = gpu.zeros::<f32>(shape.len(), "real output")?;
    let buffers = [
        &launch.params,
        &pre.buffer,
        launch.shortcut_or(pre),
        &constants.buffer,
        &out.buffer,
    ];
    let d = dispatch(gpu, pipeline, &buffers, shape.len(), "real_epilogue");
    Ok((d, out))
}

/// [`encode`] and the signs of its output through `thresholds` in the same dispatch (one
/// invocation per output word of 32 channels): the dispatch, the real output and the packed
/// signs `[batch][h][w][words(C)]`. `None` where one invocation's 32 channels would exceed the
/// driver's loop budget (Mesa llvmpipe) or the device binds fewer than six storage buffers per
/// stage: then [`encode`] and `threshold::encode_f32`.
pub fn encode_signs(
    gpu: &Gpu,
    shape: &EpilogueShape,
    pool: Option<Window>,
    (pre, pre_float): (&Storage<u32>, bool),
    constants: &Storage<f32>,
    shortcut: Option<&Storage<f32>>,
    thresholds: &Storage<FloatThreshold>,
) -> Result<Option<WithSigns>> {
    let launch = Launch::new(gpu, shape, pool, (pre, pre_float), constants, shortcut)?;
    if thresholds.len != shape.channels {
        return Err(Error::Shape(format!(
            "real epilogue {shape:?}: {} thresholds",
            thresholds.len
        )));
    }
    let per_word = 32 * launch.loops + 1;
    let over_budget = gpu
        .adapter_limits()
        .loop_budget
        .is_some_and(|b| per_word > b);
    // Six storage bindings; a downlevel device (WebGL-class limits) may allow only four.
    if over_budget || gpu.limits.max_storage_buffers_per_shader_stage < 6 {
        return Ok(None);
    }
    let pipeline = gpu.pipeline(launch.key("real_epilogue_signs", pre_float))?;
    let out = gpu.zeros::<f32>(shape.len(), "real output")?;
    let words = shape.batch * shape.h * shape.w * crate::bits::words(shape.channels);
    let signs = gpu.zeros::<u32>(words, "real layer signs")?;
    let buffers = [
        &launch.params,
        &pre.buffer,
        launch.shortcut_or(pre),
        &constants.buffer,
        &out.buffer,
        &signs.buffer,
        &thresholds.buffer,
    ];
    let d = dispatch(gpu, pipeline, &buffers, words, "real_epilogue_signs");
    Ok(Some((d, out, signs)))
}

/// [`encode_signs`]' dispatch, real output and packed signs.
pub type WithSigns = (Dispatch, Storage<f32>, Storage<u32>);

/// What both entry points share: the checked shapes, the parameters and the loop bound.
struct Launch<'a> {
    shape: &'a EpilogueShape,
    pool: Option<Window>,
    shortcut: Option<&'a Storage<f32>>,
    params: wgpu::Buffer,
    /// Loop iterations of one output element, an upper bound counting each loop's exit.
    loops: u64,
}

impl<'a> Launch<'a> {
    fn new(
        gpu: &Gpu,
        shape: &'a EpilogueShape,
        pool: Option<Window>,
        (pre, _): (&Storage<u32>, bool),
        constants: &Storage<f32>,
        shortcut: Option<&'a Storage<f32>>,
    ) -> Result<Self> {
        shape.validate()?;
        let (c, cs) = (shape.channels, shape.shortcut_channels());
        let pre_len = pool.map_or(shape.len(), |p| shape.batch * p.in_h * p.in_w * c);
        if let Some(p) = pool {
            let fits = |out: usize, inp: usize| (out - 1) * p.stride + p.kernel <= inp;
            if p.kernel == 0 || p.stride == 0 || !fits(shape.h, p.in_h) || !fits(shape.w, p.in_w) {
                return Err(Error::Shape(format!(
                    "real epilogue {shape:?}: the pool window {p:?} leaves its map"
                )));
            }
        }
        let constants_len = 5 * c + shape.project.map_or(0, |_| c * cs + c);
        if pre.len != pre_len
            || constants.len != constants_len
            || shortcut.map_or(0, |s| s.len) != shape.shortcut_len()
            || shortcut.is_some() != shape.shortcut.is_some()
        {
            return Err(Error::Shape(format!(
                "real epilogue {shape:?}: buffers of {} pre-activations, {} constants",
                pre.len, constants.len
            )));
        }
        let win = shape.shortcut.unwrap_or(Window {
            in_h: shape.h,
            in_w: shape.w,
            kernel: 0,
            stride: 1,
        });
        let pk = pool.map_or(0, |p| p.kernel);
        let per_channel = win.kernel * (win.kernel + 1) + 2;
        let shortcut_loops = if shape.project.is_some() {
            cs * per_channel
        } else {
            per_channel
        };
        let params = gpu.uniform(&Params {
            batch: shape.batch as u32,
            h: shape.h as u32,
            w: shape.w as u32,
            channels: c as u32,
            in_h: win.in_h as u32,
            in_w: win.in_w as u32,
            kernel: win.kernel as u32,
            stride: win.stride as u32,
            inv: shape.shortcut.map_or(0.0, |s| s.inv()),
            pool_h: pool.map_or(0, |p| p.in_h as u32),
            pool_w: pool.map_or(0, |p| p.in_w as u32),
            pool_k: pk as u32,
            pool_s: pool.map_or(1, |p| p.stride as u32),
            shortcut_c: cs as u32,
            _pad: [0; 2],
        });
        Ok(Launch {
            shape,
            pool,
            shortcut,
            params,
            loops: (shortcut_loops + pk * (pk + 1) + 1) as u64,
        })
    }

    fn key(&self, entry: &'static str, pre_float: bool) -> PipelineKey {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        PipelineKey::new(
            Shader::RealEpilogue,
            entry,
            &[
                ("WG", WORKGROUP as f64),
                ("PRE_FLOAT", flag(pre_float)),
                ("SHORTCUT", flag(self.shortcut.is_some())),
                ("POOL", flag(self.pool.is_some())),
                ("PROJECT", flag(self.shape.project.is_some())),
            ],
        )
    }

    /// The shortcut's buffer; without a shortcut the binding is unused and the (read-only)
    /// pre-activations fill it.
    fn shortcut_or<'b>(&'b self, pre: &'b Storage<u32>) -> &'b wgpu::Buffer {
        self.shortcut.map_or(&pre.buffer, |s| &s.buffer)
    }
}

/// What [`run`] computes from.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// Pre-activations as raw 32-bit words (i32, or f32 when `pre_float`), unpooled when `pool`
    /// is given.
    pub pre: &'a [u32],
    /// Whether `pre` holds f32.
    pub pre_float: bool,
    /// The max-pool window over an unpooled `pre`.
    pub pool: Option<Window>,
    /// The channels' constants.
    pub channels: &'a [RealChannel],
    /// The previous layer's real output, with a shortcut.
    pub shortcut: Option<&'a [f32]>,
    /// A projection shortcut's folded 1×1 conv.
    pub projection: Option<ProjectionRef<'a>>,
}

/// On the device, host in and out.
pub fn run(gpu: &Gpu, shape: &EpilogueShape, x: &Inputs) -> Result<Vec<f32>> {
    let p = gpu.upload(x.pre, "pre-activations")?;
    let k = gpu.upload(&constants(x.channels, x.projection), "real constants")?;
    let s = x.shortcut.map(|s| gpu.upload(s, "shortcut")).transpose()?;
    let (d, out) = encode(gpu, shape, x.pool, (&p, x.pre_float), &k, s.as_ref())?;
    gpu.run(&[d])?;
    gpu.read(&out)
}
