//! `backbone train`: a classification recipe read from TOML, its data opened, its task built,
//! and the engine's loop run on it.

use super::config::TrainConfig;
use super::subset::Subset;
use super::task::{Classification, ClassificationLoader};
use crate::classifier::ClassifierSpec;
use anyhow::bail;
use datasets::classify::{
    open_images, ClassificationCollate, ClassificationDataset, ClassificationSplit,
    ClassificationTransform,
};
use datasets::loader::{Loader, LoaderConfig};
use datasets::spec::DatasetSpec;
use engine::checkpoint::Checkpoint;
use engine::command::Recipe;
use engine::command::RunRequest;
use engine::data_parallel;
use engine::fit::{fit, set_up, Summary, TrainInputError};
use tch::Device;

/// Opens the train and validation loaders of a config.
pub fn open_loaders(
    config: &TrainConfig,
    spec: &str,
) -> anyhow::Result<(ClassificationLoader, ClassificationLoader)> {
    let spec = DatasetSpec::parse(spec).map_err(|e| TrainInputError(e.to_string()))?;
    let open = |split,
                transform,
                limit: Option<usize>,
                shuffle,
                drop_last|
     -> anyhow::Result<ClassificationLoader> {
        let source = open_images(&spec, split)?;
        let dataset = ClassificationDataset::new(source, transform);
        let size = dataset.image_size();
        let subset = Subset::random(dataset, limit.unwrap_or(usize::MAX), config.train.seed);
        // Training: the loader deals each rank its share of every shuffled epoch. Evaluation:
        // each rank takes every world-th image, without padding, and the counts are summed.
        let (rank, world) = (data_parallel::rank(), data_parallel::world_size());
        let subset = if shuffle {
            subset
        } else {
            subset.shard(rank, world)
        };
        let (rank, world) = if shuffle { (rank, world) } else { (0, 1) };
        let loader_config = LoaderConfig {
            batch_size: config.data.batch_size,
            workers: config.data.workers,
            prefetch: config.data.prefetch.max(1),
            shuffle,
            drop_last,
            seed: config.train.seed,
            rank,
            world_size: world,
            skip_bad: config.data.skip_bad,
        };
        Ok(Loader::new(
            subset,
            ClassificationCollate { size },
            loader_config,
        )?)
    };
    let train = open(
        ClassificationSplit::Train,
        ClassificationTransform::Train(config.data.augment.clone()),
        config.data.max_train_samples,
        true,
        true,
    )?;
    let val = open(
        ClassificationSplit::Val,
        ClassificationTransform::Eval(config.data.eval_transform()),
        config.data.max_val_samples,
        false,
        false,
    )?;
    if train.batches_per_epoch() == 0 {
        bail!(TrainInputError(format!(
            "{} training images make no full batch of {}",
            train.samples_per_epoch(),
            config.data.batch_size
        )));
    }
    Ok((train, val))
}

/// Everything a run checks before it builds anything, checked: the recipe, the dataset and
/// its splits, the distillation teacher and the run folder.
struct Prepared {
    config: TrainConfig,
    arch: crate::arch::ClassifierArch,
    device: Device,
    train_loader: ClassificationLoader,
    val_loader: ClassificationLoader,
    classes: Vec<String>,
}

fn prepare(request: &RunRequest) -> anyhow::Result<Prepared> {
    let (config, spec): (TrainConfig, String) = request.recipe("KIND:PATH")?;
    let arch = config
        .validate()
        .map_err(|e| TrainInputError(format!("{}: {e}", request.config.display())))?;
    let device = request.join()?;
    let (train_loader, val_loader) = open_loaders(&config, &spec)?;
    let classes = train_loader.dataset().inner().source().class_names();
    if let Some(distill) = &config.distill {
        check_teacher(&distill.teacher, classes.len())?;
    }
    Ok(Prepared {
        config,
        arch,
        device,
        train_loader,
        val_loader,
        classes,
    })
}

/// A distillation teacher is a classifier of the data's classes (read here, loaded by the
/// task once the seed is set).
fn check_teacher(path: &std::path::Path, classes: usize) -> anyhow::Result<()> {
    let (ckpt, _) = Checkpoint::read_as::<ClassifierSpec>(path)?;
    if ckpt.metadata.classes.len() != classes {
        bail!(TrainInputError(format!(
            "{}: the teacher has {} classes, the data {classes}",
            path.display(),
            ckpt.metadata.classes.len()
        )));
    }
    Ok(())
}

/// `--nproc N`: the checks every rank makes first, made once before any rank starts, so a
/// bad recipe, dataset or checkpoint is one message, not N; and each rank's share of the
/// training split must make a full batch.
pub fn check(request: &RunRequest, nproc: usize) -> anyhow::Result<()> {
    data_parallel::check_rank_share(&prepare(request)?.train_loader, nproc)?;
    Ok(())
}

pub fn train(request: RunRequest) -> anyhow::Result<Summary> {
    let Prepared {
        mut config,
        arch,
        device,
        train_loader,
        val_loader,
        classes,
    } = prepare(&request)?;
    set_up(&mut config.train, device);
    let engine_config = config.engine();
    let mut task = Classification::new(config, arch, classes, val_loader, device)?;
    fit(&mut task, &train_loader, &engine_config, &request.options())
}
