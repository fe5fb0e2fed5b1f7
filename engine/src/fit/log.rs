//! The run's log: the losses of the steps since the last log point, summed on the device and
//! read once per log point (the only host-device sync of training steps), written to
//! metrics.jsonl (and through the same call to the TensorBoard events, see
//! [`crate::tensorboard`]) and the progress bar; and each evaluation's line.

use super::trainer::{Position, StepOutcome};
use crate::data_parallel;
use crate::progress::Progress;
use crate::run_dir::RunDir;
use crate::task::Metrics;
use std::collections::BTreeMap;
use std::time::Instant;
use tch::{Kind, Tensor};

pub struct TrainLog {
    /// Per loss name, the sum over the micro-batches since the last log point, each scaled by
    /// 1/accumulate (so a step adds its mean).
    sums: BTreeMap<String, Tensor>,
    steps: u64,
    window_start: Instant,
    run_start: Instant,
    /// Images per optimiser step over all ranks.
    images_per_step: u64,
}

impl TrainLog {
    pub fn new(images_per_step: usize) -> Self {
        TrainLog {
            sums: BTreeMap::new(),
            steps: 0,
            window_start: Instant::now(),
            run_start: Instant::now(),
            images_per_step: images_per_step as u64,
        }
    }

    /// Seconds since the run started.
    pub fn elapsed(&self) -> f64 {
        self.run_start.elapsed().as_secs_f64()
    }

    /// Adds a step's losses (detached): `loss` is each micro-batch's total; components keep
    /// their names.
    pub fn add(&mut self, outcome: &StepOutcome) {
        let _guard = tch::no_grad_guard();
        let scale = 1.0 / outcome.micro_batches.len() as f64;
        for micro_batch in &outcome.micro_batches {
            self.add_value("loss", &micro_batch.total, scale);
            let losses = &micro_batch.losses;
            if losses.len() > 1 || !losses.contains_key("loss") {
                for (name, value) in losses {
                    if name != "loss" {
                        self.add_value(name, value, scale);
                    }
                }
            }
        }
        self.steps += 1;
    }

    fn add_value(&mut self, name: &str, value: &Tensor, scale: f64) {
        let value = value.detach().to_kind(Kind::Double) * scale;
        match self.sums.get_mut(name) {
            Some(sum) => *sum += value,
            None => {
                self.sums.insert(name.to_string(), value);
            }
        }
    }

    /// Writes the train record of the steps since the last call (the losses' mean over
    /// steps and ranks, the rate, the loss scale and skipped steps under AMP) and starts a
    /// new window.
    pub fn write(
        &mut self,
        run: &mut RunDir,
        progress: &Progress,
        at: &Position,
        lr: f64,
        loss_scale: Option<f64>,
        skipped: u64,
    ) -> anyhow::Result<()> {
        let seconds = self.window_start.elapsed().as_secs_f64();
        let mut record = serde_json::json!({
            "epoch": at.epoch, "iter": at.iter, "split": "train",
            "time": self.elapsed(), "lr": lr,
            "images_per_s": (self.steps * self.images_per_step) as f64 / seconds,
        });
        if data_parallel::group().is_some() {
            // The logged losses are the mean over ranks.
            let sums: Vec<Tensor> = self.sums.values().map(|t| t.shallow_clone()).collect();
            data_parallel::all_reduce(&sums, distributed::ReduceOp::Sum, "the loss log")?;
        }
        let ranks = data_parallel::world_size() as f64;
        for (name, sum) in &self.sums {
            record[name] = (sum.double_value(&[]) / (self.steps as f64 * ranks)).into();
        }
        if let Some(scale) = loss_scale {
            record["loss_scale"] = scale.into();
            if skipped > 0 {
                record["nonfinite_steps"] = skipped.into();
                progress.println(&format!(
                    "warning: {skipped} steps with a non-finite loss skipped before iteration {}",
                    at.iter
                ));
            }
        }
        run.log(&record)?;
        progress.update(
            at.iter,
            at.epoch,
            record["loss"].as_f64().unwrap_or(f64::NAN),
            lr,
            record["images_per_s"].as_f64().unwrap_or(0.0),
        );
        for sum in self.sums.values_mut() {
            let _ = sum.zero_();
        }
        self.steps = 0;
        self.window_start = Instant::now();
        Ok(())
    }

    /// Writes an evaluation's record and prints its line (`best_metric` first).
    pub fn write_evaluation(
        &self,
        run: &mut RunDir,
        progress: &Progress,
        at: &Position,
        metrics: &Metrics,
        best_metric: &str,
        value: f64,
    ) -> anyhow::Result<()> {
        let mut record = serde_json::json!({
            "epoch": at.epoch, "iter": at.iter, "split": "val",
            "time": self.elapsed(),
        });
        let mut line = format!("epoch {}: val {best_metric} {value:.4}", at.epoch);
        for (name, v) in metrics {
            record[name] = (*v).into();
            if name == best_metric {
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
        Ok(())
    }
}
