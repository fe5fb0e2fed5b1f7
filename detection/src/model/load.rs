//! Weights in and out by name: the body from a classification checkpoint (its `fc` left out),
//! and whole detection checkpoints, whose metadata is checked field by field when they are
//! opened (a checkpoint is untrusted input: see docs/architecture.md "Untrusted input").

use super::{DetectorConfig, FasterRcnn};
use crate::transform::TransformSpec;
use backbones::layers::ConvNormPairs;
use backbones::pretrained::PretrainedBody;
use engine::checkpoint::{
    check_finite_weights, load_into, Checkpoint, CheckpointError, TaskKind, TaskSpec,
};
use std::path::Path;
use tch::{nn, Device};

/// Where the body's parameters live in a detector.
pub const BODY_PREFIX: &str = "backbone.body.";

/// Reads the classifier a detector starts from: another task's checkpoint is refused with a
/// sentence saying what the file is, and the classifier's fields are checked (an unknown arch
/// among them).
pub fn read_backbone_checkpoint(path: &Path) -> Result<PretrainedBody, CheckpointError> {
    PretrainedBody::read(
        path,
        "a classification backbone: give the classifier it was fine-tuned from",
    )
}

/// Copies a classifier's body into the detector's by name (`layer1.0.conv1.weight` →
/// `backbone.body.layer1.0.conv1.weight`). Every body tensor must be filled with the right
/// shape; one error lists whatever does not fit.
pub fn load_body(vs: &nn::VarStore, body: &PretrainedBody) -> Result<(), CheckpointError> {
    body.copy_into(
        vs,
        BODY_PREFIX,
        &format!("the body of a detector over {}", body.arch),
    )
}

/// What a detection checkpoint says about its model, every field checked: the config is
/// valid and agrees with `arch`, `num_classes` and the predictor's tensors, the transform is
/// within bounds, and the tensors are finite floating point.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorSpec {
    pub config: DetectorConfig,
    pub transform: TransformSpec,
}

impl TaskSpec for DetectorSpec {
    const TASK: TaskKind = TaskKind::Detection;

    fn of(ckpt: &Checkpoint, path: &Path) -> Result<Self, CheckpointError> {
        ckpt.expect_task(TaskKind::Detection, path)?;
        let meta = &ckpt.metadata;
        let bad = |field: &str, message: String| CheckpointError::field(path, field, message);
        let config: DetectorConfig = meta.model_as(path, "a Faster R-CNN config")?;
        config.validate().map_err(|e| bad("model", e))?;
        meta.check_model_agrees(
            path,
            config.arch_name() == meta.arch,
            &format!("a {}", config.arch_name()),
            Some(config.num_classes),
            &format!("{} classes", config.num_classes),
        )?;
        let transform: TransformSpec = meta.transform_as(path, "a detection transform", None)?;
        transform.validate().map_err(|e| bad("transform", e))?;
        let limit = engine::limits::max_inference_bytes().map_err(|e| {
            CheckpointError::content(path, format!("cannot bound its transform: {e}"))
        })?;
        transform
            .check_memory(limit)
            .map_err(|e| bad("transform", e))?;
        check_finite_weights(&ckpt.tensors, path, "a detector's")?;
        const SCORES: &str = "roi_heads.box_predictor.cls_score.weight";
        match ckpt.tensors.get(SCORES).map(|w| w.size()).as_deref() {
            Some([rows, _]) if *rows == meta.num_classes + 1 => {}
            Some(shape) => {
                return Err(bad(
                    "num_classes",
                    format!(
                        "is {} but {SCORES} has shape {shape:?} (one row per class and one for the background)",
                        meta.num_classes
                    ),
                ))
            }
            None => {
                return Err(CheckpointError::content(
                    path,
                    format!("has no {SCORES}: not a Faster R-CNN"),
                ))
            }
        }
        Ok(DetectorSpec { config, transform })
    }
}

/// A detector ready to run: its variables, model, class names and transform.
pub struct Detector {
    pub vs: nn::VarStore,
    pub model: FasterRcnn,
    /// Object class names; label `l` (1-based) is `classes[l - 1]`.
    pub classes: Vec<String>,
    pub transform: TransformSpec,
}

impl Detector {
    pub fn from_checkpoint(path: &Path, device: Device) -> Result<Self, CheckpointError> {
        let ckpt = Checkpoint::read(path)?;
        Self::from_parts(ckpt, path, device)
    }

    pub fn from_parts(
        ckpt: Checkpoint,
        path: &Path,
        device: Device,
    ) -> Result<Self, CheckpointError> {
        let spec = DetectorSpec::of(&ckpt, path)?;
        let vs = nn::VarStore::new(device);
        let model = FasterRcnn::new(&vs.root(), &spec.config);
        load_into(&vs, &ckpt.tensors, path, &ckpt.metadata.arch)?;
        // A detector opened from a checkpoint only predicts: its folded weights are made once.
        model.prepare_inference();
        Ok(Detector {
            vs,
            model,
            classes: ckpt.metadata.classes,
            transform: spec.transform,
        })
    }
}
