//! Dynamic loss scaling for fp16 training (PyTorch's `GradScaler`): the loss is multiplied
//! by a scale `S` before backward so small fp16 gradients do not flush to zero; gradients are
//! divided by `S` before the optimiser step.
//!
//! ```text
//! start S = 2^16
//! any gradient inf/NaN  →  skip the step, S = S * 0.5, streak = 0
//! otherwise             →  streak += 1; when streak reaches 2000: S = S * 2, streak = 0
//! ```
//!
//! The scale, the streak and the found-inf flag stay on the device, updated by libtorch's
//! own AMP kernels (`_amp_foreach_non_finite_check_and_unscale_`, `_amp_update_scale_`,
//! which libtorch 2.11 implements for CPU and CUDA), so a training step never waits for the
//! GPU to tell the host whether it overflowed.

use crate::checkpoint::NamedTensors;
use crate::optim::cpu_copy;
use tch::{Device, Kind, Tensor};

const SCALE: &str = "loss_scaler.scale";
const GROWTH_TRACKER: &str = "loss_scaler.growth_tracker";

/// The loss scale and its growth streak, on the training device.
pub struct LossScaler {
    /// 0-dim f32.
    scale: Tensor,
    /// 0-dim i32: consecutive steps without inf/NaN since the last change of scale.
    growth_tracker: Tensor,
    growth_factor: f64,
    backoff_factor: f64,
    growth_interval: i64,
}

impl LossScaler {
    /// PyTorch's defaults: scale 65536, x2 after 2000 finite steps, x0.5 on overflow.
    pub fn new(device: Device) -> Self {
        Self::with_interval(device, 2000)
    }

    /// The defaults with another growth interval (tests use a short one).
    pub fn with_interval(device: Device, growth_interval: i64) -> Self {
        LossScaler {
            scale: Tensor::full([], 65536.0, (Kind::Float, device)),
            growth_tracker: Tensor::zeros([], (Kind::Int, device)),
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval,
        }
    }

    /// The live scale and growth tracker (shallow clones), for a broadcast from rank 0.
    pub fn live_tensors(&self) -> Vec<Tensor> {
        vec![
            self.scale.shallow_clone(),
            self.growth_tracker.shallow_clone(),
        ]
    }

    /// `loss * S`, in the loss's type.
    pub fn scale(&self, loss: &Tensor) -> Tensor {
        loss * &self.scale
    }

    /// Divides the gradients of `params` by `S` in place (parameters without a gradient are
    /// skipped) and returns a 0-dim f32 tensor on the device: 1.0 if any gradient holds an
    /// inf or NaN, else 0.0. Pass it to `Sgd::step` as `skip` and then to [`Self::update`].
    pub fn unscale(&mut self, params: &[Tensor]) -> Tensor {
        let _guard = tch::no_grad_guard();
        let mut found_inf = Tensor::zeros([], (Kind::Float, self.scale.device()));
        // In double, as GradScaler does, so 1/S is exact for any power of two.
        let inv_scale = self
            .scale
            .to_kind(Kind::Double)
            .reciprocal()
            .to_kind(Kind::Float);
        for param in params {
            let mut grad = param.grad();
            if grad.defined() {
                grad.internal_amp_non_finite_check_and_unscale(&mut found_inf, &inv_scale);
            }
        }
        found_inf
    }

    /// Adjusts the scale after a step, from the flag [`Self::unscale`] returned.
    pub fn update(&mut self, found_inf: &Tensor) {
        let _guard = tch::no_grad_guard();
        let _ = self.scale.internal_amp_update_scale_(
            &self.growth_tracker,
            found_inf,
            self.growth_factor,
            self.backoff_factor,
            self.growth_interval,
        );
    }

    /// The current scale. Reads it from the device (a sync): for logging only.
    pub fn scale_value(&self) -> f64 {
        self.scale.double_value(&[])
    }

    /// `loss_scaler.scale` (f32) and `loss_scaler.growth_tracker` (i32), 0-dim, on the CPU.
    pub fn state(&self) -> NamedTensors {
        [
            (SCALE.to_string(), cpu_copy(&self.scale)),
            (GROWTH_TRACKER.to_string(), cpu_copy(&self.growth_tracker)),
        ]
        .into_iter()
        .collect()
    }

