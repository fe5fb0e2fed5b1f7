use detection::ops::nms::{batched_nms, nms, nms_with, offset_by_category, NmsAlgorithm};
use tch::{Device, Kind, Tensor};

use crate::support::{assert_same_ints, fixture, Get};

const ALGORITHMS: [NmsAlgorithm; 2] = [NmsAlgorithm::HostLoop, NmsAlgorithm::DeviceMask];

#[test]
fn nms_keeps_torchvisions_boxes_in_its_order_with_both_algorithms() {
    let f = fixture("nms");
    for algorithm in ALGORITHMS {
        for (threshold, key) in [(0.3, "keep_3"), (0.5, "keep_5"), (0.7, "keep_7")] {
            let keep = nms_with(algorithm, f.t("boxes"), f.t("scores"), None, threshold);
            assert_same_ints(&keep, f.t(key), &format!("{algorithm:?} at {threshold}"));
        }
        let keep = nms_with(algorithm, f.t("big_boxes"), f.t("big_scores"), None, 0.7);
        assert_same_ints(
            &keep,
            f.t("big_keep_7"),
            &format!("{algorithm:?}, 1500 boxes"),
        );
    }
    // The public entry point picks the host loop on the CPU.
    assert_same_ints(&nms(f.t("boxes"), f.t("scores"), 0.5), f.t("keep_5"), "nms");
}

#[test]
fn batched_nms_matches_both_torchvision_paths() {
    let f = fixture("nms");
    // 300 boxes: torchvision offsets the categories apart.
    assert_same_ints(
        &batched_nms(f.t("boxes"), f.t("scores"), f.t("idxs"), 0.5),
        f.t("batched_keep_5"),
        "offset path",
    );
    // 1500 boxes: torchvision loops over the categories; our category-aware pass must agree.
    let big = batched_nms(f.t("big_boxes"), f.t("big_scores"), f.t("big_idxs"), 0.5);
    assert_same_ints(&big, f.t("big_batched_keep_5"), "per-category path");
    for algorithm in ALGORITHMS {
        let shifted = offset_by_category(f.t("boxes"), f.t("idxs"));
        let keep = nms_with(algorithm, &shifted, f.t("scores"), None, 0.5);
        assert_same_ints(
            &keep,
            f.t("batched_keep_5"),
            &format!("{algorithm:?} offset"),
        );
        let keep = nms_with(
            algorithm,
            f.t("big_boxes"),
            f.t("big_scores"),
            Some(f.t("big_idxs")),
            0.5,
        );
        assert_same_ints(
            &keep,
            f.t("big_batched_keep_5"),
            &format!("{algorithm:?} categories"),
        );
    }
}

#[test]
fn nms_of_no_boxes_is_empty_and_double_precision_works() {
    let none = Tensor::zeros([0, 4], (Kind::Float, Device::Cpu));
    let keep = nms(&none, &Tensor::zeros([0], (Kind::Float, Device::Cpu)), 0.5);
    assert_eq!(keep.size(), [0]);
    assert_eq!(keep.kind(), Kind::Int64);
    let f = fixture("nms");
    for algorithm in ALGORITHMS {
        let keep = nms_with(
            algorithm,
            &f.t("boxes").to_kind(Kind::Double),
            &f.t("scores").to_kind(Kind::Double),
            None,
            0.5,
        );
        assert_same_ints(&keep, f.t("keep_5"), &format!("{algorithm:?} in f64"));
    }
}
