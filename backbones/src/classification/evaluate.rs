//! Top-1, top-5 and cross-entropy over a whole evaluation set, accumulated on the device with
//! one host sync at the end.

use crate::classifier::Normalizer;
use datasets::classify::ClassificationBatch;
use datasets::DataError;
use engine::amp::Autocast;
use engine::transfer::upload;
use serde::Serialize;
use tch::nn::ModuleT;
use tch::{Device, Kind, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EvalMetrics {
    pub top1: f64,
    pub top5: f64,
    pub loss: f64,
    pub images: u64,
    /// The sums behind the rates, which add up across the ranks of a data-parallel run.
    pub correct1: f64,
    pub correct5: f64,
    pub loss_sum: f64,
}

/// A loader batch on the device: 8-bit NHWC pixels, labels and (when the augmentation adds
/// PCA lighting noise) per-image RGB offsets. Normalising on the device keeps the copy 8-bit.
pub struct DeviceBatch {
    pub images: Tensor,
    pub labels: Tensor,
    pub lighting: Option<Tensor>,
}

impl DeviceBatch {
    /// Starts the copy (pinned and non-blocking on CUDA, see `engine::transfer`).
    pub fn upload(batch: &ClassificationBatch, device: Device) -> Self {
        let n = batch.labels.len() as i64;
        let (h, w) = (batch.size.0 as i64, batch.size.1 as i64);
        let has_lighting = batch.lighting.iter().flatten().any(|&v| v != 0.0);
        let lighting = has_lighting.then(|| {
            let flat: Vec<f32> = batch.lighting.iter().flatten().copied().collect();
            upload(&flat, &[n, 3], device)
        });
        DeviceBatch {
            images: upload(&batch.images, &[n, h, w, 3], device),
            labels: upload(&batch.labels, &[n], device),
            lighting,
        }
    }

    /// The model's input: normalised NCHW floats (channels-last strides when `channels_last`,
    /// since the batch is NHWC already).
    pub fn input(&self, normalizer: &Normalizer, channels_last: bool) -> Tensor {
        let x = normalizer.apply(&self.images, self.lighting.as_ref());
        if channels_last {
            x
        } else {
            x.contiguous()
        }
    }
}

/// Evaluates `model` on every batch of `batches` (an epoch of an evaluation loader).
pub fn evaluate(
    model: &dyn ModuleT,
    batches: impl Iterator<Item = Result<ClassificationBatch, DataError>>,
    normalizer: &Normalizer,
    device: Device,
    channels_last: bool,
    autocast: Autocast,
) -> Result<EvalMetrics, DataError> {
    let _no_grad = tch::no_grad_guard();
    let zeros = || Tensor::zeros([], (Kind::Double, device));
    let (mut correct1, mut correct5, mut loss_sum) = (zeros(), zeros(), zeros());
    let mut images = 0u64;
    for batch in batches {
        let batch = batch?;
        let batch = DeviceBatch::upload(&batch, device);
        let (x, labels) = (batch.input(normalizer, channels_last), batch.labels);
        let logits = autocast
            .run(|| model.forward_t(&x, false))
            .to_kind(Kind::Float);
        let k = logits.size()[1].min(5);
        let top = logits.topk(k, -1, true, true).1;
        let hits = top.eq_tensor(&labels.unsqueeze(1));
        correct1 += hits.select(1, 0).sum(Kind::Double);
        correct5 += hits.any_dim(1, false).sum(Kind::Double);
        loss_sum += logits
            .cross_entropy_for_logits(&labels)
            .to_kind(Kind::Double)
            * labels.size()[0] as f64;
        images += labels.size()[0] as u64;
    }
    let n = images.max(1) as f64;
    let (correct1, correct5, loss_sum) = (
        correct1.double_value(&[]),
        correct5.double_value(&[]),
        loss_sum.double_value(&[]),
    );
    Ok(EvalMetrics {
        top1: correct1 / n,
        top5: correct5 / n,
        loss: loss_sum / n,
        images,
        correct1,
        correct5,
        loss_sum,
    })
}
