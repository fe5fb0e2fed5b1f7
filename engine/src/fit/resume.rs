//! Starting a run: a new one writes its config; `--resume` reads rank 0's saved state (the
//! model, optimiser, loss scale, EMA and position) and refuses a changed recipe; with several
//! ranks, rank 0's start is handed to every other.

use super::trainer::{Position, Trainer};
use super::{RunOptions, TrainInputError};
use crate::checkpoint::load_into;
use crate::config::{is_operational, EngineConfig};
use crate::config_file;
use crate::data_parallel;
use crate::run_dir::{with_prefix, RunDir};
use crate::task::Task;
use anyhow::bail;
use tch::Tensor;

impl<T: Task> Trainer<'_, T> {
    /// Resumes from the state in `run` (rank 0 only reads it; [`Trainer::synchronise_ranks`]
    /// hands it on), or, for a new run, writes the config.
    pub fn start(
        &mut self,
        run: &mut RunDir,
        config: &EngineConfig,
        opts: &RunOptions,
    ) -> anyhow::Result<()> {
        if opts.resume && run.is_writer() {
            self.resume(run, config, opts)
        } else {
            run.write_config(&config_file::to_toml(self.learner.config()))?;
            Ok(())
        }
    }

    fn resume(
        &mut self,
        run: &mut RunDir,
        config: &EngineConfig,
        opts: &RunOptions,
    ) -> anyhow::Result<()> {
        let state = run.load_state()?;
        let state_path = run.path(RunDir::STATE);
        let bad_state = |e: String| TrainInputError(format!("{}: {e}", state_path.display()));
        let changed = changed_operational_settings(self.learner, &state.config, opts, &state_path)?;
        load_into(
            self.learner.var_store(),
            &with_prefix(&state.tensors, "model."),
            &state_path,
            "the model",
        )?;
        self.load_optimiser_state(&state.tensors)
            .map_err(bad_state)?;
        let accumulate = config.run.accumulate;
        if state.batch % accumulate != 0 {
            bail!(bad_state(format!(
                "saved at batch {} of epoch {}, not a step boundary of train.accumulate = {accumulate}",
                state.batch, state.epoch
            )));
        }
        self.position = Position {
            epoch: state.epoch,
            step_in_epoch: state.batch / accumulate,
            iter: state.iter,
            best: state.best_metric,
        };
        let Position { epoch, iter, .. } = self.position;
        let epochs = config.schedule.epochs;
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
            run.write_config(&config_file::to_toml(self.learner.config()))?;
            eprintln!("resuming with new settings: {}", changed.join("; "));
        }
        eprintln!(
            "resuming {} at epoch {epoch}, step {} (iteration {iter})",
            opts.out.display(),
            self.position.step_in_epoch
        );
        Ok(())
    }

    /// Makes every rank start alike: rank 0's position, weights and buffers, momentum
    /// buffers, loss scale and EMA are copied into every other rank. At the start of a new
    /// run this is DDP's initial broadcast; after `--resume` it hands rank 0's loaded state
    /// to ranks that never read the state file.
    pub fn synchronise_ranks(&mut self) -> anyhow::Result<()> {
        let p = self.position;
        let numbers = Tensor::from_slice(&[
            p.epoch as f64,
            p.step_in_epoch as f64,
            p.iter as f64,
            if p.best.is_some() { 1.0 } else { 0.0 },
            p.best.unwrap_or(0.0),
        ]);
        data_parallel::broadcast_from_main(std::slice::from_ref(&numbers), "the start position")?;
        let mut values = [0f64; 5];
        numbers.copy_data(&mut values, 5);
        // Sorted by name: every rank lists the same tensors in the same order.
        let tensors = self.rank_shared_tensors();
        let _guard = tch::no_grad_guard();
        data_parallel::broadcast_from_main(&tensors, "the broadcast of rank 0's weights")?;
        self.position = Position {
            epoch: values[0] as u64,
            step_in_epoch: values[1] as u64,
            iter: values[2] as u64,
            best: (values[3] != 0.0).then_some(values[4]),
        };
        Ok(())
    }
}

/// Compares the saved config of a run with the one it resumes with: recipe changes are
/// refused, naming the keys; operational changes (data path, workers, ...) are returned.
fn changed_operational_settings<T: Task>(
    task: &T,
    saved: &serde_json::Value,
    opts: &RunOptions,
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
            opts.out.display(),
            recipe.join("; ")
        )));
    }
    Ok(operational)
}
