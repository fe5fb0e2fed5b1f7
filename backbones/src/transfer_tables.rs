//! The paper's Tables 6, 8 and 9 from the folder `scripts/transfer_tables.sh` fills: each row's
//! backbone, detection and segmentation evaluations (`ROW/{backbone,detection,segmentation}.json`),
//! the wall time and command of every finished stage (`ROW/STAGE.done`) and the log of every
//! failed one (`ROW/STAGE.failed`), written as `results.md` beside the paper's numbers and drawn
//! as `tables.png`.

use crate::engine::chart::{self, Area, ChartError};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One row of the paper's transfer tables: its folder name and the paper's label and numbers
/// (ResNet-50-D on ImageNet, Faster R-CNN on VOC07 test, FCN on ADE20K; `None` where the
/// paper gives none).
pub struct PaperRow {
    pub id: &'static str,
    pub label: &'static str,
    pub top1: Option<f64>,
    pub top5: Option<f64>,
    pub map: f64,
    pub pix_acc: f64,
    pub miou: f64,
}

/// The paper's rows, in its order: Table 6 top-1 and top-5 of the ResNet-50-D rows (the
/// efficient row's are Table 5's), B-standard's top-1 as Tables 8 and 9 list it (no top-5 is
/// given); Table 8 mAP; Table 9 pixel accuracy and mIoU.
pub const PAPER_ROWS: [PaperRow; 7] = [
    row(
        "b-standard",
        "B-standard",
        Some(76.14),
        None,
        77.54,
        78.08,
        37.05,
    ),
    row(
        "d-efficient",
        "D-efficient",
        Some(77.16),
        Some(93.52),
        78.30,
        78.88,
        38.88,
    ),
    row(
        "cosine",
        "+ cosine",
        Some(77.91),
        Some(93.81),
        79.23,
        79.25,
        39.33,
    ),
    row(
        "smooth",
        "+ smooth",
        Some(78.31),
        Some(94.09),
        80.71,
        78.64,
        38.75,
    ),
    row(
        "distill",
        "+ distill w/o mixup",
        Some(78.67),
        Some(94.36),
        80.96,
        78.97,
        38.90,
    ),
    row(
        "mixup",
        "+ mixup w/o distill",
        Some(79.15),
        Some(94.58),
        81.10,
        78.47,
        37.99,
    ),
    row(
        "distill-mixup",
        "+ distill w/ mixup",
        Some(79.29),
        Some(94.63),
        81.33,
        78.72,
        38.40,
    ),
];

const fn row(
    id: &'static str,
    label: &'static str,
    top1: Option<f64>,
    top5: Option<f64>,
    map: f64,
    pix_acc: f64,
    miou: f64,
) -> PaperRow {
    PaperRow {
        id,
        label,
        top1,
        top5,
        map,
        pix_acc,
        miou,
    }
}

pub fn paper_row(id: &str) -> Option<&'static PaperRow> {
    PAPER_ROWS.iter().find(|r| r.id == id)
}

#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("unknown row '{0}': the rows are b-standard, d-efficient, cosine, smooth, distill, mixup, distill-mixup")]
    UnknownRow(String),
    #[error(transparent)]
    Chart(#[from] ChartError),
}

type Result<T> = std::result::Result<T, TablesError>;

/// The three training stages of a row and the evaluation that follows each.
pub const STAGES: [(&str, &str); 3] = [
    ("backbone", "backbone-eval"),
    ("detection", "detection-eval"),
    ("segmentation", "segmentation-eval"),
];

/// A finished stage: how long it took and what ran.
#[derive(Debug, Clone, PartialEq)]
pub struct StageRecord {
    pub seconds: f64,
    pub command: String,
}

/// What one row's folder holds. Metrics are fractions (0-1), as the commands print them.
#[derive(Debug, Default)]
pub struct RowResults {
    pub id: String,
    pub top1: Option<f64>,
    pub top5: Option<f64>,
    pub map: Option<f64>,
    pub pix_acc: Option<f64>,
    pub miou: Option<f64>,
    /// (stage, record) of every finished stage, in running order.
    pub finished: Vec<(String, StageRecord)>,
    /// (stage, its log) of every failed stage.
    pub failed: Vec<(String, PathBuf)>,
}

