//! The fine-tuning recipe (configs/detection/*.toml). Every section rejects unknown keys;
//! what a section leaves out takes the design's defaults: GluonCV's for `c4` (the paper's
//! Table 8), torchvision's for `fpn`.

use crate::metrics::voc::VocMetric;
use crate::model::config::Design;
use datasets::spec::DatasetSpec;
use engine::command::{Recipe, RecipeSections};
pub use engine::config::{OptimSection, RunSection, ScheduleSection};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    pub model: ModelSection,
    pub data: DataSection,
    #[serde(default)]
    pub rpn: RpnSection,
    #[serde(default)]
    pub roi: RoiSection,
    #[serde(default)]
    pub eval: EvalSection,
    pub optim: OptimSection,
    pub schedule: ScheduleSection,
    #[serde(default)]
    pub train: RunSection,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// "c4" (GluonCV's, the paper's) or "fpn" (torchvision's fasterrcnn_resnet50_fpn).
    pub design: Design,
    /// Stages of the body that train, counted from the top as torchvision's
    /// `trainable_backbone_layers`: 3 = layer2..layer4 (both designs' default), 5 = all.
    #[serde(default = "default_trainable_layers")]
    pub trainable_layers: usize,
}

fn default_trainable_layers() -> usize {
    3
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// voc:ROOT (a VOCdevkit: every VOC20xx folder in it that has the split; roots joined by +) or coco:ANNOTATIONS.json[:IMAGES].
    #[serde(default)]
    pub spec: Option<String>,
    /// Where validation images come from, when not from `spec`'s `val_split`: a COCO file
    /// is one split, so COCO training data needs its validation file here (`--val-data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_spec: Option<String>,
    /// VOC image-set names (coco: the annotation file is the split).
    #[serde(default = "default_train_split")]
    pub train_split: String,
    #[serde(default = "default_val_split")]
    pub val_split: String,
    /// Images per micro-batch.
    pub batch_size: usize,
    #[serde(default = "default_workers")]
    pub workers: usize,
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    #[serde(default)]
    pub skip_bad: bool,
    /// Shorter side after resizing, and the longer side's cap (600/1000 GluonCV's VOC,
    /// 800/1333 torchvision's).
    pub shorter: usize,
    pub max_longer: usize,
    #[serde(default = "default_flip")]
    pub flip_prob: f64,
    /// Train on boxes marked difficult too (GluonCV does: its VOCDetection keeps every object
    /// and its RPN and R-CNN targets use them all; py-faster-rcnn leaves them out). The VOC
    /// metric ignores them either way.
    #[serde(default)]
    pub train_difficult: bool,
    /// Train on the first N images of the training split only, and validate on the first N
    /// of the validation split (quick runs: `scripts/transfer_tables.sh --dry-run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_train_samples: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_val_samples: Option<usize>,
}

fn default_train_split() -> String {
    "trainval".into()
}
fn default_val_split() -> String {
    "test".into()
}
fn default_workers() -> usize {
    4
}
fn default_prefetch() -> usize {
    8
}
fn default_flip() -> f64 {
    0.5
}

/// The RPN's training targets (the proposal counts and NMS are the model's, in its config).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpnSection {
    /// Anchors with IoU at least this are objects (0.7).
    pub fg_iou: Option<f64>,
    /// Below this, background (0.3).
    pub bg_iou: Option<f64>,
    /// Anchors sampled per image (256) and the most positives' share (0.5).
    pub batch_per_image: Option<i64>,
    pub positive_fraction: Option<f64>,
    /// Leave anchors crossing the image border out of the loss (GluonCV: yes; torchvision: no),
    /// their IoU set to -1 before matching so that each box's best anchor is its best inside one.
    pub ignore_crossing_anchors: Option<bool>,
    /// GluonCV's rule for each box's best anchor (c4: yes; fpn: no): it is positive unless its
    /// IoU is below bg_iou (then background), ties within float32's epsilon; torchvision's
    /// makes it positive whatever its IoU, exact ties only.
    pub gluoncv_best_anchor: Option<bool>,
    /// Proposals kept per image in training, before and after NMS (c4: 12000/2000 as
    /// GluonCV; fpn: 2000/2000 per level as torchvision).
    pub pre_nms_top_n_train: Option<i64>,
    pub post_nms_top_n_train: Option<i64>,
    /// The same at evaluation (c4: 6000/300 as GluonCV; fpn: 1000/1000 per level). Recorded in
    /// the checkpoint, so `detect eval` and `detect predict` use them too.
    pub pre_nms_top_n_test: Option<i64>,
    pub post_nms_top_n_test: Option<i64>,
}

