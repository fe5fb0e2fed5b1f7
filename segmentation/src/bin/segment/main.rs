//! `segment`: FCN semantic segmentation — fine-tune from a classification backbone, evaluate
//! (pixAcc, mIoU), predict masks, import torchvision's weights and export to them, benchmark.

mod bench_cmd;
mod cli_error;
mod eval_cmd;
mod export_cmd;
mod finetune_cmd;
mod import_cmd;
mod predict_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "segment",
    version,
    about = "FCN semantic segmentation over the ResNet backbones (He et al. 2018, Table 9)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fine-tunes an FCN from a classification checkpoint on a TOML recipe (resumable).
    Finetune(finetune_cmd::FinetuneArgs),
    /// Pixel accuracy and mIoU of a model, or of a folder of prediction PNGs, on a split.
    Eval(eval_cmd::EvalArgs),
    /// Writes the mask (and a colour overlay) of one image.
    Predict(predict_cmd::PredictArgs),
    /// Converts a torchvision FCN state dict (.safetensors) into a checkpoint.
    Import(import_cmd::ImportArgs),
    /// Writes a checkpoint as a torchvision state dict (.safetensors) for fcn_resnet50 or
    /// fcn_resnet101.
    ///
    /// `torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None,
    /// num_classes=K, aux_loss=True)` (fcn_resnet101 for a ResNet-101 body; aux_loss=False
    /// without the auxiliary head) loads it with `load_state_dict(strict=True)`; the command
    /// prints that Python with the input preparation and upsampling that give `segment
    /// predict`'s mask, and the file's metadata holds them and the class names. Bodies
    /// torchvision's FCNs cannot hold (ResNet-50-D, other depths, output stride 16) are
    /// refused.
    Export(export_cmd::ExportArgs),
    /// Images per second of a training step and of inference (random data).
    Bench(bench_cmd::BenchArgs),
}

fn main() {
    engine::denormals::flush_denormals();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Finetune(args) => finetune_cmd::run(args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Predict(args) => predict_cmd::run(args),
        Command::Import(args) => import_cmd::run(args),
        Command::Export(args) => export_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
    };
    if let Err(err) = result {
        std::process::exit(cli_error::report("segment", &err));
    }
}
