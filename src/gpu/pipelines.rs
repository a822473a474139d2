//! The pipeline cache key and compilation: a pipeline is a shader (one `shaders/*.wgsl` file), an
//! entry point, and the values of its `override` constants.

use std::hash::{Hash, Hasher};

use crate::error::{Error, Result};

/// A WGSL module: its file name, which identifies it (in the cache and in errors), and its text.
/// The kernels turn their `Shader` into one, so this layer needs no knowledge of them.
#[derive(Clone, Copy, Debug)]
pub struct ShaderSource {
    /// File name, e.g. `xnor_conv.wgsl`.
    pub name: &'static str,
    /// The WGSL text.
    pub text: &'static str,
}

impl PartialEq for ShaderSource {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for ShaderSource {}

impl Hash for ShaderSource {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// (shader, entry point, override constants). Constants are stored as bit patterns so the key is
/// hashable; they are sorted by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    /// The shader module.
    pub shader: ShaderSource,
    /// The entry point.
    pub entry: &'static str,
    constants: Vec<(&'static str, u64)>,
}

impl PipelineKey {
    /// A key for `entry` of `shader` with the `override` constants `constants` (name, value).
    pub fn new(
        shader: impl Into<ShaderSource>,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> Self {
        let mut constants: Vec<(&'static str, u64)> =
            constants.iter().map(|&(k, v)| (k, v.to_bits())).collect();
        constants.sort();
        PipelineKey {
            shader: shader.into(),
            entry,
            constants,
        }
    }

    pub(crate) fn compile(&self, device: &wgpu::Device) -> Result<wgpu::ComputePipeline> {
        let name = format!("{}::{}", self.shader.name, self.entry);
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(self.shader.name),
            source: wgpu::ShaderSource::Wgsl(self.shader.text.into()),
        });
        let constants: Vec<(&str, f64)> = self
            .constants
            .iter()
            .map(|&(k, v)| (k, f64::from_bits(v)))
            .collect();
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&name),
            layout: None,
            module: &module,
            entry_point: Some(self.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        // Native: wait for validation and report a compile error here. The web cannot block on
        // the error scope's promise; a bad shader shows in the console and fails the dispatch.
        #[cfg(target_arch = "wasm32")]
        let error: Option<wgpu::Error> = {
            drop(scope);
            None
        };
        #[cfg(not(target_arch = "wasm32"))]
        let error = pollster::block_on(scope.pop());
        match error {
            None => Ok(pipeline),
            Some(e) => {
                // The whole chain of causes: wgpu's top-level message often omits the naga one.
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    message.push_str(&format!("\n  caused by: {cause}"));
                    source = cause.source();
                }
                Err(Error::ShaderCompile {
                    kernel: name,
                    message,
                })
            }
        }
    }
}
