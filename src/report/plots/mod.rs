//! Figures drawn with plotters, each saved twice: `STEM.png` and `STEM.svg`.
//! Text uses the embedded DejaVu Sans (plotters' ab_glyph path), so no system font is needed.
pub mod attention;
pub mod bars;
pub mod cifar;
pub mod curves;
pub mod figure2;
mod legend;
mod params_error;
mod placement;
mod typeset;

use anyhow::{anyhow, ensure, Context, Result};
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
const PALETTE: [RGBColor; 10] = [
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

/// The `i`th colour of the palette, round again after the tenth.
pub(crate) fn palette(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

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

/// A plotters backend whose errors can become `anyhow` errors.
pub(crate) trait Backend: DrawingBackend<ErrorType: 'static> {}

impl<DB: DrawingBackend<ErrorType: 'static>> Backend for DB {}

/// A whole figure (or a panel of it), in the backend's pixels.
pub(crate) type Area<DB> = DrawingArea<DB, Shift>;

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
    /// Without trailing zeros ("10", "2.5").
    Trimmed,
    /// Whole numbers only, fractional ticks left blank (epochs, channel groups).
    Whole,
    /// A fixed number of decimals: "0.00", never "-0.00".
    Decimals(usize),
}

impl TickFormat {
    fn label(self, value: f64) -> String {
        match self {
            TickFormat::Whole if (value - value.round()).abs() > 1e-9 => String::new(),
            TickFormat::Trimmed | TickFormat::Whole => {
                let text = format!("{value:.2}");
                text.trim_end_matches('0').trim_end_matches('.').to_string()
            }
            TickFormat::Decimals(places) => {
                let text = format!("{value:.places$}");
                if text.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
                    text.trim_start_matches('-').to_string()
                } else {
                    text
                }
            }
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
        Axis { range: tickable(range), title: Some(title.into()), ticks: Ticks::Auto, format: None }
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

    /// Tick labels with the decimals that tell them apart over the axis' range.
    pub fn decimal_ticks(self) -> Self {
        let places = decimals(self.range.end - self.range.start);
        self.format(TickFormat::Decimals(places))
    }
}

/// Builds a chart in `area` and draws its axes and grid in the house style; returns it with its plotting
/// area (inside the axes) in the backend's pixels, which is where legends and labels are placed.
pub(crate) fn chart<'a, DB: Backend>(
    area: &'a Area<DB>,
    frame: &Frame,
    x: &Axis,
    y: &Axis,
) -> Result<(Chart<'a, DB>, Rect)> {
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
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    Ok((chart, Rect { x0: xs.start, y0: ys.start, x1: xs.end, y1: ys.end }))
}

/// The mesh in the style every figure shares (tick and axis-title fonts, faint grid lines), labelled as
/// `x` and `y` say.
fn draw_axes<DB: Backend>(chart: &mut Chart<'_, DB>, x: &Axis, y: &Axis) -> Result<()> {
    // The formatters must outlive the mesh, which borrows them.
    let x_label = x.format.map(|format| move |v: &f64| format.label(*v));
    let y_label = y.format.map(|format| move |v: &f64| format.label(*v));
    let mut mesh = chart.configure_mesh();
    mesh.label_style(text(TICK_SIZE))
        .axis_desc_style(text(AXIS_TITLE_SIZE))
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.12));
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

/// A black error bar over `mean` ± `std` at `x` in data units, `width` pixels wide with caps `cap` pixels
/// either side, when there is a std; returns its pixel column and the pixel row of its top (the mean's
/// without a std).
pub(crate) fn draw_error_bar<DB: Backend>(
    root: &Area<DB>,
    chart: &Chart<'_, DB>,
    (x, mean): (f64, f64),
    std: Option<f64>,
    (cap, width): (i32, u32),
) -> Result<(i32, i32)> {
    let (cx, low) = chart.backend_coord(&(x, mean - std.unwrap_or(0.0)));
    let (_, high) = chart.backend_coord(&(x, mean + std.unwrap_or(0.0)));
    if std.is_some() {
        let style = BLACK.stroke_width(width);
        root.draw(&PathElement::new(vec![(cx, low), (cx, high)], style))?;
        for y in [low, high] {
            root.draw(&PathElement::new(vec![(cx - cap, y), (cx + cap, y)], style))?;
        }
    }
    Ok((cx, high))
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
    fn draw<DB: Backend>(&self, root: &Area<DB>) -> Result<()>;
}

