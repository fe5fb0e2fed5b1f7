//! Issue 29: every split the paper profile uses opens from the layouts the public archives
//! unpack to, with the stages' own readers, and `datasets check --split` finds what those
//! readers would stop on before any training.

mod common;

use common::{copy_tree, datasets_bin, encoded_image, fixtures, write_fashion_mnist};
use datasets::detection_data::DetectionSource;
use datasets::spec::DatasetSpec;
use datasets::voc::{VocDataset, VocTask};
use std::path::{Path, PathBuf};
use std::process::Output;

/// `dir/VOCdevkit/` holding the good fixture's VOC2007 (trainval 000001 000002, test
/// 000002) and VOC2012 (trainval 2012_000001): what the VOC tars unpack to.
fn unpacked_voc(dir: &Path) -> PathBuf {
    copy_tree(
        &fixtures().join("voc_good/VOCdevkit"),
        &dir.join("VOCdevkit"),
    );
    dir.to_path_buf()
}

/// What the VOC2012 test tar adds to `VOCdevkit/VOC2012`: test lists (detection and
/// segmentation) and their images, no annotations or masks.
fn add_voc2012_test_tar(root: &Path) -> PathBuf {
    let voc2012 = root.join("VOCdevkit/VOC2012");
    let ids = ["2012_100001", "2012_100002", "2012_100003"];
    for task in ["Main", "Segmentation"] {
        std::fs::write(
            voc2012.join(format!("ImageSets/{task}/test.txt")),
            ids.join("\n") + "\n",
        )
        .unwrap();
    }
    for id in ids {
        std::fs::write(
            voc2012.join(format!("JPEGImages/{id}.jpg")),
            encoded_image(32, 24, image::ImageFormat::Jpeg),
        )
        .unwrap();
    }
    voc2012
}

fn ids(dataset: &VocDataset) -> Vec<&str> {
    dataset.entries().iter().map(|e| e.id.as_str()).collect()
}

#[test]
fn a_voc_root_may_be_the_folder_holding_vocdevkit_or_vocdevkit_itself() {
    let dir = tempfile::tempdir().unwrap();
    let root = unpacked_voc(dir.path());
    for root in [root.clone(), root.join("VOCdevkit")] {
        let trainval = VocDataset::open(&root, "trainval", VocTask::Detection)
            .unwrap_or_else(|e| panic!("{}: {e}", root.display()));
        assert_eq!(ids(&trainval), ["000001", "000002", "2012_000001"]);
        let test = VocDataset::open(&root, "test", VocTask::Detection).unwrap();
        assert_eq!(ids(&test), ["000002"]);
        // What `detect finetune --data voc:ROOT` opens.
        let spec = DatasetSpec::parse(&format!("voc:{}", root.display())).unwrap();
        let source = DetectionSource::open(&spec, "trainval").unwrap();
        assert_eq!(source.len(), 3);
    }
}

#[test]
fn the_voc2012_test_tar_is_never_read_for_test_and_refused_when_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = unpacked_voc(dir.path());
    let voc2012 = add_voc2012_test_tar(&root);
    let voc2007 = root.join("VOCdevkit/VOC2007");

    // Under a devkit, test is VOC2007's alone.
    for root in [root.clone(), root.join("VOCdevkit")] {
        let test = VocDataset::open(&root, "test", VocTask::Detection).unwrap();
        assert_eq!(ids(&test), ["000002"]);
        assert!(test.entries().iter().all(|e| e.year_dir == voc2007));
    }

    // Named explicitly, the folder is refused with how many annotations are missing.
    let refused = format!(
        "{}: 3 of the 3 images listed in ImageSets/Main/test.txt have no annotation file (the first: Annotations/2012_100001.xml), so this split cannot be read from this folder",
        voc2012.display()
    );
    let err = VocDataset::open(&voc2012, "test", VocTask::Detection).unwrap_err();
    assert_eq!(err.to_string(), refused);
    let both =
        DatasetSpec::parse(&format!("voc:{}+{}", voc2007.display(), voc2012.display())).unwrap();
    let err = DetectionSource::open(&both, "test").err().unwrap();
    assert_eq!(err.to_string(), refused);

    // `datasets check --split test` reads what `detect eval` reads: VOC2007 test, fine.
    let out = check(
        &format!("voc:{}", root.display()),
        &["--split", "test", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["splits"], serde_json::json!(["test"]));
    assert_eq!(report["entries"], 1);
    // The paper profile's VOC check: both detection splits, as `detect` reads them.
    let out = check(
        &format!("voc:{}", root.display()),
        &["--split", "trainval,test", "--task", "detection", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["splits"], serde_json::json!(["trainval", "test"]));
    assert_eq!(report["entries"], 3, "000002 is in both lists");
    assert_eq!(
        report["folders"],
        serde_json::json!([voc2007, root.join("VOCdevkit/VOC2012")])
    );
    // Every list of every folder: each VOC2012 test list is named, once.
    let out = check(&format!("voc:{}", root.display()), &[]);
    assert_eq!(out.status.code(), Some(2));
    let masks = format!(
        "{}: 3 of the 3 images listed in ImageSets/Segmentation/test.txt have no annotation file (the first: SegmentationClass/2012_100001.png), so this split cannot be read from this folder",
        voc2012.display()
    );
    assert_eq!(stderr(&out).trim(), format!("{refused}\n{masks}"));
    let out = check(&format!("voc:{}", root.display()), &["--task", "detection"]);
    assert_eq!(stderr(&out).trim(), refused);
}

#[test]
fn a_voc_split_with_some_annotations_missing_is_refused_not_shortened() {
    let dir = tempfile::tempdir().unwrap();
    let root = unpacked_voc(dir.path());
    let voc2007 = root.join("VOCdevkit/VOC2007");
    std::fs::remove_file(voc2007.join("Annotations/000001.xml")).unwrap();
    let err = VocDataset::open(&root, "trainval", VocTask::Detection).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: 1 of the 2 images listed in ImageSets/Main/trainval.txt have no annotation file (the first: Annotations/000001.xml), so this split cannot be read from this folder",
            voc2007.display()
        )
    );
}

