//! The whole fasterrcnn_resnet50_fpn inference against torchvision's: weights rebuilt from the
//! formula of tests/golden/fasterrcnn_fpn.py under torchvision's names (num_batches_tracked
//! included), written as a state dict, imported by `detection::import`, written and read back
//! as a detection checkpoint, run on the fixture's image; the detections must be
//! torchvision's (boxes within 2e-3 px, scores within 1e-4, the same labels in the same order).

use common::{torchvision_state_dict, GOLDEN};
use detection::import::{import_torchvision, TorchvisionDetector};
use detection::model::load::Detector;
use detection::transform::{boxes_to_original, ImageTransform, TransformSpec};
use engine::checkpoint::{read_safetensors, write_safetensors, Checkpoint, NamedTensors};
use std::path::Path;
use tch::{Device, Kind, Tensor};

mod common;

#[test]
fn imported_fpn_model_detects_what_torchvision_detects() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("torchvision.safetensors");
    write_safetensors(&state, &torchvision_state_dict(), None).unwrap();
    let ckpt = import_torchvision(
        &state,
        TorchvisionDetector::FasterrcnnResnet50Fpn,
        Some(1e-5),
        None,
    )
    .unwrap();
    assert_eq!(
        ckpt.metadata.classes,
        ["class_0", "class_1", "class_2", "class_3"]
    );
    let path = dir.path().join("detector.safetensors");
    ckpt.write(&path).unwrap();
    let mut detector = Detector::from_checkpoint(&path, Device::Cpu).unwrap();
    assert_eq!(detector.transform, TransformSpec::torchvision());
    // The fixture keeps 300 proposals (torchvision's rpn_post_nms_top_n_test) for speed.
    detector.model.rpn.config.post_nms_top_n_test = 300;

    let (expected, _) =
        read_safetensors(&Path::new(GOLDEN).join("fasterrcnn_fpn.safetensors")).unwrap();
    let image = &expected["image"];
    let original = (image.size()[0], image.size()[1]);
    // The fixture was made at 320/480 to keep this test quick.
    let spec = TransformSpec {
        min_size: 320,
        max_size: 480,
        ..TransformSpec::torchvision()
    };
    let transform = ImageTransform::new(&spec, Device::Cpu);
    let images = transform.images(std::slice::from_ref(image));
    // 190x290 at scale min(320/190, 480/290) = 1.655...: floor(314.48) x floor(480.0).
    assert_eq!(images.image_sizes, [(314, 480)]);
    assert_eq!(images.padded_size(), (320, 480));
    let found = &detector.model.detect(&images)[0];
    let boxes = boxes_to_original(&found.boxes, images.image_sizes[0], original);

    let want_labels = Vec::<i64>::try_from(&expected["labels"]).unwrap();
    let got_labels = Vec::<i64>::try_from(&found.labels).unwrap();
    assert!(want_labels.len() > 10, "the fixture has few detections");
    assert_eq!(got_labels, want_labels);
    let score_error = f64::try_from((&found.scores - &expected["scores"]).abs().max()).unwrap();
    assert!(score_error < 1e-4, "scores differ by up to {score_error}");
    let box_error = f64::try_from((&boxes - &expected["boxes"]).abs().max()).unwrap();
    eprintln!("largest differences: boxes {box_error} px, scores {score_error}");
    assert!(box_error < 2e-3, "boxes differ by up to {box_error} px");

    // `detect predict` on the same image, with the checkpoint told the fixture's sizes.
    let mut ckpt = Checkpoint::read(&path).unwrap();
    ckpt.metadata.transform = Some(serde_json::to_value(&spec).unwrap());
    ckpt.metadata.model["rpn"]["post_nms_top_n_test"] = 300.into();
    ckpt.write(&path).unwrap();
    let (h, w) = (original.0 as u32, original.1 as u32);
    let pixels = Vec::<u8>::try_from(image.reshape([-1])).unwrap();
    let picture = image::RgbImage::from_raw(w, h, pixels).unwrap();
    let image_path = dir.path().join("scene.png");
    picture.save(&image_path).unwrap();
    let drawn = dir.path().join("drawn.png");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_detect"))
        .args(["predict", "--json", "--ckpt"])
        .args([
            &path,
            Path::new("--image"),
            &image_path,
            Path::new("--out"),
            &drawn,
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let detections = json["detections"].as_array().unwrap();
    assert_eq!(detections.len(), want_labels.len());
    let want_boxes = Vec::<f32>::try_from(expected["boxes"].reshape([-1])).unwrap();
    for (i, d) in detections.iter().enumerate() {
        assert_eq!(d["class"], want_labels[i] - 1);
        assert_eq!(d["label"], format!("class_{}", want_labels[i] - 1));
        for (c, v) in d["box"].as_array().unwrap().iter().enumerate() {
            let error = (v.as_f64().unwrap() - want_boxes[4 * i + c] as f64).abs();
            assert!(
                error < 2e-3,
                "detection {i} coordinate {c} differs by {error}"
            );
        }
    }
    let drawn = image::open(&drawn).unwrap().to_rgb8();
    assert_eq!(drawn.dimensions(), (w, h));
    let changed = drawn
        .pixels()
        .zip(picture.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(changed > 500, "only {changed} pixels drawn");

    // --min-score keeps exactly torchvision's detections scoring at least that much.
    let want_scores = Vec::<f32>::try_from(expected["scores"].reshape([-1])).unwrap();
    // Halfway between two of torchvision's scores, so a 1e-5 difference cannot move a box
    // across it.
    let middle = want_scores.len() / 2;
    let threshold = 0.5 * f64::from(want_scores[middle - 1] + want_scores[middle]);
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_detect"))
        .args([
            "predict",
            "--json",
            "--min-score",
            &threshold.to_string(),
            "--ckpt",
        ])
        .args([&path, Path::new("--image"), &image_path])
        .output()
        .unwrap();
    assert!(run.status.success());
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let kept = json["detections"].as_array().unwrap().len();
    let want = want_scores
        .iter()
        .filter(|&&v| f64::from(v) >= threshold)
        .count();
    assert!(kept > 0 && kept < detections.len());
    assert_eq!(kept, want);
}

#[test]
fn import_refuses_a_classifier_state_dict() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("resnet.safetensors");
    let tensors = NamedTensors::from([(
        "fc.weight".to_string(),
        Tensor::zeros([10, 2048], (Kind::Float, Device::Cpu)),
    )]);
    write_safetensors(&state, &tensors, None).unwrap();
    let err = import_torchvision(
        &state,
        TorchvisionDetector::FasterrcnnResnet50Fpn,
        Some(0.0),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("resnet.safetensors") && err.contains("not a torchvision Faster R-CNN"),
        "{err}"
    );
}
