//! FCN fine-tuning as a task of the training engine: per-pixel cross-entropy that ignores
//! unlabelled pixels, plus the weighted auxiliary loss; pixAcc and mIoU on the validation
//! split (mIoU picks `best`).

use crate::config::{FinetuneConfig, ModelSection};
use crate::fcn::{upsample, Fcn, FcnConfig};
use crate::metric::{ConfusionMatrix, NoLabelledPixels, Scores, IGNORE};
use crate::segmenter::{metadata, Preprocess};
use backbones::classifier::Normalizer;
use backbones::layers::PreparedInference;
use datasets::loader::Loader;
use datasets::segmentation_data::{SegmentationCollate, SegmentationDataset, SegmentationSource};
use datasets::segmentation_transforms::SegmentationBatch;
use datasets::DataError;
use engine::amp::Autocast;
use engine::channels_last::tensor_to_channels_last;
use engine::checkpoint::Metadata;
use engine::task::{Learner, Losses, Metrics, Step, Task};
use engine::transfer::upload;
use tch::{nn, Device, Kind, Tensor};

pub type SegmentationLoader = Loader<SegmentationDataset, SegmentationCollate>;

/// A loader batch on the device: 8-bit NHWC pixels and 8-bit train ids (255 = ignored).
pub struct DeviceBatch {
    pub images: Tensor,
    pub labels: Tensor,
}

impl DeviceBatch {
    pub fn upload(batch: &SegmentationBatch, device: Device) -> Self {
        let (n, h, w) = (batch.len() as i64, batch.height as i64, batch.width as i64);
        DeviceBatch {
            images: upload(&batch.pixels, &[n, h, w, 3], device),
            labels: upload(&batch.labels, &[n, h, w], device),
        }
    }

    /// Normalised NCHW floats (channels-last strides when asked).
    pub fn input(&self, normalizer: &Normalizer, channels_last: bool) -> Tensor {
        let x = normalizer.apply(&self.images, None);
        if channels_last {
            tensor_to_channels_last(&x)
        } else {
            x.contiguous()
        }
    }
}

/// libtorch's seed for micro-batch `m` of a run seeded `seed` (SplitMix64 of both, kept
/// within the non-negative i64 range `manual_seed` takes).
fn dropout_seed(seed: u64, micro_batch: u64) -> i64 {
    use datasets::rng::{splitmix64_finalise, SPLITMIX_GAMMA};
    let z = seed ^ micro_batch.wrapping_mul(SPLITMIX_GAMMA) ^ 0x4452_4F50_0000_0000;
    (splitmix64_finalise(z) >> 1) as i64
}

/// Mean cross-entropy over the labelled pixels (IGNORE left out) of `logits` upsampled
/// bilinearly to the labels' size (corners aligned or not, as the model upsamples), as
/// torchvision's FCN computes it (`F.interpolate`, then `F.cross_entropy`), with the gradient
/// flowing to the low-resolution `logits`. A batch
/// without a single labelled pixel gives 0, not NaN, so a crop of pure padding cannot stop a
/// run.
///
/// The gradient is formed here rather than by autograd: with C classes over the labels' P
/// pixels, autograd keeps the upsampled logits and their log-softmax for the backward pass
/// and then zero-fills, scatters and reads three more P x C tensors, while the gradient of
/// softmax cross-entropy is the softmax less one at the label, written in place over the
/// log-softmax and carried back through the upsampling at once (forward and backward at crop
/// 480, 150 classes, on CPU: 0.26 s against autograd's 0.39 with the same layouts and 0.59 as
/// torchvision does it). The upsampling runs channels-last, so that each pixel's classes are
/// one contiguous row.
pub fn upsampled_cross_entropy(logits: &Tensor, labels: &Tensor, align_corners: bool) -> Tensor {
    let (n, classes) = (logits.size()[0], logits.size()[1]);
    let (h, w) = (labels.size()[1], labels.size()[2]);
    let target = labels.to_kind(Kind::Int64).reshape([-1, 1]);
    let labelled = target.ne(IGNORE);
    let weight = labelled.to_kind(Kind::Float);
    // Unlabelled pixels look up class 0 and are then weighted out.
    let target = target.masked_fill(&labelled.logical_not(), 0);
    // One statement, so that the upsampled logits are freed once their log-softmax exists.
    let mut gradient = upsample(
        &tensor_to_channels_last(&logits.detach().to_kind(Kind::Float)),
        (h, w),
        align_corners,
    )
    .permute([0, 2, 3, 1])
    .reshape([-1, classes])
    .log_softmax(-1, Kind::Float);
    let picked = gradient.gather(1, &target, false);
    let total = -(&picked * &weight).sum(Kind::Float);
    let _ = gradient.exp_();
    let _ = gradient.scatter_(1, &target, &(picked.exp() - 1.0));
    let _ = gradient.g_mul_(&weight);
    let gradient = Tensor::upsample_bilinear2d_backward(
        &gradient.view([n, h, w, classes]).permute([0, 3, 1, 2]),
        [h, w],
        logits.size(),
        align_corners,
        None,
        None,
    );
    // Its value is `total`; its gradient with respect to `logits` is `gradient`.
    let surrogate = (logits * gradient).sum(Kind::Float);
    let loss = &surrogate - surrogate.detach() + total;
    loss / weight.sum(Kind::Float).clamp_min(1.0)
}

