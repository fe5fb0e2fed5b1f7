//! `backbone train --tensorboard`: the run folder's event files hold every value of
//! `metrics.jsonl` (losses, learning rate, images/s, validation metrics) at the same steps,
//! read back with the event crate's reader and, where an interpreter has it, with Python's
//! tensorboard; a resumed run goes on in a new file at the next step, and what an attempt
//! killed after its last state had logged (or an attempt that never saved one) is dropped as
//! `metrics.jsonl` drops it.

use e2e::run_ok;
use e2e::tiny::RunInputs;
use std::path::Path;

fn train(inputs: &RunInputs, out: &Path, more: &[&str]) -> String {
    let args = inputs.train_args(&inputs.config, out, more);
    run_ok(
        e2e::bin!("backbone"),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
}

/// Whether the run's resolved recipe, config.toml, has the line `line`.
fn config_has(run: &Path, line: &str) -> bool {
    let text = std::fs::read_to_string(run.join("config.toml")).unwrap();
    text.lines().any(|l| l.trim() == line)
}

#[test]
fn events_hold_the_values_of_metrics_jsonl_at_the_same_steps_across_resumes() {
    // 24 training images in batches of 8: 3 steps an epoch, 2 epochs, a state every 2 steps.
    let inputs = RunInputs::new();
    let out = inputs.path("run");
    train(&inputs, &out, &["--tensorboard", "--max-iters", "2"]);
    assert!(config_has(&out, "tensorboard = true"));
    let state_at_2 = inputs.path("state-at-2.safetensors");
    std::fs::copy(out.join("state.safetensors"), &state_at_2).unwrap();
    train(
        &inputs,
        &out,
        &["--tensorboard", "--resume", "--max-iters", "4"],
    );
    // As if that attempt had been killed after logging steps 3 and 4 but before saving them.
    std::fs::copy(&state_at_2, out.join("state.safetensors")).unwrap();
    train(&inputs, &out, &["--tensorboard", "--resume"]);

    assert_eq!(e2e::events::files(&out).len(), 3);
    let starts = e2e::events::check_run_everywhere(&out);
    assert_eq!(starts, [1, 3, 3], "each file starts after its state's step");
    let (scalars, _) = e2e::events::scalars(&out);
    let steps = |tag: &str| -> Vec<i64> {
        scalars
            .keys()
            .filter(|(t, _)| t == tag)
            .map(|(_, step)| *step)
            .collect()
    };
    assert_eq!(steps("train/loss"), [1, 2, 3, 4, 5, 6]);
    assert_eq!(steps("train/lr"), [1, 2, 3, 4, 5, 6]);
    assert_eq!(steps("train/images_per_s"), [1, 2, 3, 4, 5, 6]);
    assert_eq!(steps("val/top1"), [3, 6]);
}

#[test]
fn a_new_run_in_place_of_one_that_never_saved_hides_its_events() {
    let inputs = RunInputs::new();
    let out = inputs.path("run");
    train(&inputs, &out, &["--tensorboard", "--max-iters", "2"]);
    // As if killed before its first state: a new run starts over in the same folder.
    std::fs::remove_file(out.join("state.safetensors")).unwrap();
    train(&inputs, &out, &["--tensorboard", "--max-iters", "3"]);
    assert_eq!(e2e::events::files(&out).len(), 2);
    assert_eq!(e2e::events::check_run_everywhere(&out), [1, 1]);
}

#[test]
fn without_the_flag_no_event_file_is_written() {
    let inputs = RunInputs::new();
    let out = inputs.path("run");
    train(&inputs, &out, &["--max-iters", "1"]);
    assert!(!out.join("tensorboard").exists());
    assert!(config_has(&out, "tensorboard = false"));
    // The recipe's key does what the flag does.
    let set = inputs.path("set");
    train(
        &inputs,
        &set,
        &["--set", "train.tensorboard=true", "--max-iters", "1"],
    );
    assert_eq!(e2e::events::files(&set).len(), 1);
    e2e::events::check_run(&set);
}
