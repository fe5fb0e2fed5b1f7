//! Moving classifier weights (ResNets, MobileNet v1, Inception-V3) between this project and
//! PyTorch (timm, torchvision).
//!
//! Our parameter names are timm's (for a plain ResNet and Inception-V3 they are also
//! torchvision's), so a state dict maps by name. An Inception-V3 state dict may hold the
//! auxiliary classifier (`AuxLogits.*`: torchvision's model, timm's with `aux_logits=True`) or
//! not (timm's default); the imported model has it exactly when the file does. What differs: PyTorch's BatchNorm2d carries a
//! `num_batches_tracked` counter that we do not keep, and a state dict file has no metadata.

use crate::arch::{ClassifierArch, Variant};
use crate::classifier::arch_transform;
use crate::network::{ClassifierConfig, ClassifierNet};
use engine::checkpoint::{
    load_into, read_safetensors, write_safetensors, Checkpoint, CheckpointError, Metadata,
    NamedTensors, TaskKind,
};
use engine::state_dict::{
    add_bn_counters, drop_bn_counters, given_class_names, linear_rows, numbered_classes, Head,
};
use std::collections::HashMap;
use std::path::Path;
use tch::{nn, Device, Kind};

/// The PyTorch library a state dict comes from or goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Framework {
    Timm,
    Torchvision,
}

/// The 1000 ImageNet class names in torchvision's order (`torchvision.models._meta`).
pub fn imagenet_classes() -> Vec<String> {
    include_str!("imagenet_classes.txt")
        .lines()
        .map(str::to_string)
        .collect()
}

fn check_framework_has(
    framework: Framework,
    arch: ClassifierArch,
    path: &Path,
) -> Result<(), CheckpointError> {
    if framework != Framework::Torchvision {
        return Ok(());
    }
    let missing = match arch {
        ClassifierArch::ResNet(a) if a.variant == Variant::B => return Ok(()),
        ClassifierArch::InceptionV3 => return Ok(()),
        ClassifierArch::ResNet(_) => "its ResNets are variant B: resnet18 .. resnet152",
        ClassifierArch::MobileNetV1 => "its MobileNets are v2 and v3",
    };
    Err(CheckpointError::content(
        path,
        format!("torchvision has no {arch} ({missing}); use timm"),
    ))
}

/// The paths of an `import` command (`backbone`, `detect` and `segment` alike), checked before
/// any work: the checkpoint may not be the state dict or the class list (by file identity),
/// and the class list, when given, is read (one name a line). An existing checkpoint that is
/// not an input is replaced: the user named it as the output.
pub fn check_import_paths(
    input: &Path,
    classes: Option<&Path>,
    output: &Path,
) -> Result<Option<Vec<String>>, String> {
    let mut inputs = vec![engine::outputs::named(input, "the state dict")];
    if let Some(classes) = classes {
        inputs.push(engine::outputs::named(classes, "the class list"));
    }
    engine::outputs::check(
        &inputs,
        &[engine::outputs::named(output, "the checkpoint")],
        true,
    )?;
    classes
        .map(|path| datasets::class_list::read(path).map_err(|e| e.to_string()))
        .transpose()
}

