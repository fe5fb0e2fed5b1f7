//! Data-parallel training on c10d, the C++ core of `torch.distributed` inside libtorch:
//! joining a process group from torchrun's environment (Gloo for CPU tensors, NCCL for CUDA
//! tensors with the `nccl` feature), DDP's bucketed gradient reducer, a differentiable
//! all-reduce for SyncBatchNorm, and `--nproc N` (local ranks started without torchrun).
//!
//! The C++ side is csrc/shim.cpp: a C ABI that turns every exception into a message.

pub mod env;
mod ffi;
pub mod launch;
mod liveness;
pub mod process_group;
pub mod reducer;
pub mod store;

pub use env::RankEnv;
pub use process_group::{DistError, GroupOptions, ProcessGroup, ReduceOp};
pub use reducer::Reducer;
pub use store::Store;
