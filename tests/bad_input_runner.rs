//! The experiment runner (`sk-exp run`) on mistaken or changed input: a finished run is reused only when it
//! is the run asked for, seeds are swept through `seeds:`, analyses and values that training would refuse
//! are refused before anything trains, failures make the exit status, names stay under `--results`, paper
//! rows exist, and concurrent writers of one file never collide on its temporary name.
mod common;

use sk_exp::experiment::load::{load, ExperimentOptions};
use sk_exp::experiment::runner;
use sk_exp::experiment::store::ExperimentDir;
use sk_exp::util::fs::write_atomic;
use std::path::{Path, PathBuf};

/// One run of the tiny SKNet on 16x16 synthetic images, 1 epoch on 32 images; `extra` is added to the file
/// (more top-level keys), `base_extra` to its `base:` section.
fn tiny(extra: &str, base_extra: &str) -> String {
    let rest = format!("seeds: [0]\n{extra}");
    common::TinyExperiment { base_extra, rest: &rest, ..Default::default() }.yaml()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load_err(file: &Path, opts: &ExperimentOptions) -> String {
    format!("{:#}", load(file, opts).err().expect("the experiment is refused"))
}

#[test]
fn a_finished_run_is_reused_only_with_the_same_settings() {
    let dir = common::fresh_dir("bad_input_runner/changed");
    let file = write(&dir, "tiny.yaml", &tiny("", ""));
    let opts = common::experiment_options(&dir.join("results"));
    let first = runner::run(&load(&file, &opts).unwrap(), &opts).unwrap();
    assert_eq!(first.trained, vec!["base_s0"]);

    // The same experiment again: the finished run is reused.
    let again = runner::run(&load(&file, &opts).unwrap(), &opts).unwrap();
    assert_eq!(again.skipped, vec!["base_s0"], "{again:?}");

    // More epochs, or another learning rate: the finished run is not the run asked for.
    let more = write(&dir, "more.yaml", &tiny("", "").replace("epochs: 1", "epochs: 2"));
    let err = format!("{:#}", runner::run(&load(&more, &opts).unwrap(), &opts).unwrap_err());
    assert!(err.contains("base_s0") && err.contains("'recipe.epochs' is 1 in the finished run but 2 now"), "{err}");
    assert!(
        err.contains("--results") && err.contains(&dir.join("results/tiny/base_s0").display().to_string()),
        "{err}"
    );
    let mut lr = common::experiment_options(&dir.join("results"));
    lr.overrides = vec![("recipe.lr".into(), 0.3.into())];
    let err = format!("{:#}", runner::run(&load(&file, &lr).unwrap(), &lr).unwrap_err());
    assert!(err.contains("'recipe.lr' is 0.1 in the finished run but 0.3 now"), "{err}");
    // Nothing was recorded over the finished run.
    let rows = ExperimentDir { root: dir.join("results/tiny") }.results().unwrap();
    assert_eq!((rows.len(), rows[0].epochs), (1, Some(1)));

    // Removing the run folder (as the message says) trains the new run.
    std::fs::remove_dir_all(dir.join("results/tiny/base_s0")).unwrap();
    let retrained = runner::run(&load(&more, &opts).unwrap(), &opts).unwrap();
    assert_eq!(retrained.trained, vec!["base_s0"], "{retrained:?}");
    let rows = ExperimentDir { root: dir.join("results/tiny") }.results().unwrap();
    assert_eq!((rows.len(), rows[0].epochs), (1, Some(2)));
}

#[test]
fn seeds_are_swept_by_seeds_and_set_seed_picks_one() {
    let dir = common::fresh_dir("bad_input_runner/seeds");
    let opts = common::experiment_options(&dir.join("results"));
    let grid = write(&dir, "grid.yaml", &tiny("sweep: {grid: {seed: [1, 2]}}\n", ""));
    let err = load_err(&grid, &opts);
    assert!(err.contains("seed") && err.contains("seeds:"), "{err}");
    let variant = write(&dir, "variant.yaml", &tiny("sweep: {variants: [{label: a, set: {seed: 3}}]}\n", ""));
    assert!(load_err(&variant, &opts).contains("seeds:"));
    let in_base = write(&dir, "base.yaml", &tiny("", "  seed: 4\n"));
    assert!(load_err(&in_base, &opts).contains("seeds:"));

    // --set seed=5: every sweep point with seed 5, in its own folder.
    let file = write(&dir, "tiny.yaml", &tiny("", ""));
    let mut five = common::experiment_options(&dir.join("results"));
    five.overrides = vec![("seed".into(), 5.into())];
    let exp = load(&file, &five).unwrap();
    let runs: Vec<_> = exp.runs.iter().map(|r| (r.run_id.as_str(), r.seed, r.run.seed)).collect();
    assert_eq!(runs, [("base_s5", 5, 5)]);
    assert!(exp.runs[0].run.out_dir.ends_with("tiny/base_s5"));
}

#[test]
fn an_attention_analysis_needs_sk_units_before_anything_trains() {
    let dir = common::fresh_dir("bad_input_runner/attention");
    let opts = common::experiment_options(&dir.join("results"));
    let text = tiny("analysis: {attention: {scales: [1.0, 1.5]}}\n", "")
        .replace(&format!("name: {}", common::TINY_BASE), "name: resnext29_16x32d")
        .replace(&common::tiny_flow(&[("input_size", "16")]), "{input_size: 16, blocks: [1, 1, 1]}");
    let file = write(&dir, "plain.yaml", &text);
    let err = load_err(&file, &opts);
    assert!(err.contains("base_s0") && err.contains("resnext29_16x32d") && err.contains("SK units"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(!dir.join("results/tiny").exists(), "nothing was created");
}

#[test]
fn values_that_training_would_refuse_are_found_by_dry_run() {
    let dir = common::fresh_dir("bad_input_runner/values");
    let big = write(&dir, "big.yaml", &tiny("", "").replace("batch_size: 16", "batch_size: 64"));
    let out = common::sk_exp(["run", big.to_str().unwrap(), "--dry-run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a batch larger than the training set is refused");
    assert!(stderr.contains("base_s0") && stderr.contains("batch_size") && stderr.contains("32"), "{stderr}");

    let uneven = tiny("", "  devices: [cpu, cpu, cpu]\n");
    let out = common::sk_exp(["run", write(&dir, "uneven.yaml", &uneven).to_str().unwrap(), "--dry-run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("3"), "{stderr}");

    let fixed = tiny("", "").replace("input_size: 16", "input_size: 16, num_classes: 10");
    let out = common::sk_exp(["run", write(&dir, "classes.yaml", &fixed).to_str().unwrap(), "--dry-run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("num_classes"), "{stderr}");
}

#[test]
fn failed_runs_make_the_exit_status() {
    let dir = common::fresh_dir("bad_input_runner/exit");
    let text = tiny("", "").replace(
        "data: {kind: synthetic, train_size: 32, eval_size: 16, image_size: 16, classes: 4}",
        "data: {kind: cifar, root: /nonexistent/cifar-10-batches-bin}",
    );
    let file = write(&dir, "missing.yaml", &text);
    let results = dir.join("results");
    let run = || common::sk_exp(["run", file.to_str().unwrap(), "--quiet", "--results", results.to_str().unwrap()]);
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a failed run fails the command: {stderr}");
    assert!(stderr.contains("1 of 1 runs failed"), "{stderr}");
    // Kept as failed by the next invocation: still a failure.
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("1 of 1 runs failed"), "{stderr}");
}

#[test]
fn names_stay_under_results_and_paper_rows_exist() {
    let dir = common::fresh_dir("bad_input_runner/names");
    let opts = common::experiment_options(&dir.join("results"));
    let outside = dir.join("outside");
    let absolute =
        write(&dir, "abs.yaml", &tiny("", "").replace("name: tiny", &format!("name: {}", outside.display())));
    let err = load_err(&absolute, &opts);
    assert!(err.contains("name") && err.contains(&outside.display().to_string()), "{err}");
    let up = write(&dir, "up.yaml", &tiny("", "").replace("name: tiny", "name: ../escaped"));
    assert!(load_err(&up, &opts).contains("../escaped"));

    let paper = "sweep: {variants: [{label: a, paper: {table: '3', model: NoSuchNet-99}}]}\n";
    let err = load_err(&write(&dir, "paper.yaml", &tiny(paper, "")), &opts);
    assert!(err.contains("NoSuchNet-99") && err.contains("paper"), "{err}");
}

#[test]
fn concurrent_atomic_writes_of_one_file_do_not_collide() {
    let dir = common::fresh_dir("bad_input_runner/atomic");
    let path = dir.join("summary.md");
    let writers: Vec<_> = (0..6)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                (0..150).try_for_each(|i| write_atomic(&path, format!("writer {t} write {i}\n").as_bytes()))
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap().unwrap();
    }
    assert!(std::fs::read_to_string(&path).unwrap().starts_with("writer "));
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "no temporary file is left behind: {left:?}");
}
