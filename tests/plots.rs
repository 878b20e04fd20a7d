//! Plots and the CSV readers behind them, on files written here in the formats training writes.
mod common;

use sk_exp::report::plots::{bars, cifar, curves, figure2};
use sk_exp::report::results::{find_results_files, read_results, read_run_dir};
use sk_exp::report::summary::{read_summary, summarise_results, write_summary};
use sk_exp::train::metrics::read_metrics;
use sk_exp::train::run::ResolvedRun;
use sk_exp::train::run_dir::RunDir;
use sk_exp::util::stats::mean_std;
use std::fs;
use std::path::{Path, PathBuf};

const METRICS_HEADER: &str =
    "epoch,lr,train_loss,train_top1_err,eval_loss,eval_top1_err,eval_top5_err,images_per_s,wall_s";
const RESULTS_HEADER: &str = "label,seed,model,params,macs,top1_err,top5_err,epochs,images_per_s,wall_s,status";
/// results.csv as the runner writes it today: the data set of each run in the last three columns.
const RESULTS_WITH_DATA: &str =
    "label,seed,model,params,macs,top1_err,top5_err,epochs,images_per_s,wall_s,status,data_kind,data_name,data_crop";

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// Checks both files of a figure: the PNG's size (and that it holds more than a blank canvas, which
/// compresses to a few kB), the SVG's size and the texts it must show.
fn check_figure(written: &[PathBuf], size: (u32, u32), texts: &[&str]) {
    assert_eq!(written.len(), 2);
    let (png, svg) = (&written[0], &written[1]);
    assert_eq!(png_size(png), size);
    assert!(fs::metadata(png).unwrap().len() > 20_000, "{} looks blank", png.display());
    let svg_text = fs::read_to_string(svg).unwrap();
    assert!(svg_text.contains(&format!(r#"width="{}" height="{}""#, size.0, size.1)), "{}", svg.display());
    for text in texts {
        let escaped = text.replace('&', "&amp;");
        assert!(svg_text.contains(&format!(">\n{escaped}\n<")), "{} lacks the text {text:?}", svg.display());
    }
}

fn write_run(dir: &Path, rows: &[(u32, f64, f64, f64, f64)], model: Option<&str>) {
    fs::create_dir_all(dir).unwrap();
    let mut csv = format!("{METRICS_HEADER}\n");
    for (epoch, train_loss, train_err, eval_loss, eval_err) in rows {
        csv += &format!(
            "{epoch},0.1,{train_loss},{train_err},{eval_loss},{eval_err},{},500.0,{}\n",
            eval_err / 3.0,
            epoch * 60
        );
    }
    let run = RunDir::new(dir);
    fs::write(run.metrics_file(), csv).unwrap();
    if let Some(model) = model {
        // A real run file with this model name (the curves read only the name).
        let mut resolved = ResolvedRun::from_tree(yaml_serde::from_str("{model: {name: sknet29}}").unwrap()).unwrap();
        resolved.model.name = model.to_string();
        run.write_run(&resolved).unwrap();
    }
}

fn results_csv(rows: &[&str]) -> String {
    format!("{RESULTS_HEADER}\n{}\n", rows.join("\n"))
}

#[test]
fn figure2_paper_only_draws_every_table_s2_model() {
    let families = figure2::paper_families();
    let names: Vec<&str> = families.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(names, ["ResNet", "DenseNet", "ResNeXt", "DPN", "SENet", "SKNet"]);
    let sknet = &families[5].1;
    assert_eq!(sknet.iter().map(|p| p.label.as_str()).collect::<Vec<_>>(), ["SKNet-26", "SKNet-50", "SKNet-101"]);
    assert_eq!((sknet[1].params_m, sknet[1].top1_err), (27.5, 20.79));
    let labels: Vec<String> = families.iter().flat_map(|(_, p)| p.iter().map(|p| p.label.clone())).collect();
    assert_eq!(labels.len(), 17);

    let written = figure2::plot_figure2(&[], &common::fresh_dir("plots/figure2").join("figure2")).unwrap();
    let mut texts: Vec<&str> = labels.iter().map(String::as_str).collect();
    texts.extend(&names);
    texts.push("#params (millions)");
    check_figure(&written, (1280, 860), &texts);
}

#[test]
fn figure2_adds_each_label_of_every_results_csv_as_a_cross() {
    let dir = common::fresh_dir("plots/figure2_measured");
    for (experiment, err) in [("table3", 21.0), ("ablation/deep", 22.0)] {
        let folder = dir.join(experiment);
        fs::create_dir_all(&folder).unwrap();
        let rows = [
            format!("baseline,0,SKNet-50,27479784,4470000000,{err},5.5,100,300,9000,ok,folder,imagenet,224"),
            format!("baseline,1,SKNet-50,27479784,4470000000,{},5.5,100,300,9000,ok,folder,in1k,224", err + 1.0),
            format!("{}-only,0,ResNeXt-50,25028904,4240000000,23.5,6.5,100,300,9000,ok,folder,x,224", &experiment[..5]),
        ];
        fs::write(folder.join("results.csv"), format!("{RESULTS_WITH_DATA}\n{}\n", rows.join("\n"))).unwrap();
    }
    assert_eq!(find_results_files(&dir).unwrap().len(), 2);
    let measured = figure2::measured_points(&dir).unwrap();
    assert!(measured.left_out.message().is_none(), "{:?}", measured.left_out);
    let points = &measured.panels[0];
    let find = |label: &str| points.iter().find(|p| p.label == label).unwrap_or_else(|| panic!("{label}: {points:?}"));
    // "baseline" is in both experiments, so it is named by its folder.
    assert_eq!(find("table3/baseline").top1_err, 21.5);
    assert_eq!(find("ablation/deep/baseline").top1_err, 22.5);
    assert!((find("table3/baseline").params_m - 27.479784).abs() < 1e-9);
    assert_eq!(find("table-only").top1_err, 23.5);
    assert_eq!(points.len(), 4);

    let written = figure2::plot_figure2(points, &dir.join("figure2")).unwrap();
    check_figure(
        &written,
        (1280, 860),
        &["table-only", "ablat-only", "table3/baseline", "ablation/deep/baseline", "your runs (mean)"],
    );
}

/// A results folder as three experiments leave it: the quickstart (synthetic), a CIFAR sweep (CIFAR-10 and
/// CIFAR-100) and ImageNet runs at 224 and at 320; plus an experiment whose results.csv predates the data
/// columns, its data set read from its run folder's run file (an image folder at 224).
fn mixed_results(dir: &Path) {
    let experiments = [
        ("quickstart", vec!["sknet_tiny,0,sknet_tiny,170000,1,62.5,20,3,900,30,ok,synthetic,synthetic,32"]),
        (
            "cifar",
            vec![
                "sknet29,0,sknet29,27700000,1,3.6,0.1,300,1,1,ok,cifar10,cifar-10-batches-bin,32",
                "sknet29,1,sknet29,27700000,1,3.8,0.1,300,1,1,ok,cifar10,cifar-10-batches-bin,32",
                "sknet29_c100,0,sknet29,27900000,1,17.9,4,300,1,1,ok,cifar100,cifar-100-binary,32",
                "coarse,0,sknet29,27800000,1,12.0,4,300,1,1,ok,cifar100_coarse,cifar-100-binary,32",
            ],
        ),
        (
            "imagenet",
            vec![
                "sknet50,0,sknet50,27479784,1,21.1,5.5,100,1,1,ok,folder,imagenet,224",
                "sknet50_320,0,sknet50,27479784,1,19.9,5.0,100,1,1,ok,folder,imagenet,320",
                "broken,0,sknet50,,,,,,,,failed: out of memory,folder,imagenet,224",
            ],
        ),
    ];
    for (name, rows) in experiments {
        fs::create_dir_all(dir.join(name)).unwrap();
        fs::write(dir.join(name).join("results.csv"), format!("{RESULTS_WITH_DATA}\n{}\n", rows.join("\n"))).unwrap();
    }
    let old = dir.join("old");
    fs::create_dir_all(&old).unwrap();
    let rows = ["resnext50,0,resnext50,25028904,1,22.0,6,100,1,1,ok", "lost,0,resnext50,25028904,1,30.0,6,1,1,1,ok"];
    fs::write(old.join("results.csv"), results_csv(&rows)).unwrap();
    let run = "{model: {name: resnext50_32x4d}, data: {kind: folder, root: imagenet}, seed: 0}";
    let run = ResolvedRun::from_tree(yaml_serde::from_str(run).unwrap()).unwrap();
    let run_dir = RunDir::new(old.join("resnext50_s0"));
    run_dir.create().unwrap();
    run_dir.write_run(&run).unwrap();
}

#[test]
fn figure2_shows_only_imagenet_like_runs_and_counts_the_others() {
    let dir = common::fresh_dir("plots/figure2_mixed");
    mixed_results(&dir);
    let measured = figure2::measured_points(&dir).unwrap();
    let labels: Vec<&str> = measured.panels[0].iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels, ["sknet50", "resnext50"]);
    let message = measured.left_out.message().unwrap();
    let unknown =
        "of unknown data set (results.csv from an older sk-exp without data_kind, and no run folder beside it)";
    let expected = format!(
        "left out 7 runs: 3 CIFAR (see `sk-exp plot cifar`), 1 CIFAR-100 with coarse labels, 1 image folder at crop \
         320, 1 {unknown}, 1 synthetic"
    );
    assert_eq!(message, expected);

    // The command prints the same count and draws only those two crosses.
    let stem = dir.join("out/figure2");
    let out = plot_results("figure2", &dir, &stem);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success() && stdout.contains(&message), "{stdout}");
    let svg = fs::read_to_string(stem.with_extension("svg")).unwrap();
    for (label, shown) in
        [("sknet50", true), ("resnext50", true), ("sknet29", false), ("sknet_tiny", false), ("sknet50_320", false)]
    {
        assert_eq!(svg.contains(&format!(">\n{label}\n<")), shown, "{label}");
    }
}

#[test]
fn plot_cifar_draws_table5_and_the_cifar_runs_on_their_data_set() {
    let dir = common::fresh_dir("plots/cifar_mixed");
    mixed_results(&dir);
    let measured = cifar::measured_points(&dir).unwrap();
    let panel = |i: usize| measured.panels[i].iter().map(|p| (p.label.clone(), p.top1_err)).collect::<Vec<_>>();
    assert_eq!(panel(0), [("sknet29".to_string(), 3.7)]);
    assert_eq!(panel(1), [("sknet29_c100".to_string(), 17.9)]);
    let message = measured.left_out.message().unwrap();
    assert!(
        message.starts_with("left out 6 runs: ") && message.contains("2 ImageNet-like (see `sk-exp plot figure2`)"),
        "{message}"
    );

    let stem = dir.join("out/cifar");
    let out = plot_results("cifar", &dir, &stem);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success() && stdout.contains(&message), "{stdout}");
    let written = [stem.with_extension("png"), stem.with_extension("svg")];
    let paper = ["ResNeXt-29, 16x32d", "ResNeXt-29, 8x64d", "ResNeXt-29, 16x64d", "SENet-29", "SKNet-29"];
    let texts: Vec<&str> =
        paper.iter().copied().chain(["CIFAR-10", "CIFAR-100", "sknet29", "sknet29_c100", "your runs (mean)"]).collect();
    check_figure(&written, (1600, 760), &texts);
}

