//! Every kernel module parses and validates with naga (no device needed), every file in
//! `shaders/` belongs to a kernel the library knows, and the embedded sources are the files.

use bnn_transfer::kernels::Shader;

fn shader_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders")
}

#[test]
fn every_shader_validates_with_naga() {
    for s in Shader::ALL {
        let source = s.source();
        let module = naga::front::wgsl::parse_str(source)
            .unwrap_or_else(|e| panic!("{}: {}", s.file_name(), e.emit_to_string(source)));
        // Subgroup modules need the capability wgpu's SUBGROUP feature gives, `enable f16;`
        // modules (the f16 baseline) the one shader-f16 gives.
        let mut capabilities = naga::valid::Capabilities::default();
        if s.needs_subgroups() {
            capabilities |= naga::valid::Capabilities::SUBGROUP;
        }
        if source.contains("enable f16;") {
            capabilities |= naga::valid::Capabilities::SHADER_FLOAT16;
        }
        let mut validator =
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities);
        if s.needs_subgroups() {
            validator.subgroup_stages(naga::valid::ShaderStages::COMPUTE);
            validator.subgroup_operations(naga::valid::SubgroupOperationSet::all());
        }
        validator
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {}", s.file_name(), e.emit_to_string(source)));
    }
}

#[test]
fn every_file_is_a_registered_kernel() {
    let mut files: Vec<String> = std::fs::read_dir(shader_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    files.sort();
    let mut registered: Vec<String> = Shader::ALL
        .iter()
        .map(|s| s.file_name().to_owned())
        .collect();
    registered.sort();
    registered.dedup(); // float_conv.wgsl makes the f32 and the f16 module
    assert_eq!(files, registered);
    // Module names tell every module apart (they key the pipeline cache).
    let mut names: Vec<&str> = Shader::ALL.iter().map(|s| s.module_name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), Shader::ALL.len());
}

#[test]
fn embedded_sources_match_the_files() {
    let read = |name: &str| std::fs::read_to_string(shader_dir().join(name)).unwrap();
    for s in Shader::ALL {
        let want = match s {
            Shader::XnorConvSubgroup => {
                format!("{}{}", read("xnor_conv.wgsl"), read(s.file_name()))
            }
            Shader::FloatConvF16 => format!(
                "enable f16;\n{}",
                read("float_conv.wgsl").replacen("alias Real = f32;", "alias Real = f16;", 1)
            ),
            _ => read(s.file_name()),
        };
        assert_eq!(want, s.source(), "{}", s.file_name());
    }
}
