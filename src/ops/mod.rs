//! The ops of the extractor as plain Rust: their types (shapes, padding, thresholds, the real
//! epilogue's channels and windows, with their arithmetic and validation) and the scalar reference
//! of each, one file per op. The reference fixes the op's exact semantics (bit order, summation
//! order, rounding): it is the oracle of every test, and the WGSL launchers (`kernels`), the CPU
//! path (`cpu`) and the file format (`extractor`) build on these types. No wgpu, no GPU: this
//! layer compiles for every target and without the default features.

pub mod conv;
pub mod dense;
pub mod first_conv;
pub mod float_conv;
pub mod float_dense;
pub mod pool;
pub mod real_epilogue;
pub mod threshold;

pub use conv::{ConvShape, Padding};
pub use dense::DenseShape;
pub use pool::{PoolShape, PoolValues};
pub use threshold::{FloatThreshold, Threshold};
