//! Data parallelism: one replica per device, each in its own thread with its own VarStore, network and
//! optimizer (tch tensors are Send but not Sync). Every step the global batch is split into shards, each
//! replica computes the gradient of its shard's loss, the flattened gradients are averaged on the first
//! replica's device, and every replica applies the same averaged gradient with the same optimizer state,
//! so the replicas stay bitwise identical (on devices of one kind; a CPU next to a GPU may round the same
//! step differently in the last bit). BN running statistics (each replica sees only its shards) are
//! averaged on request, before evaluation and checkpoints. One device is the same code with one replica,
//! run in the calling thread: a second thread doing tensor work gives the process a second OpenMP team, and
//! libgomp then throttles its spin-waiting (more busy threads than cores), which measured up to 2x slower
//! training steps at small batches on 2 cores (benchmarks/train_step.sh).
use super::checkpoint::NamedTensors;
use super::sgd::{Sgd, SgdConfig};
use crate::loss::{cross_entropy, ClassificationStats};
use crate::models::{Model, ModelSpec};
use anyhow::{anyhow, ensure, Context, Result};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use tch::{nn, Device, Kind, Tensor};

/// What a replica trains: logits from an NCHW batch. [`Model`] is one; tests use plain networks too.
pub trait Network: Send {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor>;
}

impl Network for Model {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        Model::forward_t(self, xs, train)
    }
}

/// Builds a network's variables under a VarStore path; called once in every replica's thread.
pub type NetworkBuilder = Arc<dyn Fn(&nn::Path) -> Result<Box<dyn Network>> + Send + Sync>;

/// The builder of `spec`'s model.
pub fn network_builder(spec: &ModelSpec) -> NetworkBuilder {
    let spec = spec.clone();
    Arc::new(move |vs: &nn::Path| -> Result<Box<dyn Network>> { Ok(Box::new(Model::build(vs, &spec)?)) })
}

/// How every replica is set up.
#[derive(Clone)]
pub struct ReplicaSetup {
    pub build: NetworkBuilder,
    pub sgd: SgdConfig,
    pub label_smoothing: f64,
    /// libtorch intra-op threads in each replica's thread (the setting is per thread).
    pub threads: i32,
}

/// What every replica starts from: named CPU tensors (weights and BN statistics, as a VarStore names
/// them) and, when resuming, the momentum buffers.
pub struct StartState {
    pub weights: NamedTensors,
    pub optimizer: Option<NamedTensors>,
}

/// One replica, owned by its thread.
struct Replica {
    device: Device,
    net: Box<dyn Network>,
    sgd: Sgd,
    /// Non-trainable variables (BN running statistics), sorted by name.
    buffers: NamedTensors,
    label_smoothing: f64,
}

fn variables(vs: &nn::VarStore) -> NamedTensors {
    vs.variables().into_iter().collect()
}

/// An owned CPU copy (a CPU tensor's `to_device` would alias the live variable).
fn cpu_copy(t: &Tensor) -> Tensor {
    if t.device() == Device::Cpu {
        t.detach().copy()
    } else {
        t.detach().to_device(Device::Cpu)
    }
}

impl Replica {
    fn new(device: Device, setup: &ReplicaSetup, start: &StartState) -> Result<Replica> {
        let vs = nn::VarStore::new(device);
        let net = (setup.build)(&vs.root())?;
        let vars = variables(&vs);
        copy_named(&vars, &start.weights, "weights")?;
        let (trainable, buffers): (NamedTensors, NamedTensors) = vars.into_iter().partition(|(_, t)| t.requires_grad());
        let mut sgd = Sgd::new(trainable.into_iter().collect(), setup.sgd.clone())?;
        if let Some(optimizer) = &start.optimizer {
            sgd.load_state(&optimizer.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect::<Vec<_>>())?;
        }
        Ok(Replica { device, net, sgd, buffers, label_smoothing: setup.label_smoothing })
    }

