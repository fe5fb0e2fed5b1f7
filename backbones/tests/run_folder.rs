//! The run folder under hostile conditions: temporary files of a writer killed mid-write are
//! cleaned, a run killed (or failed) before its first state can be started again in place, a
//! second run on a live run's folder is refused naming the first one's pid, and bad `--out`
//! and config files get one clear sentence.

use e2e::tiny::RunInputs;
use e2e::{run_err, run_ok};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run_train(inputs: &RunInputs, out: &Path, more: &[&str]) -> String {
    let args = inputs.train_args(&inputs.config, out, more);
    run_ok(
        e2e::bin!("backbone"),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
}

fn train_err(inputs: &RunInputs, config: &Path, out: &Path, more: &[&str], code: i32) -> String {
    let args = inputs.train_args(config, out, more);
    run_err(
        e2e::bin!("backbone"),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        code,
    )
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(120), "no {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn temporary_files_of_a_killed_writer_are_cleaned_on_start_and_resume() {
    let inputs = RunInputs::new();
    let out = inputs.path("run");
    // What a SIGKILL during a state write leaves: a temporary file of a dead process.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("state.safetensors.tmp-99999"), vec![0u8; 1 << 20]).unwrap();
    run_train(&inputs, &out, &["--max-iters", "2"]);
    assert!(
        !names(&out).iter().any(|n| n.contains(".tmp-")),
        "{:?}",
        names(&out)
    );

    std::fs::write(out.join(".state.safetensors.tmp-99998"), b"half a state").unwrap();
    std::fs::write(
        out.join(".last.safetensors.tmp-99997"),
        b"half a checkpoint",
    )
    .unwrap();
    run_train(&inputs, &out, &["--resume", "--max-iters", "3"]);
    assert!(
        !names(&out).iter().any(|n| n.contains(".tmp-")),
        "{:?}",
        names(&out)
    );
}

#[test]
fn a_run_killed_or_failed_before_its_first_state_can_be_started_again() {
    let inputs = RunInputs::new();
    let out = inputs.path("killed");
    // Large inputs and no mid-epoch states: the first state is seconds away.
    let args = inputs.train_args(
        &inputs.config,
        &out,
        &[
            "--set",
            "data.augment.input_size=160",
            "--set",
            "train.checkpoint_every_iters=0",
        ],
    );
    let mut child = Command::new(e2e::bin!("backbone"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // config.toml is written before the first batch.
    wait_for("config.toml", || out.join("config.toml").exists());
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!out.join("state.safetensors").exists());

    let err = train_err(&inputs, &inputs.config, &out, &["--resume"], 2);
    assert!(
        err.contains("nothing to resume") && err.contains("start it again without --resume"),
        "{err}"
    );
    run_train(&inputs, &out, &["--max-iters", "2"]);
    assert!(out.join("state.safetensors").exists());
    let iters: Vec<u64> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| e2e::json(l)["iter"].as_u64().unwrap())
        .collect();
    assert_eq!(iters, [1, 2], "the log starts afresh");

    // A run that fails on its first batch leaves a folder it can start again in.
    let failed = inputs.path("failed");
    let bad = inputs.path("imagenet/train/class_2/001.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let no_mid_epoch_state = ["--set", "train.checkpoint_every_iters=0"];
    let err = train_err(&inputs, &inputs.config, &failed, &no_mid_epoch_state, 2);
    assert!(err.contains("001.png"), "{err}");
    assert!(!failed.join("state.safetensors").exists());
    run_train(
        &inputs,
        &failed,
        &["--set", "data.skip_bad=true", "--max-iters", "1"],
    );
}

#[test]
fn a_second_run_on_a_live_runs_folder_is_refused_with_its_pid() {
    let inputs = RunInputs::new();
    let out = inputs.path("shared");
    let args = inputs.train_args(&inputs.config, &out, &["--set", "schedule.epochs=1000"]);
    let mut first = Command::new(e2e::bin!("backbone"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = first.id().to_string();
    wait_for("lock holder's pid", || {
        std::fs::read_to_string(out.join("lock")).is_ok_and(|t| t.trim() == pid)
    });
    let log_before = std::fs::read(out.join("metrics.jsonl")).unwrap_or_default();
    let err = train_err(&inputs, &inputs.config, &out, &["--max-iters", "1"], 2);
    let err_resume = train_err(&inputs, &inputs.config, &out, &["--resume"], 2);
    first.kill().unwrap();
    first.wait().unwrap();
    for err in [err, err_resume] {
        assert!(
            err.contains(&format!("is in use by another run (pid {pid})")),
            "{err}"
        );
    }
    let log_after = std::fs::read(out.join("metrics.jsonl")).unwrap_or_default();
    assert!(
        log_after.starts_with(&log_before),
        "the refused runs did not touch the log"
    );
    // The lock dies with its holder: the folder resumes (or restarts) now.
    let more = if out.join("state.safetensors").exists() {
        vec!["--resume", "--max-iters", "3"]
    } else {
        vec!["--max-iters", "1"]
    };
    let args = inputs.train_args(&inputs.config, &out, &["--set", "schedule.epochs=1000"]);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(more);
    run_ok(e2e::bin!("backbone"), &args);
}

#[test]
fn bad_out_folders_and_config_files_get_one_sentence() {
    let inputs = RunInputs::new();
    let file = inputs.path("notes.txt");
    std::fs::write(&file, "mine").unwrap();
    let err = train_err(&inputs, &inputs.config, &file, &[], 2);
    assert!(
        err.contains("notes.txt: is a file, not a run folder; choose another --out"),
        "{err}"
    );
    let err = train_err(&inputs, &inputs.config, &file.join("run"), &[], 2);
    assert!(err.contains("part of the path is a file"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");

    // A syntax error is located by line and column.
    let broken = inputs.path("broken.toml");
    std::fs::write(&broken, e2e::tiny::CONFIG.replace("lr = 0.1", "lr = = 0.1")).unwrap();
    let line = e2e::tiny::CONFIG
        .lines()
        .position(|l| l == "lr = 0.1")
        .unwrap()
        + 1;
    let err = train_err(&inputs, &broken, &inputs.path("a"), &[], 2);
    assert!(err.contains(&format!("broken.toml:{line}:6: ")), "{err}");
    // A mistyped value is located too.
    std::fs::write(
        &broken,
        e2e::tiny::CONFIG.replace("lr = 0.1", "lr = \"fast\""),
    )
    .unwrap();
    let err = train_err(&inputs, &broken, &inputs.path("a"), &[], 2);
    assert!(
        err.contains(&format!("broken.toml:{line}:6: invalid type")),
        "{err}"
    );

    // An empty config names the first table and key it lacks.
    let empty = inputs.path("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let err = train_err(&inputs, &empty, &inputs.path("b"), &[], 2);
    assert!(
        err.contains("empty.toml")
            && err.contains(": missing table [model] (it needs at least `model.arch`)"),
        "{err}"
    );
    assert!(!inputs.path("a").exists() && !inputs.path("b").exists());
}

#[test]
fn a_state_that_lies_is_refused_before_training_resumes() {
    let inputs = RunInputs::new();
    let out = inputs.path("run");
    run_train(&inputs, &out, &["--max-iters", "2"]);
    let state = out.join("state.safetensors");
    let good = e2e::tiny::SafetensorsFile::read(&state);

    // A position past any run (counting on from it would overflow).
    let mut file = e2e::tiny::SafetensorsFile::read(&state);
    file.set_metadata("iter", "18446744073709551615");
    file.write(&state);
    let err = train_err(&inputs, &inputs.config, &out, &["--resume"], 2);
    assert!(
        err.contains("state.safetensors: bad or missing 'iter' in the state header"),
        "{err}"
    );

    // NaN momentum would make every weight NaN at the first step.
    let mut file = e2e::tiny::SafetensorsFile {
        header: good.header.clone(),
        data: good.data.clone(),
    };
    let [start, end]: [usize; 2] =
        serde_json::from_value(file.header["momentum_buffer.fc.weight"]["data_offsets"].clone())
            .unwrap();
    file.data[start..end].fill(0xFF);
    file.write(&state);
    let err = train_err(&inputs, &inputs.config, &out, &["--resume"], 2);
    assert!(
        err.contains("tensor momentum_buffer.fc.weight holds NaN or infinite values"),
        "{err}"
    );

    good.write(&state);
    run_train(&inputs, &out, &["--resume", "--max-iters", "3"]);
}
