//! The attention analysis as the paper draws it: the attention difference per SK unit for each object
//! scale with ± std bars (Figure 3a-b), the larger kernel's weight per channel group of one unit
//! (Figure 3c), and one point per class, original vs enlarged object (Figure 4).
use super::legend::{draw_legend, Entry, Stroke};
use super::placement::{polyline_obstacles, Rect};
use super::{
    chart, draw_error_bar, finite_extent, padded, palette, save, text, Area, Axis, Backend, Chart, Figure, Frame,
    TickFormat, AXIS_TITLE_SIZE, TICK_SIZE, TITLE_SIZE,
};
use crate::analysis::attention::{ChannelRow, ClassRow, UnitRow};
use crate::util::stats::first_appearance;
use anyhow::{bail, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

const DIFF_DESC: &str = "attention difference (larger − smaller kernel)";

/// The stage of a unit label SK_{stage}_{block}.
fn stage_of(unit: &str) -> Option<&str> {
    unit.split('_').nth(1)
}

struct UnitBars<'a> {
    rows: &'a [UnitRow],
    title: &'a str,
}

impl UnitBars<'_> {
    /// Units in forward order and scales in the order first met.
    fn units_and_scales(&self) -> (Vec<&str>, Vec<&str>) {
        let units = first_appearance(self.rows.iter().map(|r| r.unit.as_str()));
        (units, first_appearance(self.rows.iter().map(|r| r.scale.as_str())))
    }

    /// The attention difference, 0 and every error bar included.
    fn y_axis(&self) -> Axis {
        let ends = self.rows.iter().flat_map(|r| {
            let std = r.std.unwrap_or(0.0);
            [r.mean - std, r.mean + std]
        });
        let (lo, hi) = finite_extent(ends.chain([0.0])).unwrap_or((-1.0, 1.0));
        Axis::new(padded(lo, hi, 0.08, 0.01), format!("{DIFF_DESC}, mean ± std")).decimal_ticks()
    }

    /// The bars of every row, grouped by unit and coloured by scale: from 0 to the row's mean with its ± std
    /// error bar; returns the pixels they cover, error bars included.
    fn draw_bars<DB: Backend>(
        &self,
        root: &Area<DB>,
        chart: &mut Chart<'_, DB>,
        units: &[&str],
        scales: &[&str],
    ) -> Result<Vec<Rect>> {
        let width = 0.8 / scales.len() as f64;
        let mut obstacles = Vec::new();
        for row in self.rows {
            let (Some(u), Some(s)) =
                (units.iter().position(|&u| u == row.unit), scales.iter().position(|&s| s == row.scale))
            else {
                continue;
            };
            let left = u as f64 - 0.4 + s as f64 * width;
            let bar = [(left + 0.01, 0.0), (left + width - 0.01, row.mean)];
            chart.draw_series([Rectangle::new(bar, palette(s).filled())])?;
            draw_error_bar(root, chart, (left + width / 2.0, row.mean), row.std, (4, 1))?;
            let std = row.std.unwrap_or(0.0);
            let (x0, y0) = chart.backend_coord(&(left, row.mean.max(0.0) + std));
            let (x1, y1) = chart.backend_coord(&(left + width, row.mean.min(0.0) - std));
            obstacles.push(Rect { x0, y0, x1, y1 });
        }
        Ok(obstacles)
    }

    /// One entry per scale, with its number of images.
    fn legend_entries(&self, scales: &[&str]) -> Vec<Entry> {
        let n_images = self.rows.first().map_or(0, |r| r.n);
        scales
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let n = self.rows.iter().find(|r| r.scale == *s).map_or(n_images, |r| r.n);
                Entry::line(format!("object {s} (n = {n})"), palette(i), Stroke::Solid)
            })
            .collect()
    }
}

