// What the optimiser needs from ATen that tch does not bind: the fused SGD step (the kernel
// behind `torch.optim.SGD(fused=True)`), one pass per parameter that reads the parameter, its
// gradient and its momentum buffer once and writes the parameter and the buffer once, where
// the same step written as tensor operations takes four passes and allocates a temporary per
// parameter; and dropping gradients (`zero_grad(set_to_none=True)`).
//
// Tensors cross as `const at::Tensor*`, which is what tch's `as_ptr` gives. Errors follow
// build-support/c_abi.h: a heap string (NULL on success), freed with tricks_free_message.

#include <ATen/ATen.h>

#include "c_abi.h"

#include <cstdlib>
#include <optional>
#include <vector>

using tricks_abi::guarded;
using tricks_abi::tensor_list;

extern "C" {

void tricks_free_message(char* message) { std::free(message); }

// One SGD step over `n` parameters that share a learning rate and a weight decay. The kernel
// walks each parameter, gradient and buffer as one flat array, so the three must be dense
// with the same strides (checked here); the buffers are ignored when `momentum` is 0.
// `found_inf` (may be NULL): a 0-dim float tensor on
// the parameters' device; where it is 1 nothing changes, and it is never read on the host
// for CUDA tensors.
char* tricks_fused_sgd(const at::Tensor* const* params, const at::Tensor* const* grads,
                       const at::Tensor* const* buffers, size_t n, double weight_decay,
                       double momentum, double lr, bool nesterov,
                       const at::Tensor* found_inf) {
  return guarded([&] {
    auto p = tensor_list(params, n);
    auto g = tensor_list(grads, n);
    // Without momentum ATen takes no buffers (and leaves ours at zero).
    auto b = momentum == 0.0 ? std::vector<at::Tensor>() : tensor_list(buffers, n);
    for (size_t i = 0; i < n; ++i) {
      TORCH_CHECK(p[i].is_non_overlapping_and_dense() && g[i].strides() == p[i].strides() &&
                      (b.empty() || b[i].strides() == p[i].strides()),
                  "fused SGD: parameter ", i, " of ", n,
                  ", its gradient and its momentum buffer must be dense with the same strides");
    }
    std::optional<at::Tensor> flag;
    if (found_inf != nullptr) {
      flag = *found_inf;
    }
    at::_fused_sgd_(p, g, b, weight_decay, momentum, lr, /*dampening=*/0.0, nesterov,
                    /*maximize=*/false, /*is_first_step=*/false, /*grad_scale=*/std::nullopt,
                    flag);
  });
}

// Drops the gradients of `n` parameters, so that the next backward pass hands its own
// gradient tensors over instead of adding them to zeros.
char* tricks_clear_grads(const at::Tensor* const* params, size_t n) {
  return guarded([&] {
    for (size_t i = 0; i < n; ++i) {
      params[i]->mutable_grad().reset();
    }
  });
}

}  // extern "C"
