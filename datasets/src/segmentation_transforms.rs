//! Segmentation augmentation, as GluonCV's segmentation datasets do it (`_sync_transform`
//! for training, `_val_sync_transform` for validation), with image and mask moved together:
//! image pixels are resized bilinearly (Pillow-exact), labels by nearest neighbour.
//!
//! Training: flip with probability 0.5; the longer side is resized to a random whole number
//! of pixels in `[0.5, 2.0] x base_size`; sides shorter than the crop are padded (image with
//! 0, labels with [`IGNORE_LABEL`]: GluonCV pads labels with 0, which for ADE20K becomes
//! ignore after its "minus one", and for VOC would wrongly be background); a random
//! `crop_size` square is cut out; optionally blurred (Gaussian, sigma uniform in [0, 1)).

use crate::records::{LabelMap, IGNORE_LABEL};
use crate::resize::{resize_bilinear, resize_bilinear_window, Window};
use crate::rng::SampleRng;
use image::RgbImage;
use rand::RngExt;

/// One augmented image and its labels.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentationSample {
    pub id: String,
    /// RGB, row-major, interleaved (HWC).
    pub pixels: Vec<u8>,
    pub width: usize,
    pub height: usize,
    /// Train ids, row-major; [`IGNORE_LABEL`] is ignored.
    pub labels: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SegmentationTrainTransform {
    pub base_size: usize,
    pub crop_size: usize,
    /// The longer side is drawn from `[min, max] x base_size`.
    pub scale_range: (f64, f64),
    pub flip_probability: f64,
    pub blur_probability: f64,
}

impl SegmentationTrainTransform {
    /// The paper's ADE20K recipe: base 520, crop 480, no blur.
    pub const ADE20K: SegmentationTrainTransform = SegmentationTrainTransform {
        base_size: 520,
        crop_size: 480,
        scale_range: (0.5, 2.0),
        flip_probability: 0.5,
        blur_probability: 0.0,
    };

    pub fn apply(
        &self,
        id: &str,
        image: &RgbImage,
        target: &LabelMap,
        rng: &mut SampleRng,
    ) -> SegmentationSample {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let mut pixels = image.as_raw().clone();
        let mut labels = target.labels.clone();
        if rng.random::<f64>() < self.flip_probability {
            crate::detection_transforms::flip_rows(&mut pixels, w, 3);
            crate::detection_transforms::flip_rows(&mut labels, w, 1);
        }
        let low = (self.base_size as f64 * self.scale_range.0) as usize;
        let high = (self.base_size as f64 * self.scale_range.1) as usize;
        let long_size = rng.random_range(low.max(1)..=high.max(low.max(1)));
        let (ow, oh) = if h > w {
            (
                ((w as f64 * long_size as f64 / h as f64) + 0.5) as usize,
                long_size,
            )
        } else {
            (
                long_size,
                ((h as f64 * long_size as f64 / w as f64) + 0.5) as usize,
            )
        };
        let (ow, oh) = (ow.max(1), oh.max(1));
        let pixels = resize_bilinear(&pixels, w, h, 3, ow, oh);
        let labels = resize_nearest(&labels, w, h, ow, oh);
        let crop = self.crop_size;
        let (pw, ph) = (ow.max(crop), oh.max(crop));
        let pixels = pad(pixels, ow, oh, 3, pw, ph, 0);
        let labels = pad(labels, ow, oh, 1, pw, ph, IGNORE_LABEL);
        let x1 = rng.random_range(0..=pw - crop);
        let y1 = rng.random_range(0..=ph - crop);
        let mut pixels = cut(&pixels, pw, 3, x1, y1, crop, crop);
        let labels = cut(&labels, pw, 1, x1, y1, crop, crop);
        if rng.random::<f64>() < self.blur_probability {
            let sigma = rng.random::<f64>();
            gaussian_blur(&mut pixels, crop, crop, sigma);
        }
        SegmentationSample {
            id: id.to_string(),
            pixels,
            width: crop,
            height: crop,
            labels,
        }
    }
}

