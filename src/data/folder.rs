//! ImageNet-style folders: `root/train/<class>/<image>` and `root/val/<class>/<image>`, JPEG or PNG. Class
//! indices follow the sorted class folder names of `train/` (as torchvision's ImageFolder numbers them), or
//! of `val/` when there is no `train/` (a folder for evaluation only, whose training set is then empty).
use super::dataset::{BadSample, Dataset, ImageSample, Sample, Split};
use super::image::{Image, MAX_SAMPLE_SIDE};
use super::seed;
use super::transforms::{
    random_flip, random_resized_crop_flip, resize_centre_crop, resized_size, CropRanges, Normalisation,
    IMAGENET_CROP_RANGES, IMAGENET_NORM,
};
use anyhow::{anyhow, bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The largest side of an image file, and of its evaluation resize, in pixels: a file over it is refused
/// (or skipped with `skip_bad_images`) before anything of its size is allocated.
pub const MAX_IMAGE_SIDE: usize = 16384;
/// The most pixels an image file may have (about 100 megapixels).
pub const MAX_IMAGE_PIXELS: u64 = 100_000_000;

/// The `data:` section for image folders (`kind: folder`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FolderSpec {
    /// Holds `train/` and `val/`; relative paths are taken from the data root.
    pub root: PathBuf,
    /// Side of the random-resized training crop.
    #[serde(default = "default_crop")]
    pub crop: usize,
    /// Side of the evaluation centre crop (224, or 320 for the paper's large-crop results).
    #[serde(default = "default_crop")]
    pub eval_crop: usize,
    /// Shorter side after the evaluation resize; default eval_crop / 0.875 (256 for 224, 366 for 320).
    #[serde(default)]
    pub eval_resize: Option<usize>,
    /// Skip (and count) images that fail to decode instead of stopping with an error.
    #[serde(default)]
    pub skip_bad_images: bool,
    // The augmentation fields below stay out of run files at their defaults, so that a run file written
    // before they existed reads back (and writes) as the same run.
    /// The training images' transform before the flip: `random_resized_crop` or `none` (pre-cropped data).
    #[serde(default, skip_serializing_if = "TrainTransform::is_default")]
    pub train_transform: TrainTransform,
    /// The random-resized crop's area, as a fraction of the image's: [min, max] (timm's `--scale`).
    #[serde(default = "default_scale", skip_serializing_if = "is_default_scale")]
    pub scale: (f64, f64),
    /// The random-resized crop's aspect ratio (width / height), drawn log-uniformly: [min, max] (timm's `--ratio`).
    #[serde(default = "default_ratio", skip_serializing_if = "is_default_ratio")]
    pub ratio: (f64, f64),
    /// Flip training images horizontally with probability 1/2; default on with `random_resized_crop`, off
    /// with `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flip: Option<bool>,
}

/// What an image folder does to a training image before the flip.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TrainTransform {
    /// A random crop (area fraction in `scale`, aspect ratio in `ratio`) resized to `crop` x `crop`.
    #[default]
    RandomResizedCrop,
    /// The evaluation transform at the training crop: the shorter side resized to crop x eval_resize /
    /// eval_crop, then the centred `crop` x `crop` square. With eval_resize = eval_crop, images already
    /// `crop` x `crop` pass unchanged.
    None,
}

impl TrainTransform {
    fn is_default(&self) -> bool {
        *self == TrainTransform::default()
    }
}

fn default_crop() -> usize {
    224
}
fn default_scale() -> (f64, f64) {
    IMAGENET_CROP_RANGES.scale
}
fn default_ratio() -> (f64, f64) {
    IMAGENET_CROP_RANGES.ratio
}
fn is_default_scale(scale: &(f64, f64)) -> bool {
    *scale == default_scale()
}
fn is_default_ratio(ratio: &(f64, f64)) -> bool {
    *ratio == default_ratio()
}

/// A [min, max] field with 0 < min <= max <= `most` (NaN and infinities refused).
fn check_range(field: &str, (min, max): (f64, f64), most: f64) -> Result<()> {
    let bound = if most == 1.0 { " <= 1" } else { "" };
    ensure!(
        min > 0.0 && min <= max && max <= most,
        "{field}: expected [min, max] with 0 < min <= max{bound}, got [{min}, {max}]"
    );
    Ok(())
}

