//! The paper's training augmentation, configurable so that small-image recipes
//! (Fashion-MNIST at 32 px) use the same family: random resized crop, horizontal flip,
//! brightness/contrast/saturation jitter in random order, PCA lighting.
//!
//! The output stays 8-bit: lighting is a per-image constant, so it is returned as an RGB
//! offset for the device to add while it normalises (`x = (u8 + offset) / 255`, then
//! `(x - mean) / std`), as GluonCV adds it to the 0-255 image before `ToTensor`.

use super::color::{adjust_brightness, adjust_contrast, adjust_saturation, lighting_offset};
use super::crop::{random_resized_crop_box, CropBox};
use super::eval::{EvalTransform, Normalization};
use crate::resize::resize_bilinear;
use crate::rng::SampleRng;
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::RngExt;
use serde::{Deserialize, Serialize};

/// Every step can be switched off: `random_crop = false` resizes the whole image to the input
/// size, and a zero probability, strength or standard deviation disables the others.
/// Missing keys take the paper's values; unknown keys are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainTransform {
    /// Side of the square the model sees.
    pub input_size: usize,
    pub random_crop: bool,
    /// Range of the crop's area as a fraction of the image's.
    pub scale: [f64; 2],
    /// Range of the crop's aspect ratio (width / height), drawn log-uniformly.
    pub ratio: [f64; 2],
    pub flip_prob: f64,
    /// Jitter strengths s: each factor is uniform in [max(0, 1 - s), 1 + s].
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    /// Standard deviation of the PCA lighting weights.
    pub lighting_std: f64,
}

impl Default for TrainTransform {
    fn default() -> Self {
        TrainTransform {
            input_size: 224,
            random_crop: true,
            scale: [0.08, 1.0],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
            flip_prob: 0.5,
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            lighting_std: 0.1,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid train transform: {0}")]
pub struct InvalidTrainTransform(String);

/// One augmented image.
#[derive(Clone, Debug, PartialEq)]
pub struct Augmented {
    /// `input_size` x `input_size` RGB, interleaved (HWC).
    pub pixels: Vec<u8>,
    /// PCA lighting offset per channel on the 0-255 scale (zero when lighting is off).
    pub lighting: [f32; 3],
}

/// One of `ColorJitter`'s adjustments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorAdjustment {
    Brightness,
    Contrast,
    Saturation,
}

/// The random choices for one image, drawn before any pixel is touched (torchvision's
/// `get_params`), so that they can be logged, replayed, or set by hand in tests.
#[derive(Clone, Debug, PartialEq)]
pub struct AugmentParams {
    /// The region cut out and resized (the whole image when random cropping is off).
    pub crop: CropBox,
    pub flip: bool,
    /// The enabled colour adjustments in the order they apply, with their factors.
    pub jitter: Vec<(ColorAdjustment, f32)>,
    /// PCA lighting weights, one per eigenvector (zero when lighting is off).
    pub lighting_alpha: [f32; 3],
}

impl TrainTransform {
    /// The paper's augmentation at another input size (everything else unchanged).
    pub fn paper(input_size: usize) -> Self {
        TrainTransform {
            input_size,
            ..TrainTransform::default()
        }
    }

    pub fn validate(&self) -> Result<(), InvalidTrainTransform> {
        let fail = |msg: String| Err(InvalidTrainTransform(msg));
        let [s0, s1] = self.scale;
        let [r0, r1] = self.ratio;
        if self.input_size == 0 {
            return fail("input_size must be at least 1".into());
        }
        if !(s0 > 0.0 && s0 <= s1 && s1 <= 1.0) {
            return fail(format!(
                "scale [{s0}, {s1}] must satisfy 0 < min <= max <= 1"
            ));
        }
        if !(r0 > 0.0 && r0 <= r1 && r1.is_finite()) {
            return fail(format!("ratio [{r0}, {r1}] must satisfy 0 < min <= max"));
        }
        if !(0.0..=1.0).contains(&self.flip_prob) {
            return fail(format!("flip_prob {} is not in [0, 1]", self.flip_prob));
        }
        for (name, value) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
            ("lighting_std", self.lighting_std),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                return fail(format!("{name} {value} must be zero or positive"));
            }
        }
        Ok(())
    }

    /// The evaluation transform that goes with this training size: centre crop of the input
    /// size from a shorter side of input / 0.875 (256 for 224).
    pub fn matching_eval(&self, normalization: Normalization) -> EvalTransform {
        EvalTransform::for_input_size(self.input_size, normalization)
    }

    /// Augments `img`, drawing every random number from `rng` (in a fixed order, so the
    /// same generator state gives the same bytes).
    pub fn apply(&self, img: &RgbImage, rng: &mut SampleRng) -> Augmented {
        let params = self.draw(img.width() as usize, img.height() as usize, rng);
        self.apply_params(img, &params)
    }

