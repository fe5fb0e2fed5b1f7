//! `segment export --to torchvision`: the written state dict is exactly torchvision's
//! `fcn_resnet50(weights=None, weights_backbone=None, num_classes=K, aux_loss=True)` key set
//! (what `load_state_dict(strict=True)` checks), aux head included, `segment import` of it
//! gives back the same tensors, and, where Python has torchvision, the mask of the model the
//! printed Python builds is `segment predict`'s. Bodies torchvision cannot hold are refused.

use e2e::{fixture, formula};
use engine::checkpoint::{read_safetensors, var_store_tensors, Checkpoint};
use segmentation::import::{import_torchvision, TorchvisionFcn};
use segmentation::segmenter::metadata;
use segmentation::{Fcn, FcnConfig, Preprocess};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tch::{nn, Device, Kind};

fn segment(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_segment"))
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

fn keys() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixture("pytorch/fcn_resnet50_keys.json")).unwrap(),
    )
    .unwrap()
}

const CLASSES: [&str; 5] = ["background", "sky", "road", "tree", "car"];

/// The golden formula's fcn_resnet50 (5 classes, aux head) as a checkpoint that runs images at
/// their own size (as the golden run did), and the formula's state dict, both in `dir`.
fn formula_fcn(dir: &Path) -> (PathBuf, PathBuf) {
    let state = dir.join("formula.safetensors");
    formula::write_state_dict(&keys(), &state);
    let names = CLASSES.map(String::from).to_vec();
    let mut ckpt = import_torchvision(&state, TorchvisionFcn::FcnResnet50, Some(names)).unwrap();
    let own_size = Preprocess {
        resize_shorter: None,
        ..Preprocess::TORCHVISION
    };
    ckpt.metadata.transform = Some(serde_json::to_value(own_size).unwrap());
    let path = dir.join("fcn.safetensors");
    ckpt.write(&path).unwrap();
    (path, state)
}

#[test]
fn export_is_torchvisions_state_dict_round_trips_and_segments_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt_path, formula_path) = formula_fcn(dir.path());
    let exported = dir.path().join("torchvision.safetensors");
    let python = succeeded(segment(&[
        Path::new("export"),
        Path::new("--to"),
        Path::new("torchvision"),
        &ckpt_path,
        &exported,
    ]));
    for line in [
        "model = torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None, num_classes=5, aux_loss=True)".to_string(),
        format!(
            "model.load_state_dict(safetensors.torch.load_file(\"{}\"), strict=True)",
            exported.display()
        ),
        "x = torchvision.transforms.functional.normalize(x, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])".into(),
        "mask = model(x)[\"out\"].argmax(1)".into(),
    ] {
        assert!(python.contains(&line), "{line:?} not in:\n{python}");
    }
    assert!(python.contains("at its own size"), "{python}");

    // Exactly torchvision's names, shapes and types, aux head and counters included, holding
    // the formula's tensors.
    let (tensors, header) = read_safetensors(&exported).unwrap();
    let (formula, _) = read_safetensors(&formula_path).unwrap();
    let keys = keys();
    let keys = keys.as_array().unwrap();
    assert_eq!(tensors.len(), keys.len());
    for key in keys {
        let name = key[0].as_str().unwrap();
        let t = tensors
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        let shape: Vec<i64> = serde_json::from_value(key[1].clone()).unwrap();
        assert_eq!(t.size(), shape, "{name}");
        let kind = match key[2].as_str().unwrap() {
            "int64" => Kind::Int64,
            _ => Kind::Float,
        };
        assert_eq!(t.kind(), kind, "{name}");
        assert!(t.equal(&formula[name]), "{name} changed");
    }
    assert!(tensors.contains_key("aux_classifier.4.weight"));
    let classes: Vec<String> = serde_json::from_str(&header["classes"]).unwrap();
    assert_eq!(classes, CLASSES);
    let prepare: serde_json::Value = serde_json::from_str(&header["preprocess"]).unwrap();
    assert_eq!(prepare["resize_shorter"], serde_json::Value::Null);

    // Back through `segment import`: the same tensors and class names.
    let back = dir.path().join("back.safetensors");
    succeeded(segment(&[
        Path::new("import"),
        Path::new("--from"),
        Path::new("torchvision"),
        Path::new("--arch"),
        Path::new("fcn_resnet50"),
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

    compare_with_torchvision(dir.path(), &ckpt_path, &exported, &python);
}

/// A GluonCV-style FCN upsamples with corners aligned, and a checkpoint that resizes its input
/// gives the mask at the image's own size: torchvision's forward does neither, so the printed
/// Python calls the heads and upsamples as the checkpoint does. (A test of its own, so that
/// its Python runs beside the other test's.)
#[test]
fn an_aligned_resizing_fcn_exports_python_that_segments_as_it_does() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt_path, _) = formula_fcn(dir.path());
    let mut aligned = Checkpoint::read(&ckpt_path).unwrap();
    aligned.metadata.model["align_corners"] = true.into();
    let shorter_120 = Preprocess {
        resize_shorter: Some(120),
        ..Preprocess::TORCHVISION
    };
    aligned.metadata.transform = Some(serde_json::to_value(shorter_120).unwrap());
    let aligned_path = dir.path().join("aligned.safetensors");
    aligned.write(&aligned_path).unwrap();
    let aligned_export = dir.path().join("aligned_torchvision.safetensors");
    let python = succeeded(segment(&[
        Path::new("export"),
        Path::new("--to"),
        Path::new("torchvision"),
        &aligned_path,
        &aligned_export,
    ]));
    assert!(
        python.contains("align_corners=True") && python.contains("resized to 120"),
        "{python}"
    );
    compare_with_torchvision(dir.path(), &aligned_path, &aligned_export, &python);
}

