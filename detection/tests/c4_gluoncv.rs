//! The C4 recipe (configs/detection/voc-c4.toml) behaves as GluonCV's
//! faster_rcnn_resnet50_v1b_voc where the paper's numbers depend on it: the RPN's anchor
//! labels (border-crossing anchors out before matching, negatives over best matches),
//! proposals (boxes under 16 px gone before the top-k), one image at a time (a padded batch
//! gives each image the targets it gets alone), every detection that survives NMS; and the
//! model path copes with an image that has no proposals, in both designs.

use detection::model::config::{body_config, Design};
use detection::model::rpn::RpnOutput;
use detection::model::{roi_heads, DetectorConfig, FasterRcnn};
use detection::ops::anchors::inside_image;
use detection::train::config::FinetuneConfig;
use detection::train::finetune::detector_config;
use detection::train::step::{roi_batch_targets, rpn_batch_targets, Targeting};
use detection::train::targets::{rpn_labels, GroundTruth, RpnImageTargets};
use detection::transform::ImageList;
use tch::{nn, Device, Kind, Tensor};

fn c4_recipe() -> FinetuneConfig {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/detection/voc-c4.toml"
    );
    let config: FinetuneConfig = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    config.validate().unwrap();
    config
}

/// The recipe's detector over a ResNet-18 (20 classes) and its training targets.
fn c4_model() -> (FasterRcnn, Targeting) {
    let recipe = c4_recipe();
    let body = body_config("resnet18".parse().unwrap(), 1e-5);
    let config = detector_config(&recipe, &body, 20);
    assert_eq!(config.design, Design::C4);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = FasterRcnn::new(&vs.root(), &config);
    let targeting = Targeting::new(&model, &recipe.targets());
    (model, targeting)
}

fn boxes(rows: &[[f32; 4]]) -> Tensor {
    Tensor::from_slice(rows.concat().as_slice()).view([-1, 4])
}

fn truth(rows: &[[f32; 4]], labels: &[i64]) -> GroundTruth {
    GroundTruth {
        boxes: boxes(rows),
        labels: Tensor::from_slice(labels),
    }
}

fn labels_of(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(t).unwrap()
}

#[test]
fn a_box_whose_best_anchor_crosses_the_border_gets_its_best_inside_anchor() {
    let (_, targeting) = c4_model();
    // Box [0, 0, 40, 40] in a 100 x 100 image. Anchor 0 crosses the border (IoU 0.81, the
    // box's best overall); anchor 1 is inside with IoU 0.6, between the thresholds; anchor
    // 2 is far away. GluonCV sets the crossing anchor's IoU to -1 before matching, so anchor
    // 1 is the box's best and positive; matching first would leave it ignored.
    let anchors = boxes(&[
        [-2.0, -2.0, 38.0, 38.0],
        [0.0, 0.0, 40.0, 24.0],
        [50.0, 50.0, 90.0, 90.0],
    ]);
    let inside = inside_image(&anchors, (100, 100));
    let (labels, targets) = rpn_labels(
        &targeting.rpn,
        &anchors,
        &truth(&[[0.0, 0.0, 40.0, 40.0]], &[3]),
        Some(&inside),
    );
    assert_eq!(labels_of(&labels), [-1, 1, 0]);
    // Its regression target moves it onto the box: centre y +8 px over a height of 24.
    let t = Vec::<f32>::try_from(targets.get(1)).unwrap();
    assert!((t[1] - 8.0 / 24.0).abs() < 1e-6, "{t:?}");
}

