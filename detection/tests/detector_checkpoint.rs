//! Detection checkpoints are untrusted input: each lying field is refused with the file and
//! the field named. And `detect import` end to end: the older key spelling of torchvision's
//! published COCO file is accepted, BN counters dropped, bad files exit 2.

use detection::model::load::Detector;
use detection::model::{DetectorConfig, FasterRcnn};
use detection::transform::TransformSpec;
use engine::checkpoint::{
    read_safetensors, var_store_tensors, write_safetensors, Checkpoint, Metadata, NamedTensors,
    TaskKind,
};
use std::path::Path;
use std::process::Command;
use tch::{nn, Device, Kind, Tensor};

fn detector_checkpoint(arch: &str, num_classes: i64) -> Checkpoint {
    let config = DetectorConfig::fpn(arch.parse().unwrap(), num_classes, 1e-5);
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = FasterRcnn::new(&vs.root(), &config);
    Checkpoint {
        metadata: Metadata {
            task: TaskKind::Detection,
            arch: config.arch_name(),
            num_classes,
            classes: (0..num_classes).map(|i| format!("thing{i}")).collect(),
            model: serde_json::to_value(&config).unwrap(),
            transform: Some(serde_json::to_value(TransformSpec::torchvision()).unwrap()),
            config: None,
            epoch: None,
            iter: None,
            metrics: None,
        },
        tensors: var_store_tensors(&vs),
    }
}

/// What opening `ckpt` as if read from `path` says (the checks that run on every read,
/// without writing the file each time).
fn open_error(ckpt: Checkpoint, path: &Path) -> String {
    match Detector::from_parts(ckpt, path, Device::Cpu) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn lying_detection_checkpoints_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("det.safetensors");
    let good = detector_checkpoint("resnet18", 2);
    good.write(&path).unwrap();
    let detector = Detector::from_checkpoint(&path, Device::Cpu).unwrap();
    assert_eq!(detector.classes, ["thing0", "thing1"]);

    let mut c = detector_checkpoint("resnet18", 2);
    c.metadata.num_classes = 3;
    c.metadata.classes.push("extra".into());
    let err = open_error(c, &path);
    assert!(
        err.contains("det.safetensors") && err.contains("has 2 classes but num_classes is 3"),
        "{err}"
    );

    let mut c = detector_checkpoint("resnet18", 2);
    c.metadata.transform.as_mut().unwrap()["min_size"] = 0.into();
    let err = open_error(c, &path);
    assert!(
        err.contains("'transform'") && err.contains("min_size must be between 8 and 4096, not 0"),
        "{err}"
    );

    // Each side in range, but together every image becomes 16.8 million pixels (5.8 GB).
    let mut c = detector_checkpoint("resnet18", 2);
    c.metadata.transform.as_mut().unwrap()["min_size"] = 4096.into();
    c.metadata.transform.as_mut().unwrap()["max_size"] = 4096.into();
    let err = open_error(c, &path);
    assert!(
        err.contains("'transform'")
            && err.contains("min_size 4096 and max_size 4096")
            && err.contains("TRICKS_MAX_INFERENCE_MIB"),
        "{err}"
    );

    let mut c = detector_checkpoint("resnet18", 2);
    c.metadata.model["rpn"]["nms_thresh"] = 7.into();
    let err = open_error(c, &path);
    assert!(
        err.contains("'model'") && err.contains("rpn.nms_thresh"),
        "{err}"
    );

    let mut c = detector_checkpoint("resnet18", 2);
    c.metadata.model["rpn"]["post_nms_top_n_test"] = (1i64 << 40).into();
    let err = open_error(c, &path);
    assert!(
        err.contains("rpn.post_nms_top_n_test must be between"),
        "{err}"
    );

    let mut c = detector_checkpoint("resnet18", 2);
    c.metadata.arch = "fasterrcnn_resnet50_fpn".into();
    let err = open_error(c, &path);
    assert!(
        err.contains("describes a fasterrcnn_resnet18_fpn but arch says fasterrcnn_resnet50_fpn"),
        "{err}"
    );

    let mut c = detector_checkpoint("resnet18", 2);
    let w = c.tensors["rpn.head.cls_logits.weight"].copy();
    let _ = w.view([-1]).get(0).fill_(f64::NAN);
    c.tensors.insert("rpn.head.cls_logits.weight".into(), w);
    let err = open_error(c, &path);
    assert!(
        err.contains("rpn.head.cls_logits.weight holds NaN"),
        "{err}"
    );

    let mut c = detector_checkpoint("resnet18", 2);
    c.tensors.remove("roi_heads.box_head.fc7.bias");
    let err = open_error(c, &path);
    assert!(
        err.contains("1 missing: roi_heads.box_head.fc7.bias"),
        "{err}"
    );
}