#[test]
fn figure2_without_results_says_where_it_looked() {
    let dir = common::fresh_dir("plots/figure2_empty");
    let err = figure2::measured_points(&dir).unwrap_err().to_string();
    assert!(err.contains("no results.csv under") && err.contains("figure2_empty"), "{err}");
}

#[test]
fn curves_overlay_two_runs() {
    let dir = common::fresh_dir("plots/curves");
    let (a, b) = (dir.join("run_a"), dir.join("run_b"));
    write_run(&a, &[(1, 4.0, 80.0, 3.8, 75.0), (2, 3.0, 60.0, 3.1, 62.0), (3, 2.5, 50.0, 2.9, 55.0)], Some("SKNet-50"));
    write_run(&b, &[(1, 4.2, 82.0, 4.0, 78.0), (2, 3.3, 65.0, 3.4, 66.0), (3, 2.8, 55.0, 3.2, 60.0)], None);
    let runs = [read_run_dir(&a).unwrap(), read_run_dir(&b).unwrap()];
    assert_eq!((runs[0].label.as_str(), runs[0].model.as_deref()), ("run_a", Some("SKNet-50")));
    assert_eq!((runs[1].label.as_str(), runs[1].model.as_deref()), ("run_b", None));
    assert_eq!(runs[0].epochs[2].eval_top1_err, Some(55.0));

    let written = curves::plot_curves(&runs, &dir.join("curves")).unwrap();
    check_figure(&written, (1500, 680), &["run_a (SKNet-50)", "run_b", "train", "eval", "loss", "top-1 error (%)"]);

    // A run whose loss went NaN: its finite part is drawn and the legend says where it stopped.
    let c = dir.join("run_c");
    write_run(&c, &[(1, 4.0, 80.0, 3.8, 75.0), (2, f64::NAN, 90.0, f64::NAN, 90.0)], None);
    let written = curves::plot_curves(&[read_run_dir(&c).unwrap()], &dir.join("diverged")).unwrap();
    check_figure(&written, (1500, 680), &["run_c, diverged at epoch 2", "Training curves: run_c"]);
}

