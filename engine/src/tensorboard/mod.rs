//! The run log as TensorBoard reads it: each record `metrics.jsonl` gets is also written to an
//! event file in `RUN/tensorboard/`, every measured value of it as the scalar `SPLIT/NAME`
//! (`train/loss`, `train/lr`, `val/top1`) at step `iter`. [`crate::run_dir::RunDir::log`] hands
//! both files the same record, so they cannot disagree. [`event`] writes and reads the
//! format.

pub mod event;

pub use event::{Event, What};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The run folder's subfolder of event files: TensorBoard shows it as one run, merging the
/// files of a run and its resumptions in the order of their names.
pub const FOLDER: &str = "tensorboard";

/// The fields of a record that place it (when, in which part of the run) rather than measure
/// something: the step carries `iter`, the tag carries `split`, the event its own wall time.
const PLACING_FIELDS: [&str; 4] = ["epoch", "iter", "split", "time"];

/// What TensorBoard expects as an event file's first record.
const FILE_VERSION: &str = "brain.Event:2";

pub struct EventFile {
    path: PathBuf,
    file: File,
}

impl EventFile {
    /// Starts a new event file in `dir` (created if need be), named as TensorBoard's own
    /// writers name theirs, so its files sort by start time. `done` is the iterations the run
    /// has done (0 for a new run, the state's for a resumed one): the file opens with a
    /// session start at `done + 1`, which tells TensorBoard to drop what earlier files of the
    /// folder logged from that step on. Those are steps this run does again: an attempt's
    /// killed after its last save (which the resume also drops from `metrics.jsonl`), or all
    /// of an attempt that never saved a state (which a new run's `metrics.jsonl` starts over).
    pub fn create(dir: &Path, done: u64) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (path, file) = create_new_file(dir)?;
        let mut events = EventFile { path, file };
        events.write(0, What::FileVersion(FILE_VERSION.into()))?;
        events.write(done as i64 + 1, What::SessionStart)?;
        Ok(events)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a `metrics.jsonl` record as one event holding its scalars (see [`scalars`]);
    /// a record without a step or a numeric value writes nothing.
    pub fn write_record(&mut self, record: &serde_json::Value) -> io::Result<()> {
        let Some((step, values)) = scalars(record) else {
            return Ok(());
        };
        self.write(step as i64, What::Scalars(values))
    }

    /// Appends one event in a single write, unbuffered, so a killed run keeps every event it
    /// logged whole.
    fn write(&mut self, step: i64, what: What) -> io::Result<()> {
        let event = Event {
            wall_time: wall_time(),
            step,
            what,
        };
        self.file.write_all(&event::record(&event))
    }
}

