//! `detect export --to torchvision`: a detection checkpoint becomes the state dict of
//! torchvision's `fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None,
//! num_classes=K+1)`, the inverse of [`crate::import`].
//!
//! Our parameter names are torchvision's current ones and our box predictor has its layout
//! (K+1 score rows, 4(K+1) box rows, row 0 the background), so the tensors go over as they
//! are. What differs is what torchvision builds without pretrained weights: plain
//! `nn.BatchNorm2d` in the body (not `FrozenBatchNorm2d`), which has a `num_batches_tracked`
//! counter that strict loading asks for and whose epsilon is fixed at 1e-5; our checkpoints
//! keep batch norm unfolded (scale, shift, running mean and variance), as both keep it.
//! The test-time settings (sizes, normalisation, thresholds, proposal counts) are the
//! builder's keyword arguments, written into the metadata and the printed Python line.

use crate::import::TorchvisionDetector;
use crate::model::config::Design;
use crate::model::load::DetectorSpec;
use crate::model::DetectorConfig;
use engine::checkpoint::{Checkpoint, CheckpointError, NamedTensors};
use engine::pytorch_export::{f32_value, PytorchExport};
use engine::state_dict::add_bn_counters;
use engine::TaskSpec;
use serde_json::{json, Value};
use std::path::Path;
use tch::Kind;

/// The state dict, metadata and Python line of `ckpt` (read from `path`) for torchvision, or
/// one sentence saying why torchvision has no model that reproduces it.
pub fn export_torchvision(
    ckpt: &Checkpoint,
    path: &Path,
) -> Result<PytorchExport, CheckpointError> {
    let spec = DetectorSpec::of(ckpt, path)?;
    let config = &spec.config;
    let model = torchvision_peer(config).map_err(|why| CheckpointError::content(path, why))?;
    fixed_settings_agree(config).map_err(|why| CheckpointError::content(path, why))?;
    let detections_per_img = config
        .box_head
        .detections_per_img
        .expect("checked by fixed_settings_agree");
    let t = &spec.transform;
    let kwargs = [
        // torchvision counts the background among the classes.
        ("num_classes", json!(config.num_classes + 1)),
        ("min_size", json!(t.min_size)),
        ("max_size", json!(t.max_size)),
        ("image_mean", Value::from(t.mean.map(f32_value).to_vec())),
        ("image_std", Value::from(t.std.map(f32_value).to_vec())),
        ("size_divisible", json!(t.size_divisible)),
        (
            "rpn_pre_nms_top_n_test",
            json!(config.rpn.pre_nms_top_n_test),
        ),
        (
            "rpn_post_nms_top_n_test",
            json!(config.rpn.post_nms_top_n_test),
        ),
        ("rpn_nms_thresh", json!(config.rpn.nms_thresh)),
        ("box_score_thresh", json!(config.box_head.score_thresh)),
        ("box_nms_thresh", json!(config.box_head.nms_thresh)),
        ("box_detections_per_img", json!(detections_per_img)),
        ("bbox_reg_weights", json!(config.box_head.box_weights)),
    ];
    let mut tensors: NamedTensors = ckpt
        .tensors
        .iter()
        .map(|(name, t)| (name.clone(), t.to_kind(Kind::Float)))
        .collect();
    add_bn_counters(&mut tensors);
    // torchvision's label l names row l: the background first, then our classes in order.
    let rows: Vec<String> = std::iter::once("__background__".to_string())
        .chain(ckpt.metadata.classes.iter().cloned())
        .collect();
    Ok(PytorchExport::new(
        tensors,
        &format!("torchvision.models.detection.{}", model.name()),
        &[
            &[("weights", Value::Null), ("weights_backbone", Value::Null)][..],
            &kwargs[..],
        ]
        .concat(),
        config.backbone.bn_eps,
        &rows,
        &[],
    ))
}

/// The batch-norm epsilon of a detection checkpoint whose metadata has been checked (by
/// [`export_torchvision`], or made by the import).
pub fn bn_eps(ckpt: &Checkpoint) -> f64 {
    let config: DetectorConfig =
        serde_json::from_value(ckpt.metadata.model.clone()).expect("a checked detector config");
    config.backbone.bn_eps
}

