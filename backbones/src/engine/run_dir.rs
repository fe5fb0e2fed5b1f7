//! A run folder: `config.toml`, `metrics.jsonl`, `last`/`best` checkpoints and
//! `state.safetensors` (everything `--resume` needs), each checkpoint written atomically.

use crate::checkpoint::{read_safetensors, write_safetensors, CheckpointError, NamedTensors};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

type Result<T> = std::result::Result<T, RunDirError>;

/// Where training stands: the position to continue from and the tensors that carry state.
#[derive(Debug)]
pub struct TrainState {
    /// The epoch in progress (or the next one, when `batch` is 0).
    pub epoch: u64,
    /// The next batch to train on within `epoch`.
    pub batch: u64,
    /// Global iterations done.
    pub iter: u64,
    /// Best validation metric so far, for `best.safetensors`.
    pub best_metric: Option<f64>,
    /// The resolved config of the run, as JSON.
    pub config: serde_json::Value,
    /// Model weights and buffers ("model."), optimiser buffers ("momentum_buffer."), loss
    /// scale ("loss_scaler."), EMA ("ema."): each owner's names carry its own prefix.
    pub tensors: NamedTensors,
}

pub struct RunDir {
    root: PathBuf,
    metrics: File,
}

impl RunDir {
    pub const STATE: &'static str = "state.safetensors";
    pub const LAST: &'static str = "last.safetensors";
    pub const BEST: &'static str = "best.safetensors";
    pub const CONFIG: &'static str = "config.toml";
    pub const METRICS: &'static str = "metrics.jsonl";
    pub const CURVES: &'static str = "curves.png";

    /// Opens the run folder. A new run refuses a folder that already holds a run (so nothing
    /// is overwritten by accident); a resumed run requires one.
    pub fn open(root: &Path, resume: bool) -> Result<Self> {
        let io = |source| RunDirError::Io {
            path: root.to_path_buf(),
            source,
        };
        let has_state = root.join(Self::STATE).exists();
        if resume && !has_state {
            return Err(RunDirError::Invalid {
                path: root.to_path_buf(),
                message: format!("nothing to resume: no {} here", Self::STATE),
            });
        }
        if !resume && (has_state || root.join(Self::METRICS).exists()) {
            return Err(RunDirError::Invalid {
                path: root.to_path_buf(),
                message:
                    "already holds a run; pass --resume to continue it or choose another --out"
                        .into(),
            });
        }
        std::fs::create_dir_all(root).map_err(io)?;
        let metrics_path = root.join(Self::METRICS);
        let metrics = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .map_err(|source| RunDirError::Io {
                path: metrics_path,
                source,
            })?;
        Ok(RunDir {
            root: root.to_path_buf(),
            metrics,
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn write_config(&self, toml_text: &str) -> Result<()> {
        let path = self.path(Self::CONFIG);
        write_atomically(&path, toml_text.as_bytes())
    }

    /// Appends one record to metrics.jsonl (flushed, so a killed run keeps its log).
    pub fn log(&mut self, record: &serde_json::Value) -> Result<()> {
        let path = self.path(Self::METRICS);
        writeln!(self.metrics, "{record}").map_err(|source| RunDirError::Io { path, source })
    }

    /// Drops records logged after iteration `iter` (by a run killed after its last state was
    /// saved), so a resumed run's log has no duplicates.
    pub fn truncate_metrics_after(&mut self, iter: u64) -> Result<()> {
        let path = self.path(Self::METRICS);
        let io = |source| RunDirError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        let mut kept = String::new();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(io)?;
            let record_iter = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v.get("iter").and_then(|i| i.as_u64()));
            if record_iter.is_some_and(|i| i <= iter) {
                kept.push_str(&line);
                kept.push('\n');
            }
        }
        write_atomically(&path, kept.as_bytes())?;
        self.metrics = OpenOptions::new().append(true).open(&path).map_err(io)?;
        Ok(())
    }

    pub fn save_state(&self, state: &TrainState) -> Result<()> {
        let mut header = HashMap::from([
            ("epoch".to_string(), state.epoch.to_string()),
            ("batch".to_string(), state.batch.to_string()),
            ("iter".to_string(), state.iter.to_string()),
            ("config".to_string(), state.config.to_string()),
        ]);
        if let Some(best) = state.best_metric {
            header.insert("best_metric".into(), best.to_string());
        }
        write_safetensors(&self.path(Self::STATE), &state.tensors, Some(header))?;
        Ok(())
    }

    pub fn load_state(&self) -> Result<TrainState> {
        let path = self.path(Self::STATE);
        let (tensors, header) = read_safetensors(&path)?;
        let invalid = |what: &str| RunDirError::Invalid {
            path: path.clone(),
            message: format!("bad or missing '{what}' in the state header"),
        };
        let number = |key: &str| {
            header
                .get(key)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| invalid(key))
        };
        Ok(TrainState {
            epoch: number("epoch")?,
            batch: number("batch")?,
            iter: number("iter")?,
            best_metric: header.get("best_metric").and_then(|v| v.parse().ok()),
            config: header
                .get("config")
                .and_then(|c| serde_json::from_str(c).ok())
                .ok_or_else(|| invalid("config"))?,
            tensors,
        })
    }
}

/// Writes bytes to a temporary file beside `path`, syncs, and renames over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|source| RunDirError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Takes the tensors under `prefix` (stripping it).
pub fn with_prefix(tensors: &NamedTensors, prefix: &str) -> NamedTensors {
    tensors
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(prefix)
                .map(|k| (k.to_string(), v.shallow_clone()))
        })
        .collect()
}

/// Adds `prefix` to every name.
pub fn prefixed(tensors: NamedTensors, prefix: &str) -> NamedTensors {
    tensors
        .into_iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v))
        .collect()
}
