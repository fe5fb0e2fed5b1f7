//! `segment export`: a segmentation checkpoint → a torchvision FCN state dict.

use crate::cli_error::BadInput;
use anyhow::Context;
use clap::Args;
use engine::{outputs, Checkpoint};
use segmentation::export::export_torchvision;
use segmentation::import::Framework;
use std::path::PathBuf;

#[derive(Args)]
pub struct ExportArgs {
    /// The library that will load the state dict.
    #[arg(long = "to", value_enum)]
    to: Framework,
    /// A segmentation checkpoint over resnet50 or resnet101 at output stride 8 (`segment
    /// finetune`, `segment import`).
    ckpt: PathBuf,
    /// The state dict to write (.safetensors), replaced if it exists. Its metadata holds the
    /// class names (`classes`), the builder's arguments (`torchvision_kwargs`) and what
    /// torchvision's FCN leaves to the caller (`preprocess`: shorter side, mean, std, and
    /// whether the logits upsample with corners aligned).
    output: PathBuf,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let Framework::Torchvision = args.to;
    outputs::check(
        &[outputs::named(&args.ckpt, "the checkpoint")],
        &[outputs::named(&args.output, "the state dict")],
        true,
    )
    .map_err(BadInput)?;
    let ckpt = Checkpoint::read(&args.ckpt)?;
    let export = export_torchvision(&ckpt, &args.ckpt)?;
    export
        .write(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "exported {} ({}, {} classes) to {}; in Python:",
        args.ckpt.display(),
        ckpt.metadata.arch,
        ckpt.metadata.num_classes,
        args.output.display()
    );
    print!("{}", export.python(&args.output));
    Ok(())
}
