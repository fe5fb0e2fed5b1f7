//! Faster R-CNN in both designs, split the way training and inference share it:
//! features → RPN head outputs → proposals → RoI features → class scores and box deltas
//! → detections. Parameter names are torchvision's (`backbone.body.*`, `backbone.fpn.*`,
//! `rpn.head.*`, `roi_heads.box_head.*`, `roi_heads.box_predictor.*`).

pub mod backbone;
pub mod config;
pub mod fpn;
pub mod heads;
pub mod load;

pub use config::{Design, DetectorConfig};

use backbone::Backbone;
use heads::{Predictor, RpnHead, TwoMlpHead};
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
    /// FPN only; C4's box head is the body's layer4.
    pub box_head: Option<TwoMlpHead>,
    pub predictor: Predictor,
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
        FasterRcnn {
            config: config.clone(),
            backbone,
            rpn_head,
            box_head,
            predictor,
        }
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
