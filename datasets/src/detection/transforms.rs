//! Detection augmentation: the image is resized and flipped, and its boxes move with it;
//! then a batch is padded with zeros to a multiple of 32, each image at the top left, with
//! its true size kept (the detector must not propose boxes in the padding).

use crate::formats::records::DetectionRecord;
use crate::resize::resize_bilinear;
use crate::rng::SampleRng;
use image::RgbImage;
use rand::RngExt;

/// How the scaled size is turned into whole pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeRounding {
    /// GluonCV's `resize_short_within`: `np.round` (half to even).
    Round,
    /// torchvision's `GeneralizedRCNNTransform`: `interpolate(scale_factor=...)` floors.
    Floor,
}

/// Scale so the shorter side becomes `shorter`, unless the longer side would then exceed
/// `max_longer`, in which case the longer side becomes `max_longer`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShorterSideResize {
    pub shorter: usize,
    pub max_longer: usize,
    pub rounding: SizeRounding,
}

impl ShorterSideResize {
    /// GluonCV's Faster R-CNN VOC recipe (the paper's): 600, at most 1000.
    pub const GLUONCV_VOC: ShorterSideResize = ShorterSideResize {
        shorter: 600,
        max_longer: 1000,
        rounding: SizeRounding::Round,
    };
    /// torchvision's detection models: 800, at most 1333.
    pub const TORCHVISION: ShorterSideResize = ShorterSideResize {
        shorter: 800,
        max_longer: 1333,
        rounding: SizeRounding::Floor,
    };

    /// The output `(width, height)` for an image of `(width, height)`.
    pub fn output_size(&self, width: usize, height: usize) -> (usize, usize) {
        let (short, long) = (width.min(height) as f64, width.max(height) as f64);
        let scale = match self.rounding {
            SizeRounding::Round => {
                let scale = self.shorter as f64 / short;
                if (scale * long).round_ties_even() > self.max_longer as f64 {
                    self.max_longer as f64 / long
                } else {
                    scale
                }
            }
            SizeRounding::Floor => (self.shorter as f64 / short).min(self.max_longer as f64 / long),
        };
        let to_pixels = |v: f64| match self.rounding {
            SizeRounding::Round => v.round_ties_even(),
            SizeRounding::Floor => v.floor(),
        };
        (
            (to_pixels(width as f64 * scale) as usize).max(1),
            (to_pixels(height as f64 * scale) as usize).max(1),
        )
    }
}

/// Resize, then flip with probability `flip_probability`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectionTransform {
    pub resize: ShorterSideResize,
    pub flip_probability: f64,
}

impl DetectionTransform {
    /// Training: resize and flip half the images.
    pub fn train(resize: ShorterSideResize) -> Self {
        DetectionTransform {
            resize,
            flip_probability: 0.5,
        }
    }

    /// Evaluation: resize only.
    pub fn eval(resize: ShorterSideResize) -> Self {
        DetectionTransform {
            resize,
            flip_probability: 0.0,
        }
    }

    /// Applies the transform to a decoded image and its annotation.
    pub fn apply(
        &self,
        image: &RgbImage,
        record: &DetectionRecord,
        rng: &mut SampleRng,
    ) -> DetectionSample {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let (out_w, out_h) = self.resize.output_size(w, h);
        let mut pixels = resize_bilinear(image.as_raw(), w, h, 3, out_w, out_h);
        let (sx, sy) = (out_w as f32 / w as f32, out_h as f32 / h as f32);
        let mut boxes: Vec<[f32; 4]> = record
            .objects
            .iter()
            .map(|o| {
                [
                    o.bbox[0] * sx,
                    o.bbox[1] * sy,
                    o.bbox[2] * sx,
                    o.bbox[3] * sy,
                ]
            })
            .collect();
        // Draw even when the probability is 0 or 1, so a sample's later draws do not depend
        // on the recipe.
        let flipped = rng.random::<f64>() < self.flip_probability;
        if flipped {
            flip_rows(&mut pixels, out_w, 3);
            flip_boxes(&mut boxes, out_w as f32);
        }
        DetectionSample {
            id: record.id.clone(),
            pixels,
            width: out_w,
            height: out_h,
            boxes,
            labels: record.objects.iter().map(|o| o.class as i64 + 1).collect(),
            difficult: record.objects.iter().map(|o| o.difficult).collect(),
            crowd: record.objects.iter().map(|o| o.crowd).collect(),
            original_size: (w, h),
            flipped,
        }
    }
}

