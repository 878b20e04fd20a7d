//! Data parallelism: without batch norm, two replicas take the same steps as one device with the same
//! global batch; with batch norm, the averaged gradient is the mean of the shard gradients, replicas stay
//! bitwise identical, and BN statistics are averaged before evaluation and checkpoints.
//! The replicas run on the CPU, or on SK_EXP_TEST_DEVICE (e.g. `cuda:0`) where a GPU is at hand.
mod common;
mod train_common;
use anyhow::Result;
use sk_exp::data::{Batch, DataSplits};
use sk_exp::device::{check, parse as parse_device};
use sk_exp::train::checkpoint::{self, NamedTensors};
use sk_exp::train::parallel::{Network, NetworkBuilder, ReplicaSetup, Replicas, StartState};
use sk_exp::train::recipe::Recipe;
use sk_exp::train::run_dir::RunDir;
use sk_exp::train::sgd::SgdConfig;
use sk_exp::train::trainer::{train, RunOptions};
use std::sync::Arc;
use tch::nn;
use tch::{Device, Tensor};
use train_common::{batch_of, blobs, tiny_run, tiny_sknet};

/// A network without batch norm: conv, ReLU, global pool, linear.
#[derive(Debug)]
struct Plain {
    conv: nn::Conv2D,
    fc: nn::Linear,
}

impl Network for Plain {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(xs.apply(&self.conv).relu().adaptive_avg_pool2d([1, 1]).flatten(1, -1).apply(&self.fc))
    }
}

fn plain() -> NetworkBuilder {
    Arc::new(|vs: &nn::Path| -> Result<Box<dyn Network>> {
        let conv = nn::conv2d(vs / "conv", 3, 8, 3, nn::ConvConfig { padding: 1, ..Default::default() });
        let fc = nn::linear(vs / "fc", 8, 4, Default::default());
        Ok(Box::new(Plain { conv, fc }))
    })
}

fn sgd() -> SgdConfig {
    SgdConfig { momentum: 0.9, nesterov: true, weight_decay: 5e-4, wd_on_bn_bias: false }
}

fn initial(build: &NetworkBuilder) -> NamedTensors {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    build(&vs.root()).unwrap();
    vs.variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
}

fn device_name() -> String {
    std::env::var("SK_EXP_TEST_DEVICE").unwrap_or_else(|_| "cpu".into())
}

fn device() -> Device {
    parse_device(&device_name()).unwrap()
}

fn start(build: &NetworkBuilder, devices: usize) -> Replicas {
    let setup = ReplicaSetup { build: build.clone(), sgd: sgd(), label_smoothing: 0.0, threads: 1 };
    let weights = initial(build).into_iter().map(|(n, t)| (n, t.copy())).collect();
    Replicas::start(&vec![device(); devices], setup, StartState { weights, optimizer: None }).unwrap()
}

fn batch(step: usize, size: usize) -> Batch {
    batch_of(blobs(512, 0).as_ref(), step * size..(step + 1) * size, 3)
}

fn max_diff(a: &NamedTensors, b: &NamedTensors) -> f64 {
    a.iter()
        .zip(b)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            (ta - tb).abs().max().double_value(&[])
        })
        .fold(0.0, f64::max)
}

#[test]
fn two_replicas_without_batch_norm_step_like_one_device() {
    let build = plain();
    let (one, two) = (start(&build, 1), start(&build, 2));
    for step in 0..6 {
        let b = batch(step, 16);
        let lr = 0.1;
        one.train_step(&b.images, &b.labels, lr).unwrap();
        two.train_step(&b.images, &b.labels, lr).unwrap();
    }
    let (w1, m1) = one.snapshot(0).unwrap();
    let (w2, m2) = two.snapshot(0).unwrap();
    let (w2b, m2b) = two.snapshot(1).unwrap();
    assert!(max_diff(&w1, &initial(&build)) > 1e-3, "the weights did not move");
    let (dw, dm) = (max_diff(&w1, &w2), max_diff(&m1, &m2));
    assert!(dw < 1e-5 && dm < 1e-5, "weights differ by {dw}, momentum by {dm}");
    assert_eq!((max_diff(&w2, &w2b), max_diff(&m2, &m2b)), (0.0, 0.0), "replicas drifted apart");
}

