//! SGD with momentum over a VarStore's trainable variables, with PyTorch's semantics
//! (`torch.optim.SGD(momentum, nesterov, weight_decay, dampening=0)`) and momentum buffers that
//! can be saved and restored (tch's own optimisers cannot, so a resume would lose momentum).
//!
//! For each parameter `p` with a gradient, at learning rate `lr`:
//!
//! ```text
//! g   = grad + wd * p                  (wd = 0 for biases and BN under no-bias-decay)
//! buf = momentum * buf + g             (buf starts at zero, so the first step gives buf = g,
//!                                       exactly PyTorch's `buf = g.clone()`)
//! u   = g + momentum * buf  (Nesterov)   or   u = buf
//! p   = p - lr * u
//! ```
//!
//! With `clip_value = c` every gradient element is first clamped to `[-c, c]` (MXNet's
//! `clip_gradient`, which GluonCV's detection trainers set): `grad` above is then the clamped
//! gradient, and weight decay is added after the clamp, as MXNet's `sgd_mom_update` does
//! (`mom = momentum * mom - lr * wd * w - lr * clip(rescale_grad * grad, c)`,
//! src/operator/optimizer_op-inl.h). The clamp sees the gradient the step uses: after the
//! loss scaler's unscale and after the data-parallel average, as MXNet's clips
//! `rescale_grad * grad`. It runs in place on each gradient, one kernel per parameter, with
//! no allocation and no host sync; an overflowed AMP step is still skipped (the found-inf
//! flag is computed before the clamp, which keeps NaN as NaN anyway).
//!
//! The step is ATen's fused kernel (`torch.optim.SGD(fused=True)`, see `fused_sgd`), one call
//! per group of parameters sharing a learning-rate multiplier and a weight decay. An AMP step
//! whose gradients overflowed is skipped without the host reading the flag: the kernel reads
//! it where the parameters are and returns before changing anything.

use super::fused_sgd::{self, in_layout_of, StepSettings};
use super::param_groups::{decay_flags, lr_multiplier};
use crate::checkpoint::NamedTensors;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tch::{nn, Device, Kind, Tensor};

/// The optimiser's settings, as written in a training config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    /// No weight decay on biases and BN gamma/beta (see `param_groups`).
    pub no_bias_decay: bool,
    /// Clamp every gradient element to `[-c, c]` before the step (MXNet's `clip_gradient`);
    /// `None`: no clipping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_value: Option<f64>,
}

impl Default for SgdConfig {
    /// The paper's ImageNet recipe: Nesterov momentum 0.9, weight decay 1e-4, no bias decay.
    fn default() -> Self {
        SgdConfig {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-4,
            no_bias_decay: true,
            clip_value: None,
        }
    }
}

impl SgdConfig {
    /// Rejects settings PyTorch rejects (and non-finite numbers), with a sentence saying why.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(format!("momentum must be in [0, 1), not {}", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!(
                "weight decay must be a number >= 0, not {}",
                self.weight_decay
            ));
        }
        if self.nesterov && self.momentum == 0.0 {
            return Err("Nesterov momentum needs a momentum above 0".to_string());
        }
        match self.clip_value {
            Some(c) if !(c.is_finite() && c > 0.0) => Err(format!(
                "clip_value must be a finite number above 0 (leave it out for no clipping), not {c}"
            )),
            _ => Ok(()),
        }
    }
}

/// One trainable parameter and what the optimiser keeps for it.
struct Slot {
    name: String,
    param: Tensor,
    decay: bool,
    /// The parameter's learning rate is `lr * lr_mult` (see `OptimSection::lr_mult`).
    lr_mult: f64,
    momentum_buffer: Tensor,
}

/// SGD with momentum over the trainable variables of a VarStore (those present when it is
/// built; build it after the model).
pub struct Sgd {
    slots: Vec<Slot>,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    clip_value: Option<f64>,
}

/// The parameters of one fused step call: those sharing a learning-rate multiplier and a
/// weight decay, in the order they first appear.
struct StepGroup {
    lr_mult: f64,
    decay: bool,
    params: Vec<Tensor>,
    grads: Vec<Tensor>,
    buffers: Vec<Tensor>,
}

