//! `detect export`: a detection checkpoint → a torchvision Faster R-CNN state dict.

use crate::import::Library;
use clap::Args;
use detection::export::export_torchvision;
use engine::pytorch_export::{export_command, TORCH_BN_EPS};
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
    export_command(&args.ckpt, &args.output, export_torchvision, |ckpt| {
        let bn_eps = detection::export::bn_eps(ckpt);
        (bn_eps != TORCH_BN_EPS).then(|| {
            format!(
                "the weights use batch-norm eps {bn_eps} and torchvision builds with \
                 {TORCH_BN_EPS}; the setattr line below gives its model theirs"
            )
        })
    })
}
