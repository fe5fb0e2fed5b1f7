//! A segmentation checkpoint turned into a ready model: the FCN, its class names and how its
//! inputs are prepared, every metadata field checked before anything is built.

use crate::budget::{self, activation_bytes, OverBudget};
use crate::fcn::{Fcn, FcnConfig};
use backbones::classifier::Normalizer;
use backbones::layers::ConvNormPairs;
use datasets::classify::Normalization;
use datasets::resize::{resize_bilinear, shorter_side_size};
use engine::checkpoint::{
    check_finite_weights, load_into, Checkpoint, CheckpointError, Metadata, NamedTensors, TaskKind,
};
use engine::TaskSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

/// How an image becomes the model's input.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Resize the shorter side to this (Pillow bilinear) before the model; `None` runs the
    /// image at its own size. The logits always come back at the image's own size.
    pub resize_shorter: Option<usize>,
    pub normalization: Normalization,
}

impl Preprocess {
    /// torchvision's segmentation preprocessing (`SemanticSegmentation(resize_size=520)`).
    pub const TORCHVISION: Preprocess = Preprocess {
        resize_shorter: Some(520),
        normalization: Normalization::IMAGENET,
    };

    pub fn validate(&self) -> Result<(), String> {
        if let Some(side) = self.resize_shorter {
            engine::limits::check("resize_shorter", side, &engine::limits::RESIZE_SIDE)?;
        }
        let n = &self.normalization;
        if !n.mean.iter().all(|m| m.is_finite()) {
            return Err(format!("mean {:?} must be finite", n.mean));
        }
        if !n.std.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err(format!("std {:?} must be finite and above 0", n.std));
        }
        Ok(())
    }
}

/// The checkpoint's `arch` for an FCN over `backbone` (torchvision's model names).
pub fn fcn_arch_name(backbone: &backbones::Arch) -> String {
    format!("fcn_{backbone}")
}

/// The metadata of a segmentation checkpoint.
pub fn metadata(
    config: &FcnConfig,
    classes: &[String],
    preprocess: &Preprocess,
    train_config: Option<serde_json::Value>,
) -> Metadata {
    Metadata {
        task: TaskKind::Segmentation,
        arch: fcn_arch_name(&config.backbone.arch),
        num_classes: config.num_classes,
        classes: classes.to_vec(),
        model: serde_json::to_value(config).expect("serialises"),
        transform: Some(serde_json::to_value(preprocess).expect("serialises")),
        config: train_config,
        epoch: None,
        iter: None,
        metrics: None,
    }
}

pub struct Segmenter {
    pub vs: nn::VarStore,
    pub model: Fcn,
    pub classes: Vec<String>,
    pub preprocess: Preprocess,
    /// The checkpoint it came from, for messages.
    pub path: PathBuf,
    normalizer: Normalizer,
}

/// What a segmentation checkpoint says, checked: the model config is valid and agrees with
/// `arch` and the class list, the transform is sane, the tensors are finite floats.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmenterSpec {
    pub config: FcnConfig,
    pub preprocess: Preprocess,
}

impl TaskSpec for SegmenterSpec {
    const TASK: TaskKind = TaskKind::Segmentation;

    fn of(ckpt: &Checkpoint, path: &Path) -> Result<Self, CheckpointError> {
        spec_of(ckpt, path).map(|(config, preprocess)| SegmenterSpec { config, preprocess })
    }
}

