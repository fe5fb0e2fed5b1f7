//! Golden tests of `detection::ops` against values made by torchvision 0.26 (and GluonCV's
//! formulas) with the Python scripts in `tests/golden/`.

#[path = "ops_golden/support.rs"]
mod support;

#[path = "ops_golden/anchors.rs"]
mod anchors;
#[path = "ops_golden/boxes_and_coder.rs"]
mod boxes_and_coder;
#[path = "ops_golden/matching.rs"]
mod matching;
#[path = "ops_golden/nms.rs"]
mod nms;
#[path = "ops_golden/roi_align.rs"]
mod roi_align;
