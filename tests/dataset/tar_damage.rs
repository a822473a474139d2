//! A damaged tar archive is an error naming the archive, where reading stopped and the last entry
//! read whole: cut inside an image, cut at an entry boundary, cut inside a header, and an archive
//! that changes after it was indexed (the loader stops, it does not skip). Without these checks
//! the tar crate reads a file that ends early as a complete archive and drops every later entry.

use crate::data_fixtures;

use std::path::Path;
use std::sync::Arc;

use bnn_transfer::Error;
use bnn_transfer::data::{ImageFolder, Layout, Loader, LoaderConfig, Preprocess};
use data_fixtures::*;

/// Six distinct PNGs of a few KB each (noise does not compress), in two classes and two splits.
fn entries() -> Vec<Entry> {
    let noisy = |seed: u32| {
        let mut s = seed.wrapping_mul(2_654_435_761) | 1;
        let img = image::RgbImage::from_fn(24, 24, |_, _| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            image::Rgb([s as u8, (s >> 8) as u8, (s >> 16) as u8])
        });
        png(&img)
    };
    vec![
        file("train/a/1.png", noisy(1)),
        file("train/a/2.png", noisy(2)),
        file("train/b/3.png", noisy(3)),
        file("train/b/4.png", noisy(4)),
        file("val/a/5.png", noisy(5)),
        file("val/b/6.png", noisy(6)),
    ]
}

/// (offset of the entry's data, its length) for every entry, read back from the tar's headers.
fn spans(tar: &Path) -> Vec<(String, u64, u64)> {
    let mut archive = tar::Archive::new(std::fs::File::open(tar).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            (name, e.raw_file_position(), e.size())
        })
        .collect()
}

fn damaged(path: &Path, split: &str) -> (String, Option<String>, u64, String) {
    match ImageFolder::open_layout(path, Layout::Auto, split) {
        Err(Error::DamagedArchive {
            path: p,
            last_good,
            offset,
            message,
        }) => {
            assert_eq!(p, path);
            let shown = ImageFolder::open(path, split).unwrap_err().to_string();
            (shown, last_good, offset, message)
        }
        Err(e) => panic!("expected a damaged-archive error, got: {e}"),
        Ok(set) => panic!("a damaged archive opened with {} images", set.len()),
    }
}

fn cut(tar: &Path, out: &Path, len: u64) {
    let bytes = std::fs::read(tar).unwrap();
    std::fs::write(out, &bytes[..len as usize]).unwrap();
}

#[test]
fn the_whole_archive_opens() {
    let tmp = TempDir::new("tar-whole");
    let tar = tmp.path().join("set.tar");
    write_tar(&tar, &entries());
    assert_eq!(ImageFolder::open(&tar, "train").unwrap().len(), 4);
    assert_eq!(ImageFolder::open(&tar, "val").unwrap().len(), 2);
}

#[test]
fn a_tar_cut_inside_an_image_names_the_archive_the_last_entry_and_the_byte() {
    let tmp = TempDir::new("tar-cut-image");
    let tar = tmp.path().join("set.tar");
    write_tar(&tar, &entries());
    let spans = spans(&tar);
    let (name, start, len) = &spans[2];
    assert_eq!(name, "train/b/3.png");
    assert!(*len > 1000, "the image is {len} bytes");
    let short = tmp.path().join("short.tar");
    let at = start + len / 2;
    cut(&tar, &short, at);
    // Every split fails, not only the one holding the cut image: val's entries are all lost.
    for split in ["train", "val"] {
        let (shown, last_good, offset, message) = damaged(&short, split);
        assert_eq!(last_good.as_deref(), Some("train/a/2.png"));
        assert_eq!(offset, at);
        assert!(message.contains("train/b/3.png"), "{message}");
        for part in [
            short.display().to_string(),
            "train/a/2.png".into(),
            format!("byte {at}"),
        ] {
            assert!(shown.contains(&part), "'{part}' not in: {shown}");
        }
    }
    // The layout detection and the split list read the archive too.
    assert!(matches!(
        Layout::detect(&short),
        Err(Error::DamagedArchive { .. })
    ));
    assert!(matches!(
        Layout::Auto.splits(&short),
        Err(Error::DamagedArchive { .. })
    ));
}

