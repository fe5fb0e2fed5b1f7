//! The input/output layer of `detect` and `segment` (and `backbone` where it shares it) under
//! hostile paths: a FIFO or a link to /dev/zero where a file is expected, a sparse 1 GB
//! recipe, numbers out of range, an output that is one of the inputs, and a run refused
//! after its checks. Every probe runs under a time limit and an address-space cap, so a hang
//! or a runaway read fails the test instead of taking the machine.

use e2e::{bin, measure_within, repo_root, tiny, Measured};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Every probe must end well within this (a libtorch binary starts in a second or two).
const PROBE_TIME: Duration = Duration::from_secs(60);
/// Address space of a probe: libtorch maps a few GB; reading /dev/zero or a 1 GB file into
/// memory twice does not fit.
const PROBE_ADDRESS_SPACE: u64 = 6 << 30;
/// Peak resident memory of a probe that must refuse its input before reading it.
const PROBE_PEAK_MIB: f64 = 700.0;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `name args` as a probe: it must end by itself with exit status 2 (bad input), no
/// panic, within the memory bound; returns its stderr.
fn refused(name: &str, args: &[&str]) -> String {
    let m: Measured = measure_within(
        Command::new(bin(name)).args(args),
        PROBE_TIME,
        PROBE_ADDRESS_SPACE,
    );
    assert!(
        !m.timed_out,
        "{name} {args:?} hung (killed after {PROBE_TIME:?})"
    );
    assert_eq!(
        m.status.code(),
        Some(2),
        "{name} {args:?}: {} instead of exit 2:\n{}",
        m.ending(),
        m.stderr
    );
    assert!(
        !m.stderr.contains("panicked"),
        "{name} {args:?}:\n{}",
        m.stderr
    );
    assert!(
        m.peak_rss_mib < PROBE_PEAK_MIB,
        "{name} {args:?} used {:.0} MiB before refusing",
        m.peak_rss_mib
    );
    m.stderr
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(s(path)).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo touches no memory of ours.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn image(dir: &Path) -> PathBuf {
    let path = dir.join("photo.png");
    image::RgbImage::from_pixel(40, 32, image::Rgb([90, 120, 200]))
        .save(&path)
        .unwrap();
    path
}

fn detect_recipe() -> PathBuf {
    repo_root().join("configs/detection/fashion-scenes-c4.toml")
}

fn segment_recipe() -> PathBuf {
    repo_root().join("configs/segmentation/tiny.toml")
}

#[test]
fn fifos_and_devices_are_refused_at_once_with_their_kind_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fifo = d.join("pipe");
    mkfifo(&fifo);
    let zero = d.join("zero.safetensors");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let good = d.join("good.safetensors");
    tiny::checkpoint(&good);
    let photo = image(d);
    let out = d.join("out.safetensors");
    let run = d.join("run");
    let detect_recipe = detect_recipe();
    for special in [&fifo, &zero] {
        let kind = match special == &fifo {
            true => "a FIFO (named pipe), not a regular file",
            false => "a character device, not a regular file",
        };
        let probes: Vec<(&str, Vec<&str>)> = vec![
            (
                "detect",
                vec!["predict", "--ckpt", s(special), "--image", s(&photo)],
            ),
            (
                "segment",
                vec![
                    "predict",
                    "--ckpt",
                    s(special),
                    "--image",
                    s(&photo),
                    "--out",
                    s(&out),
                ],
            ),
            (
                "detect",
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
            ),
            (
                "detect",
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
            ),
            (
                "segment",
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
            ),
            (
                "detect",
                vec![
                    "import",
                    "--from",
                    "torchvision",
                    "--arch",
                    "fasterrcnn_resnet50_fpn",
                    s(special),
                    s(&out),
                ],
            ),
            (
                "detect",
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
            ),
            (
                "segment",
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
            ),
            (
                "backbone",
                vec![
                    "import",
                    "--from",
                    "torchvision",
                    "--arch",
                    "resnet18",
                    "--classes",
                    s(special),
                    s(&good),
                    s(&out),
                ],
            ),
        ];
        for (name, args) in probes {
            let err = refused(name, &args);
            assert!(
                err.contains(s(special)) && err.contains(kind),
                "{name} {args:?}:\n{err}"
            );
        }
    }
    assert!(!out.exists() && !run.exists());
}

#[test]
fn a_sparse_gigabyte_recipe_is_refused_by_its_size_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("huge.toml");
    std::fs::File::create(&recipe)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let backbone = dir.path().join("backbone.safetensors");
    tiny::checkpoint(&backbone);
    let run = dir.path().join("run");
    for (name, data) in [
        ("detect", "voc:/nonexistent"),
        ("segment", "ade20k:/nonexistent"),
    ] {
        let err = refused(
            name,
            &[
                "finetune",
                "--backbone",
                s(&backbone),
                "--config",
                s(&recipe),
                "--data",
                data,
                "--out",
                s(&run),
            ],
        );
        assert!(
            err.contains("huge.toml: is 1 GiB; a recipe is at most 1 MiB"),
            "{name}:\n{err}"
        );
    }
}

