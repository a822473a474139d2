//! Where a frozen extractor runs, decided in one place: [`ExtractorDevice`] is what a user asks
//! for, [`select_gpu_async`] the policy that turns it into a wgpu device or the CPU binary path,
//! and [`Runner`] the prepared extractor on it (the WGSL plan or the CPU path). Also the batch
//! size that keeps a loader's images within memory ([`loader_batch`]) and the feature rows an
//! extractor produces ([`FeatureSet`], [`signs`]).

use crate::bits::unpack_rows;
use crate::cpu::{CpuExtractor, Threads};
use crate::error::Result;
use crate::extractor::{Extractor, ExtractorFile};
use crate::gpu::Gpu;

/// Features of one split: `x` is `[n][dim]` f32 (±1 for the binary extractor).
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureSet {
    /// Features per image.
    pub dim: usize,
    /// `[n][dim]`, row-major.
    pub x: Vec<f32>,
    /// Label of each row.
    pub labels: Vec<usize>,
    /// Class names, index = label.
    pub classes: Vec<String>,
}

impl FeatureSet {
    /// Images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Where the frozen extractor runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ExtractorDevice {
    /// The XNOR kernels on a real GPU; the CPU binary path when the only adapter is a CPU (on
    /// lavapipe the CPU path is far faster: see `bnn bench`) or there is none.
    Auto,
    /// The XNOR kernels on whatever adapter wgpu selects, lavapipe included; the CPU path only
    /// when there is no adapter at all.
    Adapter,
    /// The XNOR kernels on the selected adapter; an error without one.
    Gpu,
    /// The library's CPU binary path (u64 popcount on every core).
    Cpu,
}

/// The wgpu device `device` asks for, or `None` for the CPU binary path, with a note to show the
/// user when the choice was not the obvious one (a CPU adapter passed over, no adapter at all).
pub async fn select_gpu_async(device: ExtractorDevice) -> Result<(Option<Gpu>, Option<String>)> {
    Ok(match device {
        ExtractorDevice::Cpu => (None, None),
        ExtractorDevice::Gpu => (Some(Gpu::new_async().await?), None),
        ExtractorDevice::Auto | ExtractorDevice::Adapter => {
            match Gpu::new_async().await.map_err(|e| e.to_string()) {
                Ok(g)
                    if device == ExtractorDevice::Auto
                        && g.info.device_type == wgpu::DeviceType::Cpu =>
                {
                    let name = if g.info.name.is_empty() {
                        "(unnamed)"
                    } else {
                        &g.info.name
                    };
                    let note = format!(
                        "the adapter {name} is a CPU: running the extractor on the CPU binary \
                         path, which is faster there (device `adapter` runs the kernels on it \
                         anyway)"
                    );
                    (None, Some(note))
                }
                Ok(g) => (Some(g), None),
                Err(why) => (
                    None,
                    Some(format!(
                        "no wgpu adapter ({why}); running the extractor on the CPU binary path"
                    )),
                ),
            }
        }
    })
}

/// Where the extractor runs.
#[derive(Debug)]
pub(crate) enum Runner {
    /// The WGSL kernels on a wgpu device.
    Gpu(Box<Extractor>),
    /// The library's CPU binary path (no wgpu adapter): the file and its prepared extractor.
    Cpu(Box<(ExtractorFile, CpuExtractor)>),
}

impl Runner {
    /// The CPU binary path for `file`, prepared once, on every core.
    pub(crate) fn cpu(file: ExtractorFile) -> Result<Self> {
        let ex = CpuExtractor::new(&file, &Threads::all()?)?;
        Ok(Runner::Cpu(Box::new((file, ex))))
    }

    /// The runner `device` asks for (the one device policy, [`select_gpu_async`]): the XNOR kernels on
    /// the chosen wgpu device, else the CPU binary path; with the note to show the user when the
    /// choice was not the obvious one.
    pub(crate) async fn open_async(
        file: ExtractorFile,
        device: ExtractorDevice,
    ) -> Result<(Self, Option<String>)> {
        let (gpu, note) = select_gpu_async(device).await?;
        let runner = match gpu {
            Some(g) => Runner::Gpu(Box::new(Extractor::new_async(&g, file).await?)),
            None => Runner::cpu(file)?,
        };
        Ok((runner, note))
    }

    /// Where it runs: the wgpu device, or the CPU path with its threads and kernels.
    pub(crate) fn describe(&self) -> String {
        match self {
            Runner::Gpu(e) => e.gpu().describe(),
            Runner::Cpu(c) => {
                let threads = match c.1.threads() {
                    1 => "1 thread".to_string(),
                    n => format!("{n} threads"),
                };
                // In a browser the portable kernels are compiled with WebAssembly SIMD.
                let simd = if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
                    ", WebAssembly SIMD"
                } else {
                    ""
                };
                format!(
                    "the CPU binary path ({threads}, {} kernels{simd})",
                    c.1.isa()
                )
            }
        }
    }

    /// The extractor file it runs.
    pub(crate) fn file(&self) -> &ExtractorFile {
        match self {
            Runner::Gpu(e) => e.file(),
            Runner::Cpu(c) => &c.0,
        }
    }

    /// Images the device runs in one go: the CPU path's [`CpuExtractor::max_batch`] (its buffers
    /// near [`BATCH_BYTES`](crate::cpu::extractor::BATCH_BYTES)), the WGSL runner's
    /// storage-binding limit.
    pub(crate) fn max_batch(&self) -> usize {
        match self {
            Runner::Gpu(e) => e.max_batch(),
            Runner::Cpu(c) => c.1.max_batch(),
        }
    }
}

/// Batches a data loader decodes ahead by default (`LoaderConfig::default().prefetch`, which the
/// loader module, absent on wasm32, defines; a test keeps the two equal).
pub const LOADER_PREFETCH: usize = 4;

/// The batch size and prefetch depth for a data loader that feeds an extractor of images of
/// `image_len` f32 values: at most `requested` images and `device_max` (what the device runs in
/// one go, [`FeatureExtractor::max_batch`](super::FeatureExtractor::max_batch)), and few enough that the batches a loader holds at once
/// (`prefetch` decoded ahead, one waiting, one in use) keep their images near
/// [`BATCH_BYTES`](crate::cpu::extractor::BATCH_BYTES); at least one image and one batch ahead.
/// A large input size shrinks the batch instead of exhausting memory.
pub fn loader_batch(image_len: usize, requested: usize, device_max: usize) -> (usize, usize) {
    let budget = crate::cpu::extractor::BATCH_BYTES;
    let image = (image_len as u64).saturating_mul(4).max(1);
    let prefetch = LOADER_PREFETCH;
    let fit = |prefetch: usize| (budget / image / (prefetch as u64 + 2)) as usize;
    let batch = requested.min(device_max).min(fit(prefetch)).max(1);
    let prefetch = if fit(prefetch) >= 1 {
        prefetch
    } else {
        ((budget / image) as usize)
            .saturating_sub(2)
            .clamp(1, prefetch)
    };
    (batch, prefetch)
}

/// ±1 features `[n][h·w·c]` (NHWC) from packed bits of a layer with `channels` channels.
pub fn signs(bits: &[u32], channels: usize) -> Vec<f32> {
    unpack_rows(bits, channels)
}