impl FolderSpec {
    /// The folders under `root` with every other field at its default (today's ImageNet transforms).
    pub fn new(root: impl Into<PathBuf>) -> FolderSpec {
        FolderSpec {
            root: root.into(),
            crop: default_crop(),
            eval_crop: default_crop(),
            eval_resize: None,
            skip_bad_images: false,
            train_transform: TrainTransform::default(),
            scale: default_scale(),
            ratio: default_ratio(),
            flip: None,
        }
    }

    /// The training split's random crop; None: the evaluation transform.
    fn train_crop(&self) -> Option<CropRanges> {
        match self.train_transform {
            TrainTransform::RandomResizedCrop => Some(CropRanges { scale: self.scale, ratio: self.ratio }),
            TrainTransform::None => None,
        }
    }

    /// Whether training images are flipped (the default depends on the transform).
    pub fn flips(&self) -> bool {
        self.flip.unwrap_or(self.train_transform == TrainTransform::RandomResizedCrop)
    }

    /// The augmentation fields' bounds: 0 < min <= max <= 1 for `scale`, 0 < min <= max for `ratio`.
    pub fn check_augmentation(&self) -> Result<()> {
        check_range("data.scale", self.scale, 1.0)?;
        check_range("data.ratio", self.ratio, f64::MAX)
    }

    pub fn eval_resize(&self) -> usize {
        self.eval_resize.unwrap_or_else(|| (self.eval_crop as f64 / 0.875).round() as usize)
    }
}

/// One folder split. Its output side is fixed (`Dataset::image_size`): the training transform is a
/// random-resized crop to that side (or, with `train_transform: none`, the evaluation transform), the
/// evaluation transform a resize then a centre crop to it.
#[derive(Debug)]
pub struct Folder {
    files: Vec<(PathBuf, i64)>,
    classes: Vec<String>,
    side: usize,
    eval_resize: usize,
    skip_bad_images: bool,
    /// The training split's random crop; None: the evaluation transform.
    train_crop: Option<CropRanges>,
    train_flip: bool,
}

/// The training set (`train/`) and the evaluation set (`val/`).
pub fn open(root: &Path, spec: &FolderSpec) -> Result<(Folder, Folder)> {
    check(root, spec)?;
    let (train_dir, val_dir) = (root.join("train"), root.join("val"));
    let train = if train_dir.is_dir() {
        let classes = class_names(&train_dir)?;
        let files = list_images(&train_dir, &classes, true)?;
        Some((classes, files))
    } else if val_dir.is_dir() {
        None
    } else {
        bail!("image folder root {} holds neither train/ nor val/ (expected <split>/<class>/<image>)", root.display());
    };
    let val_classes = class_names(&val_dir)?;
    // Evaluation only (e.g. ImageNet's val/ alone): the classes are val/'s, and there is nothing to train on.
    let (classes, train_files) = train.unwrap_or_else(|| (val_classes.clone(), Vec::new()));
    let val = eval_set(root, spec, classes.clone(), &val_classes)?;
    let train = Folder {
        files: train_files,
        classes,
        side: spec.crop,
        eval_resize: train_eval_resize(spec),
        skip_bad_images: spec.skip_bad_images,
        train_crop: spec.train_crop(),
        train_flip: spec.flips(),
    };
    Ok((train, val))
}

/// The evaluation set (`val/`) alone, numbered as [`open`] numbers it: the class names are `train/`'s folder
/// names, read without listing the (possibly million) training images.
pub fn open_eval(root: &Path, spec: &FolderSpec) -> Result<Folder> {
    check(root, spec)?;
    let (train_dir, val_dir) = (root.join("train"), root.join("val"));
    let val_classes = class_names(&val_dir)?;
    let classes = if train_dir.is_dir() { class_names(&train_dir)? } else { val_classes.clone() };
    eval_set(root, spec, classes, &val_classes)
}

