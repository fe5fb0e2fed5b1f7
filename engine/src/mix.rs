//! Batch mixing on the device: mixup (the paper's section 5.4), CutMix and Cutout.
//!
//! Why these three are offered: the CutMix paper (Yun et al. 2019, table 3) trains
//! ResNet-50 on ImageNet with each of them under one recipe:
//!
//! | ResNet-50, ImageNet | top-1 |
//! |---|---|
//! | baseline | 76.3 |
//! | + Mixup  | 77.4 |
//! | + Cutout | 77.1 |
//! | + CutMix | 78.6 |
//!
//! Every method mixes a batch with itself reversed (`flip` along dim 0), as GluonCV and
//! timm do, so no second batch has to be loaded. With `lambda ~ Beta(alpha, alpha)` drawn
//! once per batch:
//!
//! ```text
//! mixup:  x = lambda * x + (1 - lambda) * flip(x)           y = lambda * y + (1 - lambda) * flip(y)
//! cutmix: a box of area (1 - lambda) * H * W, centre uniform, clipped to the image, is
//!         pasted from flip(x); lambda = 1 - clipped box area / (H * W)
//!                                                           y = lambda * y + (1 - lambda) * flip(y)
//! cutout: one square of side round(size * min(H, W)) per image, centre uniform, clipped,
//!         set to zero (the mean colour of normalised images); y unchanged
//! ```
//!
//! Targets are mixed after label smoothing. Lambda, boxes and centres are drawn on the host
//! and reach the device as kernel arguments only, so mixing never waits for the GPU.

use datasets::rng::SampleRng;
use rand::RngExt;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Which mixing a training run applies to every batch.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Mix {
    None,
    /// The paper: alpha 0.2.
    Mixup {
        alpha: f64,
    },
    /// The CutMix paper: alpha 1.0.
    Cutmix {
        alpha: f64,
    },
    /// Side of the square as a fraction of the image's shorter side (DeVries & Taylor:
    /// 16 px of 32 on CIFAR-10, 0.5).
    Cutout {
        size: f64,
    },
}

impl Mix {
    /// Rejects parameters that cannot be used, with a sentence saying why.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Mix::Mixup { alpha } | Mix::Cutmix { alpha }
                if !(alpha.is_finite() && *alpha > 0.0) =>
            {
                Err(format!("mix alpha must be a number > 0, not {alpha}"))
            }
            Mix::Cutout { size } if !(size.is_finite() && *size > 0.0 && *size <= 1.0) => Err(
                format!("cutout size must be a fraction of the side in (0, 1], not {size}"),
            ),
            _ => Ok(()),
        }
    }
}

/// A rectangle of an image: rows `y0..y1`, columns `x0..x1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub y0: i64,
    pub y1: i64,
    pub x0: i64,
    pub x1: i64,
}

impl Region {
    /// A `height x width` box centred at a uniform pixel of an `h x w` image, clipped to the
    /// image (timm's `rand_bbox`, DeVries & Taylor's cutout).
    pub fn sample(h: i64, w: i64, height: i64, width: i64, rng: &mut SampleRng) -> Region {
        let cy = rng.random_range(0..h);
        let cx = rng.random_range(0..w);
        Region {
            y0: (cy - height / 2).clamp(0, h),
            y1: (cy + height / 2).clamp(0, h),
            x0: (cx - width / 2).clamp(0, w),
            x1: (cx + width / 2).clamp(0, w),
        }
    }

    pub fn area(&self) -> i64 {
        (self.y1 - self.y0) * (self.x1 - self.x0)
    }

    /// The region of every image of an NCHW batch, as a view.
    fn of(&self, images: &Tensor) -> Tensor {
        images
            .narrow(2, self.y0, self.y1 - self.y0)
            .narrow(3, self.x0, self.x1 - self.x0)
    }
}

