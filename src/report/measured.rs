//! The measured points of the error-vs-#params figures: every results.csv under a folder, each label's mean
//! top-1 error, sorted onto a figure's panels by the data set its runs used, and a count of the runs left
//! off (and why), so that a figure never mixes data sets silently.
use super::results::{data_set_of, find_results_files, read_results, DataSet, RunResult};
use super::summary::summarise_results;
use anyhow::{bail, Result};
use std::path::Path;

/// A point of a figure: a model (paper) or an experiment's label (measured).
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub label: String,
    pub params_m: f64,
    pub top1_err: f64,
}

/// Where a figure puts the runs of one data set (None: not recorded, and no run folder tells).
pub enum Place {
    /// On the figure's panel with this index.
    Panel(usize),
    /// Left off, for this reason (runs with the same reason are counted together).
    LeftOut(String),
}

/// The runs left off a figure: (reason, number of runs) in order of first appearance.
#[derive(Debug, Default)]
pub struct LeftOut(pub Vec<(String, usize)>);

impl LeftOut {
    fn add(&mut self, reason: String) {
        match self.0.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.0.push((reason, 1)),
        }
    }

    pub fn total(&self) -> usize {
        self.0.iter().map(|(_, n)| n).sum()
    }

    /// `left out 3 runs: 2 CIFAR (see ...), 1 synthetic`; None when every run is on the figure.
    pub fn message(&self) -> Option<String> {
        let total = self.total();
        let parts: Vec<String> = self.0.iter().map(|(reason, n)| format!("{n} {reason}")).collect();
        (total > 0).then(|| format!("left out {total} run{}: {}", if total == 1 { "" } else { "s" }, parts.join(", ")))
    }
}

/// The points of each panel and what was left off.
#[derive(Debug)]
pub struct Measured {
    pub panels: Vec<Vec<Point>>,
    pub left_out: LeftOut,
}

/// Reads every results.csv under `dir` and places each successful run with `place` (by its data set):
/// per panel, one point per label (mean top-1 error of its runs there against #params in millions; a label
/// whose mean is not finite is left out). A label found in several experiments on one panel is prefixed
/// with its experiment's folder (relative to `dir`).
pub fn measured_points(dir: &Path, panels: usize, place: impl Fn(Option<&DataSet>) -> Place) -> Result<Measured> {
    let files = find_results_files(dir)?;
    if files.is_empty() {
        bail!("no results.csv under {}", dir.display());
    }
    let mut found: Vec<Vec<(String, Point)>> = vec![Vec::new(); panels];
    let (mut left_out, mut any_ok) = (LeftOut::default(), false);
    for file in &files {
        let experiment = file.parent().unwrap_or(Path::new(""));
        let folder = experiment.strip_prefix(dir).unwrap_or(Path::new(""));
        let mut on_panel: Vec<Vec<RunResult>> = vec![Vec::new(); panels];
        for row in read_results(file)?.into_iter().filter(RunResult::is_ok) {
            any_ok = true;
            match place(data_set_of(&row, experiment).as_ref()) {
                Place::Panel(i) if i < panels => on_panel[i].push(row),
                Place::Panel(i) => bail!("internal: panel {i} of {panels}"),
                Place::LeftOut(reason) => left_out.add(reason),
            }
        }
        for (rows, points) in on_panel.iter().zip(&mut found) {
            for row in summarise_results(rows).into_iter().filter(|r| r.mean_top1_err.is_finite()) {
                let qualified = folder.join(&row.label).to_string_lossy().into_owned();
                let point = Point { label: row.label, params_m: row.params as f64 / 1e6, top1_err: row.mean_top1_err };
                points.push((qualified, point));
            }
        }
    }
    if !any_ok {
        bail!("no successful run (status ok) in the results.csv files under {}", dir.display());
    }
    Ok(Measured { panels: found.into_iter().map(qualify_repeated).collect(), left_out })
}

/// Names a label found in several experiments by its experiment's folder too.
fn qualify_repeated(found: Vec<(String, Point)>) -> Vec<Point> {
    let repeated = |label: &str| found.iter().filter(|(_, p)| p.label == label).count() > 1;
    let qualified: Vec<bool> = found.iter().map(|(_, p)| repeated(&p.label)).collect();
    found
        .into_iter()
        .zip(qualified)
        .map(|((full, point), qualify)| if qualify { Point { label: full, ..point } } else { point })
        .collect()
}

/// Why a run of `data` is not on a figure of other data: its data set's kind in words.
pub fn data_set_reason(data: Option<&DataSet>) -> String {
    let Some(data) = data else {
        return "of unknown data set (results.csv from an older sk-exp without data_kind, and no run folder \
                beside it)"
            .into();
    };
    match data.kind.as_str() {
        _ if data.is_imagenet_like() => "ImageNet-like (see `sk-exp plot figure2`)".into(),
        "folder" => format!("image folder at crop {}", data.crop.map_or("?".into(), |c| c.to_string())),
        "cifar10" | "cifar100" => "CIFAR (see `sk-exp plot cifar`)".into(),
        "cifar100_coarse" => "CIFAR-100 with coarse labels".into(),
        "cifar" => "CIFAR of unknown class count".into(),
        other => other.to_string(),
    }
}
