//! Runs an experiment: every planned run is type-checked before anything trains, then trained in its own
//! folder (resuming from its checkpoint, skipping finished runs, locked against a second runner), recorded
//! in results.csv (failures too, with their reason), and summarised beside the paper's figures.
use super::schema::ExperimentFile;
use super::store::ExperimentDir;
use super::sweep::{plan, PlannedRun};
use crate::analysis::AnalysisSpec;
use crate::models::complexity::{self, Complexity};
use crate::models::{registry, ModelSpec};
use crate::paper::PaperRef;
use crate::paper::PaperRow;
use crate::report::plots::bars::plot_summary;
use crate::report::results::{read_metrics, RunResult, METRICS_FILE};
use crate::report::summary::{summarize, write_summary, SummaryRow};
use crate::train::config::{RunConfig, RunOptions};
use crate::util::fs::write_atomic;
use anyhow::{anyhow, bail, Context, Result};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use yaml_serde::Value;

pub struct RunnerOptions {
    /// Experiments go to `<results_root>/<experiment name>/`.
    pub results_root: PathBuf,
    /// `--set key=value`, applied to every run after the sweep's own assignments.
    pub overrides: Vec<(String, Value)>,
    pub data_root: Option<PathBuf>,
    /// Only the runs whose label (or run id) is this.
    pub only: Option<String>,
    pub dry_run: bool,
    /// Train runs recorded as failed again.
    pub retry_failed: bool,
    pub progress: bool,
}

/// An experiment file, parsed and with every run resolved and type-checked.
pub struct Experiment {
    pub name: String,
    pub description: Option<String>,
    pub runs: Vec<ResolvedRun>,
    /// What to analyse after each run trains (the caller's `after_run` hook runs it).
    pub analysis: AnalysisSpec,
}

pub struct ResolvedRun {
    pub planned: PlannedRun,
    pub config: RunConfig,
}

impl ResolvedRun {
    /// The model spec as configured (the class count as the spec says; the data may still change it).
    pub fn model_spec(&self) -> Result<ModelSpec> {
        registry::resolve(&self.config.model.name, self.config.model.overrides.as_ref())
    }

    fn paper_row(&self) -> Option<&'static PaperRow> {
        self.planned.paper.as_ref().and_then(PaperRef::row)
    }
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

pub fn load(path: &Path, options: &RunnerOptions) -> Result<Experiment> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read experiment file {}", path.display()))?;
    // serde's own errors on the file's structure carry the line and column.
    let file: ExperimentFile = yaml_serde::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let name = match &file.name {
        Some(n) => n.clone(),
        None => path.file_stem().map(|s| s.to_string_lossy().into_owned()).context("experiment file has no name")?,
    };
    let mut planned = plan(&file, &options.overrides).map_err(|e| with_line(e, path, &text))?;
    if let Some(only) = &options.only {
        planned.retain(|r| &r.label == only || &r.run_id == only);
        if planned.is_empty() {
            bail!("--only {only}: no run has that label or id in {}", path.display());
        }
    }
    let dir = options.results_root.join(&name);
    let mut runs = Vec::new();
    for p in planned {
        let mut tree = p.config.clone();
        crate::overrides::set_dotted(&mut tree, "out_dir", Value::String(dir.join(&p.run_id).display().to_string()))?;
        if let Some(root) = &options.data_root {
            crate::overrides::set_dotted(&mut tree, "data_root", Value::String(root.display().to_string()))?;
        }
        let config =
            RunConfig::from_value(tree).map_err(|e| with_line(e.context(format!("run {}", p.run_id)), path, &text))?;
        runs.push(ResolvedRun { planned: p, config });
    }
    file.analysis.validate().with_context(|| path.display().to_string())?;
    Ok(Experiment { name, description: file.description, runs, analysis: file.analysis })
}

fn fmt_diff(ours: f64, paper: Option<f64>) -> String {
    paper.map_or("-".into(), |p| format!("{:+.2}%", (ours - p) / p * 100.0))
}

