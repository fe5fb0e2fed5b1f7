//! The engine's parameter groups on a ResNet-18, a MobileNet v1 and an Inception-V3: the
//! paper's no-bias-decay rule decays exactly the convolution and fc weights, and freezing by
//! prefix leaves the rest trainable.

use backbones::{
    Arch, InceptionConfig, InceptionV3, MobileNetConfig, MobileNetV1, ResNet, ResNetConfig,
};
use engine::param_groups::{decay_flags, freeze, unmatched_prefixes};
use tch::{nn, Device};

fn resnet18() -> nn::VarStore {
    let vs = nn::VarStore::new(Device::Cpu);
    let arch: Arch = "resnet18".parse().unwrap();
    let _model = ResNet::new(&vs.root(), &ResNetConfig::classifier(arch, 10));
    vs
}

/// The 20 convolutions of a ResNet-18 (stem, two per basic block, three 1x1 shortcuts)
/// and the fc weight: exactly the tensors that decay.
fn resnet18_decayed_names() -> Vec<String> {
    let mut names = vec!["conv1.weight".to_string(), "fc.weight".to_string()];
    for (stage, shortcut) in [(1, false), (2, true), (3, true), (4, true)] {
        for block in 0..2 {
            for conv in ["conv1", "conv2"] {
                names.push(format!("layer{stage}.{block}.{conv}.weight"));
            }
        }
        if shortcut {
            names.push(format!("layer{stage}.0.downsample.0.weight"));
        }
    }
    names.sort();
    names
}

#[test]
fn no_bias_decay_keeps_only_conv_and_fc_weights() {
    let vs = resnet18();
    let flags = decay_flags(&vs, true);
    let decayed: Vec<String> = flags
        .iter()
        .filter(|(_, _, d)| *d)
        .map(|(n, _, _)| n.clone())
        .collect();
    assert_eq!(decayed, resnet18_decayed_names());
    assert_eq!(decayed.len(), 21);
    for (name, t, decay) in &flags {
        if !decay {
            assert_eq!(t.dim(), 1, "{name}");
            assert!(
                name.ends_with(".weight") || name.ends_with(".bias"),
                "{name}"
            );
        }
    }
    // 20 BNs with gamma and beta, plus fc.bias.
    assert_eq!(flags.iter().filter(|(_, _, d)| !*d).count(), 41);
}

#[test]
fn without_the_flag_every_trainable_variable_decays_and_buffers_never_appear() {
    let vs = resnet18();
    let flags = decay_flags(&vs, false);
    assert_eq!(flags.len(), 21 + 41);
    assert!(flags.iter().all(|(_, _, d)| *d));
    assert!(flags
        .iter()
        .all(|(n, _, _)| !n.contains("running_") && !n.contains("num_batches")));
    let names: Vec<&String> = flags.iter().map(|(n, _, _)| n).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

#[test]
fn freezing_by_prefix_leaves_the_rest_trainable() {
    let vs = resnet18();
    let before = decay_flags(&vs, false).len();
    let frozen = freeze(&vs, &["conv1".into(), "bn1".into(), "layer1".into()]);
    // conv1 (1) + bn1 (2) + layer1: 2 blocks x (2 convs + 2 BNs x 2) = 12.
    assert_eq!(frozen, 15);
    let trainable = decay_flags(&vs, false);
    assert_eq!(trainable.len(), before - 15);
    assert!(trainable
        .iter()
        .all(|(n, _, _)| !n.starts_with("layer1.") && !n.starts_with("conv1")));
    assert_eq!(
        unmatched_prefixes(&vs, &["layer1".to_string(), "layer9".to_string()]),
        vec!["layer9".to_string()]
    );
}

#[test]
fn frozen_variables_never_appear() {
    let mut vs = resnet18();
    assert!(!decay_flags(&vs, true).is_empty());
    vs.freeze();
    assert!(decay_flags(&vs, true).is_empty());
    assert!(decay_flags(&vs, false).is_empty());
}

#[test]
fn no_bias_decay_on_mobilenet_v1_keeps_the_conv_and_classifier_weights() {
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = MobileNetV1::new(&vs.root(), &MobileNetConfig::classifier(10));
    let flags = decay_flags(&vs, true);
    let decayed: Vec<&String> = flags
        .iter()
        .filter(|(_, _, d)| *d)
        .map(|(n, _, _)| n)
        .collect();
    // The stem, 13 depthwise and 13 pointwise convs, the classifier. Depthwise filters decay
    // as GluonCV's rule (by name: gamma, beta, bias) decays them, although the MobileNet
    // paper advises little or no decay on them.
    assert_eq!(decayed.len(), 28);
    assert_eq!(
        decayed
            .iter()
            .filter(|n| n.ends_with("conv_dw.weight"))
            .count(),
        13
    );
    assert!(decayed.contains(&&"classifier.weight".to_string()));
    assert!(decayed.contains(&&"conv_stem.weight".to_string()));
    // 27 BNs with gamma and beta, plus classifier.bias.
    let kept: Vec<&String> = flags
        .iter()
        .filter(|(_, _, d)| !*d)
        .map(|(n, _, _)| n)
        .collect();
    assert_eq!(kept.len(), 55);
    assert!(kept.contains(&&"classifier.bias".to_string()));
}

#[test]
fn no_bias_decay_on_inception_v3_keeps_the_conv_and_fc_weights_auxiliary_head_included() {
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = InceptionV3::new(
        &vs.root(),
        &InceptionConfig::for_training(10, Default::default()),
    );
    let flags = decay_flags(&vs, true);
    let (decayed, kept): (Vec<_>, Vec<_>) = flags.iter().partition(|(_, _, d)| *d);
    let decayed: Vec<&String> = decayed.iter().map(|(n, _, _)| n).collect();
    let kept: Vec<&String> = kept.iter().map(|(n, _, _)| n).collect();
    // 94 convs on the inference path, the auxiliary classifier's 2, fc and AuxLogits.fc.
    assert_eq!(decayed.len(), 98);
    assert!(decayed
        .iter()
        .all(|n| n.ends_with(".conv.weight") || n.ends_with("fc.weight")));
    assert!(decayed.contains(&&"AuxLogits.fc.weight".to_string()));
    // 96 BNs' gamma and beta (eps 0.001, no bias in any conv), and the two fc biases.
    assert_eq!(kept.len(), 194);
    assert!(kept
        .iter()
        .all(|n| n.ends_with(".bn.weight") || n.ends_with(".bn.bias") || n.ends_with("fc.bias")));
    assert!(kept.contains(&&"fc.bias".to_string()));
    assert!(kept.contains(&&"AuxLogits.fc.bias".to_string()));
}
