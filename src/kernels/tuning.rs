//! Tile sizes of the tiled kernels: a pure function of the adapter's [`AdapterLimits`] and the
//! layer's shape, so the choice for any adapter (a phone GPU under downlevel limits, an H100,
//! lavapipe) can be computed and checked without a device. Every choice is bit-exact; tuning only
//! moves speed. The launchers' `encode` functions use [`Tuning::for_gpu`]; `encode_with` variants
//! take an explicit tile.
//!
//! The workgroup memory of a tile is computed here once per shader ([`ConvTile::xnor_workgroup_bytes`],
//! [`ConvTile::float_workgroup_bytes`]) from the shaders' `var<workgroup>` declarations; both the
//! tile choice and [`ConvTile::validate_xnor`] / [`ConvTile::validate_float`] use it, and a test
//! checks it against the sizes naga computes from the WGSL itself.

use crate::error::{Error, Result};
use crate::gpu::AdapterLimits;

use crate::ops::ConvShape;

/// The output block of a tiled GEMM-shaped kernel: a workgroup of `wg_m × wg_n` invocations, each
/// computing `rm` rows (output pixels or batch rows) × `rn` columns (output channels), over depth
/// slices of `kc` elements staged in workgroup memory. The shaders' workgroup size is
/// `(wg_n, wg_m)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvTile {
    /// Invocations along the rows (the workgroup's y size).
    pub wg_m: u32,
    /// Invocations along the columns (the workgroup's x size).
    pub wg_n: u32,
    /// Rows per invocation.
    pub rm: u32,
    /// Columns per invocation.
    pub rn: u32,
    /// Depth slice, a multiple of 4 (staged as vec4): u32 words for the XNOR conv, values for the
    /// float conv.
    pub kc: u32,
}

/// The size WebGPU charges for one `var<workgroup>` of `bytes` bytes (each variable is rounded up
/// to 16 bytes).
const fn workgroup_var(bytes: u32) -> u32 {
    bytes.next_multiple_of(16)
}

impl ConvTile {
    /// Rows of output per workgroup (`wg_m × rm`).
    pub fn tile_m(&self) -> usize {
        (self.wg_m * self.rm) as usize
    }
    /// Output channels per workgroup (`wg_n × rn`).
    pub fn tile_n(&self) -> usize {
        (self.wg_n * self.rn) as usize
    }
    /// Invocations per workgroup (`wg_m × wg_n`).
    pub fn invocations(&self) -> u32 {
        self.wg_m * self.wg_n
    }

    /// Workgroup memory of `shaders/xnor_conv.wgsl` with this tile, variable by variable:
    /// `a_tile` and `m_tile` (`KQ·TILE_M` `vec4<u32>` each), `b_tile` (`KQ·TILE_N` `vec4<u32>`),
    /// `bits` (`TILE_M·TILE_N/32` u32) and `pix` (`TILE_M` `vec4<i32>`).
    pub fn xnor_workgroup_bytes(&self) -> u32 {
        let (tm, tn, kq) = (self.wg_m * self.rm, self.wg_n * self.rn, self.kc / 4);
        2 * workgroup_var(16 * kq * tm)
            + workgroup_var(16 * kq * tn)
            + workgroup_var(4 * (tm * tn / 32))
            + workgroup_var(16 * tm)
    }

    /// Workgroup memory of `shaders/float_conv.wgsl` with this tile, variable by variable:
    /// `a_tile` (`KQ·TILE_M` `vec4<f32>`), `b_tile` (`KQ·TILE_N` `vec4<f32>`) and `pix` (`TILE_M`
    /// `vec4<i32>`). The f16 variant (`float_conv.wgsl` with `alias Real = f16`) stages `vec4<f16>`, half of the two
    /// slices, so a tile that fits the f32 kernel fits it too.
    pub fn float_workgroup_bytes(&self) -> u32 {
        let (tm, tn, kq) = (self.wg_m * self.rm, self.wg_n * self.rn, self.kc / 4);
        workgroup_var(16 * kq * tm) + workgroup_var(16 * kq * tn) + workgroup_var(16 * tm)
    }

