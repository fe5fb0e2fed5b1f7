//! The classification training recipe, as a TOML file (configs/backbone/*.toml). Every section
//! rejects unknown keys; missing keys take the defaults noted here (the paper's values where it
//! gives them).

use crate::arch::ClassifierArch;
use crate::inception::InceptionInit;
use crate::layers::NormMode;
use datasets::classify::{EvalTransform, Normalization, TrainTransform};
use engine::command::{Recipe, RecipeSections};
pub use engine::config::{OptimSection, RunSection, ScheduleSection};
use engine::loss::{validate_distillation, validate_smoothing, SmoothingStyle};
use engine::mix::Mix;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelSection,
    #[serde(default)]
    pub data: DataSection,
    pub optim: OptimSection,
    pub schedule: ScheduleSection,
    #[serde(default)]
    pub loss: LossSection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<DistillSection>,
    #[serde(default)]
    pub train: RunSection,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// e.g. "resnet50d", "mobilenet_v1" or "inception_v3".
    pub arch: String,
    /// Start the last BN of every residual block at zero (section 3.1); ResNets only.
    #[serde(default)]
    pub zero_gamma: bool,
    /// Inception-V3's auxiliary classifier on Mixed_6e, whose loss (times `aux_weight`) is
    /// added in training. Default: on for inception_v3, as torchvision builds it (it needs
    /// inputs of at least 299 px); the other architectures have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux_logits: Option<bool>,
    /// The auxiliary loss's weight; default [`AUX_WEIGHT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux_weight: Option<f64>,
    /// Inception-V3's initialisation: "gluoncv" (the default: MXNet's `MSRAPrelu`, as GluonCV's
    /// `train_imagenet.py` starts every network the paper trains) or "torchvision" (timm's
    /// and torchvision's std 0.1 normal). The ResNets and MobileNet have one initialisation,
    /// timm's, and refuse the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InceptionInit>,
    /// Inception-V3's dropout before `fc` in training; default 0.5 (torchvision's and GluonCV's
    /// `inceptionv3`). The ResNets and MobileNet have none and refuse the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
    /// "batch" (ordinary batch norm) or "frozen" (a fixed affine map from the running
    /// statistics, torchvision's FrozenBatchNorm2d: fine-tuning with few images per batch, and
    /// runs whose result must not depend on how a batch is split).
    #[serde(default)]
    pub norm: NormMode,
}

/// The auxiliary classifier's loss weight: TF-slim's `train_image_classifier.py`, which
/// trained the Inception-V3 weights torchvision ports, adds the aux loss with weight 0.4 (and
/// the same label smoothing), as torchvision's fine-tuning tutorial does.
pub const AUX_WEIGHT: f64 = 0.4;

impl ModelSection {
    /// Whether the model trains with an auxiliary classifier.
    pub fn aux_logits(&self, arch: ClassifierArch) -> bool {
        self.aux_logits.unwrap_or(arch.has_aux_classifier())
    }

    pub fn aux_weight(&self) -> f64 {
        self.aux_weight.unwrap_or(AUX_WEIGHT)
    }

