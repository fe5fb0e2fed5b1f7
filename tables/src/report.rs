//! `results.md`: the three tables beside the paper's numbers, stage times, failures and the
//! exact commands.

use crate::paper::{paper_row, PaperRow, PAPER_ROWS};
use crate::rows::{RowResults, STAGES};
use std::fmt::Write as _;

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

/// The paper's label of a row (`+ cosine`), or its folder name.
fn label(id: &str) -> &str {
    paper_row(id).map_or(id, |p| p.label)
}

/// The three tables, the time each stage took, failures and the exact commands, as Markdown.
pub fn markdown(rows: &[RowResults], context: &ReportContext) -> String {
    let mut md = String::new();
    let protocol = protocol(context.profile);
    introduction(&mut md, context);
    backbone_table(&mut md, rows, &protocol);
    detection_table(&mut md, rows, &protocol);
    segmentation_table(&mut md, rows, &protocol);
    stages(&mut md, rows);
    md
}

/// Title, what kind of run, where and when, and the script's notes.
fn introduction(md: &mut String, context: &ReportContext) {
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
}

/// What a cell of ours says for a row this profile did not run.
const NOT_RUN: &str = "not run";

/// One of the paper's tables: a title, how it was measured, and a line per row of the paper,
/// in its order, whose cells (after the row's label) come from `cells`. Every paper number is
/// printed: a row this run did not train keeps the paper's cells and says "not run" in ours.
fn table(
    md: &mut String,
    title: &str,
    protocol: &str,
    columns: &[&str],
    rows: &[RowResults],
    cells: impl Fn(&RowResults, Option<&PaperRow>) -> Vec<String>,
) {
    let _ = writeln!(md, "\n## {title}\n");
    let _ = writeln!(md, "{protocol}\n");
    let _ = writeln!(md, "| Refinements | {} |", columns.join(" | "));
    let _ = writeln!(md, "|---|{}", "---:|".repeat(columns.len()));
    for paper in &PAPER_ROWS {
        let line = match rows.iter().find(|r| r.id == paper.id) {
            Some(r) => cells(r, Some(paper)),
            None => {
                // The paper's cells are those computed for an empty row of ours; the cells
                // before them are ours.
                let empty = RowResults {
                    id: paper.id.to_string(),
                    ..RowResults::default()
                };
                let mut line = cells(&empty, Some(paper));
                let ours = columns.iter().filter(|c| !c.starts_with("Paper")).count();
                line.iter_mut()
                    .take(ours)
                    .for_each(|c| *c = NOT_RUN.to_string());
                line
            }
        };
        let _ = writeln!(md, "| {} | {} |", paper.label, line.join(" | "));
    }
}

/// Table 6: each backbone's top-1 and top-5.
fn backbone_table(md: &mut String, rows: &[RowResults], protocol: &Protocol) {
    table(
        md,
        "Table 6: the backbones",
        protocol.backbone,
        &["Top-1", "Top-5", "Paper top-1", "Paper top-5"],
        rows,
        |r, p| {
            vec![
                percent(r.top1),
                percent(r.top5),
                paper(p.and_then(|p| p.top1)),
                paper(p.and_then(|p| p.top5)),
            ]
        },
    );
}

/// Table 8: Faster R-CNN mAP from each backbone.
fn detection_table(md: &mut String, rows: &[RowResults], protocol: &Protocol) {
    table(
        md,
        "Table 8: Faster R-CNN fine-tuned from each backbone",
        protocol.detection,
        &["Top-1", "mAP", "Paper top-1", "Paper mAP"],
        rows,
        |r, p| {
            vec![
                percent(r.top1),
                percent(r.map),
                paper(p.and_then(|p| p.top1)),
                paper(p.map(|p| p.map)),
            ]
        },
    );
}

/// Table 9: FCN pixel accuracy and mIoU from each backbone.
fn segmentation_table(md: &mut String, rows: &[RowResults], protocol: &Protocol) {
    table(
        md,
        "Table 9: FCN fine-tuned from each backbone",
        protocol.segmentation,
        &[
            "Top-1",
            "PixAcc",
            "mIoU",
            "Paper top-1",
            "Paper PixAcc",
            "Paper mIoU",
        ],
        rows,
        |r, p| {
            vec![
                percent(r.top1),
                percent(r.pix_acc),
                percent(r.miou),
                paper(p.and_then(|p| p.top1)),
                paper(p.map(|p| p.pix_acc)),
                paper(p.map(|p| p.miou)),
            ]
        },
    );
}

/// Minutes per stage, failed stages with their logs, and every command that ran.
fn stages(md: &mut String, rows: &[RowResults]) {
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
}
