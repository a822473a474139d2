//! Tile choice (`kernels::tuning`) as a pure function of `AdapterLimits`, checked without a device:
//! for a CPU-like and a GPU-like adapter, each under its own limits and under wgpu's downlevel
//! (and WebGPU default) limits, every layer shape of the archs (small, alexnet, mini) and of
//! `bnn bench` at batch 1, 8 and 64 gets a tile that satisfies its shader's rules, fits the limits
//! (workgroup memory from the one formula in `tuning.rs`, itself checked against the sizes naga
//! computes from the WGSL), launches within the grid limits, and is the same on every call.

use bnn_transfer::Arch;
use bnn_transfer::arch::out_size;
use bnn_transfer::bench::shapes;
use bnn_transfer::gpu::{AdapterLimits, LLVMPIPE_LOOP_BUDGET};
use bnn_transfer::kernels::{ConvTile, Shader, Tuning};
use bnn_transfer::ops::{ConvShape, Padding};

/// lavapipe's limits as `bnn devices` reports them (a CPU adapter).
fn cpu_like() -> wgpu::Limits {
    wgpu::Limits {
        max_compute_workgroup_storage_size: 65536,
        max_compute_invocations_per_workgroup: 1024,
        max_compute_workgroup_size_x: 1024,
        max_compute_workgroup_size_y: 1024,
        max_compute_workgroup_size_z: 1024,
        max_compute_workgroups_per_dimension: 65535,
        max_storage_buffer_binding_size: (1 << 31) - 1,
        max_buffer_size: (1 << 31) - 1,
        ..wgpu::Limits::default()
    }
}

/// An NVIDIA-class discrete GPU on Vulkan (48 KiB shared memory, 1024 invocations).
fn gpu_like() -> wgpu::Limits {
    wgpu::Limits {
        max_compute_workgroup_storage_size: 49152,
        max_compute_invocations_per_workgroup: 1024,
        max_compute_workgroup_size_x: 1024,
        max_compute_workgroup_size_y: 1024,
        max_compute_workgroup_size_z: 64,
        max_compute_workgroups_per_dimension: 65535,
        max_storage_buffer_binding_size: u32::MAX as u64,
        max_buffer_size: 1 << 40,
        ..wgpu::Limits::default()
    }
}

/// {CPU-like, GPU-like} × {own limits, downlevel defaults, WebGPU defaults}.
fn profiles() -> Vec<(String, AdapterLimits)> {
    let mut v = Vec::new();
    for (kind, ty, own) in [
        ("cpu", wgpu::DeviceType::Cpu, cpu_like()),
        ("gpu", wgpu::DeviceType::DiscreteGpu, gpu_like()),
    ] {
        for (name, limits) in [
            ("own", own),
            ("downlevel", wgpu::Limits::downlevel_defaults()),
            ("webgpu-default", wgpu::Limits::default()),
        ] {
            // The CPU adapter is lavapipe, with llvmpipe's loop budget.
            let limits = AdapterLimits {
                loop_budget: (ty == wgpu::DeviceType::Cpu).then_some(LLVMPIPE_LOOP_BUDGET),
                ..AdapterLimits::new(ty, &limits)
            };
            v.push((format!("{kind}/{name}"), limits));
        }
    }
    // A GPU with 32-wide subgroups (NVIDIA): the XNOR blocks are one subgroup wide.
    let nvidia = AdapterLimits {
        subgroup_size: Some(32),
        ..AdapterLimits::new(wgpu::DeviceType::DiscreteGpu, &gpu_like())
    };
    v.push(("gpu/own+subgroup32".into(), nvidia));
    v
}

