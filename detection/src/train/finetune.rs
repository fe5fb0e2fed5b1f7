//! `detect finetune`: a recipe read from TOML, the backbone's weights loaded into a new
//! detector's body, the data opened, and the engine's loop run on the detection task.

use super::config::FinetuneConfig;
use super::task::{Detection, DetectionLoader};
use crate::metrics::ground_truth::{has_positives, voc_evaluator};
use crate::model::config::Design;
use crate::model::load::{load_body, read_backbone_checkpoint};
use crate::model::{DetectorConfig, FasterRcnn};
use anyhow::{bail, Context};
use backbones::pretrained::{FinetuneRequest, PretrainedBody};
use datasets::detection_data::{detection_loader, DetectionDataset, DetectionSource};
use datasets::detection_transforms::{DetectionTransform, ShorterSideResize, SizeRounding};
use datasets::loader::LoaderConfig;
use datasets::spec::DatasetSpec;
use engine::command::Recipe;
use engine::data_parallel;
use engine::fit::{fit, set_up, Summary, TrainInputError};
use tch::{nn, Device};

/// The detector a recipe asks for over the backbone's architecture.
pub fn detector_config(
    config: &FinetuneConfig,
    backbone: &backbones::ResNetConfig,
    num_classes: i64,
) -> DetectorConfig {
    let mut detector = match config.model.design {
        Design::C4 => DetectorConfig::c4(backbone.arch, num_classes, backbone.bn_eps),
        Design::Fpn => DetectorConfig::fpn(backbone.arch, num_classes, backbone.bn_eps),
    };
    detector.trainable_layers = config.model.trainable_layers;
    if let Some(n) = config.rpn.pre_nms_top_n_train {
        detector.rpn.pre_nms_top_n_train = n;
    }
    if let Some(n) = config.rpn.post_nms_top_n_train {
        detector.rpn.post_nms_top_n_train = n;
    }
    if let Some(n) = config.rpn.pre_nms_top_n_test {
        detector.rpn.pre_nms_top_n_test = n;
    }
    if let Some(n) = config.rpn.post_nms_top_n_test {
        detector.rpn.post_nms_top_n_test = n;
    }
    detector
}

fn open_loader(
    config: &FinetuneConfig,
    spec: &DatasetSpec,
    split: &str,
    train: bool,
) -> anyhow::Result<DetectionLoader> {
    let mut source = DetectionSource::open(spec, split)?;
    let limit = match train {
        true => config.data.max_train_samples,
        false => config.data.max_val_samples,
    };
    if let Some(n) = limit {
        source.truncate(n);
    }
    if source.is_empty() {
        bail!(TrainInputError(format!(
            "{spec}: the {split} split has no images"
        )));
    }
    let resize = ShorterSideResize {
        shorter: config.data.shorter,
        max_longer: config.data.max_longer,
        rounding: match config.model.design {
            Design::C4 => SizeRounding::Round,
            Design::Fpn => SizeRounding::Floor,
        },
    };
    let transform = if train {
        DetectionTransform {
            resize,
            flip_probability: config.data.flip_prob,
        }
    } else {
        DetectionTransform::eval(resize)
    };
    // Training: each rank of a data-parallel run takes its share of every shuffled epoch.
    // Evaluation: every rank scores the whole split (the VOC evaluator needs all of its
    // detections), so all ranks agree on the metrics.
    let (rank, world_size) = match train {
        true => (data_parallel::rank(), data_parallel::world_size()),
        false => (0, 1),
    };
    let loader_config = LoaderConfig {
        batch_size: config.data.batch_size,
        workers: config.data.workers,
        prefetch: config.data.prefetch.max(1),
        shuffle: train,
        drop_last: train,
        seed: config.train.seed,
        rank,
        world_size,
        skip_bad: config.data.skip_bad,
    };
    Ok(detection_loader(
        DetectionDataset { source, transform },
        loader_config,
    )?)
}

/// The validation data: `data.val_spec`, else the training spec's `val_split`. A COCO file
/// is one split, so validating on the training file would measure (and pick best.safetensors
/// by) the training images: that needs the validation file named.
fn validation_spec(
    config: &FinetuneConfig,
    spec: &DatasetSpec,
    spec_text: &str,
) -> anyhow::Result<String> {
    match (&config.data.val_spec, spec) {
        (Some(val), _) => Ok(val.clone()),
        (None, DatasetSpec::Coco { .. }) => Err(TrainInputError(format!(
            "{spec_text} is one split (a COCO file holds no other): name the validation data with --val-data coco:VAL.json[:IMAGES] (or data.val_spec), so that validation, and best.safetensors, are not measured on the training images"
        ))
        .into()),
        (None, _) => Ok(spec_text.to_string()),
    }
}

/// "a, b, c, ... (K)" for messages about class lists.
fn short_list(classes: &[String]) -> String {
    let head: Vec<&str> = classes.iter().take(3).map(String::as_str).collect();
    match classes.len() > 3 {
        true => format!("{}, ... ({})", head.join(", "), classes.len()),
        false => format!("{} ({})", head.join(", "), classes.len()),
    }
}

