//! The experiment runner end to end on a tiny model and the synthetic data, and the shipped experiment
//! files: they parse, every run type-checks, and the runs with a paper row match its complexity.
mod common;

use sk_exp::experiment::dry_run::dry_run;
use sk_exp::experiment::load::{load, ExperimentOptions};
use sk_exp::experiment::pipeline::failed_row;
use sk_exp::experiment::runner;
use sk_exp::experiment::store::ExperimentDir;
use sk_exp::experiment::summary::summarise;
use sk_exp::models::complexity::{self, gmacs_text};
use sk_exp::models::registry::{self, Entry, Quantity};
use sk_exp::models::ModelSpec;
use sk_exp::paper::{PaperRef, PaperRow};
use std::path::{Path, PathBuf};

/// Two variants of the tiny SKNet on 16x16 images (and one whose data is missing), 2 seeds, 2 epochs on 64
/// images.
fn tiny() -> String {
    let rest = "seeds: [0, 1]
sweep:
  variants:
    - label: path2_1x1
    - label: path2_3x3
      set:
        model.sk.paths[1].kernel: 3
    - label: no_data
      set: {data: {kind: cifar, root: /nonexistent/cifar-10-batches-bin}}
";
    common::TinyExperiment { train_size: 64, epochs: 2, rest, ..Default::default() }.yaml()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn runs_record_failures_skip_finished_runs_and_summarise() {
    // Trains in this process: seeded draws from torch's generator, one test at a time.
    let _training = common::torch_rng();
    let dir = common::fresh_dir("experiments/tiny");
    let file = write(&dir, "tiny.yaml", &tiny());
    let opts = common::experiment_options(&dir.join("results"));
    let exp = load(&file, &opts).unwrap();
    assert_eq!(exp.runs.len(), 6);

    let first = runner::run(&exp, &opts).unwrap();
    assert_eq!(first.trained.len(), 4, "{first:?}");
    assert_eq!(first.failed, vec!["no_data_s0", "no_data_s1"]);
    let store = ExperimentDir { root: dir.join("results/tiny") };
    let results = store.results().unwrap();
    assert_eq!(results.len(), 6);
    let failed = results.iter().find(|r| r.label == "no_data").unwrap();
    assert!(failed.status.starts_with("failed:") && failed.status.contains("/nonexistent"), "{}", failed.status);
    let ok = results.iter().find(|r| r.label == "path2_3x3" && r.seed == 1).unwrap();
    assert_eq!(ok.epochs, Some(2));
    assert!(ok.top1_err.is_some_and(|e| (0.0..=100.0).contains(&e)));
    // Each run folder holds its resolved run (class count bound to the data), metrics, checkpoint and log.
    let run_dir = store.run_dir("path2_3x3_s1");
    for path in [run_dir.run_file(), run_dir.metrics_file(), run_dir.weights_file(), run_dir.log_file()] {
        assert!(path.exists(), "{} missing", path.display());
    }
    let run = run_dir.read_run().unwrap();
    let sk = run.model.spec.sk().unwrap();
    assert_eq!((sk.paths[1].kernel, run.model.spec.num_classes()), (3, 4));

    // A second invocation trains nothing: finished runs are skipped, failed ones kept as failed.
    let again = runner::run(&exp, &opts).unwrap();
    assert!(again.trained.is_empty() && again.failed.is_empty(), "{again:?}");
    assert_eq!(again.skipped.len(), 6);

    let md = summarise(&exp, &opts.results_root).unwrap();
    assert!(md.contains("| path2_1x1 |") && md.contains("| path2_3x3 |"), "{md}");
    assert!(md.contains("no_data seed 0: failed"), "{md}");
    assert!(dir.join("results/tiny/summary.csv").exists() && dir.join("results/tiny/summary.png").exists());
}

/// An experiment `name` of the tiny SKNet (one epoch on 16x16 synthetic images) with these seeds and
/// variants (YAML list entries).
fn tiny_sharing(name: &str, seeds: &str, variants: &str) -> String {
    let rest = format!("seeds: {seeds}\nsweep:\n  variants:\n{variants}");
    common::TinyExperiment { name, rest: &rest, ..Default::default() }.yaml()
}

/// metrics.csv's bytes and modification time: unchanged when the run was not trained again.
fn metrics_stamp(dir: &Path) -> (Vec<u8>, std::time::SystemTime) {
    let path = dir.join("metrics.csv");
    (std::fs::read(&path).unwrap(), std::fs::metadata(&path).unwrap().modified().unwrap())
}

#[test]
fn a_run_finished_in_another_experiment_is_reused_not_trained_again() {
    // Trains in this process: seeded draws from torch's generator, one test at a time.
    let _training = common::torch_rng();
    let dir = common::fresh_dir("experiments/reuse");
    let results = dir.join("results");
    let k3 = "      set:\n        model.sk.paths[1].kernel: 3\n";
    let first =
        write(&dir, "first.yaml", &tiny_sharing("first", "[0]", &format!("    - label: k1\n    - label: k3\n{k3}")));
    let opts = common::experiment_options(&results);
    assert_eq!(runner::run(&load(&first, &opts).unwrap(), &opts).unwrap().trained, ["k1_s0", "k3_s0"]);
    let trained = results.join("first/k3_s0");
    let stamp = metrics_stamp(&trained);

    // The second experiment names the same run otherwise; seed 1 and a changed learning rate are other runs.
    let variants = format!("    - label: same_k3\n{k3}    - label: lr\n{k3}        recipe.lr: 0.05\n");
    let second = write(&dir, "second.yaml", &tiny_sharing("second", "[0, 1]", &variants));
    // The dry run names the one run it would reuse, and nothing with --no-reuse.
    let run_second = |extra: &[&str]| {
        let (second, results) = (second.display().to_string(), results.display().to_string());
        common::sk_exp([&["run", second.as_str(), "--results", results.as_str()], extra].concat())
    };
    let plan = String::from_utf8(run_second(&["--dry-run"]).stdout).unwrap();
    assert!(plan.contains("would reuse") && plan.contains("  same_k3_s0 <- first/k3_s0\n"), "{plan}");
    assert_eq!(plan.matches(" <- ").count(), 1, "{plan}");
    let plan = String::from_utf8(run_second(&["--dry-run", "--no-reuse"]).stdout).unwrap();
    assert!(!plan.contains("would reuse"), "{plan}");
    let out = run_second(&["--quiet"]);
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("same_k3_s0: reusing finished run k3_s0 from experiment first (same configuration)"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("reusing").count(), 1, "{stderr}");
    assert!(stdout.contains("3 trained, 1 reused"), "{stdout}");
    // Trained once: the first experiment's run is untouched, and the second's folder is a link to it.
    assert_eq!(metrics_stamp(&trained), stamp);
    let link = results.join("second/same_k3_s0");
    assert!(link.is_symlink() && link.canonicalize().unwrap() == trained.canonicalize().unwrap());
    let rows = ExperimentDir { root: results.join("second") }.results().unwrap();
    let reused = rows.iter().find(|r| r.run == "same_k3_s0").unwrap();
    let original = ExperimentDir { root: results.join("first") }.recorded("k3", 0).unwrap().unwrap();
    assert_eq!(
        (reused.reused_from.as_str(), reused.top1_err, &reused.config_id),
        ("first/k3_s0", original.top1_err, &original.config_id)
    );
    assert!(rows
        .iter()
        .filter(|r| r.run != "same_k3_s0")
        .all(|r| r.reused_from.is_empty() && r.config_id != original.config_id));
    // Both summaries list it; the second says where it came from.
    let md = std::fs::read_to_string(results.join("second/summary.md")).unwrap();
    assert!(md.contains("| same_k3 |") && md.contains("- same_k3 seed 0: first/k3_s0"), "{md}");
    assert!(summarise(&load(&first, &opts).unwrap(), &results).unwrap().contains("| k3 |"));
    // Run again, the reused run counts as finished (its run file names another model label, not a change).
    let again = runner::run(&load(&second, &opts).unwrap(), &opts).unwrap();
    assert_eq!((again.skipped.len(), again.trained.len(), again.reused.len()), (4, 0, 0), "{again:?}");

    // --no-reuse trains it again, in a folder of its own, to the same numbers (CPU training is deterministic).
    let third = write(&dir, "third.yaml", &tiny_sharing("third", "[0]", &format!("    - label: k3\n{k3}")));
    let no_reuse = ExperimentOptions { reuse: false, ..common::experiment_options(&results) };
    let outcome = runner::run(&load(&third, &no_reuse).unwrap(), &no_reuse).unwrap();
    assert_eq!((outcome.trained.as_slice(), outcome.reused.len()), (&["k3_s0".to_string()][..], 0));
    assert!(!results.join("third/k3_s0").is_symlink());
    assert_eq!(metrics_stamp(&trained), stamp);
    let retrained = ExperimentDir { root: results.join("third") }.recorded("k3", 0).unwrap().unwrap();
    assert_eq!(retrained.top1_err, original.top1_err);
}

#[test]
fn a_run_folder_changed_since_its_row_is_not_reused() {
    // Trains in this process: seeded draws from torch's generator, one test at a time.
    let _training = common::torch_rng();
    let dir = common::fresh_dir("experiments/reuse_stale");
    let results = dir.join("results");
    let opts = common::experiment_options(&results);
    let first = write(&dir, "first.yaml", &tiny_sharing("first", "[0]", "    - label: a\n"));
    assert_eq!(runner::run(&load(&first, &opts).unwrap(), &opts).unwrap().trained, ["a_s0"]);
    // The folder now holds another run (its run file says lr 0.05) than its row records.
    let run_file = results.join("first/a_s0/run.yaml");
    let text = std::fs::read_to_string(&run_file).unwrap();
    std::fs::write(&run_file, text.replacen("lr: 0.1", "lr: 0.05", 1)).unwrap();
    assert_ne!(std::fs::read_to_string(&run_file).unwrap(), text);
    let second = write(&dir, "second.yaml", &tiny_sharing("second", "[0]", "    - label: a\n"));
    let outcome = runner::run(&load(&second, &opts).unwrap(), &opts).unwrap();
    assert_eq!((outcome.trained.as_slice(), outcome.reused.len()), (&["a_s0".to_string()][..], 0));
}

#[test]
fn a_run_locked_by_another_runner_is_left_alone() {
    // Trains in this process: seeded draws from torch's generator, one test at a time.
    let _training = common::torch_rng();
    let dir = common::fresh_dir("experiments/locked");
    let file = write(&dir, "tiny.yaml", &tiny());
    let mut opts = common::experiment_options(&dir.join("results"));
    opts.only = Some("path2_1x1".into());
    let exp = load(&file, &opts).unwrap();
    let store = ExperimentDir::create(dir.join("results/tiny")).unwrap();
    let _held = store.run_dir("path2_1x1_s0").lock().unwrap().expect("the lock is free");
    let outcome = runner::run(&exp, &opts).unwrap();
    assert_eq!(outcome.locked, vec!["path2_1x1_s0"]);
    assert_eq!(outcome.trained, vec!["path2_1x1_s1"]);
}

#[test]
fn unknown_keys_are_reported_with_their_line_before_training() {
    let dir = common::fresh_dir("experiments/bad");
    let bad = tiny().replace("  workers: 0\n", "  workers: 0\n  epochz: 3\n");
    let file = write(&dir, "bad.yaml", &bad);
    let err =
        format!("{:#}", load(&file, &common::experiment_options(&dir)).err().expect("an unknown key is an error"));
    let line = bad.lines().position(|l| l.contains("epochz")).unwrap() + 1;
    assert!(err.contains("epochz") && err.contains(&format!("line {line}")), "{err}");
    let typo = tiny().replace("seeds: [0, 1]", "seeds: [zero]");
    let err = format!("{:#}", load(&write(&dir, "typo.yaml", &typo), &common::experiment_options(&dir)).err().unwrap());
    assert!(err.contains("seeds") && err.contains("line"), "{err}");
}

/// The largest relative gap accepted for paper row `p`: `tolerance`, or the bound of the gap known to the
/// registry entry that reproduces the row.
fn allowed_gap(p: &PaperRef, quantity: Quantity, tolerance: f64) -> f64 {
    let owner = registry::ENTRIES.iter().find(|e| e.paper.contains(p));
    owner.and_then(|e| e.known_gap(quantity)).map_or(tolerance, |gap| gap.bound)
}

/// Whether tests/model_counts.rs already makes this run's checks: a registry entry with the same spec and
/// the same paper figures, whose accepted gaps are the ones this row would get.
fn checked_by_model_counts(spec: &ModelSpec, p: &PaperRef, row: &PaperRow) -> bool {
    let gaps_agree = |e: &Entry| {
        [(Quantity::Params, 0.01), (Quantity::Gflops, 0.02)].into_iter().all(|(quantity, tolerance)| {
            e.known_gap(quantity).map_or(tolerance, |gap| gap.bound) == allowed_gap(p, quantity, tolerance)
        })
    };
    registry::ENTRIES.iter().any(|e| {
        e.paper_params_m() == row.params_m && e.paper_gflops() == row.gflops && gaps_agree(e) && (e.spec)() == *spec
    })
}

#[test]
fn shipped_experiments_type_check_and_match_the_papers_complexity() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let exp =
            load(&path, &common::experiment_options(Path::new("/tmp/unused"))).unwrap_or_else(|e| panic!("{e:#}"));
        let mut seen_labels = std::collections::HashSet::new();
        for run in &exp.runs {
            let Some(p) = &run.paper else { continue };
            if !seen_labels.insert(run.label.clone()) {
                continue;
            }
            let row = p.row().unwrap_or_else(|| panic!("{}: no paper row {:?}", path.display(), p));
            let spec = &run.run.model.spec;
            if checked_by_model_counts(spec, p, row) {
                checked += 1;
                continue;
            }
            let c = complexity::measure(spec).unwrap();
            if let Some(pp) = row.params_m {
                let d = (c.params as f64 / 1e6 - pp).abs() / pp;
                let allowed = allowed_gap(p, Quantity::Params, 0.01);
                assert!(d < allowed, "{} {}: {} params vs paper {pp}M", path.display(), run.label, c.params);
            }
            if let Some(pf) = row.gflops {
                let d = (c.paper_macs() as f64 / 1e9 - pf).abs() / pf;
                let allowed = allowed_gap(p, Quantity::Gflops, 0.02);
                assert!(d < allowed, "{} {}: {} MACs vs paper {pf} GFLOPs", path.display(), run.label, c.macs);
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} paper rows were checked");
}

/// The case: Table S1's `relu_none` is Table 4's `shufflenetv2_1.0x_sk`, so running both trains it
/// once; the other Table S1 variants are runs of their own.
#[test]
fn table_s1_relu_none_is_table4_shufflenet_sk() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let opts = common::experiment_options(Path::new("/tmp/unused"));
    let id = |file: &str, label: &str| {
        let exp = load(&dir.join(file), &opts).unwrap();
        let run = exp.runs.iter().find(|r| r.label == label && r.seed == 0).unwrap();
        run.run.config_id().unwrap()
    };
    let table4 = id("table4.yaml", "shufflenetv2_1.0x_sk");
    assert_eq!(id("table_s1.yaml", "relu_none"), table4);
    for other in ["relu_k3_only", "relu_k5_only", "relu_both"] {
        assert_ne!(id("table_s1.yaml", other), table4, "{other}");
    }
}

