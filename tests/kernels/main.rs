//! Every WGSL kernel against its plain-Rust scalar reference on the device (bit-exact for
//! integers, documented tolerances for floats), the shader sources themselves and the tile tuning.

#[path = "../common/mod.rs"]
mod common;

mod constant_channels;
mod kernels;
mod real_layers;
mod shaders;
mod tuning;