    /// The flat gradient of the shard's mean loss times `weight` (its share of the global batch).
    fn gradient(&self, images: &Tensor, labels: &Tensor, weight: f64) -> Result<(Tensor, ClassificationStats)> {
        let images = images.to_device(self.device);
        let labels = labels.to_device(self.device);
        let logits = self.net.forward_t(&images, true)?;
        let loss = cross_entropy(&logits, &labels, self.label_smoothing);
        let grads = Tensor::f_run_backward(&[&loss], self.sgd.params(), false, false)?;
        let mut flat = self.sgd.flatten(&grads);
        if weight != 1.0 {
            let _ = flat.g_mul_scalar_(weight);
        }
        // Read back after queueing the backward pass, so that a GPU is not left idle waiting for it.
        Ok((flat, ClassificationStats::of_batch(&loss, &logits, &labels)?))
    }

    fn evaluate(&self, images: &Tensor, labels: &Tensor) -> Result<ClassificationStats> {
        tch::no_grad(|| {
            let images = images.to_device(self.device);
            let labels = labels.to_device(self.device);
            let logits = self.net.forward_t(&images, false)?;
            ClassificationStats::of_batch(&cross_entropy(&logits, &labels, 0.0), &logits, &labels)
        })
    }

    fn flat_buffers(&self) -> Option<Tensor> {
        (!self.buffers.is_empty())
            .then(|| Tensor::cat(&self.buffers.iter().map(|(_, t)| t.view(-1)).collect::<Vec<_>>(), 0))
    }

    fn set_flat_buffers(&mut self, flat: &Tensor) {
        tch::no_grad(|| {
            let mut offset = 0;
            for (_, t) in &mut self.buffers {
                let n = t.numel() as i64;
                t.copy_(&flat.narrow(0, offset, n).view(t.size().as_slice()));
                offset += n;
            }
        });
    }

    /// CPU copies of every variable (sorted by name) and of the momentum buffers.
    fn snapshot(&self) -> (NamedTensors, NamedTensors) {
        let mut weights: NamedTensors =
            self.sgd.names().map(str::to_string).zip(self.sgd.params().iter().map(cpu_copy)).collect();
        weights.extend(self.buffers.iter().map(|(n, t)| (n.clone(), cpu_copy(t))));
        let optimizer = self.sgd.state().into_iter().map(|(n, t)| (n, cpu_copy(&t))).collect();
        (weights, optimizer)
    }
}

/// Copies `source` values into `vars` by name; every variable needs a value of its shape.
fn copy_named(vars: &NamedTensors, source: &NamedTensors, what: &str) -> Result<()> {
    tch::no_grad(|| {
        for (name, var) in vars {
            let src = super::checkpoint::find(source, name, what)?;
            ensure!(
                src.size() == var.size(),
                "{what}: {name} has shape {:?}, the model has {:?}",
                src.size(),
                var.size()
            );
            var.shallow_clone().f_copy_(&src.to_kind(var.kind()))?;
        }
        Ok(())
    })
}

type Job = Box<dyn FnOnce(&mut Replica) + Send>;

struct Worker {
    device: Device,
    /// The replica's own thread (None for a replica run inline, or once stopped).
    jobs: Option<Sender<Job>>,
    handle: Option<JoinHandle<()>>,
}

