//! Training curves of one or more runs: loss (left) and top-1 error (right) per epoch, train dashed and
//! eval solid, one colour per run.
use super::legend::{draw_legend, Entry, Stroke};
use super::placement::{polyline_obstacles, Rect};
use super::{
    chart, finite_extent, padded, palette, save, text, Area, Axis, Backend, Figure, Frame, TickFormat, TITLE_SIZE,
};
use crate::report::results::RunHistory;
use crate::train::metrics::EpochMetrics;
use anyhow::{bail, Result};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

type Metric = fn(&EpochMetrics) -> Option<f64>;

struct Panel {
    y_desc: &'static str,
    train: Metric,
    eval: Metric,
}

const PANELS: [Panel; 2] = [
    Panel { y_desc: "loss", train: |m| Some(m.train_loss), eval: |m| m.eval_loss },
    Panel { y_desc: "top-1 error (%)", train: |m| Some(m.train_top1_err), eval: |m| m.eval_top1_err },
];

/// (epoch, value) for the epochs where the metric exists and is finite (a diverged run logs NaN).
fn series(run: &RunHistory, metric: Metric) -> Vec<(f64, f64)> {
    run.epochs.iter().filter_map(|m| metric(m).filter(|v| v.is_finite()).map(|v| (f64::from(m.epoch), v))).collect()
}

/// The legend's name of a run: its label, its model, and the epoch where its loss stopped being finite (the
/// curves end there).
fn run_name(run: &RunHistory) -> String {
    let mut name = run.label.clone();
    if let Some(model) = run.model.as_ref().filter(|m| **m != run.label) {
        name += &format!(" ({model})");
    }
    let finite = |v: Option<f64>| v.is_none_or(f64::is_finite);
    if let Some(m) = run.epochs.iter().find(|m| !finite(Some(m.train_loss)) || !finite(m.eval_loss)) {
        name += &format!(", diverged at epoch {}", m.epoch);
    }
    name
}

struct Curves<'a> {
    runs: &'a [RunHistory],
}

/// Where a panel sits: within the figure, under its title, with no caption of its own.
const PANEL_FRAME: Frame = Frame { caption: None, margin: 15, label_area: (55, 70) };

impl Curves<'_> {
    /// Epochs (both panels span every logged epoch, so that they line up) and the panel's metric, from 0 at
    /// the least.
    fn axes(&self, panel: &Panel) -> (Axis, Axis) {
        let all: Vec<(f64, f64)> =
            self.runs.iter().flat_map(|r| series(r, panel.train).into_iter().chain(series(r, panel.eval))).collect();
        let epochs = self.runs.iter().flat_map(|r| r.epochs.iter().map(|m| f64::from(m.epoch)));
        let (x_lo, x_hi) = finite_extent(epochs).unwrap_or((0.0, 1.0));
        let (y_lo, y_hi) = finite_extent(all.iter().map(|p| p.1)).unwrap_or((0.0, 1.0));
        let y_range = padded(y_lo, y_hi, 0.06, 0.05);
        let x = Axis::new(padded(x_lo, x_hi, 0.02, 0.5), "epoch").format(TickFormat::Whole);
        (x, Axis::new(y_range.start.max(0.0)..y_range.end, panel.y_desc))
    }

    /// One entry per run in its colour, then what dashed and solid mean.
    fn legend_entries(&self) -> Vec<Entry> {
        let gray = RGBColor(90, 90, 90);
        let mut entries: Vec<Entry> = self
            .runs
            .iter()
            .enumerate()
            .map(|(i, run)| Entry::line(run_name(run), palette(i), Stroke::Solid))
            .collect();
        entries.push(Entry::line("train", gray, Stroke::Dashed));
        entries.push(Entry::line("eval", gray, Stroke::Solid));
        entries
    }

    /// Draws one panel in `area`: each run's train (dashed) and eval (solid) curve of the panel's metric;
    /// returns its plotting area and the pixels the curves cover, in the backend's coordinates.
    fn draw_panel<DB: Backend>(&self, area: &Area<DB>, panel: &Panel) -> Result<(Rect, Vec<Rect>)> {
        let (x, y) = self.axes(panel);
        let (mut chart, plot) = chart(area, &PANEL_FRAME, &x, &y)?;
        let mut obstacles = Vec::new();
        // Markers only while they stay apart.
        let markers = self.runs.iter().all(|r| r.epochs.len() <= 30);
        for (i, run) in self.runs.iter().enumerate() {
            let color = palette(i);
            let train = series(run, panel.train);
            let eval = series(run, panel.eval);
            chart.draw_series(DashedLineSeries::new(train.clone(), 9, 6, color.stroke_width(2)))?;
            chart.draw_series(LineSeries::new(eval.clone(), color.stroke_width(3)))?;
            if markers {
                chart.draw_series(eval.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
            }
            // A single train point draws no dash.
            if let [only] = train[..] {
                chart.draw_series([Circle::new(only, 4, color.stroke_width(2))])?;
            }
            for line in [&train, &eval] {
                let pixels: Vec<(i32, i32)> = line.iter().map(|p| chart.backend_coord(p)).collect();
                obstacles.extend(polyline_obstacles(&pixels));
            }
        }
        Ok((plot, obstacles))
    }
}

impl Figure for Curves<'_> {
    fn size(&self) -> (u32, u32) {
        (1500, 680)
    }

    fn draw<DB: Backend>(&self, root: &Area<DB>) -> Result<()> {
        let title = match self.runs {
            [run] => format!("Training curves: {}", run.label),
            runs => format!("Training curves of {} runs", runs.len()),
        };
        let area = root.titled(&title, text(TITLE_SIZE))?;
        let (left, right) = area.split_horizontally(area.dim_in_pixel().0 / 2);
        self.draw_panel(&left, &PANELS[0])?;
        // The legend goes on `root`, whose coordinates are the backend's pixels.
        let (plot, obstacles) = self.draw_panel(&right, &PANELS[1])?;
        draw_legend(root, &self.legend_entries(), plot, &obstacles)?;
        Ok(())
    }
}

/// Writes `STEM.png` and `STEM.svg` with the curves of `runs` overlaid.
pub fn plot_curves(runs: &[RunHistory], stem: &Path) -> Result<Vec<PathBuf>> {
    if let Some(empty) = runs.iter().find(|r| r.epochs.is_empty()) {
        bail!("run {} has no epochs in its metrics.csv", empty.label);
    }
    if runs.is_empty() {
        bail!("no run to plot");
    }
    save(&Curves { runs }, stem)
}
