//! A built-in data set that needs no files: colour images of simple objects (disc, ring, square, ...)
//! drawn at varying scale, position, rotation and colour on textured backgrounds. Object colours overlap
//! between classes, so a model has to see the shape. Each image is a function of (data set seed, subset,
//! index) only; `render(index, scale)` draws the same scene zoomed about the image centre, which is
//! "centre crop 1/scale of the image, resize back" rendered at full resolution (for the attention analysis).
use super::dataset::{Dataset, ImageSample, Sample, Split};
use super::image::{Image, MAX_SAMPLE_SIDE};
use super::seed::{self, DataRng};
use super::transforms::{normalise, pad_crop_flip, Normalisation};
use anyhow::{bail, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::f32::consts::{PI, TAU};

pub const CLASS_NAMES: [&str; 10] =
    ["disc", "ring", "square", "triangle", "plus", "bar", "frame", "half_disc", "two_dots", "x_cross"];

/// Close to the measured statistics of the set (tested), so normalised inputs are roughly zero-mean, unit-std.
pub const SYNTHETIC_NORM: Normalisation = Normalisation { mean: [0.4, 0.4, 0.4], std: [0.2, 0.2, 0.2] };

/// The most images a subset may have (its epoch order alone is 8 bytes an image).
pub const MAX_SIZE: usize = 100_000_000;

/// The `data:` section for the built-in set; a missing field takes its value from `Default`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticSpec {
    /// Seed of the images themselves (the run seed drives shuffling and augmentation).
    pub seed: u64,
    pub train_size: usize,
    pub eval_size: usize,
    pub classes: usize,
    pub image_size: usize,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec { seed: 0, train_size: 5000, eval_size: 1000, classes: CLASS_NAMES.len(), image_size: 32 }
    }
}

/// Which of the set's two image collections a `Synthetic` draws from; train and eval never share an
/// image. (Not `data::Split`, which says which transform a sample gets.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subset {
    Train,
    Eval,
}

#[derive(Clone, Debug)]
pub struct Synthetic {
    seed: u64,
    subset: Subset,
    len: usize,
    classes: usize,
    size: usize,
}

impl Synthetic {
    pub fn new(spec: &SyntheticSpec, subset: Subset) -> Result<Synthetic> {
        if !(2..=CLASS_NAMES.len()).contains(&spec.classes) {
            bail!("data.classes: the synthetic set has 2 to {} classes, got {}", CLASS_NAMES.len(), spec.classes);
        }
        if spec.image_size < 8 {
            bail!("data.image_size: expected at least 8 pixels, got {}", spec.image_size);
        }
        if spec.image_size > MAX_SAMPLE_SIDE {
            bail!("data.image_size: expected at most {MAX_SAMPLE_SIDE}, got {}", spec.image_size);
        }
        for (field, size) in [("train_size", spec.train_size), ("eval_size", spec.eval_size)] {
            if size > MAX_SIZE {
                bail!("data.{field}: expected at most {MAX_SIZE}, got {size}");
            }
        }
        let len = match subset {
            Subset::Train => spec.train_size,
            Subset::Eval => spec.eval_size,
        };
        if len == 0 {
            bail!("data.{}_size: expected at least one image", if subset == Subset::Train { "train" } else { "eval" });
        }
        Ok(Synthetic { seed: spec.seed, subset, len, classes: spec.classes, size: spec.image_size })
    }

    /// Classes are interleaved, so every prefix of the set is balanced.
    pub fn label(&self, index: usize) -> i64 {
        (index % self.classes) as i64
    }

    /// Image `index` with the scene zoomed by `scale` about the image centre (1.0 = the data set's image).
    pub fn render(&self, index: usize, scale: f64) -> Result<Image> {
        if index >= self.len {
            bail!("synthetic image {index} out of range (the set has {})", self.len);
        }
        if !(scale.is_finite() && scale > 0.0) {
            bail!("synthetic render: scale must be a positive number, got {scale}");
        }
        let subset_tag = match self.subset {
            Subset::Train => 0,
            Subset::Eval => 1,
        };
        let mut rng = seed::rng(seed::derive(&[self.seed, subset_tag, index as u64]));
        let scene = Scene::draw(self.label(index) as usize, &mut rng);
        Ok(scene.render(self.size, scale as f32))
    }

    /// Image `index` zoomed by `scale`, with the evaluation transform (normalisation only).
    pub fn zoomed_sample(&self, index: usize, scale: f64) -> Result<Sample> {
        Ok(Sample { pixels: normalise(&self.render(index, scale)?, &SYNTHETIC_NORM), label: self.label(index) })
    }
}

