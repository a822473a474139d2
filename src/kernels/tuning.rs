//! Tile sizes of the tiled kernels, chosen in one place from the adapter (device type and limits)
//! and the shape. Every choice is bit-exact; tuning only moves speed. The launchers' `encode`
//! functions use [`Tuning::for_gpu`]; `encode_with` variants take an explicit tile.

use crate::error::{Error, Result};
use crate::gpu::Gpu;

use super::ConvShape;

/// The output block of a tiled GEMM-shaped kernel: a workgroup of `wg_m × wg_n` invocations, each
/// computing `rm` rows (output pixels or batch rows) × `rn` columns (output channels), over depth
/// slices of `kc` elements staged in workgroup memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTile {
    pub wg_m: u32,
    pub wg_n: u32,
    pub rm: u32,
    pub rn: u32,
    /// Depth slice: u32 words for the XNOR conv (a multiple of 4, staged as vec4), f32 values for
    /// the float conv.
    pub kc: u32,
}

impl ConvTile {
    pub fn tile_m(&self) -> usize {
        (self.wg_m * self.rm) as usize
    }
    pub fn tile_n(&self) -> usize {
        (self.wg_n * self.rn) as usize
    }
    pub fn invocations(&self) -> u32 {
        self.wg_m * self.wg_n
    }

    /// Workgroup memory of the XNOR conv with this tile: activation words and their masks,
    /// weight words, the packed bits of the fused path, and the decoded output pixels.
    pub fn xnor_workgroup_bytes(&self) -> u32 {
        let kq = self.kc / 4;
        16 * kq * (2 * self.wg_m * self.rm + self.wg_n * self.rn)
            + 4 * (self.wg_m * self.rm * self.wg_n * self.rn / 32)
            + 16 * self.wg_m * self.rm
    }

    /// Checks the tile against the shader's register arrays and the device's limits.
    pub fn validate_xnor(&self, gpu: &Gpu) -> Result<()> {
        let ok = self.rm == 4
            && self.rn == 4
            && self.kc > 0
            && self.kc.is_multiple_of(4)
            && self.tile_n().is_multiple_of(32);
        if !ok {
            return Err(Error::Shape(format!(
                "xnor conv tile {self:?}: needs rm = rn = 4, kc a multiple of 4, tile_n a multiple of 32"
            )));
        }
        self.fits(gpu, self.xnor_workgroup_bytes())
    }

    /// Workgroup memory of the float conv with this tile (rows padded by one value).
    pub fn float_workgroup_bytes(&self) -> u32 {
        4 * self.kc * (self.wg_m * self.rm + 1 + self.wg_n * self.rn + 1) + 16 * self.wg_m * self.rm
    }

    /// Checks the tile against the float shader's register arrays and the device's limits.
    pub fn validate_float(&self, gpu: &Gpu) -> Result<()> {
        if !(self.rm == 4 && self.rn == 4 && self.kc > 0) {
            return Err(Error::Shape(format!(
                "float conv tile {self:?}: needs rm = rn = 4, kc > 0"
            )));
        }
        self.fits(gpu, self.float_workgroup_bytes())
    }

    pub(crate) fn fits(&self, gpu: &Gpu, workgroup_bytes: u32) -> Result<()> {
        let l = &gpu.limits;
        if self.invocations() > l.max_compute_invocations_per_workgroup
            || self.wg_n > l.max_compute_workgroup_size_x
            || self.wg_m > l.max_compute_workgroup_size_y
            || workgroup_bytes > l.max_compute_workgroup_storage_size
        {
            return Err(Error::Limits(format!(
                "tile {self:?} needs {} invocations and {workgroup_bytes} bytes of workgroup memory; \
                 the device allows {} and {}",
                self.invocations(),
                l.max_compute_invocations_per_workgroup,
                l.max_compute_workgroup_storage_size
            )));
        }
        Ok(())
    }
}

/// The tiles every launcher uses on one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// A CPU adapter (lavapipe, WARP, SwiftShader): one thread runs a whole workgroup, so tiles
    /// are smaller (more workgroups to spread over the cores, fewer live registers per SIMD lane).
    pub cpu: bool,
    /// Workgroup memory available, bytes.
    pub workgroup_bytes: u32,
    /// Invocations per workgroup allowed.
    pub invocations: u32,
}

impl Tuning {
    pub fn for_gpu(gpu: &Gpu) -> Tuning {
        Tuning {
            cpu: gpu.info.device_type == wgpu::DeviceType::Cpu,
            workgroup_bytes: gpu.limits.max_compute_workgroup_storage_size,
            invocations: gpu.limits.max_compute_invocations_per_workgroup,
        }
    }

    /// The XNOR conv tile for `shape`.
    pub fn xnor_conv_tile(&self, shape: &ConvShape) -> ConvTile {
        let k_words = (shape.kernel_h * shape.kernel_w * shape.in_words()) as u32;
        // Depth slice: up to 16 words (512 channels·taps), no deeper than the layer.
        let kc = k_words.next_multiple_of(4).min(16);
        let mut tile = if self.cpu {
            ConvTile {
                wg_m: 8,
                wg_n: 8,
                rm: 4,
                rn: 4,
                kc,
            }
        } else {
            ConvTile {
                wg_m: 16,
                wg_n: 16,
                rm: 4,
                rn: 4,
                kc,
            }
        };
        reshape(&mut tile, shape, 32);
        // Downlevel limits (16 KiB, 256 invocations) fit the defaults; smaller ones shrink the slice.
        while tile.kc > 4
            && (tile.xnor_workgroup_bytes() > self.workgroup_bytes
                || tile.invocations() > self.invocations)
        {
            tile.kc -= 4;
        }
        tile
    }

    /// The float conv (and dense) tile for `shape`.
    pub fn float_conv_tile(&self, shape: &ConvShape) -> ConvTile {
        let mut tile = if self.cpu {
            ConvTile {
                wg_m: 8,
                wg_n: 8,
                rm: 4,
                rn: 4,
                kc: 16,
            }
        } else {
            ConvTile {
                wg_m: 16,
                wg_n: 16,
                rm: 4,
                rn: 4,
                kc: 16,
            }
        };
        reshape(&mut tile, shape, 32);
        while tile.kc > 4
            && (tile.float_workgroup_bytes() > self.workgroup_bytes
                || tile.invocations() > self.invocations)
        {
            tile.kc -= 4;
        }
        tile
    }
}

/// Fits a tile to the layer: fewer pixel rows when the layer has few output pixels (giving the
/// invocations to channel columns while there are channels for them), and no more channel columns
/// than the layer has (rounded up to `n_align`, keeping at least `n_align`).
fn reshape(tile: &mut ConvTile, shape: &ConvShape, n_align: usize) {
    let pixels = shape.batch * shape.out_pixels_per_item();
    let channels = shape.out_c.next_multiple_of(n_align);
    while tile.wg_m > 1 && tile.tile_m() / 2 >= pixels {
        tile.wg_m /= 2;
        if tile.tile_n() * 2 <= channels {
            tile.wg_n *= 2;
        }
    }
    while tile.tile_n() > n_align && tile.tile_n() / 2 >= channels && tile.wg_n > 1 {
        tile.wg_n /= 2;
    }
}
