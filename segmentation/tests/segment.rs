//! `segment` end to end on synthetic shape scenes (ADE20K layout) from a `backbone init`
//! ResNet-18 (written through the library, backbones/tests/common/classifier_init.rs): a tiny
//! CPU fine-tuning whose loss falls, evaluation from the model and from prediction PNGs
//! agreeing, predict's mask, and the bad inputs a user meets (masks of the wrong size or with
//! values above K, a missing or wrong prediction PNG, a backbone checkpoint that is not a
//! classifier).

#[path = "../../backbones/tests/common/classifier_init.rs"]
mod classifier_init;

use e2e::{json, repo_root, run_err, run_ok};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Scenes, a backbone and a fine-tuned FCN, made once for all the tests of this file.
struct Trained {
    root: PathBuf,
    ade: PathBuf,
    backbone: PathBuf,
    run: PathBuf,
}

impl Trained {
    fn data(&self) -> String {
        format!("ade20k:{}", self.ade.display())
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `segment finetune` of `backbone` with configs/segmentation/tiny.toml on 48 px scenes, 32 px
/// crops, into `out`, then `more`.
fn finetune_args(backbone: &Path, data: &str, out: &Path, more: &[&str]) -> Vec<String> {
    let config = repo_root().join("configs/segmentation/tiny.toml");
    let mut args: Vec<String> = [
        "finetune",
        "--backbone",
        s(backbone),
        "--config",
        s(&config),
        "--data",
        data,
        "--out",
        s(out),
        "--set",
        "data.base_size=48",
        "--set",
        "data.crop_size=32",
    ]
    .iter()
    .map(|v| v.to_string())
    .collect();
    args.extend(more.iter().map(|v| v.to_string()));
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn trained() -> &'static Trained {
    static TRAINED: OnceLock<Trained> = OnceLock::new();
    TRAINED.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("segment-e2e");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let scenes = root.join("scenes");
        e2e::shape_scenes(&scenes, 16, 4, 0, 48);
        let backbone = root.join("r18.safetensors");
        classifier_init::init_classifier(&backbone, "resnet18", 10, 32);
        let t = Trained {
            ade: scenes.join("ADEChallengeData2016"),
            run: root.join("run"),
            root,
            backbone,
        };
        let args = finetune_args(
            &t.backbone,
            &t.data(),
            &t.run,
            &["--set", "schedule.epochs=3", "--json"],
        );
        run_ok(e2e::bin!("segment"), &strs(&args));
        t
    })
}

fn records(run: &Path, split: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(json)
        .filter(|r| r["split"] == split)
        .collect()
}

