//! MobileNet v1 against table 1 of its paper and timm's `mobilenetv1_100`: the 13 blocks'
//! strides and widths, depthwise convs, timm's names and shapes, the feature map at stride 32,
//! timm's initialisation, and zero-gamma refused (no residual blocks).

use backbones::layers::NormMode;
use backbones::mobilenet::{MobileNetConfig, MobileNetV1, FEATURES};
use backbones::network::ClassifierConfig;
use backbones::ClassifierArch;
use std::collections::BTreeMap;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

fn build(num_classes: Option<i64>) -> (nn::VarStore, MobileNetV1) {
    let config = MobileNetConfig {
        num_classes,
        ..MobileNetConfig::classifier(1)
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let model = MobileNetV1::new(&vs.root(), &config);
    (vs, model)
}

#[test]
fn the_blocks_are_table_1() {
    let (_vs, m) = build(Some(10));
    let blocks: Vec<_> = m.stages.iter().flatten().collect();
    assert_eq!(blocks.len(), 13);
    let strides: Vec<i64> = blocks.iter().map(|b| b.conv_dw.stride).collect();
    assert_eq!(strides, [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]);
    let widths: Vec<i64> = blocks.iter().map(|b| b.conv_pw.weight.size()[0]).collect();
    assert_eq!(
        widths,
        [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    );
    assert_eq!(m.conv_stem.stride, 2);
    assert_eq!(m.conv_stem.weight.size(), [32, 3, 3, 3]);
    let mut channels = 32;
    for b in &blocks {
        // One 3x3 filter per channel, then a 1x1 mixing them.
        assert_eq!(b.conv_dw.groups, channels);
        assert_eq!(b.conv_dw.weight.size(), [channels, 1, 3, 3]);
        assert_eq!(b.conv_dw.padding, [1, 1]);
        assert_eq!(b.conv_pw.groups, 1);
        assert_eq!(b.conv_pw.weight.size()[1..], [channels, 1, 1]);
        channels = b.conv_pw.weight.size()[0];
    }
}

#[test]
fn names_and_shapes_are_timms() {
    // tests/fixtures/pytorch/timm_mobilenetv1_100_keys.json (make_golden.py); BN's
    // num_batches_tracked counters are added on export, not kept.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/pytorch/timm_mobilenetv1_100_keys.json"
    );
    let keys: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let timm: BTreeMap<String, Vec<i64>> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| !k[0].as_str().unwrap().ends_with("num_batches_tracked"))
        .map(|k| {
            let shape = k[1].as_array().unwrap();
            let shape = shape.iter().map(|d| d.as_i64().unwrap()).collect();
            (k[0].as_str().unwrap().to_string(), shape)
        })
        .collect();
    let (vs, _m) = build(Some(1000));
    let ours: BTreeMap<String, Vec<i64>> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, t.size()))
        .collect();
    assert_eq!(ours, timm);
}

#[test]
fn features_are_1024_channels_at_stride_32_and_the_body_pools_them() {
    let (_vs, m) = build(Some(10));
    let x = Tensor::randn([2, 3, 224, 224], (Kind::Float, Device::Cpu));
    let features = tch::no_grad(|| m.features(&x, false));
    assert_eq!(features.size(), [2, FEATURES, 7, 7]);
    // ReLU6 bounds every activation.
    assert!(features.min().double_value(&[]) >= 0.0);
    assert!(features.max().double_value(&[]) <= 6.0);
    assert_eq!(m.forward_t(&x, false).size(), [2, 10]);
    let (_vs, body) = build(None);
    let x = Tensor::randn([1, 3, 64, 96], (Kind::Float, Device::Cpu));
    assert_eq!(body.forward_t(&x, false).size(), [1, FEATURES]);
}

#[test]
fn initialisation_is_timms() {
    tch::manual_seed(3);
    let (vs, m) = build(Some(1000));
    // timm's EfficientNet init: normal with std sqrt(2 / fan_out), the fan-out of one group.
    let dw = &m.stages[3][1].conv_dw.weight; // 512 x 1 x 3 x 3
    let std = dw.std(true).double_value(&[]);
    let expected = (2.0f64 / 9.0).sqrt();
    assert!(
        (std / expected - 1.0).abs() < 0.05,
        "dw std {std} vs {expected}"
    );
    let pw = &m.stages[3][1].conv_pw.weight; // 512 x 512 x 1 x 1
    let std = pw.std(true).double_value(&[]);
    let expected = (2.0f64 / 512.0).sqrt();
    assert!(
        (std / expected - 1.0).abs() < 0.02,
        "pw std {std} vs {expected}"
    );
    // The head: U(-1/sqrt(classes), 1/sqrt(classes)), bias 0.
    let vars = vs.variables();
    let bound = 1.0 / 1000f64.sqrt();
    let max = vars["classifier.weight"].abs().max().double_value(&[]);
    assert!(max <= bound && max > 0.9 * bound, "{max} vs {bound}");
    assert_eq!(vars["classifier.bias"].abs().max().double_value(&[]), 0.0);
}

#[test]
fn zero_gamma_is_refused_for_want_of_residual_blocks() {
    let arch: ClassifierArch = "mobilenet_v1".parse().unwrap();
    assert!(!arch.has_residual_blocks());
    let err = ClassifierConfig::for_training(arch, 10, true, NormMode::Batch).unwrap_err();
    assert!(err.contains("no residual blocks"), "{err}");
    let config = ClassifierConfig::for_training(arch, 10, false, NormMode::Frozen).unwrap();
    assert_eq!(config.arch(), arch);
    assert_eq!(config.num_classes(), Some(10));
}