/// Evaluation transforms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SegmentationEvalTransform {
    /// GluonCV's validation: shorter side to `crop_size` (longer truncated), centre crop.
    CenterCrop { crop_size: usize },
    /// The whole image as it is (GluonCV's "testval", what the reported numbers use).
    Full,
}

impl SegmentationEvalTransform {
    pub fn apply(&self, id: &str, image: &RgbImage, target: &LabelMap) -> SegmentationSample {
        let (w, h) = (image.width() as usize, image.height() as usize);
        match *self {
            SegmentationEvalTransform::Full => SegmentationSample {
                id: id.to_string(),
                pixels: image.as_raw().clone(),
                width: w,
                height: h,
                labels: target.labels.clone(),
            },
            SegmentationEvalTransform::CenterCrop { crop_size } => {
                let (ow, oh) = if w > h {
                    ((w as f64 * crop_size as f64 / h as f64) as usize, crop_size)
                } else {
                    (crop_size, (h as f64 * crop_size as f64 / w as f64) as usize)
                };
                let (ow, oh) = (ow.max(crop_size), oh.max(crop_size));
                // Python's round(): half to even.
                let x1 = ((ow - crop_size) as f64 / 2.0).round_ties_even() as usize;
                let y1 = ((oh - crop_size) as f64 / 2.0).round_ties_even() as usize;
                // Only the crop is computed: the whole resized image of a long thin input
                // (1 x 60000 at crop 480: 28.8 million rows) would not fit in memory.
                let window = Window {
                    x: x1,
                    y: y1,
                    w: crop_size,
                    h: crop_size,
                };
                SegmentationSample {
                    id: id.to_string(),
                    pixels: resize_bilinear_window(image.as_raw(), w, h, 3, ow, oh, window),
                    width: crop_size,
                    height: crop_size,
                    labels: resize_nearest_window(&target.labels, w, h, ow, oh, window),
                }
            }
        }
    }
}

/// Pillow's NEAREST resize of a one-channel image: output pixel `x` takes input
/// `floor((x + 0.5) * in / out)`.
pub fn resize_nearest(src: &[u8], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    if (w, h) == (out_w, out_h) {
        return src.to_vec();
    }
    let whole = Window {
        x: 0,
        y: 0,
        w: out_w,
        h: out_h,
    };
    resize_nearest_window(src, w, h, out_w, out_h, whole)
}

/// The `window` of what [`resize_nearest`] would return, computing only that window.
pub fn resize_nearest_window(
    src: &[u8],
    w: usize,
    h: usize,
    out_w: usize,
    out_h: usize,
    window: Window,
) -> Vec<u8> {
    let source_index = |x: usize, input: usize, output: usize| {
        (((x as f64 + 0.5) * input as f64 / output as f64) as usize).min(input - 1)
    };
    let columns: Vec<usize> = (window.x..window.x + window.w)
        .map(|x| source_index(x, w, out_w))
        .collect();
    let mut out = Vec::with_capacity(window.w * window.h);
    for y in window.y..window.y + window.h {
        let row = &src[source_index(y, h, out_h) * w..][..w];
        out.extend(columns.iter().map(|&x| row[x]));
    }
    out
}

/// Extends an image to `out_w x out_h` on the right and bottom with `fill` (no copy when
/// it is that size already).
fn pad(
    src: Vec<u8>,
    w: usize,
    h: usize,
    channels: usize,
    out_w: usize,
    out_h: usize,
    fill: u8,
) -> Vec<u8> {
    if (w, h) == (out_w, out_h) {
        return src;
    }
    let mut out = vec![fill; out_w * out_h * channels];
    for (y, row) in src.chunks_exact(w * channels).enumerate() {
        out[y * out_w * channels..][..row.len()].copy_from_slice(row);
    }
    out
}

