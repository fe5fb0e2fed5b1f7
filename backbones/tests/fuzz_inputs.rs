//! A seeded mutation loop over the files the commands read: real checkpoints (their header
//! JSON, `__metadata__` values and bytes), a run's `state.safetensors`, and TOML recipes are
//! mutated or truncated, and `backbone predict`, `export`, `eval` and `train` run on them.
//! Whatever the mutation, a command must end with status 0, 1 or 2, never panic nor die of a
//! signal, and stay under a memory bound.
//!
//! `TRICKS_FUZZ_CASES=N` runs N checkpoint cases (and proportionally more of the slow kinds);
//! `TRICKS_FUZZ_SEED=S` starts from seed S. A failure names its case's seed: replay it alone
//! with `TRICKS_FUZZ_SEED=S TRICKS_FUZZ_CASES=1 cargo test -p e2e --test fuzz_inputs`.

use e2e::tiny::{self, RunInputs, SafetensorsFile};
use e2e::{measure, Measured};
use std::process::Command;
use std::time::Duration;

/// Peak resident memory any command may reach on these tiny inputs (a ResNet-18 at 32 px).
const PEAK_MIB: f64 = 2048.0;
const TIME_LIMIT: Duration = Duration::from_secs(120);

/// splitmix64: small, seedable, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(datasets::rng::SPLITMIX_GAMMA);
        datasets::rng::splitmix64_finalise(self.0)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// JSON values that lie: zero, negative, huge, non-finite spellings, wrong types.
const HOSTILE_JSON: &[&str] = &[
    "0",
    "-1",
    "7",
    "100000",
    "2000000000",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1e308",
    "-1e308",
    "0.5",
    "\"NaN\"",
    "\"\"",
    "\"resnet99\"",
    "null",
    "true",
    "[]",
    "[0]",
    "[1e308, 0, -1]",
    "{}",
    "{\"kind\": \"bogus\"}",
];

fn hostile_json(rng: &mut Rng) -> serde_json::Value {
    let text = HOSTILE_JSON[rng.below(HOSTILE_JSON.len())];
    serde_json::from_str(text).unwrap()
}

/// Replaces one leaf (or drops one key) somewhere inside `value`.
fn mutate_json(value: &mut serde_json::Value, rng: &mut Rng) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() && rng.below(4) != 0 => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = rng.pick(&keys).clone();
            if rng.below(5) == 0 {
                map.remove(&key);
            } else {
                mutate_json(map.get_mut(&key).unwrap(), rng);
            }
        }
        serde_json::Value::Array(items) if !items.is_empty() && rng.below(4) != 0 => {
            let i = rng.below(items.len());
            match rng.below(4) {
                0 => {
                    items.remove(i);
                }
                1 => items.truncate(i),
                _ => mutate_json(&mut items[i], rng),
            }
        }
        other => *other = hostile_json(rng),
    }
}

