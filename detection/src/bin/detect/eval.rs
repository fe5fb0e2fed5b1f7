//! `detect eval`: detections scored against a dataset split's ground truth.
//!
//! `--detections DIR --data voc:ROOT`: official comp4 files, VOC AP
//! (`--metric voc07|voc07-gluoncv|voc12`).
//! `--detections FILE.json --data coco:ANN.json`: a COCO results file, COCO mAP.
//! `--ckpt FILE --data SPEC`: a detection checkpoint run over the split first (its detections
//! optionally written as comp4 files or a COCO results file with `--write-detections`).

use crate::cli_error::{warn, BadInput};
use anyhow::Context;
use clap::{ArgGroup, Args, ValueEnum};
use datasets::detection_data::DetectionSource;
use datasets::spec::DatasetSpec;
use detection::metrics::coco::CocoEvaluator;
use detection::metrics::voc::{VocMetric, VocReport};
use detection::metrics::{comp4, ground_truth, report};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MetricArg {
    /// VOC2007's 11-point AP exactly as the official devkit (VOCevaldet.m) computes it: the
    /// mean of the best precision at recall >= 0, 0.1, ..., 1 (MATLAB's 0:0.1:1 values).
    Voc07,
    /// VOC2007's 11-point AP exactly as GluonCV's VOC07MApMetric computes it (the paper's
    /// Table 8): numpy's recall points (0.6000000000000001, 0.7000000000000001), IoU in
    /// float32, mAP by numpy's nanmean.
    #[value(name = "voc07-gluoncv")]
    Voc07Gluoncv,
    /// VOC2010-2012's AP: the area under the precision envelope (every recall step).
    Voc12,
    /// COCO's AP at IoU 0.5:0.95 (with AP50, AP75, by area, and AR), for coco: data.
    Coco,
}

impl MetricArg {
    /// The VOC metric this names (`None` for coco).
    fn voc(self) -> Option<VocMetric> {
        match self {
            MetricArg::Voc07 => Some(VocMetric::Voc07),
            MetricArg::Voc07Gluoncv => Some(VocMetric::Voc07Gluoncv),
            MetricArg::Voc12 => Some(VocMetric::Voc12),
            MetricArg::Coco => None,
        }
    }
}

#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).args(["detections", "ckpt"])))]
#[command(after_help = "\
VOC rules (the devkit's VOCevaldet.m; GluonCV's VOC07MApMetric follows the same loop): per \
class, detections of all images ranked by score (equal scores in file order); each is \
matched to the ground-truth box of its image with the highest IoU, counting inclusive pixels \
(width = xmax - xmin + 1); IoU >= --iou with a box not yet found is a true positive, a \
second detection of a found box (a duplicate) or a lower IoU is a false positive, and a \
match with a difficult box counts neither way. Difficult boxes are not among the positives. \
A class without positives has no AP (null in JSON, \"-\" in the table) and is left out of \
the mAP. A class without a comp4 file has no detections (AP 0 if it has positives).
voc07 is the devkit's VOC2007 metric to the bit; voc07-gluoncv is GluonCV's VOC07MApMetric \
to the bit, the evaluator behind the paper's Table 8. They differ where recall is exactly \
0.6 or 0.7 (the devkit's point is reached, GluonCV's is not), where an IoU is within \
float32 rounding of --iou (GluonCV computes IoU in float32), and in the last bits of the \
mAP (GluonCV's numpy nanmean sums pairwise).")]
pub struct EvalArgs {
    /// For voc: data, a folder of official comp4 files, one per class:
    /// comp4_det_<split>_<class>.txt with lines "<id> <score> <xmin> <ymin> <xmax> <ymax>"
    /// (1-based pixel coordinates). For coco: data, a COCO results JSON file.
    #[arg(long, value_name = "DIR|FILE")]
    detections: Option<PathBuf>,
    /// A detection checkpoint (from `detect finetune` or `detect import`) to run over the
    /// split; images are resized as its transform says.
    #[arg(long, value_name = "FILE")]
    ckpt: Option<PathBuf>,
    /// With --ckpt: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// With --ckpt: images per batch.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    batch_size: u32,
    /// With --ckpt: loader threads decoding images.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=256))]
    workers: u32,
    /// With --ckpt: also write the detections, as comp4 files into this folder (voc: data)
    /// or as DIR/detections.json in COCO's results format (coco: data).
    #[arg(long, value_name = "DIR")]
    write_detections: Option<PathBuf>,
    /// With --ckpt and voc: data: score the first N images of the split only (their ground
    /// truth alone counts), for quick checks.
    #[arg(long, value_name = "N", requires = "ckpt", value_parser = clap::value_parser!(u64).range(1..))]
    max_samples: Option<u64>,
    /// With --write-detections: replace result files already in DIR (without it, a DIR that
    /// holds any of the files this run would write is refused before the evaluation).
    #[arg(long)]
    force: bool,
    /// The ground truth: voc:ROOT (a VOCdevkit or VOC20xx folder) or coco:ANNOTATIONS.json.
    #[arg(long, value_name = "SPEC")]
    data: String,
    /// The VOC split whose images are evaluated (and whose name the comp4 files carry).
    #[arg(long, default_value = "test")]
    split: String,
    /// The metric (default: voc07 for voc: data, coco for coco: data). voc07 is VOC2007
    /// test's official metric as the devkit computes it, voc07-gluoncv the same metric as
    /// GluonCV's VOC07MApMetric computes it (the paper's numbers), voc12 the devkit's from
    /// 2010 on (also GluonCV's VOCMApMetric). The VOC metrics score coco: data too (crowd
    /// regions as difficult boxes), as a run's validation does when its recipe names one.
    #[arg(long, value_enum)]
    metric: Option<MetricArg>,
    /// The IoU a detection needs to find a box (VOC metrics).
    #[arg(long, default_value_t = 0.5, value_parser = parse_iou)]
    iou: f64,
    /// Print one JSON object: {"map", "metric", "ap": {"<class>": ap}, ...}.
    #[arg(long)]
    json: bool,
}

