//! Segmentation augmentation, as GluonCV's segmentation datasets do it (`_sync_transform`
//! for training, `_val_sync_transform` for validation), with image and mask moved together:
//! image pixels are resized bilinearly (Pillow-exact), labels by nearest neighbour.
//!
//! Training: flip with probability 0.5; one side is resized to a random whole number of
//! pixels in `[0.5, 2.0] x base_size` ([`ScaleSide`]: the shorter side, as GluonCV did in
//! 2018, or the longer one, as it does since 2019); sides shorter than the crop are padded
//! (image with 0, labels with [`IGNORE_LABEL`]: GluonCV pads labels with 0, which for ADE20K
//! becomes ignore after its "minus one", and for VOC would wrongly be background); a random
//! `crop_size` square is cut out; optionally blurred (Gaussian, sigma uniform in [0, 1)).

use crate::formats::records::{LabelMap, IGNORE_LABEL};
use crate::resize::{resize_bilinear_window, Window};
use crate::rng::SampleRng;
use image::RgbImage;
use rand::RngExt;
use serde::{Deserialize, Serialize};

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

/// Which side of the image the random scale sets (the other keeps the aspect ratio).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleSide {
    /// GluonCV in 2018 (`gluoncv/data/segbase.py` at 49be0191, the code behind the paper's
    /// FCN): the shorter side is drawn, the longer one is `int(long * drawn / short)`.
    Shorter,
    /// GluonCV since June 2019 (49056d48): the longer side is drawn, the shorter one is
    /// `int(short * drawn / long + 0.5)`.
    Longer,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SegmentationTrainTransform {
    pub base_size: usize,
    pub crop_size: usize,
    /// The side [`scale_side`](Self::scale_side) names is drawn from `[min, max] x base_size`.
    pub scale_range: (f64, f64),
    pub scale_side: ScaleSide,
    pub flip_probability: f64,
    pub blur_probability: f64,
}

impl SegmentationTrainTransform {
    /// The paper's ADE20K recipe: base 520, crop 480, shorter side drawn, no blur.
    pub const ADE20K: SegmentationTrainTransform = SegmentationTrainTransform {
        base_size: 520,
        crop_size: 480,
        scale_range: (0.5, 2.0),
        scale_side: ScaleSide::Shorter,
        flip_probability: 0.5,
        blur_probability: 0.0,
    };

