//! Training targets and losses of the two stages, per image, as torchvision's
//! `RegionProposalNetwork` and `RoIHeads` compute them (GluonCV's C4 differences are settings:
//! anchors crossing the border ignored before matching, its rule for each box's best anchor,
//! only the image's own anchors (none from the batch's padding), 128 RoIs per image,
//! class-specific boxes without a background slot, smooth L1 with beta 1 in the box head).
//!
//! Everything stays on the device: sampled sets are masks (no index compaction), so a step
//! needs no host sync here. An image without objects trains as a negative: every anchor and
//! proposal is background, and the box losses get no positives from it.

use crate::ops::anchors::ImageGrid;
use crate::ops::box_coder::BoxCoder;
use crate::ops::boxes::box_iou;
use crate::ops::matcher::{Matcher, BETWEEN_THRESHOLDS};
use crate::ops::sampler::{keys_at, random_keys, BalancedSampler};
use tch::{Kind, Tensor};

/// Label of an anchor or proposal that takes no part in the losses.
pub const IGNORE: i64 = -1;

/// One image's ground truth on the device: boxes `[G, 4]` (float, resized-image pixels) and
/// labels `[G]` (i64, 1..=K; 0 is background).
pub struct GroundTruth {
    pub boxes: Tensor,
    pub labels: Tensor,
}

impl GroundTruth {
    pub fn is_empty(&self) -> bool {
        self.boxes.size()[0] == 0
    }
}

/// What decides the RPN's targets.
#[derive(Debug, Clone)]
pub struct RpnTargeting {
    pub matcher: Matcher,
    pub sampler: BalancedSampler,
    pub coder: BoxCoder,
    /// GluonCV ignores anchors that cross the image border, their IoU set to -1 before
    /// matching (so each box's best anchor is its best inside one); torchvision keeps them.
    pub ignore_crossing_anchors: bool,
    /// Smooth L1 beta of the box loss (1/9 in both designs).
    pub box_beta: f64,
}

/// Per-anchor labels (1 object, 0 background, [`IGNORE`]) and regression targets `[N, 4]`
/// of one image. `inside` says which anchors lie inside the image (for the border rule).
pub fn rpn_labels(
    targeting: &RpnTargeting,
    anchors: &Tensor,
    truth: &GroundTruth,
    inside: Option<&Tensor>,
) -> (Tensor, Tensor) {
    let n = anchors.size()[0];
    let device = anchors.device();
    let crossing = match inside {
        Some(inside) if targeting.ignore_crossing_anchors => Some(inside.logical_not()),
        _ => None,
    };
    let (labels, targets) = if truth.is_empty() {
        (
            Tensor::zeros([n], (Kind::Int64, device)),
            Tensor::zeros([n, 4], (anchors.kind(), device)),
        )
    } else {
        let mut iou = box_iou(&truth.boxes, anchors);
        if let Some(crossing) = &crossing {
            iou = iou.masked_fill(&crossing.unsqueeze(0), -1.0);
        }
        let matched = targeting.matcher.assign(&iou);
        let labels = matched
            .ge(0)
            .to_kind(Kind::Int64)
            .masked_fill(&matched.eq(BETWEEN_THRESHOLDS), IGNORE);
        let gt = truth.boxes.index_select(0, &matched.clamp_min(0));
        (labels, targeting.coder.encode(&gt, anchors))
    };
    let labels = match &crossing {
        Some(crossing) => labels.masked_fill(crossing, IGNORE),
        None => labels,
    };
    (labels, targets)
}

/// One image's RPN targets over the batch's anchors and the anchors its sample took.
pub struct RpnImageTargets {
    /// `[N]` i64: 1 object, 0 background, [`IGNORE`].
    pub labels: Tensor,
    /// `[N, 4]`.
    pub targets: Tensor,
    /// `[N]` bool: the sampled positives, and every sampled anchor.
    pub positive: Tensor,
    pub sampled: Tensor,
}