impl RowResults {
    /// Seconds spent in a training stage and its evaluation, when both finished.
    pub fn stage_seconds(&self, stage: &str, eval: &str) -> Option<f64> {
        let find = |name: &str| {
            self.finished
                .iter()
                .find(|(s, _)| s == name)
                .map(|(_, r)| r.seconds)
        };
        Some(find(stage)? + find(eval).unwrap_or(0.0))
    }
}

/// Reads the files the script leaves for `id` under `dir`. Missing files are stages that did
/// not run (yet); files that exist but cannot be read are errors naming them.
pub fn read_row(dir: &Path, id: &str) -> Result<RowResults> {
    let row_dir = dir.join(id);
    let mut results = RowResults {
        id: id.to_string(),
        ..RowResults::default()
    };
    let metric = |file: &str, key: &str| -> Result<Option<f64>> {
        let path = row_dir.join(file);
        let Some(text) = read_optional(&path)? else {
            return Ok(None);
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| TablesError::File {
                path: path.clone(),
                message: format!("not the JSON an evaluation prints: {e}"),
            })?;
        match value.get(key) {
            Some(v) => v.as_f64().map(Some).ok_or_else(|| TablesError::File {
                path: path.clone(),
                message: format!("\"{key}\" is not a number"),
            }),
            None => Err(TablesError::File {
                path,
                message: format!("no \"{key}\""),
            }),
        }
    };
    results.top1 = metric("backbone.json", "top1")?;
    results.top5 = metric("backbone.json", "top5")?;
    results.map = metric("detection.json", "map")?;
    results.pix_acc = metric("segmentation.json", "pixAcc")?;
    results.miou = metric("segmentation.json", "mIoU")?;
    for (train, eval) in STAGES {
        for stage in [train, eval] {
            let done = row_dir.join(format!("{stage}.done"));
            if let Some(text) = read_optional(&done)? {
                results
                    .finished
                    .push((stage.to_string(), parse_done(&text, &done)?));
            }
            let failed = row_dir.join(format!("{stage}.failed"));
            if let Some(text) = read_optional(&failed)? {
                results
                    .failed
                    .push((stage.to_string(), PathBuf::from(text.trim())));
            }
        }
    }
    Ok(results)
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TablesError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

/// `seconds S` and `command C` lines, as the script writes them.
fn parse_done(text: &str, path: &Path) -> Result<StageRecord> {
    let mut seconds = None;
    let mut command = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("seconds ") {
            seconds = v.trim().parse::<f64>().ok().filter(|s| s.is_finite());
        } else if let Some(v) = line.strip_prefix("command ") {
            command = Some(v.trim().to_string());
        }
    }
    match (seconds, command) {
        (Some(seconds), Some(command)) => Ok(StageRecord { seconds, command }),
        _ => Err(TablesError::File {
            path: path.to_path_buf(),
            message: "expected a `seconds S` and a `command C` line".to_string(),
        }),
    }
}

/// What the report says about where and how the numbers were made.
pub struct ReportContext<'a> {
    pub profile: &'a str,
    pub date: &'a str,
    pub machine: &'a str,
    /// `scripts/transfer_tables.sh --dry-run`: a few steps of everything, numbers meaningless.
    pub dry_run: bool,
    /// Lines the script adds (for instance which recipes ran in fp32 on a CPU).
    pub notes: &'a [String],
}

/// How each table's numbers of a profile were measured: the data, the metric, the checkpoint.
struct Protocol {
    backbone: &'static str,
    detection: &'static str,
    segmentation: &'static str,
}

/// Detection and segmentation precision, the same for every row (the script sets it).
const FINE_TUNING_PRECISION: &str = "Detection and segmentation fine-tune every row the same \
    way, in fp32, as GluonCV did; fp16 is only a backbone recipe's choice (the efficient rows).";

