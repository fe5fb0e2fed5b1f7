//! `detect export`: a detection checkpoint → a torchvision Faster R-CNN state dict.

use crate::cli_error::BadInput;
use crate::import::Library;
use anyhow::Context;
use clap::Args;
use detection::export::export_torchvision;
use engine::{outputs, Checkpoint};
use std::path::PathBuf;

#[derive(Args)]
pub struct ExportArgs {
    /// The library that will load the state dict.
    #[arg(long = "to", value_enum)]
    to: Library,
    /// A detection checkpoint of the FPN design over resnet50 (`detect finetune`, `detect
    /// import`). The C4 design has no torchvision peer and is refused, as are other bodies.
    ckpt: PathBuf,
    /// The state dict to write (.safetensors), replaced if it exists. Its metadata holds the
    /// class names (`classes`, background first) and the builder's arguments
    /// (`torchvision_kwargs`).
    output: PathBuf,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let Library::Torchvision = args.to;
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
    let bn_eps = detection::export::bn_eps(&ckpt);
    if bn_eps != engine::pytorch_export::TORCH_BN_EPS {
        eprintln!(
            "note: the weights use batch-norm eps {bn_eps} and torchvision builds with {}; the \
             setattr line below gives its model theirs",
            engine::pytorch_export::TORCH_BN_EPS
        );
    }
    print!("{}", export.python(&args.output));
    Ok(())
}
