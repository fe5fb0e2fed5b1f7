//! What a Faster R-CNN is made of, as a checkpoint's `model` metadata records it: the design
//! (GluonCV's C4 or torchvision's FPN), the ResNet body, the classes and the thresholds of
//! the RPN and of the box head.

use backbones::layers::NormMode;
use backbones::{Arch, ResNetConfig};
use serde::{Deserialize, Serialize};

/// Where the RoI head reads its features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Design {
    /// GluonCV's: conv1..layer3 (stride 16) feed the RPN and a 14x14 RoIAlign; layer4 runs
    /// on each RoI, then global average pooling, K+1 scores and 4K class-specific boxes.
    C4,
    /// torchvision's `fasterrcnn_resnet50_fpn` v1: FPN over layer1..layer4 (P2..P6), RoIAlign
    /// 7x7 on the level each RoI's size picks, two 1024-wide fc layers, K+1 scores, 4(K+1)
    /// boxes.
    Fpn,
}

impl Design {
    pub fn name(self) -> &'static str {
        match self {
            Design::C4 => "c4",
            Design::Fpn => "fpn",
        }
    }
}

/// Proposal generation (train and test differ only in how many are kept).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RpnConfig {
    /// Width of the 3x3 conv (256 on FPN levels; GluonCV's C4 uses 1024).
    pub channels: i64,
    /// Top-scoring anchors kept per level before NMS.
    pub pre_nms_top_n_train: i64,
    pub pre_nms_top_n_test: i64,
    /// Proposals kept per image after NMS.
    pub post_nms_top_n_train: i64,
    pub post_nms_top_n_test: i64,
    pub nms_thresh: f64,
    /// Proposals narrower or shorter than this (in resized-image pixels) are dropped.
    pub min_size: f64,
    /// When boxes under `min_size` drop out. GluonCV (`true`): every anchor's box is decoded
    /// and clipped first, and the small ones (score -1 there) never reach the pre-NMS top-k;
    /// torchvision (`false`, and checkpoints written before this field): the top-k by
    /// objectness first, small boxes dropped from those.
    #[serde(default)]
    pub min_size_before_top_n: bool,
    /// Only anchors at the feature positions of the image itself propose boxes, and only they
    /// take part in the RPN's targets: none from the padding of a batch (GluonCV runs one
    /// image per device, so an image's anchors are those of its own feature map, `ceil(side /
    /// 16)` cells). torchvision (`false`, the default for older checkpoints) uses the padded
    /// batch's grid for every image.
    #[serde(default)]
    pub anchors_within_image: bool,
}

/// Post-processing of the box head at inference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoxHeadConfig {
    /// Detections scoring at or below this are dropped.
    pub score_thresh: f64,
    /// Per-class NMS.
    pub nms_thresh: f64,
    /// Detections kept per image (torchvision: 100); `None` (JSON null) keeps every one that
    /// survives the per-class NMS, as GluonCV's C4 test path does.
    pub detections_per_img: Option<i64>,
    /// Boxes smaller than this (pixels of the resized image) are dropped.
    pub min_size: f64,
    /// Weights (wx, wy, ww, wh) of the box coder: (10, 10, 5, 5) in both designs.
    pub box_weights: [f64; 4],
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorConfig {
    pub design: Design,
    /// The ResNet body: no fc layer, frozen batch norm (its eps from here).
    pub backbone: ResNetConfig,
    /// Object classes, background not counted (labels are 1..=num_classes, 0 is background).
    pub num_classes: i64,
    /// How many of the body's stages train, counted from the top as torchvision's
    /// `trainable_backbone_layers`: 3 = layer2..layer4, 5 = everything, 0 = none.
    pub trainable_layers: usize,
    pub rpn: RpnConfig,
    pub box_head: BoxHeadConfig,
}

/// Every bound a detection config is checked against when a checkpoint is opened.
pub mod bounds {
    use std::ops::RangeInclusive;
    pub const PROPOSALS: RangeInclusive<i64> = 1..=100_000;
    pub const DETECTIONS: RangeInclusive<i64> = 1..=100_000;
    pub const RPN_CHANNELS: RangeInclusive<i64> = 1..=4096;
}

impl DetectorConfig {
    /// torchvision's `fasterrcnn_resnet50_fpn` defaults over `arch`.
    pub fn fpn(arch: Arch, num_classes: i64, bn_eps: f64) -> Self {
        DetectorConfig {
            design: Design::Fpn,
            backbone: body_config(arch, bn_eps),
            num_classes,
            trainable_layers: 3,
            rpn: RpnConfig {
                channels: 256,
                pre_nms_top_n_train: 2000,
                pre_nms_top_n_test: 1000,
                post_nms_top_n_train: 2000,
                post_nms_top_n_test: 1000,
                nms_thresh: 0.7,
                min_size: 1e-3,
                min_size_before_top_n: false,
                anchors_within_image: false,
            },
            box_head: BoxHeadConfig {
                score_thresh: 0.05,
                nms_thresh: 0.5,
                detections_per_img: Some(100),
                min_size: 1e-2,
                box_weights: [10.0, 10.0, 5.0, 5.0],
            },
        }
    }

