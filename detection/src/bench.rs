//! `detect bench`: images per second of a Faster R-CNN training step (the four losses,
//! backward, SGD step) and of inference (features to detections), on random images of one
//! size with three boxes each, after warm-up, with one sync per timed window.
//! bench/detect_torchvision.py times torchvision's fasterrcnn_resnet50_fpn the same way.

use crate::model::config::Design;
use crate::model::{DetectorConfig, FasterRcnn};
use crate::train::config::ResolvedTargets;
use crate::train::step::{training_losses, Targeting};
use crate::train::targets::GroundTruth;
use crate::transform::{ImageTransform, TransformSpec};
use backbones::Arch;
use engine::amp::LossScaler;
use engine::channels_last::var_store_to_channels_last;
use engine::optim::{Sgd, SgdConfig};
use engine::param_groups::freeze;
use engine::timing::timed;
use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

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
    pub amp: bool,
    /// Weights in NHWC: convolutions then run (and give their outputs) channels-last.
    pub channels_last: bool,
    pub device: Device,
    pub warmup: usize,
    pub iters: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct DetectBenchResult {
    pub design: &'static str,
    pub arch: String,
    pub batch: i64,
    pub size: String,
    pub amp: bool,
    pub channels_last: bool,
    pub device: String,
    pub threads: i32,
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
                .to_device(s.device),
            labels: Tensor::from_slice(&labels).to_device(s.device),
        })
        .collect()
}

pub fn bench(s: &DetectBenchSettings) -> DetectBenchResult {
    let vs = nn::VarStore::new(s.device);
    let config = match s.design {
        Design::C4 => DetectorConfig::c4(s.arch, s.num_classes, 1e-5),
        Design::Fpn => DetectorConfig::fpn(s.arch, s.num_classes, 1e-5),
    };
    let model = FasterRcnn::new(&vs.root(), &config);
    freeze(&vs, &config.frozen_prefixes());
    if s.channels_last {
        var_store_to_channels_last(&vs);
    }
    let targeting = Targeting::new(&model, &ResolvedTargets::defaults(s.design));
    let transform = ImageTransform::new(
        &TransformSpec {
            min_size: s.shorter,
            max_size: s.longer,
            ..TransformSpec::torchvision()
        },
        s.device,
    );
    let pixels = Tensor::randint(
        256,
        [s.batch, s.shorter, s.longer, 3],
        (Kind::Uint8, s.device),
    );
    let sizes = vec![(s.shorter, s.longer); s.batch as usize];
    let truths = ground_truth(s);
    let mut sgd = Sgd::new(
        &vs,
        &SgdConfig {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-4,
            no_bias_decay: false,
            clip_value: None,
        },
    );
    let mut scaler = s.amp.then(|| LossScaler::new(s.device));
    let params = vs.trainable_variables();
    let mut seed = 0u64;
    let train_seconds = timed(s.warmup, s.iters, || {
        seed += 1;
        let images = transform.loader_batch(&pixels, &sizes);
        let losses = tch::autocast(s.amp, || {
            training_losses(&model, &targeting, &images, &truths, seed)
        });
        let loss = losses
            .values()
            .map(|l| l.to_kind(Kind::Float))
            .reduce(|a, b| a + b)
            .expect("four losses");
        sgd.zero_grad();
        match scaler.as_mut() {
            Some(sc) => {
                sc.scale(&loss).backward();
                let found_inf = sc.unscale(&params);
                sgd.step(1e-4, Some(&found_inf));
                sc.update(&found_inf);
            }
            None => {
                loss.backward();
                sgd.step(1e-4, None);
            }
        }
        loss
    });
    let inference_seconds = timed(s.warmup, s.iters, || {
        let images = transform.loader_batch(&pixels, &sizes);
        let detections = tch::autocast(s.amp, || model.detect(&images));
        // A scalar that depends on every image's detections.
        detections
            .iter()
            .map(|d| d.scores.sum(Kind::Float))
            .reduce(|a, b| a + b)
            .unwrap_or_else(|| Tensor::zeros([], (Kind::Float, s.device)))
    });
    let images = (s.iters as i64 * s.batch) as f64;
    DetectBenchResult {
        design: config.design.name(),
        arch: s.arch.to_string(),
        batch: s.batch,
        size: format!("{}/{}", s.shorter, s.longer),
        amp: s.amp,
        channels_last: s.channels_last,
        device: format!("{:?}", s.device).to_lowercase(),
        threads: tch::get_num_threads(),
        train_images_per_s: images / train_seconds,
        train_step_ms: train_seconds * 1000.0 / s.iters as f64,
        inference_images_per_s: images / inference_seconds,
        inference_batch_ms: inference_seconds * 1000.0 / s.iters as f64,
    }
}
