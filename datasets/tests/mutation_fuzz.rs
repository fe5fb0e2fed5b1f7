//! A seeded mutation loop over every format the datasets crate reads (JPEG, PNG, VOC XML and
//! split lists, VOC and ADE20K masks, COCO JSON, IDX .gz): each case copies a small valid
//! dataset, mutates or truncates one of its files, and runs the `datasets` binary on it. The
//! binary must never panic, must exit 0 (a harmless mutation), 1 or 2, within a time limit and
//! a memory bound.
//!
//! `TRICKS_FUZZ_CASES=N` runs N cases (default 600); `TRICKS_FUZZ_SEED=S` replays case S
//! alone (a failure names its seed).

mod common;

use common::{copy_tree, datasets_bin, encoded_image, fixtures, run_measured, Outcome};
use datasets::rng::{stream_rng, SampleRng};
use rand::RngExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEFAULT_CASES: u64 = 600;
/// Seeds are FIRST_SEED, FIRST_SEED + 1, ...: a case is fully determined by its seed.
const FIRST_SEED: u64 = 0x5eed_0000;
/// The cases run with a small pixel limit, so that a mutated header declaring a larger image
/// than the original is still decoded (and exercised) while costing little memory.
const PIXEL_LIMIT: &str = "1048576";
const MEMORY_BOUND_MIB: f64 = 150.0;
const TIME_LIMIT: Duration = Duration::from_secs(30);

/// A dataset to attack: it is written under a folder, and names the files a case may mutate
/// and the command that reads them.
struct Target {
    name: &'static str,
    setup: fn(&Path) -> (Vec<PathBuf>, Vec<String>),
}

fn check_args(spec: String) -> Vec<String> {
    vec!["check".into(), spec]
}

fn voc(dir: &Path, files: &[&str]) -> (Vec<PathBuf>, Vec<String>) {
    let root = dir.join("VOCdevkit");
    copy_tree(
        &fixtures().join("voc_good/VOCdevkit/VOC2007"),
        &root.join("VOC2007"),
    );
    let files = files.iter().map(|f| root.join("VOC2007").join(f)).collect();
    (files, check_args(format!("voc:{}", root.display())))
}

fn coco(dir: &Path, png_image: bool) -> (Vec<PathBuf>, Vec<String>) {
    copy_tree(&fixtures().join("coco/images/val"), &dir.join("images"));
    let mut json =
        std::fs::read_to_string(fixtures().join("coco/annotations/instances_val.json")).unwrap();
    let image = if png_image {
        json = json.replace("\"a.jpg\"", "\"a.png\"");
        let path = dir.join("images/a.png");
        std::fs::write(&path, encoded_image(32, 24, image::ImageFormat::Png)).unwrap();
        path
    } else {
        dir.join("images/a.jpg")
    };
    let annotations = dir.join("instances_val.json");
    std::fs::write(&annotations, json).unwrap();
    let spec = format!(
        "coco:{}:{}",
        annotations.display(),
        dir.join("images").display()
    );
    let mutated = if png_image { image } else { annotations };
    (vec![mutated], check_args(spec))
}

const TARGETS: [Target; 9] = [
    Target {
        name: "VOC JPEG image",
        setup: |dir| voc(dir, &["JPEGImages/000001.jpg", "JPEGImages/000002.jpg"]),
    },
    Target {
        name: "VOC XML annotation",
        setup: |dir| voc(dir, &["Annotations/000001.xml", "Annotations/000002.xml"]),
    },
    Target {
        name: "VOC palette mask",
        setup: |dir| voc(dir, &["SegmentationClass/000001.png"]),
    },
    Target {
        name: "VOC split list",
        setup: |dir| {
            voc(
                dir,
                &[
                    "ImageSets/Main/trainval.txt",
                    "ImageSets/Segmentation/trainval.txt",
                ],
            )
        },
    },
    Target {
        name: "ADE20K grayscale mask",
        setup: |dir| {
            let root = dir.join("ADEChallengeData2016");
            copy_tree(&fixtures().join("ade20k_good/ADEChallengeData2016"), &root);
            let masks = [
                "training/ADE_train_00000001.png",
                "validation/ADE_val_00000001.png",
            ];
            let files = masks
                .iter()
                .map(|m| root.join("annotations").join(m))
                .collect();
            (files, check_args(format!("ade20k:{}", root.display())))
        },
    },
    Target {
        name: "ADE20K JPEG image",
        setup: |dir| {
            let root = dir.join("ADEChallengeData2016");
            copy_tree(&fixtures().join("ade20k_good/ADEChallengeData2016"), &root);
            let file = root.join("images/training/ADE_train_00000001.jpg");
            (vec![file], check_args(format!("ade20k:{}", root.display())))
        },
    },
    Target {
        name: "COCO JSON",
        setup: |dir| coco(dir, false),
    },
    Target {
        name: "COCO PNG image",
        setup: |dir| coco(dir, true),
    },
    Target {
        name: "Fashion-MNIST IDX .gz",
        setup: |dir| {
            let data = dir.join("fashion-mnist");
            common::write_fashion_mnist(&data, 12);
            let files = [
                "train-images-idx3-ubyte.gz",
                "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz",
            ]
            .iter()
            .map(|f| data.join(f))
            .collect();
            let args = [
                "synth",
                "--source",
                "fashion-mnist",
                "--fashion-mnist",
                &data.display().to_string(),
                "--out",
                &dir.join("out").display().to_string(),
                "--train",
                "1",
                "--val",
                "1",
                "--test",
                "0",
                "--size",
                "32",
            ]
            .map(String::from)
            .to_vec();
            (files, args)
        },
    },
];

