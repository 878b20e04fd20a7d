//! Runs an experiment: each planned run in its own folder (resuming from its checkpoint, skipping finished
//! runs, reusing a run finished in another experiment with the same configuration, locked against a second
//! runner), through [`super::pipeline`], recorded in results.csv (failures too, with their reason).
use super::load::{Experiment, ExperimentOptions, PlannedRun};
use super::pipeline::{failed_row, run_one};
use super::reuse;
use super::store::ExperimentDir;
use crate::train::run_dir::RunDir;
use anyhow::{bail, Context, Result};
use std::time::Instant;

/// What happened to each run of this invocation.
#[derive(Debug, Default)]
pub struct Outcome {
    pub trained: Vec<String>,
    pub skipped: Vec<String>,
    pub failed: Vec<String>,
    pub locked: Vec<String>,
    /// Runs recorded as failed by an earlier invocation and kept so (also in `skipped`).
    pub failed_earlier: Vec<String>,
    /// Runs linked to a finished run of another experiment with the same configuration, not trained.
    pub reused: Vec<String>,
}

/// Trains every run not yet finished.
pub fn run(exp: &Experiment, options: &ExperimentOptions) -> Result<Outcome> {
    let store = ExperimentDir::create(options.results_root.join(&exp.name))?;
    check_finished_runs(exp, &store)?;
    let mut outcome = Outcome::default();
    let total = exp.runs.len();
    for (i, planned) in exp.runs.iter().enumerate() {
        let id = &planned.run_id;
        let prefix = format!("[{}/{total}] {id}", i + 1);
        if let Some(done) = store.recorded(&planned.label, planned.seed)? {
            // A finished run whose folder was removed is trained again (see `check_finished_runs`).
            let finished = done.is_ok() && store.run_dir(id).run_file().exists();
            if finished || !(done.is_ok() || options.retry_failed) {
                eprintln!(
                    "{prefix}: already {} (skipped)",
                    if finished { "finished" } else { "failed; --retry-failed trains it again" }
                );
                outcome.skipped.push(id.clone());
                if !finished {
                    outcome.failed_earlier.push(id.clone());
                }
                continue;
            }
        }
        if try_reuse(exp, planned, &store, &prefix, options)? {
            outcome.reused.push(id.clone());
            continue;
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

/// Reuses a run finished in another experiment with `planned`'s configuration when there is one (unless
/// `--no-reuse`): links its folder here and records its row; true when it did. A link left here without a
/// finished row (a crash between link and row, or its run removed since) is removed first, and decided
/// again. A run that has its own folder already (trained in part here) is resumed here, not replaced. An
/// unfinished run elsewhere is not waited for nor shared: this run trains in its own folder.
fn try_reuse(
    exp: &Experiment,
    planned: &PlannedRun,
    store: &ExperimentDir,
    prefix: &str,
    options: &ExperimentOptions,
) -> Result<bool> {
    let path = store.root.join(&planned.run_id);
    if path.is_symlink() {
        std::fs::remove_file(&path).with_context(|| format!("removing the stale link {}", path.display()))?;
    }
    if !options.reuse {
        return Ok(false);
    }
    let Some(found) = reuse::find(&options.results_root, store, planned)? else { return Ok(false) };
    let (experiment, run) = found.experiment_and_run();
    if path.exists() {
        eprintln!("{prefix}: run {run} of experiment {experiment} has the same configuration, but this run has its own folder already (resuming it here)");
        return Ok(false);
    }
    reuse::link_and_record(&found, &exp.name, store, planned)?;
    eprintln!("{prefix}: reusing finished run {run} from experiment {experiment} (same configuration)");
    let origin = RunDir::new(options.results_root.join(&found.origin));
    origin
        .append_log(&format!("reused by experiment {} as its run {} (same configuration)", exp.name, planned.run_id))?;
    Ok(true)
}

/// Refuses to go on when a run recorded as finished is not the run asked for now (the experiment file or
/// `--set` changed its model, data, recipe or seed): its results.csv row would be reported as the new
/// run's. Refusing, rather than training it again, keeps the finished run's weights and numbers until the
/// user chooses (another --results folder, or removing the run folder, which trains it again). Raised
/// epochs could resume from the checkpoint, but the row, the log and the analysis would then mix sessions;
/// the simple rule is the safe one.
fn check_finished_runs(exp: &Experiment, store: &ExperimentDir) -> Result<()> {
    let results = store.results()?;
    let mut changed = Vec::new();
    for planned in &exp.runs {
        let dir = store.run_dir(&planned.run_id);
        let row = results.iter().find(|r| r.label == planned.label && r.seed == planned.seed && r.is_ok());
        let Some(row) = row.filter(|_| dir.run_file().exists()) else { continue };
        let mut saved = dir.read_run()?;
        if !row.reused_from.is_empty() {
            // A reused run may have been trained under another model name for the same spec.
            saved.model.name.clone_from(&planned.run.model.name);
        }
        // The saved run has its class count bound to the data; bind the asked one alike (a changed data
        // set shows up as a data difference). Where it runs (devices, world size, paths) may differ.
        let mut asked = planned.run.clone();
        if !asked.model.fixed_classes {
            asked.bind_classes(saved.model.spec.num_classes())?;
        }
        if let Err(err) = asked.check_resumes(&saved, true) {
            let message = err.to_string();
            let what = message.split("; resume with").next().unwrap_or(&message);
            let what = what.replace(" in the run being resumed ", " in the finished run ");
            changed.push(format!(
                "run {}: {what}; use another --results folder, or remove {} to train it again",
                planned.run_id,
                dir.run_file().parent().unwrap_or(&store.root).display()
            ));
        }
    }
    if !changed.is_empty() {
        bail!("finished runs differ from the experiment as it is now:\n{}", changed.join("\n"));
    }
    Ok(())
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
            store.record(&failed_row(planned, &reason)?)?;
            Ok(false)
        }
    }
}
