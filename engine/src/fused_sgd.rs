//! ATen's fused SGD kernel (`torch.optim.SGD(fused=True)`; CPU and CUDA) through the C++ shim
//! in `csrc/fused_sgd.cpp`: each parameter, gradient and momentum buffer is read once and the
//! parameter and buffer written once, in one pass. And `clear_grads`, which tch lacks too.

use crate::c_abi::take_message;
use std::ffi::{c_char, c_void};
use tch::Tensor;

extern "C" {
    fn tricks_clear_grads(params: *const *const c_void, n: usize) -> *mut c_char;
    fn tricks_fused_sgd(
        params: *const *const c_void,
        grads: *const *const c_void,
        buffers: *const *const c_void,
        n: usize,
        weight_decay: f64,
        momentum: f64,
        lr: f64,
        nesterov: bool,
        found_inf: *const c_void,
    ) -> *mut c_char;
}

/// What one call shares: a learning rate and a weight decay (one call per group of them).
#[derive(Clone, Copy, Debug)]
pub struct StepSettings {
    pub lr: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub nesterov: bool,
}

/// `buf = momentum * buf + (grad + weight_decay * p)`, then `p -= lr * buf` (or, Nesterov,
/// `p -= lr * (g + momentum * buf)`), for every triple; PyTorch's formula with dampening 0.
/// Each parameter, its gradient and its buffer must be dense with the same strides (the
/// kernel walks them as flat arrays): see [`in_layout_of`]. `found_inf`: a 0-dim float
/// tensor on the parameters' device that is 0 or 1; at 1 nothing changes.
pub fn step(
    params: &[Tensor],
    grads: &[Tensor],
    buffers: &[Tensor],
    settings: StepSettings,
    found_inf: Option<&Tensor>,
) -> Result<(), String> {
    assert!(params.len() == grads.len() && params.len() == buffers.len());
    let pointers =
        |ts: &[Tensor]| -> Vec<*const c_void> { ts.iter().map(|t| t.as_ptr().cast()).collect() };
    let (p, g, b) = (pointers(params), pointers(grads), pointers(buffers));
    let flag = found_inf.map_or(std::ptr::null(), |t| t.as_ptr().cast());
    // SAFETY: every pointer is a live tensor handle borrowed for the call; the shim catches
    // every C++ exception and returns its message, or NULL.
    let result = unsafe {
        tricks_fused_sgd(
            p.as_ptr(),
            g.as_ptr(),
            b.as_ptr(),
            p.len(),
            settings.weight_decay,
            settings.momentum,
            settings.lr,
            settings.nesterov,
            flag,
        )
    };
    take_message(result)
}

/// Drops the gradients of `params` (PyTorch's `zero_grad(set_to_none=True)`, its default):
/// the next backward pass hands its gradient tensors over rather than adding them to zeros.
pub fn clear_grads<'a>(params: impl IntoIterator<Item = &'a Tensor>) -> Result<(), String> {
    let p: Vec<*const c_void> = params.into_iter().map(|t| t.as_ptr().cast()).collect();
    // SAFETY: live tensor handles borrowed for the call; exceptions come back as messages.
    take_message(unsafe { tricks_clear_grads(p.as_ptr(), p.len()) })
}

/// `t` itself when it has `param`'s strides, else a copy with them (`param` is dense, as
/// every VarStore variable is).
pub fn in_layout_of(param: &Tensor, t: Tensor) -> Tensor {
    match t.stride() == param.stride() {
        true => t,
        false => {
            let mut copy = param.empty_like();
            copy.copy_(&t);
            copy
        }
    }
}
