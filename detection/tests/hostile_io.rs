//! The input/output layer of `detect` under hostile paths (segment's probes are in
//! segmentation/tests/hostile_io.rs, backbone's in backbones/tests/hostile_io.rs): a FIFO or
//! a link to /dev/zero where a file is expected, a sparse 1 GB recipe, numbers out of range,
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

fn detect() -> &'static Path {
    e2e::bin!("detect")
}

fn detect_recipe() -> PathBuf {
    repo_root().join("configs/detection/fashion-scenes-c4.toml")
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
    let detect_recipe = detect_recipe();
    for (special, kind) in &special_files(d) {
        let probes: Vec<Vec<&str>> = vec![
            vec!["predict", "--ckpt", s(special), "--image", s(&photo)],
            vec![
                "finetune",
                "--backbone",
                s(&good),
                "--config",
                s(special),
                "--data",
                "voc:/nonexistent",
                "--out",
                s(&run),
            ],
            vec![
                "finetune",
                "--backbone",
                s(special),
                "--config",
                s(&detect_recipe),
                "--data",
                "voc:/nonexistent",
                "--out",
                s(&run),
            ],
            vec![
                "import",
                "--from",
                "torchvision",
                "--arch",
                "fasterrcnn_resnet50_fpn",
                s(special),
                s(&out),
            ],
            vec![
                "import",
                "--from",
                "torchvision",
                "--arch",
                "fasterrcnn_resnet50_fpn",
                "--classes",
                s(special),
                s(&good),
                s(&out),
            ],
        ];
        for args in probes {
            let err = refused(detect(), &args);
            assert!(
                err.contains(s(special)) && err.contains(kind),
                "detect {args:?}:\n{err}"
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
        detect(),
        &[
            "finetune",
            "--backbone",
            s(&backbone),
            "--config",
            s(&recipe),
            "--data",
            "voc:/nonexistent",
            "--out",
            s(&run),
        ],
    );
    assert!(err.contains(SPARSE_RECIPE_REFUSED), "detect:\n{err}");
}

#[test]
fn a_checkpoint_whose_header_outruns_the_file_is_refused_before_its_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    tiny_checkpoint(&good);
    let bytes = std::fs::read(&good).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..8 + header_len + 16]).unwrap();
    let photo = image(dir.path());
    let err = refused(
        detect(),
        &["predict", "--ckpt", s(&cut), "--image", s(&photo)],
    );
    assert!(
        err.contains(
            "cut.safetensors: not a valid safetensors file (truncated: its header declares"
        ),
        "{err}"
    );
}

#[test]
fn shared_keys_have_one_range_in_every_binary() {
    let dir = tempfile::tempdir().unwrap();
    let backbone = dir.path().join("backbone.safetensors");
    tiny_checkpoint(&backbone);
    let run = dir.path().join("run");
    let recipe = detect_recipe();
    for (set, message) in SHARED_KEY_CASES {
        let err = refused(
            detect(),
            &[
                "finetune",
                "--backbone",
                s(&backbone),
                "--config",
                s(&recipe),
                "--data",
                "voc:/nonexistent",
                "--out",
                s(&run),
                "--set",
                set,
            ],
        );
        assert!(err.contains(message), "detect --set {set}:\n{err}");
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
            "the drawing would be written over the checkpoint",
        ),
        (
            vec![
                "predict",
                "--ckpt",
                s(&ckpt),
                "--image",
                s(&photo),
                "--out",
                s(&photo),
            ],
            "the drawing would be written over the image",
        ),
        (
            vec![
                "import",
                "--from",
                "torchvision",
                "--arch",
                "fasterrcnn_resnet50_fpn",
                s(&ckpt),
                s(&ckpt),
            ],
            "the checkpoint would be written over the state dict",
        ),
    ];
    for (args, message) in probes {
        let err = refused(detect(), &args);
        assert!(err.contains(message), "detect {args:?}:\n{err}");
        assert_eq!(
            kept(&ckpt),
            ckpt_bytes,
            "detect {args:?} changed the checkpoint"
        );
        assert_eq!(
            kept(&photo),
            photo_bytes,
            "detect {args:?} changed the image"
        );
        assert!(!mask.exists(), "detect {args:?} wrote a mask");
    }
}

#[test]
fn a_refused_run_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (voc, ade) = scenes(dir.path());
    let backbone = dir.path().join("backbone.safetensors");
    tiny_checkpoint(&backbone);
    let run = dir.path().join("run");
    let finetune = |data: &str, set: &str| {
        vec![
            "finetune".to_string(),
            "--backbone".into(),
            s(&backbone).into(),
            "--config".into(),
            s(&detect_recipe()).into(),
            "--data".into(),
            data.into(),
            "--out".into(),
            s(&run).into(),
            "--set".into(),
            set.into(),
        ]
    };
    // COCO training reads its ground truth as evaluation does: an annotation of an image the
    // file does not define is refused, not silently left out.
    let scenes_coco = dir.path().join("scenes/coco");
    let mut gt: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(scenes_coco.join("annotations/instances_train.json")).unwrap(),
    )
    .unwrap();
    let mut orphan = gt["annotations"][0].clone();
    orphan["id"] = 999_999.into();
    orphan["image_id"] = 424_242.into();
    gt["annotations"].as_array_mut().unwrap().push(orphan);
    let orphans = scenes_coco.join("annotations/orphans.json");
    std::fs::write(&orphans, gt.to_string()).unwrap();
    let coco = format!(
        "coco:{}:{}",
        orphans.display(),
        scenes_coco.join("images/train").display()
    );
    let val = format!(
        "data.val_spec=\"coco:{}:{}\"",
        scenes_coco.join("annotations/instances_val.json").display(),
        scenes_coco.join("images/val").display()
    );
    let err = refused(
        detect(),
        &finetune(&coco, &val)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(
        err.contains("orphans.json") && err.contains("refers to image id 424242"),
        "{err}"
    );
    assert!(!run.exists(), "a refused COCO run created its run folder");

    let probes = [
        finetune(&voc, "data.train_split=\"nosuch\""),
        finetune(&voc, "model.trainable_layers=6"),
        finetune(&voc, "optim.lr_mult.nosuch=2.0"),
        finetune(&ade, "train.seed=1"),
    ];
    for args in probes {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(detect(), &args);
        assert!(
            !run.exists(),
            "detect {args:?} left {:?}",
            std::fs::read_dir(&run)
                .map(|d| d.map(|e| e.unwrap().file_name()).collect::<Vec<_>>())
                .unwrap_or_default()
        );
    }

    // With --nproc the same checks run once, before any rank starts (no rank is named, the
    // message is not repeated), and more ranks than cores are refused before anything.
    let mut args = finetune(&voc, "model.trainable_layers=6");
    args.extend(["--nproc".to_string(), "2".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = refused(detect(), &args);
    assert_eq!(err.trim().lines().count(), 1, "detect {args:?}:\n{err}");
    assert!(
        !err.contains("[rank") && !err.contains("exited with status"),
        "detect {args:?} started ranks:\n{err}"
    );
    assert!(!run.exists(), "detect {args:?} created the run folder");
    let mut args = args.clone();
    *args.last_mut().unwrap() = "1024";
    let err = refused(detect(), &args);
    assert!(
        err.contains("--nproc 1024 needs a CPU core per rank"),
        "detect {args:?}:\n{err}"
    );
}
