//! `curves.png` of a run, drawn from `metrics.jsonl` for any task's names: training losses
//! by iteration across the top, with the validation losses marked at the iterations they
//! were measured; the learning rate by iteration bottom left; the validation metrics by
//! epoch bottom right (on a 0-1 axis when they all lie in it, as accuracies, mAP and mIoU
//! do). The drawing itself is `chart.rs`'s.

use super::chart::{self, ChartError, LinePanel, Series, YAxis};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CurvesError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Chart(#[from] ChartError),
}

/// Size of `curves.png`: the loss panel spans the top half, the other two share the bottom.
pub const CURVES_SIZE: (u32, u32) = (1200, 800);
const TOP_HEIGHT: u32 = CURVES_SIZE.1 / 2;
const HALF_WIDTH: u32 = CURVES_SIZE.0 / 2;

/// Val keys that describe the record rather than measure the model.
const NOT_VAL_METRICS: [&str; 5] = ["epoch", "iter", "time", "images", "images_per_s"];

/// The series `curves.png` plots, read from a metrics file.
#[derive(Debug, Default, PartialEq)]
pub struct RunCurves {
    /// By iteration: each train key named `loss*` (but `loss_scale`), `loss` first, then
    /// each val `loss*` key (named `val loss`, ...), measured at the iteration of its record.
    pub losses: Vec<Series>,
    /// (iteration, learning rate)
    pub lr: Vec<(f64, f64)>,
    /// By epoch: every other numeric val key, in name order.
    pub val_metrics: Vec<Series>,
}

