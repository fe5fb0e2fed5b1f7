//! The FCN fine-tuning recipe, as a TOML file (configs/segmentation/*.toml): `[model]`,
//! `[data]` and `[loss]`-free sections of its own plus the engine's `[optim]`, `[schedule]`
//! and `[train]`. Every section rejects unknown keys; missing keys take GluonCV's ADE20K
//! values.

use backbones::classification::config::NormalizationChoice;
use datasets::segmentation_transforms::{ScaleSide, SegmentationTrainTransform};
use engine::command::{Recipe, RecipeSections};
use engine::config::{OptimSection, RunSection, ScheduleSection};
use engine::limits::{self, check};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    #[serde(default)]
    pub model: ModelSection,
    #[serde(default)]
    pub data: DataSection,
    pub optim: OptimSection,
    pub schedule: ScheduleSection,
    #[serde(default)]
    pub train: RunSection,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// 8 (layer3 and layer4 dilated, GluonCV's and torchvision's FCN) or 16.
    pub output_stride: i64,
    /// Train with the auxiliary head on layer3.
    pub aux: bool,
    /// Weight of the auxiliary loss. GluonCV's scripts pass 0.5, but its loss gave the aux
    /// head the main head's gradient whatever the weight (docs/architecture.md, "The FCN
    /// loss, as GluonCV's gradient"): 1.0 is what it trained with.
    pub aux_weight: f64,
    /// Images per cross-entropy mean: each group of this many consecutive images of a
    /// batch has its loss averaged over its own labelled pixels, and the groups' means are
    /// averaged. GluonCV normalised each GPU's share of the batch this way (4 images at batch
    /// 16 on 4 GPUs). 0: the whole batch (of this process) is one group. Must divide
    /// `data.batch_size`.
    pub loss_group_images: usize,
    /// Batch norm of the body and heads: "batch" (per process) or "sync" (statistics over
    /// every rank of a data-parallel run, as GluonCV's FCN trained; one process: the same as
    /// "batch").
    pub norm: backbones::layers::NormMode,
    /// Upsample the logits with corners aligned, as GluonCV's FCN (MXNet's `BilinearResize2D`)
    /// does, in the training loss and in evaluation. Unlike the other keys the default is not
    /// GluonCV's but torchvision's (false), which the recipes written before the key use.
    pub align_corners: bool,
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            output_stride: 8,
            aux: true,
            aux_weight: 0.5,
            loss_group_images: 0,
            norm: backbones::layers::NormMode::Batch,
            align_corners: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// `ade20k:ROOT` (or `voc:ROOT`); `--data` overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// Where the validation split comes from when not from `spec` (another copy or subset of
    /// the dataset); `--val-data` overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_spec: Option<String>,
    /// Crops per iteration (GluonCV: 16).
    pub batch_size: usize,
    pub workers: usize,
    pub prefetch: usize,
    pub skip_bad: bool,
    /// One side (`scale_side`) is drawn from `scale_range x base_size`, then a `crop_size`
    /// square is cut (padded where the image is smaller).
    pub base_size: usize,
    pub crop_size: usize,
    pub scale_range: (f64, f64),
    /// "shorter" (GluonCV 2018, the paper's code) or "longer" (GluonCV since 2019; the
    /// default, what runs before this key had).
    pub scale_side: ScaleSide,
    pub flip_probability: f64,
    /// Gaussian blur (sigma uniform in [0, 1)) with this probability, as GluonCV's
    /// `_sync_transform` does.
    pub blur_probability: f64,
    pub normalization: NormalizationChoice,
    /// Validation during training: the whole image (`None`, what the reported numbers use)
    /// or GluonCV's shorter-side-to-crop + centre crop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_crop: Option<usize>,
    /// Validation images per batch. Whole images of different sizes are padded to one batch
    /// size, which shifts the logits near the padding: keep 1 unless the images share a size.
    pub val_batch_size: usize,
    /// Train on the first N images of the training split only, and validate on the first N
    /// of the validation split (quick runs: `scripts/transfer_tables.sh --dry-run`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_train_samples: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_val_samples: Option<usize>,
}

impl Default for DataSection {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let t = SegmentationTrainTransform::ADE20K;
        DataSection {
            spec: None,
            val_spec: None,
            batch_size: 16,
            workers,
            prefetch: 2 * workers.max(1),
            skip_bad: false,
            base_size: t.base_size,
            crop_size: t.crop_size,
            scale_range: t.scale_range,
            scale_side: ScaleSide::Longer,
            flip_probability: t.flip_probability,
            blur_probability: 0.5,
            normalization: NormalizationChoice::Imagenet,
            eval_crop: None,
            val_batch_size: 1,
            max_train_samples: None,
            max_val_samples: None,
        }
    }
}

impl DataSection {
    pub fn train_transform(&self) -> SegmentationTrainTransform {
        SegmentationTrainTransform {
            base_size: self.base_size,
            crop_size: self.crop_size,
            scale_range: self.scale_range,
            scale_side: self.scale_side,
            flip_probability: self.flip_probability,
            blur_probability: self.blur_probability,
        }
    }
}

impl Recipe for FinetuneConfig {
    fn check(&self) -> Result<(), String> {
        self.validate()
    }

    fn sections(&self) -> RecipeSections<'_> {
        RecipeSections {
            optim: &self.optim,
            schedule: &self.schedule,
            train: &self.train,
            batch_size: self.data.batch_size,
            dataset: self.data.spec.as_deref(),
        }
    }
}

