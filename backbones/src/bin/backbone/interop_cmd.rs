use crate::cli_error::BadInput;
use anyhow::Context;
use backbones::classifier::ClassifierSpec;
use backbones::interop::{self, Framework};
use backbones::ClassifierArch;
use clap::Args;
use engine::{outputs, Checkpoint};
use std::path::PathBuf;

#[derive(Args)]
pub struct ImportArgs {
    /// The library that wrote the state dict.
    #[arg(long = "from", value_enum)]
    from: Framework,
    /// Its architecture, e.g. resnet50d or mobilenet_v1 (timm), resnet50 (torchvision),
    /// inception_v3 (both; with its auxiliary classifier when the file holds AuxLogits.*).
    #[arg(long)]
    arch: ClassifierArch,
    /// Class names, one per line (default: ImageNet's for 1000 classes).
    #[arg(long)]
    classes: Option<PathBuf>,
    /// A state dict saved with safetensors (`safetensors.torch.save_file(model.state_dict(), ...)`).
    input: PathBuf,
    /// The checkpoint to write.
    output: PathBuf,
}

pub fn run_import(args: ImportArgs) -> anyhow::Result<()> {
    let classes =
        backbones::interop::check_import_paths(&args.input, args.classes.as_deref(), &args.output)
            .map_err(BadInput)?;
    let ckpt = interop::import(&args.input, args.from, args.arch, classes)?;
    ckpt.write(&args.output)?;
    eprintln!(
        "imported {} ({}, {} classes) into {}",
        args.input.display(),
        args.arch,
        ckpt.metadata.num_classes,
        args.output.display()
    );
    Ok(())
}

#[derive(Args)]
pub struct ExportArgs {
    /// The library that will load the state dict.
    #[arg(long = "to", value_enum)]
    to: Framework,
    /// A classification checkpoint of this project.
    ckpt: PathBuf,
    /// The state dict to write (.safetensors).
    output: PathBuf,
}

pub fn run_export(args: ExportArgs) -> anyhow::Result<()> {
    outputs::check(
        &[outputs::named(&args.ckpt, "the checkpoint")],
        &[outputs::named(&args.output, "the state dict")],
        true,
    )
    .map_err(BadInput)?;
    let (ckpt, spec) = Checkpoint::read_as::<ClassifierSpec>(&args.ckpt)?;
    interop::export(&ckpt, &args.ckpt, args.to, &args.output)
        .with_context(|| format!("exporting to {}", args.output.display()))?;
    eprintln!(
        "exported {} ({}) to {}",
        args.ckpt.display(),
        ckpt.metadata.arch,
        args.output.display()
    );
    if let Some(note) = interop::export_note(&spec.config, args.to) {
        eprintln!("{note}");
    }
    Ok(())
}
