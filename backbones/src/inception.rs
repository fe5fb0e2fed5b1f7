//! Inception-V3 (Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
//! 2016: table 1 and figures 5, 6, 7 and 10) as the paper's Tables 3 and 6 train it, with the
//! parameter names of torchvision's and timm's `inception_v3`, which are the same, so weights
//! move to and from both by name.
//!
//! ```text
//! input 299 → Conv2d_1a_3x3 /2 → Conv2d_2a_3x3 → Conv2d_2b_3x3 (padded) → Pool1 3x3/2    73
//!           → Conv2d_3b_1x1 → Conv2d_4a_3x3 → Pool2 3x3/2                                35
//!           → Mixed_5b, 5c, 5d   InceptionA (figure 5)                                   35
//!           → Mixed_6a           InceptionB (grid reduction, figure 10)                  17
//!           → Mixed_6b .. 6e     InceptionC (7x7 as 1x7 and 7x1, figure 6)               17 → AuxLogits
//!           → Mixed_7a           InceptionD (grid reduction)                             8
//!           → Mixed_7b, 7c       InceptionE (3x3 split into 1x3 and 3x1, figure 7)       8
//!           → global average pool → dropout → fc
//! ```
//!
//! Every conv is a BasicConv2d: conv without bias → BN (eps 0.001) → ReLU. Convs are unpadded
//! unless the diagram keeps the size ("same" padding in the mixed blocks), so the map sizes
//! above hold at 299 and the smallest input that reaches the head is 75 px. The auxiliary
//! classifier (on Mixed_6e's output, training only) is optional: torchvision's model has it,
//! timm's by default does not.

use crate::layers::{BatchNorm2d, Conv2d, ConvNormPairs, FeatureShape, NormMode};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::Tensor;

/// Channels into the classifier.
pub const FEATURES: i64 = 2048;

/// Channels out of Mixed_6e, into the auxiliary classifier.
pub const AUX_CHANNELS: i64 = 768;

/// The smallest square input the network runs on: Mixed_7a's 3x3/2 convs and pool need 3x3
/// maps, which Mixed_6e has from 75 px on.
pub const MIN_INPUT_SIZE: i64 = 75;

/// The smallest square input the auxiliary classifier runs on: its 5x5/3 average pool and
/// unpadded 5x5 conv need Mixed_6e at 17x17, which it is from 299 px on.
pub const MIN_AUX_INPUT_SIZE: i64 = 299;

/// Everything that decides the shape of an Inception-V3 and how it trains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InceptionConfig {
    /// Classes of the classifier; `None` builds the body only (forward returns the pooled
    /// features).
    pub num_classes: Option<i64>,
    /// The auxiliary classifier on Mixed_6e (`AuxLogits`), run in training only.
    pub aux_logits: bool,
    /// Dropout before `fc` in training (torchvision and GluonCV: 0.5; timm: 0).
    pub dropout: f64,
    pub norm: NormMode,
    pub bn_eps: f64,
    /// How the weights start ([`InceptionInit`]); it matters only to a model trained from
    /// scratch (imported weights and checkpoints overwrite every tensor). A config written
    /// without it is torchvision's, which every Inception-V3 was built with before the key.
    #[serde(default)]
    pub init: InceptionInit,
}

/// The initialisation of an Inception-V3 built to train from scratch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum InceptionInit {
    /// What the paper's code starts every network from: GluonCV's
    /// `scripts/classification/imagenet/train_imagenet.py` calls
    /// `net.initialize(mx.init.MSRAPrelu(), ctx=ctx)`. MXNet's `MSRAPrelu` is `Xavier("gaussian",
    /// "avg", magnitude = 2 / (1 + 0.25^2))`: every conv and fc weight normal (not truncated)
    /// with std sqrt(magnitude / ((fan_in + fan_out) / 2)), fan_in = c_in * kh * kw and
    /// fan_out = c_out * kh * kw (mxnet/initializer.py). What has an initialiser of its own in
    /// Gluon keeps it: biases 0 (`Dense`'s `bias_initializer='zeros'`), BN gamma 1 and beta 0.
    #[serde(rename = "gluoncv")]
    GluonCV,
    /// torchvision's and timm's `inception_v3`: every conv and fc weight normal with std 0.1
    /// (0.01 and 0.001 for the auxiliary 5x5 conv and fc), whatever its fan-in; fc biases
    /// PyTorch's U(±1/sqrt(inputs)).
    #[default]
    #[serde(rename = "torchvision")]
    Torchvision,
}