/// The box head's training targets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoiSection {
    /// RoIs with IoU at least this are objects, else background (0.5).
    pub fg_iou: Option<f64>,
    /// RoIs sampled per image (c4: 128 as GluonCV; fpn: 512 as torchvision) and the most
    /// positives' share (0.25).
    pub batch_per_image: Option<i64>,
    pub positive_fraction: Option<f64>,
    /// Smooth L1 beta of the box loss (c4: 1 as GluonCV; fpn: 1/9 as torchvision).
    pub box_beta: Option<f64>,
}

/// What `best.safetensors` is chosen by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// "voc07" (11-point, as the VOC devkit computes it), "voc07-gluoncv" (11-point, as
    /// GluonCV's VOC07MApMetric computes it: the paper's Table 8), "voc12" (area) or "coco"
    /// (AP at IoU 0.5:0.95 as pycocotools computes it; COCO validation data only). Unset:
    /// what `detect eval` scores the validation data with, voc07 for VOC and coco for COCO.
    /// VOC metrics score COCO data too, crowd regions counting as difficult boxes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default = "default_iou")]
    pub iou: f64,
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection {
            metric: None,
            iou: default_iou(),
        }
    }
}

fn default_iou() -> f64 {
    0.5
}

/// The targets' settings with the design's defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedTargets {
    pub rpn_fg_iou: f64,
    pub rpn_bg_iou: f64,
    pub rpn_batch: i64,
    pub rpn_positive_fraction: f64,
    pub ignore_crossing_anchors: bool,
    pub rpn_gluoncv_best_anchor: bool,
    pub roi_fg_iou: f64,
    pub roi_batch: i64,
    pub roi_positive_fraction: f64,
    pub roi_box_beta: f64,
}

impl ResolvedTargets {
    /// GluonCV's settings for `c4`, torchvision's for `fpn`.
    pub fn defaults(design: Design) -> Self {
        let c4 = design == Design::C4;
        ResolvedTargets {
            rpn_fg_iou: 0.7,
            rpn_bg_iou: 0.3,
            rpn_batch: 256,
            rpn_positive_fraction: 0.5,
            ignore_crossing_anchors: c4,
            rpn_gluoncv_best_anchor: c4,
            roi_fg_iou: 0.5,
            roi_batch: if c4 { 128 } else { 512 },
            roi_positive_fraction: 0.25,
            roi_box_beta: if c4 { 1.0 } else { 1.0 / 9.0 },
        }
    }
}

impl Recipe for FinetuneConfig {
    fn check(&self) -> Result<(), String> {
        self.validate()
    }

    fn sections(&self) -> RecipeSections<'_> {
        RecipeSections {
            optim: &self.optim,
            schedule: &self.schedule,
            train: &self.train,
            batch_size: self.data.batch_size,
            dataset: self.data.spec.as_deref(),
        }
    }
}

impl FinetuneConfig {
    pub fn targets(&self) -> ResolvedTargets {
        let d = ResolvedTargets::defaults(self.model.design);
        ResolvedTargets {
            rpn_fg_iou: self.rpn.fg_iou.unwrap_or(d.rpn_fg_iou),
            rpn_bg_iou: self.rpn.bg_iou.unwrap_or(d.rpn_bg_iou),
            rpn_batch: self.rpn.batch_per_image.unwrap_or(d.rpn_batch),
            rpn_positive_fraction: self
                .rpn
                .positive_fraction
                .unwrap_or(d.rpn_positive_fraction),
            ignore_crossing_anchors: self
                .rpn
                .ignore_crossing_anchors
                .unwrap_or(d.ignore_crossing_anchors),
            rpn_gluoncv_best_anchor: self
                .rpn
                .gluoncv_best_anchor
                .unwrap_or(d.rpn_gluoncv_best_anchor),
            roi_fg_iou: self.roi.fg_iou.unwrap_or(d.roi_fg_iou),
            roi_batch: self.roi.batch_per_image.unwrap_or(d.roi_batch),
            roi_positive_fraction: self
                .roi
                .positive_fraction
                .unwrap_or(d.roi_positive_fraction),
            roi_box_beta: self.roi.box_beta.unwrap_or(d.roi_box_beta),
        }
    }

