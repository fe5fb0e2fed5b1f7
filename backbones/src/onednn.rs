//! CPU inference in oneDNN's own blocked layout (PyTorch's `Tensor.to_mkldnn()`).
//!
//! libtorch's CPU convolutions are oneDNN kernels either way; on ordinary strided tensors each
//! one converts its input to the blocked layout and its output back. Entering that layout once
//! before the first conv and leaving it once at the logits removes those conversions: an FCN
//! ResNet-50 at 480 x 480 runs about 1.2 times as fast on two cores with the same results
//! (docs/results.md). ReLU, in-place addition and max/avg pooling accept such tensors, so the
//! model code is unchanged; autograd does not, hence inference only.

use tch::{Device, Kind, Tensor};

use crate::layers::grad_mode_enabled;

/// Whether a forward pass over `x` can run in the blocked layout: float32 on the CPU, not in
/// training, gradients off, no autocast (its casts need strided tensors, and the ops are to
/// run as ATen's autocast runs them), and a libtorch built with oneDNN.
pub fn applies(x: &Tensor, train: bool) -> bool {
    !train
        && x.device() == Device::Cpu
        && x.kind() == Kind::Float
        && !grad_mode_enabled()
        && !engine::amp::cpu_autocast_enabled()
        && tch::utils::has_mkldnn()
}

/// `x` in the blocked layout when [`applies`] says so, else `x` itself.
pub fn enter(x: &Tensor, train: bool) -> Tensor {
    match applies(x, train) && !x.is_mkldnn() {
        true => x.g_to_mkldnn(None),
        false => x.shallow_clone(),
    }
}

/// An ordinary strided tensor with the same values (itself when it is one already).
pub fn leave(x: Tensor) -> Tensor {
    match x.is_mkldnn() {
        true => x.to_dense(None, false),
        false => x,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_layout_only_for_cpu_float_inference_without_gradients() {
        let x = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
        assert!(!enter(&x, true).is_mkldnn(), "training stays strided");
        assert!(!enter(&x, false).is_mkldnn(), "autograd on stays strided");
        let _no_grad = tch::no_grad_guard();
        assert!(!enter(&x.to_kind(Kind::Double), false).is_mkldnn());
        if tch::utils::has_mkldnn() {
            let blocked = enter(&x, false);
            assert!(blocked.is_mkldnn());
            assert_eq!(leave(blocked), x);
        }
        let bf16 = engine::amp::Autocast::new(engine::amp::Precision::Bf16, Device::Cpu);
        assert!(
            !bf16.run(|| enter(&x, false).is_mkldnn()),
            "autocast stays strided"
        );
    }
}
