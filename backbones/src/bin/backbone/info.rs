use crate::cli_error::BadInput;
use backbones::classifier::default_transform;
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
    /// Architecture, e.g. resnet50d, resnet50, resnet18, resnet101s, mobilenet_v1.
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
        default_value_t = 224,
        value_parser = flag_input_side(),
        help = limits::help("Square input side for counting multiply-accumulates", &limits::INPUT_SIDE)
    )]
    input_size: i64,
    /// Print one JSON object: {"arch", "params", "macs"}.
    #[arg(long)]
    json: bool,
}

/// `--input-size` of commands that take it as an `i64`.
pub fn flag_input_side() -> clap::builder::RangedI64ValueParser<i64> {
    let r = limits::INPUT_SIDE;
    limits::flag_range_i64(*r.start() as i64..=*r.end() as i64)
}

pub fn run_info(args: InfoArgs) -> anyhow::Result<()> {
    let vs = nn::VarStore::new(Device::Cpu);
    let model = ClassifierNet::new(&vs.root(), &args.network.config());
    let params: i64 = vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum();
    let macs = model.macs(args.input_size, args.input_size);
    if args.json {
        println!(
            "{}",
            serde_json::json!({"arch": args.network.arch.to_string(), "params": params, "macs": macs})
        );
    } else {
        println!(
            "{}: {} parameters, {:.2} GMACs at {}x{}",
            args.network.arch,
            params,
            macs as f64 / 1e9,
            args.input_size,
            args.input_size
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct InitArgs {
    #[command(flatten)]
    network: NetworkArgs,
    /// Start the last BN of every residual block at zero (the paper's zero-gamma; ResNets
    /// only: a MobileNet has no residual blocks).
    #[arg(long)]
    zero_gamma: bool,
    #[arg(
        long,
        default_value_t = 224,
        value_parser = limits::flag_range_usize(limits::INPUT_SIDE),
        help = limits::help(
            "Square input side the model will see (sets the evaluation resize and crop)",
            &limits::INPUT_SIDE
        )
    )]
    input_size: usize,
    #[arg(long, default_value_t = 0)]
    seed: i64,
    out: PathBuf,
}

pub fn run_init(args: InitArgs) -> anyhow::Result<()> {
    tch::manual_seed(args.seed);
    let config = ClassifierConfig::for_training(
        args.network.arch,
        args.network.num_classes,
        args.zero_gamma,
        NormMode::Batch,
    )
    .map_err(BadInput)?;
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = ClassifierNet::new(&vs.root(), &config);
    let transform = if args.input_size == 224 {
        default_transform()
    } else {
        EvalTransform::for_input_size(args.input_size, Normalization::IMAGENET)
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
