//! Expands an experiment file into its runs: sweep points x seeds, each a run file's YAML tree (dotted-key
//! edits are the right tool here) with a stable label. [`super::load`] resolves each tree once.
use super::schema::ExperimentFile;
use crate::overrides::set_dotted;
use crate::paper::PaperRef;
use crate::train::run::apply_assignments;
use anyhow::{bail, Context, Result};
use yaml_serde::Value;

/// One run of a sweep: its place in the sweep and the run, a run file's YAML tree until [`super::load`]
/// resolves it (a [`super::load::PlannedRun`]).
#[derive(Clone, Debug)]
pub struct SweepRun<R = Value> {
    /// The sweep point's label (shared by its seeds).
    pub label: String,
    pub seed: u64,
    /// The run folder's name: `<label>_s<seed>`.
    pub run_id: String,
    pub paper: Option<PaperRef>,
    pub run: R,
}

/// A sweep point: its label, the assignments that make it, and the paper row it reproduces.
struct Point {
    label: String,
    assignments: Vec<(String, Value)>,
    paper: Option<PaperRef>,
}

fn value_label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => yaml_serde::to_string(other).unwrap_or_default().trim().replace('\n', " "),
    }
}

/// Keeps labels usable as folder names.
pub fn sanitise(label: &str) -> String {
    label.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.=+".contains(c) { c } else { '_' }).collect()
}

fn grid_points(exp: &ExperimentFile) -> Vec<Point> {
    let mut points = vec![Point { label: String::new(), assignments: vec![], paper: None }];
    for (key, values) in &exp.sweep.grid {
        let short = key.rsplit('.').next().unwrap_or(key);
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let part = format!("{short}={}", value_label(v));
                    let label = if p.label.is_empty() { part } else { format!("{},{part}", p.label) };
                    let mut assignments = p.assignments.clone();
                    assignments.push((key.clone(), v.clone()));
                    Point { label, assignments, paper: None }
                })
            })
            .collect();
    }
    points
}

/// The seeds to run: the file's `seeds:`, or the one `--set seed=N` names. A seed is the run's place in the
/// experiment (its run id and folder, its results row), so it is never a sweep key nor in `base:` (where
/// every run would overwrite it): those are refused rather than silently replaced.
fn seeds(exp: &ExperimentFile, overrides: &[(String, Value)]) -> Result<Vec<u64>> {
    const USE_SEEDS: &str =
        "an experiment's seeds are its `seeds:` list (e.g. seeds: [1, 2]); `--set seed=N` runs seed N alone";
    if exp.base.get("seed").is_some() {
        bail!("base.seed: {USE_SEEDS}");
    }
    if exp.sweep.grid.contains_key("seed") {
        bail!("sweep.grid.seed: {USE_SEEDS}");
    }
    if let Some(v) = exp.sweep.variants.iter().find(|v| v.set.contains_key("seed")) {
        bail!("sweep variant '{}': set.seed: {USE_SEEDS}", v.label);
    }
    let seeds = match overrides.iter().rev().find(|(k, _)| k == "seed") {
        Some((_, v)) => {
            vec![v.as_u64().with_context(|| format!("--set seed: expected a seed (0, 1, ...), got {v:?}"))?]
        }
        None => exp.seeds.clone(),
    };
    if seeds.is_empty() {
        bail!("seeds: expected at least one seed");
    }
    Ok(seeds)
}

