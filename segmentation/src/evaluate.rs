//! `segment eval --ckpt`: a model's pixAcc and mIoU on a split, single-scale or with GluonCV's
//! multi-scale, flipped, sliding-window inference (`MultiEvalModule`).
//!
//! Multi-scale, for each scale s in 0.5, 0.75, .., 1.75: the longer side is resized to
//! ceil(base_size x s) (Pillow bilinear on the 8-bit image), the shorter keeps the aspect ratio
//! (rounded). An image no larger than the crop is padded to it (black, i.e. -mean/std once
//! normalised) and run whole; a larger one is padded to at least the crop and covered by
//! crop-sized windows every round(crop x 2/3) pixels, whose logits are averaged where they
//! overlap. Every run adds the logits of the horizontally flipped input, flipped back. The
//! logits of each scale are resized bilinearly to the image's size and summed over scales.

use crate::metric::{ConfusionMatrix, Scores};
use crate::segmenter::Segmenter;
use datasets::loader::LoaderConfig;
use datasets::resize::resize_bilinear;
use datasets::segmentation_data::{
    segmentation_loader, SegmentationAugment, SegmentationDataset, SegmentationSource,
};
use datasets::segmentation_transforms::SegmentationEvalTransform;
use tch::{Device, Kind, Tensor};

/// GluonCV's multi-scale evaluation settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiScale {
    pub base_size: usize,
    pub crop_size: usize,
    pub scales: Vec<f64>,
    pub flip: bool,
}

impl MultiScale {
    /// GluonCV's ADE20K evaluation: base 520, crop 480, scales 0.5..1.75, flip.
    pub fn gluoncv() -> Self {
        MultiScale {
            base_size: 520,
            crop_size: 480,
            scales: vec![0.5, 0.75, 1.0, 1.25, 1.5, 1.75],
            flip: true,
        }
    }

    fn stride(&self) -> usize {
        (self.crop_size as f64 * 2.0 / 3.0) as usize
    }
}

/// Logits of `x` (1 x 3 x h x w, normalised) plus, with `flip`, those of its mirror image
/// mirrored back.
fn flip_inference(model: &Segmenter, x: &Tensor, flip: bool) -> Tensor {
    let size = (x.size()[2], x.size()[3]);
    let run = |x: &Tensor| {
        model
            .model
            .forward_to(x, size, false, false)
            .out
            .to_kind(Kind::Float)
    };
    let mut out = run(x);
    if flip {
        out += run(&x.flip([3])).flip([3]);
    }
    out
}

/// `x` padded on the right and bottom to at least `side` x `side` with `fill` (1 x 3 x 1 x 1).
fn pad_to(x: &Tensor, side: i64, fill: &Tensor) -> Tensor {
    let (h, w) = (x.size()[2], x.size()[3]);
    if h >= side && w >= side {
        return x.shallow_clone();
    }
    let (ph, pw) = (h.max(side), w.max(side));
    let padded = fill.expand([1, 3, ph, pw], false).contiguous();
    padded.narrow(2, 0, h).narrow(3, 0, w).copy_(x);
    padded
}

/// Summed logits over the scales, 1 x K x height x width.
pub fn multi_scale_logits(
    model: &Segmenter,
    pixels: &[u8],
    width: usize,
    height: usize,
    ms: &MultiScale,
) -> Tensor {
    let _no_grad = tch::no_grad_guard();
    let device = model.vs.device();
    let k = model.model.config.num_classes;
    let crop = ms.crop_size as i64;
    let stride = ms.stride() as i64;
    let black = Tensor::zeros([1, 1, 1, 3], (Kind::Uint8, device));
    let fill = model.normalizer().apply(&black, None);
    let mut scores = Tensor::zeros([1, k, height as i64, width as i64], (Kind::Float, device));
    for &scale in &ms.scales {
        let long = (ms.base_size as f64 * scale).ceil() as usize;
        let (w, h) = if height > width {
            (((width * long) as f64 / height as f64 + 0.5) as usize, long)
        } else {
            (long, ((height * long) as f64 / width as f64 + 0.5) as usize)
        };
        let (w, h) = (w.max(1), h.max(1));
        let resized = resize_bilinear(pixels, width, height, 3, w, h);
        let x = Tensor::from_slice(&resized)
            .view([1, h as i64, w as i64, 3])
            .to_device(device);
        let x = model.normalizer().apply(&x, None);
        let (h, w) = (h as i64, w as i64);
        let outputs = if long as i64 <= crop {
            flip_inference(model, &pad_to(&x, crop, &fill), ms.flip)
                .narrow(2, 0, h)
                .narrow(3, 0, w)
        } else {
            let padded = pad_to(&x, crop, &fill);
            let (ph, pw) = (padded.size()[2], padded.size()[3]);
            let grids = |n: i64| ((n - crop) as f64 / stride as f64).ceil() as i64 + 1;
            let sum = Tensor::zeros([1, k, ph, pw], (Kind::Float, device));
            let count = Tensor::zeros([1, 1, ph, pw], (Kind::Float, device));
            for gy in 0..grids(ph) {
                for gx in 0..grids(pw) {
                    let (y0, x0) = (gy * stride, gx * stride);
                    let (y1, x1) = ((y0 + crop).min(ph), (x0 + crop).min(pw));
                    let window = padded.narrow(2, y0, y1 - y0).narrow(3, x0, x1 - x0);
                    let out = flip_inference(model, &pad_to(&window, crop, &fill), ms.flip)
                        .narrow(2, 0, y1 - y0)
                        .narrow(3, 0, x1 - x0);
                    let mut region = sum.narrow(2, y0, y1 - y0).narrow(3, x0, x1 - x0);
                    region += out;
                    let mut seen = count.narrow(2, y0, y1 - y0).narrow(3, x0, x1 - x0);
                    seen += 1.0;
                }
            }
            (sum / count).narrow(2, 0, h).narrow(3, 0, w)
        };
        scores += crate::fcn::upsample(&outputs, (height as i64, width as i64));
    }
    scores
}

