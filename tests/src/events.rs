//! A run's TensorBoard event files read back, as TensorBoard reads them, and held against the
//! run's `metrics.jsonl`: with the engine's reader (every record's CRCs checked), and with
//! Python's `tensorboard` package where an interpreter has it.

use engine::tensorboard::{read_events, What};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Scalars by (tag, step).
pub type Scalars = BTreeMap<(String, i64), f32>;

/// The event files of `RUN/tensorboard/`, in the order TensorBoard reads them (by name).
pub fn files(run: &Path) -> Vec<PathBuf> {
    let dir = run.join("tensorboard");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
    }
    files
}

/// Every scalar of the run's event files. As TensorBoard does, a session start at step S
/// drops what was read before at steps from S on (the steps a resumed run trains again).
/// Also returns the steps of those session starts.
pub fn scalars(run: &Path) -> (Scalars, Vec<i64>) {
    let mut scalars = Scalars::new();
    let mut starts = Vec::new();
    for file in files(run) {
        let events = read_events(&file).unwrap_or_else(|e| panic!("{e}"));
        for (i, event) in events.into_iter().enumerate() {
            match event.what {
                What::FileVersion(v) => assert_eq!((i, v.as_str()), (0, "brain.Event:2")),
                What::SessionStart => {
                    scalars.retain(|(_, step), _| *step < event.step);
                    starts.push(event.step);
                }
                What::Scalars(values) => {
                    for (tag, x) in values {
                        let old = scalars.insert((tag.clone(), event.step), x);
                        assert!(old.is_none(), "{tag} at {} twice", event.step);
                    }
                }
                What::Other => panic!("{}: event {i} is not one a run writes", file.display()),
            }
        }
    }
    (scalars, starts)
}

/// What `metrics.jsonl` holds, as the event files should: each measured value of each record
/// under `SPLIT/NAME` at step `iter` (its place, `epoch`, `iter`, `split` and `time`, aside).
pub fn expected(run: &Path) -> BTreeMap<(String, i64), f64> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let mut expected = BTreeMap::new();
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let step = record["iter"].as_i64().unwrap();
        let split = record["split"].as_str().unwrap();
        for (name, value) in record.as_object().unwrap() {
            if ["epoch", "iter", "split", "time"].contains(&name.as_str()) {
                continue;
            }
            let value = value.as_f64().unwrap_or_else(|| panic!("{name}: {value}"));
            expected.insert((format!("{split}/{name}"), step), value);
        }
    }
    expected
}

/// Checks that `found` holds exactly the values of `metrics.jsonl`, each at its step and to
/// float32 precision (TensorBoard's scalars are float32); returns how many there are.
pub fn assert_same_as_metrics(run: &Path, found: &BTreeMap<(String, i64), f64>) -> usize {
    let expected = expected(run);
    assert!(!expected.is_empty(), "metrics.jsonl is empty");
    for ((tag, step), want) in &expected {
        let got = found
            .get(&(tag.clone(), *step))
            .unwrap_or_else(|| panic!("no {tag} at step {step} in the events"));
        let tolerance = 1e-6 * want.abs().max(1.0);
        assert!(
            (got - want).abs() <= tolerance,
            "{tag} at step {step}: {got} in the events, {want} in metrics.jsonl"
        );
    }
    let extra: Vec<_> = found
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(extra.is_empty(), "not in metrics.jsonl: {extra:?}");
    expected.len()
}

/// Checks the run's events with the engine's reader against `metrics.jsonl`; returns the
/// steps of the session starts (one per resumption).
pub fn check_run(run: &Path) -> Vec<i64> {
    let (scalars, starts) = scalars(run);
    let found = scalars.into_iter().map(|(k, v)| (k, v as f64)).collect();
    assert_same_as_metrics(run, &found);
    starts
}

/// An interpreter with Python's `tensorboard` package: `TENSORBOARD_PYTHON`, else the
/// project's torch venv (beside `LIBTORCH`), else `python3`. None, with the reason, where no
/// interpreter has it (nothing is installed here).
pub fn python_with_tensorboard() -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("TENSORBOARD_PYTHON") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(libtorch) = std::env::var_os("LIBTORCH") {
        // LIBTORCH is VENV/lib/pythonX.Y/site-packages/torch.
        if let Some(venv) = Path::new(&libtorch).ancestors().nth(4) {
            candidates.push(venv.join("bin/python"));
        }
    }
    candidates.push(PathBuf::from("python3"));
    for python in &candidates {
        let ok = Command::new(python)
            .args(["-c", "import tensorboard"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(python.clone());
        }
    }
    Err(format!(
        "no Python with the tensorboard package among {candidates:?} (set TENSORBOARD_PYTHON)"
    ))
}

/// TensorBoard's own reading of the run's folder of event files (EventAccumulator over the
/// folder, which also applies the session starts), when an interpreter has it.
pub fn python_scalars(run: &Path) -> Result<BTreeMap<(String, i64), f64>, String> {
    let python = python_with_tensorboard()?;
    const SCRIPT: &str = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
for tag in acc.Tags()["scalars"]:
    for e in acc.Scalars(tag):
        print(json.dumps([tag, e.step, e.value]))
"#;
    let dir = run.join("tensorboard");
    let out = Command::new(&python)
        .args(["-c", SCRIPT, dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} could not read {}: {}",
        python.display(),
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (tag, step, value): (String, i64, f64) = serde_json::from_str(line).unwrap();
        // Twice would mean TensorBoard kept steps a resumption trained again.
        let twice = found.insert((tag.clone(), step), value).is_some();
        assert!(!twice, "Python's tensorboard read {tag} at {step} twice");
    }
    Ok(found)
}

/// [`check_run`], then the same with Python's `tensorboard` where present (else says why
/// that part is skipped).
pub fn check_run_everywhere(run: &Path) -> Vec<i64> {
    let starts = check_run(run);
    match python_scalars(run) {
        Ok(found) => {
            let n = assert_same_as_metrics(run, &found);
            eprintln!("Python's tensorboard read the same {n} values");
        }
        Err(reason) => eprintln!("skipping the check with Python's tensorboard: {reason}"),
    }
    starts
}
