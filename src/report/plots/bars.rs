//! An experiment's summary as bars: mean top-1 error per label with ± std error bars, the value written
//! above each bar, and the paper's figure as a dashed line across the bar where there is one.
use super::legend::{draw_legend, Entry, Stroke};
use super::placement::Rect;
use super::{chart, draw_error_bar, finite_extent, save, text, Area, Axis, Backend, Chart, Figure, Frame, LABEL_SIZE};
use crate::report::summary::SummaryRow;
use anyhow::{bail, Result};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// matplotlib's blue, lightened so that the black error bars stand out on it.
const BAR_COLOR: RGBColor = RGBColor(98, 155, 200);
const PAPER_COLOR: RGBColor = RGBColor(200, 30, 30);
const LINE: i32 = 21;

struct Bars<'a> {
    rows: &'a [SummaryRow],
    title: &'a str,
}

/// Splits `label` into lines no wider than `max_width` pixels, at spaces (or '_', '/', ',').
fn wrap<DB: Backend>(root: &Area<DB>, label: &str, max_width: u32) -> Result<Vec<String>> {
    let style = text(LABEL_SIZE);
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in label.split_inclusive([' ', '_', '/', ',']) {
        let candidate = format!("{current}{word}");
        if !current.is_empty() && root.estimate_text_size(candidate.trim_end(), &style)?.0 > max_width {
            lines.push(current.trim_end().to_string());
            current = word.to_string();
        } else {
            current = candidate;
        }
    }
    lines.push(current.trim_end().to_string());
    Ok(lines)
}

impl Bars<'_> {
    /// The y axis: from 0 when the bars are tall enough to compare, else cut below the lowest value so that
    /// differences of a few tenths stay visible (the axis title then says so).
    fn y_axis(&self) -> Axis {
        let values = self.rows.iter().flat_map(|r| {
            let std = r.std_top1_err.unwrap_or(0.0);
            [Some(r.mean_top1_err - std), Some(r.mean_top1_err + std), r.paper_top1_err].into_iter().flatten()
        });
        let (lo, hi) = finite_extent(values).unwrap_or((0.0, 1.0));
        let span = (hi - lo).max(0.2);
        let floor = lo - 0.8 * span;
        let top = hi + 0.45 * span;
        if floor <= 0.3 * lo {
            Axis::new(0.0..(hi * 1.15).max(top), "top-1 error (%)")
        } else {
            Axis::new(floor..top, "top-1 error (%), axis cut below")
        }
    }

    /// Each row's label split into lines that fit under its bar.
    fn wrapped_labels<DB: Backend>(&self, root: &Area<DB>) -> Result<Vec<Vec<String>>> {
        let slot = (self.size().0 - 180) / self.rows.len() as u32;
        self.rows.iter().map(|row| wrap(root, &row.label, slot.saturating_sub(16))).collect()
    }

    fn legend_entries(&self) -> Vec<Entry> {
        let mut entries = vec![Entry::line("measured: mean ± std over seeds", BAR_COLOR, Stroke::Solid)];
        if self.rows.iter().any(|r| r.paper_top1_err.is_some()) {
            entries.push(Entry::line("paper", PAPER_COLOR, Stroke::Dashed));
        }
        entries
    }
}

/// Draws the bar of `row` at category `x`, from the axis floor `y_floor` up, and its ± std error bar;
/// returns the pixel column of its centre and the pixel row of its top (the error bar's, if any).
fn draw_bar<DB: Backend>(
    root: &Area<DB>,
    chart: &Chart<'_, DB>,
    (x, y_floor): (f64, f64),
    row: &SummaryRow,
    obstacles: &mut Vec<Rect>,
) -> Result<(i32, i32)> {
    let mean = row.mean_top1_err;
    let bar = [chart.backend_coord(&(x - 0.35, y_floor)), chart.backend_coord(&(x + 0.35, mean))];
    root.draw(&Rectangle::new(bar, BAR_COLOR.filled()))?;
    obstacles.push(Rect { x0: bar[0].0, y0: bar[1].1, x1: bar[1].0, y1: bar[0].1 });
    draw_error_bar(root, chart, (x, mean), row.std_top1_err, (9, 2))
}

