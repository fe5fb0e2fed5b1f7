//! scripts/transfer_tables.sh on its smallest profile: one row goes through backbone,
//! detection and segmentation for real; another row's backbone is broken, so its downstream
//! stages fail, are named with their logs, and the script still writes the tables. Run again,
//! finished stages are reused untouched and the failed ones are tried again; a stage whose
//! recipe has changed since it ran is refused rather than reused.
//!
//! The one test that drives the binaries of several packages, so it stays in this crate and
//! finds them in target/<profile>/: build them first with `cargo build --workspace --bins`
//! (`make test` does).

use e2e::{repo_root, workspace_bin};
use std::path::Path;
use std::process::Command;

/// The folder of the binaries the script runs, each built beforehand (`cargo build
/// --workspace --bins`: `cargo test` builds only the binaries of a test's own package).
fn script_bins() -> std::path::PathBuf {
    for b in ["detect", "segment", "datasets", "tables"] {
        workspace_bin(b);
    }
    workspace_bin("backbone").parent().unwrap().to_path_buf()
}

/// scripts/transfer_tables.sh with `args`, run from the repository on the built binaries.
fn script(args: &[&str]) -> Command {
    let mut cmd = Command::new(repo_root().join("scripts/transfer_tables.sh"));
    cmd.args(args)
        .env("TABLES_BIN", script_bins())
        .current_dir(repo_root());
    cmd
}

/// Every stage a row runs, in order, as the script names them.
const ROW_STAGES: [&str; 7] = [
    "backbone",
    "backbone-eval",
    "detection",
    "detection-eval",
    "segmentation",
    "segmentation-eval",
    "pictures",
];

