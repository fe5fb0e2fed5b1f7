//! Anchor boxes: a set of reference boxes repeated at every position of a feature map.
//!
//! torchvision (`AnchorGenerator`): for ratio r and size s, `h = s * sqrt(r)`, `w = s / sqrt(r)`,
//! base anchor `round([-w, -h, w, h] / 2)`, shifted by `x * stride` (no half-stride offset),
//! stride `= image size // feature size` per axis.
//! GluonCV (`RPNAnchorGenerator`, as py-faster-rcnn): the reference window `(0, 0, 15, 15)` of
//! base 16, for each ratio `ws = round(sqrt(256 / r))`, `hs = round(ws * r)`, then for each
//! scale `s` a box of `ws * s` by `hs * s` around the window's centre 7.5 written in inclusive
//! pixels (`centre ± (w - 1) / 2`), shifted by `x * 16`; ratios outer, scales inner.
//! Both are ordered (y, x, anchor) per level.

use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, PartialEq)]
pub struct AnchorGenerator {
    /// Per level, the base anchors `(x1, y1, x2, y2)` centred on the origin of a cell.
    pub cell_anchors: Vec<Vec<[f64; 4]>>,
    /// Per level, a fixed stride `(y, x)`; `None` infers it from the image and feature sizes
    /// as torchvision does.
    pub strides: Vec<Option<(i64, i64)>>,
}

impl AnchorGenerator {
    /// torchvision's anchors for sizes `sizes[level]` and the same ratios on every level.
    pub fn torchvision(sizes: &[Vec<f64>], ratios: &[f64]) -> Self {
        let cell_anchors = sizes
            .iter()
            .map(|level_sizes| {
                // Ratios outer, sizes inner, as torchvision's `(w_ratios[:, None] * scales[None, :])`.
                let mut cells = Vec::new();
                for &r in ratios {
                    let (h_ratio, w_ratio) = ((r as f32).sqrt(), 1.0 / (r as f32).sqrt());
                    for &s in level_sizes {
                        // torchvision computes these in float32; rounding ties (x.5) depend on it.
                        let w = w_ratio * s as f32;
                        let h = h_ratio * s as f32;
                        cells.push([-w, -h, w, h].map(|v| (v / 2.0).round_ties_even() as f64));
                    }
                }
                cells
            })
            .collect();
        Self {
            cell_anchors,
            strides: vec![None; sizes.len()],
        }
    }

    /// `fasterrcnn_resnet50_fpn`'s: sizes 32, 64, 128, 256, 512 (one per level), ratios 0.5, 1, 2.
    pub fn torchvision_fpn() -> Self {
        let sizes: Vec<Vec<f64>> = [32.0, 64.0, 128.0, 256.0, 512.0]
            .iter()
            .map(|&s| vec![s])
            .collect();
        Self::torchvision(&sizes, &[0.5, 1.0, 2.0])
    }

    /// GluonCV's anchors of one level of `stride` from `base_size` windows.
    pub fn gluoncv(stride: i64, base_size: f64, scales: &[f64], ratios: &[f64]) -> Self {
        let centre = 0.5 * (base_size - 1.0);
        let mut cells = Vec::new();
        for &r in ratios {
            let ws = (base_size * base_size / r).sqrt().round_ties_even();
            let hs = (ws * r).round_ties_even();
            for &s in scales {
                let half_w = 0.5 * (ws * s - 1.0);
                let half_h = 0.5 * (hs * s - 1.0);
                cells.push([
                    centre - half_w,
                    centre - half_h,
                    centre + half_w,
                    centre + half_h,
                ]);
            }
        }
        Self {
            cell_anchors: vec![cells],
            strides: vec![Some((stride, stride))],
        }
    }

    /// GluonCV's C4 model: base 16, scales 2..32, ratios 0.5, 1, 2 on the stride-16 map.
    pub fn gluoncv_c4() -> Self {
        Self::gluoncv(16, 16.0, &[2.0, 4.0, 8.0, 16.0, 32.0], &[0.5, 1.0, 2.0])
    }

    /// Anchors per feature-map position (the first level's; all levels agree in both designs).
    pub fn num_anchors_per_location(&self) -> i64 {
        self.cell_anchors.first().map_or(0, |c| c.len() as i64)
    }

