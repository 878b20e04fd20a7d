//! One training run, resolved once. A run file (`sk-exp train --config`, flags, `--set`) or an experiment's
//! sweep point is a YAML tree until [`ResolvedRun::from_tree`]; from then on it is this typed value: the
//! model's whole spec, the data, the full recipe (preset merged), the seed, and where and how it executes.
//! The trainer, the experiment runner, eval, export and the analysis read it; the run folder keeps it as
//! its one run file (see [`super::run_dir::RunDir`]).
use super::recipe::Recipe;
use super::tensorboard::TensorBoardConfig;
use crate::data::DataSpec;
use crate::models::{registry, ModelSpec};
use crate::overrides::set_dotted;
use crate::precision::{Compute, LossScaling, MemoryFormat, Precision};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use yaml_serde::{Mapping, Value};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResolvedRun {
    pub model: ResolvedModel,
    #[serde(default)]
    pub data: DataSpec,
    /// Relative data paths are taken from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_root: Option<PathBuf>,
    pub recipe: Recipe,
    /// One rank (process) per entry: `cpu`, `cuda`, `cuda:N`; the global batch is split over them.
    #[serde(default = "default_devices")]
    pub devices: Vec<String>,
    #[serde(default)]
    pub seed: u64,
    /// Default: runs/<model>_s<seed>.
    pub out_dir: PathBuf,
    /// Data loading threads; default by data set ([`DataSpec::default_workers`]), see [`ResolvedRun::workers`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// libtorch intra-op threads per rank; default libtorch's choice. Exact resume needs the same count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<i32>,
    /// `contiguous` or `channels_last` for inputs and convolution weights; default channels_last on CUDA,
    /// contiguous on the CPU. A resumed run may change it (the values agree within rounding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_format: Option<MemoryFormat>,
    /// CUDA: deterministic cuDNN algorithms instead of autotuned ones (slower; a resume then repeats the
    /// run's arithmetic). The CPU path is deterministic either way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deterministic: bool,
    /// Processes training together (data parallel); the per-rank batch is `recipe.batch_size / world_size`.
    /// Set by the trainer (one per device, or torchrun's WORLD_SIZE), not by run files.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub world_size: usize,
    /// TensorBoard event files in the run folder (`tensorboard: {enabled: false}` turns them off). Not part
    /// of the run: a resume may change it.
    #[serde(default, skip_serializing_if = "TensorBoardConfig::is_default")]
    pub tensorboard: TensorBoardConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResolvedModel {
    /// The registered model the spec starts from (`sk-exp models`); it names runs and figure legends.
    pub name: String,
    pub spec: ModelSpec,
    /// The run file set `num_classes`; otherwise the class count follows the data ([`ResolvedRun::bind_classes`]).
    #[serde(skip)]
    pub fixed_classes: bool,
}

/// The run file's `model:` section as written: a registered name and spec fields to change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelChoice {
    name: String,
    #[serde(default)]
    overrides: Option<Value>,
}

/// The most threads a run may ask for, of either kind (data loading, libtorch's intra-op pool).
pub const MAX_THREADS: usize = 1024;

fn default_devices() -> Vec<String> {
    vec!["cpu".into()]
}
fn one() -> usize {
    1
}
fn is_one(n: &usize) -> bool {
    *n == 1
}

