//! `scripts/eval_voc.sh` (issue 29): whichever VOC root it is given, `detect eval` is asked
//! for VOC2007's test split alone, with GluonCV's VOC07 metric. A stand-in `detect` records
//! its arguments, so the script's own choices are what is tested.

use e2e::repo_root;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A `detect` that writes its arguments, one a line, to `args.txt` beside it and prints an
/// evaluation JSON.
fn stand_in_detect(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let detect = bin.join("detect");
    std::fs::write(
        &detect,
        "#!/usr/bin/env bash\nprintf '%s\\n' \"$@\" > \"$(dirname \"$0\")/args.txt\"\n\
         echo '{\"map\": 0.5, \"metric\": \"x\", \"ap\": {}}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&detect, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// `dir/VOCdevkit/` with VOC2007 (test: two images) and VOC2012 as the VOC2012 test tar
/// leaves it (a test list, no annotations).
fn unpacked_voc(dir: &Path) -> PathBuf {
    let devkit = dir.join("VOCdevkit");
    for (year, ids) in [("VOC2007", "000001\n000002\n"), ("VOC2012", "2012_1\n")] {
        let lists = devkit.join(year).join("ImageSets/Main");
        std::fs::create_dir_all(&lists).unwrap();
        std::fs::create_dir_all(devkit.join(year).join("JPEGImages")).unwrap();
        std::fs::write(lists.join("test.txt"), ids).unwrap();
    }
    dir.to_path_buf()
}

fn eval_voc(bin: &Path, ckpt: &Path, root: &Path, more: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(repo_root().join("scripts/eval_voc.sh"))
        .arg(ckpt)
        .arg(root)
        .args(more)
        .env("TABLES_BIN", bin)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The value following `flag` in the stand-in's recorded arguments.
fn passed(bin: &Path, flag: &str) -> String {
    let args = std::fs::read_to_string(bin.join("args.txt")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    let at = args.iter().position(|a| *a == flag).unwrap();
    args[at + 1].to_string()
}

#[test]
fn every_voc_root_form_evaluates_voc2007_test_alone_with_gluoncvs_metric() {
    let dir = tempfile::tempdir().unwrap();
    let bin = stand_in_detect(dir.path());
    let ckpt = dir.path().join("det.safetensors");
    std::fs::write(&ckpt, b"stand-in").unwrap();
    let root = unpacked_voc(&dir.path().join("data"));
    let voc2007 = root.join("VOCdevkit/VOC2007");
    for given in [root.clone(), root.join("VOCdevkit"), voc2007.clone()] {
        std::fs::remove_file(bin.join("args.txt")).ok();
        let (code, text) = eval_voc(&bin, &ckpt, &given, &[]);
        assert_eq!(code, Some(0), "{}: {text}", given.display());
        assert!(
            text.contains("VOC2007 test (2 images), 11-point mAP: 50.00 [voc07-gluoncv]"),
            "{text}"
        );
        assert_eq!(passed(&bin, "--data"), format!("voc:{}", voc2007.display()));
        assert_eq!(passed(&bin, "--split"), "test");
        assert_eq!(passed(&bin, "--metric"), "voc07-gluoncv");
    }
    assert!(dir.path().join("det.voc07-test.json").is_file());

    // The devkit's own rule on request.
    let (code, text) = eval_voc(&bin, &ckpt, &root, &["--metric", "voc07"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(passed(&bin, "--metric"), "voc07");

    // VOC2012 is never taken for VOC2007 test, even given as the root.
    std::fs::remove_file(bin.join("args.txt")).unwrap();
    let (code, text) = eval_voc(&bin, &ckpt, &root.join("VOCdevkit/VOC2012"), &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("has no VOC2007/ImageSets/Main/test.txt"),
        "{text}"
    );
    assert!(!bin.join("args.txt").exists(), "detect was run");
}