/// [`rpn_labels`] and the sample of one image. With `grid` (the image's own anchors), the
/// others are ignored and the draws are keyed by the anchors' numbers in the image's own
/// maps, so an image gets the same targets and the same sample from `seed` whatever batch
/// (and padding) it is in; without, by their index in the batch's anchors.
pub fn rpn_image_targets(
    targeting: &RpnTargeting,
    anchors: &Tensor,
    truth: &GroundTruth,
    inside: Option<&Tensor>,
    grid: Option<&ImageGrid>,
    seed: u64,
) -> RpnImageTargets {
    let (labels, targets) = rpn_labels(targeting, anchors, truth, inside);
    let (labels, counters) = match grid {
        Some(grid) => (
            labels.masked_fill(&grid.within.logical_not(), IGNORE),
            grid.position.clamp_min(0),
        ),
        None => (
            labels,
            Tensor::arange(anchors.size()[0], (Kind::Int64, anchors.device())),
        ),
    };
    let (positive, negative) = targeting
        .sampler
        .sample_masks(&labels, &keys_at(&counters, seed));
    RpnImageTargets {
        sampled: positive.logical_or(&negative),
        positive,
        labels,
        targets,
    }
}

/// The RPN's two losses over a batch: objectness `[B, N]` logits and deltas `[B, N, 4]`
/// against each image's targets and sample. Binary cross-entropy averaged over the sampled
/// anchors of the whole batch; smooth L1 over the sampled positives divided by the same
/// count (torchvision's normalisation).
pub fn rpn_losses(
    targeting: &RpnTargeting,
    objectness: &Tensor,
    deltas: &Tensor,
    images: &[RpnImageTargets],
) -> (Tensor, Tensor) {
    let stack = |f: fn(&RpnImageTargets) -> &Tensor| {
        Tensor::stack(&images.iter().map(f).collect::<Vec<_>>(), 0)
    };
    let positive = stack(|t| &t.positive).to_kind(Kind::Float);
    let sampled = stack(|t| &t.sampled).to_kind(Kind::Float);
    let labels = stack(|t| &t.labels).clamp_min(0).to_kind(Kind::Float);
    let targets = stack(|t| &t.targets);
    let count = sampled.sum(Kind::Float).clamp_min(1.0);
    let objectness = objectness.to_kind(Kind::Float);
    let bce = objectness.binary_cross_entropy_with_logits::<Tensor>(
        &labels,
        None,
        None,
        tch::Reduction::None,
    );
    let loss_objectness = (bce * &sampled).sum(Kind::Float) / &count;
    let box_error = smooth_l1_elements(&deltas.to_kind(Kind::Float), &targets, targeting.box_beta)
        .sum_dim_intlist([-1i64].as_slice(), false, Kind::Float);
    let loss_box = (box_error * positive).sum(Kind::Float) / count;
    (loss_objectness, loss_box)
}

/// What decides the box head's targets.
#[derive(Debug, Clone)]
pub struct RoiTargeting {
    pub matcher: Matcher,
    pub sampler: BalancedSampler,
    pub coder: BoxCoder,
    /// Smooth L1 beta of the box loss (torchvision 1/9, GluonCV 1).
    pub box_beta: f64,
}

/// The RoIs of one image chosen for the box head's losses: every proposal plus the
/// ground-truth boxes (torchvision and GluonCV both add them), with their class (0
/// background), regression target, and whether the sample took them.
pub struct SampledRois {
    /// `[R, 4]`, proposals then ground truth.
    pub boxes: Tensor,
    /// `[R]` i64: 0 background, 1..=K the matched object's class.
    pub labels: Tensor,
    /// `[R, 4]`.
    pub targets: Tensor,
    /// `[R]` bool: taken by the sample.
    pub sampled: Tensor,
}

/// Matches `proposals` `[P, 4]` (no gradient) of one image to its ground truth and samples
/// them. The box head then runs on `boxes.index(sampled)`: see [`SampledRois::compact`].
pub fn roi_labels(
    targeting: &RoiTargeting,
    proposals: &Tensor,
    truth: &GroundTruth,
    seed: u64,
) -> SampledRois {
    let boxes = Tensor::cat(
        &[proposals.detach(), truth.boxes.to_kind(proposals.kind())],
        0,
    );
    let n = boxes.size()[0];
    let device = boxes.device();
    let (labels, targets) = if truth.is_empty() {
        (
            Tensor::zeros([n], (Kind::Int64, device)),
            Tensor::zeros([n, 4], (boxes.kind(), device)),
        )
    } else {
        let matched = targeting.matcher.assign(&box_iou(&truth.boxes, &boxes));
        let classes = truth
            .labels
            .index_select(0, &matched.clamp_min(0))
            .masked_fill(&matched.lt(0), 0)
            .masked_fill(&matched.eq(BETWEEN_THRESHOLDS), IGNORE);
        let gt = truth.boxes.index_select(0, &matched.clamp_min(0));
        (classes, targeting.coder.encode(&gt, &boxes))
    };
    // The sampler's labels: 1 object, 0 background, anything else ignored.
    let roles = labels.clamp_max(1);
    let keys = random_keys(n, seed, device);
    let (pos, neg) = targeting.sampler.sample_masks(&roles, &keys);
    SampledRois {
        boxes,
        labels,
        targets,
        sampled: pos.logical_or(&neg),
    }
}