impl ResolvedRun {
    /// Resolves a run file's tree: the registered model with its overrides, and the recipe from
    /// `recipe.preset: NAME` (cifar10, cifar100, imagenet, imagenet_light; by default the one for the
    /// model's input size: 32 -> cifar10, else imagenet) changed by the recipe's other keys.
    pub fn from_tree(tree: Value) -> Result<ResolvedRun> {
        let mut tree = if tree.is_null() { Value::Mapping(Mapping::new()) } else { tree };
        let map = tree.as_mapping_mut().context("run config: expected a mapping with model, data, recipe, ...")?;
        let choice: ModelChoice = map
            .remove("model")
            .map(yaml_serde::from_value)
            .transpose()
            .context("model")?
            .context("run config: 'model' is missing (e.g. model: {name: sknet29})")?;
        let spec = registry::resolve(&choice.name, choice.overrides.as_ref())?;
        let fixed_classes = choice.overrides.as_ref().and_then(|o| o.get("num_classes")).is_some();
        let recipe = resolve_recipe(map.remove("recipe"), &spec)?;
        if !map.contains_key("out_dir") {
            let seed = map.get("seed").and_then(Value::as_u64).unwrap_or(0);
            map.insert("out_dir".into(), format!("runs/{}_s{seed}", choice.name).into());
        }
        if let Some(value) = map.get("memory_format") {
            yaml_serde::from_value::<MemoryFormat>(value.clone()).map_err(|_| {
                anyhow::anyhow!("memory_format: expected contiguous or channels_last, got {}", show_value(value))
            })?;
        }
        let model = ResolvedModel { name: choice.name, spec, fixed_classes };
        map.insert("model".into(), yaml_serde::to_value(&model)?);
        map.insert("recipe".into(), yaml_serde::to_value(&recipe)?);
        let run = ResolvedRun { model, ..yaml_serde::from_value(tree).context("run config")? };
        run.data.check()?;
        ensure!(!run.devices.is_empty(), "devices: expected at least one device (cpu, cuda:0, ...)");
        if let Some(workers) = run.workers {
            ensure!(workers <= MAX_THREADS, "workers: expected at most {MAX_THREADS}, got {workers}");
        }
        if let Some(threads) = run.threads {
            ensure!((1..=MAX_THREADS as i32).contains(&threads), "threads: expected 1 to {MAX_THREADS}, got {threads}");
        }
        Ok(run)
    }

    /// Data loading threads: the run file's `workers`, else the data set's default. The batches are the same
    /// for any number (the loader is deterministic), so this changes speed only.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| self.data.default_workers())
    }

    /// Sets the model's class count to the data set's `classes`, unless the run file fixed it (then the
    /// two must agree).
    pub fn bind_classes(&mut self, classes: i64) -> Result<()> {
        let spec = &mut self.model.spec;
        if self.model.fixed_classes {
            ensure!(
                spec.num_classes() == classes,
                "model.overrides.num_classes: {} classes, but the data set has {classes}",
                spec.num_classes()
            );
            return Ok(());
        }
        let mut change = Mapping::new();
        change.insert("num_classes".into(), Value::from(classes));
        *spec = crate::overrides::merge(spec, &Value::Mapping(change), "model")?;
        Ok(())
    }

    /// The run's identity as canonical YAML: what decides the trained weights and numbers, and nothing
    /// else. In it: the model's spec without its class count (which follows the data, or must agree with
    /// it), the data section with its root taken from the data root, the full recipe, the seed and the
    /// number of ranks it trains on. Not in it: the model's registered name (two names for one spec train
    /// the same network), devices, threads, workers and the output folder (a resume may change them too).
    pub fn identity(&self) -> Result<String> {
        let mut spec = yaml_serde::to_value(&self.model.spec)?;
        if let Some(map) = spec.as_mapping_mut() {
            map.remove("num_classes");
        }
        let mut data = self.data.clone();
        let root = match &mut data {
            DataSpec::Synthetic(_) => None,
            DataSpec::Cifar(c) => Some(&mut c.root),
            DataSpec::Folder(f) => Some(&mut f.root),
        };
        if let Some(root) = root {
            *root = crate::data::spec::resolve(root, self.data_root.as_deref());
        }
        // An experiment's run is resolved with one rank per device before the trainer sets world_size.
        let ranks = if self.world_size == 1 { self.devices.len() } else { self.world_size };
        let identity = Mapping::from_iter([
            ("spec".into(), spec),
            ("data".into(), yaml_serde::to_value(&data)?),
            ("recipe".into(), yaml_serde::to_value(&self.recipe)?),
            ("seed".into(), Value::from(self.seed)),
            ("world_size".into(), Value::from(ranks as u64)),
        ]);
        Ok(yaml_serde::to_string(&identity)?)
    }

    /// [`Self::identity`] as 16 hex digits (a 64-bit FNV-1a hash of it): results.csv's `config_id`.
    pub fn config_id(&self) -> Result<String> {
        Ok(format!("{:016x}", fnv1a64(self.identity()?.as_bytes())))
    }

    /// The precision, layout and cuDNN choice of this run's forward and backward passes on `device`.
    pub fn compute(&self, device: tch::Device) -> Compute {
        Compute {
            precision: self.recipe.precision,
            channels_last: MemoryFormat::or_default_for(self.memory_format, device) == MemoryFormat::ChannelsLast,
            deterministic: self.deterministic,
            loss_scaling: LossScaling::default(),
        }
    }

    /// Fails unless `saved` (the run being resumed) is the same run: same model, data, recipe, seed and
    /// world size (unless `new_world_size`). Devices, threads, workers and paths may change between sessions.
    pub fn check_resumes(&self, saved: &ResolvedRun, new_world_size: bool) -> Result<()> {
        if !new_world_size && saved.world_size != self.world_size {
            let per_rank = |world: usize| self.recipe.batch_size / world.max(1);
            bail!(
                "the run was trained by {} rank(s) ({} images per rank), this session has {} ({} per rank); resume with {} rank(s), or pass --new-world-size to continue anyway",
                saved.world_size,
                per_rank(saved.world_size),
                self.world_size,
                per_rank(self.world_size),
                saved.world_size
            );
        }
        let parts: [(&str, Value, Value); 4] = [
            ("model", yaml_serde::to_value(&saved.model)?, yaml_serde::to_value(&self.model)?),
            ("data", yaml_serde::to_value(&saved.data)?, yaml_serde::to_value(&self.data)?),
            ("recipe", recipe_tree(&saved.recipe)?, recipe_tree(&self.recipe)?),
            ("seed", Value::from(saved.seed), Value::from(self.seed)),
        ];
        // The model's name and spec; whether the run file fixed the class count is not part of the run.
        let same = (&saved.model.name, &saved.model.spec) == (&self.model.name, &self.model.spec)
            && saved.data == self.data
            && saved.recipe == self.recipe
            && saved.seed == self.seed;
        if same {
            return Ok(());
        }
        // The typed comparison decides; the trees only name the first field that differs.
        let what = parts
            .iter()
            .find_map(|(name, was, now)| first_difference(name, was, now))
            .unwrap_or_else(|| "the settings differ".into());
        bail!("{what}; resume with the same settings or choose another output directory")
    }
}

