//! `backbone bench`: images per second of the training step (forward, backward, SGD step:
//! the engine's [`Trainer::step`], which training runs) on a fixed batch of noise, after
//! warm-up, with one sync per timed window.

use crate::arch::Arch;
use crate::resnet::{ResNet, ResNetConfig};
use engine::channels_last::tensor_to_channels_last;
use engine::config::EngineConfig;
use engine::fit::Trainer;
use engine::task::{Learner, Losses, Step};
use engine::timing::timed;
use serde::Serialize;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

#[derive(Clone, Debug)]
pub struct StepBenchSettings {
    pub arch: Arch,
    pub batch: i64,
    pub input_size: i64,
    pub num_classes: i64,
    pub amp: bool,
    pub channels_last: bool,
    pub device: Device,
    pub warmup: usize,
    pub iters: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepBenchResult {
    pub arch: String,
    pub batch: i64,
    pub input_size: i64,
    pub amp: bool,
    pub channels_last: bool,
    pub device: String,
    pub threads: i32,
    pub images_per_s: f64,
    pub step_ms: f64,
}

/// A ResNet learning to classify one batch of noise.
struct NoiseClassifier {
    vs: nn::VarStore,
    model: ResNet,
    images: Tensor,
    labels: Tensor,
}

impl Learner for NoiseClassifier {
    type Input = ();

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn losses(&mut self, _: &(), _: &Step) -> Losses {
        let logits = self.model.forward_t(&self.images, true);
        let loss = logits
            .to_kind(Kind::Float)
            .cross_entropy_for_logits(&self.labels);
        Losses::from([("loss".to_string(), loss)])
    }
}

pub fn bench_train_step(s: &StepBenchSettings) -> anyhow::Result<StepBenchResult> {
    let vs = nn::VarStore::new(s.device);
    let model = ResNet::new(&vs.root(), &ResNetConfig::classifier(s.arch, s.num_classes));
    let mut images = Tensor::randn(
        [s.batch, 3, s.input_size, s.input_size],
        (Kind::Float, s.device),
    );
    if s.channels_last {
        images = tensor_to_channels_last(&images);
    }
    let labels = Tensor::randint(s.num_classes, [s.batch], (Kind::Int64, s.device));
    let mut learner = NoiseClassifier {
        vs,
        model,
        images,
        labels,
    };
    let config = EngineConfig::bench(0.01, s.batch as usize, s.amp, s.channels_last, vec![]);
    let mut trainer = Trainer::new(&mut learner, &config, 1)?;
    let secs = timed(s.warmup, s.iters, || {
        let outcome = trainer.step(&mut |_| Ok(()))?;
        Ok(outcome.micro_batches[0].total.shallow_clone())
    })?;
    Ok(StepBenchResult {
        arch: s.arch.to_string(),
        batch: s.batch,
        input_size: s.input_size,
        amp: s.amp,
        channels_last: s.channels_last,
        device: format!("{:?}", s.device).to_lowercase(),
        threads: tch::get_num_threads(),
        images_per_s: (s.iters as i64 * s.batch) as f64 / secs,
        step_ms: secs * 1000.0 / s.iters as f64,
    })
}
