//! Image preprocessing: decode (JPEG/PNG, any size, to RGB), crop a square, resize to
//! `size`×`size`, optionally flip, and normalize to f32 in HWC order.
//!
//! Evaluation takes the largest centred square (side = the shorter side) and resizes it to
//! `size`; this equals "resize the shorter side to `size`, then centre-crop" up to resampling
//! details, and skips the resize entirely when the shorter side already equals `size` (all
//! images in `../shared/data` at size 64). Training (`augment`) takes a square covering 80–100 %
//! of the shorter side at a uniformly random position, resizes it to `size` (triangle filter)
//! and flips it horizontally with probability 1/2. Normalization per channel, in f32 and in this
//! order: `v · (1 / (255 · std)) − mean / std` (docs/FORMAT.md §5 gives the exact rounding).

use image::RgbImage;
use image::imageops::{self, FilterType};

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Per-channel (R, G, B) mean of ImageNet, on the 0..1 scale.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// Per-channel (R, G, B) standard deviation of ImageNet, on the 0..1 scale.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Smallest fraction of the shorter side that a training crop covers.
pub const MIN_CROP_FRACTION: f32 = 0.8;

/// How images become network input.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocess {
    /// Output side in pixels (the output is `size`×`size`×3).
    pub size: usize,
    /// Random crop and horizontal flip (training) instead of the centre crop (evaluation).
    pub augment: bool,
    /// Per-channel (RGB) mean on the [0, 1] pixel scale: output `(p/255 − mean)/std`.
    pub mean: [f32; 3],
    /// Per-channel (RGB) standard deviation on the [0, 1] pixel scale.
    pub std: [f32; 3],
}

impl Preprocess {
    /// Centre crop, ImageNet normalization.
    pub fn eval(size: usize) -> Self {
        Preprocess {
            size,
            augment: false,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// Random crop (80–100 % of the shorter side) and flip, ImageNet normalization.
    pub fn train(size: usize) -> Self {
        Preprocess {
            augment: true,
            ..Self::eval(size)
        }
    }

    /// Number of f32 values of one preprocessed image (`size * size * 3`).
    pub fn image_len(&self) -> usize {
        self.size * self.size * 3
    }
}

/// Decodes JPEG or PNG bytes (format detected from the content) into 8-bit RGB.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage> {
    use image::ImageDecoder;
    let bad = |e: &dyn std::fmt::Display| {
        Error::Dataset(format!("cannot decode image ({} bytes): {e}", bytes.len()))
    };
    let mut decoder = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(&e))?
        .into_decoder()
        .map_err(|e| bad(&e))?;
    // A phone photo is stored sideways with an EXIF orientation; turn it upright first.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(|e| bad(&e))?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

/// Decodes an image and produces `size`×`size`×3 f32 values, HWC order, normalized (see the
/// module doc). `rng` is used only when `pre.augment` is set; it is drawn from in a fixed order
/// (crop side, x, y, flip), so the result depends only on the bytes and the rng's state.
pub fn load_image(bytes: &[u8], pre: &Preprocess, rng: &mut Rng) -> Result<Vec<f32>> {
    Ok(load_image_flip(bytes, pre, rng)?.0)
}

/// [`load_image`] into a caller's buffer of `pre.image_len()` values. Returns whether the image
/// was flipped (only ever with `pre.augment`).
pub fn load_image_into(
    bytes: &[u8],
    pre: &Preprocess,
    rng: &mut Rng,
    out: &mut [f32],
) -> Result<bool> {
    let img = decode_rgb(bytes)?;
    preprocess_rgb(&img, pre, rng, out)
}

/// [`load_image`], and whether the image was flipped (distillation targets pick their view by it).
pub fn load_image_flip(bytes: &[u8], pre: &Preprocess, rng: &mut Rng) -> Result<(Vec<f32>, bool)> {
    let mut out = vec![0.0; pre.image_len()];
    let flipped = load_image_into(bytes, pre, rng, &mut out)?;
    Ok((out, flipped))
}

/// The crop, resize, flip and normalize steps on an already decoded image. Returns whether the
/// image was flipped.
pub fn preprocess_rgb(
    img: &RgbImage,
    pre: &Preprocess,
    rng: &mut Rng,
    out: &mut [f32],
) -> Result<bool> {
    let size = pre.size;
    if size == 0 || size > u32::MAX as usize {
        return Err(Error::Dataset(format!("invalid image size {size}")));
    }
    if out.len() != pre.image_len() {
        return Err(Error::Shape(format!(
            "preprocess output buffer has {} values, expected {size}*{size}*3 = {}",
            out.len(),
            pre.image_len()
        )));
    }
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::Dataset(format!("image has no pixels ({w}x{h})")));
    }
    let crop = if pre.augment {
        random_crop(w, h, rng)
    } else {
        center_crop(w, h)
    };
    let flip = pre.augment && rng.f32() < 0.5;

    let resized;
    let (buf, stride, x0, y0) = if crop.side as usize == size {
        (
            img.as_raw().as_slice(),
            w as usize,
            crop.x as usize,
            crop.y as usize,
        )
    } else {
        let view = imageops::crop_imm(img, crop.x, crop.y, crop.side, crop.side);
        resized = imageops::resize(&*view, size as u32, size as u32, FilterType::Triangle);
        (resized.as_raw().as_slice(), size, 0, 0)
    };

    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * pre.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| pre.mean[c] / pre.std[c]);
    for (y, out_row) in out.chunks_exact_mut(size * 3).enumerate() {
        let row = &buf[((y0 + y) * stride + x0) * 3..][..size * 3];
        for (x, o) in out_row.chunks_exact_mut(3).enumerate() {
            let sx = if flip { size - 1 - x } else { x };
            let p = &row[sx * 3..sx * 3 + 3];
            for c in 0..3 {
                o[c] = f32::from(p[c]) * scale[c] - shift[c];
            }
        }
    }
    Ok(flip)
}

