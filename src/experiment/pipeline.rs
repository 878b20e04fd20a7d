//! One experiment run from its resolved description to its results.csv row, in order: train (resuming
//! from the run folder's checkpoint), analyse the final weights, measure the model, make the row.
use super::load::PlannedRun;
use crate::analysis::attention_pass::{analyse, AnalysisData, AttentionSpec};
use crate::analysis::AnalysisSpec;
use crate::models::complexity::{self, Complexity};
use crate::report::attention::{run_title, write_attention};
use crate::report::results::{DataSet, RunResult};
use crate::train::run_dir::RunDir;
use crate::train::trainer::{self, Finished, RunOptions};
use anyhow::{Context, Result};

pub fn run_one(planned: &PlannedRun, analysis: &AnalysisSpec, progress: bool) -> Result<RunResult> {
    let options = RunOptions { resume: true, progress, ..RunOptions::default() };
    let finished = trainer::run(planned.run.clone(), &options)?;
    if let Some(spec) = &analysis.attention {
        let dir = RunDir::new(&finished.run.out_dir);
        analyse_attention(&finished, &dir, spec, progress)
            .with_context(|| format!("attention analysis of {}", finished.run.out_dir.display()))?;
    }
    finished_row(planned, &finished)
}

/// The attention analysis of the run's final checkpoint on its evaluation set, into `<run>/attention/`.
fn analyse_attention(finished: &Finished, dir: &RunDir, spec: &AttentionSpec, progress: bool) -> Result<()> {
    let run = &finished.run;
    let device = crate::device::parse(run.devices.first().map_or("cpu", String::as_str))?;
    let loaded = crate::models::load(&run.model.spec, Some(&dir.weights_file()), device)?;
    let data = AnalysisData::of(&run.data, finished.data.eval.clone())?;
    let stats = analyse(&loaded.model, &data, spec, device, progress)?;
    write_attention(&stats, spec, &dir.attention_dir(), &run_title(&run.model.name, run.seed))?;
    if progress {
        eprintln!("attention analysis written to {}", dir.attention_dir().display());
    }
    Ok(())
}

/// The row of a run trained to its end: final-epoch errors, mean throughput, total time, #params and MACs.
fn finished_row(planned: &PlannedRun, finished: &Finished) -> Result<RunResult> {
    let Complexity { params, macs, .. } = complexity::measure(&finished.run.model.spec)?;
    let history = &finished.trained.history;
    let last = history.last().with_context(|| format!("{}: no epoch was recorded", finished.run.out_dir.display()))?;
    let images_per_s = history.iter().map(|m| m.images_per_s).sum::<f64>() / history.len() as f64;
    let mut row = RunResult {
        params: Some(params as u64),
        macs: Some(macs),
        top1_err: last.eval_top1_err,
        top5_err: last.eval_top5_err,
        epochs: Some(last.epoch),
        images_per_s: Some(images_per_s),
        wall_s: Some(history.iter().map(|m| m.wall_s).sum()),
        status: "ok".into(),
        ..identified_row(planned)?
    };
    let run = &finished.run;
    row.set_data_set(DataSet::of(&run.data, Some(run.model.spec.num_classes())));
    Ok(row)
}

/// A row naming the run (folder, identity, data set) without results yet; the class count is not known
/// before the data is opened, so a CIFAR run's kind says only `cifar`.
fn identified_row(planned: &PlannedRun) -> Result<RunResult> {
    let run = &planned.run;
    let mut row = RunResult {
        label: planned.label.clone(),
        seed: planned.seed,
        model: run.model.name.clone(),
        params: None,
        macs: None,
        top1_err: None,
        top5_err: None,
        epochs: None,
        images_per_s: None,
        wall_s: None,
        status: String::new(),
        run: planned.run_id.clone(),
        config_id: run.config_id()?,
        reused_from: String::new(),
        data_kind: String::new(),
        data_name: String::new(),
        data_crop: None,
    };
    let classes = run.model.fixed_classes.then(|| run.model.spec.num_classes());
    row.set_data_set(DataSet::of(&run.data, classes));
    Ok(row)
}

/// The row of a run that failed, with its reason on one line.
pub fn failed_row(planned: &PlannedRun, reason: &str) -> Result<RunResult> {
    let status = format!("failed: {}", reason.replace(['\n', '\r'], " "));
    Ok(RunResult { status, ..identified_row(planned)? })
}