/// The training set's evaluation resize: the same ratio to its crop as the val set's.
fn train_eval_resize(spec: &FolderSpec) -> usize {
    (spec.crop as f64 * spec.eval_resize() as f64 / spec.eval_crop as f64).round() as usize
}

fn check(root: &Path, spec: &FolderSpec) -> Result<()> {
    spec.check_augmentation()?;
    if spec.crop == 0 || spec.eval_crop == 0 {
        bail!("data.crop and data.eval_crop must be at least 1 pixel");
    }
    for (field, value) in [("crop", spec.crop), ("eval_crop", spec.eval_crop)] {
        if value > MAX_SAMPLE_SIDE {
            bail!("data.{field}: expected at most {MAX_SAMPLE_SIDE}, got {value}");
        }
    }
    if let Some(resize) = spec.eval_resize.filter(|&r| r > MAX_IMAGE_SIDE) {
        bail!("data.eval_resize: expected at most {MAX_IMAGE_SIDE}, got {resize}");
    }
    if train_eval_resize(spec) > MAX_IMAGE_SIDE {
        bail!(
            "data.crop: the training images' evaluation resize, crop x eval_resize / eval_crop = {} x {} / {}, \
             exceeds {MAX_IMAGE_SIDE}",
            spec.crop,
            spec.eval_resize(),
            spec.eval_crop
        );
    }
    if spec.eval_resize() < spec.eval_crop {
        bail!("data.eval_resize ({}) is smaller than data.eval_crop ({})", spec.eval_resize(), spec.eval_crop);
    }
    if !root.is_dir() {
        bail!("image folder root {} does not exist", root.display());
    }
    Ok(())
}

/// `val/`'s images, labelled by their folder's index in `classes` (every val/ class must be one of them).
fn eval_set(root: &Path, spec: &FolderSpec, classes: Vec<String>, val_classes: &[String]) -> Result<Folder> {
    let val_dir = root.join("val");
    if let Some(unknown) = val_classes.iter().find(|c| classes.binary_search(c).is_err()) {
        bail!(
            "class folder {} has no counterpart in {}",
            val_dir.join(unknown).display(),
            root.join("train").display()
        );
    }
    Ok(Folder {
        files: list_images(&val_dir, &classes, false)?,
        classes,
        side: spec.eval_crop,
        eval_resize: spec.eval_resize(),
        skip_bad_images: spec.skip_bad_images,
        train_crop: spec.train_crop(),
        train_flip: spec.flips(),
    })
}

fn class_names(dir: &Path) -> Result<Vec<String>> {
    let context = || format!("cannot read image folder {}", dir.display());
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(context)? {
        let path = entry.with_context(context)?.path();
        if path.is_dir() {
            let name = path.file_name().and_then(|name| name.to_str());
            names.push(name.ok_or_else(|| anyhow!("class folder {} is not UTF-8", path.display()))?.to_string());
        }
    }
    if names.is_empty() {
        bail!("image folder {} has no class folders", dir.display());
    }
    names.sort();
    Ok(names)
}

/// Every image file (by extension) under `dir/<class>/`, sorted by class then file name. An empty class
/// folder is an error; in `val/` a class may be missing altogether.
fn list_images(dir: &Path, classes: &[String], all_classes_required: bool) -> Result<Vec<(PathBuf, i64)>> {
    let mut files = Vec::new();
    for (index, class) in classes.iter().enumerate() {
        let class_dir = dir.join(class);
        if !class_dir.is_dir() && !all_classes_required {
            continue;
        }
        let context = || format!("cannot read class folder {}", class_dir.display());
        let mut images = Vec::new();
        for entry in std::fs::read_dir(&class_dir).with_context(context)? {
            let path = entry.with_context(context)?.path();
            let is_image = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)));
            if is_image && path.is_file() {
                images.push(path);
            }
        }
        if images.is_empty() {
            bail!("class folder {} holds no images (expected .jpg, .jpeg or .png files)", class_dir.display());
        }
        images.sort();
        files.extend(images.into_iter().map(|p| (p, index as i64)));
    }
    Ok(files)
}

