//! The MATLAB v5 reader behind Flowers-102 (`imagelabels.mat`, `setid.mat`). The input is the two
//! files: a little-endian u16 length of the first, then its bytes, then the second's.
#![no_main]

use bnn_transfer::data::flowers102_split;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (labels, setid) = rest.split_at(len);
    for split in ["train", "val", "test"] {
        if let Ok(images) = flowers102_split(labels, "labels.mat", setid, "setid.mat", split) {
            assert!(images.iter().all(|(_, label)| *label < 102));
        }
    }
});
