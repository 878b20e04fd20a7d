//! Image transforms on 8-bit RGB images: the CIFAR augmentation (pad, random crop, flip), the ImageNet
//! ones (random-resized crop, resize + centre crop; the resampler is in resample.rs) and the final
//! normalisation to CHW floats.
use super::image::{CropBox, Image};
pub use super::resample::resize;
use rand::Rng;

/// Per-channel mean and standard deviation (of pixel values in [0, 1]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalisation {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

pub const CIFAR10_NORM: Normalisation = Normalisation { mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616] };
pub const CIFAR100_NORM: Normalisation =
    Normalisation { mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762] };
pub const IMAGENET_NORM: Normalisation = Normalisation { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

impl Normalisation {
    /// Per channel, the `scale` and `shift` of `value * scale - shift` = (value / 255 - mean) / std, in
    /// float32: the host's [`normalise`] and the device's (`loader::normalise_on_device`) share them, so
    /// the two give the same bits.
    pub fn scale_shift(&self) -> ([f32; 3], [f32; 3]) {
        let scale = std::array::from_fn(|c| 1.0 / (255.0 * self.std[c]));
        let shift = std::array::from_fn(|c| self.mean[c] / self.std[c]);
        (scale, shift)
    }
}

/// CHW float32 pixels: (value / 255 - mean) / std per channel.
pub fn normalise(image: &Image, norm: &Normalisation) -> Vec<f32> {
    let area = image.width * image.height;
    let mut out = vec![0f32; 3 * area];
    let (scales, shifts) = norm.scale_shift();
    for c in 0..3 {
        let (scale, shift) = (scales[c], shifts[c]);
        let plane = &mut out[c * area..(c + 1) * area];
        for (dst, px) in plane.iter_mut().zip(image.pixels.chunks_exact(3)) {
            *dst = px[c] as f32 * scale - shift;
        }
    }
    out
}

/// The CIFAR training augmentation: zero-pad by `pad` on every side, take a random crop of the original
/// size, flip horizontally with probability 1/2 if `flip`.
pub fn pad_crop_flip(image: &Image, pad: usize, flip: bool, rng: &mut impl Rng) -> Image {
    let (w, h) = (image.width, image.height);
    // Offset of the crop inside the padded image; source x = crop x + dx - pad.
    let dx = rng.gen_range(0..=2 * pad);
    let dy = rng.gen_range(0..=2 * pad);
    // Drawn last, so that turning flips off leaves the offsets' draws as they were.
    let flip = flip && rng.gen_bool(0.5);
    let mut pixels = vec![0u8; w * h * 3];
    for y in 0..h {
        let sy = (y + dy) as isize - pad as isize;
        if sy < 0 || sy >= h as isize {
            continue;
        }
        for x in 0..w {
            let sx = (x + dx) as isize - pad as isize;
            if sx < 0 || sx >= w as isize {
                continue;
            }
            let tx = if flip { w - 1 - x } else { x };
            let src = (sy as usize * w + sx as usize) * 3;
            let dst = (y * w + tx) * 3;
            pixels[dst..dst + 3].copy_from_slice(&image.pixels[src..src + 3]);
        }
    }
    Image::new(w, h, pixels)
}

/// torchvision's RandomResizedCrop box (Python's round-half-to-even included): area fraction in `scale`, aspect ratio log-uniform in `ratio`,
/// ten tries, then the centred crop of the whole image clamped to the ratio range.
pub fn random_resized_box(
    width: usize,
    height: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut impl Rng,
) -> CropBox {
    let area = (width * height) as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * uniform(scale.0, scale.1, rng);
        let aspect = uniform(log_lo, log_hi, rng).exp();
        let w = (target_area * aspect).sqrt().round_ties_even() as usize;
        let h = (target_area / aspect).sqrt().round_ties_even() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.gen_range(0..=height - h);
            let left = rng.gen_range(0..=width - w);
            return CropBox { left, top, width: w, height: h };
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < ratio.0 {
        (width, ((width as f64 / ratio.0).round_ties_even() as usize).clamp(1, height))
    } else if in_ratio > ratio.1 {
        (((height as f64 * ratio.1).round_ties_even() as usize).clamp(1, width), height)
    } else {
        (width, height)
    };
    CropBox { left: (width - w) / 2, top: (height - h) / 2, width: w, height: h }
}

/// A draw from [lo, hi), or lo itself when the range is a single value (torchvision allows lo == hi, which
/// `gen_range` refuses).
fn uniform(lo: f64, hi: f64, rng: &mut impl Rng) -> f64 {
    if lo < hi {
        rng.gen_range(lo..hi)
    } else {
        lo
    }
}

/// The random-resized crop's ranges: area fraction and aspect ratio (timm's `--scale` and `--ratio`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropRanges {
    pub scale: (f64, f64),
    pub ratio: (f64, f64),
}

