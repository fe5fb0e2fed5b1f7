//! The input/output layer of `segment` under hostile paths (detect's probes are in
//! detection/tests/hostile_io.rs, backbone's in backbones/tests/hostile_io.rs): a FIFO or a
//! link to /dev/zero where a file is expected, a sparse 1 GB recipe, numbers out of range,
//! an output that is one of the inputs, and a run refused after its checks. Every probe runs
//! under a time limit and an address-space cap, so a hang or a runaway read fails the test
//! instead of taking the machine.

#[path = "../../backbones/tests/common/classifier_init.rs"]
mod classifier_init;

use classifier_init::tiny_checkpoint;
use e2e::probe::{
    image, refused, s, scenes, sparse_gigabyte_recipe, special_files, SHARED_KEY_CASES,
    SPARSE_RECIPE_REFUSED,
};
use e2e::repo_root;
use std::path::{Path, PathBuf};

fn segment() -> &'static Path {
    e2e::bin!("segment")
}

fn segment_recipe() -> PathBuf {
    repo_root().join("configs/segmentation/tiny.toml")
}

#[test]
fn fifos_and_devices_are_refused_at_once_with_their_kind_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = d.join("good.safetensors");
    tiny_checkpoint(&good);
    let photo = image(d);
    let out = d.join("out.safetensors");
    let run = d.join("run");
    for (special, kind) in &special_files(d) {
        let probes: Vec<Vec<&str>> = vec![
            vec![
                "predict",
                "--ckpt",
                s(special),
                "--image",
                s(&photo),
                "--out",
                s(&out),
            ],
            vec![
                "finetune",
                "--backbone",
                s(&good),
                "--config",
                s(special),
                "--data",
                "ade20k:/nonexistent",
                "--out",
                s(&run),
            ],
            vec![
                "import",
                "--from",
                "torchvision",
                "--arch",
                "fcn_resnet50",
                "--classes",
                s(special),
                s(&good),
                s(&out),
            ],
        ];
        for args in probes {
            let err = refused(segment(), &args);
            assert!(
                err.contains(s(special)) && err.contains(kind),
                "segment {args:?}:\n{err}"
            );
        }
    }
    assert!(!out.exists() && !run.exists());
}

#[test]
fn a_sparse_gigabyte_recipe_is_refused_by_its_size_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = sparse_gigabyte_recipe(dir.path());
    let backbone = dir.path().join("backbone.safetensors");
    tiny_checkpoint(&backbone);
    let run = dir.path().join("run");
    let err = refused(
        segment(),
        &[
            "finetune",
            "--backbone",
            s(&backbone),
            "--config",
            s(&recipe),
            "--data",
            "ade20k:/nonexistent",
            "--out",
            s(&run),
        ],
    );
    assert!(err.contains(SPARSE_RECIPE_REFUSED), "segment:\n{err}");
}

#[test]
fn shared_keys_have_one_range_in_every_binary() {
    let dir = tempfile::tempdir().unwrap();
    let backbone = dir.path().join("backbone.safetensors");
    tiny_checkpoint(&backbone);
    let run = dir.path().join("run");
    let recipe = segment_recipe();
    for (set, message) in SHARED_KEY_CASES {
        let err = refused(
            segment(),
            &[
                "finetune",
                "--backbone",
                s(&backbone),
                "--config",
                s(&recipe),
                "--data",
                "ade20k:/nonexistent",
                "--out",
                s(&run),
                "--set",
                set,
            ],
        );
        assert!(err.contains(message), "segment --set {set}:\n{err}");
    }
    assert!(!run.exists(), "a refused recipe created its run folder");
}

#[test]
fn no_command_writes_over_its_own_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ckpt = d.join("model.safetensors");
    tiny_checkpoint(&ckpt);
    let photo = image(d);
    let kept = |path: &Path| std::fs::read(path).unwrap();
    let (ckpt_bytes, photo_bytes) = (kept(&ckpt), kept(&photo));
    let mask = d.join("mask.png");
    let probes: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "predict",
                "--ckpt",
                s(&ckpt),
                "--image",
                s(&photo),
                "--out",
                s(&ckpt),
            ],
            "the mask would be written over the checkpoint",
        ),
        (
            vec![
                "predict",
                "--ckpt",
                s(&ckpt),
                "--image",
                s(&photo),
                "--out",
                s(&mask),
                "--overlay",
                s(&photo),
            ],
            "the overlay would be written over the image",
        ),
        (
            vec![
                "predict",
                "--ckpt",
                s(&ckpt),
                "--image",
                s(&photo),
                "--out",
                s(&mask),
                "--overlay",
                s(&mask),
            ],
            "the mask and the overlay would be the same file",
        ),
        (
            vec![
                "predict",
                "--ckpt",
                s(&ckpt),
                "--image",
                s(&photo),
                "--out",
                s(&mask),
                "--overlay",
                "/nonexistent-folder/overlay.png",
            ],
            "the folder /nonexistent-folder does not exist",
        ),
        (
            vec![
                "import",
                "--from",
                "torchvision",
                "--arch",
                "fcn_resnet50",
                s(&ckpt),
                s(&ckpt),
            ],
            "the checkpoint would be written over the state dict",
        ),
    ];
    for (args, message) in probes {
        let err = refused(segment(), &args);
        assert!(err.contains(message), "segment {args:?}:\n{err}");
        assert_eq!(
            kept(&ckpt),
            ckpt_bytes,
            "segment {args:?} changed the checkpoint"
        );
        assert_eq!(
            kept(&photo),
            photo_bytes,
            "segment {args:?} changed the image"
        );
        assert!(!mask.exists(), "segment {args:?} wrote a mask");
    }
}

#[test]
fn a_refused_run_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (_voc, ade) = scenes(dir.path());
    let backbone = dir.path().join("backbone.safetensors");
    tiny_checkpoint(&backbone);
    let run = dir.path().join("run");
    let finetune = |data: &str, set: &str| {
        vec![
            "finetune".to_string(),
            "--backbone".into(),
            s(&backbone).into(),
            "--config".into(),
            s(&segment_recipe()).into(),
            "--data".into(),
            data.into(),
            "--out".into(),
            s(&run).into(),
            "--set".into(),
            set.into(),
        ]
    };
    let args = finetune(&ade, "optim.lr_mult.nosuch=2.0");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(segment(), &args);
    assert!(
        !run.exists(),
        "segment {args:?} left {:?}",
        std::fs::read_dir(&run)
            .map(|d| d.map(|e| e.unwrap().file_name()).collect::<Vec<_>>())
            .unwrap_or_default()
    );

    // With --nproc the same checks run once, before any rank starts (no rank is named, the
    // message is not repeated), and more ranks than cores are refused before anything.
    for mut args in [
        finetune(&ade, "optim.bogus=1"),
        // 4 training scenes: one batch of 4 for one process, none for each of two ranks.
        finetune(&ade, "data.batch_size=4"),
    ] {
        args.extend(["--nproc".to_string(), "2".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = refused(segment(), &args);
        assert_eq!(err.trim().lines().count(), 1, "segment {args:?}:\n{err}");
        assert!(
            !err.contains("[rank") && !err.contains("exited with status"),
            "segment {args:?} started ranks:\n{err}"
        );
        assert!(!run.exists(), "segment {args:?} created the run folder");
        let mut args = args.clone();
        *args.last_mut().unwrap() = "1024";
        let err = refused(segment(), &args);
        assert!(
            err.contains("--nproc 1024 needs a CPU core per rank"),
            "segment {args:?}:\n{err}"
        );
    }
}
