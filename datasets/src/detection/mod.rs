//! Detection: boxes that move with their resized and flipped images, and the loader's
//! dataset and zero-padded batches.

pub mod data;
pub mod transforms;