fn protocol(profile: &str) -> Protocol {
    if profile == "paper" {
        Protocol {
            backbone: "ImageNet validation: shorter side 256, centre crop 224, each row's \
                       `best.safetensors`. Paper: Table 6 (the ResNet-50-D rows; the efficient \
                       row's top-5 is Table 5's); B-standard's top-1 is the one Tables 8 and 9 \
                       list (the paper gives no top-5 for it).",
            detection: "Faster R-CNN C4 (`configs/detection/voc-c4.toml`) fine-tuned on VOC07+12 \
                        trainval; VOC07 test, 11-point mAP as GluonCV's VOC07MApMetric computes \
                        it (`detect eval --metric voc07-gluoncv`), from `best.safetensors`.",
            segmentation: "FCN (`configs/segmentation/ade20k-fcn.toml`) fine-tuned on ADE20K \
                           training; ADE20K validation, whole images, multi-scale as GluonCV's \
                           test.py (`segment eval --multi-scale`: scales 0.5-1.75 x 520, a 480 \
                           sliding window with stride 320, horizontal flips), from the final \
                           epoch's `last.safetensors`, as GluonCV reports (`best.safetensors` \
                           stays in the run folder).",
        }
    } else {
        Protocol {
            backbone: "Fashion-MNIST test, each row's `best.safetensors`.",
            detection: "Faster R-CNN FPN (`configs/detection/fashion-scenes-fpn.toml`) on the \
                        scenes' trainval split; their test split, VOC07 11-point mAP \
                        (`detect eval --metric voc07`), from `best.safetensors`.",
            segmentation: "FCN (`configs/segmentation/fashion-scenes-fcn.toml`) on the scenes' \
                           training split; their validation split, single-scale whole images, \
                           from the final epoch's `last.safetensors`.",
        }
    }
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{:.2}", 100.0 * v))
}

fn paper(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:.2}"))
}

fn minutes(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "—".to_string(), |s| format!("{:.1}", s / 60.0))
}

/// The three tables, the time each stage took, failures and the exact commands, as Markdown.
fn label(id: &str) -> &str {
    paper_row(id).map_or(id, |p| p.label)
}

