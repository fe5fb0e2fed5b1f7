//! The training loop every task runs, in the style of torchvision's reference scripts: warmup
//! and schedule per optimiser step, gradient accumulation, AMP loss scaling, EMA, logging, a
//! stop on non-finite losses, evaluation and checkpoints, and exact resumption.
//!
//! [`fit`] calls plain parts in a fixed order: after each [`Trainer::step`], the non-finite
//! guard ([`crate::nonfinite`]) and the log ([`log::TrainLog`]) at log points, then the state
//! saves; at each epoch's end the evaluation, the checkpoints ([`checkpoints`]) and the
//! curves. Host-device syncs happen only at log points (every `train.log_every` steps), state
//! saves and epoch ends. The next batch is uploaded (pinned, non-blocking) right after the
//! current one's backward pass is queued, so the host prepares it while the device computes.

mod checkpoints;
mod log;
mod prefetch;
mod resume;
mod trainer;

pub use trainer::{MicroBatchLosses, MicroBatches, Position, StepOutcome, Trainer};

use crate::config::{EngineConfig, RunSection};
use crate::data_parallel;
use crate::nonfinite::NonFiniteGuard;
use crate::progress::Progress;
use crate::run_dir::RunDir;
use crate::task::{Metrics, Task};
use anyhow::Context;
use datasets::loader::{Collate, Dataset, Loader};
use log::TrainLog;
use prefetch::Prefetch;
use std::path::PathBuf;
use tch::Device;

/// What the command line adds to a task's config.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub out: PathBuf,
    pub resume: bool,
    /// Stop (with the state saved) after this many optimiser steps in all.
    pub max_iters: Option<u64>,
}

/// The outcome of a run, for the caller to print.
#[derive(Debug)]
pub struct Summary {
    pub epochs_done: u64,
    pub iters: u64,
    pub last_metrics: Option<Metrics>,
    /// The best value of the task's `BEST_METRIC`.
    pub best: Option<f64>,
    pub skipped_images: usize,
    pub stopped_early: bool,
}

/// A config error or bad data: the user's to fix (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TrainInputError(pub String);

/// Process-wide settings a run needs before its model is built: libtorch's thread count,
/// the seed of parameter initialisation, cuDNN autotuning; and the precision a run computes
/// in (fp16 asked on the CPU runs in bf16, [`crate::amp::Precision::on`]). Says once (rank
/// 0) where the recipe gives way: that, and the threads of ranks that share the cores.
pub fn set_up(run: &mut RunSection, device: Device) {
    keep_freed_tensor_memory();
    crate::denormals::flush_denormals();
    let (threads, note) = data_parallel::rank_threads_from_env(run.threads);
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
    let substituted = run.amp.substitution_note(device);
    run.amp = run.amp.on(device);
    let notes = [note, substituted, run.amp.slow_cpu_note(device)];
    for note in notes.into_iter().flatten() {
        if data_parallel::is_main_rank() {
            eprintln!("{note}");
        }
    }
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
    }
    tch::manual_seed(run.seed as i64);
}

/// Lets glibc's malloc reuse the memory of freed tensors instead of returning it to the
/// system and faulting it in again at the next step. By default blocks above a threshold that
/// glibc adjusts from what the process happened to free earlier are `mmap`ed and `munmap`ed
/// one by one, so whether every step's activations cost fresh page faults depends on the
/// history of the process: measured on fashion-quick (2 cores), 70 s of kernel time in a
/// 5-minute run against 5 s, for the same code. Fixed thresholds make it not depend on it.
fn keep_freed_tensor_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 256 << 20;
        const TRIM_THRESHOLD: libc::c_int = 512 << 20;
        // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}

/// Trains `task` on the batches of `train` as `config` says, in the run folder `opts.out`.
pub fn fit<T, D, C>(
    task: &mut T,
    train: &Loader<D, C>,
    config: &EngineConfig,
    opts: &RunOptions,
) -> anyhow::Result<Summary>
where
    T: Task,
    D: Dataset,
    C: Collate<D::Sample, Batch = T::Batch>,
{
    let device = task.var_store().device();
    let mut trainer = Trainer::new(task, config, train.batches_per_epoch())?;
    // Everything above is checked before the run folder is created or touched.
    let mut run = RunDir::open(&opts.out, opts.resume)?;
    trainer.start(&mut run, config, opts)?;
    if config.run.tensorboard {
        // After `start`: a resumed run's position is known and its log cut back to it.
        run.start_event_file(trainer.position.iter)?;
    }
    let group = data_parallel::group();
    if let Some(g) = group {
        trainer.synchronise_ranks()?;
        trainer.attach_reducer(g)?;
    }
    let mut after = AfterStep {
        run,
        guard: NonFiniteGuard::new(device, trainer.scales_loss()),
        log: TrainLog::new(config.effective_batch()),
        progress: Progress::new(
            config.schedule.epochs * trainer.iters_per_epoch,
            trainer.position.iter,
        ),
        config,
        max_iters: opts.max_iters,
    };
    let mut last_metrics = None;
    let mut stop = Stop::No;
    while trainer.position.epoch < config.schedule.epochs {
        stop = train_epoch(&mut trainer, train, &mut after)?;
        if stop == Stop::MidEpoch {
            break;
        }
        if let Some((metrics, _)) = after.end_epoch(&mut trainer)? {
            last_metrics = Some(metrics);
        }
        if stop == Stop::AtEpochEnd {
            break;
        }
    }
    after.progress.finish();
    trainer.detach_reducer();
    if let Some(g) = group {
        // No rank leaves while another still needs it (rank 0 writes the last files).
        g.barrier("the end-of-run barrier")?;
    }
    let skipped = train.skipped();
    for s in &skipped {
        eprintln!("skipped {}: {}", s.path.display(), s.error);
    }
    Ok(Summary {
        epochs_done: trainer.position.epoch,
        iters: trainer.position.iter,
        last_metrics,
        best: trainer.position.best,
        skipped_images: skipped.len(),
        stopped_early: stop != Stop::No,
    })
}

