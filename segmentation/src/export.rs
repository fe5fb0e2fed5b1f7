//! `segment export --to torchvision`: a segmentation checkpoint becomes the state dict of
//! torchvision's `fcn_resnet50(weights=None, weights_backbone=None, num_classes=K,
//! aux_loss=True)` (or `fcn_resnet101`), the inverse of [`crate::import`].
//!
//! Our names are torchvision's (see [`crate::fcn`]), so the tensors go over as they are, with
//! the `num_batches_tracked` counter PyTorch's batch norms carry and strict loading asks for.
//! torchvision's FCN does no preprocessing of its own: how our checkpoint prepares an image
//! (shorter side, mean, std) and upsamples its logits (corners aligned or not) goes into the
//! metadata as `preprocess`, and into the printed Python.

use crate::import::TorchvisionFcn;
use crate::segmenter::SegmenterSpec;
use crate::FcnConfig;
use engine::checkpoint::{Checkpoint, CheckpointError, NamedTensors};
use engine::pytorch_export::{f32_value, python_literal, PytorchExport, TORCH_BN_EPS};
use engine::state_dict::add_bn_counters;
use engine::TaskSpec;
use serde_json::{json, Value};
use std::path::Path;
use tch::Kind;

/// The `__metadata__` key of the input preparation: `{"resize_shorter": 520 or null,
/// "image_mean": [...], "image_std": [...]}` on 0-1 RGB pixels.
pub const PREPROCESS_KEY: &str = "preprocess";

/// The state dict, metadata and Python line of `ckpt` (read from `path`) for torchvision, or
/// one sentence saying why torchvision has no model that reproduces it.
pub fn export_torchvision(
    ckpt: &Checkpoint,
    path: &Path,
) -> Result<PytorchExport, CheckpointError> {
    let SegmenterSpec { config, preprocess } = SegmenterSpec::of(ckpt, path)?;
    let model = torchvision_peer(&config).map_err(|why| CheckpointError::content(path, why))?;
    let mut tensors: NamedTensors = ckpt
        .tensors
        .iter()
        .map(|(name, t)| (name.clone(), t.to_kind(Kind::Float)))
        .collect();
    add_bn_counters(&mut tensors);
    let n = &preprocess.normalization;
    let prepare = json!({
        "resize_shorter": preprocess.resize_shorter,
        "image_mean": n.mean.map(f32_value),
        "image_std": n.std.map(f32_value),
        "align_corners": config.align_corners,
    });
    Ok(PytorchExport::new(
        tensors,
        &format!("torchvision.models.segmentation.{}", model.name()),
        &[
            ("weights", Value::Null),
            ("weights_backbone", Value::Null),
            ("num_classes", json!(config.num_classes)),
            ("aux_loss", json!(config.aux)),
        ],
        TORCH_BN_EPS,
        &ckpt.metadata.classes,
        &[(PREPROCESS_KEY, prepare.clone())],
    )
    .then(input_comment(preprocess.resize_shorter))
    .then(format!(
        "x = torchvision.transforms.functional.normalize(x, mean={}, std={})",
        python_literal(&prepare["image_mean"]),
        python_literal(&prepare["image_std"])
    ))
    .then(mask_line(preprocess.resize_shorter, config.align_corners)))
}

fn input_comment(resize_shorter: Option<usize>) -> String {
    let size = match resize_shorter {
        Some(side) => {
            format!(
                "its shorter side resized to {side} (Pillow's bilinear filter on the 8-bit image)"
            )
        }
        None => "at its own size".to_string(),
    };
    format!("# x: the RGB image (height x width) as a 1x3xHxW float tensor in 0-1, {size}; then")
}

/// The Python that gives `segment predict`'s mask. `model(x)["out"]` is upsampled to the
/// model's input with corners not aligned; our checkpoint's mask is at the image's own size,
/// and a GluonCV-style model upsamples with corners aligned, so those call the heads
/// themselves and upsample as we do.
fn mask_line(resize_shorter: Option<usize>, align_corners: bool) -> String {
    const CLASSES: &str = "# class indices, as `classes` in the metadata";
    if resize_shorter.is_none() && !align_corners {
        return format!("mask = model(x)[\"out\"].argmax(1)  {CLASSES}");
    }
    let python_bool = if align_corners { "True" } else { "False" };
    format!(
        "mask = torch.nn.functional.interpolate(model.classifier(model.backbone(x)[\"out\"]), \
         size=(height, width), mode=\"bilinear\", align_corners={python_bool}).argmax(1)  {CLASSES}"
    )
}

/// torchvision's FCN over the same body with the same head, or why there is none.
fn torchvision_peer(config: &FcnConfig) -> Result<TorchvisionFcn, String> {
    let body = config.backbone.arch;
    let model = TorchvisionFcn::over(body).ok_or_else(|| {
        format!(
            "is an FCN over {body}, which torchvision's FCNs cannot hold: they are built on \
             torchvision's resnet50 and resnet101 (variant B: one 7x7 stem conv, strided 1x1 \
             shortcuts)"
        )
    })?;
    if config.backbone.output_stride != 8 {
        return Err(format!(
            "runs its body at output stride {}; torchvision's {} dilates layer3 and layer4 \
             (output stride 8)",
            config.backbone.output_stride,
            model.name()
        ));
    }
    if config.backbone.bn_eps != TORCH_BN_EPS {
        return Err(format!(
            "has batch-norm eps {} in its body; torchvision's {} uses {TORCH_BN_EPS} throughout",
            config.backbone.bn_eps,
            model.name()
        ));
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_resnet50_or_101_at_stride_8_has_a_torchvision_peer() {
        let fcn = |arch: &str, stride| FcnConfig::new(arch.parse().unwrap(), stride, 3, true);
        assert_eq!(
            torchvision_peer(&fcn("resnet101", 8)),
            Ok(TorchvisionFcn::FcnResnet101)
        );
        let d = torchvision_peer(&fcn("resnet50d", 8)).unwrap_err();
        assert!(d.contains("an FCN over resnet50d"), "{d}");
        let s16 = torchvision_peer(&fcn("resnet50", 16)).unwrap_err();
        assert!(s16.contains("output stride 16"), "{s16}");
    }

    #[test]
    fn the_mask_line_upsamples_as_the_checkpoint_does() {
        assert!(mask_line(None, false).starts_with("mask = model(x)[\"out\"].argmax(1)"));
        for (resize, align) in [(Some(520), false), (None, true)] {
            let line = mask_line(resize, align);
            assert!(line.contains("size=(height, width)"), "{line}");
            let corners = format!("align_corners={}", if align { "True" } else { "False" });
            assert!(line.contains(&corners), "{line}");
        }
    }
}
