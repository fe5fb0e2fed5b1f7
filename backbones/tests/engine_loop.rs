//! The engine's loop driven by a task small enough to reason about: a linear regression whose
//! loss can be made non-finite at chosen steps. What a task of any kind relies on: gradient
//! accumulation equal to one large batch, frozen parameters and learning-rate multipliers,
//! AMP steps with a non-finite loss skipped and counted, and a stop when they persist.

use datasets::loader::{Dataset, Loader, LoaderConfig};
use datasets::rng::SampleRng;
use engine::amp::Precision;
use engine::checkpoint::{Metadata, TaskKind};
use engine::config::{EngineConfig, OptimSection, RunSection, ScheduleSection};
use engine::fit::{fit, RunOptions};
use engine::schedule::Decay;
use engine::task::{Learner, Losses, Metrics, Step, Task};
use engine::transfer::upload;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tch::nn::{self, Module};
use tch::{Device, Tensor};

const IN: usize = 4;

/// Sample `i`: a fixed input and its target `y = [1, -2, 3, 0.5] . x`.
struct Points(usize);

fn point(i: usize) -> ([f32; IN], f32) {
    let x: [f32; IN] = std::array::from_fn(|j| (((i * 7 + j * 3) % 11) as f32 - 5.0) / 5.0);
    let y = x[0] - 2.0 * x[1] + 3.0 * x[2] + 0.5 * x[3];
    (x, y)
}

impl Dataset for Points {
    type Sample = ([f32; IN], f32);
    fn len(&self) -> usize {
        self.0
    }
    fn get(&self, index: usize, _rng: &mut SampleRng) -> datasets::Result<Self::Sample> {
        Ok(point(index))
    }
}

struct Batch {
    x: Vec<f32>,
    y: Vec<f32>,
}

type Collate = fn(Vec<([f32; IN], f32)>, Vec<usize>) -> datasets::Result<Batch>;

fn collate(samples: Vec<([f32; IN], f32)>, _: Vec<usize>) -> datasets::Result<Batch> {
    Ok(Batch {
        x: samples.iter().flat_map(|s| s.0).collect(),
        y: samples.iter().map(|s| s.1).collect(),
    })
}

#[derive(Clone, Serialize, Deserialize)]
struct Data {
    batch_size: usize,
}

#[derive(Clone, Serialize, Deserialize)]
struct Config {
    data: Data,
    optim: OptimSection,
    schedule: ScheduleSection,
    train: RunSection,
}

struct Regression {
    config: Config,
    vs: nn::VarStore,
    body: nn::Linear,
    head: nn::Linear,
    /// Steps whose loss is multiplied by NaN.
    poisoned: Box<dyn Fn(u64) -> bool>,
}

impl Regression {
    fn new(config: Config, poisoned: impl Fn(u64) -> bool + 'static) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let body = nn::linear(vs.root() / "body", IN as i64, 8, Default::default());
        let head = nn::linear(vs.root() / "head", 8, 1, Default::default());
        // Fixed starting weights: tests run in parallel threads and share libtorch's RNG.
        tch::no_grad(|| {
            let mut variables: Vec<_> = vs.variables().into_iter().collect();
            variables.sort_by(|a, b| a.0.cmp(&b.0));
            for (i, (_, mut v)) in variables.into_iter().enumerate() {
                let n = v.numel() as i64;
                let values = Tensor::arange(n, (tch::Kind::Float, Device::Cpu));
                v.copy_(&((values * 0.37 + i as f64).sin() * 0.5).view(v.size().as_slice()));
            }
        });
        Regression {
            config,
            vs,
            body,
            head,
            poisoned: Box::new(poisoned),
        }
    }

    fn predict(&self, x: &Tensor) -> Tensor {
        self.head.forward(&self.body.forward(x)).squeeze_dim(1)
    }
}

struct Input {
    x: Tensor,
    y: Tensor,
}

impl Learner for Regression {
    type Input = Input;

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn losses(&mut self, input: &Input, step: &Step) -> Losses {
        let mut loss = self
            .predict(&input.x)
            .mse_loss(&input.y, tch::Reduction::Mean);
        if (self.poisoned)(step.iter) {
            loss *= f64::NAN;
        }
        Losses::from([("loss".to_string(), loss)])
    }
}

impl Task for Regression {
    type Config = Config;
    type Batch = Batch;
    const BEST_METRIC: &'static str = "neg_mse";

