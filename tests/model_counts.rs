//! Every registered model against its references: exact counts of public definitions, the paper's #params
//! (1%) and GFLOPs (2%), a forward pass of every model, and the batch-1 training error of SK models.
use sk_exp::models::complexity::count_params;
use sk_exp::models::layers::count_macs;
use sk_exp::models::registry::{self, Entry, Quantity};
use sk_exp::models::Model;
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
            check(entry, Quantity::Gflops, macs as f64 / 1e9, paper, GFLOPS_TOLERANCE, &mut failures);
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
