//! Our SGD against torch.optim.SGD (the venv's PyTorch): same parameters, same gradient sequence,
//! same learning rates; the parameters and momentum buffers must agree.
mod common;

use sk_exp::train::recipe::Recipe;
use sk_exp::train::sgd::{Sgd, SgdConfig};
use tch::{Device, Kind, Tensor};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn compare_with_torch(config: SgdConfig) {
    tch::manual_seed(11);
    let shapes: [(&str, &[i64]); 3] = [("conv.weight", &[4, 3, 3, 3]), ("bn.bias", &[4]), ("fc.weight", &[5, 4])];
    let lrs = [0.1, 0.1, 0.05, 0.01];
    // One folder per call: the tests run in parallel threads of one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = common::fresh_dir(&format!("sgd/{call}"));
    let mut files: Vec<(String, Tensor)> = Vec::new();
    let mut vars = Vec::new();
    for (name, shape) in shapes {
        let p = Tensor::randn(shape, (Kind::Float, Device::Cpu)).set_requires_grad(true);
        files.push((format!("param.{name}"), p.detach().copy()));
        vars.push((name.to_string(), p));
    }
    let mut grads = Vec::new();
    for step in 0..lrs.len() {
        let step_grads: Vec<Tensor> =
            shapes.iter().map(|(_, s)| Tensor::randn(*s, (Kind::Float, Device::Cpu))).collect();
        for ((name, _), g) in shapes.iter().zip(&step_grads) {
            files.push((format!("grad.{step}.{name}"), g.copy()));
        }
        grads.push(step_grads);
    }
    let input = dir.join("in.safetensors");
    let output = dir.join("out.safetensors");
    Tensor::write_safetensors(&files, &input).unwrap();

    let mut sgd = Sgd::new(vars.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect(), config.clone()).unwrap();
    for (step_grads, lr) in grads.iter().zip(lrs) {
        let flat = sgd.flatten(step_grads);
        sgd.step(&flat, lr);
    }

    let lr_list = lrs.map(|l| l.to_string()).join(",");
    let args = [
        input.display().to_string(),
        output.display().to_string(),
        config.momentum.to_string(),
        config.nesterov.to_string(),
        config.weight_decay.to_string(),
        config.wd_on_bn_bias.to_string(),
        lr_list,
    ];
    common::run_python("tests/python/sgd_reference.py", args);
    let reference: Vec<(String, Tensor)> = Tensor::read_safetensors(&output).unwrap();
    let get = |key: &str| &reference.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("{key} missing")).1;

    for (name, var) in &vars {
        // The variables themselves were stepped: they are views into the optimizer's flat buffer.
        let d = max_abs_diff(var, get(&format!("param.{name}")));
        assert!(d < 1e-6, "{config:?}: {name} differs from torch by {d}");
    }
    if config.momentum > 0.0 {
        for (name, buf) in sgd.state() {
            let d = max_abs_diff(&buf, get(&format!("momentum.{name}")));
            assert!(d < 1e-6, "{config:?}: momentum of {name} differs from torch by {d}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn momentum_with_weight_decay_on_everything_matches_torch() {
    compare_with_torch(SgdConfig { momentum: 0.9, nesterov: false, weight_decay: 5e-4, wd_on_bn_bias: true });
}

#[test]
fn momentum_with_1d_parameters_exempt_from_decay_matches_torch() {
    compare_with_torch(SgdConfig { momentum: 0.9, nesterov: false, weight_decay: 1e-2, wd_on_bn_bias: false });
}

#[test]
fn nesterov_with_1d_parameters_exempt_from_decay_matches_torch() {
    compare_with_torch(SgdConfig { momentum: 0.9, nesterov: true, weight_decay: 1e-2, wd_on_bn_bias: false });
}

/// `recipe.nesterov: true` on the CIFAR preset (the ResNeXt CIFAR recipe's Nesterov momentum, every
/// parameter decayed) steps as torch.optim.SGD(nesterov=True).
#[test]
fn cifar_recipe_with_nesterov_matches_torch() {
    let recipe = Recipe { nesterov: true, ..Recipe::preset("cifar10").unwrap() };
    recipe.validate().unwrap();
    compare_with_torch(recipe.sgd());
}

#[test]
fn plain_sgd_matches_torch() {
    compare_with_torch(SgdConfig { momentum: 0.0, nesterov: false, weight_decay: 0.0, wd_on_bn_bias: true });
}

#[test]
fn saved_momentum_restores_into_a_fresh_optimizer() {
    let config = SgdConfig { momentum: 0.9, nesterov: true, weight_decay: 1e-4, wd_on_bn_bias: false };
    let make = || {
        tch::manual_seed(5);
        let vars = vec![
            ("a".to_string(), Tensor::randn([3, 2], (Kind::Float, Device::Cpu)).set_requires_grad(true)),
            ("b".to_string(), Tensor::randn([2], (Kind::Float, Device::Cpu)).set_requires_grad(true)),
        ];
        Sgd::new(vars, config.clone()).unwrap()
    };
    let grad = |sgd: &Sgd, k: f64| {
        sgd.flatten(&[
            Tensor::ones([3, 2], (Kind::Float, Device::Cpu)) * k,
            Tensor::ones([2], (Kind::Float, Device::Cpu)) * -k,
        ])
    };
    let (mut straight, mut resumed) = (make(), make());
    for k in [1.0, 2.0] {
        let g = grad(&straight, k);
        straight.step(&g, 0.1);
        let g = grad(&resumed, k);
        resumed.step(&g, 0.1);
    }
    let saved: Vec<(String, Tensor)> = straight.state().into_iter().map(|(n, t)| (n, t.copy())).collect();
    let mut fresh = make();
    tch::no_grad(|| fresh.flat_params().shallow_clone().copy_(resumed.flat_params()));
    fresh.load_state(&saved).unwrap();
    let g = grad(&straight, 3.0);
    straight.step(&g, 0.05);
    let g = grad(&fresh, 3.0);
    fresh.step(&g, 0.05);
    assert!(straight.flat_params().equal(fresh.flat_params()), "resumed optimizer diverged");
    let missing = fresh.load_state(&saved[..1]).unwrap_err();
    assert!(missing.to_string().contains("no momentum buffer for b"), "{missing}");
}
