use crate::cli_error::BadInput;
use backbones::classification::evaluate;
use backbones::classification::subset::Subset;
use backbones::classifier::Normalizer;
use backbones::Classifier;
use clap::Args;
use datasets::classify::{
    open_images, ClassificationCollate, ClassificationDataset, ClassificationSplit,
    ClassificationTransform,
};
use datasets::loader::{Loader, LoaderConfig};
use datasets::spec::DatasetSpec;
use engine::amp::Autocast;
use engine::device::parse_device;
use engine::limits;
use std::path::PathBuf;

#[derive(Args)]
pub struct EvalArgs {
    /// A classification checkpoint.
    #[arg(long)]
    ckpt: PathBuf,
    /// The dataset, KIND:PATH; its validation split (ImageNet val/, Fashion-MNIST test).
    #[arg(long)]
    data: String,
    #[arg(
        long,
        default_value_t = 100,
        value_parser = limits::flag_range_usize(limits::BATCH),
        help = limits::help("Images per batch", &limits::BATCH)
    )]
    batch_size: usize,
    #[arg(
        long,
        default_value_t = default_workers(),
        value_parser = limits::flag_range_usize(limits::WORKERS),
        help = limits::help("Decoding threads (0: on the main thread)", &limits::WORKERS)
    )]
    workers: usize,
    #[arg(
        long,
        value_parser = limits::flag_range_u64(limits::SAMPLES),
        help = limits::help("Evaluate on a fixed random subset of this many images", &limits::SAMPLES)
    )]
    max_samples: Option<u64>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print one JSON object: {"top1", "top5", "loss", "images"}.
    #[arg(long)]
    json: bool,
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let device = parse_device(&args.device).map_err(BadInput)?;
    let classifier = Classifier::from_checkpoint(&args.ckpt, device)?;
    let spec = DatasetSpec::parse(&args.data).map_err(|e| BadInput(e.to_string()))?;
    let source = open_images(&spec, ClassificationSplit::Val)?;
    if source.class_names().len() != classifier.classes.len() {
        return Err(BadInput(format!(
            "{} has {} classes but {} has {}",
            args.ckpt.display(),
            classifier.classes.len(),
            args.data,
            source.class_names().len()
        ))
        .into());
    }
    let dataset = ClassificationDataset::new(
        source,
        ClassificationTransform::Eval(classifier.transform.clone()),
    );
    let size = dataset.image_size();
    let subset = Subset::random(
        dataset,
        args.max_samples.map_or(usize::MAX, |n| n as usize),
        0,
    );
    let loader = Loader::new(
        subset,
        ClassificationCollate { size },
        LoaderConfig {
            batch_size: args.batch_size,
            workers: args.workers,
            prefetch: 2 * args.workers.max(1),
            ..LoaderConfig::default()
        },
    )?;
    let m = evaluate(
        &classifier.model,
        loader.epoch(0, 0),
        &Normalizer::new(&classifier.transform.normalization, device),
        device,
        false,
        Autocast::OFF,
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&m)?);
    } else {
        println!(
            "{}: top-1 {:.4}, top-5 {:.4}, loss {:.4} on {} images",
            args.ckpt.display(),
            m.top1,
            m.top5,
            m.loss,
            m.images
        );
    }
    Ok(())
}
