//! torchvision's fcn_resnet50 against ours: the same weights (from the formula of
//! tests/src/formula.rs, under torchvision's names, see tests/fixtures/pytorch/make_fcn_golden.py)
//! imported through `segment import`'s code, the same image, the same logits and classes.

use e2e::{fixture, formula};
use engine::checkpoint::{write_safetensors, NamedTensors};
use segmentation::import::{import_torchvision, TorchvisionFcn};
use segmentation::Segmenter;
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn golden() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixture("pytorch/fcn_resnet50_golden.json")).unwrap(),
    )
    .unwrap()
}

fn keys() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixture("pytorch/fcn_resnet50_keys.json")).unwrap(),
    )
    .unwrap()
}

fn imported(dir: &Path, keys: &serde_json::Value) -> Segmenter {
    let state_dict = dir.join("fcn_resnet50.safetensors");
    formula::write_state_dict(keys, &state_dict);
    let ckpt = import_torchvision(&state_dict, TorchvisionFcn::FcnResnet50, None).unwrap();
    // Every tensor but torchvision's BN counters, which we do not keep.
    let counters = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k[0].as_str().unwrap().ends_with("num_batches_tracked"))
        .count();
    assert_eq!(
        ckpt.tensors.len(),
        keys.as_array().unwrap().len() - counters
    );
    let out = dir.join("fcn.safetensors");
    ckpt.write(&out).unwrap();
    Segmenter::from_checkpoint(&out, Device::Cpu).unwrap()
}

#[test]
fn imported_fcn_resnet50_gives_torchvisions_logits_and_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut model = imported(tmp.path(), &keys());
    assert_eq!(model.classes.len(), 5);
    assert_eq!(
        model.preprocess.resize_shorter,
        Some(520),
        "torchvision's own preprocessing"
    );
    // The golden values were computed at the image's own size.
    model.preprocess.resize_shorter = None;
    let scene = image::open(fixture("pytorch/scene.png")).unwrap().to_rgb8();
    let (w, h) = (scene.width() as usize, scene.height() as usize);
    let x = model.input(scene.as_raw(), w, h);
    let out = tch::no_grad(|| model.model.forward_t(&x, false));
    let aux = out.aux.expect("torchvision's aux head was imported");
    let golden = golden();
    let mut worst = 0f64;
    for (i, p) in golden["pixels"].as_array().unwrap().iter().enumerate() {
        let (y, x) = (p[0].as_i64().unwrap(), p[1].as_i64().unwrap());
        for (name, ours) in [("out", &out.out), ("aux", &aux)] {
            for (k, expected) in golden[name][i].as_array().unwrap().iter().enumerate() {
                let got = ours.double_value(&[0, k as i64, y, x]);
                let expected = expected.as_f64().unwrap();
                let error = (got - expected).abs() / expected.abs().max(1.0);
                worst = worst.max(error);
                assert!(
                    error < 1e-4,
                    "{name} class {k} at ({y}, {x}): {got} vs torchvision's {expected}"
                );
            }
        }
    }
    eprintln!("largest relative logit error {worst:e}");

    let expected = image::open(fixture("pytorch/fcn_resnet50_argmax.png"))
        .unwrap()
        .to_luma8();
    let ties: Vec<(usize, usize)> = golden["ties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_u64().unwrap() as usize,
                p[1].as_u64().unwrap() as usize,
            )
        })
        .collect();
    let ours = Vec::<i64>::try_from(out.out.argmax(1, false).flatten(0, -1)).unwrap();
    let mut differ = Vec::new();
    for (i, &class) in ours.iter().enumerate() {
        let (y, x) = (i / w, i % w);
        if class != expected.as_raw()[i] as i64 && !ties.contains(&(y, x)) {
            differ.push((y, x));
        }
    }
    assert!(
        differ.is_empty(),
        "{} pixels differ, e.g. {:?}",
        differ.len(),
        &differ[..differ.len().min(5)]
    );
    // Both classes torchvision predicts are there, in the same amounts.
    let count = |c: i64| ours.iter().filter(|&&v| v == c).count() as i64;
    let expected_count = |c: u8| expected.as_raw().iter().filter(|&&v| v == c).count() as i64;
    for c in 0..5u8 {
        assert!((count(c as i64) - expected_count(c)).abs() <= ties.len() as i64);
    }
}

/// A state dict of zeros with the names and shapes of `keys` (quick to write: only names and
/// shapes matter to what the import checks).
fn zeros_state_dict(keys: &[serde_json::Value], path: &Path) {
    let tensors: NamedTensors = keys
        .iter()
        .map(|k| {
            let shape: Vec<i64> = k[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_i64().unwrap())
                .collect();
            let kind = if k[2] == "int64" {
                Kind::Int64
            } else {
                Kind::Float
            };
            (
                k[0].as_str().unwrap().to_string(),
                Tensor::zeros(shape, (kind, Device::Cpu)),
            )
        })
        .collect();
    write_safetensors(path, &tensors, None).unwrap();
}

#[test]
fn import_refuses_a_missing_an_extra_or_a_misshaped_key() {
    let tmp = tempfile::tempdir().unwrap();
    let mut keys = keys().as_array().unwrap().clone();
    keys.retain(|k| k[0] != "aux_classifier.1.running_var");
    keys.push(serde_json::json!([
        "backbone.fc.weight",
        [1000, 2048],
        "float32"
    ]));
    for k in keys.iter_mut() {
        if k[0] == "backbone.layer3.2.conv2.weight" {
            k[1] = serde_json::json!([256, 256, 1, 1]);
        }
    }
    let path = tmp.path().join("edited.safetensors");
    zeros_state_dict(&keys, &path);
    let err = import_torchvision(&path, TorchvisionFcn::FcnResnet50, None)
        .expect_err("an edited state dict is refused")
        .to_string();
    assert!(err.contains("edited.safetensors"), "{err}");
    assert!(
        err.contains("1 missing: aux_classifier.1.running_var"),
        "{err}"
    );
    assert!(err.contains("1 unexpected: backbone.fc.weight"), "{err}");
    assert!(
        err.contains(
            "backbone.layer3.2.conv2.weight (file [256, 256, 1, 1], model [256, 256, 3, 3])"
        ),
        "{err}"
    );

    keys.retain(|k| !k[0].as_str().unwrap().starts_with("classifier.4"));
    zeros_state_dict(&keys, &path);
    let err = import_torchvision(&path, TorchvisionFcn::FcnResnet50, None)
        .expect_err("a state dict without the classifier is refused")
        .to_string();
    assert!(err.contains("not a torchvision FCN state dict"), "{err}");
}