impl InceptionInit {
    /// MXNet's `MSRAPrelu` magnitude, 2 / (1 + slope^2) with its default PReLU slope 0.25.
    pub const MSRA_PRELU_MAGNITUDE: f64 = 2.0 / (1.0 + 0.25 * 0.25);

    /// The standard deviation of `MSRAPrelu` for a weight of `c_out` x `c_in` x `receptive`
    /// (kernel height x width; 1 for a dense layer).
    pub fn msra_prelu_stdev(c_in: i64, c_out: i64, receptive: i64) -> f64 {
        let fan_avg = ((c_in + c_out) * receptive) as f64 / 2.0;
        (Self::MSRA_PRELU_MAGNITUDE / fan_avg).sqrt()
    }
}

impl std::fmt::Display for InceptionInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InceptionInit::GluonCV => "gluoncv",
            InceptionInit::Torchvision => "torchvision",
        })
    }
}

impl std::str::FromStr for InceptionInit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gluoncv" => Ok(InceptionInit::GluonCV),
            "torchvision" => Ok(InceptionInit::Torchvision),
            other => Err(format!(
                "unknown initialisation '{other}': gluoncv or torchvision"
            )),
        }
    }
}

impl InceptionConfig {
    /// An ImageNet classifier as timm builds it by default: no auxiliary classifier, no
    /// dropout, timm's initialisation.
    pub fn classifier(num_classes: i64) -> Self {
        InceptionConfig {
            num_classes: Some(num_classes),
            aux_logits: false,
            dropout: 0.0,
            norm: NormMode::Batch,
            bn_eps: 1e-3,
            init: InceptionInit::Torchvision,
        }
    }