    /// Upper bound on the loop iterations one invocation of `shaders/float_conv.wgsl` (or its f16
    /// variant) runs over `shape` with this tile, counting each loop's exiting pass too (what
    /// llvmpipe's loop budget counts): the pixel decode, per depth slice the two staging loops
    /// (their 4-value inner loops in full), the slice's `kq` loop and the slice loop itself, then
    /// the output loops.
    pub fn float_loop_iterations(&self, shape: &ConvShape) -> u64 {
        let (wg, tm, tn, kq) = (
            self.invocations() as u64,
            self.tile_m() as u64,
            self.tile_n() as u64,
            (self.kc / 4) as u64,
        );
        let k = (shape.kernel_h * shape.kernel_w * shape.in_c) as u64;
        let slices = k.div_ceil(self.kc as u64);
        let stage = |len: u64| len.div_ceil(wg) * (1 + 5) + 1;
        let per_slice = stage(kq * tm) + stage(kq * tn) + kq + 1 + 1;
        tm.div_ceil(wg) + 1 + slices * per_slice + 1 + self.output_loops()
    }

    /// Upper bound on the loop iterations one invocation of `shaders/xnor_conv.wgsl` runs over
    /// `shape` with this tile (either entry point), counted as in [`Self::float_loop_iterations`];
    /// the 4-word inner staging loops count in full.
    pub fn xnor_loop_iterations(&self, shape: &ConvShape) -> u64 {
        let (wg, tm, tn, kq) = (
            self.invocations() as u64,
            self.tile_m() as u64,
            self.tile_n() as u64,
            (self.kc / 4) as u64,
        );
        let k_words = (shape.kernel_h * shape.kernel_w * shape.in_words()) as u64;
        let slices = k_words.div_ceil(self.kc as u64);
        let stage = |len: u64| len.div_ceil(wg) * (1 + 5) + 1;
        let per_slice = stage(kq * tm) + stage(kq * tn) + kq + 1 + 1;
        let bits = 2 * ((tm * tn / 32).div_ceil(wg) + 1);
        bits + tm.div_ceil(wg) + 1 + slices * per_slice + 1 + self.output_loops()
    }

    /// The output loops: RM rows, each RN channels.
    fn output_loops(&self) -> u64 {
        let (rm, rn) = (self.rm as u64, self.rn as u64);
        rm + 1 + rm * (rn + 1)
    }

    /// The shape rules of the XNOR shader: its register arrays (rm = rn = 4), vec4 staging (kc a
    /// multiple of 4) and whole output words per tile (tile_n a multiple of 32).
    fn xnor_shape_ok(&self) -> bool {
        self.rm == 4
            && self.rn == 4
            && self.wg_m > 0
            && self.wg_n > 0
            && self.kc > 0
            && self.kc.is_multiple_of(4)
            && self.tile_n().is_multiple_of(32)
    }

    /// The shape rules of the float shader: its register arrays (rm = rn = 4) and vec4 staging
    /// (kc a multiple of 4).
    fn float_shape_ok(&self) -> bool {
        self.rm == 4
            && self.rn == 4
            && self.wg_m > 0
            && self.wg_n > 0
            && self.kc > 0
            && self.kc.is_multiple_of(4)
    }

    /// Checks the tile against the XNOR shader's register arrays and the device's limits over
    /// `shape`.
    pub fn validate_xnor(&self, limits: &AdapterLimits, shape: &ConvShape) -> Result<()> {
        if !self.xnor_shape_ok() {
            return Err(Error::Shape(format!(
                "xnor conv tile {self:?}: needs rm = rn = 4, kc a multiple of 4, tile_n a multiple of 32"
            )));
        }
        self.check_fits(limits, self.xnor_workgroup_bytes())?;
        self.check_loops(limits, shape, self.xnor_loop_iterations(shape))
    }

    /// Checks the tile against the float shader's register arrays and the device's limits over
    /// `shape`.
    pub fn validate_float(&self, limits: &AdapterLimits, shape: &ConvShape) -> Result<()> {
        if !self.float_shape_ok() {
            return Err(Error::Shape(format!(
                "float conv tile {self:?}: needs rm = rn = 4, kc a multiple of 4"
            )));
        }
        self.check_fits(limits, self.float_workgroup_bytes())?;
        self.check_loops(limits, shape, self.float_loop_iterations(shape))
    }

    fn check_loops(
        &self,
        limits: &AdapterLimits,
        shape: &ConvShape,
        iterations: u64,
    ) -> Result<()> {
        super::check_loop_budget(
            limits,
            format_args!(
                "tile {self:?} over {shape:?} (use a tile with more invocations or a deeper slice)"
            ),
            iterations,
        )
    }

    /// Whether the tile fits `limits` with `workgroup_bytes` and `loop_iterations` per invocation.
    pub fn fits_all(
        &self,
        limits: &AdapterLimits,
        workgroup_bytes: u32,
        loop_iterations: u64,
    ) -> bool {
        self.fits(limits, workgroup_bytes)
            && limits.loop_budget.is_none_or(|b| loop_iterations <= b)
    }

