//! FCN (Long et al.; GluonCV's and torchvision's variant): a dilated ResNet, a head on C5
//! (3x3 conv to C/4 channels, BN, ReLU, dropout 0.1, 1x1 conv to the classes), an auxiliary
//! head of the same shape on C4, and both outputs upsampled bilinearly to the input size.
//!
//! Parameter names are torchvision's `fcn_resnet50`: `backbone.<ResNet keys without fc>`,
//! `classifier.{0,1,4}.*` and `aux_classifier.{0,1,4}.*` (the Sequential indices of the conv,
//! the BN and the last conv; ReLU and dropout hold 2 and 3 and have no parameters).

use backbones::layers::{BatchNorm2d, Conv2d, ConvNormPairs, NormMode};
use backbones::onednn;
use backbones::{Arch, ResNet, ResNetConfig};
use engine::channels_last::tensor_to_channels_last;
use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Tensor;

/// Everything that decides the shape of an FCN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FcnConfig {
    /// The body: `num_classes` is `None` (no fc), `output_stride` 8 or 16.
    pub backbone: ResNetConfig,
    pub num_classes: i64,
    /// Whether the auxiliary head on C4 exists (it is used only for the training loss).
    pub aux: bool,
    /// Whether the logits are upsampled with corners aligned, as MXNet's `BilinearResize2D`
    /// (GluonCV's FCN) does, or not, as torchvision's `F.interpolate` does. Absent from
    /// checkpoints written before the option existed: those, and torchvision imports, upsample
    /// as torchvision.
    #[serde(default)]
    pub align_corners: bool,
}

/// Classes an FCN may have: its masks are 8-bit PNGs holding 1 + the class index, 0 being
/// "unlabelled" (ADE20K's convention).
pub const CLASSES: std::ops::RangeInclusive<i64> = 1..=254;

/// Dropout before each head's last conv (torchvision's and GluonCV's 0.1).
const HEAD_DROPOUT: f64 = 0.1;

impl FcnConfig {
    /// An FCN over `arch` with plain batch norm and torchvision's eps.
    pub fn new(arch: Arch, output_stride: i64, num_classes: i64, aux: bool) -> Self {
        FcnConfig {
            backbone: ResNetConfig {
                arch,
                num_classes: None,
                output_stride,
                zero_gamma: false,
                norm: NormMode::Batch,
                bn_eps: 1e-5,
            },
            num_classes,
            aux,
            align_corners: false,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.backbone.validate()?;
        if self.backbone.num_classes.is_some() {
            return Err("the backbone of an FCN has no fc layer (num_classes must be null)".into());
        }
        if ![8, 16].contains(&self.backbone.output_stride) {
            return Err(format!(
                "an FCN's output stride must be 8 or 16, not {}",
                self.backbone.output_stride
            ));
        }
        engine::limits::check("the number of classes", self.num_classes, &CLASSES).map(drop)
    }

    /// Channels of C4 and C5, the inputs of the auxiliary and main heads.
    pub fn head_inputs(&self) -> (i64, i64) {
        let c = self.backbone.arch.stage_channels();
        (c[2], c[3])
    }
}

/// torchvision's `FCNHead`: conv3x3 (no bias) → BN → ReLU → dropout → conv1x1 (with bias).
#[derive(Debug)]
pub struct FcnHead {
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
    pub classify: nn::Conv2D,
}

impl FcnHead {
    /// `norm` as the body's: plain, or synchronised across the ranks of a data-parallel run.
    pub fn new(p: nn::Path, in_channels: i64, num_classes: i64, norm: NormMode) -> Self {
        let inner = in_channels / 4;
        FcnHead {
            conv: Conv2d::new(&p / 0, in_channels, inner, 3, 1, 1),
            bn: BatchNorm2d::new(&p / 1, inner, norm, 1.0, 1e-5),
            classify: nn::conv2d(&p / 4, inner, num_classes, 1, Default::default()),
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let x = self.conv.forward_bn(x, &self.bn, train).relu_();
        x.dropout(HEAD_DROPOUT, train).apply(&self.classify)
    }
}

/// The model's outputs, at the size asked for (N x K x H x W; in evaluation laid out
/// channels-last in memory, which only `view` and raw data access notice).
#[derive(Debug)]
pub struct FcnOutput {
    pub out: Tensor,
    /// The auxiliary head's logits (only when the model has one).
    pub aux: Option<Tensor>,
}

#[derive(Debug)]
pub struct Fcn {
    pub config: FcnConfig,
    pub backbone: ResNet,
    pub classifier: FcnHead,
    pub aux_classifier: Option<FcnHead>,
}

impl ConvNormPairs for Fcn {
    fn conv_norm_pairs(&self) -> Vec<(&Conv2d, &BatchNorm2d)> {
        let mut pairs = self.backbone.conv_norm_pairs();
        pairs.push((&self.classifier.conv, &self.classifier.bn));
        if let Some(aux) = &self.aux_classifier {
            pairs.push((&aux.conv, &aux.bn));
        }
        pairs
    }
}

impl Fcn {
    /// Builds the model under `p` (`p / "backbone"`, `p / "classifier"`, ...). The config must
    /// be valid ([`FcnConfig::validate`]).
    pub fn new(p: &nn::Path, config: &FcnConfig) -> Self {
        config.validate().expect("invalid FCN config");
        let (c4, c5) = config.head_inputs();
        Fcn {
            config: config.clone(),
            backbone: ResNet::new(&(p / "backbone"), &config.backbone),
            classifier: FcnHead::new(
                p / "classifier",
                c5,
                config.num_classes,
                config.backbone.norm,
            ),
            aux_classifier: config.aux.then(|| {
                FcnHead::new(
                    p / "aux_classifier",
                    c4,
                    config.num_classes,
                    config.backbone.norm,
                )
            }),
        }
    }