fn parse_iou(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err(format!("\"{text}\" is not a number in (0, 1]")),
    }
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let spec = DatasetSpec::parse(&args.data)?;
    if let Some(ckpt) = &args.ckpt {
        return model_eval::run(&args, &spec, ckpt);
    }
    let detections = args
        .detections
        .clone()
        .ok_or_else(|| BadInput("--detections or --ckpt is required".into()))?;
    match (&spec, args.metric) {
        (DatasetSpec::Voc { .. }, None) => eval_comp4(&args, &spec, &detections, VocMetric::Voc07),
        (DatasetSpec::Voc { .. }, Some(MetricArg::Coco)) => Err(BadInput(
            "--metric coco needs coco: data (VOC folders are scored with voc07, voc07-gluoncv or voc12)"
                .into(),
        )
        .into()),
        (DatasetSpec::Voc { .. }, Some(metric)) => {
            let metric = metric.voc().expect("coco is handled above");
            eval_comp4(&args, &spec, &detections, metric)
        }
        (DatasetSpec::Coco { annotations, .. }, None | Some(MetricArg::Coco)) => {
            eval_coco_results(&args, annotations, &detections)
        }
        (DatasetSpec::Coco { .. }, Some(_)) => Err(BadInput(
            "coco: data is scored with --metric coco (VOC metrics need voc: data and comp4 files)"
                .into(),
        )
        .into()),
        (other, _) => Err(BadInput(format!(
            "{other} is not a detection dataset (use voc:ROOT or coco:ANNOTATIONS.json)"
        ))
        .into()),
    }
}

