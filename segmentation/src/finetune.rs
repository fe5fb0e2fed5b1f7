//! `segment finetune`: a recipe read from TOML, the backbone loaded from a classification
//! checkpoint, the segmentation data opened, and the engine's loop run on the task.

use crate::config::FinetuneConfig;
use crate::fcn::{Fcn, FcnConfig};
use crate::task::{Segmentation, SegmentationLoader};
use anyhow::bail;
use backbones::pretrained::{FinetuneRequest, PretrainedBody};
use datasets::loader::LoaderConfig;
use datasets::segmentation_data::{
    segmentation_loader, SegmentationAugment, SegmentationDataset, SegmentationSource,
};
use datasets::segmentation_transforms::SegmentationEvalTransform;
use datasets::spec::DatasetSpec;
use engine::command::Recipe;
use engine::config_file;
use engine::data_parallel;
use engine::fit::{fit, set_up, Summary, TrainInputError};
use tch::{nn, Device};

/// The train and validation loaders of a config, and the class names.
pub fn open_loaders(
    config: &FinetuneConfig,
    spec: &str,
) -> anyhow::Result<(SegmentationLoader, SegmentationLoader, Vec<String>)> {
    let val_spec_text = config.data.val_spec.as_deref().unwrap_or(spec);
    let val_spec = DatasetSpec::parse(val_spec_text).map_err(|e| TrainInputError(e.to_string()))?;
    let spec = DatasetSpec::parse(spec).map_err(|e| TrainInputError(e.to_string()))?;
    let d = &config.data;
    let loader_config = |batch_size, shuffle, drop_last| LoaderConfig {
        batch_size,
        workers: d.workers,
        prefetch: d.prefetch.max(1),
        shuffle,
        drop_last,
        seed: config.train.seed,
        // Training: each rank of a data-parallel run takes its share of every shuffled
        // epoch. Evaluation: every rank scores the whole split, so all agree on the metrics.
        rank: if shuffle { data_parallel::rank() } else { 0 },
        world_size: if shuffle {
            data_parallel::world_size()
        } else {
            1
        },
        skip_bad: d.skip_bad,
    };
    let mut train_source = SegmentationSource::open(&spec, "train")?;
    if let Some(n) = d.max_train_samples {
        train_source.truncate(n);
    }
    let classes = train_source.classes();
    let train = segmentation_loader(
        SegmentationDataset {
            source: train_source,
            augment: SegmentationAugment::Train(d.train_transform()),
        },
        loader_config(d.batch_size, true, true),
    )?;
    let mut val_source = SegmentationSource::open(&val_spec, "val")?;
    if val_source.classes() != classes {
        bail!(TrainInputError(format!(
            "{val_spec_text} names {} classes where the training data names {}: validation needs the same classes",
            val_source.classes().len(),
            classes.len()
        )));
    }
    if let Some(n) = d.max_val_samples {
        val_source.truncate(n);
    }
    crate::task::require_labelled_split(&val_source, &crate::task::validation_split(config))?;
    let eval = match d.eval_crop {
        Some(crop_size) => SegmentationEvalTransform::CenterCrop { crop_size },
        None => SegmentationEvalTransform::Full,
    };
    let val = segmentation_loader(
        SegmentationDataset {
            source: val_source,
            augment: SegmentationAugment::Eval(eval),
        },
        loader_config(d.val_batch_size, false, false),
    )?;
    if train.batches_per_epoch() == 0 {
        bail!(TrainInputError(format!(
            "{} training images make no full batch of {}",
            train.samples_per_epoch(),
            d.batch_size
        )));
    }
    Ok((train, val, classes))
}

/// Reads the recipe with its overrides and checks it.
pub fn load_config(
    path: &std::path::Path,
    sets: &[String],
    data: Option<&str>,
) -> anyhow::Result<FinetuneConfig> {
    let mut sets = sets.to_vec();
    if let Some(data) = data {
        sets.push(format!("data.spec={}", config_file::toml_string(data)));
    }
    let config: FinetuneConfig =
        config_file::load(path, &sets).map_err(|e| TrainInputError(e.to_string()))?;
    config
        .validate()
        .map_err(|e| TrainInputError(format!("{}: {e}", path.display())))?;
    Ok(config)
}

/// Everything a run checks before it builds anything, checked: the recipe, the dataset and
/// its splits, the pretrained body and the run folder.
struct Prepared {
    config: FinetuneConfig,
    device: Device,
    pretrained: PretrainedBody,
    train_loader: SegmentationLoader,
    val_loader: SegmentationLoader,
    classes: Vec<String>,
}

fn prepare(opts: &FinetuneRequest) -> anyhow::Result<Prepared> {
    let (config, spec): (FinetuneConfig, String) = opts.run.recipe("ade20k:ROOT")?;
    let pretrained = PretrainedBody::read(
        &opts.backbone,
        "a classification one: an FCN starts from the ImageNet (or Fashion) classifier a backbone was trained as",
    )?;
    let device = opts.run.join()?;
    let (train_loader, val_loader, classes) = open_loaders(&config, &spec)?;
    let num_classes = classes.len() as i64;
    crate::fcn::CLASSES
        .contains(&num_classes)
        .then_some(())
        .ok_or_else(|| {
            TrainInputError(format!(
                "{spec}: {num_classes} classes; an FCN takes 1 to 254"
            ))
        })?;
    Ok(Prepared {
        config,
        device,
        pretrained,
        train_loader,
        val_loader,
        classes,
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
        pretrained,
        train_loader,
        val_loader,
        classes,
    } = prepare(&opts)?;
    let num_classes = classes.len() as i64;
    set_up(&mut config.train, device);
    let fcn_config = FcnConfig {
        backbone: backbones::ResNetConfig {
            output_stride: config.model.output_stride,
            norm: config.model.norm,
            ..pretrained.config.clone()
        },
        num_classes,
        aux: config.model.aux,
        align_corners: config.model.align_corners,
    };
    let vs = nn::VarStore::new(device);
    let model = Fcn::new(&vs.root(), &fcn_config);
    pretrained.copy_into(
        &vs,
        "backbone.",
        &format!("the body of an FCN over {}", pretrained.arch),
    )?;
    drop(pretrained);
    let engine_config = config.engine();
    let mut task = Segmentation::new(config, fcn_config, classes, vs, model, val_loader);
    fit(
        &mut task,
        &train_loader,
        &engine_config,
        &opts.run.options(),
    )
}
