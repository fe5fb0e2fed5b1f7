//! The two designs as built here: parameter names and shapes (torchvision's for FPN), the C4
//! head's geometry, the body loaded from a classification checkpoint, and the refusals a
//! user meets when giving the wrong file as a backbone.

use backbones::{Arch, ClassifierArch, ClassifierConfig, ClassifierNet, ResNet, ResNetConfig};
use detection::model::load::{load_body, read_backbone_checkpoint};
use detection::model::roi_heads::Detections;
use detection::model::{DetectorConfig, FasterRcnn};
use detection::transform::{ImageTransform, TransformSpec};
use engine::checkpoint::{var_store_tensors, Checkpoint, Metadata, TaskKind};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

fn arch(name: &str) -> Arch {
    name.parse().unwrap()
}

fn shapes(vs: &nn::VarStore) -> BTreeMap<String, Vec<i64>> {
    vs.variables()
        .into_iter()
        .map(|(k, v)| (k, v.size()))
        .collect()
}

#[test]
fn fpn_model_has_torchvisions_parameter_names_and_shapes() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/fasterrcnn_fpn_keys.json"
    ))
    .unwrap();
    let keys: Vec<(String, Vec<i64>)> = serde_json::from_str(&text).unwrap();
    let torchvision: BTreeMap<String, Vec<i64>> = keys
        .into_iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .collect();
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = FasterRcnn::new(&vs.root(), &DetectorConfig::fpn(arch("resnet50"), 4, 1e-5));
    assert_eq!(shapes(&vs), torchvision);
}

#[test]
fn frozen_prefixes_name_the_stem_and_layer1_by_default() {
    let config = DetectorConfig::fpn(arch("resnet18d"), 3, 1e-5);
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = FasterRcnn::new(&vs.root(), &config);
    let prefixes = config.frozen_prefixes();
    assert_eq!(
        prefixes,
        [
            "backbone.body.conv1",
            "backbone.body.bn1",
            "backbone.body.layer1"
        ]
    );
    let names = shapes(&vs);
    for p in &prefixes {
        assert!(
            names.keys().any(|k| k.starts_with(&format!("{p}."))),
            "{p} names nothing"
        );
    }
    let all = DetectorConfig {
        trainable_layers: 5,
        ..config.clone()
    };
    assert!(all.frozen_prefixes().is_empty());
}

#[test]
fn c4_model_runs_layer4_on_14x14_rois_and_predicts_class_specific_boxes() {
    let config = DetectorConfig::c4(arch("resnet18"), 3, 1e-5);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = FasterRcnn::new(&vs.root(), &config);
    let names = shapes(&vs);
    // GluonCV: 1024-wide RPN conv, 15 anchors per position, K+1 scores and 4K boxes from
    // the pooled layer4 features (512 wide for a ResNet-18).
    assert_eq!(names["rpn.head.conv.0.0.weight"], [1024, 256, 3, 3]);
    assert_eq!(names["rpn.head.cls_logits.weight"], [15, 1024, 1, 1]);
    assert_eq!(names["roi_heads.box_predictor.cls_score.weight"], [4, 512]);
    assert_eq!(names["roi_heads.box_predictor.bbox_pred.weight"], [12, 512]);
    assert!(names.contains_key("backbone.body.layer4.1.conv2.weight"));
    assert!(!names.keys().any(|k| k.starts_with("backbone.fpn")));

    let transform = ImageTransform::new(
        &TransformSpec {
            min_size: 96,
            max_size: 160,
            ..TransformSpec::gluoncv_voc()
        },
        Device::Cpu,
    );
    let image = Tensor::randint(256, [120, 200, 3], (Kind::Uint8, Device::Cpu));
    let images = transform.images(&[image]);
    let _no_grad = tch::no_grad_guard();
    let features = model.features(&images.tensors, false);
    assert_eq!(features.len(), 1);
    // Stride 16 on the padded 96x160 batch.
    assert_eq!(features[0].size(), [1, 256, 6, 10]);
    let rois = [Tensor::from_slice(&[0f32, 0., 50., 40., 10., 20., 150., 90.]).view([2, 4])];
    let pooled = model.pooler.pool(&features, &rois, &images.image_sizes);
    assert_eq!(pooled.size(), [2, 256, 14, 14]);
    let (scores, deltas) = model.box_predictions(&features, &rois, &images, false);
    assert_eq!((scores.size(), deltas.size()), (vec![2, 4], vec![2, 12]));
    let found = model.detect(&images);
    assert_eq!(found.len(), 1);
    let d = &found[0];
    assert_eq!(d.boxes.size(), [d.len(), 4]);
    // GluonCV's C4 keeps every detection that survives the per-class NMS.
    assert_eq!(config.box_head.detections_per_img, None);
}