/// torchvision's and timm's defaults, the paper's ImageNet recipe.
pub const IMAGENET_CROP_RANGES: CropRanges = CropRanges { scale: (0.08, 1.0), ratio: (3.0 / 4.0, 4.0 / 3.0) };

/// The ImageNet training transform's geometry: random-resized crop within `ranges` to `side` x `side`,
/// then (if `flip`) a horizontal flip with probability 1/2.
pub fn random_resized_crop_flip(
    image: &Image,
    side: usize,
    ranges: CropRanges,
    flip: bool,
    rng: &mut impl Rng,
) -> Image {
    let region = random_resized_box(image.width, image.height, ranges.scale, ranges.ratio, rng);
    let out = resize(image, region, side, side);
    if flip {
        random_flip(out, rng)
    } else {
        out
    }
}

/// `image` flipped horizontally with probability 1/2.
pub fn random_flip(image: Image, rng: &mut impl Rng) -> Image {
    if rng.gen_bool(0.5) {
        flip_horizontal(&image)
    } else {
        image
    }
}

pub fn flip_horizontal(image: &Image) -> Image {
    let row = image.width * 3;
    let mut pixels = Vec::with_capacity(image.pixels.len());
    for line in image.pixels.chunks_exact(row) {
        for px in line.chunks_exact(3).rev() {
            pixels.extend_from_slice(px);
        }
    }
    Image::new(image.width, image.height, pixels)
}

/// (width, height) of a `width` x `height` image resized so that its shorter side is `resize_to`, the
/// longer one truncated (torchvision's Resize(int)).
pub fn resized_size(width: usize, height: usize, resize_to: usize) -> (usize, usize) {
    if width <= height {
        (resize_to, (resize_to as f64 * height as f64 / width as f64) as usize)
    } else {
        ((resize_to as f64 * width as f64 / height as f64) as usize, resize_to)
    }
}

/// The evaluation transform: resize so the shorter side is `resize_to` (torchvision's Resize(int): the
/// longer side truncated), then the centred `crop` x `crop` square (torchvision's CenterCrop rounding).
pub fn resize_centre_crop(image: &Image, resize_to: usize, crop: usize) -> Image {
    let (w, h) = (image.width, image.height);
    let (rw, rh) = resized_size(w, h, resize_to);
    let resized = resize(image, CropBox { left: 0, top: 0, width: w, height: h }, rw, rh);
    let top = ((rh - crop) as f64 / 2.0).round_ties_even() as usize;
    let left = ((rw - crop) as f64 / 2.0).round_ties_even() as usize;
    crop_image(&resized, CropBox { left, top, width: crop, height: crop })
}

