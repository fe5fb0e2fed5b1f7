//! `segment predict`: one image's mask (8-bit grayscale PNG, 1 + the class index, as ADE20K
//! submissions; 0 is never written) at the image's own size, and optionally a colour overlay.

use crate::segmenter::Segmenter;
use datasets::label_png::{encode_mask, voc_palette, MaskEncoding};
use engine::checkpoint::CheckpointError;
use image::RgbImage;
use serde::Serialize;

/// What was found in the image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassArea {
    /// 0-based class index (the mask holds index + 1).
    pub class: usize,
    pub label: String,
    pub pixels: usize,
    pub fraction: f64,
}

pub struct Prediction {
    pub width: usize,
    pub height: usize,
    /// 1 + class index per pixel, row-major.
    pub mask: Vec<u8>,
}

impl Prediction {
    /// `image` (named `name` in errors) through `model`, brought back to its size row band by
    /// row band; an error when the model's outputs are not finite.
    pub fn of(model: &Segmenter, name: &str, image: &RgbImage) -> Result<Self, CheckpointError> {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let mut mask = vec![0u8; w * h];
        model.classes(name, image.as_raw(), w, h, |y0, classes| {
            let classes = Vec::<i64>::try_from(&classes.flatten(0, -1).to_device(tch::Device::Cpu))
                .expect("int64");
            let start = y0 as usize * w;
            for (out, c) in mask[start..start + classes.len()].iter_mut().zip(classes) {
                *out = (c + 1) as u8;
            }
        })?;
        Ok(Prediction {
            width: w,
            height: h,
            mask,
        })
    }

    pub fn png(&self) -> Result<Vec<u8>, png::EncodingError> {
        encode_mask(&self.mask, self.width, self.height, MaskEncoding::Grayscale)
    }

    /// Classes by area, largest first.
    pub fn areas(&self, labels: &[String]) -> Vec<ClassArea> {
        let mut counts = vec![0usize; labels.len()];
        for &v in &self.mask {
            counts[v as usize - 1] += 1;
        }
        let total = self.mask.len().max(1) as f64;
        let mut areas: Vec<ClassArea> = counts
            .into_iter()
            .enumerate()
            .filter(|(_, n)| *n > 0)
            .map(|(class, pixels)| ClassArea {
                class,
                label: labels[class].clone(),
                pixels,
                fraction: pixels as f64 / total,
            })
            .collect();
        areas.sort_by(|a, b| b.pixels.cmp(&a.pixels).then(a.class.cmp(&b.class)));
        areas
    }

    /// The image with each pixel's class colour (VOC's palette of 1 + index) blended at half
    /// strength.
    pub fn overlay(&self, image: &RgbImage) -> RgbImage {
        let palette = voc_palette();
        let mut out = image.clone();
        for (i, px) in out.pixels_mut().enumerate() {
            let c = self.mask[i] as usize * 3;
            for (ch, v) in px.0.iter_mut().enumerate() {
                *v = ((*v as u16 + palette[c + ch] as u16) / 2) as u8;
            }
        }
        out
    }
}
