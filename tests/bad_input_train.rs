//! Bad input to `sk-exp train` and its sibling commands (issue 14): each is a one-line error that names the
//! file or field and what was expected; never a panic, an abort or lost data.
mod common;

use sk_exp::train::run::ResolvedRun;
use sk_exp::train::run_dir::RunDir;
use sk_exp::train::schedule::Schedule;
use std::path::Path;
use std::process::Output;

/// `sk-exp train` of the tiny SKNet for one quick epoch into `out`; `extra` arguments add to or replace the
/// defaults.
fn train(out: &Path, extra: &[&str]) -> Output {
    let defaults = [
        ("--model", common::TINY_BASE),
        ("--data", "synthetic"),
        ("--epochs", "1"),
        ("--batch-size", "16"),
        ("--threads", "1"),
        ("--workers", "1"),
    ];
    let mut args = vec!["train".to_string(), "--quiet".into(), "--out".into(), out.display().to_string()];
    for (flag, value) in defaults.into_iter().filter(|(flag, _)| !extra.contains(flag)) {
        args.extend([flag.to_string(), value.to_string()]);
    }
    args.extend(common::tiny_set_args("model.overrides.", &[]));
    args.extend(["--set", "data.train_size=32", "--set", "data.eval_size=16"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    common::sk_exp(args)
}

/// The command failed with an error (exit status 1, no panic or abort) whose text holds every one of `words`.
fn assert_refused(out: &Output, words: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "expected an error, got {:?}:\n{stderr}", out.status);
    assert!(!stderr.contains("panicked"), "a panic, not an error:\n{stderr}");
    for word in words {
        assert!(stderr.contains(word), "the error does not name '{word}':\n{stderr}");
    }
    stderr
}

fn assert_success(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn checkpoint_folders_sk_exp_did_not_write_are_never_deleted() {
    for slot in ["checkpoint", "checkpoint.old", "checkpoint.tmp"] {
        let out = common::fresh_dir(&format!("bad_input_train/foreign/{slot}"));
        let mine = out.join(slot).join("model.pt");
        std::fs::create_dir_all(mine.parent().unwrap()).unwrap();
        std::fs::write(&mine, b"the user's own weights").unwrap();
        assert_refused(&train(&out, &[]), &[slot]);
        assert_eq!(std::fs::read(&mine).unwrap(), b"the user's own weights", "{slot}: the user's file is gone");
    }
}

#[test]
fn a_run_folder_sk_exp_wrote_is_trained_and_resumed_as_before() {
    let out = common::fresh_dir("bad_input_train/own");
    assert_success(&train(&out, &["--epochs", "2", "--stop-after", "1"]), "the first session");
    let checkpoint = RunDir::new(&out).load_checkpoint().unwrap().expect("a checkpoint");
    assert_eq!(checkpoint.state.epoch, 1);
    // An interrupted swap leaves a stale staging folder of our own: it is replaced, not refused.
    std::fs::create_dir_all(out.join("checkpoint.tmp")).unwrap();
    assert_success(&train(&out, &["--resume", "--epochs", "2"]), "the resumed session");
    assert_eq!(RunDir::new(&out).load_checkpoint().unwrap().unwrap().state.epoch, 2);
    assert!(!out.join("checkpoint.tmp").exists());
}

#[test]
fn a_second_training_into_a_locked_run_folder_is_refused() {
    let out = common::fresh_dir("bad_input_train/locked");
    let lock = RunDir::new(&out).lock().unwrap().expect("the lock is free");
    assert_refused(&train(&out, &[]), &["run.lock"]);
    assert!(!RunDir::new(&out).metrics_file().exists(), "the refused training wrote metrics");
    // A lock whose holder is gone (here: dropped; a dead process's is released by the kernel) is taken over.
    drop(lock);
    assert_success(&train(&out, &[]), "training once the lock is free");
}

fn resolve(recipe: &str) -> anyhow::Result<ResolvedRun> {
    ResolvedRun::from_tree(yaml_serde::from_str(&format!("model: {{name: sknet29}}\nrecipe: {recipe}")).unwrap())
}

#[test]
fn every_schedule_kind_rejects_unknown_keys() {
    for schedule in ["{kind: cosine, every: 3}", "{kind: constant, gamma: 0.5}", "{kind: step, every: 3, factor: 2}"] {
        let err = format!("{:#}", resolve(&format!("{{schedule: {schedule}}}")).unwrap_err());
        assert!(err.contains("unknown field"), "{schedule}: {err}");
    }
}

#[test]
fn a_presets_schedule_kind_can_be_changed_and_its_fields_kept_otherwise() {
    // cifar10's schedule is multistep with fractions: the kind-specific fields go with the kind.
    let cosine = resolve("{preset: cifar10, schedule: {kind: cosine}}").unwrap();
    assert_eq!(cosine.recipe.schedule, Schedule::Cosine {});
    let step = resolve("{preset: cifar10, schedule: {kind: step, every: 7}}").unwrap();
    assert_eq!(step.recipe.schedule, Schedule::Step { every: 7, gamma: 0.1 });
    // The same kind: the preset's other fields stay.
    let same = resolve("{preset: cifar10, schedule: {kind: multistep, gamma: 0.2}}").unwrap();
    assert_eq!(same.recipe.schedule, Schedule::Multistep { fractions: vec![0.5, 0.75], gamma: 0.2 });
    let no_kind = resolve("{preset: cifar10, schedule: {gamma: 0.3}}").unwrap();
    assert_eq!(no_kind.recipe.schedule, Schedule::Multistep { fractions: vec![0.5, 0.75], gamma: 0.3 });
    // A field of another kind is still an error, named.
    let err = format!("{:#}", resolve("{preset: cifar10, schedule: {kind: cosine, fractions: [0.5]}}").unwrap_err());
    assert!(err.contains("fractions"), "{err}");
}

#[test]
fn set_reaches_list_entries_of_the_spec_in_train_as_in_run() {
    // As `sk-exp run` does: the spec's whole tree is reachable, list entries included.
    let out = common::fresh_dir("bad_input_train/set_list");
    let good = train(&out, &["--set", "model.overrides.sk.paths[1].kernel=5"]);
    assert_success(&good, "--set with a list index");
    let run = RunDir::new(&out).read_run().unwrap();
    let spec = yaml_serde::to_value(&run.model.spec).unwrap();
    let paths = &spec["sk"]["paths"];
    assert_eq!(paths[1]["kernel"], yaml_serde::Value::from(5), "{paths:?}");
}

#[test]
fn npy_shapes_whose_byte_count_overflows_are_refused_naming_the_file() {
    let dir = common::fresh_dir("bad_input_train/npy");
    let path = dir.join("huge.npy");
    let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }".to_string();
    header.push_str(&" ".repeat((64 - (10 + header.len() + 1) % 64) % 64));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    std::fs::write(&path, bytes).unwrap();
    let err = format!("{:#}", sk_exp::interop::npy::read_f32(&path).unwrap_err());
    assert!(err.contains("huge.npy") && err.contains("too large"), "{err}");
}

#[test]
fn thread_counts_batches_and_sizes_out_of_range_are_errors_naming_the_flag() {
    let bench = |extra: &[&str]| {
        let mut args = vec!["bench", "fwd-bwd", "--model", "sknet29", "--iters", "1", "--warmup", "0"];
        args.extend_from_slice(extra);
        common::sk_exp(args)
    };
    assert_refused(&bench(&["--threads", "0"]), &["--threads"]);
    assert_refused(&bench(&["--threads=-2"]), &["--threads"]);
    assert_refused(&bench(&["--batch=-1"]), &["--batch"]);
    assert_refused(&bench(&["--size=-3"]), &["--size"]);
    assert_refused(&bench(&["--size", "100000"]), &["--size", "4096"]);
    assert_refused(&bench(&["--device", "cuda:99"]), &["cuda:99"]);
    let eval = common::sk_exp(["eval", "--model", "sknet29", "--data", "synthetic", "--threads", "0"]);
    assert_refused(&eval, &["--threads"]);
    let dir = common::fresh_dir("bad_input_train/flags");
    let attention = common::sk_exp([
        "attention",
        "--model",
        "sknet29",
        "--weights",
        dir.to_str().unwrap(),
        "--data",
        "synthetic",
        "--out",
        dir.to_str().unwrap(),
        "--threads=-1",
    ]);
    assert_refused(&attention, &["--threads"]);
}

#[test]
fn huge_run_fields_and_export_sizes_are_errors_naming_the_field() {
    let out = common::fresh_dir("bad_input_train/huge");
    assert_refused(&train(&out.join("workers"), &["--workers", "2000"]), &["workers", "1024"]);
    assert_refused(&train(&out.join("threads"), &["--threads", "0"]), &["threads"]);
    assert_refused(
        &train(&out.join("epochs"), &["--epochs", "18446744073709551615", "--stop-after", "1"]),
        &["recipe.epochs", "100000"],
    );
    // A run to export.
    let run = out.join("run");
    assert_success(&train(&run, &[]), "the run to export");
    let export = common::sk_exp(["export", "--run", run.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let export_huge = |size: &str| {
        common::sk_exp(["export", "--run", run.to_str().unwrap(), "--out", out.to_str().unwrap(), "--size", size])
    };
    assert_success(&export, "a valid export");
    assert_refused(&export_huge("100000"), &["--size", "4096"]);
    assert_refused(&export_huge("0"), &["--size"]);
}