/// One mutation of a checkpoint's header or bytes; returns the bytes to write and what was
/// done (for the failure message).
fn mutate_checkpoint(file: &SafetensorsFile, rng: &mut Rng) -> (Vec<u8>, String) {
    let mut file = SafetensorsFile {
        header: file.header.clone(),
        data: file.data.clone(),
    };
    let what = match rng.below(10) {
        // A metadata value: replaced, mutated inside, or dropped.
        0..=4 => {
            let meta = file.metadata();
            let keys: Vec<&String> = meta.keys().collect();
            let key = (*rng.pick(&keys)).clone();
            let mut value: serde_json::Value = serde_json::from_str(&meta[&key])
                .unwrap_or(serde_json::Value::String(meta[&key].clone()));
            match rng.below(6) {
                0 => {
                    file.header["__metadata__"]
                        .as_object_mut()
                        .unwrap()
                        .remove(&key);
                    format!("dropped metadata {key}")
                }
                1 => {
                    let garbage = String::from_utf8_lossy(
                        &(0..rng.below(40))
                            .map(|_| rng.next() as u8)
                            .collect::<Vec<_>>(),
                    )
                    .into_owned();
                    file.set_metadata(&key, &garbage);
                    format!("metadata {key} = {garbage:?}")
                }
                _ => {
                    mutate_json(&mut value, rng);
                    let text = match &value {
                        serde_json::Value::String(s) => s.clone(),
                        v => v.to_string(),
                    };
                    file.set_metadata(&key, &text);
                    format!("metadata {key} = {text}")
                }
            }
        }
        // A tensor entry of the header: dtype, shape or offsets changed, or the entry gone;
        // or a change the format cannot see (same byte size, other shape or type; NaN values)
        // that only the model's own checks can catch.
        5..=7 => {
            let names: Vec<String> = file
                .header
                .keys()
                .filter(|k| *k != "__metadata__")
                .cloned()
                .collect();
            let name = rng.pick(&names).clone();
            let field = *rng.pick(&[
                "dtype",
                "shape",
                "data_offsets",
                "drop",
                "same-size shape",
                "same-size dtype",
                "NaN values",
            ]);
            let entry = &mut file.header[&name];
            match field {
                "dtype" => {
                    let dtype = *rng.pick(&[
                        "F16", "BF16", "F64", "I64", "I32", "I8", "U8", "BOOL", "F8_E4M3", "X",
                    ]);
                    entry["dtype"] = dtype.into();
                }
                "drop" => {
                    file.header.remove(&name);
                }
                "same-size shape" => {
                    let mut shape: Vec<u64> =
                        serde_json::from_value(entry["shape"].clone()).unwrap();
                    let numel: u64 = shape.iter().product();
                    shape = match rng.below(3) {
                        0 => shape.into_iter().rev().collect(),
                        1 => vec![numel],
                        _ => vec![1, numel, 1],
                    };
                    entry["shape"] = serde_json::json!(shape);
                }
                "same-size dtype" => {
                    let dtype = *rng.pick(&["I32", "U32", "F32"]);
                    entry["dtype"] = dtype.into();
                }
                "NaN values" => {
                    let [start, end]: [usize; 2] =
                        serde_json::from_value(entry["data_offsets"].clone()).unwrap();
                    file.data[start..end].fill(0xFF);
                }
                key => mutate_json(&mut entry[key], rng),
            }
            format!(
                "tensor {name}: {field} -> {}",
                file.header
                    .get(&name)
                    .map_or("gone".into(), |e| e.to_string())
            )
        }
        // The bytes: truncated, or flipped in the header, or a lying header length.
        _ => {
            let mut bytes = (file.header_bytes().len() as u64).to_le_bytes().to_vec();
            bytes.extend_from_slice(&file.header_bytes());
            bytes.extend_from_slice(&file.data);
            let header_end = 8 + file.header_bytes().len();
            return match rng.below(3) {
                0 => {
                    let cut = rng.below(bytes.len());
                    bytes.truncate(cut);
                    (bytes, format!("truncated to {cut} bytes"))
                }
                1 => {
                    let mut flipped = Vec::new();
                    for _ in 0..1 + rng.below(4) {
                        let at = 8 + rng.below(header_end - 8);
                        bytes[at] = rng.next() as u8;
                        flipped.push(at);
                    }
                    (bytes, format!("header bytes changed at {flipped:?}"))
                }
                _ => {
                    let n = match rng.below(3) {
                        0 => rng.next(),
                        1 => rng.below(header_end * 2) as u64,
                        _ => (header_end - 8 - 1) as u64,
                    };
                    bytes[..8].copy_from_slice(&n.to_le_bytes());
                    (bytes, format!("header length {n}"))
                }
            };
        }
    };
    let mut bytes = (file.header_bytes().len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&file.header_bytes());
    bytes.extend_from_slice(&file.data);
    (bytes, what)
}

/// TOML values that lie, for any key.
const HOSTILE_TOML: &[&str] = &[
    "0",
    "-1",
    "100000",
    "9223372036854775807",
    "-9223372036854775808",
    "1e308",
    "nan",
    "inf",
    "-inf",
    "0.0",
    "\"\"",
    "\"x\"",
    "true",
    "[]",
    "[0, 0]",
    "[1e308, -1]",
    "{}",
    "{ kind = \"bogus\" }",
    "{ kind = \"step\", epochs = [1e308], factor = 0 }",
];

