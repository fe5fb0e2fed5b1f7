//! `segment eval --ckpt`: a model's pixAcc and mIoU on a split, single-scale or with GluonCV's
//! multi-scale, flipped, sliding-window inference.
//!
//! Multi-scale follows `MultiEvalModel` of GluonCV as the paper's authors ran it (dmlc/gluon-cv
//! at 49be0191, Oct 2018; `gluoncv/model_zoo/segbase.py` unless said otherwise):
//! - The input is the whole validation image, normalised (ImageNet mean/std) at its own size
//!   (`scripts/segmentation/test.py`: `testval` mode, `ToTensor` + `Normalize`, one image at a
//!   time through `parallel_forward`); scales 0.5, 0.75, .., 1.75, flip on (the defaults of
//!   `MultiEvalModel.__init__`), base 520 and crop 480 (the model's `base_size`/`crop_size`,
//!   train.py's defaults).
//! - `__call__`, per scale s: the longer side is `int(ceil(base * s))`, the other
//!   `int(other * long / longer + 0.5)` (height is the long side when h > w, else width). The
//!   normalised tensor is resized to that with `_resize_image`, MXNet's
//!   `contrib.BilinearResize2D`, whose source coordinate is output index x (in - 1) / (out - 1):
//!   corners aligned (apache/mxnet 1.3, `src/operator/contrib/bilinear_resize.cc`).
//! - Long side <= crop: `_pad_image` pads bottom and right to crop x crop with -mean/std per
//!   channel (a black pixel once normalised), one `flip_inference`, cut back to the scaled size.
//!   Otherwise: padded as above only where the short side is below the crop, then windows of
//!   crop x crop every `int(crop * 2/3)` pixels (320 at 480), `ceil((padded - crop) / stride) + 1`
//!   per axis, each clipped to the padded image, padded again to crop x crop and run; the
//!   outputs are summed per pixel and divided by the number of windows covering it.
//! - `flip_inference`: the model's logits (`FCN.evaluate`, the main head, upsampled to the input
//!   with `BilinearResize2D`, `gluoncv/model_zoo/fcn.py`) plus the logits of the mirrored input
//!   mirrored back, then `exp` of that sum: scores, not logits, are what the windows average.
//! - Each scale's map is resized to the image's size with `_resize_image` (corners aligned) and
//!   added to the running sum; the prediction is the argmax of the sum over classes.
//!
//! Differences kept: padding uses the checkpoint's normalisation (GluonCV hard-codes ImageNet's;
//! the same for every recipe here), and the argmax is of the float sums, while the metric of
//! that commit (`gluoncv/utils/metrics/segmentation.py`, `batch_pix_accuracy` and
//! `batch_intersection_union`) truncated the sums to int64 before its argmax, which GluonCV
//! fixed in April 2019 (#582).

use crate::banded::argmax_upsampled;
use crate::budget::{self, activation_bytes, OverBudget};
use crate::fcn::upsample;
use crate::metric::{ConfusionMatrix, Scores};
use crate::segmenter::Segmenter;
use datasets::loader::LoaderConfig;
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

    /// The windows' step: GluonCV's `int(crop * 2.0 / 3.0)`, which is floor(2 crop / 3) for
    /// every crop a flag allows.
    fn stride(&self) -> i64 {
        (self.crop_size * 2 / 3) as i64
    }

    /// The most windows (each one or two forward passes) an image needs: a square one, whose
    /// shorter side is as long as its longer.
    pub fn max_windows(&self) -> u64 {
        let crop = self.crop_size as i64;
        let stride = self.stride();
        self.scales
            .iter()
            .map(|&s| {
                let long = (self.base_size as f64 * s).ceil() as i64;
                if long <= crop {
                    1
                } else {
                    let n = ((long - crop + stride - 1) / stride + 1) as u64;
                    n * n
                }
            })
            .sum()
    }

    /// Refuses settings whose work or memory per image is absurd before any image is read:
    /// more than [`budget::MAX_WINDOWS`] windows, or score maps (each scale's, padded, kept
    /// until the image's argmax, and a window sum beside it) and a window's activations over
    /// the inference budget.
    pub fn check(&self, model: &Segmenter) -> Result<(), OverBudget> {
        let top = self.scales.iter().copied().fold(0.0, f64::max);
        let windows = self.max_windows();
        if windows > budget::MAX_WINDOWS {
            return Err(OverBudget(format!(
                "multi-scale evaluation with --base-size {} and --crop-size {} (scales up to \
                 {top}) would run up to {windows} sliding windows per image; the limit is {}: \
                 raise --crop-size or lower --base-size",
                self.base_size,
                self.crop_size,
                budget::MAX_WINDOWS
            )));
        }
        let crop = self.crop_size as u64;
        let padded: u64 = self
            .scales
            .iter()
            .map(|&s| ((self.base_size as f64 * s).ceil() as u64).max(crop).pow(2))
            .sum();
        let largest = self
            .scales
            .iter()
            .map(|&s| ((self.base_size as f64 * s).ceil() as u64).max(crop).pow(2))
            .max()
            .unwrap_or(0);
        let k = model.model.config.num_classes as u64;
        let bytes =
            4 * k * (padded + 2 * largest) + activation_bytes(&model.model.config, crop * crop);
        let limit = budget::max_inference_bytes().map_err(OverBudget)?;
        if bytes > limit {
            return Err(OverBudget(format!(
                "multi-scale evaluation with --base-size {} and --crop-size {} (scales up to \
                 {top}) would hold about {} per image for {k} classes, more than the limit of \
                 {} (lower --base-size, or set {} to a number of MiB to raise it)",
                self.base_size,
                self.crop_size,
                budget::gb(bytes),
                budget::gb(limit),
                budget::MAX_INFERENCE_MIB_VAR
            )));
        }
        Ok(())
    }

    /// (height, width, longer side) an image of `height` x `width` is run at for `scale`.
    fn scaled_size(&self, height: i64, width: i64, scale: f64) -> (i64, i64, i64) {
        let long = (self.base_size as f64 * scale).ceil() as i64;
        let other = |side: i64, longer: i64| ((side * long) as f64 / longer as f64 + 0.5) as i64;
        let (h, w) = if height > width {
            (long, other(width, height))
        } else {
            (other(height, width), long)
        };
        (h.max(1), w.max(1), long)
    }
}

