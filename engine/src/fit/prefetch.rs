//! The inputs of an epoch's steps: each batch is moved to the device right after the previous
//! micro-batch's backward pass is queued.

use super::trainer::MicroBatches;
use super::TrainInputError;
use crate::task::Task;
use anyhow::bail;
use datasets::loader::EpochIter;

pub struct Prefetch<T: Task> {
    batches: EpochIter<T::Batch>,
    next: Option<T::Input>,
    /// Micro-batches of the epoch not yet taken.
    remaining: u64,
}

impl<T: Task> Prefetch<T> {
    /// Starts on `batches`, of which `micro_batches` are trained, uploading the first.
    pub fn new(
        task: &T,
        mut batches: EpochIter<T::Batch>,
        micro_batches: u64,
    ) -> anyhow::Result<Self> {
        let next = Some(task.upload(&next_batch(&mut batches)?));
        Ok(Prefetch {
            batches,
            next,
            remaining: micro_batches,
        })
    }
}

impl<T: Task> MicroBatches<T> for Prefetch<T> {
    fn take(&mut self, _k: u64) -> anyhow::Result<T::Input> {
        self.remaining -= 1;
        Ok(self
            .next
            .take()
            .expect("a batch was uploaded for every micro-batch"))
    }

    fn backward_queued(&mut self, task: &T, _k: u64) -> anyhow::Result<()> {
        if self.remaining > 0 {
            self.next = Some(task.upload(&next_batch(&mut self.batches)?));
        }
        Ok(())
    }
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
