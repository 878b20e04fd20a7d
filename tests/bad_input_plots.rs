//! `sk-exp plot` on inputs no training writes but a person may hand it: values near the ends of f64, values
//! that are not finite, and results folders with symlinks back into themselves. Each command must end in a
//! figure or a one-line error naming the file: never hang (a deadline kills it), never panic.
mod common;

use sk_exp::report::results::find_results_files;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const METRICS_HEADER: &str =
    "epoch,lr,train_loss,train_top1_err,eval_loss,eval_top1_err,eval_top5_err,images_per_s,wall_s";
const RESULTS_HEADER: &str =
    "label,seed,model,params,macs,top1_err,top5_err,epochs,images_per_s,wall_s,status,data_kind,data_name,data_crop";
/// The data columns of a run on an image folder at the paper's crop, which Figure 2 shows.
const IMAGENET: &str = ",folder,imagenet,224";
const SUMMARY_HEADER: &str = "label,model,params,n,mean_top1_err,std_top1_err,paper_top1_err";

/// A plot of a few points takes well under a second; a minute means it does not end.
const DEADLINE: Duration = Duration::from_secs(60);

/// What `sk-exp` printed and how it ended.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `sk-exp ARGS`, failing the test (and killing the child) if it has not ended within [`DEADLINE`].
fn sk_exp_within_deadline(args: &[&str]) -> Ran {
    let out = common::output_within(Command::new(env!("CARGO_BIN_EXE_sk-exp")).args(args), DEADLINE);
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    Ran { code: out.status.code(), stdout: text(out.stdout), stderr: text(out.stderr) }
}

/// The command succeeded and wrote `STEM.png` and `STEM.svg`.
fn assert_drew(ran: &Ran, stem: &Path) {
    assert_eq!(ran.code, Some(0), "stderr: {}", ran.stderr);
    for ext in ["png", "svg"] {
        let path = stem.with_extension(ext);
        assert!(path.exists() && fs::metadata(&path).unwrap().len() > 0, "{} not written", path.display());
        assert!(ran.stdout.contains(&format!("wrote {}", path.display())), "{}", ran.stdout);
    }
}

fn write_results(dir: &Path, rows: &[&str]) {
    fs::create_dir_all(dir).unwrap();
    let rows: Vec<String> = rows.iter().map(|row| format!("{row}{IMAGENET}")).collect();
    fs::write(dir.join("results.csv"), format!("{RESULTS_HEADER}\n{}\n", rows.join("\n"))).unwrap();
}

