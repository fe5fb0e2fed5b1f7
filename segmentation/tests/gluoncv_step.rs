//! The ADE20K recipe (configs/segmentation/ade20k-fcn.toml) takes GluonCV's optimiser step.
//!
//! GluonCV 2018 (dmlc/gluon-cv 49be0191) trained fcn_resnet50_ade on 4 GPUs, 4 crops each,
//! with `MixSoftmaxCrossEntropyLoss(aux=True, aux_weight=0.5)`, whose cross-entropy is MXNet's
//! `SoftmaxOutput(use_ignore, multi_output, normalization='valid')`: its backward (MXNet 1.3,
//! src/operator/softmax_output-inl.h) writes `(softmax - onehot) / valid` into each pixel's
//! logits, `valid` being the labelled pixels of that GPU's batch, and ignores the gradient it
//! is given, so the aux weight scales nothing. `Trainer.step(16)` then sums the 4 GPUs'
//! gradients and multiplies by 1/16, and MXNet's SGD moves each weight by
//! `-lr x lr_mult x (grad / 16 + wd x weight)` on the first step (the momentum is zero).
//!
//! Here that update is computed by hand from the upsampled logits of one forward pass
//! (explicit per-pixel softmax less one-hot, divided by each group of 4 images' labelled
//! pixels, for both heads at weight 1), with GluonCV's own numbers (lr 0.01, wd 1e-4, heads
//! at 10x), and compared with what the recipe's loss and the engine's SGD (linear scaling
//! rule, learning-rate multipliers, weight decay) do to the same model.

use backbones::layers::NormMode;
use e2e::repo_root;
use engine::command::Recipe;
use engine::optim::Sgd;
use engine::schedule::{linear_scaled_lr, LrSchedule};
use segmentation::config::FinetuneConfig;
use segmentation::fcn::{Fcn, FcnConfig};
use segmentation::finetune::load_config;
use segmentation::task::weighted_losses;
use std::collections::BTreeMap;
use tch::{nn, Device, Kind, Tensor};

/// GluonCV's command for fcn_resnet50_ade (dmlc/web-data gluoncv/logs/segmentation/
/// fcn_resnet50_ade.sh) and train.py's defaults at 49be0191.
const GLUONCV_LR: f64 = 0.01;
const GLUONCV_WD: f64 = 1e-4;
const GLUONCV_BATCH: i64 = 16;
const GLUONCV_GPUS: i64 = 4;
/// fcn.py at 49be0191: `head` and `auxlayer` get `lr_mult = 10`.
const GLUONCV_HEAD_LR_MULT: f64 = 10.0;

const CLASSES: i64 = 5;
const SIDE: i64 = 16;
const IGNORE: i64 = 255;

fn recipe(sets: &[&str]) -> FinetuneConfig {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    load_config(
        &repo_root().join("configs/segmentation/ade20k-fcn.toml"),
        &sets,
        None,
    )
    .unwrap()
}

/// A ResNet-18 FCN with the recipe's head, stride and norm, 5 classes (random weights).
fn model(config: &FinetuneConfig, vs: &nn::VarStore) -> Fcn {
    let mut fcn = FcnConfig::new(
        "resnet18".parse().unwrap(),
        config.model.output_stride,
        CLASSES,
        config.model.aux,
    );
    fcn.backbone.norm = config.model.norm;
    Fcn::new(&vs.root(), &fcn)
}

/// 16 crops whose groups of 4 have very different labelled shares (all, 1/2, 1/10 and one
/// whole crop unlabelled), so that GluonCV's per-GPU normalisation differs from a mean over
/// the batch.
fn batch() -> (Tensor, Tensor) {
    tch::manual_seed(11);
    let opts = (Kind::Float, Device::Cpu);
    let x = Tensor::randn([GLUONCV_BATCH, 3, SIDE, SIDE], opts);
    let classes = Tensor::randint(
        CLASSES,
        [GLUONCV_BATCH, SIDE, SIDE],
        (Kind::Int64, Device::Cpu),
    );
    let labelled_share = [
        1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.0, 0.3, 0.3, 0.3,
    ];
    let share = Tensor::from_slice(&labelled_share)
        .view([GLUONCV_BATCH, 1, 1])
        .to_kind(Kind::Float);
    let keep = Tensor::rand([GLUONCV_BATCH, SIDE, SIDE], opts).lt_tensor(&share);
    let labels = classes
        .where_self(&keep, &Tensor::from(IGNORE))
        .to_kind(Kind::Uint8);
    (x, labels)
}

fn trainable(vs: &nn::VarStore) -> BTreeMap<String, Tensor> {
    vs.variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .map(|(name, t)| (name, t.detach().copy()))
        .collect()
}

/// The change one step of the project's training path makes to every trainable parameter:
/// the recipe's losses (as the task builds them), their sum backward, the engine's SGD at the
/// recipe's first learning rate.
fn project_step(
    config: &FinetuneConfig,
    vs: &nn::VarStore,
    fcn: &Fcn,
    x: &Tensor,
    labels: &Tensor,
) -> BTreeMap<String, Tensor> {
    let before = trainable(vs);
    let mut sgd = Sgd::with_lr_mult(vs, &config.optim.sgd(), &config.optim.lr_mult);
    let engine = config.engine();
    let schedule = LrSchedule::new(
        linear_scaled_lr(config.optim.lr, engine.effective_batch()),
        config.schedule.warmup_epochs,
        config.schedule.decay.clone(),
        config.schedule.epochs as f64,
        100,
    );
    sgd.zero_grad();
    tch::manual_seed(5); // the heads' dropout masks, the same in both computations
    let losses = weighted_losses(fcn, x, labels, &config.model);
    let total = losses.into_values().reduce(|a, b| a + b).unwrap();
    total.backward();
    sgd.step(schedule.lr(0), None);
    let after = trainable(vs);
    before
        .into_iter()
        .map(|(name, b)| {
            let delta = &after[&name] - b;
            (name, delta)
        })
        .collect()
}

