//! `tables`: the transfer tables' report and chart from the folder the script fills.

use clap::Parser;
use std::path::PathBuf;
use tables::{write_report_with_columns, ReportContext, TablesError};

/// The paper's transfer tables (6, 8 and 9) from a folder filled by scripts/transfer_tables.sh:
/// writes DIR/results.md (ours beside the paper's numbers, stage times, failures, the exact
/// commands) and DIR/tables.png, and prints the Markdown.
#[derive(Parser)]
#[command(name = "tables", version)]
struct TablesArgs {
    /// The folder scripts/transfer_tables.sh filled (one sub-folder per row).
    #[arg(long)]
    dir: PathBuf,
    /// The profile the runs used (demo, smoke, mini, paper), as the report's title says.
    #[arg(long, default_value = "mini")]
    profile: String,
    /// The rows to report, in order, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "b-standard,d-efficient,cosine,smooth,distill,mixup,distill-mixup"
    )]
    rows: Vec<String>,
    /// The networks of Table 6, comma-separated: resnet50d (the rows in DIR/ROW, with
    /// detection and segmentation), inception_v3 and mobilenet_v1 (backbones only, in
    /// DIR/COLUMN/ROW, beside ResNet-50-D's in Table 6).
    #[arg(long, value_delimiter = ',', default_value = "resnet50d")]
    columns: Vec<String>,
    /// The runs were `scripts/transfer_tables.sh --dry-run`: the report says so at the top.
    #[arg(long)]
    dry_run: bool,
    /// A line to add below the report's introduction (repeatable).
    #[arg(long = "note", value_name = "TEXT")]
    notes: Vec<String>,
}

fn main() {
    if let Err(err) = run(TablesArgs::parse()) {
        std::process::exit(engine::cli::report("tables", &err, |e| {
            matches!(
                e.downcast_ref::<TablesError>(),
                Some(
                    TablesError::File { .. }
                        | TablesError::UnknownRow(_)
                        | TablesError::UnknownColumn(_)
                )
            )
        }));
    }
}

/// Writes DIR/results.md and DIR/tables.png and prints the Markdown.
fn run(args: TablesArgs) -> anyhow::Result<()> {
    let date = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let machine = machine_description();
    let md = write_report_with_columns(
        &args.dir,
        &args.rows,
        &args.columns,
        &ReportContext {
            profile: &args.profile,
            date: &date,
            machine: &machine,
            dry_run: args.dry_run,
            notes: &args.notes,
        },
    )?;
    println!("{md}");
    eprintln!(
        "tables: {} and {}",
        args.dir.join("results.md").display(),
        args.dir.join("tables.png").display()
    );
    Ok(())
}

/// "AMD EPYC ... (2 cores)" from /proc/cpuinfo, plus the GPU when `nvidia-smi` names one.
fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "an unknown CPU".to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let gpu = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
        .filter(|s| !s.is_empty());
    match gpu {
        Some(gpu) => format!("{cpu} ({cores} cores) with {gpu}"),
        None => format!("{cpu} ({cores} cores), no GPU"),
    }
}
