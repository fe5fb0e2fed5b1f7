//! The ResNet family with the paper's tricks, checkpoints that move to and from PyTorch, and
//! the training engine that detection and segmentation reuse.

pub mod arch;
pub mod atomic_write;
pub mod channels_last;
pub mod checkpoint;
pub mod classification;
pub mod classifier;
pub mod cli;
pub mod device;
pub mod engine;
pub mod interop;
pub mod layers;
pub mod limits;
pub mod onednn;
pub mod outputs;
pub mod resnet;
pub mod sync_batch_norm;
pub mod winograd;

pub use arch::{Arch, Variant};
pub use checkpoint::{Checkpoint, CheckpointError, Metadata, TaskKind};
pub use classifier::Classifier;
pub use resnet::{Features, ResNet, ResNetConfig};