pub fn markdown(rows: &[RowResults], context: &ReportContext) -> String {
    let mut md = String::new();
    let dry = if context.dry_run { " (DRY RUN)" } else { "" };
    let _ = writeln!(
        md,
        "# Transfer tables, profile `{}`{dry}\n",
        context.profile
    );
    if context.dry_run {
        let _ = writeln!(
            md,
            "**This is a dry run** (`scripts/transfer_tables.sh --dry-run`): every stage ran its \
             real recipe for a few optimiser steps (on a CPU with a smaller batch) and every \
             evaluation scored a handful of images. It shows that data, recipes, paths and the \
             first steps' memory work; its numbers mean nothing.\n"
        );
    }
    let _ = writeln!(
        md,
        "Measured {} on {}. Ours (percent) beside the paper's (ResNet-50 on ImageNet; Faster \
         R-CNN on VOC07 test, 11-point mAP; FCN on ADE20K validation).",
        context.date, context.machine
    );
    let _ = writeln!(md, "\n{FINE_TUNING_PRECISION}");
    for note in context.notes {
        let _ = writeln!(md, "\n{note}");
    }
    let protocol = protocol(context.profile);
    if context.profile != "paper" {
        let _ = writeln!(
            md,
            "\nOurs come from small backbones trained on Fashion-MNIST and fine-tuned on the \
             Fashion scenes (`datasets synth`): detection is torchvision's FPN design (the \
             paper's is GluonCV's C4, which costs a CPU more per image) scored by VOC07 \
             11-point mAP on the scenes' test split, segmentation pixel accuracy and mIoU on their validation split. At \
             this scale the numbers say whether a refinement helps here, not what it does on \
             ImageNet; no row is adjusted."
        );
    }
    let _ = writeln!(md, "\n## Table 6: the backbones\n");
    let _ = writeln!(md, "{}\n", protocol.backbone);
    let _ = writeln!(
        md,
        "| Refinements | Top-1 | Top-5 | Paper top-1 | Paper top-5 |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    for r in rows {
        let p = paper_row(&r.id);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            label(&r.id),
            percent(r.top1),
            percent(r.top5),
            paper(p.and_then(|p| p.top1)),
            paper(p.and_then(|p| p.top5))
        );
    }
    let _ = writeln!(
        md,
        "\n## Table 8: Faster R-CNN fine-tuned from each backbone\n"
    );
    let _ = writeln!(md, "{}\n", protocol.detection);
    let _ = writeln!(
        md,
        "| Refinements | Top-1 | mAP | Paper top-1 | Paper mAP |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    for r in rows {
        let p = paper_row(&r.id);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            label(&r.id),
            percent(r.top1),
            percent(r.map),
            paper(p.and_then(|p| p.top1)),
            paper(p.map(|p| p.map))
        );
    }
    let _ = writeln!(md, "\n## Table 9: FCN fine-tuned from each backbone\n");
    let _ = writeln!(md, "{}\n", protocol.segmentation);
    let _ = writeln!(
        md,
        "| Refinements | Top-1 | PixAcc | mIoU | Paper top-1 | Paper PixAcc | Paper mIoU |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let p = paper_row(&r.id);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            label(&r.id),
            percent(r.top1),
            percent(r.pix_acc),
            percent(r.miou),
            paper(p.and_then(|p| p.top1)),
            paper(p.map(|p| p.pix_acc)),
            paper(p.map(|p| p.miou))
        );
    }
    let _ = writeln!(
        md,
        "\n## Time per stage (minutes; training plus its evaluation)\n"
    );
    let _ = writeln!(md, "| Row | Backbone | Detection | Segmentation |");
    let _ = writeln!(md, "|---|---:|---:|---:|");
    for r in rows {
        let [b, d, s] = STAGES.map(|(train, eval)| minutes(r.stage_seconds(train, eval)));
        let _ = writeln!(md, "| {} | {b} | {d} | {s} |", label(&r.id));
    }
    let failed: Vec<_> = rows
        .iter()
        .flat_map(|r| r.failed.iter().map(move |(s, log)| (&r.id, s, log)))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(md, "\n## Failed stages\n");
        for (row, stage, log) in failed {
            let _ = writeln!(md, "- {row} {stage}: see `{}`", log.display());
        }
    }
    let _ = writeln!(md, "\n## Commands\n");
    for r in rows {
        for (stage, record) in &r.finished {
            let _ = writeln!(md, "- {} {stage}: `{}`", r.id, record.command.trim_end());
        }
    }
    md
}

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

