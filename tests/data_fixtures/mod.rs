//! Fixtures for the `data_*` tests: small images written with `image`, laid out in a temp
//! directory, and the same tree packed into a tar with the `tar` crate.

#![allow(dead_code)] // each test crate uses a different part

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::{ImageFormat, RgbImage};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "bnn-data-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub fn solid(w: u32, h: u32, rgb: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(w, h, image::Rgb(rgb))
}

pub fn png(img: &RgbImage) -> Vec<u8> {
    encode(img, ImageFormat::Png)
}

pub fn jpeg(img: &RgbImage) -> Vec<u8> {
    encode(img, ImageFormat::Jpeg)
}

/// One file of a fixture tree: a `/`-separated path and its bytes (`None`: a directory).
pub type Entry = (String, Option<Vec<u8>>);

pub fn file(path: &str, bytes: Vec<u8>) -> Entry {
    (path.to_string(), Some(bytes))
}

pub fn dir(path: &str) -> Entry {
    (path.to_string(), None)
}

/// Writes the entries under `root` (parents created as needed).
pub fn write_dir(root: &Path, entries: &[Entry]) {
    for (path, bytes) in entries {
        let p = root.join(path);
        match bytes {
            Some(b) => {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, b).unwrap();
            }
            None => std::fs::create_dir_all(&p).unwrap(),
        }
    }
}

/// Packs the entries, in the given order, into a ustar archive at `tar_path`.
pub fn write_tar(tar_path: &Path, entries: &[Entry]) {
    let mut builder = tar::Builder::new(std::fs::File::create(tar_path).unwrap());
    for (path, bytes) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o644);
        header.set_mtime(1_577_836_800);
        match bytes {
            Some(b) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(b.len() as u64);
                builder
                    .append_data(&mut header, path, b.as_slice())
                    .unwrap();
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{path}/"), std::io::empty())
                    .unwrap();
            }
        }
    }
    builder.into_inner().unwrap();
}

/// The same entries as a directory `<tmp>/set` and a tar `<tmp>/set.tar`.
pub fn write_both(tmp: &TempDir, entries: &[Entry]) -> (PathBuf, PathBuf) {
    let dir = tmp.path().join("set");
    let tar = tmp.path().join("set.tar");
    std::fs::create_dir_all(&dir).unwrap();
    write_dir(&dir, entries);
    write_tar(&tar, entries);
    (dir, tar)
}

/// An 8×8 PNG whose every pixel encodes `id`: (id, 255 − id, id / 2).
pub fn id_png(id: u8) -> Vec<u8> {
    png(&solid(8, 8, id_color(id)))
}

pub fn id_color(id: u8) -> [u8; 3] {
    [id, 255 - id, id / 2]
}

/// The normalized value of channel `c` for 8-bit value `v` with ImageNet statistics.
pub fn norm(v: u8, c: usize) -> f32 {
    (f32::from(v) / 255.0 - bnn_transfer::data::IMAGENET_MEAN[c])
        / bnn_transfer::data::IMAGENET_STD[c]
}

pub fn assert_close(a: f32, b: f32, what: &str) {
    assert!((a - b).abs() < 1e-5, "{what}: {a} vs {b}");
}

/// A set with splits train/val (classes a_class, b_class, c; mixed formats, a nested folder,
/// an upper-case extension, hidden and non-image files) and an `empty` split with no classes.
/// Entries are deliberately not in sorted order.
pub fn mixed_set() -> Vec<Entry> {
    let mut e = vec![dir("empty"), file("README.txt", b"not an image".to_vec())];
    for split in ["val", "train"] {
        e.extend([
            file(
                &format!("{split}/b_class/2.jpg"),
                jpeg(&solid(5, 4, [200, 10, 10])),
            ),
            file(
                &format!("{split}/b_class/1.png"),
                png(&solid(3, 3, [1, 2, 3])),
            ),
            file(
                &format!("{split}/a_class/x.PNG"),
                png(&solid(4, 6, [9, 9, 9])),
            ),
            file(
                &format!("{split}/a_class/.hidden.png"),
                png(&solid(2, 2, [0, 0, 0])),
            ),
            file(&format!("{split}/a_class/notes.txt"), b"hello".to_vec()),
            file(
                &format!("{split}/c/sub/y.jpeg"),
                jpeg(&solid(8, 8, [0, 128, 255])),
            ),
            file(
                &format!("{split}/c/z.jpg"),
                jpeg(&solid(8, 8, [50, 60, 70])),
            ),
            file(&format!("{split}/.DS_Store"), b"junk".to_vec()),
        ]);
    }
    e
}

