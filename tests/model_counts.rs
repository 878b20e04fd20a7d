//! Every registered model against its references: exact counts of public definitions, the paper's #params
//! (1%) and GFLOPs (2%), a forward pass of every model, and the batch-1 training error of SK models.
use sk_exp::models::complexity::count_params;
use sk_exp::models::layers::count_macs;
use sk_exp::models::registry::{self, Entry};
use sk_exp::models::Model;
use tch::{nn, Device, Kind, Tensor};

const PARAMS_TOLERANCE: f64 = 0.01;
const GFLOPS_TOLERANCE: f64 = 0.02;

#[derive(Clone, Copy, PartialEq)]
enum Quantity {
    Params,
    Gflops,
}

/// Paper figures our models are known to miss by more than the tolerance, each with the largest relative
/// gap still accepted (so that a model that drifts further fails) and why (see the registry entries).
const KNOWN_GAPS: &[(&str, Quantity, f64)] = &[
    // The original ShuffleNetV2 paper gives "1.4M" (one decimal); torchvision's 1.367M rounds to it.
    ("shufflenetv2_0.5x_484", Quantity::Params, 0.03),
    // The paper's +SE rows need SE r = 4 at 0.5x but r = 16 at 1.0x; we use SENet's r = 16 (-8.1%).
    ("shufflenetv2_0.5x_se", Quantity::Params, 0.09),
    // SK with the stated r = 4 gives 2.84M at 1.0x, the paper 2.63M (+8.0%); 0.5x matches.
    ("shufflenetv2_1.0x_sk", Quantity::Params, 0.09),
    // The paper's 1.0x GFLOPs are 3.1% below the exact torchvision-layout count (0.5x matches to 4 digits);
    // +SE and +SK inherit the offset.
    ("shufflenetv2_1.0x", Quantity::Gflops, 0.035),
    ("shufflenetv2_1.0x_se", Quantity::Gflops, 0.03),
    ("shufflenetv2_1.0x_sk", Quantity::Gflops, 0.03),
];

fn allowed_gap(name: &str, quantity: Quantity, tolerance: f64) -> f64 {
    KNOWN_GAPS.iter().find(|(n, q, _)| *n == name && *q == quantity).map_or(tolerance, |(_, _, gap)| *gap)
}

fn check(entry: &Entry, quantity: Quantity, ours: f64, paper: f64, tolerance: f64, failures: &mut Vec<String>) {
    let gap = (ours - paper).abs() / paper;
    let allowed = allowed_gap(entry.name, quantity, tolerance);
    let what = if quantity == Quantity::Params { "#params (M)" } else { "GFLOPs" };
    let (name, gap_pct, allowed_pct) = (entry.name, gap * 100.0, allowed * 100.0);
    if gap >= allowed {
        failures.push(format!("{name}: {what} {ours:.5} vs paper {paper} ({gap_pct:.2}% > {allowed_pct:.1}%)"));
    } else if allowed > tolerance && gap < tolerance {
        failures.push(format!("{name}: {what} is now within {gap_pct:.2}% of the paper: drop its KNOWN_GAPS row"));
    }
}

#[test]
fn counts_match_references_and_paper() {
    for (name, _, _) in KNOWN_GAPS {
        registry::entry(name).unwrap();
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for entry in registry::ENTRIES {
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