    /// Checks what serde cannot: ranges and combinations.
    pub fn validate(&self) -> Result<(), String> {
        self.engine().validate()?;
        engine::limits::check_loader(self.data.workers, self.data.prefetch)?;
        let t = self.targets();
        let fraction = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} must be between 0 and 1, not {v}"))
            }
        };
        fraction("rpn.fg_iou", t.rpn_fg_iou)?;
        fraction("rpn.bg_iou", t.rpn_bg_iou)?;
        fraction("rpn.positive_fraction", t.rpn_positive_fraction)?;
        fraction("roi.fg_iou", t.roi_fg_iou)?;
        fraction("roi.positive_fraction", t.roi_positive_fraction)?;
        fraction("data.flip_prob", self.data.flip_prob)?;
        fraction("eval.iou", self.eval.iou)?;
        if t.rpn_bg_iou > t.rpn_fg_iou {
            return Err(format!(
                "rpn.bg_iou ({}) must not be above rpn.fg_iou ({})",
                t.rpn_bg_iou, t.rpn_fg_iou
            ));
        }
        for (name, v) in [
            ("rpn.batch_per_image", t.rpn_batch),
            ("roi.batch_per_image", t.roi_batch),
        ] {
            if !(1..=100_000).contains(&v) {
                return Err(format!("{name} must be between 1 and 100000, not {v}"));
            }
        }
        for (name, v) in [
            ("rpn.pre_nms_top_n_train", self.rpn.pre_nms_top_n_train),
            ("rpn.post_nms_top_n_train", self.rpn.post_nms_top_n_train),
            ("rpn.pre_nms_top_n_test", self.rpn.pre_nms_top_n_test),
            ("rpn.post_nms_top_n_test", self.rpn.post_nms_top_n_test),
        ] {
            if let Some(v) = v {
                if !(1..=100_000).contains(&v) {
                    return Err(format!("{name} must be between 1 and 100000, not {v}"));
                }
            }
        }
        if !(t.roi_box_beta.is_finite() && t.roi_box_beta >= 0.0) {
            return Err(format!(
                "roi.box_beta must be a number >= 0, not {}",
                t.roi_box_beta
            ));
        }
        if !(16..=4096).contains(&self.data.shorter)
            || !(self.data.shorter..=8192).contains(&self.data.max_longer)
        {
            return Err(format!(
                "data.shorter must be 16..4096 and data.max_longer between it and 8192, not {} and {}",
                self.data.shorter, self.data.max_longer
            ));
        }
        if self.data.max_train_samples == Some(0) || self.data.max_val_samples == Some(0) {
            return Err(
                "data.max_train_samples and data.max_val_samples must be at least 1".into(),
            );
        }
        self.val_metric().map(|_| ())
    }

    /// The dataset validation reads: `data.val_spec`, else `data.spec` (its `val_split`).
    pub fn val_dataset(&self) -> Option<&str> {
        self.data.val_spec.as_deref().or(self.data.spec.as_deref())
    }

    /// What validation scores with: `eval.metric`, or when unset what `detect eval` scores
    /// the validation data with (coco for COCO data, voc07 otherwise); an error names the key
    /// and the metrics there are.
    pub fn val_metric(&self) -> Result<ValMetric, String> {
        let coco_data = matches!(
            self.val_dataset().map(DatasetSpec::parse),
            Some(Ok(DatasetSpec::Coco { .. }))
        );
        match (self.eval.metric.as_deref(), coco_data) {
            (None, true) | (Some("coco"), true) => Ok(ValMetric::Coco),
            (None, false) => Ok(ValMetric::Voc(VocMetric::Voc07)),
            (Some("coco"), false) => Err(format!(
                "eval.metric = \"coco\" needs COCO validation data (data.val_spec or --val-data coco:VAL.json[:IMAGES]); VOC data is scored with {}",
                VocMetric::names()
            )),
            (Some(name), _) => VocMetric::from_name(name).map(ValMetric::Voc).ok_or_else(|| {
                format!(
                    "eval.metric must be one of {}, coco, not \"{name}\"",
                    VocMetric::names()
                )
            }),
        }
    }
}

/// The score validation logs as `map` (and picks best.safetensors by).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValMetric {
    /// VOC AP at `eval.iou`, by the named rule.
    Voc(VocMetric),
    /// COCO's AP at IoU 0.5:0.95 (pycocotools' `stats[0]`), on the validation file's ids.
    Coco,
}
