//! `backbone train`, `eval` and resumption on a tiny ImageNet-layout folder made by the test:
//! the run folder's files, exact resumption (after a clean stop and after SIGKILL), and the
//! bad inputs a user meets (corrupt image, unknown key, NaN loss, changed config on resume,
//! a full disk while checkpointing).

use e2e::{json, run_err, run_ok};
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("tiny.toml");
    let text = format!(
        r#"
[model]
arch = "resnet18"
zero_gamma = true

[data]
batch_size = 8
workers = 2
prefetch = 2
normalization = "imagenet"

[data.augment]
input_size = 32
scale = [0.5, 1.0]
lighting_std = 0.1

[optim]
lr = 0.2
no_bias_decay = true

[schedule]
epochs = 2
warmup_epochs = 0.5
decay = {{ kind = "cosine" }}

[loss]
label_smoothing = 0.1
mix = {{ kind = "mixup", alpha = 0.2 }}
mix_off_last_epochs = 1

[train]
log_every = 2
checkpoint_every_iters = 2
threads = 1
{extra}
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    data: String,
    config: PathBuf,
}

fn fixture(extra: &str) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    e2e::tiny::image_folder(&dir.join("imagenet"), 8, 4);
    let config = write_config(&dir, extra);
    Fixture {
        data: format!("imagenet:{}", dir.join("imagenet").display()),
        _tmp: tmp,
        dir,
        config,
    }
}

fn train_args<'a>(f: &'a Fixture, out: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--config",
        f.config.to_str().unwrap(),
        "--data",
        &f.data,
        "--out",
        out,
    ];
    args.extend_from_slice(more);
    args
}

fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn a_run_writes_its_folder_and_evaluates() {
    let f = fixture("");
    let out = f.dir.join("run");
    let o = out.to_str().unwrap();
    let summary = json(&run_ok(
        e2e::bin!("backbone"),
        &train_args(&f, o, &["--json"]),
    ));
    assert_eq!(summary["epochs"], 2);
    assert_eq!(summary["iters"], 6, "24 images in batches of 8, two epochs");
    for name in [
        "config.toml",
        "metrics.jsonl",
        "last.safetensors",
        "best.safetensors",
        "state.safetensors",
        "curves.png",
    ] {
        assert!(out.join(name).exists(), "{name} missing");
    }
    let records: Vec<serde_json::Value> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(json)
        .collect();
    for r in &records {
        for key in ["epoch", "iter", "split", "time", "loss"] {
            assert!(r.get(key).is_some(), "record without {key}: {r}");
        }
    }
    assert_eq!(
        records.iter().filter(|r| r["split"] == "val").count(),
        2,
        "one evaluation per epoch"
    );
    assert!(records
        .iter()
        .any(|r| r["split"] == "train" && r["lr"].as_f64().unwrap() > 0.0));

    let eval = json(&run_ok(
        e2e::bin!("backbone"),
        &[
            "eval",
            "--ckpt",
            out.join("best.safetensors").to_str().unwrap(),
            "--data",
            &f.data,
            "--json",
        ],
    ));
    assert_eq!(eval["images"], 12);
    let top1 = eval["top1"].as_f64().unwrap();
    assert!(
        (0.0..=1.0).contains(&top1) && eval["top5"].as_f64().unwrap() == 1.0,
        "{eval}"
    );
    // A student distilled from that run's best checkpoint (teacher in eval mode, same input).
    let teacher = format!(
        "distill.teacher=\"{}\"",
        out.join("best.safetensors").display()
    );
    let student = f.dir.join("student");
    let summary = json(&run_ok(
        e2e::bin!("backbone"),
        &train_args(
            &f,
            student.to_str().unwrap(),
            &[
                "--set",
                &teacher,
                "--set",
                "distill.temperature=4.0",
                "--set",
                "schedule.epochs=1",
                "--json",
            ],
        ),
    ));
    assert_eq!(summary["epochs"], 1);
    let config = std::fs::read_to_string(student.join("config.toml")).unwrap();
    assert!(
        config.contains("[distill]") && config.contains("temperature = 4.0"),
        "{config}"
    );
    // The run folder refuses a second, unrelated run.
    let err = run_err(e2e::bin!("backbone"), &train_args(&f, o, &[]), 2);
    assert!(err.contains("already holds a run"), "{err}");
}

