//! An image classifier ready to use: a ResNet, a MobileNet or an Inception-V3, its weights,
//! its class names and the transform its inputs need, as a checkpoint describes them.

use crate::arch::{article, ClassifierArch};
use crate::layers::ConvNormPairs;
use crate::network::{ClassifierConfig, ClassifierNet};
use datasets::classify::{EvalTransform, Normalization};
use engine::checkpoint::{
    check_finite_weights, load_into, Checkpoint, CheckpointError, TaskKind, TaskSpec,
};
use engine::limits;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// The transform of a checkpoint that does not say otherwise (torchvision's ImageNet one).
pub fn default_transform() -> EvalTransform {
    EvalTransform::imagenet()
}

/// Inception's statistics: pixels scaled to [-1, 1]. torchvision's `inception_v3` weights
/// expect them (its `transform_input` turns ImageNet-normalised inputs into these), and timm's
/// `inception_v3` configs name them.
pub const INCEPTION_NORMALIZATION: Normalization = Normalization {
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
};

/// The transform of an imported `arch` checkpoint, or one that does not say: torchvision's
/// evaluation of its ImageNet weights. For Inception-V3 that is shorter side 342, centre crop
/// 299 and [`INCEPTION_NORMALIZATION`]; for the others [`default_transform`].
pub fn arch_transform(arch: ClassifierArch) -> EvalTransform {
    match arch {
        ClassifierArch::InceptionV3 => EvalTransform {
            resize: 342,
            crop: 299,
            normalization: INCEPTION_NORMALIZATION,
        },
        _ => default_transform(),
    }
}

pub struct Classifier {
    pub vs: nn::VarStore,
    pub model: ClassifierNet,
    pub classes: Vec<String>,
    pub transform: EvalTransform,
}

/// What a classification checkpoint says about its model, every field checked: the model
/// config is valid and agrees with `arch` and the class list, the head (`fc.weight`, a
/// MobileNet's `classifier.weight`) has one row per class, the tensors are floating point,
/// and the transform's sizes and statistics are within bounds (its crop no smaller than the
/// network takes).
#[derive(Clone, Debug, PartialEq)]
pub struct ClassifierSpec {
    pub config: ClassifierConfig,
    pub transform: EvalTransform,
}

impl TaskSpec for ClassifierSpec {
    const TASK: TaskKind = TaskKind::Classification;

    fn of(ckpt: &Checkpoint, path: &Path) -> Result<Self, CheckpointError> {
        let meta = &ckpt.metadata;
        let bad = |field: &str, message: String| CheckpointError::field(path, field, message);
        let arch: ClassifierArch = meta.arch.parse().map_err(|e| bad("arch", format!("{e}")))?;
        let config = ClassifierConfig::from_json(arch, &meta.model).map_err(|e| {
            let a = article(&meta.arch);
            bad("model", format!("not {a} {arch} config ({e})"))
        })?;
        config.validate().map_err(|e| bad("model", e))?;
        let head = match config.num_classes() {
            Some(k) => format!("a head of {k} classes"),
            None => "a head of no classes".to_string(),
        };
        meta.check_model_agrees(
            path,
            config.arch() == arch,
            &format!("{} {}", article(&config.arch().to_string()), config.arch()),
            config.num_classes(),
            &head,
        )?;
        let transform =
            meta.transform_as(path, "an input transform", Some(arch_transform(arch)))?;
        validate_transform(&transform).map_err(|e| bad("transform", e))?;
        arch.check_input_size(transform.crop as i64)
            .map_err(|e| bad("transform", format!("crop {}: {e}", transform.crop)))?;
        check_finite_weights(&ckpt.tensors, path, "a classifier's")?;
        let head_weight = arch.head_weight();
        let head = ckpt.tensors.get(head_weight).map(|w| w.size());
        match head.as_deref() {
            Some([rows, _]) if *rows == meta.num_classes => {}
            Some(shape) => {
                return Err(bad(
                    "num_classes",
                    format!(
                        "is {} but the head {head_weight} has shape {shape:?}",
                        meta.num_classes
                    ),
                ))
            }
            None => {
                return Err(CheckpointError::content(
                    path,
                    format!(
                        "has no {head_weight}: not {} {arch} classifier",
                        article(&meta.arch)
                    ),
                ))
            }
        }
        Ok(ClassifierSpec { config, transform })
    }
}

/// Sizes within [`limits`], a crop no larger than the resize, finite means and positive
/// finite standard deviations.
pub fn validate_transform(t: &EvalTransform) -> Result<(), String> {
    limits::check("resize", t.resize, &limits::RESIZE_SIDE)?;
    limits::check("crop", t.crop, &limits::INPUT_SIDE)?;
    if t.crop > t.resize {
        return Err(format!(
            "crop {} is larger than the resize {} it is cut from",
            t.crop, t.resize
        ));
    }
    let n = &t.normalization;
    if !n.mean.iter().all(|m| m.is_finite()) {
        return Err(format!("mean {:?} must be finite", n.mean));
    }
    if !n.std.iter().all(|s| s.is_finite() && *s > 0.0) {
        return Err(format!("std {:?} must be finite and above 0", n.std));
    }
    Ok(())
}

impl Classifier {
    pub fn from_checkpoint(path: &Path, device: Device) -> Result<Self, CheckpointError> {
        let (ckpt, spec) = Checkpoint::read_as::<ClassifierSpec>(path)?;
        let vs = nn::VarStore::new(device);
        let model = ClassifierNet::new(&vs.root(), &spec.config);
        load_into(&vs, &ckpt.tensors, path, &ckpt.metadata.arch)?;
        // A classifier only predicts (or teaches): its folded weights are made once.
        model.prepare_inference();
        Ok(Classifier {
            vs,
            model,
            classes: ckpt.metadata.classes,
            transform: spec.transform,
        })
    }

    /// Class probabilities for a batch of images already transformed (N x H x W x 3, u8).
    pub fn probabilities(&self, images: &Tensor) -> Tensor {
        let _no_grad = tch::no_grad_guard();
        let device = self.vs.device();
        let normalizer = Normalizer::new(&self.transform.normalization, device);
        let x = normalizer.apply(&images.to_device(device), None);
        nn::ModuleT::forward_t(&self.model, &x, false).softmax(-1, Kind::Float)
    }
}

/// Turns batches of 8-bit HWC images (N x H x W x 3) into the model's input on one device:
/// float NCHW, `(pixel / 255 - mean) / std`. The mean and std are put on the device once, so a
/// training step copies nothing to it but its pixels (and lighting offsets).
pub struct Normalizer {
    mean: Tensor,
    std: Tensor,
}

impl Normalizer {
    pub fn new(norm: &Normalization, device: Device) -> Self {
        let on_device = |v: &[f32; 3]| Tensor::from_slice(v).to_device(device).view([1, 3, 1, 1]);
        Normalizer {
            mean: on_device(&norm.mean),
            std: on_device(&norm.std),
        }
    }

    /// `images` must be on the normalizer's device. `lighting`, when given, is a per-image RGB
    /// offset on the 0-255 scale (the paper's PCA lighting noise, N x 3) added before
    /// normalising.
    pub fn apply(&self, images: &Tensor, lighting: Option<&Tensor>) -> Tensor {
        let mut x = images.permute([0, 3, 1, 2]).to_kind(Kind::Float);
        if let Some(offsets) = lighting {
            x += offsets.to_device(images.device()).view([-1, 3, 1, 1]);
        }
        (x / 255.0 - &self.mean) / &self.std
    }
}