    fn config(&self) -> &Config {
        &self.config
    }
    fn upload(&self, b: &Batch) -> Input {
        let n = b.y.len() as i64;
        Input {
            x: upload(&b.x, &[n, IN as i64], Device::Cpu),
            y: upload(&b.y, &[n], Device::Cpu),
        }
    }
    fn evaluate(&mut self, _autocast: engine::amp::Autocast) -> anyhow::Result<Metrics> {
        let _guard = tch::no_grad_guard();
        let (xs, ys): (Vec<[f32; IN]>, Vec<f32>) = (0..16).map(point).unzip();
        let x = Tensor::from_slice(&xs.concat()).view([16, IN as i64]);
        let mse = self
            .predict(&x)
            .mse_loss(&Tensor::from_slice(&ys), tch::Reduction::Mean)
            .double_value(&[]);
        Ok(Metrics::from([("neg_mse".to_string(), -mse)]))
    }
    fn metadata(&self) -> Metadata {
        Metadata {
            task: TaskKind::Classification,
            arch: "regression".into(),
            num_classes: 1,
            classes: vec!["y".into()],
            model: serde_json::json!({}),
            transform: None,
            config: None,
            epoch: None,
            iter: None,
            metrics: None,
        }
    }
}

const FP32: Precision = Precision::Fp32;
/// On the CPU: ATen's CPU float16 autocast, with the loss scaler a fp16 run keeps.
const FP16: Precision = Precision::Fp16;

fn config(batch_size: usize, accumulate: u64, amp: Precision, epochs: u64) -> Config {
    Config {
        data: Data { batch_size },
        optim: OptimSection {
            lr: 0.5,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-3,
            no_bias_decay: true,
            lr_mult: BTreeMap::new(),
            freeze: Vec::new(),
            clip_value: None,
        },
        schedule: ScheduleSection {
            epochs,
            warmup_epochs: 0.5,
            decay: Decay::Cosine { floor: 0.0 },
        },
        train: RunSection {
            amp,
            accumulate,
            log_every: 1,
            ..RunSection::default()
        },
    }
}

fn run(task: &mut Regression, out: &Path, samples: usize) -> anyhow::Result<()> {
    let c = &task.config;
    let engine = EngineConfig {
        optim: c.optim.clone(),
        schedule: c.schedule.clone(),
        run: c.train.clone(),
        batch_size: c.data.batch_size,
    };
    let loader = Loader::new(
        Points(samples),
        collate as Collate,
        LoaderConfig {
            batch_size: c.data.batch_size,
            workers: 1,
            prefetch: 2,
            shuffle: true,
            drop_last: true,
            ..LoaderConfig::default()
        },
    )?;
    fit(
        task,
        &loader,
        &engine,
        &RunOptions {
            out: out.to_path_buf(),
            resume: false,
            max_iters: None,
        },
    )?;
    Ok(())
}

fn weights(task: &Regression) -> BTreeMap<String, Vec<f32>> {
    task.vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, Vec::<f32>::try_from(v.flatten(0, -1)).unwrap()))
        .collect()
}

fn records(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn accumulating_micro_batches_equals_one_large_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let mut large = Regression::new(config(8, 1, FP32, 3), |_| false);
    run(&mut large, &tmp.path().join("large"), 32).unwrap();
    let mut micro = Regression::new(config(2, 4, FP32, 3), |_| false);
    run(&mut micro, &tmp.path().join("micro"), 32).unwrap();
    let (a, b) = (weights(&large), weights(&micro));
    for (name, va) in &a {
        for (x, y) in va.iter().zip(&b[name]) {
            assert!((x - y).abs() <= 1e-5, "{name}: {va:?} vs {:?}", b[name]);
        }
    }
    // Both logged the same number of optimiser steps: 4 per epoch.
    let last_iter = |out: &str| records(&tmp.path().join(out)).last().unwrap()["iter"].clone();
    assert_eq!(last_iter("large"), 12);
    assert_eq!(last_iter("micro"), 12);
}

#[test]
fn frozen_parameters_stay_and_multipliers_speed_up() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(8, 1, FP32, 2);
    c.optim.freeze = vec!["body".into()];
    let mut task = Regression::new(c, |_| false);
    let before = weights(&task);
    run(&mut task, &tmp.path().join("frozen"), 32).unwrap();
    let after = weights(&task);
    assert_eq!(before["body.weight"], after["body.weight"]);
    assert_eq!(before["body.bias"], after["body.bias"]);
    assert_ne!(before["head.weight"], after["head.weight"]);

    // A multiplier of 0 is a freeze by learning rate: the same result for the body.
    let mut c = config(8, 1, FP32, 2);
    c.optim.lr_mult = BTreeMap::from([("body".to_string(), 0.0)]);
    let mut task = Regression::new(c, |_| false);
    run(&mut task, &tmp.path().join("mult"), 32).unwrap();
    assert_eq!(before["body.weight"], weights(&task)["body.weight"]);

    // A prefix that names nothing is a typo, not a silent no-op.
    let mut c = config(8, 1, FP32, 1);
    c.optim.freeze = vec!["bdy".into()];
    let mut task = Regression::new(c, |_| false);
    let err = run(&mut task, &tmp.path().join("typo"), 32).unwrap_err();
    assert!(
        err.to_string()
            .contains("name no parameter of the model: bdy"),
        "{err}"
    );
}

