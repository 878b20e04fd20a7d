//! The error-vs-#params chart that Figure 2 and the CIFAR figure share: the paper's models as one line
//! with circles per family, the user's measured runs as black crosses, every point named next to it.
use super::legend::{draw_legend, draw_marker, Entry, Marker, Stroke};
use super::placement::{place_labels, polyline_obstacles, Rect};
use super::{chart, finite_extent, padded, palette, text, Area, Axis, Backend, Chart, Frame, TickFormat, LABEL_SIZE};
use crate::paper;
use crate::report::measured::Point;
use anyhow::Result;
use plotters::prelude::*;

/// One paper family: its name and its models' points, sorted by #params.
pub type Family = (String, Vec<Point>);

/// The rows of `table` on `dataset` grouped by family (the model's name up to its first '-': "SKNet-50" ->
/// "SKNet"), in the order the table lists them; points sorted by #params.
pub fn paper_families(table: &str, dataset: &str) -> Vec<Family> {
    let mut families: Vec<Family> = Vec::new();
    for row in paper::published().iter().filter(|r| r.table == table && r.dataset == dataset) {
        let (Some(params_m), Some(top1_err)) = (row.params_m, row.top1_err) else { continue };
        // "DenseNet-232 (k=48)" -> "DenseNet-232": the family line says the rest.
        let label = row.model.split(" (").next().unwrap_or(&row.model).to_string();
        let point = Point { label, params_m, top1_err };
        let family = row.model.split('-').next().unwrap_or(&row.model);
        match families.iter_mut().find(|(name, _)| name == family) {
            Some((_, points)) => points.push(point),
            None => families.push((family.to_string(), vec![point])),
        }
    }
    for (_, points) in &mut families {
        points.sort_by(|a, b| a.params_m.total_cmp(&b.params_m));
    }
    families
}

/// The paper's own family, drawn thicker.
const HIGHLIGHT: &str = "SKNet";
/// Clear space around a point label, in pixels.
const LABEL_PAD: i32 = 3;

/// One error-vs-#params chart: the paper's families and the measured points.
pub(crate) struct ParamsError<'a> {
    pub families: &'a [Family],
    pub measured: &'a [Point],
}

/// What the drawn points leave behind for the labels: the points to label (with their colour) and the
/// pixels the labels must keep clear of.
#[derive(Default)]
struct Marks<'p> {
    labelled: Vec<(&'p Point, RGBColor)>,
    obstacles: Vec<Rect>,
}

impl ParamsError<'_> {
    /// Draws the chart in `area` (the whole figure, or one panel of it) framed by `frame`. Lines, markers
    /// and labels go on `root`, the whole figure, since the chart gives positions in the backend's pixels.
    pub fn draw<DB: Backend>(&self, root: &Area<DB>, area: &Area<DB>, frame: &Frame) -> Result<()> {
        let (x, y) = self.axes();
        let (chart, plot) = chart(area, frame, &x, &y)?;
        let mut marks = Marks::default();
        let mut entries = self.draw_families(root, &chart, &mut marks)?;
        entries.extend(self.draw_measured(root, &chart, &mut marks)?);
        let legend = draw_legend(root, &entries, plot, &marks.obstacles)?;
        marks.obstacles.push(legend);
        draw_point_labels(root, &chart, &marks, plot)
    }

    /// #params from 0 at the least, top-1 error with room above and below for the labels.
    fn axes(&self) -> (Axis, Axis) {
        let all = || self.families.iter().flat_map(|(_, p)| p).chain(self.measured);
        let (x_lo, x_hi) = finite_extent(all().map(|p| p.params_m)).unwrap_or((0.0, 1.0));
        let (y_lo, y_hi) = finite_extent(all().map(|p| p.top1_err)).unwrap_or((0.0, 1.0));
        let x_range = padded(x_lo, x_hi, 0.07, 1.0);
        let x = Axis::new(x_range.start.max(0.0)..x_range.end, "#params (millions)").format(TickFormat::Trimmed);
        (x, Axis::new(padded(y_lo, y_hi, 0.12, 0.2), "top-1 error (%)"))
    }

    /// One line with circles per family; returns their legend entries.
    fn draw_families<'p, DB: Backend>(
        &'p self,
        root: &Area<DB>,
        chart: &Chart<'_, DB>,
        marks: &mut Marks<'p>,
    ) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for (i, (family, points)) in self.families.iter().enumerate() {
            let color = palette(i);
            let width = if family == HIGHLIGHT { 4 } else { 2 };
            let pixels: Vec<(i32, i32)> =
                points.iter().map(|p| chart.backend_coord(&(p.params_m, p.top1_err))).collect();
            root.draw(&PathElement::new(pixels.clone(), color.stroke_width(width)))?;
            for &px in &pixels {
                draw_marker(root, Marker::Circle, px, color)?;
                marks.obstacles.push(Rect::around(px, 6));
            }
            marks.obstacles.extend(polyline_obstacles(&pixels));
            marks.labelled.extend(points.iter().map(|p| (p, color)));
            entries.push(Entry { marker: Some(Marker::Circle), ..Entry::line(family.clone(), color, Stroke::Solid) });
        }
        Ok(entries)
    }

    /// A black cross per measured point; returns their legend entry when there is one.
    fn draw_measured<'p, DB: Backend>(
        &'p self,
        root: &Area<DB>,
        chart: &Chart<'_, DB>,
        marks: &mut Marks<'p>,
    ) -> Result<Option<Entry>> {
        for point in self.measured {
            let px = chart.backend_coord(&(point.params_m, point.top1_err));
            draw_marker(root, Marker::Cross, px, BLACK)?;
            marks.obstacles.push(Rect::around(px, 9));
            marks.labelled.push((point, BLACK));
        }
        Ok((!self.measured.is_empty()).then(|| Entry {
            label: "your runs (mean)".into(),
            color: BLACK,
            stroke: None,
            marker: Some(Marker::Cross),
        }))
    }
}

/// Names every marked point next to it, clear of the lines, markers and legend; a faint leader line joins a
/// label pushed away from its point.
fn draw_point_labels<DB: Backend>(root: &Area<DB>, chart: &Chart<'_, DB>, marks: &Marks<'_>, plot: Rect) -> Result<()> {
    let label_style = text(LABEL_SIZE);
    let anchors: Vec<(i32, i32)> =
        marks.labelled.iter().map(|(p, _)| chart.backend_coord(&(p.params_m, p.top1_err))).collect();
    let mut sizes = Vec::new();
    for (point, _) in &marks.labelled {
        let (w, h) = root.estimate_text_size(&point.label, &label_style)?;
        // The estimate is the font's em box; glyph ink reaches a little beyond it.
        sizes.push((w + 2 * LABEL_PAD as u32, h + 2 * LABEL_PAD as u32));
    }
    let placed = place_labels(&anchors, &sizes, &marks.obstacles, plot);
    for (((point, color), anchor), spot) in marks.labelled.iter().zip(&anchors).zip(&placed) {
        if spot.leader {
            root.draw(&PathElement::new(vec![*anchor, spot.rect.nearest_point(*anchor)], color.mix(0.6)))?;
        }
        root.draw_text(&point.label, &label_style.color(color), (spot.rect.x0 + LABEL_PAD, spot.rect.y0 + LABEL_PAD))?;
    }
    Ok(())
}
