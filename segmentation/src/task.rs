//! FCN fine-tuning as a task of the training engine: per-pixel cross-entropy that ignores
//! unlabelled pixels, plus the weighted auxiliary loss; pixAcc and mIoU on the validation
//! split (mIoU picks `best`).

use crate::config::FinetuneConfig;
use crate::fcn::{Fcn, FcnConfig};
use crate::metric::{ConfusionMatrix, Scores, IGNORE};
use crate::segmenter::{metadata, Preprocess};
use backbones::channels_last::tensor_to_channels_last;
use backbones::checkpoint::Metadata;
use backbones::classifier::Normalizer;
use backbones::engine::task::{Losses, Metrics, Step, Task};
use backbones::engine::transfer::upload;
use datasets::loader::Loader;
use datasets::segmentation_data::{SegmentationCollate, SegmentationDataset};
use datasets::segmentation_transforms::SegmentationBatch;
use datasets::DataError;
use tch::{nn, Device, Kind, Reduction, Tensor};

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
    let mut z = seed ^ micro_batch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x4452_4F50_0000_0000;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}

/// Mean cross-entropy over the labelled pixels (IGNORE left out). A batch without a single
/// labelled pixel gives 0, not NaN, so a crop of pure padding cannot stop a run.
pub fn pixel_cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    let target = labels.to_kind(Kind::Int64);
    let labelled = target.ne(IGNORE).sum(Kind::Float).clamp_min(1.0);
    let logits = logits.to_kind(Kind::Float);
    let total = if is_channels_last(&logits) {
        // Channels-last logits are already one row of classes per pixel: libtorch's NCHW
        // cross-entropy would stride across them, while a row-wise log-softmax runs
        // vectorised (forward and backward of both losses at crop 480 on CPU: about half the
        // time).
        let classes = logits.size()[1];
        logits
            .permute([0, 2, 3, 1])
            .reshape([-1, classes])
            .log_softmax(-1, None)
            .g_nll_loss::<Tensor>(&target.reshape([-1]), None, Reduction::Sum, IGNORE)
    } else {
        logits.cross_entropy_loss::<Tensor>(&target, None, Reduction::Sum, IGNORE, 0.0)
    };
    total / labelled
}

/// Whether a 4-D tensor has NHWC strides (its classes adjacent in memory).
fn is_channels_last(t: &Tensor) -> bool {
    t.dim() == 4 && t.size()[1] > 1 && t.stride()[1] == 1
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

/// pixAcc / mIoU of `model` on every batch of `batches`, with one host copy at the end.
pub fn evaluate_batches(
    model: &Fcn,
    batches: impl Iterator<Item = Result<SegmentationBatch, DataError>>,
    normalizer: &Normalizer,
    device: Device,
    channels_last: bool,
    amp: bool,
) -> Result<Scores, DataError> {
    let _no_grad = tch::no_grad_guard();
    let mut confusion = ConfusionMatrix::new(model.config.num_classes, device);
    for batch in batches {
        let batch = DeviceBatch::upload(&batch?, device);
        let x = batch.input(normalizer, channels_last);
        let size = (x.size()[2], x.size()[3]);
        let forward = || model.forward_to(&x, size, false, false).out;
        let logits = if amp {
            tch::autocast(true, forward)
        } else {
            forward()
        };
        confusion.add(&logits.argmax(1, false), &batch.labels);
    }
    Ok(confusion.scores())
}

impl Task for Segmentation {
    type Config = FinetuneConfig;
    type Batch = SegmentationBatch;
    type Input = DeviceBatch;

    const BEST_METRIC: &'static str = "mIoU";

    fn config(&self) -> &FinetuneConfig {
        &self.config
    }

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn upload(&self, batch: &SegmentationBatch) -> DeviceBatch {
        DeviceBatch::upload(batch, self.vs.device())
    }

    fn losses(&mut self, input: &DeviceBatch, step: &Step) -> Losses {
        // The heads' dropout draws from libtorch's global generator, which a run's state does
        // not hold: seeding it from (seed, micro-batch) makes a resumed run draw the same masks.
        tch::manual_seed(dropout_seed(self.config.train.seed, step.micro_batch));
        let x = input.input(&self.normalizer, self.config.train.channels_last);
        let out = self.model.forward_t(&x, true);
        let mut losses = Losses::from([(
            "loss_seg".to_string(),
            pixel_cross_entropy(&out.out, &input.labels),
        )]);
        if let Some(aux) = &out.aux {
            losses.insert(
                "loss_aux".to_string(),
                pixel_cross_entropy(aux, &input.labels) * self.config.model.aux_weight,
            );
        }
        losses
    }

    fn evaluate(&mut self, amp: bool) -> anyhow::Result<Metrics> {
        let scores = evaluate_batches(
            &self.model,
            self.val.epoch(0, 0),
            &self.normalizer,
            self.vs.device(),
            self.config.train.channels_last,
            amp,
        )?;
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

    #[test]
    fn cross_entropy_ignores_unlabelled_pixels() {
        // Two pixels, two classes: the first labelled 0 with logits (0, 0) -> ln 2; the
        // second unlabelled with a huge wrong logit, which must not count.
        let logits = Tensor::from_slice(&[0.0f32, 50.0, 0.0, -50.0]).view([1, 2, 1, 2]);
        let labels = Tensor::from_slice(&[0u8, 255]).view([1, 1, 2]);
        let loss = pixel_cross_entropy(&logits, &labels).double_value(&[]);
        assert!((loss - std::f64::consts::LN_2).abs() < 1e-6, "{loss}");
        let all_ignored = Tensor::from_slice(&[255u8, 255]).view([1, 1, 2]);
        assert_eq!(
            pixel_cross_entropy(&logits, &all_ignored).double_value(&[]),
            0.0
        );
    }

    #[test]
    fn cross_entropy_is_the_same_on_channels_last_logits() {
        // The NHWC path must give libtorch's NCHW cross-entropy and its gradient, ignored
        // pixels included.
        tch::manual_seed(3);
        let logits = Tensor::randn([2, 5, 6, 7], (Kind::Float, tch::Device::Cpu));
        let labels =
            Tensor::randint(5, [2, 6, 7], (Kind::Int64, tch::Device::Cpu)).to_kind(Kind::Uint8);
        let _ = labels.narrow(2, 0, 3).fill_(IGNORE);
        let strided = logits.copy().set_requires_grad(true);
        let nhwc = tensor_to_channels_last(&logits).set_requires_grad(true);
        assert!(is_channels_last(&nhwc) && !is_channels_last(&strided));
        let (a, b) = (
            pixel_cross_entropy(&strided, &labels),
            pixel_cross_entropy(&nhwc, &labels),
        );
        assert!((a.double_value(&[]) - b.double_value(&[])).abs() < 1e-6);
        a.backward();
        b.backward();
        let diff = (strided.grad() - nhwc.grad()).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "{diff}");
    }
}
