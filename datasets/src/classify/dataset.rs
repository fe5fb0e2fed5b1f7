//! Classification samples and batches for the loader: a labelled image source (Fashion-MNIST
//! in memory, an ImageNet-style folder on disk) plus the train or eval transform.

use super::eval::EvalTransform;
use super::train::TrainTransform;
use crate::error::{DataError, Result};
use crate::formats::fashion_mnist::{self, FashionMnist};
use crate::formats::image_folder::ImageFolder;
use crate::input::image_io::load_rgb;
use crate::loader::{Collate, Dataset, InvalidLoaderConfig, Loader, LoaderConfig};
use crate::rng::SampleRng;
use image::RgbImage;
use std::sync::Arc;

/// Where the labelled images come from.
#[derive(Clone, Debug)]
pub enum ImageSource {
    FashionMnist(Arc<FashionMnist>),
    Folder(Arc<ImageFolder>),
}

impl ImageSource {
    pub fn len(&self) -> usize {
        match self {
            ImageSource::FashionMnist(d) => d.len(),
            ImageSource::Folder(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn label(&self, index: usize) -> usize {
        match self {
            ImageSource::FashionMnist(d) => d.label(index),
            ImageSource::Folder(d) => d.label(index),
        }
    }

    /// Decodes image `index` to RGB (grey images replicated to three channels).
    pub fn load(&self, index: usize) -> Result<RgbImage> {
        match self {
            ImageSource::FashionMnist(d) => Ok(d.rgb(index)),
            ImageSource::Folder(d) => load_rgb(d.path(index)),
        }
    }

    pub fn class_names(&self) -> Vec<String> {
        match self {
            ImageSource::FashionMnist(_) => fashion_mnist::CLASS_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ImageSource::Folder(d) => d.classes().to_vec(),
        }
    }
}

/// Random augmentation for training, the deterministic resize and centre crop for evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum ClassificationTransform {
    Train(TrainTransform),
    Eval(EvalTransform),
}

impl ClassificationTransform {
    /// The side of the square images the transform produces.
    pub fn output_side(&self) -> usize {
        match self {
            ClassificationTransform::Train(t) => t.input_size,
            ClassificationTransform::Eval(t) => t.crop,
        }
    }
}

/// One transformed image with its label.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassificationSample {
    /// Square RGB, interleaved (HWC), `output_side` on each side.
    pub pixels: Vec<u8>,
    pub label: i64,
    /// PCA lighting offset (0-255 scale) to add before normalising; zero for evaluation.
    pub lighting: [f32; 3],
}

#[derive(Clone, Debug)]
pub struct ClassificationDataset {
    source: ImageSource,
    transform: ClassificationTransform,
}

impl ClassificationDataset {
    pub fn new(source: ImageSource, transform: ClassificationTransform) -> Self {
        ClassificationDataset { source, transform }
    }

    pub fn source(&self) -> &ImageSource {
        &self.source
    }

    pub fn transform(&self) -> &ClassificationTransform {
        &self.transform
    }

    /// (height, width) of the images in a batch.
    pub fn image_size(&self) -> (usize, usize) {
        let side = self.transform.output_side();
        (side, side)
    }
}

impl Dataset for ClassificationDataset {
    type Sample = ClassificationSample;

    fn len(&self) -> usize {
        self.source.len()
    }

    fn get(&self, index: usize, rng: &mut SampleRng) -> Result<ClassificationSample> {
        let img = self.source.load(index)?;
        let label = self.source.label(index) as i64;
        Ok(match &self.transform {
            ClassificationTransform::Train(t) => {
                let augmented = t.apply(&img, rng);
                ClassificationSample {
                    pixels: augmented.pixels,
                    label,
                    lighting: augmented.lighting,
                }
            }
            ClassificationTransform::Eval(t) => ClassificationSample {
                pixels: t.apply(&img),
                label,
                lighting: [0.0; 3],
            },
        })
    }
}

/// A batch as the training engine receives it. On the device: `x = (images + lighting) / 255`
/// per channel, then `(x - mean) / std`, then HWC -> CHW.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassificationBatch {
    /// N x H x W x 3 bytes: each image interleaved (HWC), images one after another.
    pub images: Vec<u8>,
    pub labels: Vec<i64>,
    /// Per image, the RGB offset on the 0-255 scale.
    pub lighting: Vec<[f32; 3]>,
    /// (height, width) of every image.
    pub size: (usize, usize),
    /// Dataset index of each image (to look up file names, or check reproducibility).
    pub indices: Vec<usize>,
}

impl ClassificationBatch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Packs samples of `size` (h, w) into one contiguous buffer.
#[derive(Clone, Copy, Debug)]
pub struct ClassificationCollate {
    pub size: (usize, usize),
}

impl Collate<ClassificationSample> for ClassificationCollate {
    type Batch = ClassificationBatch;

    fn collate(
        &self,
        samples: Vec<ClassificationSample>,
        indices: Vec<usize>,
    ) -> Result<ClassificationBatch> {
        let (h, w) = self.size;
        let image_len = h * w * 3;
        let mut images = Vec::with_capacity(samples.len() * image_len);
        let mut labels = Vec::with_capacity(samples.len());
        let mut lighting = Vec::with_capacity(samples.len());
        for (sample, &index) in samples.iter().zip(&indices) {
            if sample.pixels.len() != image_len {
                // Only a transform bug gets here; say which sample rather than mix sizes.
                return Err(DataError::invalid(
                    format!("<sample {index}>"),
                    format!(
                        "transformed image has {} bytes, the batch expects {h}x{w}x3",
                        sample.pixels.len()
                    ),
                ));
            }
            images.extend_from_slice(&sample.pixels);
            labels.push(sample.label);
            lighting.push(sample.lighting);
        }
        Ok(ClassificationBatch {
            images,
            labels,
            lighting,
            size: self.size,
            indices,
        })
    }
}

pub type ClassificationLoader = Loader<ClassificationDataset, ClassificationCollate>;

/// The loader for a classification dataset, with the collate that matches its transform.
pub fn classification_loader(
    dataset: ClassificationDataset,
    config: LoaderConfig,
) -> std::result::Result<ClassificationLoader, InvalidLoaderConfig> {
    let collate = ClassificationCollate {
        size: dataset.image_size(),
    };
    Loader::new(dataset, collate, config)
}