/// The line at 0, and a light vertical line between units of different stages.
fn draw_zero_and_stage_lines<DB: Backend>(chart: &mut Chart<'_, DB>, units: &[&str], y: &Axis) -> Result<()> {
    let n = units.len() as f64;
    chart.draw_series([PathElement::new(vec![(-0.5, 0.0), (n - 0.5, 0.0)], BLACK.stroke_width(1))])?;
    for (i, pair) in units.windows(2).enumerate() {
        if stage_of(pair[0]) != stage_of(pair[1]) {
            let x = i as f64 + 0.5;
            chart.draw_series([PathElement::new(vec![(x, y.range.start), (x, y.range.end)], BLACK.mix(0.25))])?;
        }
    }
    Ok(())
}

/// Each unit's name under its group of bars.
fn draw_unit_labels<DB: Backend>(root: &Area<DB>, chart: &Chart<'_, DB>, units: &[&str], y_floor: f64) -> Result<()> {
    let label_style = text(TICK_SIZE).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, unit) in units.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64, y_floor));
        root.draw_text(unit, &label_style, (x, y + 10))?;
    }
    Ok(())
}

impl Figure for UnitBars<'_> {
    fn size(&self) -> (u32, u32) {
        let (units, scales) = self.units_and_scales();
        (1000.max(200 + units.len() as u32 * (24 * scales.len() as u32 + 30)), 720)
    }

    fn draw<DB: Backend>(&self, root: &Area<DB>) -> Result<()> {
        let (units, scales) = self.units_and_scales();
        let y = self.y_axis();
        let title = format!("Attention difference per SK unit: {}", self.title);
        let (mut chart, plot) = chart(root, &Frame::figure(&title, (50, 85)), &Axis::categories(units.len()), &y)?;
        draw_zero_and_stage_lines(&mut chart, &units, &y)?;
        let obstacles = self.draw_bars(root, &mut chart, &units, &scales)?;
        draw_unit_labels(root, &chart, &units, y.range.start)?;
        draw_legend(root, &self.legend_entries(&scales), plot, &obstacles)?;
        Ok(())
    }
}

struct ChannelLines<'a> {
    rows: &'a [ChannelRow],
    group: usize,
    title: &'a str,
}

impl Figure for ChannelLines<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 680)
    }

    fn draw<DB: Backend>(&self, root: &Area<DB>) -> Result<()> {
        let scales = first_appearance(self.rows.iter().map(|r| r.scale.as_str()));
        let unit = self.rows.first().map_or("", |r| r.unit.as_str());
        let groups = self.rows.iter().map(|r| r.group).max().unwrap_or(0) as f64;
        let (lo, hi) = finite_extent(self.rows.iter().map(|r| r.mean_weight)).unwrap_or((0.0, 1.0));
        let x = Axis::new(padded(0.0, groups, 0.02, 0.5), format!("channel group ({} channels each)", self.group))
            .format(TickFormat::Whole);
        let y =
            Axis::new(padded(lo, hi, 0.1, 0.01), "larger-kernel attention weight, mean over images").decimal_ticks();
        let title = format!("Larger-kernel weight per channel of {unit}: {}", self.title);
        let (mut chart, plot) = chart(root, &Frame::figure(&title, (60, 85)), &x, &y)?;
        let mut obstacles = Vec::new();
        let mut entries = Vec::new();
        let markers = groups <= 40.0;
        for (i, scale) in scales.iter().enumerate() {
            let color = palette(i);
            let points: Vec<(f64, f64)> =
                self.rows.iter().filter(|r| r.scale == *scale).map(|r| (r.group as f64, r.mean_weight)).collect();
            chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?;
            if markers {
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
            }
            obstacles.extend(polyline_obstacles(&points.iter().map(|p| chart.backend_coord(p)).collect::<Vec<_>>()));
            entries.push(Entry::line(format!("object {scale}"), color, Stroke::Solid));
        }
        draw_legend(root, &entries, plot, &obstacles)?;
        Ok(())
    }
}

struct ClassScatter<'a> {
    /// Per panel: the unit and one point per class (value at the first scale, value at the second).
    panels: Vec<(String, Vec<(f64, f64)>)>,
    scales: (&'a str, &'a str),
    title: &'a str,
}

const PANEL_SIDE: u32 = 440;

