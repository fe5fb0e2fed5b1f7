use crate::cli_error::BadInput;
use backbones::outputs;
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
    let mut inputs = vec![outputs::named(&args.input, "the state dict")];
    if let Some(classes) = &args.classes {
        inputs.push(outputs::named(classes, "the class list"));
    }
    outputs::check(
        &inputs,
        &[outputs::named(&args.output, "the checkpoint")],
        true,
    )
    .map_err(BadInput)?;
    let classes = match &args.classes {
        Some(path) => Some(datasets::class_list::read(path).map_err(|e| BadInput(e.to_string()))?),
        None => None,
    };
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
