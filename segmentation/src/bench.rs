//! `segment bench`: images per second of an FCN training step (forward with the auxiliary
//! head, both losses, backward, SGD step: the engine's `Trainer::step`, which training runs)
//! and of inference (forward of the main head, no grad), on random data, after warm-up, one
//! sync per timed window. bench/fcn_torchvision.py times torchvision's fcn_resnet50 the same
//! way.

use crate::fcn::{Fcn, FcnConfig};
use crate::task::training_losses;
use backbones::layers::PreparedInference;
use backbones::Arch;
use engine::command::{BenchReport, BenchRun};
use engine::task::{Learner, Losses, Step};
use serde::Serialize;
use tch::{nn, Kind, Tensor};

#[derive(Clone, Debug)]
pub struct BenchSettings {
    pub arch: Arch,
    pub batch: i64,
    pub crop: i64,
    pub num_classes: i64,
    pub output_stride: i64,
    pub run: BenchRun,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    pub arch: String,
    pub batch: i64,
    pub crop: i64,
    pub num_classes: i64,
    pub output_stride: i64,
    #[serde(flatten)]
    pub run: BenchReport,
    pub train_images_per_s: f64,
    pub infer_images_per_s: f64,
}

/// An FCN learning the labels of one batch of noise, both heads' losses (the auxiliary one
/// at torchvision's weight 0.5).
struct NoiseSegmenter {
    vs: nn::VarStore,
    model: Fcn,
    images: Tensor,
    labels: Tensor,
}

impl Learner for NoiseSegmenter {
    type Input = ();

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn losses(&mut self, _: &(), _: &Step) -> Losses {
        let (seg, aux) = training_losses(&self.model, &self.images, &self.labels, 0);
        Losses::from([
            ("loss_seg".to_string(), seg),
            (
                "loss_aux".to_string(),
                aux.expect("built with the auxiliary head") * 0.5,
            ),
        ])
    }
}

pub fn bench(s: &BenchSettings) -> anyhow::Result<BenchResult> {
    let vs = nn::VarStore::new(s.run.device);
    let config = FcnConfig::new(s.arch, s.output_stride, s.num_classes, true);
    let model = Fcn::new(&vs.root(), &config);
    let images = s.run.noise_images([s.batch, 3, s.crop, s.crop]);
    let labels = Tensor::randint(
        s.num_classes,
        [s.batch, s.crop, s.crop],
        (Kind::Int64, s.run.device),
    );
    let mut learner = NoiseSegmenter {
        vs,
        model,
        images,
        labels,
    };
    let train_secs = s
        .run
        .time_training(&mut learner, 0.01, s.batch as usize, vec![])?;
    let NoiseSegmenter { model, images, .. } = learner;
    let infer_secs = {
        let _no_grad = tch::no_grad_guard();
        let _prepared = PreparedInference::new(&model);
        s.run.time(|| {
            Ok(s.run.autocast().run(|| {
                model
                    .forward_to(&images, (s.crop, s.crop), false, false)
                    .out
            }))
        })?
    };
    let images = (s.run.iters as i64 * s.batch) as f64;
    Ok(BenchResult {
        arch: s.arch.to_string(),
        batch: s.batch,
        crop: s.crop,
        num_classes: s.num_classes,
        output_stride: s.output_stride,
        run: s.run.report(),
        train_images_per_s: images / train_secs,
        infer_images_per_s: images / infer_secs,
    })
}
