//! Segmentation datasets for the parallel loader: ADE20K or VOC masks, augmented together
//! with their images on the loader's worker threads.

use crate::detection::data::open_voc;
use crate::error::{DataError, Result};
use crate::formats::ade20k::Ade20kDataset;
use crate::formats::records::LabelMap;
use crate::formats::spec::DatasetSpec;
use crate::formats::voc::{VocDataset, VocTask};
use crate::input::image_io::EncodedImage;
use crate::loader::{Dataset, InvalidLoaderConfig, Loader, LoaderConfig};
use crate::rng::SampleRng;
use crate::segmentation::transforms::{
    collate_segmentation, SegmentationBatch, SegmentationEvalTransform, SegmentationSample,
    SegmentationTrainTransform,
};
use std::path::PathBuf;

pub enum SegmentationSource {
    Voc(VocDataset),
    Ade20k(Ade20kDataset),
}

impl SegmentationSource {
    /// `split`: VOC's `train`/`val`/`trainval`, ADE20K's `training`/`validation` (or
    /// `train`/`val`).
    pub fn open(spec: &DatasetSpec, split: &str) -> Result<Self> {
        match spec {
            DatasetSpec::Voc { roots } => Ok(SegmentationSource::Voc(open_voc(
                roots,
                split,
                VocTask::Segmentation,
            )?)),
            DatasetSpec::Ade20k { root } => Ok(SegmentationSource::Ade20k(Ade20kDataset::open(
                root, split,
            )?)),
            other => Err(DataError::invalid(
                other.to_string(),
                "is not a segmentation dataset (use ade20k:ROOT or voc:ROOT)",
            )),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            SegmentationSource::Voc(d) => d.len(),
            SegmentationSource::Ade20k(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the first `n` images of the split (quick runs: `data.max_*_samples`,
    /// `--max-samples`).
    pub fn truncate(&mut self, n: usize) {
        match self {
            SegmentationSource::Voc(d) => d.truncate(n),
            SegmentationSource::Ade20k(d) => d.truncate(n),
        }
    }

    /// The classes of the train ids 0..K (VOC: background first).
    pub fn classes(&self) -> Vec<String> {
        match self {
            SegmentationSource::Voc(d) => d.segmentation_classes(),
            SegmentationSource::Ade20k(d) => d.classes().to_vec(),
        }
    }

    /// The id, image path, mask path and train-id mask of entry `index`.
    pub fn target(&self, index: usize) -> Result<(String, PathBuf, PathBuf, LabelMap)> {
        match self {
            SegmentationSource::Voc(d) => {
                let entry = &d.entries()[index];
                let labels = d.read_label_map(index)?;
                Ok((
                    entry.id.clone(),
                    entry.image_path(),
                    entry.mask_path(),
                    labels,
                ))
            }
            SegmentationSource::Ade20k(d) => {
                let entry = &d.entries()[index];
                let labels = d.read_label_map(index)?;
                Ok((
                    entry.stem.clone(),
                    entry.image_path.clone(),
                    entry.annotation_path.clone(),
                    labels,
                ))
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SegmentationAugment {
    Train(SegmentationTrainTransform),
    Eval(SegmentationEvalTransform),
}

pub struct SegmentationDataset {
    pub source: SegmentationSource,
    pub augment: SegmentationAugment,
}

impl Dataset for SegmentationDataset {
    type Sample = SegmentationSample;

    fn len(&self) -> usize {
        self.source.len()
    }

    fn get(&self, index: usize, rng: &mut SampleRng) -> Result<SegmentationSample> {
        let (id, image_path, mask_path, labels) = self.source.target(index)?;
        // The mask's size is compared with the image header's before the image is decoded.
        let encoded = EncodedImage::read(&image_path)?;
        let (width, height) = encoded.dimensions();
        if (width as usize, height as usize) != (labels.width, labels.height) {
            return Err(DataError::invalid(
                &mask_path,
                format!(
                    "the mask is {}x{} but its image is {width}x{height}",
                    labels.width, labels.height
                ),
            ));
        }
        let image = encoded.decode_rgb()?;
        Ok(match &self.augment {
            SegmentationAugment::Train(t) => t.apply(&id, &image, &labels, rng),
            SegmentationAugment::Eval(t) => t.apply(&id, &image, &labels),
        })
    }
}

fn collate(samples: Vec<SegmentationSample>, indices: Vec<usize>) -> Result<SegmentationBatch> {
    Ok(collate_segmentation(samples, indices))
}

/// The collate step of segmentation loaders.
pub type SegmentationCollate = fn(Vec<SegmentationSample>, Vec<usize>) -> Result<SegmentationBatch>;

pub fn segmentation_loader(
    dataset: SegmentationDataset,
    config: LoaderConfig,
) -> std::result::Result<Loader<SegmentationDataset, SegmentationCollate>, InvalidLoaderConfig> {
    Loader::new(dataset, collate as SegmentationCollate, config)
}
