//! The extractor file's graph validation on its own, from the graph JSON: mutations of a JSON
//! text inside a safetensors header almost always break the header's length prefix, so
//! `extractor_file` rarely reaches deep into `Graph::validate`. A graph that validates must give
//! every size the loader and the runners compute from it without overflow.
#![no_main]

use std::path::Path;

use bnn_transfer::extractor::Graph;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(graph) = serde_json::from_slice::<Graph>(data) else {
        return;
    };
    if graph.validate(Path::new("fuzz.json")).is_err() {
        return;
    }
    let i = &graph.input;
    let pixels = i
        .size
        .checked_mul(i.size)
        .and_then(|p| p.checked_mul(i.channels));
    assert!(pixels.is_some(), "input size overflows");
    for l in &graph.layers {
        let weights = l
            .weight_shape()
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d));
        assert!(weights.is_some(), "{}: weight count overflows", l.name);
        let (h, w) = l.conv_out();
        assert!(h > 0 && w > 0, "{}: empty conv output", l.name);
        assert!(l.out_len() > 0 && l.out_words() > 0);
    }
});