/// The replicas of one run, one per device, driven from the calling thread.
pub struct Replicas {
    workers: Vec<Worker>,
    /// A lone replica, run in the calling thread instead of a thread of its own (see the module's notes).
    inline: Option<RefCell<Replica>>,
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

impl Replicas {
    /// Starts one replica per device, all holding the same `start` state.
    pub fn start(devices: &[Device], setup: ReplicaSetup, start: StartState) -> Result<Replicas> {
        ensure!(!devices.is_empty(), "devices: expected at least one device");
        for &device in devices {
            crate::device::check(device)?;
        }
        if let [device] = devices {
            tch::set_num_threads(setup.threads);
            let replica = Replica::new(*device, &setup, &start).with_context(|| format!("replica 0 on {device:?}"))?;
            let worker = Worker { device: *device, jobs: None, handle: None };
            return Ok(Replicas { workers: vec![worker], inline: Some(RefCell::new(replica)) });
        }
        let initial = Arc::new(std::sync::Mutex::new(start));
        let mut workers = Vec::new();
        let (ready_tx, ready_rx) = channel::<(usize, Result<()>)>();
        for (index, &device) in devices.iter().enumerate() {
            let (jobs_tx, jobs_rx) = channel::<Job>();
            let (setup, initial, ready) = (setup.clone(), initial.clone(), ready_tx.clone());
            let handle = std::thread::Builder::new()
                .name(format!("replica-{index}"))
                .spawn(move || {
                    tch::set_num_threads(setup.threads);
                    let built = catch_unwind(AssertUnwindSafe(|| {
                        // Tensors are not Sync: each thread reads the shared initial values under the lock.
                        let initial = initial.lock().map_err(|_| anyhow!("initial weights lock poisoned"))?;
                        Replica::new(device, &setup, &initial)
                    }))
                    .unwrap_or_else(|p| Err(anyhow!("panicked: {}", panic_message(p))));
                    let mut replica = match built {
                        Ok(r) => {
                            let _ = ready.send((index, Ok(())));
                            r
                        }
                        Err(e) => {
                            let _ = ready.send((index, Err(e)));
                            return;
                        }
                    };
                    drop(ready);
                    for job in jobs_rx {
                        job(&mut replica);
                    }
                })
                .context("starting a replica thread")?;
            workers.push(Worker { device, jobs: Some(jobs_tx), handle: Some(handle) });
        }
        drop(ready_tx);
        let replicas = Replicas { workers, inline: None };
        for (index, result) in ready_rx.iter() {
            result.with_context(|| format!("replica {index} on {:?}", replicas.workers[index].device))?;
        }
        Ok(replicas)
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Runs `make(i)` on replica i (for each i in `which`), in parallel, and returns the results in order.
    fn run<R: Send + 'static>(
        &self,
        which: &[usize],
        mut make: impl FnMut(usize) -> Box<dyn FnOnce(&mut Replica) -> Result<R> + Send>,
    ) -> Result<Vec<R>> {
        if let Some(replica) = &self.inline {
            return which
                .iter()
                .map(|&i| {
                    let f = make(i);
                    catch_unwind(AssertUnwindSafe(|| f(&mut replica.borrow_mut())))
                        .unwrap_or_else(|p| Err(anyhow!("libtorch error: {}", panic_message(p))))
                        .with_context(|| format!("replica {i} on {:?}", self.workers[i].device))
                })
                .collect();
        }
        let (tx, rx) = channel::<(usize, Result<R>)>();
        for &i in which {
            let f = make(i);
            let tx = tx.clone();
            let job: Job = Box::new(move |replica: &mut Replica| {
                let result = catch_unwind(AssertUnwindSafe(|| f(replica)))
                    .unwrap_or_else(|p| Err(anyhow!("libtorch error: {}", panic_message(p))));
                let _ = tx.send((i, result));
            });
            let sender = self.workers[i].jobs.as_ref().ok_or_else(|| anyhow!("replica {i} is stopped"))?;
            sender.send(job).map_err(|_| anyhow!("replica {i} on {:?} has stopped", self.workers[i].device))?;
        }
        drop(tx);
        let mut results: Vec<Option<R>> = (0..self.workers.len()).map(|_| None).collect();
        for (i, result) in rx.iter() {
            results[i] = Some(result.with_context(|| format!("replica {i} on {:?}", self.workers[i].device))?);
        }
        which
            .iter()
            .map(|&i| {
                results[i]
                    .take()
                    .ok_or_else(|| anyhow!("replica {i} on {:?} stopped without answering", self.workers[i].device))
            })
            .collect()
    }

    fn all(&self) -> Vec<usize> {
        (0..self.workers.len()).collect()
    }

    /// Shard sizes of a batch of `n`: as equal as possible, the first shards one larger.
    fn shards(&self, n: usize) -> Vec<(usize, usize)> {
        let k = self.workers.len();
        let mut start = 0;
        (0..k)
            .map(|i| {
                let len = n / k + usize::from(i < n % k);
                let shard = (start, len);
                start += len;
                shard
            })
            .collect()
    }

