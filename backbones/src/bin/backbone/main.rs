//! `backbone`: ResNet and MobileNet v1 classifiers — inspect, initialise, import from and export to PyTorch,
//! predict.

mod bench_cmd;
mod cli_error;
mod eval_cmd;
mod info;
mod interop_cmd;
mod predict;
mod train_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "backbone",
    version,
    about = "ResNet backbones and MobileNet v1 classifiers with the tricks of He et al. (2018)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parameters and multiply-accumulates of an architecture, counted from the built model.
    Info(info::InfoArgs),
    /// Writes a freshly initialised classifier checkpoint (timm/torchvision initialisation).
    Init(info::InitArgs),
    /// Converts a timm or torchvision state dict (.safetensors) into a checkpoint.
    Import(interop_cmd::ImportArgs),
    /// Writes a checkpoint as a state dict that timm or torchvision loads strictly.
    Export(interop_cmd::ExportArgs),
    /// Top-k classes of one image.
    Predict(predict::PredictArgs),
    /// Trains a classifier from a TOML recipe (the paper's refinements, resumable).
    Train(train_cmd::TrainArgs),
    /// Top-1, top-5 and loss of a checkpoint on a dataset's validation split.
    Eval(eval_cmd::EvalArgs),
    /// Images per second of a full training step (or of the data loader with --data).
    Bench(bench_cmd::BenchArgs),
}

fn main() {
    engine::denormals::flush_denormals();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(args) => info::run_info(args),
        Command::Init(args) => info::run_init(args),
        Command::Import(args) => interop_cmd::run_import(args),
        Command::Export(args) => interop_cmd::run_export(args),
        Command::Predict(args) => predict::run(args),
        Command::Train(args) => train_cmd::run(args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
    };
    if let Err(err) = result {
        std::process::exit(cli_error::report("backbone", &err));
    }
}
