//! A run folder: `config.toml`, `metrics.jsonl` (and, when asked, its TensorBoard copy in
//! `tensorboard/`), `last`/`best` checkpoints and `state.safetensors` (everything `--resume`
//! needs), each checkpoint written atomically, and `lock`, which keeps a second run out while
//! one lives.

use crate::checkpoint::{
    first_non_finite, read_safetensors, write_safetensors, CheckpointError, NamedTensors,
};
use crate::tensorboard::{self, EventFile};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
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
    /// None on ranks other than 0 of a data-parallel run: rank 0 alone writes the folder
    /// (the others may be on machines that cannot even see it), so their writes do nothing.
    metrics: Option<File>,
    /// Where the records of `metrics` also go when the run writes TensorBoard events.
    events: Option<EventFile>,
    /// Held until the run ends (or its process dies): no second run writes here meanwhile.
    _lock: Option<RunLock>,
}

impl RunDir {
    pub const STATE: &'static str = "state.safetensors";
    pub const LAST: &'static str = "last.safetensors";
    pub const BEST: &'static str = "best.safetensors";
    pub const CONFIG: &'static str = "config.toml";
    pub const METRICS: &'static str = "metrics.jsonl";
    pub const CURVES: &'static str = "curves.png";
    pub const LOCK: &'static str = "lock";

