//! `datasets synth` end to end with drawn shapes (no data package needed): the three
//! formats describe the same scenes, runs are deterministic, and `datasets check` passes.

use datasets::ade20k::Ade20kDataset;
use datasets::check::check;
use datasets::coco::CocoDataset;
use datasets::records::IGNORE_LABEL;
use datasets::spec::DatasetSpec;
use datasets::synth::{generate, ItemSource, SynthConfig, SHAPE_CLASSES};
use datasets::voc::{VocDataset, VocTask};
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("datasets-synth-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(out: &Path, seed: u64) -> SynthConfig {
    SynthConfig {
        out: out.to_path_buf(),
        train: 6,
        val: 3,
        test: 2,
        size: 64,
        seed,
        jpeg_quality: 90,
    }
}

#[test]
fn the_three_formats_describe_the_same_scenes() {
    let out = scratch("formats");
    let summary = generate(&config(&out, 1), &ItemSource::Shapes).unwrap();
    assert_eq!(summary.scenes, 11);

    let voc_root = out.join("VOCdevkit");
    let voc = VocDataset::open(&voc_root, "train", VocTask::Detection).unwrap();
    assert_eq!(voc.classes(), SHAPE_CLASSES);
    assert_eq!(
        VocDataset::open(&voc_root, "trainval", VocTask::Detection)
            .unwrap()
            .len(),
        9
    );
    assert_eq!(
        VocDataset::open(&voc_root, "test", VocTask::Detection)
            .unwrap()
            .len(),
        2
    );
    let voc_seg = VocDataset::open(&voc_root, "train", VocTask::Segmentation).unwrap();
    let ade = Ade20kDataset::open(&out.join("ADEChallengeData2016"), "train").unwrap();
    assert_eq!(ade.classes().len(), 11);
    assert_eq!(ade.classes()[0], "background");
    let coco = CocoDataset::open(&out.join("coco/annotations/instances_train.json"), None).unwrap();
    assert_eq!(coco.classes(), SHAPE_CLASSES);
    assert_eq!((voc.len(), ade.len(), coco.len()), (6, 6, 6));

    let mut objects = 0;
    for i in 0..6 {
        let from_voc = voc.detection_record(i).unwrap();
        let from_coco = coco.detection_record(i).unwrap();
        assert_eq!(from_coco.id, format!("{}.jpg", from_voc.id));
        assert_eq!(from_voc.objects.len(), from_coco.objects.len());
        for (a, b) in from_voc.objects.iter().zip(&from_coco.objects) {
            assert_eq!((a.bbox, a.class), (b.bbox, b.class));
        }
        objects += from_voc.objects.len();

        // Train ids agree: VOC's masks as they are, ADE20K's shifted by one.
        let voc_mask = voc_seg.read_label_map(i).unwrap();
        let ade_mask = ade.read_label_map(i).unwrap();
        assert_eq!(voc_mask, ade_mask);
        assert!(voc_mask
            .labels
            .iter()
            .all(|&l| l <= 10 || l == IGNORE_LABEL));

        // Every object's COCO mask lies on its class (or the ignored band) in the mask.
        for (mask, object) in coco
            .instance_masks(i)
            .unwrap()
            .iter()
            .zip(&from_coco.objects)
        {
            for (p, &on) in mask.pixels.iter().enumerate() {
                if on == 1 {
                    let label = voc_mask.labels[p];
                    assert!(label == object.class as u8 + 1 || label == IGNORE_LABEL);
                }
            }
        }
    }
    assert!(objects >= 6, "every scene has at least one item");

    for spec in [
        format!("voc:{}", voc_root.display()),
        format!("ade20k:{}/ADEChallengeData2016", out.display()),
        format!("coco:{}/coco/annotations/instances_val.json", out.display()),
    ] {
        let report = check(&DatasetSpec::parse(&spec).unwrap());
        assert!(report.problems.is_empty(), "{spec}: {:?}", report.problems);
        assert!(report.entries > 0);
    }
    std::fs::remove_dir_all(&out).unwrap();
}