/// Each pixel's gradient with respect to its (upsampled) logits in GluonCV: softmax less
/// one-hot, divided by the labelled pixels of its GPU's 4 images; 0 where unlabelled.
fn softmax_output_gradient(logits: &Tensor, labels: &Tensor) -> Tensor {
    let labels = labels.to_kind(Kind::Int64);
    let labelled = labels.ne(IGNORE);
    let probabilities = logits.softmax(1, Kind::Double);
    let one_hot = labels
        .where_self(&labelled, &Tensor::from(0i64))
        .one_hot(CLASSES)
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Double);
    let per_gpu = GLUONCV_BATCH / GLUONCV_GPUS;
    let valid = labelled
        .view([GLUONCV_GPUS, -1])
        .sum_dim_intlist(&[1i64][..], false, Kind::Double)
        .clamp_min(1.0) // MXNet: valid_cnt == 0 becomes 1
        .repeat_interleave_self_int(per_gpu, 0, None)
        .view([GLUONCV_BATCH, 1, 1, 1]);
    (probabilities - one_hot) * labelled.unsqueeze(1).to_kind(Kind::Double) / valid
}

/// GluonCV's first-step change of every trainable parameter of `fcn` on this batch.
fn gluoncv_step(
    vs: &nn::VarStore,
    fcn: &Fcn,
    x: &Tensor,
    labels: &Tensor,
) -> BTreeMap<String, Tensor> {
    tch::manual_seed(5);
    let out = fcn.forward_to(x, (SIDE, SIDE), true, true);
    let aux = out.aux.expect("the recipe trains the aux head");
    // Both heads' pixels get SoftmaxOutput's gradient at weight 1: the 0.5 never reaches it.
    let main_gradient = softmax_output_gradient(&out.out.detach(), labels);
    let aux_gradient = softmax_output_gradient(&aux.detach(), labels);
    ((&out.out * main_gradient).sum(Kind::Double) + (&aux * aux_gradient).sum(Kind::Double))
        .backward();
    let rescale_grad = 1.0 / GLUONCV_BATCH as f64; // Trainer.step(batch_size)
    trainable(vs)
        .into_iter()
        .map(|(name, weight)| {
            let grad = vs.variables()[&name].grad();
            let lr_mult = if name.starts_with("classifier.") || name.starts_with("aux_classifier.")
            {
                GLUONCV_HEAD_LR_MULT
            } else {
                1.0
            };
            // sgd_mom_update with a zero momentum buffer: mom = -lr (rescale g + wd w).
            let delta = -(grad * rescale_grad + weight * GLUONCV_WD) * (GLUONCV_LR * lr_mult);
            (name, delta)
        })
        .collect()
}

/// A model's two copies (double precision: an update of 1e-5 read off a float BN scale of 1
/// would keep two digits).
fn initial_model(config: &FinetuneConfig) -> (nn::VarStore, Fcn) {
    tch::manual_seed(0);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let fcn = model(config, &vs);
    vs.double();
    (vs, fcn)
}

/// For each recipe, the largest difference between its first update and GluonCV's, relative
/// to each tensor's largest GluonCV update.
fn mismatches(configs: &[FinetuneConfig]) -> Vec<f64> {
    let (x, labels) = batch();
    let x = x.to_kind(Kind::Double);
    let (gluon_vs, gluon_model) = initial_model(&configs[0]);
    let theirs = gluoncv_step(&gluon_vs, &gluon_model, &x, &labels);
    configs
        .iter()
        .map(|config| {
            let (project_vs, project_model) = initial_model(config);
            let ours = project_step(config, &project_vs, &project_model, &x, &labels);
            assert_eq!(ours.len(), theirs.len());
            ours.iter()
                .map(|(name, delta)| {
                    let expected = &theirs[name];
                    let scale = expected.abs().max().double_value(&[]);
                    assert!(scale > 0.0, "{name} does not move");
                    (delta - expected).abs().max().double_value(&[]) / scale
                })
                .fold(0.0, f64::max)
        })
        .collect()
}

#[test]
fn the_ade20k_recipe_takes_gluoncvs_first_step() {
    let config = recipe(&[]);
    assert_eq!(config.model.norm, NormMode::Sync);
    assert_eq!(config.data.batch_size as i64, GLUONCV_BATCH);
    // What the recipe read before, GluonCV's numbers taken at face value, one at a time and
    // all together.
    let before: [&[&str]; 3] = [
        &["model.aux_weight=0.5"],
        &["model.loss_group_images=0"],
        &[
            "model.aux_weight=0.5",
            "model.loss_group_images=0",
            "optim.lr=0.16",
            "optim.weight_decay=1e-4",
        ],
    ];
    let configs: Vec<FinetuneConfig> = std::iter::once(config)
        .chain(before.iter().map(|sets| recipe(sets)))
        .collect();
    let errors = mismatches(&configs);
    assert!(
        errors[0] < 1e-4,
        "the recipe's step is off GluonCV's by {} of its size",
        errors[0]
    );
    for (sets, error) in before.iter().zip(&errors[1..]) {
        assert!(
            *error > 1e-2,
            "{sets:?} gives GluonCV's step too (off by {error})"
        );
    }
}
