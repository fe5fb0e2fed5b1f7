//! Catching non-finite training losses without a host sync per step: the flags accumulate on
//! the device and are read at log points, before any checkpoint is written.
//!
//! - fp32 and bf16 (no loss scaling): the first non-finite loss stops the run (its weights are
//!   already poisoned by that step; `last.safetensors` holds the last good epoch).
//! - fp16 with loss scaling ("AMP" below): an overflowing step is skipped by the loss scaler and the scale backs off, so a
//!   non-finite loss does no harm by itself. Such steps are counted and logged; the run stops
//!   only when they persist for [`AMP_LIMIT`] steps in a row (the scale has then collapsed, or
//!   the model diverged in a way scaling cannot fix).

use tch::{Device, Kind, Tensor};

/// Consecutive non-finite steps after which an AMP run stops.
pub const AMP_LIMIT: i64 = 100;

pub struct NonFiniteGuard {
    amp: bool,
    /// Whether any micro-batch of the current step had a non-finite loss.
    step_bad: Tensor,
    /// fp32: the first step with a non-finite loss, -1 while there is none.
    first_bad: Tensor,
    /// AMP: the current run of non-finite steps, the longest since the last check, and how
    /// many non-finite steps there were since the last check.
    streak: Tensor,
    longest: Tensor,
    count: Tensor,
}

/// What a check found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on; `skipped` steps (AMP only) had a non-finite loss since the last check.
    Continue { skipped: u64 },
    /// fp32: the loss became non-finite at this step.
    Diverged { first_bad_iter: u64 },
    /// AMP: this many non-finite steps in a row (at least [`AMP_LIMIT`]).
    Persistent { streak: u64 },
}

impl NonFiniteGuard {
    /// `scaled`: whether the run scales its loss (fp16), so that non-finite steps are
    /// skipped, not applied.
    pub fn new(device: Device, scaled: bool) -> Self {
        let int = |v: i64| Tensor::full([], v, (Kind::Int64, device));
        NonFiniteGuard {
            amp: scaled,
            step_bad: Tensor::zeros([], (Kind::Bool, device)),
            first_bad: int(-1),
            streak: int(0),
            longest: int(0),
            count: int(0),
        }
    }

    /// Takes one micro-batch's loss (a 0-dim tensor).
    pub fn observe(&mut self, loss: &Tensor) {
        let _guard = tch::no_grad_guard();
        let bad = loss.detach().isfinite().logical_not();
        let _ = self.step_bad.logical_or_(&bad);
    }

    /// Closes optimiser step `iter`.
    pub fn end_step(&mut self, iter: u64) {
        let _guard = tch::no_grad_guard();
        if self.amp {
            let bad = self.step_bad.to_kind(Kind::Int64);
            self.streak = (&self.streak + 1) * &bad;
            self.longest = self.longest.maximum(&self.streak);
            self.count += bad;
        } else {
            let first = self.step_bad.logical_and(&self.first_bad.lt(0));
            let _ = self.first_bad.masked_fill_(&first, iter as i64);
        }
        let _ = self.step_bad.zero_();
    }

    /// Makes every rank of a data-parallel run reach the same verdict at a log point (a
    /// non-finite loss on one rank poisons every rank's averaged gradients, yet only that
    /// rank saw it): the first bad step is the earliest on any rank, the AMP counters the
    /// largest. A lone process has nothing to do.
    pub fn agree_across_ranks(&mut self) -> Result<(), distributed::DistError> {
        let Some(group) = super::data_parallel::group() else {
            return Ok(());
        };
        let what = "the non-finite loss check";
        if self.amp {
            let counters = [
                self.streak.shallow_clone(),
                self.longest.shallow_clone(),
                self.count.shallow_clone(),
            ];
            group.all_reduce(&counters, distributed::ReduceOp::Max, what)
        } else {
            let none = self.first_bad.lt(0);
            let first = self.first_bad.masked_fill(&none, i64::MAX);
            group.all_reduce(
                std::slice::from_ref(&first),
                distributed::ReduceOp::Min,
                what,
            )?;
            self.first_bad = first.masked_fill(&first.eq(i64::MAX), -1);
            Ok(())
        }
    }