/// Reads the train and val records of a metrics file. Lines that are not JSON objects with
/// a `split` (a killed run can leave half a line), records of other splits, and fields that
/// are not numbers (a JSON `null` for a NaN loss) are skipped.
pub fn read_curves(metrics_jsonl: &Path) -> Result<RunCurves, CurvesError> {
    // Bounded like every input, and lossy: a line of binary garbage is skipped below like
    // any other line that is not a record.
    let bytes = datasets::input_file::read_bounded(
        metrics_jsonl,
        datasets::limits::MAX_METRICS_LOG_BYTES,
        "a run's log",
    )
    .map_err(|e| CurvesError::Read {
        path: metrics_jsonl.to_path_buf(),
        source: match e {
            datasets::DataError::Io { source, .. } => source,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.message()),
        },
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let mut train_losses = BTreeMap::<String, Vec<(f64, f64)>>::new();
    let mut val_losses = BTreeMap::<String, Vec<(f64, f64)>>::new();
    let mut val_metrics = BTreeMap::<String, Vec<(f64, f64)>>::new();
    let mut lr = Vec::new();
    for line in text.lines() {
        let Ok(serde_json::Value::Object(record)) = serde_json::from_str(line) else {
            continue;
        };
        let number = |key: &str| record.get(key).and_then(serde_json::Value::as_f64);
        let numbers = || {
            record
                .iter()
                .filter_map(|(key, value)| Some((key.as_str(), value.as_f64()?)))
        };
        match record.get("split").and_then(serde_json::Value::as_str) {
            Some("train") => {
                let Some(iter) = number("iter") else { continue };
                for (key, value) in numbers().filter(|(key, _)| is_loss(key)) {
                    push(&mut train_losses, key, (iter, value));
                }
                if let Some(rate) = number("lr") {
                    lr.push((iter, rate));
                }
            }
            Some("val") => {
                for (key, value) in numbers() {
                    if is_loss(key) {
                        if let Some(iter) = number("iter") {
                            push(&mut val_losses, &format!("val {key}"), (iter, value));
                        }
                    } else if !NOT_VAL_METRICS.contains(&key) {
                        if let Some(epoch) = number("epoch") {
                            push(&mut val_metrics, key, (epoch, value));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    // The total first, so it keeps the first colour whatever the components are called.
    let mut losses = Vec::new();
    for (name, points) in train_losses.into_iter().chain(val_losses) {
        let series = Series::new(name, in_x_order(points));
        if series.name == "loss" {
            losses.insert(0, series);
        } else {
            losses.push(series);
        }
    }
    Ok(RunCurves {
        losses,
        lr: in_x_order(lr),
        val_metrics: val_metrics
            .into_iter()
            .map(|(name, points)| Series::new(name, in_x_order(points)))
            .collect(),
    })
}

fn is_loss(key: &str) -> bool {
    key.starts_with("loss") && key != "loss_scale"
}

fn push(series: &mut BTreeMap<String, Vec<(f64, f64)>>, name: &str, point: (f64, f64)) {
    series.entry(name.to_string()).or_default().push(point);
}

/// Sorted by x, keeping the last point logged at each x: a resumed run logs again the
/// iterations after its last checkpoint, and the later values are the ones it kept.
fn in_x_order(mut points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut kept: Vec<(f64, f64)> = Vec::with_capacity(points.len());
    for point in points {
        match kept.last_mut() {
            Some(last) if last.0 == point.0 => *last = point,
            _ => kept.push(point),
        }
    }
    kept
}

/// Draws the curves of `metrics_jsonl` (see the module's comment), [`CURVES_SIZE`] pixels,
/// into the PNG `out`. A file with no usable record yet gives empty panels saying so, not an
/// error; a file that cannot be read is one.
pub fn write_curves_png(metrics_jsonl: &Path, out: &Path) -> Result<(), CurvesError> {
    let curves = read_curves(metrics_jsonl)?;
    let picture = chart::render(out, CURVES_SIZE, |root| {
        let (top, bottom) = root.split_vertically(TOP_HEIGHT);
        let (left, right) = bottom.split_horizontally(HALF_WIDTH);
        let lr = [Series::new("lr", curves.lr.clone())];
        let panels = [
            (
                &top,
                LinePanel {
                    title: "Training loss",
                    x_label: "iteration",
                    y_label: "loss",
                    series: &curves.losses,
                    y_axis: YAxis::Data,
                    legend: true,
                    empty_note: "no training records yet",
                },
            ),
            (
                &left,
                LinePanel {
                    title: "Learning rate",
                    x_label: "iteration",
                    y_label: "learning rate",
                    series: &lr,
                    y_axis: YAxis::Data,
                    legend: false,
                    empty_note: "no training records yet",
                },
            ),
            (
                &right,
                LinePanel {
                    title: "Validation metrics",
                    x_label: "epoch",
                    y_label: "metric",
                    series: &curves.val_metrics,
                    y_axis: YAxis::UnitIfItFits,
                    legend: true,
                    empty_note: "no validation records yet",
                },
            ),
        ];
        for (area, panel) in &panels {
            chart::draw_line_panel(area, panel)?;
        }
        Ok(())
    })?;
    Ok(chart::write_png(&picture, out)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::tests::{count_colour, count_ink};
    use crate::chart::PALETTE;
    use image::RgbImage;

    /// (x, y, width, height) of the three panels, as `write_curves_png` lays them out.
    const LOSS_PANEL: (u32, u32, u32, u32) = (0, 0, CURVES_SIZE.0, TOP_HEIGHT);
    const LR_PANEL: (u32, u32, u32, u32) = (0, TOP_HEIGHT, HALF_WIDTH, TOP_HEIGHT);
    const VAL_PANEL: (u32, u32, u32, u32) = (HALF_WIDTH, TOP_HEIGHT, HALF_WIDTH, TOP_HEIGHT);

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("engine-curves-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A detection run's log: five losses and the loss scale while training, mAP at each
    /// epoch's end.
    fn detection_metrics() -> String {
        let mut lines = Vec::new();
        for iter in 0..300u32 {
            let epoch = iter / 100;
            let t = iter as f64;
            let decay = (-t / 120.0).exp();
            let (objectness, rpn_box) = (0.6 * decay + 0.05, 0.3 * decay + 0.04);
            let (classifier, box_reg) = (1.2 * decay + 0.2, 0.8 * decay + 0.15);
            let loss = objectness + rpn_box + classifier + box_reg;
            let lr = 0.02 * (t / 50.0).min(1.0);
            lines.push(format!(
                r#"{{"epoch": {epoch}, "iter": {iter}, "split": "train", "time": {t}, "loss": {loss}, "loss_objectness": {objectness}, "loss_rpn_box": {rpn_box}, "loss_classifier": {classifier}, "loss_box": {box_reg}, "lr": {lr}, "images_per_s": 20.5, "loss_scale": 65536.0}}"#
            ));
            if iter % 100 == 99 {
                let map = 0.2 + 0.1 * epoch as f64;
                lines.push(format!(
                    r#"{{"epoch": {epoch}, "iter": {iter}, "split": "val", "time": {t}, "map": {map}, "images": 500}}"#
                ));
            }
        }
        lines.join("\n") + "\n"
    }

    fn draw(name: &str, metrics: &str) -> RgbImage {
        let dir = temp_dir(name);
        let metrics_path = dir.join("metrics.jsonl");
        std::fs::write(&metrics_path, metrics).unwrap();
        let out = dir.join("curves.png");
        write_curves_png(&metrics_path, &out).unwrap();
        assert!(!dir.join(".curves.png.tmp").exists());
        let picture = image::open(&out).unwrap().to_rgb8();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(picture.dimensions(), CURVES_SIZE);
        picture
    }

    #[test]
    fn detection_losses_are_read_by_name() {
        let dir = temp_dir("read");
        let metrics = dir.join("metrics.jsonl");
        std::fs::write(&metrics, detection_metrics()).unwrap();
        let curves = read_curves(&metrics).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let names: Vec<&str> = curves.losses.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "loss",
                "loss_box",
                "loss_classifier",
                "loss_objectness",
                "loss_rpn_box"
            ]
        );
        assert!(curves.losses.iter().all(|s| s.points.len() == 300));
        assert_eq!(curves.lr.len(), 300);
        assert_eq!(curves.val_metrics.len(), 1);
        assert_eq!(curves.val_metrics[0].name, "map");
        assert_eq!(
            curves.val_metrics[0].points,
            [(0.0, 0.2), (1.0, 0.30000000000000004), (2.0, 0.4)]
        );
    }

    #[test]
    fn detection_run_draws_every_loss_in_its_own_colour() {
        let picture = draw("detection", &detection_metrics());
        // Five loss series: each colour appears in the loss panel (its line and its legend
        // swatch); no sixth series was invented from `loss_scale` or `images_per_s`.
        for (i, colour) in PALETTE[..5].iter().enumerate() {
            let pixels = count_colour(&picture, LOSS_PANEL, *colour);
            assert!(pixels > 300, "loss series {i}: {pixels} pixels");
        }
        assert_eq!(count_colour(&picture, LOSS_PANEL, PALETTE[5]), 0);
        // The legend row under the title (the plot starts below it) shows each swatch.
        let legend_row = (0, 34, CURVES_SIZE.0, 20);
        for (i, colour) in PALETTE[..5].iter().enumerate() {
            let pixels = count_colour(&picture, legend_row, *colour);
            assert!(pixels >= 50, "legend swatch {i}: {pixels} pixels");
        }
        // The learning rate has a single series and no legend.
        let lr_title_rows = (0, TOP_HEIGHT, HALF_WIDTH, 40);
        assert_eq!(count_colour(&picture, lr_title_rows, PALETTE[0]), 0);
        // One series each below: the first colour, and the second in neither.
        assert!(count_colour(&picture, LR_PANEL, PALETTE[0]) > 300);
        assert!(count_colour(&picture, VAL_PANEL, PALETTE[0]) > 400);
        for panel in [LR_PANEL, VAL_PANEL] {
            assert_eq!(count_colour(&picture, panel, PALETTE[1]), 0);
        }
        // Every panel has axes, numbers and a title besides its lines.
        for panel in [LOSS_PANEL, LR_PANEL, VAL_PANEL] {
            assert!(count_ink(&picture, panel) > 3000, "{panel:?}");
        }
    }

    #[test]
    fn classification_val_loss_joins_the_loss_panel() {
        let mut lines = Vec::new();
        for iter in 0..100u32 {
            let loss = 2.3 - iter as f64 / 50.0;
            lines.push(format!(
                r#"{{"epoch": {}, "iter": {iter}, "split": "train", "time": 1, "loss": {loss}, "lr": 0.1}}"#,
                iter / 50
            ));
        }
        lines.push(r#"{"epoch": 0, "iter": 49, "split": "val", "time": 2, "top1": 0.4, "top5": 0.8, "loss": 1.9}"#.to_string());
        lines.push(r#"{"epoch": 1, "iter": 99, "split": "val", "time": 3, "top1": 0.5, "top5": 0.9, "loss": 1.5}"#.to_string());
        let metrics = lines.join("\n");
        let picture = draw("classification", &metrics);
        // train loss and val loss; top1 and top5.
        for colour in &PALETTE[..2] {
            assert!(count_colour(&picture, LOSS_PANEL, *colour) > 400);
            assert!(count_colour(&picture, VAL_PANEL, *colour) > 400);
        }
    }

    #[test]
    fn garbage_lines_and_other_splits_are_skipped() {
        let dir = temp_dir("garbage");
        let metrics = dir.join("metrics.jsonl");
        std::fs::write(
            &metrics,
            concat!(
                r#"{"epoch": 0, "iter": 5, "split": "train", "time": 1, "loss": 2.0, "lr": 0.1}"#,
                "\nnot json at all\n[1, 2]\n\n",
                r#"{"epoch": 0, "iter": 6, "time": 1, "loss": 9.0}"#,
                "\n",
                r#"{"epoch": 0, "iter": 3, "split": "train", "time": 1, "loss": 2.5}"#,
                "\n",
                r#"{"epoch": 0, "iter": 9, "split": "test", "time": 1, "top1": 0.5}"#,
                "\n",
                r#"{"epoch": 0, "iter": 9, "split": "val", "time": 1, "top1": 0.25, "iou": {"cat": 0.5}}"#,
                "\n",
                r#"{"epoch": 1, "iter": 10, "split": "train", "loss": 1."#,
            ),
        )
        .unwrap();
        let curves = read_curves(&metrics).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            curves.losses,
            [Series::new("loss", vec![(3.0, 2.5), (5.0, 2.0)])]
        );
        assert_eq!(curves.lr, [(5.0, 0.1)]);
        assert_eq!(curves.val_metrics, [Series::new("top1", vec![(0.0, 0.25)])]);
    }

    #[test]
    fn a_resumed_run_keeps_the_later_values() {
        assert_eq!(
            in_x_order(vec![
                (1.0, 5.0),
                (2.0, 4.0),
                (3.0, 3.0),
                (2.0, 6.0),
                (3.0, 7.0)
            ]),
            [(1.0, 5.0), (2.0, 6.0), (3.0, 7.0)]
        );
    }

    #[test]
    fn an_empty_file_draws_empty_panels() {
        let picture = draw("empty", "");
        for panel in [LOSS_PANEL, LR_PANEL, VAL_PANEL] {
            // Axes, title and the note are there; no series is.
            assert!(count_ink(&picture, panel) > 1000, "{panel:?}");
            assert_eq!(count_colour(&picture, panel, PALETTE[0]), 0, "{panel:?}");
        }
        // Training records but no evaluation yet: only the validation panel is empty.
        let picture = draw(
            "no-val",
            r#"{"epoch": 0, "iter": 1, "split": "train", "time": 1, "loss": 2.0, "lr": 0.1}
{"epoch": 0, "iter": 2, "split": "train", "time": 1, "loss": 1.8, "lr": 0.1}"#,
        );
        assert!(count_colour(&picture, LOSS_PANEL, PALETTE[0]) > 300);
        assert_eq!(count_colour(&picture, VAL_PANEL, PALETTE[0]), 0);
    }

    #[test]
    fn non_finite_values_do_not_break_the_picture() {
        // serde_json writes a NaN as null; a hand-edited file may hold NaN, which is not JSON.
        let picture = draw(
            "nan",
            r#"{"epoch": 0, "iter": 1, "split": "train", "time": 1, "loss": 2.0, "lr": 0.1}
{"epoch": 0, "iter": 2, "split": "train", "time": 1, "loss": null, "lr": 0.1}
{"epoch": 0, "iter": 3, "split": "train", "time": 1, "loss": NaN, "lr": 0.1}
{"epoch": 0, "iter": 4, "split": "train", "time": 1, "loss": 1.5, "lr": 0.1}
{"epoch": 0, "iter": 4, "split": "val", "time": 1, "top1": null}"#,
        );
        assert!(count_colour(&picture, LOSS_PANEL, PALETTE[0]) > 300);

        // Series handed over directly may hold NaN and infinities.
        let dir = temp_dir("nan-chart");
        let out = dir.join("chart.png");
        let series = [Series::new(
            "loss",
            vec![
                (0.0, 1.0),
                (1.0, f64::NAN),
                (2.0, f64::INFINITY),
                (3.0, 0.5),
                (4.0, 0.4),
            ],
        )];
        chart::draw_line_chart(&out, "t", "x", "y", &series).unwrap();
        assert!(out.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unreadable_file_is_an_error_naming_it() {
        let dir = temp_dir("missing");
        let err = write_curves_png(&dir.join("absent.jsonl"), &dir.join("curves.png"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.jsonl"), "{err}");
        assert!(!dir.join("curves.png").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
