//! Runs an experiment: each planned run in its own folder (resuming from its checkpoint, skipping finished
//! runs, locked against a second runner), through [`super::pipeline`], recorded in results.csv (failures
//! too, with their reason).
use super::load::{Experiment, ExperimentOptions, PlannedRun};
use super::pipeline::{failed_row, run_one};
use super::store::ExperimentDir;
use anyhow::Result;
use std::time::Instant;

/// What happened to each run of this invocation.
#[derive(Debug, Default)]
pub struct Outcome {
    pub trained: Vec<String>,
    pub skipped: Vec<String>,
    pub failed: Vec<String>,
    pub locked: Vec<String>,
}

/// Trains every run not yet finished.
pub fn run(exp: &Experiment, options: &ExperimentOptions) -> Result<Outcome> {
    let store = ExperimentDir::create(options.results_root.join(&exp.name))?;
    let mut outcome = Outcome::default();
    let total = exp.runs.len();
    for (i, planned) in exp.runs.iter().enumerate() {
        let id = &planned.run_id;
        let prefix = format!("[{}/{total}] {id}", i + 1);
        if let Some(done) = store.recorded(&planned.label, planned.seed)? {
            if done.is_ok() || !options.retry_failed {
                eprintln!(
                    "{prefix}: already {} (skipped)",
                    if done.is_ok() { "finished" } else { "failed; --retry-failed trains it again" }
                );
                outcome.skipped.push(id.clone());
                continue;
            }
        }
        let dir = store.run_dir(id);
        let Some(_lock) = dir.lock()? else {
            eprintln!("{prefix}: another runner is training it (skipped)");
            outcome.locked.push(id.clone());
            continue;
        };
        if train_and_record(exp, planned, &store, &prefix, options)? {
            outcome.trained.push(id.clone());
        } else {
            outcome.failed.push(id.clone());
        }
    }
    Ok(outcome)
}

/// Runs one planned run (its lock held) and records its row; false when it failed.
fn train_and_record(
    exp: &Experiment,
    planned: &PlannedRun,
    store: &ExperimentDir,
    prefix: &str,
    options: &ExperimentOptions,
) -> Result<bool> {
    let dir = store.run_dir(&planned.run_id);
    let (model, epochs) = (&planned.run.model.name, planned.run.recipe.epochs);
    eprintln!("{prefix}: training {model} ({epochs} epochs)");
    dir.append_log(&format!("start: {epochs} epochs of {model}"))?;
    let started = Instant::now();
    match run_one(planned, &exp.analysis, options.progress) {
        Ok(row) => {
            let err = row.top1_err.map_or("-".into(), |e| format!("{e:.2}%"));
            dir.append_log(&format!("finished in {:.0} s: top-1 error {err}", started.elapsed().as_secs_f64()))?;
            store.record(&row)?;
            Ok(true)
        }
        Err(err) => {
            let reason = format!("{err:#}");
            eprintln!("{prefix}: FAILED: {reason}");
            dir.append_log(&format!("failed: {reason}"))?;
            store.record(&failed_row(planned, &reason))?;
            Ok(false)
        }
    }
}