const BUFFER_PREFIX: &str = "momentum_buffer.";

impl Sgd {
    /// Momentum buffers start at zero (allocated now, one per trainable variable).
    /// The config is used as given; check it first with [`SgdConfig::validate`].
    pub fn new(vs: &nn::VarStore, config: &SgdConfig) -> Self {
        Self::with_lr_mult(vs, config, &BTreeMap::new())
    }

    /// As [`Sgd::new`], each parameter's learning rate multiplied by that of the longest
    /// prefix in `lr_mult` that covers its name (1 where none does).
    pub fn with_lr_mult(
        vs: &nn::VarStore,
        config: &SgdConfig,
        lr_mult: &BTreeMap<String, f64>,
    ) -> Self {
        let _guard = tch::no_grad_guard();
        let slots = decay_flags(vs, config.no_bias_decay)
            .into_iter()
            .map(|(name, param, decay)| Slot {
                momentum_buffer: param.zeros_like(),
                lr_mult: lr_multiplier(&name, lr_mult),
                name,
                param,
                decay,
            })
            .collect();
        Sgd {
            slots,
            momentum: config.momentum,
            nesterov: config.nesterov,
            weight_decay: config.weight_decay,
            clip_value: config.clip_value,
        }
    }

    /// Drops every gradient (PyTorch's `zero_grad(set_to_none=True)`, its default): the next
    /// backward pass hands its gradients over instead of adding them to zero-filled tensors.
    pub fn zero_grad(&mut self) {
        fused_sgd::clear_grads(self.slots.iter().map(|s| &s.param))
            .unwrap_or_else(|e| panic!("zero_grad: {e}"));
    }

    /// One step at learning rate `lr` (see the module doc for the formula, and for
    /// `clip_value`, which clamps the gradients in place first). Parameters without a
    /// gradient are left alone.
    ///
    /// `skip`: an optional 0-dim tensor on the parameters' device (the loss scaler's
    /// found-inf flag); where it is nonzero neither parameters nor momentum buffers change.
    /// The flag is never read on the host.
    pub fn step(&mut self, lr: f64, skip: Option<&Tensor>) {
        let _guard = tch::no_grad_guard();
        // The kernel skips at exactly 1; the scaler's flag is any nonzero value.
        let found_inf = skip.map(|s| s.ne(0.0).to_kind(Kind::Float));
        let mut groups: Vec<StepGroup> = Vec::new();
        for slot in &mut self.slots {
            let grad = slot.param.grad();
            if !grad.defined() {
                continue;
            }
            // A buffer restored or a model moved to channels-last after the optimiser was
            // built can disagree with its parameter's strides; it is re-laid once and kept.
            let buffer = std::mem::replace(&mut slot.momentum_buffer, Tensor::new());
            slot.momentum_buffer = in_layout_of(&slot.param, buffer);
            let index = match groups
                .iter()
                .position(|g| g.lr_mult == slot.lr_mult && g.decay == slot.decay)
            {
                Some(i) => i,
                None => {
                    groups.push(StepGroup {
                        lr_mult: slot.lr_mult,
                        decay: slot.decay,
                        params: Vec::new(),
                        grads: Vec::new(),
                        buffers: Vec::new(),
                    });
                    groups.len() - 1
                }
            };
            let mut grad = in_layout_of(&slot.param, grad);
            if let Some(c) = self.clip_value {
                let _ = grad.clamp_(-c, c);
            }
            let group = &mut groups[index];
            group.params.push(slot.param.shallow_clone());
            group.grads.push(grad);
            group.buffers.push(slot.momentum_buffer.shallow_clone());
        }
        for group in &groups {
            let settings = StepSettings {
                lr: lr * group.lr_mult,
                weight_decay: if group.decay { self.weight_decay } else { 0.0 },
                momentum: self.momentum,
                nesterov: self.nesterov,
            };
            let (params, grads, buffers) = (&group.params, &group.grads, &group.buffers);
            fused_sgd::step(params, grads, buffers, settings, found_inf.as_ref())
                .unwrap_or_else(|e| panic!("SGD step: {e}"));
        }
    }