/// The 64-bit FNV-1a hash: fixed by its definition, unlike std's hashers, so ids stay stable across builds.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A YAML value on one line, for messages.
fn show_value(value: &Value) -> String {
    yaml_serde::to_string(value).unwrap_or_default().trim().replace('\n', " ")
}

/// The recipe as a tree with its precision written out (run files leave fp32 out), so that a resume at
/// another precision is named as such.
fn recipe_tree(recipe: &Recipe) -> Result<Value> {
    let mut tree = yaml_serde::to_value(recipe)?;
    if let Some(map) = tree.as_mapping_mut() {
        map.insert("precision".into(), yaml_serde::to_value(recipe.precision)?);
    }
    Ok(tree)
}

/// The recipe section: a preset (named, or chosen by the model's input size) with the section's keys over it.
fn resolve_recipe(section: Option<Value>, spec: &ModelSpec) -> Result<Recipe> {
    let mut changes = match section {
        Some(Value::Mapping(map)) => map,
        Some(Value::Null) | None => Mapping::new(),
        Some(other) => bail!("recipe: expected a mapping, got {other:?}"),
    };
    if let Some(value) = changes.get("precision") {
        let known = value.as_str().is_some_and(|text| text.parse::<Precision>().is_ok());
        ensure!(known, "recipe.precision: expected fp32, bf16 or fp16, got {}", show_value(value));
    }
    let preset = match changes.remove("preset") {
        Some(Value::String(name)) => name,
        Some(other) => bail!("recipe.preset: expected a preset name, got {other:?}"),
        None => (if spec.input_size() == 32 { "cifar10" } else { "imagenet" }).to_string(),
    };
    let mut tree = yaml_serde::to_value(Recipe::preset(&preset)?)?;
    // A schedule of another kind replaces the preset's whole: the preset's kind-specific fields (a multistep
    // schedule's `fractions`) go with its kind. Of the same kind, the section's keys change the preset's.
    let kind = changes.get("schedule").and_then(|s| s.get("kind")).cloned();
    if let (Some(kind), Some(map)) = (kind, tree.as_mapping_mut()) {
        if map.get("schedule").and_then(|s| s.get("kind")) != Some(&kind) {
            map.insert("schedule".into(), Value::Mapping(Mapping::from_iter([("kind".into(), kind)])));
        }
    }
    crate::overrides::merge_values(&mut tree, &Value::Mapping(changes));
    let recipe: Recipe = yaml_serde::from_value(tree).context("recipe: invalid override")?;
    recipe.validate()?;
    Ok(recipe)
}

