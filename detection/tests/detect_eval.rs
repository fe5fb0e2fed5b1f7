//! `detect eval --detections`: hand-made VOC ground truth and comp4 files whose VOC07 and
//! VOC12 numbers are worked out by hand below, and the ways bad comp4 files are refused.

use e2e::{json, run, run_err, run_ok};
use std::path::{Path, PathBuf};

/// One object: class, 1-based inclusive box, difficult.
type Object = (&'static str, [u32; 4], bool);

fn annotation(objects: &[Object]) -> String {
    let mut xml = String::from(
        "<annotation><size><width>64</width><height>64</height><depth>3</depth></size>",
    );
    for (name, [x1, y1, x2, y2], difficult) in objects {
        xml += &format!(
            "<object><name>{name}</name><difficult>{}</difficult><bndbox><xmin>{x1}</xmin>\
             <ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>",
            *difficult as u8
        );
    }
    xml + "</annotation>"
}

/// A VOC2007 folder (classes cat, dog, bird) with three test images:
///
/// - 000001: cat A (1,1)-(10,10); cat B (21,1)-(30,10), difficult; dog C (1,21)-(10,30)
/// - 000002: cat D (1,1)-(20,20); bird E (30,30)-(40,40), difficult
/// - 000003: no objects
///
/// Positives: cat 2 (A, D), dog 1 (C), bird 0 (its only box is difficult).
fn voc_folder(root: &Path) -> PathBuf {
    let voc = root.join("VOC2007");
    for sub in ["Annotations", "ImageSets/Main", "JPEGImages"] {
        std::fs::create_dir_all(voc.join(sub)).unwrap();
    }
    std::fs::write(voc.join("classes.txt"), "cat\ndog\nbird\n").unwrap();
    let images: [(&str, Vec<Object>); 3] = [
        (
            "000001",
            vec![
                ("cat", [1, 1, 10, 10], false),
                ("cat", [21, 1, 30, 10], true),
                ("dog", [1, 21, 10, 30], false),
            ],
        ),
        (
            "000002",
            vec![
                ("cat", [1, 1, 20, 20], false),
                ("bird", [30, 30, 40, 40], true),
            ],
        ),
        ("000003", vec![]),
    ];
    for (id, objects) in &images {
        std::fs::write(
            voc.join(format!("Annotations/{id}.xml")),
            annotation(objects),
        )
        .unwrap();
    }
    std::fs::write(
        voc.join("ImageSets/Main/test.txt"),
        "000001\n000002\n000003\n",
    )
    .unwrap();
    voc
}

/// The detections, 1-based as the devkit reads them; lines are not in score order.
///
/// cat, ranked by score (IoU with inclusive pixels):
///   0.9  000001 (1,1)-(10,10)  A, IoU 1                     -> TP
///   0.8  000001 (1,1)-(10,10)  A again                      -> FP (duplicate)
///   0.7  000001 (21,1)-(30,10) B, difficult                 -> ignored
///   0.6  000003 (1,1)-(10,10)  an image without objects     -> FP
///   0.5  000002 (1,1)-(20,10)  D: 20x10 inside 20x20, IoU 200/400 = 0.5 exactly -> TP
///   0.4  000002 (1,1)-(20,20)  D, already found             -> FP
///   cumulative TP 1 1 1 1 2 2, FP 0 1 1 2 2 3
///   precision 1, 1/2, 1/2, 1/3, 2/4, 2/5; recall (of 2) .5 .5 .5 .5 1 1
///   VOC12: envelope 1 up to recall .5, then max(1/2, 2/5) = 1/2 up to 1:
///          .5 * 1 + .5 * .5 = 0.75
///   VOC07: thresholds 0..0.5 (six) see precision 1; 0.6..1 (five) see 1/2:
///          (6 + 2.5) / 11 = 8.5/11
/// dog:
///   0.95 000002 (1,1)-(20,20)  a dog where the cat is (wrong class) -> FP
///   0.3  000001 (2,22)-(11,31) C shifted by one: 9x9 = 81 of 100 + 100 - 81 = 119,
///        IoU 0.68                                           -> TP
///   precision 0, 1/2; recall 0, 1. VOC12 = 0.5; VOC07 = 11 * 0.5 / 11 = 0.5
/// bird: one detection, no positives -> no AP (null), left out of the mean.
/// mAP: VOC07 (8.5/11 + 0.5) / 2 = 7/11; VOC12 (0.75 + 0.5) / 2 = 0.625.
///
/// At --iou 0.7 the cat at 0.5 misses (IoU 0.5) and the one at 0.4 finds D:
///   TP FP - FP FP TP: precision 1, 1/2, 1/2, 1/3, 1/4, 2/5; recall .5 ... .5, 1
///   VOC12 .5 * 1 + .5 * .4 = 0.7; VOC07 (6 + 5 * .4) / 11 = 8/11
///   the dog's IoU 0.68 misses too: AP 0. mAP: VOC12 0.35, VOC07 4/11.
fn comp4_folder(root: &Path) -> PathBuf {
    let dir = root.join("results");
    std::fs::create_dir_all(&dir).unwrap();
    let files = [
        (
            "cat",
            "000002 0.4 1 1 20 20\n000001 0.9 1 1 10 10\n000003 0.6 1 1 10 10\n\
             000001 0.7 21 1 30 10\n000002 0.5 1 1 20 10\n000001 0.8 1 1 10 10\n",
        ),
        ("dog", "000001 0.3 2 22 11 31\n000002 0.95 1 1 20 20\n"),
        ("bird", "000003 0.5 1 1 5 5\n"),
    ];
    for (class, text) in files {
        std::fs::write(dir.join(format!("comp4_det_test_{class}.txt")), text).unwrap();
    }
    dir
}

fn eval_json(results: &Path, voc: &Path, more: &[&str]) -> serde_json::Value {
    let data = format!("voc:{}", voc.display());
    let mut args = vec![
        "eval",
        "--detections",
        results.to_str().unwrap(),
        "--data",
        &data,
        "--json",
    ];
    args.extend_from_slice(more);
    json(&run_ok(e2e::bin!("detect"), &args))
}

fn assert_near(value: &serde_json::Value, expected: f64) {
    let got = value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"));
    assert!((got - expected).abs() < 1e-12, "{got} != {expected}");
}

#[test]
fn hand_worked_voc07_and_voc12_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let voc = voc_folder(tmp.path());
    let results = comp4_folder(tmp.path());

    let v07 = eval_json(&results, &voc, &[]);
    assert_eq!(v07["metric"], "voc07");
    assert_near(&v07["ap"]["cat"], 8.5 / 11.0);
    assert_near(&v07["ap"]["dog"], 0.5);
    assert!(v07["ap"]["bird"].is_null(), "{v07}");
    assert_near(&v07["map"], 7.0 / 11.0);
    assert_eq!(
        v07["positives"],
        serde_json::json!({"cat": 2, "dog": 1, "bird": 0})
    );
    assert_eq!(
        v07["difficult"],
        serde_json::json!({"cat": 1, "dog": 0, "bird": 1})
    );
    assert_eq!(
        v07["detections"],
        serde_json::json!({"cat": 6, "dog": 2, "bird": 1})
    );

    let v12 = eval_json(&results, &voc, &["--metric", "voc12"]);
    assert_eq!(v12["metric"], "voc12");
    assert_near(&v12["ap"]["cat"], 0.75);
    assert_near(&v12["ap"]["dog"], 0.5);
    assert_near(&v12["map"], 0.625);

    let strict = eval_json(&results, &voc, &["--metric", "voc12", "--iou", "0.7"]);
    assert_near(&strict["ap"]["cat"], 0.7);
    assert_near(&strict["ap"]["dog"], 0.0);
    assert_near(&strict["map"], 0.35);
    let strict07 = eval_json(&results, &voc, &["--iou", "0.7"]);
    assert_near(&strict07["map"], 4.0 / 11.0);

    // The table says which metric and how it counts.
    let data = format!("voc:{}", voc.display());
    let table = run_ok(
        e2e::bin!("detect"),
        &[
            "eval",
            "--detections",
            results.to_str().unwrap(),
            "--data",
            &data,
        ],
    );
    assert!(table.starts_with(
        "VOC07 11-point AP by the devkit (VOCevaldet.m) at IoU >= 0.5 (inclusive-pixel IoU, difficult boxes ignored, duplicates false), 3 images\n"
    ), "{table}");
    assert!(table.contains("\ncat     0.7727"), "{table}");
    assert!(table.contains("\nbird         -"), "{table}");
    assert!(
        table.contains("\nmAP     0.6364  (mean over the 2 of 3 classes with ground truth)"),
        "{table}"
    );
}