    /// The random choices for an image of `width` x `height`: crop box, flip, jitter order
    /// and factors, lighting weights, in that order.
    pub fn draw(&self, width: usize, height: usize, rng: &mut SampleRng) -> AugmentParams {
        let crop = if self.random_crop {
            random_resized_crop_box(width, height, self.scale, self.ratio, rng)
        } else {
            CropBox::whole(width, height)
        };
        let flip = self.flip_prob > 0.0 && rng.random::<f64>() < self.flip_prob;
        let mut order = [
            (ColorAdjustment::Brightness, self.brightness),
            (ColorAdjustment::Contrast, self.contrast),
            (ColorAdjustment::Saturation, self.saturation),
        ];
        let mut jitter = Vec::new();
        if order.iter().any(|&(_, strength)| strength > 0.0) {
            order.shuffle(rng);
            for (op, strength) in order {
                if strength > 0.0 {
                    let lo = (1.0 - strength).max(0.0);
                    let factor = lo + (1.0 + strength - lo) * rng.random::<f64>();
                    jitter.push((op, factor as f32));
                }
            }
        }
        let lighting_alpha = if self.lighting_std > 0.0 {
            std::array::from_fn(|_| (self.lighting_std * normal(rng)) as f32)
        } else {
            [0.0; 3]
        };
        AugmentParams {
            crop,
            flip,
            jitter,
            lighting_alpha,
        }
    }

    /// Applies chosen parameters: crop, Pillow-exact bilinear resize to the input size,
    /// flip, colour adjustments; lighting becomes the returned offset.
    pub fn apply_params(&self, img: &RgbImage, params: &AugmentParams) -> Augmented {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let size = self.input_size;
        let crop = params.crop;
        let mut pixels = if crop == CropBox::whole(w, h) {
            resize_bilinear(img.as_raw(), w, h, 3, size, size)
        } else {
            let region = crop.extract(img.as_raw(), w, 3);
            resize_bilinear(&region, crop.width, crop.height, 3, size, size)
        };
        if params.flip {
            flip_horizontally(&mut pixels, size);
        }
        for &(op, factor) in &params.jitter {
            match op {
                ColorAdjustment::Brightness => adjust_brightness(&mut pixels, factor),
                ColorAdjustment::Contrast => adjust_contrast(&mut pixels, factor),
                ColorAdjustment::Saturation => adjust_saturation(&mut pixels, factor),
            }
        }
        let lighting = if params.lighting_alpha == [0.0; 3] {
            [0.0; 3]
        } else {
            lighting_offset(params.lighting_alpha)
        };
        Augmented { pixels, lighting }
    }
}

fn flip_horizontally(pixels: &mut [u8], width: usize) {
    for row in pixels.chunks_exact_mut(width * 3) {
        let (mut left, mut right) = (0, width - 1);
        while left < right {
            for c in 0..3 {
                row.swap(left * 3 + c, right * 3 + c);
            }
            left += 1;
            right -= 1;
        }
    }
}

