//! Architecture names: `resnet<depth><variant>`, e.g. `resnet50d`, `resnet18`, `resnet101s`,
//! and, for classifiers only, `mobilenet_v1` and `inception_v3`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The block a depth is built from, and how many blocks each of the four stages holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3x3 convolutions (ResNet-18/34).
    Basic,
    /// 1x1 reduce, 3x3, 1x1 expand by 4 (ResNet-50/101/152).
    Bottleneck,
}

/// The paper's ResNet tweaks (section 4 and figure 2) and GluonCV's two extra stems.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Variant {
    /// The original: the stride-2 of a downsampling bottleneck sits on its first 1x1 conv.
    A,
    /// The stride moves to the 3x3 conv (torchvision's ResNet, "v1.5").
    B,
    /// B with a deep stem: three 3x3 convs 32-32-64 instead of the 7x7.
    C,
    /// C with an average-pool shortcut in downsampling blocks.
    D,
    /// GluonCV's v1e: deep stem 64-64-128 and the average-pool shortcut.
    E,
    /// GluonCV's v1s: deep stem 64-64-128, plain shortcut.
    S,
}

impl Variant {
    /// Width of the deep stem's first two convs; `None` for the single 7x7 conv.
    pub fn deep_stem_width(self) -> Option<i64> {
        match self {
            Variant::A | Variant::B => None,
            Variant::C | Variant::D => Some(32),
            Variant::E | Variant::S => Some(64),
        }
    }

    /// Whether a downsampling shortcut averages 2x2 before its 1x1 conv (instead of striding it).
    pub fn avg_down(self) -> bool {
        matches!(self, Variant::D | Variant::E)
    }

    /// Whether a bottleneck strides its first 1x1 conv rather than its 3x3.
    pub fn stride_on_first_1x1(self) -> bool {
        self == Variant::A
    }

    fn suffix(self) -> &'static str {
        match self {
            Variant::A => "a",
            Variant::B => "",
            Variant::C => "c",
            Variant::D => "d",
            Variant::E => "e",
            Variant::S => "s",
        }
    }
}

/// A ResNet architecture: depth and variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arch {
    pub depth: u32,
    pub variant: Variant,
}

impl Arch {
    pub const DEPTHS: [u32; 5] = [18, 34, 50, 101, 152];

    pub fn block(&self) -> BlockKind {
        if self.depth < 50 {
            BlockKind::Basic
        } else {
            BlockKind::Bottleneck
        }
    }

    /// Blocks per stage (layer1..layer4).
    pub fn blocks_per_stage(&self) -> [usize; 4] {
        match self.depth {
            18 => [2, 2, 2, 2],
            34 | 50 => [3, 4, 6, 3],
            101 => [3, 4, 23, 3],
            152 => [3, 8, 36, 3],
            d => unreachable!("depth {d} is rejected when parsing"),
        }
    }

    /// Channels out of each stage (C2..C5).
    pub fn stage_channels(&self) -> [i64; 4] {
        let expansion = match self.block() {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        };
        [64, 128, 256, 512].map(|w| w * expansion)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "resnet{}{}", self.depth, self.variant.suffix())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown architecture '{0}': expected resnet<depth><variant> with depth 18, 34, 50, 101 or 152 and variant a, (none for B), c, d, e or s, e.g. resnet50d (a classifier may also be mobilenet_v1 or inception_v3)")]
pub struct UnknownArch(pub String);

/// What an image classifier can be: any ResNet, MobileNet v1 or Inception-V3. Detection and
/// segmentation bodies are ResNets ([`Arch`]) only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassifierArch {
    ResNet(Arch),
    /// MobileNet v1 at width 1.0 (GluonCV's `mobilenet1.0`, timm's `mobilenetv1_100`).
    MobileNetV1,
    /// Inception-V3 (GluonCV's `inceptionv3`, timm's and torchvision's `inception_v3`).
    InceptionV3,
}

impl ClassifierArch {
    /// Whether the network is made of residual blocks (where zero-gamma applies).
    pub fn has_residual_blocks(self) -> bool {
        matches!(self, ClassifierArch::ResNet(_))
    }

    /// Whether the network can have an auxiliary classifier (Inception-V3's `AuxLogits`).
    pub fn has_aux_classifier(self) -> bool {
        matches!(self, ClassifierArch::InceptionV3)
    }

