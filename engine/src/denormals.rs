//! Denormal floats flushed to zero on the CPU, for every command's process.
//!
//! A detector's training step (not its inference) underflows into denormals, and Intel cores
//! take a microcode assist for each operation on one: on a 2-core Intel Xeon, torchvision's
//! Faster R-CNN trains at 0.087 images/s at 320/480 in fp32 and at 0.55 with
//! `torch.set_flush_denormal(True)`, ours at 0.52 and 1.07 (docs/results.md, "Denormal
//! floats"). Flushing numbers below 1.2e-38 left one epoch of the demo's detection
//! fine-tuning with the same mAP to the last digit; PyTorch leaves the switch to its user, our
//! commands set it.

use crate::c_abi::take_message;
use std::ffi::c_char;

extern "C" {
    fn tricks_set_flush_denormal(on: bool, supported: *mut bool) -> *mut c_char;
}

/// Flushes denormal results and inputs to zero on this thread and the threads it starts from
/// now on (libtorch's OpenMP pool, the data loaders). Call it first thing in `main`.
/// Returns whether the CPU can (x86 with SSE3); elsewhere nothing changes.
pub fn flush_denormals() -> bool {
    let mut supported = false;
    // SAFETY: `supported` is a live, writable bool; exceptions come back as messages.
    take_message(unsafe { tricks_set_flush_denormal(true, &mut supported) })
        .map(|()| supported)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    /// 1e-38 * 1e-3 is a denormal float; with flushing on, libtorch's multiply gives 0, and a
    /// thread started afterwards flushes too.
    #[test]
    fn denormal_products_become_zero_on_this_thread_and_later_ones() {
        let product = || {
            let small = Tensor::from_slice(&[1e-38f32]);
            (small * 1e-3).double_value(&[0])
        };
        // Each test runs on a thread of its own, which starts with flushing off.
        std::thread::spawn(move || {
            assert!(product() > 0.0, "a denormal result without flushing");
            if !flush_denormals() {
                eprintln!("skipped: this CPU has no flush-to-zero (not x86 with SSE3)");
                return;
            }
            assert_eq!(product(), 0.0, "flushed on the thread that asked");
            let later = std::thread::spawn(product).join().unwrap();
            assert_eq!(later, 0.0, "flushed on a thread started afterwards");
        })
        .join()
        .unwrap();
    }
}
