//! Faster R-CNN in both designs, split the way training and inference share it:
//! features → RPN head outputs → proposals → RoI features → class scores and box deltas
//! → detections. Parameter names are torchvision's (`backbone.body.*`, `backbone.fpn.*`,
//! `rpn.head.*`, `roi_heads.box_head.*`, `roi_heads.box_predictor.*`).

pub mod backbone;
pub mod config;
pub mod fpn;
pub mod heads;
pub mod load;
pub mod roi_heads;
pub mod rpn;

pub use config::{Design, DetectorConfig};

use crate::ops::anchors::AnchorGenerator;
use crate::ops::box_coder::BoxCoder;
use crate::ops::poolers::MultiScaleRoIAlign;
use crate::transform::ImageList;
use backbone::Backbone;
use backbones::layers::{BatchNorm2d, Conv2d, ConvNormPairs};
use heads::{Predictor, RpnHead, TwoMlpHead};
use roi_heads::{Detections, RoiPooler};
use rpn::{Proposals, Rpn, RpnOutput};
use tch::{nn, Tensor};

/// Anchors at each feature-map position: 3 ratios of one size per FPN level; GluonCV's C4
/// has 5 scales x 3 ratios on its single level.
pub fn anchors_per_location(design: Design) -> i64 {
    match design {
        Design::Fpn => 3,
        Design::C4 => 15,
    }
}

/// Side of the pooled RoI features: 7 (FPN, then fc layers); 14 (C4, halved by layer4).
pub fn roi_output_size(design: Design) -> i64 {
    match design {
        Design::Fpn => 7,
        Design::C4 => 14,
    }
}

#[derive(Debug)]
pub struct FasterRcnn {
    pub config: DetectorConfig,
    pub backbone: Backbone,
    pub rpn_head: RpnHead,
    pub rpn: Rpn,
    pub pooler: RoiPooler,
    /// FPN only; C4's box head is the body's layer4.
    pub box_head: Option<TwoMlpHead>,
    pub predictor: Predictor,
    /// Decodes the predictor's deltas against the proposals.
    pub box_coder: BoxCoder,
}

impl std::fmt::Debug for Rpn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rpn").field("config", &self.config).finish()
    }
}

impl std::fmt::Debug for RoiPooler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RoiPooler::MultiScale(_) => "RoiPooler::MultiScale",
            RoiPooler::Single(_) => "RoiPooler::Single",
        })
    }
}

/// Only the ResNet body has norms (C4's box head is its layer4); the FPN and the heads have
/// none.
impl ConvNormPairs for FasterRcnn {
    fn conv_norm_pairs(&self) -> Vec<(&Conv2d, &BatchNorm2d)> {
        self.backbone.body.conv_norm_pairs()
    }
}

impl FasterRcnn {
    /// Builds the model under `p` (normally the VarStore's root) with its initialisation.
    pub fn new(p: &nn::Path, config: &DetectorConfig) -> Self {
        let backbone = Backbone::new(p, config);
        let features = backbone.out_channels();
        let design = config.design;
        let rpn_head = RpnHead::new(
            &(p / "rpn" / "head"),
            features,
            config.rpn.channels,
            anchors_per_location(design),
        );
        let roi = p / "roi_heads";
        let (box_head, head_width) = match design {
            Design::Fpn => {
                let side = roi_output_size(design);
                let head = TwoMlpHead::new(&(&roi / "box_head"), features * side * side);
                (Some(head), TwoMlpHead::REPRESENTATION)
            }
            Design::C4 => (None, config.backbone.arch.stage_channels()[3]),
        };
        let predictor = Predictor::new(
            &(&roi / "box_predictor"),
            design,
            head_width,
            config.num_classes,
        );
        let side = roi_output_size(design);
        let (anchor_generator, rpn_coder, pooler, box_coder) = match design {
            Design::Fpn => (
                AnchorGenerator::torchvision_fpn(),
                BoxCoder::new([1.0; 4]),
                RoiPooler::MultiScale(MultiScaleRoIAlign::new((side, side), 2)),
                BoxCoder::new(config.box_head.box_weights),
            ),
            Design::C4 => (
                AnchorGenerator::gluoncv_c4(),
                BoxCoder::gluoncv([1.0; 4], None),
                RoiPooler::Single(MultiScaleRoIAlign::new((side, side), 2)),
                BoxCoder::gluoncv(config.box_head.box_weights.map(|w| 1.0 / w), None),
            ),
        };
        debug_assert_eq!(
            anchor_generator.num_anchors_per_location(),
            anchors_per_location(design)
        );
        FasterRcnn {
            config: config.clone(),
            backbone,
            rpn_head,
            rpn: Rpn {
                anchor_generator,
                box_coder: rpn_coder,
                config: config.rpn.clone(),
            },
            pooler,
            box_head,
            predictor,
            box_coder,
        }
    }

    /// The RPN head's outputs with their anchors (training computes its losses from these).
    pub fn rpn_outputs(&self, features: &[Tensor], images: &ImageList) -> RpnOutput {
        self.rpn
            .head_outputs(&self.rpn_head, features, images.padded_size())
    }

    /// Proposals per image from the RPN's outputs.
    pub fn proposals(&self, out: &RpnOutput, images: &ImageList, train: bool) -> Vec<Proposals> {
        self.rpn.proposals(out, &images.image_sizes, train)
    }

    /// Class logits `[R, K+1]` and box deltas for the RoIs of each image (in image order).
    pub fn box_predictions(
        &self,
        features: &[Tensor],
        rois: &[Tensor],
        images: &ImageList,
        train: bool,
    ) -> (Tensor, Tensor) {
        let pooled = self.pooler.pool(features, rois, &images.image_sizes);
        self.predictor.forward(&self.box_features(&pooled, train))
    }

    /// Detections per image, in the coordinates of the images as given (resized, unpadded):
    /// map them to original pixels with [`crate::transform::boxes_to_original`].
    pub fn detect(&self, images: &ImageList) -> Vec<Detections> {
        let _no_grad = tch::no_grad_guard();
        let features = self.features(&images.tensors, false);
        let out = self.rpn_outputs(&features, images);
        let proposals: Vec<Tensor> = self
            .proposals(&out, images, false)
            .into_iter()
            .map(|p| p.boxes)
            .collect();
        let (logits, deltas) = self.box_predictions(&features, &proposals, images, false);
        roi_heads::postprocess(
            &self.config.box_head,
            &self.box_coder,
            &logits,
            &deltas,
            &proposals,
            &images.image_sizes,
        )
    }

    /// The maps the RPN and the RoI pooler read (FPN: P2..P6; C4: the stride-16 map).
    pub fn features(&self, images: &Tensor, train: bool) -> Vec<Tensor> {
        self.backbone.forward(images, train)
    }

    /// Pooled RoI features (`[R, C, s, s]`) → one vector per RoI.
    pub fn box_features(&self, pooled: &Tensor, train: bool) -> Tensor {
        match &self.box_head {
            Some(head) => head.forward(pooled),
            None => heads::res5_head(&self.backbone.body, pooled, train),
        }
    }
}