/// The `cw x ch` window at `(x1, y1)` of an image `w` wide.
fn cut(
    src: &[u8],
    w: usize,
    channels: usize,
    x1: usize,
    y1: usize,
    cw: usize,
    ch: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(cw * ch * channels);
    for y in y1..y1 + ch {
        out.extend_from_slice(&src[(y * w + x1) * channels..][..cw * channels]);
    }
    out
}

/// A separable Gaussian blur of an RGB image (edges repeat). Pillow's `GaussianBlur(radius)`
/// takes the standard deviation as its radius and approximates it with box blurs; this is
/// the exact Gaussian, so pixels may differ by a few levels.
pub fn gaussian_blur(pixels: &mut [u8], w: usize, h: usize, sigma: f64) {
    if sigma < 0.1 {
        return;
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let mut kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let total: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= total);
    let mut tmp = vec![0f32; pixels.len()];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut acc = 0.0;
                for (k, weight) in kernel.iter().enumerate() {
                    let sx = (x as isize + k as isize - radius).clamp(0, w as isize - 1) as usize;
                    acc += weight * pixels[(y * w + sx) * 3 + c] as f32;
                }
                tmp[(y * w + x) * 3 + c] = acc;
            }
        }
    }
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut acc = 0.0;
                for (k, weight) in kernel.iter().enumerate() {
                    let sy = (y as isize + k as isize - radius).clamp(0, h as isize - 1) as usize;
                    acc += weight * tmp[(sy * w + x) * 3 + c];
                }
                pixels[(y * w + x) * 3 + c] = acc.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// A batch of segmentation samples, padded to one size (training crops all have the crop
/// size; full-image evaluation batches differ).
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentationBatch {
    /// `len x height x width x 3` u8, zero in the padding.
    pub pixels: Vec<u8>,
    /// `len x height x width` train ids, [`IGNORE_LABEL`] in the padding.
    pub labels: Vec<u8>,
    pub height: usize,
    pub width: usize,
    /// `(height, width)` of each image inside the padding.
    pub image_sizes: Vec<(usize, usize)>,
    pub ids: Vec<String>,
    pub indices: Vec<usize>,
}

impl SegmentationBatch {
    pub fn len(&self) -> usize {
        self.image_sizes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.image_sizes.is_empty()
    }
}

