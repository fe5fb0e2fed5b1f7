//! The region proposal network around its head: anchors, decoding, and the proposal filtering,
//! torchvision's (per-level top-k on the logits, sigmoid, clip, drop tiny boxes, NMS per
//! level, keep the best per image) or GluonCV's (the image's own anchors only, every box
//! decoded and clipped and the tiny ones dropped before the top-k). Training (anchor targets
//! and losses) reuses [`RpnOutput`] as it stands.

use super::config::RpnConfig;
use super::heads::RpnHead;
use crate::ops::anchors::{AnchorGenerator, ImageGrid};
use crate::ops::box_coder::BoxCoder;
use crate::ops::boxes::{clip_boxes, remove_small_boxes};
use crate::ops::nms::batched_nms;
use tch::{Kind, Tensor};

/// The head's outputs for a batch, flattened per level in torchvision's (y, x, anchor) order.
#[derive(Debug)]
pub struct RpnOutput {
    /// Per level `[N, H*W*A]` objectness logits.
    pub objectness: Vec<Tensor>,
    /// Per level `[N, H*W*A, 4]` box deltas (relative to the anchors).
    pub deltas: Vec<Tensor>,
    /// Per level `[H*W*A, 4]` anchors, the same for every image of the padded batch.
    pub anchors: Vec<Tensor>,
    /// Per level `(H, W)` of the feature map, and the padded batch's `(height, width)`.
    pub feature_sizes: Vec<(i64, i64)>,
    pub padded_size: (i64, i64),
}

/// Proposals of one image, best first within each level's NMS.
#[derive(Debug)]
pub struct Proposals {
    pub boxes: Tensor,
    /// Sigmoid of the objectness.
    pub scores: Tensor,
}

pub struct Rpn {
    pub anchor_generator: AnchorGenerator,
    pub box_coder: BoxCoder,
    pub config: RpnConfig,
}

/// `[N, A*C, H, W]` → `[N, H*W*A, C]` (torchvision's `permute_and_flatten`).
fn flatten_level(t: &Tensor, c: i64) -> Tensor {
    let s = t.size();
    let (n, h, w) = (s[0], s[2], s[3]);
    t.view([n, -1, c, h, w])
        .permute([0, 3, 4, 1, 2])
        .reshape([n, -1, c])
}

impl Rpn {
    /// Runs the head on every level and lays its outputs out with the anchors.
    pub fn head_outputs(
        &self,
        head: &RpnHead,
        features: &[Tensor],
        padded_size: (i64, i64),
    ) -> RpnOutput {
        let outputs = head.forward(features);
        let sizes: Vec<(i64, i64)> = features
            .iter()
            .map(|f| {
                let s = f.size();
                (s[2], s[3])
            })
            .collect();
        let anchors = self
            .anchor_generator
            .anchors(padded_size, &sizes, features[0].device());
        let (objectness, deltas) = outputs
            .iter()
            .map(|(logits, deltas)| {
                let n = logits.size()[0];
                (
                    flatten_level(logits, 1).reshape([n, -1]),
                    flatten_level(deltas, 4),
                )
            })
            .unzip();
        RpnOutput {
            objectness,
            deltas,
            anchors,
            feature_sizes: sizes,
            padded_size,
        }
    }

    /// Which of the batch's anchors are an image's own (see [`ImageGrid`]).
    pub fn image_grid(&self, out: &RpnOutput, image_size: (i64, i64)) -> ImageGrid {
        self.anchor_generator.image_grid(
            out.padded_size,
            &out.feature_sizes,
            image_size,
            out.anchors[0].device(),
        )
    }

