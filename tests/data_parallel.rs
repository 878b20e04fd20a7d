//! Data parallel on c10d: two Gloo ranks (two processes on 127.0.0.1, each this test binary re-run as
//! `rank_worker` with torchrun's variables) against one process with the whole batch. Without batch norm
//! they take the same steps; with batch norm the averaged gradient is the mean of the shards' gradients,
//! the ranks stay identical, and BN statistics after the epoch-end reduction are the ranks' mean.
mod common;
mod train_common;
use anyhow::Result;
use common::KillOnDrop;
use sk_exp::data::Batch;
use sk_exp::device::{check, parse as parse_device};
use sk_exp::dist::spawn::free_port;
use sk_exp::dist::{Launch, ProcessGroup};
use sk_exp::precision::loss_scale::LossScaling;
use sk_exp::precision::{Compute, Precision};
use sk_exp::train::checkpoint::NamedTensors;
use sk_exp::train::replica::{Network, NetworkBuilder, Replica, ReplicaSetup, StartState};
use sk_exp::train::sgd::SgdConfig;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tch::{nn, Device, Tensor};
use train_common::{batch_of, blobs, tiny_sknet};

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

fn momentum_sgd() -> SgdConfig {
    SgdConfig { momentum: 0.9, nesterov: true, weight_decay: 5e-4, wd_on_bn_bias: false }
}

/// Plain SGD: a step at lr 1 moves the parameters by minus the gradient, which the BN case reads off.
fn plain_sgd() -> SgdConfig {
    SgdConfig { momentum: 0.0, nesterov: false, weight_decay: 0.0, wd_on_bn_bias: false }
}

fn initial(build: &NetworkBuilder) -> NamedTensors {
    let _one_at_a_time = common::torch_rng();
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    build(&vs.root()).unwrap();
    vs.variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
}

fn replica(build: &NetworkBuilder, sgd: SgdConfig, group: Option<ProcessGroup>) -> Replica {
    replica_in(build, sgd, Compute::default(), group)
}

fn replica_in(build: &NetworkBuilder, sgd: SgdConfig, compute: Compute, group: Option<ProcessGroup>) -> Replica {
    let setup = ReplicaSetup { build: build.clone(), sgd, label_smoothing: 0.0, compute };
    Replica::start(Device::Cpu, &setup, &StartState { weights: initial(build), optimizer: None }, group).unwrap()
}

fn batch(step: usize, size: usize) -> Batch {
    batch_of(blobs(512, 0).as_ref(), step * size..(step + 1) * size, 3)
}

/// Rows `start..start + len` of a batch.
fn part(b: &Batch, start: i64, len: i64) -> (Tensor, Tensor) {
    (b.images.narrow(0, start, len), b.labels.narrow(0, start, len))
}

fn max_diff(a: &NamedTensors, b: &NamedTensors) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            (ta - tb).abs().max().double_value(&[])
        })
        // f64::max would pass over a NaN (weights gone non-finite): keep it, so that no comparison passes.
        .fold(0.0, |worst, d| if d.is_nan() || worst.is_nan() { f64::NAN } else { worst.max(d) })
}

fn save(path: &Path, tensors: &NamedTensors) {
    let named: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    Tensor::save_multi(&named, path).unwrap();
}

fn load(path: &Path) -> NamedTensors {
    Tensor::load_multi(path).unwrap().into_iter().collect()
}