    /// A classifier to train from scratch: torchvision's `inception_v3()` (the auxiliary
    /// classifier and dropout 0.5) started as the paper's code starts it, GluonCV's
    /// `MSRAPrelu` ([`InceptionInit::GluonCV`]).
    pub fn for_training(num_classes: i64, norm: NormMode) -> Self {
        InceptionConfig {
            aux_logits: true,
            dropout: 0.5,
            norm,
            init: InceptionInit::GluonCV,
            ..Self::classifier(num_classes)
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(k) = self.num_classes {
            engine::limits::check("the number of classes", k, &engine::limits::CLASSES)?;
        } else if self.aux_logits {
            return Err("the auxiliary classifier needs a number of classes".to_string());
        }
        if !(self.dropout >= 0.0 && self.dropout < 1.0) {
            return Err(format!(
                "dropout must be at least 0 and below 1, not {}",
                self.dropout
            ));
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

/// A normal weight. timm and torchvision truncate theirs at ±2, which at their standard
/// deviations (at most 0.1) is 20 deviations out and never cuts; MXNet's `MSRAPrelu` does not
/// truncate.
fn normal(stdev: f64) -> Init {
    Init::Randn { mean: 0.0, stdev }
}

/// Conv → BN → ReLU, torchvision's `BasicConv2d` and timm's `ConvNormAct`: `<name>.conv`,
/// `<name>.bn`.
#[derive(Debug)]
pub struct BasicConv2d {
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
}

impl BasicConv2d {
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.conv.forward_bn(x, &self.bn, train).relu_()
    }

    fn macs(&self, s: FeatureShape, total: &mut u64) -> FeatureShape {
        let (m, out) = self.conv.macs(s);
        *total += m;
        out
    }
}

/// Builds the BasicConv2ds of one network (its norm mode, eps and initialisation).
struct Convs {
    norm: NormMode,
    eps: f64,
    init: InceptionInit,
}

impl Convs {
    /// `kernel` and `padding` are (height, width); stride 1 unless given with [`Self::strided`].
    fn conv(
        &self,
        p: nn::Path,
        c_in: i64,
        c_out: i64,
        kernel: [i64; 2],
        padding: [i64; 2],
    ) -> BasicConv2d {
        self.make(p, c_in, c_out, kernel, 1, padding, 0.1)
    }

    fn strided(
        &self,
        p: nn::Path,
        c_in: i64,
        c_out: i64,
        kernel: [i64; 2],
        stride: i64,
    ) -> BasicConv2d {
        self.make(p, c_in, c_out, kernel, stride, [0, 0], 0.1)
    }

    /// `stdev` is torchvision's for this conv; GluonCV's follows from the shape.
    #[allow(clippy::too_many_arguments)]
    fn make(
        &self,
        p: nn::Path,
        c_in: i64,
        c_out: i64,
        kernel: [i64; 2],
        stride: i64,
        padding: [i64; 2],
        stdev: f64,
    ) -> BasicConv2d {
        let stdev = match self.init {
            InceptionInit::Torchvision => stdev,
            InceptionInit::GluonCV => {
                InceptionInit::msra_prelu_stdev(c_in, c_out, kernel[0] * kernel[1])
            }
        };
        BasicConv2d {
            conv: Conv2d::rectangular(
                &p / "conv",
                c_in,
                c_out,
                kernel,
                stride,
                padding,
                normal(stdev),
            ),
            bn: BatchNorm2d::new(&p / "bn", c_out, self.norm, 1.0, self.eps),
        }
    }
}

// Kernels and paddings, (height, width).
const K1: [i64; 2] = [1, 1];
const K3: [i64; 2] = [3, 3];
const K5: [i64; 2] = [5, 5];
const K1X7: [i64; 2] = [1, 7];
const K7X1: [i64; 2] = [7, 1];
const K1X3: [i64; 2] = [1, 3];
const K3X1: [i64; 2] = [3, 1];
const NONE: [i64; 2] = [0, 0];
const SAME3: [i64; 2] = [1, 1];
const SAME5: [i64; 2] = [2, 2];
const SAME1X7: [i64; 2] = [0, 3];
const SAME7X1: [i64; 2] = [3, 0];
const SAME1X3: [i64; 2] = [0, 1];
const SAME3X1: [i64; 2] = [1, 0];

/// The pooling a branch starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// 3x3, stride 1, padded by 1 (zeros counted in the average, PyTorch's default): the pool
    /// branch of InceptionA, C and E, before its 1x1 conv.
    Avg3x3,
    /// 3x3, stride 2, unpadded: the whole pool branch of the grid reductions B and D.
    Max3x3Stride2,
}

impl Pool {
    fn forward(self, x: &Tensor) -> Tensor {
        match self {
            Pool::Avg3x3 => x.avg_pool2d([3, 3], [1, 1], [1, 1], false, true, None::<i64>),
            Pool::Max3x3Stride2 => max_pool_3x3_stride_2(x),
        }
    }

    fn shape(self, s: FeatureShape) -> FeatureShape {
        match self {
            Pool::Avg3x3 => s,
            Pool::Max3x3Stride2 => max_pool_3x3_stride_2_shape(s),
        }
    }
}

/// The stem's and the grid reductions' 3x3/2 max pool, unpadded.
fn max_pool_3x3_stride_2(x: &Tensor) -> Tensor {
    x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false)
}

fn max_pool_3x3_stride_2_shape(s: FeatureShape) -> FeatureShape {
    let out = |n: i64| (n - 3) / 2 + 1;
    FeatureShape {
        channels: s.channels,
        height: out(s.height),
        width: out(s.width),
    }
}

/// One branch of a mixed block: an optional pool, a chain of BasicConv2ds, and (InceptionE)
/// a last pair of convs side by side on the chain's output, concatenated.
#[derive(Debug)]
pub struct Branch {
    pub pool: Option<Pool>,
    pub convs: Vec<BasicConv2d>,
    /// InceptionE's 1x3 and 3x1 (figure 7); empty elsewhere.
    pub split: Vec<BasicConv2d>,
}

impl Branch {
    fn chain(convs: Vec<BasicConv2d>) -> Self {
        Branch {
            pool: None,
            convs,
            split: Vec::new(),
        }
    }

