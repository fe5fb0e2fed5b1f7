//! `results.md`: the three tables beside the paper's numbers, stage times, failures and the
//! exact commands.

use crate::paper::{paper_row, PaperColumn, PaperRow, PAPER_ROWS};
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

/// The paper's label of a row (`+ cosine`), or its folder name; a row of another column
/// (`inception_v3/cosine`) as `Inception-V3, + cosine`.
fn label(id: &str) -> String {
    if let Some((column, row)) = id.split_once('/') {
        if let Some(c) = crate::paper::paper_column(column) {
            return format!("{}, {}", c.label, label(row));
        }
    }
    paper_row(id).map_or(id, |p| p.label).to_string()
}

/// The rows of one of Table 6's other networks (the script's `--columns`), read from
/// `OUT/COLUMN/ROW`: each row's id is that folder, `COLUMN/ROW`.
pub struct ColumnResults {
    pub column: &'static PaperColumn,
    pub rows: Vec<RowResults>,
}

impl ColumnResults {
    /// This column's row of the paper's row `id`, when the run has it.
    fn row(&self, id: &str) -> Option<&RowResults> {
        self.rows.iter().find(|r| {
            r.id.split_once('/')
                .is_some_and(|(c, row)| c == self.column.id && row == id)
        })
    }
}

/// The three tables, the time each stage took, failures and the exact commands, as Markdown
/// (the ResNet-50-D column only).
pub fn markdown(rows: &[RowResults], context: &ReportContext) -> String {
    markdown_with_columns(rows, &[], context)
}

/// [`markdown`] with Table 6's other networks beside ResNet-50-D: their top-1 and top-5 and
/// the paper's, "not run" where a column has not the row; they are in no other table (the
/// paper transfers only ResNet-50-D). `rows` are ResNet-50-D's (empty when that column did not
/// run: every cell of it says "not run").
pub fn markdown_with_columns(
    rows: &[RowResults],
    columns: &[ColumnResults],
    context: &ReportContext,
) -> String {
    let mut md = String::new();
    let protocol = protocol(context.profile);
    introduction(&mut md, context);
    backbone_table(&mut md, rows, columns, context.profile, &protocol);
    detection_table(&mut md, rows, &protocol);
    segmentation_table(&mut md, rows, &protocol);
    let mut all: Vec<&RowResults> = rows.iter().collect();
    all.extend(columns.iter().flat_map(|c| c.rows.iter()));
    stages(&mut md, &all);
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

/// A group's row of the paper's row id, when this run has it.
type FindRow<'a> = Box<dyn Fn(&str) -> Option<&'a RowResults> + 'a>;
/// A group's cells of a row (ours, then the paper's).
type Cells<'a> = Box<dyn Fn(&RowResults, &PaperRow) -> Vec<String> + 'a>;

/// The cells of one network in a table: its rows of this run, how many of a row's cells are
/// ours (the paper's follow), and the cells of a row (an empty one for a row not run).
struct Group<'a> {
    row: FindRow<'a>,
    ours: usize,
    cells: Cells<'a>,
}

impl<'a> Group<'a> {
    /// ResNet-50-D's rows (each table's only group unless Table 6 has other columns).
    fn resnet(
        rows: &'a [RowResults],
        ours: usize,
        cells: impl Fn(&RowResults, &PaperRow) -> Vec<String> + 'a,
    ) -> Self {
        Group {
            row: Box::new(move |id| rows.iter().find(|r| r.id == id)),
            ours,
            cells: Box::new(cells),
        }
    }
}

/// One of the paper's tables: a title, how it was measured, and a line per row of the paper,
/// in its order, whose cells (after the row's label) come from each group in turn. Every paper
/// number is printed: a row this run did not train keeps the paper's cells and says "not run"
/// in ours.
fn table(md: &mut String, title: &str, protocol: &str, columns: &[String], groups: &[Group]) {
    let _ = writeln!(md, "\n## {title}\n");
    let _ = writeln!(md, "{protocol}\n");
    let _ = writeln!(md, "| Refinements | {} |", columns.join(" | "));
    let _ = writeln!(md, "|---|{}", "---:|".repeat(columns.len()));
    for paper in &PAPER_ROWS {
        let mut line = Vec::new();
        for group in groups {
            match (group.row)(paper.id) {
                Some(r) => line.extend((group.cells)(r, paper)),
                None => {
                    // The paper's cells are those computed for an empty row of ours; the cells
                    // before them are ours.
                    let empty = RowResults {
                        id: paper.id.to_string(),
                        ..RowResults::default()
                    };
                    let mut cells = (group.cells)(&empty, paper);
                    cells
                        .iter_mut()
                        .take(group.ours)
                        .for_each(|c| *c = NOT_RUN.to_string());
                    line.extend(cells);
                }
            }
        }
        let _ = writeln!(md, "| {} | {} |", paper.label, line.join(" | "));
    }
}

