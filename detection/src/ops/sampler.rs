//! Balanced sampling of positives and negatives for the RPN and box-head losses, with
//! torchvision's counts (`BalancedPositiveNegativeSampler`): at most
//! `floor(per_image * positive_fraction)` positives, then negatives up to `per_image` in all.
//!
//! Randomness comes from the caller as one key per element (any orderable kind): the sample
//! takes the positives and the negatives with the largest keys, which for independent uniform
//! keys is a uniform random subset. [`random_keys`] makes such keys from a `u64` seed with a
//! counter-based hash computed on the device, so a step's sample depends only on its seed
//! (exact `--resume`, the same picks on CPU and CUDA) and no global generator is touched.

use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, PartialEq)]
pub struct BalancedSampler {
    pub per_image: i64,
    pub positive_fraction: f64,
}

impl BalancedSampler {
    pub fn new(per_image: i64, positive_fraction: f64) -> Self {
        Self {
            per_image,
            positive_fraction,
        }
    }

    /// The most positives one image may contribute (torchvision's `int(n * fraction)`).
    pub fn max_positives(&self) -> i64 {
        (self.per_image as f64 * self.positive_fraction) as i64
    }

    /// Masks `[N]` (bool) of the sampled positives and negatives for `labels` `[N]` (i64: >= 1
    /// positive, so class labels work as they are, as in torchvision; 0 negative; below 0
    /// ignored) and `keys` `[N]`. No host sync: the
    /// number of negatives is a device-side count.
    pub fn sample_masks(&self, labels: &Tensor, keys: &Tensor) -> (Tensor, Tensor) {
        let positive = labels.ge(1);
        let negative = labels.eq(0);
        let pos_mask = positive.logical_and(&rank_within(&positive, keys).lt(self.max_positives()));
        let negatives_wanted = pos_mask.sum(Kind::Int64).neg() + self.per_image;
        let neg_mask =
            negative.logical_and(&rank_within(&negative, keys).lt_tensor(&negatives_wanted));
        (pos_mask, neg_mask)
    }

    /// Indices (i64, ascending) of the sampled positives and negatives; compacting the masks
    /// of [`Self::sample_masks`] costs one host sync each.
    pub fn sample(&self, labels: &Tensor, keys: &Tensor) -> (Tensor, Tensor) {
        let (pos, neg) = self.sample_masks(labels, keys);
        (pos.nonzero().view([-1]), neg.nonzero().view([-1]))
    }
}

/// For each element, its rank (0 = largest key) among the elements where `member` is true;
/// non-members rank after every member.
fn rank_within(member: &Tensor, keys: &Tensor) -> Tensor {
    let n = member.size()[0];
    let device = member.device();
    // Members first (by descending key), then the rest: sort by (member, key) via a stable
    // two-pass sort (key first, then membership).
    let by_key = keys.sort_stable(true, 0, true).1;
    let member_sorted = member.index_select(0, &by_key).to_kind(Kind::Int64);
    let by_member = member_sorted.sort_stable(true, 0, true).1;
    let order = by_key.index_select(0, &by_member);
    Tensor::zeros([n], (Kind::Int64, device)).index_copy(
        0,
        &order,
        &Tensor::arange(n, (Kind::Int64, device)),
    )
}

/// `n` keys (i64, non-negative) for [`BalancedSampler`] from `seed`: SplitMix64 of
/// `seed + i`, computed on `device`, identical on every device.
pub fn random_keys(n: i64, seed: u64, device: Device) -> Tensor {
    keys_at(&Tensor::arange(n, (Kind::Int64, device)), seed)
}

/// The keys of [`random_keys`] at the given `counters` (i64, any shape): element `c` gets
/// the key `random_keys` gives to index `c`, so elements numbered the same way draw the same
/// keys whatever else is around them.
pub fn keys_at(counters: &Tensor, seed: u64) -> Tensor {
    let counter = counters + (seed as i64);
    // Int64 arithmetic wraps like u64; right shifts are made logical by masking.
    let shr = |t: &Tensor, s: i64| {
        t.bitwise_right_shift_tensor_scalar(s)
            .bitwise_and((u64::MAX >> s) as i64)
    };
    let mut z = counter + GOLDEN_GAMMA as i64;
    z = z.bitwise_xor_tensor(&shr(&z, 30)) * MIX_1 as i64;
    z = z.bitwise_xor_tensor(&shr(&z, 27)) * MIX_2 as i64;
    z = z.bitwise_xor_tensor(&shr(&z, 31));
    // Drop the sign bit so the keys order as the unsigned hash's top 63 bits.
    shr(&z, 1)
}

pub use datasets::rng::splitmix64;
use datasets::rng::{
    SPLITMIX_GAMMA as GOLDEN_GAMMA, SPLITMIX_MUL_1 as MIX_1, SPLITMIX_MUL_2 as MIX_2,
};
