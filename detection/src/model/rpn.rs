//! The region proposal network around its head: anchors, decoding, and torchvision's
//! proposal filtering (per-level top-k on the logits, sigmoid, clip, drop tiny boxes, NMS per
//! level, keep the best per image). Training (anchor targets and losses) reuses
//! [`RpnOutput`] as it stands.

use super::config::RpnConfig;
use super::heads::RpnHead;
use crate::ops::anchors::AnchorGenerator;
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
        }
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
}
