//! The extractor file loader: safetensors parse, metadata, graph JSON, graph validation, tensor
//! checks. A file that loads must survive a save/load round trip unchanged and every earlier cut.
#![no_main]

use std::path::Path;

use bnn_transfer::extractor::ExtractorFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = ExtractorFile::from_bytes(data, Path::new("fuzz.safetensors")) else {
        return;
    };
    let bytes = file.to_bytes().expect("a loaded file serialises");
    let again = ExtractorFile::from_bytes(&bytes, Path::new("again")).expect("round trip loads");
    assert_eq!(again, file);
    for name in file.layer_names() {
        let cut = file.truncated(&name).expect("every stored layer is a cut");
        cut.to_bytes().expect("a truncated file serialises");
    }
});
