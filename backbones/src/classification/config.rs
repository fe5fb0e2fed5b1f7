//! The classification training recipe, as a TOML file (configs/backbone/*.toml). Every section
//! rejects unknown keys; missing keys take the defaults noted here (the paper's values where it
//! gives them).

use crate::arch::Arch;
use crate::engine::ema::validate_decay;
use crate::engine::loss::{validate_distillation, validate_smoothing, SmoothingStyle};
use crate::engine::mix::Mix;
use crate::engine::optim::SgdConfig;
use crate::engine::schedule::{Decay, LrSchedule};
use datasets::classify::{EvalTransform, Normalization, TrainTransform};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelSection,
    #[serde(default)]
    pub data: DataSection,
    pub optim: OptimSection,
    pub schedule: ScheduleSection,
    #[serde(default)]
    pub loss: LossSection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<DistillSection>,
    #[serde(default)]
    pub train: RunSection,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// e.g. "resnet50d".
    pub arch: String,
    /// Start the last BN of every residual block at zero (section 3.1).
    #[serde(default)]
    pub zero_gamma: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormalizationChoice {
    /// torchvision's mean/std (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225).
    Imagenet,
    /// The paper's section 2.1 values (123.68, 116.779, 103.939) / (58.393, 57.12, 57.375).
    Paper,
}

