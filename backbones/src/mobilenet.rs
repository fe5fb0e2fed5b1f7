//! MobileNet v1 (Howard et al. 2017, table 1) at width 1.0, as the paper's Tables 3 and 6
//! train it (GluonCV's `mobilenet1.0`), with timm's parameter names (`mobilenetv1_100`).
//!
//! input → conv_stem 3x3/2, 32 → BN → ReLU6
//!       → 13 depthwise-separable blocks: conv_dw 3x3 → BN → ReLU6 → conv_pw 1x1 → BN → ReLU6
//!       → global average pool → classifier
//!
//! The activation is timm's ReLU6, so timm's weights give timm's outputs; GluonCV's
//! `mobilenet1.0` uses a plain ReLU (docs/architecture.md).

use crate::layers::{BatchNorm2d, Conv2d, ConvNormPairs, FeatureShape, NormMode};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::Tensor;

/// Channels out of the stem.
pub const STEM_CHANNELS: i64 = 32;

/// The 13 blocks of table 1 as (depthwise stride, pointwise output channels), grouped as
/// timm groups them (`blocks.<stage>.<block>`): a new group wherever the depthwise conv
/// strides. Table 1 prints stride 2 for the last depthwise conv, but its own output sizes
/// (7x7 in, 7x7 out) and every implementation keep stride 1 there.
pub const STAGES: [&[(i64, i64)]; 5] = [
    &[(1, 64)],
    &[(2, 128), (1, 128)],
    &[(2, 256), (1, 256)],
    &[(2, 512), (1, 512), (1, 512), (1, 512), (1, 512), (1, 512)],
    &[(2, 1024), (1, 1024)],
];

/// Channels into the classifier.
pub const FEATURES: i64 = 1024;

/// Everything that decides the shape of a MobileNet v1 and how it starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobileNetConfig {
    /// Classes of the classifier; `None` builds the body only (forward returns the pooled
    /// features).
    pub num_classes: Option<i64>,
    pub norm: NormMode,
    pub bn_eps: f64,
}

impl MobileNetConfig {
    /// An ImageNet classifier as timm builds it.
    pub fn classifier(num_classes: i64) -> Self {
        MobileNetConfig {
            num_classes: Some(num_classes),
            norm: NormMode::Batch,
            bn_eps: 1e-5,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(k) = self.num_classes {
            engine::limits::check("the number of classes", k, &engine::limits::CLASSES)?;
        }
        if !(self.bn_eps >= 0.0 && self.bn_eps < 1.0) {
            return Err(format!(
                "batch-norm eps must be at least 0 and below 1, not {}",
                self.bn_eps
            ));
        }
        Ok(())
    }
}

/// A depthwise-separable block: a 3x3 depthwise conv (which may stride) and a 1x1 pointwise
/// conv, each followed by BN and ReLU6. No shortcut.
#[derive(Debug)]
pub struct SeparableBlock {
    pub conv_dw: Conv2d,
    pub bn1: BatchNorm2d,
    pub conv_pw: Conv2d,
    pub bn2: BatchNorm2d,
}

impl SeparableBlock {
    fn new(
        p: nn::Path,
        c_in: i64,
        c_out: i64,
        stride: i64,
        norm: &dyn Fn(nn::Path, i64) -> BatchNorm2d,
    ) -> Self {
        SeparableBlock {
            conv_dw: Conv2d::depthwise(&p / "conv_dw", c_in, 3, stride),
            bn1: norm(&p / "bn1", c_in),
            conv_pw: Conv2d::new(&p / "conv_pw", c_in, c_out, 1, 1, 1),
            bn2: norm(&p / "bn2", c_out),
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let x = self.conv_dw.forward_bn(x, &self.bn1, train).relu6_();
        self.conv_pw.forward_bn(&x, &self.bn2, train).relu6_()
    }
}

#[derive(Debug)]
pub struct MobileNetV1 {
    pub config: MobileNetConfig,
    pub conv_stem: Conv2d,
    pub bn1: BatchNorm2d,
    /// The 13 blocks in timm's five groups ([`STAGES`]).
    pub stages: Vec<Vec<SeparableBlock>>,
    pub classifier: Option<nn::Linear>,
}

impl MobileNetV1 {
    pub fn new(p: &nn::Path, config: &MobileNetConfig) -> Self {
        config.validate().expect("invalid MobileNet config");
        let norm = |p: nn::Path, c: i64| BatchNorm2d::new(p, c, config.norm, 1.0, config.bn_eps);
        let conv_stem = Conv2d::new(p / "conv_stem", 3, STEM_CHANNELS, 3, 2, 1);
        let bn1 = norm(p / "bn1", STEM_CHANNELS);
        let mut channels = STEM_CHANNELS;
        let blocks = p / "blocks";
        let stages = STAGES
            .iter()
            .enumerate()
            .map(|(s, stage)| {
                let sp = &blocks / s;
                stage
                    .iter()
                    .enumerate()
                    .map(|(b, &(stride, c_out))| {
                        let block = SeparableBlock::new(&sp / b, channels, c_out, stride, &norm);
                        channels = c_out;
                        block
                    })
                    .collect()
            })
            .collect();
        let classifier = config.num_classes.map(|k| {
            // timm's MobileNet head (EfficientNet's init): U(-r, r) with r = 1/sqrt(classes),
            // bias 0.
            let bound = 1.0 / (k as f64).sqrt();
            nn::linear(
                p / "classifier",
                FEATURES,
                k,
                nn::LinearConfig {
                    ws_init: Init::Uniform {
                        lo: -bound,
                        up: bound,
                    },
                    bs_init: Some(Init::Const(0.0)),
                    bias: true,
                },
            )
        });
        MobileNetV1 {
            config: config.clone(),
            conv_stem,
            bn1,
            stages,
            classifier,
        }
    }

    /// The last block's output (stride 32, [`FEATURES`] channels).
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = self.conv_stem.forward_bn(x, &self.bn1, train).relu6_();
        for block in self.stages.iter().flatten() {
            x = block.forward_t(&x, train);
        }
        x
    }

    /// Multiply-accumulates of one forward pass at `height` x `width`, counted by walking the
    /// modules (convolutions and the classifier; BN, ReLU6 and pooling add no MACs).
    pub fn macs(&self, height: i64, width: i64) -> u64 {
        let mut shape = FeatureShape {
            channels: 3,
            height,
            width,
        };
        let mut total = 0;
        for conv in self.convs() {
            let (m, out) = conv.macs(shape);
            total += m;
            shape = out;
        }
        if let Some(fc) = &self.classifier {
            total += fc.ws.numel() as u64;
        }
        total
    }

    /// Every conv in the order the input meets them.
    fn convs(&self) -> impl Iterator<Item = &Conv2d> {
        self.conv_norm_pairs().into_iter().map(|(conv, _)| conv)
    }
}

impl ConvNormPairs for MobileNetV1 {
    fn conv_norm_pairs(&self) -> Vec<(&Conv2d, &BatchNorm2d)> {
        let mut pairs = vec![(&self.conv_stem, &self.bn1)];
        for block in self.stages.iter().flatten() {
            pairs.push((&block.conv_dw, &block.bn1));
            pairs.push((&block.conv_pw, &block.bn2));
        }
        pairs
    }
}

impl nn::ModuleT for MobileNetV1 {
    /// Logits, or the pooled features when the model has no classifier.
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let pooled = self
            .features(x, train)
            .adaptive_avg_pool2d([1, 1])
            .flatten(1, -1);
        match &self.classifier {
            Some(fc) => pooled.apply(fc),
            None => pooled,
        }
    }
}