    fn split(convs: Vec<BasicConv2d>, split: [BasicConv2d; 2]) -> Self {
        Branch {
            pool: None,
            convs,
            split: split.into(),
        }
    }

    fn avg_pool(conv: BasicConv2d) -> Self {
        Branch {
            pool: Some(Pool::Avg3x3),
            convs: vec![conv],
            split: Vec::new(),
        }
    }

    fn max_pool() -> Self {
        Branch {
            pool: Some(Pool::Max3x3Stride2),
            convs: Vec::new(),
            split: Vec::new(),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = match self.pool {
            Some(pool) => pool.forward(x),
            None => x.shallow_clone(),
        };
        for conv in &self.convs {
            y = conv.forward_t(&y, train);
        }
        if self.split.is_empty() {
            return y;
        }
        let parts: Vec<Tensor> = self.split.iter().map(|c| c.forward_t(&y, train)).collect();
        Tensor::cat(&parts, 1)
    }

    fn macs(&self, s: FeatureShape, total: &mut u64) -> FeatureShape {
        let mut s = match self.pool {
            Some(pool) => pool.shape(s),
            None => s,
        };
        for conv in &self.convs {
            s = conv.macs(s, total);
        }
        if self.split.is_empty() {
            return s;
        }
        let parts: Vec<FeatureShape> = self.split.iter().map(|c| c.macs(s, total)).collect();
        FeatureShape {
            channels: parts.iter().map(|p| p.channels).sum(),
            ..parts[0]
        }
    }

    fn basic_convs(&self) -> impl Iterator<Item = &BasicConv2d> {
        self.convs.iter().chain(&self.split)
    }
}

/// The five kinds of mixed block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MixedKind {
    A,
    B,
    C,
    D,
    E,
}

/// A mixed block: its branches side by side on the same input, their outputs concatenated
/// along the channels in the order listed (torchvision's).
#[derive(Debug)]
pub struct Mixed {
    pub kind: MixedKind,
    pub branches: Vec<Branch>,
}

impl Mixed {
    /// InceptionA (figure 5, at 35x35): 1x1, 64 | 1x1, 48 → 5x5, 64 | 1x1, 64 → 3x3, 96 →
    /// 3x3, 96 | avg pool → 1x1, `pool_features`.
    fn a(p: &nn::Path, c_in: i64, pool_features: i64, m: &Convs) -> Self {
        let c = |name: &str, c_in, c_out, k, pad| m.conv(p / name, c_in, c_out, k, pad);
        Mixed {
            kind: MixedKind::A,
            branches: vec![
                Branch::chain(vec![c("branch1x1", c_in, 64, K1, NONE)]),
                Branch::chain(vec![
                    c("branch5x5_1", c_in, 48, K1, NONE),
                    c("branch5x5_2", 48, 64, K5, SAME5),
                ]),
                Branch::chain(vec![
                    c("branch3x3dbl_1", c_in, 64, K1, NONE),
                    c("branch3x3dbl_2", 64, 96, K3, SAME3),
                    c("branch3x3dbl_3", 96, 96, K3, SAME3),
                ]),
                Branch::avg_pool(c("branch_pool", c_in, pool_features, K1, NONE)),
            ],
        }
    }