/// Table S1's rows give errors only: the dry run and the summary set the model's #params and MACs beside
/// Table 4's "ShuffleNetV2 1.0x + SK" figures, starred and named.
#[test]
fn table_s1_is_shown_beside_table_4s_size() {
    let dir = common::fresh_dir("experiments/s1_sizes");
    let mut opts = common::experiment_options(&dir.join("results"));
    opts.only = Some("relu_none".into());
    let exp = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/table_s1.yaml"), &opts).unwrap();
    let sk = complexity::measure(&registry::resolve("shufflenetv2_1.0x_sk", None).unwrap()).unwrap();
    let out = dry_run(&exp).unwrap();
    let line = out.lines().find(|l| l.starts_with("relu_none_s0")).unwrap();
    for figure in [sk.params.to_string(), gmacs_text(sk.paper_macs()), "2.63M*".into(), "0.14566*".into()] {
        assert!(line.contains(&figure), "{figure} missing from {line}");
    }
    assert!(out.contains("table 4 \"ShuffleNetV2 1.0x + SK\""), "{out}");

    let mut row = failed_row(&exp.runs[0], "").unwrap();
    (row.status, row.top1_err, row.params) = ("ok".into(), Some(28.4), Some(sk.params as u64));
    ExperimentDir::create(dir.join("results/table_s1")).unwrap().record(&row).unwrap();
    let md = summarise(&exp, &opts.results_root).unwrap();
    let line = md.lines().find(|l| l.starts_with("| relu_none |")).unwrap();
    for figure in ["2.64M", &gmacs_text(sk.paper_macs()), "2.63M\\*", "0.14566\\*", "28.36"] {
        assert!(line.contains(figure), "{figure} missing from {line}");
    }
}