    /// The resized size `(width, height)` of a `w x h` image whose drawn side is `drawn`.
    pub fn resized_size(&self, w: usize, h: usize, drawn: usize) -> (usize, usize) {
        let scaled = |side: usize, from: usize| side as f64 * drawn as f64 / from as f64;
        let (ow, oh) = match (self.scale_side, h > w) {
            // Python's int(): truncation.
            (ScaleSide::Shorter, true) => (drawn, scaled(h, w) as usize),
            (ScaleSide::Shorter, false) => (scaled(w, h) as usize, drawn),
            (ScaleSide::Longer, true) => ((scaled(w, h) + 0.5) as usize, drawn),
            (ScaleSide::Longer, false) => (drawn, (scaled(h, w) + 0.5) as usize),
        };
        (ow.max(1), oh.max(1))
    }

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
            crate::detection::transforms::flip_rows(&mut pixels, w, 3);
            crate::detection::transforms::flip_rows(&mut labels, w, 1);
        }
        let low = (self.base_size as f64 * self.scale_range.0) as usize;
        let high = (self.base_size as f64 * self.scale_range.1) as usize;
        let drawn = rng.random_range(low.max(1)..=high.max(low.max(1)));
        let (ow, oh) = self.resized_size(w, h, drawn);
        // Padded on the right and bottom to at least the crop, then cut: only the part of the
        // resized image inside the crop is computed, so a long thin image whose shorter side
        // is drawn (1 x 200000 to 1040 wide: 208 million rows) costs no more than a crop.
        let crop = self.crop_size;
        let (pw, ph) = (ow.max(crop), oh.max(crop));
        let x1 = rng.random_range(0..=pw - crop);
        let y1 = rng.random_range(0..=ph - crop);
        let inside = Window {
            x: x1,
            y: y1,
            w: (x1 + crop).min(ow) - x1,
            h: (y1 + crop).min(oh) - y1,
        };
        let pixels = resize_bilinear_window(&pixels, w, h, 3, ow, oh, inside);
        let labels = resize_nearest_window(&labels, w, h, ow, oh, inside);
        let mut pixels = pad(pixels, inside.w, inside.h, 3, crop, crop, 0);
        let labels = pad(labels, inside.w, inside.h, 1, crop, crop, IGNORE_LABEL);
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
    use crate::resize::resize_bilinear;
    use crate::rng::sample_rng;

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

    /// The size of the labelled (unpadded) top-left rectangle of a sample whose crop is
    /// larger than its resized image: the resized size.
    fn labelled_extent(s: &SegmentationSample) -> (usize, usize) {
        let width = s.labels[..s.width]
            .iter()
            .take_while(|&&l| l != IGNORE_LABEL)
            .count();
        let height = (0..s.height)
            .take_while(|&y| s.labels[y * s.width] != IGNORE_LABEL)
            .count();
        (width, height)
    }

    /// GluonCV 2018 (segbase.py at 49be0191): `short_size = random.randint(int(base * 0.5),
    /// int(base * 2.0))` sets the shorter side, the longer is `int(1.0 * long * short_size /
    /// short)`; since 2019 the drawn number sets the longer side (rounded other side).
    #[test]
    fn the_drawn_size_sets_the_side_the_recipe_names() {
        for (w, h) in [(30usize, 21usize), (21, 30)] {
            let (image, target) = scene(w, h);
            for side in [ScaleSide::Shorter, ScaleSide::Longer] {
                let t = SegmentationTrainTransform {
                    base_size: 40,
                    crop_size: 128, // larger than any resized image: the extent shows
                    scale_side: side,
                    blur_probability: 0.0,
                    ..SegmentationTrainTransform::ADE20K
                };
                for i in 0..20 {
                    let s = t.apply("x", &image, &target, &mut sample_rng(1, 0, i));
                    // The same generator: the flip's draw, then the size's.
                    let mut rng = sample_rng(1, 0, i);
                    let _flip: f64 = rng.random();
                    let drawn: usize = rng.random_range(20..=80);
                    let round = |v: usize, from: usize| {
                        (v as f64 * drawn as f64 / from as f64 + 0.5) as usize
                    };
                    let expected = match (side, w < h) {
                        (ScaleSide::Shorter, true) => (drawn, h * drawn / w),
                        (ScaleSide::Shorter, false) => (w * drawn / h, drawn),
                        (ScaleSide::Longer, true) => (round(w, h), drawn),
                        (ScaleSide::Longer, false) => (drawn, round(h, w)),
                    };
                    assert_eq!(
                        labelled_extent(&s),
                        expected,
                        "{w}x{h}, {side:?}, seed {i}, drawn {drawn}"
                    );
                }
            }
        }
    }

    /// The crop is computed from the part of the resized image it covers; it must equal
    /// resizing the whole image, padding and cutting (what the transform did before, and what
    /// GluonCV does), for either side drawn, with and without padding.
    #[test]
    fn the_windowed_crop_equals_resize_pad_then_cut() {
        let (image, target) = scene(37, 23);
        for side in [ScaleSide::Shorter, ScaleSide::Longer] {
            for crop in [16, 40] {
                let t = SegmentationTrainTransform {
                    base_size: 30,
                    crop_size: crop,
                    scale_side: side,
                    blur_probability: 0.0,
                    ..SegmentationTrainTransform::ADE20K
                };
                for i in 0..12 {
                    let s = t.apply("x", &image, &target, &mut sample_rng(2, 0, i));
                    let mut rng = sample_rng(2, 0, i);
                    let (mut pixels, mut labels) = (image.as_raw().clone(), target.labels.clone());
                    if rng.random::<f64>() < t.flip_probability {
                        crate::detection::transforms::flip_rows(&mut pixels, 37, 3);
                        crate::detection::transforms::flip_rows(&mut labels, 37, 1);
                    }
                    let (ow, oh) = t.resized_size(37, 23, rng.random_range(15..=60));
                    let (pw, ph) = (ow.max(crop), oh.max(crop));
                    let x1 = rng.random_range(0..=pw - crop);
                    let y1 = rng.random_range(0..=ph - crop);
                    let pixels = pad(
                        resize_bilinear(&pixels, 37, 23, 3, ow, oh),
                        ow,
                        oh,
                        3,
                        pw,
                        ph,
                        0,
                    );
                    let labels = pad(
                        resize_nearest(&labels, 37, 23, ow, oh),
                        ow,
                        oh,
                        1,
                        pw,
                        ph,
                        IGNORE_LABEL,
                    );
                    assert_eq!(
                        s.pixels,
                        cut(&pixels, pw, 3, x1, y1, crop, crop),
                        "{side:?} {crop} {i}"
                    );
                    assert_eq!(
                        s.labels,
                        cut(&labels, pw, 1, x1, y1, crop, crop),
                        "{side:?} {crop} {i}"
                    );
                }
            }
        }
    }

    /// A long thin image whose shorter side is drawn would resize to hundreds of millions of
    /// pixels; only the crop is computed.
    #[test]
    fn a_long_thin_image_costs_only_its_crop() {
        let (image, target) = scene(2, 100_000);
        let t = SegmentationTrainTransform {
            base_size: 520,
            crop_size: 48,
            ..SegmentationTrainTransform::ADE20K
        };
        let s = t.apply("x", &image, &target, &mut sample_rng(0, 0, 0));
        assert_eq!((s.width, s.height, s.pixels.len()), (48, 48, 48 * 48 * 3));
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
