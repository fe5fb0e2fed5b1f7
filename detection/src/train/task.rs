//! Faster R-CNN as a task of the engine's loop: a loader batch goes to the device, the model
//! computes the RPN's and the box head's losses (four named losses), and evaluation runs the
//! model on the validation split and scores it with the VOC devkit's rules (or COCO's).

use super::config::FinetuneConfig;
use super::targets::{
    box_head_losses, image_seed, roi_labels, rpn_labels, rpn_losses, BoxLayout, GroundTruth,
    RoiTargeting, RpnTargeting,
};
use crate::eval::ground_truth::voc_evaluator;
use crate::eval::voc::VocMetric;
use crate::evaluate::detect_split;
use crate::model::config::Design;
use crate::model::{DetectorConfig, FasterRcnn};
use crate::ops::anchors::inside_image;
use crate::ops::matcher::Matcher;
use crate::ops::sampler::{splitmix64, BalancedSampler};
use crate::transform::{ImageTransform, TransformSpec};
use backbones::checkpoint::{Metadata, Task as CheckpointTask};
use backbones::engine::task::{Losses, Metrics, Step, Task};
use backbones::engine::transfer::upload;
use datasets::detection_transforms::DetectionBatch;
use tch::{nn, Device, Tensor};

pub use crate::evaluate::DetectionLoader;

/// A batch on the device: u8 NHWC pixels, each image's size inside the padding, and its
/// ground truth.
pub struct DeviceBatch {
    pixels: Tensor,
    image_sizes: Vec<(i64, i64)>,
    truths: Vec<GroundTruth>,
}

pub struct Detection {
    config: FinetuneConfig,
    vs: nn::VarStore,
    model: FasterRcnn,
    transform: ImageTransform,
    transform_spec: TransformSpec,
    rpn_targeting: RpnTargeting,
    roi_targeting: RoiTargeting,
    layout: BoxLayout,
    classes: Vec<String>,
    val: DetectionLoader,
}

impl Detection {
    /// Builds the model (seed first: `engine::fit::set_up`) on `vs`; the caller has loaded the
    /// body from the backbone checkpoint.
    pub fn new(
        config: FinetuneConfig,
        vs: nn::VarStore,
        model: FasterRcnn,
        classes: Vec<String>,
        val: DetectionLoader,
    ) -> Self {
        let device = vs.device();
        let transform_spec = TransformSpec {
            min_size: config.data.shorter as i64,
            max_size: config.data.max_longer as i64,
            ..TransformSpec::torchvision()
        };
        let transform = ImageTransform::new(&transform_spec, device);
        let t = config.targets();
        let c4 = model.config.design == Design::C4;
        let rpn_targeting = RpnTargeting {
            matcher: Matcher::new(t.rpn_fg_iou, t.rpn_bg_iou, true),
            sampler: BalancedSampler::new(t.rpn_batch, t.rpn_positive_fraction),
            coder: model.rpn.box_coder.clone(),
            ignore_crossing_anchors: t.ignore_crossing_anchors,
            box_beta: 1.0 / 9.0,
        };
        let roi_targeting = RoiTargeting {
            matcher: Matcher::new(t.roi_fg_iou, t.roi_fg_iou, false),
            sampler: BalancedSampler::new(t.roi_batch, t.roi_positive_fraction),
            coder: model.box_coder.clone(),
            box_beta: t.roi_box_beta,
        };
        Detection {
            config,
            vs,
            model,
            transform,
            transform_spec,
            rpn_targeting,
            roi_targeting,
            layout: if c4 {
                BoxLayout::ObjectsOnly
            } else {
                BoxLayout::WithBackground
            },
            classes,
            val,
        }
    }

    pub fn model_config(&self) -> &DetectorConfig {
        &self.model.config
    }
}

/// Boxes `[G, 4]` and labels `[G]` of one image, difficult ones left out unless asked.
fn ground_truth(
    batch: &DetectionBatch,
    i: usize,
    keep_difficult: bool,
    device: Device,
) -> GroundTruth {
    let keep: Vec<usize> = (0..batch.boxes[i].len())
        .filter(|&j| keep_difficult || !batch.difficult[i][j])
        .collect();
    let boxes: Vec<f32> = keep.iter().flat_map(|&j| batch.boxes[i][j]).collect();
    let labels: Vec<i64> = keep.iter().map(|&j| batch.labels[i][j]).collect();
    GroundTruth {
        boxes: upload(&boxes, &[keep.len() as i64, 4], device),
        labels: upload(&labels, &[keep.len() as i64], device),
    }
}

fn sizes(batch: &DetectionBatch) -> Vec<(i64, i64)> {
    batch
        .image_sizes
        .iter()
        .map(|&(h, w)| (h as i64, w as i64))
        .collect()
}

