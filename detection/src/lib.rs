//! Faster R-CNN over the ResNets of `backbones`: GluonCV's C4 design (the paper's Table 8) and
//! torchvision's `fasterrcnn_resnet50_fpn`, trained by the engine, evaluated with the VOC
//! devkit's AP rules and COCO's (through `hotcoco`).

pub mod bench;
pub mod draw;
pub mod evaluate;
pub mod export;
pub mod import;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod predict;
pub mod train;
pub mod transform;