/// `--dry-run`: every run with its #params and MACs beside the paper's row, nothing trained.
pub fn dry_run(exp: &Experiment) -> Result<String> {
    let mut out = String::new();
    writeln!(out, "experiment {}: {} runs", exp.name, exp.runs.len())?;
    writeln!(
        out,
        "{:<34} {:<24} {:>12} {:>9} {:>9} {:>8} {:>9} {:>8}  {}",
        "run", "model", "params", "GMACs", "paper #P", "dP", "paper GF", "dF", "data / epochs / devices"
    )?;
    for run in &exp.runs {
        let spec = run.model_spec()?;
        let Complexity { params, macs } =
            complexity::measure(&spec).with_context(|| format!("run {}", run.planned.run_id))?;
        let row = run.paper_row();
        let (pp, pf) = (row.and_then(|r| r.params_m), row.and_then(|r| r.gflops));
        let gmacs = macs as f64 / 1e9;
        writeln!(
            out,
            "{:<34} {:<24} {:>12} {:>9.3} {:>9} {:>8} {:>9} {:>8}  {} / {} / {}",
            run.planned.run_id,
            run.config.model.name,
            params,
            gmacs,
            pp.map_or("-".into(), |p| format!("{p}M")),
            fmt_diff(params as f64 / 1e6, pp),
            pf.map_or("-".into(), |f| f.to_string()),
            fmt_diff(gmacs, pf),
            data_name(&run.config),
            run.config.recipe.epochs,
            run.config.devices.join(","),
        )?;
    }
    Ok(out)
}

fn data_name(config: &RunConfig) -> String {
    match &config.data {
        crate::data::DataSpec::Synthetic(_) => "synthetic".into(),
        crate::data::DataSpec::Cifar(c) => format!("cifar:{}", c.root.display()),
        crate::data::DataSpec::Folder(f) => format!("folder:{}", f.root.display()),
    }
}

/// What happened to each run of this invocation.
#[derive(Debug, Default)]
pub struct Outcome {
    pub trained: Vec<String>,
    pub skipped: Vec<String>,
    pub failed: Vec<String>,
    pub locked: Vec<String>,
}

fn append_log(run_dir: &Path, line: &str) -> Result<()> {
    let path = run_dir.join("log.txt");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{}", line).with_context(|| format!("writing {}", path.display()))
}

/// The result row of a run that trained `spec` to its end: final-epoch errors, mean throughput, total time.
fn finished_row(run: &ResolvedRun, spec: &ModelSpec, run_dir: &Path) -> Result<RunResult> {
    let Complexity { params, macs } = complexity::measure(spec)?;
    let metrics = read_metrics(&run_dir.join(METRICS_FILE))?;
    let last = metrics.last().with_context(|| format!("{}: no epoch was recorded", run_dir.display()))?;
    let images_per_s = metrics.iter().map(|m| m.images_per_s).sum::<f64>() / metrics.len() as f64;
    Ok(RunResult {
        label: run.planned.label.clone(),
        seed: run.planned.seed,
        model: run.config.model.name.clone(),
        params: Some(params as u64),
        macs: Some(macs),
        top1_err: last.eval_top1_err,
        top5_err: last.eval_top5_err,
        epochs: Some(last.epoch),
        images_per_s: Some(images_per_s),
        wall_s: Some(metrics.iter().map(|m| m.wall_s).sum()),
        status: "ok".into(),
    })
}

fn failed_row(run: &ResolvedRun, reason: &str) -> RunResult {
    RunResult {
        label: run.planned.label.clone(),
        seed: run.planned.seed,
        model: run.config.model.name.clone(),
        params: None,
        macs: None,
        top1_err: None,
        top5_err: None,
        epochs: None,
        images_per_s: None,
        wall_s: None,
        status: format!("failed: {}", reason.replace(['\n', '\r'], " ")),
    }
}