/// Decode a JPEG or PNG file (format from its content) to 8-bit RGB.
pub fn decode(path: &Path) -> Result<Image, BadSample> {
    let bad = |reason: String| BadSample { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    if is_truncated_jpeg(&bytes) {
        return Err(bad("truncated JPEG: no end-of-image marker near the end of the file".into()));
    }
    // The size from the header, before any pixel is decoded (a file the header reader cannot read is left
    // to the decoder, whose error says why).
    let header = image::ImageReader::new(std::io::Cursor::new(&bytes)).with_guessed_format();
    if let Ok((width, height)) = header.map_err(image::ImageError::from).and_then(|r| r.into_dimensions()) {
        let pixels = width as u64 * height as u64;
        if width as usize > MAX_IMAGE_SIDE || height as usize > MAX_IMAGE_SIDE || pixels > MAX_IMAGE_PIXELS {
            return Err(bad(format!(
                "image of {width}x{height} pixels is too large (at most {MAX_IMAGE_SIDE} per side and \
                 {MAX_IMAGE_PIXELS} pixels)"
            )));
        }
    }
    let decoded = image::load_from_memory(&bytes).map_err(|e| bad(format!("cannot decode image: {e}")))?;
    let rgb = decoded.into_rgb8();
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    if width == 0 || height == 0 {
        return Err(bad("image has no pixels".into()));
    }
    Ok(Image::new(width, height, rgb.into_raw()))
}

/// The JPEG decoder fills a missing tail with grey instead of failing (PIL refuses such files), so a
/// JPEG must end with its end-of-image marker (FF D9); a little trailing padding is allowed.
fn is_truncated_jpeg(bytes: &[u8]) -> bool {
    const TAIL: usize = 4096;
    bytes.starts_with(&[0xFF, 0xD8]) && !bytes[bytes.len().saturating_sub(TAIL)..].windows(2).any(|w| w == [0xFF, 0xD9])
}

impl Folder {
    /// Resize (shorter side to `eval_resize`) and centre crop to `side`.
    fn eval_transform(&self, path: &Path, image: &Image) -> Result<Image, BadSample> {
        // A thin image's resize (shorter side to eval_resize) would be long: refuse it like a bad file.
        let (width, height) = resized_size(image.width, image.height, self.eval_resize);
        if width.max(height) > MAX_IMAGE_SIDE {
            let reason = format!(
                "image of {}x{} pixels would be resized to {width}x{height} by the evaluation \
                 transform (at most {MAX_IMAGE_SIDE} per side): its aspect ratio is too extreme",
                image.width, image.height
            );
            return Err(BadSample { path: path.to_path_buf(), reason });
        }
        Ok(resize_centre_crop(image, self.eval_resize, self.side))
    }

    pub fn class_names(&self) -> &[String] {
        &self.classes
    }

    pub fn path(&self, index: usize) -> &Path {
        &self.files[index].0
    }
}

impl Dataset for Folder {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn num_classes(&self) -> i64 {
        self.classes.len() as i64
    }

    fn image_size(&self) -> (i64, i64) {
        (self.side as i64, self.side as i64)
    }

    fn sample(&self, index: usize, split: Split, seed: u64) -> Result<Sample> {
        Ok(self.image_sample(index, split, seed)?.normalised(&IMAGENET_NORM))
    }

    fn normalisation(&self) -> Option<Normalisation> {
        Some(IMAGENET_NORM)
    }

    fn image_sample(&self, index: usize, split: Split, seed: u64) -> Result<ImageSample> {
        let (path, label) =
            self.files.get(index).ok_or_else(|| anyhow!("image {index} out of range ({} images)", self.len()))?;
        let image = decode(path)?;
        let image = match (split, self.train_crop) {
            (Split::Train, Some(ranges)) => {
                random_resized_crop_flip(&image, self.side, ranges, self.train_flip, &mut seed::rng(seed))
            }
            (Split::Train, None) if self.train_flip => {
                random_flip(self.eval_transform(path, &image)?, &mut seed::rng(seed))
            }
            _ => self.eval_transform(path, &image)?,
        };
        Ok(ImageSample { image, label: *label })
    }

    fn skips_bad_samples(&self) -> bool {
        self.skip_bad_images
    }
}
