//! The input/output layer of `backbone` where it shares detect's and segment's (their probes
//! are in detection/tests/hostile_io.rs and segmentation/tests/hostile_io.rs) under hostile
//! paths: a FIFO or a link to /dev/zero where a file is expected, an output that is one of
//! the inputs, and a finished run. Every probe runs under a time limit and an address-space
//! cap, so a hang or a runaway read fails the test instead of taking the machine.

use e2e::probe::{image, refused, s, special_files};
use e2e::{measure_within, tiny};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn fifos_and_devices_are_refused_at_once_with_their_kind_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = d.join("good.safetensors");
    tiny::checkpoint(e2e::bin!("backbone"), &good);
    let out = d.join("out.safetensors");
    for (special, kind) in &special_files(d) {
        let args = vec![
            "import",
            "--from",
            "torchvision",
            "--arch",
            "resnet18",
            "--classes",
            s(special),
            s(&good),
            s(&out),
        ];
        let err = refused(e2e::bin!("backbone"), &args);
        assert!(
            err.contains(s(special)) && err.contains(kind),
            "backbone {args:?}:\n{err}"
        );
    }
    assert!(!out.exists());
}

#[test]
fn no_command_writes_over_its_own_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ckpt = d.join("model.safetensors");
    tiny::checkpoint(e2e::bin!("backbone"), &ckpt);
    let photo = image(d);
    let kept = |path: &Path| std::fs::read(path).unwrap();
    let (ckpt_bytes, photo_bytes) = (kept(&ckpt), kept(&photo));
    let mask = d.join("mask.png");
    let args = vec!["export", "--to", "torchvision", s(&ckpt), s(&ckpt)];
    let err = refused(e2e::bin!("backbone"), &args);
    assert!(
        err.contains("the state dict would be written over the checkpoint"),
        "backbone {args:?}:\n{err}"
    );
    assert_eq!(
        kept(&ckpt),
        ckpt_bytes,
        "backbone {args:?} changed the checkpoint"
    );
    assert_eq!(
        kept(&photo),
        photo_bytes,
        "backbone {args:?} changed the image"
    );
    assert!(!mask.exists(), "backbone {args:?} wrote a mask");
}

#[test]
fn a_finished_run_says_so_and_a_garbled_log_does_not_block_resume() {
    let inputs = tiny::RunInputs::new();
    let run = inputs.path("run");
    let args = |more: &[&str]| inputs.train_args(&inputs.config, &run, more);
    let call = |a: Vec<String>| {
        measure_within(
            Command::new(e2e::bin!("backbone")).args(&a),
            Duration::from_secs(300),
            24 << 30,
        )
    };
    let m = call(args(&["--max-iters", "1"]));
    assert_eq!(m.status.code(), Some(0), "{}", m.stderr);
    // A crash left bytes that are not text in the log.
    let log = run.join("metrics.jsonl");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(b"\xff\xfe\x00garbage\n");
    std::fs::write(&log, bytes).unwrap();
    let m = call(args(&["--resume"]));
    assert_eq!(m.status.code(), Some(0), "{}", m.stderr);
    assert!(
        m.stderr.contains("is not a JSON record; dropped"),
        "{}",
        m.stderr
    );

    let m = call(args(&["--resume"]));
    assert_eq!(m.status.code(), Some(2), "{}", m.stderr);
    assert!(m.stderr.contains("the run is finished"), "{}", m.stderr);
    assert!(!m.stderr.contains("continue with --resume"), "{}", m.stderr);
}