/// `--set` and sweep assignments (`key=value`, dotted keys with `[i]` indices) applied to a run file's tree:
/// model names first, then the model's spec fields (`model.x` is short for `model.overrides.x`; the whole
/// spec is written into `model.overrides` first, so that any field, list entries included, can be reached),
/// then the rest. The one grammar for `sk-exp train --set` and experiment sweeps.
pub fn apply_assignments(tree: &mut Value, assignments: &[(String, Value)]) -> Result<()> {
    let normalised: Vec<(String, &Value)> = assignments.iter().map(|(k, v)| (normalise_key(k), v)).collect();
    for (key, value) in normalised.iter().filter(|(k, _)| k == "model.name") {
        set_dotted(tree, key, (*value).clone())?;
    }
    if normalised.iter().any(|(k, _)| k.starts_with("model.overrides.")) {
        materialise_model_spec(tree)?;
    }
    for (key, value) in normalised.iter().filter(|(k, _)| k != "model.name") {
        set_dotted(tree, key, (*value).clone())?;
    }
    Ok(())
}

/// `model.sk.x` is short for `model.overrides.sk.x`: every model key but `name` and `overrides` is a spec field.
fn normalise_key(key: &str) -> String {
    match key.strip_prefix("model.") {
        Some(rest) if !(rest == "name" || rest.starts_with("name.") || rest.starts_with("overrides")) => {
            format!("model.overrides.{rest}")
        }
        _ => key.to_string(),
    }
}

/// Writes the model's whole spec into `model.overrides` (keeping the class count free, so that it still
/// follows the data), so that dotted keys can reach any spec field, list entries included.
fn materialise_model_spec(tree: &mut Value) -> Result<()> {
    let name = tree
        .get("model")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .context("model.name: a run needs a model name before its spec fields can be set")?
        .to_string();
    let overrides = tree.get("model").and_then(|m| m.get("overrides")).filter(|o| !o.is_null()).cloned();
    let explicit_classes = overrides.as_ref().and_then(|o| o.get("num_classes")).is_some();
    let spec = registry::resolve(&name, overrides.as_ref())?;
    let mut spec_tree = yaml_serde::to_value(&spec)?;
    if let (Some(map), false) = (spec_tree.as_mapping_mut(), explicit_classes) {
        map.remove("num_classes");
    }
    set_dotted(tree, "model.overrides", spec_tree)
}