/// Where Python has torchvision: the model the printed `python` builds from `exported`, and
/// its `mask`, against `segment predict` of `ckpt` on the fixture's 320x240 scene.
fn compare_with_torchvision(dir: &Path, ckpt: &Path, exported: &Path, python: &str) {
    let python_bin = match e2e::python::with_modules(&["torch", "torchvision", "safetensors"]) {
        Ok(python_bin) => python_bin,
        Err(reason) => {
            eprintln!("skipped running the export in torchvision: {reason}");
            return;
        }
    };
    let image = fixture("pytorch/scene.png");
    let lines = dir.join("load.py");
    std::fs::write(&lines, python).unwrap();
    let theirs_mask = dir.join("theirs.png");
    let theirs = e2e::json(&succeeded(
        Command::new(python_bin)
            .arg(fixture("pytorch/check_torchvision_export.py"))
            .arg("segment")
            .args([&lines, exported, &image, &theirs_mask])
            .output()
            .unwrap(),
    ));
    let ours_mask = dir.join("ours.png");
    succeeded(segment(&[
        Path::new("predict"),
        Path::new("--ckpt"),
        ckpt,
        Path::new("--image"),
        &image,
        Path::new("--out"),
        &ours_mask,
    ]));
    let ours = image::open(&ours_mask).unwrap().to_luma8();
    let want = image::open(&theirs_mask).unwrap().to_luma8();
    assert_eq!(ours.dimensions(), want.dimensions());
    let (w, h) = ours.dimensions();
    // The auxiliary head loaded and ran (at the model's input size).
    assert_eq!(theirs["aux_shape"][1], 5, "{theirs}");
    let near_ties: Vec<(u32, u32)> = theirs["near_ties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_u64().unwrap() as u32))
        .collect();
    let differ: Vec<(u32, u32)> = ours
        .enumerate_pixels()
        .filter(|(x, y, p)| p.0 != want.get_pixel(*x, *y).0 && !near_ties.contains(&(*y, *x)))
        .map(|(x, y, _)| (y, x))
        .collect();
    let all_differing = ours
        .enumerate_pixels()
        .filter(|(x, y, p)| p.0 != want.get_pixel(*x, *y).0)
        .count();
    eprintln!(
        "segment predict vs torchvision: {all_differing} of {} pixels differ, {} differ away \
         from the {} near ties",
        w * h,
        differ.len(),
        near_ties.len()
    );
    assert!(
        differ.is_empty(),
        "pixels (y, x) differ: {:?}",
        &differ[..differ.len().min(5)]
    );
    let classes_seen: std::collections::BTreeSet<u8> = ours.pixels().map(|p| p.0[0]).collect();
    assert!(classes_seen.len() >= 2, "a one-class mask proves little");
}

#[test]
fn an_fcn_over_resnet50d_is_refused_in_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let config = FcnConfig::new("resnet50d".parse().unwrap(), 8, 2, true);
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = Fcn::new(&vs.root(), &config);
    let names = ["a", "b"].map(String::from);
    let ckpt = dir.path().join("fcn_resnet50d.safetensors");
    Checkpoint {
        metadata: metadata(&config, &names, &Preprocess::TORCHVISION, None),
        tensors: var_store_tensors(&vs),
    }
    .write(&ckpt)
    .unwrap();
    let out = dir.path().join("out.safetensors");
    let run = segment(&[
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
        stderr.contains(&format!(
            "{}: is an FCN over resnet50d, which torchvision's FCNs cannot hold",
            ckpt.display()
        )),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn help_says_what_is_written_and_which_call_loads_it() {
    let help = succeeded(segment(&[Path::new("export"), Path::new("--help")]));
    for part in [
        "torchvision state dict (.safetensors)",
        "torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None, num_classes=K, aux_loss=True)",
        "load_state_dict(strict=True)",
    ] {
        assert!(help.contains(part), "{part:?} not in:\n{help}");
    }
}
