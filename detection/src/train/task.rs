//! Faster R-CNN as a task of the engine's loop: a loader batch goes to the device, the model
//! computes the RPN's and the box head's losses (four named losses), and evaluation runs the
//! model on the validation split and scores it with the VOC devkit's rules (or COCO's).

use super::config::{FinetuneConfig, ValMetric};
use super::step::{training_losses, Targeting};
use super::targets::GroundTruth;
use crate::evaluate::detect_split;
use crate::metrics::coco::{CocoEvaluator, CocoReport};
use crate::metrics::ground_truth::voc_evaluator;
use crate::metrics::voc::VocMetric;
use crate::model::{DetectorConfig, FasterRcnn};
use crate::ops::sampler::splitmix64;
use crate::transform::{ImageTransform, TransformSpec};
use backbones::layers::PreparedInference;
use datasets::detection_data::DetectionSource;
use datasets::detection_transforms::DetectionBatch;
use engine::amp::Autocast;
use engine::checkpoint::{Metadata, TaskKind};
use engine::task::{Learner, Losses, Metrics, Step, Task};
use engine::transfer::upload;
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
    targeting: Targeting,
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
        let targeting = Targeting::new(&model, &config.targets());
        Detection {
            config,
            vs,
            model,
            transform,
            transform_spec,
            targeting,
            classes,
            val,
        }
    }

    pub fn model_config(&self) -> &DetectorConfig {
        &self.model.config
    }

    /// VOC AP of the validation split by `metric`, and the number of images scored.
    fn voc_map(&self, metric: VocMetric, autocast: Autocast) -> anyhow::Result<(f64, usize)> {
        // The split's ground truth, read afresh (a few ms per hundred images, in parallel).
        let mut evaluator = voc_evaluator(&self.val.dataset().source)?;
        let images = detect_split(&self.model, &self.transform, &self.val, autocast, |found| {
            let image = evaluator.image_index(&found.id).ok_or_else(|| {
                anyhow::anyhow!("image {} is not in the validation split", found.id)
            })?;
            Ok(evaluator.add_image_detections(image, &found.detections)?)
        })?;
        let report = evaluator.evaluate(metric, self.config.eval.iou);
        // Refused at set-up; a split whose annotations changed since is refused here.
        let map = report.map.ok_or_else(|| {
            anyhow::anyhow!(
                "the {} split has no object that is not difficult: validation has nothing to measure",
                self.config.data.val_split
            )
        })?;
        Ok((map, images))
    }

    /// pycocotools' report on the validation file, as `detect eval --metric coco` makes it;
    /// with `data.max_val_samples`, on the images scored only.
    fn coco_report(&self, autocast: Autocast) -> anyhow::Result<(CocoReport, usize)> {
        let DetectionSource::Coco(data) = &self.val.dataset().source else {
            anyhow::bail!("eval.metric = \"coco\" needs COCO validation data");
        };
        let mut evaluator = CocoEvaluator::open(data.annotations_path())?;
        let mut scored = Vec::new();
        let images = detect_split(&self.model, &self.transform, &self.val, autocast, |found| {
            let id = data.image_id(found.index);
            scored.push(id);
            Ok(evaluator.add_detections(id, &found.detections)?)
        })?;
        if self.config.data.max_val_samples.is_some() {
            evaluator.only_images(scored);
        }
        Ok((evaluator.evaluate()?, images))
    }
}

