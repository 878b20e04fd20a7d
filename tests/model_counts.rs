//! Every registered model against its references: exact counts of public definitions, the paper's #params
//! (1%) and GFLOPs (2%, counted as the paper counts: SK selection included), a forward pass of every model,
//! the batch-1 training error of SK models, and Table S1's ShuffleNetV2 + SK at the paper's size.
use sk_exp::models::complexity::{self, count_params, Complexity};
use sk_exp::models::layers::count_macs;
use sk_exp::models::registry::{self, Entry, Quantity};
use sk_exp::models::Model;
use sk_exp::paper::{self, PaperRef, PaperRow};
use tch::{nn, Device, Kind, Tensor};

const PARAMS_TOLERANCE: f64 = 0.01;
const GFLOPS_TOLERANCE: f64 = 0.02;

/// The largest relative gap accepted: the tolerance, or the bound of a gap the registry entry knows of.
fn allowed_gap(entry: &Entry, quantity: Quantity, tolerance: f64) -> f64 {
    entry.known_gap(quantity).map_or(tolerance, |gap| gap.bound)
}

fn check(entry: &Entry, quantity: Quantity, ours: f64, paper: f64, tolerance: f64, failures: &mut Vec<String>) {
    let gap = (ours - paper).abs() / paper;
    let allowed = allowed_gap(entry, quantity, tolerance);
    let what = if quantity == Quantity::Params { "#params (M)" } else { "GFLOPs" };
    let (name, gap_pct, allowed_pct) = (entry.name, gap * 100.0, allowed * 100.0);
    if gap >= allowed {
        failures.push(format!("{name}: {what} {ours:.5} vs paper {paper} ({gap_pct:.2}% > {allowed_pct:.1}%)"));
    } else if allowed > tolerance && gap < tolerance {
        failures.push(format!("{name}: {what} is now within {gap_pct:.2}% of the paper: drop its known gap"));
    }
}

/// Known gaps must name a figure the paper gives and allow more than the tolerance, or they mean nothing.
fn check_known_gaps(entry: &Entry, failures: &mut Vec<String>) {
    for gap in entry.known_gaps {
        let (paper, tolerance) = match gap.quantity {
            Quantity::Params => (entry.paper_params_m(), PARAMS_TOLERANCE),
            Quantity::Gflops => (entry.paper_gflops(), GFLOPS_TOLERANCE),
        };
        if paper.is_none() || gap.bound <= tolerance || gap.reason.is_empty() {
            failures.push(format!("{}: known gap {gap:?} has no paper figure, reason or effect", entry.name));
        }
    }
}

#[test]
fn counts_match_references_and_paper() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for entry in registry::ENTRIES {
        check_known_gaps(entry, &mut failures);
        let spec = (entry.spec)();
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Model::build(&vs.root(), &spec).unwrap();
        let params = count_params(&vs);
        if let Some(exact) = entry.exact_params() {
            if params != exact {
                let (name, reference) = (entry.name, entry.exact.unwrap_or_default());
                failures.push(format!("{name}: {params} params, the exact reference '{reference}' has {exact}"));
            }
            checked += 1;
        } else if entry.exact.is_some() {
            failures.push(format!("{}: exact row {:?} is missing from exact-counts.csv", entry.name, entry.exact));
        }
        if let Some(paper) = entry.paper_params_m() {
            check(entry, Quantity::Params, params as f64 / 1e6, paper, PARAMS_TOLERANCE, &mut failures);
        }
        // Multiply-adds need a forward pass at the native size: only where the paper gives GFLOPs.
        if let Some(paper) = entry.paper_gflops() {
            let side = spec.input_size();
            let input = Tensor::zeros([1, 3, side, side], (Kind::Float, Device::Cpu));
            let (out, macs) = tch::no_grad(|| count_macs(|| model.forward_t(&input, false)));
            let _logits = out.unwrap_or_else(|e| panic!("{}: {e:#}", entry.name));
            let paper_macs = macs.layers + macs.selection;
            check(entry, Quantity::Gflops, paper_macs as f64 / 1e9, paper, GFLOPS_TOLERANCE, &mut failures);
        }
    }
    assert!(checked >= 20, "only {checked} exact rows checked; the registry lost its references");
    assert!(failures.is_empty(), "count mismatches:\n{}", failures.join("\n"));
}

#[test]
fn every_model_runs_a_forward_pass() {
    for entry in registry::ENTRIES {
        let spec = (entry.spec)();
        // ImageNet models at 64x64 keep this fast; CIFAR models at their native 32x32.
        let side = spec.input_size().min(64);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Model::build(&vs.root(), &spec).unwrap();
        let input = Tensor::randn([2, 3, side, side], (Kind::Float, Device::Cpu));
        let out = tch::no_grad(|| model.forward_t(&input, false)).unwrap();
        assert_eq!(out.size(), [2, spec.num_classes()], "{}: logits shape", entry.name);
        assert!(bool::try_from(out.isfinite().all()).unwrap(), "{}: non-finite logits", entry.name);
    }
}