#[test]
fn metrics_with_skipped_evaluations_read_as_missing() {
    let dir = common::fresh_dir("plots/metrics_gaps");
    let path = dir.join("metrics.csv");
    fs::write(
        &path,
        format!("{METRICS_HEADER}\n1,0.1,2.0,50.0,,,,100.0,10.0\n2,0.1,1.5,40.0,1.6,42.0,12.0,100.0,20.0\n"),
    )
    .unwrap();
    let rows = read_metrics(&path).unwrap();
    assert_eq!((rows[0].eval_loss, rows[1].eval_loss), (None, Some(1.6)));
}

#[test]
fn mean_and_sample_std_of_a_known_example() {
    // 20, 21, 22.5: mean 63.5 / 3; squared deviations (49 + 1 + 64) / 36 = 19/6, over n - 1 = 2.
    let (mean, std) = mean_std(&[20.0, 21.0, 22.5]);
    assert!((mean - 21.166_666_666_666_668).abs() < 1e-12);
    assert!((std.unwrap() - (19.0f64 / 12.0).sqrt()).abs() < 1e-12);
    assert!((std.unwrap() - 1.258_305_739).abs() < 1e-9);
    assert_eq!(mean_std(&[28.5]), (28.5, None));
}

#[test]
fn summary_of_an_experiment_from_results_csv() {
    let dir = common::fresh_dir("plots/summary");
    let results = dir.join("results.csv");
    fs::write(
        &results,
        results_csv(&[
            "ReLU in both paths,0,sn2-sk,2630000,145660000,20.0,9.0,100,500,1000,ok",
            "no ReLU,0,sn2-sk,2630000,145660000,28.4,9.0,100,500,1000,ok",
            "ReLU in both paths,1,sn2-sk,2630000,145660000,21.0,9.0,100,500,1000,ok",
            "no ReLU,1,sn2-sk,,,,,3,,,failed: loss is NaN",
            "ReLU in both paths,2,sn2-sk,2630000,145660000,22.5,9.0,100,500,1000,ok",
            "never finished,0,sn2-sk,,,,,0,,,failed: out of memory",
        ]),
    )
    .unwrap();
    let rows = summarise_results(&read_results(&results).unwrap());
    assert_eq!(rows.len(), 2, "labels without a successful run are left out: {rows:?}");
    assert_eq!((rows[0].label.as_str(), rows[0].n, rows[0].params), ("ReLU in both paths", 3, 2630000));
    assert!((rows[0].std_top1_err.unwrap() - (19.0f64 / 12.0).sqrt()).abs() < 1e-12);
    assert_eq!(
        (rows[1].label.as_str(), rows[1].n, rows[1].mean_top1_err, rows[1].std_top1_err),
        ("no ReLU", 1, 28.4, None)
    );

    let mut with_paper = rows.clone();
    with_paper[0].paper_top1_err = Some(28.49);
    let summary = dir.join("summary.csv");
    write_summary(&summary, &with_paper).unwrap();
    assert_eq!(read_summary(&summary).unwrap(), with_paper);
    assert!(fs::read_to_string(&summary)
        .unwrap()
        .starts_with("label,model,params,n,mean_top1_err,std_top1_err,paper_top1_err\n"));

    let written = bars::plot_summary(&with_paper, "Table S1", &dir.join("summary")).unwrap();
    check_figure(&written, (900, 720), &["ReLU in both paths", "no ReLU", "21.17 ± 1.26", "n = 3", "28.40", "paper"]);
}