/// torchvision's model of the same design over the same body, or why there is none.
fn torchvision_peer(config: &DetectorConfig) -> Result<TorchvisionDetector, String> {
    if config.design == Design::C4 {
        return Err(format!(
            "is a {} (GluonCV's C4 design, layer4 run on each RoI), which torchvision has no \
             model for: only FPN detectors (`design = \"fpn\"`) export to torchvision",
            config.arch_name()
        ));
    }
    let body = config.backbone.arch;
    TorchvisionDetector::over(body).ok_or_else(|| {
        let what = match body.variant {
            backbones::Variant::B => format!("a ResNet-{}", body.depth),
            _ => format!(
                "a {body} (a ResNet-{} of variant {:?})",
                body.depth, body.variant
            ),
        };
        format!(
            "is a Faster R-CNN over {what}, which torchvision's fasterrcnn_resnet50_fpn cannot \
             hold: its body is torchvision's resnet50 (variant B: one 7x7 stem conv, strided \
             1x1 shortcuts)"
        )
    })
}

/// Settings torchvision's builder takes no argument for (fixed in its code) must be the ones
/// it fixes, or its detections would differ from ours.
fn fixed_settings_agree(config: &DetectorConfig) -> Result<(), String> {
    let fixed = DetectorConfig::fpn(config.backbone.arch, config.num_classes, 0.0);
    let differs = |name: &str, ours: String, theirs: String| {
        Err(format!(
            "has {name} = {ours}, which torchvision's fasterrcnn_resnet50_fpn fixes at \
             {theirs}: its detections would differ"
        ))
    };
    let (r, b) = (&config.rpn, &config.box_head);
    if r.channels != fixed.rpn.channels {
        return differs(
            "rpn.channels",
            r.channels.to_string(),
            fixed.rpn.channels.to_string(),
        );
    }
    if r.min_size != fixed.rpn.min_size {
        return differs(
            "rpn.min_size",
            r.min_size.to_string(),
            fixed.rpn.min_size.to_string(),
        );
    }
    if r.min_size_before_top_n || r.anchors_within_image {
        return differs(
            "rpn.min_size_before_top_n / rpn.anchors_within_image",
            format!("{} / {}", r.min_size_before_top_n, r.anchors_within_image),
            "false / false".into(),
        );
    }
    if b.min_size != fixed.box_head.min_size {
        return differs(
            "box_head.min_size",
            b.min_size.to_string(),
            fixed.box_head.min_size.to_string(),
        );
    }
    if b.detections_per_img.is_none() {
        return differs(
            "box_head.detections_per_img",
            "null (no cap)".into(),
            "a number (box_detections_per_img)".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_fpn_design_over_resnet50_has_a_torchvision_peer() {
        let fpn = |arch: &str| DetectorConfig::fpn(arch.parse().unwrap(), 3, 1e-5);
        assert_eq!(
            torchvision_peer(&fpn("resnet50")),
            Ok(TorchvisionDetector::FasterrcnnResnet50Fpn)
        );
        let c4 = DetectorConfig::c4("resnet50".parse().unwrap(), 3, 1e-5);
        assert!(torchvision_peer(&c4).unwrap_err().contains("C4 design"));
        let d = torchvision_peer(&fpn("resnet50d")).unwrap_err();
        assert!(d.contains("resnet50d (a ResNet-50 of variant D)"), "{d}");
        let r18 = torchvision_peer(&fpn("resnet18")).unwrap_err();
        assert!(r18.contains("over a ResNet-18,"), "{r18}");
    }

    #[test]
    fn settings_torchvision_fixes_must_be_its_own() {
        let mut config = DetectorConfig::fpn("resnet50".parse().unwrap(), 3, 1e-5);
        assert_eq!(fixed_settings_agree(&config), Ok(()));
        config.box_head.detections_per_img = None;
        assert!(fixed_settings_agree(&config)
            .unwrap_err()
            .contains("box_head.detections_per_img"));
    }
}
