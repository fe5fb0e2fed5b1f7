//! The config sections every task's recipe shares: `[optim]`, `[schedule]` and `[train]`.
//! A task's config embeds them under those names and adds its own `[model]`, `[data]` and
//! `[loss]`; the engine reads only these three (plus the batch size) and knows which keys a
//! resumed run may change.
//!
//! Every section rejects unknown keys; missing keys take the defaults noted here (the paper's
//! values where it gives them).

use super::amp::Precision;
use super::ema::validate_decay;
use super::optim::SgdConfig;
use super::schedule::{Decay, LrSchedule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimSection {
    /// Learning rate for a batch of 256; the run uses lr x effective batch / 256 (the linear
    /// scaling rule), the effective batch being `data.batch_size x train.accumulate`.
    pub lr: f64,
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    #[serde(default = "yes")]
    pub nesterov: bool,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// No weight decay on biases and BN gamma/beta (section 3.1).
    #[serde(default)]
    pub no_bias_decay: bool,
    /// Learning-rate multipliers by parameter-name prefix, e.g. `{ head = 10.0 }` (FCN's head
    /// learns at 10x). A prefix matches whole dotted components (`layer1` is not `layer10`);
    /// the longest matching prefix wins; every prefix must match some parameter.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lr_mult: BTreeMap<String, f64>,
    /// Parameters (by name prefix, as `lr_mult`) that are not trained at all, e.g.
    /// `["conv1", "bn1", "layer1"]` (the stem and first stage, as detectors do).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
    /// Clamp every gradient element to `[-clip_value, clip_value]` before each step, after
    /// AMP unscaling and the data-parallel average and before weight decay is added (MXNet's
    /// `clip_gradient`; GluonCV's Faster R-CNN trainer uses 5). Left out: no clipping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_value: Option<f64>,
}

fn default_momentum() -> f64 {
    0.9
}
fn default_weight_decay() -> f64 {
    1e-4
}
fn yes() -> bool {
    true
}

impl OptimSection {
    pub fn sgd(&self) -> SgdConfig {
        SgdConfig {
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
            no_bias_decay: self.no_bias_decay,
            clip_value: self.clip_value,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    pub epochs: u64,
    /// Linear warmup from 0 over this many epochs (may be fractional), updated every
    /// optimiser step.
    #[serde(default)]
    pub warmup_epochs: f64,
    /// After warmup: `{ kind = "cosine", floor = 0 }`, `{ kind = "step", epochs = [30, 60, 90],
    /// factor = 0.1 }`, `{ kind = "poly", power = 0.9 }` or `{ kind = "constant" }`.
    pub decay: Decay,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    pub seed: u64,
    /// Mixed precision: `false` (fp32), `"bf16"` (bfloat16 autocast on the CPU or CUDA, no
    /// loss scaling) or `"fp16"` / `true` (float16 autocast with dynamic loss scaling on
    /// CUDA; bf16 on the CPU). The weights stay fp32. See [`crate::amp`].
    pub amp: Precision,
    pub channels_last: bool,
    /// Keep an exponential moving average of the weights with this decay (e.g. 0.9998).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ema_decay: Option<f64>,
    /// Micro-batches of `data.batch_size` whose gradients are summed into one optimiser step:
    /// one GPU runs a recipe written for a larger batch (the paper's 1024) in K passes.
    pub accumulate: u64,
    /// Evaluate (and update `best`) every this many epochs; the last epoch is always
    /// evaluated.
    pub eval_every_epochs: u64,
    /// Optimiser steps between log lines (each costs one host-device sync).
    pub log_every: u64,
    /// Also save the resumable state every this many optimiser steps (0: at epoch ends only).
    pub checkpoint_every_iters: u64,
    /// CPU threads for libtorch (0: libtorch's default).
    pub threads: usize,
    /// Also write every `metrics.jsonl` record as TensorBoard scalars, to event files in the
    /// run folder's `tensorboard/` (see [`crate::tensorboard`]); `--tensorboard` sets it.
    pub tensorboard: bool,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            seed: 0,
            amp: Precision::Fp32,
            channels_last: false,
            ema_decay: None,
            accumulate: 1,
            eval_every_epochs: 1,
            log_every: 50,
            checkpoint_every_iters: 0,
            threads: 0,
            tensorboard: false,
        }
    }
}

/// Keys a resumed run may change: where the data is read from and how fast, and how often
/// and where the run reports and saves. None of them changes the weights a run arrives at.
pub const OPERATIONAL_KEYS: &[&str] = &[
    "data.spec",
    "data.workers",
    "data.prefetch",
    "data.skip_bad",
    "train.threads",
    "train.log_every",
    "train.checkpoint_every_iters",
    "train.eval_every_epochs",
    "train.tensorboard",
];

/// Whether the dotted `key` (as `config_file::differences` names it) is operational.
pub fn is_operational(key: &str) -> bool {
    OPERATIONAL_KEYS
        .iter()
        .any(|k| key == *k || key.starts_with(&format!("{k}.")))
}

/// What the engine takes from a task's config.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    pub optim: OptimSection,
    pub schedule: ScheduleSection,
    pub run: RunSection,
    /// Images per micro-batch (`data.batch_size`).
    pub batch_size: usize,
}