    /// InceptionB (grid reduction 35 → 17, figure 10): 3x3/2, 384 | 1x1, 64 → 3x3, 96 →
    /// 3x3/2, 96 | max pool 3x3/2.
    fn b(p: &nn::Path, c_in: i64, m: &Convs) -> Self {
        Mixed {
            kind: MixedKind::B,
            branches: vec![
                Branch::chain(vec![m.strided(p / "branch3x3", c_in, 384, K3, 2)]),
                Branch::chain(vec![
                    m.conv(p / "branch3x3dbl_1", c_in, 64, K1, NONE),
                    m.conv(p / "branch3x3dbl_2", 64, 96, K3, SAME3),
                    m.strided(p / "branch3x3dbl_3", 96, 96, K3, 2),
                ]),
                Branch::max_pool(),
            ],
        }
    }

    /// InceptionC (figure 6, at 17x17), each 7x7 factorised into 1x7 and 7x1 over `c7`
    /// channels: 1x1, 192 | 1x1 → 1x7 → 7x1, 192 | 1x1 → 7x1 → 1x7 → 7x1 → 1x7, 192 |
    /// avg pool → 1x1, 192.
    fn c(p: &nn::Path, c_in: i64, c7: i64, m: &Convs) -> Self {
        let c = |name: &str, c_in, c_out, k, pad| m.conv(p / name, c_in, c_out, k, pad);
        Mixed {
            kind: MixedKind::C,
            branches: vec![
                Branch::chain(vec![c("branch1x1", c_in, 192, K1, NONE)]),
                Branch::chain(vec![
                    c("branch7x7_1", c_in, c7, K1, NONE),
                    c("branch7x7_2", c7, c7, K1X7, SAME1X7),
                    c("branch7x7_3", c7, 192, K7X1, SAME7X1),
                ]),
                Branch::chain(vec![
                    c("branch7x7dbl_1", c_in, c7, K1, NONE),
                    c("branch7x7dbl_2", c7, c7, K7X1, SAME7X1),
                    c("branch7x7dbl_3", c7, c7, K1X7, SAME1X7),
                    c("branch7x7dbl_4", c7, c7, K7X1, SAME7X1),
                    c("branch7x7dbl_5", c7, 192, K1X7, SAME1X7),
                ]),
                Branch::avg_pool(c("branch_pool", c_in, 192, K1, NONE)),
            ],
        }
    }

    /// InceptionD (grid reduction 17 → 8): 1x1, 192 → 3x3/2, 320 | 1x1 → 1x7 → 7x1 →
    /// 3x3/2, 192 | max pool 3x3/2.
    fn d(p: &nn::Path, c_in: i64, m: &Convs) -> Self {
        Mixed {
            kind: MixedKind::D,
            branches: vec![
                Branch::chain(vec![
                    m.conv(p / "branch3x3_1", c_in, 192, K1, NONE),
                    m.strided(p / "branch3x3_2", 192, 320, K3, 2),
                ]),
                Branch::chain(vec![
                    m.conv(p / "branch7x7x3_1", c_in, 192, K1, NONE),
                    m.conv(p / "branch7x7x3_2", 192, 192, K1X7, SAME1X7),
                    m.conv(p / "branch7x7x3_3", 192, 192, K7X1, SAME7X1),
                    m.strided(p / "branch7x7x3_4", 192, 192, K3, 2),
                ]),
                Branch::max_pool(),
            ],
        }
    }