fn detect(args: &[&Path]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_detect"))
        .args([
            "import",
            "--from",
            "torchvision",
            "--arch",
            "fasterrcnn_resnet50_fpn",
        ])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn detect_import_reads_the_older_key_spelling_and_refuses_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    // A state dict as torchvision's published COCO file spells it: FPN convs and the RPN
    // conv without their Sequential indices, BN counters present.
    let ours = detector_checkpoint("resnet50", 2).tensors;
    let old: NamedTensors = ours
        .iter()
        .map(|(name, t)| {
            let name = name
                .replace("inner_blocks.0.0.", "inner_blocks.0.")
                .replace("layer_blocks.3.0.", "layer_blocks.3.")
                .replace("rpn.head.conv.0.0.", "rpn.head.conv.");
            (name, t.shallow_clone())
        })
        .chain([(
            "backbone.body.bn1.num_batches_tracked".to_string(),
            Tensor::from(0i64),
        )])
        .collect();
    assert!(old.contains_key("rpn.head.conv.weight"));
    let input = dir.path().join("coco_style.safetensors");
    write_safetensors(&input, &old, None).unwrap();
    let output = dir.path().join("imported.safetensors");
    let run = detect(&[&input, &output]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let imported = Checkpoint::read(&output).unwrap();
    assert_eq!(imported.metadata.arch, "fasterrcnn_resnet50_fpn");
    assert_eq!(imported.metadata.classes, ["class_0", "class_1"]);
    assert_eq!(imported.tensors.len(), ours.len());
    for (name, t) in &ours {
        assert!(imported.tensors[name].equal(t), "{name} changed");
    }

    // Not a Faster R-CNN, and not there: exit 2 with the file named.
    let resnet = dir.path().join("resnet.safetensors");
    let fc = NamedTensors::from([(
        "fc.weight".to_string(),
        Tensor::zeros([10, 8], (Kind::Float, Device::Cpu)),
    )]);
    write_safetensors(&resnet, &fc, None).unwrap();
    for bad in [resnet, dir.path().join("absent.safetensors")] {
        let run = detect(&[&bad, &output]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(bad.file_name().unwrap().to_str().unwrap()),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    let run = Command::new(env!("CARGO_BIN_EXE_detect"))
        .args([
            "import",
            "--from",
            "torchvision",
            "--arch",
            "fasterrcnn_resnet50_fpn",
        ])
        .args(["--bn-eps", "1.5"])
        .args([&input, &output])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--bn-eps") && stderr.contains("from 0 to below 1, not 1.5"),
        "{stderr}"
    );
    let (tensors, _) = read_safetensors(&output).unwrap();
    assert!(tensors.contains_key("rpn.head.conv.0.0.weight"));
}

/// torchvision's Faster R-CNN holds floating-point tensors only: an integer one is refused,
/// naming it and its dtype (it used to become F32 without a word); a half-precision state
/// dict (`model.half()`) widens exactly, as `.float()` would.
#[test]
fn detect_import_refuses_integer_tensors_and_widens_half_precision() {
    let dir = tempfile::tempdir().unwrap();
    let ours = detector_checkpoint("resnet50", 2).tensors;
    let output = dir.path().join("imported.safetensors");
    const NAME: &str = "backbone.body.layer1.0.conv1.weight";
    let integer: NamedTensors = ours
        .iter()
        .map(|(name, t)| match name.as_str() {
            NAME => (name.clone(), t.to_kind(Kind::Int64)),
            _ => (name.clone(), t.shallow_clone()),
        })
        .collect();
    let input = dir.path().join("integer.safetensors");
    write_safetensors(&input, &integer, None).unwrap();
    let run = detect(&[&input, &output]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{NAME} is Int64; torchvision's Faster R-CNN has floating-point tensors only"
        )),
        "{stderr}"
    );
    assert!(!output.exists());

    let half: NamedTensors = ours
        .iter()
        .map(|(name, t)| (name.clone(), t.to_kind(Kind::Half)))
        .collect();
    let input = dir.path().join("half.safetensors");
    write_safetensors(&input, &half, None).unwrap();
    let run = detect(&[&input, &output]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let imported = Checkpoint::read(&output).unwrap();
    for (name, t) in &half {
        assert!(
            imported.tensors[name].equal(&t.to_kind(Kind::Float)),
            "{name} changed"
        );
    }
}

#[test]
fn detect_predict_refuses_a_classifier_and_a_missing_image() {
    let dir = tempfile::tempdir().unwrap();
    let config = backbones::ResNetConfig::classifier("resnet18".parse().unwrap(), 3);
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = backbones::ResNet::new(&vs.root(), &config);
    let classifier = Checkpoint {
        metadata: Metadata {
            task: TaskKind::Classification,
            arch: "resnet18".into(),
            num_classes: 3,
            classes: vec!["a".into(), "b".into(), "c".into()],
            model: serde_json::to_value(&config).unwrap(),
            transform: None,
            config: None,
            epoch: None,
            iter: None,
            metrics: None,
        },
        tensors: var_store_tensors(&vs),
    };
    let ckpt = dir.path().join("classifier.safetensors");
    classifier.write(&ckpt).unwrap();
    let image = dir.path().join("scene.png");
    image::RgbImage::new(40, 30).save(&image).unwrap();
    let predict = |ckpt: &Path, image: &Path| {
        Command::new(env!("CARGO_BIN_EXE_detect"))
            .arg("predict")
            .args([Path::new("--ckpt"), ckpt, Path::new("--image"), image])
            .output()
            .unwrap()
    };
    let run = predict(&ckpt, &image);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("classifier.safetensors")
            && stderr.contains("is a classification checkpoint (resnet18), not a detection one"),
        "{stderr}"
    );

    let det = dir.path().join("det.safetensors");
    detector_checkpoint("resnet18", 2).write(&det).unwrap();
    let run = predict(&det, &dir.path().join("absent.jpg"));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("absent.jpg"), "{stderr}");
}

