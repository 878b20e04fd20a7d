//! A run as plain data (`sk-exp train --config run.yaml`, flags, or a sweep point of an experiment file):
//! the model (a registered name plus spec overrides), the data, the recipe, the devices, the seed and the
//! output folder. [`RunConfig::run`] is the one entry point the command line and the experiment runner share.
use super::parallel::{Network, NetworkBuilder};
use super::recipe::Recipe;
use super::trainer::{self, Summary, TrainRun};
use crate::data::{self, DataSpec};
use crate::models::{registry, Model, ModelSpec};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yaml_serde::{Mapping, Value};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelChoice {
    /// A registered model (`sk-exp models` lists them).
    pub name: String,
    /// Spec fields to change, merged into the registered spec (e.g. `{sk: {reduction: 8}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub model: ModelChoice,
    #[serde(default)]
    pub data: DataSpec,
    /// Relative data paths are taken from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_root: Option<PathBuf>,
    pub recipe: Recipe,
    /// One replica per entry: `cpu`, `cuda`, `cuda:N`; the global batch is split over them.
    #[serde(default = "default_devices")]
    pub devices: Vec<String>,
    #[serde(default)]
    pub seed: u64,
    /// Default: runs/<model>_s<seed>.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_dir: Option<PathBuf>,
    /// Data loading threads.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// libtorch intra-op threads per replica; default libtorch's choice. Exact resume needs the same count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<i32>,
}

fn default_devices() -> Vec<String> {
    vec!["cpu".into()]
}
fn default_workers() -> usize {
    2
}

/// How a run is driven, beyond what it is.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub resume: bool,
    /// Stop after this many completed epochs, as if interrupted.
    pub stop_after: Option<usize>,
    pub progress: bool,
}

/// What [`RunConfig::run`] trained: the loop's summary and the model's spec, class count included (the
/// experiment runner counts its #params and MACs without opening the data again).
#[derive(Debug)]
pub struct Trained {
    pub summary: Summary,
    pub spec: ModelSpec,
}

impl RunConfig {
    /// A run config from a YAML tree. The recipe starts from a paper recipe, `recipe.preset: NAME`
    /// (cifar10, cifar100, imagenet, imagenet_light) or by default the one for the model's input size
    /// (32: cifar10, else imagenet), and the recipe's other keys change it.
    pub fn from_value(mut tree: Value) -> Result<RunConfig> {
        let map = tree.as_mapping_mut().context("run config: expected a mapping with model, data, recipe, ...")?;
        let (preset, changes) = match map.remove("recipe") {
            Some(Value::Mapping(mut r)) => match r.remove("preset") {
                Some(Value::String(name)) => (Some(name), Value::Mapping(r)),
                Some(other) => bail!("recipe.preset: expected a preset name, got {other:?}"),
                None => (None, Value::Mapping(r)),
            },
            Some(Value::Null) | None => (None, Value::Mapping(Mapping::new())),
            Some(other) => bail!("recipe: expected a mapping, got {other:?}"),
        };
        let preset = match preset {
            Some(name) => name,
            None => {
                let model: ModelChoice = map
                    .get("model")
                    .cloned()
                    .map(yaml_serde::from_value)
                    .transpose()
                    .context("model")?
                    .context("run config: 'model' is missing (e.g. model: {name: sknet29})")?;
                let native = resolve_model(&model)?.input_size();
                (if native == 32 { "cifar10" } else { "imagenet" }).to_string()
            }
        };
        let recipe = preset_with(&preset, &changes)?;
        map.insert("recipe".into(), recipe);
        let config: RunConfig = yaml_serde::from_value(tree).context("run config")?;
        config.recipe.validate()?;
        if config.devices.is_empty() {
            bail!("devices: expected at least one device (cpu, cuda:0, ...)");
        }
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<RunConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let tree: Value = yaml_serde::from_str(&text).with_context(|| format!("{}: not valid YAML", path.display()))?;
        RunConfig::from_value(tree).with_context(|| path.display().to_string())
    }