    /// InceptionE (figure 7, at 8x8), the last 3x3 of two branches split into 1x3 and 3x1
    /// side by side: 1x1, 320 | 1x1, 384 → (1x3 | 3x1), 2 x 384 | 1x1, 448 → 3x3, 384 →
    /// (1x3 | 3x1), 2 x 384 | avg pool → 1x1, 192.
    fn e(p: &nn::Path, c_in: i64, m: &Convs) -> Self {
        let c = |name: &str, c_in, c_out, k, pad| m.conv(p / name, c_in, c_out, k, pad);
        Mixed {
            kind: MixedKind::E,
            branches: vec![
                Branch::chain(vec![c("branch1x1", c_in, 320, K1, NONE)]),
                Branch::split(
                    vec![c("branch3x3_1", c_in, 384, K1, NONE)],
                    [
                        c("branch3x3_2a", 384, 384, K1X3, SAME1X3),
                        c("branch3x3_2b", 384, 384, K3X1, SAME3X1),
                    ],
                ),
                Branch::split(
                    vec![
                        c("branch3x3dbl_1", c_in, 448, K1, NONE),
                        c("branch3x3dbl_2", 448, 384, K3, SAME3),
                    ],
                    [
                        c("branch3x3dbl_3a", 384, 384, K1X3, SAME1X3),
                        c("branch3x3dbl_3b", 384, 384, K3X1, SAME3X1),
                    ],
                ),
                Branch::avg_pool(c("branch_pool", c_in, 192, K1, NONE)),
            ],
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let outputs: Vec<Tensor> = self
            .branches
            .iter()
            .map(|b| b.forward_t(x, train))
            .collect();
        Tensor::cat(&outputs, 1)
    }

    fn macs(&self, s: FeatureShape, total: &mut u64) -> FeatureShape {
        let outputs: Vec<FeatureShape> = self.branches.iter().map(|b| b.macs(s, total)).collect();
        FeatureShape {
            channels: outputs.iter().map(|o| o.channels).sum(),
            ..outputs[0]
        }
    }

    /// Every BasicConv2d, branch by branch.
    pub fn basic_convs(&self) -> impl Iterator<Item = &BasicConv2d> {
        self.branches.iter().flat_map(Branch::basic_convs)
    }
}

/// The auxiliary classifier on Mixed_6e (17x17 at 299 px): average pool 5x5/3 → 1x1, 128 →
/// 5x5, 768 (unpadded: 5x5 → 1x1) → global average pool → fc.
#[derive(Debug)]
pub struct InceptionAux {
    pub conv0: BasicConv2d,
    pub conv1: BasicConv2d,
    pub fc: nn::Linear,
}

impl InceptionAux {
    fn new(p: &nn::Path, num_classes: i64, m: &Convs) -> Self {
        InceptionAux {
            conv0: m.conv(p / "conv0", AUX_CHANNELS, 128, K1, NONE),
            // timm and torchvision start these two smaller: std 0.01 and 0.001.
            conv1: m.make(p / "conv1", 128, AUX_CHANNELS, K5, 1, NONE, 0.01),
            fc: linear(p / "fc", AUX_CHANNELS, num_classes, 0.001, m.init),
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let x = x.avg_pool2d([5, 5], [3, 3], [0, 0], false, true, None::<i64>);
        let x = self.conv0.forward_t(&x, train);
        let x = self.conv1.forward_t(&x, train);
        x.adaptive_avg_pool2d([1, 1]).flatten(1, -1).apply(&self.fc)
    }
}

/// A linear layer. torchvision's and timm's: weight normal of `stdev`, bias PyTorch's default
/// U(±1/sqrt(inputs)) (libtorch's and tch's too, `bs_init: None`); GluonCV's: weight
/// `MSRAPrelu`, bias 0.
fn linear(p: nn::Path, c_in: i64, c_out: i64, stdev: f64, init: InceptionInit) -> nn::Linear {
    let (ws_init, bs_init) = match init {
        InceptionInit::Torchvision => (normal(stdev), None),
        InceptionInit::GluonCV => (
            normal(InceptionInit::msra_prelu_stdev(c_in, c_out, 1)),
            Some(Init::Const(0.0)),
        ),
    };
    nn::linear(
        p,
        c_in,
        c_out,
        nn::LinearConfig {
            ws_init,
            bs_init,
            bias: true,
        },
    )
}

#[derive(Debug)]
pub struct InceptionV3 {
    pub config: InceptionConfig,
    pub conv2d_1a_3x3: BasicConv2d,
    pub conv2d_2a_3x3: BasicConv2d,
    pub conv2d_2b_3x3: BasicConv2d,
    pub conv2d_3b_1x1: BasicConv2d,
    pub conv2d_4a_3x3: BasicConv2d,
    /// Mixed_5b .. Mixed_6e: three InceptionA, InceptionB, four InceptionC; the auxiliary
    /// classifier reads the last one's output.
    pub mixed_17: Vec<Mixed>,
    /// Mixed_7a .. Mixed_7c: InceptionD, two InceptionE.
    pub mixed_8: Vec<Mixed>,
    pub aux: Option<InceptionAux>,
    pub fc: Option<nn::Linear>,
}

/// The variable-store names of [`InceptionV3::mixed_17`] and [`InceptionV3::mixed_8`].
pub const MIXED_17: [&str; 8] = [
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
];
pub const MIXED_8: [&str; 3] = ["Mixed_7a", "Mixed_7b", "Mixed_7c"];

impl InceptionV3 {
    pub fn new(p: &nn::Path, config: &InceptionConfig) -> Self {
        config.validate().expect("invalid Inception-V3 config");
        let m = Convs {
            norm: config.norm,
            eps: config.bn_eps,
            init: config.init,
        };
        let [m5b, m5c, m5d, m6a, m6b, m6c, m6d, m6e] = MIXED_17.map(|name| p / name);
        let [m7a, m7b, m7c] = MIXED_8.map(|name| p / name);
        InceptionV3 {
            config: config.clone(),
            conv2d_1a_3x3: m.strided(p / "Conv2d_1a_3x3", 3, 32, K3, 2),
            conv2d_2a_3x3: m.conv(p / "Conv2d_2a_3x3", 32, 32, K3, NONE),
            conv2d_2b_3x3: m.conv(p / "Conv2d_2b_3x3", 32, 64, K3, SAME3),
            conv2d_3b_1x1: m.conv(p / "Conv2d_3b_1x1", 64, 80, K1, NONE),
            conv2d_4a_3x3: m.conv(p / "Conv2d_4a_3x3", 80, 192, K3, NONE),
            mixed_17: vec![
                Mixed::a(&m5b, 192, 32, &m),
                Mixed::a(&m5c, 256, 64, &m),
                Mixed::a(&m5d, 288, 64, &m),
                Mixed::b(&m6a, 288, &m),
                Mixed::c(&m6b, 768, 128, &m),
                Mixed::c(&m6c, 768, 160, &m),
                Mixed::c(&m6d, 768, 160, &m),
                Mixed::c(&m6e, 768, 192, &m),
            ],
            mixed_8: vec![
                Mixed::d(&m7a, 768, &m),
                Mixed::e(&m7b, 1280, &m),
                Mixed::e(&m7c, 2048, &m),
            ],
            aux: match (config.aux_logits, config.num_classes) {
                (true, Some(k)) => Some(InceptionAux::new(&(p / "AuxLogits"), k, &m)),
                _ => None,
            },
            fc: config
                .num_classes
                .map(|k| linear(p / "fc", FEATURES, k, 0.1, config.init)),
        }
    }

