//! The evaluation transform: resize the shorter side, centre crop, as torchvision's
//! `Resize(resize) + CenterCrop(crop)` on PIL images (same pixels, byte for byte).

use crate::resize::{resize_bilinear_window, shorter_side_size, Window};
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Per-channel mean and standard deviation on the 0-1 scale (PyTorch's convention).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// torchvision's and timm's ImageNet statistics.
    pub const IMAGENET: Normalization = Normalization {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    /// The values printed in the paper (section 2.1), given there on the 0-255 scale.
    pub const PAPER: Normalization = Normalization {
        mean: [123.68 / 255.0, 116.779 / 255.0, 103.939 / 255.0],
        std: [58.393 / 255.0, 57.12 / 255.0, 57.375 / 255.0],
    };
}

/// How a checkpoint's model wants its input prepared; saved in the checkpoint's metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalTransform {
    /// The shorter side is resized to this.
    pub resize: usize,
    /// Then a centred square of this side is cut out.
    pub crop: usize,
    #[serde(flatten)]
    pub normalization: Normalization,
}

impl EvalTransform {
    /// The standard ImageNet evaluation: shorter side 256, centre crop 224.
    pub fn imagenet() -> Self {
        EvalTransform {
            resize: 256,
            crop: 224,
            normalization: Normalization::IMAGENET,
        }
    }

    /// The same proportions (crop = 0.875 of the resize) for another input size.
    pub fn for_input_size(crop: usize, normalization: Normalization) -> Self {
        EvalTransform {
            resize: (crop as f64 / 0.875).round() as usize,
            crop,
            normalization,
        }
    }

    /// Resizes and crops to a `crop` x `crop` RGB image, interleaved (HWC) 8-bit. Only the
    /// crop is computed, so memory is bounded by the crop whatever the image's aspect ratio.
    /// `crop` must not exceed `resize` (checkpoints and configs are validated for it).
    pub fn apply(&self, img: &RgbImage) -> Vec<u8> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (rw, rh) = shorter_side_size(w, h, self.resize);
        resize_bilinear_window(
            img.as_raw(),
            w,
            h,
            3,
            rw,
            rh,
            center_window(rw, rh, self.crop),
        )
    }
}

/// torchvision's `CenterCrop` of a square of side `size` from an image at least that large
/// on each side: the offsets are rounded half to even, as Python's `round` does.
fn center_window(w: usize, h: usize, size: usize) -> Window {
    assert!(w >= size && h >= size, "centre crop larger than the image");
    Window {
        x: ((w - size) as f64 / 2.0).round_ties_even() as usize,
        y: ((h - size) as f64 / 2.0).round_ties_even() as usize,
        w: size,
        h: size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_offsets_round_half_to_even() {
        // Two rows, crop 2: 5 wide gives (5 - 2) / 2 = 1.5 -> 2; 7 wide gives 2.5 -> 2.
        assert_eq!(
            center_window(5, 2, 2),
            Window {
                x: 2,
                y: 0,
                w: 2,
                h: 2
            }
        );
        assert_eq!(
            center_window(7, 2, 2),
            Window {
                x: 2,
                y: 0,
                w: 2,
                h: 2
            }
        );
        let src: Vec<u8> = (0..14).collect();
        let same_size = Window {
            x: 2,
            y: 0,
            w: 2,
            h: 2,
        };
        assert_eq!(
            resize_bilinear_window(&src, 7, 2, 1, 7, 2, same_size),
            vec![2, 3, 9, 10]
        );
    }

    #[test]
    fn output_is_crop_squared() {
        let img = RgbImage::from_pixel(300, 200, image::Rgb([1, 2, 3]));
        let out = EvalTransform::imagenet().apply(&img);
        assert_eq!(out.len(), 224 * 224 * 3);
        assert_eq!(&out[..3], &[1, 2, 3]);
    }
}
