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
    let (w, h) = image.dimensions();
    let pixels = Tensor::from_slice(image.as_raw()).view([h as i64, w as i64, 3]);
    let transform = ImageTransform::new(&detector.transform, detector.vs.device());
    let images = transform.images(&[pixels]);
    let found = detector
        .model
        .detect(&images)
        .remove(0)
        .to_device(Device::Cpu);
    let boxes = boxes_to_original(&found.boxes, images.image_sizes[0], (h as i64, w as i64));
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
}
