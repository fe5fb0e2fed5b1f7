//! A segmentation checkpoint turned into a ready model: the FCN, its class names and how its
//! inputs are prepared, every metadata field checked before anything is built.

use crate::fcn::{Fcn, FcnConfig};
use backbones::checkpoint::{
    first_non_finite, load_into, Checkpoint, CheckpointError, Metadata, NamedTensors, Task,
};
use backbones::classifier::Normalizer;
use datasets::classify::Normalization;
use datasets::resize::{resize_bilinear, shorter_side_size};
use serde::{Deserialize, Serialize};
use std::path::Path;
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
            backbones::limits::check("resize_shorter", side, &backbones::limits::RESIZE_SIDE)?;
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
        task: Task::Segmentation,
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
    normalizer: Normalizer,
}

/// What a segmentation checkpoint says, checked: the model config is valid and agrees with
/// `arch` and the class list, the transform is sane, the tensors are finite floats.
pub fn spec_of(ckpt: &Checkpoint, path: &Path) -> Result<(FcnConfig, Preprocess), CheckpointError> {
    let meta = &ckpt.metadata;
    let bad = |field: &str, message: String| CheckpointError::field(path, field, message);
    let config: FcnConfig = serde_json::from_value(meta.model.clone())
        .map_err(|e| bad("model", format!("not an FCN config ({e})")))?;
    config.validate().map_err(|e| bad("model", e))?;
    if meta.arch != fcn_arch_name(&config.backbone.arch) {
        return Err(bad(
            "model",
            format!(
                "describes an {} but arch says {}",
                fcn_arch_name(&config.backbone.arch),
                meta.arch
            ),
        ));
    }
    if config.num_classes != meta.num_classes {
        return Err(bad(
            "model",
            format!(
                "has {} classes but num_classes is {}",
                config.num_classes, meta.num_classes
            ),
        ));
    }
    let preprocess: Preprocess = match &meta.transform {
        Some(t) => serde_json::from_value(t.clone())
            .map_err(|e| bad("transform", format!("not a segmentation transform ({e})")))?,
        None => Preprocess::TORCHVISION,
    };
    preprocess.validate().map_err(|e| bad("transform", e))?;
    if let Some((name, t)) = ckpt.tensors.iter().find(|(_, t)| !t.is_floating_point()) {
        return Err(CheckpointError::content(
            path,
            format!(
                "tensor {name} holds {:?} values; an FCN's tensors are floating point",
                t.kind()
            ),
        ));
    }
    if let Some(name) = first_non_finite(&ckpt.tensors) {
        return Err(CheckpointError::content(
            path,
            format!("tensor {name} holds NaN or infinite values"),
        ));
    }
    Ok((config, preprocess))
}

impl Segmenter {
    pub fn from_checkpoint(path: &Path, device: Device) -> Result<Self, CheckpointError> {
        let ckpt = Checkpoint::read(path)?;
        ckpt.expect_task(Task::Segmentation, path)?;
        let (config, preprocess) = spec_of(&ckpt, path)?;
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
        Ok(Segmenter {
            normalizer: Normalizer::new(&preprocess.normalization, device),
            vs,
            model,
            classes,
            preprocess,
        })
    }

    /// The size the model runs an image of `width` x `height` at.
    pub fn input_size(&self, width: usize, height: usize) -> (usize, usize) {
        match self.preprocess.resize_shorter {
            Some(side) => shorter_side_size(width, height, side),
            None => (width, height),
        }
    }

    /// Refuses an image whose resized input would exceed the pixel limit (a 1 x 60000 image
    /// with its shorter side resized to 520 would be 31 million pixels long).
    pub fn check_input(&self, image: &Path, width: usize, height: usize) -> datasets::Result<()> {
        let (w, h) = self.input_size(width, height);
        datasets::limits::check_pixel_count(image, "resized model input", w as u64, h as u64)
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

    /// Logits of one image at the image's own size: 1 x K x height x width (float).
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
        let tensors = backbones::checkpoint::var_store_tensors(&vs);
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
