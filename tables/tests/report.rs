//! The report from row folders like the ones the script leaves.

use std::path::Path;
use tables::{markdown, read_row, write_report, ReportContext, RowResults, PAPER_ROWS};

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