#[test]
fn cli_plot_summary_writes_into_the_experiment_folder() {
    let dir = common::fresh_dir("plots/cli_summary");
    fs::write(
        dir.join("results.csv"),
        results_csv(&["a,0,m,1000,1000,10.0,1.0,1,1,1,ok", "b,0,m,1000,1000,12.0,1.0,1,1,1,ok"]),
    )
    .unwrap();
    let out = common::sk_exp(["plot", "summary", &dir.display().to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(png_size(&dir.join("summary.png")), (900, 720));
    assert!(dir.join("summary.svg").exists());
}

#[test]
fn cli_reports_a_malformed_results_csv_in_one_line() {
    let dir = common::fresh_dir("plots/cli_malformed");
    fs::write(dir.join("results.csv"), results_csv(&["a,0,m,1000,1000,ten,1.0,1,1,1,ok"])).unwrap();
    let out = common::sk_exp(["plot", "summary", &dir.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1, "{stderr}");
    assert!(stderr.contains("results.csv line 2, column top1_err"), "{stderr}");
}

/// Writes `text` to a file named `name` and returns the reader's error message.
fn reader_error<T: std::fmt::Debug>(name: &str, text: &str, read: fn(&Path) -> anyhow::Result<T>) -> String {
    let path = common::fresh_dir(&format!("plots/malformed_{}", name.replace('.', "_"))).join(name);
    fs::write(&path, text).unwrap();
    let err = format!("{:#}", read(&path).unwrap_err());
    assert!(err.contains(&path.display().to_string()), "error does not name the file: {err}");
    err
}

#[test]
fn readers_reject_malformed_files_naming_file_and_line() {
    let err = reader_error(
        "metrics.csv",
        &format!("{METRICS_HEADER}\n1,0.1,2.0,50,2.1,51,20,100,10\n2,0.1,abc,40,2,45,15,100,20\n"),
        read_metrics,
    );
    assert!(err.contains("line 3, column train_loss"), "{err}");

    let err = reader_error("metrics.csv", "epoch,lr,train_loss\n1,0.1,2.0\n", read_metrics);
    assert!(err.contains("missing column(s) train_top1_err,eval_loss"), "{err}");

    let err = reader_error("results.csv", &results_csv(&["a,0,m,1000,1000,10.0,1.0,1,1,1"]), read_results);
    assert!(err.contains("line 2: 10 fields, expected 11"), "{err}");

    let err = reader_error("results.csv", &results_csv(&["a,0,m,1000,1000,10.0,1.0,1,1,1,done"]), read_results);
    assert!(err.contains("line 2: status \"done\""), "{err}");

    let err = reader_error("results.csv", &results_csv(&["a,0,m,1000,1000,,1.0,1,1,1,ok"]), read_results);
    assert!(err.contains("line 2: status ok but top1_err or params is empty"), "{err}");

    let err = reader_error("results.csv", &results_csv(&["a,-1,m,1000,1000,10.0,1.0,1,1,1,ok"]), read_results);
    assert!(err.contains("line 2, column seed"), "{err}");

    let missing = common::fresh_dir("plots/missing").join("results.csv");
    let err = format!("{:#}", read_results(&missing).unwrap_err());
    assert!(err.starts_with("cannot read ") && err.contains("missing/results.csv"), "{err}");
}

#[test]
fn run_dir_with_bad_config_names_it() {
    let dir = common::fresh_dir("plots/bad_config").join("run");
    write_run(&dir, &[(1, 2.0, 50.0, 2.1, 51.0)], None);
    fs::write(RunDir::new(&dir).run_file(), "model: [unclosed\n").unwrap();
    let err = format!("{:#}", read_run_dir(&dir).unwrap_err());
    assert!(err.contains("run.yaml: not valid YAML"), "{err}");
}

/// `sk-exp plot KIND --results DIR --out STEM`.
fn plot_results(kind: &str, results: &Path, stem: &Path) -> std::process::Output {
    common::sk_exp(["plot", kind, "--results", &results.display().to_string(), "--out", &stem.display().to_string()])
}
