//! One row's folder as the script leaves it: evaluations, finished and failed stages.

use crate::{Result, TablesError};
use std::path::{Path, PathBuf};

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

/// `seconds S` and `command C` lines, as the script writes them (its `recipe FILE SHA256`
/// lines are for the script's reuse check).
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