#[test]
fn resuming_gives_the_weights_of_an_uninterrupted_run() {
    let f = fixture("");
    let full = f.dir.join("full");
    run_ok(
        e2e::bin!("backbone"),
        &train_args(&f, full.to_str().unwrap(), &[]),
    );

    // Stopped cleanly mid-epoch, then resumed.
    let parts = f.dir.join("parts");
    let p = parts.to_str().unwrap();
    run_ok(
        e2e::bin!("backbone"),
        &train_args(&f, p, &["--max-iters", "2"]),
    );
    assert!(
        !parts.join("last.safetensors").exists(),
        "stopped before the first epoch ended"
    );
    run_ok(e2e::bin!("backbone"), &train_args(&f, p, &["--resume"]));
    assert_eq!(
        tensors(&parts.join("last.safetensors")),
        tensors(&full.join("last.safetensors")),
        "resumed weights differ from the uninterrupted run's"
    );
    let iters: Vec<u64> = std::fs::read_to_string(parts.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| json(l)["iter"].as_u64().unwrap())
        .collect();
    assert!(
        iters.windows(2).all(|w| w[0] <= w[1]),
        "the log is in order without repeats: {iters:?}"
    );

    // Killed with SIGKILL as soon as a state exists, then resumed.
    let killed = f.dir.join("killed");
    let k = killed.to_str().unwrap();
    kill_after_first_state(&train_args(&f, k, &[]), &killed);
    run_ok(e2e::bin!("backbone"), &train_args(&f, k, &["--resume"]));
    assert_eq!(
        tensors(&killed.join("last.safetensors")),
        tensors(&full.join("last.safetensors"))
    );
}

#[test]
fn mobilenet_v1_trains_resumes_exactly_and_exports_to_timm() {
    let f = fixture("");
    let mobilenet = [
        "--set",
        "model.arch=\"mobilenet_v1\"",
        "--set",
        "model.zero_gamma=false",
    ];
    let full = f.dir.join("full");
    let summary = json(&run_ok(
        e2e::bin!("backbone"),
        &train_args(
            &f,
            full.to_str().unwrap(),
            &[&mobilenet[..], &["--json"]].concat(),
        ),
    ));
    assert_eq!(summary["iters"], 6, "24 images in batches of 8, two epochs");
    let last = full.join("last.safetensors");
    let names: Vec<String> = tensors(&last).into_iter().map(|(n, _)| n).collect();
    for name in [
        "conv_stem.weight",
        "blocks.4.1.conv_pw.weight",
        "classifier.weight",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
    }
    let eval = json(&run_ok(
        e2e::bin!("backbone"),
        &[
            "eval",
            "--ckpt",
            last.to_str().unwrap(),
            "--data",
            &f.data,
            "--json",
        ],
    ));
    assert_eq!(eval["images"], 12);
    assert!(eval["loss"].as_f64().unwrap().is_finite(), "{eval}");

    // Stopped after two iterations and resumed: the uninterrupted run's weights, BN
    // statistics included.
    let parts = f.dir.join("parts");
    let p = parts.to_str().unwrap();
    run_ok(
        e2e::bin!("backbone"),
        &train_args(&f, p, &[&mobilenet[..], &["--max-iters", "2"]].concat()),
    );
    run_ok(
        e2e::bin!("backbone"),
        &train_args(&f, p, &[&mobilenet[..], &["--resume"]].concat()),
    );
    assert_eq!(tensors(&parts.join("last.safetensors")), tensors(&last));

    let exported = f.dir.join("timm.safetensors");
    run_ok(
        e2e::bin!("backbone"),
        &[
            "export",
            "--to",
            "timm",
            last.to_str().unwrap(),
            exported.to_str().unwrap(),
        ],
    );
    let exported = tensors(&exported);
    assert!(exported
        .iter()
        .any(|(n, _)| n == "blocks.0.0.bn1.num_batches_tracked"));

    // Zero-gamma has no residual block to act on here: refused, not ignored.
    let refused = f.dir.join("refused");
    let err = run_err(
        e2e::bin!("backbone"),
        &train_args(
            &f,
            refused.to_str().unwrap(),
            &["--set", "model.arch=\"mobilenet_v1\""],
        ),
        2,
    );
    assert!(
        err.contains("model.zero_gamma") && err.contains("no residual blocks"),
        "{err}"
    );
}

