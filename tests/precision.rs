//! Precision and memory layout on the CPU: bf16 autocast stays close to fp32 and still trains; channels_last
//! computes the same numbers as NCHW; fp16 loss scaling skips a step with a non-finite gradient, halves the
//! scale and grows it back after its interval of finite steps, and the scale survives a checkpoint.
mod common;
mod train_common;
use anyhow::Result;
use sk_exp::data::DataSplits;
use sk_exp::eval::Classifier;
use sk_exp::models::registry;
use sk_exp::precision::{Compute, LossScaling, MemoryFormat, Precision};
use sk_exp::train::checkpoint::NamedTensors;
use sk_exp::train::metrics::EpochMetrics;
use sk_exp::train::recipe::Recipe;
use sk_exp::train::replica::{Network, NetworkBuilder, Replica, ReplicaSetup, StartState};
use sk_exp::train::run::ResolvedRun;
use sk_exp::train::run_dir::RunDir;
use sk_exp::train::schedule::Schedule;
use sk_exp::train::sgd::SgdConfig;
use sk_exp::train::trainer::{train, RunOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tch::{nn, Device, Kind, Tensor};
use train_common::{batch_of, blobs, tiny_run, tiny_sknet};

/// max |a - b| / max |b|.
fn relative_diff(a: &Tensor, b: &Tensor) -> f64 {
    let scale = b.abs().max().double_value(&[]);
    (a - b).abs().max().double_value(&[]) / scale
}

/// Eval-mode logits of `model` (random weights, seed 0) for two random images of side `size`.
fn logits(model: &str, size: i64, compute: Compute) -> Tensor {
    let _seeding = common::torch_rng();
    tch::manual_seed(0);
    let spec = registry::resolve(model, None).unwrap();
    let classifier = Classifier::ours(&spec, None, Device::Cpu).unwrap().with_compute(compute).unwrap();
    let images = Tensor::randn([2, 3, size, size], (Kind::Float, Device::Cpu));
    classifier.logits(&images).unwrap()
}

fn bf16() -> Compute {
    Compute { precision: Precision::Bf16, ..Compute::default() }
}

fn channels_last() -> Compute {
    Compute { channels_last: true, ..Compute::default() }
}

/// bf16 keeps 8 significant bits, so each convolution's operands are rounded by up to 2^-9 relative; through
/// SKNet-29's 29 layers and ShuffleNetV2's 50-odd, with BN and the SK softmax in fp32 between them, these
/// add up to a few thousandths of the logits' range (measured 3.9e-3 for SKNet-29 at 32x32, 2.0e-3 for
/// ShuffleNetV2-1.0x+SK at 64x64, random weights, seed 0). 2e-2 leaves room for other weights while a
/// broken autocast (a stale cast cache, bf16 carried into the loss) is off by far more. The difference
/// must not be zero either: that would mean autocast did nothing.
#[test]
fn bf16_autocast_logits_are_close_to_fp32() {
    for (model, size) in [("sknet29", 32), ("shufflenetv2_1.0x_sk", 64)] {
        let reference = logits(model, size, Compute::default());
        let low = logits(model, size, bf16());
        assert_eq!(low.kind(), Kind::Float, "logits come back in fp32");
        let diff = relative_diff(&low, &reference);
        eprintln!("{model}: bf16 vs fp32 logits, max relative difference {diff:.2e}");
        assert!(diff > 0.0 && diff < 2e-2, "{model}: bf16 logits differ from fp32 by {diff:.2e} of their range");
    }
}

#[test]
fn channels_last_logits_equal_nchw() {
    for (model, size) in [("sknet29", 32), ("shufflenetv2_1.0x_sk", 64)] {
        let diff = relative_diff(&logits(model, size, channels_last()), &logits(model, size, Compute::default()));
        eprintln!("{model}: channels_last vs NCHW logits, max relative difference {diff:.2e}");
        assert!(diff < 1e-5, "{model}: channels_last logits differ by {diff:.2e}");
    }
}

fn recipe(epochs: usize, precision: Precision) -> Recipe {
    Recipe {
        epochs,
        batch_size: 16,
        lr: 0.05,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 5e-4,
        wd_on_bn_bias: true,
        schedule: Schedule::Cosine {},
        warmup_epochs: 0,
        label_smoothing: 0.0,
        precision,
    }
}

/// The tiny SKNet trained on the blobs (4 classes: chance is 75% top-1 error) in a fresh folder.
fn tiny_training(name: &str, mut run: ResolvedRun) -> Vec<EpochMetrics> {
    let dir = common::fresh_dir(&format!("precision/{name}"));
    run.out_dir = dir.clone();
    let data = DataSplits { train: blobs(96, 0), eval: blobs(48, 10_000) };
    let _seeding = common::torch_rng();
    train(&run, &RunDir::new(&dir), &data, tiny_sknet(), &RunOptions::default()).unwrap();
    let rows = RunDir::new(&dir).read_metrics().unwrap();
    std::fs::remove_dir_all(dir).ok();
    rows
}

#[test]
fn a_bf16_run_learns() {
    let run = tiny_run("unused".into(), recipe(4, Precision::Bf16), 5, &["cpu"]);
    let rows = tiny_training("bf16", run);
    let errors: Vec<f64> = rows.iter().map(|r| r.eval_top1_err.unwrap()).collect();
    eprintln!("bf16 eval top-1 errors by epoch: {errors:?}");
    assert!(errors[3] < 40.0, "chance is 75%: {errors:?}");
}

/// Two epochs (12 steps) of training: rounding differences grow with every step (see
/// `channels_last_steps_follow_nchw`), to 1.2e-3 of the loss after the first epoch here; allowed 1%.
#[test]
fn channels_last_training_follows_nchw() {
    let nchw = tiny_training("nchw", tiny_run("unused".into(), recipe(2, Precision::Fp32), 5, &["cpu"]));
    let mut run = tiny_run("unused".into(), recipe(2, Precision::Fp32), 5, &["cpu"]);
    run.memory_format = Some(MemoryFormat::ChannelsLast);
    let cl = tiny_training("channels_last", run);
    for (a, b) in nchw.iter().zip(&cl) {
        let (ea, eb) = (a.eval_loss.unwrap(), b.eval_loss.unwrap());
        eprintln!("epoch {}: train loss {} vs {}, eval loss {ea} vs {eb}", a.epoch, a.train_loss, b.train_loss);
        assert!((a.train_loss - b.train_loss).abs() < 1e-2 * a.train_loss, "{a:?}\n{b:?}");
        assert!((ea - eb).abs() < 1e-2 * ea, "{a:?}\n{b:?}");
    }
}

/// A linear classifier over flattened images plus `p * factor` on class 0, where `factor` is 1e38 while
/// `poison` is set. `p` starts at 0, so the logits (and the loss) stay finite, but p's gradient times the
/// loss scale overflows float32: a non-finite gradient with a finite loss, as fp16 overflows give.
struct Poisonable {
    linear: nn::Linear,
    p: Tensor,
    poison: Arc<AtomicBool>,
}

impl Network for Poisonable {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        let logits = xs.flatten(1, -1).apply(&self.linear).to_kind(Kind::Float);
        let factor = if self.poison.load(Ordering::SeqCst) { 1e38 } else { 0.0 };
        let class0 = Tensor::from_slice(&[1f32, 0.0, 0.0, 0.0]);
        Ok(logits + (&self.p * factor).unsqueeze(1) * class0)
    }
}