    /// Copies of the momentum buffers on the CPU, named `momentum_buffer.<parameter name>`.
    pub fn state(&self) -> NamedTensors {
        self.slots
            .iter()
            .map(|s| {
                (
                    format!("{BUFFER_PREFIX}{}", s.name),
                    cpu_copy(&s.momentum_buffer),
                )
            })
            .collect()
    }

    /// Restores momentum buffers saved by [`Sgd::state`]. Every buffer must be present with
    /// its shape and no other tensor may be named `momentum_buffer.*`; tensors with other
    /// prefixes (other parts of a training state) are ignored. Nothing is changed on error.
    pub fn load_state(&mut self, state: &NamedTensors) -> Result<(), String> {
        let mut problems = Vec::new();
        for slot in &self.slots {
            let key = format!("{BUFFER_PREFIX}{}", slot.name);
            match state.get(&key) {
                None => problems.push(format!("missing {key}")),
                Some(t) if t.size() != slot.momentum_buffer.size() => problems.push(format!(
                    "{key} has shape {:?}, the parameter {:?}",
                    t.size(),
                    slot.momentum_buffer.size()
                )),
                Some(_) => {}
            }
        }
        for key in state.keys().filter(|k| k.starts_with(BUFFER_PREFIX)) {
            let name = &key[BUFFER_PREFIX.len()..];
            if !self.slots.iter().any(|s| s.name == name) {
                problems.push(format!("unexpected {key} (no such trainable parameter)"));
            }
        }
        if !problems.is_empty() {
            return Err(format!(
                "the optimiser state does not fit the model: {}",
                problems.join("; ")
            ));
        }
        let _guard = tch::no_grad_guard();
        for slot in &mut self.slots {
            let saved = &state[&format!("{BUFFER_PREFIX}{}", slot.name)];
            slot.momentum_buffer.copy_(saved);
        }
        Ok(())
    }

    /// Names of the parameters that take weight decay, sorted.
    pub fn decayed_names(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|s| s.decay)
            .map(|s| s.name.clone())
            .collect()
    }

    /// The trainable parameters the optimiser updates, sorted by name (for the loss
    /// scaler's unscale, gradient clipping, or counting).
    pub fn params(&self) -> Vec<Tensor> {
        self.slots.iter().map(|s| s.param.shallow_clone()).collect()
    }

    /// The live momentum buffers (shallow clones), in the order of [`Sgd::params`]: a
    /// data-parallel run broadcasts them from rank 0 after a resume.
    pub fn momentum_buffers(&self) -> Vec<Tensor> {
        self.slots
            .iter()
            .map(|s| s.momentum_buffer.shallow_clone())
            .collect()
    }
}

