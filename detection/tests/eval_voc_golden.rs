//! The VOC evaluator against `golden/voc_eval_golden.py`, a numpy transcription of the
//! devkit's VOCevaldet.m loop: 120 random images (some without boxes, 20% difficult, one class
//! with only difficult boxes), 614 detections (jittered boxes, duplicates, wrong classes,
//! background boxes, tied scores), at IoU 0.5 and 0.7. Every AP and the mAP within 1e-9.

use detection::metrics::voc::{Detection, GroundTruth, VocEvaluator, VocMetric};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/voc_random.json");
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
                bbox: [
                    quarter(&o[0]),
                    quarter(&o[1]),
                    quarter(&o[2]),
                    quarter(&o[3]),
                ],
                class: o[4].as_u64().unwrap() as usize,
                difficult: o[5].as_i64().unwrap() == 1,
            })
            .collect();
        assert_eq!(ev.add_image(&format!("{i:06}"), &gt).unwrap(), i);
    }
    // One detection at a time, in the fixture's order: ties keep it.
    for d in fx["detections"].as_array().unwrap() {
        let detection = Detection {
            bbox: [
                quarter(&d[3]),
                quarter(&d[4]),
                quarter(&d[5]),
                quarter(&d[6]),
            ],
            class: d[1].as_u64().unwrap() as usize,
            score: d[2].as_i64().unwrap() as f64 / 1000.0,
        };
        ev.add_detections(d[0].as_u64().unwrap() as usize, &[detection])
            .unwrap();
    }
    ev
}

fn assert_close(got: Option<f64>, want: &Value, what: &str) {
    match (got, want.as_f64()) {
        (None, None) => {}
        (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{what}: {g} vs golden {w}"),
        (g, _) => panic!("{what}: {g:?} vs golden {want}"),
    }
}

#[test]
fn matches_the_devkit_transcription_at_both_thresholds_and_metrics() {
    let fx = fixture();
    let ev = evaluator(&fx);
    for case in fx["cases"].as_array().unwrap() {
        let iou = case["iou"].as_f64().unwrap();
        for (metric, key) in [(VocMetric::Voc07, "07"), (VocMetric::Voc12, "12")] {
            let report = ev.evaluate(metric, iou);
            let golden = case[format!("ap{key}")].as_array().unwrap();
            assert_eq!(report.classes.len(), golden.len());
            for (class, want) in report.classes.iter().zip(golden) {
                assert_close(class.ap, want, &format!("{} AP{key} @{iou}", class.name));
            }
            assert_close(
                report.map,
                &case[format!("map{key}")],
                &format!("mAP{key} @{iou}"),
            );
        }
    }
    // The class with only difficult boxes has no AP and is left out of the mean.
    let report = ev.evaluate(VocMetric::Voc12, 0.5);
    assert_eq!(report.classes[4].ap, None);
    assert_eq!(report.classes[4].positives, 0);
    assert!(report.classes[4].difficult > 0);
}