#[test]
fn a_missing_class_file_warns_and_scores_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let voc = voc_folder(tmp.path());
    let results = comp4_folder(tmp.path());
    std::fs::remove_file(results.join("comp4_det_test_dog.txt")).unwrap();
    let data = format!("voc:{}", voc.display());
    let out = run(
        e2e::bin!("detect"),
        &[
            "eval",
            "--detections",
            results.to_str().unwrap(),
            "--data",
            &data,
            "--json",
        ],
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("no comp4 file for 1 of 3 classes (dog), which therefore have no detections"),
        "{stderr}"
    );
    let v = json(&String::from_utf8_lossy(&out.stdout));
    assert_near(&v["ap"]["dog"], 0.0);
    assert_near(&v["map"], (8.5 / 11.0) / 2.0);
}

fn eval_err(results: &Path, voc: &Path, more: &[&str]) -> String {
    let data = format!("voc:{}", voc.display());
    let mut args = vec![
        "eval",
        "--detections",
        results.to_str().unwrap(),
        "--data",
        &data,
    ];
    args.extend_from_slice(more);
    run_err(e2e::bin!("detect"), &args, 2)
}

#[test]
fn bad_comp4_files_exit_2_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let voc = voc_folder(tmp.path());
    let results = comp4_folder(tmp.path());
    let dog = results.join("comp4_det_test_dog.txt");
    let cases = [
        ("000001 0.3 2 22 11\n", ":1: 5 fields where 6 were expected"),
        (
            "000001 0.3 2 22 11 31\n000002 inf 1 1 20 20\n",
            ":2: the score is \"inf\", not a finite number",
        ),
        (
            "000001 0.3 2 22 11 31\n000009 0.5 1 1 20 20\n",
            ":2: image id \"000009\" is not in the \"test\" split",
        ),
        (
            "000001 0.3 20 22 11 31\n",
            ":1: box (20, 22, 11, 31) has a negative width or height",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&dog, text).unwrap();
        let stderr = eval_err(&results, &voc, &[]);
        assert!(
            stderr.contains(&format!("{}{expected}", dog.display())),
            "{text:?}: {stderr}"
        );
    }
    comp4_folder(tmp.path());
    std::fs::write(results.join("comp4_det_test_horse.txt"), "").unwrap();
    let stderr = eval_err(&results, &voc, &[]);
    assert!(stderr.contains("comp4_det_test_horse.txt: \"horse\" is not a class of this dataset (its classes: cat, dog, bird)"), "{stderr}");
    std::fs::remove_file(results.join("comp4_det_test_horse.txt")).unwrap();
    // A split the dataset does not have.
    let stderr = eval_err(&results, &voc, &["--split", "val"]);
    assert!(stderr.contains("no \"val\" split"), "{stderr}");
    let stderr = eval_err(&tmp.path().join("nowhere"), &voc, &[]);
    assert!(stderr.contains("nowhere"), "{stderr}");
    let stderr = eval_err(&results, &voc, &["--metric", "coco"]);
    assert!(
        stderr.contains("--metric coco needs coco: data"),
        "{stderr}"
    );
}

