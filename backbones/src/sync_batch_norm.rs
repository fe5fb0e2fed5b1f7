//! SyncBatchNorm's training forward pass: per-channel sums, sums of squares and counts are
//! summed over ranks by a differentiable all-reduce, so the backward pass also sums over
//! ranks the gradients that reach the statistics, which is what PyTorch's SyncBatchNorm
//! backward does (it all-reduces `sum_dy` and `sum_dy_xmu`). Autograd then carries each
//! rank's share back to its own inputs.
//!
//! The statistics are kept in double precision: the variance comes from the sum of squares,
//! whose cancellation single precision would not survive on large batches.

use distributed::ProcessGroup;
use tch::{nn, Kind, Tensor};

/// PyTorch's BatchNorm momentum for the running statistics (the one `layers` builds with).
const MOMENTUM: f64 = 0.1;

/// The training-mode output of `bn` on `x` (N x C x H x W) with statistics over every rank's
/// batch; updates the running statistics (unbiased variance, as PyTorch).
pub fn forward(bn: &nn::BatchNorm, eps: f64, x: &Tensor, group: &ProcessGroup) -> Tensor {
    let channels = x.size()[1];
    let local_count = (x.numel() as i64 / channels.max(1)) as f64;
    let dims: &[i64] = &[0, 2, 3];
    let xd = x.to_kind(Kind::Double);
    let sum = xd.sum_dim_intlist(dims, false, Kind::Double);
    let sum_sq = (&xd * &xd).sum_dim_intlist(dims, false, Kind::Double);
    let count = Tensor::full([1], local_count, (Kind::Double, x.device()));
    let stats = Tensor::cat(&[sum, sum_sq, count], 0);
    // A lost peer cannot be returned from a forward pass: it stops the run like any failing
    // tensor op, with the sentence naming the rank.
    let stats = group
        .all_reduce_differentiable(&stats)
        .unwrap_or_else(|e| panic!("{e}"));
    let total = stats.narrow(0, 2 * channels, 1);
    let mean = stats.narrow(0, 0, channels) / &total;
    let var = stats.narrow(0, channels, channels) / &total - &mean * &mean;
    {
        let _guard = tch::no_grad_guard();
        let n = total.double_value(&[0]);
        let unbiased = var.detach() * (n / (n - 1.0).max(1.0));
        let momentum = MOMENTUM;
        let _ = bn
            .running_mean
            .shallow_clone()
            .g_mul_scalar_(1.0 - momentum)
            .g_add_(&(mean.detach().to_kind(bn.running_mean.kind()) * momentum));
        let _ = bn
            .running_var
            .shallow_clone()
            .g_mul_scalar_(1.0 - momentum)
            .g_add_(&(unbiased.to_kind(bn.running_var.kind()) * momentum));
    }
    let shape = [1, channels, 1, 1];
    let inv_std = (var + eps).rsqrt();
    let y = ((xd - mean.view(shape)) * inv_std.view(shape)).to_kind(x.kind());
    // Not in place: autograd keeps the normalised values for the affine step's backward.
    let y = match &bn.ws {
        Some(w) => y * w.view(shape),
        None => y,
    };
    match &bn.bs {
        Some(b) => y + b.view(shape),
        None => y,
    }
}