/// Reads every row, writes `dir/results.md` and `dir/tables.png`, and returns the Markdown.
pub fn write_report(dir: &Path, row_ids: &[String], context: &ReportContext) -> Result<String> {
    let rows = row_ids
        .iter()
        .map(|id| {
            paper_row(id).ok_or_else(|| TablesError::UnknownRow(id.clone()))?;
            read_row(dir, id)
        })
        .collect::<Result<Vec<_>>>()?;
    let md = markdown(&rows, context);
    let path = dir.join("results.md");
    crate::atomic_write::write(&path, md.as_bytes()).map_err(|e| TablesError::File {
        path: path.clone(),
        message: e.to_string(),
    })?;
    draw(&rows, &dir.join("tables.png"))?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_row_folder_becomes_table_lines_with_times_failures_and_commands() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            &d.join("smooth/backbone.json"),
            r#"{"top1": 0.9012, "top5": 0.998, "loss": 0.3}"#,
        );
        write(
            &d.join("smooth/backbone.done"),
            "seconds 120.0\ncommand backbone train --config x\n",
        );
        write(
            &d.join("smooth/backbone-eval.done"),
            "seconds 6\ncommand backbone eval --ckpt y\n",
        );
        write(
            &d.join("smooth/detection.failed"),
            "/runs/t/smooth/detection.log\n",
        );
        write(
            &d.join("smooth/segmentation.json"),
            r#"{"pixAcc": 0.85, "mIoU": 0.5123}"#,
        );
        let md = write_report(
            d,
            &["smooth".to_string()],
            &ReportContext {
                profile: "mini",
                date: "2026-11-23",
                machine: "test",
                dry_run: false,
                notes: &[],
            },
        )
        .unwrap();
        assert!(
            md.contains("| + smooth | 90.12 | 99.80 | 78.31 | 94.09 |"),
            "{md}"
        );
        assert!(
            md.contains("| + smooth | 90.12 | — | 78.31 | 80.71 |"),
            "{md}"
        );
        assert!(
            md.contains("| + smooth | 90.12 | 85.00 | 51.23 | 78.31 | 78.64 | 38.75 |"),
            "{md}"
        );
        assert!(!md.contains("DRY RUN"), "{md}");
        assert!(md.contains("| + smooth | 2.1 | — | — |"), "{md}");
        assert!(
            md.contains("- smooth detection: see `/runs/t/smooth/detection.log`"),
            "{md}"
        );
        assert!(
            md.contains("- smooth backbone: `backbone train --config x`"),
            "{md}"
        );
        assert!(d.join("results.md").is_file() && d.join("tables.png").is_file());
    }

    /// The paper's numbers as its tables print them: B-standard's top-1 from Tables 8 and 9,
    /// the top-5 of Table 6's rows (Table 5's for the efficient row).
    #[test]
    fn the_paper_columns_hold_the_papers_numbers() {
        let rows: Vec<RowResults> = PAPER_ROWS
            .iter()
            .map(|p| RowResults {
                id: p.id.to_string(),
                ..RowResults::default()
            })
            .collect();
        let md = markdown(
            &rows,
            &ReportContext {
                profile: "paper",
                date: "d",
                machine: "m",
                dry_run: false,
                notes: &[],
            },
        );
        for line in [
            "| B-standard | — | — | 76.14 | — |",
            "| D-efficient | — | — | 77.16 | 93.52 |",
            "| + cosine | — | — | 77.91 | 93.81 |",
            "| + smooth | — | — | 78.31 | 94.09 |",
            "| + distill w/o mixup | — | — | 78.67 | 94.36 |",
            "| + mixup w/o distill | — | — | 79.15 | 94.58 |",
            "| + distill w/ mixup | — | — | 79.29 | 94.63 |",
            "| B-standard | — | — | 76.14 | 77.54 |",
            "| B-standard | — | — | — | 76.14 | 78.08 | 37.05 |",
        ] {
            assert!(md.contains(line), "missing {line:?} in\n{md}");
        }
        assert!(md.contains("--metric voc07-gluoncv"), "{md}");
        assert!(md.contains("`segment eval --multi-scale`"), "{md}");
        assert!(md.contains("`last.safetensors`"), "{md}");
        assert!(md.contains("in fp32"), "{md}");
    }

    #[test]
    fn a_dry_run_says_so_with_the_scripts_notes() {
        let dir = tempfile::tempdir().unwrap();
        let notes = ["On this CPU, recipes that ask for fp16 ran in fp32: x.toml.".to_string()];
        let md = write_report(
            dir.path(),
            &["cosine".to_string()],
            &ReportContext {
                profile: "ci",
                date: "d",
                machine: "m",
                dry_run: true,
                notes: &notes,
            },
        )
        .unwrap();
        assert!(
            md.starts_with("# Transfer tables, profile `ci` (DRY RUN)"),
            "{md}"
        );
        assert!(md.contains("**This is a dry run**"), "{md}");
        assert!(md.contains(&notes[0]), "{md}");
        assert!(md.contains("single-scale whole images"), "{md}");
        assert!(md.contains("(`detect eval --metric voc07`)"), "{md}");
    }

    #[test]
    fn a_broken_evaluation_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("cosine/detection.json"),
            "{\"map\": \"high\"}",
        );
        let err = read_row(dir.path(), "cosine").unwrap_err().to_string();
        assert!(
            err.contains("detection.json") && err.contains("\"map\" is not a number"),
            "{err}"
        );
    }
}
