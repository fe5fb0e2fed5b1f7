//! What the run keeps on disk: the resumable state (every `train.checkpoint_every_iters`
//! steps, at a stop and at each epoch's end), and at each epoch's end `last.safetensors`,
//! `best.safetensors` when the evaluation improved, and the curves picture. Only rank 0
//! writes.

use super::trainer::{Position, Trainer};
use crate::checkpoint::Checkpoint;
use crate::curves::write_curves_png;
use crate::progress::Progress;
use crate::run_dir::{RunDir, TrainState};
use crate::task::{Metrics, Task};

impl<T: Task> Trainer<'_, T> {
    /// Saves the resumable state at the current position.
    pub fn save_state(&self, run: &RunDir) -> anyhow::Result<()> {
        if !run.is_writer() {
            return Ok(());
        }
        let Position {
            epoch,
            step_in_epoch,
            iter,
            best,
        } = self.position;
        run.save_state(&TrainState {
            epoch,
            batch: step_in_epoch * self.accumulate(),
            iter,
            best_metric: best,
            config: serde_json::to_value(self.learner.config())?,
            tensors: self.state_tensors(),
        })?;
        Ok(())
    }

    /// Writes the epoch's checkpoint to `last.safetensors`, and to `best.safetensors` when
    /// `evaluation` (the metrics and the value of the task's best metric) beats the best.
    pub fn save_epoch(
        &mut self,
        run: &RunDir,
        evaluation: Option<&(Metrics, f64)>,
    ) -> anyhow::Result<()> {
        let mut metadata = self.learner.metadata();
        metadata.epoch = Some(self.position.epoch);
        metadata.iter = Some(self.position.iter);
        metadata.metrics = evaluation
            .map(|(m, _)| serde_json::to_value(m))
            .transpose()?;
        let checkpoint = Checkpoint {
            metadata,
            tensors: self.weights(),
        };
        if run.is_writer() {
            checkpoint.write(&run.path(RunDir::LAST))?;
        }
        if let Some((_, value)) = evaluation {
            if self.position.best.is_none_or(|b| *value > b) {
                self.position.best = Some(*value);
                if run.is_writer() {
                    checkpoint.write(&run.path(RunDir::BEST))?;
                }
            }
        }
        Ok(())
    }
}

/// Redraws curves.png from metrics.jsonl (rank 0); a failure to draw is a warning, never the
/// end of a run.
pub fn draw_curves(run: &RunDir, progress: &Progress) {
    if !run.is_writer() {
        return;
    }
    if let Err(e) = write_curves_png(&run.path(RunDir::METRICS), &run.path(RunDir::CURVES)) {
        progress.println(&format!(
            "warning: could not draw {}: {e:#}",
            RunDir::CURVES
        ));
    }
}
