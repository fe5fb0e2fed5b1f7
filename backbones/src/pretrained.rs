//! A classifier's body, read to start a detector or an FCN from: the file must be a
//! classification checkpoint (every field checked as for any classifier), its `fc` is left
//! out, what remains must fit the ResNet it says it is, and it is copied by name under the
//! prefix where the new model keeps its body (`backbone.body.` in Faster R-CNN, `backbone.` in
//! an FCN).

use crate::classifier::ClassifierSpec;
use crate::network::ClassifierConfig;
use crate::resnet::{ResNet, ResNetConfig};
use engine::checkpoint::{
    load_into, name_mismatch, Checkpoint, CheckpointError, NamedTensors, TaskKind,
};
use engine::command::{RunArgs, RunRequest};
use engine::TaskSpec;
use std::path::{Path, PathBuf};
use tch::{nn, Device};

/// The body of a classification checkpoint.
#[derive(Debug)]
pub struct PretrainedBody {
    /// The classifier's architecture name, as its checkpoint gives it.
    pub arch: String,
    /// The body as it was trained: the classifier's config without its head, at stride 32.
    pub config: ResNetConfig,
    /// Every tensor of the classifier but `fc.*`, under the ResNet's own names.
    pub tensors: NamedTensors,
    /// The file, named in errors.
    pub path: PathBuf,
}

impl PretrainedBody {
    /// Reads `path`; a checkpoint of another task is refused with a sentence that ends "not
    /// {expected}" (what the model starts from, and what to give instead).
    pub fn read(path: &Path, expected: &str) -> Result<Self, CheckpointError> {
        let ckpt = Checkpoint::read(path)?;
        if ckpt.metadata.task != TaskKind::Classification {
            return Err(CheckpointError::content(
                path,
                format!(
                    "is a {} checkpoint ({}), not {expected}",
                    format!("{:?}", ckpt.metadata.task).to_lowercase(),
                    ckpt.metadata.arch
                ),
            ));
        }
        let spec = ClassifierSpec::of(&ckpt, path)?;
        let ClassifierConfig::ResNet(trained) = spec.config else {
            return Err(CheckpointError::content(
                path,
                format!(
                    "is {} {} classifier; detection and segmentation start from a ResNet one",
                    crate::arch::article(&ckpt.metadata.arch),
                    ckpt.metadata.arch
                ),
            ));
        };
        let config = ResNetConfig {
            num_classes: None,
            output_stride: 32,
            ..trained
        };
        let tensors: NamedTensors = ckpt
            .tensors
            .into_iter()
            .filter(|(name, _)| !name.starts_with("fc."))
            .collect();
        // Checked against the body the checkpoint says it holds, so that a file whose tensors
        // contradict its own metadata is reported once, in the ResNet's names, when it is read.
        let vs = nn::VarStore::new(Device::Cpu);
        let _body = ResNet::new(&vs.root(), &config);
        load_into(
            &vs,
            &tensors,
            path,
            &format!("{} without fc", ckpt.metadata.arch),
        )?;
        Ok(PretrainedBody {
            arch: ckpt.metadata.arch,
            config,
            tensors,
            path: path.to_path_buf(),
        })
    }

    /// Copies the body into the variables of `vs` named `prefix` + the ResNet's names; every
    /// such variable must be filled and every tensor used, with equal shapes, or one error
    /// (naming `model`) lists, in the body's own names, whatever does not fit. The rest of the
    /// model keeps its fresh initialisation.
    pub fn copy_into(
        &self,
        vs: &nn::VarStore,
        prefix: &str,
        model: &str,
    ) -> Result<(), CheckpointError> {
        let vars = vs.variables();
        let body_vars: NamedTensors = vars
            .iter()
            .filter_map(|(name, var)| {
                let name = name.strip_prefix(prefix)?;
                Some((name.to_string(), var.shallow_clone()))
            })
            .collect();
        if let Some(details) = name_mismatch(&body_vars, &self.tensors) {
            return Err(CheckpointError::Mismatch {
                path: self.path.clone(),
                model: model.to_string(),
                details,
            });
        }
        tch::no_grad(|| {
            for (name, var) in &body_vars {
                var.shallow_clone().copy_(&self.tensors[name]);
            }
        });
        Ok(())
    }
}

/// The flags of a command that fine-tunes from a classifier (`detect finetune`, `segment
/// finetune`): the classifier, and every training command's flags.
#[derive(clap::Args, Clone, Debug)]
#[group(skip)]
pub struct FinetuneArgs {
    /// A classification checkpoint whose ResNet starts the model's body (ours, or one
    /// imported with `backbone import`); its fc layer is left out.
    #[arg(long)]
    pub backbone: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
    /// The validation data, KIND:PATH, when it is not the training data's other split (a
    /// COCO file names one split: coco:val.json[:IMAGES]); overrides data.val_spec.
    #[arg(long = "val-data", value_name = "SPEC")]
    pub val_data: Option<String>,
}

/// What such a command asks of its task's library.
pub struct FinetuneRequest {
    /// The classification checkpoint the body starts from.
    pub backbone: PathBuf,
    pub run: RunRequest,
}

impl FinetuneArgs {
    pub fn request(&self) -> anyhow::Result<FinetuneRequest> {
        let mut run = self.run.request()?;
        if let Some(spec) = &self.val_data {
            run.sets.push(format!(
                "data.val_spec={}",
                engine::config_file::toml_string(spec)
            ));
        }
        Ok(FinetuneRequest {
            backbone: self.backbone.clone(),
            run,
        })
    }
}
