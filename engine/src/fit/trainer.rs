//! [`Trainer`]: the model's optimisation state (SGD, loss scaler, EMA, learning-rate schedule,
//! the data-parallel reducer) and its place in the run, with the one optimiser step that
//! training runs and every bench times.

use super::TrainInputError;
use crate::amp::{Autocast, LossScaler};
use crate::channels_last::var_store_to_channels_last;
use crate::checkpoint::{var_store_tensors, NamedTensors};
use crate::config::EngineConfig;
use crate::ema::Ema;
use crate::optim::Sgd;
use crate::param_groups::{freeze, unmatched_prefixes};
use crate::schedule::{linear_scaled_lr, LrSchedule};
use crate::task::{Learner, Losses, Metrics, Step, Task};
use anyhow::bail;
use tch::Tensor;

/// Where a run stands: the epoch, the optimiser steps done in it and in all, and the best
/// evaluation so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Position {
    pub epoch: u64,
    pub step_in_epoch: u64,
    pub iter: u64,
    pub best: Option<f64>,
}

/// Where the inputs of a step's micro-batches come from.
pub trait MicroBatches<L: Learner> {
    /// The input of micro-batch `k` (0-based) of the step.
    fn take(&mut self, k: u64) -> anyhow::Result<L::Input>;

    /// Micro-batch `k`'s backward pass is queued: the time to start moving the next batch to
    /// the device, so the host prepares it while the device computes.
    fn backward_queued(&mut self, _learner: &L, _k: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A closure giving each micro-batch's input (the benches: the same input every step).
impl<L: Learner, F: FnMut(u64) -> anyhow::Result<L::Input>> MicroBatches<L> for F {
    fn take(&mut self, k: u64) -> anyhow::Result<L::Input> {
        self(k)
    }
}

/// One micro-batch's losses as the step computed them (the graph already released by the
/// backward pass): `total` is their sum.
pub struct MicroBatchLosses {
    pub losses: Losses,
    pub total: Tensor,
}

/// What one optimiser step did.
pub struct StepOutcome {
    /// The learning rate it used.
    pub lr: f64,
    pub micro_batches: Vec<MicroBatchLosses>,
}

pub struct Trainer<'l, L: Learner> {
    pub learner: &'l mut L,
    sgd: Sgd,
    params: Vec<Tensor>,
    pub(super) scaler: Option<LossScaler>,
    pub(super) ema: Option<Ema>,
    schedule: LrSchedule,
    reducer: Option<distributed::Reducer<'static>>,
    autocast: Autocast,
    accumulate: u64,
    pub iters_per_epoch: u64,
    pub position: Position,
}

impl<'l, L: Learner> Trainer<'l, L> {
    /// Freezes what `config` freezes, lays the weights out channels-last when asked (before
    /// the optimiser, so its momentum buffers take the same layout), and builds the
    /// optimiser, schedule, loss scaler and EMA, for epochs of `batches_per_epoch` batches.
    pub fn new(
        learner: &'l mut L,
        config: &EngineConfig,
        batches_per_epoch: usize,
    ) -> anyhow::Result<Self> {
        let vs = learner.var_store();
        let device = vs.device();
        let prefixes = config
            .optim
            .freeze
            .iter()
            .chain(config.optim.lr_mult.keys());
        let unmatched = unmatched_prefixes(vs, prefixes);
        if !unmatched.is_empty() {
            bail!(TrainInputError(format!(
                "optim.freeze / optim.lr_mult name no parameter of the model: {}",
                unmatched.join(", ")
            )));
        }
        freeze(vs, &config.optim.freeze);
        if config.run.channels_last {
            var_store_to_channels_last(vs);
        }
        let sgd = Sgd::with_lr_mult(vs, &config.optim.sgd(), &config.optim.lr_mult);
        let params = sgd.params();
        let accumulate = config.run.accumulate;
        let iters_per_epoch = batches_per_epoch as u64 / accumulate;
        if iters_per_epoch == 0 {
            bail!(TrainInputError(format!(
                "{batches_per_epoch} batches of {} make no optimiser step of train.accumulate = {accumulate} batches",
                config.batch_size
            )));
        }
        let schedule = LrSchedule::new(
            linear_scaled_lr(config.optim.lr, config.effective_batch()),
            config.schedule.warmup_epochs,
            config.schedule.decay.clone(),
            config.schedule.epochs as f64,
            iters_per_epoch,
        );
        let autocast = Autocast::new(config.run.amp, device);
        let scaler = autocast
            .precision()
            .scales_loss()
            .then(|| LossScaler::new(device));
        let ema = config.run.ema_decay.map(|d| Ema::new(vs, d));
        Ok(Trainer {
            learner,
            sgd,
            params,
            scaler,
            ema,
            schedule,
            reducer: None,
            autocast,
            accumulate,
            iters_per_epoch,
            position: Position::default(),
        })
    }

    /// Averages gradients over the ranks of `group` from the next step on (DDP's reducer:
    /// in buckets, during the backward pass).
    pub fn attach_reducer(
        &mut self,
        group: &'static distributed::ProcessGroup,
    ) -> anyhow::Result<()> {
        self.reducer = Some(distributed::Reducer::new(group, &self.params)?);
        Ok(())
    }

    /// Releases the reducer (before the ranks' final barrier).
    pub fn detach_reducer(&mut self) {
        self.reducer = None;
    }