/// What a rank does in each case; it writes its tensors to `out/<what>-rank<r>.pt`.
fn run_case(case: &str, group: ProcessGroup, out: &Path) {
    let rank = group.rank() as i64;
    match case {
        "plain" => {
            let mut r = replica(&plain(), momentum_sgd(), Some(group));
            for step in 0..6 {
                let (x, y) = part(&batch(step, 16), 8 * rank, 8);
                let stats = r.train_step(&x, &y, 0.1).unwrap().read().unwrap();
                assert_eq!(stats.samples, 16, "the step's statistics are the global batch's");
            }
            let (weights, momentum) = r.snapshot();
            save(&out.join(format!("weights-rank{rank}.pt")), &weights);
            save(&out.join(format!("momentum-rank{rank}.pt")), &momentum);
        }
        "bn" => {
            let mut r = replica(&tiny_sknet(), plain_sgd(), Some(group));
            let (x, y) = part(&batch(0, 16), 8 * rank, 8);
            r.train_step(&x, &y, 1.0).unwrap();
            save(&out.join(format!("stepped-rank{rank}.pt")), &r.snapshot().0);
            r.sync_buffers().unwrap();
            save(&out.join(format!("synced-rank{rank}.pt")), &r.snapshot().0);
        }
        "fp16" => {
            // fp16 with a growth interval of 2: rank 1's images blow up at step 1 (its gradient is not
            // finite), so after the one all-reduce both ranks skip that step and halve the scale together.
            let scaling = LossScaling { growth_interval: 2, ..LossScaling::default() };
            let compute = Compute { precision: Precision::Fp16, loss_scaling: scaling, ..Compute::default() };
            let mut r = replica_in(&plain(), momentum_sgd(), compute, Some(group));
            let step = |r: &mut Replica, step: usize, blow_up: bool| {
                let (x, y) = part(&batch(step, 16), 8 * rank, 8);
                let x = if blow_up && rank == 1 { x * 1e30 } else { x };
                r.train_step(&x, &y, 0.1).unwrap();
            };
            step(&mut r, 0, false);
            let before = r.snapshot();
            step(&mut r, 1, true);
            let after = r.snapshot();
            assert_eq!(max_diff(&before.0, &after.0), 0.0, "rank {rank}: the skipped step changed the weights");
            assert_eq!(r.loss_scale(), Some(32768.0), "rank {rank}: the scale halves on every rank");
            step(&mut r, 2, false);
            step(&mut r, 3, false);
            assert_eq!(r.loss_scale(), Some(65536.0), "rank {rank}: two finite steps double it again");
            assert!(max_diff(&after.0, &r.snapshot().0) > 0.0, "rank {rank}: the finite steps moved nothing");
            save(&out.join(format!("weights-rank{rank}.pt")), &r.snapshot().0);
        }
        other => panic!("unknown case {other}"),
    }
}

/// The entry point of a rank: not a test of its own (ignored), run by [`two_ranks`] with the environment.
#[test]
#[ignore]
fn rank_worker() {
    let Some(launch) = Launch::from_env().unwrap() else { return };
    tch::set_num_threads(1);
    let group = ProcessGroup::join(&launch, "gloo", Duration::from_secs(60)).unwrap();
    let case = std::env::var("SK_EXP_TEST_CASE").unwrap();
    run_case(&case, group, Path::new(&std::env::var("SK_EXP_TEST_OUT").unwrap()));
}