    /// The stem and Mixed_5b .. Mixed_6e: the map the auxiliary classifier reads (768
    /// channels, stride 16-ish: 17x17 at 299).
    fn to_mixed_6e(&self, x: &Tensor, train: bool) -> Tensor {
        let x = self.conv2d_1a_3x3.forward_t(x, train);
        let x = self.conv2d_2a_3x3.forward_t(&x, train);
        let x = self.conv2d_2b_3x3.forward_t(&x, train);
        let x = max_pool_3x3_stride_2(&x);
        let x = self.conv2d_3b_1x1.forward_t(&x, train);
        let x = self.conv2d_4a_3x3.forward_t(&x, train);
        let mut x = max_pool_3x3_stride_2(&x);
        for block in &self.mixed_17 {
            x = block.forward_t(&x, train);
        }
        x
    }

    fn mixed_7(&self, mut x: Tensor, train: bool) -> Tensor {
        for block in &self.mixed_8 {
            x = block.forward_t(&x, train);
        }
        x
    }

    /// Mixed_7c's output ([`FEATURES`] channels, 8x8 at 299).
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        self.mixed_7(self.to_mixed_6e(x, train), train)
    }

    /// The logits (the pooled features without a classifier) and, in training with the
    /// auxiliary classifier, its logits, as torchvision's model returns them in training.
    pub fn forward_aux(&self, x: &Tensor, train: bool) -> (Tensor, Option<Tensor>) {
        self.forward_with(x, train, true)
    }

