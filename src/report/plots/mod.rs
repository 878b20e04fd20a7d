//! Figures drawn with plotters, each saved twice: `STEM.png` and `STEM.svg`.
//! Text uses the embedded DejaVu Sans (plotters' ab_glyph path), so no system font is needed.
pub mod attention;
pub mod bars;
pub mod curves;
pub mod figure2;
mod legend;
mod placement;
mod typeset;

use anyhow::{anyhow, ensure, Context, Result};
use plotters::chart::{ChartContext, MeshStyle};
use plotters::coord::cartesian::Cartesian2d;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use typeset::Typeset;

const FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
/// The family name the embedded font is registered under; SVG viewers fall back to their own sans-serif.
const FONT_FAMILY: &str = "sans-serif";

/// Colours told apart at a glance (matplotlib's "tab10").
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(214, 39, 40),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Font sizes in pixels per em, one scale for every figure.
pub(crate) const TITLE_SIZE: f64 = 22.0;
pub(crate) const AXIS_TITLE_SIZE: f64 = 18.0;
pub(crate) const TICK_SIZE: f64 = 15.0;
pub(crate) const LABEL_SIZE: f64 = 14.0;

/// plotters' font size is 1.24 em (its SVG backend writes `font-size: size / 1.24`).
pub(crate) const PLOTTERS_SIZE_PER_EM: f64 = 1.24;

/// A text style whose em is `em` pixels.
pub(crate) fn text(em: f64) -> TextStyle<'static> {
    TextStyle::from((FONT_FAMILY, em * PLOTTERS_SIZE_PER_EM).into_font())
}

/// A chart's mesh in the style every figure shares (tick and axis-title fonts, faint grid lines); the caller
/// adds axis titles, label formatters and draws it.
pub(crate) fn house_mesh<'a, 'b, DB, XT, YT, X, Y>(
    chart: &'b mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
) -> MeshStyle<'a, 'b, X, Y, DB>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = XT> + ValueFormatter<XT>,
    Y: Ranged<ValueType = YT> + ValueFormatter<YT>,
{
    let mut mesh = chart.configure_mesh();
    mesh.label_style(text(TICK_SIZE))
        .axis_desc_style(text(AXIS_TITLE_SIZE))
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.12));
    mesh
}

/// `Typeset` measures and draws our text; the font is also registered with plotters for the elements that
/// measure text themselves (multi-line text, series legends).
fn register_font() -> Result<()> {
    static LOADED: OnceLock<bool> = OnceLock::new();
    let loaded = *LOADED.get_or_init(|| plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT).is_ok());
    ensure!(loaded && typeset::font().is_some(), "the embedded font assets/fonts/DejaVuSans.ttf did not load");
    Ok(())
}

/// A figure that can be drawn on any plotters backend.
pub(crate) trait Figure {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

/// plotters' errors borrow nothing but are generic over the backend; this names the file they concern.
fn drawn<T, E: std::fmt::Display>(result: Result<T, E>, path: &Path) -> Result<T> {
    result.map_err(|e| anyhow!("cannot draw {}: {e}", path.display()))
}

/// Draws `figure` into `STEM.png` and `STEM.svg` (creating the folder) and returns both paths.
pub(crate) fn save(figure: &impl Figure, stem: &Path) -> Result<Vec<PathBuf>> {
    register_font()?;
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let with_ext = |ext: &str| {
        let mut path = stem.as_os_str().to_owned();
        path.push(ext);
        PathBuf::from(path)
    };
    let (png, svg) = (with_ext(".png"), with_ext(".svg"));
    {
        let root = Typeset::bitmap(BitMapBackend::new(&png, figure.size())).into_drawing_area();
        drawn(root.fill(&WHITE), &png)?;
        figure.draw(&root).with_context(|| format!("cannot draw {}", png.display()))?;
        drawn(root.present(), &png)?;
    }
    {
        let root = Typeset::vector(SVGBackend::new(&svg, figure.size())).into_drawing_area();
        drawn(root.fill(&WHITE), &svg)?;
        figure.draw(&root).with_context(|| format!("cannot draw {}", svg.display()))?;
        drawn(root.present(), &svg)?;
    }
    Ok(vec![png, svg])
}

/// A tick label without trailing zeros ("10", "2.5"); "" for fractional epochs and the like when
/// `integers_only`.
pub(crate) fn tick_label(value: f64, integers_only: bool) -> String {
    if integers_only && (value - value.round()).abs() > 1e-9 {
        return String::new();
    }
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Room around the data: `frac` of the span on each side (at least `min_pad`).
pub(crate) fn padded(lo: f64, hi: f64, frac: f64, min_pad: f64) -> std::ops::Range<f64> {
    let pad = ((hi - lo) * frac).max(min_pad);
    (lo - pad)..(hi + pad)
}

/// Smallest and largest of finite values; None when there are none.
pub(crate) fn finite_extent(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| Some(acc.map_or((v, v), |(lo, hi): (f64, f64)| (lo.min(v), hi.max(v)))))
}