fn headers(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// What Table 6's other columns are and how they were trained, after the table's protocol.
fn columns_protocol(profile: &str, columns: &[ColumnResults]) -> String {
    let names: Vec<&str> = columns.iter().map(|c| c.column.label).collect();
    let names = names.join(" and ");
    let how = if profile == "paper" {
        "trained with `configs/backbone/imagenet-COLUMN-ROW.toml` (Inception-V3 at 299 px, \
         evaluated at shorter side 342, centre crop 299; MobileNet at 224), their distilled rows \
         from the same ResNet-152-D teachers as ResNet-50-D's"
    } else {
        "trained with `configs/tables/COLUMN/ROW.toml` (Fashion-MNIST upscaled: Inception-V3 to \
         75 px without its auxiliary classifier, on 10,000 of the training images unless the \
         profile sets fewer; MobileNet to 32 px), their distilled rows from ResNet-34-D teachers \
         trained at the column's input size (`COLUMN/teacher*`)"
    };
    format!(
        "{names} (`scripts/transfer_tables.sh --columns`, folders `COLUMN/ROW`): {how}. Backbones \
         only, as in the paper, which transfers only ResNet-50-D. The paper's numbers are Table \
         6's; its Table 6 starts at the efficient row, so their B-standard is Table 3's baseline \
         setting and numbers (no zero-gamma in any row of theirs: it needs residual blocks). \
         `tables.png` shows the ResNet-50-D column only."
    )
}

/// Table 6: each backbone's top-1 and top-5, and the other networks' beside them.
fn backbone_table(
    md: &mut String,
    rows: &[RowResults],
    columns: &[ColumnResults],
    profile: &str,
    protocol: &Protocol,
) {
    let resnet = |r: &RowResults, p: &PaperRow| {
        vec![
            percent(r.top1),
            percent(r.top5),
            paper(p.top1),
            paper(p.top5),
        ]
    };
    if columns.is_empty() {
        table(
            md,
            "Table 6: the backbones",
            protocol.backbone,
            &headers(&["Top-1", "Top-5", "Paper top-1", "Paper top-5"]),
            &[Group::resnet(rows, 2, resnet)],
        );
        return;
    }
    let mut names = headers(&[
        "ResNet-50-D top-1",
        "ResNet-50-D top-5",
        "Paper ResNet-50-D top-1",
        "Paper ResNet-50-D top-5",
    ]);
    let mut groups = vec![Group::resnet(rows, 2, resnet)];
    for c in columns {
        let label = c.column.label;
        names.extend([
            format!("{label} top-1"),
            format!("{label} top-5"),
            format!("Paper {label} top-1"),
            format!("Paper {label} top-5"),
        ]);
        groups.push(Group {
            row: Box::new(move |id| c.row(id)),
            ours: 2,
            cells: Box::new(move |r, p| {
                let numbers = c.column.paper(p.id);
                vec![
                    percent(r.top1),
                    percent(r.top5),
                    paper(numbers.map(|n| n.0)),
                    paper(numbers.map(|n| n.1)),
                ]
            }),
        });
    }
    let protocol = format!(
        "{}\n\n{}",
        protocol.backbone,
        columns_protocol(profile, columns)
    );
    table(md, "Table 6: the backbones", &protocol, &names, &groups);
}

/// Table 8: Faster R-CNN mAP from each backbone.
fn detection_table(md: &mut String, rows: &[RowResults], protocol: &Protocol) {
    table(
        md,
        "Table 8: Faster R-CNN fine-tuned from each backbone",
        protocol.detection,
        &headers(&["Top-1", "mAP", "Paper top-1", "Paper mAP"]),
        &[Group::resnet(rows, 2, |r, p| {
            vec![
                percent(r.top1),
                percent(r.map),
                paper(p.top1),
                paper(Some(p.map)),
            ]
        })],
    );
}

/// Table 9: FCN pixel accuracy and mIoU from each backbone.
fn segmentation_table(md: &mut String, rows: &[RowResults], protocol: &Protocol) {
    table(
        md,
        "Table 9: FCN fine-tuned from each backbone",
        protocol.segmentation,
        &headers(&[
            "Top-1",
            "PixAcc",
            "mIoU",
            "Paper top-1",
            "Paper PixAcc",
            "Paper mIoU",
        ]),
        &[Group::resnet(rows, 3, |r, p| {
            vec![
                percent(r.top1),
                percent(r.pix_acc),
                percent(r.miou),
                paper(p.top1),
                paper(Some(p.pix_acc)),
                paper(Some(p.miou)),
            ]
        })],
    );
}

/// Minutes per stage, failed stages with their logs, and every command that ran.
fn stages(md: &mut String, rows: &[&RowResults]) {
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