#[test]
fn a_checkpoint_whose_header_outruns_the_file_is_refused_before_its_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    tiny::checkpoint(&good);
    let bytes = std::fs::read(&good).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..8 + header_len + 16]).unwrap();
    let photo = image(dir.path());
    let err = refused(
        "detect",
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
    tiny::checkpoint(&backbone);
    let run = dir.path().join("run");
    let cases = [
        (
            "train.threads=4294967295",
            "train.threads must be between 0 and 1024",
        ),
        (
            "train.threads=2147483648",
            "train.threads must be between 0 and 1024",
        ),
        (
            "train.threads=1500",
            "train.threads must be between 0 and 1024",
        ),
        (
            "data.prefetch=9000000000000000000",
            "data.prefetch must be between 1 and 256",
        ),
        (
            "data.workers=100000",
            "data.workers must be between 0 and 256",
        ),
        (
            "data.batch_size=1000000000",
            "data.batch_size must be between 1 and 4096",
        ),
        (
            "schedule.epochs=1000000000",
            "schedule.epochs must be between 1 and 100000",
        ),
        (
            "schedule.epochs=9223372036854775807",
            "schedule.epochs must be between 1 and 100000",
        ),
        (
            "train.log_every=2000000000",
            "train.log_every must be between 1 and 1000000000",
        ),
        (
            "train.eval_every_epochs=1000000",
            "train.eval_every_epochs must be between 1 and 100000",
        ),
    ];
    for (name, recipe, data) in [
        ("detect", detect_recipe(), "voc:/nonexistent"),
        ("segment", segment_recipe(), "ade20k:/nonexistent"),
    ] {
        for (set, message) in cases {
            let err = refused(
                name,
                &[
                    "finetune",
                    "--backbone",
                    s(&backbone),
                    "--config",
                    s(&recipe),
                    "--data",
                    data,
                    "--out",
                    s(&run),
                    "--set",
                    set,
                ],
            );
            assert!(err.contains(message), "{name} --set {set}:\n{err}");
        }
    }
    assert!(!run.exists(), "a refused recipe created its run folder");
}

#[test]
fn no_command_writes_over_its_own_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ckpt = d.join("model.safetensors");
    tiny::checkpoint(&ckpt);
    let photo = image(d);
    let kept = |path: &Path| std::fs::read(path).unwrap();
    let (ckpt_bytes, photo_bytes) = (kept(&ckpt), kept(&photo));
    let mask = d.join("mask.png");
    let probes: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "detect",
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
            "detect",
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
            "segment",
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
            "segment",
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
            "segment",
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
            "segment",
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
            "detect",
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
        (
            "segment",
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
        (
            "backbone",
            vec!["export", "--to", "torchvision", s(&ckpt), s(&ckpt)],
            "the state dict would be written over the checkpoint",
        ),
    ];
    for (name, args, message) in probes {
        let err = refused(name, &args);
        assert!(err.contains(message), "{name} {args:?}:\n{err}");
        assert_eq!(
            kept(&ckpt),
            ckpt_bytes,
            "{name} {args:?} changed the checkpoint"
        );
        assert_eq!(
            kept(&photo),
            photo_bytes,
            "{name} {args:?} changed the image"
        );
        assert!(!mask.exists(), "{name} {args:?} wrote a mask");
    }
}

/// Synthetic scenes in the VOC and ADE20K layouts.
fn scenes(root: &Path) -> (String, String) {
    let scenes = root.join("scenes");
    e2e::shape_scenes(&scenes, 4, 2, 2, 48);
    (
        format!("voc:{}", scenes.join("VOCdevkit").display()),
        format!("ade20k:{}", scenes.join("ADEChallengeData2016").display()),
    )
}

#[test]
fn a_refused_run_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (voc, ade) = scenes(dir.path());
    let backbone = dir.path().join("backbone.safetensors");
    tiny::checkpoint(&backbone);
    let run = dir.path().join("run");
    let detect = |data: &str, set: &str| {
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
    let segment = |data: &str, set: &str| {
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
    let err = refused(
        "detect",
        &detect(&coco, "train.seed=1")
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
        ("detect", detect(&voc, "data.train_split=\"nosuch\"")),
        ("detect", detect(&voc, "model.trainable_layers=6")),
        ("detect", detect(&voc, "optim.lr_mult.nosuch=2.0")),
        ("detect", detect(&ade, "train.seed=1")),
        ("segment", segment(&ade, "optim.lr_mult.nosuch=2.0")),
    ];
    for (name, args) in probes {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(name, &args);
        assert!(
            !run.exists(),
            "{name} {args:?} left {:?}",
            std::fs::read_dir(&run)
                .map(|d| d.map(|e| e.unwrap().file_name()).collect::<Vec<_>>())
                .unwrap_or_default()
        );
    }

    // With --nproc the same checks run once, before any rank starts (no rank is named, the
    // message is not repeated), and more ranks than cores are refused before anything.
    for (name, mut args) in [
        ("detect", detect(&voc, "model.trainable_layers=6")),
        ("segment", segment(&ade, "optim.bogus=1")),
        // 4 training scenes: one batch of 4 for one process, none for each of two ranks.
        ("segment", segment(&ade, "data.batch_size=4")),
    ] {
        args.extend(["--nproc".to_string(), "2".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = refused(name, &args);
        assert_eq!(err.trim().lines().count(), 1, "{name} {args:?}:\n{err}");
        assert!(
            !err.contains("[rank") && !err.contains("exited with status"),
            "{name} {args:?} started ranks:\n{err}"
        );
        assert!(!run.exists(), "{name} {args:?} created the run folder");
        let mut args = args.clone();
        *args.last_mut().unwrap() = "1024";
        let err = refused(name, &args);
        assert!(
            err.contains("--nproc 1024 needs a CPU core per rank"),
            "{name} {args:?}:\n{err}"
        );
    }
}

#[test]
fn a_finished_run_says_so_and_a_garbled_log_does_not_block_resume() {
    let inputs = tiny::RunInputs::new();
    let run = inputs.path("run");
    let args = |more: &[&str]| inputs.train_args(&inputs.config, &run, more);
    let call = |a: Vec<String>| {
        measure_within(
            Command::new(bin("backbone")).args(&a),
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