impl NormalizationChoice {
    pub fn values(&self) -> Normalization {
        match self {
            NormalizationChoice::Imagenet => Normalization::IMAGENET,
            NormalizationChoice::Paper => Normalization::PAPER,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// Dataset spec (`imagenet:ROOT`, `fashion-mnist:DIR`); `--data` overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// Images per iteration (the paper: 1024 over 8 GPUs for the efficient setting).
    pub batch_size: usize,
    /// Decoding threads; 0 decodes on the training thread.
    pub workers: usize,
    /// Batches prepared ahead.
    pub prefetch: usize,
    /// Leave out unreadable images (counted and listed at the end) instead of stopping.
    pub skip_bad: bool,
    /// Train (or validate) on a fixed random subset of this many images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_train_samples: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_val_samples: Option<usize>,
    pub normalization: NormalizationChoice,
    /// The training augmentation; the evaluation transform follows from its input size.
    pub augment: TrainTransform,
    /// Evaluation resizes the shorter side to this, then centre-crops `augment.input_size`;
    /// default `round(input_size / 0.875)` (256 for 224). Set it to the input size for images
    /// already that small (Fashion-MNIST at 28) to evaluate them as they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_resize: Option<usize>,
}

impl Default for DataSection {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        DataSection {
            spec: None,
            batch_size: 256,
            workers,
            prefetch: 2 * workers.max(1),
            skip_bad: false,
            max_train_samples: None,
            max_val_samples: None,
            normalization: NormalizationChoice::Paper,
            augment: TrainTransform::default(),
            eval_resize: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimSection {
    /// Learning rate for a batch of 256; the run uses lr x batch / 256 (linear scaling rule).
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    pub epochs: u64,
    /// Linear warmup from 0 over this many epochs (may be fractional), updated every iteration.
    #[serde(default)]
    pub warmup_epochs: f64,
    /// After warmup: `{ kind = "cosine", floor = 0 }`, `{ kind = "step", epochs = [30, 60, 90],
    /// factor = 0.1 }`, `{ kind = "poly", power = 0.9 }` or `{ kind = "constant" }`.
    pub decay: Decay,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossSection {
    /// Label smoothing epsilon (the paper: 0.1).
    pub label_smoothing: f64,
    /// "uniform": others get eps/K (GluonCV's code, PyTorch's CrossEntropyLoss);
    /// "paper": others get eps/(K-1) (the paper's equation 4).
    pub smoothing_style: SmoothingStyle,
    /// `{ kind = "mixup", alpha = 0.2 }`, `{ kind = "cutmix", alpha = 1.0 }`,
    /// `{ kind = "cutout", size = 0.5 }` or `{ kind = "none" }`.
    pub mix: Mix,
    /// Train the last this-many epochs without mixing.
    pub mix_off_last_epochs: u64,
}

impl Default for LossSection {
    fn default() -> Self {
        LossSection {
            label_smoothing: 0.0,
            smoothing_style: SmoothingStyle::Uniform,
            mix: Mix::None,
            mix_off_last_epochs: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillSection {
    /// A classification checkpoint of the teacher (the paper: ResNet-152-D).
    pub teacher: PathBuf,
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Weight of the loss against the (smoothed, mixed) labels; the soft loss gets 1 - this.
    #[serde(default = "default_hard_weight")]
    pub hard_weight: f64,
}

fn default_temperature() -> f64 {
    20.0
}
fn default_hard_weight() -> f64 {
    0.5
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    pub seed: u64,
    /// fp16 compute with fp32 master weights and dynamic loss scaling (CUDA only).
    pub amp: bool,
    pub channels_last: bool,
    /// Keep an exponential moving average of the weights with this decay (e.g. 0.9998).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ema_decay: Option<f64>,
    /// Iterations between log lines (each costs one host-device sync).
    pub log_every: u64,
    /// Also save the resumable state every this many iterations (0: at epoch ends only).
    pub checkpoint_every_iters: u64,
    /// CPU threads for libtorch (0: libtorch's default).
    pub threads: usize,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            seed: 0,
            amp: false,
            channels_last: false,
            ema_decay: None,
            log_every: 50,
            checkpoint_every_iters: 0,
            threads: 0,
        }
    }
}

impl DataSection {
    /// The evaluation transform that goes with the training augmentation.
    pub fn eval_transform(&self) -> EvalTransform {
        let mut eval = self.augment.matching_eval(self.normalization.values());
        if let Some(resize) = self.eval_resize {
            eval.resize = resize;
        }
        eval
    }
}

/// Epochs a run may ask for: far beyond any recipe, small enough that iteration counts
/// cannot overflow.
const MAX_EPOCHS: u64 = 100_000;
/// libtorch's intra-op threads.
const MAX_THREADS: usize = 1024;

impl TrainConfig {
    /// The numbers that size allocations, threads and iteration counts, within
    /// [`limits`](crate::limits) (a config file is untrusted input like any other).
    fn check_bounds(&self) -> Result<(), String> {
        use crate::limits::{self, check};
        let d = &self.data;
        check(
            "data.augment.input_size",
            d.augment.input_size,
            &limits::INPUT_SIDE,
        )?;
        if let Some(r) = d.eval_resize {
            check("data.eval_resize", r, &limits::RESIZE_SIDE)?;
        }
        check("data.batch_size", d.batch_size, &limits::BATCH)?;
        check("data.workers", d.workers, &limits::WORKERS)?;
        check("data.prefetch", d.prefetch.max(1), &limits::PREFETCH)?;
        if d.max_train_samples == Some(0) || d.max_val_samples == Some(0) {
            return Err(
                "data.max_train_samples and data.max_val_samples must be at least 1".into(),
            );
        }
        check("schedule.epochs", self.schedule.epochs, &(1..=MAX_EPOCHS))?;
        check(
            "loss.mix_off_last_epochs",
            self.loss.mix_off_last_epochs,
            &(0..=self.schedule.epochs),
        )?;
        check("train.threads", self.train.threads, &(0..=MAX_THREADS))?;
        Ok(())
    }

    pub fn sgd(&self) -> SgdConfig {
        SgdConfig {
            momentum: self.optim.momentum,
            nesterov: self.optim.nesterov,
            weight_decay: self.optim.weight_decay,
            no_bias_decay: self.optim.no_bias_decay,
        }
    }

    /// Checks what serde cannot: names, ranges and combinations.
    pub fn validate(&self) -> Result<Arch, String> {
        let arch: Arch = self
            .model
            .arch
            .parse()
            .map_err(|e| format!("model.arch: {e}"))?;
        self.data
            .augment
            .validate()
            .map_err(|e| format!("data.augment: {e}"))?;
        if self
            .data
            .eval_resize
            .is_some_and(|r| r < self.data.augment.input_size)
        {
            return Err("data.eval_resize must be at least data.augment.input_size".into());
        }
        if self.data.batch_size == 0 {
            return Err("data.batch_size must be at least 1".into());
        }
        if self.schedule.epochs == 0 {
            return Err("schedule.epochs must be at least 1".into());
        }
        self.check_bounds()?;
        validate_smoothing(self.loss.label_smoothing)
            .map_err(|e| format!("loss.label_smoothing: {e}"))?;
        self.loss
            .mix
            .validate()
            .map_err(|e| format!("loss.mix: {e}"))?;
        LrSchedule::validate(
            self.optim.lr,
            self.schedule.warmup_epochs,
            &self.schedule.decay,
            self.schedule.epochs as f64,
        )
        .map_err(|e| format!("schedule: {e}"))?;
        self.sgd().validate().map_err(|e| format!("optim: {e}"))?;
        if let Some(d) = &self.distill {
            validate_distillation(d.temperature, d.hard_weight)
                .map_err(|e| format!("distill: {e}"))?;
        }
        if let Some(decay) = self.train.ema_decay {
            validate_decay(decay).map_err(|e| format!("train.ema_decay: {e}"))?;
        }
        if self.train.log_every == 0 {
            return Err("train.log_every must be at least 1".into());
        }
        Ok(arch)
    }
}
