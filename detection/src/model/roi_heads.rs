//! From proposals to detections: pool each proposal's features (multi-level 7x7 RoIAlign for
//! FPN, 14x14 on the stride-16 map for C4), run the box head and predictor, then torchvision's
//! post-processing (softmax, decode, clip, drop background, score threshold, drop tiny boxes,
//! per-class NMS, keep the best per image, or all of them as GluonCV).

use super::config::BoxHeadConfig;
use crate::ops::box_coder::BoxCoder;
use crate::ops::boxes::{clip_boxes, remove_small_boxes};
use crate::ops::nms::batched_nms;
use crate::ops::poolers::MultiScaleRoIAlign;
use tch::{Device, Kind, Tensor};

/// Detections of one image: boxes `[D, 4]` (x1, y1, x2, y2), scores `[D]`, labels `[D]`
/// (1-based class index, 0 being the background), best first.
#[derive(Debug)]
pub struct Detections {
    pub boxes: Tensor,
    pub scores: Tensor,
    pub labels: Tensor,
}

impl Detections {
    pub fn len(&self) -> i64 {
        self.scores.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn to_device(&self, device: Device) -> Self {
        Detections {
            boxes: self.boxes.to_device(device),
            scores: self.scores.to_device(device),
            labels: self.labels.to_device(device),
        }
    }
}

/// How RoIs are pooled.
pub enum RoiPooler {
    /// FPN: the level picked by each RoI's size, 7x7, sampling ratio 2.
    MultiScale(MultiScaleRoIAlign),
    /// C4: one map at 1/16, 14x14, sampling ratio 2.
    Single(MultiScaleRoIAlign),
}

impl RoiPooler {
    /// `features` as the backbone returns them (FPN's extra P6 is not pooled from);
    /// `proposals` per image; `image_sizes` inside the padding.
    pub fn pool(
        &self,
        features: &[Tensor],
        proposals: &[Tensor],
        image_sizes: &[(i64, i64)],
    ) -> Tensor {
        // torchvision infers each level's scale against the largest image, not the padding.
        let largest = (
            image_sizes.iter().map(|s| s.0).max().unwrap_or(1),
            image_sizes.iter().map(|s| s.1).max().unwrap_or(1),
        );
        match self {
            RoiPooler::MultiScale(pooler) => pooler.forward(&features[..4], proposals, largest),
            RoiPooler::Single(pooler) => pooler.forward(&features[..1], proposals, largest),
        }
    }
}

/// torchvision's `postprocess_detections` for a batch: `logits` `[R, K+1]`, `deltas`
/// `[R, 4(K+1)]` (FPN: a box per class, background included) or `[R, 4K]` (C4: object
/// classes only), `proposals` per image (their rows in order make up R).
pub fn postprocess(
    config: &BoxHeadConfig,
    coder: &BoxCoder,
    logits: &Tensor,
    deltas: &Tensor,
    proposals: &[Tensor],
    image_sizes: &[(i64, i64)],
) -> Vec<Detections> {
    let classes = logits.size()[1];
    let all_proposals = Tensor::cat(proposals, 0);
    let decoded = coder.decode(deltas, &all_proposals);
    // Object classes' boxes only: [R, K, 4].
    let object_boxes = if decoded.size()[1] == classes {
        decoded.narrow(1, 1, classes - 1)
    } else {
        decoded
    };
    let object_scores = logits.softmax(-1, Kind::Float).narrow(1, 1, classes - 1);
    let device = logits.device();
    let mut start = 0;
    proposals
        .iter()
        .zip(image_sizes)
        .map(|(p, &size)| {
            let r = p.size()[0];
            let boxes = object_boxes.narrow(0, start, r);
            let scores = object_scores.narrow(0, start, r);
            start += r;
            let boxes = clip_boxes(&boxes.reshape([-1, 4]), size);
            let scores = scores.reshape([-1]);
            let labels = Tensor::arange_start(1, classes, (Kind::Int64, device))
                .view([1, -1])
                .expand([r, classes - 1], false)
                .reshape([-1]);
            let keep = scores.gt(config.score_thresh).nonzero().view([-1]);
            let (boxes, scores, labels) = (
                boxes.index_select(0, &keep),
                scores.index_select(0, &keep),
                labels.index_select(0, &keep),
            );
            let keep = remove_small_boxes(&boxes, config.min_size);
            let (boxes, scores, labels) = (
                boxes.index_select(0, &keep),
                scores.index_select(0, &keep),
                labels.index_select(0, &keep),
            );
            let keep = batched_nms(&boxes, &scores, &labels, config.nms_thresh);
            let found = keep.size()[0];
            let keep = keep.narrow(
                0,
                0,
                config
                    .detections_per_img
                    .map_or(found, |cap| cap.min(found)),
            );
            Detections {
                boxes: boxes.index_select(0, &keep),
                scores: scores.index_select(0, &keep),
                labels: labels.index_select(0, &keep),
            }
        })
        .collect()
}
