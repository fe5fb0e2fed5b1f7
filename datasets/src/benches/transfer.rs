//! Detection- and segmentation-loader throughput at the paper's sizes (`datasets bench`):
//! images per second through decode + augmentation + collation, and per worker.

use crate::detection::data::{detection_loader, DetectionDataset, DetectionSource};
use crate::detection::transforms::{DetectionTransform, ShorterSideResize};
use crate::error::{DataError, Result};
use crate::formats::spec::DatasetSpec;
use crate::loader::LoaderConfig;
use crate::segmentation::data::{
    segmentation_loader, SegmentationAugment, SegmentationDataset, SegmentationSource,
};
use crate::segmentation::transforms::SegmentationTrainTransform;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchTask {
    /// Faster R-CNN training input: shorter side 600, longer at most 1000, flip.
    Detection,
    /// FCN training input: base 520, random scale, crop 480, flip.
    Segmentation,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BenchReport {
    pub task: BenchTask,
    pub spec: String,
    pub split: String,
    pub workers: usize,
    pub batch_size: usize,
    pub images: usize,
    pub seconds: f64,
    pub images_per_s: f64,
    pub images_per_s_per_worker: f64,
    /// Entries left out as bad (with `skip_bad`).
    pub skipped: usize,
}

/// What to time: `batches` batches after `warmup` untimed ones (epochs repeat if the split is
/// small), with `skip_bad` as the loader's option of the same name.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchRequest {
    pub task: BenchTask,
    pub spec: DatasetSpec,
    pub split: String,
    pub workers: usize,
    pub batch_size: usize,
    pub batches: usize,
    pub warmup: usize,
    pub skip_bad: bool,
}

pub fn bench_loader(request: &BenchRequest) -> Result<BenchReport> {
    let BenchRequest {
        task,
        ref spec,
        ref split,
        workers,
        batch_size,
        batches,
        warmup,
        skip_bad,
    } = *request;
    let config = LoaderConfig {
        batch_size,
        workers,
        prefetch: 2 * workers.max(1),
        shuffle: true,
        drop_last: true,
        seed: 0,
        skip_bad,
        ..LoaderConfig::default()
    };
    let config_error =
        |e: crate::loader::InvalidLoaderConfig| DataError::invalid("bench", e.to_string());
    let (images, seconds, skipped) = match task {
        BenchTask::Detection => {
            let source = DetectionSource::open(spec, split)?;
            let dataset = DetectionDataset {
                source,
                transform: DetectionTransform::train(ShorterSideResize::GLUONCV_VOC),
            };
            let loader = detection_loader(dataset, config).map_err(config_error)?;
            let (images, seconds) = time_batches(batches, warmup, |epoch| {
                loader.epoch(epoch, 0).map(|b| b.map(|b| b.len()))
            })?;
            (images, seconds, loader.skipped().len())
        }
        BenchTask::Segmentation => {
            let source = SegmentationSource::open(spec, split)?;
            let dataset = SegmentationDataset {
                source,
                augment: SegmentationAugment::Train(SegmentationTrainTransform::ADE20K),
            };
            let loader = segmentation_loader(dataset, config).map_err(config_error)?;
            let (images, seconds) = time_batches(batches, warmup, |epoch| {
                loader.epoch(epoch, 0).map(|b| b.map(|b| b.len()))
            })?;
            (images, seconds, loader.skipped().len())
        }
    };
    let images_per_s = images as f64 / seconds;
    Ok(BenchReport {
        task,
        spec: spec.to_string(),
        split: split.to_string(),
        workers,
        batch_size,
        images,
        seconds,
        images_per_s,
        images_per_s_per_worker: images_per_s / workers.max(1) as f64,
        skipped,
    })
}

/// Runs epochs until `warmup + batches` batches have come, timing the last `batches`.
fn time_batches<I>(
    batches: usize,
    warmup: usize,
    mut epoch: impl FnMut(u64) -> I,
) -> Result<(usize, f64)>
where
    I: Iterator<Item = Result<usize>>,
{
    let (mut seen, mut images) = (0usize, 0usize);
    let mut start = Instant::now();
    for e in 0.. {
        let mut any = false;
        for batch in epoch(e) {
            let size = batch?;
            any = true;
            seen += 1;
            if seen == warmup {
                start = Instant::now();
            } else if seen > warmup {
                images += size;
            }
            if seen >= warmup + batches {
                return Ok((images, start.elapsed().as_secs_f64()));
            }
        }
        if !any {
            return Err(DataError::invalid(
                "bench",
                "the split yields no batch (fewer images than one batch?)",
            ));
        }
    }
    unreachable!("the loop returns")
}
