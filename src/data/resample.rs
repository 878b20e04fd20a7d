//! Antialiased bilinear resampling of 8-bit RGB, as PIL's BILINEAR resize computes it (torchvision's PIL
//! path): a triangle filter stretched by the downscaling factor, separable passes with 8-bit rounding
//! between them, fixed-point weights of 22 bits. The pass order is chosen for speed (the slower horizontal
//! pass runs on the fewer rows); PIL may order them otherwise, which moves results by at most one level.
use super::image::{CropBox, Image};

const PRECISION: u32 = 22;
const HALF: i32 = 1 << (PRECISION - 1);

/// Resample `region` of `image` to `width` x `height`.
pub fn resize(image: &Image, region: CropBox, width: usize, height: usize) -> Image {
    assert!(region.width > 0 && region.height > 0 && width > 0 && height > 0, "empty resize");
    assert!(
        region.left + region.width <= image.width && region.top + region.height <= image.height,
        "region outside image"
    );
    let columns = Taps::new(region.left, region.width, width);
    let rows = Taps::new(region.top, region.height, height);
    let pixels = if region.height > height {
        // Shrinking rows: the vertical pass first leaves the horizontal pass only `height` rows.
        let narrowed = vertical(&image.pixels, image.width, region.left, region.width, &rows);
        horizontal(&narrowed, region.width, region.left, 0..height, &columns)
    } else {
        let (first, last) = rows.span();
        let widened = horizontal(&image.pixels, image.width, 0, first..last, &columns);
        vertical(&widened, width, 0, width, &rows.shifted(first))
    };
    Image::new(width, height, pixels)
}

/// For each output pixel of a 1-D resample: the first source pixel, the number read, and fixed-point weights.
struct Taps {
    starts: Vec<usize>,
    lens: Vec<usize>,
    /// `stride` weights per output pixel, the unused ones zero.
    weights: Vec<i32>,
    stride: usize,
}

impl Taps {
    /// Output pixel i covers source [offset + i*scale, offset + (i+1)*scale); the triangle's half-width
    /// is max(scale, 1), so downscaling averages every source pixel instead of skipping some.
    fn new(offset: usize, in_len: usize, out_len: usize) -> Taps {
        let scale = in_len as f64 / out_len as f64;
        let support = scale.max(1.0);
        let stride = support.ceil() as usize * 2 + 1;
        let mut taps = Taps {
            starts: Vec::with_capacity(out_len),
            lens: Vec::with_capacity(out_len),
            weights: vec![0; out_len * stride],
            stride,
        };
        let mut raw = vec![0f64; stride];
        for i in 0..out_len {
            let centre = offset as f64 + (i as f64 + 0.5) * scale;
            let lo = ((centre - support + 0.5).floor().max(offset as f64)) as usize;
            let hi = ((centre + support + 0.5).floor() as usize).min(offset + in_len);
            let n = hi - lo;
            for (k, w) in raw[..n].iter_mut().enumerate() {
                *w = (1.0 - ((lo + k) as f64 + 0.5 - centre).abs() / support).max(0.0);
            }
            let total: f64 = raw[..n].iter().sum();
            for (dst, w) in taps.weights[i * stride..i * stride + n].iter_mut().zip(&raw[..n]) {
                *dst = (0.5 + w / total * (1u32 << PRECISION) as f64) as i32;
            }
            taps.starts.push(lo);
            taps.lens.push(n);
        }
        taps
    }

    /// The source range all outputs together read.
    fn span(&self) -> (usize, usize) {
        let last = self.starts.iter().zip(&self.lens).map(|(s, n)| s + n).max().unwrap_or(0);
        (self.starts.first().copied().unwrap_or(0), last)
    }

    fn shifted(mut self, by: usize) -> Taps {
        self.starts.iter_mut().for_each(|s| *s -= by);
        self
    }

    fn of(&self, i: usize) -> (usize, &[i32]) {
        (self.starts[i], &self.weights[i * self.stride..i * self.stride + self.lens[i]])
    }
}

fn to_u8(acc: i32) -> u8 {
    (acc >> PRECISION).clamp(0, 255) as u8
}

/// Rows `rows` of `src` (width `src_width`), each resampled along x; taps index columns from `x_offset`.
fn horizontal(src: &[u8], src_width: usize, x_offset: usize, rows: std::ops::Range<usize>, taps: &Taps) -> Vec<u8> {
    let out_width = taps.starts.len();
    let mut out = vec![0u8; rows.len() * out_width * 3];
    for (y, out_row) in rows.zip(out.chunks_exact_mut(out_width * 3)) {
        let row = &src[y * src_width * 3..(y + 1) * src_width * 3];
        for (x, px) in out_row.chunks_exact_mut(3).enumerate() {
            let (start, weights) = taps.of(x);
            let from = (start - x_offset) * 3;
            let (mut r, mut g, mut b) = (HALF, HALF, HALF);
            for (s, &w) in row[from..from + weights.len() * 3].chunks_exact(3).zip(weights) {
                r += s[0] as i32 * w;
                g += s[1] as i32 * w;
                b += s[2] as i32 * w;
            }
            px[0] = to_u8(r);
            px[1] = to_u8(g);
            px[2] = to_u8(b);
        }
    }
    out
}

/// Columns [left, left + width) of `src` (width `src_width`), resampled along y.
fn vertical(src: &[u8], src_width: usize, left: usize, width: usize, taps: &Taps) -> Vec<u8> {
    let span = width * 3;
    let mut out = vec![0u8; taps.starts.len() * span];
    let mut acc = vec![0i32; span];
    for (y, out_row) in out.chunks_exact_mut(span).enumerate() {
        let (start, weights) = taps.of(y);
        acc.fill(HALF);
        for (k, &w) in weights.iter().enumerate() {
            let from = ((start + k) * src_width + left) * 3;
            for (a, &s) in acc.iter_mut().zip(&src[from..from + span]) {
                *a += s as i32 * w;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = to_u8(a);
        }
    }
    out
}
