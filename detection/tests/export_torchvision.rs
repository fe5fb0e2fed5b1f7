//! `detect export --to torchvision`: the written state dict is exactly torchvision's
//! `fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=K+1)` key set
//! (what `load_state_dict(strict=True)` checks), `detect import` of it gives back the same
//! tensors, and, where Python has torchvision, the model the printed Python line builds
//! detects what `detect predict` detects. C4 detectors and bodies torchvision cannot hold are
//! refused with one sentence.

use common::{torchvision_keys, torchvision_state_dict, GOLDEN};
use detection::import::{import_torchvision, TorchvisionDetector};
use detection::model::{DetectorConfig, FasterRcnn};
use detection::transform::TransformSpec;
use engine::checkpoint::{
    read_safetensors, var_store_tensors, write_safetensors, Checkpoint, Metadata, TaskKind,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tch::{nn, Device, Kind};

mod common;

fn detect(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detect"))
        .args(args)
        .output()
        .unwrap()
}

fn succeeded(run: Output) -> String {
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8(run.stdout).unwrap()
}

const CLASSES: [&str; 4] = ["cat", "dog", "cow", "owl"];

/// A detector with the golden formula's weights (which give about twenty well separated
/// detections on the golden image), the golden run's sizes (320/480, 300 proposals) and
/// class names, written to `dir`.
fn formula_detector(dir: &Path) -> PathBuf {
    let state = dir.join("formula.safetensors");
    write_safetensors(&state, &torchvision_state_dict(), None).unwrap();
    let names = CLASSES.map(String::from).to_vec();
    let mut ckpt = import_torchvision(
        &state,
        TorchvisionDetector::FasterrcnnResnet50Fpn,
        None,
        Some(names),
    )
    .unwrap();
    let sizes = TransformSpec {
        min_size: 320,
        max_size: 480,
        ..TransformSpec::torchvision()
    };
    ckpt.metadata.transform = Some(serde_json::to_value(&sizes).unwrap());
    ckpt.metadata.model["rpn"]["post_nms_top_n_test"] = 300.into();
    let path = dir.join("detector.safetensors");
    ckpt.write(&path).unwrap();
    path
}

/// The golden run's 190x290 image as a PNG in `dir`.
fn golden_image(dir: &Path) -> PathBuf {
    let (golden, _) =
        read_safetensors(&Path::new(GOLDEN).join("fasterrcnn_fpn.safetensors")).unwrap();
    let image = &golden["image"];
    let (h, w) = (image.size()[0] as u32, image.size()[1] as u32);
    let pixels = Vec::<u8>::try_from(image.reshape([-1])).unwrap();
    let path = dir.join("scene.png");
    image::RgbImage::from_raw(w, h, pixels)
        .unwrap()
        .save(&path)
        .unwrap();
    path
}

#[test]
fn export_is_torchvisions_state_dict_round_trips_and_detects_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt_path = formula_detector(dir.path());
    let exported = dir.path().join("torchvision.safetensors");
    let python = succeeded(detect(&[
        Path::new("export"),
        Path::new("--to"),
        Path::new("torchvision"),
        &ckpt_path,
        &exported,
    ]));
    assert!(
        python.contains(
            "model = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, \
             weights_backbone=None, num_classes=5, min_size=320, max_size=480, \
             image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225], \
             size_divisible=32, rpn_pre_nms_top_n_test=1000, rpn_post_nms_top_n_test=300, \
             rpn_nms_thresh=0.7, box_score_thresh=0.05, box_nms_thresh=0.5, \
             box_detections_per_img=100, bbox_reg_weights=[10.0, 10.0, 5.0, 5.0])"
        ),
        "{python}"
    );
    assert!(
        python.contains(&format!(
            "model.load_state_dict(safetensors.torch.load_file(\"{}\"), strict=True)",
            exported.display()
        )),
        "{python}"
    );
    // torchvision's default epsilon: no line to change it.
    assert!(!python.contains("eps"), "{python}");

    // Exactly the names, shapes and types of torchvision's state dict, and the tensors the
    // golden formula gave torchvision's model.
    let (tensors, header) = read_safetensors(&exported).unwrap();
    let keys = torchvision_keys();
    assert_eq!(tensors.len(), keys.len());
    let formula = torchvision_state_dict();
    for (name, shape) in &keys {
        let t = tensors
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(&t.size(), shape, "{name}");
        let kind = match name.ends_with("num_batches_tracked") {
            true => Kind::Int64,
            false => Kind::Float,
        };
        assert_eq!(t.kind(), kind, "{name}");
        assert!(t.equal(&formula[name]), "{name} changed");
    }
    let classes: Vec<String> = serde_json::from_str(&header["classes"]).unwrap();
    assert_eq!(classes, ["__background__", "cat", "dog", "cow", "owl"]);
    let kwargs: serde_json::Value = serde_json::from_str(&header["torchvision_kwargs"]).unwrap();
    assert_eq!(kwargs["num_classes"], 5);
    assert_eq!(kwargs["rpn_post_nms_top_n_test"], 300);
    assert_eq!(header["bn_eps"], "0.00001");

    // Back through `detect import`: the same tensors and class names.
    let back = dir.path().join("back.safetensors");
    succeeded(detect(&[
        Path::new("import"),
        Path::new("--from"),
        Path::new("torchvision"),
        Path::new("--arch"),
        Path::new("fasterrcnn_resnet50_fpn"),
        &exported,
        &back,
    ]));
    let original = Checkpoint::read(&ckpt_path).unwrap();
    let reimported = Checkpoint::read(&back).unwrap();
    assert_eq!(reimported.tensors.len(), original.tensors.len());
    for (name, t) in &original.tensors {
        assert!(reimported.tensors[name].equal(t), "{name} changed");
    }
    assert_eq!(reimported.metadata.classes, CLASSES);
    assert_eq!(
        reimported.metadata.model["backbone"]["bn_eps"],
        original.metadata.model["backbone"]["bn_eps"]
    );

    // Weights trained with another batch-norm epsilon (torchvision's COCO file: 0) keep it
    // through the metadata, and the printed Python sets it on torchvision's model.
    let eps0 = dir.path().join("eps0.safetensors");
    let eps0_exported = dir.path().join("eps0_torchvision.safetensors");
    let eps0_back = dir.path().join("eps0_back.safetensors");
    let import = |input: &Path, output: &Path, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_detect"))
            .args(["import", "--from", "torchvision", "--arch"])
            .arg("fasterrcnn_resnet50_fpn")
            .args(extra)
            .args([input, output])
            .output()
            .unwrap()
    };
    succeeded(import(&exported, &eps0, &["--bn-eps", "0"]));
    let run = detect(&[
        Path::new("export"),
        Path::new("--to"),
        Path::new("torchvision"),
        &eps0,
        &eps0_exported,
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(
        stderr.contains("note: the weights use batch-norm eps 0 and torchvision builds with"),
        "{stderr}"
    );
    let eps0_python = succeeded(run);
    assert!(
        eps0_python.contains(
            "[setattr(m, \"eps\", 0) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]"
        ),
        "{eps0_python}"
    );
    assert_eq!(read_safetensors(&eps0_exported).unwrap().1["bn_eps"], "0");
    succeeded(import(&eps0_exported, &eps0_back, &[]));
    let eps0_back = Checkpoint::read(&eps0_back).unwrap();
    assert_eq!(eps0_back.metadata.model["backbone"]["bn_eps"], 0.0);

    // torchvision's model, built by the printed lines, against `detect predict`.
    let python_bin = match e2e::python::with_modules(&["torch", "torchvision", "safetensors"]) {
        Ok(python_bin) => python_bin,
        Err(reason) => {
            eprintln!("skipped running the export in torchvision: {reason}");
            return;
        }
    };
    let image = golden_image(dir.path());
    let lines = dir.path().join("load.py");
    std::fs::write(&lines, &python).unwrap();
    let script = e2e::fixture("pytorch/check_torchvision_export.py");
    let theirs = e2e::json(&succeeded(
        Command::new(python_bin)
            .arg(&script)
            .arg("detect")
            .args([&lines, &exported, &image])
            .output()
            .unwrap(),
    ));
    let ours = e2e::json(&succeeded(detect(&[
        Path::new("predict"),
        Path::new("--json"),
        Path::new("--ckpt"),
        &ckpt_path,
        Path::new("--image"),
        &image,
    ])));
    let ours = ours["detections"].as_array().unwrap();
    let labels = theirs["labels"].as_array().unwrap();
    assert!(labels.len() > 10, "torchvision found few detections");
    assert_eq!(ours.len(), labels.len());
    let (mut box_error, mut score_error) = (0f64, 0f64);
    for (i, d) in ours.iter().enumerate() {
        let label = labels[i].as_i64().unwrap();
        assert_eq!(d["class"], label - 1, "detection {i}");
        assert_eq!(
            d["label"], theirs["classes"][label as usize],
            "detection {i}"
        );
        let score = theirs["scores"][i].as_f64().unwrap();
        score_error = score_error.max((d["score"].as_f64().unwrap() - score).abs());
        for c in 0..4 {
            let theirs = theirs["boxes"][i][c].as_f64().unwrap();
            box_error = box_error.max((d["box"][c].as_f64().unwrap() - theirs).abs());
        }
    }
    eprintln!(
        "detect predict vs torchvision: boxes within {box_error} px, scores within {score_error}"
    );
    assert!(box_error < 1e-3, "boxes differ by up to {box_error} px");
    assert!(score_error < 1e-4, "scores differ by up to {score_error}");
}

/// A detector of `design` over `arch` with fresh weights, written to `path`.
fn fresh_detector(config: DetectorConfig, path: &Path) {
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = FasterRcnn::new(&vs.root(), &config);
    let names = ["a", "b"].map(String::from).to_vec();
    Checkpoint {
        metadata: Metadata {
            task: TaskKind::Detection,
            arch: config.arch_name(),
            num_classes: config.num_classes,
            classes: names,
            model: serde_json::to_value(&config).unwrap(),
            transform: Some(serde_json::to_value(TransformSpec::gluoncv_voc()).unwrap()),
            config: None,
            epoch: None,
            iter: None,
            metrics: None,
        },
        tensors: var_store_tensors(&vs),
    }
    .write(path)
    .unwrap();
}

#[test]
fn c4_and_resnet50d_detectors_are_refused_in_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let cases = [
        (
            DetectorConfig::c4("resnet50".parse().unwrap(), 2, 1e-5),
            "is a fasterrcnn_resnet50_c4 (GluonCV's C4 design, layer4 run on each RoI), which \
             torchvision has no model for",
        ),
        (
            DetectorConfig::fpn("resnet50d".parse().unwrap(), 2, 1e-5),
            "is a Faster R-CNN over a resnet50d (a ResNet-50 of variant D), which torchvision's \
             fasterrcnn_resnet50_fpn cannot hold",
        ),
    ];
    for (config, sentence) in cases {
        let ckpt = dir
            .path()
            .join(format!("{}.safetensors", config.arch_name()));
        fresh_detector(config, &ckpt);
        let run = detect(&[
            Path::new("export"),
            Path::new("--to"),
            Path::new("torchvision"),
            &ckpt,
            &out,
        ]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("{}: {sentence}", ckpt.display())),
            "{stderr}"
        );
        assert!(!out.exists(), "a refused export wrote {}", out.display());
    }
}

#[test]
fn help_says_what_is_written_and_which_call_loads_it() {
    let help = succeeded(detect(&[Path::new("export"), Path::new("--help")]));
    for part in [
        "torchvision state dict (.safetensors)",
        "torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=K+1",
        "load_state_dict(strict=True)",
        "C4 checkpoint is refused",
    ] {
        assert!(help.contains(part), "{part:?} not in:\n{help}");
    }
}