/// Runs `case` on two ranks (this binary's `rank_worker`) and waits for both, a minute at most.
fn two_ranks(case: &str, out: &Path) {
    let port = free_port().unwrap();
    let mut children: Vec<KillOnDrop> = (0..2)
        .map(|rank| {
            let child = Command::new(std::env::current_exe().unwrap())
                .args(["rank_worker", "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .env("SK_EXP_TEST_CASE", case)
                .env("SK_EXP_TEST_OUT", out)
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            KillOnDrop(child)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for (rank, child) in children.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let status = common::wait_within(child, left, &format!("rank {rank} of case {case}"));
        assert!(status.success(), "rank {rank} of case {case}: {status:?}");
    }
}

#[test]
fn two_ranks_without_batch_norm_step_like_one_process_with_the_whole_batch() {
    let out = common::fresh_dir("data_parallel/plain");
    two_ranks("plain", &out);
    tch::set_num_threads(1);
    let build = plain();
    let mut one = replica(&build, momentum_sgd(), None);
    for step in 0..6 {
        let b = batch(step, 16);
        one.train_step(&b.images, &b.labels, 0.1).unwrap();
    }
    let (w1, m1) = one.snapshot();
    let (w0, wr0, wr1) = (initial(&build), load(&out.join("weights-rank0.pt")), load(&out.join("weights-rank1.pt")));
    assert!(max_diff(&w1, &w0) > 1e-3, "the weights did not move");
    let (dw, dm) = (max_diff(&w1, &wr0), max_diff(&m1, &load(&out.join("momentum-rank0.pt"))));
    assert!(dw < 1e-5 && dm < 1e-5, "weights differ by {dw}, momentum by {dm}");
    assert_eq!(max_diff(&wr0, &wr1), 0.0, "the ranks drifted apart");
}

#[test]
fn with_batch_norm_ranks_average_shard_gradients_and_bn_statistics() {
    let out = common::fresh_dir("data_parallel/bn");
    two_ranks("bn", &out);
    tch::set_num_threads(1);
    let build = tiny_sknet();
    let start = initial(&build);
    let is_stat = |name: &str| name.contains("running_");
    let params = |w: &NamedTensors| -> NamedTensors {
        w.iter().filter(|(n, _)| !is_stat(n)).map(|(n, t)| (n.clone(), t.shallow_clone())).collect()
    };
    let stats = |w: &NamedTensors| -> NamedTensors {
        w.iter().filter(|(n, _)| is_stat(n)).map(|(n, t)| (n.clone(), t.shallow_clone())).collect()
    };
    // Alone, one plain step at lr 1 on each half: the parameters move by minus that half's gradient.
    let b = batch(0, 16);
    let halves: Vec<NamedTensors> = [0, 8]
        .iter()
        .map(|&s| {
            let mut one = replica(&build, plain_sgd(), None);
            let (x, y) = part(&b, s, 8);
            one.train_step(&x, &y, 1.0).unwrap();
            params(&one.snapshot().0)
        })
        .collect();
    let stepped = [load(&out.join("stepped-rank0.pt")), load(&out.join("stepped-rank1.pt"))];
    assert_eq!(max_diff(&params(&stepped[0]), &params(&stepped[1])), 0.0, "parameters must be identical");
    // rank step = -(g0 + g1) / 2 = ((h0 - p) + (h1 - p)) / 2, so rank params = (h0 + h1) / 2.
    let mean_of_halves: NamedTensors =
        halves[0].iter().zip(&halves[1]).map(|((n, h0), (_, h1))| (n.clone(), (h0 + h1) / 2.0)).collect();
    let diff = max_diff(&params(&stepped[0]), &mean_of_halves);
    assert!(diff < 1e-6, "the averaged gradient differs from the shards' mean by {diff}");
    // Batch norm makes the shards' mean differ from the whole batch's gradient: the test compares the right thing.
    let mut whole = replica(&build, plain_sgd(), None);
    whole.train_step(&b.images, &b.labels, 1.0).unwrap();
    assert!(max_diff(&params(&whole.snapshot().0), &mean_of_halves) > 1e-4);
    assert!(max_diff(&params(&start), &mean_of_halves) > 1e-3, "the step moved nothing");
    // Each rank's BN statistics saw its own shard; after the reduction both hold their mean.
    let (s0, s1) = (stats(&stepped[0]), stats(&stepped[1]));
    assert!(max_diff(&s0, &s1) > 0.0, "each rank saw different shards");
    let synced = [load(&out.join("synced-rank0.pt")), load(&out.join("synced-rank1.pt"))];
    assert_eq!(max_diff(&synced[0], &synced[1]), 0.0);
    let mean: NamedTensors = s0.iter().zip(&s1).map(|((n, a), (_, b))| (n.clone(), (a + b) / 2.0)).collect();
    let diff = max_diff(&stats(&synced[0]), &mean);
    assert!(diff < 1e-6, "BN statistics are {diff} from the ranks' mean");
}

#[test]
fn fp16_ranks_skip_a_non_finite_step_together_and_stay_identical() {
    let out = common::fresh_dir("data_parallel/fp16");
    two_ranks("fp16", &out);
    let (w0, w1) = (load(&out.join("weights-rank0.pt")), load(&out.join("weights-rank1.pt")));
    assert_eq!(max_diff(&w0, &w1), 0.0, "the ranks drifted apart");
}

#[test]
fn missing_cuda_devices_are_reported() {
    let count = tch::Cuda::device_count() as usize;
    let missing = check(Device::Cuda(count)).unwrap_err().to_string();
    assert!(missing.contains(&format!("this machine has {count} CUDA device(s)")), "{missing}");
    assert!(check(Device::Cpu).is_ok());
    assert_eq!(parse_device("cuda:1").unwrap(), Device::Cuda(1));
}
