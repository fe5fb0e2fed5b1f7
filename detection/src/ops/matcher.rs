//! Matching predictions (anchors or proposals) to ground-truth boxes by IoU, as torchvision's
//! `Matcher`: each prediction takes its best ground truth when that IoU is at least `high`;
//! below `low` it is background ([`BELOW_LOW_THRESHOLD`]); in between it is ignored
//! ([`BETWEEN_THRESHOLDS`]). With `allow_low_quality_matches`, every prediction whose IoU with
//! some ground truth equals that ground truth's best IoU (all ties) keeps its best match even
//! below `high`.

use tch::{Kind, Tensor};

/// Assigned to predictions whose best IoU is below `low`.
pub const BELOW_LOW_THRESHOLD: i64 = -1;
/// Assigned to predictions whose best IoU is in `[low, high)`.
pub const BETWEEN_THRESHOLDS: i64 = -2;

#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub high: f64,
    pub low: f64,
    pub allow_low_quality_matches: bool,
}

impl Matcher {
    pub fn new(high: f64, low: f64, allow_low_quality_matches: bool) -> Self {
        assert!(
            low <= high,
            "the matcher's low threshold {low} is above its high threshold {high}"
        );
        Self {
            high,
            low,
            allow_low_quality_matches,
        }
    }

    /// For IoUs `[G, N]` (ground truth by prediction), the matched ground-truth index of each
    /// prediction `[N]` (i64), or one of the negative codes. With no ground truth (G = 0) every
    /// prediction is background. No host sync.
    pub fn assign(&self, iou: &Tensor) -> Tensor {
        let size = iou.size();
        let (g, n) = (size[0], size[1]);
        let device = iou.device();
        if g == 0 {
            return Tensor::full([n], BELOW_LOW_THRESHOLD, (Kind::Int64, device));
        }
        if n == 0 {
            return Tensor::zeros([0], (Kind::Int64, device));
        }
        let (best_iou, best_gt) = iou.max_dim(0, false);
        let below = best_iou.lt(self.low);
        let between = best_iou.ge(self.low).logical_and(&best_iou.lt(self.high));
        let code = |c: i64| Tensor::full([], c, (Kind::Int64, device));
        let mut matches = best_gt.where_self(&below.logical_not(), &code(BELOW_LOW_THRESHOLD));
        matches = matches.where_self(&between.logical_not(), &code(BETWEEN_THRESHOLDS));
        if self.allow_low_quality_matches {
            let (best_per_gt, _) = iou.max_dim(1, true);
            let is_best_for_some_gt = iou.eq_tensor(&best_per_gt).any_dim(0, false);
            matches = best_gt.where_self(&is_best_for_some_gt, &matches);
        }
        matches
    }
}