fn eval_comp4(
    args: &EvalArgs,
    spec: &DatasetSpec,
    dir: &Path,
    metric: VocMetric,
) -> anyhow::Result<()> {
    let source = DetectionSource::open(spec, &args.split)?;
    if source.is_empty() {
        return Err(BadInput(format!(
            "{spec}: the \"{}\" split has no images",
            args.split
        ))
        .into());
    }
    let mut evaluator = ground_truth::voc_evaluator(&source)?;
    let summary = comp4::read_dir(dir, &args.split, &mut evaluator)?;
    if summary.files == 0 {
        return Err(BadInput(format!(
            "{}: no comp4 files for the \"{}\" split (expected {} for each class)",
            dir.display(),
            args.split,
            comp4::file_name(&args.split, "<class>")
        ))
        .into());
    }
    if !summary.missing_classes.is_empty() {
        warn(
            "detect",
            &format!(
                "{}: no comp4 file for {} of {} classes ({}), which therefore have no detections",
                dir.display(),
                summary.missing_classes.len(),
                evaluator.classes().len(),
                summary.missing_classes.join(", ")
            ),
        );
    }
    let start = Instant::now();
    let report: VocReport = evaluator.evaluate(metric, args.iou);
    let seconds = start.elapsed().as_secs_f64();
    if report.map.is_none() {
        return Err(BadInput(format!(
            "{spec}: no class has a non-difficult ground-truth box in the \"{}\" split, so there is nothing to measure",
            args.split
        ))
        .into());
    }
    match args.json {
        true => println!("{}", report::voc_json(&report)),
        false => {
            print!("{}", report::voc_table(&report));
            println!(
                "({} detections from {} files, matched in {seconds:.3} s)",
                summary.detections, summary.files
            );
        }
    }
    Ok(())
}

fn eval_coco_results(args: &EvalArgs, annotations: &Path, results: &Path) -> anyhow::Result<()> {
    let mut evaluator = CocoEvaluator::open(annotations)?;
    evaluator.read_results(results)?;
    let report = evaluator
        .evaluate()
        .with_context(|| format!("evaluating {}", results.display()))?;
    match args.json {
        true => println!("{}", report::coco_json(&report)),
        false => print!("{}", report::coco_table(&report)),
    }
    Ok(())
}

/// `--ckpt`: the model's detections of the split, scored (and written) as above.
mod model_eval {
    use super::{EvalArgs, MetricArg};
    use crate::cli_error::BadInput;
    use datasets::detection_data::{detection_loader, DetectionDataset, DetectionSource};
    use datasets::detection_transforms::{DetectionTransform, ShorterSideResize, SizeRounding};
    use datasets::loader::LoaderConfig;
    use datasets::spec::DatasetSpec;
    use detection::evaluate::detect_split;
    use detection::metrics::coco::{self, CocoEvaluator};
    use detection::metrics::voc::VocMetric;
    use detection::metrics::{comp4, ground_truth, report, ImageDetections};
    use detection::model::load::Detector;
    use detection::transform::ImageTransform;
    use engine::amp::Autocast;
    use engine::device::parse_device;
    use engine::outputs;
    use std::path::Path;
    use std::time::Instant;

