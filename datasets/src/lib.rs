//! Datasets for classification, detection and segmentation: formats, decoding, augmentation,
//! and the parallel loader. Nothing here depends on libtorch: batches are plain buffers that
//! the training engine turns into tensors.
//!
//! The modules are grouped in folders by concern; each one is also re-exported at the crate
//! root under its old name (`datasets::voc`, `datasets::detection_transforms`, ...), the
//! paths the other crates use.

// Shared by every task: the parallel loader, per-sample random numbers, Pillow-exact
// resizing, the error type, and `datasets check`.
pub mod check;
pub mod error;
pub mod loader;
pub mod resize;
pub mod rng;

// Untrusted files: bounded opening, checked ids, image / mask / IDX decoding, the limits.
pub mod input;
pub use input::file as input_file;
pub use input::{dataset_id, idx, image_header, image_io, label_png, limits};

// Dataset layouts on disk, the `KIND:PATH` spec naming one, and the records readers return.
pub mod formats;
pub use formats::{ade20k, class_list, coco, fashion_mnist, image_folder, records, spec, voc};

// Per task: augmentation and the loader's dataset and batches.
pub mod classify;
pub mod detection;
pub mod segmentation;
pub use detection::data as detection_data;
pub use detection::transforms as detection_transforms;
pub use segmentation::data as segmentation_data;
pub use segmentation::transforms as segmentation_transforms;

// The synthetic Fashion scenes (`datasets synth`).
pub mod synth;

// Loader throughput benches.
pub mod benches;
pub use benches::classification as bench;
pub use benches::transfer as transfer_bench;

pub use error::{DataError, Result};