/// The paper's figure as a dashed line across the bar at category `x`; returns its pixel row.
fn draw_paper_line<DB: Backend>(root: &Area<DB>, chart: &Chart<'_, DB>, x: f64, paper: f64) -> Result<i32> {
    let (left, y) = chart.backend_coord(&(x - 0.45, paper));
    let (right, _) = chart.backend_coord(&(x + 0.45, paper));
    root.draw(&DashedPathElement::new(vec![(left, y), (right, y)], 8, 5, PAPER_COLOR.stroke_width(3)))?;
    Ok(y)
}

/// "mean ± std" over "n = N", centred at `cx` just above `top`.
fn draw_value<DB: Backend>(
    root: &Area<DB>,
    row: &SummaryRow,
    (cx, top): (i32, i32),
    obstacles: &mut Vec<Rect>,
) -> Result<()> {
    let value_style = text(LABEL_SIZE).pos(Pos::new(HPos::Center, VPos::Bottom));
    let mean = row.mean_top1_err;
    let value = match row.std_top1_err {
        Some(std) => format!("{mean:.2} ± {std:.2}"),
        None => format!("{mean:.2}"),
    };
    root.draw_text(&format!("n = {}", row.n), &value_style, (cx, top - 6))?;
    root.draw_text(&value, &value_style, (cx, top - 6 - LINE))?;
    obstacles.push(Rect { x0: cx - 60, y0: top - 6 - 2 * LINE, x1: cx + 60, y1: top });
    Ok(())
}

/// A bar's label, one line under the other, below the x axis.
fn draw_bar_label<DB: Backend>(root: &Area<DB>, lines: &[String], (cx, axis_y): (i32, i32)) -> Result<()> {
    let label_style = text(LABEL_SIZE).pos(Pos::new(HPos::Center, VPos::Top));
    for (k, line) in lines.iter().enumerate() {
        root.draw_text(line, &label_style, (cx, axis_y + 10 + k as i32 * LINE))?;
    }
    Ok(())
}

impl Figure for Bars<'_> {
    fn size(&self) -> (u32, u32) {
        (900.max(180 + 160 * self.rows.len() as u32), 720)
    }

    fn draw<DB: Backend>(&self, root: &Area<DB>) -> Result<()> {
        let wrapped = self.wrapped_labels(root)?;
        let label_lines = wrapped.iter().map(Vec::len).max().unwrap_or(1) as i32;
        let y = self.y_axis();
        let y_floor = y.range.start;
        let frame = Frame::figure(self.title, ((label_lines * LINE + 16) as u32, 75));
        let (chart, plot) = chart(root, &frame, &Axis::categories(self.rows.len()), &y)?;
        let mut obstacles = Vec::new();
        for (i, (row, lines)) in self.rows.iter().zip(&wrapped).enumerate() {
            let x = i as f64;
            let (cx, mut top) = draw_bar(root, &chart, (x, y_floor), row, &mut obstacles)?;
            if let Some(paper) = row.paper_top1_err {
                top = top.min(draw_paper_line(root, &chart, x, paper)?);
            }
            draw_value(root, row, (cx, top), &mut obstacles)?;
            let (_, axis_y) = chart.backend_coord(&(x, y_floor));
            draw_bar_label(root, lines, (cx, axis_y))?;
        }
        draw_legend(root, &self.legend_entries(), plot, &obstacles)?;
        Ok(())
    }
}

/// Writes `STEM.png` and `STEM.svg`: one bar per summary row. Values that are not finite (a mean that
/// overflowed, an evaluation over no image) are left out: a row without a finite mean, a std or paper figure
/// that is not finite.
pub fn plot_summary(rows: &[SummaryRow], title: &str, stem: &Path) -> Result<Vec<PathBuf>> {
    if rows.is_empty() {
        bail!("nothing to plot: the summary has no successful run");
    }
    let finite = |v: &f64| v.is_finite();
    let rows: Vec<SummaryRow> = rows
        .iter()
        .filter(|r| r.mean_top1_err.is_finite())
        .map(|r| SummaryRow {
            std_top1_err: r.std_top1_err.filter(finite),
            paper_top1_err: r.paper_top1_err.filter(finite),
            ..r.clone()
        })
        .collect();
    if rows.is_empty() {
        bail!("nothing to plot: no label of the summary has a finite mean top-1 error");
    }
    save(&Bars { rows: &rows, title }, stem)
}
