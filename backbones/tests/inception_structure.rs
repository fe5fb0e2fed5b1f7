//! Inception-V3 against table 1 of its paper and torchvision's and timm's `inception_v3`: the
//! names and shapes of both (with and without the auxiliary classifier), the factorised convs
//! and their padding, the map sizes at 299 and the smallest input (75), the auxiliary head in
//! training only, their initialisation, and zero-gamma refused (no residual blocks).

use backbones::inception::{InceptionConfig, InceptionInit, InceptionV3, MixedKind, FEATURES};
use backbones::layers::{BatchNorm2d, NormMode};
use backbones::network::ClassifierConfig;
use backbones::ClassifierArch;
use std::collections::BTreeMap;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

fn build(config: InceptionConfig) -> (nn::VarStore, InceptionV3) {
    let vs = nn::VarStore::new(Device::Cpu);
    let model = InceptionV3::new(&vs.root(), &config);
    (vs, model)
}

fn with_aux(num_classes: i64) -> InceptionConfig {
    InceptionConfig {
        aux_logits: true,
        ..InceptionConfig::classifier(num_classes)
    }
}

/// A `*_keys.json` fixture (make_golden.py) without BN's `num_batches_tracked` counters,
/// which are added on export, not kept.
fn pytorch_keys(file: &str) -> BTreeMap<String, Vec<i64>> {
    let path = format!(
        "{}/../tests/fixtures/pytorch/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let keys: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    keys.as_array()
        .unwrap()
        .iter()
        .filter(|k| !k[0].as_str().unwrap().ends_with("num_batches_tracked"))
        .map(|k| {
            let shape = k[1].as_array().unwrap();
            let shape = shape.iter().map(|d| d.as_i64().unwrap()).collect();
            (k[0].as_str().unwrap().to_string(), shape)
        })
        .collect()
}

fn ours(vs: &nn::VarStore) -> BTreeMap<String, Vec<i64>> {
    vs.variables()
        .into_iter()
        .map(|(name, t)| (name, t.size()))
        .collect()
}

#[test]
fn names_and_shapes_are_torchvisions_with_aux_and_timms_without() {
    let (vs, _m) = build(with_aux(1000));
    let torchvision = pytorch_keys("torchvision_inception_v3_keys.json");
    assert!(torchvision.contains_key("AuxLogits.conv1.conv.weight"));
    assert_eq!(ours(&vs), torchvision);
    let (vs, _m) = build(InceptionConfig::classifier(1000));
    let timm = pytorch_keys("timm_inception_v3_keys.json");
    assert!(!timm.keys().any(|k| k.starts_with("AuxLogits")));
    assert_eq!(ours(&vs), timm);
}

#[test]
fn the_mixed_blocks_are_the_papers_with_factorised_and_unpadded_convs() {
    let (_vs, m) = build(InceptionConfig::classifier(10));
    let kinds: Vec<MixedKind> = m
        .mixed_17
        .iter()
        .chain(&m.mixed_8)
        .map(|b| b.kind)
        .collect();
    use MixedKind::*;
    assert_eq!(kinds, [A, A, A, B, C, C, C, C, D, E, E]);
    // The stem: 3x3 convs, unpadded but for Conv2d_2b_3x3, the first at stride 2.
    let stem = [
        &m.conv2d_1a_3x3,
        &m.conv2d_2a_3x3,
        &m.conv2d_2b_3x3,
        &m.conv2d_3b_1x1,
        &m.conv2d_4a_3x3,
    ];
    let geometry: Vec<(Vec<i64>, i64, [i64; 2])> = stem
        .iter()
        .map(|b| (b.conv.weight.size(), b.conv.stride, b.conv.padding))
        .collect();
    assert_eq!(
        geometry,
        [
            (vec![32, 3, 3, 3], 2, [0, 0]),
            (vec![32, 32, 3, 3], 1, [0, 0]),
            (vec![64, 32, 3, 3], 1, [1, 1]),
            (vec![80, 64, 1, 1], 1, [0, 0]),
            (vec![192, 80, 3, 3], 1, [0, 0]),
        ]
    );
    // Mixed_6b: the 7x7s as 1x7 then 7x1 over 128 channels, each padded to keep 17x17.
    let c = &m.mixed_17[4];
    let seven: Vec<(Vec<i64>, [i64; 2])> = c.branches[1]
        .convs
        .iter()
        .map(|b| (b.conv.weight.size(), b.conv.padding))
        .collect();
    assert_eq!(
        seven,
        [
            (vec![128, 768, 1, 1], [0, 0]),
            (vec![128, 128, 1, 7], [0, 3]),
            (vec![192, 128, 7, 1], [3, 0]),
        ]
    );
    assert_eq!(c.branches[2].convs.len(), 5);
    // Mixed_6a and 7a reduce the grid with unpadded 3x3/2 convs beside a 3x3/2 max pool.
    for reduction in [&m.mixed_17[3], &m.mixed_8[0]] {
        let last: Vec<(i64, [i64; 2])> = reduction
            .branches
            .iter()
            .filter_map(|b| b.convs.last())
            .map(|b| (b.conv.stride, b.conv.padding))
            .collect();
        assert_eq!(last, [(2, [0, 0]), (2, [0, 0])]);
        let pool = reduction.branches.last().unwrap();
        assert!(pool.convs.is_empty() && pool.pool.is_some());
    }
    // Mixed_7b: two branches end in a 1x3 and a 3x1 side by side.
    let e = &m.mixed_8[1];
    let splits: Vec<Vec<Vec<i64>>> = e
        .branches
        .iter()
        .map(|b| b.split.iter().map(|s| s.conv.weight.size()).collect())
        .collect();
    assert_eq!(
        splits,
        [
            vec![],
            vec![vec![384, 384, 1, 3], vec![384, 384, 3, 1]],
            vec![vec![384, 384, 1, 3], vec![384, 384, 3, 1]],
            vec![],
        ]
    );
    // Every BN has eps 0.001 (torchvision's BasicConv2d).
    for b in m.basic_convs() {
        let BatchNorm2d::Trainable { eps, .. } = &b.bn else {
            panic!("trainable BN")
        };
        assert_eq!(*eps, 1e-3);
    }
    assert_eq!(m.basic_convs().len(), 94);
}

#[test]
fn at_75_px_the_last_maps_are_1x1_and_smaller_inputs_are_refused() {
    // The auxiliary classifier does not run in evaluation, so an Inception-V3 with one
    // evaluates at 75 px too.
    let (_vs, m) = build(with_aux(10));
    let x = Tensor::randn([2, 3, 75, 75], (Kind::Float, Device::Cpu));
    let features = tch::no_grad(|| m.features(&x, false));
    assert_eq!(features.size(), [2, FEATURES, 1, 1]);
    let (logits, aux) = tch::no_grad(|| m.forward_aux(&x, false));
    assert_eq!(logits.size(), [2, 10]);
    assert!(aux.is_none());
    let arch = ClassifierArch::InceptionV3;
    assert_eq!(arch.min_input_size(), 75);
    assert!(arch.check_input_size(75).is_ok());
    let err = arch.check_input_size(74).unwrap_err();
    assert!(err.contains("at least 75x75"), "{err}");
    // The body alone returns the pooled features.
    let (_vs, body) = build(InceptionConfig {
        num_classes: None,
        ..InceptionConfig::classifier(1)
    });
    let x = Tensor::randn([1, 3, 96, 80], (Kind::Float, Device::Cpu));
    assert_eq!(
        tch::no_grad(|| body.forward_t(&x, false)).size(),
        [1, FEATURES]
    );
}

#[test]
fn in_training_at_299_the_auxiliary_classifier_reads_mixed_6e_and_trains_what_precedes_it() {
    tch::manual_seed(0);
    let (vs, m) = build(InceptionConfig {
        dropout: 0.5,
        ..with_aux(5)
    });
    let x = Tensor::randn([2, 3, 299, 299], (Kind::Float, Device::Cpu));
    let (logits, aux) = m.forward_aux(&x, true);
    let aux = aux.expect("the auxiliary logits in training");
    assert_eq!((logits.size(), aux.size()), (vec![2, 5], vec![2, 5]));
    // The auxiliary loss alone reaches Mixed_6e and the stem, not Mixed_7* or fc.
    let vars = vs.variables();
    let names = [
        "AuxLogits.fc.weight",
        "Mixed_6e.branch_pool.conv.weight",
        "Conv2d_1a_3x3.conv.weight",
        "Mixed_7a.branch3x3_1.conv.weight",
        "fc.weight",
    ];
    let inputs: Vec<&Tensor> = names.iter().map(|n| &vars[*n]).collect();
    let grads = Tensor::run_backward(&[aux.square().sum(Kind::Float)], &inputs, false, true);
    let norms: Vec<f64> = grads
        .iter()
        .map(|g| {
            if g.defined() {
                g.abs().sum(Kind::Float).double_value(&[])
            } else {
                0.0
            }
        })
        .collect();
    assert!(norms[..3].iter().all(|n| *n > 0.0), "{names:?}: {norms:?}");
    assert_eq!(norms[3..], [0.0, 0.0], "{names:?}");
    // ModuleT's forward (what evaluation and the benches run) never runs the auxiliary head.
    assert_eq!(m.forward_t(&x.narrow(0, 0, 1), false).size(), [1, 5]);
}

#[test]
fn initialisation_is_torchvisions_and_timms() {
    tch::manual_seed(3);
    let (vs, _m) = build(with_aux(1000));
    let vars = vs.variables();
    let std = |name: &str| vars[name].std(true).double_value(&[]);
    // Normal, std 0.1 (0.01 and 0.001 for the auxiliary 5x5 conv and fc), whatever the fan-in.
    for (name, expected, tolerance) in [
        ("Mixed_7c.branch3x3dbl_2.conv.weight", 0.1, 0.01),
        ("Conv2d_2a_3x3.conv.weight", 0.1, 0.02),
        ("fc.weight", 0.1, 0.01),
        ("AuxLogits.conv1.conv.weight", 0.01, 0.01),
        ("AuxLogits.fc.weight", 0.001, 0.01),
    ] {
        let s = std(name);
        assert!(
            (s / expected - 1.0).abs() < tolerance,
            "{name}: std {s} vs {expected}"
        );
    }
    // PyTorch's default bias: U(±1/sqrt(inputs)).
    let bound = 1.0 / (FEATURES as f64).sqrt();
    let max = vars["fc.bias"].abs().max().double_value(&[]);
    assert!(max <= bound && max > 0.9 * bound, "{max} vs {bound}");
    assert_eq!(
        vars["Mixed_5b.branch1x1.bn.weight"]
            .mean(Kind::Float)
            .double_value(&[]),
        1.0
    );
}

#[test]
fn training_starts_from_gluoncvs_msra_prelu() {
    // MXNet's MSRAPrelu (factor "avg", slope 0.25): std sqrt(2 / 1.0625 / ((fan_in + fan_out)
    // / 2)), fans counted over the kernel, as GluonCV's train_imagenet.py starts its networks.
    let arch: ClassifierArch = "inception_v3".parse().unwrap();
    let ClassifierConfig::InceptionV3(config) =
        ClassifierConfig::for_training(arch, 1000, false, NormMode::Batch).unwrap()
    else {
        panic!("an Inception-V3 config")
    };
    assert_eq!(config.init, InceptionInit::GluonCV);
    tch::manual_seed(3);
    let (vs, _m) = build(config);
    let vars = vs.variables();
    let std = |name: &str| vars[name].std(true).double_value(&[]);
    let msra = |fan_in: f64, fan_out: f64| (2.0 / 1.0625 / ((fan_in + fan_out) / 2.0)).sqrt();
    for (name, expected, tolerance) in [
        // 448 -> 384, 3x3
        (
            "Mixed_7c.branch3x3dbl_2.conv.weight",
            msra(448.0 * 9.0, 384.0 * 9.0),
            0.01,
        ),
        // 32 -> 32, 3x3: 9,216 weights
        (
            "Conv2d_2a_3x3.conv.weight",
            msra(32.0 * 9.0, 32.0 * 9.0),
            0.03,
        ),
        // 160 -> 160, 1x7
        (
            "Mixed_6c.branch7x7_2.conv.weight",
            msra(160.0 * 7.0, 160.0 * 7.0),
            0.01,
        ),
        ("fc.weight", msra(2048.0, 1000.0), 0.01),
        (
            "AuxLogits.conv1.conv.weight",
            msra(128.0 * 25.0, 768.0 * 25.0),
            0.01,
        ),
        ("AuxLogits.fc.weight", msra(768.0, 1000.0), 0.01),
    ] {
        let s = std(name);
        assert!(
            (s / expected - 1.0).abs() < tolerance,
            "{name}: std {s} vs {expected}"
        );
        let mean = vars[name].mean(Kind::Float).double_value(&[]);
        assert!(mean.abs() < 0.05 * expected, "{name}: mean {mean}");
    }
    for bias in ["fc.bias", "AuxLogits.fc.bias"] {
        assert_eq!(vars[bias].abs().max().double_value(&[]), 0.0, "{bias}");
    }
    let bn = |name: &str| vars[name].mean(Kind::Float).double_value(&[]);
    assert_eq!(bn("Mixed_5b.branch1x1.bn.weight"), 1.0);
    assert_eq!(bn("Mixed_5b.branch1x1.bn.bias"), 0.0);
    // Written into the checkpoint's model config; a config without the key (every
    // checkpoint written before it) reads as torchvision's, which built them.
    let json = serde_json::to_value(classifier_with(InceptionInit::GluonCV)).unwrap();
    assert_eq!(json["init"], "gluoncv");
    let mut old = json.clone();
    old.as_object_mut().unwrap().remove("init");
    let read: InceptionConfig = serde_json::from_value(old).unwrap();
    assert_eq!(read.init, InceptionInit::Torchvision);
}

fn classifier_with(init: InceptionInit) -> InceptionConfig {
    InceptionConfig {
        init,
        ..InceptionConfig::classifier(10)
    }
}

#[test]
fn training_builds_torchvisions_model_and_refuses_zero_gamma() {
    let arch: ClassifierArch = "inception_v3".parse().unwrap();
    assert!(!arch.has_residual_blocks());
    assert!(arch.has_aux_classifier());
    let err = ClassifierConfig::for_training(arch, 10, true, NormMode::Batch).unwrap_err();
    assert!(err.contains("no residual blocks"), "{err}");
    let mut config = ClassifierConfig::for_training(arch, 10, false, NormMode::Batch).unwrap();
    let ClassifierConfig::InceptionV3(c) = &config else {
        panic!("an Inception-V3 config")
    };
    assert!(c.aux_logits);
    assert_eq!(c.dropout, 0.5);
    assert_eq!(c.init, InceptionInit::GluonCV);
    config.set_aux_logits(false).unwrap();
    assert!(!config.aux_logits());
    // Imported weights are timm's default model: no auxiliary classifier, no dropout.
    let imported = ClassifierConfig::classifier(arch, 1000);
    assert!(!imported.aux_logits());
    let ClassifierConfig::InceptionV3(c) = &imported else {
        panic!("an Inception-V3 config")
    };
    assert_eq!(c.init, InceptionInit::Torchvision);
    // Only Inception-V3 has an auxiliary classifier to put on.
    let mut resnet = ClassifierConfig::classifier("resnet50d".parse().unwrap(), 10);
    let err = resnet.set_aux_logits(true).unwrap_err();
    assert!(err.contains("only inception_v3"), "{err}");
    assert!(resnet.set_aux_logits(false).is_ok());
}