    /// Whether a workgroup of this tile needing `workgroup_bytes` of workgroup memory can launch.
    pub fn fits(&self, limits: &AdapterLimits, workgroup_bytes: u32) -> bool {
        self.invocations() <= limits.max_invocations
            && self.wg_n <= limits.max_workgroup_size_x
            && self.wg_m <= limits.max_workgroup_size_y
            && workgroup_bytes <= limits.max_workgroup_storage
    }

    fn check_fits(&self, limits: &AdapterLimits, workgroup_bytes: u32) -> Result<()> {
        if !self.fits(limits, workgroup_bytes) {
            return Err(Error::Limits(format!(
                "tile {self:?} needs a {}×{} workgroup ({} invocations) and {workgroup_bytes} bytes \
                 of workgroup memory; the device allows {}×{}, {} invocations and {} bytes",
                self.wg_n,
                self.wg_m,
                self.invocations(),
                limits.max_workgroup_size_x,
                limits.max_workgroup_size_y,
                limits.max_invocations,
                limits.max_workgroup_storage
            )));
        }
        Ok(())
    }

    /// Workgroups of this tile over `shape` (the grid is this count folded into 2-D).
    pub fn workgroups(&self, shape: &ConvShape) -> usize {
        let m = shape.batch * shape.out_pixels_per_item();
        m.div_ceil(self.tile_m()) * shape.out_c.div_ceil(self.tile_n())
    }
}

/// The tiles every launcher uses on one device: a pure function of its [`AdapterLimits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// The device limits the tiles are chosen under.
    pub limits: AdapterLimits,
}

/// What distinguishes the two tiled shaders for tile choice.
#[derive(Clone, Copy)]
struct Kernel {
    /// tile_n is kept a multiple of this (and at least this).
    n_align: usize,
    /// The deepest slice tried, and the shallowest the tile may shrink to.
    kc_max: u32,
    kc_min: u32,
    bytes: fn(&ConvTile) -> u32,
    loops: fn(&ConvTile, &ConvShape) -> u64,
    /// Whether the kernel has a subgroup path that wants workgroup rows one subgroup wide.
    subgroup_rows: bool,
}

impl Tuning {
    /// The tuning for a device with `limits`.
    pub fn new(limits: AdapterLimits) -> Tuning {
        Tuning { limits }
    }

    /// The tuning for `gpu`'s adapter limits.
    pub fn for_gpu(gpu: &crate::gpu::Gpu) -> Tuning {
        Tuning::new(gpu.adapter_limits())
    }

    /// The XNOR conv tile for `shape`.
    pub fn xnor_conv_tile(&self, shape: &ConvShape) -> ConvTile {
        let k_words = (shape.kernel_h * shape.kernel_w * shape.in_words()) as u32;
        self.choose(
            shape,
            Kernel {
                n_align: 32,
                // Up to 16 words (512 channels·taps), no deeper than the layer.
                kc_max: k_words.next_multiple_of(4).min(16),
                kc_min: 4,
                bytes: ConvTile::xnor_workgroup_bytes,
                loops: ConvTile::xnor_loop_iterations,
                subgroup_rows: true,
            },
        )
    }

    /// The float conv (and large-batch dense) tile for `shape`, f32 or f16.
    pub fn float_conv_tile(&self, shape: &ConvShape) -> ConvTile {
        let k = (shape.kernel_h * shape.kernel_w * shape.in_c) as u32;
        self.choose(
            shape,
            Kernel {
                n_align: 32,
                // Up to 16 values, no deeper than the layer.
                kc_max: k.next_multiple_of(4).min(16),
                kc_min: 4,
                bytes: ConvTile::float_workgroup_bytes,
                loops: ConvTile::float_loop_iterations,
                subgroup_rows: false,
            },
        )
    }

    /// Invocations per workgroup of the small-batch float dense kernel (`float_dense.wgsl`): 8 on a
    /// CPU adapter (one SIMD batch of lavapipe's 256-bit lanes, so a workgroup runs without
    /// splitting at its barriers; measured 2–4× faster there than 16–64), 64 on a GPU. A power of
    /// two within every adapter's limits (downlevel: 256 invocations).
    pub fn float_dense_workgroup(&self) -> u32 {
        if self.limits.is_cpu { 8 } else { 64 }
    }