    /// The gradient of the global batch's mean loss: each replica's shard gradient weighted by its share,
    /// summed in replica order on the first replica's device. Returns it with the batch's statistics.
    pub fn reduced_gradient(&self, images: &Tensor, labels: &Tensor) -> Result<(Tensor, ClassificationStats)> {
        let n = labels.size()[0] as usize;
        let shards = self.shards(n);
        ensure!(shards.iter().all(|s| s.1 > 0), "a batch of {n} cannot feed {} replicas", self.workers.len());
        let outputs = self.run(&self.all(), |i| {
            let (start, len) = shards[i];
            let (x, y) = (images.narrow(0, start as i64, len as i64), labels.narrow(0, start as i64, len as i64));
            let weight = len as f64 / n as f64;
            Box::new(move |r: &mut Replica| r.gradient(&x, &y, weight))
        })?;
        let reduce_device = self.workers[0].device;
        let mut stats = ClassificationStats::default();
        let mut sum: Option<Tensor> = None;
        for (grad, s) in outputs {
            stats.add(s);
            let grad = grad.to_device(reduce_device);
            sum = Some(match sum {
                None => grad,
                Some(acc) => acc + grad,
            });
        }
        Ok((sum.expect("at least one replica"), stats))
    }

    /// One training step on a global batch at rate `lr`. A batch whose loss is not finite is not applied
    /// (the statistics say so), so the replicas keep their last good state.
    pub fn train_step(&self, images: &Tensor, labels: &Tensor, lr: f64) -> Result<ClassificationStats> {
        let (grad, stats) = self.reduced_gradient(images, labels)?;
        if !stats.loss_sum.is_finite() {
            return Ok(stats);
        }
        self.run(&self.all(), |i| {
            let device = self.workers[i].device;
            // Replicas on the reduce device share the sum (they only read it); others get a copy.
            let grad = if grad.device() == device { grad.shallow_clone() } else { grad.to_device(device) };
            Box::new(move |r: &mut Replica| {
                r.sgd.step(&grad, lr);
                Ok(())
            })
        })?;
        Ok(stats)
    }

    /// Evaluation-mode loss and errors of a batch, split over the replicas (call [`sync_buffers`] first).
    pub fn evaluate(&self, images: &Tensor, labels: &Tensor) -> Result<ClassificationStats> {
        let shards = self.shards(labels.size()[0] as usize);
        let which: Vec<usize> = (0..shards.len()).filter(|&i| shards[i].1 > 0).collect();
        let outputs = self.run(&which, |i| {
            let (start, len) = shards[i];
            let (x, y) = (images.narrow(0, start as i64, len as i64), labels.narrow(0, start as i64, len as i64));
            Box::new(move |r: &mut Replica| r.evaluate(&x, &y))
        })?;
        let mut stats = ClassificationStats::default();
        outputs.into_iter().for_each(|s| stats.add(s));
        Ok(stats)
    }

    /// Sets every replica's BN running statistics to their mean over the replicas.
    pub fn sync_buffers(&self) -> Result<()> {
        if self.workers.len() == 1 {
            return Ok(());
        }
        let flats = self.run(&self.all(), |_| Box::new(|r: &mut Replica| Ok(r.flat_buffers())))?;
        let reduce_device = self.workers[0].device;
        let flats: Vec<Tensor> = flats.into_iter().flatten().map(|t| t.to_device(reduce_device)).collect();
        if flats.is_empty() {
            return Ok(());
        }
        let mean = Tensor::stack(&flats, 0).mean_dim(0, false, Kind::Float);
        self.run(&self.all(), |i| {
            let mean = mean.to_device(self.workers[i].device).copy();
            Box::new(move |r: &mut Replica| {
                r.set_flat_buffers(&mean);
                Ok(())
            })
        })?;
        Ok(())
    }

    /// CPU copies of replica `i`'s variables (weights and BN statistics) and momentum buffers.
    pub fn snapshot(&self, i: usize) -> Result<(NamedTensors, NamedTensors)> {
        Ok(self.run(&[i], |_| Box::new(|r: &mut Replica| Ok(r.snapshot())))?.remove(0))
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            worker.jobs.take();
        }
        for worker in &mut self.workers {
            if let Some(handle) = worker.handle.take() {
                let _ = handle.join();
            }
        }
    }
}
