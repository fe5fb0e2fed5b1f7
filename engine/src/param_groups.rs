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
}
