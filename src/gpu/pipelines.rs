//! The pipeline cache key and compilation: a pipeline is a shader (one `shaders/*.wgsl` file), an
//! entry point, and the values of its `override` constants.

use crate::error::{Error, Result};
use crate::kernels::Shader;

/// (shader, entry point, override constants). Constants are stored as bit patterns so the key is
/// hashable; they are sorted by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    pub shader: Shader,
    pub entry: &'static str,
    constants: Vec<(&'static str, u64)>,
}

impl PipelineKey {
    pub fn new(shader: Shader, entry: &'static str, constants: &[(&'static str, f64)]) -> Self {
        let mut constants: Vec<(&'static str, u64)> =
            constants.iter().map(|&(k, v)| (k, v.to_bits())).collect();
        constants.sort();
        PipelineKey {
            shader,
            entry,
            constants,
        }
    }

    pub(crate) fn compile(&self, device: &wgpu::Device) -> Result<wgpu::ComputePipeline> {
        let name = format!("{}::{}", self.shader.file_name(), self.entry);
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(self.shader.file_name()),
            source: wgpu::ShaderSource::Wgsl(self.shader.source().into()),
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
        match pollster::block_on(scope.pop()) {
            None => Ok(pipeline),
            Some(e) => Err(Error::ShaderCompile {
                kernel: name,
                message: e.to_string(),
            }),
        }
    }
}