/// Numbers that break parsers and size checks when written over a header field or a number.
const INTERESTING_U32: [u32; 9] = [
    0,
    1,
    0x7F,
    0xFF,
    0x7FFF,
    0xFFFF,
    65000,
    0x7FFF_FFFF,
    u32::MAX,
];
const INTERESTING_TEXT: [&str; 11] = [
    "0",
    "-1",
    "1e308",
    "-1e308",
    "99999999999999999999",
    "4294967296",
    "65000",
    "1e9",
    "0.5",
    "NaN",
    "\"x\"",
];

/// Applies one to three random mutations; returns what was done (for the failure message).
fn mutate(bytes: &mut Vec<u8>, rng: &mut SampleRng) -> String {
    let mut done = Vec::new();
    for _ in 0..rng.random_range(1..=3usize) {
        if bytes.is_empty() {
            bytes.push(rng.random());
        }
        let len = bytes.len();
        let at = rng.random_range(0..len);
        match rng.random_range(0..7u32) {
            0 => {
                bytes[at] ^= 1 << rng.random_range(0..8u32);
                done.push(format!("flip a bit of byte {at}"));
            }
            1 => {
                let n = rng.random_range(1..=8usize).min(len - at);
                for b in &mut bytes[at..at + n] {
                    *b = rng.random();
                }
                done.push(format!("randomise bytes {at}..{}", at + n));
            }
            2 => {
                bytes.truncate(at);
                done.push(format!("truncate to {at} bytes"));
            }
            3 => {
                let n = rng.random_range(1..=64usize).min(len - at);
                bytes.drain(at..at + n);
                done.push(format!("delete bytes {at}..{}", at + n));
            }
            4 => {
                let n = rng.random_range(1..=64usize).min(len - at);
                let copy = bytes[at..at + n].to_vec();
                let to = rng.random_range(0..=len);
                bytes.splice(to..to, copy);
                done.push(format!("copy bytes {at}..{} to {to}", at + n));
            }
            5 => {
                let value = INTERESTING_U32[rng.random_range(0..INTERESTING_U32.len())];
                let wide = rng.random::<bool>();
                let field: Vec<u8> = if wide {
                    value.to_be_bytes().to_vec()
                } else {
                    (value as u16).to_be_bytes().to_vec()
                };
                let n = field.len().min(len - at);
                bytes[at..at + n].copy_from_slice(&field[..n]);
                done.push(format!("write {value:#x} ({} bytes) at {at}", n));
            }
            _ => done.push(replace_a_number(bytes, rng)),
        }
    }
    done.join(", ")
}

/// Mutates a file's bytes. Half the time a mutation gets past the checksums that would
/// otherwise catch nearly every change (PNG chunk CRCs, the gzip trailer), so that the
/// decoders behind them are reached: a gzip file's contents are mutated and compressed again,
/// a PNG's chunk CRCs are recomputed after the mutation.
fn mutate_file(original: &[u8], rng: &mut SampleRng) -> (Vec<u8>, String) {
    let gzip = original.starts_with(&[0x1f, 0x8b]);
    let png = original.starts_with(b"\x89PNG");
    if gzip && rng.random::<bool>() {
        let mut inner = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(original), &mut inner)
            .unwrap();
        let mutation = mutate(&mut inner, rng);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &inner).unwrap();
        return (
            gz.finish().unwrap(),
            format!("inside the gzip data: {mutation}"),
        );
    }
    let mut bytes = original.to_vec();
    let mut mutation = mutate(&mut bytes, rng);
    if png && rng.random::<bool>() {
        fix_png_crcs(&mut bytes);
        mutation.push_str(", then fix the chunk CRCs");
    }
    (bytes, mutation)
}

/// Rewrites the CRC of every whole chunk after the PNG signature.
fn fix_png_crcs(bytes: &mut [u8]) {
    let mut pos = 8;
    while pos + 8 <= bytes.len() {
        let length = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let Some(end) = (pos + 8)
            .checked_add(length)
            .filter(|&e| e + 4 <= bytes.len())
        else {
            return;
        };
        let mut crc = flate2::Crc::new();
        crc.update(&bytes[pos + 4..end]);
        bytes[end..end + 4].copy_from_slice(&crc.sum().to_be_bytes());
        pos = end + 4;
    }
}

