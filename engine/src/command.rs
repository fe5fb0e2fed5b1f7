//! The one command-line layer of the training and bench commands (`backbone train|bench`,
//! `detect finetune|bench`, `segment finetune|bench`): the flags they share, the request a
//! training command makes of its task's library, the checks every run makes before it builds
//! anything, the `--nproc` launch, and the summary printed at the end. Failures are reported
//! by [`crate::cli::report`], the one exit-code policy.

use crate::amp::{Autocast, Precision};
use crate::channels_last::tensor_to_channels_last;
use crate::cli::BadInput;
use crate::config::{EngineConfig, OptimSection, RunSection, ScheduleSection};
use crate::config_file;
use crate::data_parallel;
use crate::device::parse_device;
use crate::fit::{set_up, RunOptions, Summary, TrainInputError, Trainer};
use crate::limits;
use crate::outputs::{self, Named};
use crate::run_dir::RunDir;
use crate::task::Learner;
use crate::timing::timed;
use anyhow::bail;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// The flags of every training command. A command sets its own `--out` default (and may
/// reword `--config` and `--data`) with `#[command(mut_arg(..))]`.
#[derive(clap::Args, Clone, Debug)]
#[group(skip)]
pub struct RunArgs {
    /// A TOML recipe (configs/ holds the paper's and the Fashion-scale ones).
    #[arg(long)]
    pub config: PathBuf,
    /// Override a recipe value: --set optim.lr=0.2 --set data.batch_size=2 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// The dataset, KIND:PATH; overrides data.spec.
    #[arg(long)]
    pub data: Option<String>,
    /// The run folder (config.toml, metrics.jsonl, last/best/state.safetensors, curves.png,
    /// and tensorboard/ with --tensorboard).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its state.safetensors (same recipe required).
    #[arg(long)]
    pub resume: bool,
    /// Also write TensorBoard event files (every metrics.jsonl value) to --out's tensorboard/;
    /// sets train.tensorboard.
    #[arg(long)]
    pub tensorboard: bool,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(
        long,
        value_parser = limits::flag_range_u64(limits::ITERS),
        help = limits::help(
            "Stop after this many optimiser steps in all, saving the state (continue with --resume)",
            &limits::ITERS
        )
    )]
    pub max_iters: Option<u64>,
    /// Print the outcome as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Train data-parallel on N local processes (ranks) without torchrun: Gloo on CPU, one
    /// GPU per rank (cuda:RANK) with --device cuda. data.batch_size is per rank.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub nproc: Option<u16>,
}

impl RunArgs {
    /// The request these flags make (the device parsed, `--data` folded into the overrides).
    pub fn request(&self) -> anyhow::Result<RunRequest> {
        let device = parse_device(&self.device).map_err(BadInput)?;
        let mut sets = self.sets.clone();
        if let Some(data) = &self.data {
            sets.push(format!("data.spec={}", config_file::toml_string(data)));
        }
        if self.tensorboard {
            sets.push("train.tensorboard=true".into());
        }
        Ok(RunRequest {
            config: self.config.clone(),
            sets,
            out: self.out.clone(),
            resume: self.resume,
            device,
            max_iters: self.max_iters,
        })
    }
}

/// What a training command asks of its task's library.
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub config: PathBuf,
    /// `--set` overrides, then `data.spec` from `--data` and `train.tensorboard` from
    /// `--tensorboard`.
    pub sets: Vec<String>,
    pub out: PathBuf,
    pub resume: bool,
    pub device: Device,
    /// Stop (with the state saved) after this many optimiser steps in all.
    pub max_iters: Option<u64>,
}

/// The sections every task's recipe has, which the engine reads.
pub struct RecipeSections<'a> {
    pub optim: &'a OptimSection,
    pub schedule: &'a ScheduleSection,
    pub train: &'a RunSection,
    /// `data.batch_size`.
    pub batch_size: usize,
    /// `data.spec`.
    pub dataset: Option<&'a str>,
}

/// What the engine needs to know of a task's recipe to start and run it.
pub trait Recipe: Serialize + DeserializeOwned {
    /// The recipe's own checks (ranges, combinations), as a sentence.
    fn check(&self) -> Result<(), String>;
    /// The sections the engine reads.
    fn sections(&self) -> RecipeSections<'_>;