#[test]
fn a_best_anchor_below_the_background_threshold_stays_background() {
    let (_, targeting) = c4_model();
    // The box's best anchor overlaps it with IoU 0.25 (< 0.3): GluonCV's negatives overwrite
    // its best-match positives; torchvision's matcher would make it positive.
    let anchors = boxes(&[[0.0, 0.0, 40.0, 10.0], [60.0, 60.0, 90.0, 90.0]]);
    let inside = inside_image(&anchors, (100, 100));
    let (labels, _) = rpn_labels(
        &targeting.rpn,
        &anchors,
        &truth(&[[0.0, 0.0, 40.0, 40.0]], &[1]),
        Some(&inside),
    );
    assert_eq!(labels_of(&labels), [0, 0]);
    // A best anchor at IoU 0.5 is still positive (between the thresholds, but the box's best).
    let anchors = boxes(&[[0.0, 0.0, 40.0, 20.0], [60.0, 60.0, 90.0, 90.0]]);
    let (labels, _) = rpn_labels(
        &targeting.rpn,
        &anchors,
        &truth(&[[0.0, 0.0, 40.0, 40.0]], &[1]),
        Some(&inside),
    );
    assert_eq!(labels_of(&labels), [1, 0]);
}

/// RPN outputs for images of `sizes` in a batch padded to `padded`: at each image's own
/// anchors the values of `own[i]` (objectness `[n_i]`, deltas `[n_i, 4]`, in the image's
/// (y, x, anchor) order); at the anchors of the padding a high objectness and random deltas,
/// so that anything leaking from there would be seen.
fn rpn_output(
    model: &FasterRcnn,
    padded: (i64, i64),
    sizes: &[(i64, i64)],
    own: &[(Tensor, Tensor)],
) -> RpnOutput {
    let feature = (padded.0 / 16, padded.1 / 16);
    let anchors = model
        .rpn
        .anchor_generator
        .anchors(padded, &[feature], Device::Cpu)
        .remove(0);
    let n = anchors.size()[0];
    let mut objectness = Vec::new();
    let mut deltas = Vec::new();
    for (&size, (obj, del)) in sizes.iter().zip(own) {
        let grid = model
            .rpn
            .anchor_generator
            .image_grid(padded, &[feature], size, Device::Cpu);
        let o =
            Tensor::full([n], 8.0, (Kind::Float, Device::Cpu)).masked_scatter(&grid.within, obj);
        let d = (Tensor::rand([n, 4], (Kind::Float, Device::Cpu)) - 0.5)
            .masked_scatter(&grid.within.unsqueeze(1).expand([n, 4], false), del);
        objectness.push(o);
        deltas.push(d);
    }
    RpnOutput {
        objectness: vec![Tensor::stack(&objectness, 0)],
        deltas: vec![Tensor::stack(&deltas, 0)],
        anchors: vec![anchors],
        feature_sizes: vec![feature],
        padded_size: padded,
    }
}

fn image_list(padded: (i64, i64), sizes: &[(i64, i64)]) -> ImageList {
    ImageList {
        tensors: Tensor::zeros(
            [sizes.len() as i64, 3, padded.0, padded.1],
            (Kind::Float, Device::Cpu),
        ),
        image_sizes: sizes.to_vec(),
    }
}

/// Which anchors of an image's RPN targets play a role (object, sampled...).
type RoleMask = fn(&RpnImageTargets) -> Tensor;

fn round_up(v: i64) -> i64 {
    (v + 31) / 32 * 32
}

fn assert_same(what: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.size(), b.size(), "{what}: sizes differ");
    assert!(a.equal(b), "{what}: values differ");
}