#[test]
fn with_batch_norm_the_averaged_gradient_is_the_mean_of_the_shard_gradients() {
    let build = tiny_sknet();
    let (one, two) = (start(&build, 1), start(&build, 2));
    let b = batch(0, 16);
    let (averaged, stats) = two.reduced_gradient(&b.images, &b.labels).unwrap();
    let averaged = averaged.to_device(Device::Cpu);
    let halves: Vec<Tensor> = [0, 8]
        .iter()
        .map(|&s| {
            one.reduced_gradient(&b.images.narrow(0, s, 8), &b.labels.narrow(0, s, 8)).unwrap().0.to_device(Device::Cpu)
        })
        .collect();
    let mean = (&halves[0] + &halves[1]) / 2.0;
    let diff = (&averaged - &mean).abs().max().double_value(&[]);
    assert!(diff < 1e-6, "averaged gradient differs from the shard mean by {diff}");
    assert_eq!(stats.samples, 16);
    // Batch norm makes the shard mean differ from the full-batch gradient: the test compares the right thing.
    let full = one.reduced_gradient(&b.images, &b.labels).unwrap().0.to_device(Device::Cpu);
    assert!((&full - &mean).abs().max().double_value(&[]) > 1e-4);
}

#[test]
fn batch_norm_statistics_are_averaged_and_replicas_stay_identical() {
    let build = tiny_sknet();
    let two = start(&build, 2);
    for step in 0..3 {
        let b = batch(step, 16);
        two.train_step(&b.images, &b.labels, 0.05).unwrap();
    }
    let (a, _) = two.snapshot(0).unwrap();
    let (b, _) = two.snapshot(1).unwrap();
    let stats = |w: &NamedTensors| -> NamedTensors {
        w.iter().filter(|(n, _)| n.contains("running_")).map(|(n, t)| (n.clone(), t.shallow_clone())).collect()
    };
    let params = |w: &NamedTensors| -> NamedTensors {
        w.iter().filter(|(n, _)| !n.contains("running_")).map(|(n, t)| (n.clone(), t.shallow_clone())).collect()
    };
    assert_eq!(max_diff(&params(&a), &params(&b)), 0.0, "parameters must be bitwise identical");
    assert!(max_diff(&stats(&a), &stats(&b)) > 0.0, "each replica saw different shards");
    two.sync_buffers().unwrap();
    let (a2, _) = two.snapshot(0).unwrap();
    let (b2, _) = two.snapshot(1).unwrap();
    assert_eq!(max_diff(&a2, &b2), 0.0);
    for ((name, before_a), (_, before_b)) in stats(&a).iter().zip(stats(&b)) {
        let after = checkpoint::find(&a2, name, "synced").unwrap();
        let mean = (before_a + &before_b) / 2.0;
        assert!((after - mean).abs().max().double_value(&[]) < 1e-6, "{name} is not the replica mean");
    }
}

#[test]
fn the_loop_trains_on_a_device_list() {
    let dir = common::fresh_dir("data_parallel/two-cpus");
    let mut recipe = Recipe::preset("cifar10").unwrap();
    (recipe.epochs, recipe.batch_size) = (2, 16);
    let name = device_name();
    let run = tiny_run(dir.clone(), recipe, 1, &[name.as_str(), name.as_str()]);
    let data = DataSplits { train: blobs(64, 0), eval: blobs(24, 5000) };
    let trained = train(&run, &RunDir::new(&dir), &data, tiny_sknet(), &RunOptions::default()).unwrap();
    assert_eq!(trained.epochs_done(), 2);
    assert!(trained.history.iter().all(|m| m.train_loss.is_finite() && m.eval_top1_err.is_some()));
    let checkpoint = RunDir::new(&dir).load_checkpoint().unwrap().unwrap();
    assert_eq!((checkpoint.state.epoch, checkpoint.state.step), (2, 8), "2 epochs of 64 / 16 steps");
    assert_eq!(RunDir::new(&dir).read_run().unwrap().devices, [name.clone(), name]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn missing_cuda_devices_are_reported() {
    let count = tch::Cuda::device_count() as usize;
    let missing = check(Device::Cuda(count)).unwrap_err().to_string();
    assert!(missing.contains(&format!("this machine has {count} CUDA device(s)")), "{missing}");
    assert!(check(Device::Cpu).is_ok());
    assert_eq!(parse_device("cuda:1").unwrap(), Device::Cuda(1));
}