fn read_tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_same_seed_gives_the_same_files() {
    let (a, b, c) = (scratch("seed-a"), scratch("seed-b"), scratch("seed-c"));
    generate(&config(&a, 7), &ItemSource::Shapes).unwrap();
    generate(&config(&b, 7), &ItemSource::Shapes).unwrap();
    generate(&config(&c, 8), &ItemSource::Shapes).unwrap();
    let (ta, tb, tc) = (read_tree(&a), read_tree(&b), read_tree(&c));
    assert_eq!(ta, tb);
    assert_ne!(ta, tc);
    // Regenerating in place replaces the earlier output.
    generate(&config(&a, 8), &ItemSource::Shapes).unwrap();
    assert_eq!(read_tree(&a), tc);
    for dir in [a, b, c] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

fn datasets_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_datasets"))
}

#[test]
fn cli_synth_preview_and_check() {
    let out = scratch("cli");
    let run = datasets_bin()
        .args([
            "synth",
            "--source",
            "shapes",
            "--train",
            "4",
            "--val",
            "2",
            "--test",
            "1",
            "--size",
            "48",
            "--preview",
            "4",
            "--json",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary["scenes"], 7);
    let preview = image::open(out.join("preview.png")).unwrap();
    assert!(preview.width() > 2 * 2 * 48 && preview.height() > 2 * 48);

    let ok = datasets_bin()
        .args(["check", "--json"])
        .arg(format!("voc:{}/VOCdevkit", out.display()))
        .output()
        .unwrap();
    assert!(ok.status.success());
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["ok"], true);

    // Writing over something that is not a synthetic dataset is refused.
    let foreign = scratch("foreign");
    std::fs::create_dir_all(foreign.join("coco")).unwrap();
    let refused = datasets_bin()
        .args(["synth", "--source", "shapes", "--out"])
        .arg(&foreign)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("already exists and was not written by `datasets synth`"),
        "{stderr}"
    );
    for dir in [out, foreign] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn cli_check_exits_2_and_lists_the_problems() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let run = datasets_bin()
        .arg("check")
        .arg(format!("voc:{}/voc_bad/VOCdevkit", fixtures.display()))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(stderr.lines().count(), 8, "{stderr}");
    assert!(stderr.contains("000003.jpg: No such file or directory"));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("8 problems") && stdout.contains("objects per class"),
        "{stdout}"
    );

    let bad_spec = datasets_bin().args(["check", "pascal:x"]).output().unwrap();
    assert_eq!(bad_spec.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_spec.stderr).contains("unknown kind \"pascal\""));

    let missing = datasets_bin()
        .args([
            "synth",
            "--out",
            "/nonexistent-dir/x",
            "--fashion-mnist",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.starts_with("error: cannot read Fashion-MNIST"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn cli_bench_stops_on_a_bad_entry_or_skips_and_counts() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let data = format!("voc:{}/voc_bad/VOCdevkit", fixtures.display());
    let args = [
        "bench",
        "--task",
        "detection",
        "--split",
        "train",
        "--workers",
        "1",
        "--batch",
        "1",
        "--batches",
        "2",
        "--warmup",
        "0",
    ];
    let stopped = datasets_bin()
        .args(args)
        .args(["--data", &data])
        .output()
        .unwrap();
    // Bad data is bad input: exit 2, as `datasets check` (issue 8).
    assert_eq!(stopped.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    // The epoch is shuffled: whichever defect comes first stops it, named with its file.
    let named = format!("{}/voc_bad/VOCdevkit/VOC2007/", fixtures.display());
    assert!(
        stderr.starts_with("error: benchmarking the detection loader on voc:"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&named) && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(!stderr.contains("(os error 2): No such file"), "{stderr}");

    let skipped = datasets_bin()
        .args(args)
        .args(["--data", &data, "--skip-bad", "--json"])
        .output()
        .unwrap();
    assert!(
        skipped.status.success(),
        "{}",
        String::from_utf8_lossy(&skipped.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&skipped.stdout).unwrap();
    assert_eq!(report["skipped"], 5);
    assert_eq!(report["images"], 2);
}
