//! What `detect eval` prints: a per-class table for people, one JSON object for scripts.
//!
//! JSON (the design's contract, extended): `{"map", "metric", "ap": {"<class>": ap}}` plus
//! `iou`, `images`, and per-class counts `positives`, `difficult`, `detections`. A class with
//! no positive box has `null` AP and is left out of `map`.

use super::coco::CocoReport;
use super::voc::{VocMetric, VocReport};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

/// One line saying how the numbers were computed, so no one has to guess which VOC metric.
pub fn voc_rules(metric: VocMetric, iou: f64) -> String {
    match metric {
        VocMetric::Voc07 => format!(
            "VOC07 11-point AP by the devkit (VOCevaldet.m) at IoU >= {iou} (inclusive-pixel IoU, difficult boxes ignored, duplicates false)"
        ),
        VocMetric::Voc07Gluoncv => format!(
            "VOC07 11-point AP as GluonCV's VOC07MApMetric at IoU >= {iou} (float32 inclusive-pixel IoU, numpy's recall points, difficult boxes ignored, duplicates false)"
        ),
        VocMetric::Voc12 => format!(
            "VOC12 area AP at IoU >= {iou} (inclusive-pixel IoU, difficult boxes ignored, duplicates false)"
        ),
    }
}

pub fn voc_json(report: &VocReport) -> Value {
    let per_class = |value: &dyn Fn(&super::voc::ClassAp) -> Value| -> Value {
        Value::Object(
            report
                .classes
                .iter()
                .map(|c| (c.name.clone(), value(c)))
                .collect::<Map<String, Value>>(),
        )
    };
    json!({
        "map": report.map,
        "metric": report.metric.name(),
        "ap": per_class(&|c| json!(c.ap)),
        "iou": report.iou_threshold,
        "images": report.images,
        "positives": per_class(&|c| json!(c.positives)),
        "difficult": per_class(&|c| json!(c.difficult)),
        "detections": per_class(&|c| json!(c.detections)),
    })
}

pub fn voc_table(report: &VocReport) -> String {
    let width = report
        .classes
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}, {} images",
        voc_rules(report.metric, report.iou_threshold),
        report.images
    );
    let _ = writeln!(
        out,
        "{:<width$}  {:>7}  {:>7}  {:>9}  {:>10}",
        "class", "AP", "#GT", "difficult", "#det"
    );
    for c in &report.classes {
        let ap = c.ap.map_or("-".to_string(), |ap| format!("{ap:.4}"));
        let _ = writeln!(
            out,
            "{:<width$}  {:>7}  {:>7}  {:>9}  {:>10}",
            c.name, ap, c.positives, c.difficult, c.detections
        );
    }
    let counted = report.classes.iter().filter(|c| c.ap.is_some()).count();
    let map = report.map.map_or("-".to_string(), |m| format!("{m:.4}"));
    let _ = write!(
        out,
        "{:<width$}  {:>7}  (mean over the {counted} of {} classes with ground truth)",
        "mAP",
        map,
        report.classes.len()
    );
    if counted < report.classes.len() {
        out.push_str("; \"-\": no non-difficult box, no AP");
    }
    out.push('\n');
    out
}

pub fn coco_json(report: &CocoReport) -> Value {
    let stats: Map<String, Value> = report
        .stats
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let ap: Map<String, Value> = report
        .per_class
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({"map": report.get("AP"), "metric": "coco", "ap": ap, "stats": stats})
}

pub fn coco_table(report: &CocoReport) -> String {
    let mut out = String::from("COCO bbox evaluation (pycocotools' rules, through hotcoco)\n");
    for (name, value) in &report.stats {
        let _ = writeln!(out, "{name:<6} {value:>7.4}");
    }
    if !report.per_class.is_empty() {
        let width = report
            .per_class
            .iter()
            .map(|(n, _)| n.chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        let _ = writeln!(out, "{:<width$}  {:>7}", "class", "AP");
        for (name, ap) in &report.per_class {
            let _ = writeln!(out, "{name:<width$}  {ap:>7.4}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::voc::ClassAp;

    fn report() -> VocReport {
        let class = |name: &str, ap, positives| ClassAp {
            name: name.into(),
            ap,
            positives,
            difficult: 1,
            detections: 3,
            true_positives: 1,
            false_positives: 2,
        };
        VocReport {
            metric: VocMetric::Voc07,
            iou_threshold: 0.5,
            images: 2,
            classes: vec![class("cat", Some(0.75), 2), class("bird", None, 0)],
            map: Some(0.75),
        }
    }

    #[test]
    fn json_has_the_contract_fields_and_null_for_no_ap() {
        let v = voc_json(&report());
        assert_eq!(v["map"], json!(0.75));
        assert_eq!(v["metric"], json!("voc07"));
        assert_eq!(v["ap"], json!({"cat": 0.75, "bird": null}));
        assert_eq!(v["positives"]["cat"], json!(2));
    }

    #[test]
    fn the_table_says_which_metric_and_marks_classes_without_ap() {
        let table = voc_table(&report());
        assert!(table.starts_with("VOC07 11-point AP by the devkit (VOCevaldet.m) at IoU >= 0.5 (inclusive-pixel IoU, difficult boxes ignored, duplicates false), 2 images\n"), "{table}");
        assert!(
            table.contains("\ncat     0.7500        2          1           3\n"),
            "{table}"
        );
        assert!(table.contains("\nbird         -        0"), "{table}");
        assert!(table.contains("mAP     0.7500  (mean over the 1 of 2 classes with ground truth)"));
    }
}
