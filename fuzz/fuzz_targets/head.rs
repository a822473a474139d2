//! The transfer head loader (`bnn transfer` output, what `bnn predict` reads), and its forward
//! pass on one row of features when the head loads.
#![no_main]

use std::path::Path;

use bnn_transfer::transfer::Head;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(head) = Head::from_bytes(data, Path::new("fuzz.safetensors")) else {
        return;
    };
    let logits = head
        .logits(&vec![1.0; head.info.dim])
        .expect("one row of a valid head's width");
    assert_eq!(logits.len(), head.info.classes.len());
});
