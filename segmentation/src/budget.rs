//! How much memory one image's inference may take, and what it is estimated from: a lying
//! checkpoint, a huge photo or an absurd pair of flags is refused with the bound in its
//! sentence instead of growing until the allocator aborts.
//!
//! The model's activations grow with its input's pixels: measured on the CPU (no gradient,
//! output stride 8), a dilated ResNet-18 FCN holds about 330 bytes per input pixel at its peak
//! and a ResNet-50 one about 600 (a 4000 x 4000 photo at its own size: 5.4 GB through
//! ResNet-18). [`activation_bytes`] is a round estimate of that, the stem's wide maps plus a
//! few of the last stage's.

use crate::fcn::FcnConfig;

pub use engine::limits::{gb, max_inference_bytes, MAX_INFERENCE_MIB_VAR};

/// What a checkpoint's own transform may imply for a square image (`resize_shorter`
/// squared): 1 GiB, twice what torchvision's 520 costs a ResNet-101 FCN. A checkpoint is
/// data from elsewhere; the per-image budget ([`max_inference_bytes`]) is the user's to raise.
pub const CHECKPOINT_TRANSFORM_BYTES: u64 = 1 << 30;

/// The most sliding windows one image may need in multi-scale evaluation (GluonCV's ADE20K
/// settings need at most 23).
pub const MAX_WINDOWS: u64 = 2000;

/// Upsampled class scores are produced in row bands of at most this many bytes.
pub const BAND_BYTES: u64 = 64 << 20;

/// Inference that would take more than its bound: the user's input (exit status 2), with
/// the bound and how to raise it in the sentence.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OverBudget(pub String);

/// Estimated peak activation bytes of `config`'s forward pass on `pixels` input pixels.
pub fn activation_bytes(config: &FcnConfig, pixels: u64) -> u64 {
    let c5 = config.head_inputs().1 as u64;
    let stride = config.backbone.output_stride as u64;
    (256 + 3 * c5 * 4 / (stride * stride)) * pixels
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::limits::DEFAULT_MAX_INFERENCE_MIB;

    #[test]
    fn estimates_follow_the_measured_costs() {
        let r18 = FcnConfig::new("resnet18".parse().unwrap(), 8, 3, false);
        let r50 = FcnConfig::new("resnet50".parse().unwrap(), 8, 3, false);
        // About 350 and 640 bytes per pixel: a 4000 x 4000 photo is several GB either way.
        assert_eq!(activation_bytes(&r18, 1), 352);
        assert_eq!(activation_bytes(&r50, 1), 640);
        assert!(activation_bytes(&r18, 16_000_000) > DEFAULT_MAX_INFERENCE_MIB << 20);
        // torchvision's 520 through ResNet-50 is far inside the checkpoint bound.
        assert!(activation_bytes(&r50, 520 * 520) < CHECKPOINT_TRANSFORM_BYTES / 2);
    }
}
