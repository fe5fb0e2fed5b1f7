//! An exponential moving average of the weights, evaluated (and saved as `last`/`best`) in
//! place of the raw weights. After each optimiser step:
//!
//! ```text
//! trainable float parameter:  ema = decay * ema + (1 - decay) * param
//! anything else (BN running statistics, frozen parameters, integer buffers):  ema = value
//! ```
//!
//! What is averaged, against timm's variants: timm's `ModelEmaV2` and `ModelEmaV3` (default)
//! average every entry of the state dict, parameters and buffers alike, so their BN running
//! statistics are an average of running averages. `ModelEmaV3(exclude_buffers=True)` copies
//! the buffers instead, which is what this does: the running statistics stay those of the
//! batches the current weights saw, the BN layers of the averaged model are not re-estimated,
//! and frozen parameters (which never move) are simply copied. There is no decay warmup
//! (timm's V3 `use_warmup`) and the average is updated every step (timm's `--model-ema`
//! default), on the device, without a host sync.

use super::optim::cpu_copy;
use crate::checkpoint::NamedTensors;
use tch::{nn, Kind, Tensor};

const PREFIX: &str = "ema.";

/// The averaged copy of every variable of a VarStore, on its device.
pub struct Ema {
    decay: f64,
    /// `1 - decay` as a 0-dim device tensor: the update is one fused `addcmul` per tensor.
    weight: Tensor,
    tensors: NamedTensors,
}

fn is_averaged(t: &Tensor) -> bool {
    t.requires_grad() && t.is_floating_point()
}

impl Ema {
    /// Starts from a copy of the current variables. `decay` in [0, 1] (timm: 0.9998);
    /// check it first with [`validate_decay`].
    pub fn new(vs: &nn::VarStore, decay: f64) -> Self {
        let _guard = tch::no_grad_guard();
        let tensors = vs
            .variables()
            .into_iter()
            .map(|(name, t)| (name, t.detach().copy()))
            .collect();
        Ema {
            decay,
            weight: Tensor::full([], 1.0 - decay, (Kind::Float, vs.device())),
            tensors,
        }
    }

    pub fn decay(&self) -> f64 {
        self.decay
    }

    /// Moves the average towards the VarStore's current variables (same names as at `new`;
    /// variables the average does not know are ignored).
    pub fn update(&mut self, vs: &nn::VarStore) {
        let _guard = tch::no_grad_guard();
        for (name, value) in vs.variables() {
            let Some(ema) = self.tensors.get_mut(&name) else {
                continue;
            };
            if is_averaged(&value) {
                let _ = ema.g_mul_scalar_(self.decay).addcmul_(&value, &self.weight);
            } else {
                ema.copy_(&value);
            }
        }
    }

    /// The averaged variables by the model's names (load them into a model to evaluate it).
    pub fn tensors(&self) -> &NamedTensors {
        &self.tensors
    }

    /// CPU copies named `ema.<variable name>`.
    pub fn state(&self) -> NamedTensors {
        self.tensors
            .iter()
            .map(|(name, t)| (format!("{PREFIX}{name}"), cpu_copy(t)))
            .collect()
    }

    /// Restores what [`Ema::state`] saved: every variable with its shape; tensors named
    /// otherwise than `ema.*` are ignored. Nothing is changed on error.
    pub fn load_state(&mut self, state: &NamedTensors) -> Result<(), String> {
        let mut problems = Vec::new();
        for (name, t) in &self.tensors {
            let key = format!("{PREFIX}{name}");
            match state.get(&key) {
                None => problems.push(format!("missing {key}")),
                Some(s) if s.size() != t.size() => problems.push(format!(
                    "{key} has shape {:?}, the variable {:?}",
                    s.size(),
                    t.size()
                )),
                Some(_) => {}
            }
        }
        for key in state.keys().filter(|k| k.starts_with(PREFIX)) {
            if !self.tensors.contains_key(&key[PREFIX.len()..]) {
                problems.push(format!("unexpected {key} (no such variable)"));
            }
        }
        if !problems.is_empty() {
            return Err(format!(
                "the weight average does not fit the model: {}",
                problems.join("; ")
            ));
        }
        let _guard = tch::no_grad_guard();
        for (name, t) in self.tensors.iter_mut() {
            t.copy_(&state[&format!("{PREFIX}{name}")]);
        }
        Ok(())
    }
}

