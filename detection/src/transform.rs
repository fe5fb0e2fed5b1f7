//! torchvision's GeneralizedRCNNTransform on the device: normalise, resize each image so its
//! shorter side is `min_size` unless its longer side would pass `max_size`, pad the batch
//! to a multiple of 32 (top-left, zeros in normalised space), and scale detected boxes back
//! to the original pixels.
//!
//! Where resizing happens: training batches come from the loader already resized on the
//! host (GluonCV's rule, Pillow-exact bilinear on u8, in worker threads), so only
//! normalisation and zeroing of the padding run here ([`ImageTransform::loader_batch`]).
//! Inference on whole images ([`ImageTransform::images`]) resizes here, after normalising,
//! exactly as torchvision does, so an imported torchvision model sees the same input numbers
//! as in PyTorch.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// The transform a detection checkpoint records (`transform` metadata).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransformSpec {
    /// Target of the shorter side.
    pub min_size: i64,
    /// Bound on the longer side.
    pub max_size: i64,
    /// On 0-1 pixels, RGB.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Padded batch sides are multiples of this.
    pub size_divisible: i64,
}

/// Bounds of each size a checkpoint may ask for (torchvision uses 800 / 1333); what the two
/// imply together is bounded by memory ([`TransformSpec::check_memory`]).
pub const SIDE: std::ops::RangeInclusive<i64> = 8..=4096;

/// Peak bytes per model-input pixel of a detector's inference, measured on the CPU: a
/// ResNet-50 FPN run at 4096 x 4096 took 5.8 GB, about 350 bytes a pixel (the stem's and
/// the first stage's wide maps dominate; the box head's cost does not grow with the image).
pub const INFERENCE_BYTES_PER_PIXEL: u64 = 350;

impl TransformSpec {
    /// torchvision's detection defaults: 800 / 1333, ImageNet mean and std, multiples of 32.
    pub fn torchvision() -> Self {
        TransformSpec {
            min_size: 800,
            max_size: 1333,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            size_divisible: 32,
        }
    }

    /// GluonCV's VOC sizes (600 / 1000) with the same statistics.
    pub fn gluoncv_voc() -> Self {
        TransformSpec {
            min_size: 600,
            max_size: 1000,
            ..Self::torchvision()
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        engine::limits::check("min_size", self.min_size, &SIDE)?;
        engine::limits::check("max_size", self.max_size, &SIDE)?;
        if self.max_size < self.min_size {
            return Err(format!(
                "max_size {} is below min_size {}",
                self.max_size, self.min_size
            ));
        }
        engine::limits::check("size_divisible", self.size_divisible, &(1..=256))?;
        if !self.mean.iter().all(|m| m.is_finite()) {
            return Err(format!("mean {:?} must be finite", self.mean));
        }
        if !self.std.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err(format!("std {:?} must be finite and above 0", self.std));
        }
        Ok(())
    }

    /// The most pixels a resized image can have: the shorter side at `min_size` with the
    /// longer one just at `max_size`.
    pub fn largest_input_pixels(&self) -> u64 {
        self.min_size as u64 * self.max_size as u64
    }

    /// Refuses sizes whose largest model input would need more than `limit` bytes of
    /// activations: a checkpoint's 4096 / 4096 makes every image 16.8 million pixels,
    /// 5.8 GB, whatever its own size.
    pub fn check_memory(&self, limit: u64) -> Result<(), String> {
        let bytes = self.largest_input_pixels() * INFERENCE_BYTES_PER_PIXEL;
        if bytes > limit {
            return Err(format!(
                "min_size {} and max_size {} make a model input of up to {} pixels, about {} \
                 of activations, more than the limit of {} (set {} to a number of MiB to \
                 raise it)",
                self.min_size,
                self.max_size,
                self.largest_input_pixels(),
                engine::limits::gb(bytes),
                engine::limits::gb(limit),
                engine::limits::MAX_INFERENCE_MIB_VAR
            ));
        }
        Ok(())
    }

    /// The resized `(height, width)` of an image, as torchvision computes it:
    /// `interpolate(scale_factor=s, recompute_scale_factor=True)` floors `side * s` in double
    /// precision, `s = min(min_size / short, max_size / long)`.
    pub fn resized_size(&self, (height, width): (i64, i64)) -> (i64, i64) {
        let short = height.min(width) as f64;
        let long = height.max(width) as f64;
        let scale = (self.min_size as f64 / short).min(self.max_size as f64 / long);
        let side = |s: i64| ((s as f64 * scale).floor() as i64).max(1);
        (side(height), side(width))
    }
}

/// A padded batch on the device and the size of each image inside it.
#[derive(Debug)]
pub struct ImageList {
    /// `[N, 3, H, W]` float, normalised, zero in the padding.
    pub tensors: Tensor,
    /// `(height, width)` of each image as the model sees it (after resizing).
    pub image_sizes: Vec<(i64, i64)>,
}

impl ImageList {
    /// `(height, width)` of the padded batch.
    pub fn padded_size(&self) -> (i64, i64) {
        let s = self.tensors.size();
        (s[2], s[3])
    }
}

