//! Loading an experiment file: parse it, expand the sweep, and resolve every run once, so that a mistake in
//! any run is reported (with its line) before anything trains.
use super::schema::ExperimentFile;
use super::sweep::{plan, SweepRun};
use crate::analysis::attention::kernel_paths;
use crate::analysis::attention_pass::Zoom;
use crate::analysis::AnalysisSpec;
use crate::data::DataSpec;
use crate::models::registry;
use crate::paper::{PaperRef, PaperRow};
use crate::train::run::ResolvedRun;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Component, Path, PathBuf};
use yaml_serde::Value;

pub struct ExperimentOptions {
    /// Experiments go to `<results_root>/<experiment name>/`.
    pub results_root: PathBuf,
    /// `--set key=value`, applied to every run after the sweep's own assignments.
    pub overrides: Vec<(String, Value)>,
    pub data_root: Option<PathBuf>,
    /// Only the runs whose label (or run id) is this.
    pub only: Option<String>,
    /// Train runs recorded as failed again.
    pub retry_failed: bool,
    /// Link a run finished in another experiment under `results_root` with the same configuration instead
    /// of training it (`--no-reuse` turns this off).
    pub reuse: bool,
    pub progress: bool,
}

/// An experiment file, parsed, with every run resolved.
pub struct Experiment {
    pub name: String,
    pub description: Option<String>,
    pub runs: Vec<PlannedRun>,
    /// What to analyse after each run trains.
    pub analysis: AnalysisSpec,
}

/// One run of an experiment: its place in the sweep and the run it resolves to.
pub type PlannedRun = SweepRun<ResolvedRun>;

impl PlannedRun {
    pub fn paper_row(&self) -> Option<&'static PaperRow> {
        self.paper.as_ref().and_then(PaperRef::row)
    }

    /// The published row whose #params and GFLOPs go beside this run: its own, or, where that row gives
    /// neither (Table S1 gives errors only), the first row of its model's registry entry that does (Table
    /// 4's "ShuffleNetV2 1.0x + SK" for S1). None for runs that name no paper row.
    pub fn paper_size_row(&self) -> Option<&'static PaperRow> {
        let own = self.paper_row()?;
        if own.params_m.is_some() || own.gflops.is_some() {
            return Some(own);
        }
        let entry = registry::entry(&self.run.model.name).ok()?;
        entry.paper_rows().find(|r| r.params_m.is_some() || r.gflops.is_some())
    }
}

pub fn load(path: &Path, options: &ExperimentOptions) -> Result<Experiment> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read experiment file {}", path.display()))?;
    // serde's own errors on the file's structure carry the line and column.
    let file: ExperimentFile = yaml_serde::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let name = match &file.name {
        Some(n) => n.clone(),
        None => path.file_stem().map(|s| s.to_string_lossy().into_owned()).context("experiment file has no name")?,
    };
    check_name(&name).with_context(|| path.display().to_string())?;
    let mut planned = plan(&file, &options.overrides).map_err(|e| with_line(e, path, &text))?;
    if let Some(only) = &options.only {
        planned.retain(|r| &r.label == only || &r.run_id == only);
        if planned.is_empty() {
            bail!("--only {only}: no run has that label or id in {}", path.display());
        }
    }
    for p in &planned {
        if let Some(paper) = p.paper.as_ref().filter(|r| r.row().is_none()) {
            bail!(
                "{}: sweep variant '{}': paper: no row of table {} for model '{}' on {} in data/paper/published.csv",
                path.display(),
                p.label,
                paper.table,
                paper.model,
                paper.dataset
            );
        }
    }
    let dir = options.results_root.join(&name);
    let mut runs = Vec::new();
    for p in planned {
        let mut tree = p.run;
        let out_dir = Value::String(dir.join(&p.run_id).display().to_string());
        crate::overrides::set_dotted(&mut tree, "out_dir", out_dir)?;
        if let Some(root) = &options.data_root {
            crate::overrides::set_dotted(&mut tree, "data_root", Value::String(root.display().to_string()))?;
        }
        let run =
            ResolvedRun::from_tree(tree).map_err(|e| with_line(e.context(format!("run {}", p.run_id)), path, &text))?;
        let planned = PlannedRun { label: p.label, seed: p.seed, run_id: p.run_id, paper: p.paper, run };
        check_before_training(&planned, &file.analysis)
            .map_err(|e| anyhow!("{}: run {} ({}): {e:#}", path.display(), planned.run_id, planned.run.model.name))?;
        runs.push(planned);
    }
    file.analysis.validate().with_context(|| path.display().to_string())?;
    Ok(Experiment { name, description: file.description, runs, analysis: file.analysis })
}

/// The experiment's folder name must stay under `--results`: relative, without `..`.
fn check_name(name: &str) -> Result<()> {
    let path = Path::new(name);
    let escapes = path.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if name.trim().is_empty() || escapes {
        bail!("name: '{name}': expected a folder name under --results (relative, without '..')");
    }
    Ok(())
}

/// What training would refuse only after the runs before it trained, checked now from the resolved run:
/// the analysis needs SK units, the batch splits over the devices, and for the synthetic set (its size and
/// classes are in its spec; CIFAR and image folders are not opened here) the batch fits the training set
/// and a fixed class count matches the data.
fn check_before_training(planned: &PlannedRun, analysis: &AnalysisSpec) -> Result<()> {
    let run = &planned.run;
    if let Some(attention) = &analysis.attention {
        kernel_paths(&run.model.spec).context("analysis.attention")?;
        if attention.zoom == Zoom::Render && !matches!(run.data, DataSpec::Synthetic(_)) {
            bail!("analysis.attention.zoom: render draws synthetic scenes; with other data use zoom: resize");
        }
    }
    let (batch, devices) = (run.recipe.batch_size, run.devices.len());
    if devices > 1 && !batch.is_multiple_of(devices) {
        bail!("recipe.batch_size: {batch} cannot be split evenly over {devices} devices");
    }
    if let DataSpec::Synthetic(_) = &run.data {
        let data = crate::data::open(&run.data, run.data_root.as_deref())?;
        if batch > data.train.len() {
            bail!("recipe.batch_size: {batch} is larger than the training set ({} samples)", data.train.len());
        }
        run.clone().bind_classes(data.train.num_classes())?;
    }
    Ok(())
}

/// The line of `text` where `key` first appears as a YAML key, for error messages.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let last = key.rsplit(['.', ']']).find(|part| !part.is_empty())?;
    let last = last.split('[').next().unwrap_or(last);
    text.lines()
        .position(|line| {
            let t = line.trim_start().trim_start_matches("- ");
            t.starts_with(&format!("{last}:")) || t.contains(&format!("{last}:")) && t.contains('{')
        })
        .map(|i| i + 1)
}

/// Names the line of an unknown or mistyped field when serde's message names the field.
fn with_line(err: anyhow::Error, path: &Path, text: &str) -> anyhow::Error {
    let message = format!("{err:#}");
    let field = message.split('`').nth(1).filter(|_| {
        message.contains("unknown field") || message.contains("invalid type") || message.contains("missing field")
    });
    match field.and_then(|f| line_of_key(text, f)) {
        Some(line) => anyhow!("{}: line {line}: {message}", path.display()),
        None => anyhow!("{}: {message}", path.display()),
    }
}