/// A CIFAR-100 run's classifier has 100 outputs: the dry run counts it from the data's name (the data need
/// not be on this machine), not the model's default 10.
#[test]
fn dry_run_counts_the_cifar100_classifier() {
    let (model, overrides) = (common::TINY_BASE, common::tiny_flow(&[]));
    let text = format!(
        "name: c100\nbase:\n  model: {{name: {model}, overrides: {overrides}}}\n  data: {{kind: cifar, root: \
         /nonexistent/cifar-10-batches-py}}\nsweep:\n  variants:\n    - label: c10\n    - label: c100\n      \
         set: {{data.root: /nonexistent/cifar-100-python}}\n"
    );
    let dir = common::fresh_dir("experiments/c100");
    let exp = load(&write(&dir, "c100.yaml", &text), &common::experiment_options(&dir)).unwrap();
    let out = dry_run(&exp).unwrap();
    for (run, classes) in exp.runs.iter().zip([10, 100]) {
        let mut bound = run.run.clone();
        bound.bind_classes(classes).unwrap();
        let params = complexity::measure(&bound.model.spec).unwrap().params.to_string();
        let line = out.lines().find(|l| l.starts_with(&run.run_id)).unwrap();
        assert!(
            line.split_whitespace().nth(2) == Some(params.as_str()),
            "{classes} classes: {params} expected in {line}"
        );
    }
}
