//! Box regression loss.

use tch::{Reduction, Tensor};

/// Smooth L1 summed over all elements, as `torch.nn.functional.smooth_l1_loss(input, target,
/// beta=beta, reduction="sum")`: `0.5 d^2 / beta` where `|d| < beta`, else `|d| - beta / 2`
/// (plain L1 for `beta = 0`). GluonCV's `smooth_l1(scalar=sigma)` is the same with
/// `beta = 1 / sigma^2`. Callers divide by their own sample counts.
pub fn smooth_l1(input: &Tensor, target: &Tensor, beta: f64) -> Tensor {
    input.smooth_l1_loss(target, Reduction::Sum, beta)
}
