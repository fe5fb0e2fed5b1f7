//! The ResNet family with the paper's tricks, and MobileNet v1 and Inception-V3 as
//! classifiers (architectures, layers, with the Winograd and oneDNN layouts as a layer's
//! concern), checkpoints that move to and from PyTorch, the pretrained bodies that detection
//! and segmentation start from, and image classification as a task of the engine (with the
//! `backbone` binary).

pub mod arch;
pub mod classification;
pub mod classifier;
pub mod inception;
pub mod interop;
pub mod layers;
pub mod mobilenet;
pub mod network;
pub mod onednn;
pub mod pretrained;
pub mod resnet;
pub mod single_pixel;
pub mod sync_batch_norm;
pub mod winograd;

pub use arch::{Arch, ClassifierArch, Variant};
pub use classifier::Classifier;
pub use inception::{InceptionConfig, InceptionV3};
pub use mobilenet::{MobileNetConfig, MobileNetV1};
pub use network::{ClassifierConfig, ClassifierNet};
pub use resnet::{Features, ResNet, ResNetConfig};