    pub fn run(args: &EvalArgs, spec: &DatasetSpec, ckpt: &Path) -> anyhow::Result<()> {
        let device = parse_device(&args.device).map_err(BadInput)?;
        let detector = Detector::from_checkpoint(ckpt, device)?;
        let mut source = DetectionSource::open(spec, &args.split)?;
        if let Some(n) = args.max_samples {
            if matches!(spec, DatasetSpec::Coco { .. }) {
                return Err(BadInput(
                    "--max-samples works with voc: data (COCO's evaluator scores every image of its annotation file)".into(),
                )
                .into());
            }
            source.truncate(n as usize);
        }
        if source.is_empty() {
            return Err(BadInput(format!(
                "{spec}: the \"{}\" split has no images",
                args.split
            ))
            .into());
        }
        if source.classes() != detector.classes.as_slice() {
            return Err(BadInput(format!(
                "{} detects {} classes ({}...) but {spec} has {} ({}...): evaluate it on data with its classes",
                ckpt.display(),
                detector.classes.len(),
                detector.classes.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                source.classes().len(),
                source.classes().iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            ))
            .into());
        }
        let metric = match (spec, args.metric) {
            (DatasetSpec::Voc { .. }, None) => Some(VocMetric::Voc07),
            (DatasetSpec::Voc { .. }, Some(m)) if m != MetricArg::Coco => m.voc(),
            (DatasetSpec::Coco { .. }, None | Some(MetricArg::Coco)) => None,
            // What a run's validation logs when its recipe names a VOC metric for COCO data
            // (crowd regions count as difficult boxes).
            (DatasetSpec::Coco { .. }, Some(m)) => m.voc(),
            _ => return Err(BadInput(
                "voc: data is scored with --metric voc07, voc07-gluoncv or voc12 (coco needs coco: data)"
                    .into(),
            )
            .into()),
        };
        let mut voc = match metric {
            Some(_) => Some(ground_truth::voc_evaluator(&source)?),
            None => None,
        };
        let mut coco = match spec {
            DatasetSpec::Coco { annotations, .. } => Some(CocoEvaluator::open(annotations)?),
            _ => None,
        };
        let classes = detector.classes.clone();
        if let Some(dir) = &args.write_detections {
            check_result_files(dir, ckpt, &classes, &args.split, coco.is_some(), args.force)
                .map_err(BadInput)?;
        }
        let resize = ShorterSideResize {
            shorter: detector.transform.min_size as usize,
            max_longer: detector.transform.max_size as usize,
            rounding: SizeRounding::Floor,
        };
        let loader = detection_loader(
            DetectionDataset {
                source,
                transform: DetectionTransform::eval(resize),
            },
            LoaderConfig::in_order(args.batch_size as usize, args.workers as usize),
        )?;
        let transform = ImageTransform::new(&detector.transform, device);
        let mut kept: Vec<(String, u64, ImageDetections)> = Vec::new();
        let start = Instant::now();
        let images = detect_split(
            &detector.model,
            &transform,
            &loader,
            Autocast::OFF,
            |found| {
                let coco_id = match &loader.dataset().source {
                    DetectionSource::Coco(d) => d.image_id(found.index),
                    DetectionSource::Voc(_) => 0,
                };
                if let Some(voc) = voc.as_mut() {
                    let image = voc
                        .image_index(&found.id)
                        .ok_or_else(|| anyhow::anyhow!("image {} is not in the split", found.id))?;
                    voc.add_image_detections(image, &found.detections)?;
                }
                if let Some(coco) = coco.as_mut() {
                    coco.add_detections(coco_id, &found.detections)?;
                }
                if args.write_detections.is_some() {
                    kept.push((found.id, coco_id, found.detections));
                }
                Ok(())
            },
        )?;
        let seconds = start.elapsed().as_secs_f64();
        if let Some(dir) = &args.write_detections {
            match (&coco, metric) {
                (Some(coco), _) => {
                    let mut results = Vec::new();
                    for (_, id, d) in &kept {
                        results.extend(
                            coco::coco_results(*id, d, coco.category_ids())
                                .map_err(anyhow::Error::msg)?,
                        );
                    }
                    std::fs::create_dir_all(dir)?;
                    coco::write_results(&dir.join("detections.json"), &results)?;
                }
                _ => {
                    let images: Vec<(&str, &ImageDetections)> =
                        kept.iter().map(|(id, _, d)| (id.as_str(), d)).collect();
                    comp4::write_dir(dir, &args.split, &classes, &images)?;
                }
            }
        }
        match (voc, coco, metric) {
            (Some(voc), _, Some(metric)) => {
                let report = voc.evaluate(metric, args.iou);
                match args.json {
                    true => println!("{}", report::voc_json(&report)),
                    false => {
                        print!("{}", report::voc_table(&report));
                        println!("({images} images in {seconds:.1} s)");
                    }
                }
            }
            (_, Some(coco), _) => {
                let report = coco.evaluate()?;
                match args.json {
                    true => println!("{}", report::coco_json(&report)),
                    false => print!("{}", report::coco_table(&report)),
                }
            }
            _ => unreachable!("a metric was chosen above"),
        }
        Ok(())
    }

    /// The files `--write-detections DIR` would write (a comp4 file per class, or
    /// detections.json), checked before the evaluation: none may be the checkpoint, and none
    /// may exist unless --force. A DIR not there yet is created when they are written.
    fn check_result_files(
        dir: &Path,
        ckpt: &Path,
        classes: &[String],
        split: &str,
        coco: bool,
        force: bool,
    ) -> Result<(), String> {
        match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => {
                return Err(format!(
                    "{}: --write-detections needs a folder, and this is a file",
                    dir.display()
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        }
        let paths: Vec<std::path::PathBuf> = match coco {
            true => vec![dir.join("detections.json")],
            false => classes
                .iter()
                .map(|class| dir.join(comp4::file_name(split, class)))
                .collect(),
        };
        let written: Vec<outputs::Named> = paths
            .iter()
            .map(|p| outputs::named(p, "a result file"))
            .collect();
        outputs::check(&[outputs::named(ckpt, "the checkpoint")], &written, force)
    }
}