    fn forward_with(&self, x: &Tensor, train: bool, with_aux: bool) -> (Tensor, Option<Tensor>) {
        let x = self.to_mixed_6e(x, train);
        let aux = match &self.aux {
            Some(head) if train && with_aux => Some(head.forward_t(&x, train)),
            _ => None,
        };
        let pooled = self
            .mixed_7(x, train)
            .adaptive_avg_pool2d([1, 1])
            .flatten(1, -1)
            .dropout(self.config.dropout, train);
        let out = match &self.fc {
            Some(fc) => pooled.apply(fc),
            None => pooled,
        };
        (out, aux)
    }

    /// Multiply-accumulates of one inference forward at `height` x `width` (the auxiliary
    /// classifier, run in training only, is not counted, as PyTorch's counters of the model in
    /// evaluation do not), counted by walking the modules: convolutions and the classifier.
    pub fn macs(&self, height: i64, width: i64) -> u64 {
        let mut total = 0;
        let mut s = FeatureShape {
            channels: 3,
            height,
            width,
        };
        s = self.conv2d_1a_3x3.macs(s, &mut total);
        s = self.conv2d_2a_3x3.macs(s, &mut total);
        s = self.conv2d_2b_3x3.macs(s, &mut total);
        s = max_pool_3x3_stride_2_shape(s);
        s = self.conv2d_3b_1x1.macs(s, &mut total);
        s = self.conv2d_4a_3x3.macs(s, &mut total);
        s = max_pool_3x3_stride_2_shape(s);
        for block in self.mixed_17.iter().chain(&self.mixed_8) {
            s = block.macs(s, &mut total);
        }
        if let Some(fc) = &self.fc {
            total += fc.ws.numel() as u64;
        }
        total
    }

    /// Every BasicConv2d of the inference path, in the order the input meets them (the
    /// auxiliary classifier's are not: it never runs in evaluation).
    pub fn basic_convs(&self) -> Vec<&BasicConv2d> {
        let stem = [
            &self.conv2d_1a_3x3,
            &self.conv2d_2a_3x3,
            &self.conv2d_2b_3x3,
            &self.conv2d_3b_1x1,
            &self.conv2d_4a_3x3,
        ];
        let mixed = self
            .mixed_17
            .iter()
            .chain(&self.mixed_8)
            .flat_map(Mixed::basic_convs);
        stem.into_iter().chain(mixed).collect()
    }
}

impl ConvNormPairs for InceptionV3 {
    fn conv_norm_pairs(&self) -> Vec<(&Conv2d, &BatchNorm2d)> {
        self.basic_convs()
            .into_iter()
            .map(|b| (&b.conv, &b.bn))
            .collect()
    }
}

impl nn::ModuleT for InceptionV3 {
    /// Logits, or the pooled features when the model has no classifier (the auxiliary
    /// classifier is not run: [`InceptionV3::forward_aux`] runs it).
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward_with(x, train, false).0
    }
}