impl SampledRois {
    /// The sampled RoIs only (boxes, labels, targets). Compacting costs one host sync per
    /// image (the sample's size); the RoI pooler needs the boxes as a dense list.
    pub fn compact(&self) -> (Tensor, Tensor, Tensor) {
        let keep = self.sampled.nonzero().view([-1]);
        (
            self.boxes.index_select(0, &keep),
            self.labels.index_select(0, &keep),
            self.targets.index_select(0, &keep),
        )
    }
}

/// How the box predictor lays out its class-specific deltas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxLayout {
    /// torchvision: `4 (K + 1)`, the background's slot unused.
    WithBackground,
    /// GluonCV: `4 K`, class c at `c - 1`.
    ObjectsOnly,
}

/// Cross-entropy over the sampled RoIs of the batch and smooth L1 of the matched class's
/// deltas over its positives, divided by the number of sampled RoIs (torchvision; GluonCV
/// normalises the same way per batch).
pub fn box_head_losses(
    class_logits: &Tensor,
    box_deltas: &Tensor,
    labels: &Tensor,
    targets: &Tensor,
    layout: BoxLayout,
    beta: f64,
) -> (Tensor, Tensor) {
    let r = labels.size()[0];
    let class_logits = class_logits.to_kind(Kind::Float);
    let loss_classifier =
        class_logits.cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Mean, IGNORE, 0.0);
    let per_class = box_deltas.to_kind(Kind::Float).reshape([r, -1, 4]);
    let slot = match layout {
        BoxLayout::WithBackground => labels.clamp_min(0),
        BoxLayout::ObjectsOnly => (labels - 1).clamp_min(0),
    };
    let chosen = per_class
        .gather(1, &slot.view([r, 1, 1]).expand([r, 1, 4], false), false)
        .squeeze_dim(1);
    let positive = labels.gt(0).to_kind(Kind::Float);
    let error = smooth_l1_elements(&chosen, &targets.to_kind(Kind::Float), beta).sum_dim_intlist(
        [-1i64].as_slice(),
        false,
        Kind::Float,
    );
    let loss_box = (error * positive).sum(Kind::Float) / (r.max(1) as f64);
    (loss_classifier, loss_box)
}

/// Smooth L1 of each element (no reduction), torch's definition.
fn smooth_l1_elements(input: &Tensor, target: &Tensor, beta: f64) -> Tensor {
    input.smooth_l1_loss(target, tch::Reduction::None, beta)
}

