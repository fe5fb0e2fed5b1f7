use crate::cli_error::BadInput;
use clap::Args;
use datasets::ade20k::Ade20kDataset;
use datasets::segmentation_data::SegmentationSource;
use datasets::spec::DatasetSpec;
use engine::device::parse_device;
use segmentation::evaluate::{evaluate_source, MultiScale};
use segmentation::predictions::evaluate_predictions;
use segmentation::Segmenter;
use std::path::PathBuf;

#[derive(Args)]
#[command(
    after_help = "Metrics (as the ADE20K benchmark and GluonCV compute them): only pixels \
with a ground-truth label count (ADE20K value 0 is ignored); pixAcc = correct / labelled; per \
class, intersection and union are summed over the whole split, IoU = I / U. mIoU is the mean over \
the classes present in the ground truth or the predictions; a class absent from both has no IoU \
(null in --json) and is left out. mIoU_all is GluonCV's variant: the mean over all K classes, \
absent ones counting 0."
)]
pub struct EvalArgs {
    /// A segmentation checkpoint (`segment finetune`, `segment import`).
    #[arg(
        long,
        conflicts_with = "predictions",
        required_unless_present = "predictions"
    )]
    ckpt: Option<PathBuf>,
    /// A folder of ADE20K submission PNGs instead of a model: one per image of the split,
    /// same stem, 8-bit, values 1..K.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// The dataset, ade20k:ROOT (or voc:ROOT with --ckpt).
    #[arg(long)]
    data: String,
    /// The split: ADE20K's validation/training (val/train), VOC's val/train/trainval.
    #[arg(long, default_value = "validation")]
    split: String,
    /// GluonCV's multi-scale evaluation: scales 0.5..1.75 x 520, a 480 sliding window
    /// (stride 320) and horizontal flips: exp(logits + flipped logits) averaged over windows
    /// and summed over scales, as GluonCV's MultiEvalModel.
    #[arg(long, conflicts_with = "predictions")]
    multi_scale: bool,
    #[arg(
        long,
        default_value_t = 520,
        requires = "multi_scale",
        value_parser = engine::limits::flag_range_usize(engine::limits::RESIZE_SIDE),
        help = engine::limits::help("Multi-scale: the base size the scales multiply (the longer side)", &engine::limits::RESIZE_SIDE)
    )]
    base_size: usize,
    #[arg(
        long,
        default_value_t = 480,
        requires = "multi_scale",
        value_parser = engine::limits::flag_range_usize(engine::limits::INPUT_SIDE),
        help = engine::limits::help("Multi-scale: the sliding window's side (stride 2/3 of it)", &engine::limits::INPUT_SIDE)
    )]
    crop_size: usize,
    /// Run the model on each image at its own size instead of the checkpoint's preprocessing
    /// (single-scale only).
    #[arg(long)]
    native_size: bool,
    /// Score the first N images of the split only (in file-name order), for quick checks.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_samples: Option<u64>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Decoding threads.
    #[arg(long, default_value_t = 2, value_parser = engine::limits::flag_range_usize(engine::limits::WORKERS))]
    workers: usize,
    /// Print one JSON object: {"pixAcc", "mIoU", "mIoU_all", "iou": {"<class>": iou or null}}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let spec = DatasetSpec::parse(&args.data).map_err(|e| BadInput(e.to_string()))?;
    let (scores, classes) = match (&args.ckpt, &args.predictions) {
        (_, Some(dir)) => {
            let DatasetSpec::Ade20k { root } = &spec else {
                return Err(BadInput(format!(
                    "{}: --predictions reads ADE20K submission PNGs, so --data must be ade20k:ROOT",
                    args.data
                ))
                .into());
            };
            let mut dataset = Ade20kDataset::open(root, &args.split)?;
            if let Some(n) = args.max_samples {
                dataset.truncate(n as usize);
            }
            (
                evaluate_predictions(&dataset, dir)?
                    .require_labelled(&format!("{}, split \"{}\"", args.data, args.split))?,
                dataset.classes().to_vec(),
            )
        }
        (Some(ckpt), None) => {
            let device = parse_device(&args.device).map_err(BadInput)?;
            let mut model = Segmenter::from_checkpoint(ckpt, device)?;
            if args.native_size {
                model.preprocess.resize_shorter = None;
            }
            let mut source = SegmentationSource::open(&spec, &args.split)?;
            if let Some(n) = args.max_samples {
                source.truncate(n as usize);
            }
            if source.classes().len() != model.classes.len() {
                return Err(BadInput(format!(
                    "{}: the model has {} classes but {} has {}",
                    ckpt.display(),
                    model.classes.len(),
                    args.data,
                    source.classes().len()
                ))
                .into());
            }
            let ms = args.multi_scale.then(|| MultiScale {
                base_size: args.base_size,
                crop_size: args.crop_size,
                ..MultiScale::gluoncv()
            });
            let classes = model.classes.clone();
            (
                evaluate_source(
                    &model,
                    source,
                    &format!("{}, split \"{}\"", args.data, args.split),
                    ms.as_ref(),
                    args.workers,
                )?,
                classes,
            )
        }
        (None, None) => unreachable!("clap requires one of them"),
    };
    if args.json {
        println!("{}", scores.to_json(&classes));
    } else {
        print!("{}", scores.table(&classes));
    }
    Ok(())
}