#[test]
fn a_padded_batch_of_four_gives_each_image_its_targets_alone() {
    let (model, targeting) = c4_model();
    let sizes = [(100i64, 130i64), (64, 200), (90, 90), (40, 60)];
    let truths = [
        truth(
            &[[10.0, 10.0, 60.0, 80.0], [70.0, 20.0, 120.0, 95.0]],
            &[1, 4],
        ),
        truth(&[[0.0, 0.0, 150.0, 60.0]], &[7]),
        truth(&[[20.0, 30.0, 50.0, 85.0], [5.0, 5.0, 30.0, 30.0]], &[2, 2]),
        truth(&[[3.0, 3.0, 50.0, 37.0]], &[20]),
    ];
    tch::manual_seed(5);
    // What the head says at each image's own anchors (ceil(side / 16) cells, 15 anchors).
    let own: Vec<(Tensor, Tensor)> = sizes
        .iter()
        .map(|&(h, w)| {
            let n = ((h + 15) / 16) * ((w + 15) / 16) * 15;
            (
                Tensor::randn([n], (Kind::Float, Device::Cpu)),
                Tensor::randn([n, 4], (Kind::Float, Device::Cpu)) * 0.2,
            )
        })
        .collect();
    let rpn_seeds = [11u64, 12, 13, 14];
    let roi_seeds = [21u64, 22, 23, 24];

    let padded = (
        round_up(sizes.iter().map(|s| s.0).max().unwrap()),
        round_up(sizes.iter().map(|s| s.1).max().unwrap()),
    );
    let out = rpn_output(&model, padded, &sizes, &own);
    let images = image_list(padded, &sizes);
    let batch_rpn = rpn_batch_targets(&model, &targeting, &out, &images, &truths, &rpn_seeds);
    let batch_roi = roi_batch_targets(&model, &targeting, &out, &images, &truths, &roi_seeds);
    let batch_anchors = &out.anchors[0];

    for i in 0..sizes.len() {
        let alone = (round_up(sizes[i].0), round_up(sizes[i].1));
        let out1 = rpn_output(&model, alone, &sizes[i..=i], &own[i..=i]);
        let images1 = image_list(alone, &sizes[i..=i]);
        let truth1 = std::slice::from_ref(&truths[i]);
        let rpn1 = rpn_batch_targets(
            &model,
            &targeting,
            &out1,
            &images1,
            truth1,
            &rpn_seeds[i..=i],
        );
        let roi1 = roi_batch_targets(
            &model,
            &targeting,
            &out1,
            &images1,
            truth1,
            &roi_seeds[i..=i],
        );

        // The anchors in each role, in the image's own (y, x, anchor) order, are the same.
        let (b, a) = (&batch_rpn[i], &rpn1[0]);
        let picked =
            |anchors: &Tensor, mask: &Tensor| anchors.index_select(0, &mask.nonzero().view([-1]));
        let roles: [(&str, RoleMask); 4] = [
            ("objects", |t| t.labels.eq(1)),
            ("background", |t| t.labels.eq(0)),
            ("sampled positives", |t| t.positive.shallow_clone()),
            ("sampled", |t| t.sampled.shallow_clone()),
        ];
        for (role, mask) in roles {
            assert_same(
                &format!("image {i}: RPN {role}"),
                &picked(batch_anchors, &mask(b)),
                &picked(&out1.anchors[0], &mask(a)),
            );
        }
        assert!(
            a.positive.sum(Kind::Int64).int64_value(&[]) > 0,
            "image {i} has no positive anchor"
        );
        assert_same(
            &format!("image {i}: RPN regression targets"),
            &picked(&b.targets, &b.positive),
            &picked(&a.targets, &a.positive),
        );

        // Proposals, their labels, regression targets and sample are the same.
        let (b, a) = (&batch_roi[i], &roi1[0]);
        assert_same(&format!("image {i}: RoIs"), &b.boxes, &a.boxes);
        assert_same(&format!("image {i}: RoI labels"), &b.labels, &a.labels);
        assert_same(&format!("image {i}: RoI targets"), &b.targets, &a.targets);
        assert_same(&format!("image {i}: RoI sample"), &b.sampled, &a.sampled);
        let (h, w) = sizes[i];
        let [x2, y2] = [2, 3].map(|c| b.boxes.select(1, c).max().double_value(&[]));
        assert!(
            x2 <= w as f64 && y2 <= h as f64,
            "image {i}: a RoI leaves the image"
        );
    }
}

