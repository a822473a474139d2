//! A procedural image set that the project makes itself, so `bnn demo` needs no download: eight
//! classes of shapes and textures (disc, square, triangle, ring, cross, horizontal stripes,
//! vertical stripes, checkerboard) in random colours, sizes and positions on noisy backgrounds,
//! written as PNG files in the ImageFolder layout `<split>/<class>/<n>.png`. Deterministic for a
//! seed.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::error::{Error, Result};
use crate::rng::Rng;

/// The class names, in label order.
pub const CLASSES: [&str; 8] = [
    "0.disc",
    "1.square",
    "2.triangle",
    "3.ring",
    "4.cross",
    "5.hstripes",
    "6.vstripes",
    "7.checker",
];

fn colour(rng: &mut Rng) -> [f32; 3] {
    [rng.f32(), rng.f32(), rng.f32()]
}

/// One image of class `class` (index into [`CLASSES`]), `size` × `size`.
pub fn render(class: usize, size: u32, rng: &mut Rng) -> RgbImage {
    let s = size as f32;
    let bg = colour(rng);
    let mut fg = colour(rng);
    // Keep the shape visible: push the foreground away from the background.
    let diff: f32 = (0..3).map(|i| (fg[i] - bg[i]).abs()).sum();
    if diff < 0.6 {
        fg = bg.map(|c| if c > 0.5 { c - 0.5 } else { c + 0.5 });
    }
    let r = s * (0.18 + 0.17 * rng.f32());
    let (cx, cy) = (r + (s - 2.0 * r) * rng.f32(), r + (s - 2.0 * r) * rng.f32());
    let period = 4.0 + 8.0 * rng.f32();
    let phase = period * rng.f32();
    let noise = 0.08;
    let mut img = RgbImage::new(size, size);
    for y in 0..size {
        for x in 0..size {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let (dx, dy) = (px - cx, py - cy);
            let d = (dx * dx + dy * dy).sqrt();
            let inside = match class {
                0 => d <= r,
                1 => dx.abs() <= r * 0.85 && dy.abs() <= r * 0.85,
                2 => dy <= r * 0.8 && dy >= -r && dx.abs() <= (dy + r) * 0.6,
                3 => d <= r && d >= r * 0.6,
                4 => {
                    (dx.abs() <= r * 0.25 && dy.abs() <= r)
                        || (dy.abs() <= r * 0.25 && dx.abs() <= r)
                }
                5 => ((py + phase) / period).floor() as i64 % 2 == 0,
                6 => ((px + phase) / period).floor() as i64 % 2 == 0,
                _ => {
                    (((px + phase) / period).floor() as i64
                        + ((py + phase) / period).floor() as i64)
                        % 2
                        == 0
                }
            };
            let c = if inside { fg } else { bg };
            let px = c.map(|v| {
                let v = v + noise * (rng.f32() * 2.0 - 1.0);
                (v.clamp(0.0, 1.0) * 255.0).round() as u8
            });
            img.put_pixel(x, y, Rgb(px));
        }
    }
    img
}

/// One image of class `class` as PNG bytes (in memory: the web tests, which have no files).
pub fn render_png(class: usize, size: u32, rng: &mut Rng) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    render(class, size, rng)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| Error::Dataset(format!("encoding a PNG: {e}")))?;
    Ok(bytes)
}

/// Writes `per_class` images of each class for each `(split, per_class)` under `dir`, PNG,
/// `size` px. Returns the number of images written.
pub fn write(dir: &Path, splits: &[(&str, usize)], size: u32, seed: u64) -> Result<usize> {
    let mut rng = Rng::new(seed);
    let mut n = 0;
    for &(split, per_class) in splits {
        for (c, name) in CLASSES.iter().enumerate() {
            let folder = dir.join(split).join(name);
            std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
            for i in 0..per_class {
                let path = folder.join(format!("{i:04}.png"));
                render(c, size, &mut rng)
                    .save(&path)
                    .map_err(|e| Error::Dataset(format!("writing {}: {e}", path.display())))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_classes_differ() {
        let a = render(0, 32, &mut Rng::new(1));
        let b = render(0, 32, &mut Rng::new(1));
        assert_eq!(a, b);
        let c = render(5, 32, &mut Rng::new(1));
        assert_ne!(a, c);
        // A disc covers a compact area: some pixels of each colour, not all of one.
        let first = *a.get_pixel(0, 0);
        assert!(
            a.pixels()
                .any(|p| p.0.iter().zip(first.0).any(|(x, y)| x.abs_diff(y) > 60))
        );
    }
}
