//! Every WGSL kernel against its plain-Rust scalar reference on the device (bit-exact for
//! integers, documented tolerances for floats), the shader sources themselves and the tile tuning.

#[path = "../common/mod.rs"]
mod common;

mod support;

mod bitpack;
mod constant_channels;
mod first_conv;
mod float_conv;
mod limits;
mod pool;
mod real_layers;
mod shaders;
mod threshold;
mod tuning;
mod xnor_conv;
mod xnor_dense;
