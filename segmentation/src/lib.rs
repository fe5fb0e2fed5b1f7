//! Semantic segmentation with FCN over the project's ResNets: the model (torchvision's names),
//! fine-tuning on the shared engine, pixel accuracy and mIoU as the ADE20K benchmark computes
//! them, and interop with torchvision's `fcn_resnet50`.

pub mod banded;
pub mod bench;
pub mod budget;
pub mod config;
pub mod evaluate;
pub mod export;
pub mod fcn;
pub mod finetune;
pub mod import;
pub mod metric;
pub mod predict;
pub mod predictions;
pub mod segmenter;
pub mod task;

pub use fcn::{Fcn, FcnConfig, FcnOutput};
pub use segmenter::{Preprocess, Segmenter};
