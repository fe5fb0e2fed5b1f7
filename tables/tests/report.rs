//! The report from row folders like the ones the script leaves.

use std::path::Path;
use tables::{
    markdown, markdown_with_columns, read_row, write_report, write_report_with_columns,
    ColumnResults, ReportContext, RowResults, PAPER_COLUMNS, PAPER_ROWS,
};

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

/// A run of two rows (the demo's) still prints every number of the paper's three tables: the
/// rows it did not train keep the paper's cells and say "not run" in ours.
#[test]
fn a_run_of_some_rows_prints_every_paper_row() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("smooth/backbone.json"),
        r#"{"top1": 0.9012, "top5": 0.998, "loss": 0.3}"#,
    );
    let md = write_report(
        dir.path(),
        &["smooth".to_string()],
        &ReportContext {
            profile: "demo",
            date: "d",
            machine: "m",
            dry_run: false,
            notes: &[],
        },
    )
    .unwrap();
    for line in [
        "| B-standard | not run | not run | 76.14 | — |",
        "| + smooth | 90.12 | 99.80 | 78.31 | 94.09 |",
        "| + distill w/ mixup | not run | not run | 79.29 | 94.63 |",
        "| + distill w/ mixup | not run | not run | 79.29 | 81.33 |",
        "| D-efficient | not run | not run | not run | 77.16 | 78.88 | 38.88 |",
    ] {
        assert!(md.contains(line), "missing {line:?} in\n{md}");
    }
    // Seven paper rows in each of the three tables.
    assert_eq!(md.matches("| + mixup w/o distill |").count(), 3, "{md}");
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

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn context(profile: &str) -> ReportContext<'static> {
    ReportContext {
        profile: if profile == "paper" { "paper" } else { "mini" },
        date: "d",
        machine: "m",
        dry_run: false,
        notes: &[],
    }
}