/// `detect predict` on a photo at the pixel limit's edge: the photo is normalised and
/// resized one channel at a time, so only one channel is ever in floats. Peak memory is
/// compared with the same run on a small image (libtorch's own share differs between
/// machines); an 8000 x 8000 image once cost 2.4 GB more, its float copies alone 2.3 GB.
#[test]
fn detect_predict_on_a_large_photo_stays_within_a_few_copies_of_its_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let det = dir.path().join("det.safetensors");
    let mut ckpt = detector_checkpoint("resnet18", 2);
    ckpt.metadata.transform.as_mut().unwrap()["min_size"] = 64.into();
    ckpt.metadata.transform.as_mut().unwrap()["max_size"] = 64.into();
    ckpt.write(&det).unwrap();
    let small = dir.path().join("small.png");
    let large = dir.path().join("large.png");
    image::RgbImage::from_pixel(64, 64, image::Rgb([90, 120, 200]))
        .save(&small)
        .unwrap();
    image::RgbImage::from_pixel(8000, 8000, image::Rgb([90, 120, 200]))
        .save(&large)
        .unwrap();
    let peak_mib = |image: &Path| {
        let (ok, peak) = peak_rss_mib(
            Command::new(env!("CARGO_BIN_EXE_detect"))
                .arg("predict")
                .args([Path::new("--ckpt"), &det, Path::new("--image"), image])
                .env("MALLOC_ARENA_MAX", "1"),
        );
        assert!(ok, "detect predict on {} failed", image.display());
        peak
    };
    let (small_mib, large_mib) = (peak_mib(&small), peak_mib(&large));
    // The decoded photo (183 MiB), its tensor (183 MiB) and one float channel (244 MiB).
    assert!(
        large_mib - small_mib < 1000.0,
        "an 8000 x 8000 photo took {large_mib:.0} MiB at its peak, {small_mib:.0} for 64 x 64"
    );
}

/// Runs `cmd` to the end; whether it succeeded, and its peak resident memory in MiB.
fn peak_rss_mib(cmd: &mut Command) -> (bool, f64) {
    // Reaped by wait4 below, which also gives the child's own peak memory.
    let pid = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
        .id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits on our own child, which nothing else waits on; both pointers are live.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 failed");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, usage.ru_maxrss as f64 / 1024.0)
}