/// `lambda ~ Beta(alpha, alpha)`; 1 (no mixing) if alpha is not a valid Beta parameter.
pub fn sample_lambda(alpha: f64, rng: &mut SampleRng) -> f64 {
    match Beta::new(alpha, alpha) {
        Ok(beta) => beta.sample(rng),
        Err(_) => 1.0,
    }
}

/// `lambda * a + (1 - lambda) * flip(a)` along the batch.
fn mix_with_flipped(a: &Tensor, lambda: f64) -> Tensor {
    a * lambda + a.flip([0]) * (1.0 - lambda)
}

/// Mixup with a given lambda.
pub fn mixup(images: &Tensor, targets: &Tensor, lambda: f64) -> (Tensor, Tensor) {
    (
        mix_with_flipped(images, lambda),
        mix_with_flipped(targets, lambda),
    )
}

/// CutMix with a given box: the box is pasted from the reversed batch and the targets are
/// weighted by the area outside it.
pub fn cutmix(images: &Tensor, targets: &Tensor, region: Region) -> (Tensor, Tensor) {
    let size = images.size();
    let (h, w) = (size[2], size[3]);
    let lambda = 1.0 - region.area() as f64 / (h * w) as f64;
    let mixed = images.copy();
    if region.area() > 0 {
        region.of(&mixed).copy_(&region.of(images).flip([0]));
    }
    (mixed, mix_with_flipped(targets, lambda))
}

/// The side of the cutout square for an `h x w` image.
fn cutout_side(size: f64, h: i64, w: i64) -> i64 {
    ((size * h.min(w) as f64).round() as i64).max(1)
}

/// Zeroes `regions[i]` of image `i`.
pub fn cutout(images: &Tensor, regions: &[Region]) -> Tensor {
    let out = images.copy();
    for (i, region) in regions.iter().enumerate() {
        if region.area() > 0 {
            let _ = region.of(&out.narrow(0, i as i64, 1)).fill_(0.0);
        }
    }
    out
}