fn spec_of(ckpt: &Checkpoint, path: &Path) -> Result<(FcnConfig, Preprocess), CheckpointError> {
    let meta = &ckpt.metadata;
    let bad = |field: &str, message: String| CheckpointError::field(path, field, message);
    let config: FcnConfig = meta.model_as(path, "an FCN config")?;
    config.validate().map_err(|e| bad("model", e))?;
    let arch = fcn_arch_name(&config.backbone.arch);
    meta.check_model_agrees(
        path,
        arch == meta.arch,
        &format!("an {arch}"),
        Some(config.num_classes),
        &format!("{} classes", config.num_classes),
    )?;
    let preprocess: Preprocess = meta.transform_as(
        path,
        "a segmentation transform",
        Some(Preprocess::TORCHVISION),
    )?;
    preprocess.validate().map_err(|e| bad("transform", e))?;
    if let Some(side) = preprocess.resize_shorter {
        // Every image is resized to at least side x side: what that costs is the
        // checkpoint's doing, so it is bounded here, not per image.
        let bytes = activation_bytes(&config, (side * side) as u64);
        if bytes > budget::CHECKPOINT_TRANSFORM_BYTES {
            return Err(bad(
                "transform",
                format!(
                    "resize_shorter {side} makes every model input at least {side}x{side}, \
                     about {} of activations for {}; a checkpoint's transform may ask for at \
                     most {}",
                    budget::gb(bytes),
                    meta.arch,
                    budget::gb(budget::CHECKPOINT_TRANSFORM_BYTES)
                ),
            ));
        }
    }
    check_finite_weights(&ckpt.tensors, path, "an FCN's")?;
    Ok((config, preprocess))
}

impl Segmenter {
    pub fn from_checkpoint(path: &Path, device: Device) -> Result<Self, CheckpointError> {
        let (ckpt, SegmenterSpec { config, preprocess }) =
            Checkpoint::read_as::<SegmenterSpec>(path)?;
        Self::build(
            config,
            ckpt.metadata.classes,
            preprocess,
            &ckpt.tensors,
            path,
            device,
        )
    }

    /// The model of `config` with `tensors` loaded (all of them, exactly).
    pub fn build(
        config: FcnConfig,
        classes: Vec<String>,
        preprocess: Preprocess,
        tensors: &NamedTensors,
        path: &Path,
        device: Device,
    ) -> Result<Self, CheckpointError> {
        let vs = nn::VarStore::new(device);
        let model = Fcn::new(&vs.root(), &config);
        load_into(&vs, tensors, path, &fcn_arch_name(&config.backbone.arch))?;
        // A segmenter opened from a checkpoint only predicts: its folded weights (and their
        // Winograd transforms, at first use) are made once.
        model.prepare_inference();
        Ok(Segmenter {
            normalizer: Normalizer::new(&preprocess.normalization, device),
            vs,
            model,
            classes,
            preprocess,
            path: path.to_path_buf(),
        })
    }

    /// The size the model runs an image of `width` x `height` at.
    pub fn input_size(&self, width: usize, height: usize) -> (usize, usize) {
        match self.preprocess.resize_shorter {
            Some(side) => shorter_side_size(width, height, side),
            None => (width, height),
        }
    }

    /// Refuses an image whose model input would exceed the pixel limit (a 1 x 60000 image
    /// with its shorter side resized to 520 would be 31 million pixels long) or the memory
    /// budget of one image's activations (a 4000 x 4000 photo run at its own size).
    pub fn check_input(&self, image: &Path, width: usize, height: usize) -> anyhow::Result<()> {
        let (w, h) = self.input_size(width, height);
        datasets::limits::check_pixel_count(image, "resized model input", w as u64, h as u64)?;
        let limit = budget::max_inference_bytes().map_err(OverBudget)?;
        let bytes = activation_bytes(&self.model.config, (w * h) as u64);
        if bytes > limit {
            return Err(OverBudget(format!(
                "{}: the model input would be {w}x{h}, about {} of activations for {}, more \
                 than the limit of {} (set {} to a number of MiB to raise it)",
                image.display(),
                budget::gb(bytes),
                fcn_arch_name(&self.model.config.backbone.arch),
                budget::gb(limit),
                budget::MAX_INFERENCE_MIB_VAR
            ))
            .into());
        }
        Ok(())
    }

    /// The model's input for one RGB image (HWC u8): resized as the preprocessing says,
    /// normalised, 1 x 3 x h x w on the model's device.
    pub fn input(&self, pixels: &[u8], width: usize, height: usize) -> Tensor {
        let (w, h) = self.input_size(width, height);
        let pixels = if (w, h) == (width, height) {
            pixels.to_vec()
        } else {
            resize_bilinear(pixels, width, height, 3, w, h)
        };
        let x = Tensor::from_slice(&pixels)
            .view([1, h as i64, w as i64, 3])
            .to_device(self.vs.device());
        self.normalizer.apply(&x, None)
    }