impl Dataset for Synthetic {
    fn len(&self) -> usize {
        self.len
    }

    fn num_classes(&self) -> i64 {
        self.classes as i64
    }

    fn image_size(&self) -> (i64, i64) {
        (self.size as i64, self.size as i64)
    }

    fn sample(&self, index: usize, split: Split, seed: u64) -> Result<Sample> {
        Ok(self.image_sample(index, split, seed)?.normalised(&SYNTHETIC_NORM))
    }

    fn normalisation(&self) -> Option<Normalisation> {
        Some(SYNTHETIC_NORM)
    }

    fn image_sample(&self, index: usize, split: Split, seed: u64) -> Result<ImageSample> {
        let image = self.render(index, 1.0)?;
        let image = match split {
            // CIFAR's pad 4 at 32 pixels, in proportion for other sizes.
            Split::Train => pad_crop_flip(&image, (self.size / 8).max(1), true, &mut seed::rng(seed)),
            Split::Eval => image,
        };
        Ok(ImageSample { image, label: self.label(index) })
    }
}

/// Everything random about one image, drawn up front so that rendering is a pure function of it.
struct Scene {
    class: usize,
    centre: [f32; 2],
    radius: f32,
    /// Rotation as (cos, sin).
    rotation: [f32; 2],
    stretch: f32,
    object: [f32; 3],
    background: [[f32; 3]; 2],
    texture: Texture,
    grain: ValueNoise,
}

enum Texture {
    Stripes { freq: f32, dir: [f32; 2], phase: f32 },
    Checker { freq: f32, dir: [f32; 2] },
    Blotches(ValueNoise),
}

/// Smoothly interpolated random values on a square grid over the unit square (periodic outside it).
struct ValueNoise {
    cells: usize,
    values: Vec<f32>,
}

impl ValueNoise {
    fn draw(cells: usize, rng: &mut DataRng) -> ValueNoise {
        ValueNoise { cells, values: (0..cells * cells).map(|_| rng.gen::<f32>()).collect() }
    }

    fn at(&self, x: f32, y: f32) -> f32 {
        let n = self.cells;
        let (gx, gy) = (x * n as f32, y * n as f32);
        let (fx, fy) = (gx.floor(), gy.floor());
        let (tx, ty) = (smooth(gx - fx), smooth(gy - fy));
        let (ix, iy) = ((fx as i64).rem_euclid(n as i64) as usize, (fy as i64).rem_euclid(n as i64) as usize);
        let (jx, jy) = ((ix + 1) % n, (iy + 1) % n);
        let v = |x: usize, y: usize| self.values[y * n + x];
        let top = v(ix, iy) + (v(jx, iy) - v(ix, iy)) * tx;
        let bottom = v(ix, jy) + (v(jx, jy) - v(ix, jy)) * tx;
        top + (bottom - top) * ty
    }
}

fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

impl Scene {
    fn draw(class: usize, rng: &mut DataRng) -> Scene {
        let centre = [0.5 + rng.gen_range(-0.12..0.12), 0.5 + rng.gen_range(-0.12..0.12)];
        let radius = rng.gen_range(0.16..0.32);
        let angle = rng.gen_range(-0.3f32..0.3);
        let stretch = rng.gen_range(0.85..1.15);

        // Class hues are 0.1 turn apart but each spreads over 0.6 turn: colour alone is a weak cue.
        let hue = class as f32 * 0.1 + rng.gen_range(-0.3..0.3);
        let background_value = rng.gen_range(0.15f32..0.85);
        let contrast = rng.gen_range(0.3f32..0.5);
        let object_value =
            if background_value + contrast <= 1.0 && (background_value - contrast < 0.05 || rng.gen_bool(0.5)) {
                background_value + contrast
            } else {
                background_value - contrast
            };
        let object = hsv(hue, rng.gen_range(0.4..1.0), object_value);
        let background_hue = rng.gen::<f32>();
        let background_saturation = rng.gen_range(0.0..0.6);
        let background = [
            hsv(background_hue, background_saturation, background_value - 0.1),
            hsv(background_hue + rng.gen_range(-0.1..0.1), background_saturation, background_value + 0.1),
        ];

        let texture_angle = rng.gen_range(0.0..PI);
        let dir = [texture_angle.cos(), texture_angle.sin()];
        let texture = match rng.gen_range(0..3) {
            0 => Texture::Stripes { freq: rng.gen_range(3.0..9.0), dir, phase: rng.gen_range(0.0..TAU) },
            1 => Texture::Checker { freq: rng.gen_range(2.0..6.0), dir },
            _ => Texture::Blotches(ValueNoise::draw(rng.gen_range(3..8), rng)),
        };
        let grain = ValueNoise::draw(40, rng);
        let rotation = [angle.cos(), angle.sin()];
        Scene { class, centre, radius, rotation, stretch, object, background, texture, grain }
    }

