//! `sk-exp run --dry-run`: every run with its #params and MACs beside the paper's row, nothing trained.
use super::load::{Experiment, ExperimentOptions, PlannedRun};
use super::reuse;
use super::store::ExperimentDir;
use crate::data::{cifar, spec::resolve, DataSpec};
use crate::models::complexity::{self, gmacs_text, Complexity};
use crate::models::ModelSpec;
use crate::report::table::relative_difference;
use crate::train::run::ResolvedRun;
use anyhow::{Context, Result};
use std::fmt::Write as _;

pub fn dry_run(exp: &Experiment) -> Result<String> {
    let mut out = String::new();
    writeln!(out, "experiment {}: {} runs", exp.name, exp.runs.len())?;
    writeln!(
        out,
        "{:<34} {:<24} {:>12} {:>9} {:>9} {:>10} {:>8} {:>9} {:>8}  data / epochs / devices",
        "run", "model", "params", "GMACs", "paper GM", "paper #P", "dP", "paper GF", "dF"
    )?;
    let mut borrowed = Vec::new();
    for planned in &exp.runs {
        let spec = spec_for_data(&planned.run)?;
        let counts = complexity::measure(&spec).with_context(|| format!("run {}", planned.run_id))?;
        let size_row = planned.paper_size_row();
        // A figure from another row than the run's own is starred, and that row named below the table.
        let star = if note_borrowed_row(planned, &mut borrowed) { "*" } else { "" };
        let (pp, pf) = (size_row.and_then(|r| r.params_m), size_row.and_then(|r| r.gflops));
        writeln!(out, "{}", row_text(planned, &counts, (pp, pf), star))?;
    }
    if !borrowed.is_empty() {
        writeln!(
            out,
            "* the run's paper row gives no #params or GFLOPs; these are its model's: {}",
            borrowed.join(", ")
        )?;
    }
    writeln!(out, "(GMACs: conv + linear; paper GM: plus the SK selection's elementwise work, as the paper counts)")?;
    Ok(out)
}

/// The runs `sk-exp run` would link to a run finished in another experiment under the results root instead
/// of training them (see [`super::reuse`]), one line each; empty when there are none, with `--no-reuse`, or
/// when the results root does not exist yet. Runs finished or started in this experiment's own folder are
/// left out (they are skipped or resumed). Reads results folders, writes nothing.
pub fn reuse_plan(exp: &Experiment, options: &ExperimentOptions) -> Result<String> {
    if !options.reuse || !options.results_root.is_dir() {
        return Ok(String::new());
    }
    let store = ExperimentDir { root: options.results_root.join(&exp.name) };
    let recorded = store.results()?;
    let mut lines = String::new();
    for planned in &exp.runs {
        let has_row = recorded.iter().any(|r| r.label == planned.label && r.seed == planned.seed);
        if has_row || store.root.join(&planned.run_id).exists() {
            continue;
        }
        if let Some(found) = reuse::find(&options.results_root, &store, planned)? {
            writeln!(lines, "  {} <- {}", planned.run_id, found.origin)?;
        }
    }
    if lines.is_empty() {
        return Ok(lines);
    }
    Ok(format!(
        "would reuse (finished in another experiment under {} with the same configuration; --no-reuse trains them):\n{lines}",
        options.results_root.display()
    ))
}

fn row_text(planned: &PlannedRun, counts: &Complexity, (pp, pf): (Option<f64>, Option<f64>), star: &str) -> String {
    let run = &planned.run;
    format!(
        "{:<34} {:<24} {:>12} {:>9} {:>9} {:>10} {:>8} {:>9} {:>8}  {} / {} / {}",
        planned.run_id,
        run.model.name,
        counts.params,
        gmacs_text(counts.macs),
        gmacs_text(counts.paper_macs()),
        pp.map_or("-".into(), |p| format!("{p}M{star}")),
        relative_difference(counts.params as f64 / 1e6, pp),
        pf.map_or("-".into(), |f| format!("{f}{star}")),
        relative_difference(counts.paper_macs() as f64 / 1e9, pf),
        run.data,
        run.recipe.epochs,
        run.devices.join(","),
    )
}

/// Whether `planned`'s paper #params and GFLOPs come from its model's registry row instead of its own
/// (Table S1's rows, which give errors only); names that row in `notes`, once.
pub(crate) fn note_borrowed_row(planned: &PlannedRun, notes: &mut Vec<String>) -> bool {
    let (Some(own), Some(size)) = (planned.paper_row(), planned.paper_size_row()) else {
        return false;
    };
    if std::ptr::eq(own, size) {
        return false;
    }
    let note = format!("table {} \"{}\"", size.table, size.model);
    if !notes.contains(&note) {
        notes.push(note);
    }
    true
}

/// The run's model with the class count its data will give it where that is known without reading the
/// data (the synthetic set's, CIFAR-100's 100: its classifier is larger than CIFAR-10's), as training binds it.
pub fn spec_for_data(run: &ResolvedRun) -> Result<ModelSpec> {
    let classes = match &run.data {
        DataSpec::Cifar(s) => cifar::classes_hint(&resolve(&s.root, run.data_root.as_deref()), s.label),
        DataSpec::Synthetic(s) => Some(s.classes as i64),
        DataSpec::Folder(_) => None,
    };
    let mut run = run.clone();
    if let Some(classes) = classes.filter(|_| !run.model.fixed_classes) {
        run.bind_classes(classes)?;
    }
    Ok(run.model.spec)
}