    /// GluonCV's `faster_rcnn_resnet50_v1b_voc` settings over `arch` (its test-time
    /// thresholds: 6000/300 proposals, min size 16 applied before the top-k, score 0.01,
    /// every detection that survives the per-class NMS... see docs/architecture.md).
    pub fn c4(arch: Arch, num_classes: i64, bn_eps: f64) -> Self {
        DetectorConfig {
            design: Design::C4,
            backbone: body_config(arch, bn_eps),
            num_classes,
            trainable_layers: 3,
            rpn: RpnConfig {
                channels: 1024,
                pre_nms_top_n_train: 12000,
                pre_nms_top_n_test: 6000,
                post_nms_top_n_train: 2000,
                post_nms_top_n_test: 300,
                nms_thresh: 0.7,
                min_size: 16.0,
                min_size_before_top_n: true,
                anchors_within_image: true,
            },
            box_head: BoxHeadConfig {
                score_thresh: 0.01,
                nms_thresh: 0.3,
                detections_per_img: None,
                min_size: 0.0,
                box_weights: [10.0, 10.0, 5.0, 5.0],
            },
        }
    }

    /// The name checkpoints record as `arch`: `fasterrcnn_resnet50_fpn`, `fasterrcnn_resnet50d_c4`.
    pub fn arch_name(&self) -> String {
        format!("fasterrcnn_{}_{}", self.backbone.arch, self.design.name())
    }

    /// Name prefixes of the body's parameters that stay frozen (for the engine's
    /// `optim.freeze`): the stem and the lowest stages, as torchvision's
    /// `trainable_backbone_layers` and GluonCV's `train_patterns` leave them.
    pub fn frozen_prefixes(&self) -> Vec<String> {
        let groups = [
            vec!["conv1", "bn1"],
            vec!["layer1"],
            vec!["layer2"],
            vec!["layer3"],
            vec!["layer4"],
        ];
        let frozen = groups.len() - self.trainable_layers.min(groups.len());
        groups[..frozen]
            .iter()
            .flatten()
            .map(|name| format!("backbone.body.{name}"))
            .collect()
    }

    pub fn validate(&self) -> Result<(), String> {
        self.backbone.validate()?;
        if self.backbone.num_classes.is_some() {
            return Err("the backbone must not have a classifier head".into());
        }
        if self.backbone.output_stride != 32 {
            return Err(format!(
                "the backbone's output stride must be 32, not {}",
                self.backbone.output_stride
            ));
        }
        if self.backbone.norm != NormMode::Frozen {
            return Err("the backbone's batch norm must be frozen".into());
        }
        engine::limits::check(
            "the number of classes",
            self.num_classes,
            &engine::limits::CLASSES,
        )?;
        if self.trainable_layers > 5 {
            return Err(format!(
                "trainable_layers must be between 0 and 5, not {}",
                self.trainable_layers
            ));
        }
        let r = &self.rpn;
        engine::limits::check("rpn.channels", r.channels, &bounds::RPN_CHANNELS)?;
        for (name, v) in [
            ("rpn.pre_nms_top_n_train", r.pre_nms_top_n_train),
            ("rpn.pre_nms_top_n_test", r.pre_nms_top_n_test),
            ("rpn.post_nms_top_n_train", r.post_nms_top_n_train),
            ("rpn.post_nms_top_n_test", r.post_nms_top_n_test),
        ] {
            engine::limits::check(name, v, &bounds::PROPOSALS)?;
        }
        let b = &self.box_head;
        if let Some(cap) = b.detections_per_img {
            engine::limits::check("box_head.detections_per_img", cap, &bounds::DETECTIONS)?;
        }
        for (name, v) in [
            ("rpn.nms_thresh", r.nms_thresh),
            ("box_head.nms_thresh", b.nms_thresh),
            ("box_head.score_thresh", b.score_thresh),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 1, not {v}"));
            }
        }
        for (name, v) in [
            ("rpn.min_size", r.min_size),
            ("box_head.min_size", b.min_size),
        ] {
            if !(0.0..=10_000.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 10000, not {v}"));
            }
        }
        if !b.box_weights.iter().all(|w| w.is_finite() && *w > 0.0) {
            return Err(format!(
                "box_head.box_weights must be finite and above 0, not {:?}",
                b.box_weights
            ));
        }
        Ok(())
    }
}

/// A ResNet body for detection: no fc, frozen batch norm, plain strides.
pub fn body_config(arch: Arch, bn_eps: f64) -> ResNetConfig {
    ResNetConfig {
        arch,
        num_classes: None,
        output_stride: 32,
        zero_gamma: false,
        norm: NormMode::Frozen,
        bn_eps,
    }
}