/// Trains every run not yet finished, then writes the summary.
pub fn run(
    exp: &Experiment,
    options: &RunnerOptions,
    after_run: &dyn Fn(&ResolvedRun) -> Result<()>,
) -> Result<Outcome> {
    let store = ExperimentDir::create(options.results_root.join(&exp.name))?;
    let mut outcome = Outcome::default();
    let total = exp.runs.len();
    for (i, run) in exp.runs.iter().enumerate() {
        let id = &run.planned.run_id;
        let prefix = format!("[{}/{total}] {id}", i + 1);
        if let Some(done) = store.recorded(&run.planned.label, run.planned.seed)? {
            if done.is_ok() || !options.retry_failed {
                eprintln!(
                    "{prefix}: already {} (skipped)",
                    if done.is_ok() { "finished" } else { "failed; --retry-failed trains it again" }
                );
                outcome.skipped.push(id.clone());
                continue;
            }
        }
        let Some(_lock) = store.lock_run(id)? else {
            eprintln!("{prefix}: another runner is training it (skipped)");
            outcome.locked.push(id.clone());
            continue;
        };
        let run_dir = store.run_dir(id);
        write_atomic(&run_dir.join("config.yaml"), yaml_serde::to_string(&run.config)?.as_bytes())?;
        eprintln!("{prefix}: training {} ({} epochs)", run.config.model.name, run.config.recipe.epochs);
        append_log(&run_dir, &format!("start: {} epochs of {}", run.config.recipe.epochs, run.config.model.name))?;
        let started = Instant::now();
        let result = run
            .config
            .run(&RunOptions { resume: true, stop_after: None, progress: options.progress })
            .and_then(|trained| {
                after_run(run)?;
                finished_row(run, &trained.spec, &run_dir)
            });
        match result {
            Ok(row) => {
                let err = row.top1_err.map_or("-".into(), |e| format!("{e:.2}%"));
                append_log(
                    &run_dir,
                    &format!("finished in {:.0} s: top-1 error {err}", started.elapsed().as_secs_f64()),
                )?;
                store.record(&row)?;
                outcome.trained.push(id.clone());
            }
            Err(err) => {
                let reason = format!("{err:#}");
                eprintln!("{prefix}: FAILED: {reason}");
                append_log(&run_dir, &format!("failed: {reason}"))?;
                store.record(&failed_row(run, &reason))?;
                outcome.failed.push(id.clone());
            }
        }
    }
    Ok(outcome)
}

/// The summary rows with the paper's figure for each label, written as summary.csv, summary.md and the
/// bar chart; returns the markdown.
pub fn summarise(exp: &Experiment, options: &RunnerOptions) -> Result<String> {
    let store = ExperimentDir::create(options.results_root.join(&exp.name))?;
    let results = store.results()?;
    let mut rows: Vec<SummaryRow> = summarize(&results);
    let paper_of = |label: &str| -> Option<&'static PaperRow> {
        let refs: Option<&PaperRef> =
            exp.runs.iter().find(|r| r.planned.label == label).and_then(|r| r.planned.paper.as_ref());
        refs.and_then(PaperRef::row)
    };
    for row in &mut rows {
        row.paper_top1_err = paper_of(&row.label).and_then(|p| p.top1_err);
    }
    write_summary(&store.root.join("summary.csv"), &rows)?;
    let mut md = format!("# {}\n\n", exp.name);
    if let Some(d) = &exp.description {
        writeln!(md, "{}\n", d.trim())?;
    }
    writeln!(
        md,
        "| variant | model | #params | runs | top-1 error (%) mean ± std | paper top-1 error (%) | difference |"
    )?;
    writeln!(md, "|---|---|---:|---:|---:|---:|---:|")?;
    for r in &rows {
        let std = r.std_top1_err.map_or("-".into(), |s| format!("{s:.2}"));
        let (paper, diff) = match r.paper_top1_err {
            Some(p) => (format!("{p:.2}"), format!("{:+.2}", r.mean_top1_err - p)),
            None => ("-".into(), "-".into()),
        };
        writeln!(
            md,
            "| {} | {} | {:.2}M | {} | {:.2} ± {} | {} | {} |",
            r.label,
            r.model,
            r.params as f64 / 1e6,
            r.n,
            r.mean_top1_err,
            std,
            paper,
            diff
        )?;
    }
    let failed: Vec<&RunResult> = results.iter().filter(|r| !r.is_ok()).collect();
    if !failed.is_empty() {
        writeln!(md, "\nFailed runs:\n")?;
        for f in failed {
            writeln!(md, "- {} seed {}: {}", f.label, f.seed, f.status)?;
        }
    }
    write_atomic(&store.root.join("summary.md"), md.as_bytes())?;
    if !rows.is_empty() {
        plot_summary(&rows, &exp.name, &store.root.join("summary"))?;
    }
    Ok(md)
}
