//! The ResNet family of the paper (figure 1 and the tweaks of figure 2), one implementation
//! for every depth and variant, with timm's parameter names.
//!
//! input → stem → layer1 (C2, stride 4) → layer2 (C3, 8) → layer3 (C4, 16) → layer4 (C5, 32)
//!       → global average pool → fc
//!
//! Segmentation trades the last strides for dilation (output stride 16 or 8); detection and
//! segmentation heads read the stage outputs C2..C5.

use crate::arch::{Arch, BlockKind};
use crate::layers::{
    stem_max_pool, stem_max_pool_shape, BatchNorm2d, Conv2d, ConvNormPairs, FeatureShape, NormMode,
};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::Tensor;

/// Everything that decides the shape of a ResNet and how it starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    #[serde(with = "arch_name")]
    pub arch: Arch,
    /// Classes of the final fc layer; `None` builds the body only (for detection and
    /// segmentation), whose forward returns the pooled features.
    pub num_classes: Option<i64>,
    /// 32 (plain), 16 (layer4 dilated) or 8 (layer3 and layer4 dilated).
    pub output_stride: i64,
    /// Start the last BN of every residual block at gamma = 0 (section 3.1).
    pub zero_gamma: bool,
    pub norm: NormMode,
    pub bn_eps: f64,
}