/// A copy on the CPU that no later in-place step can change (`to_device(Cpu)` of a CPU
/// tensor would return the same storage).
pub(crate) fn cpu_copy(t: &Tensor) -> Tensor {
    if t.device() == Device::Cpu {
        t.copy()
    } else {
        t.to_device(Device::Cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer with a 2x2 weight and a 2-element bias.
    fn layer(vs: &nn::VarStore) -> (Tensor, Tensor) {
        let root = vs.root() / "layer";
        let w = root.var_copy(
            "weight",
            &Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.25]).view([2, 2]),
        );
        let b = root.var_copy("bias", &Tensor::from_slice(&[0.1f32, -0.2]));
        (w, b)
    }

    const LRS: [f64; 3] = [0.1, 0.05, 0.2];
    const GRAD_W: [[f32; 4]; 3] = [
        [1.0, 2.0, -3.0, 0.5],
        [0.5, -0.5, 1.0, 1.0],
        [-2.0, 0.0, 0.25, -1.0],
    ];
    const GRAD_B: [[f32; 2]; 3] = [[0.4, -1.0], [0.0, 2.0], [1.0, 1.0]];

    /// Sets the gradients to those of step `k` by back-propagating a linear function.
    fn backward(opt: &mut Sgd, w: &Tensor, b: &Tensor, k: usize) {
        opt.zero_grad();
        let gw = Tensor::from_slice(&GRAD_W[k]).view([2, 2]);
        let gb = Tensor::from_slice(&GRAD_B[k]);
        ((w * gw).sum(Kind::Float) + (b * gb).sum(Kind::Float)).backward();
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
    }

    // Golden values from PyTorch 2.11:
    //
    // w = torch.tensor([[0.5, -1.0], [2.0, 0.25]], requires_grad=True)
    // b = torch.tensor([0.1, -0.2], requires_grad=True)
    // groups = [{"params": [w], "weight_decay": 0.01},
    //           {"params": [b], "weight_decay": 0.0 if nbd else 0.01}]
    // opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=nesterov)
    // for lr, (gw, gb) in zip([0.1, 0.05, 0.2], GRADS):   # GRAD_W, GRAD_B below
    //     for g in opt.param_groups: g["lr"] = lr
    //     opt.zero_grad()
    //     ((w * torch.tensor(gw)).sum() + (b * torch.tensor(gb)).sum()).backward()
    //     opt.step()
    // print(w.flatten().tolist(), b.tolist(), opt.state[w]["momentum_buffer"].flatten().tolist())
    //
    // By hand for w[0,0] without Nesterov: g1 = 1 + 0.01*0.5 = 1.005, buf = 1.005,
    // p = 0.5 - 0.1*1.005 = 0.3995; g2 = 0.5 + 0.003995, buf = 0.9*1.005 + 0.503995 =
    // 1.408495, p = 0.32907525; g3 = -2 + 0.0032907525, buf = -0.7290637475,
    // p = 0.32907525 + 0.2*0.7290637475 = 0.4748880195.
    fn run_three_steps(config: &SgdConfig) -> (Vec<f32>, Vec<f32>, NamedTensors) {
        let vs = nn::VarStore::new(Device::Cpu);
        let (w, b) = layer(&vs);
        let mut opt = Sgd::new(&vs, config);
        for (k, lr) in LRS.iter().enumerate() {
            backward(&mut opt, &w, &b, k);
            opt.step(*lr, None);
        }
        (values(&w), values(&b), opt.state())
    }

    #[test]
    fn nesterov_with_no_bias_decay_matches_pytorch() {
        let config = SgdConfig {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.01,
            no_bias_decay: true,
            clip_value: None,
        };
        let (w, b, state) = run_three_steps(&config);
        assert_close(&w, &[0.751_686_16, -1.611_437_8, 2.752_938_7, 0.183_363_84]);
        assert_close(&b, &[-0.430_520_03, -0.717_7]);
        assert_close(
            &values(&state["momentum_buffer.layer.weight"]),
            &[-0.730_963_23, 1.135_398_3, -1.214_809_7, 0.308_805_94],
        );
    }

    #[test]
    fn plain_momentum_with_decay_everywhere_matches_pytorch() {
        let config = SgdConfig {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.01,
            no_bias_decay: false,
            clip_value: None,
        };
        let (w, b, state) = run_three_steps(&config);
        assert_close(
            &w,
            &[0.474_888_03, -1.490_646_5, 2.624_812_8, 0.065_019_004],
        );
        assert_close(&b, &[-0.223_328_43, -0.551_847_16]);
        assert_close(
            &values(&state["momentum_buffer.layer.weight"]),
            &[-0.729_063_75, 1.138_479_5, -1.219_308_4, 0.310_093_1],
        );
    }

    #[test]
    fn without_momentum_it_is_plain_sgd() {
        let config = SgdConfig {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.01,
            no_bias_decay: false,
            clip_value: None,
        };
        let (w, b, _) = run_three_steps(&config);
        // p -= lr * (grad + wd * p), step by step.
        let mut want_w = vec![0.5f32, -1.0, 2.0, 0.25];
        let mut want_b = vec![0.1f32, -0.2];
        for (k, lr) in LRS.iter().enumerate() {
            for (p, g) in want_w.iter_mut().zip(GRAD_W[k]) {
                *p -= (*lr as f32) * (g + 0.01 * *p);
            }
            for (p, g) in want_b.iter_mut().zip(GRAD_B[k]) {
                *p -= (*lr as f32) * (g + 0.01 * *p);
            }
        }
        assert_close(&w, &want_w);
        assert_close(&b, &want_b);
    }

    /// Conv weights moved to channels-last after the optimiser was built (so their buffers
    /// are laid out otherwise) must step exactly as contiguous ones.
    #[test]
    fn channels_last_weights_step_like_contiguous_ones() {
        let run = |channels_last: bool| {
            let vs = nn::VarStore::new(Device::Cpu);
            let init = Tensor::arange(48, (Kind::Float, Device::Cpu)).view([2, 3, 2, 4]) / 10.0;
            let w = (vs.root() / "conv").var_copy("weight", &init);
            let mut opt = Sgd::new(&vs, &SgdConfig::default());
            if channels_last {
                crate::channels_last::var_store_to_channels_last(&vs);
                assert_eq!(w.stride()[1], 1);
            }
            for (k, lr) in LRS.iter().enumerate() {
                opt.zero_grad();
                let g = (Tensor::arange(48, (Kind::Float, Device::Cpu)).view([2, 3, 2, 4])
                    - 20.0 * k as f64)
                    .cos();
                (&w * g).sum(Kind::Float).backward();
                opt.step(*lr, None);
            }
            (values(&w.contiguous()), opt.state())
        };
        let (contiguous, state) = run(false);
        let (channels_last, cl_state) = run(true);
        assert_eq!(contiguous, channels_last);
        for (name, t) in state {
            assert_eq!(
                values(&t.contiguous()),
                values(&cl_state[&name].contiguous())
            );
        }
    }

    /// One step with `clip_value` against the update worked by hand: gradients clamped to
    /// [-c, c] first, weight decay added after the clamp (MXNet's order), then the step.
    #[test]
    fn clip_value_clamps_gradients_before_weight_decay() {
        let step = |clip_value: Option<f64>| {
            let vs = nn::VarStore::new(Device::Cpu);
            let (w, b) = layer(&vs);
            let config = SgdConfig {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.01,
                no_bias_decay: false,
                clip_value,
            };
            let mut opt = Sgd::new(&vs, &config);
            backward(&mut opt, &w, &b, 0);
            opt.step(0.1, None);
            (values(&w), values(&b))
        };
        // GRAD_W[0] = [1, 2, -3, 0.5] and GRAD_B[0] = [0.4, -1] clamped to 0.75; the first
        // momentum step is p - lr * (clamp(g) + wd * p).
        let by_hand = |p: &[f32], g: &[f32]| -> Vec<f32> {
            p.iter()
                .zip(g)
                .map(|(p, g)| p - 0.1 * (g + 0.01 * p))
                .collect()
        };
        let (w, b) = step(Some(0.75));
        assert_close(
            &w,
            &by_hand(&[0.5, -1.0, 2.0, 0.25], &[0.75, 0.75, -0.75, 0.5]),
        );
        assert_close(&b, &by_hand(&[0.1, -0.2], &[0.4, -0.75]));
        // w[0,0] = 0.5 - 0.1 * (0.75 + 0.005) = 0.4245; clamping after adding the decay
        // would give 0.5 - 0.1 * 0.75 = 0.425.
        assert!((w[0] - 0.4245).abs() < 1e-6, "{w:?}");
        // Without clipping the full gradients step.
        let (w, b) = step(None);
        assert_close(&w, &by_hand(&[0.5, -1.0, 2.0, 0.25], &GRAD_W[0]));
        assert_close(&b, &by_hand(&[0.1, -0.2], &GRAD_B[0]));
        // A bound above every gradient changes nothing.
        assert_eq!(step(Some(5.0)), step(None));
    }

    #[test]
    fn zero_grad_drops_gradients_and_the_next_backward_starts_afresh() {
        let vs = nn::VarStore::new(Device::Cpu);
        let (w, b) = layer(&vs);
        let mut opt = Sgd::new(&vs, &SgdConfig::default());
        backward(&mut opt, &w, &b, 0);
        opt.zero_grad();
        assert!(!w.grad().defined() && !b.grad().defined());
        // A step without gradients changes nothing.
        opt.step(0.1, None);
        assert_eq!(values(&w), [0.5, -1.0, 2.0, 0.25]);
        backward(&mut opt, &w, &b, 1);
        assert_eq!(values(&w.grad()), GRAD_W[1]);
    }

    #[test]
    fn decayed_names_follow_no_bias_decay() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _ = layer(&vs);
        let with = Sgd::new(&vs, &SgdConfig::default());
        assert_eq!(with.decayed_names(), vec!["layer.weight"]);
        let without = Sgd::new(
            &vs,
            &SgdConfig {
                no_bias_decay: false,
                clip_value: None,
                ..SgdConfig::default()
            },
        );
        assert_eq!(without.decayed_names(), vec!["layer.bias", "layer.weight"]);
    }

    #[test]
    fn restored_state_continues_bit_identically() {
        let config = SgdConfig::default();
        // Uninterrupted: three steps.
        let (w_ref, b_ref, _) = run_three_steps(&config);
        // Interrupted after one step: a fresh model and optimiser restored from copies.
        let vs = nn::VarStore::new(Device::Cpu);
        let (w, b) = layer(&vs);
        let mut opt = Sgd::new(&vs, &config);
        backward(&mut opt, &w, &b, 0);
        opt.step(LRS[0], None);
        let state = opt.state();
        let params: Vec<Tensor> = [&w, &b].iter().map(|t| t.detach().copy()).collect();
        drop(opt);
        let vs2 = nn::VarStore::new(Device::Cpu);
        let (mut w2, mut b2) = layer(&vs2);
        tch::no_grad(|| {
            w2.copy_(&params[0]);
            b2.copy_(&params[1]);
        });
        let mut opt2 = Sgd::new(&vs2, &config);
        opt2.load_state(&state).unwrap();
        for (k, lr) in LRS.iter().enumerate().skip(1) {
            backward(&mut opt2, &w2, &b2, k);
            opt2.step(*lr, None);
        }
        assert_eq!(values(&w2), w_ref);
        assert_eq!(values(&b2), b_ref);
    }

    #[test]
    fn state_is_a_copy_not_a_view() {
        let vs = nn::VarStore::new(Device::Cpu);
        let (w, b) = layer(&vs);
        let mut opt = Sgd::new(&vs, &SgdConfig::default());
        backward(&mut opt, &w, &b, 0);
        opt.step(0.1, None);
        let state = opt.state();
        let before = values(&state["momentum_buffer.layer.weight"]);
        backward(&mut opt, &w, &b, 1);
        opt.step(0.1, None);
        assert_eq!(values(&state["momentum_buffer.layer.weight"]), before);
    }

    #[test]
    fn a_learning_rate_multiplier_scales_only_its_parameters() {
        // Plain SGD without decay or momentum: p -= lr * mult * g.
        let config = SgdConfig {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            no_bias_decay: false,
            clip_value: None,
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let (w, b) = layer(&vs);
        let rules = BTreeMap::from([("layer.bias".to_string(), 10.0)]);
        let mut opt = Sgd::with_lr_mult(&vs, &config, &rules);
        backward(&mut opt, &w, &b, 0);
        opt.step(0.1, None);
        let want_w: Vec<f32> = [0.5f32, -1.0, 2.0, 0.25]
            .iter()
            .zip(GRAD_W[0])
            .map(|(p, g)| p - 0.1 * g)
            .collect();
        let want_b: Vec<f32> = [0.1f32, -0.2]
            .iter()
            .zip(GRAD_B[0])
            .map(|(p, g)| p - 1.0 * g)
            .collect();
        assert_close(&values(&w), &want_w);
        assert_close(&values(&b), &want_b);
    }

    #[test]
    fn skip_leaves_params_and_buffers_unchanged_even_with_inf_grads() {
        let vs = nn::VarStore::new(Device::Cpu);
        let (w, b) = layer(&vs);
        let mut opt = Sgd::new(&vs, &SgdConfig::default());
        backward(&mut opt, &w, &b, 0);
        opt.step(0.1, Some(&Tensor::from(0.0f32)));
        let (w1, b1, s1) = (values(&w), values(&b), opt.state());
        opt.zero_grad();
        let inf = Tensor::from_slice(&[f32::INFINITY, 1.0, f32::NAN, 0.0]).view([2, 2]);
        ((&w * inf).sum(Kind::Float) + (&b * 3.0).sum(Kind::Float)).backward();
        opt.step(0.1, Some(&Tensor::from(1.0f32)));
        assert_eq!(values(&w), w1);
        assert_eq!(values(&b), b1);
        for (name, t) in opt.state() {
            assert_eq!(values(&t), values(&s1[&name]), "{name}");
        }
        // And a zero flag steps as if there were none.
        backward(&mut opt, &w, &b, 1);
        opt.step(0.05, Some(&Tensor::from(0.0f32)));
        assert_ne!(values(&w), w1);
    }

    #[test]
    fn skip_flag_with_zero_steps_like_no_flag() {
        let config = SgdConfig::default();
        let (w_ref, b_ref, _) = run_three_steps(&config);
        let vs = nn::VarStore::new(Device::Cpu);
        let (w, b) = layer(&vs);
        let mut opt = Sgd::new(&vs, &config);
        let no = Tensor::from(0.0f32);
        for (k, lr) in LRS.iter().enumerate() {
            backward(&mut opt, &w, &b, k);
            opt.step(*lr, Some(&no));
        }
        assert_eq!(values(&w), w_ref);
        assert_eq!(values(&b), b_ref);
    }

    #[test]
    fn params_without_grad_are_left_alone() {
        let vs = nn::VarStore::new(Device::Cpu);
        let (w, b) = layer(&vs);
        let mut opt = Sgd::new(&vs, &SgdConfig::default());
        opt.zero_grad();
        (&w * 2.0).sum(Kind::Float).backward();
        let b0 = values(&b);
        opt.step(0.1, None);
        assert_eq!(values(&b), b0);
        assert_eq!(
            values(&opt.state()["momentum_buffer.layer.bias"]),
            vec![0.0, 0.0]
        );
    }

    #[test]
    fn load_state_names_every_problem() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _ = layer(&vs);
        let mut opt = Sgd::new(&vs, &SgdConfig::default());
        let mut state = NamedTensors::new();
        state.insert(
            "momentum_buffer.layer.weight".into(),
            Tensor::zeros([3], (Kind::Float, Device::Cpu)),
        );
        state.insert(
            "momentum_buffer.other.weight".into(),
            Tensor::zeros([3], (Kind::Float, Device::Cpu)),
        );
        state.insert(
            "loss_scaler.scale".into(),
            Tensor::zeros([], (Kind::Float, Device::Cpu)),
        );
        let err = opt.load_state(&state).unwrap_err();
        assert!(err.contains("missing momentum_buffer.layer.bias"), "{err}");
        assert!(
            err.contains("momentum_buffer.layer.weight has shape [3], the parameter [2, 2]"),
            "{err}"
        );
        assert!(
            err.contains("unexpected momentum_buffer.other.weight"),
            "{err}"
        );
        assert!(!err.contains("loss_scaler"), "{err}");
    }

    #[test]
    fn config_defaults_and_validation() {
        let c: SgdConfig = toml::from_str("momentum = 0.8").unwrap();
        assert_eq!(
            c,
            SgdConfig {
                momentum: 0.8,
                ..SgdConfig::default()
            }
        );
        assert!(c.validate().is_ok());
        assert!(toml::from_str::<SgdConfig>("momentun = 0.8").is_err());
        let bad = |c: SgdConfig| c.validate().unwrap_err();
        assert!(bad(SgdConfig {
            momentum: 1.0,
            ..SgdConfig::default()
        })
        .contains("momentum"));
        assert!(bad(SgdConfig {
            weight_decay: -1.0,
            ..SgdConfig::default()
        })
        .contains("weight decay"));
        assert!(bad(SgdConfig {
            momentum: 0.0,
            nesterov: true,
            ..SgdConfig::default()
        })
        .contains("Nesterov"));
        let c: SgdConfig = toml::from_str("clip_value = 5.0").unwrap();
        assert_eq!(c.clip_value, Some(5.0));
        assert!(c.validate().is_ok());
        for c in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = bad(SgdConfig {
                clip_value: Some(c),
                ..SgdConfig::default()
            });
            assert!(
                err.contains("clip_value must be a finite number above 0"),
                "{err}"
            );
        }
    }
}
