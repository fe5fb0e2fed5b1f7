//! `detect bench`: images per second of a Faster R-CNN training step (the four losses,
//! backward, SGD step: the engine's `Trainer::step`, which training runs) and of inference
//! (features to detections), on random images of one size with three boxes each, after
//! warm-up, with one sync per timed window.
//! bench/detect_torchvision.py times torchvision's fasterrcnn_resnet50_fpn the same way.

use crate::model::config::Design;
use crate::model::{DetectorConfig, FasterRcnn};
use crate::train::config::ResolvedTargets;
use crate::train::step::{training_losses, Targeting};
use crate::train::targets::GroundTruth;
use crate::transform::{ImageTransform, TransformSpec};
use backbones::layers::PreparedInference;
use backbones::Arch;
use engine::command::{BenchReport, BenchRun};
use engine::task::{Learner, Losses, Step};
use serde::Serialize;
use tch::{nn, Kind, Tensor};

#[derive(Clone, Debug)]
pub struct DetectBenchSettings {
    pub design: Design,
    pub arch: Arch,
    /// Object classes (background not counted).
    pub num_classes: i64,
    pub batch: i64,
    /// Image side lengths (height = shorter, width = longer), as a resized VOC/COCO image.
    pub shorter: i64,
    pub longer: i64,
    pub run: BenchRun,
}

#[derive(Clone, Debug, Serialize)]
pub struct DetectBenchResult {
    pub design: &'static str,
    pub arch: String,
    pub batch: i64,
    pub size: String,
    #[serde(flatten)]
    pub run: BenchReport,
    pub train_images_per_s: f64,
    pub train_step_ms: f64,
    pub inference_images_per_s: f64,
    pub inference_batch_ms: f64,
}

/// Three boxes per image, spread over it, of classes 1..=3 (the same every step, so the
/// step's work does not depend on chance).
fn ground_truth(s: &DetectBenchSettings) -> Vec<GroundTruth> {
    let (h, w) = (s.shorter as f32, s.longer as f32);
    let boxes = [
        [0.1 * w, 0.1 * h, 0.4 * w, 0.5 * h],
        [0.5 * w, 0.2 * h, 0.9 * w, 0.7 * h],
        [0.3 * w, 0.6 * h, 0.6 * w, 0.95 * h],
    ];
    let labels: Vec<i64> = (1..=3).map(|c| c.min(s.num_classes)).collect();
    (0..s.batch)
        .map(|_| GroundTruth {
            boxes: Tensor::from_slice(boxes.concat().as_slice())
                .view([3, 4])
                .to_device(s.run.device),
            labels: Tensor::from_slice(&labels).to_device(s.run.device),
        })
        .collect()
}

/// A Faster R-CNN learning three fixed boxes per image on one batch of random pixels, each
/// step resizing and normalising the batch as training does.
struct BenchDetector {
    vs: nn::VarStore,
    model: FasterRcnn,
    targeting: Targeting,
    transform: ImageTransform,
    pixels: Tensor,
    sizes: Vec<(i64, i64)>,
    truths: Vec<GroundTruth>,
}

impl Learner for BenchDetector {
    type Input = ();

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn losses(&mut self, _: &(), step: &Step) -> Losses {
        let images = self.transform.loader_batch(&self.pixels, &self.sizes);
        let losses = training_losses(
            &self.model,
            &self.targeting,
            &images,
            &self.truths,
            step.iter + 1,
        );
        losses
            .into_iter()
            .map(|(name, l)| (name, l.to_kind(Kind::Float)))
            .collect()
    }
}

pub fn bench(s: &DetectBenchSettings) -> anyhow::Result<DetectBenchResult> {
    let vs = nn::VarStore::new(s.run.device);
    let config = match s.design {
        Design::C4 => DetectorConfig::c4(s.arch, s.num_classes, 1e-5),
        Design::Fpn => DetectorConfig::fpn(s.arch, s.num_classes, 1e-5),
    };
    let model = FasterRcnn::new(&vs.root(), &config);
    let targeting = Targeting::new(&model, &ResolvedTargets::defaults(s.design));
    let transform = ImageTransform::new(
        &TransformSpec {
            min_size: s.shorter,
            max_size: s.longer,
            ..TransformSpec::torchvision()
        },
        s.run.device,
    );
    let mut learner = BenchDetector {
        vs,
        model,
        targeting,
        transform,
        pixels: Tensor::randint(
            256,
            [s.batch, s.shorter, s.longer, 3],
            (Kind::Uint8, s.run.device),
        ),
        sizes: vec![(s.shorter, s.longer); s.batch as usize],
        truths: ground_truth(s),
    };
    let train_seconds = s.run.time_training(
        &mut learner,
        1e-4,
        s.batch as usize,
        config.frozen_prefixes(),
    )?;
    let BenchDetector {
        model,
        transform,
        pixels,
        sizes,
        ..
    } = learner;
    let _prepared = PreparedInference::new(&model);
    let inference_seconds = s.run.time(|| {
        let images = transform.loader_batch(&pixels, &sizes);
        let detections = s.run.autocast().run(|| model.detect(&images));
        // A scalar that depends on every image's detections.
        Ok(detections
            .iter()
            .map(|d| d.scores.sum(Kind::Float))
            .reduce(|a, b| a + b)
            .unwrap_or_else(|| Tensor::zeros([], (Kind::Float, s.run.device))))
    })?;
    let images = (s.run.iters as i64 * s.batch) as f64;
    Ok(DetectBenchResult {
        design: config.design.name(),
        arch: s.arch.to_string(),
        batch: s.batch,
        size: format!("{}/{}", s.shorter, s.longer),
        run: s.run.report(),
        train_images_per_s: images / train_seconds,
        train_step_ms: train_seconds * 1000.0 / s.run.iters as f64,
        inference_images_per_s: images / inference_seconds,
        inference_batch_ms: inference_seconds * 1000.0 / s.run.iters as f64,
    })
}
