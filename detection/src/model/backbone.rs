//! The feature extractor of either design under torchvision's names: the ResNet body at
//! `backbone.body.*` (timm's names inside, so a classification checkpoint loads by name),
//! plus `backbone.fpn.*` for the FPN design. In the C4 design the body's layer4 stays at
//! `backbone.body.layer4` and runs on RoIs (see `roi_heads`), so one loading rule serves both.

use super::config::{Design, DetectorConfig};
use super::fpn::Fpn;
use backbones::ResNet;
use tch::{nn, Tensor};

/// FPN output width (torchvision's).
pub const FPN_CHANNELS: i64 = 256;

#[derive(Debug)]
pub struct Backbone {
    pub body: ResNet,
    pub fpn: Option<Fpn>,
}

impl Backbone {
    /// `p` is the model's root; parameters go under `backbone.body` and `backbone.fpn`.
    pub fn new(p: &nn::Path, config: &DetectorConfig) -> Self {
        let p = p / "backbone";
        let body = ResNet::new(&(&p / "body"), &config.backbone);
        let fpn = (config.design == Design::Fpn).then(|| {
            Fpn::new(
                &(&p / "fpn"),
                &config.backbone.arch.stage_channels(),
                FPN_CHANNELS,
            )
        });
        Backbone { body, fpn }
    }

    /// Channels of the maps the RPN sees (and, for FPN, the RoI pooler).
    pub fn out_channels(&self) -> i64 {
        match self.fpn {
            Some(_) => FPN_CHANNELS,
            None => self.body.config.arch.stage_channels()[2],
        }
    }

    /// FPN: P2..P6 (strides 4..64). C4: the single stride-16 map of conv1..layer3.
    pub fn forward(&self, images: &Tensor, train: bool) -> Vec<Tensor> {
        let body = &self.body;
        let c2 = body.stage_forward(0, &body.stem_forward(images, train), train);
        let c3 = body.stage_forward(1, &c2, train);
        let c4 = body.stage_forward(2, &c3, train);
        match &self.fpn {
            None => vec![c4],
            Some(fpn) => {
                let c5 = body.stage_forward(3, &c4, train);
                fpn.forward(&[c2, c3, c4, c5])
            }
        }
    }
}