fn poisonable(poison: Arc<AtomicBool>) -> NetworkBuilder {
    Arc::new(move |vs: &nn::Path| -> Result<Box<dyn Network>> {
        let linear = nn::linear(vs / "linear", 3 * 16 * 16, 4, Default::default());
        let p = vs.zeros("p", &[1]);
        Ok(Box::new(Poisonable { linear, p, poison: poison.clone() }))
    })
}

fn same(a: &NamedTensors, b: &NamedTensors) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|((na, ta), (nb, tb))| na == nb && ta.equal(tb))
}

#[test]
fn fp16_skips_non_finite_steps_and_rescales() {
    let _seeding = common::torch_rng();
    let poison = Arc::new(AtomicBool::new(false));
    let build = poisonable(poison.clone());
    let vs = nn::VarStore::new(Device::Cpu);
    build(&vs.root()).unwrap();
    let weights: NamedTensors = vs.variables().into_iter().collect();
    let loss_scaling = LossScaling { growth_interval: 2, ..LossScaling::default() };
    let compute = Compute { precision: Precision::Fp16, loss_scaling, ..Compute::default() };
    let sgd = SgdConfig { momentum: 0.9, nesterov: false, weight_decay: 1e-4, wd_on_bn_bias: true };
    let setup = ReplicaSetup { build, sgd, label_smoothing: 0.0, compute };
    let mut replica = Replica::start(Device::Cpu, &setup, &StartState { weights, optimizer: None }, None).unwrap();
    let data = blobs(64, 0);
    let step = |replica: &mut Replica, i: usize| {
        let batch = batch_of(data.as_ref(), i * 8..(i + 1) * 8, 0);
        let stats = replica.train_step(&batch.images, &batch.labels, 0.1).unwrap();
        assert!(stats.read().unwrap().loss().is_finite(), "step {i}: the loss itself stays finite");
    };
    assert_eq!(replica.loss_scale(), Some(65536.0));
    step(&mut replica, 0);
    assert_eq!(replica.loss_scale(), Some(65536.0), "a finite step before the interval keeps the scale");

    let before = replica.snapshot();
    poison.store(true, Ordering::SeqCst);
    step(&mut replica, 1);
    poison.store(false, Ordering::SeqCst);
    let after = replica.snapshot();
    assert!(same(&before.0, &after.0), "the skipped step changed the weights");
    let momentum = |s: &NamedTensors| s.iter().filter(|(n, _)| !n.starts_with("grad_scaler")).count();
    assert_eq!(momentum(&before.1), momentum(&after.1));
    assert!(before.1.iter().filter(|(n, _)| !n.starts_with("grad_scaler")).all(|(n, t)| t.equal(&after.1[n])));
    assert_eq!(replica.loss_scale(), Some(32768.0), "the scale halves after a non-finite gradient");

    step(&mut replica, 2);
    assert_eq!(replica.loss_scale(), Some(32768.0));
    assert!(!same(&after.0, &replica.snapshot().0), "a finite step is applied");
    step(&mut replica, 3);
    assert_eq!(replica.loss_scale(), Some(65536.0), "two finite steps in a row (the interval) double it");

    // The scale is part of the checkpoint: a replica started from the snapshot continues with it.
    step(&mut replica, 4);
    let (weights, optimizer) = replica.snapshot();
    assert_eq!(optimizer["grad_scaler.scale"].double_value(&[0]), 65536.0);
    assert_eq!(optimizer["grad_scaler.growth_tracker"].int64_value(&[0]), 1);
    let resumed =
        Replica::start(Device::Cpu, &setup, &StartState { weights, optimizer: Some(optimizer) }, None).unwrap();
    assert_eq!(resumed.loss_scale(), Some(65536.0));
    let (_, optimizer) = resumed.snapshot();
    assert_eq!(optimizer["grad_scaler.growth_tracker"].int64_value(&[0]), 1, "the growth count resumes too");
}

