//! The 8-bit RGB image the decoders, the CIFAR reader and the synthetic set produce, and the crop
//! rectangle the transforms and the resampler share.

/// The largest side of a transformed sample (an image folder's crop, a synthetic image): 4096, far above any
/// model's input, so that a mistyped size is an error rather than a huge allocation.
pub const MAX_SAMPLE_SIDE: usize = 4096;

/// An 8-bit RGB image, row-major, channels interleaved (HWC), as decoders and the CIFAR files give it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Image {
    pub fn new(width: usize, height: usize, pixels: Vec<u8>) -> Image {
        assert_eq!(pixels.len(), width * height * 3, "image buffer does not match {width}x{height}x3");
        Image { width, height, pixels }
    }

    /// From planar CHW bytes (the CIFAR layout: 1024 red, then green, then blue).
    pub fn from_planar(width: usize, height: usize, planes: &[u8]) -> Image {
        let area = width * height;
        let mut pixels = vec![0u8; area * 3];
        for (i, px) in pixels.chunks_exact_mut(3).enumerate() {
            px[0] = planes[i];
            px[1] = planes[area + i];
            px[2] = planes[2 * area + i];
        }
        Image::new(width, height, pixels)
    }
}

/// A rectangle of an image: left, top, width, height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    pub left: usize,
    pub top: usize,
    pub width: usize,
    pub height: usize,
}
