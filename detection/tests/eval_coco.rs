//! COCO evaluation through hotcoco on a hand-made case, and the results JSON.

use detection::metrics::coco::{self, CocoEvaluator, CocoResult};
use detection::metrics::ImageDetections;

/// Two images, each with one 200 x 100 "cat" (category 7; area 20000 > 96^2, so "large"),
/// and a "dog" category (3) without any object.
const GROUND_TRUTH: &str = r#"{
  "images": [
    {"id": 1, "width": 640, "height": 480, "file_name": "a.jpg"},
    {"id": 2, "width": 640, "height": 480, "file_name": "b.jpg"}
  ],
  "annotations": [
    {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 20, 200, 100], "area": 20000, "iscrowd": 0},
    {"id": 2, "image_id": 2, "category_id": 7, "bbox": [300, 200, 200, 100], "area": 20000, "iscrowd": 0}
  ],
  "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}]
}"#;

#[test]
fn a_hand_made_case_gives_the_ap_worked_out_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("instances_val.json");
    std::fs::write(&path, GROUND_TRUTH).unwrap();
    let mut ev = CocoEvaluator::open(&path).unwrap();
    // Classes in increasing category id: 0 = dog (3), 1 = cat (7).
    assert_eq!(ev.category_ids(), &[3, 7]);
    // Image 1: the cat found exactly (score 0.9), and a cat box on nothing (0.8).
    // Image 2: the cat missed; a dog (no dog exists) on it.
    let first = ImageDetections {
        boxes: vec![[10.0, 20.0, 210.0, 120.0], [400.0, 300.0, 500.0, 400.0]],
        scores: vec![0.9, 0.8],
        classes: vec![1, 1],
    };
    let second = ImageDetections {
        boxes: vec![[300.0, 200.0, 500.0, 300.0]],
        scores: vec![0.7],
        classes: vec![0],
    };
    ev.add_detections(1, &first).unwrap();
    ev.add_detections(2, &second).unwrap();
    // An image id the file does not have is refused.
    let err = ev.add_detections(99, &first).unwrap_err();
    assert!(err.is_bad_input());
    assert!(
        err.to_string().starts_with("image id 99 is not in "),
        "{err}"
    );
    let report = ev.evaluate().unwrap();
    // Cat, ranked: TP (IoU 1 at every threshold), FP. Recall 0.5 at precision 1, never more:
    // the 101-point interpolation takes precision 1 at recall 0, 0.01, ..., 0.5 (51 points)
    // and 0 above, so AP = 51/101 at every IoU threshold. The dog has no ground truth and
    // no AP, so the mean is the cat's.
    let expected = 51.0 / 101.0;
    for key in ["AP", "AP50", "AP75", "APl"] {
        let got = report.get(key).unwrap();
        assert!((got - expected).abs() < 1e-12, "{key} = {got}");
    }
    // No small or medium objects: pycocotools' -1.
    assert_eq!(report.get("APs"), Some(-1.0));
    assert_eq!(report.get("APm"), Some(-1.0));
    assert_eq!(report.get("AR100"), Some(0.5));
    assert_eq!(report.per_class.len(), 1);
    assert_eq!(report.per_class[0].0, "cat");
    assert!((report.per_class[0].1 - expected).abs() < 1e-12);
}

#[test]
fn results_json_has_coco_boxes_and_category_ids() {
    let detections = ImageDetections {
        boxes: vec![[10.5, 20.0, 30.5, 60.0]],
        scores: vec![0.5],
        classes: vec![1],
    };
    let results = coco::coco_results(42, &detections, &[3, 7]).unwrap();
    assert_eq!(
        results,
        vec![CocoResult {
            image_id: 42,
            category_id: 7,
            bbox: [10.5, 20.0, 20.0, 40.0],
            score: 0.5
        }]
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    coco::write_results(&path, &results).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{"image_id": 42, "category_id": 7, "bbox": [10.5, 20.0, 20.0, 40.0], "score": 0.5}])
    );
    // A class the category list does not have is refused.
    assert!(coco::coco_results(42, &detections, &[3]).is_err());
}