/// Lines a hostile user adds under some table.
const HOSTILE_LINES: &[&str] = &[
    "eval_resize = 100000",
    "max_train_samples = 0",
    "max_val_samples = 0",
    "ema_decay = 2.0",
    "mix_off_last_epochs = 18446744073709551615",
    "workers = 1000000",
    "prefetch = 1000000",
    "threads = 4294967297",
    "[distill]\nteacher = \"/nonexistent.safetensors\"",
    "[loss]\nmix = { kind = \"cutmix\", alpha = 1e308 }",
    "[[model]]",
    "a.b.c = 1",
];

fn mutate_toml(text: &str, rng: &mut Rng) -> (Vec<u8>, String) {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let what;
    match rng.below(6) {
        0 => {
            let i = rng.below(lines.len());
            what = format!("deleted line {}: {}", i + 1, lines.remove(i));
        }
        1 | 2 => {
            let values: Vec<usize> = (0..lines.len())
                .filter(|&i| lines[i].contains(" = "))
                .collect();
            let i = *rng.pick(&values);
            let key = lines[i].split(" = ").next().unwrap().to_string();
            let value = rng.pick(HOSTILE_TOML);
            lines[i] = format!("{key} = {value}");
            what = format!("line {}: {}", i + 1, lines[i]);
        }
        3 => {
            let i = rng.below(lines.len() + 1);
            let line = rng.pick(HOSTILE_LINES).to_string();
            what = format!("inserted at line {}: {line}", i + 1);
            lines.insert(i, line);
        }
        4 => {
            let mut bytes = lines.join("\n").into_bytes();
            let cut = rng.below(bytes.len());
            bytes.truncate(cut);
            return (bytes, format!("truncated to {cut} bytes"));
        }
        _ => {
            let mut bytes = lines.join("\n").into_bytes();
            let at = rng.below(bytes.len());
            let junk: Vec<u8> = (0..1 + rng.below(6)).map(|_| rng.next() as u8).collect();
            what = format!("bytes {junk:?} inserted at {at}");
            bytes.splice(at..at, junk);
            return (bytes, what);
        }
    }
    (lines.join("\n").into_bytes(), what)
}

/// Asserts a command ended as a command on bad input must.
fn check(m: &Measured, seed: u64, what: &str, command: &str) {
    // Shown with --nocapture: what each case did and how the command ended.
    eprintln!(
        "seed {seed} {command} [{what}] -> {} {:.0} MiB: {}",
        m.ending(),
        m.peak_rss_mib,
        m.stderr.trim_end().lines().last().unwrap_or_default()
    );
    let replay = format!(
        "seed {seed} ({what}) with `{command}`; replay: TRICKS_FUZZ_SEED={seed} TRICKS_FUZZ_CASES=1"
    );
    assert!(
        !m.stderr.contains("panicked"),
        "{replay}: panicked:\n{}",
        m.stderr
    );
    assert!(
        matches!(m.status.code(), Some(0..=2)),
        "{replay}: ended with {}:\n{}",
        m.ending(),
        m.stderr
    );
    assert!(
        m.peak_rss_mib < PEAK_MIB,
        "{replay}: peak memory {:.0} MiB",
        m.peak_rss_mib
    );
    if m.status.code() != Some(0) {
        let last = m.stderr.trim_end().lines().last().unwrap_or_default();
        assert!(
            (last.starts_with("backbone: ") || last.starts_with("error: ")) && !last.ends_with(':'),
            "{replay}: the error is not one sentence:\n{}",
            m.stderr
        );
    }
}

