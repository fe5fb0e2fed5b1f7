//! Segmentation: masks augmented together with their images (GluonCV's transforms), and the
//! loader's dataset and batches.

pub mod data;
pub mod transforms;