/// Draws `figure` on a white `backend`, which writes `path`.
fn render<DB: Backend>(figure: &impl Figure, backend: DB, path: &Path) -> Result<()> {
    let root = backend.into_drawing_area();
    let failed = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(failed)?;
    figure.draw(&root).with_context(|| format!("cannot draw {}", path.display()))?;
    root.present().map_err(failed)
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
    render(figure, Typeset::bitmap(BitMapBackend::new(&png, figure.size())), &png)?;
    render(figure, Typeset::vector(SVGBackend::new(&svg, figure.size())), &svg)?;
    Ok(vec![png, svg])
}

/// The largest magnitude of an axis end: the span between two such ends is still finite.
const AXIS_LIMIT: f64 = f64::MAX / 4.0;

/// `range` as a range plotters can put ticks on: plotters divides its tick step by ten until enough ticks
/// fit, which never ends when the span is not finite (values near ±1e308 in a CSV, padded), and it panics
/// on NaN. So the ends are clamped to ±[`AXIS_LIMIT`] and NaN reads as 0; ordinary ranges pass unchanged.
fn tickable(range: Range<f64>) -> Range<f64> {
    let clamp = |v: f64| if v.is_nan() { 0.0 } else { v.clamp(-AXIS_LIMIT, AXIS_LIMIT) };
    clamp(range.start)..clamp(range.end)
}

/// Decimals that tell ticks apart over an axis spanning `span`.
fn decimals(span: f64) -> usize {
    let step = span / 6.0;
    if step > 0.0 && step.is_finite() {
        (-step.log10().floor()).max(0.0) as usize
    } else {
        2
    }
}

/// Room around the data: `frac` of the span on each side (at least `min_pad`).
pub(crate) fn padded(lo: f64, hi: f64, frac: f64, min_pad: f64) -> Range<f64> {
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
        assert_eq!(TickFormat::Decimals(2).label(-0.0001), "0.00");
        assert_eq!(TickFormat::Decimals(3).label(-0.015), "-0.015");
    }

    #[test]
    fn axis_ranges_keep_ordinary_ends_and_clamp_the_rest() {
        assert_eq!(tickable(-0.5..101.5), -0.5..101.5);
        assert_eq!(tickable(3.0..-1.0), 3.0..-1.0);
        assert_eq!(tickable(f64::NEG_INFINITY..f64::INFINITY), -AXIS_LIMIT..AXIS_LIMIT);
        assert_eq!(tickable(f64::NAN..1.0), 0.0..1.0);
    }

    /// Plotters' tick generation on every axis range near the ends of f64, on a thread of its own so that a
    /// range it loops on fails the test instead of hanging it.
    #[test]
    fn ticks_end_for_any_range_of_values() {
        use plotters::coord::ranged1d::Ranged;
        let (max, ulp20) = (f64::MAX, 16384.0);
        let ends = [(-1e308, 1e308), (-max, max), (max, max), (0.0, max), (-max, 0.0), (1e20, 1e20 + ulp20)];
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (lo, hi) in ends {
                for (frac, min_pad) in [(0.0, 0.0), (0.06, 0.05), (0.12, 0.2)] {
                    let range = tickable(padded(lo, hi, frac, min_pad));
                    for points in [1, 5, 10, 100] {
                        let ticks = RangedCoordf64::from(range.clone()).key_points(points);
                        // Rounding in the last bits of an f64 may add a few ticks, never many.
                        assert!(ticks.len() <= 2 * points + 5, "{range:?}: {} ticks", ticks.len());
                    }
                }
            }
            done.send(()).unwrap();
        });
        finished.recv_timeout(std::time::Duration::from_secs(60)).expect("tick generation did not end (or panicked)");
    }
}