/// A classifier checkpoint of `arch` with arbitrary weights, written to `path`.
fn write_classifier(path: &Path, arch_name: &str) -> Checkpoint {
    let config = ResNetConfig::classifier(arch(arch_name), 7);
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = ResNet::new(&vs.root(), &config);
    let ckpt = Checkpoint {
        metadata: Metadata {
            task: TaskKind::Classification,
            arch: arch_name.into(),
            num_classes: 7,
            classes: (0..7).map(|i| format!("c{i}")).collect(),
            model: serde_json::to_value(&config).unwrap(),
            transform: None,
            config: None,
            epoch: None,
            iter: None,
            metrics: None,
        },
        tensors: var_store_tensors(&vs),
    };
    ckpt.write(path).unwrap();
    ckpt
}

#[test]
fn body_loads_by_name_from_a_classifier_without_its_fc() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resnet18d.safetensors");
    let written = write_classifier(&path, "resnet18d");
    let body = read_backbone_checkpoint(&path).unwrap();
    assert_eq!(body.config.arch, arch("resnet18d"));
    let config = DetectorConfig::fpn(body.config.arch, 2, 1e-5);
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = FasterRcnn::new(&vs.root(), &config);
    load_body(&vs, &body).unwrap();
    let vars = vs.variables();
    for name in [
        "conv1.0.weight",
        "layer2.0.downsample.1.weight",
        "layer4.1.bn2.running_var",
    ] {
        let loaded = &vars[&format!("backbone.body.{name}")];
        assert!(loaded.equal(&written.tensors[name]), "{name} not loaded");
    }
    assert!(!vars.keys().any(|k| k.contains("fc.")));

    // A body of another depth is refused with the names that do not fit.
    let other = DetectorConfig::fpn(arch("resnet34d"), 2, 1e-5);
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = FasterRcnn::new(&vs.root(), &other);
    let err = load_body(&vs, &body).unwrap_err().to_string();
    assert!(
        err.contains("resnet18d.safetensors") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn a_detection_checkpoint_or_an_unknown_arch_is_refused_as_a_backbone() {
    let dir = tempfile::tempdir().unwrap();
    let config = DetectorConfig::fpn(arch("resnet18"), 2, 1e-5);
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = FasterRcnn::new(&vs.root(), &config);
    let detector = Checkpoint {
        metadata: Metadata {
            task: TaskKind::Detection,
            arch: config.arch_name(),
            num_classes: 2,
            classes: vec!["a".into(), "b".into()],
            model: serde_json::to_value(&config).unwrap(),
            transform: Some(serde_json::to_value(TransformSpec::torchvision()).unwrap()),
            config: None,
            epoch: None,
            iter: None,
            metrics: None,
        },
        tensors: var_store_tensors(&vs),
    };
    let path = dir.path().join("det.safetensors");
    detector.write(&path).unwrap();
    let err = read_backbone_checkpoint(&path).unwrap_err().to_string();
    assert!(
        err.contains("det.safetensors")
            && err.contains("is a detection checkpoint (fasterrcnn_resnet18_fpn)")
            && err.contains("not a classification backbone"),
        "{err}"
    );

    let path = dir.path().join("odd.safetensors");
    let mut classifier = write_classifier(&path, "resnet18");
    classifier.metadata.arch = "resnet19z".into();
    classifier.write(&path).unwrap();
    let err = read_backbone_checkpoint(&path).unwrap_err().to_string();
    assert!(
        err.contains("odd.safetensors") && err.contains("'arch'") && err.contains("resnet19z"),
        "{err}"
    );

    // A classifier, but not a ResNet: the detector has no MobileNet body.
    let config = ClassifierConfig::classifier(ClassifierArch::MobileNetV1, 7);
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = ClassifierNet::new(&vs.root(), &config);
    let mut mobilenet = write_classifier(&path, "resnet18");
    mobilenet.metadata.arch = "mobilenet_v1".into();
    mobilenet.metadata.model = config.to_json();
    mobilenet.tensors = var_store_tensors(&vs);
    let path = dir.path().join("mobilenet.safetensors");
    mobilenet.write(&path).unwrap();
    let err = read_backbone_checkpoint(&path).unwrap_err().to_string();
    assert!(
        err.contains("mobilenet.safetensors")
            && err.contains(
                "is a mobilenet_v1 classifier; detection and segmentation start from a ResNet one"
            ),
        "{err}"
    );

    // Nor an Inception-V3 body (its auxiliary classifier included).
    let mut config = ClassifierConfig::classifier(ClassifierArch::InceptionV3, 7);
    config.set_aux_logits(true).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = ClassifierNet::new(&vs.root(), &config);
    let mut inception = write_classifier(&path, "resnet18");
    inception.metadata.arch = "inception_v3".into();
    inception.metadata.model = config.to_json();
    inception.tensors = var_store_tensors(&vs);
    let path = dir.path().join("inception.safetensors");
    inception.write(&path).unwrap();
    let err = read_backbone_checkpoint(&path).unwrap_err().to_string();
    assert!(
        err.contains("inception.safetensors")
            && err.contains(
                "is an inception_v3 classifier; detection and segmentation start from a ResNet one"
            ),
        "{err}"
    );
}

#[test]
fn a_batch_of_two_images_detects_what_each_image_detects_alone() {
    tch::manual_seed(3);
    let config = DetectorConfig::fpn(arch("resnet18"), 2, 1e-5);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = FasterRcnn::new(&vs.root(), &config);
    let transform = ImageTransform::new(&TransformSpec::torchvision(), Device::Cpu);
    // Both pad to 128x160 alone and together, so each sees the same features either way.
    let a = Tensor::randn([3, 120, 160], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([3, 100, 140], (Kind::Float, Device::Cpu));
    let together = model.detect(&transform.batch(vec![a.copy(), b.copy()]));
    for (i, image) in [a, b].into_iter().enumerate() {
        let alone = &model.detect(&transform.batch(vec![image]))[0];
        let both = &together[i];
        assert!(!alone.is_empty(), "image {i}: no detections to compare");
        assert_eq!(alone.len(), both.len(), "image {i}");
        // The same set of detections: scores a hair apart (batched convolutions sum in
        // another order) may swap two neighbours in the sorted lists, so each detection of the
        // image alone is matched to an unused one of the batch with its label, score and box.
        let rows = |d: &Detections| -> Vec<(i64, f64, Vec<f64>)> {
            let labels = Vec::<i64>::try_from(&d.labels).unwrap();
            let scores = Vec::<f64>::try_from(&d.scores.to_kind(Kind::Double)).unwrap();
            let boxes = Vec::<Vec<f64>>::try_from(&d.boxes.to_kind(Kind::Double)).unwrap();
            (0..labels.len())
                .map(|k| (labels[k], scores[k], boxes[k].clone()))
                .collect()
        };
        let mut unused = rows(both);
        for (label, score, bbox) in rows(alone) {
            let found = unused.iter().position(|(l, s, b)| {
                *l == label
                    && (s - score).abs() <= 1e-6 + 1e-5 * score.abs()
                    && b.iter()
                        .zip(&bbox)
                        .all(|(x, y)| (x - y).abs() <= 1e-3 + 1e-4 * y.abs())
            });
            let k = found.unwrap_or_else(|| {
                panic!("image {i}: ({label}, {score}, {bbox:?}) alone has no match batched")
            });
            unused.swap_remove(k);
        }
    }
}