/// Replaces one run of ASCII digits with an interesting number (text formats).
fn replace_a_number(bytes: &mut Vec<u8>, rng: &mut SampleRng) -> String {
    let runs: Vec<(usize, usize)> = {
        let mut runs = Vec::new();
        let mut start = None;
        for (i, b) in bytes.iter().chain(std::iter::once(&b' ')).enumerate() {
            match (b.is_ascii_digit(), start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    runs.push((s, i));
                    start = None;
                }
                _ => {}
            }
        }
        runs
    };
    if runs.is_empty() {
        return "no number to replace".into();
    }
    let (start, end) = runs[rng.random_range(0..runs.len())];
    let text = INTERESTING_TEXT[rng.random_range(0..INTERESTING_TEXT.len())];
    bytes.splice(start..end, text.bytes());
    format!("replace the number at {start} with {text}")
}

struct Case {
    seed: u64,
    target: &'static str,
    file: PathBuf,
    mutation: String,
    outcome: Outcome,
}

fn run_case(seed: u64) -> Case {
    let mut rng = stream_rng(seed, 0);
    let target = &TARGETS[(seed % TARGETS.len() as u64) as usize];
    let dir = tempfile::tempdir().unwrap();
    let (files, args) = (target.setup)(dir.path());
    let file = files[rng.random_range(0..files.len())].clone();
    let original = std::fs::read(&file).unwrap();
    let (bytes, mutation) = mutate_file(&original, &mut rng);
    std::fs::write(&file, &bytes).unwrap();
    let outcome = run_measured(
        datasets_bin()
            .env("TRICKS_MAX_IMAGE_PIXELS", PIXEL_LIMIT)
            .args(&args),
        TIME_LIMIT,
    );
    let relative = file.strip_prefix(dir.path()).unwrap().to_path_buf();
    Case {
        seed,
        target: target.name,
        file: relative,
        mutation,
        outcome,
    }
}

/// Why a case failed, or `None` when the binary behaved.
fn failure(case: &Case) -> Option<String> {
    let o = &case.outcome;
    let why = if o.timed_out {
        format!("still running after {TIME_LIMIT:?}")
    } else if o.panicked() {
        format!("panicked (exit {:?}, signal {:?})", o.code, o.signal)
    } else if !matches!(o.code, Some(0..=2)) {
        format!("exit status {:?}", o.code)
    } else if o.peak_rss_mib > MEMORY_BOUND_MIB {
        format!(
            "peak memory {:.0} MiB, more than {MEMORY_BOUND_MIB} MiB",
            o.peak_rss_mib
        )
    } else {
        return None;
    };
    Some(format!(
        "seed {} ({}, {}: {}): {why}\n  replay: TRICKS_FUZZ_SEED={} cargo test -p datasets --test mutation_fuzz\n  stderr: {}",
        case.seed,
        case.target,
        case.file.display(),
        case.mutation,
        case.seed,
        o.stderr.trim().lines().take(6).collect::<Vec<_>>().join("\n          ")
    ))
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    })
}

#[test]
fn mutated_files_never_panic_hang_or_balloon() {
    let seeds: Vec<u64> = match env_number("TRICKS_FUZZ_SEED") {
        Some(seed) => vec![seed],
        None => {
            let cases = env_number("TRICKS_FUZZ_CASES").unwrap_or(DEFAULT_CASES);
            (FIRST_SEED..FIRST_SEED + cases).collect()
        }
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let chunks: Vec<Vec<u64>> = (0..threads)
        .map(|t| seeds.iter().copied().skip(t).step_by(threads).collect())
        .collect();
    let cases: Vec<Case> = std::thread::scope(|scope| {
        let workers: Vec<_> = chunks
            .into_iter()
            .map(|chunk| scope.spawn(move || chunk.into_iter().map(run_case).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(cases.len(), seeds.len());
    for target in &TARGETS {
        let of_target: Vec<&Case> = cases.iter().filter(|c| c.target == target.name).collect();
        let exits = |code| {
            of_target
                .iter()
                .filter(|c| c.outcome.code == Some(code))
                .count()
        };
        let peak = of_target
            .iter()
            .map(|c| c.outcome.peak_rss_mib)
            .fold(0.0, f64::max);
        eprintln!(
            "{:>22}: {} cases, exit 0/1/2: {}/{}/{}, peak {peak:.0} MiB",
            target.name,
            of_target.len(),
            exits(0),
            exits(1),
            exits(2)
        );
    }
    let failures: Vec<String> = cases.iter().filter_map(failure).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // The loop must exercise the readers' error paths, not only harmless bytes.
    if seeds.len() >= 50 {
        let refused = cases.iter().filter(|c| c.outcome.code == Some(2)).count();
        assert!(
            refused * 4 >= cases.len(),
            "only {refused} cases were refused"
        );
    }
}