pub fn collate_segmentation(
    samples: Vec<SegmentationSample>,
    indices: Vec<usize>,
) -> SegmentationBatch {
    let height = samples.iter().map(|s| s.height).max().unwrap_or(0);
    let width = samples.iter().map(|s| s.width).max().unwrap_or(0);
    let mut pixels = vec![0u8; samples.len() * height * width * 3];
    let mut labels = vec![IGNORE_LABEL; samples.len() * height * width];
    let mut image_sizes = Vec::with_capacity(samples.len());
    let mut ids = Vec::with_capacity(samples.len());
    for (i, s) in samples.into_iter().enumerate() {
        let image_slot = &mut pixels[i * height * width * 3..][..height * width * 3];
        for (y, row) in s.pixels.chunks_exact(s.width * 3).enumerate() {
            image_slot[y * width * 3..][..row.len()].copy_from_slice(row);
        }
        let label_slot = &mut labels[i * height * width..][..height * width];
        for (y, row) in s.labels.chunks_exact(s.width).enumerate() {
            label_slot[y * width..][..row.len()].copy_from_slice(row);
        }
        image_sizes.push((s.height, s.width));
        ids.push(s.id);
    }
    SegmentationBatch {
        pixels,
        labels,
        height,
        width,
        image_sizes,
        ids,
        indices,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;

    fn scene(w: usize, h: usize) -> (RgbImage, LabelMap) {
        // Left half class 1, right half class 2, so labels and colours can be compared.
        let mut image = RgbImage::new(w as u32, h as u32);
        let mut labels = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                let class = if x < w / 2 { 1 } else { 2 };
                labels[y * w + x] = class;
                image.put_pixel(x as u32, y as u32, image::Rgb([class * 100, 0, 0]));
            }
        }
        (
            image,
            LabelMap {
                width: w,
                height: h,
                labels,
            },
        )
    }

    #[test]
    fn training_crops_keep_labels_on_their_pixels() {
        let (image, target) = scene(64, 48);
        let t = SegmentationTrainTransform {
            base_size: 40,
            crop_size: 32,
            ..SegmentationTrainTransform::ADE20K
        };
        for i in 0..20 {
            let s = t.apply("x", &image, &target, &mut sample_rng(1, 0, i));
            assert_eq!((s.width, s.height, s.labels.len()), (32, 32, 32 * 32));
            for (p, &l) in s.labels.iter().enumerate() {
                let red = s.pixels[p * 3];
                match l {
                    IGNORE_LABEL => assert_eq!(red, 0, "padding is black"),
                    1 => assert!(red <= 150, "class 1 is dark red"),
                    2 => assert!(red >= 50, "class 2 is bright red"),
                    other => panic!("label {other}"),
                }
            }
        }
    }

    #[test]
    fn center_crop_follows_gluoncv() {
        let (image, target) = scene(80, 40);
        let s = SegmentationEvalTransform::CenterCrop { crop_size: 20 }.apply("x", &image, &target);
        // 80x40 -> 40x20, crop x from 10: columns 10..30, the boundary in the middle.
        assert_eq!((s.width, s.height), (20, 20));
        assert_eq!(
            &s.labels[..20],
            &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]
        );
    }

    #[test]
    fn center_crop_of_a_long_thin_image_computes_only_the_crop() {
        // A moderate case: the windowed crop equals resize-everything-then-cut.
        let (image, target) = scene(7, 300);
        let s = SegmentationEvalTransform::CenterCrop { crop_size: 20 }.apply("x", &image, &target);
        let (ow, oh) = (20, 300 * 20 / 7);
        let y1 = ((oh - 20) as f64 / 2.0).round_ties_even() as usize;
        let full = resize_bilinear(image.as_raw(), 7, 300, 3, ow, oh);
        assert_eq!(s.pixels, cut(&full, ow, 3, 0, y1, 20, 20));
        let full_labels = resize_nearest(&target.labels, 7, 300, ow, oh);
        assert_eq!(s.labels, cut(&full_labels, ow, 1, 0, y1, 20, 20));
        // 1 x 200000 at crop 480 would resize to 96 million rows (138 GB of pixels); the crop
        // alone is 480 x 480.
        let (image, target) = scene(1, 200_000);
        let s =
            SegmentationEvalTransform::CenterCrop { crop_size: 480 }.apply("x", &image, &target);
        assert_eq!(
            (s.width, s.height, s.pixels.len()),
            (480, 480, 480 * 480 * 3)
        );
        assert_eq!(s.labels.len(), 480 * 480);
    }

    #[test]
    fn nearest_resize_picks_pillows_pixels() {
        // Pillow 13: Image.fromarray(np.array([[1, 2, 3]], np.uint8)).resize((6, 1), NEAREST)
        // -> [1 1 2 2 3 3]; [[1, 2, 3, 4]] to (2, 1) -> [2 4]; np.arange(7) to (3, 1) -> [1 3 5].
        assert_eq!(
            resize_nearest(&[0, 1, 2, 3, 4, 5, 6], 7, 1, 3, 1),
            vec![1, 3, 5]
        );
        assert_eq!(
            resize_nearest(&[1, 2, 3], 3, 1, 6, 1),
            vec![1, 1, 2, 2, 3, 3]
        );
        assert_eq!(resize_nearest(&[1, 2, 3, 4], 4, 1, 2, 1), vec![2, 4]);
    }
}
