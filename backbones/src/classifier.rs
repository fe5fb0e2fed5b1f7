//! An image classifier ready to use: a ResNet, its weights, its class names and the transform
//! its inputs need, as a checkpoint describes them.

use crate::checkpoint::{load_into, Checkpoint, CheckpointError, Task};
use crate::resnet::{ResNet, ResNetConfig};
use datasets::classify::{EvalTransform, Normalization};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// The transform of a checkpoint that does not say otherwise (torchvision's ImageNet one).
pub fn default_transform() -> EvalTransform {
    EvalTransform::imagenet()
}

pub struct Classifier {
    pub vs: nn::VarStore,
    pub model: ResNet,
    pub classes: Vec<String>,
    pub transform: EvalTransform,
}

impl Classifier {
    pub fn from_checkpoint(path: &Path, device: Device) -> Result<Self, CheckpointError> {
        let ckpt = Checkpoint::read(path)?;
        ckpt.expect_task(Task::Classification, path)?;
        let meta = &ckpt.metadata;
        let config: ResNetConfig = serde_json::from_value(meta.model.clone()).map_err(|e| {
            CheckpointError::content(path, format!("bad model config in metadata ({e})"))
        })?;
        let transform = match &meta.transform {
            Some(t) => serde_json::from_value(t.clone()).map_err(|e| {
                CheckpointError::content(path, format!("bad input transform in metadata ({e})"))
            })?,
            None => default_transform(),
        };
        let vs = nn::VarStore::new(device);
        let model = ResNet::new(&vs.root(), &config);
        load_into(&vs, &ckpt.tensors, path, &meta.arch)?;
        Ok(Classifier {
            vs,
            model,
            classes: meta.classes.clone(),
            transform,
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