    /// Proposals per image (`image_sizes` are the images inside the padding, as resized).
    pub fn proposals(
        &self,
        out: &RpnOutput,
        image_sizes: &[(i64, i64)],
        train: bool,
    ) -> Vec<Proposals> {
        let (pre_nms, post_nms) = if train {
            (
                self.config.pre_nms_top_n_train,
                self.config.post_nms_top_n_train,
            )
        } else {
            (
                self.config.pre_nms_top_n_test,
                self.config.post_nms_top_n_test,
            )
        };
        if self.config.min_size_before_top_n || self.config.anchors_within_image {
            return image_sizes
                .iter()
                .enumerate()
                .map(|(i, &size)| self.image_proposals(out, i as i64, size, pre_nms, post_nms))
                .collect();
        }
        let device = out.anchors[0].device();
        // Per level: the top-k anchors by logit (gradients never flow into proposals).
        let mut logits = Vec::new();
        let mut boxes = Vec::new();
        let mut levels = Vec::new();
        for (level, ((objectness, deltas), anchors)) in out
            .objectness
            .iter()
            .zip(&out.deltas)
            .zip(&out.anchors)
            .enumerate()
        {
            let objectness = objectness.detach();
            let (n, count) = (objectness.size()[0], objectness.size()[1]);
            let k = pre_nms.min(count);
            let (top, index) = objectness.topk(k, 1, true, true);
            let picked_deltas =
                deltas
                    .detach()
                    .gather(1, &index.unsqueeze(2).expand([n, k, 4], false), false);
            let picked_anchors = anchors.index_select(0, &index.reshape([-1]));
            let decoded = self
                .box_coder
                .decode(&picked_deltas.reshape([-1, 4]), &picked_anchors)
                .reshape([n, k, 4]);
            logits.push(top);
            boxes.push(decoded);
            levels.push(Tensor::full([n, k], level as i64, (Kind::Int64, device)));
        }
        let logits = Tensor::cat(&logits, 1);
        let boxes = Tensor::cat(&boxes, 1);
        let levels = Tensor::cat(&levels, 1);
        let probabilities = logits.sigmoid();
        image_sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let i = i as i64;
                let b = clip_boxes(&boxes.get(i), size);
                let keep = remove_small_boxes(&b, self.config.min_size);
                let b = b.index_select(0, &keep);
                let s = probabilities.get(i).index_select(0, &keep);
                let l = levels.get(i).index_select(0, &keep);
                let keep = batched_nms(&b, &s, &l, self.config.nms_thresh);
                let keep = keep.narrow(0, 0, post_nms.min(keep.size()[0]));
                Proposals {
                    boxes: b.index_select(0, &keep),
                    scores: s.index_select(0, &keep),
                }
            })
            .collect()
    }

    /// One image's proposals with GluonCV's rules where the config asks for them: only the
    /// image's own anchors take part (`anchors_within_image`), and boxes under `min_size`
    /// are dropped before the per-level top-k (`min_size_before_top_n`) rather than after.
    fn image_proposals(
        &self,
        out: &RpnOutput,
        i: i64,
        size: (i64, i64),
        pre_nms: i64,
        post_nms: i64,
    ) -> Proposals {
        let device = out.anchors[0].device();
        let within = self
            .config
            .anchors_within_image
            .then(|| self.image_grid(out, size).within);
        let large_enough = |b: &Tensor| {
            let wide = b.select(1, 2) - b.select(1, 0);
            let tall = b.select(1, 3) - b.select(1, 1);
            wide.ge(self.config.min_size)
                .logical_and(&tall.ge(self.config.min_size))
        };
        let mut logits = Vec::new();
        let mut boxes = Vec::new();
        let mut valid = Vec::new();
        let mut levels = Vec::new();
        let mut start = 0;
        for (level, ((objectness, deltas), anchors)) in out
            .objectness
            .iter()
            .zip(&out.deltas)
            .zip(&out.anchors)
            .enumerate()
        {
            let objectness = objectness.get(i).detach();
            let deltas = deltas.get(i).detach();
            let count = objectness.size()[0];
            let mut ok = match &within {
                Some(w) => w.narrow(0, start, count),
                None => Tensor::ones([count], (Kind::Bool, device)),
            };
            start += count;
            let decode = |d: &Tensor, a: &Tensor| {
                clip_boxes(&self.box_coder.decode(d, a).reshape([-1, 4]), size)
            };
            // GluonCV decodes every anchor and scores the small boxes -1 before its top-k.
            let all_boxes = self.config.min_size_before_top_n.then(|| {
                let b = decode(&deltas, anchors);
                ok = ok.logical_and(&large_enough(&b));
                b
            });
            let k = pre_nms.min(count);
            let masked = objectness.masked_fill(&ok.logical_not(), f64::NEG_INFINITY);
            let (top, index) = masked.topk(k, 0, true, true);
            let picked = match all_boxes {
                Some(b) => b.index_select(0, &index),
                None => decode(
                    &deltas.index_select(0, &index),
                    &anchors.index_select(0, &index),
                ),
            };
            let mut picked_ok = ok.index_select(0, &index);
            if !self.config.min_size_before_top_n {
                picked_ok = picked_ok.logical_and(&large_enough(&picked));
            }
            logits.push(top);
            boxes.push(picked);
            valid.push(picked_ok);
            levels.push(Tensor::full([k], level as i64, (Kind::Int64, device)));
        }
        let keep = Tensor::cat(&valid, 0).nonzero().view([-1]);
        let b = Tensor::cat(&boxes, 0).index_select(0, &keep);
        let s = Tensor::cat(&logits, 0).index_select(0, &keep).sigmoid();
        let l = Tensor::cat(&levels, 0).index_select(0, &keep);
        let keep = batched_nms(&b, &s, &l, self.config.nms_thresh);
        let keep = keep.narrow(0, 0, post_nms.min(keep.size()[0]));
        Proposals {
            boxes: b.index_select(0, &keep),
            scores: s.index_select(0, &keep),
        }
    }
}
