//! The two layers a ResNet is made of beyond pooling: a bias-free convolution that knows its
//! own geometry (so multiply-accumulates are counted from the real modules), and batch norm,
//! trainable or frozen.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::Tensor;

/// Channels and spatial size of a feature map, for counting MACs without running the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureShape {
    pub channels: i64,
    pub height: i64,
    pub width: i64,
}

/// Conv weights drawn as timm and torchvision do: kaiming normal, fan_out, ReLU gain.
const CONV_INIT: Init = Init::Kaiming {
    dist: nn::init::NormalOrUniform::Normal,
    fan: nn::init::FanInOut::FanOut,
    non_linearity: nn::init::NonLinearity::ReLU,
};

/// A 2-D convolution without bias (every conv of a ResNet is followed by batch norm).
#[derive(Debug)]
pub struct Conv2d {
    pub weight: Tensor,
    pub stride: i64,
    pub padding: i64,
    pub dilation: i64,
}

impl Conv2d {
    /// A square `kernel` conv; padding keeps the size at stride 1 (`dilation * (kernel / 2)`).
    pub fn new(
        p: nn::Path,
        c_in: i64,
        c_out: i64,
        kernel: i64,
        stride: i64,
        dilation: i64,
    ) -> Self {
        let weight = p.var("weight", &[c_out, c_in, kernel, kernel], CONV_INIT);
        Conv2d {
            weight,
            stride,
            padding: dilation * (kernel / 2),
            dilation,
        }
    }

    pub fn kernel(&self) -> i64 {
        self.weight.size()[2]
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.weight,
            None::<Tensor>,
            [self.stride; 2],
            [self.padding; 2],
            [self.dilation; 2],
            1,
        )
    }

    /// Output shape and multiply-accumulates for an input of `input`'s shape.
    pub fn macs(&self, input: FeatureShape) -> (u64, FeatureShape) {
        let size = self.weight.size();
        let (c_out, c_in, k) = (size[0], size[1], size[2]);
        let out = |n: i64| (n + 2 * self.padding - self.dilation * (k - 1) - 1) / self.stride + 1;
        let shape = FeatureShape {
            channels: c_out,
            height: out(input.height),
            width: out(input.width),
        };
        let macs = (shape.height * shape.width * c_out * c_in * k * k) as u64;
        (macs, shape)
    }
}

/// How batch norm behaves.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NormMode {
    /// Ordinary batch norm: batch statistics in training, running statistics in evaluation.
    #[default]
    Batch,
    /// A fixed affine map from the running statistics, never updated (torchvision's
    /// FrozenBatchNorm2d): detection fine-tuning with a few images per batch.
    Frozen,
    /// Batch norm whose training statistics are taken over the batches of every rank of a
    /// data-parallel run (PyTorch's SyncBatchNorm): segmentation and detection with few
    /// images per GPU. With one process it is ordinary batch norm.
    Sync,
}

/// Batch norm over channels, with PyTorch's parameter names (weight, bias, running_mean,
/// running_var).
#[derive(Debug)]
pub enum BatchNorm2d {
    Trainable(nn::BatchNorm),
    /// [`NormMode::Sync`]: the same variables as `Trainable` (tch keeps its eps private).
    Synced {
        bn: nn::BatchNorm,
        eps: f64,
    },
    Frozen {
        weight: Tensor,
        bias: Tensor,
        running_mean: Tensor,
        running_var: Tensor,
        eps: f64,
    },
}

impl BatchNorm2d {
    /// `gamma` is the initial scale: 1, or 0 for the zero-gamma trick on a block's last BN.
    pub fn new(p: nn::Path, channels: i64, mode: NormMode, gamma: f64, eps: f64) -> Self {
        let trainable = |p| {
            nn::batch_norm2d(
                p,
                channels,
                nn::BatchNormConfig {
                    eps,
                    momentum: 0.1,
                    ws_init: Init::Const(gamma),
                    bs_init: Init::Const(0.0),
                    ..Default::default()
                },
            )
        };
        match mode {
            NormMode::Batch => BatchNorm2d::Trainable(trainable(p)),
            NormMode::Sync => BatchNorm2d::Synced {
                bn: trainable(p),
                eps,
            },
            NormMode::Frozen => {
                let mut weight = p.ones_no_train("weight", &[channels]);
                if gamma != 1.0 {
                    tch::no_grad(|| {
                        let _ = weight.fill_(gamma);
                    });
                }
                BatchNorm2d::Frozen {
                    weight,
                    bias: p.zeros_no_train("bias", &[channels]),
                    running_mean: p.zeros_no_train("running_mean", &[channels]),
                    running_var: p.ones_no_train("running_var", &[channels]),
                    eps,
                }
            }
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            BatchNorm2d::Trainable(bn) => nn::ModuleT::forward_t(bn, x, train),
            BatchNorm2d::Synced { bn, eps } => match crate::engine::data_parallel::group() {
                Some(group) if train && group.world_size() > 1 => {
                    crate::sync_batch_norm::forward(bn, *eps, x, group)
                }
                _ => nn::ModuleT::forward_t(bn, x, train),
            },
            BatchNorm2d::Frozen {
                weight,
                bias,
                running_mean,
                running_var,
                eps,
            } => {
                let scale = weight * (running_var + *eps).rsqrt();
                let shift = bias - running_mean * &scale;
                x * scale.view([1, -1, 1, 1]) + shift.view([1, -1, 1, 1])
            }
        }
    }

    /// The scale parameter (gamma), to check or set the zero-gamma initialisation.
    pub fn weight(&self) -> &Tensor {
        match self {
            BatchNorm2d::Trainable(bn) | BatchNorm2d::Synced { bn, .. } => {
                bn.ws.as_ref().expect("affine batch norm")
            }
            BatchNorm2d::Frozen { weight, .. } => weight,
        }
    }
}

/// 3x3 max pooling, stride 2, padding 1: the stem's last step.
pub fn stem_max_pool(x: &Tensor) -> Tensor {
    x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false)
}

pub fn stem_max_pool_shape(s: FeatureShape) -> FeatureShape {
    let out = |n: i64| (n + 2 - 3) / 2 + 1;
    FeatureShape {
        channels: s.channels,
        height: out(s.height),
        width: out(s.width),
    }
}
