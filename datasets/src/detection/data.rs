//! Detection datasets for the parallel loader: a VOC or COCO source, decoded and augmented
//! on the loader's worker threads, collated into zero-padded batches.

use crate::detection::transforms::{
    collate_detection, DetectionBatch, DetectionSample, DetectionTransform,
};
use crate::error::{DataError, Result};
use crate::formats::coco::CocoDataset;
use crate::formats::records::DetectionRecord;
use crate::formats::spec::DatasetSpec;
use crate::formats::voc::{VocDataset, VocTask};
use crate::input::image_io::EncodedImage;
use crate::loader::{Dataset, InvalidLoaderConfig, Loader, LoaderConfig};
use crate::rng::SampleRng;
use std::path::PathBuf;

/// Batches are padded to a multiple of this (the backbone's total stride).
pub const DETECTION_SIZE_MULTIPLE: usize = 32;

pub enum DetectionSource {
    Voc(VocDataset),
    Coco(Box<CocoDataset>),
}

/// Opens split `split` of a VOC spec (`trainval`, `test`...) with the task's lists; several
/// roots are combined in order, each contributing the VOC20xx folders
/// [`voc::split_year_dirs`](crate::formats::voc::split_year_dirs) picks for the split.
pub fn open_voc(roots: &[PathBuf], split: &str, task: VocTask) -> Result<VocDataset> {
    VocDataset::open_roots(roots, split, task)
}

impl DetectionSource {
    /// `split` is used by VOC; a COCO spec names its split's file itself.
    pub fn open(spec: &DatasetSpec, split: &str) -> Result<Self> {
        match spec {
            DatasetSpec::Voc { roots } => Ok(DetectionSource::Voc(open_voc(
                roots,
                split,
                VocTask::Detection,
            )?)),
            DatasetSpec::Coco {
                annotations,
                images,
            } => Ok(DetectionSource::Coco(Box::new(CocoDataset::open(
                annotations,
                images.as_deref(),
            )?))),
            other => Err(DataError::invalid(
                other.to_string(),
                "is not a detection dataset (use voc:ROOT or coco:ANNOTATIONS.json[:IMAGES])",
            )),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            DetectionSource::Voc(d) => d.len(),
            DetectionSource::Coco(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the first `n` images of the split (quick runs: `data.max_*_samples`,
    /// `--max-samples`).
    pub fn truncate(&mut self, n: usize) {
        match self {
            DetectionSource::Voc(d) => d.truncate(n),
            DetectionSource::Coco(d) => d.truncate(n),
        }
    }

    /// Object classes (no background); label `i + 1` in batches is class `i`.
    pub fn classes(&self) -> &[String] {
        match self {
            DetectionSource::Voc(d) => d.classes(),
            DetectionSource::Coco(d) => d.classes(),
        }
    }

    /// The whole split's ground truth, checked as evaluation checks it. A COCO file is read
    /// whole, so all of it is checked at once (annotations of images the file does not
    /// define, unknown categories, boxes off their image); a VOC split's annotations are
    /// separate files, each checked as it is read.
    pub fn check_ground_truth(&self) -> Result<()> {
        match self {
            DetectionSource::Voc(_) => Ok(()),
            DetectionSource::Coco(d) => d.check_ground_truth(),
        }
    }

    pub fn record(&self, index: usize) -> Result<DetectionRecord> {
        match self {
            DetectionSource::Voc(d) => d.detection_record(index),
            DetectionSource::Coco(d) => d.detection_record(index),
        }
    }
}

pub struct DetectionDataset {
    pub source: DetectionSource,
    pub transform: DetectionTransform,
}

impl Dataset for DetectionDataset {
    type Sample = DetectionSample;

    fn len(&self) -> usize {
        self.source.len()
    }

    fn get(&self, index: usize, rng: &mut SampleRng) -> Result<DetectionSample> {
        let record = self.source.record(index)?;
        // The annotated size is compared with the header's before anything is decoded.
        let encoded = EncodedImage::read(&record.image_path)?;
        encoded.expect_size((record.width, record.height))?;
        let image = encoded.decode_rgb()?;
        Ok(self.transform.apply(&image, &record, rng))
    }
}

fn collate(samples: Vec<DetectionSample>, indices: Vec<usize>) -> Result<DetectionBatch> {
    Ok(collate_detection(samples, indices, DETECTION_SIZE_MULTIPLE))
}

/// The collate step of detection loaders.
pub type DetectionCollate = fn(Vec<DetectionSample>, Vec<usize>) -> Result<DetectionBatch>;

pub fn detection_loader(
    dataset: DetectionDataset,
    config: LoaderConfig,
) -> std::result::Result<Loader<DetectionDataset, DetectionCollate>, InvalidLoaderConfig> {
    Loader::new(dataset, collate as DetectionCollate, config)
}