/// `--columns resnet50d,inception_v3,mobilenet_v1`: Table 6 holds the other two networks'
/// rows (from `COLUMN/ROW/`) beside ResNet-50-D's, ours and the paper's, "not run" where a
/// column has not the row; Tables 8 and 9 stay ResNet-50-D's; times, failures and commands
/// name the columns' rows.
#[test]
fn the_other_columns_sit_beside_resnet_in_table_6_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &d.join("cosine/backbone.json"),
        r#"{"top1": 0.91, "top5": 0.99, "loss": 0.3}"#,
    );
    write(
        &d.join("inception_v3/cosine/backbone.json"),
        r#"{"top1": 0.855, "top5": 0.98, "loss": 0.4}"#,
    );
    write(
        &d.join("inception_v3/cosine/backbone.done"),
        "seconds 114\ncommand backbone train --config configs/tables/inception_v3/cosine.toml\n",
    );
    write(
        &d.join("inception_v3/cosine/backbone-eval.done"),
        "seconds 6\ncommand backbone eval --ckpt x\n",
    );
    write(
        &d.join("mobilenet_v1/smooth/backbone.failed"),
        "/runs/t/mobilenet_v1/smooth/backbone.log\n",
    );
    let md = write_report_with_columns(
        d,
        &strings(&["cosine", "smooth"]),
        &strings(&["resnet50d", "inception_v3", "mobilenet_v1"]),
        &context("mini"),
    )
    .unwrap();
    for line in [
        "| Refinements | ResNet-50-D top-1 | ResNet-50-D top-5 | Paper ResNet-50-D top-1 | \
         Paper ResNet-50-D top-5 | Inception-V3 top-1 | Inception-V3 top-5 | Paper Inception-V3 \
         top-1 | Paper Inception-V3 top-5 | MobileNet top-1 | MobileNet top-5 | Paper MobileNet \
         top-1 | Paper MobileNet top-5 |",
        "| + cosine | 91.00 | 99.00 | 77.91 | 93.81 | 85.50 | 98.00 | 78.19 | 94.06 | — | — | 72.83 | 91.00 |",
        "| + smooth | — | — | 78.31 | 94.09 | — | — | 78.40 | 94.13 | — | — | 72.93 | 91.14 |",
        "| B-standard | not run | not run | 76.14 | — | not run | not run | 77.32 | 93.43 | not run | not run | 69.03 | 88.71 |",
        "| + distill w/ mixup | not run | not run | 79.29 | 94.63 | not run | not run | 78.34 | 94.16 | not run | not run | 72.51 | 91.02 |",
        // Tables 8 and 9: ResNet-50-D only.
        "| Refinements | Top-1 | mAP | Paper top-1 | Paper mAP |",
        "| + cosine | 91.00 | — | 77.91 | 79.23 |",
        "| + cosine | 91.00 | — | — | 77.91 | 79.25 | 39.33 |",
        "| Inception-V3, + cosine | 2.0 | — | — |",
        "| MobileNet, + smooth | — | — | — |",
        "- mobilenet_v1/smooth backbone: see `/runs/t/mobilenet_v1/smooth/backbone.log`",
        "- inception_v3/cosine backbone: `backbone train --config configs/tables/inception_v3/cosine.toml`",
        "- inception_v3/cosine backbone-eval: `backbone eval --ckpt x`",
    ] {
        assert!(md.contains(line), "missing {line:?} in\n{md}");
    }
    assert!(md.contains("Backbones only, as in the paper"), "{md}");
    assert!(md.contains("`configs/tables/COLUMN/ROW.toml`"), "{md}");
    assert!(
        md.contains("`tables.png` shows the ResNet-50-D column only"),
        "{md}"
    );
    // The columns are in Table 6 alone: one header each.
    assert_eq!(md.matches("Inception-V3 top-1").count(), 2, "{md}");
    assert!(d.join("results.md").is_file() && d.join("tables.png").is_file());

    // The default (resnet50d alone) is the report without columns, word for word.
    let only = write_report(d, &strings(&["cosine", "smooth"]), &context("mini")).unwrap();
    let same = write_report_with_columns(
        d,
        &strings(&["cosine", "smooth"]),
        &strings(&["resnet50d"]),
        &context("mini"),
    )
    .unwrap();
    assert_eq!(only, same);
    assert!(
        !only.contains("Inception") && !only.contains("MobileNet"),
        "{only}"
    );
    assert!(only.contains("| Refinements | Top-1 | Top-5 | Paper top-1 | Paper top-5 |"));

    // Without resnet50d, ResNet-50-D's cells say "not run" in every table.
    let md = write_report_with_columns(
        d,
        &strings(&["cosine"]),
        &strings(&["mobilenet_v1", "inception_v3", "mobilenet_v1"]),
        &context("mini"),
    )
    .unwrap();
    for line in [
        "| + cosine | not run | not run | 77.91 | 93.81 | 85.50 | 98.00 | 78.19 | 94.06 | — | — | 72.83 | 91.00 |",
        "| + cosine | not run | not run | 77.91 | 79.23 |",
    ] {
        assert!(md.contains(line), "missing {line:?} in\n{md}");
    }
    // The columns in the paper's order, whatever the order asked, each once.
    assert!(
        md.contains("Paper ResNet-50-D top-5 | Inception-V3 top-1"),
        "{md}"
    );
    assert_eq!(md.matches("| MobileNet top-1 |").count(), 1, "{md}");

    let err = write_report_with_columns(
        d,
        &strings(&["cosine"]),
        &strings(&["resnet50d", "inception_v4"]),
        &context("mini"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown column 'inception_v4'"), "{err}");
}

/// The paper's numbers of the other two columns: Table 6's, B-standard's from Table 3's
/// baseline, and the paper profile names their ImageNet recipes.
#[test]
fn the_other_columns_hold_the_papers_numbers() {
    let columns: Vec<ColumnResults> = PAPER_COLUMNS
        .iter()
        .map(|column| ColumnResults {
            column,
            rows: PAPER_ROWS
                .iter()
                .map(|p| RowResults {
                    id: format!("{}/{}", column.id, p.id),
                    ..RowResults::default()
                })
                .collect(),
        })
        .collect();
    let md = markdown_with_columns(&[], &columns, &context("paper"));
    for line in [
        "| B-standard | not run | not run | 76.14 | — | — | — | 77.32 | 93.43 | — | — | 69.03 | 88.71 |",
        "| D-efficient | not run | not run | 77.16 | 93.52 | — | — | 77.50 | 93.60 | — | — | 71.90 | 90.53 |",
        "| + cosine | not run | not run | 77.91 | 93.81 | — | — | 78.19 | 94.06 | — | — | 72.83 | 91.00 |",
        "| + smooth | not run | not run | 78.31 | 94.09 | — | — | 78.40 | 94.13 | — | — | 72.93 | 91.14 |",
        "| + distill w/o mixup | not run | not run | 78.67 | 94.36 | — | — | 78.26 | 94.01 | — | — | 71.97 | 90.89 |",
        "| + mixup w/o distill | not run | not run | 79.15 | 94.58 | — | — | 78.77 | 94.39 | — | — | 73.28 | 91.30 |",
        "| + distill w/ mixup | not run | not run | 79.29 | 94.63 | — | — | 78.34 | 94.16 | — | — | 72.51 | 91.02 |",
    ] {
        assert!(md.contains(line), "missing {line:?} in\n{md}");
    }
    assert!(
        md.contains("`configs/backbone/imagenet-COLUMN-ROW.toml`"),
        "{md}"
    );
    assert!(md.contains("centre crop 299"), "{md}");
}
