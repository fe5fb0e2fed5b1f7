//! "No bias decay" (section 5.1 of the paper): weight decay is applied to the weights of
//! convolutions and fully-connected layers only, never to biases or to batch-norm gamma and
//! beta. The paper's reasoning: decaying those pushes towards a scale or offset of zero, which
//! is a constraint on the function, not a regularisation of its complexity.
//!
//! The rule used is timm's: a parameter decays unless it has at most one dimension (BN
//! gamma and beta, every bias) or its name ends in `.bias`. GluonCV selects the same set by
//! name (`.*beta|.*gamma|.*bias`).

use std::collections::BTreeMap;
use tch::nn::VarStore;
use tch::Tensor;

/// Whether `prefix` names `name` or one of its enclosing modules: whole dotted components
/// only, so `layer1` covers `layer1.0.conv1.weight` but not `layer10.weight`.
pub fn covers(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// The learning-rate multiplier of `name`: that of the longest prefix in `rules` that covers
/// it, else 1.
pub fn lr_multiplier(name: &str, rules: &BTreeMap<String, f64>) -> f64 {
    rules
        .iter()
        .filter(|(prefix, _)| covers(prefix, name))
        .max_by_key(|(prefix, _)| prefix.len())
        .map_or(1.0, |(_, mult)| *mult)
}

/// Prefixes that cover no variable of `vs` (a typo in a recipe would otherwise train
/// everything at the wrong rate, silently).
pub fn unmatched_prefixes<'a>(
    vs: &VarStore,
    prefixes: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    let names: Vec<String> = vs.variables().into_keys().collect();
    prefixes
        .into_iter()
        .filter(|p| !names.iter().any(|n| covers(p, n)))
        .cloned()
        .collect()
}

/// Stops training the variables under `prefixes` (they keep their values; BN running
/// statistics of frozen modules still follow the data in training mode, as in PyTorch when a
/// parameter's `requires_grad` is turned off). Returns how many tensors were frozen.
pub fn freeze(vs: &VarStore, prefixes: &[String]) -> usize {
    let mut frozen = 0;
    for (name, t) in vs.variables() {
        if t.requires_grad() && prefixes.iter().any(|p| covers(p, &name)) {
            let _ = t.set_requires_grad(false);
            frozen += 1;
        }
    }
    frozen
}

/// Whether the parameter `name` of shape rank `dim` takes weight decay under no-bias-decay.
pub fn decays_under_no_bias_decay(name: &str, dim: usize) -> bool {
    dim > 1 && !name.ends_with(".bias")
}

/// Every trainable variable of `vs` (those with `requires_grad`; frozen parameters and
/// buffers such as BN running statistics are left out), sorted by name, with whether weight
/// decay applies to it. Without `no_bias_decay` every trainable variable decays.
///
/// The tensors are shallow clones: they share storage with the VarStore's variables.
pub fn decay_flags(vs: &VarStore, no_bias_decay: bool) -> Vec<(String, Tensor, bool)> {
    let mut flags: Vec<(String, Tensor, bool)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .map(|(name, t)| {
            let decay = !no_bias_decay || decays_under_no_bias_decay(&name, t.dim());
            (name, t, decay)
        })
        .collect();
    flags.sort_by(|a, b| a.0.cmp(&b.0));
    flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Arch, ResNet, ResNetConfig};
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
    fn prefixes_cover_whole_components_and_the_longest_wins() {
        assert!(covers("layer1", "layer1.0.conv1.weight"));
        assert!(covers("layer1.0", "layer1.0.conv1.weight"));
        assert!(covers("fc.weight", "fc.weight"));
        assert!(!covers("layer1", "layer10.weight"));
        assert!(!covers("layer1.0.conv", "layer1.0.conv1.weight"));
        let rules = BTreeMap::from([("layer4".to_string(), 10.0), ("layer4.2".to_string(), 2.0)]);
        assert_eq!(lr_multiplier("layer4.0.conv1.weight", &rules), 10.0);
        assert_eq!(lr_multiplier("layer4.2.bn3.bias", &rules), 2.0);
        assert_eq!(lr_multiplier("fc.weight", &rules), 1.0);
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
}
