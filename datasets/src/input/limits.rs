//! The bounds every reader applies to the files it is given. Every file is untrusted: a header
//! may declare any size, so sizes are checked against these limits before anything is
//! allocated for them (docs/architecture.md, "Untrusted input").

use crate::error::{DataError, Result};
use std::path::Path;
use std::sync::OnceLock;

/// The environment variable that sets the pixel limit (a whole number of pixels).
pub const MAX_IMAGE_PIXELS_VAR: &str = "TRICKS_MAX_IMAGE_PIXELS";

/// The pixel limit when the variable is not set: 8192 x 8192, far above any image of the
/// supported datasets, and small enough that decoding one image costs at most a few hundred MB.
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 8192 * 8192;

/// Split lists, `classes.txt` and VOC XML annotations are a few KB each.
pub const MAX_TEXT_FILE_BYTES: u64 = 64 << 20;

/// A TOML recipe (`--config`): the largest in configs/ is a few KB.
pub const MAX_RECIPE_BYTES: u64 = 1 << 20;

/// A class list given on the command line (`--classes`): 100,000 names of 256 bytes at most
/// (backbones' limits) fit in 25 MiB.
pub const MAX_CLASS_LIST_BYTES: u64 = 32 << 20;

/// A checkpoint or a run's state: a ResNet-152 Faster R-CNN in f32 is about 300 MB, and a
/// training state adds its momentum buffers; a 100,000-class ResNet-50 head is 800 MB.
pub const MAX_CHECKPOINT_BYTES: u64 = 4 << 30;

/// A run's `metrics.jsonl`: a line per logged step, a few hundred bytes each.
pub const MAX_METRICS_LOG_BYTES: u64 = 1 << 30;

/// COCO annotation files: `instances_train2017.json` is 448 MB.
pub const MAX_JSON_FILE_BYTES: u64 = 2 << 30;

/// The data of one IDX array once decompressed: Fashion-MNIST's training images are 47 MB.
pub const MAX_IDX_DATA_BYTES: u64 = 1 << 30;

/// The largest compressed image file read: no honest PNG or JPEG of the allowed pixel count
/// needs more than 8 bytes per pixel (16-bit RGBA stored uncompressed) plus its metadata.
pub fn max_image_file_bytes(max_pixels: u64) -> u64 {
    max_pixels.saturating_mul(8).saturating_add(16 << 20)
}

/// The pixel limit of every image and mask reader: `TRICKS_MAX_IMAGE_PIXELS` when set, else
/// [`DEFAULT_MAX_IMAGE_PIXELS`]. Read once per process.
pub fn max_image_pixels() -> Result<u64> {
    static LIMIT: OnceLock<std::result::Result<u64, String>> = OnceLock::new();
    LIMIT
        .get_or_init(|| parse_pixel_limit(std::env::var_os(MAX_IMAGE_PIXELS_VAR)))
        .clone()
        .map_err(|message| DataError::invalid(MAX_IMAGE_PIXELS_VAR, message))
}

fn parse_pixel_limit(value: Option<std::ffi::OsString>) -> std::result::Result<u64, String> {
    let Some(value) = value else {
        return Ok(DEFAULT_MAX_IMAGE_PIXELS);
    };
    let text = value.to_string_lossy();
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("\"{text}\" is not a positive whole number of pixels"))
}

/// Refuses an image or mask whose declared size exceeds the pixel limit, before it is decoded.
/// `what` is "image" or "mask".
pub fn check_pixel_count(path: &Path, what: &str, width: u64, height: u64) -> Result<()> {
    let limit = max_image_pixels()?;
    let pixels = width.saturating_mul(height);
    if pixels > limit {
        return Err(DataError::invalid(
            path,
            format!(
                "the {what} is too large: {width}x{height} = {pixels} pixels, more than the limit of {limit} (set {MAX_IMAGE_PIXELS_VAR} to change it)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_sets_the_limit_and_nonsense_is_refused() {
        assert_eq!(parse_pixel_limit(None), Ok(DEFAULT_MAX_IMAGE_PIXELS));
        assert_eq!(parse_pixel_limit(Some("1000".into())), Ok(1000));
        assert_eq!(
            parse_pixel_limit(Some("lots".into())),
            Err("\"lots\" is not a positive whole number of pixels".into())
        );
        assert!(parse_pixel_limit(Some("0".into())).is_err());
    }
}
