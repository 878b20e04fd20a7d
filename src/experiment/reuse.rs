//! The same run is not trained twice: a planned run whose identity ([`ResolvedRun::identity`]) is that of a
//! run finished in another experiment under the same results root is linked to that run's folder (a
//! relative symbolic link, so moving the results root keeps it) and recorded from its row, instead of being
//! trained again (Table S1's `relu_none` is Table 4's `shufflenetv2_1.0x_sk`).
//!
//! [`ResolvedRun::identity`]: crate::train::run::ResolvedRun::identity
use super::load::PlannedRun;
use super::store::ExperimentDir;
use crate::report::results::{find_results_files, RunResult};
use crate::train::run_dir::RunDir;
use crate::util::fs::link_atomic;
use anyhow::Result;
use std::path::{Component, Path, PathBuf};

/// A finished run of another experiment with the planned run's identity.
pub struct Found {
    /// Where it was trained, under the results root: `EXPERIMENT/RUN`.
    pub origin: String,
    /// Its results.csv row.
    row: RunResult,
}

impl Found {
    /// The experiment and the run folder it was trained in.
    pub fn experiment_and_run(&self) -> (&str, &str) {
        self.origin.rsplit_once('/').unwrap_or(("", &self.origin))
    }
}

/// The first finished run with `planned`'s identity in an experiment under `results_root` other than
/// `own`: a row with status ok and the same `config_id` whose run folder (where it was trained, also when
/// that row reused it) holds a run file of the same identity, read again, and metrics up to its last
/// epoch. So a folder replaced or retrained since its row was written is never taken. A results.csv that
/// cannot be read is passed over with a warning.
pub fn find(results_root: &Path, own: &ExperimentDir, planned: &PlannedRun) -> Result<Option<Found>> {
    let (identity, config_id) = (planned.run.identity()?, planned.run.config_id()?);
    let own_root = own.root.canonicalize().ok();
    for file in find_results_files(results_root)? {
        let experiment = ExperimentDir { root: file.parent().map_or_else(PathBuf::new, Path::to_path_buf) };
        if experiment.root.canonicalize().ok() == own_root {
            continue;
        }
        let rows = match experiment.results() {
            Ok(rows) => rows,
            Err(err) => {
                eprintln!("warning: {err:#} (not searched for runs to reuse)");
                continue;
            }
        };
        let name = experiment.root.strip_prefix(results_root).unwrap_or(&experiment.root).display().to_string();
        for row in rows.into_iter().filter(|r| r.is_ok() && r.config_id == config_id && !r.run.is_empty()) {
            let origin =
                if row.reused_from.is_empty() { format!("{name}/{}", row.run) } else { row.reused_from.clone() };
            if is_finished_run(&RunDir::new(results_root.join(&origin)), &identity) {
                return Ok(Some(Found { origin, row }));
            }
        }
    }
    Ok(None)
}

/// The folder holds a run of `identity` trained to its last epoch, with its weights.
fn is_finished_run(dir: &RunDir, identity: &str) -> bool {
    let Ok(run) = dir.read_run() else { return false };
    let last_epoch = dir.read_metrics().ok().and_then(|m| m.last().map(|m| m.epoch as usize));
    run.identity().ok().as_deref() == Some(identity)
        && last_epoch == Some(run.recipe.epochs)
        && dir.weights_file().is_file()
}

/// Makes `planned`'s run folder in `store` (the experiment `name` under the results root) a link to the
/// found run and records the found row as this run's, marked `reused_from`. The link comes first: a crash
/// between the two leaves a link without a row, which the runner removes and decides afresh.
pub fn link_and_record(found: &Found, name: &str, store: &ExperimentDir, planned: &PlannedRun) -> Result<()> {
    let depth = Path::new(name).components().filter(|c| matches!(c, Component::Normal(_))).count();
    let target: PathBuf = std::iter::repeat_n(Path::new(".."), depth).collect::<PathBuf>().join(&found.origin);
    link_atomic(&target, &store.root.join(&planned.run_id))?;
    store.record(&RunResult {
        label: planned.label.clone(),
        seed: planned.seed,
        model: planned.run.model.name.clone(),
        run: planned.run_id.clone(),
        reused_from: found.origin.clone(),
        ..found.row.clone()
    })
}