/// One augmented image and its boxes.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectionSample {
    pub id: String,
    /// RGB, row-major, interleaved (HWC).
    pub pixels: Vec<u8>,
    pub width: usize,
    pub height: usize,
    /// `[x1, y1, x2, y2]` in this image's pixels (0-based continuous).
    pub boxes: Vec<[f32; 4]>,
    /// Class index + 1: 0 is background, as torchvision's detectors expect.
    pub labels: Vec<i64>,
    pub difficult: Vec<bool>,
    pub crowd: Vec<bool>,
    /// `(width, height)` before resizing: predictions are scaled back to it.
    pub original_size: (usize, usize),
    pub flipped: bool,
}

/// Mirrors every row of an interleaved image in place.
pub fn flip_rows(pixels: &mut [u8], width: usize, channels: usize) {
    for row in pixels.chunks_exact_mut(width * channels) {
        // Reversing the row reverses the pixels and, within each, the channels; reversing
        // each pixel back restores the channel order. Both loops vectorise.
        row.reverse();
        if channels > 1 {
            row.chunks_exact_mut(channels).for_each(<[u8]>::reverse);
        }
    }
}

/// Mirrors continuous boxes in an image `width` wide: `x1' = width - x2`, `x2' = width - x1`.
pub fn flip_boxes(boxes: &mut [[f32; 4]], width: f32) {
    for b in boxes {
        let (x1, x2) = (b[0], b[2]);
        b[0] = width - x2;
        b[2] = width - x1;
    }
}

/// A batch of detection samples, padded to one size.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectionBatch {
    /// `len x height x width x 3` u8, zero outside each image's true size.
    pub pixels: Vec<u8>,
    pub height: usize,
    pub width: usize,
    /// `(height, width)` of each image inside the padding.
    pub image_sizes: Vec<(usize, usize)>,
    pub boxes: Vec<Vec<[f32; 4]>>,
    pub labels: Vec<Vec<i64>>,
    pub difficult: Vec<Vec<bool>>,
    pub crowd: Vec<Vec<bool>>,
    pub original_sizes: Vec<(usize, usize)>,
    pub ids: Vec<String>,
    /// Dataset indices of the samples.
    pub indices: Vec<usize>,
}

impl DetectionBatch {
    pub fn len(&self) -> usize {
        self.image_sizes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.image_sizes.is_empty()
    }
}