/// Boxes `[G, 4]` and labels `[G]` of one image, difficult ones left out unless asked. COCO
/// crowd regions are always left out: a box around many objects is no object to learn
/// (torchvision's and detectron2's COCO training drop them too).
fn ground_truth(
    batch: &DetectionBatch,
    i: usize,
    keep_difficult: bool,
    device: Device,
) -> GroundTruth {
    let keep: Vec<usize> = (0..batch.boxes[i].len())
        .filter(|&j| !batch.crowd[i][j] && (keep_difficult || !batch.difficult[i][j]))
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

impl Learner for Detection {
    type Input = DeviceBatch;

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn losses(&mut self, input: &DeviceBatch, step: &Step) -> Losses {
        let images = self
            .transform
            .loader_batch(&input.pixels, &input.image_sizes);
        // Every image's draw comes from the run's seed and this micro-batch, so a resumed
        // run samples the same anchors and RoIs.
        let seed = splitmix64(self.config.train.seed ^ splitmix64(step.micro_batch));
        training_losses(&self.model, &self.targeting, &images, &input.truths, seed)
    }
}

impl Task for Detection {
    type Config = FinetuneConfig;
    type Batch = DetectionBatch;

    const BEST_METRIC: &'static str = "map";

    fn config(&self) -> &FinetuneConfig {
        &self.config
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

    fn evaluate(&mut self, autocast: Autocast) -> anyhow::Result<Metrics> {
        let _prepared = PreparedInference::new(&self.model);
        let metric = self.config.val_metric().map_err(anyhow::Error::msg)?;
        let (map, extra, images) = match metric {
            ValMetric::Voc(metric) => {
                let (map, images) = self.voc_map(metric, autocast)?;
                (map, None, images)
            }
            ValMetric::Coco => {
                let (report, images) = self.coco_report(autocast)?;
                let ap = |name: &str| report.get(name).filter(|ap| *ap >= 0.0);
                let map = ap("AP").ok_or_else(|| {
                    anyhow::anyhow!("the validation images have no object that is not a crowd region: validation has nothing to measure")
                })?;
                (map, ap("AP50").map(|ap50| ("ap50", ap50)), images)
            }
        };
        let mut metrics = Metrics::from([
            ("map".to_string(), map),
            ("images".to_string(), images as f64),
        ]);
        if let Some((name, value)) = extra {
            metrics.insert(name.to_string(), value);
        }
        Ok(metrics)
    }

    fn metadata(&self) -> Metadata {
        Metadata {
            task: TaskKind::Detection,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(name: &str) -> FinetuneConfig {
        let path = format!("{}/../configs/detection/{name}", env!("CARGO_MANIFEST_DIR"));
        let config: FinetuneConfig =
            toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        config.validate().unwrap();
        config
    }

    /// One image with an ordinary box (class 1) and a difficult one (class 2).
    fn batch_with_a_difficult_box() -> DetectionBatch {
        DetectionBatch {
            pixels: vec![0; 8 * 8 * 3],
            height: 8,
            width: 8,
            image_sizes: vec![(8, 8)],
            boxes: vec![vec![[0.0, 0.0, 4.0, 4.0], [2.0, 2.0, 7.0, 7.0]]],
            labels: vec![vec![1, 2]],
            difficult: vec![vec![false, true]],
            crowd: vec![vec![false, false]],
            original_sizes: vec![(8, 8)],
            ids: vec!["a".into()],
            indices: vec![0],
        }
    }

    #[test]
    fn the_c4_recipe_trains_on_difficult_boxes_as_gluoncv() {
        let batch = batch_with_a_difficult_box();
        let c4 = recipe("voc-c4.toml");
        let truth = ground_truth(&batch, 0, c4.data.train_difficult, Device::Cpu);
        assert_eq!(Vec::<i64>::try_from(&truth.labels).unwrap(), [1, 2]);
        assert_eq!(truth.boxes.size(), [2, 4]);
        // The torchvision-style FPN recipe leaves them out.
        let fpn = recipe("voc-fpn.toml");
        let truth = ground_truth(&batch, 0, fpn.data.train_difficult, Device::Cpu);
        assert_eq!(Vec::<i64>::try_from(&truth.labels).unwrap(), [1]);
    }

    /// A crowd region is never a training box, even where difficult boxes are.
    #[test]
    fn crowd_regions_are_not_trained_on() {
        let mut batch = batch_with_a_difficult_box();
        batch.crowd = vec![vec![true, false]];
        for keep_difficult in [true, false] {
            let truth = ground_truth(&batch, 0, keep_difficult, Device::Cpu);
            let labels = Vec::<i64>::try_from(&truth.labels).unwrap();
            assert_eq!(labels, if keep_difficult { vec![2] } else { vec![] });
        }
    }

    #[test]
    fn the_c4_recipe_evaluates_every_epoch_as_gluoncv() {
        // GluonCV's train_faster_rcnn.py: --val-interval 1, best kept by mAP.
        assert_eq!(recipe("voc-c4.toml").train.eval_every_epochs, 1);
    }
}