    /// `data.spec`.
    fn dataset(&self) -> Option<&str> {
        self.sections().dataset
    }

    /// What the engine takes from the recipe: its `[optim]`, `[schedule]` and `[train]`
    /// sections and `data.batch_size`.
    fn engine(&self) -> EngineConfig {
        let s = self.sections();
        EngineConfig::from_sections(s.optim, s.schedule, s.train, s.batch_size)
    }
}

impl RunRequest {
    /// What the loop takes from the command line.
    pub fn options(&self) -> RunOptions {
        RunOptions {
            out: self.out.clone(),
            resume: self.resume,
            max_iters: self.max_iters,
        }
    }

    /// The recipe, read with its overrides and checked, and its dataset spec (`kinds` names
    /// the kinds the command takes, for the error when none is given). The precision it runs
    /// in is settled later, by [`set_up`].
    pub fn recipe<R: Recipe>(&self, kinds: &str) -> anyhow::Result<(R, String)> {
        let recipe: R = config_file::load(&self.config, &self.sets)
            .map_err(|e| TrainInputError(e.to_string()))?;
        recipe
            .check()
            .map_err(|e| TrainInputError(format!("{}: {e}", self.config.display())))?;
        let spec = recipe.dataset().map(str::to_string).ok_or_else(|| {
            TrainInputError(format!(
                "{}: no dataset: set data.spec or pass --data {kinds}",
                self.config.display()
            ))
        })?;
        Ok((recipe, spec))
    }

    /// Joins the other ranks (under torchrun or `--nproc`; alone it does nothing) and checks
    /// that the run folder is usable, before anything is built or created (see
    /// `RunDir::check_can_open`). Returns this rank's device.
    pub fn join(&self) -> anyhow::Result<Device> {
        let device = data_parallel::join_from_env(self.device)?;
        RunDir::check_can_open(&self.out, self.resume)?;
        Ok(device)
    }
}

/// How a command names its outcome: the JSON key of the best value, and the metrics of the
/// final line as (metric, label), the first being the one that picks `best`.
pub struct OutcomeNames {
    pub best_key: &'static str,
    pub shown: &'static [(&'static str, &'static str)],
}

/// A training command: with `--nproc N`, `check` runs once in the launcher (so a bad recipe,
/// dataset or checkpoint is one message, not N) and N local ranks are started; otherwise
/// `train` runs and rank 0 prints the outcome.
pub fn train_command<O>(
    args: &RunArgs,
    options: O,
    check: impl FnOnce(&O, usize) -> anyhow::Result<()>,
    train: impl FnOnce(O) -> anyhow::Result<Summary>,
    names: &OutcomeNames,
) -> anyhow::Result<()> {
    if let Some(nproc) = args.nproc {
        let device = parse_device(&args.device).map_err(BadInput)?;
        data_parallel::check_nproc(nproc as usize, device)?;
        check(&options, nproc as usize)?;
        return data_parallel::launch_local_ranks(nproc as usize);
    }
    let summary = train(options)?;
    if data_parallel::is_main_rank() {
        print_outcome(&summary, &args.out, args.json, names);
    }
    Ok(())
}

/// One JSON object with `--json`, else one line on stderr.
fn print_outcome(summary: &Summary, out: &Path, json: bool, names: &OutcomeNames) {
    if json {
        let mut report = serde_json::json!({
            "out": out.display().to_string(),
            "epochs": summary.epochs_done,
            "iters": summary.iters,
            "stopped_early": summary.stopped_early,
            "last": summary.last_metrics,
            "skipped_images": summary.skipped_images,
        });
        report[names.best_key] = summary.best.into();
        println!("{report}");
        return;
    }
    let Some(metrics) = &summary.last_metrics else {
        eprintln!(
            "stopped after {} iterations; continue with --resume",
            summary.iters
        );
        return;
    };
    let shown: Vec<String> = names
        .shown
        .iter()
        .map(|(key, label)| {
            let value = metrics.get(*key).copied().unwrap_or(f64::NAN);
            format!("{label} {value:.4}")
        })
        .collect();
    let (best_metric, best_label) = names.shown[0];
    let best = summary
        .best
        .or_else(|| metrics.get(best_metric).copied())
        .unwrap_or(f64::NAN);
    eprintln!(
        "done: {} epochs, {} iterations; last val {}, best {best_label} {best:.4}; checkpoints in {}",
        summary.epochs_done,
        summary.iters,
        shown.join(" "),
        out.display()
    );
}