#[test]
fn inception_v3_at_75_px_trains_resumes_exactly_and_exports_to_torchvision() {
    let f = fixture("");
    // Its smallest input; no auxiliary classifier (it needs 299 px); dropout 0.5 before fc,
    // whose masks a resumed run must draw again. One epoch: a step costs 7 times a
    // MobileNet's at 32 px.
    let inception = [
        "--set",
        "model.arch=\"inception_v3\"",
        "--set",
        "model.zero_gamma=false",
        "--set",
        "model.aux_logits=false",
        "--set",
        "data.augment.input_size=75",
        "--set",
        "schedule.epochs=1",
    ];
    let full = f.dir.join("full");
    let summary = json(&run_ok(
        e2e::bin!("backbone"),
        &train_args(
            &f,
            full.to_str().unwrap(),
            &[&inception[..], &["--json"]].concat(),
        ),
    ));
    assert_eq!(summary["iters"], 3, "24 images in batches of 8, one epoch");
    let last = full.join("last.safetensors");
    let names: Vec<String> = tensors(&last).into_iter().map(|(n, _)| n).collect();
    for name in [
        "Conv2d_1a_3x3.conv.weight",
        "Mixed_6b.branch7x7_2.conv.weight",
        "Mixed_7c.branch3x3dbl_3b.bn.running_var",
        "fc.weight",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with("AuxLogits")));
    // The run evaluated itself (`backbone eval` of a checkpoint is the MobileNet test's).
    let val: Vec<serde_json::Value> = std::fs::read_to_string(full.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(json)
        .filter(|r| r["split"] == "val")
        .collect();
    assert_eq!(val.len(), 1);
    assert!(val[0]["loss"].as_f64().unwrap().is_finite(), "{}", val[0]);

    // Stopped after two iterations and resumed: the uninterrupted run's weights, BN
    // statistics included (the dropout masks drawn again).
    let parts = f.dir.join("parts");
    let p = parts.to_str().unwrap();
    run_ok(
        e2e::bin!("backbone"),
        &train_args(&f, p, &[&inception[..], &["--max-iters", "2"]].concat()),
    );
    run_ok(
        e2e::bin!("backbone"),
        &train_args(&f, p, &[&inception[..], &["--resume"]].concat()),
    );
    assert_eq!(tensors(&parts.join("last.safetensors")), tensors(&last));

    let exported = f.dir.join("torchvision.safetensors");
    run_ok(
        e2e::bin!("backbone"),
        &[
            "export",
            "--to",
            "torchvision",
            last.to_str().unwrap(),
            exported.to_str().unwrap(),
        ],
    );
    assert!(tensors(&exported)
        .iter()
        .any(|(n, _)| n == "Mixed_5b.branch1x1.bn.num_batches_tracked"));

    // The auxiliary classifier, on by default, cannot run at 75 px: refused with the way out
    // (the other refusals are classification::config's unit tests).
    let refused = f.dir.join("refused");
    let mut args = train_args(&f, refused.to_str().unwrap(), &[]);
    args.extend(&inception[..4]); // arch and zero_gamma, aux_logits left to default
    args.extend(["--set", "data.augment.input_size=75"]);
    let err = run_err(e2e::bin!("backbone"), &args, 2);
    assert!(
        err.contains("model.aux_logits: the auxiliary classifier needs inputs of at least 299x299")
            && err.contains("data.augment.input_size is 75"),
        "{err}"
    );
}