/// Three SGD steps of the tiny SKNet from the same weights, NCHW and channels_last: the losses agree to float
/// rounding (1e-5) and so do the weights (measured 3.4e-4 of a variable's range at most, in BN biases near
/// zero, after momentum carried the rounding of three steps; allowed 2e-3).
#[test]
fn channels_last_steps_follow_nchw() {
    let _seeding = common::torch_rng();
    let build = tiny_sknet();
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    build(&vs.root()).unwrap();
    let data = blobs(48, 0);
    let mut runs = vec![];
    for compute in [Compute::default(), channels_last()] {
        let sgd = SgdConfig { momentum: 0.9, nesterov: false, weight_decay: 5e-4, wd_on_bn_bias: true };
        let setup = ReplicaSetup { build: build.clone(), sgd, label_smoothing: 0.0, compute };
        let weights = vs.variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
        let mut replica = Replica::start(Device::Cpu, &setup, &StartState { weights, optimizer: None }, None).unwrap();
        let losses: Vec<f64> = (0..3)
            .map(|i| {
                let batch = batch_of(data.as_ref(), i * 16..(i + 1) * 16, 0);
                replica.train_step(&batch.images, &batch.labels, 0.05).unwrap().read().unwrap().loss()
            })
            .collect();
        runs.push((losses, replica.snapshot()));
    }
    let ((nchw_losses, (nchw, nchw_momentum)), (cl_losses, (cl, cl_momentum))) = (&runs[0], &runs[1]);
    for (a, b) in nchw_losses.iter().zip(cl_losses) {
        assert!((a - b).abs() < 1e-5 * a, "losses {nchw_losses:?} vs {cl_losses:?}");
    }
    for (reference, other) in [(nchw, cl), (nchw_momentum, cl_momentum)] {
        for (name, t) in reference {
            assert!(other[name].is_contiguous(), "{name}: checkpoints hold contiguous tensors");
            let diff = relative_diff(&other[name], t);
            assert!(diff < 2e-3, "{name}: channels_last differs by {diff:.2e} after three steps");
        }
    }
}