/// Every conv and dense layer (classifier included) of the three archs, as run by the binary
/// extractor (XNOR: every conv but the first, dense layers as 1×1 convs) and by the float twin
/// (every layer), plus everything `bnn bench` times.
fn layer_shapes(batch: usize) -> Vec<(String, ConvShape)> {
    let mut v = Vec::new();
    for arch in [Arch::small(200), Arch::alexnet(1000), Arch::mini(10)] {
        let (mut side, mut cin) = (arch.input, arch.in_channels);
        for (i, c) in arch.convs.iter().enumerate() {
            v.push((
                format!("{} conv{}", arch.name, i + 1),
                shapes::conv(batch, side, cin, c.out, c.kernel, c.stride, c.pad),
            ));
            side = out_size(side, c.kernel, c.stride, c.pad);
            if let Some(p) = c.pool {
                side = out_size(side, p.kernel, p.stride, 0);
            }
            cin = c.out;
        }
        let mut fin = side * side * cin;
        for (j, &d) in arch.dense.iter().chain([&arch.classes]).enumerate() {
            v.push((
                format!("{} fc{}", arch.name, j + 1),
                ConvShape::dense(batch, fin, d),
            ));
            fin = d;
        }
    }
    let mut bench = shapes::dabnn(batch);
    bench.extend(shapes::arch_layers(&Arch::small(200), batch));
    bench.extend(shapes::arch_layers(&Arch::alexnet(1000), batch));
    bench.extend([64, 512, 4096].map(shapes::gemm));
    v.extend(
        bench
            .into_iter()
            .map(|c| (format!("bench {}", c.source), c.op.as_conv())),
    );
    v
}

fn check(
    what: &str,
    limits: &AdapterLimits,
    shape: &ConvShape,
    tile: &ConvTile,
    bytes: u32,
    loops: u64,
) {
    assert!(
        tile.fits_all(limits, bytes, loops),
        "{what}: {tile:?} needs {bytes} bytes, {} invocations, {loops} loop iterations; limits {limits:?}",
        tile.invocations()
    );
    // The 2-D grid `Gpu::grid` folds the workgroup count into.
    let groups = tile.workgroups(shape) as u64;
    let per_dim = limits.max_workgroups_per_dimension as u64;
    assert!(groups <= per_dim * per_dim, "{what}: {groups} workgroups");
    // No channel block wider than the layer (rounded up to 32), none taller than its pixels need.
    assert!(
        tile.tile_n() <= shape.out_c.next_multiple_of(32).max(32),
        "{what}: {tile:?}"
    );
    assert!(
        tile.tile_m() / 2 < (shape.batch * shape.out_pixels_per_item()).max(1) || tile.wg_m == 1,
        "{what}: {tile:?}"
    );
}