fn check(spec: &str, args: &[&str]) -> Output {
    datasets_bin()
        .arg("check")
        .arg(spec)
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// ROOT/train/{cat: 2 images, dog: 2 images (one cut short), empty: none},
/// ROOT/val/{cat: 1 image, fox: 1 image (no such training class)}.
fn tiny_imagenet(root: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let jpeg = encoded_image(20, 16, image::ImageFormat::Jpeg);
    let write = |path: &str, bytes: &[u8]| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    };
    write("train/cat/n1_1.JPEG", &jpeg);
    write("train/cat/n1_2.JPEG", &jpeg);
    write("train/dog/n2_1.JPEG", &jpeg);
    let cut = write("train/dog/n2_2.JPEG", &jpeg[..jpeg.len() / 2]);
    std::fs::create_dir_all(root.join("train/empty")).unwrap();
    write("val/cat/v1.JPEG", &jpeg);
    write("val/fox/v2.JPEG", &jpeg);
    (cut, root.join("train/empty"), root.join("val/fox"))
}

#[test]
fn check_split_finds_what_the_imagenet_loader_would_stop_on() {
    let dir = tempfile::tempdir().unwrap();
    let (cut, empty, fox) = tiny_imagenet(dir.path());
    let spec = format!("imagenet:{}", dir.path().display());

    let out = check(&spec, &["--split", "train,val", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    let corrupt = format!("{}: corrupt or truncated JPEG image (", cut.display());
    assert!(
        problems.iter().any(|p| p.starts_with(&corrupt)),
        "{problems:#?}"
    );
    assert!(problems.contains(
        &format!(
            "{}: class folder has no images (.jpg, .jpeg or .png)",
            empty.display()
        )
        .as_str()
    ));
    assert!(problems.contains(
        &format!(
            "{}: is not one of the training classes (no folder of that name in train)",
            fox.display()
        )
        .as_str()
    ));
    assert_eq!(report["splits"], serde_json::json!(["train", "val"]));
    assert_eq!(report["ok"], false);
    assert_eq!(report["entries"], 5);
    assert_eq!(
        report["class_counts"],
        serde_json::json!({"cat": 3, "dog": 2, "empty": 0})
    );

    // One split only: the validation folder's problem, not the training images'.
    let out = check(&spec, &["--split", "val"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .trim()
            .ends_with("(no folder of that name in train)")
            && stderr(&out).lines().count() == 1,
        "{}",
        stderr(&out)
    );

    // A sample reads fewer images, but still lists every folder.
    let out = check(&spec, &["--split", "train", "--sample", "1", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["entries"], 1);
    assert_eq!(report["sample"], 1);
    assert_eq!(report["problems"].as_array().unwrap().len(), 1, "{report}");

    // A missing layout is one problem naming the folder.
    let out = check(
        &format!("imagenet:{}", dir.path().join("nowhere").display()),
        &["--split", "train"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(&format!("{}/nowhere/train: ", dir.path().display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_reads_fashion_mnist_as_backbone_train_does() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion_mnist(dir.path(), 20);
    let spec = format!("fashion-mnist:{}", dir.path().display());
    let out = check(&spec, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["entries"], 40);
    assert_eq!(report["class_counts"]["Sandal"], 4);

    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let out = check(&spec, &["--split", "train"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = check(&spec, &["--split", "val"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("t10k-labels-idx1-ubyte.gz"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_split_names_a_missing_ade20k_split() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ADEChallengeData2016");
    copy_tree(&fixtures().join("ade20k_good/ADEChallengeData2016"), &root);
    std::fs::remove_dir_all(root.join("images/validation")).unwrap();
    let spec = format!("ade20k:{}", root.display());
    let out = check(&spec, &["--split", "training"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Today's default checks the splits present; named, a missing one is a problem.
    let out = check(&spec, &["--split", "training", "--split", "validation"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "{}/images/validation: no \"validation\" split: this folder does not exist (expected the ADEChallengeData2016 layout)",
            root.display()
        )
    );
}
