use crate::cli_error::BadInput;
use backbones::classifier::default_transform;
use backbones::inception::InceptionInit;
use backbones::interop::imagenet_classes;
use backbones::layers::NormMode;
use backbones::{ClassifierArch, ClassifierConfig, ClassifierNet};
use clap::Args;
use datasets::classify::{EvalTransform, Normalization};
use engine::checkpoint::{var_store_tensors, Checkpoint, Metadata, TaskKind};
use engine::limits;
use std::path::PathBuf;
use tch::{nn, Device};

/// The classifier a command builds: `--arch` and `--num-classes`.
#[derive(Args)]
#[group(skip)]
pub struct NetworkArgs {
    /// Architecture, e.g. resnet50d, resnet50, resnet18, resnet101s, mobilenet_v1,
    /// inception_v3.
    #[arg(long)]
    pub arch: ClassifierArch,
    #[arg(
        long,
        default_value_t = 1000,
        value_parser = limits::flag_range_i64(limits::CLASSES),
        help = limits::help("Classes of the head", &limits::CLASSES)
    )]
    pub num_classes: i64,
}

impl NetworkArgs {
    pub fn config(&self) -> ClassifierConfig {
        ClassifierConfig::classifier(self.arch, self.num_classes)
    }
}

#[derive(Args)]
pub struct InfoArgs {
    #[command(flatten)]
    network: NetworkArgs,
    #[arg(
        long,
        value_parser = flag_input_side(),
        help = limits::help(
            "Square input side for counting multiply-accumulates (default: the architecture's, 299 for inception_v3, else 224)",
            &limits::INPUT_SIDE
        )
    )]
    input_size: Option<i64>,
    /// Print one JSON object: {"arch", "params", "macs", "input_size"}, and "params_with_aux"
    /// for an architecture with an auxiliary classifier.
    #[arg(long)]
    json: bool,
}

/// `--input-size` of commands that take it as an `i64`.
pub fn flag_input_side() -> clap::builder::RangedI64ValueParser<i64> {
    let r = limits::INPUT_SIDE;
    limits::flag_range_i64(*r.start() as i64..=*r.end() as i64)
}

/// Trainable parameters of `config`'s network, and the network.
fn build(config: &ClassifierConfig) -> (i64, ClassifierNet) {
    let vs = nn::VarStore::new(Device::Cpu);
    let model = ClassifierNet::new(&vs.root(), config);
    let params = vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum();
    (params, model)
}

pub fn run_info(args: InfoArgs) -> anyhow::Result<()> {
    let arch = args.network.arch;
    let side = args.input_size.unwrap_or(arch.input_size());
    arch.check_input_size(side).map_err(BadInput)?;
    let config = args.network.config();
    let (params, model) = build(&config);
    let macs = model.macs(side, side);
    // The auxiliary classifier (training only) adds parameters but no inference MACs.
    let params_with_aux = arch.has_aux_classifier().then(|| {
        let mut with_aux = config.clone();
        with_aux
            .set_aux_logits(true)
            .expect("an architecture with an auxiliary classifier");
        build(&with_aux).0
    });
    if args.json {
        let mut report = serde_json::json!({
            "arch": arch.to_string(), "params": params, "macs": macs, "input_size": side
        });
        if let Some(p) = params_with_aux {
            report["params_with_aux"] = p.into();
        }
        println!("{report}");
    } else {
        let aux = params_with_aux
            .map(|p| format!(" ({p} with the auxiliary classifier)"))
            .unwrap_or_default();
        println!(
            "{arch}: {params} parameters{aux}, {:.2} GMACs at {side}x{side}",
            macs as f64 / 1e9,
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct InitArgs {
    #[command(flatten)]
    network: NetworkArgs,
    /// Start the last BN of every residual block at zero (the paper's zero-gamma; ResNets
    /// only: MobileNet and Inception-V3 have no residual blocks).
    #[arg(long)]
    zero_gamma: bool,
    /// Inception-V3 without its auxiliary classifier (timm's default model; torchvision's,
    /// built here otherwise, has it).
    #[arg(long)]
    no_aux_logits: bool,
    /// Inception-V3's initialisation: gluoncv (default: MXNet's MSRAPrelu, as GluonCV's
    /// train_imagenet.py starts the paper's networks) or torchvision (std 0.1, timm's and
    /// torchvision's).
    #[arg(long)]
    init: Option<InceptionInit>,
    #[arg(
        long,
        value_parser = limits::flag_range_usize(limits::INPUT_SIDE),
        help = limits::help(
            "Square input side the model will see (sets the evaluation resize and crop; default: the architecture's, 299 for inception_v3, else 224)",
            &limits::INPUT_SIDE
        )
    )]
    input_size: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: i64,
    out: PathBuf,
}

pub fn run_init(args: InitArgs) -> anyhow::Result<()> {
    tch::manual_seed(args.seed);
    let arch = args.network.arch;
    let input_size = args.input_size.unwrap_or(arch.input_size() as usize);
    arch.check_input_size(input_size as i64).map_err(BadInput)?;
    let mut config = ClassifierConfig::for_training(
        arch,
        args.network.num_classes,
        args.zero_gamma,
        NormMode::Batch,
    )
    .map_err(BadInput)?;
    if args.no_aux_logits {
        config.set_aux_logits(false).map_err(BadInput)?;
    }
    if let Some(init) = args.init {
        let ClassifierConfig::InceptionV3(c) = &mut config else {
            return Err(BadInput(format!(
                "--init chooses between Inception-V3's two initialisations; {arch} has one, \
                 timm's"
            ))
            .into());
        };
        c.init = init;
    }
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = ClassifierNet::new(&vs.root(), &config);
    let transform = if input_size == 224 {
        default_transform()
    } else {
        EvalTransform::for_input_size(input_size, Normalization::IMAGENET)
    };
    let classes = if args.network.num_classes == 1000 {
        imagenet_classes()
    } else {
        engine::state_dict::numbered_classes(args.network.num_classes)
    };
    let ckpt = Checkpoint {
        metadata: Metadata {
            task: TaskKind::Classification,
            arch: args.network.arch.to_string(),
            num_classes: args.network.num_classes,
            classes,
            model: config.to_json(),
            transform: Some(serde_json::to_value(&transform)?),
            config: None,
            epoch: None,
            iter: None,
            metrics: None,
        },
        tensors: var_store_tensors(&vs),
    };
    ckpt.write(&args.out)?;
    eprintln!(
        "wrote {} ({}, {} classes)",
        args.out.display(),
        args.network.arch,
        args.network.num_classes
    );
    Ok(())
}
