//! The paper's Tables 6, 8 and 9 from the folder `scripts/transfer_tables.sh` fills: each row's
//! backbone, detection and segmentation evaluations (`ROW/{backbone,detection,segmentation}.json`),
//! the wall time and command of every finished stage (`ROW/STAGE.done`) and the log of every
//! failed one (`ROW/STAGE.failed`), written as `results.md` beside the paper's numbers and drawn
//! as `tables.png`. It reads the three tasks' outputs and nothing of their code. Table 6 can
//! hold the paper's other two networks beside ResNet-50-D (the script's `--columns`: their
//! rows in `COLUMN/ROW/`, backbone stages only).

pub mod paper;
pub mod picture;
pub mod report;
pub mod rows;

pub use paper::{
    paper_column, paper_row, PaperColumn, PaperRow, PAPER_COLUMNS, PAPER_ROWS, RESNET_COLUMN,
};
pub use report::{markdown, markdown_with_columns, ColumnResults, ReportContext};
pub use rows::{read_row, RowResults, StageRecord, STAGES};

use engine::chart::ChartError;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("unknown row '{0}': the rows are b-standard, d-efficient, cosine, smooth, distill, mixup, distill-mixup")]
    UnknownRow(String),
    #[error("unknown column '{0}': the columns are resnet50d, inception_v3, mobilenet_v1")]
    UnknownColumn(String),
    #[error(transparent)]
    Chart(#[from] ChartError),
}

pub type Result<T> = std::result::Result<T, TablesError>;

/// Reads every row, writes `dir/results.md` and `dir/tables.png`, and returns the Markdown
/// (the ResNet-50-D column).
pub fn write_report(dir: &Path, row_ids: &[String], context: &ReportContext) -> Result<String> {
    write_report_with_columns(dir, row_ids, &[RESNET_COLUMN.to_string()], context)
}

/// [`write_report`] for the columns named (`resnet50d`, `inception_v3`, `mobilenet_v1`, in
/// any order; the tables have them in the paper's): each column's rows `row_ids`, the
/// other networks' from `dir/COLUMN/ROW/`. `tables.png` draws ResNet-50-D's rows only.
pub fn write_report_with_columns(
    dir: &Path,
    row_ids: &[String],
    column_ids: &[String],
    context: &ReportContext,
) -> Result<String> {
    for id in row_ids {
        paper_row(id).ok_or_else(|| TablesError::UnknownRow(id.clone()))?;
    }
    for id in column_ids.iter().filter(|id| *id != RESNET_COLUMN) {
        paper_column(id).ok_or_else(|| TablesError::UnknownColumn(id.clone()))?;
    }
    // The paper's order (Inception-V3, MobileNet), each once, whatever the order asked.
    let others = PAPER_COLUMNS
        .iter()
        .filter(|c| column_ids.iter().any(|id| id == c.id));
    let rows = if column_ids.iter().any(|id| id == RESNET_COLUMN) {
        read_rows(dir, row_ids, "")?
    } else {
        Vec::new()
    };
    let columns = others
        .map(|column| {
            Ok(ColumnResults {
                column,
                rows: read_rows(dir, row_ids, &format!("{}/", column.id))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let md = markdown_with_columns(&rows, &columns, context);
    let path = dir.join("results.md");
    engine::atomic_write::write(&path, md.as_bytes()).map_err(|e| TablesError::File {
        path: path.clone(),
        message: e.to_string(),
    })?;
    picture::draw(&rows, &dir.join("tables.png"))?;
    Ok(md)
}

/// The rows `ids` from `dir/PREFIXID`, each with the id `PREFIXID`.
fn read_rows(dir: &Path, ids: &[String], prefix: &str) -> Result<Vec<RowResults>> {
    ids.iter()
        .map(|id| read_row(dir, &format!("{prefix}{id}")))
        .collect()
}