/// A different, reproducible seed for each image of a step.
pub fn image_seed(step_seed: u64, image: usize) -> u64 {
    crate::ops::sampler::splitmix64(step_seed ^ (image as u64).wrapping_mul(0x9E37_79B9))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(rows: &[[f32; 4]]) -> Tensor {
        Tensor::from_slice(rows.concat().as_slice()).view([-1, 4])
    }

    fn rpn() -> RpnTargeting {
        RpnTargeting {
            matcher: Matcher::new(0.7, 0.3, true),
            sampler: BalancedSampler::new(256, 0.5),
            coder: BoxCoder::new([1.0, 1.0, 1.0, 1.0]),
            ignore_crossing_anchors: true,
            box_beta: 1.0 / 9.0,
        }
    }

    #[test]
    fn anchors_are_objects_background_or_ignored_by_their_overlap() {
        // IoU with the box [0,0,10,10]: 1 (object), 0.5 (between 0.3 and 0.7: ignored), 0.
        let anchors = t(&[[0., 0., 10., 10.], [0., 0., 10., 5.], [20., 20., 30., 30.]]);
        let truth = GroundTruth {
            boxes: t(&[[0., 0., 10., 10.]]),
            labels: Tensor::from_slice(&[3i64]),
        };
        let (labels, targets) = rpn_labels(&rpn(), &anchors, &truth, None);
        assert_eq!(Vec::<i64>::try_from(&labels).unwrap(), [1, -1, 0]);
        assert_eq!(Vec::<f32>::try_from(targets.get(0)).unwrap(), [0.0; 4]);
        // The border rule ignores the third anchor once it is outside.
        let inside = Tensor::from_slice(&[true, true, false]);
        let (labels, _) = rpn_labels(&rpn(), &anchors, &truth, Some(&inside));
        assert_eq!(Vec::<i64>::try_from(&labels).unwrap(), [1, -1, -1]);
    }

    #[test]
    fn an_image_without_objects_is_all_background() {
        let anchors = t(&[[0., 0., 10., 10.], [5., 5., 8., 8.]]);
        let truth = GroundTruth {
            boxes: Tensor::zeros([0, 4], (Kind::Float, tch::Device::Cpu)),
            labels: Tensor::zeros([0], (Kind::Int64, tch::Device::Cpu)),
        };
        let (labels, _) = rpn_labels(&rpn(), &anchors, &truth, None);
        assert_eq!(Vec::<i64>::try_from(&labels).unwrap(), [0, 0]);
        let roi = RoiTargeting {
            matcher: Matcher::new(0.5, 0.5, false),
            sampler: BalancedSampler::new(512, 0.25),
            coder: BoxCoder::new([10.0, 10.0, 5.0, 5.0]),
            box_beta: 1.0 / 9.0,
        };
        let rois = roi_labels(&roi, &anchors, &truth, 7);
        let (boxes, labels, _) = rois.compact();
        assert_eq!(boxes.size(), [2, 4]);
        assert_eq!(Vec::<i64>::try_from(&labels).unwrap(), [0, 0]);
    }

    #[test]
    fn rpn_losses_average_over_the_sampled_anchors() {
        // Zero logits: BCE is ln 2 for every sampled anchor, whatever its label; the ignored
        // one is left out. Deltas equal the targets: no box loss.
        let labels = Tensor::from_slice(&[1i64, 0, -1, 0]);
        let image = [RpnImageTargets {
            positive: labels.eq(1),
            sampled: labels.ge(0),
            labels,
            targets: Tensor::ones([4, 4], (Kind::Float, tch::Device::Cpu)),
        }];
        let objectness = Tensor::zeros([1, 4], (Kind::Float, tch::Device::Cpu));
        let deltas = Tensor::ones([1, 4, 4], (Kind::Float, tch::Device::Cpu));
        let (obj, boxes) = rpn_losses(&rpn(), &objectness, &deltas, &image);
        assert!((obj.double_value(&[]) - 2f64.ln()).abs() < 1e-6);
        assert_eq!(boxes.double_value(&[]), 0.0);
        // A positive's deltas off by 1 in each of 4 coordinates: smooth L1 (beta 1/9) is
        // 4 x (1 - 1/18), over 3 sampled anchors.
        let deltas = Tensor::ones([1, 4, 4], (Kind::Float, tch::Device::Cpu)) * 2.0;
        let (_, boxes) = rpn_losses(&rpn(), &objectness, &deltas, &image);
        assert!((boxes.double_value(&[]) - 4.0 * (1.0 - 1.0 / 18.0) / 3.0).abs() < 1e-6);
    }

    #[test]
    fn box_head_losses_take_the_matched_class_slot() {
        // Two RoIs, K = 2. Uniform logits: cross-entropy ln 3. RoI 0 is class 2; only its
        // slot's deltas (off by 0.5 in x) count: smooth L1 beta 1 gives 0.125, over 2 RoIs.
        let logits = Tensor::zeros([2, 3], (Kind::Float, tch::Device::Cpu));
        let labels = Tensor::from_slice(&[2i64, 0]);
        let targets = Tensor::zeros([2, 4], (Kind::Float, tch::Device::Cpu));
        let mut deltas = vec![0f32; 2 * 12];
        deltas[2 * 4] = 0.5; // RoI 0, slot 2 (torchvision layout)
        deltas[4] = 9.0; // RoI 0, slot 1: another class, ignored
        let deltas = Tensor::from_slice(&deltas).view([2, 12]);
        let (cls, boxes) = box_head_losses(
            &logits,
            &deltas,
            &labels,
            &targets,
            BoxLayout::WithBackground,
            1.0,
        );
        assert!((cls.double_value(&[]) - 3f64.ln()).abs() < 1e-6);
        assert!((boxes.double_value(&[]) - 0.125 / 2.0).abs() < 1e-6);
        // GluonCV's layout puts class 2 at slot 1: now the 9 counts (|9| - 0.5 = 8.5).
        let gluon = deltas.narrow(1, 0, 8);
        let (_, boxes) = box_head_losses(
            &logits,
            &gluon,
            &labels,
            &targets,
            BoxLayout::ObjectsOnly,
            1.0,
        );
        assert!(
            (boxes.double_value(&[]) - 8.5 / 2.0).abs() < 1e-6,
            "{}",
            boxes.double_value(&[])
        );
    }
}
