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
            var.set_data(&with_channels_last_strides(&var));
        }
    }
}

/// A copy of a 4-D tensor with the strides PyTorch's `.to(memory_format=channels_last)` gives
/// it, [H*W*C, 1, W*C, C], whatever its sizes. The permute route leaves a 1x1 kernel's
/// strides as they were (a [O, I, 1, 1] tensor is already "contiguous" in NHWC order), while
/// backward makes its gradient with these: DDP's reducer compares them stride for stride, and
/// warns at every start when they differ.
fn with_channels_last_strides(t: &Tensor) -> Tensor {
    let size = t.size();
    let (c, h, w) = (size[1], size[2], size[3]);
    let mut out = Tensor::empty_strided(&size, [h * w * c, 1, w * c, c], (t.kind(), t.device()));
    out.copy_(t);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn every_kernel_gets_the_strides_its_gradient_will_have() {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let conv1x1 = root.randn("conv1x1", &[8, 4, 1, 1], 0.0, 1.0);
        let conv3x3 = root.randn("conv3x3", &[8, 4, 3, 3], 0.0, 1.0);
        let before = (conv1x1.copy(), conv3x3.copy());
        var_store_to_channels_last(&vs);
        // What `.to(memory_format=torch.channels_last)` gives in PyTorch.
        assert_eq!(conv1x1.stride(), [4, 1, 4, 4]);
        assert_eq!(conv3x3.stride(), [36, 1, 12, 4]);
        assert!(conv1x1.equal(&before.0) && conv3x3.equal(&before.1));
        // Backward through a channels-last convolution makes gradients of the same strides,
        // which is what DDP's reducer checks.
        let x = tensor_to_channels_last(&Tensor::randn([2, 4, 5, 5], (Kind::Float, Device::Cpu)));
        let y = x.conv2d(&conv1x1, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1);
        y.sum(Kind::Float).backward();
        assert_eq!(conv1x1.grad().stride(), conv1x1.stride());
    }
}