#[test]
fn under_amp_a_few_non_finite_steps_are_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("amp");
    let mut task = Regression::new(config(8, 1, FP16, 3), |iter| iter == 3 || iter == 4);
    run(&mut task, &out, 32).unwrap();
    let counted: u64 = records(&out)
        .iter()
        .filter_map(|r| r.get("nonfinite_steps").and_then(|v| v.as_u64()))
        .sum();
    assert_eq!(counted, 2);
    assert!(weights(&task).values().flatten().all(|v| v.is_finite()));
    // The scaler backed off once per skipped step, and once per step whose fp16 gradients
    // overflowed on their own (the first steps at 2^16, as under GradScaler): 2^16 / 4 at most.
    let scale = records(&out)
        .iter()
        .rev()
        .find_map(|r| r.get("loss_scale").and_then(|v| v.as_f64()))
        .unwrap();
    assert!(scale <= 16384.0 && scale.log2().fract() == 0.0, "{scale}");
}

#[test]
fn under_amp_persistent_non_finite_losses_stop_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut task = Regression::new(config(4, 1, FP16, 30), |iter| iter >= 5);
    let err = run(&mut task, &tmp.path().join("amp"), 16).unwrap_err();
    assert!(
        err.to_string().contains("100 optimiser steps in a row"),
        "{err}"
    );
}

#[test]
fn in_fp32_the_first_non_finite_loss_stops_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut task = Regression::new(config(8, 1, FP32, 3), |iter| iter == 5);
    let err = run(&mut task, &tmp.path().join("fp32"), 32).unwrap_err();
    assert!(err.to_string().contains("at iteration 5"), "{err}");
}

/// bf16 keeps fp32's range and scales no loss: a non-finite loss is a divergence, as in fp32,
/// not an overflow to skip.
#[test]
fn in_bf16_the_first_non_finite_loss_stops_the_run_and_no_loss_is_scaled() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bf16");
    let mut task = Regression::new(config(8, 1, Precision::Bf16, 3), |iter| iter == 5);
    let err = run(&mut task, &out, 32).unwrap_err();
    assert!(err.to_string().contains("at iteration 5"), "{err}");
    let logged = records(&out);
    assert!(logged.iter().any(|r| r.get("loss").is_some()));
    assert!(logged.iter().all(|r| r.get("loss_scale").is_none()));
}

#[test]
fn a_bf16_run_learns_as_the_fp32_run_does() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fp32 = Regression::new(config(8, 1, FP32, 3), |_| false);
    run(&mut fp32, &tmp.path().join("fp32"), 32).unwrap();
    let mut bf16 = Regression::new(config(8, 1, Precision::Bf16, 3), |_| false);
    run(&mut bf16, &tmp.path().join("bf16"), 32).unwrap();
    let (a, b) = (weights(&fp32), weights(&bf16));
    for (name, w) in &a {
        assert!(w.iter().all(|v| v.is_finite()), "{name}");
        // bf16 keeps 8 bits of mantissa: the runs part by about 2^-8 relative, not more.
        let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (x, y) in w.iter().zip(&b[name]) {
            assert!((x - y).abs() <= 0.05 * scale, "{name}: {x} vs {y}");
        }
        assert_ne!(w, &b[name], "{name}: bf16 changed nothing");
    }
}

#[test]
fn evaluation_every_n_epochs_and_always_at_the_last() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("every2");
    let mut c = config(8, 1, FP32, 5);
    c.train.eval_every_epochs = 2;
    let mut task = Regression::new(c, |_| false);
    run(&mut task, &out, 16).unwrap();
    let evaluated: Vec<u64> = records(&out)
        .iter()
        .filter(|r| r["split"] == "val")
        .map(|r| r["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(evaluated, [1, 3, 4]);
    // Every epoch still leaves a `last` checkpoint; `best` comes from evaluated epochs only.
    assert!(out.join("last.safetensors").exists() && out.join("best.safetensors").exists());
}
