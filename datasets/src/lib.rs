//! Datasets for classification, detection and segmentation: formats, decoding, augmentation,
//! and the parallel loader. Nothing here depends on libtorch: batches are plain buffers that
//! the training engine turns into tensors.

pub mod ade20k;
pub mod bench;
pub mod check;
pub mod class_list;
pub mod classify;
pub mod coco;
pub mod dataset_id;
pub mod detection_data;
pub mod detection_transforms;
pub mod error;
pub mod fashion_mnist;
pub mod idx;
pub mod image_folder;
pub mod image_header;
pub mod image_io;
pub mod input_file;
pub mod label_png;
pub mod limits;
pub mod loader;
pub mod records;
pub mod resize;
pub mod rng;
pub mod segmentation_data;
pub mod segmentation_transforms;
pub mod spec;
pub mod synth;
pub mod transfer_bench;
pub mod voc;

pub use error::{DataError, Result};
