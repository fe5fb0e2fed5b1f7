//! Top-1, top-5 and cross-entropy over a whole evaluation set, accumulated on the device with
//! one host sync at the end.

use crate::classifier::Normalizer;
use datasets::classify::ClassificationBatch;
use datasets::DataError;
use serde::Serialize;
use tch::nn::ModuleT;
use tch::{Device, Kind, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EvalMetrics {
    pub top1: f64,
    pub top5: f64,
    pub loss: f64,
    pub images: u64,
}

/// Turns a loader batch into device tensors: normalised images (NCHW float; channels-last
/// strides when `channels_last`, since the batch is NHWC already) and labels.
pub fn batch_to_device(
    batch: &ClassificationBatch,
    normalizer: &Normalizer,
    device: Device,
    channels_last: bool,
) -> (Tensor, Tensor) {
    let n = batch.labels.len() as i64;
    let (h, w) = (batch.size.0 as i64, batch.size.1 as i64);
    let images = Tensor::from_slice(&batch.images)
        .view([n, h, w, 3])
        .to_device(device);
    let lighting_flat: Vec<f32> = batch.lighting.iter().flatten().copied().collect();
    let has_lighting = lighting_flat.iter().any(|&v| v != 0.0);
    let lighting = has_lighting.then(|| Tensor::from_slice(&lighting_flat).view([n, 3]));
    let x = normalizer.apply(&images, lighting.as_ref());
    let x = if channels_last { x } else { x.contiguous() };
    let labels = Tensor::from_slice(&batch.labels).to_device(device);
    (x, labels)
}

/// Evaluates `model` on every batch of `batches` (an epoch of an evaluation loader).
pub fn evaluate(
    model: &dyn ModuleT,
    batches: impl Iterator<Item = Result<ClassificationBatch, DataError>>,
    normalizer: &Normalizer,
    device: Device,
    channels_last: bool,
    amp: bool,
) -> Result<EvalMetrics, DataError> {
    let _no_grad = tch::no_grad_guard();
    let zeros = || Tensor::zeros([], (Kind::Double, device));
    let (mut correct1, mut correct5, mut loss_sum) = (zeros(), zeros(), zeros());
    let mut images = 0u64;
    for batch in batches {
        let batch = batch?;
        let (x, labels) = batch_to_device(&batch, normalizer, device, channels_last);
        let logits = if amp {
            tch::autocast(true, || model.forward_t(&x, false))
        } else {
            model.forward_t(&x, false)
        }
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
    Ok(EvalMetrics {
        top1: correct1.double_value(&[]) / n,
        top5: correct5.double_value(&[]) / n,
        loss: loss_sum.double_value(&[]) / n,
        images,
    })
}
