//! Classification data: the transforms of the paper and torchvision's evaluation transform.

mod color;
mod crop;
mod dataset;
mod eval;
mod open;
mod train;

pub use color::{
    adjust_brightness, adjust_contrast, adjust_saturation, lighting_offset, luma,
    IMAGENET_EIGENVALUES, IMAGENET_EIGENVECTORS,
};
pub use crop::{random_resized_crop_box, CropBox};
pub use dataset::{
    classification_loader, ClassificationBatch, ClassificationCollate, ClassificationDataset,
    ClassificationLoader, ClassificationSample, ClassificationTransform, ImageSource,
};
pub use eval::{EvalTransform, Normalization};
pub use open::{open_images, ClassificationSplit};
pub use train::{AugmentParams, Augmented, ColorAdjustment, InvalidTrainTransform, TrainTransform};
