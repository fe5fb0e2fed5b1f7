//! Detections of one image in its own pixels, as `detect predict` prints and draws them.

use crate::model::load::Detector;
use crate::transform::{boxes_to_original, ImageTransform};
use image::RgbImage;
use serde::Serialize;
use tch::{Device, Tensor};

/// One detection: `class` indexes the checkpoint's class list, `label` is its name, `box` is
/// `[x1, y1, x2, y2]` in 0-based float pixels of the original image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Detection {
    pub class: i64,
    pub label: String,
    pub score: f64,
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
}

/// Runs the detector on `image` with the checkpoint's transform; best first.
pub fn predict(detector: &Detector, image: &RgbImage) -> Vec<Detection> {
    predict_batch(detector, &[image]).remove(0)
}

/// Runs the detector on a batch of images of any sizes, padded together as torchvision
/// batches them (an image's proposals may then differ slightly from its own run's where the
/// padding reaches past it); each image's detections, best first.
pub fn predict_batch(detector: &Detector, batch: &[&RgbImage]) -> Vec<Vec<Detection>> {
    let device = detector.vs.device();
    let pixels: Vec<Tensor> = batch
        .iter()
        .map(|image| {
            let (w, h) = image.dimensions();
            Tensor::from_slice(image.as_raw()).view([h as i64, w as i64, 3])
        })
        .collect();
    let transform = ImageTransform::new(&detector.transform, device);
    let images = transform.images(&pixels);
    let found = detector.model.detect(&images);
    found
        .into_iter()
        .zip(batch)
        .zip(&images.image_sizes)
        .map(|((found, image), &resized)| {
            let found = found.to_device(Device::Cpu);
            let (w, h) = image.dimensions();
            let boxes = boxes_to_original(&found.boxes, resized, (h as i64, w as i64));
            let boxes = Vec::<f32>::try_from(boxes.reshape([-1])).expect("float boxes");
            let scores = Vec::<f32>::try_from(&found.scores).expect("float scores");
            let labels = Vec::<i64>::try_from(&found.labels).expect("integer labels");
            labels
                .iter()
                .zip(&scores)
                .zip(boxes.chunks_exact(4))
                .map(|((&label, &score), b)| Detection {
                    class: label - 1,
                    label: detector.classes[(label - 1) as usize].clone(),
                    score: score as f64,
                    bbox: [b[0] as f64, b[1] as f64, b[2] as f64, b[3] as f64],
                })
                .collect()
        })
        .collect()
}