#[test]
fn a_tar_cut_at_an_entry_boundary_is_missing_its_end_marker() {
    let tmp = TempDir::new("tar-cut-boundary");
    let tar = tmp.path().join("set.tar");
    write_tar(&tar, &entries());
    let spans = spans(&tar);
    let (_, start, len) = &spans[3];
    let boundary = (start + len).div_ceil(512) * 512;
    let short = tmp.path().join("short.tar");
    cut(&tar, &short, boundary);
    let (shown, last_good, offset, message) = damaged(&short, "train");
    assert_eq!(last_good.as_deref(), Some("train/b/4.png"));
    assert_eq!(offset, boundary);
    assert!(message.contains("end-of-archive marker"), "{message}");
    assert!(shown.contains("cut short"), "{shown}");
}

#[test]
fn a_tar_cut_inside_a_header_is_damaged() {
    let tmp = TempDir::new("tar-cut-header");
    let tar = tmp.path().join("set.tar");
    write_tar(&tar, &entries());
    let spans = spans(&tar);
    let (_, start, _) = &spans[4]; // val/a/5.png: its header is the 512 bytes before its data
    let short = tmp.path().join("short.tar");
    cut(&tar, &short, start - 300);
    let (_, last_good, offset, _) = damaged(&short, "train");
    assert_eq!(last_good.as_deref(), Some("train/b/4.png"));
    assert_eq!(offset, start - 512);
}

#[test]
fn an_archive_cut_after_it_was_indexed_stops_the_loader() {
    let tmp = TempDir::new("tar-cut-later");
    let tar = tmp.path().join("set.tar");
    write_tar(&tar, &entries());
    let set = Arc::new(ImageFolder::open(&tar, "train").unwrap());
    let spans = spans(&tar);
    let (_, start, _) = &spans[1];
    let bytes = std::fs::read(&tar).unwrap();
    std::fs::write(&tar, &bytes[..*start as usize + 10]).unwrap();
    let cfg = LoaderConfig {
        batch_size: 4,
        workers: 1,
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(set.clone(), Preprocess::eval(8), cfg);
    match loader.next() {
        Some(Err(Error::DamagedArchive { path, offset, .. })) => {
            assert_eq!(path, tar);
            assert!(offset >= *start, "offset {offset}");
        }
        Some(Err(e)) => panic!("expected a damaged-archive error, got {e}"),
        Some(Ok(b)) => panic!("a batch of {} images from a cut archive", b.len()),
        None => panic!("no batch and no error"),
    }
    assert!(loader.next().is_none());
    assert!(loader.skipped().is_empty());
    match set.read(1) {
        Err(Error::DamagedArchive { message, .. }) => {
            assert!(message.contains("train/a/2.png"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

/// An entry header that declares more data than the file holds (8 GiB here) is refused when the
/// archive is indexed, before anything is allocated for it (reading the entry used to allocate
/// the declared size first).
#[test]
fn an_entry_declaring_more_bytes_than_the_file_holds_is_refused_unread() {
    let tmp = TempDir::new("tar-huge-size");
    let tar = tmp.path().join("set.tar");
    write_tar(&tar, &entries());
    let (name, start, _) = spans(&tar)[1].clone();
    let mut bytes = std::fs::read(&tar).unwrap();
    let header = (start - 512) as usize;
    let block = &mut bytes[header..header + 512];
    block[124..136].copy_from_slice(b"77777777777\0"); // size field: 8 GiB - 1, octal
    block[148..156].copy_from_slice(b"        ");
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    std::fs::write(&tar, &bytes).unwrap();
    let (shown, last_good, _, message) = damaged(&tar, "train");
    assert_eq!(last_good.as_deref(), Some("train/a/1.png"));
    assert!(
        message.contains(&name) && message.contains("8589934591"),
        "{message}"
    );
    assert!(shown.contains("Re-download"), "{shown}");
}