/// The transform with its statistics on one device.
pub struct ImageTransform {
    pub spec: TransformSpec,
    mean: Tensor,
    std: Tensor,
}

impl ImageTransform {
    /// Where the transform's statistics live, and so its output.
    pub fn device(&self) -> Device {
        self.mean.device()
    }

    pub fn new(spec: &TransformSpec, device: Device) -> Self {
        let on_device = |v: &[f32; 3]| Tensor::from_slice(v).to_device(device).view([3, 1, 1]);
        ImageTransform {
            spec: spec.clone(),
            mean: on_device(&spec.mean),
            std: on_device(&spec.std),
        }
    }

    fn round_up(&self, v: i64) -> i64 {
        let d = self.spec.size_divisible;
        (v + d - 1) / d * d
    }

    /// Whole images (`[H, W, 3]` u8, any device; moved to the transform's) → normalised,
    /// resized with bilinear interpolation (align_corners=False), batched with zero padding.
    pub fn images(&self, images: &[Tensor]) -> ImageList {
        let resized = images.iter().map(|image| self.resize(image)).collect();
        self.batch(resized)
    }

    /// One image normalised and resized a channel at a time: bilinear interpolation never
    /// mixes channels, so the numbers are torchvision's, but only one channel of a large
    /// photo is ever in floats (an 8000 x 8000 image: 256 MB, not 2.3 GB of temporaries).
    fn resize(&self, hwc_u8: &Tensor) -> Tensor {
        let image = hwc_u8.to_device(self.device());
        let s = image.size();
        let (h, w) = self.spec.resized_size((s[0], s[1]));
        let channels: Vec<Tensor> = (0..3)
            .map(|c| {
                let mut x = image.select(2, c).to_kind(Kind::Float);
                x /= 255.0;
                x -= self.mean.get(c);
                x /= self.std.get(c);
                // Output size given, scales not: the kernel maps pixels by the size ratio,
                // which is what torchvision's recompute_scale_factor=True does.
                x.view([1, 1, s[0], s[1]])
                    .upsample_bilinear2d([h, w], false, None, None)
                    .view([h, w])
            })
            .collect();
        Tensor::stack(&channels, 0)
    }

    /// Pads normalised `[3, h, w]` images into one batch, top-left.
    pub fn batch(&self, images: Vec<Tensor>) -> ImageList {
        let sizes: Vec<(i64, i64)> = images
            .iter()
            .map(|t| {
                let s = t.size();
                (s[1], s[2])
            })
            .collect();
        let h = self.round_up(sizes.iter().map(|s| s.0).max().unwrap_or(1));
        let w = self.round_up(sizes.iter().map(|s| s.1).max().unwrap_or(1));
        let device = self.mean.device();
        let padded = Tensor::zeros([images.len() as i64, 3, h, w], (Kind::Float, device));
        for (i, (image, &(ih, iw))) in images.iter().zip(&sizes).enumerate() {
            padded
                .get(i as i64)
                .narrow(1, 0, ih)
                .narrow(2, 0, iw)
                .copy_(image);
        }
        ImageList {
            tensors: padded,
            image_sizes: sizes,
        }
    }

    /// A loader batch (`[N, H, W, 3]` u8 already resized and padded with 0 on the host) →
    /// normalised NCHW with the padding set back to 0 (normalising turned it into -mean/std).
    pub fn loader_batch(&self, pixels: &Tensor, image_sizes: &[(i64, i64)]) -> ImageList {
        let device = self.mean.device();
        let x = pixels
            .to_device(device)
            .permute([0, 3, 1, 2])
            .to_kind(Kind::Float)
            / 255.0;
        let x = (x - self.mean.unsqueeze(0)) / self.std.unsqueeze(0);
        let s = x.size();
        let (h, w) = (s[2], s[3]);
        let sizes = Tensor::from_slice(
            &image_sizes
                .iter()
                .flat_map(|&(ih, iw)| [ih, iw])
                .collect::<Vec<i64>>(),
        )
        .to_device(device)
        .view([-1, 2]);
        let rows = Tensor::arange(h, (Kind::Int64, device)).view([1, h, 1]);
        let cols = Tensor::arange(w, (Kind::Int64, device)).view([1, 1, w]);
        let inside = rows
            .lt_tensor(&sizes.select(1, 0).view([-1, 1, 1]))
            .logical_and(&cols.lt_tensor(&sizes.select(1, 1).view([-1, 1, 1])));
        ImageList {
            tensors: x * inside.unsqueeze(1).to_kind(Kind::Float),
            image_sizes: image_sizes.to_vec(),
        }
    }
}

/// Boxes `[N, 4]` found on an image of `resized` size, in the pixels of its `original` size
/// (torchvision's `resize_boxes`: single-precision ratios new / old per axis).
pub fn boxes_to_original(boxes: &Tensor, resized: (i64, i64), original: (i64, i64)) -> Tensor {
    let ratio_h = original.0 as f32 / resized.0 as f32;
    let ratio_w = original.1 as f32 / resized.1 as f32;
    let scale = Tensor::from_slice(&[ratio_w, ratio_h, ratio_w, ratio_h])
        .to_device(boxes.device())
        .to_kind(boxes.kind());
    boxes * scale
}
