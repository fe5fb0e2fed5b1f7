//! The two layers a ResNet is made of beyond pooling: a bias-free convolution that knows its
//! own geometry (so multiply-accumulates are counted from the real modules), and batch norm,
//! trainable or frozen.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

use crate::{single_pixel, winograd};

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

/// A 2-D convolution without bias (every conv of a ResNet, a MobileNet or an Inception-V3 is
/// followed by batch norm), dense or depthwise, square or (Inception's 1x7, 7x1, 1x3, 3x1)
/// rectangular.
#[derive(Debug)]
pub struct Conv2d {
    pub weight: Tensor,
    pub stride: i64,
    /// Zeros added above and below, left and right.
    pub padding: [i64; 2],
    pub dilation: i64,
    /// 1 for a dense conv; the channel count for a depthwise one (one filter per channel).
    pub groups: i64,
    /// The weights with the following norm folded in, kept for inference between
    /// [`Conv2d::prepare_inference`] and [`Conv2d::release_inference`].
    prepared: Mutex<Option<Folded>>,
}

/// A folded weight and bias.
#[derive(Debug)]
struct Folded {
    weight: Tensor,
    bias: Tensor,
    /// `weight` in Winograd's domain, made the first time the conv goes that way.
    winograd: Option<Tensor>,
    /// `weight` and `bias` cast to an autocast region's type, made the first time the conv
    /// runs inside one: autocast would cast them again at every forward pass (its cache
    /// keeps only the casts of trained leaves, and only until the region closes).
    lowered: Option<(Tensor, Tensor)>,
}

