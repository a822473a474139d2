//! Decoding and preprocessing: exact values on synthetic images, crops, augmentation.

use crate::data_fixtures;

use bnn_transfer::data::preprocess::{Crop, preprocess_rgb, random_crop};
use bnn_transfer::data::{Preprocess, load_image};
use bnn_transfer::rng::Rng;
use data_fixtures::*;
use image::{Rgb, RgbImage};

/// An image whose pixel (x, y) is (10x, 10y, 7), so crops and flips can be read off the output.
fn coords(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([10 * x as u8, 10 * y as u8, 7]))
}

/// The (x, y) source coordinates of every output pixel of a `coords` image, from the red and
/// green channels.
fn read_coords(out: &[f32], size: usize) -> Vec<(u32, u32)> {
    assert_eq!(out.len(), size * size * 3);
    out.chunks_exact(3)
        .map(|p| {
            let decode = |v: f32, c: usize| {
                let raw = (v * bnn_transfer::data::IMAGENET_STD[c]
                    + bnn_transfer::data::IMAGENET_MEAN[c])
                    * 255.0;
                let r = raw.round();
                assert!(
                    (raw - r).abs() < 1e-3 && (r as u32).is_multiple_of(10),
                    "not a pixel value: {raw}"
                );
                r as u32 / 10
            };
            assert_close(p[2], norm(7, 2), "blue");
            (decode(p[0], 0), decode(p[1], 1))
        })
        .collect()
}

#[test]
fn solid_colors_normalize_to_known_values() {
    let mut rng = Rng::new(0);
    for (w, h, size) in [(5, 3, 3), (3, 3, 3), (10, 10, 4), (7, 13, 5), (2, 3, 9)] {
        for (bytes, tol) in [
            (png(&solid(w, h, [255, 0, 128])), 0.0),
            (jpeg(&solid(w, h, [255, 0, 128])), 3.0 / 255.0 / 0.224),
        ] {
            let out = load_image(&bytes, &Preprocess::eval(size), &mut rng).unwrap();
            assert_eq!(out.len(), size * size * 3);
            let expect = [norm(255, 0), norm(0, 1), norm(128, 2)];
            for (i, &v) in out.iter().enumerate() {
                let e = expect[i % 3];
                assert!(
                    (v - e).abs() <= tol + 1e-5,
                    "{w}x{h}->{size} #{i}: {v} vs {e}"
                );
            }
        }
    }
    // ImageNet constants: pure white red channel = (1 - 0.485) / 0.229.
    assert_close(norm(255, 0), (1.0 - 0.485) / 0.229, "white");
    assert_close(norm(0, 2), -0.406 / 0.225, "black");
}

#[test]
fn eval_center_crops_non_square_images() {
    let mut rng = Rng::new(0);
    // Wide: 6x2 at size 2 keeps columns 2..4.
    let out = load_image(&png(&coords(6, 2)), &Preprocess::eval(2), &mut rng).unwrap();
    assert_eq!(read_coords(&out, 2), [(2, 0), (3, 0), (2, 1), (3, 1)]);
    // Tall: 3x8 at size 3 keeps rows 2..5, HWC row-major.
    let out = load_image(&png(&coords(3, 8)), &Preprocess::eval(3), &mut rng).unwrap();
    let expect: Vec<(u32, u32)> = (2..5).flat_map(|y| (0..3).map(move |x| (x, y))).collect();
    assert_eq!(read_coords(&out, 3), expect);
    // Odd difference rounds the offset down: 5x2 keeps columns 1..3.
    let out = load_image(&png(&coords(5, 2)), &Preprocess::eval(2), &mut rng).unwrap();
    assert_eq!(read_coords(&out, 2), [(1, 0), (2, 0), (1, 1), (2, 1)]);
}

#[test]
fn eval_resizes_the_center_square() {
    // 8x4: the centre square (columns 2..6) is grey, the rest black; only the square is resized.
    let img = RgbImage::from_fn(8, 4, |x, _| {
        if (2..6).contains(&x) {
            Rgb([100, 150, 200])
        } else {
            Rgb([0; 3])
        }
    });
    let out = load_image(&png(&img), &Preprocess::eval(2), &mut Rng::new(0)).unwrap();
    for (i, &v) in out.iter().enumerate() {
        assert_close(v, norm([100, 150, 200][i % 3], i % 3), "centre square only");
    }
    // Orientation survives the resize: dark left half, bright right half of the square.
    let img = RgbImage::from_fn(
        12,
        8,
        |x, _| if x < 6 { Rgb([0; 3]) } else { Rgb([255; 3]) },
    );
    let out = load_image(&png(&img), &Preprocess::eval(4), &mut Rng::new(0)).unwrap();
    for y in 0..4 {
        let row = &out[y * 12..(y + 1) * 12];
        assert_close(row[0], norm(0, 0), "left edge black");
        assert_close(row[9], norm(255, 0), "right edge white");
        assert!(
            row[3] < row[6],
            "left of centre darker than right of centre"
        );
    }
}