mod arch_name {
    use super::Arch;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(arch: &Arch, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&arch.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arch, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

impl ResNetConfig {
    /// An ImageNet classifier as timm and torchvision build it by default.
    pub fn classifier(arch: Arch, num_classes: i64) -> Self {
        ResNetConfig {
            arch,
            num_classes: Some(num_classes),
            output_stride: 32,
            zero_gamma: false,
            norm: NormMode::Batch,
            bn_eps: 1e-5,
        }
    }

    /// Stride and dilation of each stage's first block and of its other blocks, following
    /// torchvision's `replace_stride_with_dilation` and GluonCV's dilated `ResNetV1b`: in a
    /// dilated stage's first block the 3x3 conv that would have strided keeps the previous
    /// dilation (`first_dilation`); a basic block's second conv already takes the stage's.
    pub fn stage_geometry(&self) -> [StageGeometry; 4] {
        let dilated_from = match self.output_stride {
            32 => 4,
            16 => 3,
            8 => 2,
            s => panic!("output stride {s} is rejected by validate()"),
        };
        let mut dilation = 1;
        let mut geometry = [StageGeometry::default(); 4];
        for (i, g) in geometry.iter_mut().enumerate() {
            let stride = if i == 0 { 1 } else { 2 };
            let previous = dilation;
            if i >= dilated_from {
                dilation *= stride;
                *g = StageGeometry {
                    stride: 1,
                    first_dilation: previous,
                    dilation,
                };
            } else {
                *g = StageGeometry {
                    stride,
                    first_dilation: dilation,
                    dilation,
                };
            }
        }
        geometry
    }

    pub fn validate(&self) -> Result<(), String> {
        if ![32, 16, 8].contains(&self.output_stride) {
            return Err(format!(
                "output stride must be 32, 16 or 8, not {}",
                self.output_stride
            ));
        }
        if let Some(k) = self.num_classes {
            engine::limits::check("the number of classes", k, &engine::limits::CLASSES)?;
        }
        // 0 is torchvision's frozen batch norm in older detection models.
        if !(self.bn_eps >= 0.0 && self.bn_eps < 1.0) {
            return Err(format!(
                "batch-norm eps must be at least 0 and below 1, not {}",
                self.bn_eps
            ));
        }
        Ok(())
    }
}

/// Where a stage strides and how it dilates its 3x3 convs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageGeometry {
    pub stride: i64,
    pub first_dilation: i64,
    pub dilation: i64,
}

/// The stem: a 7x7 conv (A, B) or three 3x3 convs (C, D, E, S), then BN, ReLU, max-pool.
#[derive(Debug)]
// One stem per model: the size difference between variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
pub enum Stem {
    /// `conv1` 7x7 stride 2 → `bn1`.
    Plain { conv1: Conv2d, bn1: BatchNorm2d },
    /// `conv1.0` 3x3 stride 2 → `conv1.1` BN → ReLU → `conv1.3` 3x3 → `conv1.4` BN → ReLU →
    /// `conv1.6` 3x3 → `bn1` (timm's Sequential indices, so names match).
    Deep {
        convs: [Conv2d; 3],
        bns: [BatchNorm2d; 2],
        bn1: BatchNorm2d,
    },
}

/// The shortcut of a block that changes shape. Option B: a strided 1x1 conv → BN.
/// Option D: 2x2 average pool (only where the block strides) → 1x1 conv → BN.
#[derive(Debug)]
pub struct Downsample {
    /// Stride of the average pool before the conv; `None` when the shortcut does not pool.
    pub avg_pool_stride: Option<i64>,
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
}

/// A residual block: its convs and BNs in order (two for basic, three for bottleneck), and the
/// shortcut when the block changes shape.
#[derive(Debug)]
pub struct Block {
    pub convs: Vec<Conv2d>,
    pub bns: Vec<BatchNorm2d>,
    pub downsample: Option<Downsample>,
}

/// The four stage outputs, for detection and segmentation heads.
#[derive(Debug)]
pub struct Features {
    pub c2: Tensor,
    pub c3: Tensor,
    pub c4: Tensor,
    pub c5: Tensor,
}

#[derive(Debug)]
pub struct ResNet {
    pub config: ResNetConfig,
    pub stem: Stem,
    /// layer1..layer4.
    pub stages: Vec<Vec<Block>>,
    pub fc: Option<nn::Linear>,
}

impl ResNet {
    pub fn new(p: &nn::Path, config: &ResNetConfig) -> Self {
        config.validate().expect("invalid ResNet config");
        let arch = config.arch;
        let norm = |p: nn::Path, c: i64, gamma: f64| {
            BatchNorm2d::new(p, c, config.norm, gamma, config.bn_eps)
        };

        let (stem, mut in_channels) = match arch.variant.deep_stem_width() {
            None => (
                Stem::Plain {
                    conv1: Conv2d::new(p / "conv1", 3, 64, 7, 2, 1),
                    bn1: norm(p / "bn1", 64, 1.0),
                },
                64,
            ),
            Some(w) => {
                let s = p / "conv1";
                (
                    Stem::Deep {
                        convs: [
                            Conv2d::new(&s / 0, 3, w, 3, 2, 1),
                            Conv2d::new(&s / 3, w, w, 3, 1, 1),
                            Conv2d::new(&s / 6, w, 2 * w, 3, 1, 1),
                        ],
                        bns: [norm(&s / 1, w, 1.0), norm(&s / 4, w, 1.0)],
                        bn1: norm(p / "bn1", 2 * w, 1.0),
                    },
                    2 * w,
                )
            }
        };

        let last_gamma = if config.zero_gamma { 0.0 } else { 1.0 };
        let widths = [64, 128, 256, 512];
        let mut stages = Vec::with_capacity(4);
        for (i, (geometry, n_blocks)) in config
            .stage_geometry()
            .into_iter()
            .zip(arch.blocks_per_stage())
            .enumerate()
        {
            let sp = p / format!("layer{}", i + 1);
            let mut blocks = Vec::with_capacity(n_blocks);
            for b in 0..n_blocks {
                let (stride, entry_dilation) = if b == 0 {
                    (geometry.stride, geometry.first_dilation)
                } else {
                    (1, geometry.dilation)
                };
                let block = Block::new(
                    &sp / b,
                    arch,
                    in_channels,
                    widths[i],
                    stride,
                    (entry_dilation, geometry.dilation),
                    &norm,
                    last_gamma,
                );
                in_channels = arch.stage_channels()[i];
                blocks.push(block);
            }
            stages.push(blocks);
        }

        let fc = config.num_classes.map(|k| {
            // PyTorch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both.
            let bound = 1.0 / (in_channels as f64).sqrt();
            let init = Init::Uniform {
                lo: -bound,
                up: bound,
            };
            nn::linear(
                p / "fc",
                in_channels,
                k,
                nn::LinearConfig {
                    ws_init: init,
                    bs_init: Some(init),
                    bias: true,
                },
            )
        });
        ResNet {
            config: config.clone(),
            stem,
            stages,
            fc,
        }
    }

