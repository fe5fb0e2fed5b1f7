//! Probes of a binary's input/output layer under hostile paths (the `hostile_io` tests of
//! backbones, detection and segmentation): each runs under a time limit and an address-space
//! cap, so a hang or a runaway read fails the test instead of taking the machine.

use crate::{measure_within, Measured};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Every probe must end well within this (a libtorch binary starts in a second or two).
pub const PROBE_TIME: Duration = Duration::from_secs(60);
/// Address space of a probe: libtorch maps a few GB; reading /dev/zero or a 1 GB file into
/// memory twice does not fit.
pub const PROBE_ADDRESS_SPACE: u64 = 6 << 30;
/// Peak resident memory of a probe that must refuse its input before reading it.
pub const PROBE_PEAK_MIB: f64 = 700.0;

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `bin args` as a probe: it must end by itself with exit status 2 (bad input), no
/// panic, within the memory bound; returns its stderr.
pub fn refused(bin: &Path, args: &[&str]) -> String {
    let name = bin.file_name().unwrap().to_string_lossy();
    let m: Measured = measure_within(
        Command::new(bin).args(args),
        PROBE_TIME,
        PROBE_ADDRESS_SPACE,
    );
    assert!(
        !m.timed_out,
        "{name} {args:?} hung (killed after {PROBE_TIME:?})"
    );
    assert_eq!(
        m.status.code(),
        Some(2),
        "{name} {args:?}: {} instead of exit 2:\n{}",
        m.ending(),
        m.stderr
    );
    assert!(
        !m.stderr.contains("panicked"),
        "{name} {args:?}:\n{}",
        m.stderr
    );
    assert!(
        m.peak_rss_mib < PROBE_PEAK_MIB,
        "{name} {args:?} used {:.0} MiB before refusing",
        m.peak_rss_mib
    );
    m.stderr
}

pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(s(path)).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo touches no memory of ours.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// `dir/pipe` (a FIFO) and `dir/zero.safetensors` (a link to /dev/zero), each with the kind
/// a refusal must name.
pub fn special_files(dir: &Path) -> [(PathBuf, &'static str); 2] {
    let fifo = dir.join("pipe");
    mkfifo(&fifo);
    let zero = dir.join("zero.safetensors");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    [
        (fifo, "a FIFO (named pipe), not a regular file"),
        (zero, "a character device, not a regular file"),
    ]
}

/// A 40x32 photo, `dir/photo.png`.
pub fn image(dir: &Path) -> PathBuf {
    let path = dir.join("photo.png");
    image::RgbImage::from_pixel(40, 32, image::Rgb([90, 120, 200]))
        .save(&path)
        .unwrap();
    path
}

/// A 1 GB sparse `dir/huge.toml`: a recipe must be refused by its size before it is read.
pub fn sparse_gigabyte_recipe(dir: &Path) -> PathBuf {
    let recipe = dir.join("huge.toml");
    std::fs::File::create(&recipe)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    recipe
}

/// The message a recipe of [`sparse_gigabyte_recipe`] gets.
pub const SPARSE_RECIPE_REFUSED: &str = "huge.toml: is 1 GiB; a recipe is at most 1 MiB";

/// `--set` values of the keys every fine-tuning binary shares, out of range, and the message
/// each must get: one range in every binary.
pub const SHARED_KEY_CASES: [(&str, &str); 10] = [
    (
        "train.threads=4294967295",
        "train.threads must be between 0 and 1024",
    ),
    (
        "train.threads=2147483648",
        "train.threads must be between 0 and 1024",
    ),
    (
        "train.threads=1500",
        "train.threads must be between 0 and 1024",
    ),
    (
        "data.prefetch=9000000000000000000",
        "data.prefetch must be between 1 and 256",
    ),
    (
        "data.workers=100000",
        "data.workers must be between 0 and 256",
    ),
    (
        "data.batch_size=1000000000",
        "data.batch_size must be between 1 and 4096",
    ),
    (
        "schedule.epochs=1000000000",
        "schedule.epochs must be between 1 and 100000",
    ),
    (
        "schedule.epochs=9223372036854775807",
        "schedule.epochs must be between 1 and 100000",
    ),
    (
        "train.log_every=2000000000",
        "train.log_every must be between 1 and 1000000000",
    ),
    (
        "train.eval_every_epochs=1000000",
        "train.eval_every_epochs must be between 1 and 100000",
    ),
];

/// Synthetic shape scenes in `root/scenes`: the `voc:` and `ade20k:` data specs.
pub fn scenes(root: &Path) -> (String, String) {
    let scenes = root.join("scenes");
    crate::shape_scenes(&scenes, 4, 2, 2, 48);
    (
        format!("voc:{}", scenes.join("VOCdevkit").display()),
        format!("ade20k:{}", scenes.join("ADEChallengeData2016").display()),
    )
}
