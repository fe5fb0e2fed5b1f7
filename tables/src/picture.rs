//! `tables.png`: what each refinement changed, ours beside the paper's. Our numbers are on
//! Fashion-MNIST and synthetic scenes in the small profiles and on ImageNet/VOC/ADE20K in the
//! paper's, so absolute values are not one measure across the two (an mAP of 25 on 300
//! scenes says nothing against the paper's 81 on VOC); a row's change from the baseline row
//! is what both can show. The absolute values stay in `results.md`.

use crate::paper::{paper_row, PaperRow};
use crate::rows::RowResults;
use crate::Result;
use engine::chart::{self, Area};
use std::path::Path;

/// One metric: ours (a fraction) and the paper's (in percent) of a row.
struct Metric {
    title: &'static str,
    ours: fn(&RowResults) -> Option<f64>,
    paper: fn(&PaperRow) -> Option<f64>,
}

const METRICS: [Metric; 4] = [
    Metric {
        title: "Table 6: backbone top-1",
        ours: |r| r.top1,
        paper: |p| p.top1,
    },
    Metric {
        title: "Table 8: Faster R-CNN mAP",
        ours: |r| r.map,
        paper: |p| Some(p.map),
    },
    Metric {
        title: "Table 9: FCN pixel accuracy",
        ours: |r| r.pix_acc,
        paper: |p| Some(p.pix_acc),
    },
    Metric {
        title: "Table 9: FCN mIoU",
        ours: |r| r.miou,
        paper: |p| Some(p.miou),
    },
];

/// Every row's change from the first row (B-standard in every profile), in percentage
/// points; NaN where either value is missing.
fn changes(rows: &[RowResults], metric: &Metric) -> (Vec<f64>, Vec<f64>) {
    let ours = |r: &RowResults| (metric.ours)(r).map(|v| 100.0 * v);
    let paper = |r: &RowResults| paper_row(&r.id).and_then(metric.paper);
    let change = |value: Option<f64>, base: Option<f64>| match (value, base) {
        (Some(v), Some(b)) => v - b,
        _ => f64::NAN,
    };
    let Some((base, others)) = rows.split_first() else {
        return (Vec::new(), Vec::new());
    };
    others
        .iter()
        .map(|r| (change(ours(r), ours(base)), change(paper(r), paper(base))))
        .unzip()
}

fn label(row: &RowResults) -> String {
    paper_row(&row.id).map_or(row.id.clone(), |p| p.label.to_string())
}

/// Four bar panels (top-1, mAP, pixel accuracy, mIoU): each row's change from the first row,
/// ours beside the paper's, in percentage points. With one row there is nothing to compare;
/// the panels say so.
pub fn draw(rows: &[RowResults], out: &Path) -> Result<()> {
    let base = rows.first().map(label).unwrap_or_default();
    let labels: Vec<String> = rows.iter().skip(1).map(label).collect();
    let panels: Vec<(String, Vec<f64>, Vec<f64>)> = METRICS
        .iter()
        .map(|m| {
            let (ours, paper) = changes(rows, m);
            (format!("{}: change from {base}", m.title), ours, paper)
        })
        .collect();
    let picture = chart::render(out, (1600, 1000), |root: &Area| {
        let areas = root.split_evenly((2, 2));
        for (area, (title, ours, paper)) in areas.iter().zip(panels) {
            let series = [("ours".to_string(), ours), ("paper".to_string(), paper)];
            chart::draw_bars(area, &title, "points", &labels, &series)?;
        }
        Ok(())
    })?;
    chart::write_png(&picture, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, top1: f64, map: f64) -> RowResults {
        RowResults {
            id: id.to_string(),
            top1: Some(top1),
            map: Some(map),
            ..RowResults::default()
        }
    }

    /// The bars are changes from B-standard in points, ours and the paper's, so a row that
    /// gains 2 points of mAP here and 0.76 in the paper shows as 2 beside 0.76.
    #[test]
    fn bars_are_each_rows_change_from_the_first_in_points() {
        let rows = [
            row("b-standard", 0.80, 0.25),
            row("d-efficient", 0.83, 0.27),
        ];
        let (ours, paper) = changes(&rows, &METRICS[1]);
        assert!((ours[0] - 2.0).abs() < 1e-9, "{ours:?}");
        assert!((paper[0] - (78.30 - 77.54)).abs() < 1e-9, "{paper:?}");
        let (ours, paper) = changes(&rows, &METRICS[0]);
        assert!((ours[0] - 3.0).abs() < 1e-9);
        assert!((paper[0] - (77.16 - 76.14)).abs() < 1e-9);
        // A missing value leaves a gap, not a bar from zero.
        let (ours, _) = changes(&rows, &METRICS[3]);
        assert!(ours[0].is_nan());
    }
}
