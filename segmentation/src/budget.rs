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
use std::sync::OnceLock;

/// The environment variable that sets [`max_inference_bytes`], in MiB.
pub const MAX_INFERENCE_MIB_VAR: &str = "TRICKS_MAX_INFERENCE_MIB";

/// The default budget of one image's activations: 4 GiB, above any ADE20K image at its own
/// size through a ResNet-101 FCN, below what exhausts a workstation.
pub const DEFAULT_MAX_INFERENCE_MIB: u64 = 4096;

/// What a checkpoint's own transform may imply for a square image (`resize_shorter`
/// squared): 1 GiB, twice what torchvision's 520 costs a ResNet-101 FCN. A checkpoint is
/// data from elsewhere; the budget above is the user's to raise.
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

/// `TRICKS_MAX_INFERENCE_MIB` when set (a positive whole number of MiB), else the default; in
/// bytes. Read once per process.
pub fn max_inference_bytes() -> Result<u64, String> {
    static LIMIT: OnceLock<Result<u64, String>> = OnceLock::new();
    LIMIT
        .get_or_init(|| parse_mib(std::env::var(MAX_INFERENCE_MIB_VAR).ok().as_deref()))
        .clone()
}

fn parse_mib(value: Option<&str>) -> Result<u64, String> {
    let Some(text) = value else {
        return Ok(DEFAULT_MAX_INFERENCE_MIB << 20);
    };
    match text.trim().parse::<u64>() {
        Ok(mib) if (1..=1 << 24).contains(&mib) => Ok(mib << 20),
        _ => Err(format!(
            "{MAX_INFERENCE_MIB_VAR} must be a whole number of MiB between 1 and {}, not {text:?}",
            1u64 << 24
        )),
    }
}

/// "1.5 GiB": a byte count for a sentence.
pub fn gb(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_variable_is_mib_and_checked() {
        assert_eq!(parse_mib(None), Ok(4096 << 20));
        assert_eq!(parse_mib(Some("512")), Ok(512 << 20));
        let err = parse_mib(Some("lots")).unwrap_err();
        assert!(
            err.contains(MAX_INFERENCE_MIB_VAR) && err.contains("\"lots\""),
            "{err}"
        );
        assert!(parse_mib(Some("0")).is_err());
    }

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
