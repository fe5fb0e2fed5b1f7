//! The training loop every task runs, in the style of torchvision's reference scripts: warmup
//! and schedule per optimiser step, gradient accumulation, AMP loss scaling, EMA, logging, a
//! stop on non-finite losses, evaluation and checkpoints, and exact resumption.
//!
//! Host-device syncs happen only at log points (every `train.log_every` steps), state saves
//! and epoch ends. The next batch is uploaded (pinned, non-blocking) right after the current
//! one's backward pass is queued, so the host prepares it while the device computes.

use super::amp::LossScaler;
use super::config::{is_operational, EngineConfig, RunSection};
use super::config_file;
use super::curves::write_curves_png;
use super::data_parallel;
use super::ema::Ema;
use super::nonfinite::{NonFiniteGuard, Verdict, AMP_LIMIT};
use super::optim::Sgd;
use super::param_groups::{freeze, unmatched_prefixes};
use super::progress::Progress;
use super::run_dir::{prefixed, with_prefix, RunDir, TrainState};
use super::schedule::{linear_scaled_lr, LrSchedule};
use super::task::{Losses, Metrics, Step, Task};
use crate::channels_last::var_store_to_channels_last;
use crate::checkpoint::{load_into, var_store_tensors, Checkpoint, NamedTensors};
use anyhow::{bail, Context};
use datasets::loader::{Collate, Dataset, EpochIter, Loader};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// The position a run starts from, as rank 0 read it (see [`synchronise_ranks`]).
struct Position {
    epoch: u64,
    start_step: u64,
    iter: u64,
    best: Option<f64>,
}

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
/// the seed of parameter initialisation, cuDNN autotuning.
pub fn set_up(run: &RunSection, device: Device) {
    keep_freed_tensor_memory();
    if run.threads > 0 {
        tch::set_num_threads(run.threads as i32);
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

/// Trains `task` on the batches of `train` as `config` says, in the run folder `run`.
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
    let amp = config.run.amp;
    let accumulate = config.run.accumulate;
    let epochs = config.schedule.epochs;

    let unmatched = unmatched_prefixes(
        task.var_store(),
        config
            .optim
            .freeze
            .iter()
            .chain(config.optim.lr_mult.keys()),
    );
    if !unmatched.is_empty() {
        bail!(TrainInputError(format!(
            "optim.freeze / optim.lr_mult name no parameter of the model: {}",
            unmatched.join(", ")
        )));
    }
    freeze(task.var_store(), &config.optim.freeze);
    if config.run.channels_last {
        // Before the optimiser, so its momentum buffers take the same layout.
        var_store_to_channels_last(task.var_store());
    }
    let mut sgd = Sgd::with_lr_mult(task.var_store(), &config.optim.sgd(), &config.optim.lr_mult);
    let params = sgd.params();
    let batches_per_epoch = train.batches_per_epoch() as u64;
    let iters_per_epoch = batches_per_epoch / accumulate;
    if iters_per_epoch == 0 {
        bail!(TrainInputError(format!(
            "{} batches of {} make no optimiser step of train.accumulate = {accumulate} batches",
            batches_per_epoch, config.batch_size
        )));
    }
    let schedule = LrSchedule::new(
        linear_scaled_lr(config.optim.lr, config.effective_batch()),
        config.schedule.warmup_epochs,
        config.schedule.decay.clone(),
        epochs as f64,
        iters_per_epoch,
    );
    // Everything above is checked before the run folder is created or touched.
    let mut run = RunDir::open(&opts.out, opts.resume)?;
    let mut scaler = amp.then(|| LossScaler::new(device));
    let mut ema = config.run.ema_decay.map(|d| Ema::new(task.var_store(), d));

    let (mut epoch, mut start_step, mut iter, mut best) = (0u64, 0u64, 0u64, None::<f64>);
    // Only rank 0 reads the state; the others receive it below.
    if opts.resume && run.is_writer() {
        let state = run.load_state()?;
        let state_path = run.path(RunDir::STATE);
        let bad_state = |e: String| TrainInputError(format!("{}: {e}", state_path.display()));
        let changed = changed_operational_settings(task, &state.config, &opts.out, &state_path)?;
        load_into(
            task.var_store(),
            &with_prefix(&state.tensors, "model."),
            &state_path,
            "the model",
        )?;
        sgd.load_state(&state.tensors).map_err(bad_state)?;
        if let Some(s) = scaler.as_mut() {
            s.load_state(&state.tensors).map_err(bad_state)?;
        }
        if let Some(e) = ema.as_mut() {
            e.load_state(&state.tensors).map_err(bad_state)?;
        }
        if state.batch % accumulate != 0 {
            bail!(bad_state(format!(
                "saved at batch {} of epoch {}, not a step boundary of train.accumulate = {accumulate}",
                state.batch, state.epoch
            )));
        }
        (epoch, start_step, iter, best) = (
            state.epoch,
            state.batch / accumulate,
            state.iter,
            state.best_metric,
        );
        if epoch >= epochs {
            bail!(TrainInputError(format!(
                "{}: the run is finished: all {epochs} epochs are trained ({iter} iterations), so there is nothing to resume; its weights are in {} and {}",
                opts.out.display(),
                RunDir::LAST,
                RunDir::BEST
            )));
        }
        run.truncate_metrics_after(iter)?;
        if !changed.is_empty() {
            run.write_config(&config_file::to_toml(task.config()))?;
            eprintln!("resuming with new settings: {}", changed.join("; "));
        }
        eprintln!(
            "resuming {} at epoch {epoch}, step {start_step} (iteration {iter})",
            opts.out.display()
        );
    } else {
        run.write_config(&config_file::to_toml(task.config()))?;
    }
    let group = data_parallel::group();
    if group.is_some() {
        let position = Position {
            epoch,
            start_step,
            iter,
            best,
        };
        let position = synchronise_ranks(task, &sgd, &scaler, &ema, position)?;
        (epoch, start_step, iter, best) = (
            position.epoch,
            position.start_step,
            position.iter,
            position.best,
        );
    }
    // DDP's reducer: gradients averaged over ranks in buckets, during the backward pass.
    let reducer = group
        .map(|g| distributed::Reducer::new(g, &params))
        .transpose()?;

    let progress = Progress::new(epochs * iters_per_epoch, iter);
    let mut guard = NonFiniteGuard::new(device, amp);
    let mut loss_sums: BTreeMap<String, Tensor> = BTreeMap::new();
    let mut logged_since = 0u64;
    let mut last_metrics = None;
    let mut window_start = Instant::now();
    let mut stopped_early = false;
    let run_start = Instant::now();
    let scale = 1.0 / accumulate as f64;

    'epochs: while epoch < epochs {
        let mut batches = train.epoch(epoch, (start_step * accumulate) as usize);
        let mut next = Some(task.upload(&next_batch(&mut batches)?));
        let mut step_in_epoch = start_step;
        while step_in_epoch < iters_per_epoch {
            sgd.zero_grad();
            for k in 0..accumulate {
                let input = next
                    .take()
                    .expect("a batch was uploaded for every micro-batch");
                let step = Step {
                    epoch,
                    iter,
                    micro_batch: iter * accumulate + k,
                };
                let losses = if amp {
                    tch::autocast(true, || task.losses(&input, &step))
                } else {
                    task.losses(&input, &step)
                };
                let total = sum_losses(&losses);
                let backward = if accumulate > 1 {
                    &total * scale
                } else {
                    total.shallow_clone()
                };
                let backward = match &scaler {
                    Some(s) => s.scale(&backward),
                    None => backward,
                };
                match &reducer {
                    // Gradients are averaged on the step's last micro-batch only; the ones
                    // before accumulate locally (DDP's `no_sync`).
                    Some(r) if k + 1 == accumulate => {
                        r.prepare_for_backward()?;
                        backward
                            .f_backward()
                            .map_err(|e| r.backward_failure(&e.to_string()))?;
                    }
                    _ => backward.backward(),
                }
                guard.observe(&total);
                accumulate_losses(&mut loss_sums, &losses, &total, scale);
                let more = k + 1 < accumulate || step_in_epoch + 1 < iters_per_epoch;
                if more {
                    next = Some(task.upload(&next_batch(&mut batches)?));
                }
            }
            let lr = schedule.lr(iter);
            match scaler.as_mut() {
                Some(s) => {
                    let found_inf = s.unscale(&params);
                    sgd.step(lr, Some(&found_inf));
                    s.update(&found_inf);
                }
                None => sgd.step(lr, None),
            }
            if let Some(e) = ema.as_mut() {
                e.update(task.var_store());
            }
            guard.end_step(iter);
            iter += 1;
            step_in_epoch += 1;
            logged_since += 1;

            let at_checkpoint = config.run.checkpoint_every_iters > 0
                && iter % config.run.checkpoint_every_iters == 0;
            let at_stop = opts.max_iters.is_some_and(|m| iter >= m);
            let at_epoch_end = step_in_epoch == iters_per_epoch;
            if iter % config.run.log_every == 0 || at_checkpoint || at_stop || at_epoch_end {
                guard.agree_across_ranks()?;
                let skipped = match guard.check() {
                    Verdict::Continue { skipped } => skipped,
                    Verdict::Diverged { first_bad_iter } => bail!(
                        "the training loss became non-finite (NaN or inf) at iteration {first_bad_iter} (epoch {epoch}); stopping. \
                         last.safetensors and state.safetensors hold the last good checkpoint; lower optim.lr or check the data"
                    ),
                    Verdict::Persistent { streak } => bail!(
                        "the training loss was non-finite (NaN or inf) for {streak} optimiser steps in a row under AMP \
                         (the limit is {AMP_LIMIT}), up to iteration {iter} (epoch {epoch}); stopping. \
                         last.safetensors and state.safetensors hold the last good checkpoint; lower optim.lr or check the data"
                    ),
                };
                let seconds = window_start.elapsed().as_secs_f64();
                let mut record = serde_json::json!({
                    "epoch": epoch, "iter": iter, "split": "train",
                    "time": run_start.elapsed().as_secs_f64(), "lr": lr,
                    "images_per_s": (logged_since * config.effective_batch() as u64) as f64 / seconds,
                });
                if group.is_some() {
                    // The logged losses are the mean over ranks.
                    let sums: Vec<Tensor> = loss_sums.values().map(|t| t.shallow_clone()).collect();
                    data_parallel::all_reduce(&sums, distributed::ReduceOp::Sum, "the loss log")?;
                }
                let ranks = data_parallel::world_size() as f64;
                for (name, sum) in &loss_sums {
                    record[name] = (sum.double_value(&[]) / (logged_since as f64 * ranks)).into();
                }
                if let Some(s) = &scaler {
                    record["loss_scale"] = s.scale_value().into();
                    if skipped > 0 {
                        record["nonfinite_steps"] = skipped.into();
                        progress.println(&format!(
                            "warning: {skipped} steps with a non-finite loss skipped before iteration {iter}"
                        ));
                    }
                }
                run.log(&record)?;
                progress.update(
                    iter,
                    epoch,
                    record["loss"].as_f64().unwrap_or(f64::NAN),
                    lr,
                    record["images_per_s"].as_f64().unwrap_or(0.0),
                );
                for sum in loss_sums.values_mut() {
                    let _ = sum.zero_();
                }
                logged_since = 0;
                window_start = Instant::now();
            }
            let save = |run: &RunDir, epoch, step: u64, iter, best| {
                save_state(
                    run,
                    task,
                    &sgd,
                    &scaler,
                    &ema,
                    epoch,
                    step * accumulate,
                    iter,
                    best,
                )
            };
            if at_checkpoint && !at_epoch_end {
                save(&run, epoch, step_in_epoch, iter, best)?;
            }
            if at_stop {
                stopped_early = true;
                if !at_epoch_end {
                    save(&run, epoch, step_in_epoch, iter, best)?;
                    break 'epochs;
                }
            }
        }
        drop(batches);

        // End of epoch: evaluate (the EMA weights when kept), save last/best, then the state.
        let evaluate_now = (epoch + 1) % config.run.eval_every_epochs == 0 || epoch + 1 == epochs;
        let metrics = if evaluate_now {
            let metrics = match &ema {
                Some(e) => with_weights(task, e.tensors(), |t| t.evaluate(amp))?,
                None => task.evaluate(amp)?,
            };
            let value = *metrics
                .get(T::BEST_METRIC)
                .with_context(|| format!("the evaluation did not report {}", T::BEST_METRIC))?;
            let mut record = serde_json::json!({
                "epoch": epoch, "iter": iter, "split": "val",
                "time": run_start.elapsed().as_secs_f64(),
            });
            let mut line = format!("epoch {epoch}: val {} {value:.4}", T::BEST_METRIC);
            for (name, v) in &metrics {
                record[name] = (*v).into();
                if name == T::BEST_METRIC {
                    continue;
                }
                if v.fract() == 0.0 && v.abs() >= 1.0 {
                    line.push_str(&format!(", {name} {v}"));
                } else {
                    line.push_str(&format!(", {name} {v:.4}"));
                }
            }
            run.log(&record)?;
            progress.println(&line);
            Some((metrics, value))
        } else {
            None
        };
        let mut metadata = task.metadata();
        metadata.epoch = Some(epoch);
        metadata.iter = Some(iter);
        metadata.metrics = metrics
            .as_ref()
            .map(|(m, _)| serde_json::to_value(m))
            .transpose()?;
        let weights = match &ema {
            Some(e) => e
                .tensors()
                .iter()
                .map(|(k, v)| (k.clone(), v.shallow_clone()))
                .collect(),
            None => var_store_tensors(task.var_store()),
        };
        let checkpoint = Checkpoint {
            metadata,
            tensors: weights,
        };
        if run.is_writer() {
            checkpoint.write(&run.path(RunDir::LAST))?;
        }
        if let Some((m, value)) = metrics {
            if best.is_none_or(|b| value > b) {
                best = Some(value);
                if run.is_writer() {
                    checkpoint.write(&run.path(RunDir::BEST))?;
                }
            }
            last_metrics = Some(m);
        }
        epoch += 1;
        start_step = 0;
        save_state(&run, task, &sgd, &scaler, &ema, epoch, 0, iter, best)?;
        if !run.is_writer() {
            // Rank 0 draws the curves.
        } else if let Err(e) =
            write_curves_png(&run.path(RunDir::METRICS), &run.path(RunDir::CURVES))
        {
            progress.println(&format!(
                "warning: could not draw {}: {e:#}",
                RunDir::CURVES
            ));
        }
        if stopped_early {
            break;
        }
    }
    progress.finish();
    drop(reducer);
    if let Some(g) = group {
        // No rank leaves while another still needs it (rank 0 writes the last files).
        g.barrier("the end-of-run barrier")?;
    }
    let skipped = train.skipped();
    for s in &skipped {
        eprintln!("skipped {}: {}", s.path.display(), s.error);
    }
    Ok(Summary {
        epochs_done: epoch,
        iters: iter,
        last_metrics,
        best,
        skipped_images: skipped.len(),
        stopped_early,
    })
}

