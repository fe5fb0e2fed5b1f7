//! `segment export`: a segmentation checkpoint → a torchvision FCN state dict.

use clap::Args;
use engine::pytorch_export::export_command;
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
    export_command(&args.ckpt, &args.output, export_torchvision, |_| None)
}