pub fn crop_image(image: &Image, region: CropBox) -> Image {
    let mut pixels = Vec::with_capacity(region.width * region.height * 3);
    for y in region.top..region.top + region.height {
        let start = (y * image.width + region.left) * 3;
        pixels.extend_from_slice(&image.pixels[start..start + region.width * 3]);
    }
    Image::new(region.width, region.height, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::seed;

    fn ramp(w: usize, h: usize) -> Image {
        Image::new(w, h, (0..w * h * 3).map(|i| (i % 251) as u8).collect())
    }

    #[test]
    fn normalise_is_chw() {
        let img = Image::new(2, 1, vec![0, 51, 255, 255, 0, 51]);
        let norm = Normalisation { mean: [0.0; 3], std: [1.0; 3] };
        let out = normalise(&img, &norm);
        let expected = [0.0, 1.0, 0.2, 0.0, 1.0, 0.2];
        for (a, b) in out.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    /// The crop at (dx, dy) of the zero-padded image, optionally mirrored: the definition, written plainly.
    fn reference_crop(img: &Image, pad: usize, dx: usize, dy: usize, flip: bool) -> Image {
        let (w, h) = (img.width, img.height);
        let (pw, ph) = (w + 2 * pad, h + 2 * pad);
        let mut padded = vec![0u8; pw * ph * 3];
        for y in 0..h {
            let row = &img.pixels[y * w * 3..(y + 1) * w * 3];
            let at = ((y + pad) * pw + pad) * 3;
            padded[at..at + w * 3].copy_from_slice(row);
        }
        let mut out = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let sx = if flip { w - 1 - x } else { x };
                let at = ((y + dy) * pw + sx + dx) * 3;
                out.extend_from_slice(&padded[at..at + 3]);
            }
        }
        Image::new(w, h, out)
    }

    #[test]
    fn pad_crop_flip_is_a_crop_of_the_padded_image() {
        let img = ramp(8, 6);
        let mut rng = seed::rng(3);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let out = pad_crop_flip(&img, 2, true, &mut rng);
            let found = (0..=4)
                .flat_map(|dx| (0..=4).flat_map(move |dy| [(dx, dy, false), (dx, dy, true)]))
                .find(|&(dx, dy, flip)| reference_crop(&img, 2, dx, dy, flip) == out);
            seen.insert(found.expect("output is not a crop of the padded image"));
        }
        assert!(seen.len() > 30, "crops are not spread over offsets and flips: {}", seen.len());
    }

    /// `n` seeded boxes of a 1000 x 1000 image, as (area fraction, aspect ratio) bounds that allow for the
    /// rounding of width and height to whole pixels: (least, most) of each.
    fn drawn_boxes(scale: (f64, f64), ratio: (f64, f64), n: usize) -> Vec<[(f64, f64); 2]> {
        let side = 1000usize;
        let mut rng = seed::rng(11);
        (0..n)
            .map(|_| {
                let b = random_resized_box(side, side, scale, ratio, &mut rng);
                assert!(b.left + b.width <= side && b.top + b.height <= side, "{b:?}");
                let (w, h) = (b.width as f64, b.height as f64);
                let area = (side * side) as f64;
                [
                    ((w - 0.5) * (h - 0.5) / area, (w + 0.5) * (h + 0.5) / area),
                    ((w - 0.5) / (h + 0.5), (w + 0.5) / (h - 0.5)),
                ]
            })
            .collect()
    }

    #[test]
    fn drawn_areas_fall_within_the_scale_range_and_reach_both_ends() {
        // Boxes of at most 60% of a square image always fit, so no draw falls back to the whole image.
        let (lo, hi) = (0.3, 0.6);
        let boxes = drawn_boxes((lo, hi), (3.0 / 4.0, 4.0 / 3.0), 3000);
        for [(least, most), _] in &boxes {
            assert!(*most >= lo && *least <= hi, "area fraction {least:.4}..{most:.4} outside [{lo}, {hi}]");
        }
        let smallest = boxes.iter().map(|b| b[0].1).fold(f64::MAX, f64::min);
        let largest = boxes.iter().map(|b| b[0].0).fold(0.0, f64::max);
        assert!(smallest < lo + 0.01 && largest > hi - 0.01, "areas span only {smallest:.4}..{largest:.4}");
    }

    #[test]
    fn drawn_aspect_ratios_fall_within_the_ratio_range_and_reach_both_ends() {
        let (lo, hi) = (2.0, 3.0);
        let boxes = drawn_boxes((0.1, 0.2), (lo, hi), 3000);
        for [_, (least, most)] in &boxes {
            assert!(*most >= lo && *least <= hi, "aspect ratio {least:.4}..{most:.4} outside [{lo}, {hi}]");
        }
        let smallest = boxes.iter().map(|b| b[1].1).fold(f64::MAX, f64::min);
        let largest = boxes.iter().map(|b| b[1].0).fold(0.0, f64::max);
        assert!(smallest < lo + 0.05 && largest > hi - 0.05, "ratios span only {smallest:.4}..{largest:.4}");
    }

    #[test]
    fn a_single_value_range_draws_that_value() {
        let mut rng = seed::rng(5);
        for _ in 0..20 {
            let b = random_resized_box(400, 400, (0.25, 0.25), (1.0, 1.0), &mut rng);
            assert_eq!((b.width, b.height), (200, 200));
        }
    }

    #[test]
    fn no_flip_and_no_padding_leave_the_image_as_it_is() {
        let img = ramp(8, 6);
        let mut rng = seed::rng(4);
        let mut flipped = 0;
        for _ in 0..50 {
            assert_eq!(pad_crop_flip(&img, 0, false, &mut rng), img);
            let out = pad_crop_flip(&img, 0, true, &mut rng);
            assert!(out == img || out == flip_horizontal(&img), "padding 0 shifted the image");
            flipped += (out != img) as usize;
        }
        assert!((10..40).contains(&flipped), "{flipped} of 50 flipped");
    }
}
