//! `segment import --from torchvision`: a torchvision FCN state dict (saved with safetensors,
//! or written by `segment export`) becomes a segmentation checkpoint. Our names are
//! torchvision's, so the import is validation: exactly torchvision's key set (less the BN
//! counters) with its shapes.

use crate::fcn::FcnConfig;
use crate::segmenter::{metadata, Preprocess, Segmenter};
use backbones::Arch;
use engine::checkpoint::{read_safetensors, var_store_tensors, Checkpoint, CheckpointError};
use engine::state_dict::{
    conv1x1_rows, drop_bn_counters, given_class_names, header_class_names, numbered_classes, Head,
};
use std::path::Path;
use tch::Device;

/// The library a state dict comes from or goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Framework {
    Torchvision,
}

/// torchvision's FCN models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TorchvisionFcn {
    #[value(name = "fcn_resnet50")]
    FcnResnet50,
    #[value(name = "fcn_resnet101")]
    FcnResnet101,
}

impl TorchvisionFcn {
    /// The body it is built on: import builds this body for the model it is told; export
    /// looks the model up by its body ([`Self::over`]).
    pub fn backbone(self) -> Arch {
        let body = match self {
            TorchvisionFcn::FcnResnet50 => "resnet50",
            TorchvisionFcn::FcnResnet101 => "resnet101",
        };
        body.parse().expect("a known arch")
    }

    /// torchvision's FCN over `body`, if it has one.
    pub fn over(body: Arch) -> Option<Self> {
        use clap::ValueEnum;
        Self::value_variants()
            .iter()
            .copied()
            .find(|model| model.backbone() == body)
    }

    /// Its name in torchvision (`fcn_resnet50`).
    pub fn name(self) -> &'static str {
        match self {
            TorchvisionFcn::FcnResnet50 => "fcn_resnet50",
            TorchvisionFcn::FcnResnet101 => "fcn_resnet101",
        }
    }
}

/// Reads a torchvision FCN state dict. The number of classes comes from
/// `classifier.4.weight`, the auxiliary head from whether `aux_classifier.*` is there; class
/// names from `classes`, else from the file's metadata (`segment export` writes them), else
/// VOC's for 21, ADE20K's for 150, else `class_<i>`.
pub fn import_torchvision(
    input: &Path,
    arch: TorchvisionFcn,
    classes: Option<Vec<String>>,
) -> Result<Checkpoint, CheckpointError> {
    let (mut tensors, header) = read_safetensors(input)?;
    drop_bn_counters(&mut tensors);
    let head = Head {
        tensor: "classifier.4.weight",
        rows: conv1x1_rows,
        layout: "an FCN's last conv is [classes, channels, 1, 1]",
        model: "a torchvision FCN state dict",
    };
    let num_classes = head.classes(&tensors, input, 0, "classes", &crate::fcn::CLASSES)?;
    let named = match given_class_names(classes, num_classes, "classes", input)? {
        Some(given) => Some(given),
        None => header_class_names(&header, 0, num_classes, input)?,
    };
    let classes = match named {
        Some(c) => c,
        // torchvision's pretrained FCN weights: the background and VOC's 20 classes.
        None if num_classes == 21 => std::iter::once("background")
            .chain(datasets::voc::VOC_CLASSES)
            .map(str::to_string)
            .collect(),
        None if num_classes == 150 => datasets::ade20k::ADE20K_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        None => numbered_classes(num_classes),
    };
    let aux = tensors.keys().any(|k| k.starts_with("aux_classifier."));
    let config = FcnConfig::new(arch.backbone(), 8, num_classes, aux);
    // Building the model loads every tensor by name and shape, or lists every difference.
    let model = Segmenter::build(
        config.clone(),
        classes.clone(),
        Preprocess::TORCHVISION,
        &tensors,
        input,
        Device::Cpu,
    )?;
    Ok(Checkpoint {
        metadata: metadata(&config, &classes, &Preprocess::TORCHVISION, None),
        tensors: var_store_tensors(&model.vs),
    })
}
