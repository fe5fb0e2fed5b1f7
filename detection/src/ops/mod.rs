//! The geometric units of Faster R-CNN, each a small pure function or value over `tch`
//! tensors, equal to torchvision's (and, where GluonCV's C4 design differs, GluonCV's). They
//! run on any device and, unless a function's documentation says otherwise, never copy to the
//! host, so the training step keeps the GPU busy.

pub mod anchors;
pub mod box_coder;
pub mod boxes;
pub mod losses;
pub mod matcher;
pub mod nms;
pub mod poolers;
pub mod roi_align;
pub mod sampler;