/// A square region of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crop {
    /// Left edge, pixels.
    pub x: u32,
    /// Top edge, pixels.
    pub y: u32,
    /// Side, pixels.
    pub side: u32,
}

/// The largest centred square.
pub fn center_crop(w: u32, h: u32) -> Crop {
    let side = w.min(h);
    Crop {
        x: (w - side) / 2,
        y: (h - side) / 2,
        side,
    }
}

/// A square covering 80–100 % of the shorter side at a uniformly random position.
pub fn random_crop(w: u32, h: u32, rng: &mut Rng) -> Crop {
    let short = w.min(h);
    let frac = rng.range(MIN_CROP_FRACTION, 1.0);
    let side = ((short as f32 * frac).round() as u32).clamp(1, short);
    let x = rng.below((w - side + 1) as usize) as u32;
    let y = rng.below((h - side + 1) as usize) as u32;
    Crop { x, y, side }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JPEG of a `w`×`h` image whose left half is white, with an EXIF orientation tag.
    fn jpeg_with_orientation(w: u32, h: u32, orientation: u16) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, _| {
            if x < w / 2 {
                image::Rgb([255, 255, 255])
            } else {
                image::Rgb([0, 0, 0])
            }
        });
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode_image(&img)
            .unwrap();
        // APP1 "Exif": a little-endian TIFF header and one IFD entry, 0x0112 SHORT = orientation.
        let mut tiff = b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0".to_vec();
        tiff.extend_from_slice(&orientation.to_le_bytes());
        tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let len = (app1.len() + 2) as u16;
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn exif_orientation_turns_a_phone_photo_upright() {
        let plain = decode_rgb(&jpeg_with_orientation(32, 16, 1)).unwrap();
        assert_eq!(plain.dimensions(), (32, 16));
        // 6: stored rotated 90° counter-clockwise; shown turned 90° clockwise: 16 wide, 32 high,
        // the white half (the stored left) now on top.
        let turned = decode_rgb(&jpeg_with_orientation(32, 16, 6)).unwrap();
        assert_eq!(turned.dimensions(), (16, 32));
        assert!(turned.get_pixel(8, 4)[0] > 200, "top is white");
        assert!(turned.get_pixel(8, 28)[0] < 50, "bottom is black");
    }

    #[test]
    fn center_crop_geometry() {
        assert_eq!(
            center_crop(6, 2),
            Crop {
                x: 2,
                y: 0,
                side: 2
            }
        );
        assert_eq!(
            center_crop(3, 8),
            Crop {
                x: 0,
                y: 2,
                side: 3
            }
        );
        assert_eq!(
            center_crop(5, 5),
            Crop {
                x: 0,
                y: 0,
                side: 5
            }
        );
    }

    #[test]
    fn random_crops_stay_inside_and_cover_80_to_100_percent() {
        let mut rng = Rng::new(7);
        let (mut min_side, mut max_side) = (u32::MAX, 0);
        for _ in 0..2000 {
            let c = random_crop(100, 60, &mut rng);
            assert!(c.x + c.side <= 100 && c.y + c.side <= 60, "{c:?}");
            assert!((48..=60).contains(&c.side), "{c:?}");
            min_side = min_side.min(c.side);
            max_side = max_side.max(c.side);
        }
        assert!(min_side <= 49 && max_side >= 59, "{min_side}..{max_side}");
        let c = random_crop(1, 1, &mut rng);
        assert_eq!(
            c,
            Crop {
                x: 0,
                y: 0,
                side: 1
            }
        );
    }
}