    pub fn stem_forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = match &self.stem {
            Stem::Plain { conv1, bn1 } => conv1.forward_bn(x, bn1, train),
            Stem::Deep { convs, bns, bn1 } => {
                let x = convs[0].forward_bn(x, &bns[0], train).relu_();
                let x = convs[1].forward_bn(&x, &bns[1], train).relu_();
                convs[2].forward_bn(&x, bn1, train)
            }
        };
        stem_max_pool(&x.relu_())
    }

    /// Runs stage `index` (0 = layer1 .. 3 = layer4).
    pub fn stage_forward(&self, index: usize, x: &Tensor, train: bool) -> Tensor {
        let mut blocks = self.stages[index].iter();
        let first = blocks.next().expect("a stage has at least one block");
        let mut x = first.forward_t(x, train);
        for block in blocks {
            x = block.forward_t(&x, train);
        }
        x
    }

    /// The stage outputs C2..C5.
    pub fn features(&self, x: &Tensor, train: bool) -> Features {
        let c2 = self.stage_forward(0, &self.stem_forward(x, train), train);
        let c3 = self.stage_forward(1, &c2, train);
        let c4 = self.stage_forward(2, &c3, train);
        let c5 = self.stage_forward(3, &c4, train);
        Features { c2, c3, c4, c5 }
    }

    /// Multiply-accumulates of one forward pass at `height` x `width`, counted by walking the
    /// modules (convolutions and the fc layer; BN, ReLU and pooling add no MACs).
    pub fn macs(&self, height: i64, width: i64) -> u64 {
        let mut shape = FeatureShape {
            channels: 3,
            height,
            width,
        };
        let mut total = 0;
        let mut conv = |c: &Conv2d, s: FeatureShape| {
            let (m, out) = c.macs(s);
            total += m;
            out
        };
        match &self.stem {
            Stem::Plain { conv1, .. } => shape = conv(conv1, shape),
            Stem::Deep { convs, .. } => {
                for c in convs {
                    shape = conv(c, shape);
                }
            }
        }
        shape = stem_max_pool_shape(shape);
        for block in self.stages.iter().flatten() {
            let input = shape;
            for c in &block.convs {
                shape = conv(c, shape);
            }
            if let Some(d) = &block.downsample {
                let pooled = match d.avg_pool_stride {
                    Some(s) => FeatureShape {
                        height: ceil_div(input.height, s),
                        width: ceil_div(input.width, s),
                        ..input
                    },
                    None => input,
                };
                conv(&d.conv, pooled);
            }
        }
        if let Some(fc) = &self.fc {
            total += fc.ws.numel() as u64;
        }
        total
    }
}

fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

impl ConvNormPairs for ResNet {
    fn conv_norm_pairs(&self) -> Vec<(&Conv2d, &BatchNorm2d)> {
        let mut pairs = match &self.stem {
            Stem::Plain { conv1, bn1 } => vec![(conv1, bn1)],
            Stem::Deep { convs, bns, bn1 } => {
                vec![(&convs[0], &bns[0]), (&convs[1], &bns[1]), (&convs[2], bn1)]
            }
        };
        for block in self.stages.iter().flatten() {
            pairs.extend(block.convs.iter().zip(&block.bns));
            if let Some(d) = &block.downsample {
                pairs.push((&d.conv, &d.bn));
            }
        }
        pairs
    }
}