    /// One optimiser step: for each of `train.accumulate` micro-batches, the losses (under
    /// autocast with `train.amp`), their sum scaled by 1/accumulate and by the loss scale, and the
    /// backward pass (gradients averaged over ranks on the last micro-batch only, as DDP's
    /// `no_sync`); then the scheduled learning rate, unscaling, the SGD step, the scale update
    /// and the EMA update.
    pub fn step(&mut self, inputs: &mut impl MicroBatches<L>) -> anyhow::Result<StepOutcome> {
        let scale = 1.0 / self.accumulate as f64;
        let iter = self.position.iter;
        let mut micro_batches = Vec::with_capacity(self.accumulate as usize);
        self.sgd.zero_grad();
        for k in 0..self.accumulate {
            let input = inputs.take(k)?;
            let step = Step {
                epoch: self.position.epoch,
                iter,
                micro_batch: iter * self.accumulate + k,
            };
            let learner = &mut *self.learner;
            let losses = self.autocast.run(|| learner.losses(&input, &step));
            let total = sum_losses(&losses);
            let backward = if self.accumulate > 1 {
                &total * scale
            } else {
                total.shallow_clone()
            };
            let backward = match &self.scaler {
                Some(s) => s.scale(&backward),
                None => backward,
            };
            match &self.reducer {
                Some(r) if k + 1 == self.accumulate => {
                    r.prepare_for_backward()?;
                    backward
                        .f_backward()
                        .map_err(|e| r.backward_failure(&e.to_string()))?;
                }
                _ => backward.backward(),
            }
            inputs.backward_queued(self.learner, k)?;
            micro_batches.push(MicroBatchLosses { losses, total });
        }
        let lr = self.schedule.lr(iter);
        match self.scaler.as_mut() {
            Some(s) => {
                let found_inf = s.unscale(&self.params);
                self.sgd.step(lr, Some(&found_inf));
                s.update(&found_inf);
            }
            None => self.sgd.step(lr, None),
        }
        if let Some(e) = self.ema.as_mut() {
            e.update(self.learner.var_store());
        }
        self.position.iter += 1;
        self.position.step_in_epoch += 1;
        Ok(StepOutcome { lr, micro_batches })
    }

    /// Micro-batches per optimiser step.
    pub fn accumulate(&self) -> u64 {
        self.accumulate
    }

    /// Whether steps scale the loss (fp16): a non-finite step is then skipped, not fatal.
    pub fn scales_loss(&self) -> bool {
        self.scaler.is_some()
    }

    /// The loss scale, under fp16.
    pub fn loss_scale(&self) -> Option<f64> {
        self.scaler.as_ref().map(|s| s.scale_value())
    }

    /// The weights a checkpoint holds: the EMA's when kept, else the model's.
    pub fn weights(&self) -> NamedTensors {
        match &self.ema {
            Some(e) => e
                .tensors()
                .iter()
                .map(|(k, v)| (k.clone(), v.shallow_clone()))
                .collect(),
            None => var_store_tensors(self.learner.var_store()),
        }
    }

    /// The resumable state's tensors: the model's (under `model.`), then the optimiser's,
    /// scaler's and EMA's, which name their own with distinct prefixes.
    pub(super) fn state_tensors(&self) -> NamedTensors {
        let mut tensors =
            crate::run_dir::prefixed(var_store_tensors(self.learner.var_store()), "model.");
        tensors.extend(self.sgd.state());
        if let Some(s) = &self.scaler {
            tensors.extend(s.state());
        }
        if let Some(e) = &self.ema {
            tensors.extend(e.state());
        }
        tensors
    }

    /// Loads the optimiser's, scaler's and EMA's parts of a saved state.
    pub(super) fn load_optimiser_state(&mut self, tensors: &NamedTensors) -> Result<(), String> {
        self.sgd.load_state(tensors)?;
        if let Some(s) = self.scaler.as_mut() {
            s.load_state(tensors)?;
        }
        if let Some(e) = self.ema.as_mut() {
            e.load_state(tensors)?;
        }
        Ok(())
    }

    /// Every tensor rank 0 hands the other ranks, in the same order on each: all variables
    /// (frozen ones and BN statistics included), momentum buffers, the loss scale, the EMA.
    pub(super) fn rank_shared_tensors(&self) -> Vec<Tensor> {
        let mut tensors: Vec<Tensor> = var_store_tensors(self.learner.var_store())
            .into_values()
            .collect();
        tensors.extend(self.sgd.momentum_buffers());
        if let Some(s) = &self.scaler {
            tensors.extend(s.live_tensors());
        }
        if let Some(e) = &self.ema {
            tensors.extend(e.tensors().values().map(|t| t.shallow_clone()));
        }
        tensors
    }
}

impl<L: Task> Trainer<'_, L> {
    /// Evaluates on the task's validation data, with the EMA's weights swapped in when kept
    /// (the live weights are put back afterwards).
    pub fn evaluate(&mut self) -> anyhow::Result<Metrics> {
        let autocast = self.autocast;
        let Some(ema) = &self.ema else {
            return self.learner.evaluate(autocast);
        };
        let live: NamedTensors = {
            let _guard = tch::no_grad_guard();
            self.learner
                .var_store()
                .variables()
                .into_iter()
                .map(|(k, v)| (k, v.detach().copy()))
                .collect()
        };
        copy_into(self.learner.var_store(), ema.tensors());
        let result = self.learner.evaluate(autocast);
        copy_into(self.learner.var_store(), &live);
        result
    }
}

/// Copies `from` into the variables of the same names.
fn copy_into(vs: &tch::nn::VarStore, from: &NamedTensors) {
    let _guard = tch::no_grad_guard();
    for (name, mut v) in vs.variables() {
        if let Some(w) = from.get(&name) {
            v.copy_(w);
        }
    }
}

fn sum_losses(losses: &Losses) -> Tensor {
    let mut values = losses.values();
    let first = values
        .next()
        .expect("a task returns at least one loss")
        .shallow_clone();
    values.fold(first, |sum, l| sum + l)
}
