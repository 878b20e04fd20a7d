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
use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use placement::Rect;
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

/// A chart of every figure: both axes numeric, in data units.
pub(crate) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Where a chart sits in its drawing area.
pub(crate) struct Frame<'t> {
    /// The caption above the plot and its size in pixels per em; None for no caption.
    pub caption: Option<(&'t str, f64)>,
    pub margin: u32,
    /// Pixels below the plot for the x axis' ticks and title, and left of it for the y axis'.
    pub label_area: (u32, u32),
}

impl<'t> Frame<'t> {
    /// The single chart of a figure: its title on top and the house margin.
    pub fn figure(title: &'t str, label_area: (u32, u32)) -> Self {
        Frame { caption: Some((title, TITLE_SIZE)), margin: 20, label_area }
    }
}

/// How tick values are written when plotters' own labels will not do.
#[derive(Clone, Copy)]
pub(crate) enum TickFormat {
    /// Without trailing zeros ("10", "2.5"): `tick_label`.
    Trimmed,
    /// Whole numbers only, fractional ticks left blank (epochs, channel groups).
    Whole,
    /// A fixed number of decimals, never "-0.00": `fixed_tick_label`.
    Decimals(usize),
}

impl TickFormat {
    fn label(self, value: f64) -> String {
        match self {
            TickFormat::Trimmed => tick_label(value, false),
            TickFormat::Whole => tick_label(value, true),
            TickFormat::Decimals(places) => fixed_tick_label(value, places),
        }
    }
}

#[derive(Clone, Copy)]
enum Ticks {
    /// As many as plotters chooses.
    Auto,
    Count(usize),
    /// No ticks nor grid lines: the figure labels its categories itself.
    Hidden,
}

/// One axis of a chart: its data range, title and ticks.
pub(crate) struct Axis {
    range: Range<f64>,
    title: Option<String>,
    ticks: Ticks,
    format: Option<TickFormat>,
}

impl Axis {
    /// A numeric axis over `range` with plotters' ticks and labels.
    pub fn new(range: Range<f64>, title: impl Into<String>) -> Self {
        Axis { range, title: Some(title.into()), ticks: Ticks::Auto, format: None }
    }

    /// `count` categories centred on 0, 1, ..., without title, ticks or grid lines.
    pub fn categories(count: usize) -> Self {
        Axis { range: -0.5..(count as f64 - 0.5), title: None, ticks: Ticks::Hidden, format: None }
    }

    /// About `count` ticks instead of plotters' default.
    pub fn ticks(self, count: usize) -> Self {
        Axis { ticks: Ticks::Count(count), ..self }
    }

    /// Tick labels written as `format` says instead of plotters' way.
    pub fn format(self, format: TickFormat) -> Self {
        Axis { format: Some(format), ..self }
    }
}

/// Builds a chart in `area` and draws its axes and grid in the house style; returns it with its plotting
/// area in the backend's pixels, which is where legends and labels are placed.
pub(crate) fn chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    frame: &Frame,
    x: &Axis,
    y: &Axis,
) -> Result<(Chart<'a, DB>, Rect)>
where
    DB::ErrorType: 'static,
{
    let mut builder = ChartBuilder::on(area);
    if let Some((caption, em)) = frame.caption {
        builder.caption(caption, text(em));
    }
    let mut chart = builder
        .margin(frame.margin)
        .x_label_area_size(frame.label_area.0)
        .y_label_area_size(frame.label_area.1)
        .build_cartesian_2d(x.range.clone(), y.range.clone())?;
    draw_axes(&mut chart, x, y)?;
    let plot = plot_rect(&chart);
    Ok((chart, plot))
}

/// The mesh in the style every figure shares (tick and axis-title fonts, faint grid lines), labelled as
/// `x` and `y` say.
fn draw_axes<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, x: &Axis, y: &Axis) -> Result<()>
where
    DB::ErrorType: 'static,
{
    // The formatters must outlive the mesh, which borrows them.
    let x_label = x.format.map(|format| move |v: &f64| format.label(*v));
    let y_label = y.format.map(|format| move |v: &f64| format.label(*v));
    let mut mesh = house_mesh(chart);
    if let Some(title) = &x.title {
        mesh.x_desc(title);
    }
    match x.ticks {
        Ticks::Auto => &mut mesh,
        Ticks::Count(count) => mesh.x_labels(count),
        Ticks::Hidden => mesh.disable_x_mesh().x_labels(0),
    };
    if let Some(label) = &x_label {
        mesh.x_label_formatter(label);
    }
    if let Some(title) = &y.title {
        mesh.y_desc(title);
    }
    match y.ticks {
        Ticks::Auto => &mut mesh,
        Ticks::Count(count) => mesh.y_labels(count),
        Ticks::Hidden => mesh.disable_y_mesh().y_labels(0),
    };
    if let Some(label) = &y_label {
        mesh.y_label_formatter(label);
    }
    mesh.draw()?;
    Ok(())
}

/// Tick and axis-title fonts and faint grid lines, for every figure.
fn house_mesh<'a, 'b, DB: DrawingBackend>(
    chart: &'b mut Chart<'a, DB>,
) -> MeshStyle<'a, 'b, RangedCoordf64, RangedCoordf64, DB> {
    let mut mesh = chart.configure_mesh();
    mesh.label_style(text(TICK_SIZE))
        .axis_desc_style(text(AXIS_TITLE_SIZE))
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.12));
    mesh
}

/// The pixel rectangle of a chart's plotting area (inside the axes), in the backend's coordinates.
pub(crate) fn plot_rect<DB: DrawingBackend, X: Ranged, Y: Ranged>(
    chart: &ChartContext<'_, DB, Cartesian2d<X, Y>>,
) -> Rect {
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    Rect { x0: xs.start, y0: ys.start, x1: xs.end, y1: ys.end }
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

/// Decimals that tell ticks apart over an axis spanning `span`.
pub(crate) fn decimals(span: f64) -> usize {
    let step = span / 6.0;
    if step > 0.0 && step.is_finite() {
        (-step.log10().floor()).max(0.0) as usize
    } else {
        2
    }
}

/// A tick label with `places` decimals; "0.00", never "-0.00".
pub(crate) fn fixed_tick_label(value: f64, places: usize) -> String {
    let text = format!("{value:.places$}");
    if text.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
        text.trim_start_matches('-').to_string()
    } else {
        text
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_have_enough_decimals_and_no_negative_zero() {
        assert_eq!(decimals(0.04), 3);
        assert_eq!(decimals(0.5), 2);
        assert_eq!(fixed_tick_label(-0.0001, 2), "0.00");
        assert_eq!(fixed_tick_label(-0.015, 3), "-0.015");
    }
}
