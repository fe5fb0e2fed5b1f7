//! `detect import --from torchvision --arch fasterrcnn_resnet50_fpn`: a torchvision state
//! dict (saved with safetensors, or written by `detect export`) becomes a detection
//! checkpoint. Names already match, so importing is renaming the older published spelling,
//! dropping batch-norm counters, and checking every tensor against the model built here.

use crate::model::load::DetectorSpec;
use crate::model::{DetectorConfig, FasterRcnn};
use crate::transform::TransformSpec;
use backbones::Arch;
use engine::checkpoint::{
    load_into, read_safetensors, var_store_tensors, Checkpoint, CheckpointError, Metadata,
    NamedTensors, TaskKind,
};
use engine::pytorch_export::{BN_EPS_KEY, TORCH_BN_EPS};
use engine::state_dict::{
    drop_bn_counters, given_class_names, header_class_names, linear_rows, numbered_classes, Head,
};
use engine::TaskSpec;
use std::path::Path;
use tch::{nn, Device};

/// The detection architectures a torchvision state dict can be imported as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TorchvisionDetector {
    #[value(name = "fasterrcnn_resnet50_fpn")]
    FasterrcnnResnet50Fpn,
}

impl TorchvisionDetector {
    /// The body it is built on: import builds this body for the model it is told; export
    /// looks the model up by its body ([`Self::over`]).
    pub fn backbone(self) -> Arch {
        let body = match self {
            TorchvisionDetector::FasterrcnnResnet50Fpn => "resnet50",
        };
        body.parse().expect("a known arch")
    }

    /// torchvision's FPN detector over `body`, if it has one.
    pub fn over(body: Arch) -> Option<Self> {
        use clap::ValueEnum;
        Self::value_variants()
            .iter()
            .copied()
            .find(|model| model.backbone() == body)
    }

    /// Its name in torchvision.
    pub fn name(self) -> &'static str {
        match self {
            TorchvisionDetector::FasterrcnnResnet50Fpn => "fasterrcnn_resnet50_fpn",
        }
    }
}

/// torchvision's COCO category list: index 0 is the background, the rest are the 90 ids of
/// COCO's original 91-category numbering (the unused ones are "N/A").
pub fn coco_categories() -> Vec<String> {
    include_str!("model/coco_categories.txt")
        .lines()
        .map(str::to_string)
        .collect()
}

/// torchvision's older published checkpoint (and models built before the
/// Conv2dNormActivation wrappers) names a few convs without their Sequential indices.
fn modern_name(name: &str) -> String {
    for block in ["backbone.fpn.inner_blocks.", "backbone.fpn.layer_blocks."] {
        if let Some(rest) = name.strip_prefix(block) {
            // `{i}.weight` → `{i}.0.weight`; `{i}.0.weight` stays.
            if let Some((index, param)) = rest.split_once('.') {
                if index.parse::<u32>().is_ok() && !param.contains('.') {
                    return format!("{block}{index}.0.{param}");
                }
            }
        }
    }
    for param in ["weight", "bias"] {
        if name == format!("rpn.head.conv.{param}") {
            return format!("rpn.head.conv.0.0.{param}");
        }
    }
    name.to_string()
}