/// Whether autograd records operations on this thread (libtorch's GradMode).
pub fn grad_mode_enabled() -> bool {
    // SAFETY: plain calls into libtorch's thread-local GradMode; the mode is put back as found.
    unsafe {
        let was = torch_sys::at_grad_set_enabled(0);
        torch_sys::at_grad_set_enabled(was);
        was != 0
    }
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
        Self::grouped(p, c_in, c_out, kernel, stride, dilation, 1)
    }

    /// A depthwise `kernel` conv over `channels`: each channel filtered on its own (MobileNet).
    pub fn depthwise(p: nn::Path, channels: i64, kernel: i64, stride: i64) -> Self {
        Self::grouped(p, channels, channels, kernel, stride, 1, channels)
    }

    fn grouped(
        p: nn::Path,
        c_in: i64,
        c_out: i64,
        kernel: i64,
        stride: i64,
        dilation: i64,
        groups: i64,
    ) -> Self {
        // PyTorch's layout: each output channel sees c_in / groups input channels. A dense
        // conv draws as timm's ResNets do; a grouped one as timm's MobileNets (EfficientNet's
        // init): the fan-out is the outputs of one group, c_out * k * k / groups, where
        // libtorch's kaiming rule would count all c_out * k * k and start a depthwise filter
        // sqrt(groups) times smaller.
        let init = if groups == 1 {
            CONV_INIT
        } else {
            let fan_out = (c_out * kernel * kernel / groups) as f64;
            Init::Randn {
                mean: 0.0,
                stdev: (2.0 / fan_out).sqrt(),
            }
        };
        let weight = p.var("weight", &[c_out, c_in / groups, kernel, kernel], init);
        Conv2d {
            weight,
            stride,
            padding: [dilation * (kernel / 2); 2],
            dilation,
            groups,
            prepared: Mutex::new(None),
        }
    }

    /// A dense `kernel[0]` x `kernel[1]` conv with the given padding (height, width) and
    /// initialisation: Inception's unpadded 3x3s and factorised 1xn / nx1 convs, which timm and
    /// torchvision draw from a normal of a fixed standard deviation.
    pub fn rectangular(
        p: nn::Path,
        c_in: i64,
        c_out: i64,
        kernel: [i64; 2],
        stride: i64,
        padding: [i64; 2],
        init: Init,
    ) -> Self {
        let weight = p.var("weight", &[c_out, c_in, kernel[0], kernel[1]], init);
        Conv2d {
            weight,
            stride,
            padding,
            dilation: 1,
            groups: 1,
            prepared: Mutex::new(None),
        }
    }

    /// The kernel's height (its side, for the square convs of a ResNet or a MobileNet).
    pub fn kernel(&self) -> i64 {
        self.weight.size()[2]
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.conv_with(x, &self.weight, None)
    }

    /// This conv followed by `bn`. When `bn` is a fixed affine map (frozen, or in evaluation)
    /// it is folded into the conv: weights scaled per output channel, the shift as the conv's
    /// bias. The result is the same map, but the output is written once instead of being read
    /// and written twice more by the norm, which is most of what frozen BN costs a detector.
    pub fn forward_bn(&self, x: &Tensor, bn: &BatchNorm2d, train: bool) -> Tensor {
        // Without gradients (evaluation, prediction) the weights prepared for inference are
        // used when there are some, and Winograd's 3x3 path is open.
        if !train && !grad_mode_enabled() {
            let [pad_h, pad_w] = self.padding;
            let by_winograd = pad_h == pad_w
                && winograd::applies(x, &self.weight, self.stride, pad_h, self.dilation);
            let lower = engine::amp::autocast_kind(x.device());
            if let Some((weight, bias, transformed)) = self.inference_fold(bn, by_winograd, lower) {
                return match transformed {
                    Some(u) => winograd::conv3x3(x, &u, Some(&bias), self.dilation),
                    None => self.conv_with(x, &weight, Some(&bias)),
                };
            }
        }
        match bn.affine(train) {
            Some((scale, shift)) => {
                self.conv_with(x, &(&self.weight * scale.view([-1, 1, 1, 1])), Some(&shift))
            }
            None => bn.forward_t(&self.forward(x), train),
        }
    }

    /// Folds `bn` (in evaluation) into this conv and keeps the result for every inference
    /// forward until [`Conv2d::release_inference`]: weight or statistic changes in between
    /// are not seen, so only a model that is not trained in between is prepared (see
    /// [`ConvNormPairs`]).
    pub fn prepare_inference(&self, bn: &BatchNorm2d) {
        let fold = tch::no_grad(|| {
            bn.affine(false).map(|(scale, shift)| Folded {
                weight: &self.weight * scale.view([-1, 1, 1, 1]),
                bias: shift,
                winograd: None,
                lowered: None,
            })
        });
        *self.prepared.lock().unwrap_or_else(|e| e.into_inner()) = fold;
    }

    /// Drops the weights kept by [`Conv2d::prepare_inference`].
    pub fn release_inference(&self) {
        *self.prepared.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The inference-mode folded weight and bias, and with `by_winograd` the weight in
    /// Winograd's domain: the prepared ones (the transform made at first use), else made for
    /// this call; `None` when `bn` in evaluation is not an affine map. Inside an autocast
    /// region (`lower`) the prepared weight and bias come in its type, as autocast's casts
    /// would make them, so that the convolution computes the same thing.
    fn inference_fold(
        &self,
        bn: &BatchNorm2d,
        by_winograd: bool,
        lower: Option<Kind>,
    ) -> Option<(Tensor, Tensor, Option<Tensor>)> {
        let mut prepared = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        let Some(fold) = prepared.as_mut() else {
            let (scale, shift) = bn.affine(false)?;
            let weight = &self.weight * scale.view([-1, 1, 1, 1]);
            let transformed = by_winograd.then(|| winograd::transform_weight(&weight));
            return Some((weight, shift, transformed));
        };
        if let Some(kind) = lower {
            let stale = |(w, _): &(Tensor, Tensor)| w.kind() != kind;
            if fold.lowered.as_ref().is_none_or(stale) {
                fold.lowered = Some((fold.weight.to_kind(kind), fold.bias.to_kind(kind)));
            }
            let (weight, bias) = fold.lowered.as_ref().expect("made above");
            return Some((weight.shallow_clone(), bias.shallow_clone(), None));
        }
        if by_winograd && fold.winograd.is_none() {
            fold.winograd = Some(winograd::transform_weight(&fold.weight));
        }
        Some((
            fold.weight.shallow_clone(),
            fold.bias.shallow_clone(),
            fold.winograd
                .as_ref()
                .filter(|_| by_winograd)
                .map(|u| u.shallow_clone()),
        ))
    }

    fn conv_with(&self, x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
        if self.groups == 1 {
            if let Some(y) =
                single_pixel::conv2d(x, weight, bias, self.stride, self.padding, self.dilation)
            {
                return y;
            }
        }
        x.conv2d(
            weight,
            bias,
            [self.stride; 2],
            self.padding,
            [self.dilation; 2],
            self.groups,
        )
    }

    /// Output shape and multiply-accumulates for an input of `input`'s shape.
    pub fn macs(&self, input: FeatureShape) -> (u64, FeatureShape) {
        // The weight's second dimension is the channels each output sees (c_in / groups), so
        // the count holds for dense and depthwise convs alike.
        let size = self.weight.size();
        let (c_out, c_in, kh, kw) = (size[0], size[1], size[2], size[3]);
        let out = |n: i64, k: i64, pad: i64| {
            (n + 2 * pad - self.dilation * (k - 1) - 1) / self.stride + 1
        };
        let shape = FeatureShape {
            channels: c_out,
            height: out(input.height, kh, self.padding[0]),
            width: out(input.width, kw, self.padding[1]),
        };
        let macs = (shape.height * shape.width * c_out * c_in * kh * kw) as u64;
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
    /// Ordinary batch norm (tch keeps its eps private, so it is kept here too).
    Trainable { bn: nn::BatchNorm, eps: f64 },
    /// [`NormMode::Sync`]: the same variables as `Trainable` (tch keeps its eps private).
    Synced { bn: nn::BatchNorm, eps: f64 },
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
            NormMode::Batch => BatchNorm2d::Trainable {
                bn: trainable(p),
                eps,
            },
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
            BatchNorm2d::Trainable { bn, .. } => nn::ModuleT::forward_t(bn, x, train),
            BatchNorm2d::Synced { bn, eps } => match engine::data_parallel::group() {
                Some(group) if train && group.world_size() > 1 => {
                    crate::sync_batch_norm::forward(bn, *eps, x, group)
                }
                _ => nn::ModuleT::forward_t(bn, x, train),
            },
            BatchNorm2d::Frozen { .. } => {
                let (scale, shift) = self.affine(train).expect("frozen batch norm is affine");
                x * scale.view([1, -1, 1, 1]) + shift.view([1, -1, 1, 1])
            }
        }
    }

    /// The per-channel `(scale, shift)` this norm applies when it does not normalise by the
    /// batch: always when frozen, in evaluation otherwise (running statistics). `None` when
    /// it uses the batch's statistics.
    pub fn affine(&self, train: bool) -> Option<(Tensor, Tensor)> {
        let ([weight, bias, mean, var], eps) = self.affine_sources(train)?;
        let scale = weight * (var + eps).rsqrt();
        let shift = bias - mean * &scale;
        Some((scale, shift))
    }

    /// What [`affine`](Self::affine) is computed from, when it is `Some`: weight, bias,
    /// running mean and running variance, and eps.
    fn affine_sources(&self, train: bool) -> Option<([&Tensor; 4], f64)> {
        match self {
            BatchNorm2d::Frozen {
                weight,
                bias,
                running_mean,
                running_var,
                eps,
            } => Some(([weight, bias, running_mean, running_var], *eps)),
            BatchNorm2d::Trainable { bn, eps } | BatchNorm2d::Synced { bn, eps } if !train => {
                Some((
                    [
                        bn.ws.as_ref().expect("affine batch norm"),
                        bn.bs.as_ref().expect("affine batch norm"),
                        &bn.running_mean,
                        &bn.running_var,
                    ],
                    *eps,
                ))
            }
            _ => None,
        }
    }

    /// The scale parameter (gamma), to check or set the zero-gamma initialisation.
    pub fn weight(&self) -> &Tensor {
        match self {
            BatchNorm2d::Trainable { bn, .. } | BatchNorm2d::Synced { bn, .. } => {
                bn.ws.as_ref().expect("affine batch norm")
            }
            BatchNorm2d::Frozen { weight, .. } => weight,
        }
    }
}