#[test]
fn sk_model_rejects_batch_one_in_training() {
    let spec = registry::resolve("sknet50", None).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::build(&vs.root(), &spec).unwrap();
    let input = Tensor::randn([1, 3, 64, 64], (Kind::Float, Device::Cpu));
    let err = model.forward_t(&input, true).unwrap_err().to_string();
    assert!(err.contains("batch size"), "unexpected error: {err}");
    // Batch 1 is fine in eval mode.
    let out = tch::no_grad(|| model.forward_t(&input, false)).unwrap();
    assert_eq!(out.size(), [1, 1000]);
}

fn measure(name: &str) -> Complexity {
    complexity::measure(&registry::resolve(name, None).unwrap()).unwrap()
}

fn paper_row(model: &str) -> &'static PaperRow {
    let row = paper::published().iter().find(|r| r.table == "4" && r.model == model && r.dataset == "imagenet");
    row.unwrap_or_else(|| panic!("no Table 4 row '{model}'"))
}

/// The paper's GFLOPs of a Table 4 row, in MACs.
fn paper_macs(model: &str) -> f64 {
    paper_row(model).gflops.unwrap() * 1e9
}

/// Relative gap of `ours` to `paper`.
fn gap(ours: f64, paper: f64) -> f64 {
    (ours - paper).abs() / paper
}

/// Table S1's model (ShuffleNetV2 + SK, d = 20) has the paper's #params (0.5%) at both widths, and its MACs
/// over the plain model, counted as the paper counts, are the paper's +SK increment (5%) at 0.5x. At 1.0x
/// no unit can have both: coming within 5% of the paper's +5.31 MFLOPs needs d ~ 26, which gives >= 2.68M params
/// (../shared/paper/shufflenet-table4.md, section 5); d = 20 comes to +5.00 (-5.9%), the text's r = 4
/// (the `_r4` entry, 2.84M params) to +5.20. Both are held to what they reach.
#[test]
fn table_s1_model_has_the_papers_size_and_sk_increment() {
    for (width, increment_bound, r4_params_bound) in [("0.5x", 0.05, 0.005), ("1.0x", 0.065, 0.09)] {
        let plain = measure(&format!("shufflenetv2_{width}"));
        let paper_plain = paper_macs(&format!("ShuffleNetV2 {width}"));
        let paper_sk = format!("ShuffleNetV2 {width} + SK");
        let paper_increment = paper_macs(&paper_sk) - paper_plain;
        let paper_params = paper_row(&paper_sk).params_m.unwrap() * 1e6;
        for (name, params_bound, increment_bound) in [
            (format!("shufflenetv2_{width}_sk"), 0.005, increment_bound),
            (format!("shufflenetv2_{width}_sk_r4"), r4_params_bound, 0.05),
        ] {
            let sk = measure(&name);
            let params_gap = gap(sk.params as f64, paper_params);
            assert!(params_gap < params_bound, "{name}: {} params vs the paper's {paper_params}", sk.params);
            let increment = sk.paper_macs() as f64 - plain.paper_macs() as f64;
            let increment_gap = gap(increment, paper_increment);
            assert!(
                increment_gap < increment_bound,
                "{name}: +{increment} MACs over the plain model vs the paper's +{paper_increment} ({:.2}%)",
                increment_gap * 100.0
            );
            // The selection's elementwise work is what closes the gap: without it 0.5x would be 9% short.
            assert!(sk.selection_macs > 0 && plain.selection_macs == 0, "{name}: no selection MACs counted");
        }
    }
}

/// The paper's convention (2 MACs per SK output element) gives SKNet-50's 4.47 and SKNet-101's 8.46 GFLOPs
/// to the printed digits; the conv/linear count alone gives 4.46 and 8.45.
#[test]
fn sknet_gflops_under_the_papers_convention_print_as_published() {
    for (name, table, model) in [("sknet50", "1", "SKNet-50"), ("sknet101", "2", "SKNet-101")] {
        let counts = measure(name);
        let paper = PaperRef::new(table, model, "imagenet").row().unwrap().gflops.unwrap();
        let (plain, ours) = (counts.macs as f64 / 1e9, counts.paper_macs() as f64 / 1e9);
        assert!(paper::rounds_to(ours, paper), "{name}: {ours:.4} GFLOPs does not print as the paper's {paper}");
        assert!(!paper::rounds_to(plain, paper), "{name}: the plain count {plain:.4} already prints as {paper}");
    }
}