/// Names the first (dotted) key under `path` whose value differs between the saved run and this one.
fn first_difference(path: &str, saved: &Value, now: &Value) -> Option<String> {
    let show = |v: Option<&Value>| v.map_or("nothing".into(), show_value);
    let (Some(a), Some(b)) = (saved.as_mapping(), now.as_mapping()) else {
        return (saved != now).then(|| {
            format!("'{path}' is {} in the run being resumed but {} now", show(Some(saved)), show(Some(now)))
        });
    };
    let keys = b.keys().chain(a.keys().filter(|k| !b.contains_key(*k)));
    keys.into_iter().find_map(|key| {
        let child = format!("{path}.{}", key.as_str().unwrap_or("?"));
        match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) => first_difference(&child, x, y),
            (x, y) => Some(format!("'{child}' is {} in the run being resumed but {} now", show(x), show(y))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(yaml: &str) -> Result<ResolvedRun> {
        ResolvedRun::from_tree(yaml_serde::from_str(yaml).unwrap())
    }

    #[test]
    fn presets_fill_the_recipe_and_keys_change_it() {
        let c =
            parse("model: {name: sknet29}\nrecipe: {preset: cifar100, epochs: 2}\ndevices: [cuda:0, cuda:1]").unwrap();
        assert_eq!((c.recipe.lr, c.recipe.epochs, c.recipe.batch_size), (0.05, 2, 128));
        assert_eq!(c.devices, vec!["cuda:0", "cuda:1"]);
        let imagenet = parse("model: {name: sknet50}").unwrap();
        assert_eq!(imagenet.recipe, Recipe::preset("imagenet").unwrap());
        assert_eq!(parse("model: {name: sknet29}").unwrap().recipe, Recipe::preset("cifar10").unwrap());
        let partial = parse("model: {name: sknet29}\nrecipe: {epochs: 3, nesterov: true}").unwrap();
        assert_eq!((partial.recipe.epochs, partial.recipe.nesterov, partial.recipe.lr), (3, true, 0.1));
        assert_eq!(partial.out_dir, Path::new("runs/sknet29_s0"));
    }

    #[test]
    fn mistakes_name_the_field() {
        let err = format!("{:#}", parse("model: {name: sknet29}\nrecipe: {preset: cifar10, lr: -1}").unwrap_err());
        assert!(err.contains("recipe.lr"), "{err}");
        let err = format!("{:#}", parse("model: {name: sknet29}\nrecipe: {preset: cifar10, epoch: 3}").unwrap_err());
        assert!(err.contains("epoch"), "{err}");
        let err = format!("{:#}", parse("model: {name: sknet29}\nseeds: 3").unwrap_err());
        assert!(err.contains("seeds"), "{err}");
        let err = format!("{:#}", parse("model: {name: nosuchnet}").unwrap_err());
        assert!(err.contains("unknown model 'nosuchnet'"), "{err}");
        let err = format!("{:#}", parse("seed: 3").unwrap_err());
        assert!(err.contains("'model' is missing"), "{err}");
    }

    #[test]
    fn the_class_count_follows_the_data_unless_overridden() {
        let mut c = parse("model: {name: sknet29}").unwrap();
        c.bind_classes(100).unwrap();
        assert_eq!(c.model.spec.num_classes(), 100);
        let mut fixed = parse("model: {name: sknet29, overrides: {num_classes: 10}}").unwrap();
        assert!(fixed.bind_classes(100).unwrap_err().to_string().contains("the data set has 100"));
    }

    #[test]
    fn a_resume_must_be_the_same_run_but_may_run_elsewhere() {
        let a = parse("model: {name: sknet29}\ndevices: [cpu]\nthreads: 2").unwrap();
        let b = parse("model: {name: sknet29}\ndevices: [cpu, cpu]\nworkers: 7\nout_dir: elsewhere").unwrap();
        a.check_resumes(&b, false).unwrap();
        let c = parse("model: {name: sknet29}\nseed: 4").unwrap();
        let err = c.check_resumes(&a, false).unwrap_err().to_string();
        assert!(err.contains("'seed' is 0 in the run being resumed but 4 now"), "{err}");
        let d = parse("model: {name: sknet29}\nrecipe: {lr: 0.2}").unwrap();
        let err = d.check_resumes(&a, false).unwrap_err().to_string();
        assert!(err.contains("'recipe.lr' is 0.1 in the run being resumed but 0.2 now"), "{err}");
        // Precision is part of the run (checkpoints are fp32, but the trajectory is not); layout is not.
        let bf16 = parse("model: {name: sknet29}\nrecipe: {precision: bf16}\nmemory_format: channels_last").unwrap();
        let err = bf16.check_resumes(&a, false).unwrap_err().to_string();
        assert!(err.contains("'recipe.precision' is fp32 in the run being resumed but bf16 now"), "{err}");
        let cl = parse("model: {name: sknet29}\nmemory_format: channels_last\ndeterministic: true").unwrap();
        cl.check_resumes(&a, false).unwrap();
        assert!(cl.compute(tch::Device::Cpu).channels_last && !a.compute(tch::Device::Cpu).channels_last);
        assert!(a.compute(tch::Device::Cuda(0)).channels_last && cl.compute(tch::Device::Cpu).deterministic);
        let err = format!("{:#}", parse("model: {name: sknet29}\nrecipe: {precision: half}").unwrap_err());
        assert!(err.contains("recipe.precision: expected fp32, bf16 or fp16, got half"), "{err}");
        let err = format!("{:#}", parse("model: {name: sknet29}\nmemory_format: nhwc").unwrap_err());
        assert!(err.contains("memory_format") && err.contains("channels_last"), "{err}");
        // A run file read back resumes its run, also where the class count was fixed.
        let fixed = parse("model: {name: sknet29, overrides: {num_classes: 10}}").unwrap();
        let back: ResolvedRun = yaml_serde::from_str(&yaml_serde::to_string(&fixed).unwrap()).unwrap();
        fixed.check_resumes(&back, false).unwrap();
    }

    #[test]
    fn the_identity_follows_every_training_field_and_nothing_else() {
        let id = |yaml: &str| parse(yaml).unwrap().config_id().unwrap();
        let base = id("model: {name: sknet29}\ndata: {kind: cifar, root: c10}");
        assert_eq!(base.len(), 16);
        // Where and how it runs, and the class count bound to the data, leave it alone.
        assert_eq!(
            id("model: {name: sknet29}\ndata: {kind: cifar, root: c10}\nworkers: 9\nthreads: 3\nout_dir: x"),
            base
        );
        let mut bound = parse("model: {name: sknet29}\ndata: {kind: cifar, root: c10}").unwrap();
        bound.bind_classes(10).unwrap();
        assert_eq!(bound.config_id().unwrap(), base);
        // Each training field changes it; the data root is part of the data's path.
        for changed in [
            "model: {name: sknet29}\ndata: {kind: cifar, root: c10}\nseed: 1",
            "model: {name: sknet29}\ndata: {kind: cifar, root: c10}\nrecipe: {lr: 0.2}",
            "model: {name: sknet29}\ndata: {kind: cifar, root: c10}\nrecipe: {epochs: 299}",
            "model: {name: sknet29, overrides: {sk: {reduction: 8}}}\ndata: {kind: cifar, root: c10}",
            "model: {name: sknet29}\ndata: {kind: cifar, root: c100}",
            "model: {name: sknet29}\ndata: {kind: cifar, root: c10}\ndata_root: /elsewhere",
            "model: {name: sknet29}\ndata: {kind: cifar, root: c10}\ndevices: [cpu, cpu]",
        ] {
            assert_ne!(id(changed), base, "{changed}");
        }
        // Two ranks, whether from two devices or set by the trainer, are one identity.
        let mut ranks = parse("model: {name: sknet29}\ndata: {kind: cifar, root: c10}").unwrap();
        ranks.world_size = 2;
        assert_eq!(
            ranks.config_id().unwrap(),
            id("model: {name: sknet29}\ndata: {kind: cifar, root: c10}\ndevices: [cpu, cpu]")
        );
        // FNV-1a's published value for "a": the hash does not depend on the build.
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn the_run_file_round_trips_without_resolving_again() {
        let mut run = parse("model: {name: sknet29, overrides: {sk: {reduction: 8}}}\nseed: 3").unwrap();
        run.bind_classes(7).unwrap();
        let back: ResolvedRun = yaml_serde::from_str(&yaml_serde::to_string(&run).unwrap()).unwrap();
        assert_eq!(back.model.spec, run.model.spec);
        assert_eq!((back.seed, &back.recipe, &back.out_dir), (3, &run.recipe, &run.out_dir));
    }

    #[test]
    fn the_paper_cifar_run_file_splits_batch_128_over_two_gpus() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/train/sknet29_cifar10_2gpu.yaml");
        let c = parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(c.devices, vec!["cuda:0", "cuda:1"]);
        assert_eq!(c.recipe, Recipe::preset("cifar10").unwrap());
        assert_eq!((c.recipe.batch_size, c.recipe.epochs, c.recipe.lr), (128, 300, 0.1));
        assert!(matches!(c.data, DataSpec::Cifar(_)));
    }

    #[test]
    fn loader_threads_default_by_data_set_and_a_written_number_is_kept() {
        let cores = std::thread::available_parallelism().unwrap().get();
        let folder = parse("model: {name: sknet50}\ndata: {kind: folder, root: imagenet}").unwrap();
        assert_eq!(folder.workers(), (cores - 1).clamp(2, 8));
        let cifar = parse("model: {name: sknet29}\ndata: {kind: cifar, root: c10}").unwrap();
        assert_eq!((cifar.workers(), parse("model: {name: sknet29}").unwrap().workers()), (2, 2));
        // A run file that wrote its number (older ones wrote `workers: 2`) reads back with it.
        let old = parse("model: {name: sknet50}\ndata: {kind: folder, root: imagenet}\nworkers: 2").unwrap();
        assert_eq!(old.workers(), 2);
        let written = yaml_serde::to_string(&old).unwrap();
        let read: ResolvedRun = yaml_serde::from_str(&written).unwrap();
        assert_eq!(read.workers(), 2, "{written}");
        let unset: ResolvedRun = yaml_serde::from_str(&written.replace("workers: 2\n", "")).unwrap();
        assert_eq!(unset.workers(), folder.workers(), "{written}");
        // The default is not written, so the run keeps following the data set's default.
        assert!(!yaml_serde::to_string(&folder).unwrap().contains("workers"));
    }
}