    /// The colour of the scene at point (x, y) of the unit square (y downwards).
    fn colour_at(&self, x: f32, y: f32) -> [f32; 3] {
        let grain = 0.9 + 0.2 * self.grain.at(x, y);
        let (dx, dy) = (x - self.centre[0], y - self.centre[1]);
        let [c, s] = self.rotation;
        let u = (c * dx + s * dy) / (self.radius * self.stretch);
        let v = (-s * dx + c * dy) / self.radius;
        if inside(self.class, u, v) {
            return self.object.map(|ch| ch * grain);
        }
        let t = match &self.texture {
            Texture::Stripes { freq, dir, phase } => 0.5 + 0.5 * (TAU * freq * (x * dir[0] + y * dir[1]) + phase).sin(),
            Texture::Checker { freq, dir } => {
                let (a, b) = (x * dir[0] + y * dir[1], -x * dir[1] + y * dir[0]);
                ((a * freq).floor() + (b * freq).floor()).rem_euclid(2.0)
            }
            Texture::Blotches(noise) => noise.at(x, y),
        };
        let [lo, hi] = self.background;
        [0, 1, 2].map(|ch| (lo[ch] + (hi[ch] - lo[ch]) * t) * grain)
    }

    /// Pixel (px, py) samples the scene at centre + (p - centre) / scale, averaged over a sub-pixel grid.
    fn render(&self, size: usize, scale: f32) -> Image {
        let sub = if size <= 64 { 3 } else { 2 };
        let mut pixels = Vec::with_capacity(size * size * 3);
        let step = 1.0 / (size * sub) as f32;
        for py in 0..size {
            for px in 0..size {
                let mut sum = [0f32; 3];
                for sy in 0..sub {
                    for sx in 0..sub {
                        let x = ((px * sub + sx) as f32 + 0.5) * step;
                        let y = ((py * sub + sy) as f32 + 0.5) * step;
                        let colour = self.colour_at(0.5 + (x - 0.5) / scale, 0.5 + (y - 0.5) / scale);
                        for ch in 0..3 {
                            sum[ch] += colour[ch];
                        }
                    }
                }
                let n = (sub * sub) as f32;
                pixels.extend(sum.map(|v| (v / n * 255.0).round().clamp(0.0, 255.0) as u8));
            }
        }
        Image::new(size, size, pixels)
    }
}

/// Whether object-local point (u, v) (object spans about [-1, 1]^2, v downwards) lies inside the shape.
fn inside(class: usize, u: f32, v: f32) -> bool {
    let r2 = u * u + v * v;
    let (au, av) = (u.abs(), v.abs());
    let plus = |a: f32, b: f32| (a.abs() <= 0.28 && b.abs() <= 0.95) || (b.abs() <= 0.28 && a.abs() <= 0.95);
    match class {
        0 => r2 <= 1.0,
        1 => (0.25..=1.0).contains(&r2),
        2 => au.max(av) <= 0.8,
        3 => v <= 0.75 && au <= (v + 0.9) / 1.65,
        4 => plus(u, v),
        5 => au <= 1.0 && av <= 0.3,
        6 => (0.5..=0.85).contains(&au.max(av)),
        7 => v <= 0.45 && u * u + (v - 0.45) * (v - 0.45) <= 1.0,
        8 => (u + 0.5).powi(2) + v * v <= 0.18 || (u - 0.5).powi(2) + v * v <= 0.18,
        9 => plus((u + v) * std::f32::consts::FRAC_1_SQRT_2, (v - u) * std::f32::consts::FRAC_1_SQRT_2),
        _ => unreachable!("class {class} checked in Synthetic::new"),
    }
}

/// HSV (hue in turns, wrapping) to RGB in [0, 1].
fn hsv(hue: f32, saturation: f32, value: f32) -> [f32; 3] {
    let value = value.clamp(0.0, 1.0);
    let h = hue.rem_euclid(1.0) * 6.0;
    let sector = h.floor() as usize % 6;
    let f = h - h.floor();
    let (p, q, t) =
        (value * (1.0 - saturation), value * (1.0 - saturation * f), value * (1.0 - saturation * (1.0 - f)));
    match sector {
        0 => [value, t, p],
        1 => [q, value, p],
        2 => [p, value, t],
        3 => [p, q, value],
        4 => [t, p, value],
        _ => [value, p, q],
    }
}
