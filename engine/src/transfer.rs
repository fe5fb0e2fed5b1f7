//! Host batches to device tensors without making the host wait: on CUDA the buffer is copied
//! into page-locked memory and sent with a non-blocking copy (PyTorch's `pin_memory=True` +
//! `.to(device, non_blocking=True)`), so the loop can prepare the next batch while the GPU
//! still runs the current step. Pinned blocks come from libtorch's caching host allocator,
//! which reuses them once their copy has finished.

use tch::{Device, Tensor};

/// `data` viewed as `shape`, on `device`. On the CPU this is one copy into a tensor.
pub fn upload<T: tch::kind::Element>(data: &[T], shape: &[i64], device: Device) -> Tensor {
    let host = Tensor::from_slice(data).view(shape);
    to_device_async(host, device)
}

/// Moves a CPU tensor to `device`, through pinned memory and without blocking when it is a
/// CUDA device.
pub fn to_device_async(host: Tensor, device: Device) -> Tensor {
    match device {
        Device::Cpu => host,
        _ => {
            let pinned = host.pin_memory(device);
            pinned.to_device_(device, pinned.kind(), true, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn cpu_upload_keeps_values_and_shape() {
        let t = upload(&[1u8, 2, 3, 4, 5, 6], &[2, 3], Device::Cpu);
        assert_eq!(t.size(), [2, 3]);
        assert_eq!(t.kind(), Kind::Uint8);
        assert_eq!(
            Vec::<u8>::try_from(t.flatten(0, -1)).unwrap(),
            [1, 2, 3, 4, 5, 6]
        );
    }
}