/// Everything a run checks before it builds anything, checked: the recipe, the dataset and
/// its splits, the backbone checkpoint, the detector they make, and the run folder.
struct Prepared {
    config: FinetuneConfig,
    device: Device,
    train_loader: DetectionLoader,
    val_loader: DetectionLoader,
    classes: Vec<String>,
    backbone: PretrainedBody,
    detector: DetectorConfig,
}

fn prepare(opts: &FinetuneRequest) -> anyhow::Result<Prepared> {
    let (config, spec_text): (FinetuneConfig, String) = opts.run.recipe("voc:ROOT")?;
    let spec = DatasetSpec::parse(&spec_text).map_err(|e| TrainInputError(e.to_string()))?;
    let backbone = read_backbone_checkpoint(&opts.backbone)?;
    let device = opts.run.join()?;
    let val_spec_text = validation_spec(&config, &spec, &spec_text)?;
    let val_spec =
        DatasetSpec::parse(&val_spec_text).map_err(|e| TrainInputError(e.to_string()))?;
    let train_loader = open_loader(&config, &spec, &config.data.train_split, true)?;
    let val_loader = open_loader(&config, &val_spec, &config.data.val_split, false)?;
    let classes = train_loader.dataset().source.classes().to_vec();
    if val_loader.dataset().source.classes() != classes.as_slice() {
        bail!(TrainInputError(format!(
            "{spec_text} ({}) and {val_spec_text} ({}) name different classes: {} against {}",
            config.data.train_split,
            config.data.val_split,
            short_list(&classes),
            short_list(val_loader.dataset().source.classes())
        )));
    }
    // Training learns only from ground truth that evaluation would accept.
    train_loader.dataset().source.check_ground_truth()?;
    // The validation split's annotations are read once here (in parallel, cheaply), so a
    // split with nothing to measure is refused before any training.
    let val_truth = voc_evaluator(&val_loader.dataset().source)?;
    if !has_positives(&val_truth) {
        bail!(TrainInputError(format!(
            "{val_spec_text}: the {} split has no object that is not difficult, so validation has nothing to measure",
            config.data.val_split
        )));
    }
    if train_loader.batches_per_epoch() == 0 {
        bail!(TrainInputError(format!(
            "{} training images make no full batch of {}",
            train_loader.samples_per_epoch(),
            config.data.batch_size
        )));
    }

    let detector = detector_config(&config, &backbone.config, classes.len() as i64);
    detector
        .validate()
        .map_err(|e| TrainInputError(format!("{}: {e}", opts.backbone.display())))?;
    Ok(Prepared {
        config,
        device,
        train_loader,
        val_loader,
        classes,
        backbone,
        detector,
    })
}

/// `--nproc N`: the checks every rank makes first, made once before any rank starts, so a
/// bad recipe, dataset or checkpoint is one message, not N; and each rank's share of the
/// training split must make a full batch.
pub fn check(opts: &FinetuneRequest, nproc: usize) -> anyhow::Result<()> {
    data_parallel::check_rank_share(&prepare(opts)?.train_loader, nproc)?;
    Ok(())
}

pub fn finetune(opts: FinetuneRequest) -> anyhow::Result<Summary> {
    let Prepared {
        mut config,
        device,
        train_loader,
        val_loader,
        classes,
        backbone,
        detector,
    } = prepare(&opts)?;
    set_up(&mut config.train, device);
    let vs = nn::VarStore::new(device);
    let model = FasterRcnn::new(&vs.root(), &detector);
    load_body(&vs, &backbone)
        .with_context(|| format!("loading the backbone {}", opts.backbone.display()))?;
    let mut engine_config = config.engine();
    engine_config
        .optim
        .freeze
        .extend(detector.frozen_prefixes());
    let mut task = Detection::new(config, vs, model, classes, val_loader);
    fit(
        &mut task,
        &train_loader,
        &engine_config,
        &opts.run.options(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recipe's proposal counts reach the detector it builds (and so its checkpoints), the
    /// others keep the design's defaults.
    #[test]
    fn the_recipe_sets_the_proposal_counts() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../configs/detection/fashion-scenes-fpn.toml"
        ))
        .unwrap();
        let config: FinetuneConfig = toml::from_str(&text).unwrap();
        config.validate().unwrap();
        let body = crate::model::config::body_config("resnet18d".parse().unwrap(), 1e-5);
        let detector = detector_config(&config, &body, 10);
        assert_eq!(detector.design, Design::Fpn);
        assert_eq!(detector.rpn.pre_nms_top_n_test, 500);
        assert_eq!(detector.rpn.post_nms_top_n_test, 100);
        let defaults = DetectorConfig::fpn(body.arch, 10, body.bn_eps);
        assert_eq!(
            detector.rpn.pre_nms_top_n_train,
            defaults.rpn.pre_nms_top_n_train
        );
        assert_eq!(
            detector.rpn.post_nms_top_n_train,
            defaults.rpn.post_nms_top_n_train
        );
    }
}