fn arg(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn summary_of_results_near_the_ends_of_f64_is_drawn() {
    let dir = common::fresh_dir("bad_input_plots/summary_huge");
    write_results(
        &dir,
        &["a,0,m,1000,1000,1e308,1.0,1,1,1,ok", "b,0,m,1000,1000,-1e308,1.0,1,1,1,ok", "c,0,m,1000,1000,20,1,1,1,1,ok"],
    );
    let ran = sk_exp_within_deadline(&["plot", "summary", &arg(&dir)]);
    assert_drew(&ran, &dir.join("summary"));
}

#[test]
fn summary_csv_near_the_ends_of_f64_is_drawn() {
    let dir = common::fresh_dir("bad_input_plots/summary_csv_huge");
    let rows = [
        "a,m,1000,2,1e308,1.7e308,-1.7e308",
        "b,m,1000,1,-1.7976931348623157e308,,1.7976931348623157e308",
        "c,m,1000,1,5e-324,,",
    ];
    fs::write(dir.join("summary.csv"), format!("{SUMMARY_HEADER}\n{}\n", rows.join("\n"))).unwrap();
    let ran = sk_exp_within_deadline(&["plot", "summary", &arg(&dir)]);
    assert_drew(&ran, &dir.join("summary"));
}

/// Whether the SVG of `stem` shows `text` as a text of its own.
fn svg_shows(stem: &Path, text: &str) -> bool {
    fs::read_to_string(stem.with_extension("svg")).unwrap().contains(&format!(">\n{text}\n<"))
}

#[test]
fn summary_leaves_out_values_that_are_not_finite() {
    let dir = common::fresh_dir("bad_input_plots/summary_inf");
    write_results(
        &dir,
        &["a,0,m,1000,1000,inf,1.0,1,1,1,ok", "b,0,m,1000,1000,NaN,1.0,1,1,1,ok", "c,0,m,1000,1000,20,1,1,1,1,ok"],
    );
    let ran = sk_exp_within_deadline(&["plot", "summary", &arg(&dir)]);
    let stem = dir.join("summary");
    assert_drew(&ran, &stem);
    assert!(svg_shows(&stem, "c") && svg_shows(&stem, "20.00"), "the finite label is not drawn");
    assert!(!svg_shows(&stem, "a") && !svg_shows(&stem, "b"), "a label without a finite mean is drawn");

    // A finite mean keeps its bar; its std and paper figure, not finite, are left out.
    let dir = common::fresh_dir("bad_input_plots/summary_csv_nan");
    fs::write(dir.join("summary.csv"), format!("{SUMMARY_HEADER}\nc,m,1000,2,20,NaN,inf\n")).unwrap();
    let ran = sk_exp_within_deadline(&["plot", "summary", &arg(&dir)]);
    let stem = dir.join("summary");
    assert_drew(&ran, &stem);
    assert!(svg_shows(&stem, "20.00"), "the mean is not written alone");
    assert!(!svg_shows(&stem, "paper"), "an infinite paper figure is drawn");

    // Nothing finite at all: one line saying so.
    let dir = common::fresh_dir("bad_input_plots/summary_all_nan");
    write_results(&dir, &["a,0,m,1000,1000,NaN,1.0,1,1,1,ok"]);
    let ran = sk_exp_within_deadline(&["plot", "summary", &arg(&dir)]);
    assert_eq!(ran.code, Some(1), "stdout: {}\nstderr: {}", ran.stdout, ran.stderr);
    let stderr = ran.stderr.trim_end();
    assert!(stderr.starts_with("error: nothing to plot") && stderr.lines().count() == 1, "{stderr}");
}

#[test]
fn curves_near_the_ends_of_f64_are_drawn() {
    let dir = common::fresh_dir("bad_input_plots/curves_huge");
    let run = dir.join("run");
    fs::create_dir_all(&run).unwrap();
    let rows = [
        "1,0.1,1e308,50,-1e308,40,10,100,10",
        "2,0.1,2,1.7976931348623157e308,1,-1.7976931348623157e308,10,100,20",
        "3,0.1,1.5,1e-300,1e-300,30,10,100,30",
    ];
    fs::write(run.join("metrics.csv"), format!("{METRICS_HEADER}\n{}\n", rows.join("\n"))).unwrap();
    let stem = dir.join("curves");
    let ran = sk_exp_within_deadline(&["plot", "curves", &arg(&run), "--out", &arg(&stem)]);
    assert_drew(&ran, &stem);

    // One value far from the rest in relative terms: the axis spans a few ulps of 1e20.
    fs::write(run.join("metrics.csv"), format!("{METRICS_HEADER}\n1,0.1,1e20,1e20,1e20,1e20,1,1,1\n")).unwrap();
    let ran = sk_exp_within_deadline(&["plot", "curves", &arg(&run), "--out", &arg(&stem)]);
    assert_drew(&ran, &stem);
}

#[test]
fn figure2_with_results_near_the_ends_of_f64_is_drawn() {
    let dir = common::fresh_dir("bad_input_plots/figure2_huge");
    write_results(
        &dir.join("exp"),
        &[
            "a,0,m,18446744073709551615,1000,1e308,1.0,1,1,1,ok",
            "b,0,m,1000,1000,-1.7976931348623157e308,1.0,1,1,1,ok",
            "c,0,m,0,1000,20,1,1,1,1,ok",
            "d,0,m,1000,1000,inf,1,1,1,1,ok",
        ],
    );
    let stem = dir.join("figure2");
    let ran = sk_exp_within_deadline(&["plot", "figure2", "--results", &arg(&dir), "--out", &arg(&stem)]);
    assert_drew(&ran, &stem);
    assert!(svg_shows(&stem, "a") && svg_shows(&stem, "c"), "a finite point is not labelled");
    assert!(!svg_shows(&stem, "d"), "a point without a finite top-1 error is drawn");
}

#[test]
fn figure2_counts_each_results_csv_once_through_self_symlinks() {
    let dir = common::fresh_dir("bad_input_plots/figure2_symlinks");
    write_results(&dir.join("exp"), &["baseline,0,m,27479784,1000,21.5,5.5,1,1,1,ok"]);
    // Two links back to the folder: following them as folders makes 2^depth paths to walk.
    std::os::unix::fs::symlink(&dir, dir.join("a")).unwrap();
    std::os::unix::fs::symlink(&dir, dir.join("b")).unwrap();
    // And a link to the one results.csv, which must not count it twice either.
    fs::create_dir_all(dir.join("copy")).unwrap();
    std::os::unix::fs::symlink(dir.join("exp/results.csv"), dir.join("copy/results.csv")).unwrap();
    let stem = dir.join("out/figure2");
    let ran = sk_exp_within_deadline(&["plot", "figure2", "--results", &arg(&dir), "--out", &arg(&stem)]);
    assert_drew(&ran, &stem);
    // Found once, the label is not qualified by its folder (as it is when several experiments share it).
    assert!(svg_shows(&stem, "baseline"), "the measured point is not labelled `baseline`");
    assert_eq!(find_results_files(&dir).unwrap(), [dir.join("exp/results.csv")]);
}
