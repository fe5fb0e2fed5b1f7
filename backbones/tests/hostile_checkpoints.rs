//! A checkpoint is untrusted input: each metadata field that lies (sizes out of bounds, a
//! class list that does not match the head, an invalid model config, tensors of the wrong
//! type) is refused when the file is opened, with one error naming the file and the field,
//! exit status 2, and no large allocation first. Numeric flags are refused with their range.

use e2e::tiny::{self, SafetensorsFile};
use e2e::{run, run_err, run_measured, run_ok};
use std::path::{Path, PathBuf};

/// Peak memory of a command that must refuse its input before building anything big: a
/// libtorch process that loads a ResNet-18 stays well under this.
const REFUSAL_PEAK_MIB: f64 = 1024.0;

struct Files {
    dir: tempfile::TempDir,
    good: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    tiny::checkpoint(e2e::bin!("backbone"), &good);
    Files { dir, good }
}

impl Files {
    /// A copy of the good checkpoint with one metadata value replaced.
    fn lying(&self, name: &str, key: &str, value: &str) -> PathBuf {
        let mut file = SafetensorsFile::read(&self.good);
        file.set_metadata(key, value);
        let path = self.dir.path().join(name);
        file.write(&path);
        path
    }

    fn image(&self) -> PathBuf {
        let path = self.dir.path().join("photo.png");
        if !path.exists() {
            image::RgbImage::from_pixel(48, 40, image::Rgb([90, 120, 200]))
                .save(&path)
                .unwrap();
        }
        path
    }
}

fn predict_args<'a>(ckpt: &'a Path, image: &'a Path) -> Vec<&'a str> {
    vec![
        "predict",
        "--ckpt",
        ckpt.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
    ]
}

/// The transform of the good checkpoint with some fields replaced.
fn transform(changes: serde_json::Value) -> String {
    let mut t = serde_json::json!({
        "resize": 37, "crop": 32,
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
    });
    for (k, v) in changes.as_object().unwrap() {
        t[k] = v.clone();
    }
    t.to_string()
}

