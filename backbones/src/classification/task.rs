//! Image classification as a task of the training engine: a ResNet, a MobileNet or an
//! Inception-V3, cross-entropy against (smoothed, mixed) one-hot targets or a teacher's soft
//! targets (plus, for Inception-V3, its auxiliary classifier's weighted loss), top-1/top-5 on
//! the validation split.

use super::config::TrainConfig;
use super::evaluate::{evaluate, DeviceBatch};
use super::subset::Subset;
use crate::arch::ClassifierArch;
use crate::classifier::{Classifier, Normalizer};
use crate::layers::PreparedInference;
use crate::network::{ClassifierConfig, ClassifierNet};
use datasets::classify::{ClassificationBatch, ClassificationCollate, ClassificationDataset};
use datasets::loader::Loader;
use datasets::rng::stream_rng;
use engine::amp::Autocast;
use engine::checkpoint::{Metadata, TaskKind};
use engine::data_parallel;
use engine::loss::{distillation_loss, one_hot_targets, soft_cross_entropy};
use engine::mix::{apply_mix, Mix};
use engine::task::{Learner, Losses, Metrics, Step, Task};
use rand::RngExt;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

pub type ClassificationLoader = Loader<Subset<ClassificationDataset>, ClassificationCollate>;

/// Mixup's lambda for micro-batch `m` is drawn from `stream_rng(seed, MIX_STREAM ^ m)`.
const MIX_STREAM: u64 = 0x4D49_5800;

/// Dropout's masks for micro-batch `m` come from libtorch's generator seeded from
/// `stream_rng(seed, DROPOUT_STREAM ^ m)`, so a resumed run draws the same masks.
const DROPOUT_STREAM: u64 = 0x4452_4F50;

pub struct Classification {
    config: TrainConfig,
    arch: ClassifierArch,
    model_config: ClassifierConfig,
    classes: Vec<String>,
    vs: nn::VarStore,
    model: ClassifierNet,
    normalizer: Normalizer,
    teacher: Option<Classifier>,
    val: ClassificationLoader,
}

impl Classification {
    /// Builds the model (seed it first: `engine::fit::set_up`) and loads the teacher, if any.
    pub fn new(
        config: TrainConfig,
        arch: ClassifierArch,
        classes: Vec<String>,
        val: ClassificationLoader,
        device: Device,
    ) -> anyhow::Result<Self> {
        // The recipe was validated, so a MobileNet never comes here with zero-gamma, nor a
        // ResNet with an auxiliary classifier.
        let mut model_config = ClassifierConfig::for_training(
            arch,
            classes.len() as i64,
            config.model.zero_gamma,
            config.model.norm,
        )
        .and_then(|mut c| c.set_aux_logits(config.model.aux_logits(arch)).map(|_| c))
        .map_err(|e| engine::fit::TrainInputError(format!("model: {e}")))?;
        if let ClassifierConfig::InceptionV3(c) = &mut model_config {
            if let Some(init) = config.model.init {
                c.init = init;
            }
            if let Some(p) = config.model.dropout {
                c.dropout = p;
            }
        }
        let vs = nn::VarStore::new(device);
        let model = ClassifierNet::new(&vs.root(), &model_config);
        let teacher = config
            .distill
            .as_ref()
            .map(|d| Classifier::from_checkpoint(&d.teacher, device).map(|t| (d, t)))
            .transpose()?
            .map(|(d, t)| {
                if t.classes.len() == classes.len() {
                    Ok(t)
                } else {
                    Err(engine::fit::TrainInputError(format!(
                        "{}: the teacher has {} classes, the data {}",
                        d.teacher.display(),
                        t.classes.len(),
                        classes.len()
                    )))
                }
            })
            .transpose()?;
        Ok(Classification {
            normalizer: Normalizer::new(&config.data.normalization.values(), device),
            config,
            arch,
            model_config,
            classes,
            vs,
            model,
            teacher,
            val,
        })
    }

