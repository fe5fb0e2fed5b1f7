//! The bounds every number read from a checkpoint, a config or a flag is checked against
//! before anything is allocated from it. Each is far beyond what a real model or run uses
//! and far below what would exhaust a machine, so a lying file is refused with its range
//! instead of aborting in an allocation or a libtorch check.

use std::ops::RangeInclusive;

/// Classes of a classifier head (ImageNet-21k has 21,843). A ResNet-50 head of this many
/// classes holds 800 MB of weights.
pub const CLASSES: RangeInclusive<i64> = 1..=100_000;

/// The square side a model is fed (training input size, evaluation crop). The smallest is
/// what every variant's stem and strides still reduce without an empty feature map.
pub const INPUT_SIDE: RangeInclusive<usize> = 8..=1024;

/// The shorter side an evaluation transform resizes to before cropping.
pub const RESIZE_SIDE: RangeInclusive<usize> = 8..=2048;

/// Images in one batch (training, evaluation, benchmarks).
pub const BATCH: RangeInclusive<usize> = 1..=4096;

/// Loader threads, and batches prepared ahead.
pub const WORKERS: RangeInclusive<usize> = 0..=256;
pub const PREFETCH: RangeInclusive<usize> = 1..=256;

/// Timed or trained iterations asked for on the command line.
pub const ITERS: RangeInclusive<u64> = 1..=1_000_000_000;

/// Epochs a recipe may ask for (`schedule.epochs`): far beyond any recipe, small enough that
/// iteration counts cannot overflow.
pub const EPOCHS: RangeInclusive<u64> = 1..=100_000;

/// libtorch's intra-op threads (`train.threads`; 0: libtorch's default). libtorch takes an
/// `i32`, and far more threads than cores only makes a run crawl.
pub const THREADS: RangeInclusive<usize> = 0..=1024;

/// The same for a `--threads` flag, which has no "default" value of its own.
pub const THREADS_FLAG: RangeInclusive<i64> = 1..=1024;

/// Optimiser steps between log lines (`train.log_every`).
pub const LOG_EVERY: RangeInclusive<u64> = 1..=1_000_000_000;

/// Optimiser steps between saved states (`train.checkpoint_every_iters`; 0: epoch ends only).
pub const CHECKPOINT_EVERY_ITERS: RangeInclusive<u64> = 0..=1_000_000_000;

/// Epochs between evaluations (`train.eval_every_epochs`).
pub const EVAL_EVERY_EPOCHS: RangeInclusive<u64> = 1..=100_000;

/// `data.workers` and `data.prefetch`, the loader keys every recipe has (prefetch 0 means 1).
/// One function for classification, detection and segmentation alike, so a key has the same
/// range whichever binary reads it.
pub fn check_loader(workers: usize, prefetch: usize) -> Result<(), String> {
    check("data.workers", workers, &WORKERS)?;
    check("data.prefetch", prefetch.max(1), &PREFETCH)?;
    Ok(())
}

/// `--threads N` as clap's value parser, within [`THREADS_FLAG`].
pub fn flag_threads() -> clap::builder::RangedI64ValueParser<i32> {
    clap::builder::RangedI64ValueParser::<i32>::new()
        .range(*THREADS_FLAG.start()..=*THREADS_FLAG.end())
}

/// Longest architecture name or class name kept from a checkpoint.
pub const NAME_LEN: usize = 256;

/// "`name` must be in LO..=HI, not VALUE": the sentence every refused number gets.
pub fn check<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    range: &RangeInclusive<T>,
) -> Result<T, String> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{name} must be between {} and {}, not {value}",
            range.start(),
            range.end()
        ))
    }
}

/// `range` as clap's value parser for a flag: the error names the range, and the flag's
/// help text should state it too.
pub fn flag_range_u64(range: RangeInclusive<u64>) -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(*range.start()..=*range.end())
}

/// The same for a `usize` range.
pub fn flag_range_usize(
    range: RangeInclusive<usize>,
) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new()
        .range(*range.start() as u64..=*range.end() as u64)
}

/// The same for an `i64` range.
pub fn flag_range_i64(range: RangeInclusive<i64>) -> clap::builder::RangedI64ValueParser<i64> {
    clap::value_parser!(i64).range(*range.start()..=*range.end())
}

/// Loader samples asked for (`--max-samples`): an upper bound, so any positive count works.
pub const SAMPLES: RangeInclusive<u64> = 1..=1_000_000_000;

/// A flag's help text followed by its valid range, e.g. "Images per batch [1 to 4096]".
pub fn help<T: std::fmt::Display>(text: &str, range: &RangeInclusive<T>) -> String {
    format!("{text} [{} to {}]", range.start(), range.end())
}

/// The environment variable that sets [`max_inference_bytes`], in MiB.
pub const MAX_INFERENCE_MIB_VAR: &str = "TRICKS_MAX_INFERENCE_MIB";

/// The default budget of one image's inference (`detect` and `segment`): 4 GiB, above any
/// VOC or ADE20K image at a real recipe's size, below what exhausts a workstation.
pub const DEFAULT_MAX_INFERENCE_MIB: u64 = 4096;

/// `TRICKS_MAX_INFERENCE_MIB` when set (a positive whole number of MiB), else the default; in
/// bytes. Read once per process.
pub fn max_inference_bytes() -> Result<u64, String> {
    static LIMIT: std::sync::OnceLock<Result<u64, String>> = std::sync::OnceLock::new();
    LIMIT
        .get_or_init(|| parse_mib(std::env::var(MAX_INFERENCE_MIB_VAR).ok().as_deref()))
        .clone()
}

fn parse_mib(value: Option<&str>) -> Result<u64, String> {
    let Some(text) = value else {
        return Ok(DEFAULT_MAX_INFERENCE_MIB << 20);
    };
    match text.trim().parse::<u64>() {
        Ok(mib) if (1..=1 << 24).contains(&mib) => Ok(mib << 20),
        _ => Err(format!(
            "{MAX_INFERENCE_MIB_VAR} must be a whole number of MiB between 1 and {}, not {text:?}",
            1u64 << 24
        )),
    }
}

/// "1.5 GiB": a byte count for a sentence.
pub fn gb(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inference_budget_variable_is_mib_and_checked() {
        assert_eq!(parse_mib(None), Ok(4096 << 20));
        assert_eq!(parse_mib(Some("512")), Ok(512 << 20));
        let err = parse_mib(Some("lots")).unwrap_err();
        assert!(
            err.contains(MAX_INFERENCE_MIB_VAR) && err.contains("\"lots\""),
            "{err}"
        );
        assert!(parse_mib(Some("0")).is_err());
    }
}
