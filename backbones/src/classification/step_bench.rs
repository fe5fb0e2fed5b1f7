//! `backbone bench`: images per second of the training step (forward, backward, SGD step:
//! the engine's `Trainer::step`, which training runs) on a fixed batch of noise, after
//! warm-up, with one sync per timed window.

use crate::arch::ClassifierArch;
use crate::network::{ClassifierConfig, ClassifierNet};
use engine::command::{BenchReport, BenchRun};
use engine::task::{Learner, Losses, Step};
use serde::Serialize;
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

#[derive(Clone, Debug)]
pub struct StepBenchSettings {
    pub arch: ClassifierArch,
    pub batch: i64,
    pub input_size: i64,
    pub num_classes: i64,
    pub run: BenchRun,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepBenchResult {
    pub arch: String,
    pub batch: i64,
    pub input_size: i64,
    #[serde(flatten)]
    pub run: BenchReport,
    pub images_per_s: f64,
    pub step_ms: f64,
}

/// A classifier learning to classify one batch of noise.
struct NoiseClassifier {
    vs: nn::VarStore,
    model: ClassifierNet,
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
    let vs = nn::VarStore::new(s.run.device);
    let config = ClassifierConfig::classifier(s.arch, s.num_classes);
    let model = ClassifierNet::new(&vs.root(), &config);
    let images = s.run.noise_images([s.batch, 3, s.input_size, s.input_size]);
    let labels = Tensor::randint(s.num_classes, [s.batch], (Kind::Int64, s.run.device));
    let mut learner = NoiseClassifier {
        vs,
        model,
        images,
        labels,
    };
    let secs = s
        .run
        .time_training(&mut learner, 0.01, s.batch as usize, vec![])?;
    Ok(StepBenchResult {
        arch: s.arch.to_string(),
        batch: s.batch,
        input_size: s.input_size,
        run: s.run.report(),
        images_per_s: (s.run.iters as i64 * s.batch) as f64 / secs,
        step_ms: secs * 1000.0 / s.run.iters as f64,
    })
}