    /// Opens the run folder and locks it for this process. A new run refuses a folder that
    /// holds a run's state (so nothing is overwritten by accident) but restarts one that
    /// never saved a state (killed or failed before it); a resumed run requires a state.
    /// Either way a second live run on the folder is refused with its pid, and temporary
    /// files of writers killed mid-write are removed.
    pub fn open(root: &Path, resume: bool) -> Result<Self> {
        if !crate::data_parallel::is_main_rank() {
            return Ok(RunDir {
                root: root.to_path_buf(),
                metrics: None,
                events: None,
                _lock: None,
            });
        }
        Self::check_can_open(root, resume)?;
        let invalid = |message: String| RunDirError::Invalid {
            path: root.to_path_buf(),
            message,
        };
        let io = |source| RunDirError::Io {
            path: root.to_path_buf(),
            source,
        };
        let unusable = |e: std::io::Error| match e.kind() {
            ErrorKind::NotADirectory | ErrorKind::AlreadyExists => invalid(
                "cannot be created: part of the path is a file; choose another --out".into(),
            ),
            ErrorKind::PermissionDenied => invalid(format!("cannot be created ({e})")),
            _ => io(e),
        };
        match std::fs::metadata(root) {
            Ok(m) if !m.is_dir() => {
                return Err(invalid(
                    "is a file, not a run folder; choose another --out".into(),
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound && resume => {
                return Err(invalid("nothing to resume: no such folder".into()))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(unusable(e)),
        }
        std::fs::create_dir_all(root).map_err(unusable)?;
        let lock = RunLock::acquire(root)?;
        crate::atomic_write::remove_stale_temps(root).map_err(io)?;

        let has_state = root.join(Self::STATE).exists();
        if resume && !has_state {
            return Err(invalid(format!(
                "nothing to resume: no {} here (the run stopped before saving one); start it again without --resume",
                Self::STATE
            )));
        }
        if !resume && has_state {
            return Err(invalid(
                "already holds a run; pass --resume to continue it or choose another --out".into(),
            ));
        }
        let metrics_path = root.join(Self::METRICS);
        // A new run starts its log afresh: what is there came from an attempt that never
        // saved a state, so nothing can continue it.
        let metrics = OpenOptions::new()
            .create(true)
            .append(resume)
            .write(true)
            .truncate(!resume)
            .open(&metrics_path)
            .map_err(|source| RunDirError::Io {
                path: metrics_path,
                source,
            })?;
        Ok(RunDir {
            root: root.to_path_buf(),
            metrics: Some(metrics),
            events: None,
            _lock: Some(lock),
        })
    }

    /// What [`RunDir::open`] would refuse, found without creating or changing anything: a
    /// command calls it before its other checks, and opens the folder only once everything
    /// else has been checked, so a refused run leaves no folder, `lock` or `metrics.jsonl`
    /// behind. (`open` checks again under the lock.)
    pub fn check_can_open(root: &Path, resume: bool) -> Result<()> {
        // Other ranks may not even see the folder (see `open`).
        if !crate::data_parallel::is_main_rank() {
            return Ok(());
        }
        let invalid = |message: String| RunDirError::Invalid {
            path: root.to_path_buf(),
            message,
        };
        match std::fs::metadata(root) {
            Ok(m) if !m.is_dir() => Err(invalid(
                "is a file, not a run folder; choose another --out".into(),
            )),
            Ok(_) => {
                // A live run comes first, as `open` finds it: its folder already holds a state.
                if let Some(holder) = RunLock::live_holder(root) {
                    return Err(invalid(format!(
                        "is in use by another run ({holder}); wait for it to end or choose another --out"
                    )));
                }
                let has_state = root.join(Self::STATE).exists();
                if resume && !has_state {
                    return Err(invalid(format!(
                        "nothing to resume: no {} here (the run stopped before saving one); start it again without --resume",
                        Self::STATE
                    )));
                }
                if !resume && has_state {
                    return Err(invalid(
                        "already holds a run; pass --resume to continue it or choose another --out"
                            .into(),
                    ));
                }
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound && resume => {
                Err(invalid("nothing to resume: no such folder".into()))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // Its nearest existing ancestor must be a folder for it to be created.
                let mut ancestor = root.parent();
                while let Some(dir) = ancestor.filter(|d| !d.as_os_str().is_empty()) {
                    match std::fs::metadata(dir) {
                        Ok(m) if m.is_dir() => return Ok(()),
                        Ok(_) => return Err(invalid(
                            "cannot be created: part of the path is a file; choose another --out"
                                .into(),
                        )),
                        Err(_) => ancestor = dir.parent(),
                    }
                }
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotADirectory => Err(invalid(
                "cannot be created: part of the path is a file; choose another --out".into(),
            )),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                Err(invalid(format!("cannot be created ({e})")))
            }
            Err(e) => Err(RunDirError::Io {
                path: root.to_path_buf(),
                source: e,
            }),
        }
    }

    /// Whether this process writes the folder (see [`RunDir::metrics`]).
    pub fn is_writer(&self) -> bool {
        self.metrics.is_some()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn write_config(&self, toml_text: &str) -> Result<()> {
        if !self.is_writer() {
            return Ok(());
        }
        let path = self.path(Self::CONFIG);
        write_atomically(&path, toml_text.as_bytes())
    }

    /// From now on also writes each logged record to a new TensorBoard event file in
    /// `tensorboard/`; `done` is the iterations the run has done (see [`EventFile::create`]).
    pub fn start_event_file(&mut self, done: u64) -> Result<()> {
        if !self.is_writer() {
            return Ok(());
        }
        let dir = self.path(tensorboard::FOLDER);
        let events = EventFile::create(&dir, done)
            .map_err(|source| RunDirError::Io { path: dir, source })?;
        self.events = Some(events);
        Ok(())
    }

    /// Appends one record to metrics.jsonl, and to the event file when there is one (each
    /// flushed, so a killed run keeps its log).
    pub fn log(&mut self, record: &serde_json::Value) -> Result<()> {
        let path = self.path(Self::METRICS);
        if let Some(file) = &mut self.metrics {
            writeln!(file, "{record}").map_err(|source| RunDirError::Io { path, source })?;
        }
        if let Some(events) = &mut self.events {
            events
                .write_record(record)
                .map_err(|source| RunDirError::Io {
                    path: events.path().to_path_buf(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Drops records logged after iteration `iter` (by a run killed after its last state was
    /// saved), so a resumed run's log has no duplicates.
    pub fn truncate_metrics_after(&mut self, iter: u64) -> Result<()> {
        if !self.is_writer() {
            return Ok(());
        }
        let path = self.path(Self::METRICS);
        let io = |source| RunDirError::Io {
            path: path.clone(),
            source,
        };
        let bytes = datasets::input_file::read_bounded(
            &path,
            datasets::limits::MAX_METRICS_LOG_BYTES,
            "a run's log",
        )
        .map_err(|e| match e {
            datasets::DataError::Io { source, .. } => io(source),
            other => RunDirError::Invalid {
                path: path.clone(),
                message: other.message(),
            },
        })?;
        let mut kept = String::new();
        for (number, line) in bytes.split(|&b| b == b'\n').enumerate() {
            // A line that is not a JSON record (bytes a crash or a disk error left) is
            // dropped with a note, never a reason to refuse the resume.
            let parsed = std::str::from_utf8(line).ok().and_then(|text| {
                serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .map(|record| (text, record))
            });
            let Some((text, record)) = parsed else {
                if !line.iter().all(u8::is_ascii_whitespace) {
                    eprintln!(
                        "{}: line {} is not a JSON record; dropped",
                        path.display(),
                        number + 1
                    );
                }
                continue;
            };
            if record
                .get("iter")
                .and_then(|i| i.as_u64())
                .is_some_and(|i| i <= iter)
            {
                kept.push_str(text);
                kept.push('\n');
            }
        }
        write_atomically(&path, kept.as_bytes())?;
        self.metrics = Some(OpenOptions::new().append(true).open(&path).map_err(io)?);
        Ok(())
    }

    pub fn save_state(&self, state: &TrainState) -> Result<()> {
        if !self.is_writer() {
            return Ok(());
        }
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
        // Positions far beyond any run, yet small enough that counting on cannot overflow.
        const MAX_POSITION: u64 = 1 << 48;
        let number = |key: &str| {
            header
                .get(key)
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&n| n <= MAX_POSITION)
                .ok_or_else(|| invalid(key))
        };
        if let Some(name) = first_non_finite(&tensors) {
            return Err(RunDirError::Invalid {
                path: path.clone(),
                message: format!("tensor {name} holds NaN or infinite values"),
            });
        }
        let best_metric = match header.get("best_metric") {
            None => None,
            Some(v) => Some(
                v.parse::<f64>()
                    .ok()
                    .filter(|m| m.is_finite())
                    .ok_or_else(|| invalid("best_metric"))?,
            ),
        };
        Ok(TrainState {
            epoch: number("epoch")?,
            batch: number("batch")?,
            iter: number("iter")?,
            best_metric,
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
    crate::atomic_write::write(path, bytes).map_err(|source| RunDirError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// An exclusive advisory lock (`flock`) on a run folder's `lock` file, which names the pid of
/// the process holding it. The kernel releases it when the process exits, however it dies,
/// so a killed run never leaves its folder locked.
struct RunLock {
    _file: File,
}

impl RunLock {
    fn acquire(root: &Path) -> Result<Self> {
        let path = root.join(RunDir::LOCK);
        let io = |source| RunDirError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a descriptor this function owns; it touches no memory.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != ErrorKind::WouldBlock {
                return Err(io(err));
            }
            let holder = match Self::holder(&path) {
                Some(pid) => format!("pid {pid}"),
                None => "another process".to_string(),
            };
            return Err(RunDirError::Invalid {
                path: root.to_path_buf(),
                message: format!(
                    "is in use by another run ({holder}); wait for it to end or choose another --out"
                ),
            });
        }
        file.set_len(0).map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(RunLock { _file: file })
    }

    /// Who holds the folder's lock, when a live process does; creates nothing (a folder
    /// without a `lock` file has no live run).
    fn live_holder(root: &Path) -> Option<String> {
        let path = root.join(RunDir::LOCK);
        let file = File::open(&path).ok()?;
        // SAFETY: flock on a descriptor this function owns; it touches no memory. A lock
        // taken here is released when `file` drops at the end of this function.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
        if locked == 0 {
            return None;
        }
        Some(match Self::holder(&path) {
            Some(pid) => format!("pid {pid}"),
            None => "another process".to_string(),
        })
    }

    /// The pid the holder wrote. It writes it just after taking the lock, so a run that
    /// starts at the same moment waits briefly for it.
    fn holder(path: &Path) -> Option<u32> {
        for _ in 0..50 {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if let Ok(pid) = text.trim().parse() {
                return Some(pid);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }
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