impl FinetuneConfig {
    /// Checks what serde cannot: ranges and combinations (a config file is untrusted input).
    pub fn validate(&self) -> Result<(), String> {
        let m = &self.model;
        if ![8, 16].contains(&m.output_stride) {
            return Err(format!(
                "model.output_stride must be 8 or 16, not {}",
                m.output_stride
            ));
        }
        if !(m.aux_weight.is_finite() && m.aux_weight >= 0.0) {
            return Err(format!(
                "model.aux_weight must be a number >= 0, not {}",
                m.aux_weight
            ));
        }
        let d = &self.data;
        // A batch no larger than one group is one group (a GPU holding the whole batch), which
        // is what a dry run's batch of 1 needs; a larger batch must split into whole groups.
        if m.loss_group_images > 0
            && m.loss_group_images < d.batch_size
            && !d.batch_size.is_multiple_of(m.loss_group_images)
        {
            return Err(format!(
                "model.loss_group_images ({}) must divide data.batch_size ({}) or be at least it",
                m.loss_group_images, d.batch_size
            ));
        }
        check("data.base_size", d.base_size, &limits::RESIZE_SIDE)?;
        check("data.crop_size", d.crop_size, &limits::INPUT_SIDE)?;
        if let Some(c) = d.eval_crop {
            check("data.eval_crop", c, &limits::INPUT_SIDE)?;
        }
        check("data.val_batch_size", d.val_batch_size, &limits::BATCH)?;
        limits::check_loader(d.workers, d.prefetch)?;
        if d.max_train_samples == Some(0) || d.max_val_samples == Some(0) {
            return Err(
                "data.max_train_samples and data.max_val_samples must be at least 1".into(),
            );
        }
        let (lo, hi) = d.scale_range;
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi && hi <= 4.0) {
            return Err(format!(
                "data.scale_range must be [low, high] with 0 < low <= high <= 4, not [{lo}, {hi}]"
            ));
        }
        for (key, p) in [
            ("data.flip_probability", d.flip_probability),
            ("data.blur_probability", d.blur_probability),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{key} must be between 0 and 1, not {p}"));
            }
        }
        self.engine().validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FinetuneConfig, String> {
        let c: FinetuneConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    const MINIMAL: &str =
        "[optim]\nlr = 0.16\n[schedule]\nepochs = 50\ndecay = { kind = \"poly\", power = 0.9 }\n";

    #[test]
    fn defaults_are_gluoncvs_ade20k_recipe() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(
            (c.data.base_size, c.data.crop_size, c.data.batch_size),
            (520, 480, 16)
        );
        assert_eq!(c.data.blur_probability, 0.5);
        assert_eq!(
            (c.model.output_stride, c.model.aux, c.model.aux_weight),
            (8, true, 0.5)
        );
    }

    #[test]
    fn only_the_ade20k_recipe_aligns_corners_as_gluoncv() {
        assert!(!parse(MINIMAL).unwrap().model.align_corners);
        let ade: FinetuneConfig =
            toml::from_str(include_str!("../../configs/segmentation/ade20k-fcn.toml")).unwrap();
        ade.validate().unwrap();
        assert!(ade.model.align_corners);
    }

    /// The paper profile's CPU dry run shrinks the ADE20K recipe's batch to 1: its groups of 4
    /// then hold the whole batch instead of refusing the recipe.
    #[test]
    fn a_batch_smaller_than_one_loss_group_is_one_group() {
        let mut ade: FinetuneConfig =
            toml::from_str(include_str!("../../configs/segmentation/ade20k-fcn.toml")).unwrap();
        ade.data.batch_size = 1;
        ade.validate().unwrap();
        ade.data.batch_size = 6;
        assert!(ade
            .validate()
            .unwrap_err()
            .contains("model.loss_group_images"));
    }

    #[test]
    fn out_of_range_values_are_named() {
        for (extra, key) in [
            ("[model]\noutput_stride = 32\n", "model.output_stride"),
            ("[model]\naux_weight = -1.0\n", "model.aux_weight"),
            ("[data]\nblur_probability = 1.5\n", "data.blur_probability"),
            ("[data]\nscale_range = [2.0, 0.5]\n", "data.scale_range"),
            ("[data]\ncrop_size = 0\n", "data.crop_size"),
            (
                "[model]\nloss_group_images = 3\n",
                "model.loss_group_images",
            ),
        ] {
            let err = parse(&format!("{MINIMAL}{extra}")).unwrap_err();
            assert!(err.contains(key), "{extra}: {err}");
        }
    }

    fn recipe(name: &str) -> FinetuneConfig {
        let path = format!(
            "{}/../configs/segmentation/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        parse(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    /// GluonCV 2018's protocol: the shorter side drawn, SyncBN, the per-GPU loss groups, fp32.
    #[test]
    fn the_ade20k_recipe_reads_as_gluoncv_2018_trained() {
        let c = recipe("ade20k-fcn.toml");
        assert_eq!(c.data.scale_side, ScaleSide::Shorter);
        assert_eq!(c.data.train_transform().scale_side, ScaleSide::Shorter);
        assert_eq!(c.model.norm, backbones::layers::NormMode::Sync);
        assert_eq!((c.model.loss_group_images, c.model.aux_weight), (4, 1.0));
        assert_eq!(
            c.train.amp,
            engine::amp::Precision::Fp32,
            "GluonCV fine-tuned the FCN in fp32"
        );
    }

    /// Recipes without the new keys (the Fashion mini recipe, and every earlier run's saved
    /// config) keep the longer side and one loss mean over the batch.
    #[test]
    fn recipes_without_the_new_keys_behave_as_before() {
        let c = recipe("fashion-scenes-fcn.toml");
        assert_eq!(c.data.scale_side, ScaleSide::Longer);
        assert_eq!(c.model.loss_group_images, 0);
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.data.scale_side, ScaleSide::Longer);
        assert_eq!(c.model.loss_group_images, 0);
    }
}
