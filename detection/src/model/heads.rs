//! The learned layers on top of the features: the RPN head (shared by every level), the box
//! head that turns pooled RoIs into vectors (two fc layers for FPN, the body's layer4 and a
//! global average pool for C4), and the predictor of class scores and box deltas.

use super::config::Design;
use backbones::ResNet;
use tch::nn::{self, Init, Module};
use tch::Tensor;

/// torchvision's RPN head: a 3x3 conv + ReLU, then 1x1 convs for one objectness logit and
/// four box deltas per anchor. Every weight starts normal(0, 0.01), every bias 0.
#[derive(Debug)]
pub struct RpnHead {
    /// `rpn.head.conv.0.0` (torchvision's Conv2dNormActivation inside a Sequential).
    pub conv: nn::Conv2D,
    pub cls_logits: nn::Conv2D,
    pub bbox_pred: nn::Conv2D,
}

fn small_normal_conv(p: nn::Path, c_in: i64, c_out: i64, kernel: i64) -> nn::Conv2D {
    nn::conv2d(
        p,
        c_in,
        c_out,
        kernel,
        nn::ConvConfig {
            padding: kernel / 2,
            ws_init: Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
            bs_init: Init::Const(0.0),
            ..Default::default()
        },
    )
}

impl RpnHead {
    /// `in_channels` is the feature width; `channels` the conv's (256 for FPN, 1024 for
    /// GluonCV's C4, where the two are equal in both published models).
    pub fn new(p: &nn::Path, in_channels: i64, channels: i64, anchors: i64) -> Self {
        RpnHead {
            conv: small_normal_conv(p / "conv" / 0 / 0, in_channels, channels, 3),
            cls_logits: small_normal_conv(p / "cls_logits", channels, anchors, 1),
            bbox_pred: small_normal_conv(p / "bbox_pred", channels, 4 * anchors, 1),
        }
    }

    /// Per level: objectness `[N, A, H, W]` and deltas `[N, 4A, H, W]`.
    pub fn forward(&self, features: &[Tensor]) -> Vec<(Tensor, Tensor)> {
        features
            .iter()
            .map(|f| {
                let t = f.apply(&self.conv).relu_();
                (t.apply(&self.cls_logits), t.apply(&self.bbox_pred))
            })
            .collect()
    }
}

/// PyTorch's nn.Linear default: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
pub fn torch_linear(p: nn::Path, c_in: i64, c_out: i64) -> nn::Linear {
    let bound = 1.0 / (c_in as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    nn::linear(
        p,
        c_in,
        c_out,
        nn::LinearConfig {
            ws_init: init,
            bs_init: Some(init),
            bias: true,
        },
    )
}

fn normal_linear(p: nn::Path, c_in: i64, c_out: i64, stdev: f64) -> nn::Linear {
    nn::linear(
        p,
        c_in,
        c_out,
        nn::LinearConfig {
            ws_init: Init::Randn { mean: 0.0, stdev },
            bs_init: Some(Init::Const(0.0)),
            bias: true,
        },
    )
}

/// torchvision's TwoMLPHead: flatten, fc6 + ReLU, fc7 + ReLU.
#[derive(Debug)]
pub struct TwoMlpHead {
    pub fc6: nn::Linear,
    pub fc7: nn::Linear,
}

impl TwoMlpHead {
    pub const REPRESENTATION: i64 = 1024;

    pub fn new(p: &nn::Path, in_features: i64) -> Self {
        TwoMlpHead {
            fc6: torch_linear(p / "fc6", in_features, Self::REPRESENTATION),
            fc7: torch_linear(p / "fc7", Self::REPRESENTATION, Self::REPRESENTATION),
        }
    }

    pub fn forward(&self, pooled: &Tensor) -> Tensor {
        pooled
            .flatten(1, -1)
            .apply(&self.fc6)
            .relu_()
            .apply(&self.fc7)
            .relu_()
    }
}

/// GluonCV's C4 box head: the body's layer4 on the 14x14 RoIs (its first block strides 2,
/// giving 7x7), then global average pooling. Its weights are the body's (`backbone.body.layer4`).
pub fn res5_head(body: &ResNet, pooled: &Tensor, train: bool) -> Tensor {
    body.stage_forward(3, pooled, train)
        .adaptive_avg_pool2d([1, 1])
        .flatten(1, -1)
}

/// Class scores (K+1, background first) and box deltas: `roi_heads.box_predictor.*`.
#[derive(Debug)]
pub struct Predictor {
    pub cls_score: nn::Linear,
    /// FPN: 4(K+1) (torchvision regresses a box for the background too, then drops it).
    /// C4: 4K (GluonCV's class-specific boxes for the object classes only).
    pub bbox_pred: nn::Linear,
}

impl Predictor {
    pub fn new(p: &nn::Path, design: Design, in_features: i64, num_classes: i64) -> Self {
        match design {
            Design::Fpn => Predictor {
                cls_score: torch_linear(p / "cls_score", in_features, num_classes + 1),
                bbox_pred: torch_linear(p / "bbox_pred", in_features, 4 * (num_classes + 1)),
            },
            // GluonCV: class_predictor Normal(0.01), box_predictor Normal(0.001), biases 0.
            Design::C4 => Predictor {
                cls_score: normal_linear(p / "cls_score", in_features, num_classes + 1, 0.01),
                bbox_pred: normal_linear(p / "bbox_pred", in_features, 4 * num_classes, 0.001),
            },
        }
    }

    /// `(class logits [R, K+1], box deltas [R, 4(K+1)] or [R, 4K])`.
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        (self.cls_score.forward(x), self.bbox_pred.forward(x))
    }
}