/// Bilinear resize with corners aligned, MXNet's `BilinearResize2D`.
fn resize(x: &Tensor, size: (i64, i64)) -> Tensor {
    upsample(x, size, true)
}

/// exp of the logits of `x` (1 x 3 x h x w, normalised) plus, with `flip`, those of its mirror
/// image mirrored back. `finite` becomes false (on the device, no host read) if a logit is
/// NaN or infinite.
fn flipped_scores(model: &Segmenter, x: &Tensor, flip: bool, finite: &mut Tensor) -> Tensor {
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
    *finite = finite.logical_and(&out.isfinite().all());
    out.exp()
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

/// The scores of `x` (normalised, padded to at least the crop) from crop-sized windows every
/// `stride` pixels, averaged where windows overlap.
fn window_scores(
    model: &Segmenter,
    x: &Tensor,
    fill: &Tensor,
    ms: &MultiScale,
    finite: &mut Tensor,
) -> Tensor {
    let crop = ms.crop_size as i64;
    let stride = ms.stride();
    let k = model.model.config.num_classes;
    let (ph, pw) = (x.size()[2], x.size()[3]);
    let grids = |n: i64| (n - crop + stride - 1) / stride + 1;
    let sum = Tensor::zeros([1, k, ph, pw], (Kind::Float, x.device()));
    let count = Tensor::zeros([1, 1, ph, pw], (Kind::Float, x.device()));
    for gy in 0..grids(ph) {
        for gx in 0..grids(pw) {
            let (y0, x0) = (gy * stride, gx * stride);
            let (y1, x1) = ((y0 + crop).min(ph), (x0 + crop).min(pw));
            let window = x.narrow(2, y0, y1 - y0).narrow(3, x0, x1 - x0);
            let out = flipped_scores(model, &pad_to(&window, crop, fill), ms.flip, finite)
                .narrow(2, 0, y1 - y0)
                .narrow(3, 0, x1 - x0);
            let mut region = sum.narrow(2, y0, y1 - y0).narrow(3, x0, x1 - x0);
            region += out;
            let mut seen = count.narrow(2, y0, y1 - y0).narrow(3, x0, x1 - x0);
            seen += 1.0;
        }
    }
    sum / count
}

/// Each scale's scores of one RGB image (HWC u8) at that scale's size (1 x K x h x w; the
/// image's multi-scale scores are their sum, each resized to the image's size with corners
/// aligned), and whether every logit was finite (a boolean on the device).
pub fn multi_scale_maps(
    model: &Segmenter,
    pixels: &[u8],
    width: usize,
    height: usize,
    ms: &MultiScale,
) -> (Vec<Tensor>, Tensor) {
    let _no_grad = tch::no_grad_guard();
    let device = model.vs.device();
    let crop = ms.crop_size as i64;
    let fill = model
        .normalizer()
        .apply(&Tensor::zeros([1, 1, 1, 3], (Kind::Uint8, device)), None);
    let (height, width) = (height as i64, width as i64);
    let image = Tensor::from_slice(pixels)
        .view([1, height, width, 3])
        .to_device(device);
    let image = model.normalizer().apply(&image, None);
    let mut finite = Tensor::from(true).to_device(device);
    let maps = ms
        .scales
        .iter()
        .map(|&scale| {
            let (h, w, long) = ms.scaled_size(height, width, scale);
            let x = resize(&image, (h, w));
            let outputs = if long <= crop {
                flipped_scores(model, &pad_to(&x, crop, &fill), ms.flip, &mut finite)
            } else {
                window_scores(model, &pad_to(&x, crop, &fill), &fill, ms, &mut finite)
            };
            outputs.narrow(2, 0, h).narrow(3, 0, w)
        })
        .collect();
    (maps, finite)
}

/// GluonCV's multi-scale scores of one RGB image (HWC u8): the sums over scales of
/// exp(logits + flipped logits), 1 x K x height x width; the prediction is their argmax.
/// Evaluation takes the argmax band by band instead ([`multi_scale_maps`]).
pub fn multi_scale_scores(
    model: &Segmenter,
    pixels: &[u8],
    width: usize,
    height: usize,
    ms: &MultiScale,
) -> Tensor {
    let k = model.model.config.num_classes;
    let device = model.vs.device();
    let mut scores = Tensor::zeros([1, k, height as i64, width as i64], (Kind::Float, device));
    for map in multi_scale_maps(model, pixels, width, height, ms).0 {
        scores += resize(&map, (height as i64, width as i64));
    }
    scores
}

/// Evaluates `model` on every image of `source` (whole images, one at a time); `what` names
/// the data and split in errors. An image's scores are brought to its size in row bands
/// ([`argmax_upsampled`]), so a large image never needs K x H x W floats at once.
pub fn evaluate_source(
    model: &Segmenter,
    source: SegmentationSource,
    what: &str,
    multi_scale: Option<&MultiScale>,
    workers: usize,
) -> anyhow::Result<Scores> {
    if let Some(ms) = multi_scale {
        ms.check(model)?;
    }
    let device: Device = model.vs.device();
    let loader = segmentation_loader(
        SegmentationDataset {
            source,
            augment: SegmentationAugment::Eval(SegmentationEvalTransform::Full),
        },
        LoaderConfig::in_order(1, workers),
    )?;
    let mut confusion = ConfusionMatrix::new(model.model.config.num_classes, device);
    for batch in loader.epoch(0, 0) {
        let batch = batch?;
        let (w, h) = (batch.width, batch.height);
        let labels = Tensor::from_slice(&batch.labels).to_device(device);
        let width = w as i64;
        let mut add = |y0: i64, classes: Tensor| {
            let rows = classes.size()[1];
            confusion.add(&classes, &labels.narrow(0, y0 * width, rows * width));
        };
        match multi_scale {
            Some(ms) => {
                let (maps, finite) = multi_scale_maps(model, &batch.pixels, w, h, ms);
                model.check_finite(&finite, &batch.ids[0])?;
                argmax_upsampled(&maps, (h as i64, width), true, add);
            }
            None => {
                model.check_input(std::path::Path::new(&batch.ids[0]), w, h)?;
                model.classes(&batch.ids[0], &batch.pixels, w, h, &mut add)?;
            }
        }
    }
    Ok(confusion.scores().require_labelled(what)?)
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
        let tensors = engine::checkpoint::var_store_tensors(&vs);
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

    /// |a - b| within 1e-4 of b's largest value.
    fn close(a: &Tensor, b: &Tensor) -> bool {
        let scale = b.abs().max().double_value(&[]).max(1.0);
        (a - b).abs().max().double_value(&[]) < 1e-4 * scale
    }

    #[test]
    fn one_scale_one_window_is_the_exp_of_single_scale_logits() {
        let m = model();
        let pixels = image(40, 40);
        let ms = MultiScale {
            base_size: 40,
            crop_size: 40,
            scales: vec![1.0],
            flip: false,
        };
        let single = m.logits(&pixels, 40, 40);
        let multi = multi_scale_scores(&m, &pixels, 40, 40, &ms);
        assert!(close(&multi, &single.exp()));
        // With flip, the mirrored image's logits mirrored back are added before the exp.
        let flipped: Vec<u8> = (0..40 * 40)
            .map(|p| (p / 40, 39 - p % 40))
            .flat_map(|(y, x)| pixels[(y * 40 + x) * 3..][..3].to_vec())
            .collect();
        let expected = (&single + m.logits(&flipped, 40, 40).flip([3])).exp();
        let with_flip = multi_scale_scores(&m, &pixels, 40, 40, &MultiScale { flip: true, ..ms });
        assert!(close(&with_flip, &expected));
    }

    #[test]
    fn scaled_sizes_and_stride_are_gluoncvs() {
        let ms = MultiScale::gluoncv();
        assert_eq!(ms.stride(), 320);
        // A 683 x 512 image at 0.75: the long side ceil(390) and the short
        // int(512 * 390 / 683 + 0.5) = 292; a portrait one scales its height.
        assert_eq!(ms.scaled_size(512, 683, 0.75), (292, 390, 390));
        assert_eq!(ms.scaled_size(683, 512, 1.75), (910, 682, 910));
        assert_eq!(
            MultiScale {
                crop_size: 49,
                ..ms
            }
            .stride(),
            32
        );
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
        let out = multi_scale_scores(&m, &pixels, 50, 30, &ms);
        assert_eq!(out.size(), [1, 3, 30, 50]);
        assert!(bool::try_from(out.isfinite().all()).unwrap());
    }
}