/// [`upsampled_cross_entropy`] of each group of `group_images` consecutive images, averaged
/// over the groups (0: the whole batch is one group). Groups of 4 in a batch of 16 give
/// GluonCV's normalisation on 4 GPUs: each GPU's cross-entropy divided by its own labelled
/// pixels (docs/architecture.md, "The FCN loss, as GluonCV's gradient"). A batch that the
/// groups do not divide (a sample left out by `--skip-bad`, a micro-batch) ends with a smaller
/// group, as a last GPU given fewer crops would.
pub fn grouped_cross_entropy(
    logits: &Tensor,
    labels: &Tensor,
    group_images: usize,
    align_corners: bool,
) -> Tensor {
    let n = logits.size()[0];
    let k = group_images as i64;
    if k == 0 || k >= n {
        return upsampled_cross_entropy(logits, labels, align_corners);
    }
    let groups = (n + k - 1) / k;
    let sum = (0..groups)
        .map(|g| {
            let len = k.min(n - g * k);
            upsampled_cross_entropy(
                &logits.narrow(0, g * k, len),
                &labels.narrow(0, g * k, len),
                align_corners,
            )
        })
        .reduce(|a, b| a + b)
        .expect("a batch has at least one group");
    sum / groups as f64
}

/// The unweighted losses of `model`'s main and auxiliary heads on a training batch, each
/// averaged per group of `group_images` images ([`grouped_cross_entropy`]).
pub fn training_losses(
    model: &Fcn,
    x: &Tensor,
    labels: &Tensor,
    group_images: usize,
) -> (Tensor, Option<Tensor>) {
    let logits = model.head_logits(x, true, true);
    let corners = model.config.align_corners;
    (
        grouped_cross_entropy(&logits.out, labels, group_images, corners),
        logits
            .aux
            .map(|aux| grouped_cross_entropy(&aux, labels, group_images, corners)),
    )
}

/// The losses a training step minimises (their sum), as the recipe's `[model]` weighs them:
/// `loss_seg`, and `loss_aux` already multiplied by `aux_weight`.
pub fn weighted_losses(model: &Fcn, x: &Tensor, labels: &Tensor, recipe: &ModelSection) -> Losses {
    let (seg, aux) = training_losses(model, x, labels, recipe.loss_group_images);
    let mut losses = Losses::from([("loss_seg".to_string(), seg)]);
    if let Some(aux) = aux {
        losses.insert("loss_aux".to_string(), aux * recipe.aux_weight);
    }
    losses
}

pub struct Segmentation {
    config: FinetuneConfig,
    fcn_config: FcnConfig,
    classes: Vec<String>,
    vs: nn::VarStore,
    model: Fcn,
    normalizer: Normalizer,
    val: SegmentationLoader,
}

impl Segmentation {
    /// `vs` holds `model`'s variables (built with `fcn_config`, backbone loaded).
    pub fn new(
        config: FinetuneConfig,
        fcn_config: FcnConfig,
        classes: Vec<String>,
        vs: nn::VarStore,
        model: Fcn,
        val: SegmentationLoader,
    ) -> Self {
        Segmentation {
            normalizer: Normalizer::new(&config.data.normalization.values(), vs.device()),
            config,
            fcn_config,
            classes,
            vs,
            model,
            val,
        }
    }

    /// How the trained model's inputs are prepared when it is used: whole images at their
    /// own size, the recipe's normalisation.
    pub fn preprocess(&self) -> Preprocess {
        Preprocess {
            resize_shorter: None,
            normalization: self.config.data.normalization.values(),
        }
    }
}

/// How errors name a run's validation data.
pub fn validation_split(config: &FinetuneConfig) -> String {
    let data = (config.data.val_spec.as_deref())
        .or(config.data.spec.as_deref())
        .unwrap_or("the data");
    format!("{data}, split \"val\"")
}