/// Two images with one 200 x 100 cat each (category 7; "large").
const COCO_GROUND_TRUTH: &str = r#"{
  "images": [
    {"id": 1, "width": 640, "height": 480, "file_name": "a.jpg"},
    {"id": 2, "width": 640, "height": 480, "file_name": "b.jpg"}
  ],
  "annotations": [
    {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 20, 200, 100], "area": 20000, "iscrowd": 0},
    {"id": 2, "image_id": 2, "category_id": 7, "bbox": [300, 200, 200, 100], "area": 20000, "iscrowd": 0}
  ],
  "categories": [{"id": 7, "name": "cat"}]
}"#;

#[test]
fn coco_results_files_are_scored_with_hotcoco() {
    let tmp = tempfile::tempdir().unwrap();
    let annotations = tmp.path().join("instances_val.json");
    std::fs::write(&annotations, COCO_GROUND_TRUTH).unwrap();
    let results = tmp.path().join("results.json");
    // The first cat found exactly, then a box on nothing: precision 1 up to recall 0.5, so
    // 51 of COCO's 101 recall points, at every IoU threshold.
    std::fs::write(
        &results,
        r#"[{"image_id": 1, "category_id": 7, "bbox": [10, 20, 200, 100], "score": 0.9},
            {"image_id": 2, "category_id": 7, "bbox": [0, 0, 50, 50], "score": 0.8}]"#,
    )
    .unwrap();
    let data = format!("coco:{}", annotations.display());
    let v = json(&run_ok(
        e2e::bin!("detect"),
        &[
            "eval",
            "--detections",
            results.to_str().unwrap(),
            "--data",
            &data,
            "--json",
        ],
    ));
    assert_eq!(v["metric"], "coco");
    assert_near(&v["map"], 51.0 / 101.0);
    assert_near(&v["stats"]["AP50"], 51.0 / 101.0);
    assert_near(&v["ap"]["cat"], 51.0 / 101.0);

    std::fs::write(
        &results,
        r#"[{"image_id": 3, "category_id": 7, "bbox": [10, 20, 200, 100], "score": 0.9}]"#,
    )
    .unwrap();
    let stderr = run_err(
        e2e::bin!("detect"),
        &[
            "eval",
            "--detections",
            results.to_str().unwrap(),
            "--data",
            &data,
        ],
        2,
    );
    assert!(
        stderr.contains("results.json: entry 0: image_id 3 is not in"),
        "{stderr}"
    );
}

