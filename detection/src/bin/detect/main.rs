//! `detect`: fine-tune, evaluate, predict with, import, export and benchmark Faster R-CNN.
//!
//! Each subcommand lives in its own file with its clap `Args` and a `run`; adding one is a
//! module, an enum variant and a match arm here.

mod bench;
mod cli_error;
mod eval;
mod export;
mod finetune;
mod import;
mod predict;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "detect",
    version,
    about = "Faster R-CNN: fine-tune from a backbone checkpoint, evaluate (VOC07/VOC12/COCO), predict, import from and export to torchvision"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fine-tunes Faster R-CNN (C4 or FPN) from a classification checkpoint on VOC or COCO
    /// data, on the training engine (resumable; mAP picks best.safetensors).
    Finetune(finetune::FinetuneArgs),
    /// Scores detections against a dataset's ground truth: VOC AP by the devkit's rules
    /// (11-point VOC07 or area VOC12) or COCO mAP; from a checkpoint or from result files.
    Eval(eval::EvalArgs),
    /// Detections of one image: printed, as JSON, or drawn into a PNG.
    Predict(predict::PredictArgs),
    /// Converts a torchvision Faster R-CNN state dict (.safetensors) into a checkpoint.
    Import(import::ImportArgs),
    /// Writes an FPN checkpoint as a torchvision state dict (.safetensors) for
    /// fasterrcnn_resnet50_fpn.
    ///
    /// `torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None,
    /// weights_backbone=None, num_classes=K+1, ...)` loads it with
    /// `load_state_dict(strict=True)`; the command prints that Python, and the file's metadata
    /// holds its arguments (the checkpoint's sizes, normalisation, thresholds and proposal
    /// counts) and the class names. Only FPN detectors over resnet50 have a torchvision peer:
    /// a C4 checkpoint is refused.
    Export(export::ExportArgs),
    /// Training and inference images/s on random images of one size (beside torchvision's
    /// fasterrcnn_resnet50_fpn: bench/detect_torchvision.py, `make bench`).
    Bench(bench::BenchArgs),
}

fn main() {
    engine::denormals::flush_denormals();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Finetune(args) => finetune::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Import(args) => import::run(args),
        Command::Export(args) => export::run(args),
        Command::Bench(args) => bench::run(args),
    };
    if let Err(err) = result {
        std::process::exit(cli_error::report("detect", &err));
    }
}