    /// The heads' logits at the features' resolution (the input's over the output stride), as
    /// ordinary strided tensors. The auxiliary head runs only when `with_aux` (training) and
    /// the model has one.
    pub fn head_logits(&self, x: &Tensor, train: bool, with_aux: bool) -> FcnOutput {
        // In CPU inference the features stay in oneDNN's blocked layout up to the logits.
        let stem = self.backbone.stem_forward(&onednn::enter(x, train), train);
        let c2 = self.backbone.stage_forward(0, &stem, train);
        let c3 = self.backbone.stage_forward(1, &c2, train);
        let c4 = self.backbone.stage_forward(2, &c3, train);
        let c5 = self.backbone.stage_forward(3, &c4, train);
        let out = onednn::leave(self.classifier.forward_t(&c5, train));
        let aux = match &self.aux_classifier {
            Some(head) if with_aux => Some(onednn::leave(head.forward_t(&c4, train))),
            _ => None,
        };
        FcnOutput { out, aux }
    }

    /// Logits upsampled to `size` (height, width): the input's own size in training and
    /// torchvision's forward; evaluation at another scale asks for the original image's size.
    /// The auxiliary head runs only when `with_aux` (training) and the model has one.
    pub fn forward_to(
        &self,
        x: &Tensor,
        size: (i64, i64),
        train: bool,
        with_aux: bool,
    ) -> FcnOutput {
        // Without training the logits go on to an argmax or a sum, which read any layout, so
        // they are upsampled channels-last: libtorch's bilinear kernel then runs vectorised
        // over the classes, the largest single step of inference at the paper's crop.
        let corners = self.config.align_corners;
        let resize = |logits: Tensor| match train {
            true => upsample(&logits, size, corners),
            false => upsample(&tensor_to_channels_last(&logits), size, corners),
        };
        let logits = self.head_logits(x, train, with_aux);
        FcnOutput {
            out: resize(logits.out),
            aux: logits.aux.map(resize),
        }
    }