/// Evaluates `model` on every image of `source` (whole images, one at a time).
pub fn evaluate_source(
    model: &Segmenter,
    source: SegmentationSource,
    multi_scale: Option<&MultiScale>,
    workers: usize,
) -> anyhow::Result<Scores> {
    let device: Device = model.vs.device();
    let loader = segmentation_loader(
        SegmentationDataset {
            source,
            augment: SegmentationAugment::Eval(SegmentationEvalTransform::Full),
        },
        LoaderConfig {
            batch_size: 1,
            workers,
            prefetch: 2 * workers.max(1),
            shuffle: false,
            drop_last: false,
            seed: 0,
            rank: 0,
            world_size: 1,
            skip_bad: false,
        },
    )?;
    let mut confusion = ConfusionMatrix::new(model.model.config.num_classes, device);
    for batch in loader.epoch(0, 0) {
        let batch = batch?;
        let (w, h) = (batch.width, batch.height);
        let logits = match multi_scale {
            Some(ms) => multi_scale_logits(model, &batch.pixels, w, h, ms),
            None => {
                model.check_input(std::path::Path::new(&batch.ids[0]), w, h)?;
                model.logits(&batch.pixels, w, h)
            }
        };
        let labels = Tensor::from_slice(&batch.labels).to_device(device);
        confusion.add(&logits.argmax(1, false).flatten(0, -1), &labels);
    }
    Ok(confusion.scores())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fcn::{Fcn, FcnConfig};
    use crate::segmenter::Preprocess;
    use datasets::classify::Normalization;
    use std::path::Path;
    use tch::nn;

    fn model() -> Segmenter {
        tch::manual_seed(0);
        let config = FcnConfig::new("resnet18".parse().unwrap(), 8, 3, false);
        let vs = nn::VarStore::new(Device::Cpu);
        let _model = Fcn::new(&vs.root(), &config);
        let tensors = backbones::checkpoint::var_store_tensors(&vs);
        let preprocess = Preprocess {
            resize_shorter: None,
            normalization: Normalization::IMAGENET,
        };
        let classes = vec!["a".to_string(), "b".into(), "c".into()];
        Segmenter::build(
            config,
            classes,
            preprocess,
            &tensors,
            Path::new("x"),
            Device::Cpu,
        )
        .unwrap()
    }

    fn image(w: usize, h: usize) -> Vec<u8> {
        (0..w * h * 3).map(|i| ((i * 37) % 251) as u8).collect()
    }

    #[test]
    fn one_scale_one_window_is_single_scale_inference() {
        let m = model();
        let pixels = image(40, 40);
        let ms = MultiScale {
            base_size: 40,
            crop_size: 40,
            scales: vec![1.0],
            flip: false,
        };
        let single = m.logits(&pixels, 40, 40);
        let multi = multi_scale_logits(&m, &pixels, 40, 40, &ms);
        assert!((multi - &single).abs().max().double_value(&[]) < 1e-4);
        // With flip, the mirrored image's logits mirrored back are added.
        let flipped: Vec<u8> = (0..40 * 40)
            .map(|p| (p / 40, 39 - p % 40))
            .flat_map(|(y, x)| pixels[(y * 40 + x) * 3..][..3].to_vec())
            .collect();
        let expected = &single + m.logits(&flipped, 40, 40).flip([3]);
        let with_flip = multi_scale_logits(&m, &pixels, 40, 40, &MultiScale { flip: true, ..ms });
        assert!((with_flip - expected).abs().max().double_value(&[]) < 1e-4);
    }

    #[test]
    fn windows_and_scales_come_back_at_the_images_size() {
        let m = model();
        let pixels = image(50, 30);
        let ms = MultiScale {
            base_size: 40,
            crop_size: 32,
            scales: vec![0.5, 1.0, 1.5],
            flip: true,
        };
        let out = multi_scale_logits(&m, &pixels, 50, 30, &ms);
        assert_eq!(out.size(), [1, 3, 30, 50]);
        assert!(bool::try_from(out.isfinite().all()).unwrap());
    }
}
