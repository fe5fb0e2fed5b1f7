//! Weights move between PyTorch and this project: a timm resnet50d, mobilenetv1_100 and
//! inception_v3 and a torchvision resnet50 and inception_v3 (auxiliary classifier included)
//! state dict, imported with `backbone import`, give PyTorch's class
//! probabilities through `backbone predict`; exported back, they hold exactly the names, shapes and types that
//! `load_state_dict(strict=True)` checks, with the same values. Golden values:
//! tests/fixtures/pytorch/make_golden.py.

use e2e::{fixture, formula, json, run_err, run_ok};
use safetensors::SafeTensors;

/// `relative`: how far each probability may be from PyTorch's, relative to it, where the
/// golden file's 9 decimals hold it to better than a tenth of that.
fn import_predict_export(tag: &str, framework: &str, arch: &str, relative: Option<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let keys =
        json(&std::fs::read_to_string(fixture(&format!("pytorch/{tag}_keys.json"))).unwrap());
    let state_dict = dir.path().join("state_dict.safetensors");
    formula::write_state_dict(&keys, &state_dict);

    let ckpt = dir.path().join("model.safetensors");
    let (sd, ck) = (state_dict.to_str().unwrap(), ckpt.to_str().unwrap());
    run_ok(
        e2e::bin!("backbone"),
        &["import", "--from", framework, "--arch", arch, sd, ck],
    );

    let scene = fixture("pytorch/scene.png");
    let out = json(&run_ok(
        e2e::bin!("backbone"),
        &[
            "predict",
            "--ckpt",
            ck,
            "--image",
            scene.to_str().unwrap(),
            "--topk",
            "1000",
            "--json",
        ],
    ));
    let golden: Vec<f64> = serde_json::from_str(
        &std::fs::read_to_string(fixture(&format!("pytorch/{tag}_probs.json"))).unwrap(),
    )
    .unwrap();
    let top = out["top"].as_array().unwrap();
    assert_eq!(top.len(), 1000);
    let mut max_diff = 0.0f64;
    let mut max_relative = 0.0f64;
    for entry in top {
        let class = entry["class"].as_u64().unwrap() as usize;
        let diff = (entry["prob"].as_f64().unwrap() - golden[class]).abs();
        max_diff = max_diff.max(diff);
        if let Some(r) = relative {
            // Rounding to 9 decimals moves a value by up to 5e-10.
            if 5e-10 / golden[class] < r / 10.0 {
                max_relative = max_relative.max(diff / golden[class]);
            }
        }
    }
    assert!(
        max_diff < 1e-4,
        "{tag}: probabilities differ from PyTorch's by up to {max_diff}"
    );
    eprintln!("{tag}: largest difference {max_diff:e}, relative {max_relative:e}");
    if let Some(r) = relative {
        assert!(
            max_relative < r,
            "{tag}: probabilities differ from PyTorch's by up to {max_relative:e} of their value"
        );
    }
    let best = golden
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert_eq!(
        top[0]["class"].as_u64().unwrap() as usize,
        best,
        "{tag}: top-1 class"
    );
    assert!(top[0]["label"].is_string());

    let exported = dir.path().join("exported.safetensors");
    run_ok(
        e2e::bin!("backbone"),
        &["export", "--to", framework, ck, exported.to_str().unwrap()],
    );
    let bytes = std::fs::read(&exported).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    let mut expected: Vec<String> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k[0].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    assert_eq!(
        names, expected,
        "{tag}: exported names must be exactly the state dict's"
    );
    for key in keys.as_array().unwrap() {
        let name = key[0].as_str().unwrap();
        let view = st.tensor(name).unwrap();
        let shape: Vec<usize> = key[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(view.shape(), &shape[..], "{name}: shape");
        if key[2] == "float32" {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}: dtype");
            let got: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(
                got,
                formula::values(name, &shape),
                "{name}: values must round-trip exactly"
            );
        } else {
            assert_eq!(
                view.dtype(),
                safetensors::Dtype::I64,
                "{name}: num_batches_tracked is int64"
            );
        }
    }
}

#[test]
fn timm_resnet50d_round_trip_matches_pytorch() {
    import_predict_export("timm_resnet50d", "timm", "resnet50d", None);
}

#[test]
fn torchvision_resnet50_round_trip_matches_pytorch() {
    import_predict_export("torchvision_resnet50", "torchvision", "resnet50", None);
}

