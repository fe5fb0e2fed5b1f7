//! `backbone train`: the training loop of the paper's recipes, in the style of torchvision's
//! reference scripts: warmup and schedule per iteration, logging, a stop on a non-finite loss,
//! evaluation and checkpoints every epoch, and exact resumption.
//!
//! Host-device syncs happen only at log points (every `train.log_every` iterations), state
//! saves and epoch ends; the non-finite check accumulates on the device in between.

use super::config::TrainConfig;
use super::evaluate::{batch_to_device, evaluate, EvalMetrics};
use super::subset::Subset;
use crate::arch::Arch;
use crate::channels_last::var_store_to_channels_last;
use crate::checkpoint::{load_into, var_store_tensors, Checkpoint, Metadata, Task};
use crate::classifier::{Classifier, Normalizer};
use crate::engine::amp::LossScaler;
use crate::engine::config_file;
use crate::engine::curves::write_curves_png;
use crate::engine::ema::Ema;
use crate::engine::loss::{distillation_loss, one_hot_targets, soft_cross_entropy};
use crate::engine::mix::{apply_mix, Mix};
use crate::engine::optim::Sgd;
use crate::engine::run_dir::{prefixed, with_prefix, RunDir, TrainState};
use crate::engine::schedule::{linear_scaled_lr, LrSchedule};
use crate::resnet::{ResNet, ResNetConfig};
use anyhow::{bail, Context};
use datasets::classify::{
    open_images, ClassificationCollate, ClassificationDataset, ClassificationSplit,
    ClassificationTransform, EvalTransform,
};
use datasets::loader::{Loader, LoaderConfig};
use datasets::rng::stream_rng;
use datasets::spec::DatasetSpec;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

pub type ClassificationLoader = Loader<Subset<ClassificationDataset>, ClassificationCollate>;

/// What the command line adds to the config.
pub struct TrainOptions {
    pub config: PathBuf,
    pub sets: Vec<String>,
    pub data: Option<String>,
    pub out: PathBuf,
    pub resume: bool,
    pub device: Device,
    /// Stop (with the state saved) after this many global iterations.
    pub max_iters: Option<u64>,
}

/// The outcome of a run, for the caller to print.
#[derive(Debug)]
pub struct TrainSummary {
    pub epochs_done: u64,
    pub iters: u64,
    pub last_eval: Option<EvalMetrics>,
    pub best_top1: Option<f64>,
    pub skipped_images: usize,
    pub stopped_early: bool,
}

/// A config error or bad data: the user's to fix (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TrainInputError(pub String);

const MIX_STREAM: u64 = 0x4D49_5800;