    /// Restores what [`Self::state`] saved; other names in `state` are ignored.
    pub fn load_state(&mut self, state: &NamedTensors) -> Result<(), String> {
        let get = |name: &str| -> Result<&Tensor, String> {
            let t = state
                .get(name)
                .ok_or_else(|| format!("the training state has no {name}"))?;
            if t.dim() != 0 {
                return Err(format!(
                    "{name} must be a single number, not a tensor of shape {:?}",
                    t.size()
                ));
            }
            Ok(t)
        };
        let (scale, tracker) = (get(SCALE)?, get(GROWTH_TRACKER)?);
        let value = scale.double_value(&[]);
        if !(value.is_finite() && value > 0.0) {
            return Err(format!("{SCALE} must be a number > 0, not {value}"));
        }
        let _guard = tch::no_grad_guard();
        self.scale.copy_(scale);
        self.growth_tracker.copy_(tracker);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn;

    fn scalar(t: &Tensor) -> f64 {
        t.double_value(&[])
    }

    fn tracker(s: &LossScaler) -> i64 {
        s.growth_tracker.int64_value(&[])
    }

    /// A parameter whose gradient is `values` (set by back-propagating a dot product).
    fn param_with_grad(vs: &nn::VarStore, name: &str, values: &[f32]) -> Tensor {
        let p = vs.root().zeros(name, &[values.len() as i64]);
        (&p * Tensor::from_slice(values))
            .sum(Kind::Float)
            .backward();
        p
    }

    #[test]
    fn scales_the_loss_and_unscales_gradients() {
        let scaler = LossScaler::new(Device::Cpu);
        assert_eq!(scaler.scale_value(), 65536.0);
        let loss = Tensor::from(0.5f32);
        assert_eq!(scalar(&scaler.scale(&loss)), 32768.0);

        let vs = nn::VarStore::new(Device::Cpu);
        let a = param_with_grad(&vs, "a", &[65536.0, -131072.0]);
        let b = param_with_grad(&vs, "b", &[1.0]);
        let untouched = vs.root().zeros("c", &[1]);
        let mut scaler = LossScaler::new(Device::Cpu);
        let found = scaler.unscale(&[a.shallow_clone(), b.shallow_clone(), untouched]);
        assert_eq!(scalar(&found), 0.0);
        assert_eq!(Vec::<f32>::try_from(a.grad()).unwrap(), vec![1.0, -2.0]);
        assert_eq!(Vec::<f32>::try_from(b.grad()).unwrap(), vec![1.0 / 65536.0]);
    }

    #[test]
    fn overflow_halves_the_scale_and_resets_the_streak() {
        let vs = nn::VarStore::new(Device::Cpu);
        let ok = param_with_grad(&vs, "ok", &[1.0, 2.0]);
        let bad = param_with_grad(&vs, "bad", &[f32::INFINITY, 0.0]);
        let mut scaler = LossScaler::with_interval(Device::Cpu, 10);
        let found = scaler.unscale(&[ok.shallow_clone()]);
        scaler.update(&found);
        assert_eq!(tracker(&scaler), 1);
        let found = scaler.unscale(&[ok.shallow_clone(), bad.shallow_clone()]);
        assert_eq!(scalar(&found), 1.0);
        assert_eq!(found.kind(), Kind::Float);
        scaler.update(&found);
        assert_eq!(scaler.scale_value(), 32768.0);
        assert_eq!(tracker(&scaler), 0);

        let nan = param_with_grad(&vs, "nan", &[f32::NAN]);
        let found = scaler.unscale(&[nan]);
        assert_eq!(scalar(&found), 1.0);
        scaler.update(&found);
        assert_eq!(scaler.scale_value(), 16384.0);
    }

    #[test]
    fn doubles_after_an_interval_of_finite_steps() {
        let mut scaler = LossScaler::with_interval(Device::Cpu, 3);
        let finite = Tensor::zeros([], (Kind::Float, Device::Cpu));
        for step in 1..=2 {
            scaler.update(&finite);
            assert_eq!(scaler.scale_value(), 65536.0);
            assert_eq!(tracker(&scaler), step);
        }
        scaler.update(&finite);
        assert_eq!(scaler.scale_value(), 131072.0);
        assert_eq!(tracker(&scaler), 0);
    }

    #[test]
    fn default_interval_is_2000() {
        let mut scaler = LossScaler::new(Device::Cpu);
        let finite = Tensor::zeros([], (Kind::Float, Device::Cpu));
        for _ in 0..1999 {
            scaler.update(&finite);
        }
        assert_eq!(scaler.scale_value(), 65536.0);
        scaler.update(&finite);
        assert_eq!(scaler.scale_value(), 131072.0);
    }

    #[test]
    fn state_round_trips() {
        let mut scaler = LossScaler::with_interval(Device::Cpu, 100);
        let finite = Tensor::zeros([], (Kind::Float, Device::Cpu));
        scaler.update(&Tensor::ones([], (Kind::Float, Device::Cpu)));
        for _ in 0..7 {
            scaler.update(&finite);
        }
        let state = scaler.state();
        assert_eq!(state.len(), 2);
        scaler.update(&finite);
        let mut restored = LossScaler::with_interval(Device::Cpu, 100);
        restored.load_state(&state).unwrap();
        assert_eq!(restored.scale_value(), 32768.0);
        assert_eq!(tracker(&restored), 7);
        assert_eq!(tracker(&scaler), 8);

        let mut missing = state;
        missing.remove(GROWTH_TRACKER);
        assert!(restored
            .load_state(&missing)
            .unwrap_err()
            .contains("loss_scaler.growth_tracker"));
    }
}
