//! The data set reader on a tar archive: sniffing, the tar index, layout detection (ImageFolder
//! and the official layouts, whose list and .mat files are read from the tar), every split, and
//! the positional read of every sample. The bytes go to one file per process (on /dev/shm when
//! there is one): the reader's entry point is a path, as in `bnn`.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use bnn_transfer::data::{ImageFolder, Layout};
use libfuzzer_sys::fuzz_target;

static FILE: LazyLock<PathBuf> = LazyLock::new(|| {
    let shm = PathBuf::from("/dev/shm");
    let dir = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("bnn-fuzz-tar-{}.tar", std::process::id()))
});

fuzz_target!(|data: &[u8]| {
    std::fs::write(&*FILE, data).expect("write the input");
    let Ok(splits) = Layout::Auto.splits(&FILE) else {
        return;
    };
    for split in splits
        .iter()
        .map(String::as_str)
        .chain(["train", "val", "test"])
    {
        let Ok(set) = ImageFolder::open_layout(&FILE, Layout::Auto, split) else {
            continue;
        };
        assert!(!set.is_empty());
        for (i, s) in set.samples.iter().enumerate() {
            assert!(s.label < set.classes.len());
            let _ = set.read(i);
        }
    }
});
