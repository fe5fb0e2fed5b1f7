//! A detector run over a whole split: each loader batch goes to the device, the model finds
//! its objects, and each image's detections come back in original-image pixels for the
//! evaluators (VOC, COCO) and the result files (comp4, COCO JSON). Training's evaluation and
//! `detect eval --ckpt` share it.

use crate::metrics::ImageDetections;
use crate::model::FasterRcnn;
use crate::transform::{boxes_to_original, ImageTransform};
use datasets::detection_data::{DetectionCollate, DetectionDataset};
use datasets::loader::Loader;
use engine::amp::Autocast;
use engine::transfer::upload;
use tch::{Device, Kind};

pub type DetectionLoader = Loader<DetectionDataset, DetectionCollate>;

/// One image's place in the split and what the model found in it.
pub struct Found {
    /// The image's id (VOC: the file stem).
    pub id: String,
    /// Its index in the dataset (COCO: the image id comes from it).
    pub index: usize,
    pub detections: ImageDetections,
}

/// Runs `model` (eval mode, no gradients) over every image of `loader`'s epoch 0 in order and
/// hands each image's detections to `each`. Returns the number of images. One host copy per
/// batch (the detections).
pub fn detect_split(
    model: &FasterRcnn,
    transform: &ImageTransform,
    loader: &DetectionLoader,
    autocast: Autocast,
    mut each: impl FnMut(Found) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let _no_grad = tch::no_grad_guard();
    let device = transform.device();
    let mut images_seen = 0;
    for batch in loader.epoch(0, 0) {
        let batch = batch?;
        let shape = [
            batch.len() as i64,
            batch.height as i64,
            batch.width as i64,
            3,
        ];
        let pixels = upload(&batch.pixels, &shape, device);
        let sizes: Vec<(i64, i64)> = batch
            .image_sizes
            .iter()
            .map(|&(h, w)| (h as i64, w as i64))
            .collect();
        let images = transform.loader_batch(&pixels, &sizes);
        let detections = autocast.run(|| model.detect(&images));
        for (i, d) in detections.iter().enumerate() {
            let (width, height) = batch.original_sizes[i];
            let boxes = boxes_to_original(
                &d.boxes.to_kind(Kind::Float),
                sizes[i],
                (height as i64, width as i64),
            );
            let boxes = Vec::<f32>::try_from(boxes.to_device(Device::Cpu).reshape([-1]))?;
            let scores =
                Vec::<f32>::try_from(d.scores.to_kind(Kind::Float).to_device(Device::Cpu))?;
            let labels = Vec::<i64>::try_from(d.labels.to_device(Device::Cpu))?;
            each(Found {
                id: batch.ids[i].clone(),
                index: batch.indices[i],
                detections: ImageDetections {
                    boxes: boxes
                        .chunks_exact(4)
                        .map(|b| [b[0], b[1], b[2], b[3]])
                        .collect(),
                    scores,
                    // Labels are 1-based (0 is the background); classes are 0-based.
                    classes: labels.into_iter().map(|l| (l - 1) as usize).collect(),
                },
            })?;
        }
        images_seen += batch.len();
    }
    Ok(images_seen)
}