#[test]
fn every_layer_gets_a_tile_that_fits_every_profile() {
    let mut checked = 0;
    for (profile, limits) in profiles() {
        let tuning = Tuning::new(limits);
        for batch in [1, 8, 64] {
            for (name, shape) in layer_shapes(batch) {
                let what = format!("[{profile}] {name} batch {batch} {shape:?}");
                let x = tuning.xnor_conv_tile(&shape);
                x.validate_xnor(&limits, &shape)
                    .unwrap_or_else(|e| panic!("{what}: xnor {e}"));
                check(
                    &what,
                    &limits,
                    &shape,
                    &x,
                    x.xnor_workgroup_bytes(),
                    x.xnor_loop_iterations(&shape),
                );
                let f = tuning.float_conv_tile(&shape);
                f.validate_float(&limits, &shape)
                    .unwrap_or_else(|e| panic!("{what}: float {e}"));
                check(
                    &what,
                    &limits,
                    &shape,
                    &f,
                    f.float_workgroup_bytes(),
                    f.float_loop_iterations(&shape),
                );
                // Deterministic: the same answer again, and from a fresh value.
                assert_eq!(tuning.xnor_conv_tile(&shape), x, "{what}");
                assert_eq!(Tuning::new(limits).float_conv_tile(&shape), f, "{what}");
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "{checked} shape × profile pairs");
}

/// The case: a batch-1 float dense layer with 4096 outputs on a GPU under downlevel
/// limits used to get a 1×256 block whose 4-value slice still needs 16,512 bytes (> 16,384).
#[test]
fn gpu_downlevel_dense_4096_fits_16_kib() {
    let limits = AdapterLimits::new(
        wgpu::DeviceType::DiscreteGpu,
        &wgpu::Limits::downlevel_defaults(),
    );
    let shape = ConvShape::dense(1, 4096, 4096);
    let tile = Tuning::new(limits).float_conv_tile(&shape);
    let old = ConvTile {
        wg_m: 1,
        wg_n: 256,
        rm: 4,
        rn: 4,
        kc: 4,
    };
    assert_eq!(old.float_workgroup_bytes(), 16_512);
    assert!(old.validate_float(&limits, &shape).is_err());
    assert!(
        tile.float_workgroup_bytes() <= 16_384,
        "{tile:?}: {} bytes",
        tile.float_workgroup_bytes()
    );
    tile.validate_float(&limits, &shape).unwrap();
    // Under the GPU's own limits the block is as wide as occupancy allows: a 1×256 block gave 4
    // workgroups for 4096 outputs on a 64-SM GPU; now it is one warp wide, 32 workgroups.
    let own = Tuning::new(AdapterLimits::new(
        wgpu::DeviceType::DiscreteGpu,
        &gpu_like(),
    ))
    .float_conv_tile(&shape);
    assert_eq!((own.wg_m, own.wg_n), (1, 32), "{own:?}");
    assert_eq!(own.workgroups(&shape), 32);
}

/// Limits too small for any block are reported by validation, not silently exceeded.
#[test]
fn impossible_limits_are_an_error_not_a_bad_tile() {
    let tiny = AdapterLimits {
        max_workgroup_storage: 256,
        ..AdapterLimits::new(
            wgpu::DeviceType::DiscreteGpu,
            &wgpu::Limits::downlevel_defaults(),
        )
    };
    let shape = shapes::conv(1, 14, 256, 256, 3, 1, 1);
    let tuning = Tuning::new(tiny);
    assert!(
        tuning
            .float_conv_tile(&shape)
            .validate_float(&tiny, &shape)
            .is_err()
    );
    assert!(
        tuning
            .xnor_conv_tile(&shape)
            .validate_xnor(&tiny, &shape)
            .is_err()
    );
}

/// Workgroup bytes of `shader` with `constants`, as naga sizes its `var<workgroup>`s once the
/// overrides are applied (each variable rounded up to 16 bytes, as WebGPU counts them).
/// Entry points are not separated: the formula covers every variable of the module (for the XNOR
/// shader's `conv_dot`, which leaves `bits` unused, it is an upper bound).
fn naga_workgroup_bytes(shader: Shader, constants: &[(&str, f64)]) -> u32 {
    let module = naga::front::wgsl::parse_str(shader.source()).unwrap();
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .unwrap();
    let mut c = naga::back::PipelineConstants::default();
    for &(k, v) in constants {
        c.insert(k.to_string(), v);
    }
    let (module, _) =
        naga::back::pipeline_constants::process_overrides(&module, &info, None, &c).unwrap();
    module
        .global_variables
        .iter()
        .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
        .map(|(_, g)| {
            module.types[g.ty]
                .inner
                .size(module.to_ctx())
                .next_multiple_of(16)
        })
        .sum()
}

#[test]
fn workgroup_bytes_formula_matches_the_shaders() {
    let tiles = [
        (8, 8, 16),
        (16, 16, 16),
        (1, 256, 4),
        (2, 8, 4),
        (1, 32, 8),
        (8, 1, 16),
        (1, 8, 12),
    ];
    for (wg_m, wg_n, kc) in tiles {
        let t = ConvTile {
            wg_m,
            wg_n,
            rm: 4,
            rn: 4,
            kc,
        };
        let float = naga_workgroup_bytes(
            Shader::FloatConv,
            &[
                ("C", 96.0),
                ("KH", 3.0),
                ("KW", 3.0),
                ("WG_M", wg_m as f64),
                ("WG_N", wg_n as f64),
                ("KC", kc as f64),
            ],
        );
        assert_eq!(float, t.float_workgroup_bytes(), "float {t:?}");
        if t.tile_n().is_multiple_of(32) && kc.is_multiple_of(4) {
            let xnor = naga_workgroup_bytes(
                Shader::XnorConv,
                &[
                    ("WORDS", 3.0),
                    ("KH", 3.0),
                    ("KW", 3.0),
                    ("WG_M", wg_m as f64),
                    ("WG_N", wg_n as f64),
                    ("KC", kc as f64),
                ],
            );
            assert_eq!(xnor, t.xnor_workgroup_bytes(), "xnor {t:?}");
        }
    }
}

/// The padding enum is irrelevant to tiling; a one-padded layer gets the zero-padded layer's tile.
#[test]
fn tile_depends_only_on_limits_and_shape() {
    let limits = AdapterLimits::new(wgpu::DeviceType::Cpu, &cpu_like());
    let zero = shapes::conv(3, 13, 96, 70, 5, 1, 2);
    let one = ConvShape {
        padding: Padding::One,
        ..zero
    };
    let t = Tuning::new(limits);
    assert_eq!(t.xnor_conv_tile(&zero), t.xnor_conv_tile(&one));
}

/// Occupancy: on a 132-SM GPU (an H100) every layer at batch 1 gets at least one workgroup per
/// SM, or the smallest block the rule allows (a warp of invocations, or 4 pixels × 32 channels);
/// before the rule the daBNN 7×7×512 layer got 8 workgroups. On a CPU adapter with 2 threads
/// nothing shrinks below the default block for these layers.
#[test]
fn small_layers_spread_over_every_compute_unit() {
    use bnn_transfer::kernels::tuning::MIN_INVOCATIONS;
    let h100 = AdapterLimits {
        compute_units: 132,
        ..AdapterLimits::new(wgpu::DeviceType::DiscreteGpu, &gpu_like())
    };
    let tuning = Tuning::new(h100);
    for (what, shape) in layer_shapes(1) {
        for (kernel, tile) in [
            ("xnor", tuning.xnor_conv_tile(&shape)),
            ("float", tuning.float_conv_tile(&shape)),
        ] {
            let groups = tile.workgroups(&shape);
            let smallest = tile.invocations() / 2 < MIN_INVOCATIONS.1
                || (tile.tile_m() <= 4 && tile.tile_n() <= 32);
            assert!(
                groups >= 132 || smallest,
                "{what} {kernel}: {tile:?} gives {groups} workgroups on 132 SMs"
            );
        }
    }
    let dabnn = shapes::conv(1, 7, 512, 512, 3, 1, 1);
    let tile = tuning.xnor_conv_tile(&dabnn);
    assert!(tile.workgroups(&dabnn) >= 56, "{tile:?}");

    let lavapipe = AdapterLimits {
        compute_units: 2,
        loop_budget: Some(LLVMPIPE_LOOP_BUDGET),
        ..AdapterLimits::new(wgpu::DeviceType::Cpu, &cpu_like())
    };
    let small = shapes::conv(1, 7, 128, 128, 3, 1, 1);
    let tile = Tuning::new(lavapipe).xnor_conv_tile(&small);
    assert_eq!((tile.wg_m, tile.wg_n), (8, 8), "{tile:?}");
}

/// With 32-wide subgroups the XNOR conv's block rows are one subgroup wide (so the fused bits go
/// through ballots) unless a layer is too narrow for it; the float conv's block is unchanged.
#[test]
fn xnor_blocks_are_one_subgroup_wide_where_subgroups_have_one_size() {
    let plain = AdapterLimits {
        compute_units: 132,
        ..AdapterLimits::new(wgpu::DeviceType::DiscreteGpu, &gpu_like())
    };
    let nvidia = AdapterLimits {
        subgroup_size: Some(32),
        ..plain
    };
    for (what, shape) in layer_shapes(1).into_iter().chain(layer_shapes(64)) {
        let t = Tuning::new(nvidia).xnor_conv_tile(&shape);
        if shape.out_c >= 128 {
            assert_eq!(t.wg_n, 32, "{what}: {t:?}");
        }
        assert_eq!(
            Tuning::new(nvidia).float_conv_tile(&shape),
            Tuning::new(plain).float_conv_tile(&shape),
            "{what}"
        );
    }
}
