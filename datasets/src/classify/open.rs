//! From a dataset spec to a classification image source.

use super::dataset::ImageSource;
use crate::error::{DataError, Result};
use crate::formats::fashion_mnist::{FashionMnist, FashionMnistSplit};
use crate::formats::image_folder::ImageFolder;
use crate::formats::spec::DatasetSpec;
use std::sync::Arc;

/// The part of a classification dataset to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassificationSplit {
    Train,
    /// ImageNet's `val` folder; Fashion-MNIST's test set.
    Val,
}

/// Opens `fashion-mnist:DIR` or `imagenet:ROOT`; other kinds are not classification data.
pub fn open_images(spec: &DatasetSpec, split: ClassificationSplit) -> Result<ImageSource> {
    match spec {
        DatasetSpec::FashionMnist { dir } => {
            let split = match split {
                ClassificationSplit::Train => FashionMnistSplit::Train,
                ClassificationSplit::Val => FashionMnistSplit::Test,
            };
            Ok(ImageSource::FashionMnist(Arc::new(FashionMnist::load(
                dir, split,
            )?)))
        }
        DatasetSpec::ImageNet { root } => {
            let folder = match split {
                ClassificationSplit::Train => "train",
                ClassificationSplit::Val => "val",
            };
            Ok(ImageSource::Folder(Arc::new(ImageFolder::imagenet(
                root, folder,
            )?)))
        }
        other => Err(DataError::invalid(
            other.to_string(),
            "is not a classification dataset (expected fashion-mnist:DIR or imagenet:ROOT)",
        )),
    }
}