    /// Reads the flags (one host sync) and resets the AMP counters.
    pub fn check(&mut self) -> Verdict {
        if !self.amp {
            let first = self.first_bad.int64_value(&[]);
            return if first >= 0 {
                Verdict::Diverged {
                    first_bad_iter: first as u64,
                }
            } else {
                Verdict::Continue { skipped: 0 }
            };
        }
        let longest = self.longest.int64_value(&[]);
        let skipped = self.count.int64_value(&[]) as u64;
        let _ = self.count.zero_();
        // The current streak carries over to the next window; the longest starts from it.
        self.longest = self.streak.copy();
        if longest >= AMP_LIMIT {
            Verdict::Persistent {
                streak: longest as u64,
            }
        } else {
            Verdict::Continue { skipped }
        }
    }
}

impl NonFiniteGuard {
    /// [`NonFiniteGuard::check`] as the run's stop: a diverged or persistently non-finite
    /// loss is the error that ends the run (its checkpoints hold the last good weights);
    /// otherwise the number of steps AMP skipped since the last check.
    pub fn stop_if_diverged(&mut self, iter: u64, epoch: u64) -> anyhow::Result<u64> {
        match self.check() {
            Verdict::Continue { skipped } => Ok(skipped),
            Verdict::Diverged { first_bad_iter } => anyhow::bail!(
                "the training loss became non-finite (NaN or inf) at iteration {first_bad_iter} (epoch {epoch}); stopping. \
                 last.safetensors and state.safetensors hold the last good checkpoint; lower optim.lr or check the data"
            ),
            Verdict::Persistent { streak } => anyhow::bail!(
                "the training loss was non-finite (NaN or inf) for {streak} optimiser steps in a row under AMP \
                 (the limit is {AMP_LIMIT}), up to iteration {iter} (epoch {epoch}); stopping. \
                 last.safetensors and state.safetensors hold the last good checkpoint; lower optim.lr or check the data"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss(v: f32) -> Tensor {
        Tensor::from(v)
    }

    #[test]
    fn fp32_names_the_first_bad_step() {
        let mut g = NonFiniteGuard::new(Device::Cpu, false);
        for (iter, v) in [1.0, 2.0, f32::NAN, 3.0, f32::INFINITY]
            .into_iter()
            .enumerate()
        {
            g.observe(&loss(v));
            g.end_step(iter as u64);
        }
        assert_eq!(g.check(), Verdict::Diverged { first_bad_iter: 2 });
    }

    #[test]
    fn amp_counts_bad_steps_and_stops_only_when_they_persist() {
        let mut g = NonFiniteGuard::new(Device::Cpu, true);
        let mut iter = 0;
        let mut run = |g: &mut NonFiniteGuard, values: &[f32]| {
            for v in values {
                // Two micro-batches per step: one bad one makes the step bad.
                g.observe(&loss(1.0));
                g.observe(&loss(*v));
                g.end_step(iter);
                iter += 1;
            }
        };
        run(&mut g, &[1.0, f32::NAN, f32::NAN, 1.0, f32::INFINITY]);
        assert_eq!(g.check(), Verdict::Continue { skipped: 3 });
        run(&mut g, &[1.0; 4]);
        assert_eq!(g.check(), Verdict::Continue { skipped: 0 });
        // A streak that spans two check windows is still one streak.
        run(&mut g, &[f32::NAN; 60]);
        assert_eq!(g.check(), Verdict::Continue { skipped: 60 });
        run(&mut g, &[f32::NAN; 40]);
        assert_eq!(g.check(), Verdict::Persistent { streak: 100 });
    }
}