/// A paper recipe asks for fp16 (`train.amp = true`); on the CPU it trains in bf16, says so
/// once, records what ran, and resumes.
#[test]
fn fp16_asked_on_the_cpu_trains_in_bf16_says_so_once_and_resumes() {
    let f = fixture("amp = true");
    let out = f.dir.join("run");
    let o = out.to_str().unwrap();
    // One epoch at 16 px: bf16 is emulated on CPUs without bf16 units, 10 to 40 times slower.
    let small = [
        "--set",
        "schedule.epochs=1",
        "--set",
        "data.augment.input_size=16",
    ];
    let first = e2e::run(
        e2e::bin!("backbone"),
        &train_args(&f, o, &[&small[..], &["--max-iters", "2", "--json"]].concat()),
    );
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("asks for float16 autocast").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("computes in bf16"), "{stderr}");
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("amp = \"bf16\""), "{config}");
    let summary = json(&run_ok(
        e2e::bin!("backbone"),
        &train_args(&f, o, &[&small[..], &["--resume", "--json"]].concat()),
    ));
    assert_eq!(summary["iters"], 3);
    for (name, values) in float_tensors(&out.join("last.safetensors")) {
        assert!(values.iter().all(|v| v.is_finite()), "{name}");
    }
}

#[test]
fn resume_with_another_config_is_refused() {
    let f = fixture("");
    let out = f.dir.join("run");
    let o = out.to_str().unwrap();
    run_ok(
        e2e::bin!("backbone"),
        &train_args(&f, o, &["--max-iters", "2"]),
    );
    let err = run_err(
        e2e::bin!("backbone"),
        &train_args(&f, o, &["--resume", "--set", "optim.lr=0.3"]),
        2,
    );
    assert!(
        err.contains("cannot resume with a different config (optim.lr: 0.2 vs 0.3)"),
        "{err}"
    );
    let err = run_err(
        e2e::bin!("backbone"),
        &train_args(&f, f.dir.join("none").to_str().unwrap(), &["--resume"]),
        2,
    );
    assert!(err.contains("nothing to resume"), "{err}");
}

#[test]
fn unknown_or_mistyped_config_keys_are_named() {
    let f = fixture("");
    let o = f.dir.join("run");
    let err = run_err(
        e2e::bin!("backbone"),
        &train_args(&f, o.to_str().unwrap(), &["--set", "optim.lrr=0.1"]),
        2,
    );
    assert!(err.contains("unknown field `lrr`"), "{err}");
    let err = run_err(
        e2e::bin!("backbone"),
        &train_args(
            &f,
            o.to_str().unwrap(),
            &["--set", "loss.mix={ kind = \"mixup\", alpha = 0.0 }"],
        ),
        2,
    );
    assert!(err.contains("loss.mix:") && err.contains("alpha"), "{err}");
    let f2 = fixture("bogus = 1");
    let err = run_err(
        e2e::bin!("backbone"),
        &train_args(&f2, f2.dir.join("run").to_str().unwrap(), &[]),
        2,
    );
    assert!(
        err.contains("tiny.toml") && err.contains("unknown field `bogus`"),
        "{err}"
    );
}

#[test]
fn a_corrupt_image_is_named_or_skipped_and_counted() {
    let f = fixture("");
    let bad = f.dir.join("imagenet/train/class_1/003.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n truncated").unwrap();
    let err = run_err(
        e2e::bin!("backbone"),
        &train_args(&f, f.dir.join("a").to_str().unwrap(), &[]),
        2,
    );
    assert!(
        err.contains("class_1/003.png") && err.contains("corrupt or truncated PNG"),
        "{err}"
    );
    let summary = json(&run_ok(
        e2e::bin!("backbone"),
        &train_args(
            &f,
            f.dir.join("b").to_str().unwrap(),
            &["--set", "data.skip_bad=true", "--json"],
        ),
    ));
    assert_eq!(
        summary["skipped_images"], 1,
        "the bad image is skipped and listed once"
    );
}

#[test]
fn a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    // The learning rate jumps a trillion-fold after the first epoch.
    let f = fixture("");
    let out = f.dir.join("run");
    let err = run_err(
        e2e::bin!("backbone"),
        &train_args(
            &f,
            out.to_str().unwrap(),
            &[
                "--set",
                "schedule.decay={ kind = \"step\", epochs = [1], factor = 1e12 }",
            ],
        ),
        1,
    );
    assert!(
        err.contains("non-finite") && err.contains("at iteration"),
        "{err}"
    );
    let last = tensors(&out.join("last.safetensors"));
    for (name, bytes) in &last {
        if name.ends_with("weight") || name.ends_with("bias") {
            assert!(
                bytes
                    .chunks_exact(4)
                    .all(|c| f32::from_le_bytes(c.try_into().unwrap()).is_finite()),
                "{name} is not finite in last.safetensors"
            );
        }
    }
}

