//! `detect`: fine-tune, evaluate, predict with, import and benchmark Faster R-CNN.
//!
//! Each subcommand lives in its own file with its clap `Args` and a `run`; adding one is a
//! module, an enum variant and a match arm here.

mod cli_error;
mod import;
mod predict;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "detect",
    version,
    about = "Faster R-CNN: fine-tune from a backbone checkpoint, evaluate (VOC07/VOC12/COCO), predict, import"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Converts a torchvision Faster R-CNN state dict (.safetensors) into a checkpoint.
    Import(import::ImportArgs),
    /// Detections of one image: printed, as JSON, or drawn into a PNG.
    Predict(predict::PredictArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Import(args) => import::run(args),
        Command::Predict(args) => predict::run(args),
    };
    if let Err(err) = result {
        std::process::exit(cli_error::report("detect", &err));
    }
}