/// Opens the train and validation loaders of a config.
pub fn open_loaders(
    config: &TrainConfig,
    spec: &str,
) -> anyhow::Result<(ClassificationLoader, ClassificationLoader)> {
    let spec = DatasetSpec::parse(spec).map_err(|e| TrainInputError(e.to_string()))?;
    let augment = config.data.augment.clone();
    let eval = config.data.eval_transform();
    let open = |split,
                transform,
                limit: Option<usize>,
                shuffle,
                drop_last|
     -> anyhow::Result<ClassificationLoader> {
        let source = open_images(&spec, split)?;
        let dataset = ClassificationDataset::new(source, transform);
        let size = dataset.image_size();
        let n = limit.unwrap_or(usize::MAX);
        let subset = Subset::random(dataset, n, config.train.seed);
        let loader_config = LoaderConfig {
            batch_size: config.data.batch_size,
            workers: config.data.workers,
            prefetch: config.data.prefetch.max(1),
            shuffle,
            drop_last,
            seed: config.train.seed,
            rank: 0,
            world_size: 1,
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
        ClassificationTransform::Train(augment),
        config.data.max_train_samples,
        true,
        true,
    )?;
    let val = open(
        ClassificationSplit::Val,
        ClassificationTransform::Eval(eval),
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

fn metadata(
    config: &TrainConfig,
    arch: Arch,
    model: &ResNetConfig,
    classes: Vec<String>,
    eval: &EvalTransform,
) -> Metadata {
    Metadata {
        task: Task::Classification,
        arch: arch.to_string(),
        num_classes: classes.len() as i64,
        classes,
        model: serde_json::to_value(model).expect("serialises"),
        transform: Some(serde_json::to_value(eval).expect("serialises")),
        config: Some(serde_json::to_value(config).expect("serialises")),
        epoch: None,
        iter: None,
        metrics: None,
    }
}

pub fn train(opts: TrainOptions) -> anyhow::Result<TrainSummary> {
    let mut sets = opts.sets.clone();
    if let Some(data) = &opts.data {
        sets.push(format!("data.spec=\"{data}\""));
    }
    let config: TrainConfig =
        config_file::load(&opts.config, &sets).map_err(|e| TrainInputError(e.to_string()))?;
    let arch = config
        .validate()
        .map_err(|e| TrainInputError(format!("{}: {e}", opts.config.display())))?;
    if config.train.amp && opts.device == Device::Cpu {
        bail!(TrainInputError(
            "train.amp = true needs a CUDA device (fp16 autocast is CUDA-only in libtorch); run with --device cuda or --set train.amp=false".into()
        ));
    }
    if config.train.threads > 0 {
        tch::set_num_threads(config.train.threads as i32);
    }
    let spec = config.data.spec.clone().ok_or_else(|| {
        TrainInputError(format!(
            "{}: no dataset: set data.spec or pass --data KIND:PATH",
            opts.config.display()
        ))
    })?;
    let device = opts.device;
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
    }

    let mut run = RunDir::open(&opts.out, opts.resume)?;
    let (train_loader, val_loader) = open_loaders(&config, &spec)?;
    let classes = train_loader.dataset().inner().source().class_names();
    let normalizer = Normalizer::new(&config.data.normalization.values(), device);
    let eval_transform = config.data.eval_transform();
    let model_config = ResNetConfig {
        zero_gamma: config.model.zero_gamma,
        ..ResNetConfig::classifier(arch, classes.len() as i64)
    };

    tch::manual_seed(config.train.seed as i64);
    let vs = nn::VarStore::new(device);
    let model = ResNet::new(&vs.root(), &model_config);
    if config.train.channels_last {
        var_store_to_channels_last(&vs);
    }
    let mut sgd = Sgd::new(&vs, &config.sgd());
    let iters_per_epoch = train_loader.batches_per_epoch() as u64;
    let schedule = LrSchedule::new(
        linear_scaled_lr(config.optim.lr, config.data.batch_size),
        config.schedule.warmup_epochs,
        config.schedule.decay.clone(),
        config.schedule.epochs as f64,
        iters_per_epoch,
    );
    let mut scaler = config.train.amp.then(|| LossScaler::new(device));
    let mut ema = config.train.ema_decay.map(|d| Ema::new(&vs, d));
    let teacher = match &config.distill {
        Some(d) => {
            let t = Classifier::from_checkpoint(&d.teacher, device).with_context(|| {
                format!("loading the distillation teacher {}", d.teacher.display())
            })?;
            if t.classes.len() != classes.len() {
                bail!(TrainInputError(format!(
                    "{}: the teacher has {} classes, the data {}",
                    d.teacher.display(),
                    t.classes.len(),
                    classes.len()
                )));
            }
            Some(t)
        }
        None => None,
    };
    let config_json = serde_json::to_value(&config)?;

    let (mut epoch, mut start_batch, mut iter, mut best) = (0u64, 0u64, 0u64, None::<f64>);
    if opts.resume {
        let state = run.load_state()?;
        let saved: TrainConfig = serde_json::from_value(state.config.clone()).map_err(|e| {
            TrainInputError(format!(
                "{}: unreadable config in the state ({e})",
                run.path(RunDir::STATE).display()
            ))
        })?;
        let diffs = config_file::differences(&saved, &config);
        if !diffs.is_empty() {
            bail!(TrainInputError(format!(
                "{}: cannot resume with a different config ({}); start a new run with another --out",
                opts.out.display(),
                diffs.join("; ")
            )));
        }
        load_into(
            &vs,
            &with_prefix(&state.tensors, "model."),
            &run.path(RunDir::STATE),
            &arch.to_string(),
        )?;
        sgd.load_state(&state.tensors)
            .map_err(|e| TrainInputError(format!("{}: {e}", run.path(RunDir::STATE).display())))?;
        if let Some(s) = scaler.as_mut() {
            s.load_state(&state.tensors).map_err(|e| {
                TrainInputError(format!("{}: {e}", run.path(RunDir::STATE).display()))
            })?;
        }
        if let Some(e) = ema.as_mut() {
            e.load_state(&state.tensors).map_err(|e| {
                TrainInputError(format!("{}: {e}", run.path(RunDir::STATE).display()))
            })?;
        }
        (epoch, start_batch, iter, best) =
            (state.epoch, state.batch, state.iter, state.best_metric);
        run.truncate_metrics_after(iter)?;
        eprintln!(
            "resuming {} at epoch {epoch}, batch {start_batch} (iteration {iter})",
            opts.out.display()
        );
    } else {
        run.write_config(&config_file::to_toml(&config))?;
    }

    let save_state = |run: &RunDir,
                      sgd: &Sgd,
                      scaler: &Option<LossScaler>,
                      ema: &Option<Ema>,
                      epoch,
                      batch,
                      iter,
                      best| {
        let mut tensors = prefixed(var_store_tensors(&vs), "model.");
        // The optimiser, scaler and EMA name their own tensors with distinct prefixes.
        tensors.extend(sgd.state());
        if let Some(s) = scaler {
            tensors.extend(s.state());
        }
        if let Some(e) = ema {
            tensors.extend(e.state());
        }
        run.save_state(&TrainState {
            epoch,
            batch,
            iter,
            best_metric: best,
            config: config_json.clone(),
            tensors,
        })
    };

    let num_classes = classes.len() as i64;
    let params: Vec<Tensor> = vs.trainable_variables();
    let progress = Progress::new(config.schedule.epochs * iters_per_epoch, iter);
    let mut first_bad_iter = Tensor::full([], -1i64, (Kind::Int64, device));
    let mut loss_sum = Tensor::zeros([], (Kind::Float, device));
    let mut logged_since = 0u64;
    let mut last_eval = None;
    let mut window_start = Instant::now();
    let mut stopped_early = false;
    let run_start = Instant::now();

    'epochs: while epoch < config.schedule.epochs {
        let mixing = epoch + config.loss.mix_off_last_epochs < config.schedule.epochs;
        let mix = if mixing {
            config.loss.mix.clone()
        } else {
            Mix::None
        };
        let mut batches = train_loader.epoch(epoch, start_batch as usize);
        let mut batch_no = start_batch;
        while let Some(batch) = batches.next() {
            let batch = batch.map_err(|e| {
                TrainInputError(format!(
                    "{e} (use data.skip_bad = true to leave such files out)"
                ))
            })?;
            let (x, labels) =
                batch_to_device(&batch, &normalizer, device, config.train.channels_last);
            let targets = one_hot_targets(
                &labels,
                num_classes,
                config.loss.label_smoothing,
                config.loss.smoothing_style,
            );
            let mut mix_rng = stream_rng(config.train.seed, MIX_STREAM ^ iter);
            let (x, targets) = apply_mix(&mix, &x, &targets, &mut mix_rng);
            let lr = schedule.lr(iter);

            let forward = || model.forward_t(&x, true);
            let logits = if config.train.amp {
                tch::autocast(true, forward)
            } else {
                forward()
            }
            .to_kind(Kind::Float);
            let loss = match (&teacher, &config.distill) {
                (Some(t), Some(d)) => {
                    let teacher_logits = tch::no_grad(|| {
                        if config.train.amp {
                            tch::autocast(true, || t.model.forward_t(&x, false))
                        } else {
                            t.model.forward_t(&x, false)
                        }
                    })
                    .to_kind(Kind::Float);
                    distillation_loss(
                        &logits,
                        &teacher_logits,
                        &targets,
                        d.temperature,
                        d.hard_weight,
                    )
                }
                _ => soft_cross_entropy(&logits, &targets),
            };

            sgd.zero_grad();
            match scaler.as_mut() {
                Some(s) => {
                    s.scale(&loss).backward();
                    let found_inf = s.unscale(&params);
                    sgd.step(lr, Some(&found_inf));
                    s.update(&found_inf);
                }
                None => {
                    loss.backward();
                    sgd.step(lr, None);
                }
            }
            if let Some(e) = ema.as_mut() {
                e.update(&vs);
            }
            tch::no_grad(|| {
                let detached = loss.detach();
                let first_bad = detached
                    .isfinite()
                    .logical_not()
                    .logical_and(&first_bad_iter.lt(0));
                let _ = first_bad_iter.masked_fill_(&first_bad, iter as i64);
                loss_sum += detached;
            });
            iter += 1;
            batch_no += 1;
            logged_since += 1;

            let at_checkpoint = config.train.checkpoint_every_iters > 0
                && iter % config.train.checkpoint_every_iters == 0;
            let at_stop = opts.max_iters.is_some_and(|m| iter >= m);
            if iter % config.train.log_every == 0
                || at_checkpoint
                || at_stop
                || batch_no == iters_per_epoch
            {
                check_finite(&first_bad_iter, epoch)?;
                let mean_loss = loss_sum.double_value(&[]) / logged_since as f64;
                let images_per_s = (logged_since * config.data.batch_size as u64) as f64
                    / window_start.elapsed().as_secs_f64();
                let mut record = serde_json::json!({
                    "epoch": epoch, "iter": iter, "split": "train", "time": run_start.elapsed().as_secs_f64(),
                    "loss": mean_loss, "lr": lr, "images_per_s": images_per_s,
                });
                if let Some(s) = &scaler {
                    record["loss_scale"] = s.scale_value().into();
                }
                run.log(&record)?;
                progress.update(iter, epoch, mean_loss, lr, images_per_s);
                let _ = loss_sum.zero_();
                logged_since = 0;
                window_start = Instant::now();
            }
            if at_checkpoint && batch_no < iters_per_epoch {
                save_state(&run, &sgd, &scaler, &ema, epoch, batch_no, iter, best)?;
            }
            if at_stop {
                drop(batches);
                if batch_no == iters_per_epoch {
                    // Finish the epoch's bookkeeping below before stopping.
                    stopped_early = true;
                    break;
                }
                save_state(&run, &sgd, &scaler, &ema, epoch, batch_no, iter, best)?;
                stopped_early = true;
                break 'epochs;
            }
        }

        // End of epoch: evaluate (the EMA weights when kept), save last/best, then the state.
        let ema_model = match &ema {
            Some(e) => {
                let ema_vs = nn::VarStore::new(device);
                let m = ResNet::new(&ema_vs.root(), &model_config);
                load_into(
                    &ema_vs,
                    e.tensors(),
                    &run.path(RunDir::STATE),
                    "the EMA weights",
                )?;
                Some((ema_vs, m))
            }
            None => None,
        };
        let eval_model: &dyn ModuleT = match &ema_model {
            Some((_, m)) => m,
            None => &model,
        };
        let metrics = evaluate(
            eval_model,
            val_loader.epoch(0, 0),
            &normalizer,
            device,
            config.train.channels_last,
            config.train.amp,
        )?;
        run.log(&serde_json::json!({
            "epoch": epoch, "iter": iter, "split": "val", "time": run_start.elapsed().as_secs_f64(),
            "top1": metrics.top1, "top5": metrics.top5, "loss": metrics.loss,
        }))?;
        progress.println(&format!(
            "epoch {epoch}: val top-1 {:.4} top-5 {:.4} loss {:.4}",
            metrics.top1, metrics.top5, metrics.loss
        ));
        let mut meta = metadata(
            &config,
            arch,
            &model_config,
            classes.clone(),
            &eval_transform,
        );
        meta.epoch = Some(epoch);
        meta.iter = Some(iter);
        meta.metrics = Some(serde_json::to_value(metrics)?);
        let weights = match &ema {
            Some(e) => e
                .tensors()
                .iter()
                .map(|(k, v)| (k.clone(), v.shallow_clone()))
                .collect(),
            None => var_store_tensors(&vs),
        };
        let ckpt = Checkpoint {
            metadata: meta,
            tensors: weights,
        };
        ckpt.write(&run.path(RunDir::LAST))?;
        if best.is_none_or(|b| metrics.top1 > b) {
            best = Some(metrics.top1);
            ckpt.write(&run.path(RunDir::BEST))?;
        }
        last_eval = Some(metrics);
        epoch += 1;
        start_batch = 0;
        save_state(&run, &sgd, &scaler, &ema, epoch, 0, iter, best)?;
        if let Err(e) = write_curves_png(&run.path(RunDir::METRICS), &run.path(RunDir::CURVES)) {
            progress.println(&format!(
                "warning: could not draw {}: {e:#}",
                RunDir::CURVES
            ));
        }
        if stopped_early {
            break;
        }
    }
    progress.finish();
    let skipped = train_loader.skipped();
    for s in &skipped {
        eprintln!("skipped {}: {}", s.path.display(), s.error);
    }
    Ok(TrainSummary {
        epochs_done: epoch,
        iters: iter,
        last_eval,
        best_top1: best,
        skipped_images: skipped.len(),
        stopped_early,
    })
}

fn check_finite(first_bad_iter: &Tensor, epoch: u64) -> anyhow::Result<()> {
    let bad = first_bad_iter.int64_value(&[]);
    if bad >= 0 {
        bail!(
            "the training loss became non-finite (NaN or inf) at iteration {bad} (epoch {epoch}); stopping. \
             last.safetensors and state.safetensors hold the last good checkpoint; lower optim.lr or check the data"
        );
    }
    Ok(())
}

/// A progress bar on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(total: u64, done: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_position(done);
            bar
        });
        Progress { bar }
    }

    fn update(&self, iter: u64, epoch: u64, loss: f64, lr: f64, images_per_s: f64) {
        let msg = format!("loss {loss:.4} lr {lr:.4} {images_per_s:.0} img/s");
        match &self.bar {
            Some(bar) => {
                bar.set_prefix(format!("epoch {epoch}"));
                bar.set_position(iter);
                bar.set_message(msg);
            }
            None => eprintln!("epoch {epoch} iter {iter}: {msg}"),
        }
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
