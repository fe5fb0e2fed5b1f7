//! DDP's gradient reducer (c10d::Reducer): gradients are averaged over ranks in buckets
//! that are all-reduced while the backward pass is still computing earlier layers' gradients.

use crate::ffi;
use crate::process_group::{DistError, ProcessGroup};
use tch::Tensor;

/// DDP's default bucket sizes: 25 MiB, and 1 MiB for the first (last layers') bucket so the
/// first all-reduce starts early.
pub const BUCKET_BYTES: i64 = 25 << 20;
pub const FIRST_BUCKET_BYTES: i64 = 1 << 20;

pub struct Reducer<'g> {
    raw: *mut ffi::Reducer,
    group: &'g ProcessGroup,
}

impl<'g> Reducer<'g> {
    /// Hooks the gradient accumulators of `params` (trainable leaf tensors, in the same order
    /// on every rank). Gradients stay their own tensors (no bucket views); the optimiser
    /// drops them at every step (`set_to_none`) and the backward pass hands over new ones.
    pub fn new(group: &'g ProcessGroup, params: &[Tensor]) -> Result<Reducer<'g>, DistError> {
        let mut handles: Vec<Tensor> = params.iter().map(|t| t.shallow_clone()).collect();
        let mut ptrs = ffi::pointers(&mut handles);
        let mut raw = std::ptr::null_mut();
        // SAFETY: live group and tensors; the shim copies the tensor handles it keeps.
        let result = unsafe {
            ffi::c10d_reducer_new(
                group.raw,
                ptrs.as_mut_ptr(),
                ptrs.len(),
                BUCKET_BYTES,
                FIRST_BUCKET_BYTES,
                &mut raw,
            )
        };
        ffi::check(result).map_err(|e| group.failure("setting up the gradient reducer", &e))?;
        Ok(Reducer { raw, group })
    }

    /// The next backward pass averages the gradients over ranks (on every rank, before the
    /// last micro-batch's backward; the micro-batches before only accumulate, like DDP's
    /// `no_sync`).
    pub fn prepare_for_backward(&self) -> Result<(), DistError> {
        // SAFETY: live reducer.
        ffi::check(unsafe { ffi::c10d_reducer_prepare(self.raw) })
            .map_err(|e| self.group.failure("preparing the gradient all-reduce", &e))
    }

    /// Names a failed backward pass (the all-reduce runs inside it) after its cause.
    pub fn backward_failure(&self, message: &str) -> DistError {
        self.group.failure("the gradient all-reduce", message)
    }
}

impl Drop for Reducer<'_> {
    fn drop(&mut self) {
        // SAFETY: created by the shim, freed once.
        unsafe { ffi::c10d_reducer_free(self.raw) }
    }
}
