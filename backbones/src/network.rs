//! The model of an image classifier, whichever architecture it is: its config (what a
//! checkpoint's `model` field holds) and the built network, each a match over
//! [`ClassifierArch`].

use crate::arch::ClassifierArch;
use crate::layers::{BatchNorm2d, Conv2d, ConvNormPairs, NormMode};
use crate::mobilenet::{MobileNetConfig, MobileNetV1};
use crate::resnet::{ResNet, ResNetConfig};
use serde::Serialize;
use tch::{nn, Tensor};

/// A classifier's config. It serialises as the architecture's own config; which one a
/// checkpoint holds is read from its `arch` ([`ClassifierConfig::from_json`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ClassifierConfig {
    ResNet(ResNetConfig),
    MobileNetV1(MobileNetConfig),
}

impl ClassifierConfig {
    /// An ImageNet-style classifier as timm builds it by default.
    pub fn classifier(arch: ClassifierArch, num_classes: i64) -> Self {
        match arch {
            ClassifierArch::ResNet(a) => {
                ClassifierConfig::ResNet(ResNetConfig::classifier(a, num_classes))
            }
            ClassifierArch::MobileNetV1 => {
                ClassifierConfig::MobileNetV1(MobileNetConfig::classifier(num_classes))
            }
        }
    }

    /// A classifier to train: `norm` for every BN, and with `zero_gamma` the last BN of
    /// every residual block starting at 0. Only a ResNet has residual blocks: asking a
    /// MobileNet for zero-gamma is an error rather than a switch that does nothing.
    pub fn for_training(
        arch: ClassifierArch,
        num_classes: i64,
        zero_gamma: bool,
        norm: NormMode,
    ) -> Result<Self, String> {
        if zero_gamma && !arch.has_residual_blocks() {
            return Err(no_zero_gamma(arch));
        }
        Ok(match Self::classifier(arch, num_classes) {
            ClassifierConfig::ResNet(c) => ClassifierConfig::ResNet(ResNetConfig {
                zero_gamma,
                norm,
                ..c
            }),
            ClassifierConfig::MobileNetV1(c) => {
                ClassifierConfig::MobileNetV1(MobileNetConfig { norm, ..c })
            }
        })
    }

    /// Reads a checkpoint's `model` field as the config of `arch`.
    pub fn from_json(
        arch: ClassifierArch,
        value: &serde_json::Value,
    ) -> Result<Self, serde_json::Error> {
        Ok(match arch {
            ClassifierArch::ResNet(_) => {
                ClassifierConfig::ResNet(serde_json::from_value(value.clone())?)
            }
            ClassifierArch::MobileNetV1 => {
                ClassifierConfig::MobileNetV1(serde_json::from_value(value.clone())?)
            }
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a model config serialises")
    }

    pub fn arch(&self) -> ClassifierArch {
        match self {
            ClassifierConfig::ResNet(c) => ClassifierArch::ResNet(c.arch),
            ClassifierConfig::MobileNetV1(_) => ClassifierArch::MobileNetV1,
        }
    }

    pub fn num_classes(&self) -> Option<i64> {
        match self {
            ClassifierConfig::ResNet(c) => c.num_classes,
            ClassifierConfig::MobileNetV1(c) => c.num_classes,
        }
    }

    /// Stride of the last feature map: what timm's and torchvision's classifiers have is 32.
    pub fn output_stride(&self) -> i64 {
        match self {
            ClassifierConfig::ResNet(c) => c.output_stride,
            ClassifierConfig::MobileNetV1(_) => 32,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match self {
            ClassifierConfig::ResNet(c) => c.validate(),
            ClassifierConfig::MobileNetV1(c) => c.validate(),
        }
    }
}

/// Why zero-gamma has no place in `arch` (a plain chain of conv-BN-activation).
pub fn no_zero_gamma(arch: ClassifierArch) -> String {
    format!(
        "zero-gamma starts the last BN of each residual block at 0 so that the block begins as \
         its shortcut; {arch} has no residual blocks (every BN feeds an activation in a plain \
         chain, where gamma = 0 would cut the signal), so set model.zero_gamma = false"
    )
}

/// A built classifier.
#[derive(Debug)]
// One network per classifier: the size difference between the variants costs nothing worth a
// Box (and a Box would be in the way of every match).
#[allow(clippy::large_enum_variant)]
pub enum ClassifierNet {
    ResNet(ResNet),
    MobileNetV1(MobileNetV1),
}

impl ClassifierNet {
    pub fn new(p: &nn::Path, config: &ClassifierConfig) -> Self {
        match config {
            ClassifierConfig::ResNet(c) => ClassifierNet::ResNet(ResNet::new(p, c)),
            ClassifierConfig::MobileNetV1(c) => ClassifierNet::MobileNetV1(MobileNetV1::new(p, c)),
        }
    }

    /// Multiply-accumulates of one forward pass at `height` x `width`.
    pub fn macs(&self, height: i64, width: i64) -> u64 {
        match self {
            ClassifierNet::ResNet(m) => m.macs(height, width),
            ClassifierNet::MobileNetV1(m) => m.macs(height, width),
        }
    }
}

impl nn::ModuleT for ClassifierNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            ClassifierNet::ResNet(m) => m.forward_t(x, train),
            ClassifierNet::MobileNetV1(m) => m.forward_t(x, train),
        }
    }
}

impl ConvNormPairs for ClassifierNet {
    fn conv_norm_pairs(&self) -> Vec<(&Conv2d, &BatchNorm2d)> {
        match self {
            ClassifierNet::ResNet(m) => m.conv_norm_pairs(),
            ClassifierNet::MobileNetV1(m) => m.conv_norm_pairs(),
        }
    }
}
