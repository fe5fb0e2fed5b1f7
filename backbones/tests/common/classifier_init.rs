//! `backbone init` as a library call, for the tests of the packages downstream of backbones
//! (detection, segmentation): Cargo hands a test only its own package's binaries, so they
//! cannot run `backbone`. Included by path (`#[path = ...] mod classifier_init;`);
//! backbones/tests/classifier_init.rs checks that it writes what the command writes.

use backbones::classifier::default_transform;
use backbones::interop::imagenet_classes;
use backbones::{Arch, ResNet, ResNetConfig};
use datasets::classify::{EvalTransform, Normalization};
use engine::checkpoint::{var_store_tensors, Checkpoint, Metadata, TaskKind};
use std::path::Path;
use std::sync::Mutex;
use tch::{nn, Device};

/// Writes to `path` what `backbone init --arch ARCH --num-classes N --input-size SIDE PATH`
/// writes (seed 0, no zero-gamma).
pub fn init_classifier(path: &Path, arch: &str, num_classes: i64, input_size: usize) {
    // The seed is libtorch's global generator: tests running side by side must not draw from
    // it between another's seeding and its last weight.
    static SEEDED: Mutex<()> = Mutex::new(());
    let _one_at_a_time = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(0);
    let arch: Arch = arch.parse().unwrap();
    let config = ResNetConfig::classifier(arch, num_classes);
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = ResNet::new(&vs.root(), &config);
    let transform = if input_size == 224 {
        default_transform()
    } else {
        EvalTransform::for_input_size(input_size, Normalization::IMAGENET)
    };
    let classes = if num_classes == 1000 {
        imagenet_classes()
    } else {
        (0..num_classes).map(|i| format!("class_{i}")).collect()
    };
    let checkpoint = Checkpoint {
        metadata: Metadata {
            task: TaskKind::Classification,
            arch: arch.to_string(),
            num_classes,
            classes,
            model: serde_json::to_value(&config).unwrap(),
            transform: Some(serde_json::to_value(&transform).unwrap()),
            config: None,
            epoch: None,
            iter: None,
            metrics: None,
        },
        tensors: var_store_tensors(&vs),
    };
    checkpoint.write(path).unwrap();
}

/// `e2e::tiny::checkpoint` without the binary: a fresh ResNet-18 classifier of three classes
/// at 32 px.
#[allow(dead_code)]
pub fn tiny_checkpoint(path: &Path) {
    init_classifier(path, "resnet18", 3, 32);
}