/// Every run of the experiment, with `overrides` (from `--set`) applied last, for all runs.
pub fn plan(exp: &ExperimentFile, overrides: &[(String, Value)]) -> Result<Vec<SweepRun>> {
    let seeds = seeds(exp, overrides)?;
    let overrides: Vec<(String, Value)> = overrides.iter().filter(|(k, _)| k != "seed").cloned().collect();
    let variants: Vec<Point> = exp
        .sweep
        .variants
        .iter()
        .map(|v| Point {
            label: v.label.clone(),
            assignments: v.set.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            paper: v.paper.clone(),
        })
        .collect();
    // Variants and a grid combine: every variant at every grid point.
    let grid = grid_points(exp);
    let points: Vec<Point> = if variants.is_empty() {
        grid
    } else {
        variants
            .iter()
            .flat_map(|v| {
                grid.iter().map(move |g| Point {
                    label: if g.label.is_empty() { v.label.clone() } else { format!("{},{}", v.label, g.label) },
                    assignments: v.assignments.iter().chain(&g.assignments).cloned().collect(),
                    paper: v.paper.clone(),
                })
            })
            .collect()
    };
    let mut runs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for point in &points {
        let label = if point.label.is_empty() { "base".to_string() } else { sanitise(&point.label) };
        if !seen.insert(label.clone()) {
            bail!("sweep: two sweep points share the label '{label}'");
        }
        for &seed in &seeds {
            let mut tree = exp.base.clone();
            let assignments: Vec<(String, Value)> = point.assignments.iter().chain(&overrides).cloned().collect();
            apply_assignments(&mut tree, &assignments).with_context(|| format!("sweep point '{label}'"))?;
            set_dotted(&mut tree, "seed", Value::from(seed))?;
            runs.push(SweepRun {
                run_id: format!("{label}_s{seed}"),
                label: label.clone(),
                seed,
                paper: point.paper.clone(),
                run: tree,
            });
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp(text: &str) -> ExperimentFile {
        yaml_serde::from_str(text).unwrap()
    }

    #[test]
    fn grid_times_seeds_gives_stable_labels() {
        let e = exp("base: {model: {name: sknet29}}\nseeds: [0, 1]\nsweep:\n  grid:\n    recipe.lr: [0.1, 0.05]\n");
        let runs = plan(&e, &[]).unwrap();
        let ids: Vec<_> = runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["lr=0.1_s0", "lr=0.1_s1", "lr=0.05_s0", "lr=0.05_s1"]);
        assert_eq!(runs[2].run["recipe"]["lr"], Value::from(0.05));
        assert_eq!(runs[3].run["seed"], Value::from(1));
    }

    #[test]
    fn variants_apply_their_assignments_and_overrides_come_last() {
        let e = exp("base: {recipe: {epochs: 9}}\nsweep:\n  variants:\n    - {label: a, set: {recipe.epochs: 3}}\n    - {label: b}\n");
        let over = vec![("recipe.epochs".to_string(), Value::from(1))];
        let runs = plan(&e, &over).unwrap();
        assert_eq!(runs.len(), 2);
        assert!(runs.iter().all(|r| r.run["recipe"]["epochs"] == 1));
        let no_over = plan(&e, &[]).unwrap();
        assert_eq!(no_over[0].run["recipe"]["epochs"], Value::from(3));
        assert_eq!(no_over[1].run["recipe"]["epochs"], Value::from(9));
    }

    #[test]
    fn spec_fields_are_reachable_by_dotted_keys_on_the_whole_spec() {
        let e = exp("base: {model: {name: sknet29}}\nsweep:\n  grid:\n    model.sk.paths[1].kernel: [1, 5]\n");
        let runs = plan(&e, &[]).unwrap();
        assert_eq!(runs[1].run_id, "kernel=5_s0");
        let sk = &runs[1].run["model"]["overrides"]["sk"];
        assert_eq!(sk["paths"][1]["kernel"], Value::from(5));
        assert_eq!(sk["paths"][0]["kernel"], Value::from(3));
        // The class count stays free to follow the data.
        assert!(runs[1].run["model"]["overrides"].get("num_classes").is_none());
        let bad = exp("base: {model: {name: sknet29}}\nsweep:\n  grid:\n    model.sk.paths[5].kernel: [1]\n");
        assert!(format!("{:#}", plan(&bad, &[]).unwrap_err()).contains("out of range"));
    }

    #[test]
    fn duplicate_labels_are_rejected() {
        let e = exp("base: {}\nsweep:\n  variants:\n    - {label: a}\n    - {label: a}\n");
        assert!(plan(&e, &[]).unwrap_err().to_string().contains("share the label 'a'"));
    }
}
