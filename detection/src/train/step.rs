//! One training step's losses, shared by the engine's task and `detect bench`: features, the
//! RPN's losses against anchor targets, proposals, sampled RoIs with their targets, and the
//! box head's losses, as four named losses.

use super::config::ResolvedTargets;
use super::targets::{
    box_head_losses, image_seed, roi_labels, rpn_image_targets, rpn_losses, BoxLayout, GroundTruth,
    RoiTargeting, RpnImageTargets, RpnTargeting, SampledRois,
};
use crate::model::config::Design;
use crate::model::rpn::RpnOutput;
use crate::model::FasterRcnn;
use crate::ops::anchors::inside_image;
use crate::ops::matcher::Matcher;
use crate::ops::sampler::BalancedSampler;
use crate::transform::ImageList;
use engine::task::Losses;
use tch::Tensor;

/// How a model's two stages are trained.
#[derive(Debug, Clone)]
pub struct Targeting {
    pub rpn: RpnTargeting,
    pub roi: RoiTargeting,
    pub layout: BoxLayout,
}

impl Targeting {
    /// The targets of `model`'s design with the recipe's settings; the box coders are the
    /// model's own, so training encodes what inference decodes.
    pub fn new(model: &FasterRcnn, t: &ResolvedTargets) -> Self {
        let c4 = model.config.design == Design::C4;
        Targeting {
            rpn: RpnTargeting {
                matcher: if t.rpn_gluoncv_best_anchor {
                    Matcher::gluoncv_rpn(t.rpn_fg_iou, t.rpn_bg_iou)
                } else {
                    Matcher::new(t.rpn_fg_iou, t.rpn_bg_iou, true)
                },
                sampler: BalancedSampler::new(t.rpn_batch, t.rpn_positive_fraction),
                coder: model.rpn.box_coder.clone(),
                ignore_crossing_anchors: t.ignore_crossing_anchors,
                box_beta: 1.0 / 9.0,
            },
            roi: RoiTargeting {
                matcher: Matcher::new(t.roi_fg_iou, t.roi_fg_iou, false),
                sampler: BalancedSampler::new(t.roi_batch, t.roi_positive_fraction),
                coder: model.box_coder.clone(),
                box_beta: t.roi_box_beta,
            },
            layout: if c4 {
                BoxLayout::ObjectsOnly
            } else {
                BoxLayout::WithBackground
            },
        }
    }
}

/// The four losses of `model` (in training mode) on a batch of normalised, padded `images`
/// and each image's ground truth; `seed` draws the anchor and RoI samples.
pub fn training_losses(
    model: &FasterRcnn,
    targeting: &Targeting,
    images: &ImageList,
    truths: &[GroundTruth],
    seed: u64,
) -> Losses {
    let features = model.features(&images.tensors, true);
    let out = model.rpn_outputs(&features, images);

    let rpn_seeds: Vec<u64> = (0..truths.len()).map(|i| image_seed(seed, i)).collect();
    let roi_seeds: Vec<u64> = (0..truths.len())
        .map(|i| image_seed(seed ^ 0x5151, i))
        .collect();
    let rpn_targets = rpn_batch_targets(model, targeting, &out, images, truths, &rpn_seeds);
    let objectness = Tensor::cat(&out.objectness, 1);
    let deltas = Tensor::cat(&out.deltas, 1);
    let (loss_objectness, loss_rpn_box_reg) =
        rpn_losses(&targeting.rpn, &objectness, &deltas, &rpn_targets);

    let mut rois = Vec::with_capacity(truths.len());
    let mut roi_classes = Vec::with_capacity(truths.len());
    let mut roi_targets = Vec::with_capacity(truths.len());
    for sampled in roi_batch_targets(model, targeting, &out, images, truths, &roi_seeds) {
        let (boxes, classes, targets) = sampled.compact();
        rois.push(boxes);
        roi_classes.push(classes);
        roi_targets.push(targets);
    }
    let (logits, box_deltas) = model.box_predictions(&features, &rois, images, true);
    let (loss_classifier, loss_box_reg) = box_head_losses(
        &logits,
        &box_deltas,
        &Tensor::cat(&roi_classes, 0),
        &Tensor::cat(&roi_targets, 0),
        targeting.layout,
        targeting.roi.box_beta,
    );
    Losses::from([
        ("loss_objectness".to_string(), loss_objectness),
        ("loss_rpn_box_reg".to_string(), loss_rpn_box_reg),
        ("loss_classifier".to_string(), loss_classifier),
        ("loss_box_reg".to_string(), loss_box_reg),
    ])
}

/// Each image's RPN targets and sample over the batch's anchors, image `i` drawing from
/// `seeds[i]`. With the model's `anchors_within_image`, only an image's own anchors take part
/// and its draws do not depend on the batch around it.
pub fn rpn_batch_targets(
    model: &FasterRcnn,
    targeting: &Targeting,
    out: &RpnOutput,
    images: &ImageList,
    truths: &[GroundTruth],
    seeds: &[u64],
) -> Vec<RpnImageTargets> {
    let anchors = Tensor::cat(&out.anchors, 0);
    truths
        .iter()
        .zip(&images.image_sizes)
        .enumerate()
        .map(|(i, (truth, &size))| {
            let inside = inside_image(&anchors, size);
            let grid = model
                .config
                .rpn
                .anchors_within_image
                .then(|| model.rpn.image_grid(out, size));
            rpn_image_targets(
                &targeting.rpn,
                &anchors,
                truth,
                Some(&inside),
                grid.as_ref(),
                seeds[i],
            )
        })
        .collect()
}

/// Each image's training proposals matched to its ground truth and sampled, image `i`
/// drawing from `seeds[i]`.
pub fn roi_batch_targets(
    model: &FasterRcnn,
    targeting: &Targeting,
    out: &RpnOutput,
    images: &ImageList,
    truths: &[GroundTruth],
    seeds: &[u64],
) -> Vec<SampledRois> {
    model
        .proposals(out, images, true)
        .iter()
        .zip(truths)
        .enumerate()
        .map(|(i, (p, truth))| roi_labels(&targeting.roi, &p.boxes, truth, seeds[i]))
        .collect()
}
