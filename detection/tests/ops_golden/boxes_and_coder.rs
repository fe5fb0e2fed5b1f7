use detection::ops::box_coder::BoxCoder;
use detection::ops::boxes::{box_area, box_iou, clip_boxes, remove_small_boxes};
use detection::ops::losses::smooth_l1;

use crate::support::{assert_close, assert_same_ints, fixture, Get};

#[test]
fn areas_ious_clipping_and_small_boxes_match_torchvision() {
    let f = fixture("boxes_and_coder");
    assert_close(&box_area(f.t("a")), f.t("area_a"), 1e-6, 1e-5, "box_area");
    let iou = box_iou(f.t("a"), f.t("b"));
    assert_close(&iou, f.t("iou_ab"), 1e-5, 1e-7, "box_iou");
    assert_eq!(
        iou.double_value(&[2, 0]),
        1.0,
        "a box has IoU 1 with itself"
    );
    assert_close(
        &clip_boxes(f.t("outside"), (50, 60)),
        f.t("clipped"),
        0.0,
        0.0,
        "clip_boxes",
    );
    assert_same_ints(
        &remove_small_boxes(f.t("small"), 2.0),
        f.t("keep_small_2"),
        "remove_small_boxes",
    );
}

#[test]
fn torchvision_box_coder_encodes_and_decodes_with_its_clamp() {
    let f = fixture("boxes_and_coder");
    for (name, weights) in [
        ("rpn", [1.0, 1.0, 1.0, 1.0]),
        ("head", [10.0, 10.0, 5.0, 5.0]),
    ] {
        let coder = BoxCoder::new(weights);
        let encoded = coder.encode(f.t("gt"), f.t("proposals"));
        assert_close(
            &encoded,
            f.t(&format!("encode_{name}")),
            1e-5,
            1e-5,
            &format!("encode {name}"),
        );
        let decoded = coder.decode(f.t(&format!("deltas_{name}")), f.t("proposals"));
        assert_eq!(decoded.size(), [6, 3, 4]);
        assert_close(
            &decoded,
            f.t(&format!("decode_{name}")),
            1e-5,
            1e-4,
            &format!("decode {name}"),
        );
        // Decoding the encoding gives the ground truth back.
        let round_trip = coder.decode(&encoded, f.t("proposals")).squeeze_dim(1);
        assert_close(
            &round_trip,
            f.t("gt"),
            1e-5,
            1e-4,
            &format!("round trip {name}"),
        );
    }
}

#[test]
fn gluoncv_box_coder_uses_stds_and_clips_the_scale_after_exp() {
    let f = fixture("boxes_and_coder");
    let stds = [0.1, 0.1, 0.2, 0.2];
    let voc = BoxCoder::gluoncv(stds, None);
    let coco = BoxCoder::gluoncv(stds, Some(4.14));
    assert_close(
        &voc.encode(f.t("gt"), f.t("proposals")),
        f.t("gluon_encode"),
        1e-5,
        1e-5,
        "gluon encode",
    );
    let deltas = f.t("gluon_deltas");
    assert_close(
        &voc.decode(deltas, f.t("proposals")),
        f.t("gluon_decode_noclip"),
        1e-5,
        1e-3,
        "gluon decode, no clip",
    );
    assert_close(
        &coco.decode(deltas, f.t("proposals")),
        f.t("gluon_decode_clip"),
        1e-5,
        1e-4,
        "gluon decode, clip 4.14",
    );
}

#[test]
fn smooth_l1_matches_torch_for_each_beta() {
    let f = fixture("boxes_and_coder");
    for (name, beta) in [("ninth", 1.0 / 9.0), ("one", 1.0), ("zero", 0.0)] {
        let loss = smooth_l1(f.t("l1_input"), f.t("l1_target"), beta);
        assert_close(
            &loss.reshape([1]),
            f.t(&format!("smooth_l1_{name}")),
            1e-6,
            1e-6,
            &format!("beta {name}"),
        );
    }
}
