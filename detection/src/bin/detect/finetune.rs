use clap::Args;
use detection::train::finetune::{check, finetune, FinetuneOptions};
use engine::command::{train_command, OutcomeNames, RunArgs};
use std::path::PathBuf;

#[derive(Args)]
#[command(
    mut_arg("config", |a| a.help("A TOML recipe, e.g. configs/detection/voc-c4.toml (GluonCV's, the paper's) or configs/detection/voc-fpn.toml (torchvision's)")),
    mut_arg("data", |a| a.help("The dataset: voc:ROOT (a VOCdevkit folder: every VOC20xx in it with the split, so VOC07+12 trainval) or coco:ANNOTATIONS.json[:IMAGES]; overrides data.spec")),
    mut_arg("out", |a| a.required(false).default_value("runs/detection")),
)]
pub struct FinetuneArgs {
    /// A classification checkpoint whose weights start the detector's body (ours, or one
    /// imported with `backbone import`); its fc layer is left out.
    #[arg(long)]
    backbone: PathBuf,
    #[command(flatten)]
    run: RunArgs,
}

pub fn run(args: FinetuneArgs) -> anyhow::Result<()> {
    let options = FinetuneOptions {
        backbone: args.backbone,
        run: args.run.request()?,
    };
    train_command(
        &args.run,
        options,
        check,
        finetune,
        &OutcomeNames {
            best_key: "best_map",
            shown: &[("map", "mAP")],
        },
    )
}