    fn validate(&self, arch: ClassifierArch, input_size: i64) -> Result<(), String> {
        if self.zero_gamma && !arch.has_residual_blocks() {
            return Err(format!(
                "model.zero_gamma: {}",
                crate::network::no_zero_gamma(arch)
            ));
        }
        if self.aux_logits == Some(true) && !arch.has_aux_classifier() {
            return Err(format!(
                "model.aux_logits: {}",
                crate::network::no_aux_classifier(arch)
            ));
        }
        if let (Some(init), false) = (self.init, arch == ClassifierArch::InceptionV3) {
            return Err(format!(
                "model.init: chooses between Inception-V3's two initialisations (gluoncv, \
                 torchvision); {arch} has one, timm's, so leave model.init = \"{init}\" out"
            ));
        }
        if let Some(p) = self.dropout {
            if arch != ClassifierArch::InceptionV3 {
                return Err(format!(
                    "model.dropout: only inception_v3 has dropout (before its fc); {arch} has \
                     none, so leave model.dropout out"
                ));
            }
            if !(0.0..1.0).contains(&p) {
                return Err(format!(
                    "model.dropout must be at least 0 and below 1, not {p}"
                ));
            }
        }
        arch.check_input_size(input_size)
            .map_err(|e| format!("data.augment.input_size: {e}"))?;
        let aux = self.aux_logits(arch);
        let min = crate::inception::MIN_AUX_INPUT_SIZE;
        if aux && input_size < min {
            return Err(format!(
                "model.aux_logits: the auxiliary classifier needs inputs of at least {min}x{min} \
                 (its 5x5/3 pool and unpadded 5x5 conv need Mixed_6e at 17x17), and \
                 data.augment.input_size is {input_size}; train at {min} or set \
                 model.aux_logits = false"
            ));
        }
        if let Some(w) = self.aux_weight {
            if !aux {
                return Err(format!(
                    "model.aux_weight: weighs the auxiliary classifier's loss, and this {arch} \
                     has no auxiliary classifier"
                ));
            }
            if !(w.is_finite() && (0.0..=10.0).contains(&w)) {
                return Err(format!(
                    "model.aux_weight must be between 0 and 10, not {w}"
                ));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormalizationChoice {
    /// torchvision's mean/std (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225).
    Imagenet,
    /// The paper's section 2.1 values (123.68, 116.779, 103.939) / (58.393, 57.12, 57.375).
    Paper,
}

impl NormalizationChoice {
    pub fn values(&self) -> Normalization {
        match self {
            NormalizationChoice::Imagenet => Normalization::IMAGENET,
            NormalizationChoice::Paper => Normalization::PAPER,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// Dataset spec (`imagenet:ROOT`, `fashion-mnist:DIR`); `--data` overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// Images per iteration (the paper: 1024 over 8 GPUs for the efficient setting).
    pub batch_size: usize,
    /// Decoding threads; 0 decodes on the training thread.
    pub workers: usize,
    /// Batches prepared ahead.
    pub prefetch: usize,
    /// Leave out unreadable images (counted and listed at the end) instead of stopping.
    pub skip_bad: bool,
    /// Train (or validate) on a fixed random subset of this many images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_train_samples: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_val_samples: Option<usize>,
    pub normalization: NormalizationChoice,
    /// The training augmentation; the evaluation transform follows from its input size.
    pub augment: TrainTransform,
    /// Evaluation resizes the shorter side to this, then centre-crops `augment.input_size`;
    /// default `round(input_size / 0.875)` (256 for 224). Set it to the input size for images
    /// already that small (Fashion-MNIST at 28) to evaluate them as they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_resize: Option<usize>,
}

impl Default for DataSection {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        DataSection {
            spec: None,
            batch_size: 256,
            workers,
            prefetch: 2 * workers.max(1),
            skip_bad: false,
            max_train_samples: None,
            max_val_samples: None,
            normalization: NormalizationChoice::Paper,
            augment: TrainTransform::default(),
            eval_resize: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossSection {
    /// Label smoothing epsilon (the paper: 0.1).
    pub label_smoothing: f64,
    /// "uniform": others get eps/K (GluonCV's code, PyTorch's CrossEntropyLoss);
    /// "paper": others get eps/(K-1) (the paper's equation 4).
    pub smoothing_style: SmoothingStyle,
    /// `{ kind = "mixup", alpha = 0.2 }`, `{ kind = "cutmix", alpha = 1.0 }`,
    /// `{ kind = "cutout", size = 0.5 }` or `{ kind = "none" }`.
    pub mix: Mix,
    /// Train the last this-many epochs without mixing.
    pub mix_off_last_epochs: u64,
}

impl Default for LossSection {
    fn default() -> Self {
        LossSection {
            label_smoothing: 0.0,
            smoothing_style: SmoothingStyle::Uniform,
            mix: Mix::None,
            mix_off_last_epochs: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillSection {
    /// A classification checkpoint of the teacher (the paper: ResNet-152-D).
    pub teacher: PathBuf,
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Weight of the loss against the (smoothed, mixed) labels; the soft loss gets 1 - this.
    #[serde(default = "default_hard_weight")]
    pub hard_weight: f64,
}

fn default_temperature() -> f64 {
    20.0
}
fn default_hard_weight() -> f64 {
    0.5
}

impl DataSection {
    /// The evaluation transform that goes with the training augmentation.
    pub fn eval_transform(&self) -> EvalTransform {
        let mut eval = self.augment.matching_eval(self.normalization.values());
        if let Some(resize) = self.eval_resize {
            eval.resize = resize;
        }
        eval
    }
}

impl Recipe for TrainConfig {
    fn check(&self) -> Result<(), String> {
        self.validate().map(|_| ())
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

impl TrainConfig {
    /// The numbers that size allocations, threads and iteration counts, within
    /// [`limits`](engine::limits) (a config file is untrusted input like any other).
    fn check_bounds(&self) -> Result<(), String> {
        use engine::limits::{self, check};
        let d = &self.data;
        check(
            "data.augment.input_size",
            d.augment.input_size,
            &limits::INPUT_SIDE,
        )?;
        if let Some(r) = d.eval_resize {
            check("data.eval_resize", r, &limits::RESIZE_SIDE)?;
        }
        limits::check_loader(d.workers, d.prefetch)?;
        if d.max_train_samples == Some(0) || d.max_val_samples == Some(0) {
            return Err(
                "data.max_train_samples and data.max_val_samples must be at least 1".into(),
            );
        }
        check(
            "loss.mix_off_last_epochs",
            self.loss.mix_off_last_epochs,
            &(0..=self.schedule.epochs),
        )?;
        Ok(())
    }

    /// Checks what serde cannot: names, ranges and combinations.
    pub fn validate(&self) -> Result<ClassifierArch, String> {
        let arch: ClassifierArch = self
            .model
            .arch
            .parse()
            .map_err(|e| format!("model.arch: {e}"))?;
        self.model
            .validate(arch, self.data.augment.input_size as i64)?;
        self.data
            .augment
            .validate()
            .map_err(|e| format!("data.augment: {e}"))?;
        if self
            .data
            .eval_resize
            .is_some_and(|r| r < self.data.augment.input_size)
        {
            return Err("data.eval_resize must be at least data.augment.input_size".into());
        }
        self.engine().validate()?;
        self.check_bounds()?;
        validate_smoothing(self.loss.label_smoothing)
            .map_err(|e| format!("loss.label_smoothing: {e}"))?;
        self.loss
            .mix
            .validate()
            .map_err(|e| format!("loss.mix: {e}"))?;
        if let Some(d) = &self.distill {
            validate_distillation(d.temperature, d.hard_weight)
                .map_err(|e| format!("distill: {e}"))?;
        }
        Ok(arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recipe of `arch` at `input_size` with `model` keys added.
    fn recipe(arch: &str, input_size: usize, model: &str) -> Result<ClassifierArch, String> {
        let text = format!(
            "[model]\narch = \"{arch}\"\n{model}\n[data.augment]\ninput_size = {input_size}\n\
             [optim]\nlr = 0.1\n[schedule]\nepochs = 1\ndecay = {{ kind = \"cosine\" }}\n"
        );
        let config: TrainConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        config.validate()
    }

    #[test]
    fn inception_v3_trains_with_its_auxiliary_classifier_at_299_and_without_it_from_75() {
        let inception = ClassifierArch::InceptionV3;
        assert_eq!(recipe("inception_v3", 299, ""), Ok(inception));
        assert_eq!(
            recipe("inception_v3", 299, "aux_weight = 0.3"),
            Ok(inception)
        );
        assert_eq!(
            recipe("inception_v3", 75, "aux_logits = false"),
            Ok(inception)
        );
        let below = |input_size, model| recipe("inception_v3", input_size, model).unwrap_err();
        let err = below(224, "");
        assert!(
            err.starts_with(
                "model.aux_logits: the auxiliary classifier needs inputs of at least 299x299"
            ) && err.contains("input_size is 224")
                && err.contains("set model.aux_logits = false"),
            "{err}"
        );
        let err = below(74, "aux_logits = false");
        assert!(
            err.starts_with("data.augment.input_size: inception_v3 needs inputs of at least 75x75"),
            "{err}"
        );
        let err = below(299, "zero_gamma = true");
        assert!(
            err.starts_with("model.zero_gamma:")
                && err.contains("inception_v3 has no residual blocks"),
            "{err}"
        );
        let err = below(299, "aux_logits = false\naux_weight = 0.4");
        assert!(
            err.starts_with("model.aux_weight:") && err.contains("no auxiliary classifier"),
            "{err}"
        );
        let err = below(299, "aux_weight = -1.0");
        assert!(
            err.starts_with("model.aux_weight must be between 0 and 10"),
            "{err}"
        );
    }

    #[test]
    fn only_inception_v3_has_an_auxiliary_classifier() {
        for arch in ["resnet50d", "mobilenet_v1"] {
            assert!(recipe(arch, 224, "aux_logits = false").is_ok());
            let err = recipe(arch, 224, "aux_logits = true").unwrap_err();
            assert!(
                err.starts_with("model.aux_logits: only inception_v3 has an auxiliary classifier"),
                "{err}"
            );
            let err = recipe(arch, 224, "aux_weight = 0.4").unwrap_err();
            assert!(err.starts_with("model.aux_weight:"), "{err}");
        }
        // ResNets and MobileNets keep running on small inputs.
        assert!(recipe("resnet18", 32, "").is_ok());
        assert!(recipe("mobilenet_v1", 32, "").is_ok());
    }

    #[test]
    fn only_inception_v3_chooses_its_initialisation_and_dropout() {
        let inception = Ok(ClassifierArch::InceptionV3);
        for init in ["gluoncv", "torchvision"] {
            let key = format!("aux_logits = false\ninit = \"{init}\"");
            assert_eq!(recipe("inception_v3", 75, &key), inception);
        }
        let err = recipe("inception_v3", 75, "aux_logits = false\ninit = \"msra\"").unwrap_err();
        assert!(err.contains("unknown variant `msra`"), "{err}");
        for dropout in ["0.0", "0.2"] {
            let key = format!("aux_logits = false\ndropout = {dropout}");
            assert_eq!(recipe("inception_v3", 75, &key), inception);
        }
        for bad in ["1.0", "-0.1", "nan"] {
            let key = format!("aux_logits = false\ndropout = {bad}");
            let err = recipe("inception_v3", 75, &key).unwrap_err();
            assert!(err.starts_with("model.dropout must be at least 0"), "{err}");
        }
        for arch in ["resnet50d", "mobilenet_v1"] {
            let err = recipe(arch, 224, "init = \"gluoncv\"").unwrap_err();
            assert!(
                err.starts_with("model.init: chooses between Inception-V3's two")
                    && err.contains(&format!("{arch} has one, timm's")),
                "{err}"
            );
            let err = recipe(arch, 224, "dropout = 0.5").unwrap_err();
            assert!(err.starts_with("model.dropout: only inception_v3"), "{err}");
        }
    }

    /// Every recipe under `configs/DIR` (and its sub-folders), read as `backbone train` reads it
    /// and checked, by its path from `configs/DIR`.
    fn recipes_in(dir: &str) -> Vec<(String, TrainConfig)> {
        fn walk(
            root: &std::path::Path,
            dir: &std::path::Path,
            found: &mut Vec<(String, TrainConfig)>,
        ) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(root, &path, found);
                } else if path.extension().is_some_and(|e| e == "toml") {
                    let config: TrainConfig = engine::config_file::load(&path, &[])
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    config
                        .check()
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    let name = path
                        .strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    found.push((name, config));
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../configs")
            .join(dir);
        let mut found = Vec::new();
        walk(&root, &root, &mut found);
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    fn mixes(config: &TrainConfig) -> bool {
        !matches!(config.loss.mix, Mix::None)
    }

    /// The paper-scale recipes: every cell of Tables 3, 5 and 6 for the three networks parses
    /// and passes the checks `backbone train` makes first, and every distilled row names the
    /// run folder of an existing ResNet-152-D teacher recipe, trained with mixup exactly when
    /// the student is (section 5.4).
    #[test]
    fn every_paper_recipe_parses_and_names_an_existing_teacher() {
        let recipes = recipes_in("backbone");
        let names: Vec<&str> = recipes.iter().map(|(n, _)| n.as_str()).collect();
        let rows = [
            "baseline",
            "efficient",
            "cosine",
            "cosine-smooth",
            "cosine-smooth-distill",
            "cosine-smooth-mixup",
            "cosine-smooth-distill-mixup",
        ];
        for arch in ["resnet50d", "inception_v3", "mobilenet_v1"] {
            for row in rows {
                let name = format!("imagenet-{arch}-{row}.toml");
                let (_, config) = recipes
                    .iter()
                    .find(|(n, _)| *n == name)
                    .unwrap_or_else(|| panic!("no configs/backbone/{name} in {names:?}"));
                assert_eq!(config.model.arch, arch, "{name}");
                // Inception-V3 trains and evaluates at 299 (GluonCV: resize 342, crop 299).
                if arch == "inception_v3" {
                    assert_eq!(config.data.augment.input_size, 299, "{name}");
                    assert_eq!(config.data.eval_transform().resize, 342, "{name}");
                }
            }
        }
        let mut distilled = 0;
        for (name, config) in &recipes {
            let Some(distill) = &config.distill else {
                continue;
            };
            distilled += 1;
            let teacher = distill.teacher.to_string_lossy();
            let run = teacher
                .strip_prefix("runs/")
                .and_then(|t| t.strip_suffix("/best.safetensors"))
                .unwrap_or_else(|| {
                    panic!("{name}: teacher {teacher} is no runs/NAME/best.safetensors")
                });
            let file = format!("{run}.toml");
            let (_, teacher_config) = recipes
                .iter()
                .find(|(n, _)| *n == file)
                .unwrap_or_else(|| panic!("{name}: no configs/backbone/{file} trains {teacher}"));
            assert_eq!(teacher_config.model.arch, "resnet152d", "{name}");
            assert!(teacher_config.distill.is_none(), "{file}");
            assert_eq!(mixes(teacher_config), mixes(config), "{name}: {file}");
        }
        assert_eq!(distilled, 6, "two distilled rows per network");
    }

    /// The transfer tables' Fashion-MNIST rows: ResNet-50-D's (`configs/tables/ROW.toml`) and
    /// the other columns' (`configs/tables/COLUMN/ROW.toml`), every row of each, their
    /// distilled rows naming a teacher row of their column, at the student's input size.
    #[test]
    fn every_fashion_table_row_parses_and_names_its_columns_teacher() {
        let recipes = recipes_in("tables");
        let rows = [
            "b-standard",
            "d-efficient",
            "cosine",
            "smooth",
            "distill",
            "mixup",
            "distill-mixup",
            "teacher",
            "teacher-mixup",
        ];
        for (column, arch) in [
            ("", "resnet"),
            ("inception_v3/", "inception_v3"),
            ("mobilenet_v1/", "mobilenet_v1"),
        ] {
            for row in rows {
                let name = format!("{column}{row}.toml");
                let (_, config) = recipes
                    .iter()
                    .find(|(n, _)| *n == name)
                    .unwrap_or_else(|| panic!("no configs/tables/{name}"));
                if !row.starts_with("teacher") {
                    assert!(config.model.arch.starts_with(arch), "{name}");
                }
            }
        }
        for (name, config) in &recipes {
            let Some(distill) = &config.distill else {
                continue;
            };
            let teacher = distill.teacher.to_string_lossy();
            let row = teacher
                .strip_suffix("/backbone/best.safetensors")
                .unwrap_or_else(|| panic!("{name}: {teacher} is no ROW/backbone/best.safetensors"));
            let column = name.rsplit_once('/').map_or("", |(c, _)| c);
            assert_eq!(
                row.rsplit_once('/').map_or("", |(c, _)| c),
                column,
                "{name}: a teacher of another column"
            );
            let (_, teacher_config) = recipes
                .iter()
                .find(|(n, _)| *n == format!("{row}.toml"))
                .unwrap_or_else(|| panic!("{name}: no configs/tables/{row}.toml"));
            assert_eq!(
                teacher_config.data.augment.input_size, config.data.augment.input_size,
                "{name}: the teacher sees the student's inputs"
            );
            assert_eq!(mixes(teacher_config), mixes(config), "{name}");
        }
    }

    /// Which of the paper's training refinements a recipe applies, in the order Tables 3 and 6
    /// stack them: the efficient setting (warmup, no bias decay, zero-gamma on ResNets),
    /// cosine decay, label smoothing, distillation, mixup.
    #[derive(Debug, PartialEq)]
    struct Refinements {
        warmup: bool,
        no_bias_decay: bool,
        zero_gamma: bool,
        cosine: bool,
        smoothing: bool,
        distill: bool,
        mixup: bool,
    }

    fn refinements(config: &TrainConfig) -> Refinements {
        Refinements {
            warmup: config.schedule.warmup_epochs > 0.0,
            no_bias_decay: config.optim.no_bias_decay,
            zero_gamma: config.model.zero_gamma,
            cosine: matches!(
                config.schedule.decay,
                engine::schedule::Decay::Cosine { .. }
            ),
            smoothing: config.loss.label_smoothing > 0.0,
            distill: config.distill.is_some(),
            mixup: mixes(config),
        }
    }

    /// Every row of the tables, at paper scale and at Fashion-MNIST scale, adds exactly the
    /// refinement the paper adds on the row above it, and every row trains with Nesterov
    /// momentum, as section 2.1's baseline does. A row that drifts from the paper (the Fashion
    /// B-standard rows once trained without Nesterov) fails here before anyone compares tables.
    #[test]
    fn every_row_adds_the_papers_refinements_in_order_with_nesterov_throughout() {
        // (paper-scale row, Fashion row, [efficient setting, cosine, smoothing, distillation,
        // mixup]); the efficient setting's zero-gamma applies to ResNets only.
        let ladder = [
            (
                "baseline",
                "b-standard",
                [false, false, false, false, false],
            ),
            (
                "efficient",
                "d-efficient",
                [true, false, false, false, false],
            ),
            ("cosine", "cosine", [true, true, false, false, false]),
            ("cosine-smooth", "smooth", [true, true, true, false, false]),
            (
                "cosine-smooth-distill",
                "distill",
                [true, true, true, true, false],
            ),
            (
                "cosine-smooth-mixup",
                "mixup",
                [true, true, true, false, true],
            ),
            (
                "cosine-smooth-distill-mixup",
                "distill-mixup",
                [true, true, true, true, true],
            ),
        ];
        let paper = recipes_in("backbone");
        let fashion = recipes_in("tables");
        let mut checked = 0;
        for (arch, column) in [
            ("resnet50d", ""),
            ("inception_v3", "inception_v3/"),
            ("mobilenet_v1", "mobilenet_v1/"),
        ] {
            for (paper_row, fashion_row, [efficient, cosine, smoothing, distill, mixup]) in ladder {
                let expected = Refinements {
                    warmup: efficient,
                    no_bias_decay: efficient,
                    zero_gamma: efficient && arch.starts_with("resnet"),
                    cosine,
                    smoothing,
                    distill,
                    mixup,
                };
                for (dir, recipes, file) in [
                    (
                        "backbone",
                        &paper,
                        format!("imagenet-{arch}-{paper_row}.toml"),
                    ),
                    ("tables", &fashion, format!("{column}{fashion_row}.toml")),
                ] {
                    let name = format!("configs/{dir}/{file}");
                    let (_, config) = recipes
                        .iter()
                        .find(|(n, _)| *n == file)
                        .unwrap_or_else(|| panic!("no {name}"));
                    assert!(config.optim.nesterov, "{name}: the paper trains with NAG");
                    assert_eq!(refinements(config), expected, "{name}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 42);
    }
}