#[test]
fn each_lying_metadata_field_is_named_with_the_file() {
    let f = files();
    let good = SafetensorsFile::read(&f.good).metadata();
    assert_eq!(good["num_classes"], "3");
    let model = |changes: serde_json::Value| {
        let mut m: serde_json::Value = serde_json::from_str(&good["model"]).unwrap();
        for (k, v) in changes.as_object().unwrap() {
            m[k] = v.clone();
        }
        m.to_string()
    };
    let image = f.image();
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "transform",
            transform(serde_json::json!({"resize": 0, "crop": 0})),
            "transform",
            "resize must be between 8 and 2048, not 0",
        ),
        (
            "transform",
            transform(serde_json::json!({"crop": 64})),
            "transform",
            "crop 64 is larger than the resize 37",
        ),
        (
            "transform",
            transform(serde_json::json!({"std": [0.2, 0.0, 0.2]})),
            "transform",
            "std [0.2, 0.0, 0.2] must be finite and above 0",
        ),
        (
            "classes",
            r#"["red","green"]"#.into(),
            "classes",
            "lists 2 class names but num_classes is 3",
        ),
        (
            "classes",
            "[]".into(),
            "classes",
            "lists 0 class names but num_classes is 3",
        ),
        (
            "num_classes",
            "0".into(),
            "num_classes",
            "the number of classes must be between 1 and 100000, not 0",
        ),
        (
            "num_classes",
            "three".into(),
            "num_classes",
            "must be an integer, not \"three\"",
        ),
        (
            "model",
            model(serde_json::json!({"output_stride": 7})),
            "model",
            "output stride must be 32, 16 or 8, not 7",
        ),
        (
            "model",
            model(serde_json::json!({"num_classes": 2})),
            "model",
            "has a head of 2 classes but num_classes is 3",
        ),
        (
            "model",
            model(serde_json::json!({"bn_eps": -1.0})),
            "model",
            "batch-norm eps must be at least 0 and below 1, not -1",
        ),
        (
            "arch",
            "resnet99".into(),
            "arch",
            "unknown architecture 'resnet99'",
        ),
        ("task", "poetry".into(), "task", "must be classification"),
        // A newline or terminal escape quoted from the file stays escaped on one line.
        (
            "arch",
            "resnet\n\u{1b}[2J18".into(),
            "arch",
            "unknown architecture 'resnet\\n\\u{1b}[2J18'",
        ),
    ];
    for (i, (key, value, field, message)) in cases.iter().enumerate() {
        let name = format!("lie{i}.safetensors");
        let ckpt = f.lying(&name, key, value);
        let err = run_err(e2e::bin!("backbone"), &predict_args(&ckpt, &image), 2);
        let expected = format!("{name}: checkpoint metadata '{field}': {message}");
        assert!(err.contains(&expected), "{key}={value}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    // A model config that names another architecture than `arch`.
    let ckpt = f.lying("other.safetensors", "arch", "resnet34");
    let err = run_err(e2e::bin!("backbone"), &predict_args(&ckpt, &image), 2);
    assert!(
        err.contains("'model': describes a resnet18 but arch says resnet34"),
        "{err}"
    );
    // A ResNet's config under another family's name: read as that family's config, refused.
    let ckpt = f.lying("family.safetensors", "arch", "mobilenet_v1");
    let err = run_err(e2e::bin!("backbone"), &predict_args(&ckpt, &image), 2);
    assert!(
        err.contains("'model': not a mobilenet_v1 config (unknown field `arch`"),
        "{err}"
    );
}

#[test]
fn a_resnet_checkpoint_passed_off_as_an_inception_v3_is_refused_field_by_field() {
    let f = files();
    let image = f.image();
    // Its ResNet config under Inception-V3's name.
    let ckpt = f.lying("config.safetensors", "arch", "inception_v3");
    let err = run_err(e2e::bin!("backbone"), &predict_args(&ckpt, &image), 2);
    assert!(
        err.contains("'model': not an inception_v3 config (unknown field `arch`"),
        "{err}"
    );
    // An Inception-V3 config too, but the ResNet's 32 px transform: the network would have
    // nothing left of the image before its head.
    let inception = |name: &str, transform: &str| {
        let mut file = SafetensorsFile::read(&f.good);
        file.set_metadata("arch", "inception_v3");
        file.set_metadata(
            "model",
            r#"{"num_classes":3,"aux_logits":false,"dropout":0.0,"norm":"batch","bn_eps":0.001}"#,
        );
        file.set_metadata("transform", transform);
        let path = f.dir.path().join(name);
        file.write(&path);
        path
    };
    let ckpt = inception("small.safetensors", &transform(serde_json::json!({})));
    let err = run_err(e2e::bin!("backbone"), &predict_args(&ckpt, &image), 2);
    assert!(
        err.contains(
            "small.safetensors: checkpoint metadata 'transform': crop 32: inception_v3 needs \
             inputs of at least 75x75"
        ),
        "{err}"
    );
    // Every field in order, but the tensors are a ResNet-18's: one error listing what does not
    // fit, in Inception-V3's names.
    let ckpt = inception(
        "tensors.safetensors",
        &transform(serde_json::json!({"resize": 86, "crop": 75})),
    );
    let err = run_err(e2e::bin!("backbone"), &predict_args(&ckpt, &image), 2);
    assert!(
        err.contains("tensors.safetensors")
            && err.contains("do not fit inception_v3")
            && err.contains("Conv2d_1a_3x3.conv.weight")
            && err.contains("layer1.0.conv1.weight"),
        "{err}"
    );
}

#[test]
fn a_bomb_sized_transform_is_refused_before_any_allocation() {
    let f = files();
    let image = f.image();
    // Resized to 100000 px on its shorter side, the image alone would take 30 GB.
    let ckpt = f.lying(
        "bomb.safetensors",
        "transform",
        &transform(serde_json::json!({"resize": 100000, "crop": 100000})),
    );
    let m = run_measured(e2e::bin!("backbone"), &predict_args(&ckpt, &image));
    assert_eq!(m.status.code(), Some(2), "{}: {}", m.ending(), m.stderr);
    assert!(
        m.stderr.contains(
            "bomb.safetensors: checkpoint metadata 'transform': resize must be between 8 and 2048, not 100000"
        ),
        "{}",
        m.stderr
    );
    assert!(
        m.peak_rss_mib < REFUSAL_PEAK_MIB,
        "peak memory {} MiB",
        m.peak_rss_mib
    );
    // Export and eval open the checkpoint the same way.
    let out = f.dir.path().join("exported.safetensors");
    let err = run_err(
        e2e::bin!("backbone"),
        &[
            "export",
            "--to",
            "timm",
            ckpt.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        2,
    );
    assert!(err.contains("'transform': resize must be"), "{err}");
    assert!(!out.exists());
    let data = f.dir.path().join("imagenet");
    tiny::image_folder(&data, 1, 1);
    let data = format!("imagenet:{}", data.display());
    let err = run_err(
        e2e::bin!("backbone"),
        &["eval", "--ckpt", ckpt.to_str().unwrap(), "--data", &data],
        2,
    );
    assert!(err.contains("'transform': resize must be"), "{err}");
}

#[test]
fn a_long_thin_image_does_not_balloon_the_largest_valid_resize() {
    // 4000 x 1 pixels (a few bytes of PNG) resized to a shorter side of 2048 would be 8
    // million pixels wide (50 GB); only the centre crop is ever computed.
    let f = files();
    let ckpt = f.lying(
        "big.safetensors",
        "transform",
        &transform(serde_json::json!({"resize": 2048, "crop": 32})),
    );
    let thin = f.dir.path().join("thin.png");
    image::RgbImage::from_pixel(4000, 1, image::Rgb([10, 200, 30]))
        .save(&thin)
        .unwrap();
    let m = run_measured(e2e::bin!("backbone"), &predict_args(&ckpt, &thin));
    assert_eq!(m.status.code(), Some(0), "{}: {}", m.ending(), m.stderr);
    assert!(m.stdout.contains("class_"), "{}", m.stdout);
    assert!(
        m.peak_rss_mib < REFUSAL_PEAK_MIB,
        "peak memory {} MiB",
        m.peak_rss_mib
    );
}

#[test]
fn tensors_must_be_finite_and_of_the_declared_floating_type() {
    let f = files();
    let mut file = SafetensorsFile::read(&f.good);
    // Same byte size, different type: the header now says bn1.bias holds integers.
    file.header["bn1.bias"]["dtype"] = "I32".into();
    let ckpt = f.dir.path().join("ints.safetensors");
    file.write(&ckpt);
    let err = run_err(e2e::bin!("backbone"), &predict_args(&ckpt, &f.image()), 2);
    assert!(
        err.contains("ints.safetensors: tensor bn1.bias holds Int values; a classifier's tensors are floating point"),
        "{err}"
    );
    // Bytes of NaN where weights should be: predictions would be silently meaningless.
    let mut file = SafetensorsFile::read(&f.good);
    let [start, end]: [usize; 2] =
        serde_json::from_value(file.header["fc.bias"]["data_offsets"].clone()).unwrap();
    file.data[start..end].fill(0xFF);
    let ckpt = f.dir.path().join("nan.safetensors");
    file.write(&ckpt);
    let err = run_err(e2e::bin!("backbone"), &predict_args(&ckpt, &f.image()), 2);
    assert!(
        err.contains("nan.safetensors: tensor fc.bias holds NaN or infinite values"),
        "{err}"
    );
}

#[test]
fn safetensors_format_errors_are_sentences() {
    let f = files();
    let image = f.image();
    let good = std::fs::read(&f.good).unwrap();

    let mut huge = good.clone();
    huge[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let path = f.dir.path().join("huge.safetensors");
    std::fs::write(&path, &huge).unwrap();
    let err = run_err(e2e::bin!("backbone"), &predict_args(&path, &image), 2);
    assert!(
        err.contains("huge.safetensors: not a valid safetensors file (its first 8 bytes declare a header over 100 MB)"),
        "{err}"
    );

    let mut file = SafetensorsFile::read(&f.good);
    file.header["fc.bias"]["data_offsets"] = serde_json::json!([0, 12]);
    let path = f.dir.path().join("offsets.safetensors");
    file.write(&path);
    let err = run_err(e2e::bin!("backbone"), &predict_args(&path, &image), 2);
    assert!(
        err.contains(
            "offsets.safetensors: not a valid safetensors file (the data offsets of tensor"
        ),
        "{err}"
    );

    let path = f.dir.path().join("text.safetensors");
    std::fs::write(&path, b"\x10\0\0\0\0\0\0\0not json at all!").unwrap();
    let err = run_err(e2e::bin!("backbone"), &predict_args(&path, &image), 2);
    assert!(err.contains("its header is not a JSON table"), "{err}");

    for err in [&err] {
        for debug_name in ["InvalidOffset", "HeaderTooLarge", "InvalidHeader"] {
            assert!(!err.contains(debug_name), "{err}");
        }
    }
}

#[test]
fn numeric_flags_are_refused_outside_their_range() {
    let f = files();
    let ck = f.good.to_str().unwrap();
    let image = f.image();
    let im = image.to_str().unwrap();
    let out = f.dir.path().join("new.safetensors");
    let o = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["predict", "--ckpt", ck, "--image", im, "--topk", "0"],
            "1..=100000",
        ),
        (
            vec![
                "eval",
                "--ckpt",
                ck,
                "--data",
                "imagenet:x",
                "--batch-size",
                "0",
            ],
            "1..=4096",
        ),
        (
            vec![
                "eval",
                "--ckpt",
                ck,
                "--data",
                "imagenet:x",
                "--max-samples",
                "0",
            ],
            "1..=1000000000",
        ),
        (
            vec!["train", "--config", "x.toml", "--max-iters", "0"],
            "1..=1000000000",
        ),
        (vec!["bench", "--iters", "0"], "1..=100000"),
        (vec!["bench", "--batch", "100000"], "1..=4096"),
        (
            vec!["info", "--arch", "resnet18", "--input-size", "0"],
            "8..=1024",
        ),
        (
            vec!["init", "--arch", "resnet18", "--input-size", "0", o],
            "8..=1024",
        ),
    ];
    for (args, range) in &cases {
        let err = run_err(e2e::bin!("backbone"), args, 2);
        assert!(
            err.contains("invalid value") && err.contains(range),
            "{args:?}: {err}"
        );
    }
    assert!(!out.exists());

    // `init --num-classes 2000000000` used to allocate gigabytes before a libtorch panic.
    let m = run_measured(
        e2e::bin!("backbone"),
        &[
            "init",
            "--arch",
            "resnet18",
            "--num-classes",
            "2000000000",
            o,
        ],
    );
    assert_eq!(m.status.code(), Some(2), "{}: {}", m.ending(), m.stderr);
    assert!(m.stderr.contains("1..=100000"), "{}", m.stderr);
    assert!(m.peak_rss_mib < REFUSAL_PEAK_MIB, "{} MiB", m.peak_rss_mib);
    assert!(!out.exists());

    // --help states each range.
    for (command, flag_help) in [
        ("predict", "--topk <TOPK>"),
        ("eval", "--batch-size <BATCH_SIZE>"),
        ("train", "--max-iters <MAX_ITERS>"),
        ("init", "--num-classes <NUM_CLASSES>"),
    ] {
        let help = run_ok(e2e::bin!("backbone"), &[command, "--help"]);
        let line = help
            .lines()
            .skip_while(|l| !l.contains(flag_help))
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            line.contains(" to ") && line.contains('['),
            "{command} {flag_help}: {line}"
        );
    }
    // The defaults still work.
    let top = run(e2e::bin!("backbone"), &predict_args(&f.good, &image));
    assert!(top.status.success());
}