/// Refuses a validation split whose masks hold no labelled pixel, before training: masks are
/// read until one has a label, normally the first (a bad mask is left to the evaluation,
/// which reports it or skips it as the recipe says).
pub fn require_labelled_split(source: &SegmentationSource, what: &str) -> anyhow::Result<()> {
    for index in 0..source.len() {
        if let Ok((_, _, _, labels)) = source.target(index) {
            if labels.labels.iter().any(|&v| (v as i64) < IGNORE) {
                return Ok(());
            }
        }
    }
    Err(NoLabelledPixels(format!(
        "{what}: no labelled pixel in the ground truth (every mask is unlabelled, or there is \
         no image), so the validation mIoU would be 0 whatever is learnt; fix the masks or the \
         split before training"
    ))
    .into())
}

/// pixAcc / mIoU of `model` on every batch of `batches`, with one host copy at the end.
pub fn evaluate_batches(
    model: &Fcn,
    batches: impl Iterator<Item = Result<SegmentationBatch, DataError>>,
    normalizer: &Normalizer,
    device: Device,
    channels_last: bool,
    autocast: Autocast,
) -> Result<Scores, DataError> {
    let _no_grad = tch::no_grad_guard();
    let mut confusion = ConfusionMatrix::new(model.config.num_classes, device);
    for batch in batches {
        let batch = DeviceBatch::upload(&batch?, device);
        let x = batch.input(normalizer, channels_last);
        let size = (x.size()[2], x.size()[3]);
        let logits = autocast.run(|| model.forward_to(&x, size, false, false).out);
        confusion.add(&logits.argmax(1, false), &batch.labels);
    }
    Ok(confusion.scores())
}

impl Learner for Segmentation {
    type Input = DeviceBatch;

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn losses(&mut self, input: &DeviceBatch, step: &Step) -> Losses {
        // The heads' dropout draws from libtorch's global generator, which a run's state does
        // not hold: seeding it from (seed, micro-batch) makes a resumed run draw the same masks.
        tch::manual_seed(dropout_seed(self.config.train.seed, step.micro_batch));
        let x = input.input(&self.normalizer, self.config.train.channels_last);
        weighted_losses(&self.model, &x, &input.labels, &self.config.model)
    }
}

impl Task for Segmentation {
    type Config = FinetuneConfig;
    type Batch = SegmentationBatch;

    const BEST_METRIC: &'static str = "mIoU";

    fn config(&self) -> &FinetuneConfig {
        &self.config
    }

    fn upload(&self, batch: &SegmentationBatch) -> DeviceBatch {
        DeviceBatch::upload(batch, self.vs.device())
    }

    fn evaluate(&mut self, autocast: Autocast) -> anyhow::Result<Metrics> {
        let _prepared = PreparedInference::new(&self.model);
        // A validation split (or eval crop) without a labelled pixel scores 0 for any model;
        // refusing it keeps a "best" from being picked by that 0.
        let scores = evaluate_batches(
            &self.model,
            self.val.epoch(0, 0),
            &self.normalizer,
            self.vs.device(),
            self.config.train.channels_last,
            autocast,
        )?
        .require_labelled(&validation_split(&self.config))?;
        Ok(Metrics::from([
            ("pixAcc".to_string(), scores.pix_acc),
            ("mIoU".to_string(), scores.miou),
            ("mIoU_all".to_string(), scores.miou_all),
        ]))
    }