impl EngineConfig {
    /// What the engine takes from a recipe: its `[optim]`, `[schedule]` and `[train]`
    /// sections and `data.batch_size`.
    pub fn from_sections(
        optim: &OptimSection,
        schedule: &ScheduleSection,
        run: &RunSection,
        batch_size: usize,
    ) -> Self {
        EngineConfig {
            optim: optim.clone(),
            schedule: schedule.clone(),
            run: run.clone(),
            batch_size,
        }
    }

    /// The recipe the benches time their steps with: SGD with momentum 0.9 and weight decay
    /// 1e-4 at the constant learning rate `lr` per step, over batches of `batch_size`, with
    /// `freeze` left out of training.
    pub fn bench(
        lr: f64,
        batch_size: usize,
        amp: Precision,
        channels_last: bool,
        freeze: Vec<String>,
    ) -> Self {
        EngineConfig {
            optim: OptimSection {
                // The linear scaling rule gives back `lr` at this batch.
                lr: lr * 256.0 / batch_size as f64,
                momentum: 0.9,
                nesterov: false,
                weight_decay: 1e-4,
                no_bias_decay: false,
                lr_mult: BTreeMap::new(),
                freeze,
                clip_value: None,
            },
            schedule: ScheduleSection {
                epochs: 1,
                warmup_epochs: 0.0,
                decay: Decay::Constant,
            },
            run: RunSection {
                amp,
                channels_last,
                ..RunSection::default()
            },
            batch_size,
        }
    }

    /// Images per optimiser step, over all ranks of a data-parallel run (each rank's
    /// micro-batch is `data.batch_size`, as in PyTorch's DDP).
    pub fn effective_batch(&self) -> usize {
        self.batch_size * self.run.accumulate as usize * super::data_parallel::world_size()
    }

    /// Checks what serde cannot in the shared sections: ranges and combinations.
    pub fn validate(&self) -> Result<(), String> {
        // The keys every recipe shares get their range here, once for every binary.
        use crate::limits::{self, check};
        check("data.batch_size", self.batch_size, &limits::BATCH)?;
        check("schedule.epochs", self.schedule.epochs, &limits::EPOCHS)?;
        check("train.threads", self.run.threads, &limits::THREADS)?;
        check("train.log_every", self.run.log_every, &limits::LOG_EVERY)?;
        check(
            "train.checkpoint_every_iters",
            self.run.checkpoint_every_iters,
            &limits::CHECKPOINT_EVERY_ITERS,
        )?;
        check(
            "train.eval_every_epochs",
            self.run.eval_every_epochs,
            &limits::EVAL_EVERY_EPOCHS,
        )?;
        LrSchedule::validate(
            self.optim.lr,
            self.schedule.warmup_epochs,
            &self.schedule.decay,
            self.schedule.epochs as f64,
        )
        .map_err(|e| format!("schedule: {e}"))?;
        self.optim
            .sgd()
            .validate()
            .map_err(|e| format!("optim: {e}"))?;
        for (prefix, mult) in &self.optim.lr_mult {
            if !(mult.is_finite() && *mult >= 0.0) {
                return Err(format!(
                    "optim.lr_mult.{prefix} must be a number >= 0, not {mult}"
                ));
            }
        }
        if let Some(decay) = self.run.ema_decay {
            validate_decay(decay).map_err(|e| format!("train.ema_decay: {e}"))?;
        }
        if self.run.accumulate == 0 {
            return Err("train.accumulate must be at least 1".into());
        }
        if self.run.accumulate > 1 << 16 {
            return Err(format!(
                "train.accumulate must be at most 65536, not {}",
                self.run.accumulate
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operational_keys_match_whole_components() {
        assert!(is_operational("data.spec"));
        assert!(is_operational("data.workers"));
        assert!(!is_operational("data.workersx"));
        assert!(!is_operational("data.batch_size"));
        assert!(!is_operational("optim.lr"));
        assert!(!is_operational("train.seed"));
        assert!(is_operational("train.tensorboard"));
    }
}
