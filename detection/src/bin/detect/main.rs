//! `detect`: fine-tune, evaluate, predict with, import and benchmark Faster R-CNN.
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
enum Command {}

fn main() {
    let cli = Cli::parse();
    match cli.command {}
}