/// Mixes a batch of normalised NCHW images and its `N x K` soft targets (see the module
/// doc). Lambda is drawn once per batch from `rng`, then the box or squares. Parameters
/// that [`Mix::validate`] rejects leave the batch unchanged.
pub fn apply_mix(
    mix: &Mix,
    images: &Tensor,
    targets: &Tensor,
    rng: &mut SampleRng,
) -> (Tensor, Tensor) {
    let _guard = tch::no_grad_guard();
    if mix.validate().is_err() {
        return (images.shallow_clone(), targets.shallow_clone());
    }
    let size = images.size();
    let (n, h, w) = (size[0], size[2], size[3]);
    match mix {
        Mix::None => (images.shallow_clone(), targets.shallow_clone()),
        Mix::Mixup { alpha } => mixup(images, targets, sample_lambda(*alpha, rng)),
        Mix::Cutmix { alpha } => {
            let lambda = sample_lambda(*alpha, rng);
            let ratio = (1.0 - lambda).sqrt();
            let (cut_h, cut_w) = ((h as f64 * ratio) as i64, (w as f64 * ratio) as i64);
            let region = Region::sample(h, w, cut_h, cut_w, rng);
            cutmix(images, targets, region)
        }
        Mix::Cutout { size } => {
            let side = cutout_side(*size, h, w);
            let regions: Vec<Region> = (0..n)
                .map(|_| Region::sample(h, w, side, side, rng))
                .collect();
            (cutout(images, &regions), targets.shallow_clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::rng::stream_rng;
    use tch::{Device, Kind};

    fn batch() -> (Tensor, Tensor) {
        tch::manual_seed(3);
        let images = Tensor::randn([4, 3, 10, 12], (Kind::Float, Device::Cpu));
        let labels = Tensor::from_slice(&[0i64, 1, 2, 1]);
        let targets = super::super::loss::one_hot_targets(
            &labels,
            3,
            0.1,
            super::super::loss::SmoothingStyle::Uniform,
        );
        (images, targets)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn none_is_identity() {
        let (x, y) = batch();
        let (mx, my) = apply_mix(&Mix::None, &x, &y, &mut stream_rng(1, 2));
        assert_eq!(max_diff(&mx, &x), 0.0);
        assert_eq!(max_diff(&my, &y), 0.0);
    }

    #[test]
    fn mixup_mixes_images_and_targets_with_the_reversed_batch() {
        let (x, y) = batch();
        let mix = Mix::Mixup { alpha: 0.2 };
        let (mx, my) = apply_mix(&mix, &x, &y, &mut stream_rng(7, 0));
        let lambda = sample_lambda(0.2, &mut stream_rng(7, 0));
        assert!((0.0..=1.0).contains(&lambda));
        let want_x = &x * lambda + x.flip([0]) * (1.0 - lambda);
        let want_y = &y * lambda + y.flip([0]) * (1.0 - lambda);
        assert!(max_diff(&mx, &want_x) < 1e-6);
        assert!(max_diff(&my, &want_y) < 1e-6);
        // Image 0 is mixed with image 3: check one pixel by hand.
        let (a, b) = (x.double_value(&[0, 1, 2, 3]), x.double_value(&[3, 1, 2, 3]));
        assert!((mx.double_value(&[0, 1, 2, 3]) - (lambda * a + (1.0 - lambda) * b)).abs() < 1e-6);
        // Targets still sum to 1.
        let sums = my.sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        assert!(max_diff(&sums, &Tensor::ones([4], (Kind::Float, Device::Cpu))) < 1e-6);
    }

    #[test]
    fn lambda_follows_beta() {
        // Beta(0.2, 0.2) piles up near 0 and 1; its mean is 1/2.
        let mut rng = stream_rng(11, 0);
        let draws: Vec<f64> = (0..4000).map(|_| sample_lambda(0.2, &mut rng)).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.03, "{mean}");
        let extreme = draws.iter().filter(|l| **l < 0.1 || **l > 0.9).count();
        assert!(extreme > draws.len() / 2, "{extreme}");
    }

    #[test]
    fn cutmix_pastes_a_box_from_the_reversed_batch() {
        let (x, y) = batch();
        let mix = Mix::Cutmix { alpha: 1.0 };
        for seed in 0..20 {
            let (mx, my) = apply_mix(&mix, &x, &y, &mut stream_rng(seed, 0));
            // Replay the draws: lambda, then the box.
            let mut rng = stream_rng(seed, 0);
            let lambda = sample_lambda(1.0, &mut rng);
            let ratio = (1.0 - lambda).sqrt();
            let (ch, cw) = ((10.0 * ratio) as i64, (12.0 * ratio) as i64);
            let r = Region::sample(10, 12, ch, cw, &mut rng);
            assert!(r.y0 <= r.y1 && r.y1 <= 10 && r.x0 <= r.x1 && r.x1 <= 12);
            // Inside the box: the reversed batch; outside: the batch itself.
            let inside = Tensor::zeros([1, 1, 10, 12], (Kind::Bool, Device::Cpu));
            if r.area() > 0 {
                let _ = r.of(&inside).fill_(1);
            }
            let want = x.where_self(&inside.logical_not(), &x.flip([0]));
            assert_eq!(max_diff(&mx, &want), 0.0, "seed {seed}");
            // Targets weighted by the area outside the box.
            let kept = 1.0 - r.area() as f64 / 120.0;
            let want_y = &y * kept + y.flip([0]) * (1.0 - kept);
            assert!(max_diff(&my, &want_y) < 1e-6, "seed {seed}");
        }
    }

    #[test]
    fn cutmix_box_by_hand() {
        let x = Tensor::arange(2 * 4 * 4, (Kind::Float, Device::Cpu)).view([2, 1, 4, 4]);
        let y = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0]).view([2, 2]);
        let region = Region {
            y0: 1,
            y1: 3,
            x0: 0,
            x1: 2,
        };
        let (mx, my) = cutmix(&x, &y, region);
        // Image 0 gets rows 1-2, columns 0-1 of image 1 (values 16 + 4*row + col).
        let want0 = [
            0.0, 1.0, 2.0, 3.0, //
            20.0, 21.0, 6.0, 7.0, //
            24.0, 25.0, 10.0, 11.0, //
            12.0, 13.0, 14.0, 15.0,
        ];
        assert_eq!(
            Vec::<f32>::try_from(mx.get(0).flatten(0, -1)).unwrap(),
            want0
        );
        // 4 of 16 pixels pasted: lambda = 0.75.
        assert_eq!(
            Vec::<Vec<f32>>::try_from(&my).unwrap(),
            vec![vec![0.75, 0.25], vec![0.25, 0.75]]
        );
    }

    #[test]
    fn cutout_zeroes_one_square_per_image_and_keeps_targets() {
        let x = Tensor::ones([3, 2, 8, 8], (Kind::Float, Device::Cpu));
        let (_, y) = batch();
        let y = y.narrow(0, 0, 3);
        let mix = Mix::Cutout { size: 0.5 };
        let (mx, my) = apply_mix(&mix, &x, &y, &mut stream_rng(5, 1));
        assert_eq!(max_diff(&my, &y), 0.0);
        let mut rng = stream_rng(5, 1);
        for i in 0..3 {
            let r = Region::sample(8, 8, 4, 4, &mut rng);
            let image = mx.get(i);
            let zeros = image.eq(0.0).sum(Kind::Int64).int64_value(&[]);
            assert_eq!(zeros, 2 * r.area(), "image {i}");
            if r.area() > 0 {
                assert_eq!(
                    r.of(&image.unsqueeze(0))
                        .abs()
                        .sum(Kind::Float)
                        .double_value(&[]),
                    0.0
                );
            }
            assert!(r.y1 - r.y0 <= 4 && r.x1 - r.x0 <= 4);
        }
        // Away from the borders the square is whole: some image of many shows a 4x4 hole.
        let many = Tensor::ones([64, 1, 8, 8], (Kind::Float, Device::Cpu));
        let (mx, _) = apply_mix(
            &mix,
            &many,
            &Tensor::ones([64, 1], (Kind::Float, Device::Cpu)),
            &mut stream_rng(9, 9),
        );
        let holes = Vec::<i64>::try_from(mx.eq(0.0).sum_dim_intlist(
            [1i64, 2, 3].as_slice(),
            false,
            Kind::Int64,
        ))
        .unwrap();
        assert!(holes.contains(&16));
        assert!(holes.iter().all(|&z| z <= 16));
    }

    #[test]
    fn validation_and_toml() {
        #[derive(Deserialize)]
        struct Wrapper {
            mix: Mix,
        }
        let read = |s: &str| toml::from_str::<Wrapper>(s).map(|w| w.mix);
        assert_eq!(read("mix = { kind = \"none\" }").unwrap(), Mix::None);
        assert_eq!(
            read("mix = { kind = \"mixup\", alpha = 0.2 }").unwrap(),
            Mix::Mixup { alpha: 0.2 }
        );
        assert_eq!(
            read("mix = { kind = \"cutout\", size = 0.5 }").unwrap(),
            Mix::Cutout { size: 0.5 }
        );
        assert!(read("mix = { kind = \"mixup\", alpha = 0.2, beta = 1 }").is_err());
        assert!(Mix::Mixup { alpha: 0.0 }
            .validate()
            .unwrap_err()
            .contains("alpha"));
        assert!(Mix::Cutmix { alpha: f64::NAN }.validate().is_err());
        assert!(Mix::Cutout { size: 1.5 }
            .validate()
            .unwrap_err()
            .contains("cutout"));
        assert!(Mix::Cutout { size: 1.0 }.validate().is_ok());
        // An invalid mix leaves the batch alone rather than panicking.
        let (x, y) = batch();
        let (mx, _) = apply_mix(&Mix::Mixup { alpha: -1.0 }, &x, &y, &mut stream_rng(0, 0));
        assert_eq!(max_diff(&mx, &x), 0.0);
    }
}
