//! The two VOC2007 11-point metrics against `golden/voc07_variants_golden.py`, a numpy
//! transcription of the devkit's VOCevaldet.m (`voc07`) and one of GluonCV's VOC07MApMetric
//! (`voc07-gluoncv`), on 80 images built to hit where they part: recall exactly 0.6 and 0.7,
//! IoU exactly 0.5 and 0.7, IoUs that differ in double but tie in float32, IoUs just below
//! 0.5 and 0.7 in double that reach them in float32, difficult boxes matched first,
//! duplicates, a class with only difficult boxes and one that never occurs. At IoU 0.5 and
//! 0.7, every AP and the mAP equal the transcriptions' to the bit.

use detection::metrics::voc::{Detection, GroundTruth, VocEvaluator, VocMetric};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/voc07_variants.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn quarter(v: &Value) -> f64 {
    v.as_i64().unwrap() as f64 / 4.0
}

fn evaluator(fx: &Value) -> VocEvaluator {
    let classes = fx["classes"].as_u64().unwrap() as usize;
    let mut ev = VocEvaluator::new((0..classes).map(|c| format!("class{c}")).collect());
    for (i, objects) in fx["images"].as_array().unwrap().iter().enumerate() {
        let gt: Vec<GroundTruth> = objects
            .as_array()
            .unwrap()
            .iter()
            .map(|o| GroundTruth {
                bbox: [0, 1, 2, 3].map(|k| quarter(&o[k])),
                class: o[4].as_u64().unwrap() as usize,
                difficult: o[5].as_i64().unwrap() == 1,
            })
            .collect();
        assert_eq!(ev.add_image(&format!("{i:06}"), &gt).unwrap(), i);
    }
    for d in fx["detections"].as_array().unwrap() {
        let detection = Detection {
            bbox: [3, 4, 5, 6].map(|k| quarter(&d[k])),
            class: d[1].as_u64().unwrap() as usize,
            score: d[2].as_i64().unwrap() as f64 / 1000.0,
        };
        ev.add_detections(d[0].as_u64().unwrap() as usize, &[detection])
            .unwrap();
    }
    ev
}

/// Bit-for-bit equality of an AP or mAP (`null`: no AP).
fn assert_same(got: Option<f64>, want: &Value, what: &str) {
    match (got, want.as_f64()) {
        (None, None) => {}
        (Some(g), Some(w)) => assert_eq!(g.to_bits(), w.to_bits(), "{what}: {g} vs golden {w}"),
        (g, _) => panic!("{what}: {g:?} vs golden {want}"),
    }
}

fn check(metric: VocMetric, key: &str) {
    let fx = fixture();
    let ev = evaluator(&fx);
    for case in fx["cases"].as_array().unwrap() {
        let iou = case["iou"].as_f64().unwrap();
        let report = ev.evaluate(metric, iou);
        let golden = &case[key];
        let aps = golden["ap"].as_array().unwrap();
        assert_eq!(report.classes.len(), aps.len());
        for (class, want) in report.classes.iter().zip(aps) {
            assert_same(class.ap, want, &format!("{} {key} AP @{iou}", class.name));
        }
        assert_same(report.map, &golden["map"], &format!("{key} mAP @{iou}"));
    }
}

#[test]
fn voc07_is_the_devkit_to_the_bit() {
    check(VocMetric::Voc07, "devkit");
}

#[test]
fn voc07_gluoncv_is_gluoncvs_voc07mapmetric_to_the_bit() {
    check(VocMetric::Voc07Gluoncv, "gluoncv");
}

/// The fixture does tell the two apart: they disagree on the classes built to part them.
#[test]
fn the_two_rules_differ_where_the_fixture_says() {
    let fx = fixture();
    let ev = evaluator(&fx);
    let devkit = ev.evaluate(VocMetric::Voc07, 0.5);
    let gluoncv = ev.evaluate(VocMetric::Voc07Gluoncv, 0.5);
    let differing: Vec<usize> = (0..devkit.classes.len())
        .filter(|&c| devkit.classes[c].ap != gluoncv.classes[c].ap)
        .collect();
    // Recall 0.6 (0), recall 0.7 (1), recall 0.6 among IoU-0.5 hits (2), the float32
    // argmax tie (7), IoU just under 0.5 (8).
    assert_eq!(differing, vec![0, 1, 2, 7, 8]);
    // The class with only difficult boxes and the one that never occurs have no AP.
    assert_eq!(devkit.classes[5].ap, None);
    assert_eq!(gluoncv.classes[6].ap, None);
}