/// Pads every image to the largest height and width in the batch, rounded up to a multiple
/// of `size_multiple` (32 for the detectors here), zeros outside.
pub fn collate_detection(
    samples: Vec<DetectionSample>,
    indices: Vec<usize>,
    size_multiple: usize,
) -> DetectionBatch {
    let round_up = |v: usize| v.div_ceil(size_multiple.max(1)) * size_multiple.max(1);
    let height = round_up(samples.iter().map(|s| s.height).max().unwrap_or(0));
    let width = round_up(samples.iter().map(|s| s.width).max().unwrap_or(0));
    let mut pixels = vec![0u8; samples.len() * height * width * 3];
    let mut batch = DetectionBatch {
        pixels: Vec::new(),
        height,
        width,
        image_sizes: Vec::with_capacity(samples.len()),
        boxes: Vec::with_capacity(samples.len()),
        labels: Vec::with_capacity(samples.len()),
        difficult: Vec::with_capacity(samples.len()),
        crowd: Vec::with_capacity(samples.len()),
        original_sizes: Vec::with_capacity(samples.len()),
        ids: Vec::with_capacity(samples.len()),
        indices,
    };
    for (i, s) in samples.into_iter().enumerate() {
        let slot = &mut pixels[i * height * width * 3..][..height * width * 3];
        for (y, row) in s.pixels.chunks_exact(s.width * 3).enumerate() {
            slot[y * width * 3..][..row.len()].copy_from_slice(row);
        }
        batch.image_sizes.push((s.height, s.width));
        batch.boxes.push(s.boxes);
        batch.labels.push(s.labels);
        batch.difficult.push(s.difficult);
        batch.crowd.push(s.crowd);
        batch.original_sizes.push(s.original_size);
        batch.ids.push(s.id);
    }
    batch.pixels = pixels;
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::records::GroundTruthBox;
    use crate::rng::sample_rng;

    #[test]
    fn output_sizes_follow_each_recipe() {
        // GluonCV's resize_short_within(short=600, max_size=1000) size arithmetic, run in
        // numpy for (w, h): (500, 375) -> (800, 600), (500, 333) -> (901, 600),
        // (1000, 300) -> (1000, 300) (capped), (353, 500) -> (600, 850),
        // (500, 281) -> (1000, 562) (capped).
        let gluoncv = |w, h| ShorterSideResize::GLUONCV_VOC.output_size(w, h);
        assert_eq!(gluoncv(500, 375), (800, 600));
        assert_eq!(gluoncv(500, 333), (901, 600));
        assert_eq!(gluoncv(1000, 300), (1000, 300));
        assert_eq!(gluoncv(353, 500), (600, 850));
        assert_eq!(gluoncv(500, 281), (1000, 562));
        // torchvision 0.26, GeneralizedRCNNTransform(800, 1333, ...).eval() on
        // torch.rand(3, h, w): image_sizes (375, 500) -> (800, 1066), (333, 500) ->
        // (800, 1201), (300, 1000) -> (399, 1333).
        let torchvision = |w, h| ShorterSideResize::TORCHVISION.output_size(w, h);
        assert_eq!(torchvision(500, 375), (1066, 800));
        assert_eq!(torchvision(500, 333), (1201, 800));
        assert_eq!(torchvision(1000, 300), (1333, 399));
    }

    #[test]
    fn boxes_move_with_the_pixels() {
        // One white pixel at column 1 of a 4x2 image, its box [1, 0, 2, 1].
        let mut image = RgbImage::new(4, 2);
        image.put_pixel(1, 0, image::Rgb([255, 255, 255]));
        let record = DetectionRecord {
            id: "a".into(),
            image_path: "a.jpg".into(),
            width: 4,
            height: 2,
            objects: vec![GroundTruthBox {
                bbox: [1.0, 0.0, 2.0, 1.0],
                class: 3,
                difficult: false,
                truncated: false,
                crowd: false,
            }],
        };
        let transform = DetectionTransform {
            resize: ShorterSideResize {
                shorter: 2,
                max_longer: 100,
                rounding: SizeRounding::Round,
            },
            flip_probability: 1.0,
        };
        let s = transform.apply(&image, &record, &mut sample_rng(0, 0, 0));
        assert!(s.flipped);
        assert_eq!(s.boxes, vec![[2.0, 0.0, 3.0, 1.0]]);
        assert_eq!(s.labels, vec![4]);
        assert_eq!(&s.pixels[2 * 3..3 * 3], &[255, 255, 255]);
    }

    #[test]
    fn flipping_keeps_channel_order() {
        let mut row = vec![1, 2, 3, 4, 5, 6, 7, 8, 9];
        flip_rows(&mut row, 3, 3);
        assert_eq!(row, vec![7, 8, 9, 4, 5, 6, 1, 2, 3]);
        let mut grey = vec![1, 2, 3, 4];
        flip_rows(&mut grey, 2, 1);
        assert_eq!(grey, vec![2, 1, 4, 3]);
    }

    #[test]
    fn batches_pad_to_a_multiple_of_32_and_keep_true_sizes() {
        let sample = |w: usize, h: usize| DetectionSample {
            id: format!("{w}"),
            pixels: vec![7; w * h * 3],
            width: w,
            height: h,
            boxes: vec![],
            labels: vec![],
            difficult: vec![],
            crowd: vec![],
            original_size: (w, h),
            flipped: false,
        };
        let b = collate_detection(vec![sample(40, 10), sample(10, 33)], vec![0, 1], 32);
        assert_eq!((b.height, b.width), (64, 64));
        assert_eq!(b.image_sizes, vec![(10, 40), (33, 10)]);
        assert_eq!(b.pixels[39 * 3], 7);
        assert_eq!(b.pixels[40 * 3], 0);
        assert_eq!(b.pixels[10 * 64 * 3], 0);
    }
}