impl Task for Detection {
    type Config = FinetuneConfig;
    type Batch = DetectionBatch;
    type Input = DeviceBatch;

    const BEST_METRIC: &'static str = "map";

    fn config(&self) -> &FinetuneConfig {
        &self.config
    }

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn upload(&self, batch: &DetectionBatch) -> DeviceBatch {
        let device = self.vs.device();
        let n = batch.len() as i64;
        DeviceBatch {
            pixels: upload(
                &batch.pixels,
                &[n, batch.height as i64, batch.width as i64, 3],
                device,
            ),
            image_sizes: sizes(batch),
            truths: (0..batch.len())
                .map(|i| ground_truth(batch, i, self.config.data.train_difficult, device))
                .collect(),
        }
    }

    fn losses(&mut self, input: &DeviceBatch, step: &Step) -> Losses {
        let images = self
            .transform
            .loader_batch(&input.pixels, &input.image_sizes);
        let features = self.model.features(&images.tensors, true);
        let out = self.model.rpn_outputs(&features, &images);
        // Every image's draw comes from the run's seed and this micro-batch, so a resumed
        // run samples the same anchors and RoIs.
        let seed = splitmix64(self.config.train.seed ^ splitmix64(step.micro_batch));

        let anchors = Tensor::cat(&out.anchors, 0);
        let (labels, targets): (Vec<Tensor>, Vec<Tensor>) = input
            .truths
            .iter()
            .zip(&input.image_sizes)
            .map(|(truth, &size)| {
                let inside = inside_image(&anchors, size);
                rpn_labels(&self.rpn_targeting, &anchors, truth, Some(&inside))
            })
            .unzip();
        let objectness = Tensor::cat(&out.objectness, 1);
        let deltas = Tensor::cat(&out.deltas, 1);
        let (loss_objectness, loss_rpn_box_reg) = rpn_losses(
            &self.rpn_targeting,
            &objectness,
            &deltas,
            &labels,
            &targets,
            seed,
        );

        let proposals = self.model.proposals(&out, &images, true);
        let mut rois = Vec::with_capacity(proposals.len());
        let mut roi_classes = Vec::with_capacity(proposals.len());
        let mut roi_targets = Vec::with_capacity(proposals.len());
        for (i, (p, truth)) in proposals.iter().zip(&input.truths).enumerate() {
            let sampled = roi_labels(
                &self.roi_targeting,
                &p.boxes,
                truth,
                image_seed(seed ^ 0x5151, i),
            );
            let (boxes, classes, targets) = sampled.compact();
            rois.push(boxes);
            roi_classes.push(classes);
            roi_targets.push(targets);
        }
        let (logits, box_deltas) = self.model.box_predictions(&features, &rois, &images, true);
        let (loss_classifier, loss_box_reg) = box_head_losses(
            &logits,
            &box_deltas,
            &Tensor::cat(&roi_classes, 0),
            &Tensor::cat(&roi_targets, 0),
            self.layout,
            self.roi_targeting.box_beta,
        );
        Losses::from([
            ("loss_objectness".to_string(), loss_objectness),
            ("loss_rpn_box_reg".to_string(), loss_rpn_box_reg),
            ("loss_classifier".to_string(), loss_classifier),
            ("loss_box_reg".to_string(), loss_box_reg),
        ])
    }

    fn evaluate(&mut self, amp: bool) -> anyhow::Result<Metrics> {
        // The split's ground truth, read afresh (a few ms per hundred images, in parallel).
        let mut evaluator = voc_evaluator(&self.val.dataset().source)?;
        let images = detect_split(&self.model, &self.transform, &self.val, amp, |found| {
            let image = evaluator.image_index(&found.id).ok_or_else(|| {
                anyhow::anyhow!("image {} is not in the validation split", found.id)
            })?;
            Ok(evaluator.add_image_detections(image, &found.detections)?)
        })?;
        let metric = match self.config.eval.metric.as_str() {
            "voc12" => VocMetric::Voc12,
            _ => VocMetric::Voc07,
        };
        let report = evaluator.evaluate(metric, self.config.eval.iou);
        Ok(Metrics::from([
            // No positive box in the whole split: nothing to find, nothing found.
            ("map".to_string(), report.map.unwrap_or(0.0)),
            ("images".to_string(), images as f64),
        ]))
    }

    fn metadata(&self) -> Metadata {
        Metadata {
            task: CheckpointTask::Detection,
            arch: self.model.config.arch_name(),
            num_classes: self.model.config.num_classes,
            classes: self.classes.clone(),
            model: serde_json::to_value(&self.model.config).expect("the config serialises"),
            transform: Some(
                serde_json::to_value(&self.transform_spec).expect("the transform serialises"),
            ),
            config: Some(serde_json::to_value(&self.config).expect("the recipe serialises")),
            epoch: None,
            iter: None,
            metrics: None,
        }
    }
}