    /// The head's weight in the state dict, as timm names it.
    pub fn head_weight(self) -> &'static str {
        match self {
            ClassifierArch::ResNet(_) | ClassifierArch::InceptionV3 => "fc.weight",
            ClassifierArch::MobileNetV1 => "classifier.weight",
        }
    }

    /// The square input side of its ImageNet recipes and published counts: 299 for
    /// Inception-V3, 224 for the others.
    pub fn input_size(self) -> i64 {
        match self {
            ClassifierArch::InceptionV3 => crate::inception::MIN_AUX_INPUT_SIZE,
            _ => 224,
        }
    }

    /// The smallest square input the network runs on: 75 px for Inception-V3 (its unpadded
    /// convs and pools), 1 for the others (they pad and pool down to 1x1).
    pub fn min_input_size(self) -> i64 {
        match self {
            ClassifierArch::InceptionV3 => crate::inception::MIN_INPUT_SIZE,
            _ => 1,
        }
    }

    /// `Err` with a sentence when `side` is below [`Self::min_input_size`].
    pub fn check_input_size(self, side: i64) -> Result<(), String> {
        let min = self.min_input_size();
        if side < min {
            return Err(format!(
                "{self} needs inputs of at least {min}x{min} (its unpadded convs and pools leave \
                 nothing of a {side}x{side} image before the head)"
            ));
        }
        Ok(())
    }
}

/// "an" before a name said with a vowel first (`inception_v3`), else "a" (`resnet50d`,
/// `mobilenet_v1`), for the messages that name an architecture.
pub fn article(name: &str) -> &'static str {
    match name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

impl From<Arch> for ClassifierArch {
    fn from(arch: Arch) -> Self {
        ClassifierArch::ResNet(arch)
    }
}

impl fmt::Display for ClassifierArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClassifierArch::ResNet(arch) => arch.fmt(f),
            ClassifierArch::MobileNetV1 => f.write_str("mobilenet_v1"),
            ClassifierArch::InceptionV3 => f.write_str("inception_v3"),
        }
    }
}

impl FromStr for ClassifierArch {
    type Err = UnknownArch;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "mobilenet_v1" => Ok(ClassifierArch::MobileNetV1),
            "inception_v3" => Ok(ClassifierArch::InceptionV3),
            _ => name.parse().map(ClassifierArch::ResNet),
        }
    }
}

impl FromStr for Arch {
    type Err = UnknownArch;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let err = || UnknownArch(name.to_string());
        let rest = name.strip_prefix("resnet").ok_or_else(err)?;
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        let depth: u32 = rest[..digits].parse().map_err(|_| err())?;
        if !Arch::DEPTHS.contains(&depth) {
            return Err(err());
        }
        let variant = match &rest[digits..] {
            "a" => Variant::A,
            "" | "b" => Variant::B,
            "c" => Variant::C,
            "d" => Variant::D,
            "e" => Variant::E,
            "s" => Variant::S,
            _ => return Err(err()),
        };
        Ok(Arch { depth, variant })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            "resnet50d",
            "resnet50",
            "resnet18",
            "resnet101s",
            "resnet152e",
            "resnet34a",
            "resnet50c",
        ] {
            let arch: Arch = name.parse().unwrap();
            assert_eq!(arch.to_string(), name);
            let classifier: ClassifierArch = name.parse().unwrap();
            assert_eq!(classifier, ClassifierArch::ResNet(arch));
        }
        let mobilenet: ClassifierArch = "mobilenet_v1".parse().unwrap();
        assert_eq!(mobilenet, ClassifierArch::MobileNetV1);
        assert_eq!(mobilenet.to_string(), "mobilenet_v1");
        let inception: ClassifierArch = "inception_v3".parse().unwrap();
        assert_eq!(inception, ClassifierArch::InceptionV3);
        assert_eq!(inception.to_string(), "inception_v3");
        // A detection or segmentation body is a ResNet.
        assert!("mobilenet_v1".parse::<Arch>().is_err());
        assert!("inception_v3".parse::<Arch>().is_err());
        assert_eq!("resnet50b".parse::<Arch>().unwrap().to_string(), "resnet50");
    }

    #[test]
    fn bad_names_are_rejected_with_the_rule() {
        for name in ["resnet49d", "resnet50x", "vgg16", "resnet", "resnetd50"] {
            let err = name.parse::<Arch>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("unknown architecture '{name}'")),
                "{err}"
            );
        }
    }
}