/// The next batch of an epoch that must have one (the loop only asks for batches of whole
/// optimiser steps, which the loader's count guarantees).
fn next_batch<B: Send + 'static>(batches: &mut EpochIter<B>) -> anyhow::Result<B> {
    match batches.next() {
        Some(Ok(batch)) => Ok(batch),
        Some(Err(e)) if e.is_bug() => Err(e.into()),
        Some(Err(e)) => Err(TrainInputError(format!(
            "{e} (use data.skip_bad = true to leave such files out)"
        ))
        .into()),
        None => bail!("the data loader ended before the epoch's last optimiser step"),
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

/// Adds this micro-batch's losses (detached, scaled by `scale` = 1/accumulate) to the sums
/// logged at the next log point: `loss` is the total; components keep their names.
fn accumulate_losses(
    sums: &mut BTreeMap<String, Tensor>,
    losses: &Losses,
    total: &Tensor,
    scale: f64,
) {
    let _guard = tch::no_grad_guard();
    let mut add = |name: &str, value: &Tensor| {
        let value = value.detach().to_kind(Kind::Double) * scale;
        match sums.get_mut(name) {
            Some(sum) => *sum += value,
            None => {
                sums.insert(name.to_string(), value);
            }
        }
    };
    add("loss", total);
    if losses.len() > 1 || !losses.contains_key("loss") {
        for (name, value) in losses {
            if name != "loss" {
                add(name, value);
            }
        }
    }
}

/// Runs `f` with `weights` loaded into the task's model, then puts the live weights back.
fn with_weights<T: Task, R>(
    task: &mut T,
    weights: &NamedTensors,
    f: impl FnOnce(&mut T) -> anyhow::Result<R>,
) -> anyhow::Result<R> {
    let live: NamedTensors = {
        let _guard = tch::no_grad_guard();
        task.var_store()
            .variables()
            .into_iter()
            .map(|(k, v)| (k, v.detach().copy()))
            .collect()
    };
    let copy_in = |task: &T, from: &NamedTensors| {
        let _guard = tch::no_grad_guard();
        for (name, mut v) in task.var_store().variables() {
            if let Some(w) = from.get(&name) {
                v.copy_(w);
            }
        }
    };
    copy_in(task, weights);
    let result = f(task);
    copy_in(task, &live);
    result
}

#[allow(clippy::too_many_arguments)]
fn save_state<T: Task>(
    run: &RunDir,
    task: &T,
    sgd: &Sgd,
    scaler: &Option<LossScaler>,
    ema: &Option<Ema>,
    epoch: u64,
    batch: u64,
    iter: u64,
    best: Option<f64>,
) -> anyhow::Result<()> {
    if !run.is_writer() {
        return Ok(());
    }
    let mut tensors = prefixed(var_store_tensors(task.var_store()), "model.");
    // The optimiser, scaler and EMA name their own tensors with distinct prefixes.
    tensors.extend(sgd.state());
    if let Some(s) = scaler {
        tensors.extend(s.state());
    }
    if let Some(e) = ema {
        tensors.extend(e.state());
    }
    run.save_state(&TrainState {
        epoch,
        batch,
        iter,
        best_metric: best,
        config: serde_json::to_value(task.config())?,
        tensors,
    })?;
    Ok(())
}

/// Compares the saved config of a run with the one it resumes with: recipe changes are
/// refused, naming the keys; operational changes (data path, workers, ...) are returned.
fn changed_operational_settings<T: Task>(
    task: &T,
    saved: &serde_json::Value,
    out: &std::path::Path,
    state_path: &std::path::Path,
) -> anyhow::Result<Vec<String>> {
    // Through the config type, so keys added since the state was written take their defaults.
    let saved: T::Config = serde_json::from_value(saved.clone()).map_err(|e| {
        TrainInputError(format!(
            "{}: unreadable config in the state ({e})",
            state_path.display()
        ))
    })?;
    let (operational, recipe): (Vec<String>, Vec<String>) =
        config_file::differences(&saved, task.config())
            .into_iter()
            .partition(|d| is_operational(d.split(": ").next().unwrap_or(d)));
    if !recipe.is_empty() {
        bail!(TrainInputError(format!(
            "{}: cannot resume with a different config ({}); start a new run with another --out",
            out.display(),
            recipe.join("; ")
        )));
    }
    Ok(operational)
}

/// Makes every rank start alike: rank 0's position, weights and buffers (all variables, the
/// frozen ones and BN statistics included), momentum buffers, loss scale and EMA are copied
/// into every other rank. At the start of a new run this is DDP's initial broadcast; after
/// `--resume` it hands rank 0's loaded state to ranks that never read the state file.
fn synchronise_ranks<T: Task>(
    task: &T,
    sgd: &Sgd,
    scaler: &Option<LossScaler>,
    ema: &Option<Ema>,
    position: Position,
) -> anyhow::Result<Position> {
    let numbers = Tensor::from_slice(&[
        position.epoch as f64,
        position.start_step as f64,
        position.iter as f64,
        if position.best.is_some() { 1.0 } else { 0.0 },
        position.best.unwrap_or(0.0),
    ]);
    data_parallel::broadcast_from_main(std::slice::from_ref(&numbers), "the start position")?;
    let mut values = [0f64; 5];
    numbers.copy_data(&mut values, 5);

    // Sorted by name: every rank must list the same tensors in the same order.
    let mut tensors: Vec<Tensor> = var_store_tensors(task.var_store()).into_values().collect();
    tensors.extend(sgd.momentum_buffers());
    if let Some(s) = scaler {
        tensors.extend(s.live_tensors());
    }
    if let Some(e) = ema {
        tensors.extend(e.tensors().values().map(|t| t.shallow_clone()));
    }
    let _guard = tch::no_grad_guard();
    data_parallel::broadcast_from_main(&tensors, "the broadcast of rank 0's weights")?;
    Ok(Position {
        epoch: values[0] as u64,
        start_step: values[1] as u64,
        iter: values[2] as u64,
        best: (values[3] != 0.0).then_some(values[4]),
    })
}
