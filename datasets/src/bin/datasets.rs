//! `datasets`: make the synthetic Fashion scenes, validate a dataset, time the loaders.

use clap::{Parser, Subcommand, ValueEnum};
use datasets::check::{check_with, CheckOptions, CheckReport};
use datasets::spec::DatasetSpec;
use datasets::synth::{self, ItemSource, SynthConfig};
use datasets::transfer_bench::{bench_loader, BenchRequest, BenchTask};
use datasets::voc::VocTask;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "datasets",
    version,
    about = "Dataset tools: synthetic scenes, validation, loader benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const CHECK_EXAMPLES: &str = "\
Examples (the paper profile's data, before any training):
  datasets check imagenet:/data/imagenet --split train,val
  datasets check voc:/data/voc --split trainval,test --task detection
  datasets check ade20k:/data/ADEChallengeData2016 --split training,validation";

#[derive(Clone, Copy, ValueEnum)]
enum Source {
    FashionMnist,
    Shapes,
}

#[derive(Subcommand)]
enum Command {
    /// Write the same synthetic scenes as VOC (detection and segmentation), ADE20K and COCO.
    Synth {
        /// Output folder (VOCdevkit/, ADEChallengeData2016/ and coco/ are made in it).
        #[arg(long)]
        out: PathBuf,
        /// What the items are: Fashion-MNIST images, or drawn shapes (no data needed).
        #[arg(long, value_enum, default_value = "fashion-mnist")]
        source: Source,
        /// The Fashion-MNIST folder [default: $FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist].
        #[arg(long, value_name = "DIR")]
        fashion_mnist: Option<PathBuf>,
        /// Training scenes (items from Fashion-MNIST's training split).
        #[arg(long, value_name = "N", default_value_t = 2000)]
        train: usize,
        /// Validation scenes (items from Fashion-MNIST's test split).
        #[arg(long, value_name = "N", default_value_t = 500)]
        val: usize,
        /// Test scenes (items from Fashion-MNIST's test split; VOC and COCO only).
        #[arg(long, value_name = "N", default_value_t = 500)]
        test: usize,
        /// Scene side in pixels.
        #[arg(long, value_name = "PX", default_value_t = 256)]
        size: usize,
        /// The same seed writes the same files.
        #[arg(long, value_name = "S", default_value_t = 0)]
        seed: u64,
        #[arg(long, value_name = "Q", default_value_t = 90, value_parser = clap::value_parser!(u8).range(1..=100))]
        jpeg_quality: u8,
        /// Also write DIR/preview.png: the first N scenes with boxes, beside their masks.
        #[arg(long, value_name = "N")]
        preview: Option<usize>,
        /// Print a JSON summary on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Read every entry of a dataset and list every problem; exit 2 if there is one.
    ///
    /// Each split is opened with the code the training and evaluation stages use, so a
    /// layout they would refuse is refused here, before any training. Problems go to stderr
    /// (one line each, naming the file), the summary to stdout; exit status 0 when there is
    /// no problem, 2 when there is any (every one is listed).
    #[command(after_help = CHECK_EXAMPLES)]
    Check {
        /// voc:ROOT (a VOC20xx folder, a VOCdevkit folder, or the folder holding VOCdevkit/),
        /// ade20k:ROOT, coco:ANNOTATIONS.json[:IMAGES], imagenet:ROOT (ROOT/{train,val}/<class>/*)
        /// or fashion-mnist:DIR
        spec: String,
        /// Check only this split, as the stages name it (repeat it, or give a comma list):
        /// voc: trainval, test... (under a VOCdevkit, `test` is VOC2007's alone and another
        /// split combines every VOC20xx folder listing it, as `detect` reads them); ade20k:
        /// training, validation; imagenet:, fashion-mnist: train, val. Default: every split
        /// found. Not for coco: (its spec names the split's file).
        #[arg(long, value_name = "NAME", value_delimiter = ',')]
        split: Vec<String>,
        /// Read and decode at most N images of each split, evenly spread over it; every split
        /// is still listed in full, so missing folders, unknown classes, empty class folders
        /// and missing annotations are all found. Default: every image (ImageNet's 1.33M
        /// files take minutes to an hour, depending on the disk and the cores).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        sample: Option<u64>,
        /// voc: only: check this task's split lists alone (ImageSets/Main for detection,
        /// ImageSets/Segmentation for segmentation). Default: both.
        #[arg(long, value_enum)]
        task: Option<Task>,
        /// Print the report as one JSON object on stdout (problems, counts per class).
        #[arg(long)]
        json: bool,
    },
    /// Images/s of the detection (600/1000) or segmentation (520 base, 480 crop) training loader.
    Bench(BenchArgs),
    /// Tiny stand-ins for ImageNet, VOC07+12 and ADE20K in their official layouts (1000, 20 and
    /// 150 classes; 500x375 and 683x512 images): DIR/imagenet, DIR/VOCdevkit,
    /// DIR/ADEChallengeData2016, for `scripts/transfer_tables.sh --profile paper --dry-run`.
    Standins {
        #[arg(long)]
        out: PathBuf,
        /// ImageNet images per class, in train and in val.
        #[arg(long, value_name = "N", default_value_t = 1)]
        per_class: usize,
        /// Images in each VOC list (2007 trainval, 2007 test, 2012 trainval) and ADE20K split.
        #[arg(long, value_name = "N", default_value_t = 8)]
        images: usize,
        #[arg(long, value_name = "S", default_value_t = 0)]
        seed: u64,
    },
}

#[derive(clap::Args)]
struct BenchArgs {
    /// voc:ROOT, coco:ANNOTATIONS.json[:IMAGES] (detection); ade20k:ROOT, voc:ROOT (segmentation)
    #[arg(long, value_name = "SPEC")]
    data: String,
    #[arg(long, value_enum)]
    task: Task,
    /// Split to read [default: trainval for VOC detection, train for segmentation].
    #[arg(long)]
    split: Option<String>,
    #[arg(long, default_value_t = 2)]
    workers: usize,
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Batches timed.
    #[arg(long, default_value_t = 50)]
    batches: usize,
    /// Batches run before timing.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Leave out entries that fail to load (counted) instead of stopping on the first.
    #[arg(long)]
    skip_bad: bool,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Task {
    Detection,
    Segmentation,
}

/// Bad input or usage (exit 2) versus a failure while running (exit 1).
enum Failure {
    Input(anyhow::Error),
    Runtime(anyhow::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A pixel limit that does not parse is a usage error, said once rather than per file.
    if let Err(e) = datasets::limits::max_image_pixels() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let outcome = match cli.command {
        Command::Synth {
            out,
            source,
            fashion_mnist,
            train,
            val,
            test,
            size,
            seed,
            jpeg_quality,
            preview,
            json,
        } => run_synth(
            SynthConfig {
                out,
                train,
                val,
                test,
                size,
                seed,
                jpeg_quality,
            },
            source,
            fashion_mnist,
            preview,
            json,
        ),
        Command::Check {
            spec,
            split,
            sample,
            task,
            json,
        } => run_check(&spec, split, sample, task, json),
        Command::Bench(args) => run_bench(args),
        Command::Standins {
            out,
            per_class,
            images,
            seed,
        } => run_standins(synth::standins::StandinConfig {
            out,
            per_class,
            images,
            seed,
        }),
    };
    match outcome {
        Ok(code) => code,
        Err(Failure::Input(e)) => {
            eprintln!("error: {}", one_sentence(&e));
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("error: {}", one_sentence(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes joined with ": ", leaving out a cause whose text the message
/// already carries (`DataError` prints its I/O source itself).
fn one_sentence(error: &anyhow::Error) -> String {
    let mut sentence = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !sentence.contains(&text) {
            if !sentence.is_empty() {
                sentence.push_str(": ");
            }
            sentence.push_str(&text);
        }
    }
    sentence
}

fn parse_spec(spec: &str) -> Result<DatasetSpec, Failure> {
    DatasetSpec::parse(spec).map_err(|e| Failure::Input(e.into()))
}

fn run_synth(
    config: SynthConfig,
    source: Source,
    fashion_mnist: Option<PathBuf>,
    preview: Option<usize>,
    json: bool,
) -> Result<ExitCode, Failure> {
    if !synth::SCENE_SIZES.contains(&config.size) {
        return Err(Failure::Input(anyhow::anyhow!(
            "--size {} is outside {}..={} pixels",
            config.size,
            synth::SCENE_SIZES.start(),
            synth::SCENE_SIZES.end()
        )));
    }
    let items = match source {
        Source::Shapes => ItemSource::Shapes,
        Source::FashionMnist => {
            let dir = fashion_mnist.unwrap_or_else(synth::default_fashion_mnist_dir);
            ItemSource::fashion_mnist(&dir).map_err(|e| {
                Failure::Input(anyhow::Error::new(e).context(
                    "cannot read Fashion-MNIST (use --fashion-mnist DIR, or --source shapes)",
                ))
            })?
        }
    };
    let started = std::time::Instant::now();
    let summary = synth::generate(&config, &items).map_err(|e| Failure::Runtime(e.into()))?;
    let seconds = started.elapsed().as_secs_f64();
    let preview_path = match preview {
        Some(n) => {
            let path = config.out.join("preview.png");
            synth::write_preview(&config, &items, n, &path)
                .map_err(|e| Failure::Runtime(e.into()))?;
            Some(path)
        }
        None => None,
    };
    if json {
        let doc = serde_json::json!({
            "out": config.out,
            "scenes": summary.scenes,
            "objects": summary.objects,
            "difficult": summary.difficult,
            "per_class": summary.per_class.iter().map(|(c, n)| (c.clone(), serde_json::Value::from(*n))).collect::<serde_json::Map<String, serde_json::Value>>(),
            "seconds": seconds,
            "preview": preview_path,
        });
        println!("{doc}");
    } else {
        println!(
            "wrote {} scenes ({} objects, {} difficult) to {} in {seconds:.1} s",
            summary.scenes,
            summary.objects,
            summary.difficult,
            config.out.display()
        );
        for (class, count) in &summary.per_class {
            println!("  {class:>10} {count}");
        }
        if let Some(path) = preview_path {
            println!("preview: {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_standins(config: synth::standins::StandinConfig) -> Result<ExitCode, Failure> {
    let images = synth::standins::write_standins(&config).map_err(|e| Failure::Input(e.into()))?;
    println!(
        "{images} images: {0}/imagenet, {0}/VOCdevkit, {0}/ADEChallengeData2016",
        config.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_check(
    spec: &str,
    splits: Vec<String>,
    sample: Option<u64>,
    task: Option<Task>,
    json: bool,
) -> Result<ExitCode, Failure> {
    let spec = parse_spec(spec)?;
    if task.is_some() && !matches!(spec, DatasetSpec::Voc { .. }) {
        return Err(Failure::Input(anyhow::anyhow!(
            "--task applies to voc: specs only (their detection and segmentation lists), not {spec}"
        )));
    }
    if matches!(spec, DatasetSpec::Coco { .. }) && !splits.is_empty() {
        return Err(Failure::Input(anyhow::anyhow!(
            "--split does not apply to {spec}: a COCO spec names its split's annotation file"
        )));
    }
    if let Some(empty) = splits.iter().find(|s| s.trim().is_empty()) {
        return Err(Failure::Input(anyhow::anyhow!(
            "--split \"{empty}\" names no split"
        )));
    }
    let options = CheckOptions {
        splits,
        sample: sample.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        voc_task: task.map(|task| match task {
            Task::Detection => VocTask::Detection,
            Task::Segmentation => VocTask::Segmentation,
        }),
    };
    let report = check_with(&spec, &options);
    if json {
        println!("{}", check_json(&report));
    } else {
        print_check(&report);
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// The report as JSON; fields are only ever added (scripts read it).
fn check_json(report: &CheckReport) -> serde_json::Value {
    serde_json::json!({
        "spec": report.spec,
        "splits": report.splits,
        "sample": report.sample,
        "folders": report.folders,
        "entries": report.entries,
        "ok": report.problems.is_empty(),
        "problems": report.problems,
        "counted": report.counted,
        "class_counts": report.class_counts.iter().map(|(c, n)| (c.clone(), serde_json::Value::from(*n))).collect::<serde_json::Map<_, _>>(),
    })
}

fn print_check(report: &CheckReport) {
    for problem in &report.problems {
        eprintln!("{problem}");
    }
    let splits = match report.splits.as_slice() {
        [] => String::new(),
        names => format!(" ({})", names.join(", ")),
    };
    let sampled = match report.sample {
        Some(n) => format!(" (at most {n} read per split)"),
        None => String::new(),
    };
    println!(
        "{}{splits}: {} entries{sampled}, {} problems",
        report.spec,
        report.entries,
        report.problems.len()
    );
    println!("{} per class:", report.counted);
    for (class, count) in &report.class_counts {
        println!("  {class:>20} {count}");
    }
}

fn run_bench(args: BenchArgs) -> Result<ExitCode, Failure> {
    let BenchArgs {
        data,
        task,
        split,
        workers,
        batch,
        batches,
        warmup,
        skip_bad,
        json,
    } = args;
    let spec = parse_spec(&data)?;
    let task = match task {
        Task::Detection => BenchTask::Detection,
        Task::Segmentation => BenchTask::Segmentation,
    };
    let split = split.unwrap_or_else(|| {
        match (task, &spec) {
            (BenchTask::Detection, _) => "trainval",
            (BenchTask::Segmentation, DatasetSpec::Voc { .. }) => "train",
            (BenchTask::Segmentation, _) => "training",
        }
        .to_string()
    });
    if batches == 0 || batch == 0 {
        return Err(Failure::Input(anyhow::anyhow!(
            "--batch and --batches must be at least 1"
        )));
    }
    let request = BenchRequest {
        task,
        spec: spec.clone(),
        split,
        workers,
        batch_size: batch,
        batches,
        warmup,
        skip_bad,
    };
    // Bad data is bad input (exit 2), as under `check`; only a bug caught in the loader is a
    // failure of the run (exit 1).
    let report = bench_loader(&request).map_err(|e| {
        let failure = if e.is_bug() {
            Failure::Runtime
        } else {
            Failure::Input
        };
        failure(anyhow::Error::new(e).context(format!(
            "benchmarking the {} loader on {spec}",
            if task == BenchTask::Detection {
                "detection"
            } else {
                "segmentation"
            }
        )))
    })?;
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        println!(
            "{:?} loader on {} ({}): {} images in {:.2} s = {:.1} images/s with {} workers ({:.1} per worker)",
            report.task, report.spec, report.split, report.images, report.seconds, report.images_per_s, report.workers, report.images_per_s_per_worker
        );
        if report.skipped > 0 {
            println!("skipped {} bad entries (--skip-bad)", report.skipped);
        }
    }
    Ok(ExitCode::SUCCESS)
}