/// Every event of an event file, each record's CRCs checked.
pub fn read_events(path: &Path) -> io::Result<Vec<Event>> {
    let bytes = std::fs::read(path)?;
    event::read(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// A record's step (`iter`) and its measured values as TensorBoard scalars `SPLIT/NAME`, in
/// float32 as TensorBoard keeps them. Values that are not numbers (a non-finite loss, which
/// JSON writes as `null`) are left out, as they are from the curves.
pub fn scalars(record: &serde_json::Value) -> Option<(u64, Vec<(String, f32)>)> {
    let fields = record.as_object()?;
    let step = fields.get("iter")?.as_u64()?;
    let split = fields.get("split").and_then(|s| s.as_str());
    let values: Vec<(String, f32)> = fields
        .iter()
        .filter(|(name, _)| !PLACING_FIELDS.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            let tag = match split {
                Some(split) => format!("{split}/{name}"),
                None => name.clone(),
            };
            Some((tag, value.as_f64()? as f32))
        })
        .collect();
    (!values.is_empty()).then_some((step, values))
}

/// `events.out.tfevents.SECONDS.HOST.PID.N`: N counts the files this process started, so two
/// runs of one process in the same second never share a file; an existing file is never
/// overwritten.
fn create_new_file(dir: &Path) -> io::Result<(PathBuf, File)> {
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let host = host_name();
    let pid = std::process::id();
    loop {
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(
            "events.out.tfevents.{seconds:010}.{host}.{pid}.{n}"
        ));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The machine's name, as TensorBoard's writers put it in the file name ("localhost" where
/// it cannot be read); characters that cannot be in a file name are replaced.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer this function owns.
    let read = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]);
    if !read || name.is_empty() {
        return "localhost".into();
    }
    name.chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect()
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary_values(event: &Event) -> Vec<(String, f32)> {
        match &event.what {
            What::Scalars(values) => values.clone(),
            other => panic!("not a summary: {other:?}"),
        }
    }

    #[test]
    fn a_record_gives_its_measured_values_under_its_split() {
        let train = json!({"epoch": 1, "iter": 12, "split": "train", "time": 3.5,
                           "lr": 0.1, "images_per_s": 250.0, "loss": 1.25, "loss_cls": 0.5});
        let (step, values) = scalars(&train).unwrap();
        assert_eq!(step, 12);
        assert_eq!(
            values,
            [
                ("train/images_per_s".to_string(), 250.0),
                ("train/loss".to_string(), 1.25),
                ("train/loss_cls".to_string(), 0.5),
                ("train/lr".to_string(), 0.1),
            ]
        );
        let val = json!({"epoch": 1, "iter": 12, "split": "val", "time": 4.0, "top1": 0.75});
        assert_eq!(scalars(&val).unwrap().1, [("val/top1".to_string(), 0.75)]);
        // A non-finite loss is `null` in JSON: left out, as from the curves.
        let nan = json!({"iter": 3, "split": "train", "loss": null, "lr": 0.2});
        assert_eq!(scalars(&nan).unwrap().1, [("train/lr".to_string(), 0.2)]);
        assert!(scalars(&json!({"iter": 3, "split": "val"})).is_none());
        assert!(scalars(&json!({"split": "val", "top1": 0.5})).is_none());
    }

    #[test]
    fn the_file_reads_back_with_each_record_at_its_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut events = EventFile::create(&dir.path().join(FOLDER), 0).unwrap();
        let name = events
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        assert_eq!(
            events.path().parent(),
            Some(dir.path().join(FOLDER).as_path())
        );
        events
            .write_record(
                &json!({"epoch": 0, "iter": 5, "split": "train", "loss": 2.5, "lr": 0.05}),
            )
            .unwrap();
        events
            .write_record(&json!({"epoch": 0, "iter": 10, "split": "val", "top1": 0.4}))
            .unwrap();
        // Flushed after each event: the file is complete while the writer still lives.
        let read = read_events(events.path()).unwrap();
        assert_eq!(read.len(), 4);
        assert_eq!(read[0].what, What::FileVersion(FILE_VERSION.into()));
        assert_session_start(&read[1], 1);
        assert_eq!(read[2].step, 5);
        assert_eq!(
            summary_values(&read[2]),
            [
                ("train/loss".to_string(), 2.5),
                ("train/lr".to_string(), 0.05)
            ]
        );
        assert_eq!(read[3].step, 10);
        assert_eq!(summary_values(&read[3]), [("val/top1".to_string(), 0.4)]);
        assert!(read[3].wall_time >= read[2].wall_time && read[2].wall_time > 1.6e9);
    }

    fn assert_session_start(event: &Event, step: i64) {
        assert_eq!(event.step, step);
        assert_eq!(event.what, What::SessionStart);
    }

    #[test]
    fn a_resumed_run_starts_a_new_file_that_drops_steps_after_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let first = EventFile::create(dir.path(), 0).unwrap();
        let resumed = EventFile::create(dir.path(), 40).unwrap();
        assert_ne!(first.path(), resumed.path());
        let read = read_events(resumed.path()).unwrap();
        assert_eq!(read.len(), 2);
        assert_session_start(&read[1], 41);
    }

    /// CRC-32C (Castagnoli), bit by bit: independent of the crate that wrote the file.
    fn crc32c(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// TFRecord's mask, which keeps a CRC of data holding CRCs from being trivial.
    fn masked(crc: u32) -> u32 {
        crc.rotate_right(15).wrapping_add(0xA282_EAD8)
    }

    #[test]
    fn every_record_is_framed_with_masked_crcs() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        let dir = tempfile::tempdir().unwrap();
        let mut events = EventFile::create(dir.path(), 7).unwrap();
        events
            .write_record(&json!({"iter": 8, "split": "train", "loss": 1.0}))
            .unwrap();
        let bytes = std::fs::read(events.path()).unwrap();
        let mut at = 0;
        let mut records = 0;
        while at < bytes.len() {
            let len_bytes = &bytes[at..at + 8];
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            assert_eq!(len_crc, masked(crc32c(len_bytes)), "record {records}");
            let payload = &bytes[at + 12..at + 12 + len];
            let crc_at = at + 12 + len;
            let crc = u32::from_le_bytes(bytes[crc_at..crc_at + 4].try_into().unwrap());
            assert_eq!(crc, masked(crc32c(payload)), "record {records}");
            at = crc_at + 4;
            records += 1;
        }
        assert_eq!(records, 3);
    }
}