/// Reads the state dict at `input` as `arch`, with frozen batch norm of `bn_eps` (torchvision's
/// COCO checkpoint was trained with 0; its default is 1e-5), else of the `bn_eps` its
/// metadata records (`detect export` writes it), else 1e-5. Class names come from `classes`
/// (object classes only, background excluded), else from the file's metadata, else
/// torchvision's COCO list when the predictor has 91 rows, else `class_0`, `class_1`, ...
pub fn import_torchvision(
    input: &Path,
    arch: TorchvisionDetector,
    bn_eps: Option<f64>,
    classes: Option<Vec<String>>,
) -> Result<Checkpoint, CheckpointError> {
    let (mut raw, header) = read_safetensors(input)?;
    drop_bn_counters(&mut raw);
    let tensors: NamedTensors = raw
        .into_iter()
        .map(|(name, t)| (modern_name(&name), t))
        .collect();
    let bn_eps = match (bn_eps, header.get(BN_EPS_KEY)) {
        (Some(eps), _) => eps,
        (None, Some(text)) => text.parse().map_err(|_| {
            CheckpointError::content(
                input,
                format!("its metadata's {BN_EPS_KEY} is {text:?}, not a number"),
            )
        })?,
        (None, None) => TORCH_BN_EPS,
    };
    // Every parameter and buffer of torchvision's Faster R-CNN is floating point (its frozen
    // batch norm has no counter; a regular one's is dropped above). An integer or boolean
    // tensor means a file that is not what it claims (a quantized model, say), and copying
    // it into float weights would turn its codes into numbers without a word. Half and
    // double precision widen or round to float exactly as torchvision's `.float()` would.
    if let Some((name, tensor)) = tensors.iter().find(|(_, t)| !t.is_floating_point()) {
        return Err(CheckpointError::content(
            input,
            format!(
                "{name} is {:?}; torchvision's Faster R-CNN has floating-point tensors only",
                tensor.kind()
            ),
        ));
    }
    let head = Head {
        tensor: "roi_heads.box_predictor.cls_score.weight",
        rows: linear_rows,
        layout: "a class predictor is [classes + 1, features]",
        model: "a torchvision Faster R-CNN state dict",
    };
    let noun = "object classes";
    let num_classes = head.classes(&tensors, input, 1, noun, &engine::limits::CLASSES)?;
    let named = match given_class_names(classes, num_classes, noun, input)? {
        Some(given) => Some(given),
        // The background row's name comes first.
        None => header_class_names(&header, 1, num_classes, input)?,
    };
    let classes = match named {
        Some(c) => c,
        None if num_classes == 90 => coco_categories().split_off(1),
        None => numbered_classes(num_classes),
    };
    let config = DetectorConfig::fpn(arch.backbone(), num_classes, bn_eps);
    config
        .validate()
        .map_err(|e| CheckpointError::content(input, format!("batch-norm eps {bn_eps}: {e}")))?;
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = FasterRcnn::new(&vs.root(), &config);
    load_into(&vs, &tensors, input, &config.arch_name())?;
    let ckpt = Checkpoint {
        metadata: Metadata {
            task: TaskKind::Detection,
            arch: config.arch_name(),
            num_classes,
            classes,
            model: serde_json::to_value(&config).expect("config serialises"),
            transform: Some(
                serde_json::to_value(TransformSpec::torchvision()).expect("transform serialises"),
            ),
            config: None,
            epoch: None,
            iter: None,
            metrics: None,
        },
        tensors: var_store_tensors(&vs),
    };
    // The same checks as on opening the written file (finite values among them).
    DetectorSpec::of(&ckpt, input)?;
    Ok(ckpt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_map_to_torchvision_current_names() {
        assert_eq!(
            modern_name("backbone.fpn.inner_blocks.2.weight"),
            "backbone.fpn.inner_blocks.2.0.weight"
        );
        assert_eq!(
            modern_name("backbone.fpn.layer_blocks.0.0.bias"),
            "backbone.fpn.layer_blocks.0.0.bias"
        );
        assert_eq!(
            modern_name("rpn.head.conv.weight"),
            "rpn.head.conv.0.0.weight"
        );
        assert_eq!(
            modern_name("rpn.head.conv.0.0.bias"),
            "rpn.head.conv.0.0.bias"
        );
        assert_eq!(
            modern_name("backbone.body.layer1.0.conv1.weight"),
            "backbone.body.layer1.0.conv1.weight"
        );
    }

    #[test]
    fn coco_list_has_torchvision_numbering() {
        let c = coco_categories();
        assert_eq!(c.len(), 91);
        assert_eq!(
            (c[0].as_str(), c[1].as_str(), c[12].as_str()),
            ("__background__", "person", "N/A")
        );
        assert_eq!(c[90], "toothbrush");
    }
}
