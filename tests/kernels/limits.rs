//! Tensors over the binding limit split into several dispatches, and bad shapes are errors.

use crate::support::*;

#[test]
fn tensors_over_the_binding_limit_split_into_several_dispatches() {
    // 64 KiB bindings: each image's output fits, the batch does not.
    let gpu = match Gpu::with_limits(LimitsProfile::DownlevelWithBinding(64 << 10)) {
        Ok(g) => g,
        Err(e) => return common::skip(&e),
    };
    let shape = ConvShape {
        batch: 5,
        in_h: 16,
        in_w: 16,
        in_c: 60,
        out_c: 24,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        pad: 1,
        padding: Padding::Zero,
    };
    assert!(shape.batch * shape.out_pixels_per_item() * shape.out_c * 4 > 64 << 10);
    check_conv(&gpu, &shape, 42);
    let mut rng = Rng::new(1);
    let x = random_f32(&mut rng, shape.batch * 16 * 16 * 60);
    let w = random_f32(&mut rng, 24 * 9 * 60);
    assert_float_exact(
        &float_conv::run(&gpu, &shape, &x, &w).unwrap(),
        &shape,
        &x,
        &w,
        "split float conv",
    );

    // An item that cannot fit at all is a clear error, not a panic.
    let huge = ConvShape {
        batch: 1,
        in_h: 200,
        in_w: 200,
        in_c: 3,
        ..shape
    };
    let err = float_conv::run(
        &gpu,
        &huge,
        &vec![0.0; 200 * 200 * 3],
        &vec![0.0; 24 * 9 * 3],
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("float_conv")
            && msg.contains("input is 480000 bytes")
            && msg.contains("storage binding (65536 bytes)"),
        "{msg}"
    );
}

#[test]
fn bad_shapes_are_errors() {
    let Some(gpu) = common::gpu() else { return };
    let shape = ConvShape {
        batch: 1,
        in_h: 2,
        in_w: 2,
        in_c: 3,
        out_c: 1,
        kernel_h: 5,
        kernel_w: 5,
        stride: 1,
        pad: 0,
        padding: Padding::Zero,
    };
    assert!(xnor_conv::run_dot(gpu, &shape, &[0; 4], &[0; 25]).is_err());
    let ok = ConvShape {
        kernel_h: 1,
        kernel_w: 1,
        ..shape
    };
    assert!(
        xnor_conv::run_dot(gpu, &ok, &[0; 3], &[0; 1]).is_err(),
        "wrong input length must be rejected"
    );
}
