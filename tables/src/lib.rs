//! The paper's Tables 6, 8 and 9 from the folder `scripts/transfer_tables.sh` fills: each row's
//! backbone, detection and segmentation evaluations (`ROW/{backbone,detection,segmentation}.json`),
//! the wall time and command of every finished stage (`ROW/STAGE.done`) and the log of every
//! failed one (`ROW/STAGE.failed`), written as `results.md` beside the paper's numbers and drawn
//! as `tables.png`. It reads the three tasks' outputs and nothing of their code.

pub mod paper;
pub mod picture;
pub mod report;
pub mod rows;

pub use paper::{paper_row, PaperRow, PAPER_ROWS};
pub use report::{markdown, ReportContext};
pub use rows::{read_row, RowResults, StageRecord, STAGES};

use engine::chart::ChartError;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("unknown row '{0}': the rows are b-standard, d-efficient, cosine, smooth, distill, mixup, distill-mixup")]
    UnknownRow(String),
    #[error(transparent)]
    Chart(#[from] ChartError),
}

pub type Result<T> = std::result::Result<T, TablesError>;

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
    engine::atomic_write::write(&path, md.as_bytes()).map_err(|e| TablesError::File {
        path: path.clone(),
        message: e.to_string(),
    })?;
    picture::draw(&rows, &dir.join("tables.png"))?;
    Ok(md)
}