/// A model whose convolutions are each followed by a norm (a ResNet, Faster R-CNN, an FCN):
/// its conv-norm pairs fold for inference.
pub trait ConvNormPairs {
    fn conv_norm_pairs(&self) -> Vec<(&Conv2d, &BatchNorm2d)>;

    /// Folds every pair (and, at first use, makes Winograd's transforms) for inference, kept
    /// until [`ConvNormPairs::release_inference`]. A model that only predicts (a checkpoint
    /// opened for evaluation or prediction, a distillation teacher) is prepared once; a model
    /// in training is prepared for each evaluation through [`PreparedInference`].
    fn prepare_inference(&self) {
        for (conv, bn) in self.conv_norm_pairs() {
            conv.prepare_inference(bn);
        }
    }

    fn release_inference(&self) {
        for (conv, _) in self.conv_norm_pairs() {
            conv.release_inference();
        }
    }
}

/// A model prepared for inference while this value lives, released when it is dropped, so
/// training after an evaluation never runs on weights folded before it.
pub struct PreparedInference<'m, M: ConvNormPairs + ?Sized>(&'m M);

impl<'m, M: ConvNormPairs + ?Sized> PreparedInference<'m, M> {
    pub fn new(model: &'m M) -> Self {
        model.prepare_inference();
        PreparedInference(model)
    }
}