fn backbone(args: &[&str]) -> Measured {
    measure(Command::new(e2e::bin!("backbone")).args(args), TIME_LIMIT)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn mutated_checkpoints_states_and_configs_never_panic_or_balloon() {
    let cases = env_u64("TRICKS_FUZZ_CASES").unwrap_or(12);
    let first_seed = env_u64("TRICKS_FUZZ_SEED").unwrap_or(0x5EED_7121);
    // The slow commands (a model evaluated or trained) get fewer cases.
    let slow_cases = cases.div_ceil(8);

    let inputs = RunInputs::new();
    let dir = inputs.dir.path();
    let good = dir.join("good.safetensors");
    tiny::checkpoint(e2e::bin!("backbone"), &good);
    let checkpoint = SafetensorsFile::read(&good);
    let image = dir.join("photo.png");
    image::RgbImage::from_pixel(48, 40, image::Rgb([90, 120, 200]))
        .save(&image)
        .unwrap();
    let mutant = dir.join("mutant.safetensors");
    let m = mutant.to_str().unwrap();
    let exported = dir.join("exported.safetensors");

    for seed in first_seed..first_seed + cases {
        let mut rng = Rng(seed);
        let (bytes, what) = mutate_checkpoint(&checkpoint, &mut rng);
        std::fs::write(&mutant, bytes).unwrap();
        let args: Vec<&str> = if rng.below(5) == 0 {
            vec!["export", "--to", "timm", m, exported.to_str().unwrap()]
        } else {
            vec![
                "predict",
                "--ckpt",
                m,
                "--image",
                image.to_str().unwrap(),
                "--topk",
                "2",
            ]
        };
        check(&backbone(&args), seed, &what, &args[..2].join(" "));
    }

    for seed in first_seed..first_seed + slow_cases {
        let mut rng = Rng(seed ^ 0xE7A1);
        let (bytes, what) = mutate_checkpoint(&checkpoint, &mut rng);
        std::fs::write(&mutant, bytes).unwrap();
        let args = [
            "eval",
            "--ckpt",
            m,
            "--data",
            &inputs.data,
            "--workers",
            "1",
            "--max-samples",
            "3",
        ];
        check(&backbone(&args), seed, &what, "eval");
    }

    // A run's state, mutated between a stop and its resumption.
    let run = dir.join("run");
    let to_args = |args: &[String]| args.to_vec();
    let first = to_args(&inputs.train_args(&inputs.config, &run, &["--max-iters", "2"]));
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let m0 = backbone(&first);
    assert_eq!(m0.status.code(), Some(0), "{}", m0.stderr);
    let state_path = run.join("state.safetensors");
    let state = SafetensorsFile::read(&state_path);
    let kept = std::fs::read(&state_path).unwrap();
    let metrics = std::fs::read(run.join("metrics.jsonl")).unwrap();
    for seed in first_seed..first_seed + slow_cases {
        let mut rng = Rng(seed ^ 0x57A7E);
        let (bytes, what) = mutate_checkpoint(&state, &mut rng);
        std::fs::write(&state_path, bytes).unwrap();
        let resume = inputs.train_args(&inputs.config, &run, &["--resume", "--max-iters", "3"]);
        let resume: Vec<&str> = resume.iter().map(String::as_str).collect();
        check(&backbone(&resume), seed, &what, "train --resume");
        std::fs::write(&state_path, &kept).unwrap();
        std::fs::write(run.join("metrics.jsonl"), &metrics).unwrap();
    }

    let config = dir.join("mutant.toml");
    for seed in first_seed..first_seed + slow_cases {
        let mut rng = Rng(seed ^ 0x70A1);
        let (bytes, what) = mutate_toml(tiny::CONFIG, &mut rng);
        std::fs::write(&config, bytes).unwrap();
        let out = dir.join(format!("run-{seed}"));
        let args = inputs.train_args(&config, &out, &["--max-iters", "1"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        check(&backbone(&args), seed, &what, "train --max-iters 1");
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn the_mutations_change_what_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    tiny::checkpoint(e2e::bin!("backbone"), &path);
    let file = SafetensorsFile::read(&path);
    let original = std::fs::read(&path).unwrap();
    let mut differ = 0;
    for seed in 0..50 {
        let (bytes, what) = mutate_checkpoint(&file, &mut Rng(seed));
        assert!(!what.is_empty());
        differ += usize::from(bytes != original);
    }
    assert!(
        differ >= 45,
        "only {differ} of 50 mutations changed the file"
    );
}
