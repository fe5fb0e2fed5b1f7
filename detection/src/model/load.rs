//! Weights in and out by name: the body from a classification checkpoint (its `fc` dropped),
//! and whole detection checkpoints, whose metadata is checked field by field when they are
//! opened (a checkpoint is untrusted input: see docs/architecture.md "Untrusted input").

use super::{DetectorConfig, FasterRcnn};
use crate::transform::TransformSpec;
use backbones::checkpoint::{first_non_finite, load_into, Checkpoint, CheckpointError, TaskKind};
use backbones::classifier::ClassifierSpec;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn, Device};

/// Where the body's parameters live in a detector.
pub const BODY_PREFIX: &str = "backbone.body.";

/// Reads a classification checkpoint to start a detector from: refuses other tasks with a
/// sentence saying what the file is, and checks its metadata (an unknown arch is refused by
/// the classification checks).
pub fn read_backbone_checkpoint(
    path: &Path,
) -> Result<(Checkpoint, ClassifierSpec), CheckpointError> {
    let ckpt = Checkpoint::read(path)?;
    if ckpt.metadata.task != TaskKind::Classification {
        return Err(CheckpointError::content(
            path,
            format!(
                "is a {} checkpoint ({}), not a classification backbone: give the classifier it was fine-tuned from",
                match ckpt.metadata.task {
                    TaskKind::Detection => "detection",
                    TaskKind::Segmentation => "segmentation",
                    TaskKind::Classification => "classification",
                },
                ckpt.metadata.arch
            ),
        ));
    }
    let spec = ClassifierSpec::of(&ckpt, path)?;
    Ok((ckpt, spec))
}

/// Copies a classifier's weights into the detector's body by name (`layer1.0.conv1.weight`
/// → `backbone.body.layer1.0.conv1.weight`), leaving out its `fc`. Every body tensor must
/// be filled with the right shape; one error lists whatever does not fit.
pub fn load_body(vs: &nn::VarStore, ckpt: &Checkpoint, path: &Path) -> Result<(), CheckpointError> {
    let vars = vs.variables();
    let body: BTreeMap<String, tch::Tensor> = ckpt
        .tensors
        .iter()
        .filter(|(name, _)| !name.starts_with("fc."))
        .map(|(name, t)| (format!("{BODY_PREFIX}{name}"), t.shallow_clone()))
        .collect();
    let mut missing: Vec<&str> = vars
        .keys()
        .filter(|k| k.starts_with(BODY_PREFIX) && !body.contains_key(*k))
        .map(String::as_str)
        .collect();
    missing.sort_unstable();
    let unexpected: Vec<&str> = body
        .keys()
        .filter(|k| !vars.contains_key(*k))
        .map(|k| &k[BODY_PREFIX.len()..])
        .collect();
    let wrong: Vec<String> = body
        .iter()
        .filter_map(|(name, t)| {
            let v = vars.get(name)?;
            (v.size() != t.size()).then(|| {
                format!(
                    "{} (file {:?}, model {:?})",
                    &name[BODY_PREFIX.len()..],
                    t.size(),
                    v.size()
                )
            })
        })
        .collect();
    if !(missing.is_empty() && unexpected.is_empty() && wrong.is_empty()) {
        let mut details = String::new();
        for (label, items) in [
            (
                "missing",
                missing
                    .iter()
                    .map(|s| s[BODY_PREFIX.len()..].to_string())
                    .collect::<Vec<_>>(),
            ),
            (
                "unexpected",
                unexpected.iter().map(|s| s.to_string()).collect(),
            ),
            ("with the wrong shape", wrong),
        ] {
            if !items.is_empty() {
                details.push_str(&format!(" {} {label}: {};", items.len(), items.join(", ")));
            }
        }
        details.pop();
        return Err(CheckpointError::Mismatch {
            path: path.to_path_buf(),
            model: format!("the body of a detector over {}", ckpt.metadata.arch),
            details,
        });
    }
    tch::no_grad(|| {
        for (name, t) in &body {
            let mut var = vars[name].shallow_clone();
            var.copy_(t);
        }
    });
    Ok(())
}

/// What a detection checkpoint says about its model, every field checked: the config is
/// valid and agrees with `arch`, `num_classes` and the predictor's tensors, the transform is
/// within bounds, and the tensors are finite floating point.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorSpec {
    pub config: DetectorConfig,
    pub transform: TransformSpec,
}

impl DetectorSpec {
    pub fn of(ckpt: &Checkpoint, path: &Path) -> Result<Self, CheckpointError> {
        ckpt.expect_task(TaskKind::Detection, path)?;
        let meta = &ckpt.metadata;
        let bad = |field: &str, message: String| CheckpointError::field(path, field, message);
        let config: DetectorConfig = serde_json::from_value(meta.model.clone())
            .map_err(|e| bad("model", format!("not a Faster R-CNN config ({e})")))?;
        config.validate().map_err(|e| bad("model", e))?;
        if config.arch_name() != meta.arch {
            return Err(bad(
                "model",
                format!(
                    "describes a {} but arch says {}",
                    config.arch_name(),
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
        let transform: TransformSpec = match &meta.transform {
            Some(t) => serde_json::from_value(t.clone())
                .map_err(|e| bad("transform", format!("not a detection transform ({e})")))?,
            None => return Err(bad("transform", "missing".into())),
        };
        transform.validate().map_err(|e| bad("transform", e))?;
        let limit = backbones::limits::max_inference_bytes().map_err(|e| {
            CheckpointError::content(path, format!("cannot bound its transform: {e}"))
        })?;
        transform
            .check_memory(limit)
            .map_err(|e| bad("transform", e))?;
        for (name, t) in &ckpt.tensors {
            if !t.is_floating_point() {
                return Err(CheckpointError::content(
                    path,
                    format!(
                        "tensor {name} holds {:?} values; a detector's tensors are floating point",
                        t.kind()
                    ),
                ));
            }
        }
        if let Some(name) = first_non_finite(&ckpt.tensors) {
            return Err(CheckpointError::content(
                path,
                format!("tensor {name} holds NaN or infinite values"),
            ));
        }
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
        Ok(Detector {
            vs,
            model,
            classes: ckpt.metadata.classes,
            transform: spec.transform,
        })
    }
}
