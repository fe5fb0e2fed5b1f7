//! The model of an image classifier, whichever architecture it is: its config (what a
//! checkpoint's `model` field holds) and the built network, each a match over
//! [`ClassifierArch`].

use crate::arch::ClassifierArch;
use crate::inception::{InceptionConfig, InceptionV3};
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
    InceptionV3(InceptionConfig),
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
            ClassifierArch::InceptionV3 => {
                ClassifierConfig::InceptionV3(InceptionConfig::classifier(num_classes))
            }
        }
    }

    /// A classifier to train: `norm` for every BN, and with `zero_gamma` the last BN of
    /// every residual block starting at 0. Only a ResNet has residual blocks: asking a
    /// MobileNet or an Inception-V3 for zero-gamma is an error rather than a switch that does
    /// nothing. An Inception-V3 trains as torchvision builds it, with the auxiliary classifier
    /// and dropout 0.5 ([`ClassifierConfig::set_aux_logits`] takes the classifier off).
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
            ClassifierConfig::InceptionV3(_) => {
                ClassifierConfig::InceptionV3(InceptionConfig::for_training(num_classes, norm))
            }
        })
    }

    /// Whether the model has an auxiliary classifier.
    pub fn aux_logits(&self) -> bool {
        matches!(self, ClassifierConfig::InceptionV3(c) if c.aux_logits)
    }

    /// Puts the auxiliary classifier on or takes it off; only an Inception-V3 has one to put
    /// on.
    pub fn set_aux_logits(&mut self, on: bool) -> Result<(), String> {
        match self {
            ClassifierConfig::InceptionV3(c) => {
                c.aux_logits = on;
                Ok(())
            }
            _ if !on => Ok(()),
            other => Err(no_aux_classifier(other.arch())),
        }
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
            ClassifierArch::InceptionV3 => {
                ClassifierConfig::InceptionV3(serde_json::from_value(value.clone())?)
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
            ClassifierConfig::InceptionV3(_) => ClassifierArch::InceptionV3,
        }
    }

    pub fn num_classes(&self) -> Option<i64> {
        match self {
            ClassifierConfig::ResNet(c) => c.num_classes,
            ClassifierConfig::MobileNetV1(c) => c.num_classes,
            ClassifierConfig::InceptionV3(c) => c.num_classes,
        }
    }

    /// Stride of the last feature map: what timm's and torchvision's classifiers have is 32.
    pub fn output_stride(&self) -> i64 {
        match self {
            ClassifierConfig::ResNet(c) => c.output_stride,
            ClassifierConfig::MobileNetV1(_) | ClassifierConfig::InceptionV3(_) => 32,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match self {
            ClassifierConfig::ResNet(c) => c.validate(),
            ClassifierConfig::MobileNetV1(c) => c.validate(),
            ClassifierConfig::InceptionV3(c) => c.validate(),
        }
    }
}

/// Why zero-gamma has no place in `arch` (conv-BN-activation with nothing around it: a plain
/// chain, or Inception's branches, concatenated rather than added).
pub fn no_zero_gamma(arch: ClassifierArch) -> String {
    format!(
        "zero-gamma starts the last BN of each residual block at 0 so that the block begins as \
         its shortcut; {arch} has no residual blocks (every BN feeds an activation and no \
         shortcut goes around it, so gamma = 0 would cut the signal), so set \
         model.zero_gamma = false"
    )
}

/// Why `arch` cannot have an auxiliary classifier.
pub fn no_aux_classifier(arch: ClassifierArch) -> String {
    format!(
        "only inception_v3 has an auxiliary classifier (AuxLogits on Mixed_6e); {arch} has \
         none, so leave model.aux_logits unset"
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
    InceptionV3(InceptionV3),
}

impl ClassifierNet {
    pub fn new(p: &nn::Path, config: &ClassifierConfig) -> Self {
        match config {
            ClassifierConfig::ResNet(c) => ClassifierNet::ResNet(ResNet::new(p, c)),
            ClassifierConfig::MobileNetV1(c) => ClassifierNet::MobileNetV1(MobileNetV1::new(p, c)),
            ClassifierConfig::InceptionV3(c) => ClassifierNet::InceptionV3(InceptionV3::new(p, c)),
        }
    }

    /// The logits and, in training, those of the auxiliary classifier when the model has one
    /// (Inception-V3's), which the classification task adds to the loss.
    pub fn forward_aux(&self, x: &Tensor, train: bool) -> (Tensor, Option<Tensor>) {
        match self {
            ClassifierNet::InceptionV3(m) => m.forward_aux(x, train),
            other => (nn::ModuleT::forward_t(other, x, train), None),
        }
    }

    /// The dropout rate before the classifier in training (Inception-V3's; 0 for the others).
    pub fn dropout(&self) -> f64 {
        match self {
            ClassifierNet::InceptionV3(m) => m.config.dropout,
            _ => 0.0,
        }
    }

    /// Multiply-accumulates of one forward pass at `height` x `width`.
    pub fn macs(&self, height: i64, width: i64) -> u64 {
        match self {
            ClassifierNet::ResNet(m) => m.macs(height, width),
            ClassifierNet::MobileNetV1(m) => m.macs(height, width),
            ClassifierNet::InceptionV3(m) => m.macs(height, width),
        }
    }
}

impl nn::ModuleT for ClassifierNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            ClassifierNet::ResNet(m) => m.forward_t(x, train),
            ClassifierNet::MobileNetV1(m) => m.forward_t(x, train),
            ClassifierNet::InceptionV3(m) => m.forward_t(x, train),
        }
    }
}

impl ConvNormPairs for ClassifierNet {
    fn conv_norm_pairs(&self) -> Vec<(&Conv2d, &BatchNorm2d)> {
        match self {
            ClassifierNet::ResNet(m) => m.conv_norm_pairs(),
            ClassifierNet::MobileNetV1(m) => m.conv_norm_pairs(),
            ClassifierNet::InceptionV3(m) => m.conv_norm_pairs(),
        }
    }
}
