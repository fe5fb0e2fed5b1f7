//! Matching predictions (anchors or proposals) to ground-truth boxes by IoU, as torchvision's
//! `Matcher`: each prediction takes its best ground truth when that IoU is at least `high`;
//! below `low` it is background ([`BELOW_LOW_THRESHOLD`]); in between it is ignored
//! ([`BETWEEN_THRESHOLDS`]). With `allow_low_quality_matches`, every prediction whose IoU with
//! some ground truth equals that ground truth's best IoU (all ties) keeps its best match even
//! below `high`. GluonCV's RPN rule ([`Matcher::gluoncv_rpn`]) differs in that rule: a
//! prediction is a box's best when its IoU is within float32's epsilon of that box's best
//! (`iou + eps > best`), and a best match whose IoU is below `low` stays background.

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
    /// GluonCV's form of the low-quality rule (see the module's comment).
    pub gluoncv_low_quality: bool,
}

/// numpy's `np.spacing(np.float32(1.0))`, GluonCV's tolerance for a box's best anchor.
const F32_EPS: f64 = f32::EPSILON as f64;

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
            gluoncv_low_quality: false,
        }
    }

    /// GluonCV's `RPNTargetSampler`: positive at `high`, background below `low`, and each
    /// box's best predictions positive unless below `low`.
    pub fn gluoncv_rpn(high: f64, low: f64) -> Self {
        Self {
            gluoncv_low_quality: true,
            ..Self::new(high, low, true)
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
            if self.gluoncv_low_quality {
                let is_best_for_some_gt = (iou + F32_EPS).gt_tensor(&best_per_gt).any_dim(0, false);
                let restored = is_best_for_some_gt.logical_and(&below.logical_not());
                matches = best_gt.where_self(&restored, &matches);
            } else {
                let is_best_for_some_gt = iou.eq_tensor(&best_per_gt).any_dim(0, false);
                matches = best_gt.where_self(&is_best_for_some_gt, &matches);
            }
        }
        matches
    }
}