    fn forward(&self, model: &ClassifierNet, x: &Tensor, train: bool) -> Tensor {
        model.forward_t(x, train).to_kind(Kind::Float)
    }
}

impl Learner for Classification {
    type Input = DeviceBatch;

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn losses(&mut self, input: &DeviceBatch, step: &Step) -> Losses {
        let (loss_config, epochs) = (&self.config.loss, self.config.schedule.epochs);
        let x = input.input(&self.normalizer, self.config.train.channels_last);
        let targets = one_hot_targets(
            &input.labels,
            self.classes.len() as i64,
            loss_config.label_smoothing,
            loss_config.smoothing_style,
        );
        let mixing = step.epoch + loss_config.mix_off_last_epochs < epochs;
        let mix = if mixing { &loss_config.mix } else { &Mix::None };
        let mut mix_rng = stream_rng(self.config.train.seed, MIX_STREAM ^ step.micro_batch);
        let (x, targets) = apply_mix(mix, &x, &targets, &mut mix_rng);
        if self.model.dropout() > 0.0 {
            let mut rng = stream_rng(self.config.train.seed, DROPOUT_STREAM ^ step.micro_batch);
            tch::manual_seed((rng.random::<u64>() >> 1) as i64);
        }
        let (logits, aux) = self.model.forward_aux(&x, true);
        let logits = logits.to_kind(Kind::Float);
        let loss = match (&self.teacher, &self.config.distill) {
            (Some(teacher), Some(d)) => {
                let teacher_logits = tch::no_grad(|| self.forward(&teacher.model, &x, false));
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
        let mut losses = Losses::from([("loss".to_string(), loss)]);
        if let Some(aux) = aux {
            // Against the (smoothed, mixed) labels, as TF-slim trains Inception-V3's, also
            // when the main loss is distilled.
            let aux_loss = soft_cross_entropy(&aux.to_kind(Kind::Float), &targets);
            losses.insert(
                "loss_aux".to_string(),
                aux_loss * self.config.model.aux_weight(),
            );
        }
        losses
    }
}

impl Task for Classification {
    type Config = TrainConfig;
    type Batch = ClassificationBatch;

    const BEST_METRIC: &'static str = "top1";

    fn config(&self) -> &TrainConfig {
        &self.config
    }

    fn upload(&self, batch: &ClassificationBatch) -> DeviceBatch {
        DeviceBatch::upload(batch, self.vs.device())
    }

    fn evaluate(&mut self, autocast: Autocast) -> anyhow::Result<Metrics> {
        let _prepared = PreparedInference::new(&self.model);
        let m = evaluate(
            &self.model,
            self.val.epoch(0, 0),
            &self.normalizer,
            self.vs.device(),
            self.config.train.channels_last,
            autocast,
        )?;
        // Each rank evaluated its shard of the validation images: sum the counts over ranks
        // so that every rank reports (and picks `best` by) the same metrics.
        let mut sums = [m.correct1, m.correct5, m.loss_sum, m.images as f64];
        data_parallel::sum_f64(&mut sums, "the evaluation's counts")?;
        let [correct1, correct5, loss_sum, images] = sums;
        let n = images.max(1.0);
        Ok(Metrics::from([
            ("top1".to_string(), correct1 / n),
            ("top5".to_string(), correct5 / n),
            ("loss".to_string(), loss_sum / n),
            ("images".to_string(), images),
        ]))
    }

    fn metadata(&self) -> Metadata {
        Metadata {
            task: TaskKind::Classification,
            arch: self.arch.to_string(),
            num_classes: self.classes.len() as i64,
            classes: self.classes.clone(),
            model: self.model_config.to_json(),
            transform: Some(
                serde_json::to_value(self.config.data.eval_transform()).expect("serialises"),
            ),
            config: Some(serde_json::to_value(&self.config).expect("serialises")),
            epoch: None,
            iter: None,
            metrics: None,
        }
    }
}