#[test]
fn a_tiny_finetune_lowers_its_loss_and_evaluates_like_its_predictions() {
    let t = trained();
    for file in [
        "config.toml",
        "metrics.jsonl",
        "last.safetensors",
        "best.safetensors",
        "state.safetensors",
        "curves.png",
    ] {
        assert!(t.run.join(file).is_file(), "{file} missing");
    }
    let train = records(&t.run, "train");
    let loss = |r: &serde_json::Value| r["loss"].as_f64().unwrap();
    // Twelve steps from a random backbone: the loss leaves chance level (about 3.6 here,
    // ln 11 for the main head plus half that for the auxiliary one) for the class prior.
    // Training is deterministic on the CPU, so the margin does not flicker.
    assert!(train
        .iter()
        .all(|r| r["loss_aux"].is_number() && r["loss_seg"].is_number()));
    let n = train.len();
    let first = (loss(&train[0]) + loss(&train[1])) / 2.0;
    let last = (loss(&train[n - 2]) + loss(&train[n - 1])) / 2.0;
    assert!(last < 0.95 * first, "the loss went from {first} to {last}");
    let val = records(&t.run, "val");
    assert_eq!(val.len(), 3, "evaluated every epoch: {val:?}");
    let best = val
        .iter()
        .map(|r| r["mIoU"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);

    // The best checkpoint scores what the run logged for it.
    let ckpt = t.run.join("best.safetensors");
    let eval = json(&run_ok(
        e2e::bin!("segment"),
        &["eval", "--ckpt", s(&ckpt), "--data", &t.data(), "--json"],
    ));
    assert!(
        (eval["mIoU"].as_f64().unwrap() - best).abs() < 1e-9,
        "{eval} vs best {best}"
    );
    assert_eq!(
        eval["iou"].as_object().unwrap().len(),
        11,
        "background + 10 shapes"
    );
    assert!(eval["iou"]["background"].as_f64().unwrap() > 0.0);

    // Its masks, written one image at a time, score the same as a folder of predictions.
    let predictions = t.root.join("predictions");
    std::fs::create_dir_all(&predictions).unwrap();
    let images = t.ade.join("images/validation");
    for entry in std::fs::read_dir(&images).unwrap() {
        let image = entry.unwrap().path();
        let mask = predictions
            .join(image.file_stem().unwrap())
            .with_extension("png");
        let overlay = t.root.join("overlay.png");
        let out = json(&run_ok(
            e2e::bin!("segment"),
            &[
                "predict",
                "--ckpt",
                s(&ckpt),
                "--image",
                s(&image),
                "--out",
                s(&mask),
                "--overlay",
                s(&overlay),
                "--json",
            ],
        ));
        assert_eq!(
            (out["width"].as_u64(), out["height"].as_u64()),
            (Some(48), Some(48))
        );
        let png = image::open(&mask).unwrap().to_luma8();
        assert_eq!(png.dimensions(), (48, 48), "the mask has the image's size");
        assert!(
            png.as_raw().iter().all(|&v| (1..=11).contains(&v)),
            "values 1..=K"
        );
        assert_eq!(image::open(&overlay).unwrap().width(), 48);
    }
    let from_pngs = json(&run_ok(
        e2e::bin!("segment"),
        &[
            "eval",
            "--predictions",
            s(&predictions),
            "--data",
            &t.data(),
            "--json",
        ],
    ));
    assert_eq!(from_pngs["pixAcc"], eval["pixAcc"]);
    assert_eq!(from_pngs["mIoU"], eval["mIoU"]);
    assert_eq!(from_pngs["iou"], eval["iou"]);

    // The whole folder in one command writes the same masks, and overlays beside them.
    let folder = t.root.join("folder-predictions");
    let overlays = t.root.join("folder-overlays");
    let lines = run_ok(
        e2e::bin!("segment"),
        &[
            "predict",
            "--ckpt",
            s(&ckpt),
            "--images",
            s(&images),
            "--out",
            s(&folder),
            "--overlay",
            s(&overlays),
            "--enlarge",
            "3",
            "--json",
        ],
    );
    let mut count = 0;
    for line in lines.lines() {
        let line = json(line);
        let mask = PathBuf::from(line["mask"].as_str().unwrap());
        let one = predictions.join(mask.file_name().unwrap());
        // --enlarge draws the overlay 3 times the size and leaves the mask as it is.
        assert_eq!(std::fs::read(&mask).unwrap(), std::fs::read(&one).unwrap());
        let (w, h) = image::image_dimensions(&mask).unwrap();
        let overlay = PathBuf::from(line["overlay"].as_str().unwrap());
        assert_eq!(image::image_dimensions(&overlay).unwrap(), (3 * w, 3 * h));
        count += 1;
    }
    assert_eq!(count, std::fs::read_dir(&images).unwrap().count());
    let err = run_err(
        e2e::bin!("segment"),
        &[
            "predict",
            "--ckpt",
            s(&ckpt),
            "--images",
            s(&images),
            "--out",
            s(&folder),
            "--overlay",
            s(&folder),
        ],
        2,
    );
    assert!(err.contains("--overlay must name another folder"), "{err}");
}

/// A copy of the scenes' validation split whose first mask is replaced by `mask`.
fn scenes_with_mask(t: &Trained, name: &str, mask: image::GrayImage) -> (String, PathBuf) {
    let copy = t.root.join(name).join("ADEChallengeData2016");
    for sub in [
        "images/validation",
        "annotations/validation",
        "images/training",
        "annotations/training",
    ] {
        std::fs::create_dir_all(copy.join(sub)).unwrap();
        for e in std::fs::read_dir(t.ade.join(sub)).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, copy.join(sub).join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy(t.ade.join("classes.txt"), copy.join("classes.txt")).unwrap();
    let mut masks: Vec<PathBuf> = std::fs::read_dir(copy.join("annotations/validation"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    masks.sort();
    mask.save(&masks[0]).unwrap();
    (format!("ade20k:{}", copy.display()), masks[0].clone())
}

#[test]
fn bad_ground_truth_masks_are_named() {
    let t = trained();
    let ckpt = t.run.join("best.safetensors");
    let (data, mask) = scenes_with_mask(t, "wrong-size", image::GrayImage::new(40, 48));
    let err = run_err(
        e2e::bin!("segment"),
        &["eval", "--ckpt", s(&ckpt), "--data", &data],
        2,
    );
    assert!(
        err.contains(s(&mask)) && err.contains("the mask is 40x48 but its image is 48x48"),
        "{err}"
    );

    let (data, mask) = scenes_with_mask(
        t,
        "too-large",
        image::GrayImage::from_pixel(48, 48, image::Luma([200])),
    );
    let err = run_err(
        e2e::bin!("segment"),
        &["eval", "--ckpt", s(&ckpt), "--data", &data],
        2,
    );
    assert!(
        err.contains(s(&mask)) && err.contains("value 200 at pixel (0, 0) is not a class"),
        "{err}"
    );
}

#[test]
fn bad_prediction_folders_are_named() {
    let t = trained();
    let dir = t.root.join("bad-predictions");
    std::fs::create_dir_all(&dir).unwrap();
    let mut stems: Vec<String> = std::fs::read_dir(t.ade.join("images/validation"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    stems.sort();
    let eval = || {
        run_err(
            e2e::bin!("segment"),
            &["eval", "--predictions", s(&dir), "--data", &t.data()],
            2,
        )
    };
    let good = image::GrayImage::from_pixel(48, 48, image::Luma([1]));
    for stem in &stems[1..] {
        good.save(dir.join(format!("{stem}.png"))).unwrap();
    }
    let first = dir.join(format!("{}.png", stems[0]));
    let err = eval();
    assert!(err.contains(s(&first)) && err.contains("missing"), "{err}");

    // Something that is there but is no file is named for what it is, not "missing".
    std::fs::create_dir(&first).unwrap();
    let err = eval();
    assert!(
        err.contains(s(&first)) && !err.contains("missing") && err.contains("folder"),
        "{err}"
    );
    std::fs::remove_dir(&first).unwrap();

    image::GrayImage::from_pixel(48, 47, image::Luma([1]))
        .save(&first)
        .unwrap();
    let err = eval();
    assert!(
        err.contains(s(&first)) && err.contains("the prediction is 48x47 but the image is 48x48"),
        "{err}"
    );

    // A prediction of the image's size beside a smaller annotation: the annotation is the
    // file named as wrong, not the prediction.
    image::GrayImage::from_pixel(48, 48, image::Luma([1]))
        .save(&first)
        .unwrap();
    let (data, mask) = scenes_with_mask(t, "small-annotation", image::GrayImage::new(32, 32));
    let err = run_err(
        e2e::bin!("segment"),
        &["eval", "--predictions", s(&dir), "--data", &data],
        2,
    );
    assert!(
        err.contains(s(&mask))
            && err.contains("the annotation is 32x32 but its image")
            && err.contains("is 48x48")
            && !err.contains("the prediction is"),
        "{err}"
    );

    image::GrayImage::from_pixel(48, 48, image::Luma([12]))
        .save(&first)
        .unwrap();
    let err = eval();
    assert!(
        err.contains(s(&first))
            && err.contains("value 12 at pixel (0, 0) is not a class (predictions hold 1..=11)"),
        "{err}"
    );
}

#[test]
fn a_backbone_that_is_not_a_classifier_is_refused() {
    let t = trained();
    let config = repo_root().join("configs/segmentation/tiny.toml");
    let seg = t.run.join("best.safetensors");
    let err = run_err(
        e2e::bin!("segment"),
        &[
            "finetune",
            "--backbone",
            s(&seg),
            "--config",
            s(&config),
            "--data",
            &t.data(),
            "--out",
            s(&t.root.join("refused")),
        ],
        2,
    );
    assert!(
        err.contains(s(&seg))
            && err
                .contains("is a segmentation checkpoint (fcn_resnet18), not a classification one"),
        "{err}"
    );
}

#[test]
fn a_resumed_finetune_arrives_at_the_weights_of_an_uninterrupted_one() {
    let t = trained();
    let out = t.root.join("resumed");
    let run = |more: &[&str]| {
        let mut with_epochs = vec!["--set", "schedule.epochs=3"];
        with_epochs.extend_from_slice(more);
        let args = finetune_args(&t.backbone, &t.data(), &out, &with_epochs);
        run_ok(e2e::bin!("segment"), &strs(&args));
    };
    // Stopped mid-epoch (4 steps an epoch), then continued to the end.
    run(&["--max-iters", "5"]);
    run(&["--resume"]);
    let tensors = |p: PathBuf| {
        let bytes = std::fs::read(p).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut v: Vec<(String, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(n, t)| (n, t.data().to_vec()))
            .collect();
        v.sort();
        v
    };
    let (resumed, straight) = (
        tensors(out.join("last.safetensors")),
        tensors(t.run.join("last.safetensors")),
    );
    assert_eq!(resumed.len(), straight.len());
    for ((name, a), (_, b)) in resumed.iter().zip(&straight) {
        assert!(a == b, "{name} differs after resuming");
    }
}

/// `train.amp = "bf16"` on the CPU: training and the in-training evaluation run under bf16
/// autocast (which the fp32 fast paths of CPU inference, oneDNN's blocked layout and
/// Winograd, step aside for), and the losses and scores are numbers.
#[test]
fn a_bf16_finetune_trains_and_evaluates() {
    let t = trained();
    let out = t.root.join("bf16");
    let args = finetune_args(
        &t.backbone,
        &t.data(),
        &out,
        &["--set", "schedule.epochs=1", "--set", "train.amp=bf16"],
    );
    run_ok(e2e::bin!("segment"), &strs(&args));
    for r in records(&out, "train") {
        assert!(r["loss"].as_f64().unwrap().is_finite(), "{r}");
    }
    let val = records(&out, "val").pop().expect("an evaluation");
    for key in ["pixAcc", "mIoU"] {
        let v = val[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key}: {val}");
    }
}

/// `--tensorboard`: the event files hold each named loss, the learning rate, images/s and
/// every validation metric of metrics.jsonl, at the same steps.
#[test]
fn a_finetune_with_tensorboard_logs_what_metrics_jsonl_holds() {
    let t = trained();
    let out = t.root.join("tensorboard");
    let args = finetune_args(
        &t.backbone,
        &t.data(),
        &out,
        &[
            "--set",
            "schedule.epochs=1",
            "--set",
            "train.log_every=1",
            "--tensorboard",
        ],
    );
    run_ok(e2e::bin!("segment"), &strs(&args));
    e2e::events::check_run_everywhere(&out);
    let (scalars, _) = e2e::events::scalars(&out);
    for tag in [
        "train/loss",
        "train/lr",
        "train/images_per_s",
        "val/pixAcc",
        "val/mIoU",
    ] {
        assert!(scalars.keys().any(|(t, _)| t == tag), "no {tag}");
    }
}

#[test]
fn segment_import_writes_a_checkpoint_with_the_given_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let keys: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(e2e::fixture("pytorch/fcn_resnet50_keys.json")).unwrap(),
    )
    .unwrap();
    let state_dict = tmp.path().join("fcn.safetensors");
    e2e::formula::write_state_dict(&keys, &state_dict);
    let classes = tmp.path().join("classes.txt");
    std::fs::write(&classes, "sky\ntree\nroad\ncar\nperson\n").unwrap();
    let out = tmp.path().join("imported.safetensors");
    let args = |classes: &Path| {
        vec![
            "import".to_string(),
            "--from".into(),
            "torchvision".into(),
            "--arch".into(),
            "fcn_resnet50".into(),
            "--classes".into(),
            s(classes).into(),
            s(&state_dict).into(),
            s(&out).into(),
        ]
    };
    let a = args(&classes);
    run_ok(
        e2e::bin!("segment"),
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let bytes = std::fs::read(&out).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let header = meta.metadata().clone().unwrap();
    assert_eq!(header["task"], "segmentation");
    assert_eq!(header["arch"], "fcn_resnet50");
    assert_eq!(header["classes"], r#"["sky","tree","road","car","person"]"#);
    assert!(
        header["transform"].contains("\"resize_shorter\":520"),
        "{}",
        header["transform"]
    );

    std::fs::write(&classes, "sky\ntree\n").unwrap();
    let a = args(&classes);
    let err = run_err(
        e2e::bin!("segment"),
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        2,
    );
    assert!(
        err.contains("has 5 classes but 2 class names were given"),
        "{err}"
    );
}

/// A copy of `src` with its metadata's `transform` replaced by `transform` (when given) and
/// every value of tensor `fill.0` set to `fill.1` (when given): safetensors' header is
/// rewritten, the data offsets stay valid.
fn rewritten_checkpoint(
    src: &Path,
    dst: &Path,
    transform: Option<&str>,
    fill: Option<(&str, f32)>,
) {
    let bytes = std::fs::read(src).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut data = bytes[8 + n..].to_vec();
    if let Some(t) = transform {
        header["__metadata__"]["transform"] = serde_json::json!(t);
    }
    if let Some((name, value)) = fill {
        let offsets = &header[name]["data_offsets"];
        let (a, b) = (
            offsets[0].as_u64().unwrap() as usize,
            offsets[1].as_u64().unwrap() as usize,
        );
        for chunk in data[a..b].chunks_mut(4) {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
    }
    let mut text = serde_json::to_vec(&header).unwrap();
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(data);
    std::fs::write(dst, out).unwrap();
}

fn transform_resizing_to(side: usize) -> String {
    format!(
        r#"{{"resize_shorter":{side},"normalization":{{"mean":[0.485,0.456,0.406],"std":[0.229,0.224,0.225]}}}}"#
    )
}

/// `segment ARGS` measured, with its address space capped at 5 GB (libtorch maps about 3 GB
/// of libraries) and a minute to finish: a runaway fails its allocation or times out.
fn segment_capped(args: &[&str]) -> e2e::Measured {
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--as=5000000000")
        .arg(e2e::bin!("segment"))
        .args(args);
    e2e::measure(&mut cmd, std::time::Duration::from_secs(60))
}

#[test]
fn a_large_photo_is_predicted_in_bounded_memory_or_refused_with_the_limit() {
    let t = trained();
    let dir = t.root.join("large-photo");
    std::fs::create_dir_all(&dir).unwrap();
    let photo = dir.join("photo.png");
    image::RgbImage::from_fn(4000, 4000, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 7 * 30) as u8])
    })
    .save(&photo)
    .unwrap();
    let mask = dir.join("mask.png");
    // The fine-tuned model runs images at their own size: 4000 x 4000 through its ResNet-18
    // would take about 5.6 GB, so it is refused with the bound and how to raise it.
    let ckpt = t.run.join("best.safetensors");
    let m = segment_capped(&[
        "predict",
        "--ckpt",
        s(&ckpt),
        "--image",
        s(&photo),
        "--out",
        s(&mask),
    ]);
    assert_eq!(m.status.code(), Some(2), "{}: {}", m.ending(), m.stderr);
    assert!(
        m.stderr.contains(s(&photo))
            && m.stderr.contains("the model input would be 4000x4000")
            && m.stderr.contains("TRICKS_MAX_INFERENCE_MIB"),
        "{}",
        m.stderr
    );
    assert!(!mask.exists());
    // A checkpoint that resizes to a shorter side of 48 runs a small input; its 11-class
    // answer comes back at 4000 x 4000 band by band, within a few hundred MB of what a
    // 48 x 48 image costs (one 11 x 4000 x 4000 float tensor alone would be 700 MB).
    let resized = dir.join("resized.safetensors");
    rewritten_checkpoint(&ckpt, &resized, Some(&transform_resizing_to(48)), None);
    let small_image = std::fs::read_dir(t.ade.join("images/validation"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let small = segment_capped(&[
        "predict",
        "--ckpt",
        s(&resized),
        "--image",
        s(&small_image),
        "--out",
        s(&mask),
    ]);
    assert!(small.status.success(), "{}", small.stderr);
    let m = segment_capped(&[
        "predict",
        "--ckpt",
        s(&resized),
        "--image",
        s(&photo),
        "--out",
        s(&mask),
        "--json",
    ]);
    assert!(m.status.success(), "{}: {}", m.ending(), m.stderr);
    assert!(
        m.peak_rss_mib < small.peak_rss_mib + 400.0,
        "{} MiB for the photo, {} MiB for a 48 x 48 image",
        m.peak_rss_mib,
        small.peak_rss_mib
    );
    let out = json(&m.stdout);
    assert_eq!(
        (out["width"].as_u64(), out["height"].as_u64()),
        (Some(4000), Some(4000))
    );
    let png = image::open(&mask).unwrap().to_luma8();
    assert_eq!(png.dimensions(), (4000, 4000));
    assert!(png.as_raw().iter().all(|&v| (1..=11).contains(&v)));
}

#[test]
fn metadata_and_flags_that_cost_gigabytes_are_refused_before_running() {
    let t = trained();
    let dir = t.root.join("costly");
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("resize-2048.safetensors");
    rewritten_checkpoint(
        &t.run.join("best.safetensors"),
        &ckpt,
        Some(&transform_resizing_to(2048)),
        None,
    );
    let image = std::fs::read_dir(t.ade.join("images/validation"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let m = segment_capped(&[
        "predict",
        "--ckpt",
        s(&ckpt),
        "--image",
        s(&image),
        "--out",
        s(&dir.join("mask.png")),
    ]);
    assert_eq!(m.status.code(), Some(2), "{}: {}", m.ending(), m.stderr);
    assert!(
        m.stderr.contains(s(&ckpt))
            && m.stderr.contains("'transform'")
            && m.stderr.contains("resize_shorter 2048")
            && m.stderr.contains("at most 1.0 GiB"),
        "{}",
        m.stderr
    );
    // Both in range, together millions of windows per image: refused at once.
    let m = segment_capped(&[
        "eval",
        "--ckpt",
        s(&t.run.join("best.safetensors")),
        "--data",
        &t.data(),
        "--multi-scale",
        "--crop-size",
        "8",
        "--base-size",
        "2048",
    ]);
    assert_eq!(m.status.code(), Some(2), "{}: {}", m.ending(), m.stderr);
    assert!(
        m.stderr
            .contains("would run up to 1456784 sliding windows per image; the limit is 2000"),
        "{}",
        m.stderr
    );
}

#[test]
fn a_split_without_labelled_pixels_is_refused_by_eval_and_finetune() {
    let t = trained();
    let (data, _) = scenes_with_mask(t, "unlabelled", image::GrayImage::new(48, 48));
    let root = PathBuf::from(data.strip_prefix("ade20k:").unwrap());
    let mut stems = Vec::new();
    for e in std::fs::read_dir(root.join("annotations/validation")).unwrap() {
        let p = e.unwrap().path();
        image::GrayImage::new(48, 48).save(&p).unwrap();
        stems.push(p.file_stem().unwrap().to_str().unwrap().to_string());
    }
    let ckpt = t.run.join("best.safetensors");
    let err = run_err(
        e2e::bin!("segment"),
        &["eval", "--ckpt", s(&ckpt), "--data", &data],
        2,
    );
    assert!(
        err.contains(&format!("{data}, split \"validation\": no labelled pixel")),
        "{err}"
    );
    let predictions = t.root.join("unlabelled-predictions");
    std::fs::create_dir_all(&predictions).unwrap();
    for stem in &stems {
        image::GrayImage::from_pixel(48, 48, image::Luma([1]))
            .save(predictions.join(format!("{stem}.png")))
            .unwrap();
    }
    let err = run_err(
        e2e::bin!("segment"),
        &["eval", "--predictions", s(&predictions), "--data", &data],
        2,
    );
    assert!(err.contains("no labelled pixel"), "{err}");
    // Fine-tuning on it is refused before a step is taken, so no "best" comes of a 0 mIoU.
    let out = t.root.join("unlabelled-run");
    let args = finetune_args(&t.backbone, &data, &out, &[]);
    let err = run_err(e2e::bin!("segment"), &strs(&args), 2);
    assert!(
        err.contains(&format!("{data}, split \"val\": no labelled pixel")),
        "{err}"
    );
    assert!(!out.join("best.safetensors").exists());
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap_or_default();
    assert!(!log.contains("\"train\""), "{log}");
}

/// `--val-data` names where validation images come from: a copy whose validation masks are
/// unlabelled is refused as validation data (naming that copy), and trains when another
/// copy validates it.
#[test]
fn val_data_names_the_validation_split_the_run_scores() {
    let t = trained();
    let (unlabelled, _) = scenes_with_mask(t, "val-data", image::GrayImage::new(48, 48));
    let root = PathBuf::from(unlabelled.strip_prefix("ade20k:").unwrap());
    for e in std::fs::read_dir(root.join("annotations/validation")).unwrap() {
        image::GrayImage::new(48, 48)
            .save(e.unwrap().path())
            .unwrap();
    }
    let out = t.root.join("val-data-refused");
    let args = finetune_args(&t.backbone, &t.data(), &out, &["--val-data", &unlabelled]);
    let err = run_err(e2e::bin!("segment"), &strs(&args), 2);
    assert!(
        err.contains(&format!("{unlabelled}, split \"val\": no labelled pixel")),
        "{err}"
    );
    let out = t.root.join("val-data-run");
    let quick = [
        "--val-data",
        &t.data(),
        "--set",
        "schedule.epochs=1",
        "--set",
        "data.max_train_samples=4",
    ];
    let args = finetune_args(&t.backbone, &unlabelled, &out, &quick);
    run_ok(e2e::bin!("segment"), &strs(&args));
    let val = records(&out, "val").pop().expect("an evaluation");
    assert!(val["mIoU"].as_f64().unwrap() > 0.0, "{val}");
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        config.contains(&format!("val_spec = \"{}\"", t.data())),
        "{config}"
    );
}

#[test]
fn weights_that_overflow_to_nan_are_refused_naming_the_checkpoint() {
    let t = trained();
    let dir = t.root.join("overflow");
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("huge.safetensors");
    // Finite, but every logit overflows float32.
    rewritten_checkpoint(
        &t.run.join("best.safetensors"),
        &ckpt,
        None,
        Some(("classifier.1.weight", 3e38)),
    );
    let image = std::fs::read_dir(t.ade.join("images/validation"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mask = dir.join("mask.png");
    let err = run_err(
        e2e::bin!("segment"),
        &[
            "predict",
            "--ckpt",
            s(&ckpt),
            "--image",
            s(&image),
            "--out",
            s(&mask),
        ],
        2,
    );
    assert!(
        err.contains(s(&ckpt)) && err.contains("NaN or infinite") && err.contains(s(&image)),
        "{err}"
    );
    assert!(!mask.exists());
    for extra in [
        &[][..],
        &["--multi-scale", "--base-size", "48", "--crop-size", "32"][..],
    ] {
        let data = t.data();
        let mut args = vec!["eval", "--ckpt", s(&ckpt), "--data", &data];
        args.extend(extra);
        let err = run_err(e2e::bin!("segment"), &args, 2);
        assert!(
            err.contains(s(&ckpt)) && err.contains("NaN or infinite"),
            "{extra:?}: {err}"
        );
    }
}