impl ClassScatter<'_> {
    fn draw_panel<DB: Backend>(&self, area: &Area<DB>, unit: &str, points: &[(f64, f64)]) -> Result<()> {
        let (lo, hi) = finite_extent(points.iter().flat_map(|&(a, b)| [a, b])).unwrap_or((-0.1, 0.1));
        // The same range on both axes, so the diagonal is at 45 degrees.
        let range = padded(lo, hi, 0.08, 0.0005);
        let above = points.iter().filter(|(a, b)| b > a).count();
        let caption = format!("{unit}: {above} of {} classes above", points.len());
        let frame = Frame { caption: Some((&caption, AXIS_TITLE_SIZE)), margin: 12, label_area: (55, 75) };
        let axis = |scale: &str| Axis::new(range.clone(), format!("object {scale}")).ticks(5).decimal_ticks();
        let (mut chart, _) = chart(area, &frame, &axis(self.scales.0), &axis(self.scales.1))?;
        let diagonal = [(range.start, range.start), (range.end, range.end)];
        chart.draw_series(DashedLineSeries::new(diagonal, 8, 5, BLACK.mix(0.6).stroke_width(2)))?;
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, palette(0).mix(0.8).filled())))?;
        Ok(())
    }
}

impl Figure for ClassScatter<'_> {
    fn size(&self) -> (u32, u32) {
        (PANEL_SIDE * self.panels.len().max(1) as u32 + 40, PANEL_SIDE + 150)
    }

    fn draw<DB: Backend>(&self, root: &Area<DB>) -> Result<()> {
        let title =
            format!("Attention difference per class, object {} vs {}: {}", self.scales.0, self.scales.1, self.title);
        let area = root.titled(&title, text(TITLE_SIZE))?;
        let (body, foot) = area.split_vertically(PANEL_SIDE + 60);
        let panels = body.margin(0, 0, 20, 20).split_evenly((1, self.panels.len().max(1)));
        for ((unit, points), panel) in self.panels.iter().zip(&panels) {
            self.draw_panel(panel, unit, points)?;
        }
        let note = "one point per class; above the dashed diagonal: more weight on the larger kernel when the object is enlarged";
        let (w, _) = foot.dim_in_pixel();
        foot.draw_text(note, &text(TICK_SIZE).pos(Pos::new(HPos::Center, VPos::Top)), (w as i32 / 2, 10))?;
        Ok(())
    }
}

/// Writes `STEM.png` and `STEM.svg`: grouped bars of the attention difference per unit (x, forward order)
/// and scale (colour), with ± std error bars.
pub fn plot_unit_differences(rows: &[UnitRow], title: &str, stem: &Path) -> Result<Vec<PathBuf>> {
    if rows.is_empty() {
        bail!("no attention rows to plot");
    }
    save(&UnitBars { rows, title }, stem)
}

/// Writes `STEM.png` and `STEM.svg`: the larger kernel's weight per channel group of one unit, one line
/// per scale.
pub fn plot_channel_weights(rows: &[ChannelRow], group: usize, title: &str, stem: &Path) -> Result<Vec<PathBuf>> {
    if rows.is_empty() {
        bail!("no per-channel attention rows to plot");
    }
    save(&ChannelLines { rows, group, title }, stem)
}

/// Writes `STEM.png` and `STEM.svg`: for each of `units` a panel with one point per class, its mean
/// attention difference at `scales.0` (x) against `scales.1` (y), and the diagonal.
pub fn plot_class_scatter(
    rows: &[ClassRow],
    units: &[String],
    scales: (&str, &str),
    title: &str,
    stem: &Path,
) -> Result<Vec<PathBuf>> {
    let mut panels = Vec::new();
    for unit in units {
        let at =
            |scale: &str, class: i64| rows.iter().find(|r| r.unit == *unit && r.scale == scale && r.class == class);
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|a| a.unit == *unit && a.scale == scales.0)
            .filter_map(|a| at(scales.1, a.class).map(|b| (a.mean, b.mean)))
            .collect();
        if !points.is_empty() {
            panels.push((unit.clone(), points));
        }
    }
    if panels.is_empty() {
        bail!("no class has attention rows at both {} and {} for units {}", scales.0, scales.1, units.join(", "));
    }
    save(&ClassScatter { panels, scales, title }, stem)
}