/// Reads a PyTorch state dict saved with safetensors and checks it against `arch`.
/// The number of classes comes from the head (`fc.weight`, a MobileNet's
/// `classifier.weight`); class names from `classes`, or ImageNet's
/// when there are 1000, or "class_<i>". The checkpoint's transform is torchvision's evaluation
/// of its ImageNet weights of `arch` ([`arch_transform`]: 299 px and inputs in [-1, 1] for
/// Inception-V3).
pub fn import(
    input: &Path,
    framework: Framework,
    arch: ClassifierArch,
    classes: Option<Vec<String>>,
) -> Result<Checkpoint, CheckpointError> {
    check_framework_has(framework, arch, input)?;
    let (mut tensors, _) = read_safetensors(input)?;
    drop_bn_counters(&mut tensors);
    let head = Head {
        tensor: arch.head_weight(),
        rows: linear_rows,
        layout: "a classifier head is [classes, features]",
        model: match arch {
            ClassifierArch::ResNet(_) => "a ResNet classifier state dict",
            ClassifierArch::MobileNetV1 => "a MobileNet v1 classifier state dict",
            ClassifierArch::InceptionV3 => "an Inception-V3 classifier state dict",
        },
    };
    let num_classes = head.classes(&tensors, input, 0, "classes", &engine::limits::CLASSES)?;
    let classes = match given_class_names(classes, num_classes, "classes", input)? {
        Some(c) => c,
        None if num_classes == 1000 => imagenet_classes(),
        None => numbered_classes(num_classes),
    };
    let mut config = ClassifierConfig::classifier(arch, num_classes);
    if arch.has_aux_classifier() {
        let aux = tensors.keys().any(|name| name.starts_with("AuxLogits."));
        config
            .set_aux_logits(aux)
            .expect("an architecture with an auxiliary classifier");
    }
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = ClassifierNet::new(&vs.root(), &config);
    load_into(&vs, &tensors, input, &arch.to_string())?;
    let metadata = Metadata {
        task: TaskKind::Classification,
        arch: arch.to_string(),
        num_classes,
        classes,
        model: config.to_json(),
        transform: Some(serde_json::to_value(arch_transform(arch)).expect("transform serialises")),
        config: None,
        epoch: None,
        iter: None,
        metrics: None,
    };
    Ok(Checkpoint {
        metadata,
        tensors: engine::checkpoint::var_store_tensors(&vs),
    })
}

/// Writes a classification checkpoint as a state dict that timm's or torchvision's model of
/// the same architecture loads with `load_state_dict(strict=True)` (an Inception-V3 built
/// with `aux_logits` as the checkpoint has its auxiliary classifier, and torchvision's with
/// `init_weights=False`).
pub fn export(
    ckpt: &Checkpoint,
    ckpt_path: &Path,
    framework: Framework,
    out: &Path,
) -> Result<(), CheckpointError> {
    ckpt.expect_task(TaskKind::Classification, ckpt_path)?;
    let arch: ClassifierArch = ckpt
        .metadata
        .arch
        .parse()
        .map_err(|e| CheckpointError::content(ckpt_path, format!("{e}")))?;
    check_framework_has(framework, arch, ckpt_path)?;
    let config = ClassifierConfig::from_json(arch, &ckpt.metadata.model).map_err(|e| {
        CheckpointError::content(ckpt_path, format!("bad model config in metadata ({e})"))
    })?;
    if config.output_stride() != 32 {
        return Err(CheckpointError::content(
            ckpt_path,
            format!(
                "uses output stride {}; timm and torchvision classifiers use 32",
                config.output_stride()
            ),
        ));
    }
    let mut tensors: NamedTensors = ckpt
        .tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.to_kind(Kind::Float)))
        .collect();
    add_bn_counters(&mut tensors);
    let header = HashMap::from([("format".to_string(), "pt".to_string())]);
    write_safetensors(out, &tensors, Some(header))
}

/// What to build in Python to load an export of `config` strictly, where the default model of
/// the library would not: an Inception-V3 with or without its auxiliary classifier.
pub fn export_note(config: &ClassifierConfig, framework: Framework) -> Option<String> {
    let ClassifierConfig::InceptionV3(c) = config else {
        return None;
    };
    let classes = c.num_classes.unwrap_or(0);
    let aux = if c.aux_logits { "True" } else { "False" };
    Some(match framework {
        Framework::Timm => format!(
            "load it into timm.create_model(\"inception_v3\", num_classes={classes}, aux_logits={aux})"
        ),
        Framework::Torchvision => format!(
            "load it into torchvision.models.inception_v3(weights=None, num_classes={classes}, \
             aux_logits={aux}, init_weights=False)"
        ),
    })
}