/// The flags of every predict command: a checkpoint, one image, the device and `--json`. A
/// command names its checkpoint's kind and its JSON's fields with `#[command(mut_arg(..))]`.
#[derive(clap::Args, Clone, Debug)]
#[group(skip)]
pub struct PredictArgs {
    /// A checkpoint of the command's task.
    #[arg(long)]
    pub ckpt: PathBuf,
    /// A JPEG or PNG image.
    #[arg(long)]
    pub image: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl PredictArgs {
    pub fn device(&self) -> Result<Device, BadInput> {
        parse_device(&self.device).map_err(BadInput)
    }

    /// Refuses files to write that would overwrite the checkpoint, the image or each other.
    pub fn check_outputs(&self, written: &[Named]) -> Result<(), BadInput> {
        if written.is_empty() {
            return Ok(());
        }
        outputs::check(
            &[
                outputs::named(&self.ckpt, "the checkpoint"),
                outputs::named(&self.image, "the image"),
            ],
            written,
            true,
        )
        .map_err(BadInput)
    }
}

/// The flags of a predict command that takes one image or many (`detect predict`, `segment
/// predict`): a checkpoint, `--image IMG` or `--images DIR|FILE...`, the device and `--json`.
#[derive(clap::Args, Clone, Debug)]
#[group(skip)]
pub struct ImagesPredictArgs {
    /// A checkpoint of the command's task.
    #[arg(long)]
    pub ckpt: PathBuf,
    /// One JPEG or PNG image.
    #[arg(long, required_unless_present = "images", conflicts_with = "images")]
    pub image: Option<PathBuf>,
    /// Many images: folders (their JPEG and PNG files, by name, sub-folders left out) and
    /// image files, predicted in batches with a progress bar; --out names the folder that
    /// receives one output per image.
    #[arg(long, num_args = 1.., value_name = "DIR|FILE")]
    pub images: Vec<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print one JSON object (with --images, one line per image).
    #[arg(long)]
    pub json: bool,
    /// Draw the pictures (detections, overlays) K times the image's size, each pixel a KxK
    /// square, so that a small image's labels stay readable; the model, the boxes, the JSON
    /// and the masks keep the image's own pixels.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub enlarge: u32,
}

/// The largest picture `--enlarge` draws, in pixels (300 MB of RGB).
pub const MAX_ENLARGED_PIXELS: u64 = 100_000_000;

/// `image` at `factor` times its size, each pixel a square (nothing is invented between
/// pixels: the picture shows what the model saw); the image itself at factor 1. A picture
/// over [`MAX_ENLARGED_PIXELS`] is refused with a sentence saying so.
pub fn enlarged(
    image: &image::RgbImage,
    factor: u32,
) -> Result<std::borrow::Cow<'_, image::RgbImage>, String> {
    if factor <= 1 {
        return Ok(std::borrow::Cow::Borrowed(image));
    }
    let (w, h) = (
        image.width() as u64 * factor as u64,
        image.height() as u64 * factor as u64,
    );
    if w * h > MAX_ENLARGED_PIXELS {
        return Err(format!(
            "enlarged {factor} times the picture would be {w}x{h} pixels, more than \
             {MAX_ENLARGED_PIXELS}; use a smaller --enlarge"
        ));
    }
    Ok(std::borrow::Cow::Owned(image::imageops::resize(
        image,
        w as u32,
        h as u32,
        image::imageops::FilterType::Nearest,
    )))
}

impl ImagesPredictArgs {
    pub fn device(&self) -> Result<Device, BadInput> {
        parse_device(&self.device).map_err(BadInput)
    }

    /// The images of `--images`, in order: each folder's image files by name, then each
    /// file named; an image named twice, or two whose outputs would share a name (`a.jpg`,
    /// `a.png`), is refused.
    pub fn image_list(&self) -> Result<Vec<PathBuf>, BadInput> {
        let mut list = Vec::new();
        for path in &self.images {
            match std::fs::metadata(path) {
                Ok(m) if m.is_dir() => {
                    let found = datasets::image_folder::image_files_in(path)
                        .map_err(|e| BadInput(e.to_string()))?;
                    if found.is_empty() {
                        return Err(BadInput(format!(
                            "{}: no JPEG or PNG file in this folder",
                            path.display()
                        )));
                    }
                    list.extend(found);
                }
                Ok(_) => list.push(path.clone()),
                Err(e) => return Err(BadInput(format!("{}: {e}", path.display()))),
            }
        }
        let mut stems = std::collections::HashMap::new();
        for path in &list {
            let stem = path.file_stem().unwrap_or_default().to_os_string();
            if let Some(first) = stems.insert(stem, path) {
                return Err(BadInput(format!(
                    "{} and {} would write outputs of the same name: pass one of them",
                    first.display(),
                    path.display()
                )));
            }
        }
        Ok(list)
    }