    /// Logits of one image at the model's output size (the input's over the output stride):
    /// 1 x K x h x w (float). [`crate::banded::argmax_upsampled`] brings their argmax to the
    /// image's size without a full-size float tensor.
    pub fn low_logits(&self, pixels: &[u8], width: usize, height: usize) -> Tensor {
        let _no_grad = tch::no_grad_guard();
        let x = self.input(pixels, width, height);
        self.model
            .head_logits(&x, false, false)
            .out
            .to_kind(Kind::Float)
    }

    /// The classes of one image, band by band at the image's size (see
    /// [`crate::banded::argmax_upsampled`]); an error naming the checkpoint and `image` when
    /// the model's outputs are not finite (weights that are finite but overflow, such as
    /// 3e38, would otherwise make every pixel class 0). One reduction and one host read per
    /// image.
    pub fn classes(
        &self,
        image: &str,
        pixels: &[u8],
        width: usize,
        height: usize,
        visit: impl FnMut(i64, Tensor),
    ) -> Result<(), CheckpointError> {
        let _no_grad = tch::no_grad_guard();
        let logits = self.low_logits(pixels, width, height);
        self.check_finite(&logits.isfinite().all(), image)?;
        // Channels-last, as `Fcn::forward_to` upsamples at inference.
        crate::banded::argmax_upsampled(
            &[engine::channels_last::tensor_to_channels_last(&logits)],
            (height as i64, width as i64),
            self.model.config.align_corners,
            visit,
        );
        Ok(())
    }

    /// Refuses the model's outputs on `image` unless `all_finite` (a boolean scalar on the
    /// device: `isfinite().all()` of every output) is true.
    pub fn check_finite(&self, all_finite: &Tensor, image: &str) -> Result<(), CheckpointError> {
        if bool::try_from(all_finite).unwrap_or(false) {
            return Ok(());
        }
        Err(CheckpointError::content(
            &self.path,
            format!(
                "the model's outputs on {image} are NaN or infinite: its weights are finite but \
                 overflow in the forward pass, so its predictions would be meaningless"
            ),
        ))
    }

    /// Logits of one image at the image's own size: 1 x K x height x width (float); for
    /// small images and tests (a photo's full-size logits can take gigabytes).
    pub fn logits(&self, pixels: &[u8], width: usize, height: usize) -> Tensor {
        let _no_grad = tch::no_grad_guard();
        let x = self.input(pixels, width, height);
        self.model
            .forward_to(&x, (height as i64, width as i64), false, false)
            .out
            .to_kind(Kind::Float)
    }

    pub fn normalizer(&self) -> &Normalizer {
        &self.normalizer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resized_input_gives_logits_at_the_images_own_size() {
        let config = FcnConfig::new("resnet18".parse().unwrap(), 8, 3, false);
        let vs = nn::VarStore::new(Device::Cpu);
        let _model = Fcn::new(&vs.root(), &config);
        let tensors = engine::checkpoint::var_store_tensors(&vs);
        let preprocess = Preprocess {
            resize_shorter: Some(64),
            normalization: Normalization::IMAGENET,
        };
        let classes = vec!["a".to_string(), "b".into(), "c".into()];
        let model = Segmenter::build(
            config,
            classes,
            preprocess,
            &tensors,
            Path::new("x"),
            Device::Cpu,
        )
        .unwrap();
        let pixels = vec![128u8; 100 * 50 * 3];
        assert_eq!(model.input_size(100, 50), (128, 64));
        assert_eq!(model.input(&pixels, 100, 50).size(), [1, 3, 64, 128]);
        assert_eq!(model.logits(&pixels, 100, 50).size(), [1, 3, 50, 100]);
        // Past the pixel limit the resized input is refused, naming the image.
        let err = model
            .check_input(Path::new("thin.png"), 1, 70_000)
            .unwrap_err();
        assert!(err.to_string().contains("thin.png"), "{err}");
    }
}
