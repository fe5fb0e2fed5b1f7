//! Datasets for classification, detection and segmentation: formats, decoding, augmentation,
//! and the parallel loader. Nothing here depends on libtorch: batches are plain buffers that
//! the training engine turns into tensors.

pub mod classify;
pub mod error;
pub mod image_io;
pub mod loader;
pub mod resize;
pub mod rng;

pub use error::{DataError, Result};
