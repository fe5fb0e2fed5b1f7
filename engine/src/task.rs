//! What a task (classification, detection, segmentation) gives the training loop. The loop
//! ([`crate::fit`]) owns everything else: schedules, accumulation, AMP, EMA, the non-finite
//! check, logging, progress, checkpoints and resumption.

use crate::amp::Autocast;
use crate::checkpoint::Metadata;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use tch::{nn, Tensor};

/// Named training losses of one batch (`{"loss_cls": .., "loss_box": ..}`); the loop sums
/// them for the backward pass and logs each. A task with one loss names it `loss`.
pub type Losses = BTreeMap<String, Tensor>;

/// Named evaluation results (`{"top1": .., "top5": .., "loss": ..}`).
pub type Metrics = BTreeMap<String, f64>;

/// Where a training batch sits in the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub epoch: u64,
    /// Optimiser steps done before this one.
    pub iter: u64,
    /// Micro-batches done before this one in the whole run (`iter * accumulate + k`); per-batch
    /// randomness (mixup's lambda) is drawn from it so a resumed run draws the same.
    pub micro_batch: u64,
}

/// What one optimiser step needs of a model: its variables and the losses of a micro-batch.
/// Every [`Task`] is one; the benches time [`crate::fit::Trainer::step`] on their own.
pub trait Learner {
    /// A batch on the training device.
    type Input;

    /// The model's variables: the trainer freezes, optimises, averages, saves and restores
    /// them.
    fn var_store(&self) -> &nn::VarStore;

    /// The training losses of one (micro-)batch, the model in training mode. Called inside
    /// autocast when the run sets `train.amp`: return losses in fp32.
    fn losses(&mut self, input: &Self::Input, step: &Step) -> Losses;
}

pub trait Task: Learner {
    /// The recipe, as read from TOML: it embeds the engine's `[optim]`, `[schedule]` and
    /// `[train]` sections and holds a `data` section with `batch_size`.
    type Config: Serialize + DeserializeOwned;
    /// A batch as the data loader yields it (plain host buffers).
    type Batch: Send + 'static;
    /// The evaluation metric that picks `best.safetensors` (higher is better).
    const BEST_METRIC: &'static str;

    fn config(&self) -> &Self::Config;

    /// Starts moving a batch to the device. The loop calls it for the next batch while the
    /// device still works on the current one, so on CUDA the copy must not block: build the
    /// tensors with [`super::transfer::upload`].
    fn upload(&self, batch: &Self::Batch) -> Self::Input;

    /// Evaluates the model's current weights on the task's validation data (no grad, eval
    /// mode), the forward passes inside `autocast` (the run's `train.amp`). Must contain
    /// [`Task::BEST_METRIC`].
    fn evaluate(&mut self, autocast: Autocast) -> anyhow::Result<Metrics>;

    /// What checkpoints say about the model (task, arch, classes, transform, config); the loop
    /// adds the epoch, iteration and metrics.
    fn metadata(&self) -> Metadata;
}