impl nn::ModuleT for ResNet {
    /// Logits, or the pooled C5 features when the model has no fc layer.
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let c5 = self.features(x, train).c5;
        let pooled = c5.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        match &self.fc {
            Some(fc) => pooled.apply(fc),
            None => pooled,
        }
    }
}

impl Block {
    #[allow(clippy::too_many_arguments)]
    fn new(
        p: nn::Path,
        arch: Arch,
        in_channels: i64,
        width: i64,
        stride: i64,
        (entry_dilation, dilation): (i64, i64),
        norm: &dyn Fn(nn::Path, i64, f64) -> BatchNorm2d,
        last_gamma: f64,
    ) -> Self {
        let (convs, bns, out_channels) = match arch.block() {
            // In a dilated stage's first block the 3x3 conv that would have strided keeps the
            // previous dilation and the one after it takes the stage's, as GluonCV's
            // BasicBlockV1b and timm's BasicBlock do: the block then sees what it saw before
            // the stride was removed.
            BlockKind::Basic => (
                vec![
                    Conv2d::new(&p / "conv1", in_channels, width, 3, stride, entry_dilation),
                    Conv2d::new(&p / "conv2", width, width, 3, 1, dilation),
                ],
                vec![
                    norm(&p / "bn1", width, 1.0),
                    norm(&p / "bn2", width, last_gamma),
                ],
                width,
            ),
            BlockKind::Bottleneck => {
                let (s1, s3) = if arch.variant.stride_on_first_1x1() {
                    (stride, 1)
                } else {
                    (1, stride)
                };
                let out = width * 4;
                (
                    vec![
                        Conv2d::new(&p / "conv1", in_channels, width, 1, s1, 1),
                        // torchvision's Bottleneck: the first block's only 3x3 keeps the
                        // previous dilation.
                        Conv2d::new(&p / "conv2", width, width, 3, s3, entry_dilation),
                        Conv2d::new(&p / "conv3", width, out, 1, 1, 1),
                    ],
                    vec![
                        norm(&p / "bn1", width, 1.0),
                        norm(&p / "bn2", width, 1.0),
                        norm(&p / "bn3", out, last_gamma),
                    ],
                    out,
                )
            }
        };
        let downsample = (stride != 1 || in_channels != out_channels).then(|| {
            let d = &p / "downsample";
            if arch.variant.avg_down() {
                // timm's Sequential(pool, conv, bn): the pool holds index 0 even when it is an
                // identity, so the conv is downsample.1 and the BN downsample.2.
                Downsample {
                    avg_pool_stride: (stride != 1).then_some(stride),
                    conv: Conv2d::new(&d / 1, in_channels, out_channels, 1, 1, 1),
                    bn: norm(&d / 2, out_channels, 1.0),
                }
            } else {
                Downsample {
                    avg_pool_stride: None,
                    conv: Conv2d::new(&d / 0, in_channels, out_channels, 1, stride, 1),
                    bn: norm(&d / 1, out_channels, 1.0),
                }
            }
        });
        Block {
            convs,
            bns,
            downsample,
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.convs.len() - 1;
        let mut out = x.shallow_clone();
        for (i, (conv, bn)) in self.convs.iter().zip(&self.bns).enumerate() {
            out = conv.forward_bn(&out, bn, train);
            if i < last {
                out = out.relu_();
            }
        }
        let shortcut = match &self.downsample {
            None => x.shallow_clone(),
            Some(d) => {
                let pooled = match d.avg_pool_stride {
                    // ceil_mode and count_include_pad=False: odd sizes average only real pixels.
                    Some(s) => x.avg_pool2d([s, s], [s, s], [0, 0], true, false, None),
                    None => x.shallow_clone(),
                };
                d.conv.forward_bn(&pooled, &d.bn, train)
            }
        };
        // In place, as torchvision's `out += identity`: neither the conv nor the norm before
        // needs its output for the backward pass, so one feature map less is allocated.
        let _ = out.g_add_(&shortcut);
        out.relu_()
    }
}
