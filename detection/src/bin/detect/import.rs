//! `detect import`: a torchvision Faster R-CNN state dict → a detection checkpoint.

use crate::cli_error::BadInput;
use anyhow::Context;
use clap::Args;
use detection::import::{import_torchvision, TorchvisionDetector};
use std::path::PathBuf;

/// The library a state dict comes from (`import`) or goes to (`export`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Library {
    Torchvision,
}

#[derive(Args)]
pub struct ImportArgs {
    /// The library that wrote the state dict.
    #[arg(long = "from", value_enum)]
    from: Library,
    /// Its architecture.
    #[arg(long, value_enum)]
    arch: TorchvisionDetector,
    /// Epsilon of the frozen batch norms: torchvision's published COCO weights were trained
    /// with 0; models built by torchvision today use 1e-5 [0 to below 1] (default: the
    /// file's `bn_eps` metadata, which `detect export` writes, else 1e-5).
    #[arg(long, value_parser = parse_bn_eps)]
    bn_eps: Option<f64>,
    /// Object class names, one per line, background excluded (default: the names in the
    /// file's metadata, which `detect export` writes; else torchvision's COCO list, N/A
    /// entries included, when the predictor has 91 rows; else class_0, class_1, ...).
    #[arg(long)]
    classes: Option<PathBuf>,
    /// A state dict saved with safetensors (`safetensors.torch.save_file(model.state_dict(), ...)`).
    input: PathBuf,
    /// The checkpoint to write.
    output: PathBuf,
}

fn parse_bn_eps(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(eps) if (0.0..1.0).contains(&eps) => Ok(eps),
        _ => Err(format!("must be a number from 0 to below 1, not {text}")),
    }
}

pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let Library::Torchvision = args.from;
    let classes =
        backbones::interop::check_import_paths(&args.input, args.classes.as_deref(), &args.output)
            .map_err(BadInput)?;
    let ckpt = import_torchvision(&args.input, args.arch, args.bn_eps, classes)?;
    ckpt.write(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "imported {} ({} classes, batch-norm eps {}) into {}",
        ckpt.metadata.arch,
        ckpt.metadata.num_classes,
        detection::export::bn_eps(&ckpt),
        args.output.display()
    );
    Ok(())
}
