use detection::ops::anchors::{inside_image, AnchorGenerator};
use tch::Device;

use crate::support::{assert_close, fixture, Get};

#[test]
fn fpn_anchors_match_torchvision_on_every_level() {
    let f = fixture("anchors");
    let generator = AnchorGenerator::torchvision_fpn();
    assert_eq!(generator.num_anchors_per_location(), 3);
    let sizes: Vec<(i64, i64)> = Vec::<i64>::try_from(&f.t("fpn_feature_sizes").view([-1]))
        .unwrap()
        .chunks(2)
        .map(|c| (c[0], c[1]))
        .collect();
    let anchors = generator.anchors((96, 128), &sizes, Device::Cpu);
    assert_eq!(anchors.len(), 5);
    for (level, a) in anchors.iter().enumerate() {
        assert_close(
            a,
            f.t(&format!("fpn_level{level}")),
            0.0,
            0.0,
            &format!("level {level}"),
        );
    }
}

#[test]
fn c4_anchors_and_border_rule_match_gluoncv() {
    let f = fixture("anchors");
    let generator = AnchorGenerator::gluoncv_c4();
    assert_eq!(generator.num_anchors_per_location(), 15);
    // The image size does not matter to GluonCV's fixed stride 16.
    let anchors = generator.anchors((80, 112), &[(5, 7)], Device::Cpu);
    assert_close(&anchors[0], f.t("c4"), 0.0, 0.0, "c4 anchors");
    let inside = inside_image(&anchors[0], (80, 112));
    assert!(
        inside.equal(f.t("c4_inside_80x112")),
        "anchors inside an 80 x 112 image"
    );
}
