//! The feature-cache loader (`bnn extract` output, `bnn transfer`'s cache).
#![no_main]

use std::path::Path;

use bnn_transfer::extractor::FeatureCache;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cache) = FeatureCache::from_bytes(data, Path::new("fuzz.safetensors")) {
        assert_eq!(
            cache.features.len(),
            cache.labels.len() * cache.info.per_image
        );
    }
});
