//! Text measured and rasterised with the embedded font's own metrics.
//!
//! plotters 0.3.7's ab_glyph path places each glyph at its ink instead of its side bearing (uneven letter
//! spacing: "Den seN et") and scales text by ascent + descent, 6% larger than its SVG backend renders the
//! same size. `Typeset` wraps a backend: it measures all text itself, so that PNG and SVG share one layout,
//! and draws the glyphs itself on bitmaps; SVG keeps its native text elements.
use super::{FONT, PLOTTERS_SIZE_PER_EM};
use ab_glyph::{point, Font, FontRef, GlyphId, PxScale, ScaleFont};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind};
use std::sync::OnceLock;

pub(crate) fn font() -> Option<&'static FontRef<'static>> {
    static PARSED: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    PARSED.get_or_init(|| FontRef::try_from_slice(FONT).ok()).as_ref()
}

/// The em in pixels of a plotters font size, as SVG renders it.
fn em(style: &impl BackendTextStyle) -> f64 {
    style.size() / PLOTTERS_SIZE_PER_EM
}

/// Glyphs of one line with an em of `em` pixels: (glyph, pen x) and the total advance.
fn layout(font: &FontRef<'static>, text: &str, em: f64) -> (PxScale, Vec<(GlyphId, f32)>, f32) {
    let em_to_height = font.height_unscaled() / font.units_per_em().unwrap_or(1.0);
    let scale = PxScale::from(em as f32 * em_to_height);
    let scaled = font.as_scaled(scale);
    let mut pen = 0.0;
    let mut glyphs = Vec::new();
    let mut previous: Option<GlyphId> = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(prev) = previous {
            pen += scaled.kern(prev, id);
        }
        glyphs.push((id, pen));
        pen += scaled.h_advance(id);
        previous = Some(id);
    }
    (scale, glyphs, pen)
}

pub(crate) struct Typeset<B> {
    inner: B,
    /// Draw glyphs as pixels (bitmaps) rather than handing text to the backend (SVG).
    raster: bool,
}

impl<B> Typeset<B> {
    pub fn bitmap(inner: B) -> Self {
        Typeset { inner, raster: true }
    }

    pub fn vector(inner: B) -> Self {
        Typeset { inner, raster: false }
    }
}

impl<B: DrawingBackend> Typeset<B> {
    fn raster_text<S: BackendTextStyle>(
        &mut self,
        font: &FontRef<'static>,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        let em = em(style);
        let (scale, glyphs, width) = layout(font, text, em);
        // Baselines where SVG puts them for the same anchors (0.76em below the top; caps centred).
        let baseline = match style.anchor().v_pos {
            VPos::Top => em * 0.76,
            VPos::Center => em * 0.73 / 2.0,
            VPos::Bottom => -em * 0.24,
        } as f32;
        let left = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let color = style.color();
        let transform = style.transform();
        let mut pixels = Vec::new();
        for (id, x) in glyphs {
            let glyph = id.with_scale_and_position(scale, point(left + x, baseline));
            if let Some(outline) = font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                outline.draw(|gx, gy, coverage| {
                    let (dx, dy) = (bounds.min.x as i32 + gx as i32, bounds.min.y as i32 + gy as i32);
                    pixels.push((transform.transform(dx, dy), coverage));
                });
            }
        }
        for ((dx, dy), coverage) in pixels {
            let shade = BackendColor { alpha: color.alpha * f64::from(coverage.min(1.0)), rgb: color.rgb };
            self.inner.draw_pixel((pos.0 + dx, pos.1 + dy), shade)?;
        }
        Ok(())
    }
}

impl<B: DrawingBackend> DrawingBackend for Typeset<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        match font() {
            Some(font) if self.raster => self.raster_text(font, text, style, pos),
            _ => self.inner.draw_text(text, style, pos),
        }
    }

    /// Width from the glyph advances, height one em (the ink of a line between its top and bottom anchors).
    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        match font() {
            Some(font) => {
                let (_, _, width) = layout(font, text, em(style));
                Ok((width.ceil() as u32, em(style).ceil() as u32))
            }
            None => self.inner.estimate_text_size(text, style),
        }
    }
}