    /// With `--image`: refuses files to write that would overwrite the checkpoint, the image
    /// or each other.
    pub fn check_image_outputs(&self, image: &Path, written: &[Named]) -> Result<(), BadInput> {
        let inputs = [
            outputs::named(&self.ckpt, "the checkpoint"),
            outputs::named(image, "the image"),
        ];
        match written.is_empty() {
            true => Ok(()),
            false => outputs::check(&inputs, written, true).map_err(BadInput),
        }
    }

    /// Refuses outputs that would overwrite the checkpoint or an input image (compared by
    /// device and inode, so another spelling of the same file is caught; one look per file,
    /// as a folder may hold thousands). Outputs are named by the images' distinct stems, so
    /// they cannot be each other.
    pub fn check_outputs(&self, images: &[PathBuf], written: &[PathBuf]) -> Result<(), BadInput> {
        use std::os::unix::fs::MetadataExt;
        let identity = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
        let mut inputs = std::collections::HashMap::new();
        for path in images.iter().chain([&self.ckpt]) {
            if let Some(id) = identity(path) {
                inputs.insert(id, path);
            }
        }
        for path in written {
            if let Some(input) = identity(path).and_then(|id| inputs.get(&id)) {
                return Err(BadInput(format!(
                    "{} would overwrite {}: write the outputs to another folder",
                    path.display(),
                    input.display()
                )));
            }
        }
        Ok(())
    }
}

const BENCH_WARMUP: RangeInclusive<usize> = 0..=100_000;
const BENCH_ITERS: RangeInclusive<usize> = 1..=100_000;

/// The flags of every bench command. A command sets its own `--warmup`/`--iters` defaults
/// with `#[command(mut_arg(..))]` where they differ.
#[derive(clap::Args, Clone, Debug)]
#[group(skip)]
pub struct BenchArgs {
    /// Mixed precision: `--amp bf16` (bfloat16 autocast, CPU or CUDA) or `--amp fp16`
    /// (float16 autocast with dynamic loss scaling, CUDA); `--amp` alone is fp16. The PyTorch
    /// peers in bench/ take the same flag.
    #[arg(long, value_name = "TYPE", num_args = 0..=1, default_missing_value = "fp16",
          value_parser = parse_precision)]
    pub amp: Option<Precision>,
    /// Weights and inputs in channels-last (NHWC) memory format, as the recipes'
    /// `train.channels_last` (the PyTorch peers in bench/ take the same flag).
    #[arg(long)]
    pub channels_last: bool,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(
        long,
        value_parser = limits::flag_threads(),
        help = "CPU threads for libtorch (default: libtorch's choice) [1 to 1024]"
    )]
    pub threads: Option<i32>,
    #[arg(
        long,
        default_value_t = 2,
        value_parser = limits::flag_range_usize(BENCH_WARMUP),
        help = limits::help("Untimed iterations first", &BENCH_WARMUP)
    )]
    pub warmup: usize,
    #[arg(
        long,
        default_value_t = 5,
        value_parser = limits::flag_range_usize(BENCH_ITERS),
        help = limits::help("Timed iterations", &BENCH_ITERS)
    )]
    pub iters: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `--amp`'s value: fp16, bf16 (or fp32, as if the flag were not given).
fn parse_precision(value: &str) -> Result<Precision, String> {
    match value {
        "fp16" | "bf16" | "fp32" => value.parse(),
        _ => Err("expected fp16 or bf16".into()),
    }
}

/// What every bench's steps run with.
#[derive(Clone, Debug)]
pub struct BenchRun {
    pub amp: Precision,
    pub channels_last: bool,
    pub device: Device,
    pub warmup: usize,
    pub iters: usize,
}