/// The ground truth of a results file is read as training and `datasets check` read it:
/// each of these used to be scored (an image defined twice gave mAP 1, a box of width -5
/// 0.875, unknown categories and images vanished, a duplicated annotation id halved AP,
/// no annotations gave -1), and is now an error naming the file and the problem.
#[test]
fn coco_ground_truth_problems_are_refused_not_scored() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results.json");
    std::fs::write(
        &results,
        r#"[{"image_id": 1, "category_id": 7, "bbox": [10, 20, 200, 100], "score": 0.9},
            {"image_id": 2, "category_id": 7, "bbox": [300, 200, 200, 100], "score": 0.8}]"#,
    )
    .unwrap();
    let annotations = tmp.path().join("instances_val.json");
    let data = format!("coco:{}", annotations.display());
    let base: serde_json::Value = serde_json::from_str(COCO_GROUND_TRUTH).unwrap();
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 7] = [
        (
            "an image defined twice",
            |gt| {
                let first = gt["images"][0].clone();
                gt["images"].as_array_mut().unwrap().push(first);
            },
            "image id 1 is defined twice",
        ),
        (
            "a box of negative width",
            |gt| gt["annotations"][1]["bbox"] = serde_json::json!([300, 200, -5, 100]),
            "annotation 2 (image 2): empty box [300, 200, -5, 100]",
        ),
        (
            "an unknown category",
            |gt| gt["annotations"][1]["category_id"] = 999.into(),
            "annotation 2 (image 2): unknown category id 999",
        ),
        (
            "an unknown image",
            |gt| gt["annotations"][1]["image_id"] = 424242.into(),
            "annotation 2 refers to image id 424242, which the file does not define",
        ),
        (
            "an annotation id defined twice",
            |gt| gt["annotations"][1]["id"] = 1.into(),
            "annotation id 1 is defined twice",
        ),
        (
            "no annotations",
            |gt| gt["annotations"] = serde_json::json!([]),
            "no annotation that is not a crowd region, so there is nothing to measure",
        ),
        (
            "only crowd regions",
            |gt| {
                for a in gt["annotations"].as_array_mut().unwrap() {
                    a["iscrowd"] = 1.into();
                }
            },
            "no annotation that is not a crowd region, so there is nothing to measure",
        ),
    ];
    for (what, edit, expected) in cases {
        let mut gt = base.clone();
        edit(&mut gt);
        std::fs::write(&annotations, gt.to_string()).unwrap();
        let out = run(
            e2e::bin!("detect"),
            &[
                "eval",
                "--detections",
                results.to_str().unwrap(),
                "--data",
                &data,
                "--json",
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(out.stdout.is_empty(), "{what}: a score was printed");
        assert!(
            stderr.contains(&format!("instances_val.json: {expected}")),
            "{what}: {stderr}"
        );
    }
}

/// Whether `detect ARGS` succeeds with its address space capped at `cap_mib` MiB. malloc
/// keeps one arena (each further one reserves 64 MiB, created or not as threads happen to
/// contend) and rayon two threads, so that the cap measures the same thing each run.
fn succeeds_within(cap_mib: u64, args: &[&str]) -> bool {
    let mut cmd = std::process::Command::new(e2e::bin!("detect"));
    cmd.args(args)
        .env("MALLOC_ARENA_MAX", "1")
        .env("RAYON_NUM_THREADS", "2");
    e2e::measure_within(&mut cmd, std::time::Duration::from_secs(120), cap_mib << 20)
        .status
        .success()
}

/// The smallest address-space cap (to 4 MiB) under which `detect ARGS` succeeds: libtorch's
/// libraries alone map gigabytes, which differ from machine to machine.
fn least_address_space_mib(args: &[&str]) -> u64 {
    // Doubling from 1 GiB first: libtorch's mappings put the answer near there, and each try
    // is a process start.
    let (mut fails, mut works) = (0u64, 1u64 << 10);
    while !succeeds_within(works, args) {
        assert!(works < 64 << 10, "detect {args:?} fails even at 64 GiB");
        (fails, works) = (works, works * 2);
    }
    while works - fails > 4 {
        let mid = (fails + works) / 2;
        match succeeds_within(mid, args) {
            true => works = mid,
            false => fails = mid,
        }
    }
    works
}

/// Detection result files are read into compact records, one line or entry at a time: a
/// comp4 folder costs less than twice its size (48 bytes a detection), a COCO results file
/// less than five times (hotcoco's ~200-byte records and its own copy during evaluation).
/// Each run is held to that by an address-space cap above what a tiny file needs, so one
/// that grows past it fails. (Before: comp4 lines went through two growing copies, about
/// 4x a file's size; COCO results through three, about 7x.)
#[test]
fn large_result_files_cost_a_small_multiple_of_their_size() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let voc = voc_folder(tmp.path());
    let data = format!("voc:{}", voc.display());
    let tiny = tmp.path().join("tiny");
    std::fs::create_dir_all(&tiny).unwrap();
    std::fs::write(
        tiny.join("comp4_det_test_cat.txt"),
        "000001 0.9 1 1 10 10\n",
    )
    .unwrap();
    let large = tmp.path().join("large");
    std::fs::create_dir_all(&large).unwrap();
    let mut bytes = 0u64;
    for class in ["cat", "dog", "bird"] {
        let path = large.join(format!("comp4_det_test_{class}.txt"));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        // Just past a power of two, where a doubling list holds twice what it needs.
        for i in 0..140_000u32 {
            let (x, y) = (1 + i % 40, 1 + (i / 40) % 40);
            writeln!(
                file,
                "00000{} 0.{:06} {x}.5 {y}.25 {}.5 {}.75",
                1 + i % 3,
                (i * 7919) % 1_000_000,
                x + 10 + i % 13,
                y + 8 + i % 11
            )
            .unwrap();
        }
        file.flush().unwrap();
        bytes += std::fs::metadata(&path).unwrap().len();
    }
    let args = |dir: &Path| {
        [
            "eval".to_string(),
            "--detections".into(),
            dir.display().to_string(),
            "--data".into(),
            data.clone(),
        ]
    };
    let tiny_args = args(&tiny);
    let tiny_args: Vec<&str> = tiny_args.iter().map(String::as_str).collect();
    let base = least_address_space_mib(&tiny_args);
    let large_args = args(&large);
    let large_args: Vec<&str> = large_args.iter().map(String::as_str).collect();
    let mib = bytes >> 20;
    assert!(
        succeeds_within(base + 2 * mib + 16, &large_args),
        "{mib} MiB of comp4 files need more than twice their size (a tiny file needs {base} MiB)"
    );

    let annotations = tmp.path().join("instances_val.json");
    std::fs::write(&annotations, COCO_GROUND_TRUTH).unwrap();
    let data = format!("coco:{}", annotations.display());
    let tiny = tmp.path().join("tiny.json");
    std::fs::write(
        &tiny,
        r#"[{"image_id": 1, "category_id": 7, "bbox": [10, 20, 200, 100], "score": 0.9}]"#,
    )
    .unwrap();
    let large = tmp.path().join("large.json");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&large).unwrap());
    write!(file, "[").unwrap();
    for i in 0..300_000u32 {
        let separator = if i == 0 { "" } else { "," };
        write!(
            file,
            r#"{separator}{{"image_id": {}, "category_id": 7, "bbox": [{}.5, {}.25, {}.5, {}.75], "score": 0.{:06}}}"#,
            1 + i % 2,
            i % 400,
            i % 300,
            20 + i % 200,
            10 + i % 150,
            (i * 7919) % 1_000_000
        )
        .unwrap();
    }
    write!(file, "]").unwrap();
    file.flush().unwrap();
    drop(file);
    let mib = std::fs::metadata(&large).unwrap().len() >> 20;
    let coco_args = |path: &Path| {
        [
            "eval".to_string(),
            "--detections".into(),
            path.display().to_string(),
            "--data".into(),
            data.clone(),
        ]
    };
    let tiny_args = coco_args(&tiny);
    let tiny_args: Vec<&str> = tiny_args.iter().map(String::as_str).collect();
    let base = least_address_space_mib(&tiny_args);
    let large_args = coco_args(&large);
    let large_args: Vec<&str> = large_args.iter().map(String::as_str).collect();
    assert!(
        succeeds_within(base + 5 * mib + 16, &large_args),
        "a {mib} MiB COCO results file needs more than five times its size (a tiny one needs {base} MiB)"
    );
}