#[test]
fn augmentation_is_exact_deterministic_and_flips() {
    // A 4x2 image at size 2: the crop side is always 2 (80-100 % of 2, rounded), so no resize;
    // the crop starts at x in 0..=2, and a flip reverses the columns.
    let img = coords(4, 2);
    let bytes = png(&img);
    let pre = Preprocess::train(2);
    let (mut flips, mut offsets) = (0, [0; 3]);
    for seed in 0..400 {
        let mut predict = Rng::new(seed);
        let crop = random_crop(4, 2, &mut predict);
        let flip = predict.f32() < 0.5;
        assert_eq!(crop.side, 2);
        let out = load_image(&bytes, &pre, &mut Rng::new(seed)).unwrap();
        let mut cols = [crop.x, crop.x + 1];
        if flip {
            cols.reverse();
            flips += 1;
        }
        offsets[crop.x as usize] += 1;
        let expect: Vec<(u32, u32)> = (0..2).flat_map(|y| cols.map(|x| (x, y))).collect();
        assert_eq!(read_coords(&out, 2), expect, "seed {seed}");
        assert_eq!(out, load_image(&bytes, &pre, &mut Rng::new(seed)).unwrap());
    }
    assert!((140..260).contains(&flips), "flip rate {flips}/400");
    assert!(offsets.iter().all(|&n| n > 80), "crop offsets {offsets:?}");
}

#[test]
fn augmentation_differs_across_seeds() {
    let bytes = png(&coords(20, 16));
    let pre = Preprocess::train(8);
    let outs: Vec<Vec<f32>> = (0..8)
        .map(|s| load_image(&bytes, &pre, &mut Rng::new(s)).unwrap())
        .collect();
    for (i, a) in outs.iter().enumerate() {
        assert_eq!(a.len(), 8 * 8 * 3);
        assert!(a.iter().all(|v| v.is_finite()));
        for b in &outs[i + 1..] {
            assert_ne!(a, b);
        }
    }
    // Eval ignores the rng.
    let e = Preprocess::eval(8);
    assert_eq!(
        load_image(&bytes, &e, &mut Rng::new(1)).unwrap(),
        load_image(&bytes, &e, &mut Rng::new(2)).unwrap()
    );
}

#[test]
fn flip_mirrors_a_resized_crop() {
    // Left half dark, right half bright: flipped outputs have the bright side on the left.
    let img = RgbImage::from_fn(
        32,
        32,
        |x, _| if x < 16 { Rgb([0; 3]) } else { Rgb([255; 3]) },
    );
    let pre = Preprocess::train(16);
    for seed in 0..50 {
        let mut predict = Rng::new(seed);
        let _ = random_crop(32, 32, &mut predict);
        let flip = predict.f32() < 0.5;
        let mut out = vec![0.0; pre.image_len()];
        preprocess_rgb(&img, &pre, &mut Rng::new(seed), &mut out).unwrap();
        let (left, right) = (out[0], out[15 * 3]);
        assert_eq!(
            left > right,
            flip,
            "seed {seed}: left {left}, right {right}"
        );
    }
}

#[test]
fn rejects_garbage_and_bad_sizes() {
    let mut rng = Rng::new(0);
    let msg = load_image(b"definitely not an image", &Preprocess::eval(4), &mut rng)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("cannot decode image"), "{msg}");
    let truncated = &jpeg(&solid(16, 16, [1, 2, 3]))[..40];
    assert!(load_image(truncated, &Preprocess::eval(4), &mut rng).is_err());
    let bytes = png(&solid(4, 4, [1, 2, 3]));
    assert!(load_image(&bytes, &Preprocess::eval(0), &mut rng).is_err());
    assert_eq!(
        bnn_transfer::data::preprocess::center_crop(6, 2),
        Crop {
            x: 2,
            y: 0,
            side: 2
        }
    );
}
