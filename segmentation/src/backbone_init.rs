//! Starting an FCN from a classification checkpoint: the ResNet's tensors are copied by name
//! into `backbone.*` (the classifier's `fc.*` is dropped), the body re-strided with dilation.

use backbones::checkpoint::{load_into, Checkpoint, CheckpointError, NamedTensors, TaskKind};
use backbones::classifier::ClassifierSpec;
use backbones::{ResNet, ResNetConfig};
use std::path::Path;
use tch::{nn, Device};

/// What a classification checkpoint gives an FCN: its body's config (without fc) and its
/// tensors under the FCN's names.
pub struct PretrainedBackbone {
    pub config: ResNetConfig,
    /// `backbone.<name>` for every ResNet tensor but `fc.*`.
    pub tensors: NamedTensors,
}

/// Reads `path`, which must be a classification checkpoint of this project (`backbone train`,
/// `backbone import`, `backbone init`); a detection or segmentation checkpoint is refused
/// with a sentence saying what to pass instead.
pub fn read_pretrained(path: &Path) -> Result<PretrainedBackbone, CheckpointError> {
    let ckpt = Checkpoint::read(path)?;
    if ckpt.metadata.task != TaskKind::Classification {
        return Err(CheckpointError::content(
            path,
            format!(
                "is a {} checkpoint ({}), not a classification one: an FCN starts from the ImageNet (or Fashion) classifier a backbone was trained as",
                format!("{:?}", ckpt.metadata.task).to_lowercase(),
                ckpt.metadata.arch
            ),
        ));
    }
    let spec = ClassifierSpec::of(&ckpt, path)?;
    let config = ResNetConfig {
        num_classes: None,
        output_stride: 32,
        ..spec.config
    };
    let tensors: NamedTensors = ckpt
        .tensors
        .into_iter()
        .filter(|(name, _)| !name.starts_with("fc."))
        .collect();
    // The names and shapes are checked against the body the checkpoint says it holds, so a
    // mismatch is reported once, in the backbone's own names.
    let vs = nn::VarStore::new(Device::Cpu);
    let _body = ResNet::new(&vs.root(), &config);
    load_into(
        &vs,
        &tensors,
        path,
        &format!("{} without fc", ckpt.metadata.arch),
    )?;
    Ok(PretrainedBackbone {
        config,
        tensors: tensors
            .into_iter()
            .map(|(name, t)| (format!("backbone.{name}"), t))
            .collect(),
    })
}

/// Copies `pretrained` into the `backbone.*` variables of `vs` (the heads keep their fresh
/// initialisation). The names must match exactly: the FCN was built from `pretrained.config`.
pub fn copy_backbone(vs: &nn::VarStore, pretrained: &PretrainedBackbone) {
    let vars = vs.variables();
    tch::no_grad(|| {
        for (name, var) in vars.iter().filter(|(n, _)| n.starts_with("backbone.")) {
            let source = pretrained
                .tensors
                .get(name)
                .unwrap_or_else(|| panic!("{name} was checked to exist"));
            var.shallow_clone().copy_(source);
        }
    });
}