    /// Starts from the adapter's default block (8×8 invocations on a CPU adapter: more workgroups
    /// for the cores, fewer live registers per SIMD lane; 16×16 on a GPU), fits it to the layer and
    /// to the device's compute units (`occupy`), then shrinks the depth slice and, if that is not enough, the block until it fits the limits.
    /// Under a loop budget (llvmpipe) a layer too deep for every such block takes, among all blocks
    /// that fit the rest of the limits, the one with the fewest loop iterations per invocation.
    fn choose(&self, shape: &ConvShape, k: Kernel) -> ConvTile {
        let side = if self.limits.is_cpu { 8 } else { 16 };
        // On a GPU with one subgroup size of 16 to 64 (NVIDIA 32, AMD wave64) the XNOR kernel's
        // block is one subgroup wide and 256 invocations in all, so its fused bits can be
        // gathered by ballots (a CPU adapter's 8 × 8 block already matches lavapipe's 8).
        let (wg_n, wg_m) = match self.limits.subgroup_size {
            Some(s) if k.subgroup_rows && !self.limits.is_cpu && (16..=64).contains(&s) => {
                (s, 256 / s)
            }
            _ => (side, side),
        };
        let mut tile = ConvTile {
            wg_m,
            wg_n,
            rm: 4,
            rn: 4,
            kc: k.kc_max,
        };
        reshape(&mut tile, shape, k.n_align);
        occupy(&mut tile, shape, k.n_align, &self.limits);
        let fits = |t: &ConvTile| t.fits_all(&self.limits, (k.bytes)(t), (k.loops)(t, shape));
        loop {
            // The deepest slice that fits this block.
            let mut kc = k.kc_max;
            while kc >= k.kc_min {
                let t = ConvTile { kc, ..tile };
                if fits(&t) {
                    return t;
                }
                kc -= 4;
            }
            // None does: halve the block along its longer side (channels keep n_align).
            let can_n = tile.wg_n > 1 && tile.tile_n() / 2 >= k.n_align;
            let can_m = tile.wg_m > 1;
            if can_n && (tile.wg_n >= tile.wg_m || !can_m) {
                tile.wg_n /= 2;
            } else if can_m {
                tile.wg_m /= 2;
            } else {
                break;
            }
        }
        // Every block of the family is over a limit. If the loop budget is what binds, search all
        // power-of-two blocks for the fewest iterations among those that fit the other limits.
        let mut best: Option<(u64, ConvTile)> = None;
        for wm in (0..=10).map(|e| 1u32 << e) {
            for wn in (0..=10).map(|e| 1u32 << e) {
                for kc in (k.kc_min..=k.kc_max).rev().step_by(4) {
                    let t = ConvTile {
                        wg_m: wm,
                        wg_n: wn,
                        rm: 4,
                        rn: 4,
                        kc,
                    };
                    if !t.tile_n().is_multiple_of(k.n_align) || !t.fits(&self.limits, (k.bytes)(&t))
                    {
                        continue;
                    }
                    let loops = (k.loops)(&t, shape);
                    if best.is_none_or(|(b, _)| loops < b) {
                        best = Some((loops, t));
                    }
                }
            }
        }
        // Nothing fits at all: the smallest block, which the launcher's validation reports.
        best.map_or(
            ConvTile {
                kc: k.kc_min,
                ..tile
            },
            |(_, t)| t,
        )
    }
}

/// Occupancy: while the layer gives fewer workgroups than the device has compute units, halves
/// the block (pixel rows first, then channel columns down to `n_align`), so a small layer spreads
/// over the whole device instead of a few SMs, as long as a workgroup keeps at least
/// [`MIN_INVOCATIONS`] (GPU: one warp/wave; CPU adapter: one SIMD vector of lanes).
fn occupy(tile: &mut ConvTile, shape: &ConvShape, n_align: usize, limits: &AdapterLimits) {
    let min = if limits.is_cpu {
        MIN_INVOCATIONS.0
    } else {
        MIN_INVOCATIONS.1
    };
    while tile.workgroups(shape) < limits.compute_units as usize && tile.invocations() / 2 >= min {
        if tile.wg_m > 1 && tile.tile_m() / 2 >= 4 {
            tile.wg_m /= 2;
        } else if tile.wg_n > 1 && tile.tile_n() / 2 >= n_align {
            tile.wg_n /= 2;
        } else {
            break;
        }
    }
}

/// The fewest invocations the occupancy rule leaves in a workgroup: (CPU adapter, GPU).
pub const MIN_INVOCATIONS: (u32, u32) = (8, 32);

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