    /// Anchors `[H * W * A, 4]` (float32) of each level, ordered (y, x, anchor), for a batch
    /// padded to `image_size` `(h, w)` and feature maps of `feature_sizes` `(h, w)`.
    pub fn anchors(
        &self,
        image_size: (i64, i64),
        feature_sizes: &[(i64, i64)],
        device: Device,
    ) -> Vec<Tensor> {
        assert_eq!(
            feature_sizes.len(),
            self.cell_anchors.len(),
            "the anchor generator has {} levels but {} feature maps were given",
            self.cell_anchors.len(),
            feature_sizes.len()
        );
        feature_sizes
            .iter()
            .zip(&self.cell_anchors)
            .zip(&self.strides)
            .map(|((&(fh, fw), cells), stride)| {
                let (sy, sx) = stride.unwrap_or((image_size.0 / fh, image_size.1 / fw));
                let shift_x =
                    Tensor::arange(fw, (Kind::Int64, device)).to_kind(Kind::Float) * sx as f64;
                let shift_y =
                    Tensor::arange(fh, (Kind::Int64, device)).to_kind(Kind::Float) * sy as f64;
                let grid = Tensor::meshgrid_indexing(&[&shift_y, &shift_x], "ij");
                let (ys, xs) = (grid[0].reshape([-1]), grid[1].reshape([-1]));
                let shifts = Tensor::stack(&[&xs, &ys, &xs, &ys], 1);
                let flat: Vec<f32> = cells.iter().flatten().map(|&v| v as f32).collect();
                let base = Tensor::from_slice(&flat).view([-1, 4]).to_device(device);
                (shifts.view([-1, 1, 4]) + base.view([1, -1, 4])).reshape([-1, 4])
            })
            .collect()
    }
}

/// Where the anchors of a padded batch stand for one of its images: `within` `[N]` (bool) is
/// true for anchors at the feature positions the image alone would have (per level, `ceil(h *
/// fh / H)` rows and `ceil(w * fw / W)` columns of an `fh x fw` map over the padded `H x W`),
/// and `position` `[N]` (i64) numbers those anchors in the (level, y, x, anchor) order of the
/// image's own maps, so that anything keyed by it (sampling draws) is the same whatever the
/// batch around the image. Anchors outside have `position` -1.
#[derive(Debug)]
pub struct ImageGrid {
    pub within: Tensor,
    pub position: Tensor,
}

impl AnchorGenerator {
    /// The [`ImageGrid`] of an image of `image_size` `(h, w)` in a batch padded to
    /// `padded_size` with feature maps of `feature_sizes`, in the order of [`Self::anchors`].
    pub fn image_grid(
        &self,
        padded_size: (i64, i64),
        feature_sizes: &[(i64, i64)],
        image_size: (i64, i64),
        device: Device,
    ) -> ImageGrid {
        let ceil_div = |a: i64, b: i64| (a + b - 1) / b;
        let mut within = Vec::new();
        let mut position = Vec::new();
        let mut offset = 0i64;
        for (&(fh, fw), cells) in feature_sizes.iter().zip(&self.cell_anchors) {
            let a = cells.len() as i64;
            let own_h = ceil_div(image_size.0 * fh, padded_size.0).min(fh);
            let own_w = ceil_div(image_size.1 * fw, padded_size.1).min(fw);
            let arange = |n: i64| Tensor::arange(n, (Kind::Int64, device));
            let y = arange(fh).view([-1, 1, 1]).expand([fh, fw, a], false);
            let x = arange(fw).view([1, -1, 1]).expand([fh, fw, a], false);
            let k = arange(a).view([1, 1, -1]).expand([fh, fw, a], false);
            let inside = y.lt(own_h).logical_and(&x.lt(own_w));
            let own = (y * own_w + x) * a + k + offset;
            position.push(own.masked_fill(&inside.logical_not(), -1).reshape([-1]));
            within.push(inside.reshape([-1]));
            offset += own_h * own_w * a;
        }
        ImageGrid {
            within: Tensor::cat(&within, 0),
            position: Tensor::cat(&position, 0),
        }
    }
}

/// GluonCV's border rule for RPN training: true for anchors lying wholly inside an image of
/// `(height, width)` (`x1 >= 0`, `y1 >= 0`, `x2 < width`, `y2 < height`); the others are
/// ignored, neither positive nor negative.
pub fn inside_image(anchors: &Tensor, (height, width): (i64, i64)) -> Tensor {
    let [x1, y1, x2, y2] = super::boxes::columns(anchors);
    x1.ge(0.0)
        .logical_and(&y1.ge(0.0))
        .logical_and(&x2.lt(width as f64))
        .logical_and(&y2.lt(height as f64))
}