/// What every bench reports beside its own figures (flattened into its JSON object).
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// `false` (fp32), "fp16" or "bf16".
    pub amp: Precision,
    pub channels_last: bool,
    pub device: String,
    pub threads: i32,
}

impl BenchRun {
    /// Seconds for `iters` optimiser steps of `learner` (after `warmup` untimed ones), each
    /// the one step training runs ([`Trainer::step`]), under the benches' recipe
    /// ([`EngineConfig::bench`]: SGD at `lr` over batches of `batch`, `freeze` left out).
    pub fn time_training<L: Learner<Input = ()>>(
        &self,
        learner: &mut L,
        lr: f64,
        batch: usize,
        freeze: Vec<String>,
    ) -> anyhow::Result<f64> {
        let config = EngineConfig::bench(lr, batch, self.amp, self.channels_last, freeze);
        let mut trainer = Trainer::new(learner, &config, 1)?;
        timed(self.warmup, self.iters, || {
            let outcome = trainer.step(&mut |_| Ok(()))?;
            Ok(outcome.micro_batches[0].total.shallow_clone())
        })
    }

    /// The autocast region the bench's forward passes run in.
    pub fn autocast(&self) -> Autocast {
        Autocast::new(self.amp, self.device)
    }

    /// A batch of standard-normal images of `shape` (NCHW) on the device, laid out
    /// channels-last when the bench runs so.
    pub fn noise_images(&self, shape: [i64; 4]) -> Tensor {
        let images = Tensor::randn(shape, (tch::Kind::Float, self.device));
        if self.channels_last {
            tensor_to_channels_last(&images)
        } else {
            images
        }
    }

    /// Seconds for `iters` calls of `run` after `warmup` untimed ones (see [`timed`]).
    pub fn time(&self, run: impl FnMut() -> anyhow::Result<Tensor>) -> anyhow::Result<f64> {
        timed(self.warmup, self.iters, run)
    }

    pub fn report(&self) -> BenchReport {
        BenchReport {
            amp: self.amp,
            channels_last: self.channels_last,
            device: format!("{:?}", self.device).to_lowercase(),
            threads: tch::get_num_threads(),
        }
    }
}

impl BenchArgs {
    /// What the bench runs with, after what a training command sets up before training
    /// (threads, cuDNN autotuning, the malloc thresholds that keep freed activations mapped),
    /// so a bench times the same; fp16 is refused on the CPU (a bench times what it is
    /// asked to, where a training run goes on in bf16).
    pub fn set_up(&self) -> anyhow::Result<BenchRun> {
        let device = parse_device(&self.device).map_err(BadInput)?;
        let amp = self.amp.unwrap_or_default();
        if amp.on(device) != amp {
            bail!(BadInput(format!(
                "--amp {amp}: float16 autocast is CUDA's; on the CPU time --amp bf16"
            )));
        }
        if let Some(note) = amp.slow_cpu_note(device) {
            eprintln!("{note}");
        }
        set_up(
            &mut RunSection {
                threads: self.threads.unwrap_or(0) as usize,
                ..RunSection::default()
            },
            device,
        );
        Ok(BenchRun {
            amp,
            channels_last: self.channels_last,
            device,
            warmup: self.warmup,
            iters: self.iters,
        })
    }

    /// Prints a bench's result: one JSON object with `--json`, else `line`.
    pub fn print<R: Serialize>(
        &self,
        result: &R,
        line: impl FnOnce(&R) -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string(result)?);
        } else {
            println!("{}", line(result));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enlarging_repeats_pixels_and_refuses_pictures_too_large_to_hold() {
        let image = image::RgbImage::from_fn(4, 2, |x, y| image::Rgb([x as u8, y as u8, 7]));
        assert!(matches!(
            enlarged(&image, 1).unwrap(),
            std::borrow::Cow::Borrowed(_)
        ));
        let big = enlarged(&image, 3).unwrap();
        assert_eq!(big.dimensions(), (12, 6));
        assert_eq!(big.get_pixel(11, 5), image.get_pixel(3, 1));
        assert_eq!(big.get_pixel(3, 2), image.get_pixel(1, 0));
        let wide = image::RgbImage::new(5_000, 1_000);
        let err = enlarged(&wide, 16).unwrap_err();
        assert!(
            err.contains("80000x16000") && err.contains("--enlarge"),
            "{err}"
        );
    }
}