// ---------------------------------------------------------------------------------------------
// A minimal MAT v5 writer (little-endian), as MATLAB lays the files out.

pub const MI_INT8: u32 = 1;
pub const MI_UINT8: u32 = 2;
pub const MI_UINT16: u32 = 4;
pub const MI_INT32: u32 = 5;
pub const MI_UINT32: u32 = 6;
pub const MI_DOUBLE: u32 = 9;
pub const MI_MATRIX: u32 = 14;
pub const MI_COMPRESSED: u32 = 15;
pub const MX_DOUBLE_CLASS: u32 = 6;

/// How a variable's values are stored. MATLAB keeps a double array of small integers in the
/// smallest type that holds them (uint8 for Flowers' labels, uint16 for its ids).
#[derive(Clone, Copy)]
pub enum Storage {
    Double,
    U8,
    U16,
}

/// One data element: the small format (tag and ≤ 4 bytes in 8) when `small` allows and the
/// data fits, else tag + data padded to 8 bytes.
pub fn element(ty: u32, data: &[u8], small: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if small && !data.is_empty() && data.len() <= 4 {
        out.extend(((data.len() as u32) << 16 | ty).to_le_bytes());
        out.extend(data);
        out.resize(8, 0);
    } else {
        out.extend(ty.to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(data);
        out.resize(out.len().div_ceil(8) * 8, 0);
    }
    out
}

/// A `1×n` double array named `name` (a miMATRIX element).
pub fn mat_var(name: &str, values: &[f64], storage: Storage) -> Vec<u8> {
    let mut body = Vec::new();
    let flags: Vec<u8> = [MX_DOUBLE_CLASS, 0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    body.extend(element(MI_UINT32, &flags, false));
    let dims: Vec<u8> = [1i32, values.len() as i32]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    body.extend(element(MI_INT32, &dims, false));
    body.extend(element(MI_INT8, name.as_bytes(), true));
    let (ty, data): (u32, Vec<u8>) = match storage {
        Storage::Double => (
            MI_DOUBLE,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        Storage::U8 => (MI_UINT8, values.iter().map(|&v| v as u8).collect()),
        Storage::U16 => (
            MI_UINT16,
            values
                .iter()
                .flat_map(|&v| (v as u16).to_le_bytes())
                .collect(),
        ),
    };
    body.extend(element(ty, &data, true));
    element(MI_MATRIX, &body, false)
}

/// A MAT v5 file with the given variables, each in a miCOMPRESSED element (zlib, not padded, as
/// MATLAB's default `save` writes) or as plain miMATRIX elements.
pub fn mat_file(vars: &[(&str, Vec<f64>, Storage)], compressed: bool) -> Vec<u8> {
    let mut text =
        b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created by: bnn-transfer tests".to_vec();
    text.resize(116, b' ');
    let mut out = text;
    out.extend([0u8; 8]); // subsystem data offset
    out.extend(0x0100u16.to_le_bytes());
    out.extend(b"IM");
    for (name, values, storage) in vars {
        let matrix = mat_var(name, values, *storage);
        if compressed {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut z, &matrix).unwrap();
            let z = z.finish().unwrap();
            out.extend(MI_COMPRESSED.to_le_bytes());
            out.extend((z.len() as u32).to_le_bytes());
            out.extend(z);
        } else {
            out.extend(matrix);
        }
    }
    out
}