    /// torchvision's forward: both outputs at the input's size.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> FcnOutput {
        let size = x.size();
        self.forward_to(x, (size[2], size[3]), train, true)
    }
}

/// Bilinear resize of an NCHW tensor to `(h, w)`. With `align_corners` the corner pixels of
/// input and output coincide (MXNet's `BilinearResize2D`: source = output index x (in - 1) /
/// (out - 1)); without, pixel centres are mapped (torchvision's `F.interpolate` default).
pub fn upsample(x: &Tensor, (h, w): (i64, i64), align_corners: bool) -> Tensor {
    let size = x.size();
    if (size[2], size[3]) == (h, w) {
        return x.shallow_clone();
    }
    x.upsample_bilinear2d([h, w], align_corners, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn shapes(arch: &str, output_stride: i64) -> (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>) {
        let vs = nn::VarStore::new(Device::Cpu);
        let config = FcnConfig::new(arch.parse().unwrap(), output_stride, 5, true);
        let model = Fcn::new(&vs.root(), &config);
        let x = Tensor::randn([2, 3, 64, 48], (Kind::Float, Device::Cpu));
        let c5 = model.backbone.features(&x, false).c5;
        let c4 = tch::no_grad(|| {
            let s = model.backbone.stem_forward(&x, false);
            let c3 =
                model
                    .backbone
                    .stage_forward(1, &model.backbone.stage_forward(0, &s, false), false);
            model.backbone.stage_forward(2, &c3, false)
        });
        let out = tch::no_grad(|| model.forward_t(&x, false));
        (
            c4.size(),
            c5.size(),
            out.out.size(),
            out.aux.unwrap().size(),
        )
    }

    #[test]
    fn output_stride_8_dilates_layer3_and_layer4() {
        let (c4, c5, out, aux) = shapes("resnet18", 8);
        assert_eq!(c4, [2, 256, 8, 6]);
        assert_eq!(c5, [2, 512, 8, 6]);
        assert_eq!(out, [2, 5, 64, 48]);
        assert_eq!(aux, [2, 5, 64, 48]);
    }

    #[test]
    fn output_stride_16_dilates_layer4_only() {
        let (c4, c5, out, aux) = shapes("resnet18d", 16);
        assert_eq!(c4, [2, 256, 4, 3]);
        assert_eq!(c5, [2, 512, 4, 3]);
        assert_eq!(out, [2, 5, 64, 48]);
        assert_eq!(aux, [2, 5, 64, 48]);
    }

    /// Without gradients the CPU forward runs in oneDNN's blocked layout, with them on the
    /// ordinary one: the two must give the same logits, through the deep stem, the average-
    /// pooled shortcuts and the dilated stages, at odd sizes.
    #[test]
    fn blocked_layout_inference_gives_the_strided_logits() {
        for output_stride in [8, 16] {
            let vs = nn::VarStore::new(Device::Cpu);
            let config = FcnConfig::new("resnet18d".parse().unwrap(), output_stride, 5, true);
            let model = Fcn::new(&vs.root(), &config);
            let x = Tensor::randn([2, 3, 45, 38], (Kind::Float, Device::Cpu));
            let strided = model.forward_to(&x, (45, 38), false, true);
            let blocked = tch::no_grad(|| model.forward_to(&x, (45, 38), false, true));
            for (a, b) in [
                (&strided.out, &blocked.out),
                (&strided.aux.unwrap(), &blocked.aux.unwrap()),
            ] {
                assert!(!b.is_mkldnn());
                assert_eq!(a.size(), b.size());
                let err = (a - b).abs().max().double_value(&[]);
                let scale = a.abs().max().double_value(&[]);
                assert!(
                    err <= 1e-4 * scale,
                    "output stride {output_stride}: {err} of {scale}"
                );
            }
        }
    }

    #[test]
    fn names_and_head_shapes_are_torchvisions() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _model = Fcn::new(
            &vs.root(),
            &FcnConfig::new("resnet50".parse().unwrap(), 8, 7, true),
        );
        let vars = vs.variables();
        let shape = |k: &str| vars.get(k).unwrap_or_else(|| panic!("no {k}")).size();
        assert_eq!(shape("classifier.0.weight"), [512, 2048, 3, 3]);
        assert_eq!(shape("classifier.1.running_var"), [512]);
        assert_eq!(shape("classifier.4.weight"), [7, 512, 1, 1]);
        assert_eq!(shape("classifier.4.bias"), [7]);
        assert_eq!(shape("aux_classifier.0.weight"), [256, 1024, 3, 3]);
        assert_eq!(shape("aux_classifier.4.weight"), [7, 256, 1, 1]);
        assert_eq!(
            shape("backbone.layer4.0.downsample.0.weight"),
            [2048, 1024, 1, 1]
        );
        assert!(vars.keys().all(|k| k.starts_with("backbone.")
            || k.starts_with("classifier.")
            || k.starts_with("aux_classifier.")));
        assert!(!vars.keys().any(|k| k.starts_with("backbone.fc")));
    }

    #[test]
    fn upsampling_keeps_a_constant_map_constant() {
        let x = Tensor::full([1, 2, 3, 4], 1.5, (Kind::Float, Device::Cpu));
        let y = upsample(&x, (17, 9), false);
        assert_eq!(y.size(), [1, 2, 17, 9]);
        assert!((y - 1.5).abs().max().double_value(&[]) < 1e-6);
    }

    /// With `align_corners` (GluonCV's upsampling) the head's grid maps onto the output's
    /// corner to corner: at 40 x 56 the head is 5 x 7, so in a 37 x 61 output head pixel
    /// (i, j) lands on output pixel (9 i, 10 j). torchvision's upsampling interpolates there.
    /// A config saved before the option existed reads as torchvision's.
    #[test]
    fn align_corners_upsamples_corner_to_corner() {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut model = Fcn::new(
            &vs.root(),
            &FcnConfig::new("resnet18".parse().unwrap(), 8, 5, false),
        );
        let x = Tensor::randn([1, 3, 40, 56], (Kind::Float, Device::Cpu));
        let _no_grad = tch::no_grad_guard();
        let head = model.head_logits(&x, false, false).out;
        let plain = model.forward_to(&x, (37, 61), false, false).out;
        model.config.align_corners = true;
        let corners = model.forward_to(&x, (37, 61), false, false).out;
        assert_eq!(head.size(), [1, 5, 5, 7]);
        let at = |t: &Tensor, y: i64, x: i64| t.narrow(2, y, 1).narrow(3, x, 1);
        let gap = |a: Tensor, b: Tensor| (a - b).abs().max().double_value(&[]);
        for (i, j) in [(0, 0), (1, 1), (2, 5), (4, 6)] {
            assert!(gap(at(&corners, 9 * i, 10 * j), at(&head, i, j)) < 1e-5);
        }
        assert!(gap(at(&plain, 9, 10), at(&head, 1, 1)) > 1e-3);

        let mut old = serde_json::to_value(&model.config).unwrap();
        old.as_object_mut().unwrap().remove("align_corners");
        let old: FcnConfig = serde_json::from_value(old).unwrap();
        assert!(!old.align_corners);
    }

    #[test]
    fn inference_logits_are_the_nchw_upsampling_in_another_layout() {
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Fcn::new(
            &vs.root(),
            &FcnConfig::new("resnet18".parse().unwrap(), 8, 5, false),
        );
        let x = Tensor::randn([2, 3, 40, 56], (Kind::Float, Device::Cpu));
        let (out, reference) = tch::no_grad(|| {
            let out = model.forward_to(&x, (37, 61), false, false).out;
            let c5 = model.backbone.features(&x, false).c5;
            (
                out,
                upsample(&model.classifier.forward_t(&c5, false), (37, 61), false),
            )
        });
        assert_eq!(out.size(), [2, 5, 37, 61]);
        assert!((&out - &reference).abs().max().double_value(&[]) < 1e-5);
    }
}