    pub fn out_dir(&self) -> PathBuf {
        self.out_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}_s{}", self.model.name, self.seed)))
    }

    /// What makes the run's results (model, data, recipe, seed): a resumed run must match it. Devices,
    /// threads, workers and paths may change between sessions.
    pub fn identity(&self) -> Result<Value> {
        let mut tree = yaml_serde::to_value(self)?;
        let map = tree.as_mapping_mut().expect("a struct serialises to a mapping");
        for key in ["devices", "workers", "threads", "out_dir", "data_root"] {
            map.remove(key);
        }
        Ok(tree)
    }

    /// Opens the data, builds the model spec (its class count set from the data unless overridden) and
    /// trains; returns the loop's summary with the spec it trained.
    pub fn run(&self, options: &RunOptions) -> Result<Trained> {
        let splits = data::open(&self.data, self.data_root.as_deref())?;
        let spec = self.model_spec(splits.train.num_classes())?;
        let devices = self.devices.iter().map(|d| crate::device::parse(d)).collect::<Result<Vec<_>>>()?;
        let threads = self.threads.unwrap_or_else(tch::get_num_threads);
        if threads < 1 {
            bail!("threads: expected at least 1");
        }
        let run = TrainRun {
            recipe: self.recipe.clone(),
            devices,
            seed: self.seed,
            out_dir: self.out_dir(),
            workers: self.workers,
            threads,
            identity: self.identity()?,
            resume: options.resume,
            stop_after: options.stop_after,
            progress: options.progress,
        };
        let build_spec = spec.clone();
        let build: NetworkBuilder = Arc::new(move |vs: &tch::nn::Path| -> Result<Box<dyn Network>> {
            Ok(Box::new(Model::build(vs, &build_spec)?))
        });
        Ok(Trained { summary: trainer::train(&run, &splits, build)?, spec })
    }

    /// The model's spec for a data set of `classes` classes.
    pub fn model_spec(&self, classes: i64) -> Result<ModelSpec> {
        let explicit = self.model.overrides.as_ref().and_then(|o| o.get("num_classes")).is_some();
        let mut choice = self.model.clone();
        if !explicit {
            let mut overrides = choice.overrides.take().unwrap_or(Value::Mapping(Mapping::new()));
            if let Some(map) = overrides.as_mapping_mut() {
                map.insert("num_classes".into(), Value::from(classes));
            }
            choice.overrides = Some(overrides);
        }
        let spec = resolve_model(&choice)?;
        if spec.num_classes() != classes {
            bail!("model.overrides.num_classes: {} classes, but the data set has {classes}", spec.num_classes());
        }
        Ok(spec)
    }
}

fn resolve_model(choice: &ModelChoice) -> Result<ModelSpec> {
    registry::resolve(&choice.name, choice.overrides.as_ref())
}

/// The preset `name` as a YAML tree with `changes` merged over it.
fn preset_with(name: &str, changes: &Value) -> Result<Value> {
    let mut tree = yaml_serde::to_value(Recipe::preset(name)?)?;
    crate::overrides::merge_values(&mut tree, changes);
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<RunConfig> {
        RunConfig::from_value(yaml_serde::from_str(yaml).unwrap())
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
    }

    #[test]
    fn the_class_count_follows_the_data_unless_overridden() {
        let c = parse("model: {name: sknet29}").unwrap();
        assert_eq!(c.model_spec(100).unwrap().num_classes(), 100);
        let fixed = parse("model: {name: sknet29, overrides: {num_classes: 10}}").unwrap();
        assert!(fixed.model_spec(100).unwrap_err().to_string().contains("the data set has 100"));
    }

    #[test]
    fn identity_leaves_out_where_and_how_the_run_executes() {
        let a = parse("model: {name: sknet29}\ndevices: [cpu]\nthreads: 2").unwrap();
        let b = parse("model: {name: sknet29}\ndevices: [cpu, cpu]\nworkers: 7\nout_dir: elsewhere").unwrap();
        assert_eq!(a.identity().unwrap(), b.identity().unwrap());
        let c = parse("model: {name: sknet29}\nseed: 4").unwrap();
        assert_ne!(a.identity().unwrap(), c.identity().unwrap());
    }

    #[test]
    fn the_paper_cifar_run_file_splits_batch_128_over_two_gpus() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/train/sknet29_cifar10_2gpu.yaml"));
        let c = RunConfig::from_file(path).unwrap();
        assert_eq!(c.devices, vec!["cuda:0", "cuda:1"]);
        assert_eq!(c.recipe, Recipe::preset("cifar10").unwrap());
        assert_eq!((c.recipe.batch_size, c.recipe.epochs, c.recipe.lr), (128, 300, 0.1));
        assert!(matches!(c.data, DataSpec::Cifar(_)));
    }
}
