//! Every `shaders/*.wgsl` parses and validates with naga (no device needed), and every file is a
//! kernel the library knows.

use bnn_transfer::kernels::Shader;

#[test]
fn every_shader_validates_with_naga() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for path in &files {
        let source = std::fs::read_to_string(path).unwrap();
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&source)));
        // `enable f16;` files (the f16 baseline) need the capability the shader-f16 feature gives.
        let capabilities = if source.contains("enable f16;") {
            naga::valid::Capabilities::SHADER_FLOAT16
        } else {
            naga::valid::Capabilities::default()
        };
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&source)));
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            Shader::ALL.iter().any(|s| s.file_name() == name),
            "{name} is not registered in kernels::Shader"
        );
    }
    assert_eq!(
        files.len(),
        Shader::ALL.len(),
        "a registered shader file is missing"
    );
}

#[test]
fn embedded_sources_match_the_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for s in Shader::ALL {
        assert_eq!(
            std::fs::read_to_string(dir.join(s.file_name())).unwrap(),
            s.source()
        );
    }
}