/// Rejects a decay outside [0, 1].
pub fn validate_decay(decay: f64) -> Result<(), String> {
    if decay.is_finite() && (0.0..=1.0).contains(&decay) {
        Ok(())
    } else {
        Err(format!("EMA decay must be in [0, 1], not {decay}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    /// A weight [1, 2] (trainable) and a running mean [10] (buffer).
    fn store() -> (nn::VarStore, Tensor, Tensor) {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32, 2.0]));
        let mut m = vs.root().zeros_no_train("running_mean", &[1]);
        tch::no_grad(|| {
            let _ = m.fill_(10.0);
        });
        (vs, w, m)
    }

    fn set(t: &Tensor, v: &[f32]) {
        tch::no_grad(|| t.shallow_clone().copy_(&Tensor::from_slice(v)));
    }

    #[test]
    fn averages_parameters_and_copies_buffers() {
        let (vs, w, m) = store();
        let mut ema = Ema::new(&vs, 0.9);
        assert_eq!(values(&ema.tensors()["w"]), vec![1.0, 2.0]);
        // Step 1: w = [3, -2]: ema = 0.9 * [1, 2] + 0.1 * [3, -2] = [1.2, 1.6].
        set(&w, &[3.0, -2.0]);
        set(&m, &[7.0]);
        ema.update(&vs);
        let got = values(&ema.tensors()["w"]);
        assert!(
            (got[0] - 1.2).abs() < 1e-6 && (got[1] - 1.6).abs() < 1e-6,
            "{got:?}"
        );
        assert_eq!(values(&ema.tensors()["running_mean"]), vec![7.0]);
        // Step 2: w = [3, -2] again: ema = 0.9 * [1.2, 1.6] + 0.1 * [3, -2] = [1.38, 1.24].
        ema.update(&vs);
        let got = values(&ema.tensors()["w"]);
        assert!(
            (got[0] - 1.38).abs() < 1e-6 && (got[1] - 1.24).abs() < 1e-6,
            "{got:?}"
        );
        // The model's own weights are untouched.
        assert_eq!(values(&w), vec![3.0, -2.0]);
    }

    #[test]
    fn frozen_parameters_are_copied() {
        let (mut vs, w, _) = store();
        let mut ema = Ema::new(&vs, 0.5);
        vs.freeze();
        set(&w, &[5.0, 5.0]);
        ema.update(&vs);
        assert_eq!(values(&ema.tensors()["w"]), vec![5.0, 5.0]);
    }

    #[test]
    fn state_round_trips() {
        let (vs, w, _) = store();
        let mut ema = Ema::new(&vs, 0.9);
        set(&w, &[3.0, -2.0]);
        ema.update(&vs);
        let state = ema.state();
        assert!(state.contains_key("ema.w") && state.contains_key("ema.running_mean"));
        let mut restored = Ema::new(&vs, 0.9);
        restored.load_state(&state).unwrap();
        ema.update(&vs);
        restored.update(&vs);
        assert_eq!(
            values(&restored.tensors()["w"]),
            values(&ema.tensors()["w"])
        );

        let mut bad = state;
        bad.remove("ema.w");
        bad.insert(
            "ema.x".into(),
            Tensor::zeros([1], (Kind::Float, Device::Cpu)),
        );
        let err = restored.load_state(&bad).unwrap_err();
        assert!(
            err.contains("missing ema.w") && err.contains("unexpected ema.x"),
            "{err}"
        );
    }

    #[test]
    fn decay_validation() {
        assert!(validate_decay(0.9998).is_ok());
        assert!(validate_decay(1.5).unwrap_err().contains("EMA decay"));
    }
}
