//! Box regression targets: the offsets `(dx, dy, dw, dh)` of a box relative to a reference
//! box (an anchor or a proposal), scaled by per-coordinate weights.
//!
//! torchvision: `dx = wx * (gx - ax) / aw`, `dw = ww * ln(gw / aw)`, centres `x1 + w / 2`,
//! widths `x2 - x1`; on decoding `dw / ww` is clamped to `ln(1000 / 16)` *before* `exp`.
//! GluonCV's C4 model (NormalizedBoxCenterEncoder/Decoder) uses the same centres and widths
//! (no "+1") and divides by stds `(0.1, 0.1, 0.2, 0.2)`, i.e. weights `(10, 10, 5, 5)`; its
//! optional clip bounds the *scale* `exp(dw)` after `exp` (4.14 in its COCO models, none in
//! its VOC model). [`DeltaClip`] says which rule a coder follows.

use tch::Tensor;

use super::boxes::columns;

/// Where the decoder bounds the width/height regression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeltaClip {
    /// torchvision: `exp(min(dw, clip))`.
    BeforeExp,
    /// GluonCV: `min(exp(dw), clip)`.
    AfterExp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BoxCoder {
    /// `(wx, wy, ww, wh)`: the deltas are multiplied by these on encoding.
    pub weights: [f64; 4],
    /// The bound of [`DeltaClip`]; `f64::INFINITY` for none.
    pub bbox_xform_clip: f64,
    pub clip: DeltaClip,
}

impl BoxCoder {
    /// torchvision's coder: clamp `ln(1000 / 16)` before `exp`. RPN weights are `(1, 1, 1, 1)`,
    /// the box head's `(10, 10, 5, 5)`.
    pub fn new(weights: [f64; 4]) -> Self {
        Self {
            weights,
            bbox_xform_clip: (1000.0f64 / 16.0).ln(),
            clip: DeltaClip::BeforeExp,
        }
    }

    /// GluonCV's coder from its stds (weights are their inverses) and its optional scale clip.
    pub fn gluoncv(stds: [f64; 4], scale_clip: Option<f64>) -> Self {
        Self {
            weights: stds.map(|s| 1.0 / s),
            bbox_xform_clip: scale_clip.unwrap_or(f64::INFINITY),
            clip: DeltaClip::AfterExp,
        }
    }

    /// Targets `[N, 4]` that move each of `proposals` `[N, 4]` onto the matched ground-truth
    /// box in the same row of `matched_gt` `[N, 4]`.
    pub fn encode(&self, matched_gt: &Tensor, proposals: &Tensor) -> Tensor {
        let [wx, wy, ww, wh] = self.weights;
        let (px, py, pw, ph) = centres(proposals);
        let (gx, gy, gw, gh) = centres(&matched_gt.to_kind(proposals.kind()));
        let dx = (gx - &px) / &pw * wx;
        let dy = (gy - &py) / &ph * wy;
        let dw = (gw / pw).log() * ww;
        let dh = (gh / ph).log() * wh;
        Tensor::stack(&[dx, dy, dw, dh], 1)
    }

    /// Boxes `[N, k, 4]` from deltas `[N, 4k]` (k classes, or 1) applied to `boxes` `[N, 4]`.
    pub fn decode(&self, deltas: &Tensor, boxes: &Tensor) -> Tensor {
        let [wx, wy, ww, wh] = self.weights;
        let size = deltas.size();
        // Sizes spelled out: with no rows, `[0, -1, 4]` would be ambiguous.
        let codes = deltas.reshape([size[0], size[1] / 4, 4]);
        let (cx, cy, w, h) = centres(&boxes.to_kind(deltas.kind()));
        let (cx, cy, w, h) = (
            cx.unsqueeze(1),
            cy.unsqueeze(1),
            w.unsqueeze(1),
            h.unsqueeze(1),
        );
        let dx = codes.select(2, 0) / wx;
        let dy = codes.select(2, 1) / wy;
        let dw = codes.select(2, 2) / ww;
        let dh = codes.select(2, 3) / wh;
        let (scale_w, scale_h) = match self.clip {
            DeltaClip::BeforeExp => (
                dw.clamp_max(self.bbox_xform_clip).exp(),
                dh.clamp_max(self.bbox_xform_clip).exp(),
            ),
            DeltaClip::AfterExp => (
                dw.exp().clamp_max(self.bbox_xform_clip),
                dh.exp().clamp_max(self.bbox_xform_clip),
            ),
        };
        let pred_cx = dx * &w + cx;
        let pred_cy = dy * &h + cy;
        let half_w = scale_w * w * 0.5;
        let half_h = scale_h * h * 0.5;
        Tensor::stack(
            &[
                &pred_cx - &half_w,
                &pred_cy - &half_h,
                pred_cx + half_w,
                pred_cy + half_h,
            ],
            2,
        )
    }
}

/// Centres and sizes `(cx, cy, w, h)`, each `[N]`.
fn centres(boxes: &Tensor) -> (Tensor, Tensor, Tensor, Tensor) {
    let [x1, y1, x2, y2] = columns(boxes);
    let w = &x2 - &x1;
    let h = &y2 - &y1;
    let cx = x1 + &w * 0.5;
    let cy = y1 + &h * 0.5;
    (cx, cy, w, h)
}
