//! NHWC strides with NCHW sizes (PyTorch's channels_last) without a memory-format API:
//! permuting to NHWC, making that contiguous and permuting back gives exactly that layout, and
//! convolutions on such tensors keep it (see the tch notes).

use tch::{nn, Tensor};

/// The same values laid out channels-last.
pub fn tensor_to_channels_last(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Converts every 4-D variable of the store in place (values unchanged). Build optimisers
/// and EMAs afterwards: they keep handles to the variables' data.
pub fn var_store_to_channels_last(vs: &nn::VarStore) {
    let _no_grad = tch::no_grad_guard();
    for (_, mut var) in vs.variables() {
        if var.dim() == 4 {
            var.set_data(&tensor_to_channels_last(&var));
        }
    }
}
