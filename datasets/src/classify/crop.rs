//! The crop box of torchvision's `RandomResizedCrop.get_params` (Inception-style cropping).

use crate::rng::SampleRng;
use rand::RngExt;

/// A region of an image in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

impl CropBox {
    pub fn whole(width: usize, height: usize) -> Self {
        CropBox {
            top: 0,
            left: 0,
            height,
            width,
        }
    }

    /// Copies the box out of an interleaved image `image_width` pixels wide.
    pub fn extract(&self, src: &[u8], image_width: usize, channels: usize) -> Vec<u8> {
        let row_len = self.width * channels;
        let mut out = Vec::with_capacity(self.height * row_len);
        for y in self.top..self.top + self.height {
            out.extend_from_slice(&src[(y * image_width + self.left) * channels..][..row_len]);
        }
        out
    }
}

/// Up to ten tries at a box covering a uniform fraction in `scale` of the area with an aspect
/// ratio (w/h) log-uniform in `ratio`, placed uniformly; after ten misses, the largest centred
/// box whose ratio is within `ratio` (the whole image when its own ratio is). Sides are rounded
/// half to even like Python's `round`, offsets floored like `//`.
pub fn random_resized_crop_box(
    width: usize,
    height: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
    rng: &mut SampleRng,
) -> CropBox {
    let area = (width * height) as f64;
    let log_ratio = [ratio[0].ln(), ratio[1].ln()];
    for _ in 0..10 {
        let target_area = area * uniform(rng, scale);
        let aspect = uniform(rng, log_ratio).exp();
        let w = (target_area * aspect).sqrt().round_ties_even() as usize;
        let h = (target_area / aspect).sqrt().round_ties_even() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return CropBox {
                top,
                left,
                height: h,
                width: w,
            };
        }
    }
    centre_fallback(width, height, ratio)
}

fn centre_fallback(width: usize, height: usize, ratio: [f64; 2]) -> CropBox {
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < ratio[0] {
        (width, (width as f64 / ratio[0]).round_ties_even() as usize)
    } else if in_ratio > ratio[1] {
        (
            (height as f64 * ratio[1]).round_ties_even() as usize,
            height,
        )
    } else {
        (width, height)
    };
    // Rounding can overshoot by one on tiny images; keep the box inside and non-empty.
    let (w, h) = (w.clamp(1, width), h.clamp(1, height));
    CropBox {
        top: (height - h) / 2,
        left: (width - w) / 2,
        height: h,
        width: w,
    }
}

/// Uniform in [lo, hi), or lo when the range is empty (torch's `uniform_(a, a)` gives a).
fn uniform(rng: &mut SampleRng, [lo, hi]: [f64; 2]) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;

    const SCALE: [f64; 2] = [0.08, 1.0];
    const RATIO: [f64; 2] = [3.0 / 4.0, 4.0 / 3.0];

    #[test]
    fn boxes_stay_inside_with_area_and_ratio_in_range() {
        for (w, h) in [(500, 375), (375, 500), (28, 28), (224, 224), (1000, 40)] {
            for i in 0..500 {
                let b = random_resized_crop_box(w, h, SCALE, RATIO, &mut sample_rng(1, 0, i));
                assert!(b.width > 0 && b.height > 0, "{b:?}");
                assert!(
                    b.left + b.width <= w && b.top + b.height <= h,
                    "{b:?} in {w}x{h}"
                );
                let fraction = (b.width * b.height) as f64 / (w * h) as f64;
                let aspect = b.width as f64 / b.height as f64;
                // Rounding the sides to pixels moves area and ratio a little off the range on
                // small images; a pixel's worth of slack either way.
                let slack_w = 1.0 / b.width as f64;
                let slack_h = 1.0 / b.height as f64;
                let slack = 2.0 * (slack_w + slack_h);
                if (w, h) != (1000, 40) {
                    assert!(fraction >= SCALE[0] * (1.0 - slack), "{b:?}: {fraction}");
                }
                assert!(
                    aspect >= RATIO[0] * (1.0 - slack) && aspect <= RATIO[1] * (1.0 + slack),
                    "{b:?}: {aspect}"
                );
            }
        }
    }

    #[test]
    fn fallback_is_centred_and_clipped_to_the_ratio() {
        // Nothing fits a 1000x40 strip at scale 0.9-1 and ratio 3/4-4/3: centred 53x40.
        let b = random_resized_crop_box(1000, 40, [0.9, 1.0], RATIO, &mut sample_rng(0, 0, 0));
        assert_eq!(
            b,
            CropBox {
                top: 0,
                left: 473,
                height: 40,
                width: 53
            }
        );
        assert_eq!(centre_fallback(40, 1000, RATIO).height, 53);
        assert_eq!(centre_fallback(50, 40, RATIO), CropBox::whole(50, 40));
    }

    #[test]
    fn extract_copies_the_box() {
        let src: Vec<u8> = (0..12).collect(); // 4x3, one channel
        let b = CropBox {
            top: 1,
            left: 1,
            height: 2,
            width: 2,
        };
        assert_eq!(b.extract(&src, 4, 1), vec![5, 6, 9, 10]);
    }
}
