//! `tables.png`: ours beside the paper's, one bar panel per metric.

use crate::paper::{paper_row, PaperRow};
use crate::rows::RowResults;
use crate::Result;
use engine::chart::{self, Area};
use std::path::Path;

/// Four bar panels (top-1, mAP, pixel accuracy, mIoU), ours beside the paper's, in percent.
pub fn draw(rows: &[RowResults], out: &Path) -> Result<()> {
    let labels: Vec<String> = rows
        .iter()
        .map(|r| paper_row(&r.id).map_or(r.id.clone(), |p| p.label.to_string()))
        .collect();
    let ours = |f: fn(&RowResults) -> Option<f64>| -> Vec<f64> {
        rows.iter()
            .map(|r| f(r).map_or(f64::NAN, |v| 100.0 * v))
            .collect()
    };
    let theirs = |f: fn(&PaperRow) -> Option<f64>| -> Vec<f64> {
        rows.iter()
            .map(|r| paper_row(&r.id).and_then(f).unwrap_or(f64::NAN))
            .collect()
    };
    let panels: [(&str, Vec<f64>, Vec<f64>); 4] = [
        (
            "Table 6: backbone top-1 (%)",
            ours(|r| r.top1),
            theirs(|p| p.top1),
        ),
        (
            "Table 8: Faster R-CNN mAP (%)",
            ours(|r| r.map),
            theirs(|p| Some(p.map)),
        ),
        (
            "Table 9: FCN pixel accuracy (%)",
            ours(|r| r.pix_acc),
            theirs(|p| Some(p.pix_acc)),
        ),
        (
            "Table 9: FCN mIoU (%)",
            ours(|r| r.miou),
            theirs(|p| Some(p.miou)),
        ),
    ];
    let picture = chart::render(out, (1600, 1000), |root: &Area| {
        let areas = root.split_evenly((2, 2));
        for (area, (title, ours, paper)) in areas.iter().zip(panels) {
            let series = [("ours".to_string(), ours), ("paper".to_string(), paper)];
            chart::draw_bars(area, title, "%", &labels, &series)?;
        }
        Ok(())
    })?;
    chart::write_png(&picture, out)?;
    Ok(())
}