#[test]
fn timm_mobilenet_v1_round_trip_matches_pytorch() {
    // ReLU6, depthwise convs and timm's `classifier` head; the formula's weights give a flat
    // distribution (the top class at 1.3%), so the check is relative.
    import_predict_export("timm_mobilenetv1_100", "timm", "mobilenet_v1", Some(1e-5));

    // torchvision has no MobileNet v1 to import from.
    let dir = tempfile::tempdir().unwrap();
    let keys =
        json(&std::fs::read_to_string(fixture("pytorch/timm_mobilenetv1_100_keys.json")).unwrap());
    let sd = dir.path().join("sd.safetensors");
    formula::write_state_dict(&keys, &sd);
    let out = dir.path().join("x.safetensors");
    let err = run_err(
        e2e::bin!("backbone"),
        &[
            "import",
            "--from",
            "torchvision",
            "--arch",
            "mobilenet_v1",
            sd.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        2,
    );
    assert!(
        err.contains("torchvision has no mobilenet_v1 (its MobileNets are v2 and v3); use timm"),
        "{err}"
    );
}

#[test]
fn timm_inception_v3_round_trip_matches_pytorch() {
    // timm's default model, without the auxiliary classifier; imported at torchvision's 342 /
    // 299 evaluation with inputs in [-1, 1], as make_golden.py runs it.
    import_predict_export("timm_inception_v3", "timm", "inception_v3", Some(1e-5));
}

#[test]
fn torchvision_inception_v3_round_trip_matches_pytorch_aux_included() {
    // torchvision's model holds the auxiliary classifier (AuxLogits.*): imported with it,
    // exported with it, every value exact.
    import_predict_export(
        "torchvision_inception_v3",
        "torchvision",
        "inception_v3",
        Some(1e-5),
    );
}

#[test]
fn inception_eval_transform_matches_torchvision_pixel_for_pixel() {
    // Resize(342) + CenterCrop(299) on the PIL image, saved by make_golden.py.
    let scene = datasets::image_io::load_rgb(&fixture("pytorch/scene.png")).unwrap();
    let transform = backbones::classifier::arch_transform(backbones::ClassifierArch::InceptionV3);
    assert_eq!((transform.resize, transform.crop), (342, 299));
    let ours = transform.apply(&scene);
    let theirs = datasets::image_io::load_rgb(&fixture("pytorch/scene_eval_299.png")).unwrap();
    let differing = ours
        .iter()
        .zip(theirs.as_raw())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing,
        0,
        "{differing} of {} bytes differ from PIL's",
        ours.len()
    );
}

#[test]
fn eval_transform_matches_torchvision_pixel_for_pixel() {
    // torchvision's Resize(256) + CenterCrop(224) on the PIL image, saved by make_golden.py.
    let scene = datasets::image_io::load_rgb(&fixture("pytorch/scene.png")).unwrap();
    let ours = datasets::classify::EvalTransform::imagenet().apply(&scene);
    let theirs = datasets::image_io::load_rgb(&fixture("pytorch/scene_eval_224.png")).unwrap();
    let differing = ours
        .iter()
        .zip(theirs.as_raw())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing,
        0,
        "{differing} of {} bytes differ from PIL's",
        ours.len()
    );
}

#[test]
fn importing_with_the_wrong_architecture_lists_the_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    let keys =
        json(&std::fs::read_to_string(fixture("pytorch/torchvision_resnet50_keys.json")).unwrap());
    let sd = dir.path().join("resnet50.safetensors");
    formula::write_state_dict(&keys, &sd);
    let out = dir.path().join("x.safetensors");
    let err = run_err(
        e2e::bin!("backbone"),
        &[
            "import",
            "--from",
            "timm",
            "--arch",
            "resnet50d",
            sd.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        2,
    );
    assert!(err.contains("do not fit resnet50d"), "{err}");
    assert!(err.contains("missing: conv1.0.weight"), "{err}");
    assert!(err.contains("unexpected: conv1.weight"), "{err}");
    assert!(
        err.contains("layer1.0.downsample.1.weight (file [256], model [256, 64, 1, 1])"),
        "{err}"
    );
    assert!(!out.exists(), "no checkpoint is written on error");
}

#[test]
fn bad_inputs_get_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let keys =
        json(&std::fs::read_to_string(fixture("pytorch/torchvision_resnet50_keys.json")).unwrap());
    let sd = dir.path().join("sd.safetensors");
    formula::write_state_dict(&keys, &sd);
    let ckpt = dir.path().join("model.safetensors");
    let ck = ckpt.to_str().unwrap();
    run_ok(
        e2e::bin!("backbone"),
        &[
            "import",
            "--from",
            "torchvision",
            "--arch",
            "resnet50",
            sd.to_str().unwrap(),
            ck,
        ],
    );

    // An image that is not an image.
    let not_image = dir.path().join("photo.jpg");
    std::fs::write(&not_image, "this is text").unwrap();
    let err = run_err(
        e2e::bin!("backbone"),
        &[
            "predict",
            "--ckpt",
            ck,
            "--image",
            not_image.to_str().unwrap(),
        ],
        2,
    );
    assert!(err.contains("photo.jpg: not an image"), "{err}");

    // A truncated checkpoint.
    let bytes = std::fs::read(&ckpt).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let scene = fixture("pytorch/scene.png");
    let err = run_err(
        e2e::bin!("backbone"),
        &[
            "predict",
            "--ckpt",
            cut.to_str().unwrap(),
            "--image",
            scene.to_str().unwrap(),
        ],
        2,
    );
    assert!(
        err.contains("cut.safetensors: not a valid safetensors file"),
        "{err}"
    );

    // A plain state dict where a checkpoint is expected.
    let err = run_err(
        e2e::bin!("backbone"),
        &[
            "predict",
            "--ckpt",
            sd.to_str().unwrap(),
            "--image",
            scene.to_str().unwrap(),
        ],
        2,
    );
    assert!(
        err.contains("sd.safetensors: no checkpoint metadata"),
        "{err}"
    );

    // torchvision has no ResNet-D.
    let d = dir.path().join("d.safetensors");
    run_ok(
        e2e::bin!("backbone"),
        &[
            "init",
            "--arch",
            "resnet50d",
            "--num-classes",
            "10",
            d.to_str().unwrap(),
        ],
    );
    let out = dir.path().join("o.safetensors");
    let err = run_err(
        e2e::bin!("backbone"),
        &[
            "export",
            "--to",
            "torchvision",
            d.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        2,
    );
    assert!(err.contains("torchvision has no resnet50d"), "{err}");
    assert!(!out.exists());
}