#[test]
fn proposals_under_16_pixels_never_take_a_place_in_the_top_k() {
    let (mut model, _) = c4_model();
    model.rpn.config.pre_nms_top_n_test = 5;
    let padded = (160, 160);
    let sizes = [(160, 160)];
    let n = 10 * 10 * 15;
    // The 20 best-scored anchors shrink to boxes of a pixel or two (width and height x 0.02);
    // the next ones keep their anchors (22 px and up).
    let mut objectness = vec![0f32; n];
    let mut deltas = vec![0f32; n * 4];
    for k in 0..40 {
        let anchor = k * 37 % n;
        objectness[anchor] = 10.0 - k as f32 * 0.1;
        if k < 20 {
            deltas[anchor * 4 + 2] = 0.02f32.ln();
            deltas[anchor * 4 + 3] = 0.02f32.ln();
        }
    }
    let own = [(
        Tensor::from_slice(&objectness),
        Tensor::from_slice(&deltas).view([-1, 4]),
    )];
    let out = rpn_output(&model, padded, &sizes, &own);
    let proposals = model.proposals(&out, &image_list(padded, &sizes), false);
    let p = &proposals[0];
    // Taking the top 5 first would have kept five tiny boxes and dropped them all.
    assert!(p.boxes.size()[0] > 0, "no proposal survived");
    let wide = p.boxes.select(1, 2) - p.boxes.select(1, 0);
    let tall = p.boxes.select(1, 3) - p.boxes.select(1, 1);
    assert!(bool::try_from(wide.ge(16.0).logical_and(&tall.ge(16.0)).all()).unwrap());
    // The best of them is the 21st anchor, scored 10 - 2.0.
    let best = p.scores.max().double_value(&[]);
    assert!(
        (best - 1.0 / (1.0 + (-8.0f64).exp())).abs() < 1e-6,
        "best score {best}"
    );
}

#[test]
fn c4_keeps_every_detection_that_survives_nms_fpn_keeps_100() {
    // 150 separate proposals of 50 x 50 on a 1000 x 1000 image, all class 1 for sure.
    let rois: Vec<[f32; 4]> = (0..150)
        .map(|k| {
            let (x, y) = ((k % 15) as f32 * 60.0, (k / 15) as f32 * 60.0);
            [x, y, x + 50.0, y + 50.0]
        })
        .collect();
    let proposals = [boxes(&rois)];
    let classes = 21;
    let logits = Tensor::zeros([150, classes], (Kind::Float, Device::Cpu));
    let _ = logits.select(1, 1).fill_(10.0);
    let deltas = Tensor::zeros([150, 4 * (classes - 1)], (Kind::Float, Device::Cpu));
    let c4 = DetectorConfig::c4("resnet18".parse().unwrap(), 20, 1e-5);
    let (model, _) = c4_model();
    let found = roi_heads::postprocess(
        &c4.box_head,
        &model.box_coder,
        &logits,
        &deltas,
        &proposals,
        &[(1000, 1000)],
    );
    assert_eq!(found[0].len(), 150);
    let fpn = DetectorConfig::fpn("resnet18".parse().unwrap(), 20, 1e-5);
    let found = roi_heads::postprocess(
        &fpn.box_head,
        &model.box_coder,
        &logits,
        &deltas,
        &proposals,
        &[(1000, 1000)],
    );
    assert_eq!(found[0].len(), 100);
}

#[test]
fn an_image_without_proposals_has_no_detections_in_either_design() {
    for design in [Design::C4, Design::Fpn] {
        let arch = "resnet18".parse().unwrap();
        let mut config = match design {
            Design::C4 => DetectorConfig::c4(arch, 3, 1e-5),
            Design::Fpn => DetectorConfig::fpn(arch, 3, 1e-5),
        };
        // No proposal can be 10000 px wide in these images.
        config.rpn.min_size = 10_000.0;
        config.validate().unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let model = FasterRcnn::new(&vs.root(), &config);
        let images = image_list((64, 96), &[(64, 96), (40, 50)]);
        let found = model.detect(&images);
        assert_eq!(found.len(), 2, "{design:?}");
        for d in &found {
            assert!(d.is_empty(), "{design:?}");
            assert_eq!(d.boxes.size(), [0, 4], "{design:?}");
        }
    }
}
