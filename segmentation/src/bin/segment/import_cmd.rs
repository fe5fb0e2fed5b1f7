use crate::cli_error::BadInput;
use clap::Args;
use segmentation::import::{import_torchvision, Framework, TorchvisionFcn};
use std::path::PathBuf;

#[derive(Args)]
pub struct ImportArgs {
    /// The library that wrote the state dict.
    #[arg(long = "from", value_enum)]
    from: Framework,
    /// Its model.
    #[arg(long, value_enum)]
    arch: TorchvisionFcn,
    /// Class names, one per line (default: VOC's for 21 classes, ADE20K's for 150, else
    /// class_<i>).
    #[arg(long)]
    classes: Option<PathBuf>,
    /// The state dict: `safetensors.torch.save_file(model.state_dict(), IN)`.
    input: PathBuf,
    /// The checkpoint to write. It predicts with torchvision's preprocessing (shorter side
    /// 520, ImageNet mean/std).
    output: PathBuf,
}

pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let Framework::Torchvision = args.from;
    let classes =
        backbones::interop::check_import_paths(&args.input, args.classes.as_deref(), &args.output)
            .map_err(BadInput)?;
    let ckpt = import_torchvision(&args.input, args.arch, classes)?;
    ckpt.write(&args.output)?;
    eprintln!(
        "imported {} ({}, {} classes) into {}",
        args.input.display(),
        ckpt.metadata.arch,
        ckpt.metadata.num_classes,
        args.output.display()
    );
    Ok(())
}