/// Whether `--max-iters` stopped the run, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    No,
    /// On an epoch's last step: the epoch still ends as usual (evaluation, checkpoints).
    AtEpochEnd,
    /// Within an epoch, after saving the state there.
    MidEpoch,
}

/// Runs the rest of the current epoch's steps.
fn train_epoch<T, D, C>(
    trainer: &mut Trainer<'_, T>,
    train: &Loader<D, C>,
    after: &mut AfterStep,
) -> anyhow::Result<Stop>
where
    T: Task,
    D: Dataset,
    C: Collate<D::Sample, Batch = T::Batch>,
{
    let accumulate = trainer.accumulate();
    let Position {
        epoch,
        step_in_epoch,
        ..
    } = trainer.position;
    let batches = train.epoch(epoch, (step_in_epoch * accumulate) as usize);
    let micro_batches = (trainer.iters_per_epoch - step_in_epoch) * accumulate;
    let mut inputs = Prefetch::new(&*trainer.learner, batches, micro_batches)?;
    while trainer.position.step_in_epoch < trainer.iters_per_epoch {
        let outcome = trainer.step(&mut inputs)?;
        let stop = after.step(trainer, &outcome)?;
        if stop != Stop::No {
            return Ok(stop);
        }
    }
    Ok(Stop::No)
}

/// The plain parts the loop calls after each step and at each epoch's end, in a fixed
/// order: the non-finite guard, the log, the state saves; the evaluation, the checkpoints,
/// the curves.
struct AfterStep<'c> {
    run: RunDir,
    guard: NonFiniteGuard,
    log: TrainLog,
    progress: Progress,
    config: &'c EngineConfig,
    max_iters: Option<u64>,
}

impl AfterStep<'_> {
    fn step<T: Task>(
        &mut self,
        trainer: &Trainer<'_, T>,
        outcome: &StepOutcome,
    ) -> anyhow::Result<Stop> {
        let at = trainer.position;
        for micro_batch in &outcome.micro_batches {
            self.guard.observe(&micro_batch.total);
        }
        self.log.add(outcome);
        self.guard.end_step(at.iter - 1);
        let run = &self.config.run;
        let at_checkpoint =
            run.checkpoint_every_iters > 0 && at.iter % run.checkpoint_every_iters == 0;
        let at_stop = self.max_iters.is_some_and(|m| at.iter >= m);
        let at_epoch_end = at.step_in_epoch == trainer.iters_per_epoch;
        if at.iter % run.log_every == 0 || at_checkpoint || at_stop || at_epoch_end {
            self.guard.agree_across_ranks()?;
            let skipped = self.guard.stop_if_diverged(at.iter, at.epoch)?;
            let (run, progress) = (&mut self.run, &self.progress);
            let scale = trainer.loss_scale();
            self.log
                .write(run, progress, &at, outcome.lr, scale, skipped)?;
        }
        if at_epoch_end {
            return Ok(if at_stop { Stop::AtEpochEnd } else { Stop::No });
        }
        if at_checkpoint || at_stop {
            trainer.save_state(&self.run)?;
        }
        Ok(if at_stop { Stop::MidEpoch } else { Stop::No })
    }

    /// Evaluates when the epoch calls for it (the EMA's weights when kept), writes
    /// last/best, moves to the next epoch and saves the state there, and redraws the curves.
    fn end_epoch<T: Task>(
        &mut self,
        trainer: &mut Trainer<'_, T>,
    ) -> anyhow::Result<Option<(Metrics, f64)>> {
        let epoch = trainer.position.epoch;
        let epochs = self.config.schedule.epochs;
        let evaluate_now =
            (epoch + 1) % self.config.run.eval_every_epochs == 0 || epoch + 1 == epochs;
        let evaluation = if evaluate_now {
            let metrics = trainer.evaluate()?;
            let value = *metrics
                .get(T::BEST_METRIC)
                .with_context(|| format!("the evaluation did not report {}", T::BEST_METRIC))?;
            self.log.write_evaluation(
                &mut self.run,
                &self.progress,
                &trainer.position,
                &metrics,
                T::BEST_METRIC,
                value,
            )?;
            Some((metrics, value))
        } else {
            None
        };
        trainer.save_epoch(&self.run, evaluation.as_ref())?;
        trainer.position.epoch += 1;
        trainer.position.step_in_epoch = 0;
        trainer.save_state(&self.run)?;
        checkpoints::draw_curves(&self.run, &self.progress);
        Ok(evaluation)
    }
}