impl<M: ConvNormPairs + ?Sized> Drop for PreparedInference<'_, M> {
    fn drop(&mut self) {
        self.0.release_inference();
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// A conv and a norm with statistics far from the identity, under `mode`.
    fn conv_and_norm(vs: &nn::VarStore, mode: NormMode) -> (Conv2d, BatchNorm2d) {
        let conv = Conv2d::new(vs.root() / "conv", 3, 5, 3, 2, 1);
        let bn = BatchNorm2d::new(vs.root() / "bn", 5, mode, 1.0, 1e-5);
        tch::no_grad(|| {
            for (name, mut t) in vs.variables() {
                if name.starts_with("bn.") {
                    let values = Tensor::rand([5], (Kind::Float, Device::Cpu)) + 0.5;
                    t.copy_(&values);
                }
            }
        });
        (conv, bn)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn a_frozen_norm_folded_into_the_conv_gives_the_same_map_and_gradients() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let (conv, bn) = conv_and_norm(&vs, NormMode::Frozen);
        let x = Tensor::randn([2, 3, 9, 11], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let folded = conv.forward_bn(&x, &bn, true);
        let plain = bn.forward_t(&conv.forward(&x), true);
        assert_eq!(folded.size(), plain.size());
        assert!(max_diff(&folded, &plain) < 1e-5);

        let grads = |y: &Tensor| {
            let g = Tensor::run_backward(
                &[(y * y).sum(Kind::Float)],
                &[&x, &conv.weight],
                false,
                false,
            );
            (g[0].shallow_clone(), g[1].shallow_clone())
        };
        let (gx_folded, gw_folded) = grads(&folded);
        let (gx_plain, gw_plain) = grads(&plain);
        assert!(max_diff(&gx_folded, &gx_plain) < 1e-4);
        assert!(max_diff(&gw_folded, &gw_plain) < 1e-3);
    }

    #[test]
    fn a_trainable_norm_is_folded_only_in_evaluation() {
        tch::manual_seed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        let (conv, bn) = conv_and_norm(&vs, NormMode::Batch);
        let x = Tensor::randn([4, 3, 8, 8], (Kind::Float, Device::Cpu));
        assert!(bn.affine(true).is_none());
        let folded = tch::no_grad(|| conv.forward_bn(&x, &bn, false));
        let plain = tch::no_grad(|| bn.forward_t(&conv.forward(&x), false));
        assert!(max_diff(&folded, &plain) < 1e-5);
        // In training the batch's own statistics are used: each channel comes out centred.
        let train = tch::no_grad(|| conv.forward_bn(&x, &bn, true));
        let means = train.mean_dim([0i64, 2, 3].as_slice(), false, Kind::Float);
        let shifts = match &bn {
            BatchNorm2d::Trainable { bn, .. } => bn.bs.as_ref().unwrap().shallow_clone(),
            _ => unreachable!(),
        };
        assert!(max_diff(&means, &shifts) < 1e-4);
    }

    #[test]
    fn prepared_weights_serve_until_released_and_unprepared_forwards_follow_every_change() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let (conv, bn) = conv_and_norm(&vs, NormMode::Batch);
        let x = Tensor::randn([4, 3, 8, 8], (Kind::Float, Device::Cpu));
        let plain = || tch::no_grad(|| bn.forward_t(&conv.forward(&x), false));
        let folded = || tch::no_grad(|| conv.forward_bn(&x, &bn, false));
        let change_weights = || {
            // An optimiser step or a checkpoint load writes the weights in place.
            tch::no_grad(|| {
                let mut w = conv.weight.shallow_clone();
                let _ = w.g_mul_scalar_(-2.0);
            })
        };
        let train_pass = || {
            // A training pass moves the running statistics.
            let _ = tch::no_grad(|| bn.forward_t(&(conv.forward(&x) * 3.0 + 1.0), true));
        };
        // Unprepared, every forward folds what the weights and statistics are now.
        assert!(max_diff(&folded(), &plain()) < 1e-5);
        change_weights();
        assert!(max_diff(&folded(), &plain()) < 1e-5);
        train_pass();
        assert!(max_diff(&folded(), &plain()) < 1e-5);
        // Prepared, the fold made then serves (that is what preparing is for) until released.
        conv.prepare_inference(&bn);
        let prepared = folded();
        assert!(max_diff(&prepared, &plain()) < 1e-5);
        change_weights();
        assert!(max_diff(&folded(), &prepared) == 0.0);
        conv.release_inference();
        assert!(max_diff(&folded(), &plain()) < 1e-5);
        // With gradients on, evaluation reaches the weights (nothing prepared is used).
        conv.prepare_inference(&bn);
        let y = conv.forward_bn(&x, &bn, false);
        let g = Tensor::run_backward(&[y.sum(Kind::Float)], &[&conv.weight], false, false);
        assert!(g[0].abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }

    /// Under autocast the prepared weights serve in its type, made once, and compute what
    /// autocast's own casts of the folded weights compute; outside it, fp32 as before.
    #[test]
    fn prepared_weights_under_autocast_give_what_autocasts_casts_give() {
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let (conv, bn) = conv_and_norm(&vs, NormMode::Batch);
        let x = Tensor::randn([2, 3, 10, 10], (Kind::Float, Device::Cpu));
        let bf16 = engine::amp::Autocast::new(engine::amp::Precision::Bf16, Device::Cpu);
        let folded = |autocast: engine::amp::Autocast| {
            tch::no_grad(|| autocast.run(|| conv.forward_bn(&x, &bn, false)))
        };
        let cast_each_time = folded(bf16);
        assert_eq!(cast_each_time.kind(), Kind::BFloat16);
        conv.prepare_inference(&bn);
        let fp32 = folded(engine::amp::Autocast::OFF);
        let lowered = || {
            let prepared = conv.prepared.lock().unwrap();
            let fold = prepared.as_ref().expect("prepared");
            fold.lowered.as_ref().map(|(w, b)| (w.kind(), b.kind()))
        };
        assert_eq!(lowered(), None, "made at first use only");
        for _ in 0..2 {
            let prepared = folded(bf16);
            assert_eq!(prepared.kind(), Kind::BFloat16);
            assert_eq!(prepared, cast_each_time);
            assert_eq!(lowered(), Some((Kind::BFloat16, Kind::BFloat16)));
        }
        assert_eq!(folded(engine::amp::Autocast::OFF).kind(), Kind::Float);
        assert_eq!(folded(engine::amp::Autocast::OFF), fp32);
        conv.release_inference();
    }

    #[test]
    fn a_prepared_model_is_released_when_its_guard_drops() {
        struct Pair(Conv2d, BatchNorm2d);
        impl ConvNormPairs for Pair {
            fn conv_norm_pairs(&self) -> Vec<(&Conv2d, &BatchNorm2d)> {
                vec![(&self.0, &self.1)]
            }
        }
        let vs = nn::VarStore::new(Device::Cpu);
        let (conv, bn) = conv_and_norm(&vs, NormMode::Batch);
        let model = Pair(conv, bn);
        {
            let _prepared = PreparedInference::new(&model);
            assert!(model.0.prepared.lock().unwrap().is_some());
        }
        assert!(model.0.prepared.lock().unwrap().is_none());
    }

    #[test]
    fn wide_3x3_convs_in_the_blocked_layout_go_through_winograd_prepared_or_not() {
        // The libtorch this project links (the torch 2.11 wheel) has oneDNN; without it the
        // blocked layout this test is about does not exist, and the test must say so.
        assert!(
            tch::utils::has_mkldnn(),
            "this libtorch has no oneDNN, so the blocked layout cannot be tested"
        );
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let c = winograd::MIN_CHANNELS;
        let conv = Conv2d::new(vs.root() / "conv", c, c, 3, 1, 2);
        let bn = BatchNorm2d::new(vs.root() / "bn", c, NormMode::Batch, 1.0, 1e-5);
        let x = Tensor::randn([1, c, 10, 9], (Kind::Float, Device::Cpu));
        let plain = || tch::no_grad(|| bn.forward_t(&conv.forward(&x), false));
        let blocked = || {
            tch::no_grad(|| {
                let y = conv.forward_bn(&x.g_to_mkldnn(None), &bn, false);
                assert!(y.is_mkldnn(), "the blocked layout goes on");
                y.to_dense(None, false)
            })
        };
        // Relative to the map's norm: a stale fold would be off by a tenth or more.
        let relative =
            |a: &Tensor, b: &Tensor| (a - b).norm().double_value(&[]) / b.norm().double_value(&[]);
        // Unprepared: the fold and its transform are made for the call.
        assert!(relative(&blocked(), &plain()) < 1e-5);
        // Prepared: the transform is made at the first blocked forward and kept.
        conv.prepare_inference(&bn);
        assert!(relative(&blocked(), &plain()) < 1e-5);
        assert!(conv
            .prepared
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .winograd
            .is_some());
        // Weights changed and a training pass: prepared again, the map follows.
        tch::no_grad(|| {
            let mut w = conv.weight.shallow_clone();
            let _ = w.g_mul_scalar_(-2.0);
        });
        let _ = tch::no_grad(|| bn.forward_t(&(conv.forward(&x) * 3.0 + 1.0), true));
        conv.release_inference();
        let r = relative(&blocked(), &plain());
        assert!(r < 1e-5, "unprepared, after the changes: {r:e}");
        conv.prepare_inference(&bn);
        let r = relative(&blocked(), &plain());
        assert!(r < 1e-5, "prepared again, after the changes: {r:e}");
    }
}