#[test]
fn a_full_disk_while_checkpointing_leaves_the_old_checkpoint_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("model.safetensors");
    let c = ckpt.to_str().unwrap();
    run_ok(
        e2e::bin!("backbone"),
        &["init", "--arch", "resnet18", "--num-classes", "10", c],
    );
    let before = std::fs::read(&ckpt).unwrap();
    // A file-size limit makes writes fail as a full disk does (EFBIG instead of ENOSPC);
    // SIGXFSZ is ignored so the write returns the error instead of killing the process.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 1024; exec {} init --arch resnet18 --num-classes 10 --seed 3 {c}",
            e2e::bin!("backbone").display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("model.safetensors") && stderr.contains("File too large"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&ckpt).unwrap(),
        before,
        "the old checkpoint changed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "temporary files left behind");
}

/// Little-endian f32 values of every tensor of a checkpoint, by name.
fn float_tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    tensors(path)
        .into_iter()
        .filter(|(name, _)| !name.ends_with("num_batches_tracked"))
        .map(|(name, bytes)| {
            let values = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (name, values)
        })
        .collect()
}

/// Runs `backbone train` and SIGKILLs it as soon as its first state exists.
fn kill_after_first_state(args: &[&str], out: &Path) {
    let mut child = Command::new(e2e::bin!("backbone"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !out.join("state.safetensors").exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn accumulated_micro_batches_give_the_weights_of_one_large_batch() {
    // Frozen BN, so that no batch statistics depend on how a batch is split, and no mixup
    // (its lambda is drawn per micro-batch).
    let f = fixture("");
    let same = [
        "--set",
        "model.norm=\"frozen\"",
        "--set",
        "model.zero_gamma=false",
        "--set",
        "loss.mix={ kind = \"none\" }",
        "--set",
        "loss.mix_off_last_epochs=0",
    ];
    let large = f.dir.join("large");
    let mut args = train_args(&f, large.to_str().unwrap(), &same);
    args.extend(["--set", "data.batch_size=8"]);
    run_ok(e2e::bin!("backbone"), &args);

    let micro_args = |out: &Path, more: &[&'static str]| -> Vec<String> {
        let mut args: Vec<String> = train_args(&f, out.to_str().unwrap(), &same)
            .into_iter()
            .map(String::from)
            .collect();
        args.extend(
            ["--set", "data.batch_size=4", "--set", "train.accumulate=2"]
                .iter()
                .chain(more)
                .map(|s| s.to_string()),
        );
        args
    };
    let micro = f.dir.join("micro");
    let args = micro_args(&micro, &[]);
    run_ok(
        e2e::bin!("backbone"),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let (a, b) = (
        float_tensors(&large.join("last.safetensors")),
        float_tensors(&micro.join("last.safetensors")),
    );
    assert_eq!(a.len(), b.len());
    for ((name, va), (_, vb)) in a.iter().zip(&b) {
        for (x, y) in va.iter().zip(vb) {
            assert!(
                (x - y).abs() <= 1e-5 * x.abs().max(1.0),
                "{name}: {x} vs {y} after 2 epochs of 3 steps"
            );
        }
    }
    let steps: Vec<u64> = std::fs::read_to_string(micro.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| json(l)["iter"].as_u64().unwrap())
        .collect();
    assert_eq!(steps.last(), Some(&6), "iterations count optimiser steps");

    // Killed (most likely between the two micro-batches of a step) after its first state,
    // then resumed: the same weights as the run that was not killed.
    let killed = f.dir.join("killed");
    let args = micro_args(&killed, &["--set", "train.checkpoint_every_iters=1"]);
    kill_after_first_state(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &killed,
    );
    let mut resume = micro_args(&killed, &["--set", "train.checkpoint_every_iters=1"]);
    resume.push("--resume".into());
    run_ok(
        e2e::bin!("backbone"),
        &resume.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(
        tensors(&killed.join("last.safetensors")),
        tensors(&micro.join("last.safetensors"))
    );
}

#[test]
fn resume_accepts_a_moved_dataset_and_other_workers() {
    let f = fixture("");
    let full = f.dir.join("full");
    run_ok(
        e2e::bin!("backbone"),
        &train_args(&f, full.to_str().unwrap(), &[]),
    );

    let out = f.dir.join("run");
    let o = out.to_str().unwrap();
    // (A changed recipe is refused: `resume_with_another_config_is_refused`.)
    run_ok(
        e2e::bin!("backbone"),
        &train_args(&f, o, &["--max-iters", "2"]),
    );

    // The dataset moved to another folder, fewer workers, another log interval.
    let moved = f.dir.join("moved");
    std::fs::rename(f.dir.join("imagenet"), &moved).unwrap();
    let moved_spec = format!("imagenet:{}", moved.display());
    let args = [
        "train",
        "--config",
        f.config.to_str().unwrap(),
        "--data",
        &moved_spec,
        "--out",
        o,
        "--resume",
        "--set",
        "data.workers=1",
        "--set",
        "train.log_every=1",
    ];
    let stderr = String::from_utf8(e2e::run(e2e::bin!("backbone"), &args).stderr).unwrap();
    assert!(
        stderr.contains("resuming with new settings") && stderr.contains("data.workers: 2 vs 1"),
        "{stderr}"
    );
    assert_eq!(
        tensors(&out.join("last.safetensors")),
        tensors(&full.join("last.safetensors")),
        "operational settings changed the weights"
    );
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        config.contains("workers = 1") && config.contains(&moved.display().to_string()),
        "config.toml keeps the settings the run continued with: {config}"
    );
}

#[test]
fn nproc_two_trains_as_two_ranks_and_rank_zero_reports_once() {
    let f = fixture("");
    let out = f.dir.join("two-ranks");
    let o = out.to_str().unwrap();
    // 4 per rank x 2 ranks: the 8 images per step of the one-process runs above.
    let more = [
        "--nproc",
        "2",
        "--set",
        "data.batch_size=4",
        "--set",
        "schedule.epochs=1",
    ];
    let stdout = run_ok(
        e2e::bin!("backbone"),
        &train_args(&f, o, &[&more[..], &["--json"]].concat()),
    );
    assert_eq!(
        stdout.lines().count(),
        1,
        "one report, from rank 0: {stdout}"
    );
    let summary = json(&stdout);
    assert_eq!(summary["iters"], 3, "24 images, 8 per step over both ranks");
    // Each rank evaluated half of the 12 validation images; the counts were summed.
    assert_eq!(summary["last"]["images"], 12.0);
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let iters: Vec<u64> = log
        .lines()
        .map(json)
        .filter(|r| r["split"] == "train")
        .map(|r| r["iter"].as_u64().unwrap())
        .collect();
    assert_eq!(iters, vec![2, 3], "logged once, by rank 0");
    assert!(out.join("best.safetensors").exists());

    // A bad recipe is refused once, before any rank starts (not once per rank), and
    // leaves no run folder.
    let bad = f.dir.join("bad");
    let err = run_err(
        e2e::bin!("backbone"),
        &train_args(
            &f,
            bad.to_str().unwrap(),
            &["--nproc", "2", "--set", "optim.bogus=1"],
        ),
        2,
    );
    assert_eq!(err.matches("unknown field `bogus`").count(), 1, "{err}");
    assert!(
        !err.contains("[rank") && !err.contains("exited with status"),
        "no rank was started: {err}"
    );
    assert!(!bad.exists(), "the refused run created {}", bad.display());
    // More ranks than cores are refused before anything is read.
    let err = run_err(
        e2e::bin!("backbone"),
        &train_args(&f, bad.to_str().unwrap(), &["--nproc", "1024"]),
        2,
    );
    assert!(
        err.contains("--nproc 1024 needs a CPU core per rank, but this machine has"),
        "{err}"
    );
    // --nproc under torchrun is refused.
    let out = Command::new(e2e::bin!("backbone"))
        .args(train_args(
            &f,
            f.dir.join("nested").to_str().unwrap(),
            &["--nproc", "2"],
        ))
        .env("WORLD_SIZE", "2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used under torchrun"));
}