    fn metadata(&self) -> Metadata {
        metadata(
            &self.fcn_config,
            &self.classes,
            &self.preprocess(),
            Some(serde_json::to_value(&self.config).expect("serialises")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Reduction;

    #[test]
    fn cross_entropy_ignores_unlabelled_pixels() {
        // Two pixels, two classes: the first labelled 0 with logits (0, 0) -> ln 2; the
        // second unlabelled with a huge wrong logit, which must not count.
        let logits = Tensor::from_slice(&[0.0f32, 50.0, 0.0, -50.0]).view([1, 2, 1, 2]);
        let labels = Tensor::from_slice(&[0u8, 255]).view([1, 1, 2]);
        let loss = upsampled_cross_entropy(&logits, &labels, false).double_value(&[]);
        assert!((loss - std::f64::consts::LN_2).abs() < 1e-6, "{loss}");
        let logits = logits.set_requires_grad(true);
        let all_ignored = Tensor::from_slice(&[255u8, 255]).view([1, 1, 2]);
        let loss = upsampled_cross_entropy(&logits, &all_ignored, false);
        assert_eq!(loss.double_value(&[]), 0.0);
        loss.backward();
        assert_eq!(logits.grad().abs().sum(Kind::Float).double_value(&[]), 0.0);
    }

    /// Groups average their own means: image 0 has one labelled pixel at ln 2, image 1 three
    /// at ln 2 and one confidently right (about 0): per image ln 2 and 3/4 ln 2, mean 7/8 ln 2,
    /// where the whole batch's mean is 4/5 ln 2.
    #[test]
    fn groups_average_their_own_labelled_means() {
        let mut values = vec![0.0f32; 2 * 2 * 4];
        values[2 * 4 + 4 + 3] = 40.0; // image 1, class 1, pixel 3
        let logits = Tensor::from_slice(&values).view([2, 2, 1, 4]);
        let labels = Tensor::from_slice(&[0u8, 255, 255, 255, 0, 1, 0, 1]).view([2, 1, 4]);
        let ln2 = std::f64::consts::LN_2;
        for (group, expected) in [
            (1, 7.0 / 8.0 * ln2),
            (0, 4.0 / 5.0 * ln2),
            (2, 4.0 / 5.0 * ln2),
        ] {
            let loss = grouped_cross_entropy(&logits, &labels, group, false).double_value(&[]);
            assert!(
                (loss - expected).abs() < 1e-6,
                "groups of {group}: {loss}, not {expected}"
            );
        }
    }

    /// A batch the groups do not divide (a skipped sample) ends with a smaller group instead
    /// of failing: images 0 and 1 as above (4/5 ln 2), then image 0 again alone (ln 2).
    #[test]
    fn a_partial_last_group_is_its_own_mean() {
        let mut values = vec![0.0f32; 3 * 2 * 4];
        values[2 * 4 + 4 + 3] = 40.0;
        let logits = Tensor::from_slice(&values).view([3, 2, 1, 4]);
        let labels =
            Tensor::from_slice(&[0u8, 255, 255, 255, 0, 1, 0, 1, 0, 255, 255, 255]).view([3, 1, 4]);
        let loss = grouped_cross_entropy(&logits, &labels, 2, false).double_value(&[]);
        let expected = 0.9 * std::f64::consts::LN_2;
        assert!((loss - expected).abs() < 1e-6, "{loss}, not {expected}");
    }

    /// The hand-formed gradient must be autograd's through torchvision's formula (bilinear
    /// upsampling, then cross-entropy with ignore_index), for strided and channels-last
    /// logits, at an output size that is no multiple of the input's, with corners aligned
    /// (GluonCV's upsampling) or not (torchvision's).
    #[test]
    fn cross_entropy_and_gradient_are_autograds_through_the_upsampling() {
        tch::manual_seed(3);
        let logits = Tensor::randn([2, 5, 6, 7], (Kind::Float, Device::Cpu)) * 3.0;
        let labels =
            Tensor::randint(5, [2, 45, 38], (Kind::Int64, Device::Cpu)).to_kind(Kind::Uint8);
        let _ = labels.narrow(1, 0, 10).fill_(IGNORE);
        let labelled = labels.ne(IGNORE).sum(Kind::Float);
        let mut losses = Vec::new();
        for align_corners in [false, true] {
            let reference = logits.copy().set_requires_grad(true);
            let expected = reference
                .upsample_bilinear2d([45, 38], align_corners, None, None)
                .cross_entropy_loss::<Tensor>(
                    &labels.to_kind(Kind::Int64),
                    None,
                    Reduction::Sum,
                    IGNORE,
                    0.0,
                )
                / labelled.shallow_clone();
            expected.backward();
            for input in [logits.copy(), tensor_to_channels_last(&logits)] {
                let input = input.set_requires_grad(true);
                let loss = upsampled_cross_entropy(&input, &labels, align_corners);
                let error = (loss.double_value(&[]) - expected.double_value(&[])).abs();
                assert!(
                    error < 1e-5,
                    "align_corners {align_corners}: loss off by {error}"
                );
                loss.backward();
                let error = (input.grad() - reference.grad())
                    .abs()
                    .max()
                    .double_value(&[]);
                let scale = reference.grad().abs().max().double_value(&[]);
                assert!(
                    error < 1e-5 * scale,
                    "align_corners {align_corners}: gradient off by {error} of {scale}"
                );
            }
            losses.push(expected.double_value(&[]));
        }
        // The two upsamplings differ, so the option is not silently ignored.
        assert!((losses[0] - losses[1]).abs() > 1e-4, "{losses:?}");
    }
}