/// Whether the script succeeded, and what it printed (stdout, then stderr).
fn outcome(script: &mut Command) -> (bool, String) {
    let output = script.output().expect("run scripts/transfer_tables.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The ci profile's two rows into `out`, the script started from `cwd`.
fn run_script_from(cwd: &Path, out: &Path) -> (bool, String) {
    outcome(
        script(&[
            "--profile",
            "ci",
            "--rows",
            "b-standard,d-efficient",
            "--out",
        ])
        .arg(out)
        .current_dir(cwd),
    )
}

fn run_script(out: &Path) -> (bool, String) {
    run_script_from(&repo_root(), out)
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn finished_stages_are_reused_and_a_failed_stage_names_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tables");
    // d-efficient's backbone "finished" earlier but its checkpoint is garbage.
    let broken = out.join("d-efficient");
    std::fs::create_dir_all(broken.join("backbone")).unwrap();
    std::fs::write(
        broken.join("backbone/best.safetensors"),
        b"not a checkpoint",
    )
    .unwrap();
    for stage in ["backbone", "backbone-eval"] {
        std::fs::write(
            broken.join(format!("{stage}.done")),
            "seconds 1.0\ncommand (made by the test)\n",
        )
        .unwrap();
    }
    std::fs::write(
        broken.join("backbone.json"),
        r#"{"top1": 0.5, "top5": 0.9, "loss": 1.0}"#,
    )
    .unwrap();

    let (ok, text) = run_script(&out);
    assert!(ok, "the script must finish with the rows it can:\n{text}");
    let detection_log = broken.join("detection.log");
    assert!(
        text.contains("[d-efficient] detection FAILED")
            && text.contains(detection_log.to_str().unwrap()),
        "{text}"
    );
    let results = std::fs::read_to_string(out.join("results.md")).unwrap();
    for stage in ["detection", "segmentation"] {
        let line = format!(
            "- d-efficient {stage}: see `{}`",
            broken.join(format!("{stage}.log")).display()
        );
        assert!(results.contains(&line), "missing {line:?} in\n{results}");
    }
    // The good row has our numbers in every table: top-1 and top-5, mAP, PixAcc and mIoU.
    let ours = |table: &str, columns: usize| -> Vec<f64> {
        let start = results.find(table).unwrap();
        let line = results[start..]
            .lines()
            .find(|l| l.starts_with("| B-standard |"))
            .unwrap();
        line.split('|')
            .skip(2)
            .take(columns)
            .map(|cell| {
                cell.trim()
                    .parse::<f64>()
                    .unwrap_or_else(|_| panic!("no number in {line}"))
            })
            .collect()
    };
    assert_eq!(ours("## Table 6", 2).len(), 2);
    assert_eq!(ours("## Table 8", 2).len(), 2);
    assert!(ours("## Table 9", 3)
        .iter()
        .all(|v| (0.0..=100.0).contains(v)));
    assert!(out.join("tables.png").is_file());
    // The good row's pictures: detections drawn on test scenes, overlays of validation scenes,
    // and the script's last words say where they are.
    let pictures = out.join("b-standard/pictures");
    let names: Vec<String> = std::fs::read_dir(&pictures)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for prefix in ["detections-", "overlay-", "mask-"] {
        assert!(
            names
                .iter()
                .any(|n| n.starts_with(prefix) && n.ends_with(".png")),
            "no {prefix}*.png in {names:?}"
        );
    }
    assert!(text.contains(pictures.to_str().unwrap()), "{text}");
    assert!(!broken.join("pictures").exists());

    // The paper's evaluation settings on the good row's checkpoints: one paper-style line
    // each, the JSON beside the checkpoint; a root without VOC2007 test is named.
    let scenes = out.join("data/scenes");
    let eval_script = |name: &str, args: &[&Path], extra: &[&str]| {
        let output = Command::new(repo_root().join("scripts").join(name))
            .args(args)
            .args(extra)
            .env("TABLES_BIN", workspace_bin("detect").parent().unwrap())
            .output()
            .unwrap();
        (
            output.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let det_ckpt = out.join("b-standard/detection/best.safetensors");
    let (code, text) = eval_script("eval_voc.sh", &[&det_ckpt, &scenes.join("VOCdevkit")], &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("VOC2007 test (4 images), 11-point mAP: "),
        "{text}"
    );
    let json =
        std::fs::read_to_string(out.join("b-standard/detection/best.voc07-test.json")).unwrap();
    assert!(json.contains("\"map\""), "{json}");
    // The folder holding VOCdevkit/ is a VOC root too (issue 29); the run folder is none.
    let (code, text) = eval_script("eval_voc.sh", &[&det_ckpt, &scenes], &[]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = eval_script("eval_voc.sh", &[&det_ckpt, &out], &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("no VOC2007/ImageSets/Main/test.txt"),
        "{text}"
    );
    let seg_ckpt = out.join("b-standard/segmentation/best.safetensors");
    let (code, text) = eval_script(
        "eval_ade20k.sh",
        &[&seg_ckpt, &scenes.join("ADEChallengeData2016")],
        &["--single-scale-only"],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("ADE20K validation (4 images), single-scale: PixAcc "),
        "{text}"
    );
    assert!(out
        .join("b-standard/segmentation/best.ade20k-val.json")
        .is_file());

    // Again, started from another folder with a relative --out (the recipes are the
    // repository's): nothing of b-standard runs, d-efficient's failed stages are tried again.
    let checkpoint = out.join("b-standard/detection/best.safetensors");
    let before = modified(&checkpoint);
    let (ok, text) = run_script_from(dir.path(), Path::new("tables"));
    assert!(ok, "{text}");
    for stage in ROW_STAGES {
        assert!(
            text.contains(&format!("[b-standard] {stage}: finished earlier, reused")),
            "{stage} was not reused:\n{text}"
        );
    }
    assert!(text.contains("[d-efficient] detection FAILED"), "{text}");
    assert_eq!(modified(&checkpoint), before, "a reused stage was rerun");

    // A stage that finished under another version of its recipe (a `git pull` since) is
    // refused, naming the recipe and the row to remove, not reused into new tables.
    let done = out.join("b-standard/backbone.done");
    let record = std::fs::read_to_string(&done).unwrap();
    let recipe = "recipe configs/tables/b-standard.toml ";
    let digest = record
        .lines()
        .find_map(|l| l.strip_prefix(recipe))
        .unwrap_or_else(|| panic!("no {recipe:?} line in {record}"));
    assert!(
        digest.len() == 16 && digest.chars().all(|c| c.is_ascii_hexdigit()),
        "{record}"
    );
    std::fs::write(&done, record.replace(digest, "0123456789abcdef")).unwrap();
    let (ok, text) = run_script(&out);
    assert!(
        !ok && text.contains("another version of configs/tables/b-standard.toml")
            && text.contains(&format!("remove {}", out.join("b-standard").display())),
        "{text}"
    );
    assert_eq!(
        modified(&checkpoint),
        before,
        "a refused run touched a stage"
    );
    std::fs::write(&done, record).unwrap();

    // A folder made by another schedule is refused, not mixed into new tables.
    let record = out.join("schedule.txt");
    let schedule = std::fs::read_to_string(&record).unwrap();
    assert!(schedule.contains("profile ci"), "{schedule}");
    std::fs::write(&record, schedule.replace("profile ci", "profile demo")).unwrap();
    let (ok, text) = run_script(&out);
    assert!(
        !ok && text.contains("holds stages of another schedule")
            && text.contains(record.to_str().unwrap()),
        "{text}"
    );
    assert_eq!(
        modified(&checkpoint),
        before,
        "a refused run touched a stage"
    );
}

/// `--dry-run` on the ci profile: every stage of a row, its teacher included, runs its recipe
/// for the dry run's few steps and evaluates a handful of images; results.md says it is a dry
/// run. The distilled row has every stage a row can have; the other test runs b-standard.
/// (The paper profile's dry run on `datasets standins` is the same code at the paper's sizes:
/// a manual check, too slow for a debug-build test; docs/results.md.)
/// With `--columns resnet50d,mobilenet_v1`, MobileNet's distilled row and its own teacher
/// train and evaluate their backbones only, in `mobilenet_v1/ROW` (at 32 px, a few seconds;
/// Inception-V3's rows go the same way at 75 px, a minute here, so only their recipes are
/// checked in the tests: backbones' `every_fashion_table_row_parses...`).
#[test]
fn a_dry_run_runs_every_stage_of_every_row_for_a_few_steps() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dry");
    let (ok, text) = outcome(
        script(&[
            "--profile",
            "ci",
            "--rows",
            "distill",
            "--dry-run",
            "--columns",
            "resnet50d,mobilenet_v1",
            "--out",
        ])
        .arg(&out),
    );
    assert!(ok, "{text}");
    assert!(!text.contains("FAILED"), "{text}");
    let results = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        results.starts_with("# Transfer tables, profile `ci` (DRY RUN)"),
        "{results}"
    );
    assert!(results.contains("**This is a dry run**"), "{results}");
    let done = |row: &str, stage: &str| {
        std::fs::read_to_string(out.join(row).join(format!("{stage}.done")))
            .unwrap_or_else(|_| panic!("{row} {stage} did not finish:\n{text}"))
    };
    done("teacher", "backbone");
    done("teacher", "backbone-eval");
    let row = "distill";
    for stage in ROW_STAGES {
        let record = done(row, stage);
        if stage.ends_with("-eval") {
            assert!(record.contains("--max-samples"), "{record}");
        }
    }
    // Each training stage stopped after the dry run's 2 steps, at the end of its one
    // short epoch, and validated there (so its checkpoints exist).
    for run in ["backbone", "detection", "segmentation"] {
        let metrics =
            std::fs::read_to_string(out.join(row).join(run).join("metrics.jsonl")).unwrap();
        let last: serde_json::Value =
            serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
        assert_eq!(last["split"], "val", "{row} {run}: {metrics}");
        assert_eq!(last["iter"], 2, "{row} {run}: {metrics}");
    }
    // Table 9 reports the final epoch's FCN.
    assert!(done(row, "segmentation-eval").contains("segmentation/last.safetensors"));
    // The distilled row learned from its (dry-run) teacher.
    assert!(done("distill", "backbone").contains("teacher/backbone/best.safetensors"));
    // MobileNet's column: its distilled row learned from its own teacher, and neither was
    // fine-tuned for detection or segmentation; Table 6 has its numbers beside the paper's.
    let teacher = out.join("mobilenet_v1/teacher/backbone/best.safetensors");
    for row in ["mobilenet_v1/teacher", "mobilenet_v1/distill"] {
        let record = done(row, "backbone");
        assert!(
            record.contains(&format!("configs/tables/{row}.toml")),
            "{record}"
        );
        assert!(done(row, "backbone-eval").contains("--max-samples"));
        assert!(text.contains(&format!("[{row}] backbone: ")), "{text}");
        assert!(!out.join(row).join("detection").exists(), "{row}");
    }
    assert!(done("mobilenet_v1/distill", "backbone").contains(teacher.to_str().unwrap()));
    let line = results
        .lines()
        .find(|l| l.starts_with("| + distill w/o mixup |"))
        .unwrap();
    let cells: Vec<&str> = line.split('|').map(str::trim).collect();
    // ResNet-50-D's two and the paper's two, then MobileNet's two and the paper's.
    assert!(cells[2].parse::<f64>().is_ok(), "{line}");
    assert!(cells[6].parse::<f64>().is_ok(), "{line}");
    assert_eq!(&cells[8..10], ["71.97", "90.89"], "{line}");
    assert!(
        results.contains("MobileNet, + distill w/o mixup"),
        "{results}"
    );
}

/// `--columns` names Table 6's networks; anything else is refused before anything runs.
#[test]
fn an_unknown_column_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tables");
    let output = script(&[
        "--profile",
        "ci",
        "--columns",
        "resnet50d,inception_v4",
        "--out",
    ])
    .arg(&out)
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown column 'inception_v4': resnet50d, inception_v3, mobilenet_v1"),
        "{stderr}"
    );
    assert!(!out.exists(), "something ran");
    let help = script(&["--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[--columns COLUMN,COLUMN,...]"), "{help}");
    assert!(
        help.contains("inception_v3   Inception-V3, backbone stages only"),
        "{help}"
    );
}

/// The paper profile opens every split before anything trains and names every problem in
/// one message.
#[test]
fn the_paper_profile_checks_all_its_data_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let (imagenet, voc, ade) = (
        dir.path().join("imagenet"),
        dir.path().join("voc"),
        dir.path().join("ade"),
    );
    for d in [&imagenet, &voc, &ade] {
        std::fs::create_dir_all(d).unwrap();
    }
    let out = dir.path().join("tables");
    let output = script(&["--profile", "paper", "--dry-run", "--out"])
        .arg(&out)
        .arg("--imagenet")
        .arg(&imagenet)
        .arg("--voc")
        .arg(&voc)
        .arg("--ade20k")
        .arg(&ade)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the paper profile cannot start: its data has problems"),
        "{stderr}"
    );
    for spec in [
        format!(
            "imagenet:{} (--split train --split val)",
            imagenet.display()
        ),
        format!("voc:{} (--split trainval --split test)", voc.display()),
        format!(
            "ade20k:{} (--split training --split validation)",
            ade.display()
        ),
    ] {
        assert!(stderr.contains(&spec), "no {spec:?} in\n{stderr}");
    }
    assert!(!out.join("b-standard").exists(), "something trained");
}