/// A standard normal draw (Box-Muller); 1 - u keeps the logarithm's argument in (0, 1].
fn normal(rng: &mut SampleRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 5 % 256) as u8,
                ((x + y) % 256) as u8,
            ])
        })
    }

    #[test]
    fn same_generator_same_bytes() {
        let img = gradient(120, 90);
        let t = TrainTransform::paper(32);
        let a = t.apply(&img, &mut sample_rng(3, 1, 7));
        let b = t.apply(&img, &mut sample_rng(3, 1, 7));
        let c = t.apply(&img, &mut sample_rng(3, 2, 7));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.pixels.len(), 32 * 32 * 3);
    }

    #[test]
    fn everything_off_is_a_plain_resize() {
        let img = gradient(64, 48);
        let t = TrainTransform {
            input_size: 32,
            random_crop: false,
            flip_prob: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            lighting_std: 0.0,
            ..TrainTransform::default()
        };
        let out = t.apply(&img, &mut sample_rng(0, 0, 0));
        assert_eq!(out.pixels, resize_bilinear(img.as_raw(), 64, 48, 3, 32, 32));
        assert_eq!(out.lighting, [0.0; 3]);
    }

    #[test]
    fn flip_always_mirrors_rows() {
        let img = gradient(8, 4);
        let t = TrainTransform {
            input_size: 8,
            random_crop: false,
            flip_prob: 1.0,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            lighting_std: 0.0,
            ..TrainTransform::default()
        };
        let square = RgbImage::from_fn(8, 8, |x, y| *img.get_pixel(x, y % 4));
        let out = t.apply(&square, &mut sample_rng(0, 0, 0)).pixels;
        assert_eq!(&out[..3], &square.get_pixel(7, 0).0);
        assert_eq!(&out[7 * 3..8 * 3], &square.get_pixel(0, 0).0);
    }

    #[test]
    fn fixed_parameters_match_torchvision() {
        // torchvision 0.26 / Pillow 13.0:
        //   import torchvision.transforms.functional as F
        //   im = Image.new("RGB", (40, 30)); im.putdata([((x*9+y*5)%256, (x*x+3*y)%256,
        //       (200-4*x+y*y)%256) for y in range(30) for x in range(40)])
        //   out = F.resized_crop(im, 3, 5, 20, 24, [6, 6], interpolation=BILINEAR)
        //   out = F.adjust_brightness(F.adjust_saturation(F.adjust_contrast(F.hflip(out),
        //       0.75), 1.25), 1.125)
        //   list(out.tobytes())
        let img = RgbImage::from_fn(40, 30, |x, y| {
            let (x, y) = (x as i64, y as i64);
            image::Rgb([
                (x * 9 + y * 5).rem_euclid(256) as u8,
                (x * x + 3 * y).rem_euclid(256) as u8,
                (200 - 4 * x + y * y).rem_euclid(256) as u8,
            ])
        });
        let params = AugmentParams {
            crop: CropBox {
                top: 3,
                left: 5,
                height: 20,
                width: 24,
            },
            flip: true,
            jitter: vec![
                (ColorAdjustment::Contrast, 0.75),
                (ColorAdjustment::Saturation, 1.25),
                (ColorAdjustment::Brightness, 1.125),
            ],
            lighting_alpha: [0.0; 3],
        };
        let out = TrainTransform::paper(6).apply_params(&img, &params);
        #[rustfmt::skip]
        let expected: [u8; 108] = [
            130, 154, 131, 235, 147, 139, 205, 122, 160, 164, 166, 174, 131, 141, 196, 106, 84,
            221, 64, 167, 173, 202, 151, 178, 220, 128, 198, 178, 173, 209, 146, 148, 219, 121,
            91, 219, 47, 168, 204, 138, 127, 194, 234, 128, 167, 199, 151, 124, 163, 159, 93,
            138, 102, 86, 69, 135, 94, 77, 133, 94, 220, 136, 85, 218, 139, 99, 178, 167, 114,
            153, 110, 138, 84, 135, 169, 55, 144, 174, 145, 148, 174, 230, 141, 180, 192, 174,
            162, 168, 118, 181, 99, 142, 141, 67, 151, 124, 82, 162, 104, 231, 115, 111, 209,
            177, 91, 183, 126, 109,
        ];
        assert_eq!(out.pixels, expected);
        assert_eq!(out.lighting, [0.0; 3]);
    }

    #[test]
    fn disabled_steps_draw_nothing() {
        let t = TrainTransform {
            contrast: 0.0,
            lighting_std: 0.0,
            ..TrainTransform::paper(8)
        };
        for i in 0..20 {
            let p = t.draw(50, 40, &mut sample_rng(0, 0, i));
            assert_eq!(p.jitter.len(), 2);
            assert!(p
                .jitter
                .iter()
                .all(|&(op, f)| op != ColorAdjustment::Contrast && (0.6..=1.4).contains(&f)));
            assert_eq!(p.lighting_alpha, [0.0; 3]);
        }
    }

    #[test]
    fn lighting_offsets_have_the_expected_spread() {
        // The first eigenvector dominates: std of the R offset = 0.1 * sqrt(sum_j
        // (v_Rj * lambda_j)^2) = 0.1 * |(-0.5675 * 55.46, 0.7192 * 4.794, 0.4009 * 1.148)| ~ 3.17.
        // The draws alone (what `apply` turns into the offset): 4000 whole augmentations
        // took a debug build 16 s.
        let t = TrainTransform::paper(8);
        let n = 4000;
        let sum_sq: f64 = (0..n)
            .map(|i| {
                lighting_offset(t.draw(16, 16, &mut sample_rng(9, 0, i)).lighting_alpha)[0] as f64
            })
            .map(|r| r * r)
            .sum();
        let std = (sum_sq / n as f64).sqrt();
        assert!((std - 3.17).abs() < 0.15, "{std}");
    }

    #[test]
    fn config_from_toml_like_json_rejects_unknown_keys() {
        let t: TrainTransform = serde_json::from_str(r#"{"input_size": 32}"#).unwrap();
        assert_eq!(t, TrainTransform::paper(32));
        let err = serde_json::from_str::<TrainTransform>(r#"{"input_sise": 32}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `input_sise`"),
            "{err}"
        );
    }

    #[test]
    fn validation_names_the_bad_value() {
        let t = TrainTransform {
            scale: [0.5, 0.1],
            ..TrainTransform::default()
        };
        assert_eq!(
            t.validate().unwrap_err().to_string(),
            "invalid train transform: scale [0.5, 0.1] must satisfy 0 < min <= max <= 1"
        );
        assert!(TrainTransform::default().validate().is_ok());
    }

    #[test]
    fn matching_eval_scales_with_the_input() {
        let eval = TrainTransform::paper(224).matching_eval(Normalization::PAPER);
        assert_eq!((eval.resize, eval.crop), (256, 224));
        let eval = TrainTransform::paper(32).matching_eval(Normalization::PAPER);
        assert_eq!((eval.resize, eval.crop), (37, 32));
    }
}
